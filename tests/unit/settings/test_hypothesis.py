"""Property tests for the settings parsers.

Invariant (the settings room's fuzz contract): for ANY input, bytes or text, JSON or not,
``parse_admin_settings`` / ``parse_user_settings`` either return a model or raise
``SettingsError`` naming the file, a JSON path and a reason; never anything else. An
exception of any other type escaping the parser is a bug: the CLI would show a traceback
instead of telling the admin what to fix.

Second property: every valid settings object survives a trip through its JSON text:
``parse(json.dumps(model.model_dump())) == model``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

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
FUZZ = settings(max_examples=300, deadline=None)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the valid shape, once in a while any JSON value, so every depth is reached."""
    return st.integers(0, 9).flatmap(lambda roll: json_values if roll == 0 else valid)


def _object(
    fields: dict[str, st.SearchStrategy[Any]], required: tuple[str, ...] = ()
) -> st.SearchStrategy[Any]:
    """An object with the required fields, any of the others, once in a while an unknown key."""
    known = st.fixed_dictionaries(
        {k: v for k, v in fields.items() if k in required},
        optional={k: v for k, v in fields.items() if k not in required},
    )
    unknown = st.dictionaries(st.sampled_from(["unknown", "Value"]), json_values, max_size=1)
    doc = st.tuples(known, st.integers(0, 9), unknown).map(
        lambda t: {**t[0], **t[2]} if t[1] == 0 else t[0]
    )
    return _maybe(doc)


_strings = st.lists(_maybe(st.text(max_size=8)), max_size=4)
near_admin = _object(
    {
        "configurationFileVersion": st.sampled_from([2, 2, 2, 2, 2, 2, 1, 3, "2", 2.0]),
        "enhancedContainerIsolation": _object(
            {
                "value": _maybe(st.booleans()),
                "locked": _maybe(st.booleans()),
                "dockerSocketMount": _object(
                    {
                        "imageList": _object(
                            {
                                "images": _maybe(_strings),
                                "allowDerivedImages": _maybe(st.booleans()),
                            }
                        ),
                        "commandList": _object(
                            {
                                "type": _maybe(st.sampled_from(["deny", "allow", "block"])),
                                "commands": _maybe(_strings),
                            }
                        ),
                    }
                ),
            },
            required=("value",),
        ),
    },
    required=("configurationFileVersion",),
)


def _outcome(parse: Callable[[bytes | str, str], object], raw: bytes | str) -> object:
    """What the parser returned, or the SettingsError it raised; anything else propagates."""
    try:
        return parse(raw, ORIGIN)
    except SettingsError as exc:
        return exc


def _holds_invariant(raw: bytes | str) -> None:
    for parse, model in (
        (parse_admin_settings, AdminSettings),
        (parse_user_settings, UserSettings),
    ):
        result = _outcome(parse, raw)
        if isinstance(result, SettingsError):
            assert result.file == ORIGIN
            assert result.json_path.startswith("$")
            assert result.reason
        else:
            assert isinstance(result, model)


@FUZZ
@given(st.binary())
def test_any_bytes_parse_or_raise_settings_error(raw: bytes) -> None:
    _holds_invariant(raw)


@FUZZ
@given(st.text())
def test_any_text_parses_or_raises_settings_error(raw: str) -> None:
    _holds_invariant(raw)


@FUZZ
@given(json_values)
def test_any_json_value_parses_or_raises_settings_error(value: Any) -> None:
    text = json.dumps(value)
    _holds_invariant(text)
    _holds_invariant(text.encode())


@FUZZ
@given(near_admin)
def test_near_valid_documents_parse_or_raise_settings_error(value: Any) -> None:
    _holds_invariant(json.dumps(value))


# --- round trip -----------------------------------------------------------------------------

_no_space_text = st.text(
    alphabet=st.characters().filter(lambda ch: not ch.isspace()), min_size=1, max_size=12
)
_image_patterns = st.sampled_from(
    ["*", "docker:cli", "docker.io/testcontainers/ryuk:*", f"localhost:5000/a/b@sha256:{'a' * 64}"]
) | st.from_regex(r"[a-z0-9]{1,8}(/[a-z0-9]{1,8})?(:[a-z0-9]{1,8}|:\*)?", fullmatch=True)
image_lists = st.builds(
    ImageList,
    images=st.lists(_image_patterns, max_size=5).map(tuple),
    allowDerivedImages=st.booleans(),
)
command_lists = st.builds(
    CommandList,
    type=st.sampled_from(["deny", "allow"]),
    commands=st.lists(_no_space_text, max_size=5).map(tuple),
)
admin_settings = st.builds(
    AdminSettings,
    configurationFileVersion=st.just(2),
    enhancedContainerIsolation=st.none()
    | st.builds(
        EnhancedContainerIsolation,
        value=st.booleans(),
        locked=st.booleans(),
        dockerSocketMount=st.builds(
            DockerSocketMount, imageList=image_lists, commandList=command_lists
        ),
    ),
)
user_settings = st.builds(UserSettings, enhancedContainerIsolation=st.none() | st.booleans())


@given(admin_settings)
def test_admin_settings_round_trip(model: AdminSettings) -> None:
    text = json.dumps(model.model_dump())
    assert parse_admin_settings(text, ORIGIN) == model
    assert parse_admin_settings(text.encode(), ORIGIN) == model


@given(user_settings)
def test_user_settings_round_trip(model: UserSettings) -> None:
    assert parse_user_settings(json.dumps(model.model_dump()), ORIGIN) == model
