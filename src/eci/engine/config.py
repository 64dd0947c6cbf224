"""Configuration files of the embedded engine, rendered from its layout (pure: text in, text out).

Design choices that keep a host's own Docker undisturbed:
- own containerd (own root, state, socket and namespace), never the host's /run/containerd;
- own bridge interface (created by eci) and no iptables, ip_forward or masquerade changes:
  published ports work through docker-proxy, containers reach the host over the bridge;
- own cgroup parent, data-root, exec-root and pidfile;
- the local registry (only when asked for: `eci up --registry`) is a docker.io mirror, so pulled
  images carry docker.io registry digests. dockerd reads it on a loopback port below 1024 (only
  root binds one, so no local user can stand in for it), where it is read-only; `eci images`
  writes the same storage through a second registry process on a root-only unix socket.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from eci.engine.layout import RANGES_DIR, RUNTIME_NAME, EngineLayout
from eci.policy.context import SYSTEM_DOCKER_SOCKETS, SYSTEM_RESTRICTED, HostPaths


@dataclass(frozen=True)
class EngineOptions:
    """What `eci up` decides before rendering: ECI on/off, where the shim and registry are."""

    eci_enabled: bool
    runtime_path: Path
    registry_address: str | None  # host:port on loopback; None: the engine runs no registry
    bridge_cidr: str  # e.g. 10.213.7.1/24, the bridge's own address


def dockerd_config(layout: EngineLayout, options: EngineOptions) -> str:
    """daemon.json for dockerd --config-file (nothing of /etc/docker is read)."""
    config = {
        "data-root": str(layout.docker_data_root),
        "exec-root": str(layout.docker_exec_root),
        "pidfile": str(layout.pid_file("dockerd")),
        "hosts": [f"unix://{layout.raw_socket}"],
        "group": "root",
        "containerd": str(layout.containerd_socket),
        "containerd-namespace": layout.containerd_namespace,
        "containerd-plugins-namespace": f"{layout.containerd_namespace}-plugins",
        "bridge": layout.bridge_name,
        "iptables": False,
        "ip6tables": False,
        "ip-forward": False,
        "ip-masq": False,
        "cgroup-parent": layout.cgroup_parent,
        "exec-opts": ["native.cgroupdriver=cgroupfs"],
        "storage-driver": "overlay2",
        "shutdown-timeout": 10,
        "runtimes": {
            # no runtimeArgs: dockerd would put a shell script of its own in front of each call
            RUNTIME_NAME: {"path": str(layout.runtime_launcher)},
        },
        "default-runtime": RUNTIME_NAME if options.eci_enabled else "runc",
        # With ECI on, BuildKit is refused by the proxy (its RUN steps escape the runtime):
        # dockerd then advertises the classic builder, which the Docker CLI picks by itself.
        "features": {"buildkit": not options.eci_enabled},
        # BuildKit builds arrive over the hijacked /grpc stream, where the proxy cannot
        # read the solve request: dockerd itself refuses the entitlements that escape.
        "builder": {"entitlements": {"network-host": False, "security-insecure": False}},
    }
    if options.registry_address:
        config["registry-mirrors"] = [f"http://{options.registry_address}"]
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def host_paths(layout: EngineLayout) -> HostPaths:
    """The host paths no container of this engine may mount: the host's Docker, eci's own
    files, this engine's state and run dirs (data-root, raw socket) and the Docker sockets.
    The proxy checks requests against them and the runtime shim checks binds again."""
    return HostPaths(
        restricted=(*SYSTEM_RESTRICTED, str(layout.state_dir), str(layout.run_dir)),
        docker_sockets=(*SYSTEM_DOCKER_SOCKETS, str(layout.user_socket)),
    )


def _runtime_values(layout: EngineLayout) -> dict[str, str]:
    paths = host_paths(layout)
    return {
        "dockerDataRoot": str(layout.docker_data_root),
        "runtimeDir": str(layout.runtime_dir),
        "rootfsDir": str(layout.rootfs_dir),
        "rangesDir": str(RANGES_DIR),
        "backend": "runc",
        # ':'-separated like PATH (a bind source cannot contain ':' either)
        "restrictedPaths": ":".join(sorted(paths.protected)),
        # the one exception: a socket the proxy granted a container (checked to be a socket)
        "grantsDir": str(layout.grants_dir),
        # where the dispatcher finds the runtime server (create's and delete's eci halves)
        "serverDir": str(layout.runtime_server_dir),
        # the mount supervisor (seccomp listener) and lxcfs: a create fails without either
        "supervisorDir": str(layout.supervisor_dir),
        "lxcfsDir": str(layout.lxcfs_dir),
        # where the runtime records processes killed for holding a freed id range
        "auditLog": str(layout.audit_log),
    }


def runtime_config(layout: EngineLayout, ranges_per_user: int | None = None) -> str:
    """runtime.conf: what the runtime shim needs to know about its engine, as `key=value` lines
    (the shim reads it on every create and delete, and json would double its start-up).
    `ranges_per_user`: the admin's idRangesPerUser (absent: the runtime's default)."""
    values = _runtime_values(layout)
    if ranges_per_user is not None:
        values["rangesPerUser"] = str(ranges_per_user)
    return "".join(f"{key}={value}\n" for key, value in values.items())


#: runtime.conf keys the dispatcher itself needs, as the shell variables it reads them into
_DISPATCHER_VARIABLES = {
    "runtimeDir": "runtime_dir",
    "rootfsDir": "rootfs_dir",
    "serverDir": "server_dir",
    "backend": "backend",
}


def runtime_launcher(layout: EngineLayout, dispatcher: Path) -> str:
    """The engine's runtime as dockerd runs it (sh): the values the dispatcher needs, then the
    dispatcher itself, sourced. One shell per runtime call and no runtime.conf to parse."""
    values = _runtime_values(layout)
    lines = [
        "#!/bin/sh",
        f"# eci's runtime for the engine at {layout.state_dir}, registered with its dockerd",
        f"# as {RUNTIME_NAME}. Written by `eci up` from the same values as runtime.conf.",
        "eci_launcher=1",
        f"state={shlex.quote(str(layout.state_dir))}",
        f"here={shlex.quote(str(dispatcher.parent))}",
        *(f"{var}={shlex.quote(values[key])}" for key, var in _DISPATCHER_VARIABLES.items()),
        f". {shlex.quote(str(dispatcher))}",
    ]
    return "\n".join(lines) + "\n"


def containerd_config(layout: EngineLayout) -> str:
    """containerd.toml: private root/state/sockets; no CRI, no debug or metrics listener."""
    sock = layout.containerd_socket
    return "\n".join(
        [
            "version = 2",
            f"root = {json.dumps(str(layout.containerd_root))}",
            f"state = {json.dumps(str(layout.containerd_state))}",
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
            "",
            "[grpc]",
            f"  address = {json.dumps(str(sock))}",
            "  uid = 0",
            "  gid = 0",
            "",
            "[ttrpc]",
            f"  address = {json.dumps(str(sock) + '.ttrpc')}",
            "",
            "[debug]",
            '  address = ""',
            "",
            "[metrics]",
            '  address = ""',
            "",
        ]
    )


def _registry_config(layout: EngineLayout, *, read_only: bool, http: list[str]) -> str:
    """docker-registry (distribution) storing under the engine's state dir. Nothing is ever
    deleted through it; a read-only one answers every write (PUT, POST, PATCH, DELETE) with 405
    and leaves stale uploads to the writer (which purges week-old ones, distribution's
    default)."""
    read_only_lines = [
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "    readonly:",
        "      enabled: true",
    ]
    return "\n".join(
        [
            "version: 0.1",
            "log:",
            "  level: warn",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {json.dumps(str(layout.registry_root))}",
            "  delete:",
            "    enabled: false",
            *(read_only_lines if read_only else []),
            "http:",
            *(f"  {line}" for line in http),
            "",
        ]
    )


def registry_config(layout: EngineLayout, address: str) -> str:
    """The mirror dockerd pulls from: read-only, on ``address`` (loopback)."""
    return _registry_config(layout, read_only=True, http=[f"addr: {json.dumps(address)}"])


def registry_writer_config(layout: EngineLayout) -> str:
    """The writer of the same storage, on the root-only unix socket `eci images` uses."""
    socket = json.dumps(str(layout.registry_writer_socket))
    return _registry_config(layout, read_only=False, http=["net: unix", f"addr: {socket}"])
