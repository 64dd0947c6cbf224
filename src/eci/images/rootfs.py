"""Assemble a root filesystem directory from host files, and pack it reproducibly.

There is no internet registry here, so test images are made from what the host has: a static
busybox for the userland plus any host binary with the shared libraries `ldd` says it needs.
The tarball is deterministic (sorted, fixed owner and mtime), so the same inputs give the same
layer digest on every run.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from eci.errors import ImageBuildError

BUSYBOX = Path("/bin/busybox")
FIXED_MTIME = 1_700_000_000
_LDD_PATH = re.compile(r"(/\S+)")

ETC_FILES = {
    "etc/passwd": (
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    ),
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n",
}


def shared_libraries(binary: Path) -> list[Path]:
    """Libraries (and the loader) a dynamic binary needs; empty for a static one."""
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    if result.returncode != 0:  # "not a dynamic executable"
        return []
    libs = []
    for line in result.stdout.splitlines():
        match = _LDD_PATH.search(line.split("=>")[-1])
        if match:
            libs.append(Path(match.group(1)))
    return libs


def _copy_into(root: Path, source: Path, target: str) -> None:
    dest = root / target.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source.resolve(), dest)


def assemble(root: Path, files: Mapping[str, Path], with_busybox: bool = True) -> None:
    """Fill `root` with busybox (and its applet links), /etc basics, and `files`
    (image path -> host path) together with their shared libraries."""
    if with_busybox:
        if not BUSYBOX.exists():
            raise ImageBuildError(f"{BUSYBOX} is missing; install busybox-static (`make setup`)")
        _copy_into(root, BUSYBOX, "/bin/busybox")
        applets = subprocess.run(
            [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
        ).stdout.split()
        for applet in applets:
            link = root / "bin" / applet
            if not link.exists():
                link.symlink_to("busybox")
    for name, text in ETC_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for sub in ("tmp", "root", "proc", "sys", "dev", "var/run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    for target, source in files.items():
        if not source.exists():
            raise ImageBuildError(f"{source} is missing on this host (wanted at {target})")
        _copy_into(root, source, target)
        for lib in shared_libraries(source):
            _copy_into(root, lib, str(lib))


def _normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = FIXED_MTIME
    return info


def _walk_sorted(root: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            yield base / name


def pack(root: Path, tar_path: Path) -> str:
    """Write a reproducible tarball of `root`; returns its sha256 (the content's identity)."""
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in _walk_sorted(root):
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False, filter=_normalize)
    digest = hashlib.sha256()
    with open(tar_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
