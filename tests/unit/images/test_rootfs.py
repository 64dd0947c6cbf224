"""Rootfs assembly and reproducible packing (needs busybox-static from `make setup`)."""

from __future__ import annotations

import tarfile
from pathlib import Path

from eci.images import rootfs


def test_assemble_busybox_with_applets_and_etc(tmp_path: Path) -> None:
    root = tmp_path / "root"
    rootfs.assemble(root, {})
    assert (root / "bin/busybox").is_file()
    assert (root / "bin/sh").is_symlink()
    assert (root / "bin/sh").readlink() == Path("busybox")
    assert (root / "etc/passwd").read_text().startswith("root:x:0:0:")
    assert (root / "tmp").stat().st_mode & 0o1777 == 0o1777


def test_dynamic_binary_brings_its_libraries(tmp_path: Path) -> None:
    root = tmp_path / "root"
    rootfs.assemble(root, {"/usr/local/bin/ls": Path("/bin/ls")}, with_busybox=False)
    assert (root / "usr/local/bin/ls").is_file()
    libs = rootfs.shared_libraries(Path("/bin/ls"))
    assert libs, "ls is dynamically linked on Debian"
    for lib in libs:
        assert (root / str(lib).lstrip("/")).exists(), lib


def test_pack_is_reproducible_and_root_owned(tmp_path: Path) -> None:
    digests = []
    for run in ("one", "two"):
        root = tmp_path / run
        rootfs.assemble(root, {})
        digests.append(rootfs.pack(root, tmp_path / f"{run}.tar"))
    assert digests[0] == digests[1]
    with tarfile.open(tmp_path / "one.tar") as tar:
        members = tar.getmembers()
    assert members
    assert {(m.uid, m.gid, m.mtime) for m in members} == {(0, 0, rootfs.FIXED_MTIME)}
