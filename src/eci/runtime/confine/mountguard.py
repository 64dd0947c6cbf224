"""Which mount(2)/umount2(2) calls of a container eci performs and which it refuses (pure).

Theory of operation: in its own user namespace container root may mount and unmount, and the
mounts runc made in that namespace are not locked by the kernel. The supervisor
(`runtime/confine/supervisor.py`) receives every mount and umount2 of a container through seccomp
user notification, resolves the paths inside the container, and asks `decide` what to do; it
then performs the call itself, on the very objects it checked (no time-of-check gap).

A mount is *protected* when it is one the runtime set up: every mount of the container's
namespace when its first process was registered, plus the masks the supervisor lays over a
fresh procfs. A protected mount is named by an identity that survives `unshare -m`, `mount
--rbind` and `pivot_root`: its device and root in its filesystem, and where it sits inside its
parent's filesystem (not the path, which those calls change).

Rules (what "immutable" means to a container):
- a protected mount cannot be unmounted or moved;
- a protected read-only mount cannot be remounted read-write (read-write → read-only can);
- a protected mount cannot be covered, except by a tmpfs, by /dev/null or by another bind of
  what it already is (a runc inside the container masks the same paths again);
- a non-recursive bind of a tree with protected mounts below would copy the tree without them
  (an unmasked /proc): refused; a recursive bind copies them, and the copies keep the identity;
- a fresh procfs or sysfs is mounted, then masked and virtualized like the container's own
  (`FRESH_MASKS`).
"""

from __future__ import annotations

import errno as errnos
import posixpath

from eci.contract.masks import (
    LXCFS_PROC_FILES,
    LXCFS_SYS_FILES,
    MASKED_PROC_DIRS,
    MASKED_PROC_FILES,
    MASKED_SYS_DIRS,
)
from eci.runtime.linux.constants import (
    MS_BIND,
    MS_MGC_MSK,
    MS_MGC_VAL,
    MS_MOVE,
    MS_PROPAGATION,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
)
from eci.runtime.linux.mountinfo import is_under, unescape

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

#: the propagation flags (one of them makes a call a propagation change)
PROPAGATION = MS_PROPAGATION
#: kinds of mount(2) call, in the kernel's order of precedence (do_mount)
REMOUNT, BIND, PROPAGATE, MOVE, NEW = "remount", "bind", "propagate", "move", "new"

LXCFS_TYPE = "fuse.lxcfs"
#: what a fresh procfs or sysfs gets, as the container's own have it (eci.contract.masks):
#: (where the container's own is mounted, lxcfs files bound from there, files masked with
#: /dev/null, directories masked with an empty read-only tmpfs)
FRESH_MASKS = {
    "proc": ("/proc", LXCFS_PROC_FILES, MASKED_PROC_FILES, MASKED_PROC_DIRS),
    "sysfs": ("/sys", LXCFS_SYS_FILES, (), MASKED_SYS_DIRS),
}


class MountEntry:
    """One line of /proc/<pid>/mountinfo; path fields kept escaped (no whitespace in them)."""

    __slots__ = ("dev", "fstype", "mount_id", "mountpoint", "options", "parent_id", "root", "super")

    def __init__(self, line: str) -> None:
        fields = line.split()
        sep = fields.index("-", 6)
        self.mount_id = int(fields[0])
        self.parent_id = int(fields[1])
        self.dev = fields[2]
        self.root = fields[3]
        self.mountpoint = fields[4]
        self.options = fields[5].split(",")
        self.fstype = fields[sep + 1]
        self.super = fields[sep + 3].split(",") if len(fields) > sep + 3 else []

    @property
    def path(self) -> str:
        """The mount point, unescaped (as readlink of an fd on it shows it)."""
        return unescape(self.mountpoint)

    @property
    def read_only(self) -> bool:
        return "ro" in self.options or "ro" in self.super


def parse_mountinfo(text: str) -> dict[int, MountEntry]:
    entries = {}
    for line in text.splitlines():
        if line.strip():
            entry = MountEntry(line)
            entries[entry.mount_id] = entry
    return entries


def identity(entry: MountEntry, entries: Mapping[int, MountEntry]) -> str:
    """Device, root in its filesystem, parent's device and place in the parent's filesystem."""
    parent = entries.get(entry.parent_id)
    if parent is None or parent is entry:
        return f"{entry.dev} {entry.root} - {entry.mountpoint}"
    rest = entry.mountpoint[len(parent.mountpoint.rstrip("/")) :]
    place = (parent.root.rstrip("/") + rest).rstrip("/") or "/"
    return f"{entry.dev} {entry.root} {parent.dev} {place}"


def identities(entries: Mapping[int, MountEntry]) -> set[str]:
    """What to protect when a container's first process is registered: all its mounts."""
    return {identity(entry, entries) for entry in entries.values()}


class Place:
    """A path the supervisor opened for a call: the mount it lies in and whether it is that
    mount's root (what umount2, a remount or an over-mount act on)."""

    __slots__ = ("entry", "is_root", "path")

    def __init__(self, path: str, entry: MountEntry | None) -> None:
        self.path = path
        self.entry = entry
        self.is_root = entry is not None and entry.path == path


def _null_device(place: Place) -> bool:
    """A bind of the host's /dev/null (what every container's /dev/null is)."""
    entry = place.entry
    return (
        place.is_root and entry is not None and (entry.fstype, entry.root) == ("devtmpfs", "/null")
    )


def effective_flags(flags: int) -> int:
    """mount(2)'s flags as the kernel reads them (without the old magic number)."""
    return flags & ~MS_MGC_MSK if flags & MS_MGC_MSK == MS_MGC_VAL else flags


def mount_kind(flags: int) -> str:
    flags = effective_flags(flags)
    if flags & MS_REMOUNT:
        return REMOUNT
    if flags & MS_BIND:
        return BIND
    if flags & PROPAGATION:
        return PROPAGATE
    if flags & MS_MOVE:
        return MOVE
    return NEW


class Verdict:
    """`error` 0: perform the call; else refuse with that errno. `fresh`: mask and
    virtualize the procfs or sysfs just mounted, as the container's own are (FRESH_MASKS)."""

    __slots__ = ("error", "fresh", "reason")

    def __init__(self, error: int = 0, reason: str = "", fresh: bool = False) -> None:
        self.error = error
        self.reason = reason
        self.fresh = fresh

    def __repr__(self) -> str:
        return f"Verdict(error={self.error}, reason={self.reason!r}, fresh={self.fresh})"


PERFORM = Verdict()


def _refuse(reason: str) -> Verdict:
    return Verdict(errnos.EPERM, reason)


class Guard:
    """The rules, over one container's mount table and protected identities."""

    def __init__(self, entries: Mapping[int, MountEntry], protected: Collection[str]) -> None:
        self.entries = entries
        self.protected = protected

    def _protected_root(self, place: Place | None) -> bool:
        return (
            place is not None
            and place.is_root
            and place.entry is not None
            and identity(place.entry, self.entries) in self.protected
        )

    def _copy_of_read_only(self, entry: MountEntry) -> bool:
        """A bind of (a part of) a protected read-only mount: made read-only by the runtime
        too, wherever it was copied to."""
        return any(
            other.read_only
            and other.dev == entry.dev
            and is_under(unescape(entry.root), unescape(other.root))
            and identity(other, self.entries) in self.protected
            for other in self.entries.values()
            if other is not entry
        )

    def covers_protected(self, place: Place) -> bool:
        """Runtime mounts lie below this place: a view of it that skips them (a non-recursive
        bind, an overlay layer) would show what they cover."""
        return self._protected_below(place.path)

    def _protected_below(self, path: str) -> bool:
        return any(
            entry.path != path
            and is_under(entry.path, path)
            and identity(entry, self.entries) in self.protected
            for entry in self.entries.values()
        )

    def umount(self, target: Place) -> Verdict:
        if self._protected_root(target):
            return _refuse(f"unmount of {target.path}, mounted by the runtime")
        return PERFORM

    def mount(self, flags: int, fstype: str | None, target: Place, source: Place | None) -> Verdict:
        """`source` is the opened source for a bind or a move (None otherwise)."""
        flags = effective_flags(flags)
        kind = mount_kind(flags)
        if kind == REMOUNT:
            entry = target.entry
            if (
                target.is_root
                and entry is not None
                and entry.read_only
                and not flags & MS_RDONLY
                and (self._protected_root(target) or self._copy_of_read_only(entry))
            ):
                return _refuse(f"read-write remount of {target.path}, read-only by the runtime")
            return PERFORM
        if kind == PROPAGATE:
            return PERFORM
        if kind == MOVE:
            if self._protected_root(source):
                assert source is not None
                return _refuse(f"move of {source.path}, mounted by the runtime")
            return self._cover(target, fstype, source)
        if kind == BIND:
            if source is None:
                return Verdict(errnos.EINVAL, "bind without a source")
            if not flags & MS_REC and self._protected_below(source.path):
                return _refuse(f"non-recursive bind of {source.path} would unmask what is below")
            return self._cover(target, fstype, source)
        verdict = self._cover(target, fstype, None)
        if verdict.error == 0 and fstype in FRESH_MASKS:
            return Verdict(fresh=True)
        return verdict

    def _cover(self, target: Place, fstype: str | None, source: Place | None) -> Verdict:
        """May something be mounted on `target`? Not over a protected mount, but for masks."""
        if not self._protected_root(target):
            return PERFORM
        covered = target.entry
        assert covered is not None
        if source is None and fstype == "tmpfs":
            return PERFORM
        if source is not None and _null_device(source):  # runc masks again (or gets ENOTDIR)
            return PERFORM
        if (
            source is not None
            and source.is_root
            and source.entry is not None
            and (source.entry.dev, source.entry.root) == (covered.dev, covered.root)
        ):
            return PERFORM
        return _refuse(f"mount over {target.path}, mounted by the runtime")


#: overlayfs options naming directories (a list, ':'-separated, for lowerdir)
OVERLAY_DIRS = ("lowerdir", "upperdir", "workdir", "datadir", "lowerdir+", "datadir+")


def absolute_overlay_options(data: str, cwd: str) -> str:
    """Relative directories in overlayfs options made absolute from the caller's cwd: the
    supervisor mounts from elsewhere, and the kernel would resolve them from there."""
    options = []
    for option in data.split(","):
        key, sep, value = option.partition("=")
        if sep and key in OVERLAY_DIRS and value:
            value = ":".join(
                part if part.startswith("/") or not part else posixpath.join(cwd, part)
                for part in value.split(":")
            )
        options.append(f"{key}{sep}{value}")
    return ",".join(options)


def overlay_layers(data: str) -> list[str]:
    """The directories overlayfs options name (lower layers, upper and work dirs)."""
    layers = []
    for option in data.split(","):
        key, sep, value = option.partition("=")
        if sep and key in OVERLAY_DIRS and value:
            layers += [part for part in value.split(":") if part]
    return layers
