"""Decode a JSON body the way Go's ``encoding/json`` reads it into dockerd's structs.

Go matches object keys to struct fields case-insensitively (``hostconfig`` fills
``HostConfig``, and so does ``HOSTCONFIG``; Go's folding also maps U+212A KELVIN SIGN to
``k`` and U+017F LONG S to ``s``), and when two keys fill the same field the last one wins
and, for nested structs, *merges into* the first. A policy that reads ``body["HostConfig"]``
would be fooled by all of that. Here:

- objects are ``GoObject`` s: ``field(name)`` looks a struct field up with Go's folding;
  two keys that fold to the same field make the body ambiguous and it is refused
  (``AmbiguousBody``) instead of guessing which one dockerd keeps;
- map-typed values (``Labels``, ``DriverOpts``…) keep their exact keys (Go maps are
  case-sensitive); a key repeated exactly in one object is refused too: Go decodes a
  repeated struct or map field *into* the first one (merging them), which no last-wins
  reading can reproduce;
- the proxy forwards the body re-encoded from what was parsed here, so dockerd never reads
  bytes the policy did not;
- only UTF-8 is accepted, and so are only the JSON values Go accepts (no NaN/Infinity); one
  top-level value, nothing but whitespace after it.

Invariant (tested with hypothesis): ``decode`` returns a value or raises ``BodyError``;
nothing else escapes.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["AmbiguousBody", "BodyError", "GoObject", "InvalidBody", "decode", "fold"]

_GO_FOLDS = {"\u212a": "k", "\u017f": "s"}


class BodyError(ValueError):
    """The body cannot be read the way dockerd would read it; the request is refused."""


class InvalidBody(BodyError):
    """Not JSON that dockerd would accept."""


class AmbiguousBody(BodyError):
    """Two keys fill the same struct field; which one dockerd keeps is not worth guessing."""


def fold(key: str) -> str:
    """Go's case folding of a field name, reduced to what can match an ASCII field name."""
    if key.isascii():  # nearly every key: a policy decision looks up dozens per request
        return key.lower()
    return "".join(_GO_FOLDS.get(c, c.lower() if c.isascii() else c) for c in key)


class GoObject(dict[str, Any]):
    """A JSON object with its exact keys, plus Go-style field lookup."""

    def field(self, name: str) -> Any:
        """The value Go would decode into field ``name`` (``None`` when absent or null)."""
        wanted = fold(name)
        keys = [k for k in self if fold(k) == wanted]
        if len(keys) > 1:
            raise AmbiguousBody(f"keys {keys!r} all set the field {name!r}")
        return self[keys[0]] if keys else None

    def field_keys(self, name: str) -> list[str]:
        """Every key that fills field ``name`` (so a rewrite can replace all of them)."""
        wanted = fold(name)
        return [k for k in self if fold(k) == wanted]

    def set_field(self, name: str, value: Any) -> None:
        """Make ``value`` what Go reads into field ``name``: every key that would fill it
        (any spelling Go folds to it) is replaced by the one key ``name``."""
        for key in self.field_keys(name):
            del self[key]
        self[name] = value

    def obj(self, name: str) -> GoObject | None:
        """Field ``name`` as an object; a present non-object value is invalid for a struct."""
        value = self.field(name)
        if value is None or isinstance(value, GoObject):
            return value
        raise InvalidBody(f"field {name!r} must be an object, not {type(value).__name__}")

    def array(self, name: str) -> list[Any]:
        """Field ``name`` as a list (absent or null: empty)."""
        value = self.field(name)
        if value is None:
            return []
        if isinstance(value, list):
            return value
        raise InvalidBody(f"field {name!r} must be a list, not {type(value).__name__}")

    def string(self, name: str) -> str:
        """Field ``name`` as a string (absent or null: empty)."""
        value = self.field(name)
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        raise InvalidBody(f"field {name!r} must be a string, not {type(value).__name__}")

    def flag(self, name: str) -> bool:
        value = self.field(name)
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        raise InvalidBody(f"field {name!r} must be a boolean, not {type(value).__name__}")


def _object(pairs: list[tuple[str, Any]]) -> GoObject:
    obj = GoObject()
    for key, value in pairs:
        if key in obj:  # Go would merge a repeated struct or map into the first one
            raise AmbiguousBody(f"key {key!r} appears twice in one object")
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise InvalidBody(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # Go refuses a number out of float64's range
        raise InvalidBody(f"number {text[:40]!r} is out of range")
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _go_string(text: str) -> str:
    """Go decodes a lone surrogate escape as U+FFFD (Python keeps it, unencodable)."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    if isinstance(value, GoObject):
        return _object([(_go_string(k), _replace_surrogates(v)) for k, v in value.items()])
    return value


def decode(body: bytes) -> Any:
    """Decode one JSON value (see module doc); objects become ``GoObject``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidBody(f"body is not UTF-8: {exc}") from exc
    try:
        value = json.loads(
            text, object_pairs_hook=_object, parse_constant=_no_constant, parse_float=_finite
        )
        return _replace_surrogates(value) if _SURROGATE_ESCAPE.search(text) else value
    except RecursionError as exc:
        raise InvalidBody("body nests too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, and int() over Python's digit limit
        if isinstance(exc, BodyError):
            raise
        raise InvalidBody(f"body is not valid JSON: {exc}") from exc


def encode(value: Any) -> bytes:
    """Serialize a (possibly rewritten) body back to JSON for dockerd.

    ``decode`` already turned lone surrogates into U+FFFD as Go does; should one get here
    anyway, the body is refused rather than forwarded as something else."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidBody("body holds a lone surrogate escape") from exc
    except RecursionError as exc:
        raise InvalidBody("body nests too deeply") from exc
