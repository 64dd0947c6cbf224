"""The sh dispatcher: what may skip the Python half, with runc replaced by `echo`.

Fail-closed rule: only commands that take no spec reach runc directly; anything else —
including command lines whose command hides behind Go-style `-flag value` globals — goes to
the Python half, which rewrites or refuses.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

DISPATCHER = Path(__file__).resolve().parents[3] / "src" / "eci" / "runtime" / "eci-runtime"


def dispatch(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    log = tmp_path / "log"
    return subprocess.run(
        ["sh", str(DISPATCHER), "--eci-state", str(tmp_path), "--log", str(log), *argv],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "ECI_BACKEND_RUNTIME": "echo"},
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["start", "c1"],
        ["state", "c1"],
        ["kill", "c1", "9"],
        ["--root", "/r", "ps", "c1"],
        ["-root", "/r", "exec", "c1"],
        ["features"],
        ["--version"],
    ],
    ids=["start", "state", "kill", "ps", "go-style-exec", "features", "version"],
)
def test_spec_free_commands_go_straight_to_runc(tmp_path: Path, argv: list[str]) -> None:
    result = dispatch(tmp_path, *argv)
    assert result.returncode == 0
    echoed = result.stdout.split()
    assert "--eci-state" not in echoed
    assert str(tmp_path) not in echoed
    assert echoed[-len(argv) :] == argv


@pytest.mark.parametrize(
    "argv",
    [
        ["create", "--bundle", "/b", "c1"],
        ["-root", "/r", "create", "--bundle", "/b", "c1"],
        ["--root=/r", "-log-format", "json", "run", "c1"],
        ["restore", "c1"],
        ["some-new-command", "c1"],
    ],
    ids=["create", "go-style-root-create", "go-style-run", "restore", "unknown"],
)
def test_everything_else_goes_to_the_python_half(tmp_path: Path, argv: list[str]) -> None:
    result = dispatch(tmp_path, *argv)
    assert result.stdout == ""  # runc (echo) never ran
    assert result.returncode == 1
    assert "eci" in (tmp_path / "log").read_text()


def test_delete_without_staged_state_skips_python(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "runtime.conf").write_text(
        f"runtimeDir={tmp_path}/rt\nrootfsDir={tmp_path}/rootfs\nrangesDir={tmp_path}/r\n"
    )
    assert dispatch(tmp_path, "delete", "--force", "c1").stdout.split()[-3:] == [
        "delete",
        "--force",
        "c1",
    ]
    (tmp_path / "rt" / "c1").mkdir(parents=True)
    staged = dispatch(tmp_path, "delete", "--force", "c1")
    assert staged.stdout == ""  # something of ours is staged: the Python half must clean up
