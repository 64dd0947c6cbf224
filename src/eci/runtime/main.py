"""The shim's Python half: `create`/`run` (rewrite the spec) and `delete` (release and unstage).

Started by the `eci-runtime` dispatcher as `python3 -I -S`, so it imports only the stdlib and
eci's stdlib-only runtime modules. Every other runc command never reaches Python.
All IO of the rewrite happens here; the decisions are `spec.transform` and `spec.plan_mounts`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eci.errors import EciError, RuntimeShimError
from eci.runtime import invocation, staging
from eci.runtime.capabilities import bounding_set
from eci.runtime.mounts import userns_fd
from eci.runtime.ranges import Pool, RangeStore
from eci.runtime.spec import SpecContext, plan_mounts, refuse_host_namespaces, transform

SUBID_USER = "eci"
NS_PROC_NAMES = {
    "network": "net",
    "mount": "mnt",
    "pid": "pid",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
}


@dataclass(frozen=True)
class RuntimeConfig:
    """Written by `eci up` to <state>/config/runtime.json."""

    docker_data_root: Path
    runtime_dir: Path
    rootfs_dir: Path
    ranges_dir: Path
    backend: str

    @classmethod
    def load(cls, state_dir: str | None) -> RuntimeConfig:
        if not state_dir:
            raise RuntimeShimError(
                "eci runtime: missing --eci-state (register the runtime with "
                "`eci up`, which passes it in runtimeArgs)"
            )
        path = Path(state_dir) / "config" / "runtime.json"
        try:
            data = json.loads(path.read_text())
            return cls(
                Path(data["dockerDataRoot"]),
                Path(data["runtimeDir"]),
                Path(data["rootfsDir"]),
                Path(data["rangesDir"]),
                data.get("backend", "runc"),
            )
        except (OSError, ValueError, KeyError) as exc:
            raise RuntimeShimError(f"eci runtime: cannot read {path}: {exc}") from exc


def _pool() -> Pool:
    pools = []
    for name in ("/etc/subuid", "/etc/subgid"):
        try:
            text = Path(name).read_text()
        except OSError as exc:
            raise RuntimeShimError(f"cannot read {name}: {exc.strerror}") from exc
        pools.append(Pool.from_subid(text, SUBID_USER, name))
    if pools[0] != pools[1]:
        raise RuntimeShimError(
            f"the {SUBID_USER!r} entries of /etc/subuid and /etc/subgid "
            f"differ ({pools[0]} vs {pools[1]}); make them equal"
        )
    return pools[0]


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


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.eci-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _run_backend(backend: str, argv: tuple[str, ...]) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(backend, [backend, *argv])
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _liveness_key(inv: invocation.Invocation, container_id: str) -> str:
    return os.path.join(os.path.realpath(inv.root), container_id)


def create(inv: invocation.Invocation) -> int:
    config = RuntimeConfig.load(inv.eci_state)
    container_id = inv.container_id
    if not container_id:
        raise RuntimeShimError("eci runtime: create without a container id")
    bundle = Path(os.path.realpath(inv.bundle))
    spec_path = bundle / "config.json"
    spec = json.loads(spec_path.read_text())
    host_paths = _host_namespace_paths(spec)
    # Refuse before anything is allocated or mounted.
    refuse_host_namespaces(spec, SpecContext(0, frozenset(), host_paths))

    store = RangeStore(config.ranges_dir, _pool())
    key = _liveness_key(inv, container_id)
    base = store.allocate(key, is_live=os.path.isdir)
    stage = config.runtime_dir / container_id
    rootfs = config.rootfs_dir / container_id
    try:
        stage.mkdir(parents=True, exist_ok=True, mode=0o700)
        userns = userns_fd(base)
        try:
            root = Path(spec["root"]["path"])
            merged = root if root.is_absolute() else bundle / root
            staging.stage_rootfs(
                Path(os.path.realpath(merged)), config.docker_data_root, stage, rootfs, base, userns
            )
            staged = staging.stage_binds(
                plan_mounts(spec, str(config.docker_data_root)), stage, userns
            )
        finally:
            os.close(userns)
        with open("/proc/self/status") as f:
            caps = bounding_set(f.read())
        new_spec = transform(spec, SpecContext(base, caps, host_paths, staged, str(rootfs)))
        _write_json_atomic(spec_path, new_spec)
        code = _run_backend(config.backend, inv.backend_argv)
        if code != 0:
            raise _BackendFailed(code)
    except BaseException:
        staging.unstage(rootfs)
        staging.unstage(stage)
        store.release(key)
        raise
    return 0


class _BackendFailed(Exception):
    """runc failed; it has logged why. Propagate its exit code after cleaning up."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def delete(inv: invocation.Invocation) -> int:
    config = RuntimeConfig.load(inv.eci_state)
    code = _run_backend(config.backend, inv.backend_argv)
    container_id = inv.container_id
    if container_id and not os.path.isdir(_liveness_key(inv, container_id)):
        staging.unstage(config.rootfs_dir / container_id)
        staging.unstage(config.runtime_dir / container_id)
        RangeStore(config.ranges_dir, _pool()).release(_liveness_key(inv, container_id))
    return code


def _log_error(inv: invocation.Invocation | None, message: str) -> None:
    """Where runc would log: containerd turns the last error into `OCI runtime … failed`."""
    line = message
    if inv is not None and inv.globals.get("--log-format") == "json":
        line = json.dumps(
            {"level": "error", "msg": message, "time": dt.datetime.now(dt.UTC).isoformat()}
        )
    if inv is not None and inv.log:
        with open(inv.log, "a") as f:
            f.write(line + "\n")
    else:
        sys.stderr.write(line + "\n")


def main(argv: list[str]) -> int:
    inv = None
    try:
        inv = invocation.parse(argv)
        if inv.command in ("create", "run"):
            return create(inv)
        if inv.command == "delete":
            return delete(inv)
        raise RuntimeShimError(f"eci runtime: {inv.command!r} is not handled by the shim")
    except _BackendFailed as failed:
        return failed.code
    except (EciError, OSError, ValueError) as exc:
        _log_error(inv, f"eci: {exc}")
        return 1
    except Exception as exc:  # a bug: still refuse the container, and say where it broke
        _log_error(inv, f"eci runtime internal error: {type(exc).__name__}: {exc}")
        return 1
