"""settings room: read, validate and merge eci's settings files.

Two files decide how eci behaves: the admin's ``admin-settings.json`` (ECI on/off, whether
users may change that, who may mount the Docker socket) and a user's own ``settings.json``
(ECI on/off, when the admin did not lock it). This room is pure: it turns bytes into frozen
models (``parse_admin_settings``, ``parse_user_settings``), refusing anything invalid with a
``SettingsError`` that names the file, the JSON path and the reason, and merges the models
into ``EffectiveSettings`` that say where each value came from (``resolve``). Finding and
reading the files is ``eci.host.settings_files``; the files' JSON Schemas are in
``eci.settings.schema``.
"""

from eci.settings.effective import EffectiveSettings, SettingSource, SourceKind, resolve
from eci.settings.model import (
    AdminSettings,
    CommandList,
    DockerSocketMount,
    EnhancedContainerIsolation,
    ImageList,
    UserSettings,
)
from eci.settings.parse import parse_admin_settings, parse_user_settings

__all__ = [
    "AdminSettings",
    "CommandList",
    "DockerSocketMount",
    "EffectiveSettings",
    "EnhancedContainerIsolation",
    "ImageList",
    "SettingSource",
    "SourceKind",
    "UserSettings",
    "parse_admin_settings",
    "parse_user_settings",
    "resolve",
]
