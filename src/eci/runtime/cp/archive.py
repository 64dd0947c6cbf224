"""`docker cp` into a running eci container, done inside the container as its root.

dockerd extracts an upload (`PUT /containers/{id}/archive`) through the container's root
filesystem as host root. Under eci that is an overlay over idmapped layers, where host uid 0
has no id: every write fails with EOVERFLOW. The proxy runs this instead
(`entry.py --eci-extract PID ID PATH NO-OVERWRITE-DIR-NON-DIR CHOWN-TO`, the archive on
stdin): it becomes one of the container's processes (`confine.enter`: the container's
seccomp filters, cgroups and namespaces, its root, no new privileges) and extracts the
archive with the semantics of dockerd's endpoint — member names relative to the
destination, the archive's owners kept (ids of the container's namespace), or, for `docker
cp -a` into a container with a configured user, every file given to that user (looked up in
the container's own /etc/passwd and /etc/group); no directory replaced by a non-directory (or
the reverse) when asked. Whatever the archive holds, and whatever goes wrong in this code,
it can do no more than a process of the container could: binds stay as the container sees
them (`:ro` included), nothing of the host outside the container is reachable, and the
container's limits and system call filter hold.

Exit status: 0 done; NOT_FOUND, BAD_REQUEST, FAILED with the reason on stderr (the proxy
answers 404, 400, 500 with it, as dockerd would).
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tarfile

from eci.runtime.confine.enter import enter

FAILED, NOT_FOUND, BAD_REQUEST = 1, 2, 3
STATUS = {NOT_FOUND: 404, BAD_REQUEST: 400}

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO


class ArchiveError(Exception):
    """Why the upload was not extracted, with the exit status that says how to answer."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def join_container(pid: int, container_id: str) -> int | None:
    """Become a process of container `container_id`, of which `pid` is a process, as its
    root (`confine.enter`: its seccomp filters, cgroups, namespaces, no new privileges).
    Returns None in the confined process; here, its exit status. Refuses a process that is
    not in the container's cgroup or that shares this process's user namespace (a pid
    reused by a host process, or a container without a user namespace of its own)."""
    try:
        proc = os.open(f"/proc/{pid}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        user = os.stat("ns/user", dir_fd=proc)
        fd = os.open("cgroup", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
        with os.fdopen(fd) as f:
            in_container = container_id in f.read()
    except OSError as exc:
        raise ArchiveError(FAILED, f"container {container_id} is not running: {exc}") from exc
    ours = os.stat("/proc/self/ns/user")
    if not in_container or (ours.st_dev, ours.st_ino) == (user.st_dev, user.st_ino):
        raise ArchiveError(
            FAILED, f"process {pid} is not a process of eci container {container_id}"
        )
    try:
        return enter(pid, proc)
    except OSError as exc:
        raise ArchiveError(FAILED, f"cannot enter container {container_id}: {exc}") from exc


def member_name(name: str) -> str:
    """A member's path relative to the destination; '' for the destination itself."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(BAD_REQUEST, f"archive member {name!r} points outside the destination")
    return "/".join(parts)


def _make_room(target: str, member: tarfile.TarInfo, no_overwrite_dir_non_dir: bool) -> None:
    """What dockerd does before writing a member over an existing path."""
    try:
        existing = os.lstat(target)
    except FileNotFoundError:
        return
    is_dir = stat.S_ISDIR(existing.st_mode)
    if is_dir and member.isdir():
        return
    if no_overwrite_dir_non_dir and is_dir != member.isdir():
        what, by = ("directory", "non-directory") if is_dir else ("non-directory", "directory")
        raise ArchiveError(BAD_REQUEST, f"cannot overwrite {what} {target!r} with {by}")
    if is_dir:
        shutil.rmtree(target)
    else:
        os.unlink(target)


def _ids(path: str, name: str) -> tuple[int, int] | None:
    """(id, primary gid or -1) of `name` in a passwd- or group-format file, or None."""
    try:
        with open(path) as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
                    gid = fields[3] if len(fields) > 3 and fields[3].isdigit() else "-1"
                    return int(fields[2]), int(gid)
    except OSError:
        pass
    return None


def lookup_user(spec: str, root: str = "/") -> tuple[int, int]:
    """uid and gid of a container user spec (`user`, `uid`, `user:group`, `uid:gid`), read in
    the container's /etc/passwd and /etc/group as dockerd reads them."""
    user, _, group = spec.partition(":")
    found = _ids(os.path.join(root, "etc/passwd"), user)
    if found is not None:
        uid, gid = found[0], max(found[1], 0)
    elif user.isdigit():
        uid, gid = int(user), 0
    else:
        raise ArchiveError(
            FAILED, f"unable to find user {user}: no matching entries in passwd file"
        )
    if group:
        named = _ids(os.path.join(root, "etc/group"), group)
        if named is not None:
            gid = named[0]
        elif group.isdigit():
            gid = int(group)
        else:
            raise ArchiveError(
                FAILED, f"unable to find group {group}: no matching entries in group file"
            )
    return uid, gid


def extract(
    stream: BinaryIO,
    destination: str,
    no_overwrite_dir_non_dir: bool,
    owner: tuple[int, int] | None = None,
) -> int:
    """Extract the tar on `stream` below `destination`, every member given to `owner` if set;
    returns the number of members."""
    try:
        if not stat.S_ISDIR(os.stat(destination).st_mode):
            raise ArchiveError(BAD_REQUEST, "extraction point is not a directory")
    except FileNotFoundError as exc:
        raise ArchiveError(
            NOT_FOUND, f"Could not find the file {destination} in container"
        ) from exc
    destination = os.path.realpath(destination)
    count = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|*", errorlevel=2) as tar:
            for member in tar:
                name = member_name(member.name)
                if not name:
                    continue
                member.name = name
                if member.islnk():
                    member.linkname = member_name(member.linkname)
                if owner is not None:
                    member.uid, member.gid = owner
                _make_room(os.path.join(destination, name), member, no_overwrite_dir_non_dir)
                tar.extract(member, destination, numeric_owner=True)
                count += 1
    except (tarfile.TarError, OSError) as exc:
        raise ArchiveError(FAILED, f"Error processing tar file: {exc}") from exc
    return count


def main(argv: list[str]) -> int:
    """`PID ID PATH NO-OVERWRITE-DIR-NON-DIR (0/1) CHOWN-TO ("": keep)`; tar on stdin."""
    try:
        pid, container_id, path, no_overwrite, chown_to = argv
        status = join_container(int(pid), container_id)
        if status is not None:  # the confined child did the work and said why it failed
            return status
        owner = lookup_user(chown_to) if chown_to else None
        extract(sys.stdin.buffer, path, no_overwrite == "1", owner)
    except ArchiveError as exc:
        sys.stderr.write(f"{exc}\n")
        return exc.code
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"eci: cannot copy into the container: {exc}\n")
        return FAILED
    return 0
