"""`mounts` through the Linux layer: its calls fail as OSError naming the call and the path."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from eci.runtime.linux import mounts


def test_open_beneath_opens_a_file_below_the_root(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "file").write_text("x")
    fd = mounts.open_beneath(tmp_path, "dir/file")
    try:
        assert os.path.samestat(os.fstat(fd), os.stat(tmp_path / "dir" / "file"))
    finally:
        os.close(fd)


def test_open_beneath_refuses_a_symlink_naming_openat2(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(OSError, match=r"openat2 'link/passwd' beneath ") as info:
        mounts.open_beneath(tmp_path, "link/passwd")
    assert info.value.errno == errno.ELOOP


def test_open_beneath_refuses_leaving_the_root(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"openat2 '\.\./etc' beneath ") as info:
        mounts.open_beneath(tmp_path, "../etc")
    assert info.value.errno == errno.EXDEV


def test_unmount_of_no_mount_names_umount_and_the_path(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=f"umount {tmp_path}: ") as info:
        mounts.unmount(tmp_path)
    assert info.value.errno in (errno.EINVAL, errno.EPERM)  # EPERM: not run as root
