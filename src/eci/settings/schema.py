"""JSON Schemas of the settings files, for editors and for admins' own validation.

The committed copies in ``docs/`` are generated from the models and a unit test keeps them
equal; regenerate them with::

    python -m eci.settings.schema > docs/admin-settings.schema.json
    python -m eci.settings.schema --user > docs/user-settings.schema.json

The schema documents the format; ``parse.py`` remains the authority (it also refuses
duplicate keys, which JSON Schema cannot express).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from eci.settings.model import AdminSettings, UserSettings

__all__ = ["admin_settings_schema", "render", "user_settings_schema"]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ADMIN_SCHEMA_ID = "urn:eci:schema:admin-settings:2"
USER_SCHEMA_ID = "urn:eci:schema:user-settings:1"


def admin_settings_schema() -> dict[str, Any]:
    """The JSON Schema of the admin settings file (configurationFileVersion 2)."""
    return _schema(AdminSettings, ADMIN_SCHEMA_ID, "eci admin settings")


def user_settings_schema() -> dict[str, Any]:
    """The JSON Schema of a user's settings file."""
    return _schema(UserSettings, USER_SCHEMA_ID, "eci user settings")


def render(schema: dict[str, Any]) -> str:
    """The exact text of a committed schema file: pretty, sorted keys, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _schema(model: type[BaseModel], schema_id: str, title: str) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    for obj in [schema, *schema.get("$defs", {}).values()]:
        for prop in obj.get("properties", {}).values():
            # pydantic titles a property after its name ("Allowderivedimages"): noise.
            prop.pop("title", None)
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": schema_id, **schema, "title": title}


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    if args not in ([], ["--user"]):
        print("usage: python -m eci.settings.schema [--user]", file=sys.stderr)
        return 2
    schema = user_settings_schema() if args else admin_settings_schema()
    sys.stdout.write(render(schema))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
