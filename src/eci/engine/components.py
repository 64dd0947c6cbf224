"""The daemons of one embedded engine, as one table: how each starts, is known ready, is
restarted, reloaded and stopped.

The engine (`engine.py`) iterates this table and asks each part what to do; it never tests a
part's name. A new daemon is one more row here.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from eci import runtime
from eci.engine.layout import EngineLayout
from eci.engine.report import DownReport
from eci.engine.state import EngineState
from eci.host import cgroups, mounts, probe
from eci.host.processes import ProcessId, processes_mentioning, stop

USER_SOCKET_GROUP = "docker"
REGISTRY_COMMAND = "docker-registry"

#: what a part's argv and readiness are computed from
Probe = Callable[[EngineLayout, EngineState], bool]
#: `eci down`'s work around stopping a part; counts go into its report
StopHook = Callable[[EngineLayout, DownReport], None]


@dataclass(frozen=True)
class Component:
    """One daemon of the engine: how to start it, know it is ready, and treat it afterwards."""

    name: str
    argv: Callable[[EngineLayout, EngineState], list[str]]
    ready: Probe
    #: seconds it may take to become ready
    timeout: float
    #: runs only in an engine started with its registry (`eci up --registry`)
    registry: bool = False
    #: its loss must not cost running containers a restart: `eci up` restarts it alone
    restartable: bool = False
    #: before such a restart: clear what the dead one left behind
    before_restart: Callable[[EngineLayout], None] | None = None
    #: a socket it serves that only root may use: made 0600 once the part is ready (it also
    #: sits in the 0700 private dir)
    root_only_socket: Callable[[EngineLayout], Path] | None = None
    #: re-reads its settings on SIGHUP: `eci up` with new settings signals it, no restart
    reloads_on_sighup: bool = False
    #: seconds `eci down` gives it to exit after SIGTERM
    stop_timeout: float = 15.0
    before_stop: StopHook | None = None
    after_stop: StopHook | None = None


def _shim(mode: str) -> Callable[[EngineLayout, EngineState], list[str]]:
    """A long-running program of the runtime shim, started as the shim is (`-I -S`)."""
    return lambda lay, st: [runtime.PYTHON, "-I", "-S", runtime.ENTRY, mode, str(lay.state_dir)]


def _registry_part(
    name: str,
    config: Callable[[EngineLayout], Path],
    ready: Probe,
    root_only_socket: Callable[[EngineLayout], Path] | None = None,
) -> Component:
    """One of the registry's two processes: the same command and storage, its own config."""
    return Component(
        name,
        lambda lay, st: [REGISTRY_COMMAND, "serve", str(config(lay))],
        ready,
        30.0,
        registry=True,
        root_only_socket=root_only_socket,
    )


def _socket_accepts(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(path))
        return True
    except OSError:
        return False


def _detach_lxcfs(layout: EngineLayout) -> None:
    """A dead lxcfs leaves its FUSE mount behind; the new one mounts on the same dir."""
    mounts.detach_all_under(layout.lxcfs_dir)


def _reap_containers(layout: EngineLayout, report: DownReport) -> None:
    """dockerd stopped its containers; after a crash some may still run: kill them (they sit
    below our cgroup parent), then the containerd shims that watched them (shims outlive
    containerd; ours carry our containerd socket path in argv)."""
    report.killed_container_processes = cgroups.kill_all(layout.cgroup_parent)
    shims = processes_mentioning(str(layout.containerd_socket))
    for shim in shims:
        stop(shim, timeout=5.0)
    report.stray_shims = len(shims)


def _stop_keepers(layout: EngineLayout, report: DownReport) -> None:
    """The supervisor's keepers (each holds a container's seccomp listener) outlive it on
    purpose; with the engine down they have nothing left to keep."""
    keepers = layout.supervisor_dir / "keepers"
    for path in keepers.glob("[0-9]*") if keepers.is_dir() else []:
        try:
            _, _, started = path.read_text().split()
            stop(ProcessId("keeper", int(path.name), int(started)), timeout=5.0)
        except (OSError, ValueError):
            pass
        path.unlink(missing_ok=True)


#: In start order; `eci down` stops them in the reverse order.
COMPONENTS: tuple[Component, ...] = (
    # First up, last down: containers of dockerd's last moments still get their cleanup.
    # Without it starts are slower, never refused: restarted alone.
    Component(
        "runtime-server",
        _shim("--eci-serve"),
        lambda lay, st: (lay.runtime_server_dir / "pid").exists(),
        30.0,
        restartable=True,
    ),
    # Before containerd: no container starts without its mount rules and virtualized /proc.
    # Without it containers' mount calls wait; restarted alone, it takes their listeners back
    # from the keepers.
    Component(
        "mount-supervisor",
        _shim("--eci-supervise"),
        lambda lay, st: (lay.supervisor_dir / "pid").exists(),
        30.0,
        restartable=True,
        after_stop=_stop_keepers,
    ),
    # Without it new containers do not start (running ones read errors, never the host's
    # numbers, from their old binds): restarted alone.
    Component(
        "lxcfs",
        lambda lay, st: [
            "lxcfs",
            "--foreground",
            "--enable-loadavg",
            "--enable-pidfd",
            "--pidfile",
            str(lay.private_dir / "lxcfs.pid"),
            str(lay.lxcfs_dir),
        ],
        lambda lay, st: (lay.lxcfs_dir / "proc" / "uptime").exists(),
        30.0,
        restartable=True,
        before_restart=_detach_lxcfs,
    ),
    Component(
        "containerd",
        lambda lay, st: ["containerd", "--config", str(lay.containerd_config)],
        lambda lay, st: _socket_accepts(lay.containerd_socket),
        30.0,
        before_stop=_reap_containers,
    ),
    # The registry's write side first: the mirror must never serve a storage nobody can fill.
    _registry_part(
        "registry-writer",
        lambda lay: lay.registry_writer_config,
        lambda lay, st: probe.http_status_unix(lay.registry_writer_socket, "/v2/") == 200,
        root_only_socket=lambda lay: lay.registry_writer_socket,
    ),
    _registry_part(
        "registry",
        lambda lay: lay.registry_config,
        lambda lay, st: probe.http_status_tcp(st.registry_address, "/v2/") == 200,
    ),
    # SIGHUP reloads daemon.json's default runtime; its containers get a 10 s grace on stop.
    Component(
        "dockerd",
        lambda lay, st: ["dockerd", "--config-file", str(lay.dockerd_config)],
        lambda lay, st: probe.http_status_unix(lay.raw_socket, "/_ping") == 200,
        60.0,
        root_only_socket=lambda lay: lay.raw_socket,
        reloads_on_sighup=True,
        stop_timeout=40.0,
    ),
    # SIGHUP re-reads effective-settings.json.
    Component(
        "proxy",
        lambda lay, st: [
            sys.executable,
            "-m",
            "eci.proxy",
            "--state-dir",
            str(lay.state_dir),
            "--group",
            USER_SOCKET_GROUP,
        ],
        lambda lay, st: probe.http_status_unix(lay.user_socket, "/_ping") == 200,
        30.0,
        reloads_on_sighup=True,
    ),
)


def components(state: EngineState) -> tuple[Component, ...]:
    """The daemons of this engine: the registry's two only if it was started with them."""
    return tuple(c for c in COMPONENTS if state.registry_address or not c.registry)


def lost_parts(parts: Sequence[Component], alive: Callable[[str], bool]) -> list[Component]:
    """The restartable parts that are gone, in start order, if every other part still runs;
    none if one of those is gone too (then the engine must start afresh)."""
    if not all(alive(c.name) for c in parts if not c.restartable):
        return []
    return [c for c in parts if c.restartable and not alive(c.name)]
