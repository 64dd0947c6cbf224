"""Find and read the settings files, then hand their bytes to the pure ``eci.settings`` room.

Where the files are:

- admin: the path given on the command line, else ``$ECI_ADMIN_SETTINGS``, else
  ``/etc/eci/admin-settings.json``. At the default path a missing file means "no admin
  settings"; a file that was named (argument or environment) must exist, because an admin who
  names a file expects it to be used: eci fails closed rather than run without it.
- user: the path given, else ``$ECI_USER_SETTINGS``, else the invoking user's
  ``~/.config/eci/settings.json`` (under sudo, ``$SUDO_USER``'s home; otherwise
  ``$XDG_CONFIG_HOME/eci/settings.json`` when that is set). A missing user file means "no
  user settings".

The admin file must be owned by root and writable by nobody else: whoever can write it can
turn ECI off for everyone. Every check is made on the opened file descriptor, so the file
checked is the file read.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import pwd
import stat
from pathlib import Path

from eci.errors import SettingsError
from eci.settings import (
    AdminSettings,
    EffectiveSettings,
    UserSettings,
    parse_admin_settings,
    parse_user_settings,
    resolve,
)

__all__ = [
    "ADMIN_SETTINGS_ENV",
    "DEFAULT_ADMIN_SETTINGS",
    "MAX_SETTINGS_BYTES",
    "USER_SETTINGS_ENV",
    "admin_settings_path",
    "load_effective_settings",
    "user_settings_path",
]

DEFAULT_ADMIN_SETTINGS = Path("/etc/eci/admin-settings.json")
ADMIN_SETTINGS_ENV = "ECI_ADMIN_SETTINGS"
USER_SETTINGS_ENV = "ECI_USER_SETTINGS"
#: A settings file is a few hundred bytes; anything over this is not one.
MAX_SETTINGS_BYTES = 1 << 20

_USER_SETTINGS_RELATIVE = Path("eci", "settings.json")


def admin_settings_path(explicit: Path | None = None) -> tuple[Path, bool]:
    """The admin settings path, and whether it was chosen explicitly (argument or env)."""
    if explicit is not None:
        return explicit.absolute(), True
    from_env = os.environ.get(ADMIN_SETTINGS_ENV)
    if from_env:
        return Path(from_env).absolute(), True
    return DEFAULT_ADMIN_SETTINGS, False


def user_settings_path(explicit: Path | None = None) -> Path:
    """The invoking user's settings path (see the module docstring for the search order)."""
    if explicit is not None:
        return explicit.absolute()
    from_env = os.environ.get(USER_SETTINGS_ENV)
    if from_env:
        return Path(from_env)
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user:
        try:
            return Path(pwd.getpwnam(sudo_user).pw_dir, ".config", _USER_SETTINGS_RELATIVE)
        except KeyError:
            pass  # a SUDO_USER unknown to passwd: fall back to our own home
    else:
        xdg = os.environ.get("XDG_CONFIG_HOME")
        if xdg and Path(xdg).is_absolute():  # the XDG spec says to ignore relative paths
            return Path(xdg, _USER_SETTINGS_RELATIVE)
    return Path.home() / ".config" / _USER_SETTINGS_RELATIVE


def load_effective_settings(
    admin_file: Path | None = None, user_file: Path | None = None
) -> EffectiveSettings:
    """Read, check, parse and merge both settings files.

    Raises ``SettingsError`` when the admin file is invalid, unsafe (see the module
    docstring), unreadable, or named but missing, and when the user file is invalid or
    unreadable while it matters: if the admin locked the setting, a bad user file is only
    reported as a warning.
    """
    admin_path, admin_explicit = admin_settings_path(admin_file)
    raw_admin = _read(admin_path, required=admin_explicit, admin=True)
    admin: AdminSettings | None = None
    if raw_admin is not None:
        admin = parse_admin_settings(raw_admin, str(admin_path))
    locked = (
        admin is not None
        and admin.enhancedContainerIsolation is not None
        and admin.enhancedContainerIsolation.locked
    )

    user_path = user_settings_path(user_file)
    user: UserSettings | None = None
    ignored: list[str] = []
    try:
        raw_user = _read(user_path, required=False, admin=False)
        if raw_user is not None:
            user = parse_user_settings(raw_user, str(user_path))
    except SettingsError as exc:
        if not locked:
            raise
        ignored.append(f"user settings ignored (locked by admin), and they are invalid: {exc}")

    effective = resolve(
        admin,
        str(admin_path) if admin is not None else None,
        user,
        str(user_path) if user is not None else None,
    )
    if ignored:
        effective = dataclasses.replace(effective, warnings=(*effective.warnings, *ignored))
    return effective


def _read(path: Path, *, required: bool, admin: bool) -> bytes | None:
    """The file's bytes; ``None`` when it is missing and not ``required``."""
    origin = str(path)
    try:
        # O_NONBLOCK: opening a FIFO put in the file's place must not hang eci.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        if not required:
            return None
        raise SettingsError(
            origin,
            "$",
            "file not found (it was named explicitly, so eci will not run without it)",
        ) from exc
    except OSError as exc:
        raise SettingsError(origin, "$", f"cannot open: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise SettingsError(origin, "$", f"cannot read: {os.strerror(errno.EISDIR)}")
        if not stat.S_ISREG(info.st_mode):
            raise SettingsError(origin, "$", f"not a regular file ({stat.filemode(info.st_mode)})")
        if admin:
            _check_admin_file_safe(origin, info)
        data = _read_at_most(fd, MAX_SETTINGS_BYTES + 1)
    except OSError as exc:
        raise SettingsError(origin, "$", f"cannot read: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if len(data) > MAX_SETTINGS_BYTES:
        raise SettingsError(
            origin, "$", f"larger than {MAX_SETTINGS_BYTES} bytes: not a settings file"
        )
    return data


def _check_admin_file_safe(origin: str, info: os.stat_result) -> None:
    if info.st_uid == 0 and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return
    raise SettingsError(
        origin,
        "$",
        "admin settings must be owned by root and writable only by root, or users could "
        f"turn ECI off; this file is owned by uid {info.st_uid} with mode "
        f"{stat.S_IMODE(info.st_mode):04o} ({stat.filemode(info.st_mode)}); "
        f"fix: chown root:root {origin}; chmod 644 {origin}",
    )


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
