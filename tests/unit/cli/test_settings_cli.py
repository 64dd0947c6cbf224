"""`eci settings show|schema` as an admin uses them (in-process through typer's runner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eci.cli.main import app

runner = CliRunner()


def _file(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    path.chmod(0o644)
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    admin = _file(
        tmp_path / "admin.json",
        {
            "configurationFileVersion": 2,
            "enhancedContainerIsolation": {
                "value": True,
                "locked": False,
                "dockerSocketMount": {"imageList": {"images": ["docker:cli"]}},
            },
        },
    )
    user = _file(tmp_path / "user.json", {"enhancedContainerIsolation": False})
    return admin, user


def _show(tmp_path: Path, *args: str) -> dict[str, object]:
    result = runner.invoke(app, ["settings", "show", "--json", "--state-dir", str(tmp_path), *args])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_unlocked_admin_lets_the_user_decide(tmp_path: Path, files: tuple[Path, Path]) -> None:
    admin, user = files
    data = _show(tmp_path, "--admin-settings", str(admin), "--user-settings", str(user))
    eci = data["enhancedContainerIsolation"]
    assert isinstance(eci, dict)
    assert eci["value"] is False
    assert eci["source"]["kind"] == "user"
    assert eci["dockerSocketMount"]["imageList"]["images"] == ["docker:cli"]
    assert data["differsFromRunningEngine"] is False


def test_env_var_names_the_admin_file(
    tmp_path: Path, files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, _ = files
    monkeypatch.setenv("ECI_ADMIN_SETTINGS", str(admin))
    monkeypatch.setenv("ECI_USER_SETTINGS", str(tmp_path / "absent.json"))
    eci = _show(tmp_path)["enhancedContainerIsolation"]
    assert isinstance(eci, dict)
    assert (eci["value"], eci["source"]["kind"]) == (True, "admin-default")


def test_an_engine_state_the_user_may_not_read_is_not_compared(
    tmp_path: Path, files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """engine.json is root's and group docker's: anyone else still sees their settings."""
    import eci.engine.state

    def unreadable(path: Path) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(eci.engine.state, "load_state", unreadable)
    admin, user = files
    data = _show(tmp_path, "--admin-settings", str(admin), "--user-settings", str(user))
    assert data["differsFromRunningEngine"] is False


def test_human_output_names_source_and_images(tmp_path: Path, files: tuple[Path, Path]) -> None:
    admin, user = files
    result = runner.invoke(
        app,
        [
            "settings",
            "show",
            "--state-dir",
            str(tmp_path),
            "--admin-settings",
            str(admin),
            "--user-settings",
            str(user),
        ],
    )
    assert result.exit_code == 0
    assert "Enhanced Container Isolation: OFF" in result.stdout
    assert f"user settings {user}" in result.stdout
    assert "docker:cli" in result.stdout


def test_invalid_admin_file_exits_1_naming_the_path(tmp_path: Path) -> None:
    bad = _file(
        tmp_path / "bad.json",
        {"configurationFileVersion": 2, "enhancedContainerIsolation": {"value": "on"}},
    )
    result = runner.invoke(
        app, ["settings", "show", "--admin-settings", str(bad), "--state-dir", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert f"{bad}: $.enhancedContainerIsolation.value:" in result.stderr


def test_schema_command_prints_the_published_schema() -> None:
    result = runner.invoke(app, ["settings", "schema"])
    assert result.exit_code == 0
    published = Path(__file__).resolve().parents[3] / "docs" / "admin-settings.schema.json"
    assert json.loads(result.stdout) == json.loads(published.read_text())
