"""Bypass attempts, section 1 — container create: one request, the body is the attack.

How a case works: see conftest.py."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from tests.security.api_bypass.common import (
    CREATE,
    IMAGE,
    SECRET_ENV,
    Effect,
    Env,
    Json,
    Message,
    Value,
    assert_refused,
    bind_given,
    bound,
    container,
    eci_text,
    encode,
    engine_state_dir,
    inline_device,
    inspect,
    joined,
    mode,
    modes,
    ns,
    pairs,
    relative_to_dockerd,
    remove_container,
    restricted,
    shared,
    snapshot,
    socket_text,
    unique,
    uses_volume,
    value,
)
from tests.security.rawhttp import exchange, request

pytestmark = pytest.mark.engine


@dataclass(frozen=True)
class Create:
    id: str
    body: Callable[[Env], Any]
    effect: Effect
    message: Message
    status: int | tuple[int, ...] = 403


def _binds(*specs: Value) -> Callable[[Env], Any]:
    return lambda env: container(Binds=[value(s, env) for s in specs])


def _bind_case(case_id: str, source: Value, message: Message | None = None) -> Create:
    def spec(env: Env) -> str:
        return f"{value(source, env)}:/x"

    return Create(case_id, _binds(spec), bind_given(spec), message or restricted(source))


CREATE_CASES = [
    # host namespaces
    Create("pid-host", lambda env: container(PidMode="host"), mode("PidMode", "host"), ns("pid")),
    Create("ipc-host", lambda env: container(IpcMode="host"), mode("IpcMode", "host"), ns("ipc")),
    Create("uts-host", lambda env: container(UTSMode="host"), mode("UTSMode", "host"), ns("uts")),
    Create(
        "network-host",
        lambda env: container(NetworkMode="host"),
        mode("NetworkMode", "host"),
        ns("network"),
    ),
    Create(
        "pid-ipc-uts-host",
        lambda env: container(PidMode="host", IpcMode="host", UTSMode="host"),
        modes(PidMode="host", IpcMode="host", UTSMode="host"),
        ns("pid", "ipc", "uts"),
    ),
    Create(
        "endpoints-config-host",
        lambda env: {
            "Image": IMAGE,
            "Env": SECRET_ENV,
            "NetworkingConfig": {"EndpointsConfig": {"host": {}}},
        },
        joined("host"),
        ns("network"),
    ),
    Create(
        "endpoints-config-host-network-id",
        lambda env: {
            "Image": IMAGE,
            "Env": SECRET_ENV,
            "NetworkingConfig": {"EndpointsConfig": {env.host_network: {}}},
        },
        lambda info, env: joined(env.host_network)(info, env) or joined("host")(info, env),
        ns("network"),
    ),
    Create(
        "network-mode-host-network-id",
        lambda env: container(NetworkMode=env.host_network),
        mode("NetworkMode", lambda env: env.host_network),
        ns("network"),
    ),
    Create(
        "network-mode-host-network-short-id",
        lambda env: container(NetworkMode=env.host_network[:12]),
        mode("NetworkMode", lambda env: env.host_network[:12]),
        ns("network"),
    ),
    Create(
        "pid-container-runc",
        lambda env: container(PidMode=f"container:{env.holder}"),
        mode("PidMode", lambda env: f"container:{env.holder}"),
        shared("pid", lambda env: env.holder),
    ),
    Create(
        "pid-container-runc-by-name",
        lambda env: container(PidMode=f"container:{env.holder_name}"),
        mode("PidMode", lambda env: f"container:{env.holder}"),
        shared("pid", lambda env: env.holder_name),
    ),
    Create(
        "network-container-runc",
        lambda env: container(NetworkMode=f"container:{env.holder}"),
        mode("NetworkMode", lambda env: f"container:{env.holder}"),
        shared("network", lambda env: env.holder),
    ),
    Create(
        "ipc-container-runc",
        lambda env: container(IpcMode=f"container:{env.holder}"),
        mode("IpcMode", lambda env: f"container:{env.holder}"),
        shared("ipc", lambda env: env.holder),
    ),
    # restricted host paths in Binds
    _bind_case("binds-etc-docker", "/etc/docker"),
    Create(
        "binds-etc-docker-ro",
        _binds("/etc/docker:/x:ro"),
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    _bind_case("binds-etc-docker-daemon-json", "/etc/docker/daemon.json"),
    _bind_case("binds-var-lib-docker", "/var/lib/docker"),
    _bind_case("binds-etc-containerd", "/etc/containerd"),
    _bind_case("binds-run-containerd", "/run/containerd"),
    _bind_case("binds-engine-state-dir", engine_state_dir),
    _bind_case("binds-engine-config-dir", lambda env: f"{env.state_dir}/config"),
    _bind_case("binds-engine-private-run-dir", lambda env: str(env.engine.layout.private_dir)),
    _bind_case("binds-root", "/"),
    _bind_case("binds-var", "/var"),
    _bind_case("binds-var-run", "/var/run"),
    _bind_case("binds-run", "/run"),
    _bind_case("binds-tmp-holding-the-engine", "/tmp"),
    _bind_case("binds-run-eci", "/run/eci"),
    _bind_case("binds-var-run-eci", "/var/run/eci"),
    _bind_case("binds-var-lib-eci", "/var/lib/eci"),
    _bind_case("binds-etc-eci", "/etc/eci"),
    Create(
        "binds-dotdot",
        _binds("/tmp/../etc/docker:/x"),
        bound("/etc/docker"),
        restricted("/tmp/../etc/docker"),
    ),
    Create(
        "binds-double-slashes",
        _binds("//etc//docker/:/x"),
        bound("/etc/docker"),
        restricted("//etc//docker/"),
    ),
    Create(
        "binds-dot-segment",
        _binds("/etc/./docker:/x"),
        bound("/etc/docker"),
        restricted("/etc/./docker"),
    ),
    _bind_case("binds-symlink-to-etc-docker", lambda env: f"{env.links}/link"),
    _bind_case("binds-through-symlinked-parent", lambda env: f"{env.links}/etc/docker"),
    # Docker sockets
    _bind_case("socket-var-run-docker-sock", "/var/run/docker.sock", socket_text),
    _bind_case("socket-run-docker-sock", "/run/docker.sock", socket_text),
    _bind_case(
        "socket-engine-user-socket", lambda env: str(env.engine.layout.user_socket), socket_text
    ),
    _bind_case("socket-dotdot", "/var/run/../run/docker.sock", socket_text),
    _bind_case("socket-double-slashes", "//var//run//docker.sock", socket_text),
    Create(
        "socket-engine-raw-socket",
        _binds(lambda env: f"{env.engine.layout.raw_socket}:/s"),
        bind_given(lambda env: f"{env.engine.layout.raw_socket}:/s"),
        # dockerd's own socket lies in the engine's run dir: a restricted path
        restricted(lambda env: str(env.engine.layout.raw_socket)),
    ),
    # legacy top-level HostConfig fields (dockerd reads them when there is no inner HostConfig)
    Create(
        "legacy-top-level-binds",
        lambda env: {"Image": IMAGE, "Env": SECRET_ENV, "Binds": ["/etc/docker:/x"]},
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    Create(
        "legacy-top-level-pid-mode",
        lambda env: {"Image": IMAGE, "Env": SECRET_ENV, "PidMode": "host"},
        mode("PidMode", "host"),
        ns("pid"),
    ),
    Create(
        "legacy-top-level-with-null-hostconfig",
        lambda env: {"Image": IMAGE, "Env": SECRET_ENV, "HostConfig": None, "PidMode": "host"},
        mode("PidMode", "host"),
        ns("pid"),
    ),
    # Mounts
    Create(
        "mounts-bind-etc-docker",
        lambda env: container(Mounts=[{"Type": "bind", "Source": "/etc/docker", "Target": "/x"}]),
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    Create(
        "mounts-bind-readonly",
        lambda env: container(
            Mounts=[{"Type": "bind", "Source": "/etc/docker", "Target": "/x", "ReadOnly": True}]
        ),
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    Create(
        "mounts-bind-lowercase-keys",
        lambda env: container(mounts=[{"type": "bind", "source": "/etc/docker", "target": "/x"}]),
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    Create(
        "mounts-bind-engine-state-dir",
        lambda env: container(Mounts=[{"Type": "bind", "Source": env.state_dir, "Target": "/x"}]),
        bound(engine_state_dir),
        restricted(engine_state_dir),
    ),
    Create(
        "mounts-bind-dotdot",
        lambda env: container(
            Mounts=[{"Type": "bind", "Source": "/tmp/../etc/docker", "Target": "/x"}]
        ),
        bound("/etc/docker"),
        restricted("/tmp/../etc/docker"),
    ),
    Create(
        "mounts-volume-inline-bind-device",
        lambda env: container(
            Mounts=[
                {
                    "Type": "volume",
                    "Target": "/x",
                    "VolumeOptions": {
                        "DriverConfig": {
                            "Options": {"type": "none", "o": "bind", "device": "/etc/docker"}
                        }
                    },
                }
            ]
        ),
        inline_device("/etc/docker"),
        restricted("/etc/docker"),
    ),
    Create(
        "mounts-volume-named-bind-volume",
        lambda env: container(Mounts=[{"Type": "volume", "Source": env.volume, "Target": "/x"}]),
        uses_volume,
        restricted("/etc/docker"),
    ),
    Create(
        "binds-named-bind-volume",
        lambda env: container(Binds=[f"{env.volume}:/x"]),
        uses_volume,
        restricted("/etc/docker"),
    ),
    # A relative `device` is mounted relative to dockerd's working directory.
    Create(
        "mounts-volume-inline-relative-device",
        lambda env: container(
            Mounts=[
                {
                    "Type": "volume",
                    "Target": "/x",
                    "VolumeOptions": {
                        "DriverConfig": {
                            "Options": {
                                "type": "none",
                                "o": "bind",
                                "device": os.path.relpath("/etc/docker", env.dockerd_cwd),
                            }
                        }
                    },
                }
            ]
        ),
        inline_device(relative_to_dockerd("/etc/docker")),
        eci_text,
        (400, 403),
    ),
    # An overlay volume takes its host directories from `o` (lowerdir=...), not `device`.
    Create(
        "mounts-volume-inline-overlay-lowerdir",
        lambda env: container(
            Mounts=[
                {
                    "Type": "volume",
                    "Target": "/x",
                    "VolumeOptions": {
                        "DriverConfig": {
                            "Options": {
                                "type": "overlay",
                                "device": "overlay",
                                "o": "lowerdir=/etc/docker:/etc/ssl",
                            }
                        }
                    },
                }
            ]
        ),
        inline_device("overlay"),
        eci_text,
        (400, 403),
    ),
    Create(
        "volumes-from-runc-container",
        lambda env: container(VolumesFrom=[env.binder_name]),
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    Create(
        "volumes-from-runc-container-ro",
        lambda env: container(VolumesFrom=[f"{env.binder_name}:ro"]),
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    Create(
        "volumes-from-runc-container-by-id",
        lambda env: container(VolumesFrom=[env.binder]),
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    # how Go's encoding/json reads keys
    Create(
        "keys-lowercase",
        lambda env: {"Image": IMAGE, "Env": SECRET_ENV, "hostconfig": {"pidmode": "host"}},
        mode("PidMode", "host"),
        ns("pid"),
    ),
    Create(
        "keys-uppercase",
        lambda env: {"Image": IMAGE, "Env": SECRET_ENV, "HOSTCONFIG": {"PIDMODE": "host"}},
        mode("PidMode", "host"),
        ns("pid"),
    ),
    Create(
        "keys-kelvin-sign",
        lambda env: pairs(
            ("Image", IMAGE),
            ("Env", SECRET_ENV),
            ("HostConfig", Json('{"Networ\u212aMode":"host"}'.encode())),
        ),
        mode("NetworkMode", "host"),
        ns("network"),
    ),
    Create(
        "keys-long-s",
        lambda env: pairs(
            ("Image", IMAGE),
            ("Env", SECRET_ENV),
            ("Ho\u017ftConfig", {"Bind\u017f": ["/etc/docker:/x"]}),
        ),
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    Create(
        "keys-unicode-escape",
        lambda env: Json(
            b'{"Image":"busybox","Env":'
            + json.dumps(SECRET_ENV).encode()
            + b',"HostConfig":{"\\u0050idMode":"host"}}'
        ),
        mode("PidMode", "host"),
        ns("pid"),
    ),
    # duplicate keys: Go lets the last one win and merges nested objects into the first
    Create(
        "duplicate-keys-folded-hostconfig",
        lambda env: pairs(
            ("Image", IMAGE),
            ("Env", SECRET_ENV),
            ("HostConfig", {"Memory": 0}),
            ("hostconfig", {"PidMode": "host"}),
        ),
        mode("PidMode", "host"),
        eci_text,
        400,
    ),
    Create(
        "duplicate-keys-folded-pid-mode",
        lambda env: pairs(
            ("Image", IMAGE),
            ("Env", SECRET_ENV),
            ("HostConfig", pairs(("pidmode", ""), ("PidMode", "host"))),
        ),
        mode("PidMode", "host"),
        eci_text,
        400,
    ),
    Create(
        "duplicate-keys-exact-last-wins",
        lambda env: pairs(
            ("Image", IMAGE),
            ("Env", SECRET_ENV),
            ("HostConfig", {"PidMode": "private"}),
            ("HostConfig", {"PidMode": "host"}),
        ),
        mode("PidMode", "host"),
        eci_text,
        400,  # a repeated key is ambiguous (Go merges repeats): refused as unreadable
    ),
    Create(
        "runtime-duplicate-exact",
        lambda env: pairs(
            ("Image", IMAGE),
            ("HostConfig", {"Runtime": "sysbox-runc"}),
            ("HostConfig", {"Runtime": "runc"}),
        ),
        mode("Runtime", "runc"),
        eci_text,
        400,
    ),
    # Go merges a repeated HostConfig into the first: the bind of the first one survives
    Create(
        "duplicate-keys-exact-merge-binds",
        lambda env: pairs(
            ("Image", IMAGE),
            ("Env", SECRET_ENV),
            ("HostConfig", {"Binds": ["/etc/docker:/x"]}),
            ("HostConfig", {"Runtime": "sysbox-runc"}),
        ),
        bound("/etc/docker"),
        eci_text,
        (400, 403),
    ),
    Create(
        "duplicate-keys-exact-merge-pid-mode",
        lambda env: pairs(
            ("Image", IMAGE),
            ("Env", SECRET_ENV),
            ("HostConfig", {"PidMode": "host"}),
            ("HostConfig", {"Runtime": "sysbox-runc"}),
        ),
        mode("PidMode", "host"),
        eci_text,
        (400, 403),
    ),
    Create(
        "duplicate-keys-exact-merge-endpoints",
        lambda env: pairs(
            ("Image", IMAGE),
            ("Env", SECRET_ENV),
            ("HostConfig", {"Runtime": "sysbox-runc"}),
            ("NetworkingConfig", {"EndpointsConfig": {"host": {}}}),
            ("NetworkingConfig", {"EndpointsConfig": {}}),
        ),
        joined("host"),
        eci_text,
        (400, 403),
    ),
]


@pytest.mark.parametrize("case", CREATE_CASES, ids=lambda c: c.id)
def test_container_create_refused(env: Env, case: Create) -> None:
    name = unique()
    data = request("POST", CREATE.format(name=name), encode(case.body(env)))
    # control: dockerd creates it, with the dangerous setting
    responses = exchange(env.raw, data)
    try:
        assert [r.status for r in responses] == [201], responses
        info = inspect(env, "containers", name)
        assert info is not None
        assert case.effect(info, env), json.dumps(info["HostConfig"])[:2000]
    finally:
        remove_container(env, name)
    # the proxy refuses the identical bytes, and nothing is created
    before = snapshot(env)
    responses = exchange(env.user, data)
    try:
        assert len(responses) == 1, responses
        assert_refused(responses[0], case.status, case.message(env))
        assert inspect(env, "containers", name) is None
        assert snapshot(env) == before
    finally:
        remove_container(env, name)
