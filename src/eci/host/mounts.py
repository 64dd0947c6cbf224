"""Mounts under a directory of ours, found in mountinfo and detached deepest-first.

Used by `eci down` and failure paths so nothing eci (or the dockerd it started) mounted stays
behind. Only mount points at or below the exact directory given are touched.
"""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
from pathlib import Path

MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)
_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo (octal)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def mount_points(mountinfo: str | None = None) -> list[str]:
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    return [_unescape(line.split()[4]) for line in text.splitlines() if line.strip()]


def is_under(path: str, root: Path) -> bool:
    """Whole-component containment: /a/bc is not under /a/b."""
    root_s = str(root).rstrip("/")  # "" for "/"
    return path == (root_s or "/") or path.startswith(root_s + "/")


def mounts_under(root: Path, mountinfo: str | None = None) -> list[str]:
    return [m for m in mount_points(mountinfo) if is_under(m, root)]


def detach_all_under(root: Path) -> list[str]:
    """Lazily unmount every mount at or below `root`, deepest first; returns what was detached."""
    detached = []
    for _ in range(8):  # stacked mounts on one point need several passes
        points = sorted(set(mounts_under(root)), key=lambda p: p.count("/"), reverse=True)
        if not points:
            break
        for point in points:
            if _libc.umount2(os.fsencode(point), MNT_DETACH) == 0:
                detached.append(point)
    return detached


def make_unbindable(path: Path) -> None:
    """Turn `path` into an unbindable mount of itself (idempotent).

    The runtime stages containers' mounts below such dirs; a recursive bind of an ancestor
    (a container asking for `-v /:/host:ro`) then leaves them out instead of copying every
    other container's staged mounts, which would grow the mount table with each container."""
    if str(path) not in mount_points():
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True, capture_output=True)
    subprocess.run(["mount", "--make-unbindable", str(path)], check=True, capture_output=True)
