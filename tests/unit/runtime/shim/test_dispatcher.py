"""The sh dispatcher: what may skip the Python half, with runc replaced by `echo`.

Fail-closed rule: only commands that take no spec reach runc directly; anything else —
including command lines whose command hides behind Go-style `-flag value` globals — goes to
the Python half, which rewrites or refuses.

Each check runs both ways the dispatcher is run: through the engine's launcher (what dockerd
runs: the engine's values set, the dispatcher sourced) and directly with `--eci-state`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from eci.engine.config import runtime_config, runtime_launcher
from eci.engine.layout import EngineLayout

DISPATCHER = Path(__file__).resolve().parents[4] / "src" / "eci" / "runtime" / "eci-runtime"

Dispatch = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(params=["launcher", "direct"])
def dispatch(request: pytest.FixtureRequest, tmp_path: Path) -> Dispatch:
    # a state dir whose path needs quoting in sh
    layout = EngineLayout.for_state_dir(tmp_path / "state 'x'")
    layout.config_dir.mkdir(parents=True)
    layout.runtime_config.write_text(runtime_config(layout))
    launcher = tmp_path / "sysbox-runc"
    launcher.write_text(runtime_launcher(layout, DISPATCHER))
    launcher.chmod(0o755)

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        if request.param == "launcher":
            command = ["sh", str(launcher)]
        else:
            command = ["sh", str(DISPATCHER), "--eci-state", str(layout.state_dir)]
        return subprocess.run(
            [*command, "--log", str(tmp_path / "log"), *argv],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "ECI_BACKEND_RUNTIME": "echo"},
        )

    run.layout = layout  # type: ignore[attr-defined]
    return run


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
def test_spec_free_commands_go_straight_to_runc(
    dispatch: Dispatch, tmp_path: Path, argv: list[str]
) -> None:
    result = dispatch(*argv)
    assert result.returncode == 0
    echoed = result.stdout.split()
    assert echoed == ["--log", str(tmp_path / "log"), *argv]  # nothing of eci's reaches runc


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
def test_everything_else_goes_to_the_python_half(
    dispatch: Dispatch, tmp_path: Path, argv: list[str]
) -> None:
    result = dispatch(*argv)
    assert result.stdout == ""  # runc (echo) never ran
    assert result.returncode == 1
    assert "eci" in (tmp_path / "log").read_text()


def test_the_python_half_is_told_the_engine(dispatch: Dispatch, tmp_path: Path) -> None:
    """The shim gets `--eci-state <state dir>` whichever way the dispatcher was run (a state
    dir that needs quoting included), and runc's own arguments unchanged."""
    result = dispatch("create", "--bundle", str(tmp_path / "b"), "c1")
    log = (tmp_path / "log").read_text()
    assert result.returncode == 1
    # the engine was found (its runtime.conf read); the create fails on the missing bundle
    assert "runtime.conf" not in log
    assert "--eci-state" not in log
    assert f"{tmp_path}/b/config.json" in log


def test_delete_without_staged_state_skips_python(dispatch: Dispatch) -> None:
    layout: EngineLayout = dispatch.layout  # type: ignore[attr-defined]
    assert dispatch("delete", "--force", "c1").stdout.split()[-3:] == ["delete", "--force", "c1"]
    (layout.runtime_dir / "c1").mkdir(parents=True)
    staged = dispatch("delete", "--force", "c1")
    assert staged.stdout == ""  # something of ours is staged: the Python half must clean up
