"""Bytes of a settings file in, a frozen model or a ``SettingsError`` out.

Theory of operation
-------------------
A settings file goes through four gates, each of which can only refuse:

1. **UTF-8.** The bytes must decode (a leading UTF-8 byte-order mark is tolerated).
2. **JSON.** Python's ``json`` parser, with NaN/Infinity refused (they are not JSON) and
   every object built through a hook that remembers duplicate keys.
3. **No duplicate keys**, anywhere. Parsers disagree on which duplicate wins (Go's
   ``encoding/json`` takes the last, others the first); an admin file that means different
   things to different readers is refused rather than guessed at.
4. **The model.** Strict pydantic validation: types, unknown keys, required keys, version.

Every refusal is a ``SettingsError(file, json_path, reason)``. ``json_path`` is JSONPath-like
(``$.enhancedContainerIsolation.dockerSocketMount.imageList.images[2]``); for an unknown,
missing or duplicate key it is the path of the object holding the key, and the reason names
the key. When there are several problems the first one (in pydantic's validation order,
which is deterministic) is reported and the others are summarised after it as ``(+N more:
...)``, so one run shows the admin everything to fix.

The invariant the fuzz tests hold this module to: for any input, ``parse_*`` returns a model
or raises ``SettingsError``; never anything else.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from eci.errors import SettingsError
from eci.settings.model import ECI_ERROR_TYPE, AdminSettings, UserSettings

__all__ = ["parse_admin_settings", "parse_user_settings"]

_M = TypeVar("_M", bound=BaseModel)

#: How many further problems are spelled out after the first one.
_MAX_LISTED = 5
#: Longest rendering of a bad value in a message.
_MAX_SHOWN = 80

_BOM = "\ufeff"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse_admin_settings(raw: bytes | str, origin: str) -> AdminSettings:
    """Parse an admin settings file; ``origin`` (its path) is named in every error.

    Raises ``SettingsError`` when the file is not valid; the caller must then refuse to start.
    """
    return _parse(AdminSettings, raw, origin)


def parse_user_settings(raw: bytes | str, origin: str) -> UserSettings:
    """Parse a user's settings file; ``origin`` (its path) is named in every error.

    Raises ``SettingsError`` when the file is not valid.
    """
    return _parse(UserSettings, raw, origin)


# --- the gates ------------------------------------------------------------------------------


def _parse(model: type[_M], raw: bytes | str, origin: str) -> _M:
    text = _decode(raw, origin)
    data = _load_json(text, origin)
    problems = _duplicate_keys(data)
    if problems:
        raise _settings_error(origin, problems)
    if not isinstance(data, dict):
        raise SettingsError(
            origin, "$", f"expected a JSON object {{...}} at the top level, got {_show(data)}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _settings_error(origin, [_explain(err, model) for err in exc.errors()]) from exc


def _decode(raw: bytes | str, origin: str) -> str:
    if isinstance(raw, str):
        return raw.removeprefix(_BOM)
    bom = len(_BOM.encode()) if raw.startswith(_BOM.encode()) else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SettingsError(
            origin,
            "$",
            f"not valid UTF-8: {exc.reason} (byte {raw[bom + exc.start]:#04x} "
            f"at offset {bom + exc.start})",
        ) from exc


class _NotJsonConstant(ValueError):
    """NaN, Infinity or -Infinity: Python's json accepts them, JSON does not."""


def _refuse_constant(name: str) -> Any:
    raise _NotJsonConstant(f"{name} is not a JSON value")


class _DuplicateKeys(dict[str, Any]):
    """A JSON object in which some keys appeared more than once (in ``duplicates``)."""

    duplicates: tuple[str, ...] = ()


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    duplicates: list[str] = []
    for key, value in pairs:
        if key in obj and key not in duplicates:
            duplicates.append(key)
        obj[key] = value
    if not duplicates:
        return obj
    marked = _DuplicateKeys(obj)
    marked.duplicates = tuple(duplicates)
    return marked


def _load_json(text: str, origin: str) -> Any:
    if not text.strip():
        raise SettingsError(origin, "$", "the file is empty; expected a JSON object such as {...}")
    try:
        return json.loads(text, object_pairs_hook=_object_pairs, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise SettingsError(
            origin, "$", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise SettingsError(origin, "$", "not a settings file: nested too deeply") from exc
    except ValueError as exc:  # _NotJsonConstant, or an integer with too many digits
        # Keep the first clause: the rest of int()'s message is advice for programmers.
        raise SettingsError(origin, "$", f"not valid JSON: {str(exc).split(':')[0]}") from exc


def _duplicate_keys(data: Any) -> list[tuple[str, str]]:
    """Every duplicate key, in document order (iterative: nesting depth cannot blow the stack)."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[tuple[int | str, ...], Any]] = [((), data)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, dict):
            if isinstance(value, _DuplicateKeys):
                found.extend(
                    (
                        _json_path(loc),
                        f"duplicate key {key!r}: the file is ambiguous (JSON readers disagree "
                        "on which value wins); keep exactly one",
                    )
                    for key in value.duplicates
                )
            children: list[tuple[tuple[int | str, ...], Any]] = [
                ((*loc, k), v) for k, v in value.items()
            ]
        elif isinstance(value, list):
            children = [((*loc, i), v) for i, v in enumerate(value)]
        else:
            continue
        stack.extend(reversed(children))
    return found


# --- turning problems into one error --------------------------------------------------------


def _settings_error(origin: str, problems: Sequence[tuple[str, str]]) -> SettingsError:
    json_path, reason = problems[0]
    rest = problems[1:]
    if rest:
        listed = [f"{path}: {why}" for path, why in rest[:_MAX_LISTED]]
        if len(rest) > _MAX_LISTED:
            listed.append("...")
        reason = f"{reason} (+{len(rest)} more: {'; '.join(listed)})"
    return SettingsError(origin, json_path, reason)


def _explain(err: ErrorDetails, root: type[BaseModel]) -> tuple[str, str]:
    """One pydantic error as (json_path, human reason)."""
    kind = err["type"]
    loc = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    got = _show(err["input"])

    if kind in ("extra_forbidden", "missing"):
        parent, key = loc[:-1], str(loc[-1])
        allowed = _keys_at(root, parent)
        if kind == "missing":
            reason = f"missing required key {key!r}"
            if key == "configurationFileVersion":
                reason += ' (add "configurationFileVersion": 2)'
        else:
            reason = f"unknown key {key!r}"
            close = difflib.get_close_matches(key, allowed, n=1)
            if not close:
                close = [k for k in allowed if k.lower() == key.lower()]
            if close:
                reason += f"; did you mean {close[0]!r}?"
            if allowed:
                reason += f" (allowed here: {', '.join(allowed)})"
        return _json_path(parent), reason

    simple = {
        "bool_type": "expected true or false",
        "string_type": "expected a string",
        "tuple_type": "expected an array [...]",
        "list_type": "expected an array [...]",
        "model_type": "expected an object {...}",
        "dict_type": "expected an object {...}",
    }
    if kind in simple:
        reason = f"{simple[kind]}, got {got}"
    elif kind == "literal_error":
        reason = f"expected {ctx.get('expected', '?')}, got {got}"
    elif kind == ECI_ERROR_TYPE:
        reason = str(ctx["reason"])
    else:  # not produced by the models today; still say what was wrong and with what
        reason = f"{err['msg']}, got {got}"
    return _json_path(loc), reason


def _keys_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model at ``loc`` accepts (empty when loc does not lead to a model)."""
    model: type[BaseModel] = root
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        inner = _model_in(field.annotation) if field is not None else None
        if inner is None:
            return []
        model = inner
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):  # X | None
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _json_path(loc: Sequence[int | str]) -> str:
    parts = ["$"]
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif _IDENTIFIER.match(part):
            parts.append(f".{part}")
        else:
            parts.append(f"[{json.dumps(part)}]")
    return "".join(parts)


def _show(value: Any) -> str:
    """A bad value for a message: strings and numbers with !r, JSON spelling for the rest."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object {...}"
    if isinstance(value, list | tuple):
        return f"an array of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, int) and value.bit_length() > 64:
        return "a very large number"  # repr() of huge ints is slow, and limited in 3.11
    shown = repr(value)
    if len(shown) > _MAX_SHOWN:
        shown = shown[: _MAX_SHOWN - 3] + "..."
    return shown
