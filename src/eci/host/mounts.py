"""Mounts under a directory of ours, found in mountinfo and detached deepest-first.

Used by `eci down` and failure paths so nothing eci (or the dockerd it started) mounted stays
behind. Only mount points at or below the exact directory given are touched. The parsing and
detaching are the runtime's own (`eci.runtime.linux.mountinfo`, `eci.runtime.linux.mounts`):
one implementation for both.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from eci.runtime.linux.mountinfo import is_under, mount_points, mounts_under
from eci.runtime.linux.mounts import detach_all_under

__all__ = ["detach_all_under", "is_under", "make_unbindable", "mount_points", "mounts_under"]


def make_unbindable(path: Path) -> None:
    """Turn `path` into an unbindable mount of itself (idempotent).

    The runtime stages containers' mounts below such dirs; a recursive bind of an ancestor
    (a container asking for `-v /:/host:ro`) then leaves them out instead of copying every
    other container's staged mounts, which would grow the mount table with each container."""
    if str(path) not in mount_points():
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True, capture_output=True)
    subprocess.run(["mount", "--make-unbindable", str(path)], check=True, capture_output=True)
