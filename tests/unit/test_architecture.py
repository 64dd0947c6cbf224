"""The rooms' import rules: pure cores (``PURE``, the one list of them) import no IO module;
the shared contract imports nothing; the runtime imports only the stdlib and what it shares
with eci; the shim's create path (run as `python3 -I -S`) imports nothing heavy."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "eci"
#: The pure cores, the one list of them (mypy is strict for all of src/eci): they do no IO.
#: A directory means every module in it.
PURE = [
    "contract",
    "dockerapi",
    "policy",
    "settings",
    "errors.py",
    "engine/config.py",
    "engine/layout.py",
    "images/manifest.py",
    "runtime/confine/mountguard.py",
    "runtime/linux/capabilities.py",
    "runtime/shim/invocation.py",
    "runtime/shim/spec.py",
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
    "os",
    "fcntl",
    "signal",
    "select",
    "selectors",
    "threading",
    "_thread",
    "tempfile",
    "mmap",
    "http",
    "urllib.request",
}
#: What the runtime may import of eci besides its own room.
RUNTIME_MAY_IMPORT = ("eci.contract", "eci.errors", "eci.auditfile")
#: Never on the shim's create path (`python3 -I -S`, every container start): each costs
#: milliseconds to import (dataclasses alone ~18 ms, through inspect), more than the
#: interpreter's own start.
NOT_ON_THE_COLD_PATH = (
    "argparse",
    "ast",
    "asyncio",
    "dataclasses",
    "inspect",
    "logging",
    "pathlib",
    "secrets",
    "shutil",
    "subprocess",
    "tempfile",
    "threading",
    "tomllib",
    "typing",
    "uuid",
)


def _modules(entry: str) -> list[Path]:
    path = SRC / entry
    if path.is_file():
        return [path]
    return sorted(path.rglob("*.py")) if path.is_dir() else []


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update(_imports_of(node))
    return names


def _imports_of(node: ast.Import | ast.ImportFrom) -> set[str]:
    """The modules one import statement names (``from eci.x import y`` names ``eci.x.y`` too
    when that is a module)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if not node.module or node.level:
        return set()
    names = {node.module}
    if node.module.split(".")[0] == "eci":
        names.update(
            f"{node.module}.{alias.name}"
            for alias in node.names
            if _source_of(f"{node.module}.{alias.name}").is_file()
        )
    return names


def _source_of(module: str) -> Path:
    path = SRC.parent / module.replace(".", "/")
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _within(name: str, modules: Collection[str]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


PURE_FILES = [p for entry in PURE for p in _modules(entry)]


@pytest.mark.parametrize("entry", PURE)
def test_every_pure_entry_names_modules(entry: str) -> None:
    """A renamed or moved module must not drop out of the check unseen."""
    assert _modules(entry), f"src/eci/{entry} does not exist"


@pytest.mark.parametrize("path", PURE_FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_pure_core_imports_no_io(path: Path) -> None:
    bad = {n for n in _imports(path) if _within(n, FORBIDDEN)}
    assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


CONTRACT_FILES = _modules("contract")


@pytest.mark.parametrize("path", CONTRACT_FILES, ids=lambda p: p.name)
def test_the_contract_imports_nothing(path: Path) -> None:
    """Shared by the proxy and the runtime's cold path: plain values and string functions."""
    assert _imports(path) <= {"__future__"}, f"{path.name} imports {sorted(_imports(path))}"


def test_the_contract_package_init_is_empty() -> None:
    assert (SRC / "contract" / "__init__.py").read_text() == ""


RUNTIME_FILES = sorted((SRC / "runtime").rglob("*.py"))


@pytest.mark.parametrize("path", RUNTIME_FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_runtime_shim_imports_only_the_stdlib(path: Path) -> None:
    """The shim runs as `python3 -I -S` on every container start: no site-packages at all."""
    bad = set()
    for name in _imports(path):
        top = name.split(".")[0]
        if top == "eci":
            if name != "eci" and not _within(name, ("eci.runtime", *RUNTIME_MAY_IMPORT)):
                bad.add(name)
        elif top not in sys.stdlib_module_names and top != "__future__":
            bad.add(name)
    assert not bad, f"{path.name} imports {sorted(bad)}"


def _run_shim(*argv: str, python: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """The real entry point, as the dispatcher runs it: no site-packages, no environment."""
    return subprocess.run(
        ["/usr/bin/python3", "-I", "-S", *python, str(SRC / "runtime" / "entry.py"), *argv],
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


def _imported(report: str) -> set[str]:
    """The modules a `python3 -X importtime` run imported, from its report on stderr."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in report.splitlines()
        if line.startswith("import time:") and not line.endswith("imported package")
    }


def _run_time_imports(path: Path) -> set[str]:
    """What ``path`` may import when it runs, function-local imports included; not what it
    imports for mypy only (under ``if TYPE_CHECKING:``)."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update(_imports_of(node))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return names - {"__future__"}


def _create_up_to_the_rootfs(tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """A create as dockerd sends it, run with `-X importtime`: it goes through the config, the
    spec and the namespace check, and is refused at the rootfs (not an overlay2 mount: the
    last step before anything on the host is touched). Returns the run and its log."""
    data, state, bundle = tmp_path / "data", tmp_path / "state", tmp_path / "bundle"
    for directory in (data, state / "config", bundle):
        directory.mkdir(parents=True)
    (state / "config" / "runtime.conf").write_text(
        f"dockerDataRoot={data}\nrestrictedPaths=/etc\nruntimeDir={tmp_path}/run\n"
        f"rootfsDir={tmp_path}/rootfs\nrangesDir={tmp_path}/ranges\n"
    )
    namespaces = [{"type": kind} for kind in ("pid", "ipc", "uts", "mount", "network")]
    spec = {"root": {"path": "rootfs"}, "linux": {"namespaces": namespaces}}
    (bundle / "config.json").write_text(json.dumps(spec))
    log = tmp_path / "log"
    result = _run_shim(
        "--eci-state", str(state), "--root", str(tmp_path / "runc"), "--log", str(log),
        "create", "--bundle", str(bundle), "cid",
        python=("-X", "importtime"),
    )  # fmt: skip
    return result, log.read_text()


def test_the_shim_s_create_path_imports_nothing_heavy(tmp_path: Path) -> None:
    result, log = _create_up_to_the_rootfs(tmp_path)
    assert result.returncode == 1
    assert "is not a dockerd overlay2 mount" in log  # it got that far
    imported = _imported(result.stderr)
    assert {"json", "eci.runtime.shim.spec", "eci.contract.grants"} <= imported
    heavy = sorted(name for name in imported if _within(name, NOT_ON_THE_COLD_PATH))
    assert not heavy, f"the shim's create imports {heavy}"
    outside = sorted(
        name
        for name in imported
        if name.startswith("eci.") and not _within(name, ("eci.runtime", *RUNTIME_MAY_IMPORT))
    )
    assert not outside, f"the shim's create imports {outside}"


def test_what_the_create_path_imports_later_is_light_too(tmp_path: Path) -> None:
    """Everything the modules of a create import in their functions (capabilities, the
    requester's label, the audit log…), imported as the shim would, adds nothing heavy."""
    result, _ = _create_up_to_the_rootfs(tmp_path)
    todo = [m for m in _imported(result.stderr) if m.startswith("eci.")]
    seen: set[str] = set()
    while todo:  # what they import in functions, and so on
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += [m for m in _run_time_imports(_source_of(module)) if m.startswith("eci.")]
    later = sorted(set().union(*(_run_time_imports(_source_of(m)) for m in seen)))
    assert "eci.runtime.linux.capabilities" in later
    code = (
        f"import sys; sys.path.insert(0, {str(SRC.parent)!r})\n"
        f"for name in {later!r}: __import__(name)\n"
        "print(' '.join(sys.modules))"
    )
    imported = subprocess.run(
        ["/usr/bin/python3", "-I", "-S", "-c", code],
        capture_output=True,
        text=True,
        env={},
        check=True,
    ).stdout.split()
    heavy = sorted(name for name in imported if _within(name, NOT_ON_THE_COLD_PATH))
    assert not heavy, f"the shim's create may import {heavy}"


#: Which rooms each room may import (besides itself): the map of docs/development.md. A room
#: is a top-level package or module of `eci`, or one of the runtime's four sub-packages.
ROOM_IMPORTS: dict[str, set[str]] = {
    "eci": set(),  # the package's own __init__
    "contract": set(),
    "errors": {"contract"},
    "auditfile": set(),
    "settings": {"dockerapi", "errors"},
    "dockerapi": {"errors"},
    "policy": {"contract", "dockerapi", "errors", "settings"},
    "images": {"errors"},
    "runtime/linux": set(),
    "runtime/shim": {"runtime/linux", "contract", "errors", "auditfile"},
    "runtime/confine": {"runtime/linux", "runtime/shim", "contract", "errors", "auditfile"},
    "runtime/cp": {"runtime/confine", "runtime/linux"},
    "runtime": {"runtime/shim", "runtime/confine", "runtime/cp"},
    "host": {"runtime/linux", "runtime/confine", "errors", "settings"},
    "engine": {"runtime", "runtime/shim", "host", "policy", "settings", "errors"},
    "proxy": {
        *("runtime", "runtime/cp", "engine", "policy", "dockerapi", "settings"),
        *("contract", "errors", "auditfile"),
    },
    "verify": {"engine", "policy", "dockerapi", "errors"},
    "cli": {"engine", "host", "images", "settings", "verify", "errors"},
}
RUNTIME_ROOMS = ("linux", "shim", "confine", "cp")


def _room(parts: tuple[str, ...]) -> str:
    """The room of `eci.<parts>` (a module path inside the eci package)."""
    if not parts or parts == ("__init__.py",):
        return "eci"
    top = parts[0].removesuffix(".py")
    if top == "runtime" and len(parts) > 1 and parts[1].removesuffix(".py") in RUNTIME_ROOMS:
        return f"runtime/{parts[1].removesuffix('.py')}"
    return top


ALL_FILES = sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_rooms_import_only_the_rooms_the_map_allows(path: Path) -> None:
    room = _room(path.relative_to(SRC).parts)
    assert room in ROOM_IMPORTS, f"{room} is not on the map of rooms"
    allowed = ROOM_IMPORTS[room] | {room}
    reached = {
        _room(tuple(name.split(".")[1:])) for name in _imports(path) if name.startswith("eci.")
    }
    assert reached <= allowed, f"{room} imports {sorted(reached - allowed)}"


def test_the_map_names_only_rooms_that_exist() -> None:
    rooms = {_room(p.relative_to(SRC).parts) for p in ALL_FILES}
    assert set(ROOM_IMPORTS) == rooms
