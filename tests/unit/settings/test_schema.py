"""The committed JSON Schemas in docs/ are exactly what the models generate."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eci.settings import parse_admin_settings
from eci.settings.schema import (
    ADMIN_SCHEMA_ID,
    JSON_SCHEMA_DIALECT,
    admin_settings_schema,
    main,
    render,
    user_settings_schema,
)

DOCS = Path(__file__).resolve().parents[3] / "docs"

SCHEMAS = [
    ("admin-settings.schema.json", admin_settings_schema, ""),
    ("user-settings.schema.json", user_settings_schema, " --user"),
]


@pytest.mark.parametrize(
    ("name", "generate", "flag"), SCHEMAS, ids=[name for name, _, _ in SCHEMAS]
)
def test_committed_schema_is_generated(
    name: str, generate: Callable[[], dict[str, Any]], flag: str
) -> None:
    committed = (DOCS / name).read_text()
    assert committed == render(generate()), (
        f"docs/{name} is out of date with eci.settings.model; regenerate it with\n"
        f"    python -m eci.settings.schema{flag} > docs/{name}"
    )


def test_schema_header() -> None:
    schema = admin_settings_schema()
    assert (
        schema["$schema"] == JSON_SCHEMA_DIALECT == "https://json-schema.org/draft/2020-12/schema"
    )
    assert schema["$id"] == ADMIN_SCHEMA_ID
    assert schema["title"] == "eci admin settings"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["configurationFileVersion"]
    assert schema["properties"]["configurationFileVersion"]["const"] == 2


def test_schema_forbids_unknown_keys_at_every_level() -> None:
    schema = admin_settings_schema()
    objects = [schema, *schema["$defs"].values()]
    assert len(objects) == 5
    assert all(obj["additionalProperties"] is False for obj in objects)


def test_schema_default_matches_the_model_default() -> None:
    # The documented defaults are the ones the parser applies.
    socket = admin_settings_schema()["$defs"]["EnhancedContainerIsolation"]["properties"][
        "dockerSocketMount"
    ]["default"]
    parsed = parse_admin_settings(
        json.dumps({"configurationFileVersion": 2, "enhancedContainerIsolation": {"value": True}}),
        "x",
    )
    assert parsed.enhancedContainerIsolation is not None
    assert parsed.enhancedContainerIsolation.dockerSocketMount.model_dump(mode="json") == socket


@pytest.mark.parametrize(
    ("argv", "expected"),
    [([], admin_settings_schema), (["--user"], user_settings_schema)],
    ids=["admin", "user"],
)
def test_main_prints_the_schema(
    argv: list[str], expected: Callable[[], dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 0
    assert capsys.readouterr().out == render(expected())


def test_main_refuses_unknown_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--admin"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage: python -m eci.settings.schema [--user]" in captured.err
