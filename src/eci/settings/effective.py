"""Merge admin and user settings into the settings eci runs with, saying where each came from.

The rules (the same as Docker Desktop's) for the effective ``enhancedContainerIsolation``:

- no admin file, or one without an ``enhancedContainerIsolation`` section: the user's value
  if the user set one, else off (the built-in default);
- admin ``locked: true``: the admin's ``value``; a different user value is ignored, with a
  warning;
- admin ``locked: false``: the user's value if the user set one, else the admin's ``value``.

``dockerSocketMount`` and ``containerOwnership`` are the admin's alone: users cannot widen who
may mount the socket or reach another user's containers.
``resolve`` is a pure function; reading the files is ``eci.host.settings_files``' job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from eci.settings.model import AdminSettings, DockerSocketMount, UserSettings

__all__ = ["EffectiveSettings", "SettingSource", "SourceKind", "resolve"]

SourceKind = Literal["admin-locked", "admin-default", "user", "default"]


@dataclass(frozen=True, slots=True)
class SettingSource:
    """Where the effective ECI on/off value came from.

    ``file`` is the settings file that decided (``None`` for the built-in default when there
    is no admin file at all; for ``default`` with a file, the admin file that had no
    ``enhancedContainerIsolation`` section).
    """

    kind: SourceKind
    file: str | None

    def __post_init__(self) -> None:
        if self.kind not in get_args(SourceKind):
            raise ValueError(f"unknown setting source kind {self.kind!r}")

    def describe(self) -> str:
        """One human line, e.g. ``admin settings /etc/eci/admin-settings.json (locked)``."""
        at = f" {self.file}" if self.file else ""
        if self.kind == "admin-locked":
            return f"admin settings{at} (locked)"
        if self.kind == "admin-default":
            return f"admin settings{at} (default; not locked, and the user set no value)"
        if self.kind == "user":
            return f"user settings{at}"
        if self.file:
            return f"built-in default (admin settings {self.file} have no ECI section)"
        return "built-in default (no admin settings)"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "file": self.file, "description": self.describe()}


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    """The settings eci runs with. ``admin_file``/``user_file`` name the files that were read."""

    eci_enabled: bool
    eci_source: SettingSource
    docker_socket_mount: DockerSocketMount
    admin_file: str | None
    user_file: str | None
    warnings: tuple[str, ...]
    #: the admin's idRangesPerUser (None: the runtime's default, a fraction of the pool)
    id_ranges_per_user: int | None = None
    #: only a container's creator (or root) may act on it
    container_ownership: bool = True

    @property
    def locked(self) -> bool:
        """True when the admin locked the ECI setting."""
        return self.eci_source.kind == "admin-locked"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: the admin schema's camelCase shape, plus sources and warnings."""
        return {
            "enhancedContainerIsolation": {
                "value": self.eci_enabled,
                "locked": self.locked,
                "source": self.eci_source.to_json(),
                "dockerSocketMount": self.docker_socket_mount.model_dump(mode="json"),
                "idRangesPerUser": self.id_ranges_per_user,
                "containerOwnership": self.container_ownership,
            },
            "adminSettingsFile": self.admin_file,
            "userSettingsFile": self.user_file,
            "warnings": list(self.warnings),
        }


def resolve(
    admin: AdminSettings | None,
    admin_file: str | None,
    user: UserSettings | None,
    user_file: str | None,
) -> EffectiveSettings:
    """Merge parsed admin and user settings (either may be absent) by the table above.

    ``admin_file``/``user_file`` are the paths the settings were read from, used in sources
    and warnings; naming a file without passing its settings is a programming error.
    """
    if admin is None and admin_file is not None:
        raise ValueError(f"admin_file {admin_file!r} given without admin settings")
    if user is None and user_file is not None:
        raise ValueError(f"user_file {user_file!r} given without user settings")

    section = admin.enhancedContainerIsolation if admin is not None else None
    user_value = user.enhancedContainerIsolation if user is not None else None
    warnings: list[str] = []

    enabled: bool
    source: SettingSource
    ownership = section.containerOwnership if section is not None else True
    if section is None:
        socket = DockerSocketMount()
        if user_value is not None:
            enabled, source = user_value, SettingSource("user", user_file)
        else:
            enabled, source = False, SettingSource("default", admin_file)
    else:
        socket = section.dockerSocketMount
        if section.locked:
            enabled, source = section.value, SettingSource("admin-locked", admin_file)
            if user_value is not None and user_value != section.value:
                warnings.append(
                    f"user setting enhancedContainerIsolation={_json_bool(user_value)} in "
                    f"{user_file} ignored: locked by admin "
                    f"({admin_file} sets {_json_bool(section.value)})"
                )
        elif user_value is not None:
            enabled, source = user_value, SettingSource("user", user_file)
        else:
            enabled, source = section.value, SettingSource("admin-default", admin_file)

    if "*" in socket.imageList.images:
        warnings.append(
            f'WARNING: dockerSocketMount.imageList.images in {admin_file} contains "*": '
            "EVERY image may mount the Docker socket, and a container holding the socket "
            "controls the host; list only the images that need it"
        )

    return EffectiveSettings(
        eci_enabled=enabled,
        eci_source=source,
        docker_socket_mount=socket,
        admin_file=admin_file,
        user_file=user_file,
        warnings=tuple(warnings),
        id_ranges_per_user=section.idRangesPerUser if section is not None else None,
        container_ownership=ownership,
    )


def _json_bool(value: bool) -> str:
    return "true" if value else "false"
