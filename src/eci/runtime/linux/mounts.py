"""Mount syscalls the shim needs, through ctypes (Python 3.11 has no wrappers for them).

- `userns_fd(base)`: a user namespace mapping 0..65535 -> base.., to idmap mounts with
  (`userns_with_maps` for any other maps);
- `clone_mount(src, dst, userns, readonly)`: open_tree(OPEN_TREE_CLONE) + mount_setattr
  (MOUNT_ATTR_IDMAP and/or MOUNT_ATTR_RDONLY) + move_mount: a detached copy of a mount, attached
  at `dst`. A read-only copy made here, in the host namespace, is locked read-only in the
  container's less privileged mount namespace (remount rw -> EPERM);
- `mount_overlay_as(base, …)`: overlayfs over idmapped layers, mounted with fsuid/fsgid = base
  and full capabilities, because overlayfs does its upper-dir work with the mounter's
  credentials and host uid 0 is not representable in the idmapped upper (EOVERFLOW).
"""

from __future__ import annotations

import contextlib
import ctypes
import os

from eci.runtime.linux import libc
from eci.runtime.linux.constants import (
    AT_EMPTY_PATH,
    AT_FDCWD,
    AT_RECURSIVE,
    CLONE_NEWUSER,
    FSCONFIG_CMD_CREATE,
    FSCONFIG_SET_FLAG,
    FSCONFIG_SET_STRING,
    LINUX_CAPABILITY_VERSION_3,
    MNT_DETACH,
    MOUNT_ATTR_IDMAP,
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_STRICTATIME,
    MOVE_MOUNT_F_EMPTY_PATH,
    MOVE_MOUNT_T_EMPTY_PATH,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_STRICTATIME,
    OPEN_TREE_CLOEXEC,
    OPEN_TREE_CLONE,
    RESOLVE_BENEATH,
    RESOLVE_NO_SYMLINKS,
    RESOLVE_NO_XDEV,
)
from eci.runtime.linux.mountinfo import mounts_under

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

#: mount(2) flags -> the fsmount(2) attributes that mean the same
_MS_TO_ATTR = {
    MS_RDONLY: MOUNT_ATTR_RDONLY,
    MS_NOSUID: MOUNT_ATTR_NOSUID,
    MS_NODEV: MOUNT_ATTR_NODEV,
    MS_NOEXEC: MOUNT_ATTR_NOEXEC,
    MS_NOATIME: MOUNT_ATTR_NOATIME,
    MS_NODIRATIME: MOUNT_ATTR_NODIRATIME,
    MS_STRICTATIME: MOUNT_ATTR_STRICTATIME,
}


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def setns(fd: int, nstype: int) -> None:
    """Join the namespace `fd` refers to (Python 3.11 has no os.setns)."""
    libc.call("setns", fd, nstype)


def userns_fd(base: int, size: int = 65536) -> int:
    """fd of a new user namespace with uid/gid maps `0 base size` (its holder process exits)."""
    return userns_with_maps(f"0 {base} {size}", f"0 {base} {size}")


def userns_with_maps(uid_map: str, gid_map: str) -> int:
    """fd of a new user namespace with these uid and gid maps (its holder process exits)."""
    unshare = libc.handle().unshare  # looked up before the fork: no dlopen in the child
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: enter a new userns, wait for the parent to map it, exit
        try:
            os.close(ready_r)
            os.close(done_w)
            ok = unshare(CLONE_NEWUSER) == 0
            os.write(ready_w, b"1" if ok else b"0")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise OSError("unshare(CLONE_NEWUSER) failed in the helper process")
        for name, lines in (("uid_map", uid_map), ("gid_map", gid_map)):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(f"{lines}\n")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)  # the helper reads EOF and exits
        with contextlib.suppress(ChildProcessError):  # the runtime server reaps by SIG_IGN
            os.waitpid(pid, 0)


def open_beneath(root: str | Path, relative: str) -> int:
    """O_PATH fd of `root/relative`, reached without a symlink, without leaving `root` and
    without crossing a mount point (openat2 RESOLVE_BENEATH|NO_SYMLINKS|NO_XDEV). A container
    that can write below a volume cannot redirect eci elsewhere, not even by swapping a
    directory for a symlink between a check and the mount; a volume that is itself a mount
    (a bind of a host path, a tmpfs) raises OSError(EXDEV)."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        how = _OpenHow(
            os.O_PATH | os.O_CLOEXEC, 0, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV
        )
        return libc.syscall(
            "openat2",
            root_fd,
            os.fsencode(relative),
            ctypes.byref(how),
            ctypes.sizeof(how),
            what=f"openat2 {relative!r} beneath {root}",
        )
    finally:
        os.close(root_fd)


def clone_mount(
    source: str | Path,
    target: str | Path,
    *,
    userns: int | None = None,
    readonly: bool = False,
    recursive: bool = False,
    source_fd: int | None = None,
) -> None:
    """Attach at `target` a copy of the mount at `source` (or of the O_PATH `source_fd`),
    idmapped and/or read-only."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    what = f"open_tree {source}"
    if source_fd is not None:
        fd = libc.syscall("open_tree", source_fd, b"", flags | AT_EMPTY_PATH, what=what)
    else:
        fd = libc.syscall("open_tree", AT_FDCWD, os.fsencode(source), flags, what=what)
    try:
        attr_set = (MOUNT_ATTR_IDMAP if userns is not None else 0) | (
            MOUNT_ATTR_RDONLY if readonly else 0
        )
        if attr_set:
            attr = _MountAttr(attr_set, 0, 0, userns if userns is not None else 0)
            setattr_flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
            libc.syscall(
                "mount_setattr",
                fd,
                b"",
                setattr_flags,
                ctypes.byref(attr),
                ctypes.sizeof(attr),
                what=f"mount_setattr {source}",
            )
        libc.syscall(
            "move_mount",
            fd,
            b"",
            AT_FDCWD,
            os.fsencode(target),
            MOVE_MOUNT_F_EMPTY_PATH,
            what=f"move_mount {source} -> {target}",
        )
    finally:
        os.close(fd)


def fresh_mount(fstype: str, flags: int, options: str | None) -> int:
    """A new, detached mount of `fstype` (fsopen + fsconfig + fsmount): its fd. It belongs to
    the namespaces of the caller at this point (pid for procfs, net for sysfs)."""
    fs = libc.syscall("fsopen", fstype.encode(), 0, what=f"fsopen {fstype}")
    try:
        for option in (options or "").split(","):
            key, sep, value = option.partition("=")
            if not key:
                continue
            if sep:
                command, value_arg = FSCONFIG_SET_STRING, value.encode()
            else:
                command, value_arg = FSCONFIG_SET_FLAG, None
            what = f"fsconfig {fstype} {key}"
            libc.syscall("fsconfig", fs, command, key.encode(), value_arg, 0, what=what)
        libc.syscall("fsconfig", fs, FSCONFIG_CMD_CREATE, None, None, 0)
        attributes = sum(attr for flag, attr in _MS_TO_ATTR.items() if flags & flag)
        mount = libc.syscall("fsmount", fs, 0, attributes, what=f"fsmount {fstype}")
    finally:
        os.close(fs)
    os.set_inheritable(mount, False)
    return int(mount)


def attach(mount: int, target: int) -> None:
    """Attach detached mount `mount` on the O_PATH fd `target`."""
    flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
    libc.syscall("move_mount", mount, b"", target, b"", flags)


def _raise_effective_caps() -> None:
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    libc.call("capget", ctypes.byref(header), data)
    for half in data:
        half.effective = half.permitted
    libc.call("capset", ctypes.byref(header), data)


def mount_overlay_as(
    base: int,
    target: str | Path,
    workdir_base: str | Path,
    lowers: list[str],
    upper: str,
    work: str,
    extra: str = "",
) -> None:
    """Mount overlayfs at `target` with credentials inside the container's range.

    `lowers`, `upper` and `work` are relative to `workdir_base` (the mount is made from there,
    as dockerd does, so long layer lists fit in one page of mount options)."""
    options = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
    if extra:
        options += f",{extra}"
    cwd = os.open(".", os.O_RDONLY | os.O_CLOEXEC)
    os.chdir(workdir_base)
    own = libc.handle()  # setfsuid and setfsgid return the previous id: nothing to check
    own.setfsuid(base)
    own.setfsgid(base)
    try:
        _raise_effective_caps()  # setfsuid to non-zero dropped the fs capabilities
        libc.call(
            "mount",
            b"overlay",
            os.fsencode(target),
            b"overlay",
            0,
            options.encode(),
            what=f"mount overlay at {target}",
        )
    finally:
        own.setfsuid(0)
        own.setfsgid(0)
        os.fchdir(cwd)
        os.close(cwd)


def unmount(path: str | Path, detach: bool = False, flags: int = 0) -> None:
    """umount2 with `flags` (MNT_DETACH added when `detach`)."""
    flags |= MNT_DETACH if detach else 0
    libc.call("umount2", os.fsencode(path), flags, what=f"umount {path}")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: bytes | None
) -> None:
    """mount(2) itself (the supervisor makes a container's calls with it)."""

    def encode(text: str | None) -> bytes | None:
        return None if text is None else text.encode("utf-8", "surrogateescape")

    args = (encode(source), encode(target), encode(fstype), flags, data)
    libc.call("mount", *args, what=f"mount {target}")


def detach_all_under(*roots: str | Path) -> list[str]:
    """Lazily unmount every mount at or below any of `roots`, deepest first (stacked mounts on
    one point need several passes); returns what was detached. Nothing outside is touched."""
    detached: list[str] = []
    for _ in range(8):
        points = set(mounts_under(*roots))
        if not points:
            break
        for point in sorted(points, key=lambda p: p.count("/"), reverse=True):
            try:
                unmount(point, detach=True)
            except OSError:
                continue
            detached.append(point)
    return detached
