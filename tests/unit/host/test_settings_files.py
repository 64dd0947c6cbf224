"""Finding and reading the settings files: paths, env overrides, fail-closed, ownership rule."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from eci.errors import SettingsError
from eci.host import settings_files
from eci.host.settings_files import (
    DEFAULT_ADMIN_SETTINGS,
    MAX_SETTINGS_BYTES,
    admin_settings_path,
    load_effective_settings,
    user_settings_path,
)

#: Admin files must be root-owned: creating one (or one owned by someone else) needs root.
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown files")

LOCKED_ON = {
    "configurationFileVersion": 2,
    "enhancedContainerIsolation": {"value": True, "locked": True},
}
UNLOCKED_ON = {
    "configurationFileVersion": 2,
    "enhancedContainerIsolation": {"value": True, "locked": False},
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No settings variables from the caller's environment; HOME is a fresh directory."""
    for name in ("ECI_ADMIN_SETTINGS", "ECI_USER_SETTINGS", "SUDO_USER", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    # Never read the machine's real admin file from a unit test.
    monkeypatch.setattr(settings_files, "DEFAULT_ADMIN_SETTINGS", tmp_path / "etc-eci" / "a.json")
    return home


def write(path: Path, data: Any, *, mode: int = 0o644, uid: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    path.chmod(mode)
    if uid is not None:
        os.chown(path, uid, -1)
    return path


# --- paths ----------------------------------------------------------------------------------


def test_default_admin_path_is_etc() -> None:
    assert Path("/etc/eci/admin-settings.json") == DEFAULT_ADMIN_SETTINGS


@pytest.mark.parametrize(
    ("explicit", "env", "expected"),
    [
        (Path("/given.json"), "/from-env.json", (Path("/given.json"), True)),
        (None, "/from-env.json", (Path("/from-env.json"), True)),
        (None, None, ("default", False)),
        (None, "", ("default", False)),
    ],
    ids=["argument-wins", "env", "default", "empty-env-is-unset"],
)
def test_admin_settings_path(
    monkeypatch: pytest.MonkeyPatch,
    explicit: Path | None,
    env: str | None,
    expected: tuple[Path | str, bool],
) -> None:
    if env is not None:
        monkeypatch.setenv("ECI_ADMIN_SETTINGS", env)
    path, chosen = expected
    if path == "default":
        path = settings_files.DEFAULT_ADMIN_SETTINGS
    assert admin_settings_path(explicit) == (path, chosen)


@pytest.mark.parametrize(
    ("explicit", "env", "expected"),
    [
        (
            Path("/given.json"),
            {"ECI_USER_SETTINGS": "/env.json", "SUDO_USER": "root"},
            "/given.json",
        ),
        (None, {"ECI_USER_SETTINGS": "/env.json", "SUDO_USER": "root"}, "/env.json"),
        (None, {}, "HOME/.config/eci/settings.json"),
        (None, {"XDG_CONFIG_HOME": "/xdg"}, "/xdg/eci/settings.json"),
        (None, {"XDG_CONFIG_HOME": "relative/xdg"}, "HOME/.config/eci/settings.json"),
        (
            None,
            {"SUDO_USER": "root", "XDG_CONFIG_HOME": "/xdg"},
            "/root/.config/eci/settings.json",
        ),
        (
            None,
            {"SUDO_USER": "no-such-user-eci-test"},
            "HOME/.config/eci/settings.json",
        ),
    ],
    ids=[
        "argument-wins",
        "env-wins-over-sudo",
        "home",
        "xdg",
        "relative-xdg-ignored",
        "sudo-user-home-and-xdg-ignored",
        "unknown-sudo-user-falls-back-to-home",
    ],
)
def test_user_settings_path(
    monkeypatch: pytest.MonkeyPatch,
    clean_env: Path,
    explicit: Path | None,
    env: dict[str, str],
    expected: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert user_settings_path(explicit) == Path(expected.replace("HOME", str(clean_env)))


# --- loading --------------------------------------------------------------------------------


def test_nothing_anywhere_is_the_builtin_default() -> None:
    effective = load_effective_settings()
    assert effective.eci_enabled is False
    assert effective.eci_source.kind == "default"
    assert (effective.admin_file, effective.user_file) == (None, None)


@pytest.mark.parametrize("how", ["argument", "env"])
def test_a_named_admin_file_that_is_missing_fails_closed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, how: str
) -> None:
    missing = tmp_path / "missing.json"
    if how == "env":
        monkeypatch.setenv("ECI_ADMIN_SETTINGS", str(missing))
    with pytest.raises(SettingsError) as info:
        load_effective_settings(admin_file=missing if how == "argument" else None)
    assert (info.value.file, info.value.json_path, info.value.reason) == (
        str(missing),
        "$",
        "file not found (it was named explicitly, so eci will not run without it)",
    )


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o444, 0o640], ids=oct)
@pytest.mark.root
@ROOT_ONLY
def test_root_owned_admin_file_is_used(tmp_path: Path, mode: int) -> None:
    admin = write(tmp_path / "admin.json", LOCKED_ON, mode=mode, uid=0)
    effective = load_effective_settings(admin_file=admin)
    assert effective.eci_enabled is True
    assert effective.eci_source.kind == "admin-locked"
    assert effective.admin_file == str(admin)


@pytest.mark.root
@ROOT_ONLY
def test_admin_file_at_the_default_path_is_used() -> None:
    write(settings_files.DEFAULT_ADMIN_SETTINGS, LOCKED_ON, uid=0)
    effective = load_effective_settings()
    assert effective.eci_source.kind == "admin-locked"
    assert effective.admin_file == str(settings_files.DEFAULT_ADMIN_SETTINGS)


@pytest.mark.parametrize(
    ("uid", "mode", "shown"),
    [
        (1, 0o644, "owned by uid 1 with mode 0644 (-rw-r--r--)"),
        (0, 0o666, "owned by uid 0 with mode 0666 (-rw-rw-rw-)"),
        (0, 0o664, "owned by uid 0 with mode 0664 (-rw-rw-r--)"),
        (0, 0o646, "owned by uid 0 with mode 0646 (-rw-r--rw-)"),
        (1, 0o600, "owned by uid 1 with mode 0600 (-rw-------)"),
    ],
    ids=[
        "not-root-owned",
        "world-and-group-writable",
        "group-writable",
        "world-writable",
        "user-owned-private",
    ],
)
@pytest.mark.root
@ROOT_ONLY
def test_unsafe_admin_file_is_refused(tmp_path: Path, uid: int, mode: int, shown: str) -> None:
    admin = write(tmp_path / "admin.json", LOCKED_ON, mode=mode, uid=uid)
    with pytest.raises(SettingsError) as info:
        load_effective_settings(admin_file=admin)
    assert info.value.json_path == "$"
    assert info.value.reason == (
        "admin settings must be owned by root and writable only by root, or users could "
        f"turn ECI off; this file is {shown}; "
        f"fix: chown root:root {admin}; chmod 644 {admin}"
    )


def test_admin_file_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "admin.json"
    directory.mkdir()
    with pytest.raises(SettingsError) as info:
        load_effective_settings(admin_file=directory)
    assert info.value.reason == "cannot read: Is a directory"


@pytest.mark.timeout(10)
def test_admin_file_that_is_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "admin.json"
    os.mkfifo(fifo, 0o644)
    with pytest.raises(SettingsError) as info:
        load_effective_settings(admin_file=fifo)
    assert info.value.reason == "not a regular file (prw-r--r--)"


def test_unreadable_admin_file_reports_the_os_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Root reads through any mode bits, so the denial is simulated at the syscall.
    admin = write(tmp_path / "admin.json", LOCKED_ON)
    real_open = os.open

    def deny(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(path) == admin:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(SettingsError) as info:
        load_effective_settings(admin_file=admin)
    assert (info.value.file, info.value.reason) == (str(admin), "cannot open: Permission denied")


@pytest.mark.root
@ROOT_ONLY
def test_oversized_admin_file_is_refused(tmp_path: Path) -> None:
    admin = write(tmp_path / "admin.json", " " * MAX_SETTINGS_BYTES + json.dumps(LOCKED_ON))
    with pytest.raises(SettingsError) as info:
        load_effective_settings(admin_file=admin)
    assert info.value.reason == "larger than 1048576 bytes: not a settings file"


@pytest.mark.root
@ROOT_ONLY
def test_invalid_admin_file_names_the_file_and_path(tmp_path: Path) -> None:
    admin = write(
        tmp_path / "admin.json",
        {"configurationFileVersion": 2, "enhancedContainerIsolation": {"value": "true"}},
    )
    with pytest.raises(SettingsError) as info:
        load_effective_settings(admin_file=admin)
    assert str(info.value) == (
        f"{admin}: $.enhancedContainerIsolation.value: expected true or false, got 'true'"
    )


# --- the user file --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "enabled", "kind"),
    [(None, False, "default"), ({"enhancedContainerIsolation": True}, True, "user")],
    ids=["missing-user-file", "user-on"],
)
def test_user_file_without_admin(
    tmp_path: Path, user: dict[str, Any] | None, enabled: bool, kind: str
) -> None:
    user_file = tmp_path / "user.json"
    if user is not None:
        write(user_file, user, mode=0o666, uid=1 if os.geteuid() == 0 else None)
    effective = load_effective_settings(user_file=user_file)
    assert (effective.eci_enabled, effective.eci_source.kind) == (enabled, kind)
    assert effective.user_file == (str(user_file) if user is not None else None)


def test_user_file_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    user_file = write(tmp_path / "u.json", {"enhancedContainerIsolation": True})
    monkeypatch.setenv("ECI_USER_SETTINGS", str(user_file))
    effective = load_effective_settings()
    assert effective.eci_source.kind == "user"
    assert effective.user_file == str(user_file)


def test_user_file_in_home_is_found(clean_env: Path) -> None:
    write(clean_env / ".config" / "eci" / "settings.json", {"enhancedContainerIsolation": True})
    assert load_effective_settings().eci_enabled is True


def test_invalid_user_file_is_an_error_when_it_matters(tmp_path: Path) -> None:
    user_file = write(tmp_path / "user.json", {"enhancedContainerIsolation": "on"})
    with pytest.raises(SettingsError) as info:
        load_effective_settings(user_file=user_file)
    assert (info.value.file, info.value.json_path) == (
        str(user_file),
        "$.enhancedContainerIsolation",
    )


@pytest.mark.root
@ROOT_ONLY
def test_unlocked_admin_lets_an_invalid_user_file_fail(tmp_path: Path) -> None:
    admin = write(tmp_path / "admin.json", UNLOCKED_ON)
    user_file = write(tmp_path / "user.json", "{not json")
    with pytest.raises(SettingsError) as info:
        load_effective_settings(admin_file=admin, user_file=user_file)
    assert info.value.file == str(user_file)


@pytest.mark.root
@ROOT_ONLY
def test_locked_admin_turns_an_invalid_user_file_into_a_warning(tmp_path: Path) -> None:
    admin = write(tmp_path / "admin.json", LOCKED_ON)
    user_file = write(tmp_path / "user.json", "{not json")
    effective = load_effective_settings(admin_file=admin, user_file=user_file)
    assert effective.eci_enabled is True
    assert effective.user_file is None
    assert effective.warnings == (
        "user settings ignored (locked by admin), and they are invalid: "
        f"{user_file}: $: not valid JSON: Expecting property name enclosed in double quotes "
        "at line 1 column 2",
    )


@pytest.mark.root
@ROOT_ONLY
def test_locked_admin_overrides_the_user_with_a_warning(tmp_path: Path) -> None:
    admin = write(tmp_path / "admin.json", LOCKED_ON)
    user_file = write(tmp_path / "user.json", {"enhancedContainerIsolation": False})
    effective = load_effective_settings(admin_file=admin, user_file=user_file)
    assert effective.eci_enabled is True
    assert effective.warnings == (
        f"user setting enhancedContainerIsolation=false in {user_file} ignored: locked by "
        f"admin ({admin} sets true)",
    )
