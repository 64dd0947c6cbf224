"""Start, stop and inspect one embedded engine: containerd, dockerd, user-facing proxy (and a
loopback registry when asked for: `eci up --registry`).

`up` is idempotent and all-or-nothing: on any failure everything started by that call is stopped
again (by pid), mounts under eci's directories are detached and the bridge it created is removed.
`down` stops only processes recorded in engine.json (pid + start time) and the containerd shims
that were started with this engine's own containerd socket. Which daemons there are and how
each is treated (restarted alone, reloaded, given time to stop) is the table in components.py.
"""

from __future__ import annotations

import datetime as dt
import grp
import hashlib
import json
import os
import shutil
import signal
import stat
from importlib import resources
from pathlib import Path

from eci.engine.components import (
    COMPONENTS,
    REGISTRY_COMMAND,
    USER_SOCKET_GROUP,
    Component,
    components,
    lost_parts,
)
from eci.engine.config import (
    EngineOptions,
    containerd_config,
    dockerd_config,
    registry_config,
    registry_writer_config,
    runtime_config,
    runtime_launcher,
)
from eci.engine.layout import RANGES_DIR, EngineLayout
from eci.engine.report import DownReport, ProcessStatus, RecordedEngine, StatusReport
from eci.engine.state import EngineState, load_state, save_state, write_atomic
from eci.errors import EngineError, RuntimeShimError
from eci.host import cgroups, mounts, network, probe
from eci.host.processes import SANE_PATH, ProcessId, is_alive, spawn, stop
from eci.runtime.shim.config import host_pool
from eci.runtime.shim.lifecycle import range_store
from eci.settings import EffectiveSettings

REQUIRED_COMMANDS = ("dockerd", "containerd", "runc", "ip", "lxcfs")


def runtime_shim_path() -> Path:
    """The eci runtime shim shipped in the package (registered as sysbox-runc)."""
    path = Path(str(resources.files("eci.runtime") / "eci-runtime"))
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise EngineError("eci up must run as root: it starts a private dockerd and containerd")
    missing = [c for c in REQUIRED_COMMANDS if shutil.which(c, path=SANE_PATH) is None]
    if missing:
        raise EngineError(
            f"missing commands {missing}; run `make setup` (installs docker.io, "
            "containerd, runc, docker-registry, iproute2)"
        )
    try:
        grp.getgrnam(USER_SOCKET_GROUP)
    except KeyError as exc:
        raise EngineError(
            f"group {USER_SOCKET_GROUP!r} does not exist; run `make setup` "
            f"or `groupadd {USER_SOCKET_GROUP}`"
        ) from exc


def running_state(layout: EngineLayout) -> EngineState | None:
    """The recorded state if every recorded process is still the one eci started."""
    state = load_state(layout.state_file)
    if state is None or not state.processes:
        return None
    expected = {c.name for c in components(state)}
    if set(state.processes) == expected and all(is_alive(p) for p in state.processes.values()):
        return state
    return None


def up(
    layout: EngineLayout, settings: EffectiveSettings, registry: bool | None = None
) -> tuple[EngineState, str]:
    """Bring the engine up (or confirm it is up). Returns the state and what was done.
    ``registry``: run the loopback registry (a stand-in for Docker Hub, for `eci images`);
    None keeps what the engine had (a new engine: none)."""
    check_prerequisites()
    current = running_state(layout)
    restarted = _restart_lost_parts(layout) if current is None else []
    if restarted:
        current = running_state(layout)
    if current is not None:
        _check_registry_choice(current, registry)
        if restarted and current.settings == settings.to_json():
            return current, f"already running; restarted {', '.join(restarted)}"
        if current.settings == settings.to_json():
            return current, "already running"
        return _apply_settings(layout, current, settings), "already running; settings reloaded"
    recorded = load_state(layout.state_file)
    if registry is None:
        registry = recorded is not None and bool(recorded.registry_address)
    if recorded is not None:
        down(layout)  # a partly dead engine: clear its remains before starting afresh

    _make_dirs(layout)
    state = EngineState(
        state_dir=str(layout.state_dir),
        run_dir=str(layout.run_dir),
        eci_enabled=settings.eci_enabled,
        settings=settings.to_json(),
        bridge=layout.bridge_name,
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    try:
        seed = int(hashlib.sha256(layout.tag.encode()).hexdigest(), 16)
        state.bridge_cidr = network.ensure_bridge(layout.bridge_name, layout.state_dir, seed)
        if registry:
            state.registry_address = _registry_address(layout)
        _write_configs(layout, state, settings)
        for component in components(state):
            state.processes[component.name] = _start(layout, state, component)
            save_state(layout.state_file, state, _docker_gid())
            if component.root_only_socket is not None:
                os.chmod(component.root_only_socket(layout), 0o600)
    except BaseException:
        save_state(layout.state_file, state, _docker_gid())
        down(layout)
        raise
    return state, "started"


def _check_registry_choice(state: EngineState, registry: bool | None) -> None:
    if registry is None or registry == bool(state.registry_address):
        return
    running, flag = (
        ("with", "--no-registry") if state.registry_address else ("without", "--registry")
    )
    raise EngineError(
        f"the engine is running {running} its registry; to change that, run `eci down`, "
        f"then `eci up {flag}`"
    )


def _registry_address(layout: EngineLayout) -> str:
    """Where the mirror will listen; readies its storage and the writer's socket path."""
    if shutil.which(REGISTRY_COMMAND, path=SANE_PATH) is None:
        raise EngineError(
            f"--registry needs the {REGISTRY_COMMAND} command; run `make setup` "
            "(installs Debian's docker-registry)"
        )
    port = probe.free_root_only_loopback_port()
    if port is None:
        raise EngineError(
            f"no free loopback port that only root can bind in {probe.ROOT_ONLY_PORTS} (below "
            f"{probe.UNPRIVILEGED_PORT_START.read_text().strip()}, "
            f"{probe.UNPRIVILEGED_PORT_START}): the registry would be open to any local user "
            "who listens there first"
        )
    layout.registry_root.mkdir(parents=True, exist_ok=True)
    layout.registry_root.chmod(0o700)
    layout.registry_writer_socket.unlink(missing_ok=True)  # left by a crash: would block it
    return f"127.0.0.1:{port}"


def _restart_lost_parts(layout: EngineLayout) -> list[str]:
    """Start the restartable parts again (each says why it is one) if only they are gone:
    their loss must not cost the running containers a restart of the engine."""
    state = load_state(layout.state_file)
    if state is None:
        return []
    recorded = state.processes

    def alive(name: str) -> bool:
        return name in recorded and is_alive(recorded[name])

    restarted = []
    for component in lost_parts(components(state), alive):
        if component.before_restart is not None:
            component.before_restart(layout)
        state.processes[component.name] = _start(layout, state, component)
        save_state(layout.state_file, state, _docker_gid())
        restarted.append(component.name)
    return restarted


def _docker_gid() -> int:
    return grp.getgrnam(USER_SOCKET_GROUP).gr_gid


def _make_dirs(layout: EngineLayout) -> None:
    """Only root and whoever must pass get in: users outside group docker reach nothing (the
    state and run dirs, and rootfs/, are passed, never listed: the user socket is 0660
    group docker, and each container's rootfs home is open to that container's root alone,
    see staging.make_rootfs_home)."""
    docker = _docker_gid()
    for path, mode, gid in (
        (layout.state_dir, 0o711, 0),
        (layout.config_dir, 0o750, docker),  # `eci verify` as a docker user reads settings
        (layout.log_dir, 0o700, 0),
        (layout.registry_root, 0o700, 0),
        (layout.run_dir, 0o711, 0),
        (layout.private_dir, 0o700, 0),
        (layout.rootfs_dir, 0o711, 0),
        (layout.runtime_dir, 0o700, 0),
        (layout.lxcfs_dir, 0o700, 0),
    ):
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, 0, gid)
        path.chmod(mode)
    for path in (layout.runtime_dir, layout.rootfs_dir):
        mounts.make_unbindable(path)


def _options(layout: EngineLayout, state: EngineState, enabled: bool) -> EngineOptions:
    return EngineOptions(
        eci_enabled=enabled,
        runtime_path=runtime_shim_path(),
        registry_address=state.registry_address or None,
        bridge_cidr=state.bridge_cidr,
    )


def _write_configs(layout: EngineLayout, state: EngineState, settings: EffectiveSettings) -> None:
    options = _options(layout, state, settings.eci_enabled)
    write_atomic(layout.containerd_config, containerd_config(layout))
    if state.registry_address:
        write_atomic(layout.registry_config, registry_config(layout, state.registry_address))
        write_atomic(layout.registry_writer_config, registry_writer_config(layout))
    else:
        layout.registry_config.unlink(missing_ok=True)
        layout.registry_writer_config.unlink(missing_ok=True)
    write_atomic(layout.dockerd_config, dockerd_config(layout, options))
    write_atomic(layout.runtime_config, runtime_config(layout, settings.id_ranges_per_user))
    write_atomic(layout.runtime_launcher, runtime_launcher(layout, options.runtime_path), 0o755)
    write_atomic(
        layout.settings_snapshot, json.dumps(settings.to_json(), indent=2, sort_keys=True) + "\n"
    )


def _start(layout: EngineLayout, state: EngineState, component: Component) -> ProcessId:
    log = layout.log_file(component.name)
    try:
        proc = spawn(component.name, component.argv(layout, state), log)
    except (OSError, ChildProcessError) as exc:
        raise EngineError(f"{component.name} could not be started: {exc}; see {log}") from exc
    state.processes[component.name] = proc
    if not probe.wait_until(
        lambda: component.ready(layout, state) or not is_alive(proc), component.timeout
    ) or not is_alive(proc):
        raise EngineError(
            f"{component.name} did not become ready within {component.timeout:.0f}s; "
            f"last lines of {log}:\n{_tail(log)}"
        )
    return proc


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _apply_settings(
    layout: EngineLayout, state: EngineState, settings: EffectiveSettings
) -> EngineState:
    """New settings for a running engine: rewrite daemon.json and let dockerd reload it (SIGHUP
    reloads the default runtime); new containers get the new setting at once."""
    _write_configs(layout, state, settings)
    for component in components(state):
        if component.reloads_on_sighup:
            os.kill(state.processes[component.name].pid, signal.SIGHUP)
    state.settings = settings.to_json()
    state.eci_enabled = settings.eci_enabled
    save_state(layout.state_file, state, _docker_gid())
    return state


def down(layout: EngineLayout) -> DownReport:
    """Stop what this engine started, leave no mount, process or interface behind."""
    state = load_state(layout.state_file)
    recorded = state.processes if state is not None else {}
    report = DownReport()
    for component in reversed(COMPONENTS):
        if component.before_stop is not None:
            component.before_stop(layout, report)
        proc = recorded.get(component.name)
        if proc is not None and stop(proc, timeout=component.stop_timeout):
            report.stopped.append(component.name)
        if component.after_stop is not None:
            component.after_stop(layout, report)
    report.detached_mounts = mounts.detach_all_under(layout.run_dir) + mounts.detach_all_under(
        layout.state_dir
    )
    cgroups.remove_subtree(layout.cgroup_parent)
    report.released_ranges = _release_ranges(layout)
    report.bridge_removed = network.remove_bridge(layout.bridge_name, layout.state_dir)
    if not mounts.mounts_under(layout.run_dir):
        shutil.rmtree(layout.run_dir, ignore_errors=True)
    layout.state_file.unlink(missing_ok=True)
    return report


def _release_ranges(layout: EngineLayout) -> int:
    """Id ranges still held by this engine's containers: with runc's state dir gone (it lives
    in our exec-root), every one of them is stale. Each is swept like any release; without
    a readable pool they are left to the stale reclaim (which sweeps them too)."""
    if not RANGES_DIR.is_dir():
        return 0
    try:
        pool = host_pool()
    except RuntimeShimError:
        return 0
    store = range_store(str(RANGES_DIR), str(layout.audit_log), pool, "eci down")
    ours = [
        owner
        for owner in store.allocations().values()
        if mounts.is_under(owner, layout.private_dir)
    ]
    for owner in ours:
        store.release(owner)
    return len(ours)


def status(layout: EngineLayout) -> StatusReport:
    """The engine as engine.json records it, each recorded process checked to be alive."""
    state = load_state(layout.state_file)
    sockets = {
        "user": layout.user_socket,
        "dockerdRaw": layout.raw_socket,
        "containerd": layout.containerd_socket,
    }
    if state is None:
        return StatusReport(layout.state_dir, layout.run_dir, False, sockets, {})
    if state.registry_address:
        sockets["registryWriter"] = layout.registry_writer_socket
    return StatusReport(
        state_dir=layout.state_dir,
        run_dir=layout.run_dir,
        running=running_state(layout) is not None,
        sockets=sockets,
        processes={name: ProcessStatus(p.pid, is_alive(p)) for name, p in state.processes.items()},
        recorded=RecordedEngine(
            eci_enabled=state.eci_enabled,
            settings=state.settings,
            registry=state.registry_address or None,
            bridge=state.bridge,
            bridge_cidr=state.bridge_cidr,
            started_at=state.started_at,
            log_dir=layout.log_dir,
        ),
    )
