"""parse_admin_settings / parse_user_settings: every class of bad input, with exact paths."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eci.errors import SettingsError
from eci.settings import (
    AdminSettings,
    CommandList,
    DockerSocketMount,
    EnhancedContainerIsolation,
    ImageList,
    UserSettings,
    parse_admin_settings,
    parse_user_settings,
)

ORIGIN = "/etc/eci/admin-settings.json"
ECI = "$.enhancedContainerIsolation"
DSM = f"{ECI}.dockerSocketMount"


def admin(eci: Any = None, **top: Any) -> str:
    """An admin file with version 2 and the given ECI section (omitted when None)."""
    doc: dict[str, Any] = {"configurationFileVersion": 2}
    if eci is not None:
        doc["enhancedContainerIsolation"] = eci
    doc.update(top)
    return json.dumps(doc)


def with_socket(**socket: Any) -> str:
    return admin({"value": True, "dockerSocketMount": socket})


def refused(raw: bytes | str) -> SettingsError:
    with pytest.raises(SettingsError) as info:
        parse_admin_settings(raw, ORIGIN)
    assert info.value.file == ORIGIN
    return info.value


# --- valid files ----------------------------------------------------------------------------

FULL = {
    "configurationFileVersion": 2,
    "enhancedContainerIsolation": {
        "value": True,
        "locked": True,
        "dockerSocketMount": {
            "imageList": {
                "images": ["docker.io/localstack/localstack:*", "docker:cli"],
                "allowDerivedImages": False,
            },
            "commandList": {"type": "allow", "commands": ["ps", "container*"]},
        },
    },
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            json.dumps(FULL),
            AdminSettings(
                configurationFileVersion=2,
                enhancedContainerIsolation=EnhancedContainerIsolation(
                    value=True,
                    locked=True,
                    dockerSocketMount=DockerSocketMount(
                        imageList=ImageList(
                            images=("docker.io/localstack/localstack:*", "docker:cli"),
                            allowDerivedImages=False,
                        ),
                        commandList=CommandList(type="allow", commands=("ps", "container*")),
                    ),
                ),
            ),
        ),
        (admin(), AdminSettings(configurationFileVersion=2)),
        (
            admin({"value": False}),
            AdminSettings(
                configurationFileVersion=2,
                enhancedContainerIsolation=EnhancedContainerIsolation(value=False),
            ),
        ),
        (
            b"\xef\xbb\xbf" + admin().encode(),
            AdminSettings(configurationFileVersion=2),
        ),
        (
            '{"enhancedContainerIsolation": null, "configurationFileVersion": 2}',
            AdminSettings(configurationFileVersion=2),
        ),
    ],
    ids=["full-example", "version-only", "value-only", "utf8-bom", "null-section"],
)
def test_valid_admin_files_parse(raw: bytes | str, expected: AdminSettings) -> None:
    assert parse_admin_settings(raw, ORIGIN) == expected


def test_defaults_of_an_eci_section() -> None:
    eci = parse_admin_settings(admin({"value": True}), ORIGIN).enhancedContainerIsolation
    assert eci is not None
    assert eci.locked is False
    assert eci.dockerSocketMount.imageList.images == ()
    assert eci.dockerSocketMount.imageList.allowDerivedImages is True
    assert eci.dockerSocketMount.commandList.type == "deny"
    assert eci.dockerSocketMount.commandList.commands == ()


def test_parsed_settings_are_frozen() -> None:
    settings = parse_admin_settings(admin({"value": True}), ORIGIN)
    with pytest.raises(ValueError, match="frozen"):
        settings.configurationFileVersion = 2


# --- bad input: (raw, json_path, reason), asserted exactly ----------------------------------

BAD_ADMIN: list[tuple[str, bytes | str, str, str]] = [
    # not a settings document at all
    ("empty", b"", "$", "the file is empty; expected a JSON object such as {...}"),
    ("whitespace-only", " \n\t", "$", "the file is empty; expected a JSON object such as {...}"),
    (
        "invalid-utf8",
        b'{"configurationFileVersion": 2, "x": "\xff"}',
        "$",
        "not valid UTF-8: invalid start byte (byte 0xff at offset 38)",
    ),
    (
        "not-json-truncated",
        b'{"configurationFileVersion": 2',
        "$",
        "not valid JSON: Expecting ',' delimiter at line 1 column 31",
    ),
    (
        "not-json-second-line",
        '{\n  "configurationFileVersion": 2,\n}',
        "$",
        "not valid JSON: Expecting property name enclosed in double quotes at line 3 column 1",
    ),
    (
        "not-json-nan",
        '{"configurationFileVersion": NaN}',
        "$",
        "not valid JSON: NaN is not a JSON value",
    ),
    (
        "not-json-huge-number",
        '{"configurationFileVersion": ' + "9" * 5000 + "}",
        "$",
        "not valid JSON: Exceeds the limit (4300 digits) for integer string conversion",
    ),
    ("nested-too-deeply", "[" * 100_000, "$", "not a settings file: nested too deeply"),
    (
        "list-at-top",
        "[1, 2]",
        "$",
        "expected a JSON object {...} at the top level, got an array of 2 items",
    ),
    ("string-at-top", '"x"', "$", "expected a JSON object {...} at the top level, got 'x'"),
    ("null-at-top", "null", "$", "expected a JSON object {...} at the top level, got null"),
    # version
    (
        "version-missing",
        "{}",
        "$",
        "missing required key 'configurationFileVersion' (add \"configurationFileVersion\": 2)",
    ),
    (
        "version-1",
        '{"configurationFileVersion": 1}',
        "$.configurationFileVersion",
        "expected 2, got 1",
    ),
    (
        "version-3",
        '{"configurationFileVersion": 3}',
        "$.configurationFileVersion",
        "expected 2, got 3",
    ),
    (
        "version-string",
        '{"configurationFileVersion": "2"}',
        "$.configurationFileVersion",
        "expected 2, got '2'",
    ),
    (
        "version-float",
        '{"configurationFileVersion": 2.0}',
        "$.configurationFileVersion",
        "expected 2, got 2.0",
    ),
    (
        "version-true",
        '{"configurationFileVersion": true}',
        "$.configurationFileVersion",
        "expected 2, got true",
    ),
    # wrong types at several depths
    ("section-list", admin([True]), ECI, "expected an object {...}, got an array of 1 item"),
    ("section-bool", admin(True), ECI, "expected an object {...}, got true"),
    (
        "value-string-true",
        admin({"value": "true"}),
        f"{ECI}.value",
        "expected true or false, got 'true'",
    ),
    ("value-yes", admin({"value": "yes"}), f"{ECI}.value", "expected true or false, got 'yes'"),
    ("value-one", admin({"value": 1}), f"{ECI}.value", "expected true or false, got 1"),
    ("value-null", admin({"value": None}), f"{ECI}.value", "expected true or false, got null"),
    (
        "locked-string",
        admin({"value": True, "locked": "false"}),
        f"{ECI}.locked",
        "expected true or false, got 'false'",
    ),
    (
        "ranges-per-user-zero",
        admin({"value": True, "idRangesPerUser": 0}),
        f"{ECI}.idRangesPerUser",
        "Input should be greater than or equal to 1, got 0",
    ),
    (
        "ranges-per-user-string",
        admin({"value": True, "idRangesPerUser": "8"}),
        f"{ECI}.idRangesPerUser",
        "Input should be a valid integer, got '8'",
    ),
    (
        "ranges-per-user-bool",
        admin({"value": True, "idRangesPerUser": True}),
        f"{ECI}.idRangesPerUser",
        "Input should be a valid integer, got true",
    ),
    (
        "socket-mount-string",
        admin({"value": True, "dockerSocketMount": "none"}),
        DSM,
        "expected an object {...}, got 'none'",
    ),
    (
        "images-string",
        with_socket(imageList={"images": "docker:cli"}),
        f"{DSM}.imageList.images",
        "expected an array [...], got 'docker:cli'",
    ),
    (
        "images-object",
        with_socket(imageList={"images": {"docker:cli": True}}),
        f"{DSM}.imageList.images",
        "expected an array [...], got an object {...}",
    ),
    (
        "image-number",
        with_socket(imageList={"images": ["docker:cli", "alpine", 3]}),
        f"{DSM}.imageList.images[2]",
        "expected a string, got 3",
    ),
    (
        "image-empty",
        with_socket(imageList={"images": ["docker:cli", ""]}),
        f"{DSM}.imageList.images[1]",
        "an image entry must not be empty",
    ),
    (
        "image-whitespace",
        with_socket(imageList={"images": ["docker: cli"]}),
        f"{DSM}.imageList.images[0]",
        "an image entry must not contain whitespace, got 'docker: cli'",
    ),
    (
        "image-uppercase",
        with_socket(imageList={"images": ["docker:cli", "Docker/CLI"]}),
        f"{DSM}.imageList.images[1]",
        "expected name[:tag], name:*, name@sha256:<digest> or *: image reference "
        "'Docker/CLI' is not a valid repository name",
    ),
    (
        "image-any-tag-after-tag",
        with_socket(imageList={"images": ["docker:cli:*"]}),
        f"{DSM}.imageList.images[0]",
        "expected name[:tag], name:*, name@sha256:<digest> or *: image pattern "
        "'docker:cli:*': ':*' must follow a bare name",
    ),
    (
        "allow-derived-string",
        with_socket(imageList={"allowDerivedImages": "no"}),
        f"{DSM}.imageList.allowDerivedImages",
        "expected true or false, got 'no'",
    ),
    (
        "command-type-unknown",
        with_socket(commandList={"type": "block"}),
        f"{DSM}.commandList.type",
        "expected 'deny' or 'allow', got 'block'",
    ),
    (
        "commands-string",
        with_socket(commandList={"commands": "push"}),
        f"{DSM}.commandList.commands",
        "expected an array [...], got 'push'",
    ),
    (
        "command-empty",
        with_socket(commandList={"commands": ["push", ""]}),
        f"{DSM}.commandList.commands[1]",
        "a command entry must not be empty",
    ),
    (
        "command-with-space",
        with_socket(commandList={"commands": ["image push"]}),
        f"{DSM}.commandList.commands[0]",
        "a command entry is one Docker CLI command name such as 'push' or 'container*' "
        "and must not contain whitespace, got 'image push'",
    ),
    # unknown keys, at the top and nested
    (
        "unknown-top",
        admin(foo=1),
        "$",
        "unknown key 'foo' (allowed here: configurationFileVersion, enhancedContainerIsolation)",
    ),
    (
        "unknown-top-typo",
        admin(enhancedContainerIsolaton={"value": True}),
        "$",
        "unknown key 'enhancedContainerIsolaton'; did you mean 'enhancedContainerIsolation'? "
        "(allowed here: configurationFileVersion, enhancedContainerIsolation)",
    ),
    (
        "unknown-in-section",
        admin({"value": True, "lockd": True}),
        ECI,
        "unknown key 'lockd'; did you mean 'locked'? "
        "(allowed here: value, locked, dockerSocketMount, idRangesPerUser, containerOwnership)",
    ),
    (
        "unknown-deep",
        with_socket(imageList={"images": [], "allowDerived": True}),
        f"{DSM}.imageList",
        "unknown key 'allowDerived'; did you mean 'allowDerivedImages'? "
        "(allowed here: images, allowDerivedImages)",
    ),
    (
        "unknown-key-not-an-identifier",
        with_socket(commandList={"command list": []}),
        f"{DSM}.commandList",
        "unknown key 'command list'; did you mean 'commands'? (allowed here: type, commands)",
    ),
    # missing required
    ("value-missing", admin({"locked": True}), ECI, "missing required key 'value'"),
    # duplicate keys, anywhere
    (
        "duplicate-top",
        '{"configurationFileVersion": 2, "configurationFileVersion": 2}',
        "$",
        "duplicate key 'configurationFileVersion': the file is ambiguous "
        "(JSON readers disagree on which value wins); keep exactly one",
    ),
    (
        "duplicate-value",
        '{"configurationFileVersion": 2,'
        ' "enhancedContainerIsolation": {"value": true, "locked": true, "value": false}}',
        ECI,
        "duplicate key 'value': the file is ambiguous "
        "(JSON readers disagree on which value wins); keep exactly one",
    ),
    (
        "duplicate-in-list-item",
        '{"configurationFileVersion": 2, "x": [0, {"a": 1, "a": 1}]}',
        "$.x[1]",
        "duplicate key 'a': the file is ambiguous "
        "(JSON readers disagree on which value wins); keep exactly one",
    ),
    (
        "duplicate-key-not-an-identifier",
        '{"configurationFileVersion": 2, "a.b": {"c": 1, "c": 2}}',
        '$["a.b"]',
        "duplicate key 'c': the file is ambiguous "
        "(JSON readers disagree on which value wins); keep exactly one",
    ),
]


@pytest.mark.parametrize(
    ("raw", "json_path", "reason"),
    [case[1:] for case in BAD_ADMIN],
    ids=[case[0] for case in BAD_ADMIN],
)
def test_bad_admin_file_is_refused_with_path_and_reason(
    raw: bytes | str, json_path: str, reason: str
) -> None:
    error = refused(raw)
    assert (error.json_path, error.reason) == (json_path, reason)
    assert str(error) == f"{ORIGIN}: {json_path}: {reason}"


def test_several_problems_first_reported_rest_summarised() -> None:
    error = refused(
        admin(
            {
                "value": "yes",
                "dockerSocketMount": {"imageList": {"images": "docker:cli"}},
                "lockd": True,
            }
        )
    )
    assert error.json_path == f"{ECI}.value"
    assert error.reason == (
        "expected true or false, got 'yes' (+2 more: "
        f"{DSM}.imageList.images: expected an array [...], got 'docker:cli'; "
        f"{ECI}: unknown key 'lockd'; did you mean 'locked'? "
        "(allowed here: value, locked, dockerSocketMount, idRangesPerUser, containerOwnership))"
    )


def test_many_problems_are_capped_in_the_summary() -> None:
    error = refused(with_socket(imageList={"images": list(range(10))}))
    assert error.json_path == f"{DSM}.imageList.images[0]"
    assert error.reason.startswith("expected a string, got 0 (+9 more: ")
    assert error.reason.endswith(f"{DSM}.imageList.images[5]: expected a string, got 5; ...)")


def test_duplicate_keys_are_refused_before_validation() -> None:
    # Both values are valid on their own; the file is refused because it is ambiguous.
    error = refused('{"configurationFileVersion": 2, "configurationFileVersion": 3}')
    assert error.json_path == "$"
    assert error.reason.startswith("duplicate key 'configurationFileVersion'")


def test_long_bad_values_are_shortened() -> None:
    error = refused(admin({"value": "y" * 500}))
    shown = error.reason.removeprefix("expected true or false, got ")
    assert shown.startswith("'yyy")
    assert shown.endswith("...")
    assert len(shown) == 80


def test_the_origin_is_the_file_named_in_errors() -> None:
    with pytest.raises(SettingsError) as info:
        parse_admin_settings(b"[]", "/somewhere/else.json")
    assert str(info.value).startswith("/somewhere/else.json: $: ")


# --- user settings --------------------------------------------------------------------------

USER_ORIGIN = "/root/.config/eci/settings.json"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{}", UserSettings()),
        ('{"enhancedContainerIsolation": true}', UserSettings(enhancedContainerIsolation=True)),
        ('{"enhancedContainerIsolation": false}', UserSettings(enhancedContainerIsolation=False)),
    ],
    ids=["empty-object", "on", "off"],
)
def test_valid_user_files_parse(raw: str, expected: UserSettings) -> None:
    assert parse_user_settings(raw, USER_ORIGIN) == expected


@pytest.mark.parametrize(
    ("raw", "json_path", "reason"),
    [
        ("true", "$", "expected a JSON object {...} at the top level, got true"),
        (
            '{"enhancedContainerIsolation": "true"}',
            "$.enhancedContainerIsolation",
            "expected true or false, got 'true'",
        ),
        (
            '{"enhancedContainerIsolation": {"value": true}}',
            "$.enhancedContainerIsolation",
            "expected true or false, got an object {...}",
        ),
        (
            '{"configurationFileVersion": 2}',
            "$",
            "unknown key 'configurationFileVersion' (allowed here: enhancedContainerIsolation)",
        ),
        (
            '{"enhancedContainerIsolation": true, "enhancedContainerIsolation": false}',
            "$",
            "duplicate key 'enhancedContainerIsolation': the file is ambiguous "
            "(JSON readers disagree on which value wins); keep exactly one",
        ),
    ],
    ids=["bool-at-top", "string-true", "admin-shape", "admin-key", "duplicate"],
)
def test_bad_user_file_is_refused(raw: str, json_path: str, reason: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse_user_settings(raw, USER_ORIGIN)
    assert (info.value.file, info.value.json_path, info.value.reason) == (
        USER_ORIGIN,
        json_path,
        reason,
    )
