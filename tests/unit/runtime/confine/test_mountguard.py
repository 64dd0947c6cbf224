"""`mountguard`: mountinfo parsing, mount identities and the Guard's rules, on mountinfo texts
written by hand the way the kernel prints them for a container runc has set up.

The identity of a mount must not change when the mount table is copied (`unshare -m`), when a
tree is copied (`mount --rbind`: the children of the copy are named like the originals'), or when
the root moves (`pivot_root`: every path changes); it must differ for the same file bound at
another place.

Hypothesis invariants:
- test_identities_survive_unshare / test_rbind_children_keep_identity: on random mount trees,
  renumbering every mount, or copying any subtree elsewhere, keeps the identities of the
  (copied) children;
- test_umount_refused_exactly_when_protected: for any protected set and any umount target, the
  verdict is EPERM when the target is the root of a protected mount, and "perform" otherwise.

Gaps found in the code while writing these are at the end (fixed since; kept as tests).
"""

from __future__ import annotations

import errno
import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eci.runtime.confine.mountguard import (
    BIND,
    MOVE,
    NEW,
    PROPAGATE,
    REMOUNT,
    Guard,
    MountEntry,
    Place,
    Verdict,
    identities,
    identity,
    mount_kind,
    overlay_layers,
    parse_mountinfo,
)
from eci.runtime.linux.constants import (
    MS_BIND,
    MS_MOVE,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_UNBINDABLE,
)
from eci.runtime.linux.mountinfo import is_under

MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
MS_MGC_VAL = 0xC0ED0000  # the pre-2.4 "magic" in the top 16 bits, which the kernel discards

UDEV = "rw,size=4010412k,nr_inodes=1002603,mode=755,inode64"
# What /proc/<init>/mountinfo shows for `docker run -v /srv:/data:ro busybox` once runc has set
# the container up (paths as the container's root sees them): the root overlay whose parent is
# outside the container's root, /dev/null (bound from the host's devtmpfs) over the masked
# files, read-only tmpfs over the masked directories, /proc/bus and /proc/sysrq-trigger bound
# read-only over themselves, an lxcfs file, and a mount point with a space in its name.
CONTAINER = f"""\
1290 1173 0:62 / / rw master:312 - overlay overlay rw,lowerdir=/l/A,upperdir=/o/u,workdir=/o/w
1291 1290 0:65 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1292 1290 0:66 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755,uid=165536,gid=165536
1293 1292 0:67 / /dev/pts rw,nosuid,noexec - devpts devpts rw,gid=165541,mode=620,ptmxmode=666
1294 1290 0:68 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
1295 1294 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate
1296 1292 0:64 / /dev/mqueue rw,nosuid,nodev,noexec,relatime - mqueue mqueue rw
1297 1292 0:69 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k,uid=165536
1298 1290 254:1 /var/lib/eci/c/3f4e/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda1 rw
1299 1290 254:1 /srv /data ro,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
1300 1292 0:5 /null /dev/null rw,nosuid,noexec - devtmpfs udev {UDEV}
1301 1292 0:5 /zero /dev/zero rw,nosuid,noexec - devtmpfs udev {UDEV}
1302 1291 0:5 /null /proc/kcore rw,nosuid - devtmpfs udev {UDEV}
1303 1291 0:5 /null /proc/keys rw,nosuid - devtmpfs udev {UDEV}
1304 1291 0:70 / /proc/acpi ro,relatime - tmpfs tmpfs ro,size=0k,uid=165536,gid=165536
1305 1291 0:65 /bus /proc/bus ro,nosuid,nodev,noexec,relatime - proc proc rw
1306 1291 0:65 /sysrq-trigger /proc/sysrq-trigger ro,nosuid,nodev,noexec,relatime - proc proc rw
1307 1294 0:71 / /sys/firmware ro,relatime - tmpfs tmpfs ro,size=0k,uid=165536,gid=165536
1308 1291 0:45 /proc/meminfo /proc/meminfo rw,nosuid - fuse.lxcfs lxcfs rw,user_id=0,allow_other
1309 1290 0:72 / /srv/my\\040data rw,relatime shared:5 master:3 - tmpfs tmpfs rw,inode64
"""
# Mounts the container makes after its first process was registered (never protected).
LATER = """\
1400 1290 0:80 / /mnt/scratch rw,relatime - tmpfs tmpfs rw
1401 1290 0:81 / /mnt/ro ro,relatime - tmpfs tmpfs ro
"""


def entries_of(text: str) -> dict[int, MountEntry]:
    return parse_mountinfo(text)


PROTECTED = frozenset(identities(entries_of(CONTAINER)))


def renumber(text: str, offset: int) -> str:
    """The same table with every mount id (and parent id) moved by `offset`: what the copy
    `unshare -m` makes looks like, down to the root's parent (outside the root, unlisted)."""
    lines = []
    for line in text.splitlines():
        mount_id, parent_id, rest = line.split(" ", 2)
        lines.append(f"{int(mount_id) + offset} {int(parent_id) + offset} {rest}")
    return "\n".join(lines) + "\n"


def by_path(entries: dict[int, MountEntry], path: str) -> MountEntry:
    """The topmost mount at `path` (the last one mounted there)."""
    found = [e for e in entries.values() if e.path == path]
    assert found, path
    return max(found, key=lambda e: e.mount_id)


def place(entries: dict[int, MountEntry], path: str) -> Place:
    """`path` as the supervisor opens it: in the deepest (topmost) mount that contains it."""
    containing = [e for e in entries.values() if is_under(path, e.path)]
    entry = max(containing, key=lambda e: (len(e.path), e.mount_id))
    return Place(path, entry)


def identity_at(entries: dict[int, MountEntry], path: str) -> str:
    return identity(by_path(entries, path), entries)


def guard(*extra: str) -> tuple[Guard, dict[int, MountEntry]]:
    """The container's table plus `extra` lines, guarded by what was protected at its start."""
    entries = entries_of(CONTAINER + LATER + "".join(extra))
    return Guard(entries, PROTECTED), entries


def assert_refused(verdict: Verdict, code: int = errno.EPERM) -> None:
    assert verdict.error == code, verdict
    assert verdict.reason
    assert not verdict.fresh


def assert_performed(verdict: Verdict, fresh: bool = False) -> None:
    assert verdict.error == 0, verdict
    assert verdict.fresh is fresh


# --- MountEntry and parse_mountinfo ---


def test_entry_fields() -> None:
    entry = MountEntry(
        "1299 1290 254:1 /srv /data ro,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro"
    )
    assert (entry.mount_id, entry.parent_id, entry.dev) == (1299, 1290, "254:1")
    assert (entry.root, entry.mountpoint, entry.path) == ("/srv", "/data", "/data")
    assert entry.options == ["ro", "relatime"]
    assert entry.fstype == "ext4"
    assert entry.super == ["rw", "errors=remount-ro"]
    assert entry.read_only


@pytest.mark.parametrize(
    "optional",
    ["", "shared:1", "master:312", "shared:5 master:3", "shared:5 master:3 propagate_from:2"],
    ids=["none", "shared", "master", "two", "three"],
)
def test_optional_fields_before_the_separator(optional: str) -> None:
    line = f"36 35 98:0 /mnt1 /mnt2 rw,noatime {optional} - ext3 /dev/root rw,errors=continue"
    entry = MountEntry(" ".join(line.split()))
    assert (entry.root, entry.mountpoint) == ("/mnt1", "/mnt2")
    assert entry.fstype == "ext3"
    assert entry.super == ["rw", "errors=continue"]


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ("/srv/my\\040data", "/srv/my data"),
        ("/a\\011b", "/a\tb"),
        ("/a\\012b", "/a\nb"),
        ("/back\\134slash", "/back\\slash"),
        ("/\\040\\040", "/  "),
        ("/plain", "/plain"),
    ],
    ids=["space", "tab", "newline", "backslash", "only-spaces", "plain"],
)
def test_escaped_mount_point(field: str, path: str) -> None:
    entry = MountEntry(f"40 1 0:72 / {field} rw - tmpfs tmpfs rw")
    assert entry.mountpoint == field  # kept escaped: identities compare the kernel's text
    assert entry.path == path


def test_escaped_root_is_kept_escaped() -> None:
    entry = MountEntry("41 1 254:1 /home/a\\040b /data rw - ext4 /dev/vda1 rw")
    assert entry.root == "/home/a\\040b"


@pytest.mark.parametrize(
    ("options", "super_options", "read_only"),
    [
        ("ro,relatime", "rw", True),
        ("rw,relatime", "ro", True),
        ("ro", "ro", True),
        ("rw,nosuid", "rw,errors=remount-ro", False),
        ("rw", "rw,rootcontext=ro", False),
    ],
    ids=["mount-ro", "super-ro", "both-ro", "rw", "ro-only-inside-a-value"],
)
def test_read_only_from_mount_or_super_options(
    options: str, super_options: str, read_only: bool
) -> None:
    entry = MountEntry(f"50 1 0:68 / /sys {options} - sysfs sysfs {super_options}")
    assert entry.read_only is read_only


def test_entry_without_super_options() -> None:
    entry = MountEntry("50 1 0:68 / /x ro - sysfs sysfs")
    assert entry.super == []
    assert entry.read_only


def test_parse_keys_by_mount_id_and_skips_blank_lines() -> None:
    entries = parse_mountinfo("\n" + CONTAINER + "\n   \n")
    assert len(entries) == len(CONTAINER.splitlines()) == 20
    assert all(entry.mount_id == key for key, entry in entries.items())
    assert entries[1308].fstype == "fuse.lxcfs"
    assert entries[1309].path == "/srv/my data"
    assert entries[1290].parent_id not in entries  # the root's parent is outside the root


def test_parse_empty() -> None:
    assert parse_mountinfo("") == {}


# --- identity ---


def test_identity_names_device_root_and_place_in_the_parent() -> None:
    entries = entries_of(CONTAINER)
    assert identity(entries[1291], entries) == "0:65 / 0:62 /proc"
    assert identity(entries[1302], entries) == "0:5 /null 0:65 /kcore"
    assert identity(entries[1305], entries) == "0:65 /bus 0:65 /bus"
    assert identity(entries[1295], entries) == "0:28 / 0:68 /fs/cgroup"
    assert identity(entries[1299], entries) == "254:1 /srv 0:62 /data"
    assert identity(entries[1309], entries) == "0:72 / 0:62 /srv/my\\040data"


def test_identity_of_a_mount_without_listed_parent() -> None:
    entries = entries_of(CONTAINER)
    assert identity(entries[1290], entries) == "0:62 / - /"


def test_identity_of_a_namespace_root_that_is_its_own_parent() -> None:
    entries = parse_mountinfo("1 1 0:2 / / rw - rootfs rootfs rw\n")
    assert identity(entries[1], entries) == "0:2 / - /"


def test_identity_of_a_mount_stacked_on_another() -> None:
    """A tmpfs over the /dev/null mask of /proc/kcore sits at /null in the devtmpfs."""
    entries = entries_of(CONTAINER + "1500 1302 0:90 / /proc/kcore rw - tmpfs tmpfs rw\n")
    assert identity(entries[1500], entries) == "0:90 / 0:5 /null"


def test_identities_of_the_whole_table() -> None:
    entries = entries_of(CONTAINER)
    assert identities(entries) == {identity(e, entries) for e in entries.values()}
    assert len(identities(entries)) == len(entries)  # every mount of a container is distinct


def test_identities_of_nothing() -> None:
    assert identities({}) == set()


def test_same_file_bound_at_another_place_is_another_identity() -> None:
    entries = entries_of(CONTAINER)
    paths = ("/proc/kcore", "/proc/keys", "/dev/null")  # all three are 0:5 /null
    assert len({identity_at(entries, path) for path in paths}) == 3


def test_same_file_bound_under_another_parent_is_another_identity() -> None:
    """/dev/null bound at /kcore of a second, different procfs is not /proc/kcore's mask."""
    entries = entries_of(
        CONTAINER
        + "1600 1290 0:95 / /mnt/q rw - proc proc rw\n"
        + f"1601 1600 0:5 /null /mnt/q/kcore rw - devtmpfs udev {UDEV}\n"
    )
    assert identity_at(entries, "/mnt/q/kcore") != identity_at(entries, "/proc/kcore")


def test_identity_survives_unshare() -> None:
    """`unshare -m` copies every mount with a new id: same devices, roots and places."""
    original = entries_of(CONTAINER)
    copy = entries_of(renumber(CONTAINER, 1000))
    assert set(copy) == {key + 1000 for key in original}
    for key, entry in original.items():
        assert identity(copy[key + 1000], copy) == identity(entry, original)
    assert identities(copy) == identities(original)


# `mount --rbind /proc /mnt/p`: the copy of /proc and of every mount below it.
RBIND_PROC = f"""\
1700 1290 0:65 / /mnt/p rw,nosuid,nodev,noexec,relatime - proc proc rw
1701 1700 0:5 /null /mnt/p/kcore rw,nosuid - devtmpfs udev {UDEV}
1702 1700 0:5 /null /mnt/p/keys rw,nosuid - devtmpfs udev {UDEV}
1703 1700 0:70 / /mnt/p/acpi ro,relatime - tmpfs tmpfs ro,size=0k,uid=165536,gid=165536
1704 1700 0:65 /bus /mnt/p/bus ro,nosuid,nodev,noexec,relatime - proc proc rw
1705 1700 0:65 /sysrq-trigger /mnt/p/sysrq-trigger ro,nosuid,nodev,noexec,relatime - proc proc rw
1706 1700 0:45 /proc/meminfo /mnt/p/meminfo rw,nosuid - fuse.lxcfs lxcfs rw,user_id=0,allow_other
"""


@pytest.mark.parametrize(
    "name", ["kcore", "keys", "acpi", "bus", "sysrq-trigger", "meminfo"], ids=str
)
def test_rbind_copy_children_keep_identity(name: str) -> None:
    entries = entries_of(CONTAINER + RBIND_PROC)
    assert identity_at(entries, f"/mnt/p/{name}") == identity_at(entries, f"/proc/{name}")
    assert identity_at(entries, f"/mnt/p/{name}") in PROTECTED


def test_rbind_copy_itself_is_another_identity() -> None:
    """The copy of /proc sits at another place: a mount of its own (it may be unmounted)."""
    entries = entries_of(CONTAINER + RBIND_PROC)
    assert identity_at(entries, "/mnt/p") == "0:65 / 0:62 /mnt/p"
    assert identity_at(entries, "/mnt/p") not in PROTECTED


def test_rbind_of_a_directory_inside_a_mount() -> None:
    """`mount --rbind /sys/fs /mnt/fs`: the copy's root is /fs of the sysfs; the cgroup mount
    below it is at /fs/cgroup of that filesystem, as the original is."""
    entries = entries_of(
        CONTAINER
        + "1800 1290 0:68 /fs /mnt/fs ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro\n"
        + "1801 1800 0:28 / /mnt/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw\n"
    )
    assert identity_at(entries, "/mnt/fs/cgroup") == identity_at(entries, "/sys/fs/cgroup")


# `unshare -m; mount --rbind / /newroot` (the copy is taken before it is attached, so it does
# not contain itself), then `pivot_root /newroot /newroot/.old`: the mount ids stay, the paths
# change (the new tree at /, the old one at /.old), then `umount -l /.old`.
COPIED = {  # original id -> id of its copy below /newroot
    1290: 2290,
    1291: 2291,
    1292: 2292,
    1300: 2300,
    1302: 2302,
    1305: 2305,
    1308: 2308,
    1309: 2309,
}
OLD_TREE = """\
1290 1173 0:62 / / rw,relatime - overlay overlay rw
1291 1290 0:65 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1292 1290 0:66 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
1300 1292 0:5 /null /dev/null rw,nosuid,noexec - devtmpfs udev rw
1302 1291 0:5 /null /proc/kcore rw,nosuid - devtmpfs udev rw
1305 1291 0:65 /bus /proc/bus ro,nosuid,nodev,noexec,relatime - proc proc rw
1308 1291 0:45 /proc/meminfo /proc/meminfo rw,nosuid,nodev,relatime - fuse.lxcfs lxcfs rw
1309 1290 0:72 / /srv/my\\040data rw,relatime - tmpfs tmpfs rw
"""


def _moved(tree: str, prefix: str, ids: dict[int, int], root_parent: int) -> str:
    """`tree` with its paths below `prefix` and its ids mapped (its root's parent replaced)."""
    lines = []
    for line in tree.splitlines():
        mount_id, parent_id, dev, root, mountpoint, rest = line.split(" ", 5)
        new_parent = ids.get(int(parent_id), root_parent)
        where = prefix + mountpoint if mountpoint != "/" else prefix or "/"
        lines.append(f"{ids[int(mount_id)]} {new_parent} {dev} {root} {where} {rest}")
    return "\n".join(lines) + "\n"


SAME = {key: key for key in COPIED}
BEFORE_PIVOT = OLD_TREE + _moved(OLD_TREE, "/newroot", COPIED, root_parent=1290)
AFTER_PIVOT = _moved(OLD_TREE, "", COPIED, root_parent=1173) + _moved(
    OLD_TREE, "/.old", SAME, root_parent=2290
)
AFTER_DETACH = _moved(OLD_TREE, "", COPIED, root_parent=1173)


def test_pivot_root_changes_paths_not_identities() -> None:
    before, after = entries_of(BEFORE_PIVOT), entries_of(AFTER_PIVOT)
    assert set(before) == set(after)  # pivot_root makes no mount, it moves the root
    assert by_path(before, "/newroot/proc/kcore").mount_id == 2302
    assert by_path(after, "/proc/kcore").mount_id == 2302
    assert by_path(after, "/.old/proc/kcore").mount_id == 1302
    roots = {1290, 2290}
    for key in set(before) - roots:
        assert identity(after[key], after) == identity(before[key], before), key


def test_pivot_root_copies_keep_the_originals_identities() -> None:
    original = entries_of(OLD_TREE)
    for entries in (entries_of(BEFORE_PIVOT), entries_of(AFTER_PIVOT), entries_of(AFTER_DETACH)):
        for old, new in COPIED.items():
            if old != 1290:
                assert identity(entries[new], entries) == identity(original[old], original)


def test_pivot_root_new_root_takes_the_old_roots_identity() -> None:
    original, after = entries_of(OLD_TREE), entries_of(AFTER_PIVOT)
    assert identity(after[2290], after) == identity(original[1290], original) == "0:62 / - /"
    assert identity(after[1290], after) == "0:62 / 0:62 /.old"  # the old root, moved away


def test_nested_runtime_may_detach_the_old_root_but_not_what_it_holds() -> None:
    """After pivot_root a nested runtime detaches /.old (its identity changed: allowed); the
    masks are protected wherever they are."""
    entries = entries_of(AFTER_PIVOT)
    checker = Guard(entries, identities(entries_of(OLD_TREE)))
    assert_performed(checker.umount(place(entries, "/.old")))
    for path in ("/.old/proc/kcore", "/proc/kcore", "/proc", "/.old/proc", "/dev/null"):
        assert_refused(checker.umount(place(entries, path)))


# --- Place ---


def test_place_at_a_mount_root() -> None:
    entries = entries_of(CONTAINER)
    assert Place("/proc", entries[1291]).is_root
    assert Place("/srv/my data", entries[1309]).is_root  # compared unescaped


def test_place_inside_a_mount() -> None:
    entries = entries_of(CONTAINER)
    assert not Place("/proc/self", entries[1291]).is_root
    assert not Place("/srv/my\\040data", entries[1309]).is_root
    assert not Place("/", entries[1291]).is_root


def test_place_without_a_mount() -> None:
    assert not Place("/proc", None).is_root


# --- mount_kind: the kernel's precedence (do_mount / path_mount) ---


@pytest.mark.parametrize(
    ("flags", "kind"),
    [
        (0, NEW),
        (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NEW),
        (MS_REMOUNT, REMOUNT),
        (MS_REMOUNT | MS_BIND | MS_RDONLY, REMOUNT),
        (MS_REMOUNT | MS_MOVE | MS_PRIVATE, REMOUNT),
        (MS_BIND, BIND),
        (MS_BIND | MS_REC, BIND),
        (MS_BIND | MS_MOVE, BIND),
        (MS_BIND | MS_PRIVATE, BIND),
        (MS_PRIVATE, PROPAGATE),
        (MS_SHARED | MS_REC, PROPAGATE),
        (MS_SLAVE, PROPAGATE),
        (MS_UNBINDABLE, PROPAGATE),
        (MS_PRIVATE | MS_MOVE, PROPAGATE),
        (MS_MOVE, MOVE),
        (MS_MOVE | MS_REC | MS_RDONLY, MOVE),
    ],
    ids=[
        "new",
        "new-with-flags",
        "remount",
        "remount-bind",
        "remount-beats-all",
        "bind",
        "rbind",
        "bind-beats-move",
        "bind-beats-propagation",
        "private",
        "rshared",
        "slave",
        "unbindable",
        "propagation-beats-move",
        "move",
        "move-with-flags",
    ],
)
def test_mount_kind_precedence(flags: int, kind: str) -> None:
    assert mount_kind(flags) == kind


# --- Guard: umount ---


@pytest.mark.parametrize(
    "path",
    ["/proc", "/proc/kcore", "/proc/acpi", "/proc/meminfo", "/sys/firmware", "/dev", "/data", "/"],
)
def test_umount_of_a_protected_mount_is_refused(path: str) -> None:
    checker, entries = guard()
    verdict = checker.umount(place(entries, path))
    assert_refused(verdict)
    assert path in verdict.reason


@pytest.mark.parametrize("path", ["/mnt/scratch", "/mnt/ro"])
def test_umount_of_an_unprotected_mount_is_performed(path: str) -> None:
    checker, entries = guard()
    assert_performed(checker.umount(place(entries, path)))


def test_umount_of_a_path_that_is_not_a_mount_root_is_performed() -> None:
    """The kernel answers EINVAL itself; nothing to protect."""
    checker, entries = guard()
    assert_performed(checker.umount(place(entries, "/proc/self")))
    assert_performed(checker.umount(Place("/nowhere", None)))


def test_umount_of_a_copy_made_by_unshare_is_refused() -> None:
    entries = entries_of(renumber(CONTAINER, 1000))
    checker = Guard(entries, PROTECTED)
    for path in ("/proc/kcore", "/proc", "/sys/firmware"):
        assert_refused(checker.umount(place(entries, path)))


def test_umount_below_an_rbind_copy() -> None:
    checker, entries = guard(RBIND_PROC)
    assert_refused(checker.umount(place(entries, "/mnt/p/kcore")))  # the mask's copy
    assert_performed(checker.umount(place(entries, "/mnt/p")))  # the copy itself


def test_umount_of_a_mount_over_a_protected_one() -> None:
    """A tmpfs laid over /proc/kcore may go again: the mask below it is still there."""
    checker, entries = guard("1500 1302 0:90 / /proc/kcore rw - tmpfs tmpfs rw\n")
    assert by_path(entries, "/proc/kcore").mount_id == 1500
    assert_performed(checker.umount(place(entries, "/proc/kcore")))


# --- Guard: remount ---


@pytest.mark.parametrize(
    "flags",
    [MS_REMOUNT, MS_REMOUNT | MS_BIND, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV],
    ids=["remount-rw", "remount-bind-rw", "remount-bind-rw-nosuid"],
)
@pytest.mark.parametrize("path", ["/data", "/sys", "/proc/bus", "/proc/acpi", "/sys/fs/cgroup"])
def test_remount_rw_of_a_protected_read_only_mount_is_refused(flags: int, path: str) -> None:
    checker, entries = guard()
    verdict = checker.mount(flags, None, place(entries, path), None)
    assert_refused(verdict)
    assert path in verdict.reason


@pytest.mark.parametrize(
    "flags", [MS_REMOUNT | MS_RDONLY, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOEXEC]
)
@pytest.mark.parametrize("path", ["/data", "/sys", "/proc/bus"])
def test_remount_ro_of_a_protected_read_only_mount_is_performed(flags: int, path: str) -> None:
    checker, entries = guard()
    assert_performed(checker.mount(flags, None, place(entries, path), None))


@pytest.mark.parametrize("flags", [MS_REMOUNT | MS_RDONLY, MS_REMOUNT | MS_BIND, MS_REMOUNT])
@pytest.mark.parametrize("path", ["/proc", "/dev", "/"])
def test_remount_of_a_protected_read_write_mount_is_performed(flags: int, path: str) -> None:
    checker, entries = guard()
    assert_performed(checker.mount(flags, None, place(entries, path), None))


@pytest.mark.parametrize("flags", [MS_REMOUNT, MS_REMOUNT | MS_BIND, MS_REMOUNT | MS_RDONLY])
def test_remount_of_an_unprotected_mount_is_performed(flags: int) -> None:
    checker, entries = guard()
    assert_performed(checker.mount(flags, None, place(entries, "/mnt/ro"), None))


def test_remount_rw_of_a_path_inside_a_protected_mount_is_performed() -> None:
    """Not a mount root: the kernel refuses (EINVAL), the guard has nothing to say."""
    checker, entries = guard()
    assert_performed(checker.mount(MS_REMOUNT | MS_BIND, None, place(entries, "/data/x"), None))


# --- Guard: propagation ---


@pytest.mark.parametrize(
    "flags",
    [MS_PRIVATE, MS_PRIVATE | MS_REC, MS_SHARED, MS_SLAVE | MS_REC, MS_UNBINDABLE],
)
@pytest.mark.parametrize("path", ["/", "/proc", "/proc/kcore", "/mnt/scratch"])
def test_propagation_change_is_performed(flags: int, path: str) -> None:
    checker, entries = guard()
    assert_performed(checker.mount(flags, None, place(entries, path), None))


# --- Guard: move ---


@pytest.mark.parametrize("path", ["/proc", "/proc/kcore", "/sys/firmware", "/data"])
def test_move_of_a_protected_mount_is_refused(path: str) -> None:
    checker, entries = guard()
    verdict = checker.mount(MS_MOVE, None, place(entries, "/mnt/scratch"), place(entries, path))
    assert_refused(verdict)
    assert path in verdict.reason


def test_move_of_an_unprotected_mount_is_performed() -> None:
    checker, entries = guard()
    verdict = checker.mount(MS_MOVE, None, place(entries, "/tmp"), place(entries, "/mnt/scratch"))
    assert_performed(verdict)


def test_move_of_an_unprotected_mount_over_a_protected_one_is_refused() -> None:
    checker, entries = guard()
    verdict = checker.mount(
        MS_MOVE, None, place(entries, "/proc/kcore"), place(entries, "/mnt/scratch")
    )
    assert_refused(verdict)


# --- Guard: bind ---


def test_bind_of_dev_null_over_a_mask_is_a_re_mask() -> None:
    """A runc inside the container masks /proc/kcore again with /dev/null: same (dev, root)."""
    checker, entries = guard()
    for flags in (MS_BIND, MS_BIND | MS_REC):
        verdict = checker.mount(
            flags, None, place(entries, "/proc/kcore"), place(entries, "/dev/null")
        )
        assert_performed(verdict)


@pytest.mark.parametrize(
    "source",
    ["/dev/zero", "/etc/passwd", "/mnt/scratch", "/dev/pts"],
    ids=["other-device-file", "rootfs-file", "unprotected-mount", "protected-other-mount"],
)
def test_bind_of_something_else_over_a_mask_is_refused(source: str) -> None:
    checker, entries = guard()
    verdict = checker.mount(MS_BIND, None, place(entries, "/proc/kcore"), place(entries, source))
    assert_refused(verdict)
    assert "/proc/kcore" in verdict.reason


@pytest.mark.parametrize(
    "target", ["/proc/meminfo", "/proc/sysrq-trigger", "/etc/resolv.conf", "/sys/firmware"]
)
def test_dev_null_may_cover_any_protected_mount(target: str) -> None:
    """/dev/null (the host's, bound from devtmpfs) hides; over a directory the kernel itself
    answers ENOTDIR."""
    checker, entries = guard()
    verdict = checker.mount(MS_BIND, None, place(entries, target), place(entries, "/dev/null"))
    assert_performed(verdict)


def test_a_file_called_null_elsewhere_is_not_dev_null() -> None:
    """`mount --bind /mnt/scratch/null /mnt/fakenull`: root /null, but of a tmpfs."""
    checker, entries = guard("1410 1290 0:80 /null /mnt/fakenull rw - tmpfs tmpfs rw\n")
    source = place(entries, "/mnt/fakenull")
    assert source.is_root
    assert_refused(checker.mount(MS_BIND, None, place(entries, "/proc/kcore"), source))


def test_bind_of_a_same_file_that_is_not_a_mount_root_is_refused() -> None:
    """The source must be the root of a mount of the same (dev, root), not a path inside one."""
    checker, entries = guard()
    devtmpfs = entries[1300]
    inside = Place("/dev/null/x", devtmpfs)  # same entry, not its root
    assert not inside.is_root
    assert_refused(checker.mount(MS_BIND, None, place(entries, "/proc/kcore"), inside))


@pytest.mark.parametrize("target", ["/proc", "/sys", "/data", "/etc/resolv.conf", "/"])
def test_bind_over_a_protected_mount_is_refused(target: str) -> None:
    checker, entries = guard()
    verdict = checker.mount(
        MS_BIND | MS_REC, None, place(entries, target), place(entries, "/mnt/scratch")
    )
    assert_refused(verdict)


def test_rbind_of_the_masked_copy_over_proc_is_performed() -> None:
    """`mount --rbind /mnt/p /proc`: another bind of what /proc already is, masks included."""
    checker, entries = guard(RBIND_PROC)
    verdict = checker.mount(
        MS_BIND | MS_REC, None, place(entries, "/proc"), place(entries, "/mnt/p")
    )
    assert_performed(verdict)


@pytest.mark.parametrize("target", ["/mnt/scratch", "/tmp/x", "/proc/self/cwd"])
def test_bind_elsewhere_is_performed(target: str) -> None:
    checker, entries = guard()
    verdict = checker.mount(MS_BIND, None, place(entries, target), place(entries, "/etc/hosts"))
    assert_performed(verdict)


@pytest.mark.parametrize("source", ["/proc", "/sys", "/", "/sys/fs", "/mnt/p", "/etc", "/srv"])
def test_non_recursive_bind_of_a_tree_with_protected_mounts_below_is_refused(source: str) -> None:
    """It would copy the tree without what is mounted below (/proc without its masks; /etc
    without its resolv.conf, /srv without /srv/my data)."""
    checker, entries = guard(RBIND_PROC)
    verdict = checker.mount(MS_BIND, None, place(entries, "/mnt/scratch"), place(entries, source))
    assert_refused(verdict)
    assert "non-recursive" in verdict.reason


@pytest.mark.parametrize("source", ["/proc", "/sys", "/", "/mnt/p", "/etc"])
def test_recursive_bind_of_a_tree_with_protected_mounts_below_is_performed(source: str) -> None:
    checker, entries = guard(RBIND_PROC)
    verdict = checker.mount(
        MS_BIND | MS_REC, None, place(entries, "/mnt/scratch"), place(entries, source)
    )
    assert_performed(verdict)


@pytest.mark.parametrize("source", ["/proc/1", "/proc/kcore", "/dev/null", "/etc/hosts", "/data"])
def test_non_recursive_bind_of_a_leaf_is_performed(source: str) -> None:
    checker, entries = guard()
    verdict = checker.mount(MS_BIND, None, place(entries, "/mnt/scratch"), place(entries, source))
    assert_performed(verdict)


def test_non_recursive_bind_compares_whole_path_components() -> None:
    """/srv/my is not a prefix of /srv/my data's path components."""
    checker, entries = guard()
    verdict = checker.mount(
        MS_BIND, None, place(entries, "/mnt/scratch"), Place("/srv/my", entries[1290])
    )
    assert_performed(verdict)


@pytest.mark.parametrize("flags", [MS_BIND, MS_BIND | MS_REC])
def test_bind_without_a_source_is_invalid(flags: int) -> None:
    checker, entries = guard()
    verdict = checker.mount(flags, None, place(entries, "/mnt/scratch"), None)
    assert_refused(verdict, errno.EINVAL)


# --- Guard: new mounts ---


@pytest.mark.parametrize("target", ["/proc", "/proc/kcore", "/sys/firmware", "/data", "/dev"])
def test_tmpfs_over_a_protected_mount_is_performed(target: str) -> None:
    """Covering hides more; it unmasks nothing."""
    checker, entries = guard()
    assert_performed(checker.mount(0, "tmpfs", place(entries, target), None))


@pytest.mark.parametrize("target", ["/proc", "/proc/kcore", "/proc/acpi"])
def test_proc_over_a_protected_mount_is_refused(target: str) -> None:
    checker, entries = guard()
    verdict = checker.mount(MS_NOSUID | MS_NODEV | MS_NOEXEC, "proc", place(entries, target), None)
    assert_refused(verdict)


@pytest.mark.parametrize("fstype", ["sysfs", "ext4", "overlay", "fuse.lxcfs", None])
def test_other_filesystems_over_a_protected_mount_are_refused(fstype: str | None) -> None:
    checker, entries = guard()
    assert_refused(checker.mount(0, fstype, place(entries, "/sys/firmware"), None))


@pytest.mark.parametrize("target", ["/mnt/scratch", "/tmp/p", "/proc/self/cwd"])
def test_fresh_elsewhere_is_performed_and_masked(target: str) -> None:
    checker, entries = guard()
    verdict = checker.mount(MS_NOSUID | MS_NODEV | MS_NOEXEC, "proc", place(entries, target), None)
    assert_performed(verdict, fresh=True)


@pytest.mark.parametrize("fstype", ["tmpfs", "mqueue", "devpts"])
def test_other_new_mounts_elsewhere_are_performed(fstype: str) -> None:
    checker, entries = guard()
    assert_performed(checker.mount(0, fstype, place(entries, "/mnt/scratch"), None))


def test_a_fresh_sysfs_is_masked_too() -> None:
    checker, entries = guard()
    assert_performed(checker.mount(0, "sysfs", place(entries, "/mnt/scratch"), None), fresh=True)


def test_verdict_repr() -> None:
    assert repr(Verdict(1, "x", True)) == "Verdict(error=1, reason='x', fresh=True)"


# --- hypothesis: random mount trees ---

NAMES = st.sampled_from(["a", "b", "proc", "my data", "tab\there", "back\\slash", ""])
DEVS = st.sampled_from(["0:5", "0:65", "0:66", "254:1", "0:72"])
ROOTS = st.sampled_from(["/", "/null", "/sys", "/srv", "/a b"])


def escape(path: str) -> str:
    return re.sub(r"[ \t\n\\]", lambda m: f"\\{ord(m.group()):03o}", path)


def join(parent: str, name: str) -> str:
    if not name:
        return parent  # stacked on the parent
    return parent.rstrip("/") + "/" + name


Tree = list[tuple[int, int, str, str, str]]  # (id, parent id, dev, root, unescaped mount point)


@st.composite
def trees(draw: st.DrawFn) -> Tree:
    """A root mount (parent outside the table) and up to 12 mounts, each below or on another."""
    tree: Tree = [(100, 99, draw(DEVS), "/", "/")]
    for mount_id in range(101, 101 + draw(st.integers(0, 12))):
        parent = draw(st.sampled_from(tree))
        name = draw(NAMES)
        if not name and parent[4] == "/":
            name = "s"  # stacked on a mount at "/": test_identity_of_a_mount_stacked_on_the_root
        tree.append((mount_id, parent[0], draw(DEVS), draw(ROOTS), join(parent[4], name)))
    return tree


def render(tree: Tree) -> str:
    return "".join(
        f"{i} {p} {dev} {escape(root)} {escape(path)} rw,relatime - tmpfs tmpfs rw\n"
        for i, p, dev, root, path in tree
    )


def subtree(tree: Tree, top: int) -> Tree:
    found = {top}
    for mount in tree:  # parents always precede their children
        if mount[1] in found:
            found.add(mount[0])
    return [m for m in tree if m[0] in found]


@given(trees(), st.integers(1, 10**6), st.randoms(use_true_random=False))
def test_identities_survive_unshare(tree: Tree, offset: int, rnd: random.Random) -> None:
    lines = renumber(render(tree), offset).splitlines()
    rnd.shuffle(lines)
    original, copy = entries_of(render(tree)), entries_of("\n".join(lines))
    for key, entry in original.items():
        assert identity(copy[key + offset], copy) == identity(entry, original)


@given(trees(), st.data())
def test_rbind_children_keep_identity(tree: Tree, data: st.DataObject) -> None:
    """`mount --rbind <a mount> <elsewhere>/copy`: every mount copied below keeps its identity."""
    top = data.draw(st.sampled_from(tree))
    copied = subtree(tree, top[0])
    below = [m for m in tree if m not in copied]
    host = data.draw(st.sampled_from(below)) if below else None
    where = join(host[4] if host else "/", "copy")
    shift = 1000
    copies: Tree = []
    for mount_id, parent, dev, root, path in copied:
        rest = path[len(top[4].rstrip("/")) :] if top[4] != "/" else path.rstrip("/")
        new_parent = parent + shift if mount_id != top[0] else (host[0] if host else 99)
        copies.append((mount_id + shift, new_parent, dev, root, where.rstrip("/") + rest or "/"))
    entries = entries_of(render(tree + copies))
    for mount_id, *_ in copied:
        if mount_id != top[0]:
            assert identity(entries[mount_id + shift], entries) == identity(
                entries[mount_id], entries
            )


PROTECTED_SETS = st.sets(st.text(min_size=1, max_size=20), max_size=5)


@given(trees(), st.data(), PROTECTED_SETS)
def test_umount_refused_exactly_when_protected(
    tree: Tree, data: st.DataObject, noise: set[str]
) -> None:
    entries = entries_of(render(tree))
    every = sorted(identities(entries))
    protected = set(data.draw(st.lists(st.sampled_from(every), unique=True))) | noise
    checker = Guard(entries, protected)
    for entry in entries.values():
        verdict = checker.umount(Place(entry.path, entry))
        if identity(entry, entries) in protected:
            assert verdict.error == errno.EPERM
        else:
            assert verdict.error == 0
        # a path inside the mount (not its root) is never refused by the guard
        assert checker.umount(Place(join(entry.path, "inside-x"), entry)).error == 0


# --- gaps found while writing these tests, fixed since ---


@pytest.mark.parametrize(
    ("flags", "kind"),
    [(MS_MGC_VAL | MS_MOVE, MOVE), (MS_MGC_VAL, NEW), (MS_MGC_VAL | MS_RDONLY, NEW)],
    ids=["move", "new", "new-ro"],
)
def test_mount_kind_discards_the_magic(flags: int, kind: str) -> None:
    assert mount_kind(flags) == kind


def test_magic_move_of_a_mask_is_refused() -> None:
    """mount("/proc/kcore", "/mnt/scratch", NULL, MS_MGC_VAL | MS_MOVE, NULL) moves the mask
    away in the kernel; the supervisor passes the flags through unchanged."""
    checker, entries = guard()
    verdict = checker.mount(
        MS_MGC_VAL | MS_MOVE, None, place(entries, "/mnt/scratch"), place(entries, "/proc/kcore")
    )
    assert_refused(verdict)


def test_magic_fresh_is_masked() -> None:
    checker, entries = guard()
    verdict = checker.mount(MS_MGC_VAL, "proc", place(entries, "/mnt/scratch"), None)
    assert_performed(verdict, fresh=True)


def test_copy_of_a_protected_read_only_mount_stays_read_only() -> None:
    """`mount --bind /proc/bus /mnt/b` (nothing below it: allowed), then `mount -o
    remount,bind,rw /mnt/b`: a writable /proc/bus the container's rules call read-only."""
    copy_line = "1900 1290 0:65 /bus /mnt/b ro,nosuid,nodev,noexec,relatime - proc proc rw\n"
    checker, entries = guard()
    source = place(entries, "/proc/bus")
    assert_performed(checker.mount(MS_BIND, None, place(entries, "/mnt/b"), source))
    checker, entries = guard(copy_line)
    assert_refused(checker.mount(MS_REMOUNT | MS_BIND, None, place(entries, "/mnt/b"), None))


def test_identity_of_a_mount_stacked_on_the_root() -> None:
    """A root that is a bind of a directory (vfs storage, a staged rootfs) with a tmpfs stacked
    on it; pivot_root moves the old root to /.old: the tmpfs still sits on the same directory
    of the same filesystem, so its identity must not change."""
    root = "254:1 /var/lib/docker/vfs/dir/abc"
    before = entries_of(
        f"100 99 {root} / rw - ext4 /dev/vda1 rw\n101 100 0:90 / / rw - tmpfs tmpfs rw\n"
    )
    after = entries_of(
        "200 99 0:91 / / rw - tmpfs tmpfs rw\n"
        f"100 200 {root} /.old rw - ext4 /dev/vda1 rw\n"
        "101 100 0:90 / /.old rw - tmpfs tmpfs rw\n"
    )
    assert identity(after[101], after) == identity(before[101], before)


# --- overlay layers (an overlay of /sys would show it unmasked) ---


def test_overlay_layers_names_every_directory() -> None:
    data = "lowerdir=/a:/b,upperdir=/u,workdir=/w,xino=off,lowerdir+=/c,index"
    assert overlay_layers(data) == ["/a", "/b", "/u", "/w", "/c"]


def test_an_overlay_layer_above_runtime_mounts_covers_them() -> None:
    checker, entries = guard()
    assert checker.covers_protected(place(entries, "/proc"))
    assert not checker.covers_protected(place(entries, "/proc/meminfo"))
