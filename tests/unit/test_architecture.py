"""Pure cores do no IO: they import no asyncio, socket, subprocess, h11 or os-level helpers."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "eci"
PURE = [
    "settings",
    "policy",
    "dockerapi",
    "runtime/shim/spec.py",
    "engine/layout.py",
    "engine/config.py",
    "errors.py",
    "contract",
    "images/manifest.py",
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


RUNTIME_FILES = sorted((SRC / "runtime").rglob("*.py"))


@pytest.mark.parametrize("path", RUNTIME_FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_runtime_shim_imports_only_the_stdlib(path: Path) -> None:
    """The shim runs as `python3 -I -S` on every container start: no site-packages at all."""
    allowed_eci = {"eci", "eci.errors"}
    bad = set()
    for name in _imports(path):
        top = name.split(".")[0]
        if top == "eci":
            if name not in allowed_eci and not name.startswith(("eci.runtime", "eci.contract")):
                bad.add(name)
        elif top not in sys.stdlib_module_names and top != "__future__":
            bad.add(name)
    assert not bad, f"{path.name} imports {sorted(bad)}"


def _run_shim(*argv: str) -> subprocess.CompletedProcess[str]:
    """The real entry point, as the dispatcher runs it: no site-packages, no environment."""
    return subprocess.run(
        ["/usr/bin/python3", "-I", "-S", str(SRC / "runtime" / "entry.py"), *argv],
        capture_output=True,
        text=True,
        env={},
    )


def test_shim_starts_without_site_packages(tmp_path: Path) -> None:
    """Refuses clearly without --eci-state, in runc's JSON log format."""
    log = tmp_path / "log.json"
    result = _run_shim(
        "--log", str(log), "--log-format", "json", "create", "--bundle", str(tmp_path), "cid"
    )
    assert result.returncode == 1, result.stderr
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error"
    assert "--eci-state" in entry["msg"]


@pytest.mark.parametrize(
    "bad_id",
    ["../../etc", "a/b", "-rf", "", "a..b"],
    ids=["dotdot", "slash", "flag", "empty", "inner-dotdot"],
)
def test_shim_refuses_container_ids_that_could_name_other_paths(
    tmp_path: Path, bad_id: str
) -> None:
    log = tmp_path / "log"
    result = _run_shim("--eci-state", str(tmp_path), "--log", str(log), "delete", "--", bad_id)
    assert result.returncode == 1
    assert "refusing container id" in log.read_text()
