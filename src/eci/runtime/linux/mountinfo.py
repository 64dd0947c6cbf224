"""Mount points from /proc/self/mountinfo and whole-component path containment.

Shared by the runtime shim (every create and delete: stdlib only, no `re`) and by `eci down`.
"""

from __future__ import annotations

import os


def unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo (octal)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit() and len(field) >= i + 4:
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo: str | None = None) -> list[str]:
    """Every mount point, from `mountinfo` text or this process's /proc/self/mountinfo."""
    if mountinfo is None:
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
    return [unescape(line.split()[4]) for line in mountinfo.splitlines() if line.strip()]


def is_under(path: str, root: str | os.PathLike[str]) -> bool:
    """Whole-component containment: /a/bc is not under /a/b."""
    root_s = os.fspath(root).rstrip("/")  # "" for "/"
    return path == (root_s or "/") or path.startswith(root_s + "/")


def mounts_under(*roots: str | os.PathLike[str], mountinfo: str | None = None) -> list[str]:
    """The mount points at or below any of `roots` (one read of mountinfo for all)."""
    return [m for m in mount_points(mountinfo) if any(is_under(m, root) for root in roots)]
