"""The engine's cgroup subtree (dockerd's --cgroup-parent), on cgroup v1 and v2.

After a crash, container processes can outlive dockerd and containerd; they all live below the
engine's own cgroup parent, so `eci down` finds them there, by exact path, and nowhere else.
`cpu_seconds_of(cgroup)`: the CPU a container has used, its supervisor helpers included.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from eci.runtime.confine import charge

CGROUP_ROOT = Path("/sys/fs/cgroup")


def subtree_roots(parent: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """The directory of `parent` in every mounted hierarchy (v1 controllers, or the v2 root)."""
    relative = parent.strip("/")
    candidates = [root / relative]
    if root.is_dir():
        candidates += [entry / relative for entry in sorted(root.iterdir()) if entry.is_dir()]
    return [c for c in candidates if c.is_dir() and (c / "cgroup.procs").exists()]


def pids_in(parent: str, root: Path = CGROUP_ROOT) -> set[int]:
    found: set[int] = set()
    for top in subtree_roots(parent, root):
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                found.update(int(p) for p in procs.read_text().split())
    return found


def kill_all(parent: str, root: Path = CGROUP_ROOT) -> int:
    """SIGKILL every process below the engine's cgroup parent; returns how many were signalled."""
    pids = pids_in(parent, root) - {os.getpid()}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def remove_subtree(parent: str, root: Path = CGROUP_ROOT) -> None:
    """rmdir the (now empty) cgroup directories, deepest first; busy ones are left as they are."""
    for top in subtree_roots(parent, root):
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts))
        for directory in [*reversed(dirs), top]:
            with contextlib.suppress(OSError):
                directory.rmdir()


def cpu_seconds_of(cgroup: str) -> float:
    """CPU time used by the tasks of a v1 cpuacct cgroup, in seconds."""
    points = charge.mount_points(Path("/proc/self/mountinfo").read_text())
    return int(Path(points["cpuacct"], cgroup.lstrip("/"), "cpuacct.usage").read_text()) / 1e9
