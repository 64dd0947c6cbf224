"""Work eci does for a container is paid by the container: its cgroups, not eci's.

The mount supervisor's helpers and the `docker cp` extractor are host processes eci starts
for one container. Before either does any work it moves itself into every cgroup of that
container, in each hierarchy (cgroup v1's cpu, cpuacct, memory, pids, …, and the v2 one):
the container's cpu quota, memory limit and pids limit bound it, its cpuacct counts it, and
a paused container's freezer holds it. A process that cannot be moved into every one of them
does nothing (`charge` raises): work for a container is never done uncharged.

- `memberships(text)`: the (hierarchy, path) pairs of a /proc/<pid>/cgroup text;
- `mount_points(text)`: hierarchy name -> where it is mounted, from a mountinfo text;
- `charge(memberships, mount_points)`: move this process into each of those cgroups;
- `join(proc, mount_points)`: into those of the process whose /proc entry `proc` is open;
  `host_mount_points()`: the hierarchies as this process sees them.

A hierarchy is named as /proc/<pid>/cgroup names it: one of its v1 controllers (`cpu`),
`name=…` for a named one, "" for v2.
"""

from __future__ import annotations

import errno
import os

from eci.runtime.linux.mountinfo import unescape

#: the hierarchy joined last: once in a frozen (paused) container's freezer, a process stops
LAST = "freezer"


def memberships(text: str) -> list[tuple[str, str]]:
    """`hierarchy-id:controllers:path` lines -> (controllers, path), freezer last."""
    found = []
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        found.append((controllers, path))
    return sorted(found, key=lambda m: LAST in m[0].split(","))


def mount_points(mountinfo: str) -> dict[str, str]:
    """Each v1 controller or `name=…` (and "" for v2) -> the mount point of its hierarchy's
    root (a mount of a cgroup below the root is not one: its paths would not match)."""
    points: dict[str, str] = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        sep = fields.index("-", 6)
        fstype, root, mountpoint = fields[sep + 1], fields[3], unescape(fields[4])
        if root != "/":
            continue
        if fstype == "cgroup2":
            points.setdefault("", mountpoint)
        elif fstype == "cgroup":
            for option in fields[sep + 3].split(","):
                points.setdefault(option, mountpoint)
    return points


def procs_files(cgroups: list[tuple[str, str]], points: dict[str, str]) -> list[str]:
    """The cgroup.procs file of each membership; OSError for a hierarchy that is not mounted."""
    files = []
    for controllers, path in cgroups:
        point = points.get(controllers.split(",")[0])
        if point is None:
            raise OSError(errno.ENOENT, f"cgroup hierarchy {controllers!r} is not mounted")
        files.append(os.path.join(point, path.lstrip("/"), "cgroup.procs"))
    return files


def charge(cgroups: list[tuple[str, str]], points: dict[str, str]) -> None:
    """Move this process into each of `cgroups` (raises OSError if any move fails)."""
    if not cgroups:
        raise OSError(errno.ENOENT, "the container has no cgroups")
    pid = str(os.getpid()).encode()
    for path in procs_files(cgroups, points):
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, pid)
        finally:
            os.close(fd)


def join(proc: int, points: dict[str, str]) -> None:
    """Move this process into every cgroup of the process whose /proc/<pid> directory is
    open as `proc` (its cgroups are read through that fd: never a reused pid's)."""
    fd = os.open("cgroup", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
    with os.fdopen(fd) as f:
        text = f.read()
    try:
        cgroups = memberships(text)
    except ValueError as exc:
        raise OSError(errno.EINVAL, f"unexpected cgroup membership {text!r}") from exc
    charge(cgroups, points)


def host_mount_points() -> dict[str, str]:
    """`mount_points` of this process's mount namespace (the host's, before any setns)."""
    with open("/proc/self/mountinfo") as f:
        return mount_points(f.read())
