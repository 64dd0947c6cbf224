"""Staged mounts of one container, all below `<run dir>/runtime/<container id>/`.

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

import contextlib
import os
import shutil
from pathlib import Path

from eci.errors import RuntimeShimError
from eci.runtime import mounts
from eci.runtime.spec import MountPlan

OVERLAY_EXTRA_OPTIONS = "index=off"


def _mountinfo() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


def overlay_layers(merged: Path, data_root: Path) -> tuple[list[Path], Path]:
    """Lower layer dirs (top first) and the container layer dir of a dockerd overlay2 rootfs."""
    layer_dir = merged.parent
    if merged.name != "merged" or layer_dir.parent != data_root / "overlay2":
        raise RuntimeShimError(
            f"root filesystem {str(merged)!r} is not a dockerd overlay2 mount under {data_root}; "
            "eci needs the overlay2 storage driver"
        )
    try:
        lower_spec = (layer_dir / "lower").read_text().strip()
    except FileNotFoundError:
        lower_spec = ""
    lowers = [
        Path(os.path.realpath(data_root / "overlay2" / part))
        for part in lower_spec.split(":")
        if part
    ]
    for lower in lowers:
        if not lower.is_dir():
            raise RuntimeShimError(f"image layer {str(lower)!r} is missing")
    return lowers, layer_dir


def stage_rootfs(
    merged: Path, data_root: Path, stage: Path, root_link: Path, base: int, userns: int
) -> None:
    """Replace dockerd's overlay at `merged` by the idmapped one, and attach a copy of it at
    `root_link` (a path container root can traverse) for runc."""
    lowers, layer_dir = overlay_layers(merged, data_root)
    (stage / "lower").mkdir(parents=True, exist_ok=True)
    names = []
    for index, lower in enumerate(lowers):
        target = stage / "lower" / str(index)
        target.mkdir(exist_ok=True)
        mounts.clone_mount(lower, target, userns=userns)
        names.append(f"lower/{index}")
    upper = stage / "upper"
    upper.mkdir(exist_ok=True)
    mounts.clone_mount(layer_dir, upper, userns=userns)
    if mounts.is_mount_point(merged, _mountinfo()):
        # Two overlays on one upper dir is undefined behaviour: take dockerd's down first.
        try:
            mounts.unmount(merged)
        except OSError:
            mounts.unmount(merged, detach=True)
    if not names:  # an image with no layers: overlay needs one lower; use an empty dir
        (stage / "empty").mkdir(exist_ok=True)
        names.append("empty")
    mounts.mount_overlay_as(
        base, merged, stage, names, "upper/diff", "upper/work", OVERLAY_EXTRA_OPTIONS
    )
    root_link.mkdir(parents=True, exist_ok=True)
    mounts.clone_mount(merged, root_link)


def stage_binds(plans: list[MountPlan], stage: Path, userns: int) -> dict[int, str]:
    """Attach each planned bind source under `stage`; returns spec mount index -> new source."""
    staged: dict[int, str] = {}
    for plan in plans:
        source = Path(plan.source)
        target = stage / f"bind-{plan.index}"
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch(exist_ok=True)
        mounts.clone_mount(
            source,
            target,
            userns=userns if plan.idmap else None,
            readonly=plan.readonly,
            recursive=not plan.idmap,
        )
        staged[plan.index] = str(target)
    return staged


def unstage(stage: Path) -> int:
    """Detach every mount at or below `stage` (deepest first) and remove the directory."""
    root = str(stage).rstrip("/")
    detached = 0
    for _ in range(4):
        points = [line.split()[4] for line in _mountinfo().splitlines() if line.strip()]
        ours = sorted(
            {p for p in points if p == root or p.startswith(root + "/")},
            key=lambda p: p.count("/"),
            reverse=True,
        )
        if not ours:
            break
        for point in ours:
            with contextlib.suppress(OSError):
                mounts.unmount(point, detach=True)
                detached += 1
    still = [
        line
        for line in _mountinfo().splitlines()
        if line.split()[4] == root or line.split()[4].startswith(root + "/")
    ]
    if not still:  # never recurse into a live mount
        shutil.rmtree(stage, ignore_errors=True)
    return detached
