"""Staged mounts of one container, all below `<run dir>/private/runtime/<container id>/`.

Nothing staged here ever sits inside a directory dockerd or containerd removes: layers are
reached through idmapped copies attached under eci's own run dir, and `unstage` detaches every
mount below the container's staging dir (by exact path) before removing it.

Root filesystem: dockerd hands runc an overlayfs at `<data-root>/overlay2/<id>/merged`. An
overlay cannot be idmapped, so it is replaced by one built over idmapped copies of the same
lower layers and of the container's own upper/work dirs, mounted with credentials inside the
container's range (see mounts.mount_overlay_as). Image files keep their owners as seen inside
the container, and files the container writes land on disk with container-relative owners.
Image layers are only ever read.
"""

from __future__ import annotations

import _thread
import contextlib
import errno
import os
import stat

from eci.contract.grants import is_grant_path
from eci.errors import RuntimeShimError, SpecRefused, restricted_mount_message
from eci.runtime.linux import mounts
from eci.runtime.linux.mountinfo import is_under, mount_points, mounts_under
from eci.runtime.shim.spec import restricted_source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from eci.runtime.shim.spec import MountPlan

OVERLAY_EXTRA_OPTIONS = "index=off"


def overlay_layers(merged: str, data_root: str) -> tuple[list[str], str]:
    """Lower layer dirs (top first) and the container layer dir of a dockerd overlay2 rootfs."""
    layer_dir = os.path.dirname(merged)
    overlay2 = os.path.join(data_root, "overlay2")
    if os.path.basename(merged) != "merged" or os.path.dirname(layer_dir) != overlay2:
        raise RuntimeShimError(
            f"root filesystem {merged!r} is not a dockerd overlay2 mount under {data_root}; "
            "eci needs the overlay2 storage driver"
        )
    try:
        with open(os.path.join(layer_dir, "lower")) as f:
            lower_spec = f.read().strip()
    except FileNotFoundError:
        lower_spec = ""
    lowers = [
        os.path.realpath(os.path.join(overlay2, part)) for part in lower_spec.split(":") if part
    ]
    for lower in lowers:
        if not os.path.isdir(lower):
            raise RuntimeShimError(f"image layer {lower!r} is missing")
    return lowers, layer_dir


class DockerdRootfs:
    """dockerd's overlay for one container, being taken down so that eci's can replace it.

    Two overlays on one upper dir is undefined behaviour (and the kernel warns), so dockerd's
    goes first. Its umount waits on the kernel for ~3 ms (an RCU grace period, a sync of the
    upper filesystem): it runs in a thread from the moment the rootfs is known to be dockerd's,
    while the range, the user namespace and the layer copies are made. Always `wait()`."""

    def __init__(self, merged: str, data_root: str) -> None:
        self.merged = merged
        self.lowers, self.layer_dir = overlay_layers(merged, data_root)
        self._error: OSError | None = None
        self._done = _thread.allocate_lock()
        self._done.acquire()
        _thread.start_new_thread(self._take_down, ())

    def _take_down(self) -> None:
        try:
            if self.merged in mount_points():
                try:
                    mounts.unmount(self.merged)
                except OSError:
                    mounts.unmount(self.merged, detach=True)
        except OSError as exc:
            self._error = exc
        finally:
            self._done.release()

    def wait(self) -> None:
        """Until dockerd's overlay is gone; its unmount's error, if any."""
        with self._done:
            pass
        if self._error is not None:
            raise self._error


#: the name of the container's root filesystem mount inside its home under the rootfs dir
ROOTFS_MOUNT = "root"


def make_rootfs_home(home: str, gid: int) -> None:
    """The directory holding a container's host-side rootfs mount: root:`gid` (the container
    root's gid on the host) 0710. runc sets the rootfs up as container root, which passes by
    its group; no other host user passes (they would read the container's files and run the
    setuid binaries its root planted). Made 0700 first: never open for a moment."""
    os.mkdir(home, 0o700)
    os.chown(home, 0, gid)
    os.chmod(home, 0o710)


def stage_rootfs(rootfs: DockerdRootfs, stage: str, home: str, base: int, userns: int) -> str:
    """Replace dockerd's overlay by the idmapped one at the same place, and attach a copy of it
    in `home` (see make_rootfs_home) for runc; returns the copy's path."""
    os.makedirs(os.path.join(stage, "lower"), exist_ok=True)
    names = []
    for index, lower in enumerate(rootfs.lowers):
        name = f"lower/{index}"
        os.makedirs(os.path.join(stage, name), exist_ok=True)
        # read-only as well: image layers are only ever read, whatever happens to the clone
        mounts.clone_mount(lower, os.path.join(stage, name), userns=userns, readonly=True)
        names.append(name)
    upper = os.path.join(stage, "upper")
    os.makedirs(upper, exist_ok=True)
    mounts.clone_mount(rootfs.layer_dir, upper, userns=userns)
    if not names:  # an image with no layers: overlay needs one lower; use an empty dir
        os.makedirs(os.path.join(stage, "empty"), exist_ok=True)
        names.append("empty")
    rootfs.wait()
    mounts.mount_overlay_as(
        base, rootfs.merged, stage, names, "upper/diff", "upper/work", OVERLAY_EXTRA_OPTIONS
    )
    make_rootfs_home(home, base)
    root = os.path.join(home, ROOTFS_MOUNT)
    os.mkdir(root, 0o700)  # hidden by the mount: its root dir is the container's /
    mounts.clone_mount(rootfs.merged, root)
    return root


def stage_binds(
    plans: list[MountPlan],
    stage: str,
    userns: int,
    data_root: str,
    restricted: tuple[str, ...] = (),
    grants_dir: str = "",
    requester_userns: int | None = None,
) -> dict[int, str]:
    """Attach each planned bind source under `stage`; returns spec mount index -> new source.

    An idmapped source is opened beneath the data-root without symlinks or mount crossings; a
    volume that is itself a mount (a bind of a host path via driver options, a tmpfs) is
    attached with host ids instead: container root must not own what it points at. Any other
    host path is opened once (symlinks resolved now), checked against `restricted` by what it
    resolved to, and that same opened tree is what runc mounts: a symlink swapped after the
    check changes nothing. With `requester_userns` (maps the requester's uid and gid to the
    container's root), a host path is idmapped with it: the requester's files are container
    root's, everyone else's nobody's; a tree holding a filesystem that cannot be idmapped
    keeps host ids (the safe default)."""
    staged: dict[int, str] = {}
    for plan in plans:
        target = os.path.join(stage, f"bind-{plan.index}")
        if os.path.isdir(plan.source):
            os.makedirs(target, exist_ok=True)
        else:
            with open(target, "a"):
                pass
        source_fd = None
        idmapped = False
        requesters: int | None = None  # a host path: idmapped to the requester if it can be
        if plan.idmap:
            relative = os.path.relpath(plan.source, data_root)
            try:
                source_fd = mounts.open_beneath(data_root, relative)
                idmapped = True
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
        else:
            source_fd = os.open(plan.source, os.O_PATH | os.O_CLOEXEC)
            resolved = os.readlink(f"/proc/self/fd/{source_fd}")
            granted = is_grant_path(resolved, grants_dir) and stat.S_ISSOCK(
                os.fstat(source_fd).st_mode
            )
            if restricted_source(resolved, restricted) and not granted:
                os.close(source_fd)
                raise SpecRefused(restricted_mount_message(plan.source))
            requesters = None if granted else requester_userns
        try:
            done = requesters is not None and _clone_as_requesters(
                plan, target, requesters, source_fd
            )
            if not done:
                mounts.clone_mount(
                    plan.source,
                    target,
                    userns=userns if idmapped else None,
                    readonly=plan.readonly,
                    recursive=not idmapped,
                    source_fd=source_fd,
                )
        finally:
            if source_fd is not None:
                os.close(source_fd)
        staged[plan.index] = target
    return staged


def _clone_as_requesters(plan: MountPlan, target: str, userns: int, source_fd: int | None) -> bool:
    """Attach the whole tree at `plan.source` idmapped to the requester; False (nothing done)
    when some filesystem in it cannot be idmapped."""
    try:
        mounts.clone_mount(
            plan.source,
            target,
            userns=userns,
            readonly=plan.readonly,
            recursive=True,
            source_fd=source_fd,
        )
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
            raise
        return False
    return True


def _remove_tree(path: str, device: int) -> None:
    """rm -r of a staging dir that holds no mount (checked by the caller); never follows links
    and never enters another filesystem (a mount the check missed)."""
    st = os.lstat(path)
    if st.st_dev != device:
        raise RuntimeShimError(f"eci runtime: {path!r} is on another filesystem; not removing")
    if os.path.isdir(path) and not os.path.islink(path):
        for name in os.listdir(path):
            _remove_tree(os.path.join(path, name), device)
        os.rmdir(path)
    else:
        os.unlink(path)


def unstage(*stages: str) -> int:
    """Detach every mount at or below each of `stages` (deepest first) and remove the
    directories; returns how many mounts were detached."""
    roots = [stage.rstrip("/") for stage in stages]
    detached = mounts.detach_all_under(*roots)
    still_mounted = mounts_under(*roots)
    for root in roots:
        if not any(is_under(point, root) for point in still_mounted):  # never into a mount
            with contextlib.suppress(OSError, RuntimeShimError):
                _remove_tree(root, os.lstat(os.path.dirname(root)).st_dev)
    return len(detached)
