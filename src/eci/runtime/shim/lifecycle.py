"""The shim's Python half: `create`/`run` (rewrite the spec) and `delete` (release and unstage).

Started by the `eci-runtime` dispatcher as `python3 -I -S` on every container start and
delete, so it imports only what it must (os, ctypes; json only on create) — no pathlib,
dataclasses or typing at run time: those cost more than the interpreter's own start-up.
All IO of the rewrite happens here; the decisions are `spec.transform` and `spec.plan_mounts`.
"""

from __future__ import annotations

import os
import sys
import time

from eci.errors import EciError, RuntimeShimError
from eci.runtime.linux.syscalls import SECCOMP_ARCHES
from eci.runtime.shim import holders, invocation, staging
from eci.runtime.shim.config import RuntimeConfig, host_pool, read_text
from eci.runtime.shim.containerlock import ContainerLock
from eci.runtime.shim.ranges import Pool, ProcSweeper, RangeStore
from eci.runtime.shim.userns import UsernsHandles

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TextIO

NS_PROC_NAMES = {
    "network": "net",
    "mount": "mnt",
    "pid": "pid",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
}


class Resources:
    """What a lifecycle call takes from the process running it rather than from its command
    line and runtime.conf: the user namespaces made ahead, one more place its errors go, and
    eci's id pool (read anew at each use, as /etc/subuid may change under a long-lived server).

    A fresh interpreter (entry.py) runs with bare ones; the runtime server makes its own once,
    and its forked workers inherit them."""

    __slots__ = ("log_to", "pool", "userns")

    def __init__(
        self,
        userns: UsernsHandles | None = None,
        log_to: TextIO | None = None,
        pool: Callable[[], Pool] = host_pool,
    ) -> None:
        self.userns = UsernsHandles() if userns is None else userns
        #: where errors are written as well (the server's log: nobody waits for a cleanup's)
        self.log_to = log_to
        self.pool = pool


def _host_namespace_paths(spec: dict[str, Any]) -> frozenset[str]:
    """Namespace types the spec joins by a path that is in fact the host's (pid 1's)."""
    found = set()
    for ns in spec.get("linux", {}).get("namespaces") or []:
        path, kind = ns.get("path"), ns.get("type")
        if not path or kind not in NS_PROC_NAMES:
            continue
        try:
            joined = os.stat(path)
            host = os.stat(f"/proc/1/ns/{NS_PROC_NAMES[kind]}")
        except OSError:
            found.add(kind)  # unverifiable: treat as the host's (fail closed)
            continue
        if (joined.st_dev, joined.st_ino) == (host.st_dev, host.st_ino):
            found.add(kind)
    return frozenset(found)


def _requester(data_root: str, container_id: str, pool: Pool) -> tuple[int, int] | None:
    """Who asked for the container (see eci.contract.requester), from dockerd's own record of it;
    None when unknown, when the image carries the same label (it could have set it), for
    root and for ids of eci's pool (a container asking through a granted socket)."""
    import json

    from eci.contract.labels import REQUESTER_LABEL
    from eci.contract.requester import parse_requester

    try:
        record = json.loads(
            read_text(os.path.join(data_root, "containers", container_id, "config.v2.json"))
        )
        value = ((record.get("Config") or {}).get("Labels") or {}).get(REQUESTER_LABEL)
        algorithm, _, image_id = str(record.get("Image", "")).partition(":")
        if not isinstance(value, str) or algorithm != "sha256" or not _is_hex(image_id):
            return None
        image = json.loads(
            read_text(
                os.path.join(
                    data_root, "image", "overlay2", "imagedb", "content", "sha256", image_id
                )
            )
        )
        if ((image.get("config") or {}).get("Labels") or {}).get(REQUESTER_LABEL) == value:
            return None
    except (OSError, ValueError, AttributeError):
        return None
    ids = parse_requester(value)
    if ids is None or any(pool.start <= i < pool.start + pool.count for i in ids):
        return None
    return ids


def _listener(directory: str) -> str:
    """The mount supervisor's socket; runc fails the start if nobody listens there."""
    if not directory:
        raise RuntimeShimError("eci runtime: runtime.conf names no supervisorDir; run `eci up`")
    return os.path.join(directory, "listener.sock")


def _lxcfs(directory: str) -> str:
    """lxcfs's mount, checked to answer: without it /proc would show the host's numbers."""
    if not directory:
        raise RuntimeShimError("eci runtime: runtime.conf names no lxcfsDir; run `eci up`")
    try:  # a read, not a stat: the kernel answers a stat from its cache of a dead daemon
        fd = os.open(os.path.join(directory, "proc", "uptime"), os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.read(fd, 64)
        finally:
            os.close(fd)
    except OSError as exc:
        raise RuntimeShimError(
            f"eci runtime: lxcfs does not answer at {directory} ({exc.strerror}); "
            "`eci up` restarts it"
        ) from exc
    return directory


def _is_hex(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _run_backend(backend: str, argv: tuple[str, ...]) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(backend, [backend, *argv])
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _container_id(inv: invocation.Invocation) -> str:
    """The container id, checked: it names directories eci creates and later removes."""
    cid = inv.container_id or ""
    if not invocation.valid_container_id(cid):
        raise RuntimeShimError(
            f"eci runtime: refusing container id {cid!r} (expected ASCII letters and digits,"
            " then also '_', '.', '-', and no '..')"
        )
    return cid


def _owner(inv: invocation.Invocation, container_id: str) -> str:
    """Who holds a range: runc's state dir of the container (exists while runc knows it)."""
    return os.path.join(os.path.realpath(inv.root), container_id)


class _BackendFailed(Exception):
    """runc failed; it has logged why. Propagate its exit code after cleaning up."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def prepare(inv: invocation.Invocation, resources: Resources) -> RuntimeConfig:
    """create's own half: refuse, allocate the range, stage the mounts, rewrite config.json;
    returns the engine's runtime config. On any failure everything done is undone before the
    error propagates."""
    import json

    from eci.runtime.shim.spec import SpecContext, refuse_host_namespaces

    container_id = _container_id(inv)
    config = RuntimeConfig.load(inv.eci_state)
    bundle = os.path.realpath(inv.bundle)
    spec_path = os.path.join(bundle, "config.json")
    spec = json.loads(read_text(spec_path))
    host_paths = _host_namespace_paths(spec)
    # Refuse before anything is allocated or mounted.
    refuse_host_namespaces(spec, SpecContext(0, frozenset(), host_paths))

    owner = _owner(inv, container_id)
    if os.path.isdir(owner):  # runc knows it: never touch a live container's mounts or range
        raise RuntimeShimError(f"eci runtime: container {container_id!r} already exists")
    # absolute paths stay as they are; dockerd's overlay starts coming down (see DockerdRootfs)
    dockerd_rootfs = staging.DockerdRootfs(
        os.path.realpath(os.path.join(bundle, spec["root"]["path"])), config.docker_data_root
    )
    try:
        with _container_lock(config, container_id) as lock:
            try:
                return _prepare_staged(
                    config,
                    resources,
                    container_id,
                    spec_path,
                    spec,
                    host_paths,
                    owner,
                    dockerd_rootfs,
                )
            except BaseException:
                lock.remove()  # undone: nothing of the container is staged
                raise
    finally:
        dockerd_rootfs.wait()


def _prepare_staged(
    config: RuntimeConfig,
    resources: Resources,
    container_id: str,
    spec_path: str,
    spec: dict[str, Any],
    host_paths: frozenset[str],
    owner: str,
    dockerd_rootfs: staging.DockerdRootfs,
) -> RuntimeConfig:
    """prepare, from allocating the range on (dockerd's overlay coming down meanwhile):
    everything it does is undone if it fails."""
    import json

    from eci.runtime.linux.capabilities import bounding_set
    from eci.runtime.linux.mounts import userns_with_maps
    from eci.runtime.shim.spec import SpecContext, plan_mounts, transform

    stage = os.path.join(config.runtime_dir, container_id)
    home = os.path.join(config.rootfs_dir, container_id)
    # Leftovers of an attempt that was killed mid-create (runc never knew the container).
    leftovers = [path for path in (home, stage) if os.path.lexists(path)]
    if leftovers:
        staging.unstage(*leftovers)
    pool = resources.pool()
    requester = _requester(config.docker_data_root, container_id, pool)
    store = _range_store(config, resources, pool, f"create of container {container_id[:12]}")
    base = store.allocate(
        owner,
        is_live=os.path.isdir,
        requester=None if requester is None else requester[0],
        cap=config.ranges_per_user,
    )
    try:
        os.mkdir(stage, 0o700)
        plans = plan_mounts(spec, config.docker_data_root, container_id)
        if all(plan.idmap for plan in plans):  # no host paths: nothing mapped for the requester
            requester = None
        userns = resources.userns.take(base)
        requester_userns = None
        try:
            if requester is not None:
                uid, gid = requester
                requester_userns = userns_with_maps(f"{uid} {base} 1", f"{gid} {base} 1")
            rootfs = staging.stage_rootfs(dockerd_rootfs, stage, home, base, userns)
            staged = staging.stage_binds(
                plans,
                stage,
                userns,
                config.docker_data_root,
                config.restricted_paths,
                config.grants_dir,
                requester_userns,
            )
        finally:
            os.close(userns)
            if requester_userns is not None:
                os.close(requester_userns)
        caps = bounding_set(read_text("/proc/self/status"))
        context = SpecContext(
            base,
            caps,
            host_paths,
            staged,
            rootfs,
            listener_path=_listener(config.supervisor_dir),
            seccomp_arches=SECCOMP_ARCHES.get(os.uname().machine, ()),
            lxcfs_dir=_lxcfs(config.lxcfs_dir),
        )
        new_spec = transform(spec, context, in_place=True)
        tmp = f"{spec_path}.eci-{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(json.dumps(new_spec))
        os.replace(tmp, spec_path)
    except BaseException:
        _unstage_and_release(config, resources, owner, container_id)
        raise
    return config


def _unstage_and_release(
    config: RuntimeConfig, resources: Resources, owner: str, container_id: str
) -> None:
    home, stage = (os.path.join(d, container_id) for d in (config.rootfs_dir, config.runtime_dir))
    staging.unstage(home, stage)
    why = f"release of container {container_id[:12]}"
    _range_store(config, resources, resources.pool(), why).release(owner)


def range_store(
    ranges_dir: str, audit_log: str, pool: Pool, why: str, log_to: TextIO | None = None
) -> RangeStore:
    """The host's range store; processes its sweeps kill are recorded in `audit_log` and in
    `log_to` (the runtime server's log), `why` saying what the sweep was for."""

    def report(holder: holders.Holder, first: int, last: int) -> None:
        reason = (
            f"process {holder.pid} ({holder.comm}) held ids of range {first}-{last} "
            f"({holder.describe()}) that no live container holds: killed before the range "
            f"is handed out again ({why})"
        )
        _log_error(None, f"eci: {reason}", log_to, to_stderr=False)
        if not audit_log:
            return
        from eci import auditfile

        record = {
            "pid": holder.pid,
            "uid": holder.uids[0] if holder.uids else -1,
            "gid": holder.gids[0] if holder.gids else -1,
            "method": "",
            "route": "",
            "rule": "id-range-holder",
            "status": 0,
            "reason": reason,
        }
        try:
            auditfile.append(audit_log, record)
        except OSError as exc:  # the kill stands; losing its record must be visible
            _log_error(None, f"eci: cannot write audit log {audit_log}: {exc}", log_to)

    return RangeStore(ranges_dir, pool, ProcSweeper(report))


def _range_store(config: RuntimeConfig, resources: Resources, pool: Pool, why: str) -> RangeStore:
    return range_store(config.ranges_dir, config.audit_log, pool, why, resources.log_to)


def cleanup(
    inv: invocation.Invocation, resources: Resources, locked: Callable[[], None] | None = None
) -> int:
    """After runc's delete, or a failed runc create: once runc no longer knows the container,
    detach its staged mounts and release its range. A container runc still knows is left
    alone (its delete will come). `locked` is called once the container's lock is held (the
    runtime server then lets the client go: whatever comes next for it waits for the lock)."""
    container_id = _container_id(inv)
    config = RuntimeConfig.load(inv.eci_state)
    owner = _owner(inv, container_id)
    with _container_lock(config, container_id) as lock:
        if locked is not None:
            locked()
        if not os.path.isdir(owner):
            _unstage_and_release(config, resources, owner, container_id)
            lock.remove()
    return 0


def _container_lock(config: RuntimeConfig, container_id: str) -> ContainerLock:
    os.makedirs(config.runtime_dir, mode=0o700, exist_ok=True)
    return ContainerLock(config.runtime_dir, container_id)


def create(inv: invocation.Invocation, resources: Resources) -> int:
    config = prepare(inv, resources)
    try:
        code = _run_backend(config.backend, inv.backend_argv)
    except BaseException:
        cleanup(inv, resources)
        raise
    if code != 0:
        cleanup(inv, resources)
        raise _BackendFailed(code)
    return 0


def delete(inv: invocation.Invocation, resources: Resources) -> int:
    _container_id(inv)  # checked before anything runs
    config = RuntimeConfig.load(inv.eci_state)
    code = _run_backend(config.backend, inv.backend_argv)
    cleanup(inv, resources)
    return code


def _log_error(
    inv: invocation.Invocation | None,
    message: str,
    also_to: TextIO | None,
    to_stderr: bool = True,
) -> None:
    """Where runc would log: containerd turns the last error into `OCI runtime … failed`."""
    line = message
    if inv is not None and inv.globals.get("--log-format") == "json":
        import json

        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = json.dumps({"level": "error", "msg": message, "time": stamp})
    if inv is not None and inv.log:
        with open(inv.log, "a") as f:
            f.write(line + "\n")
    elif to_stderr:
        sys.stderr.write(line + "\n")
    if also_to is not None:
        also_to.write(message + "\n")


def _handle(
    inv: invocation.Invocation,
    resources: Resources,
    half: str | None,
    locked: Callable[[], None] | None,
) -> int:
    if half == "prepare":
        prepare(inv, resources)
        return 0
    if half == "cleanup":
        return cleanup(inv, resources, locked)
    if half is None and inv.command in ("create", "run"):
        return create(inv, resources)
    if half is None and inv.command == "delete":
        return delete(inv, resources)
    raise RuntimeShimError(f"eci runtime: {inv.command!r} is not handled by the shim")


def main(
    argv: list[str],
    resources: Resources,
    half: str | None = None,
    locked: Callable[[], None] | None = None,
) -> int:
    """Run a runc command line (create/run/delete), or only eci's half of one: "prepare"
    (create without runc) or "cleanup" (after runc's delete or a failed create). The halves
    are what the runtime server runs, and what the dispatcher falls back to without it;
    `locked`: see `cleanup`."""
    inv = None
    try:
        inv = invocation.parse(argv)
        return _handle(inv, resources, half, locked)
    except _BackendFailed as failed:
        return failed.code
    except (EciError, OSError, ValueError) as exc:
        _log_error(inv, f"eci: {exc}", resources.log_to)
        return 1
    except Exception as exc:  # a bug: still refuse the container, and say where it broke
        message = f"eci runtime internal error: {type(exc).__name__}: {exc}"
        _log_error(inv, message, resources.log_to)
        return 1
