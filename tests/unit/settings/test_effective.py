"""resolve(): the full admin x user truth table, sources, warnings, and to_json()."""

from __future__ import annotations

import json

import pytest

from eci.settings import (
    AdminSettings,
    CommandList,
    DockerSocketMount,
    EffectiveSettings,
    EnhancedContainerIsolation,
    ImageList,
    SettingSource,
    UserSettings,
    resolve,
)

ADMIN_FILE = "/etc/eci/admin-settings.json"
USER_FILE = "/root/.config/eci/settings.json"

SOCKET = DockerSocketMount(
    imageList=ImageList(images=("docker:cli",)),
    commandList=CommandList(type="deny", commands=("push",)),
)

ADMINS: dict[str, AdminSettings | None] = {
    "admin-none": None,
    "admin-no-section": AdminSettings(configurationFileVersion=2),
    "admin-locked-on": AdminSettings(
        configurationFileVersion=2,
        enhancedContainerIsolation=EnhancedContainerIsolation(
            value=True, locked=True, dockerSocketMount=SOCKET
        ),
    ),
    "admin-locked-off": AdminSettings(
        configurationFileVersion=2,
        enhancedContainerIsolation=EnhancedContainerIsolation(
            value=False, locked=True, dockerSocketMount=SOCKET
        ),
    ),
    "admin-unlocked-on": AdminSettings(
        configurationFileVersion=2,
        enhancedContainerIsolation=EnhancedContainerIsolation(
            value=True, locked=False, dockerSocketMount=SOCKET
        ),
    ),
    "admin-unlocked-off": AdminSettings(
        configurationFileVersion=2,
        enhancedContainerIsolation=EnhancedContainerIsolation(
            value=False, locked=False, dockerSocketMount=SOCKET
        ),
    ),
}
USERS: dict[str, UserSettings | None] = {
    "user-none": None,
    "user-unset": UserSettings(),
    "user-on": UserSettings(enhancedContainerIsolation=True),
    "user-off": UserSettings(enhancedContainerIsolation=False),
}

IGNORED_ON = (
    f"user setting enhancedContainerIsolation=true in {USER_FILE} ignored: locked by admin "
    f"({ADMIN_FILE} sets false)"
)
IGNORED_OFF = (
    f"user setting enhancedContainerIsolation=false in {USER_FILE} ignored: locked by admin "
    f"({ADMIN_FILE} sets true)"
)

# (admin, user) -> (eci_enabled, source kind, source file, warnings)
TABLE: dict[tuple[str, str], tuple[bool, str, str | None, tuple[str, ...]]] = {
    ("admin-none", "user-none"): (False, "default", None, ()),
    ("admin-none", "user-unset"): (False, "default", None, ()),
    ("admin-none", "user-on"): (True, "user", USER_FILE, ()),
    ("admin-none", "user-off"): (False, "user", USER_FILE, ()),
    ("admin-no-section", "user-none"): (False, "default", ADMIN_FILE, ()),
    ("admin-no-section", "user-unset"): (False, "default", ADMIN_FILE, ()),
    ("admin-no-section", "user-on"): (True, "user", USER_FILE, ()),
    ("admin-no-section", "user-off"): (False, "user", USER_FILE, ()),
    ("admin-locked-on", "user-none"): (True, "admin-locked", ADMIN_FILE, ()),
    ("admin-locked-on", "user-unset"): (True, "admin-locked", ADMIN_FILE, ()),
    ("admin-locked-on", "user-on"): (True, "admin-locked", ADMIN_FILE, ()),
    ("admin-locked-on", "user-off"): (True, "admin-locked", ADMIN_FILE, (IGNORED_OFF,)),
    ("admin-locked-off", "user-none"): (False, "admin-locked", ADMIN_FILE, ()),
    ("admin-locked-off", "user-unset"): (False, "admin-locked", ADMIN_FILE, ()),
    ("admin-locked-off", "user-on"): (False, "admin-locked", ADMIN_FILE, (IGNORED_ON,)),
    ("admin-locked-off", "user-off"): (False, "admin-locked", ADMIN_FILE, ()),
    ("admin-unlocked-on", "user-none"): (True, "admin-default", ADMIN_FILE, ()),
    ("admin-unlocked-on", "user-unset"): (True, "admin-default", ADMIN_FILE, ()),
    ("admin-unlocked-on", "user-on"): (True, "user", USER_FILE, ()),
    ("admin-unlocked-on", "user-off"): (False, "user", USER_FILE, ()),
    ("admin-unlocked-off", "user-none"): (False, "admin-default", ADMIN_FILE, ()),
    ("admin-unlocked-off", "user-unset"): (False, "admin-default", ADMIN_FILE, ()),
    ("admin-unlocked-off", "user-on"): (True, "user", USER_FILE, ()),
    ("admin-unlocked-off", "user-off"): (False, "user", USER_FILE, ()),
}


def test_the_table_covers_every_combination() -> None:
    assert set(TABLE) == {(a, u) for a in ADMINS for u in USERS}


def _resolve(admin_name: str, user_name: str) -> EffectiveSettings:
    admin, user = ADMINS[admin_name], USERS[user_name]
    return resolve(
        admin,
        ADMIN_FILE if admin is not None else None,
        user,
        USER_FILE if user is not None else None,
    )


@pytest.mark.parametrize(
    ("admin_name", "user_name"), list(TABLE), ids=[f"{a}/{u}" for a, u in TABLE]
)
def test_truth_table(admin_name: str, user_name: str) -> None:
    enabled, kind, file, warnings = TABLE[admin_name, user_name]
    effective = _resolve(admin_name, user_name)
    assert effective.eci_enabled is enabled
    assert effective.eci_source == SettingSource(kind, file)  # type: ignore[arg-type]
    assert effective.warnings == warnings
    assert effective.locked is (kind == "admin-locked")


@pytest.mark.parametrize(
    ("admin_name", "expected"),
    [
        ("admin-none", DockerSocketMount()),
        ("admin-no-section", DockerSocketMount()),
        ("admin-locked-on", SOCKET),
        ("admin-locked-off", SOCKET),
        ("admin-unlocked-on", SOCKET),
        ("admin-unlocked-off", SOCKET),
    ],
    ids=list(ADMINS),
)
def test_docker_socket_mount_always_comes_from_the_admin(
    admin_name: str, expected: DockerSocketMount
) -> None:
    for user_name in USERS:  # whatever the user says
        assert _resolve(admin_name, user_name).docker_socket_mount == expected


def test_files_read_are_recorded() -> None:
    effective = _resolve("admin-unlocked-on", "user-on")
    assert (effective.admin_file, effective.user_file) == (ADMIN_FILE, USER_FILE)
    nothing = _resolve("admin-none", "user-none")
    assert (nothing.admin_file, nothing.user_file) == (None, None)


@pytest.mark.parametrize(
    ("admin", "admin_file", "user", "user_file", "message"),
    [
        (None, ADMIN_FILE, None, None, "admin_file '/etc/eci/admin-settings.json' given"),
        (None, None, None, USER_FILE, "user_file '/root/.config/eci/settings.json' given"),
    ],
    ids=["admin-file-without-settings", "user-file-without-settings"],
)
def test_a_file_name_without_its_settings_is_a_programming_error(
    admin: AdminSettings | None,
    admin_file: str | None,
    user: UserSettings | None,
    user_file: str | None,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        resolve(admin, admin_file, user, user_file)


STAR_WARNING = (
    f'WARNING: dockerSocketMount.imageList.images in {ADMIN_FILE} contains "*": EVERY image '
    "may mount the Docker socket, and a container holding the socket controls the host; "
    "list only the images that need it"
)


@pytest.mark.parametrize(
    ("images", "user", "warnings"),
    [
        (("*",), None, (STAR_WARNING,)),
        (("docker:cli", "*"), None, (STAR_WARNING,)),
        (("docker:*", "localstack/localstack:*"), None, ()),
        (("*",), UserSettings(enhancedContainerIsolation=False), (IGNORED_OFF, STAR_WARNING)),
    ],
    ids=["star-alone", "star-among-others", "tag-wildcards-only", "star-and-ignored-user"],
)
def test_star_image_warns_loudly(
    images: tuple[str, ...], user: UserSettings | None, warnings: tuple[str, ...]
) -> None:
    admin = AdminSettings(
        configurationFileVersion=2,
        enhancedContainerIsolation=EnhancedContainerIsolation(
            value=True,
            locked=True,
            dockerSocketMount=DockerSocketMount(imageList=ImageList(images=images)),
        ),
    )
    effective = resolve(admin, ADMIN_FILE, user, USER_FILE if user else None)
    assert effective.warnings == warnings


@pytest.mark.parametrize(
    ("source", "text"),
    [
        (SettingSource("admin-locked", ADMIN_FILE), f"admin settings {ADMIN_FILE} (locked)"),
        (
            SettingSource("admin-default", ADMIN_FILE),
            f"admin settings {ADMIN_FILE} (default; not locked, and the user set no value)",
        ),
        (SettingSource("user", USER_FILE), f"user settings {USER_FILE}"),
        (SettingSource("default", None), "built-in default (no admin settings)"),
        (
            SettingSource("default", ADMIN_FILE),
            f"built-in default (admin settings {ADMIN_FILE} have no ECI section)",
        ),
    ],
    ids=["admin-locked", "admin-default", "user", "default", "default-admin-without-section"],
)
def test_source_describe(source: SettingSource, text: str) -> None:
    assert source.describe() == text


def test_source_kind_is_validated() -> None:
    with pytest.raises(ValueError, match="unknown setting source kind 'admin'"):
        SettingSource("admin", ADMIN_FILE)  # type: ignore[arg-type]


def test_to_json() -> None:
    effective = _resolve("admin-locked-on", "user-off")
    expected = {
        "enhancedContainerIsolation": {
            "value": True,
            "locked": True,
            "source": {
                "kind": "admin-locked",
                "file": ADMIN_FILE,
                "description": f"admin settings {ADMIN_FILE} (locked)",
            },
            "dockerSocketMount": {
                "imageList": {"images": ["docker:cli"], "allowDerivedImages": True},
                "commandList": {"type": "deny", "commands": ["push"]},
            },
            "idRangesPerUser": None,
            "containerOwnership": True,
        },
        "adminSettingsFile": ADMIN_FILE,
        "userSettingsFile": USER_FILE,
        "warnings": [IGNORED_OFF],
    }
    assert effective.to_json() == expected
    assert json.loads(json.dumps(effective.to_json())) == expected  # JSON-ready as it is


def test_effective_settings_are_frozen() -> None:
    effective = _resolve("admin-none", "user-none")
    with pytest.raises(AttributeError):
        effective.eci_enabled = True  # type: ignore[misc]
