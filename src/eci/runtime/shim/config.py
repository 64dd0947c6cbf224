"""The engine's runtime config (`runtime.conf`) and the host's id pool (`/etc/subuid`).

Read on every create and delete by a `python3 -I -S` shim: `key=value` lines, no json, no
dataclasses or typing at run time.
"""

from __future__ import annotations

import os

from eci.errors import RuntimeShimError
from eci.runtime.shim.ranges import Pool

#: the user whose /etc/subuid and /etc/subgid entries are eci's id pool
SUBID_USER = "eci"


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


class RuntimeConfig:
    """<state>/config/runtime.conf, written by `eci up`: `key=value` lines (no json on delete)."""

    __slots__ = (
        "audit_log",
        "backend",
        "docker_data_root",
        "grants_dir",
        "lxcfs_dir",
        "ranges_dir",
        "ranges_per_user",
        "restricted_paths",
        "rootfs_dir",
        "runtime_dir",
        "server_dir",
        "supervisor_dir",
    )

    def __init__(self, values: dict[str, str]) -> None:
        self.docker_data_root = values["dockerDataRoot"]
        # required: without it binds could not be checked (fail closed, not open)
        self.restricted_paths = tuple(p for p in values["restrictedPaths"].split(":") if p)
        self.grants_dir = values.get("grantsDir", "")
        self.runtime_dir = values["runtimeDir"]
        self.rootfs_dir = values["rootfsDir"]
        self.ranges_dir = values["rangesDir"]
        # ranges one requesting user may hold (None: ranges.default_cap)
        per_user = values.get("rangesPerUser", "")
        self.ranges_per_user = int(per_user) if per_user.isdigit() else None
        # where processes killed for holding a released range are recorded
        self.audit_log = values.get("auditLog", "")
        self.backend = values.get("backend", "runc")
        self.server_dir = values.get("serverDir", "")
        # required by create (checked there: a container would start unconfined without them)
        self.supervisor_dir = values.get("supervisorDir", "")
        self.lxcfs_dir = values.get("lxcfsDir", "")

    @classmethod
    def load(cls, state_dir: str | None) -> RuntimeConfig:
        if not state_dir:
            raise RuntimeShimError(
                "eci runtime: missing --eci-state (register the runtime with "
                "`eci up`, whose launcher passes it)"
            )
        path = os.path.join(state_dir, "config", "runtime.conf")
        try:
            text = read_text(path)
            return cls(dict(line.split("=", 1) for line in text.splitlines() if "=" in line))
        except (OSError, KeyError) as exc:
            raise RuntimeShimError(f"eci runtime: cannot read {path}: {exc}") from exc


def host_pool() -> Pool:
    """eci's id pool, read now: the SUBID_USER entries of /etc/subuid and /etc/subgid (equal)."""
    pools = []
    for name in ("/etc/subuid", "/etc/subgid"):
        try:
            text = read_text(name)
        except OSError as exc:
            raise RuntimeShimError(f"cannot read {name}: {exc.strerror}") from exc
        pools.append(Pool.from_subid(text, SUBID_USER, name))
    if pools[0] != pools[1]:
        raise RuntimeShimError(
            f"the {SUBID_USER!r} entries of /etc/subuid and /etc/subgid "
            f"differ ({pools[0]} vs {pools[1]}); make them equal"
        )
    return pools[0]
