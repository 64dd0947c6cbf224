"""Pure cores do no IO: they import no asyncio, socket, subprocess, h11 or os-level helpers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "eci"
PURE = [
    "settings",
    "policy",
    "dockerapi",
    "runtime/spec.py",
    "engine/layout.py",
    "engine/config.py",
    "errors.py",
]
FORBIDDEN = {
    "asyncio",
    "socket",
    "subprocess",
    "h11",
    "eci.host",
    "eci.proxy",
    "docker",
    "shutil",
    "ctypes",
}


def _modules(entry: str) -> list[Path]:
    path = SRC / entry
    if path.is_file():
        return [path]
    return sorted(path.rglob("*.py")) if path.is_dir() else []


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


PURE_FILES = [p for entry in PURE for p in _modules(entry)]


@pytest.mark.parametrize("path", PURE_FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_pure_core_imports_no_io(path: Path) -> None:
    bad = {
        n
        for n in _imports(path)
        if n in FORBIDDEN
        or n.split(".")[0] in FORBIDDEN
        or any(n.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


def test_there_are_pure_modules_to_check() -> None:
    assert len(PURE_FILES) >= 6
