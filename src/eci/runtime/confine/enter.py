"""Becoming one of a container's processes, from the host.

What eci runs on the host for a container, with the container's data (the `docker cp`
extractor unpacks a user's archive inside it), must be able to do no more than the
container's own root: a bug in that host code, or a file the archive or the container set up
to meet it, then meets the container's walls, not the host's. `enter` takes, in this order:

1. the seccomp filters of a process of the container (read with ptrace, before anything
   else: the process is stopped for an instant);
2. its cgroups, every hierarchy (`charge.join`): the container's limits and accounting;
3. its namespaces, mount to user (`NAMESPACES`: the user namespace last, as host root may
   join every other one first), then a fork: the pid namespace is its children's;
4. in the child: the container's root (uid and gid 0 of its user namespace, no
   supplementary groups), no new privileges, the filters.

The supervisor's helpers join the same namespaces (`supervisor._help`), but they need what a
filter would refuse (mount(2) is supervised, not allowed, in the container's own filter).
"""

from __future__ import annotations

import contextlib
import os

from eci.runtime.confine import charge, seccomp
from eci.runtime.linux import mounts
from eci.runtime.linux.constants import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
)

#: a process's namespaces, in the order they are joined: the user namespace last
NAMESPACES = (
    ("ns/mnt", CLONE_NEWNS),
    ("ns/net", CLONE_NEWNET),
    ("ns/ipc", CLONE_NEWIPC),
    ("ns/uts", CLONE_NEWUTS),
    ("ns/cgroup", CLONE_NEWCGROUP),
    ("ns/pid", CLONE_NEWPID),
    ("ns/user", CLONE_NEWUSER),
)


def enter(pid: int, proc: int) -> int | None:
    """Become a process of the container that process `pid` (its /proc entry open as `proc`,
    checked by the caller to be the container's) belongs to. Returns None in the confined
    child; in this process, once the child is gone, its exit status (128 + signal if
    killed). Raises OSError when any step fails: nothing then runs unconfined."""
    filters = seccomp.filters_of(pid)
    charge.join(proc, charge.host_mount_points())
    for name, kind in NAMESPACES:
        ns = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
        try:
            mounts.setns(ns, kind)
        finally:
            os.close(ns)
    child = os.fork()
    if child:
        _, status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(status)
        return code if code >= 0 else 128 - code
    try:
        with contextlib.suppress(PermissionError):  # setgroups denied in its user namespace
            os.setgroups([])
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        os.chdir("/")
        seccomp.no_new_privileges()
        for program in filters:
            seccomp.install(program)
    except BaseException as exc:  # never unconfined: the parent reports the failure
        os.write(2, f"eci: cannot confine the process: {exc}\n".encode())
        os._exit(1)
    return None
