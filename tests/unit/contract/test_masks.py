"""The mask tables: a container's own /proc and /sys, and one it mounts later, alike."""

from __future__ import annotations

from eci.contract.masks import (
    LXCFS_PROC_FILES,
    LXCFS_SYS_FILES,
    MASKED_PROC_DIRS,
    MASKED_PROC_FILES,
    MASKED_SYS_DIRS,
)
from eci.runtime.confine.mountguard import FRESH_MASKS
from eci.runtime.shim.spec import LXCFS_FILES, MASKED_PATHS


def _fresh(kind: str) -> tuple[set[str], set[str]]:
    """(masked, lxcfs) paths the supervisor gives a fresh procfs or sysfs."""
    root, lxcfs, files, dirs = FRESH_MASKS[kind]
    return {f"{root}/{n}" for n in (*files, *dirs)}, {f"{root}/{n}" for n in lxcfs}


def test_a_fresh_procfs_is_masked_like_the_container_s() -> None:
    masked, lxcfs = _fresh("proc")
    assert masked == {p for p in MASKED_PATHS if p.startswith("/proc/")}
    assert lxcfs == {p for p in LXCFS_FILES if p.startswith("/proc/")}


def test_a_fresh_sysfs_is_masked_like_the_container_s() -> None:
    masked, lxcfs = _fresh("sysfs")
    assert masked == {p for p in MASKED_PATHS if p.startswith("/sys/")}
    assert lxcfs == {p for p in LXCFS_FILES if p.startswith("/sys/")}


def test_every_table_entry_reaches_the_spec() -> None:
    assert len(MASKED_PATHS) == len(MASKED_PROC_FILES + MASKED_PROC_DIRS + MASKED_SYS_DIRS)
    assert len(LXCFS_FILES) == len(LXCFS_PROC_FILES + LXCFS_SYS_FILES)


def test_names_are_relative_and_plain() -> None:
    """Joined under /proc or /sys as they are: no leading '/', no '..'."""
    tables = (LXCFS_PROC_FILES, LXCFS_SYS_FILES, MASKED_PROC_FILES, MASKED_PROC_DIRS)
    names = [n for table in (*tables, MASKED_SYS_DIRS) for n in table]
    assert all(n and not n.startswith("/") and ".." not in n.split("/") for n in names)
