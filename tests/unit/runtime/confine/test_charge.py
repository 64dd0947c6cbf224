"""`charge`: a container's cgroups read from /proc/<pid>/cgroup and the host's mountinfo, as
the kernel prints them on a cgroup v1 hybrid host (co-mounted cpu,cpuacct included), and the
move into them, on a directory tree standing in for /sys/fs/cgroup."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from eci.runtime.confine import charge

CONTAINER = "/eci1234/abcdef"
PROC_CGROUP = f"""\
12:freezer:{CONTAINER}
11:pids:{CONTAINER}
10:memory:{CONTAINER}
9:name=systemd:{CONTAINER}
4:cpu,cpuacct:{CONTAINER}
0::{CONTAINER}
"""
MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
32 31 0:29 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
33 31 0:30 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
34 31 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
37 31 0:34 / /sys/fs/cgroup/freezer rw,nosuid - cgroup cgroup rw,freezer
38 23 0:32 /eci1234 /mnt/memory\\040copy rw - cgroup cgroup rw,memory
"""


def test_the_freezer_is_joined_last() -> None:
    """Joined first, a paused container's freezer would stop the move half-way."""
    found = charge.memberships(PROC_CGROUP)
    assert found[-1] == ("freezer", CONTAINER)
    assert ("cpu,cpuacct", CONTAINER) in found
    assert ("", CONTAINER) in found
    assert len(found) == 6


def test_every_hierarchy_is_found_at_its_roots_mount() -> None:
    """A bind of a cgroup below the root (the last line) is not where paths start."""
    points = charge.mount_points(MOUNTINFO)
    assert points["cpu"] == points["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert points["memory"] == "/sys/fs/cgroup/memory"
    assert points["name=systemd"] == "/sys/fs/cgroup/systemd"
    assert points[""] == "/sys/fs/cgroup/unified"


def test_a_cgroup_procs_file_per_hierarchy() -> None:
    files = charge.procs_files(charge.memberships(PROC_CGROUP), charge.mount_points(MOUNTINFO))
    assert files == [
        f"/sys/fs/cgroup/pids{CONTAINER}/cgroup.procs",
        f"/sys/fs/cgroup/memory{CONTAINER}/cgroup.procs",
        f"/sys/fs/cgroup/systemd{CONTAINER}/cgroup.procs",
        f"/sys/fs/cgroup/cpu,cpuacct{CONTAINER}/cgroup.procs",
        f"/sys/fs/cgroup/unified{CONTAINER}/cgroup.procs",
        f"/sys/fs/cgroup/freezer{CONTAINER}/cgroup.procs",
    ]


def test_a_hierarchy_that_is_not_mounted_is_an_error() -> None:
    """Fail closed: never charged to only some of the container's cgroups."""
    points = charge.mount_points(MOUNTINFO)
    del points["pids"]
    with pytest.raises(OSError, match="'pids' is not mounted") as raised:
        charge.procs_files(charge.memberships(PROC_CGROUP), points)
    assert raised.value.errno == errno.ENOENT


def fake_hierarchies(root: Path) -> dict[str, str]:
    points = {}
    for name in ("cpu", "memory", "pids"):
        (root / name / CONTAINER.lstrip("/")).mkdir(parents=True)
        (root / name / CONTAINER.lstrip("/") / "cgroup.procs").touch()
        points[name] = str(root / name)
    return points


def test_charge_writes_this_process_into_each(tmp_path: Path) -> None:
    points = fake_hierarchies(tmp_path)
    charge.charge([("cpu", CONTAINER), ("memory", CONTAINER), ("pids", CONTAINER)], points)
    for name in ("cpu", "memory", "pids"):
        procs = tmp_path / name / CONTAINER.lstrip("/") / "cgroup.procs"
        assert procs.read_text() == str(os.getpid())


def test_charge_fails_when_a_cgroup_is_gone(tmp_path: Path) -> None:
    points = fake_hierarchies(tmp_path)
    (tmp_path / "pids" / CONTAINER.lstrip("/") / "cgroup.procs").unlink()
    with pytest.raises(FileNotFoundError):
        charge.charge([("cpu", CONTAINER), ("pids", CONTAINER)], points)


def test_charge_refuses_a_process_without_cgroups() -> None:
    with pytest.raises(OSError, match="no cgroups"):
        charge.charge([], {})
