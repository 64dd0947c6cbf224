"""Normalize an HTTP request target the way dockerd's router reads it, so policy routes on
what the daemon will act on and not on the raw string.

dockerd (Go net/http + gorilla/mux) matches on the *decoded* path: ``%2F`` is a slash, the
version prefix ``/v1.NN`` is optional, and an absolute-form target (``http://x/v1.41/...``)
is routed by its path. We go further than the daemon on purpose: ``//``, ``.``/``..``, a
trailing slash and letter case are all folded, so every spelling the daemon could route (or
redirect) lands on one route here.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, unquote_to_bytes

__all__ = ["ApiTarget", "BadTarget", "parse_target"]

_VERSION = re.compile(r"^/v([0-9][0-9.]*)(?=/|$)", re.IGNORECASE)
_BAD_ESCAPE = re.compile(r"%(?![0-9a-fA-F]{2})")
_ABSOLUTE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*")


class BadTarget(ValueError):
    """The request target cannot be read unambiguously (not ASCII, bad escapes, no path)."""


@dataclass(frozen=True, slots=True)
class ApiTarget:
    """A request target as dockerd routes it.

    ``path`` is decoded and normalized, without the version prefix, case preserved (route
    parameters such as image names are case-sensitive; route matching folds case itself).
    ``query`` keeps every value of every key, in order: Go's ``FormValue`` reads the first,
    policy checks them all.
    """

    path: str
    version: str | None
    query: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    raw: str = ""

    def query_values(self, key: str) -> tuple[str, ...]:
        """Every value of ``key``, matched case-insensitively (stricter than Go)."""
        folded = key.lower()
        return tuple(v for k, vs in self.query.items() if k.lower() == folded for v in vs)

    def query_first(self, key: str) -> str | None:
        values = self.query.get(key)
        return values[0] if values else None

    def query_flag(self, key: str) -> bool:
        """A boolean parameter as dockerd reads one (httputils.BoolValue)."""
        value = (self.query_first(key) or "").strip().lower()
        return value not in ("", "0", "no", "false", "none")


def _parse_query(text: str) -> dict[str, tuple[str, ...]]:
    query: dict[str, list[str]] = {}
    for part in text.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        try:
            k = unquote(key.replace("+", " "), errors="strict")
            v = unquote(value.replace("+", " "), errors="strict")
        except UnicodeDecodeError as exc:
            raise BadTarget(f"query parameter {part!r} is not valid UTF-8") from exc
        query.setdefault(k, []).append(v)
    return {k: tuple(v) for k, v in query.items()}


def _decode_path(raw_path: str) -> str:
    if "\x00" in unquote_to_bytes(raw_path).decode("latin-1"):
        raise BadTarget(f"path {raw_path!r} contains a NUL byte")
    try:
        return unquote(raw_path, errors="strict")
    except UnicodeDecodeError as exc:
        raise BadTarget(f"path {raw_path!r} is not valid UTF-8 once decoded") from exc


def normalize_path(path: str) -> str:
    """Collapse ``//``, resolve ``.``/``..``, drop a trailing slash; always absolute."""
    clean = posixpath.normpath("/" + path)
    return "/" + clean.lstrip("/")


def parse_target(target: bytes | str) -> ApiTarget:
    """Read a request target (origin-form or absolute-form) into an ``ApiTarget``."""
    if isinstance(target, bytes):
        try:
            text = target.decode("ascii")
        except UnicodeDecodeError as exc:
            raise BadTarget(f"request target {target!r} is not ASCII") from exc
    else:
        text = target
        if not text.isascii():
            raise BadTarget(f"request target {text!r} is not ASCII")
    if _BAD_ESCAPE.search(text):
        raise BadTarget(f"request target {text!r} has an invalid %-escape")
    raw = text
    text = _ABSOLUTE.sub("", text, count=1)
    raw_path, _, raw_query = text.partition("?")
    if not raw_path.startswith("/"):
        raise BadTarget(f"request target {raw!r} has no absolute path")
    path = normalize_path(_decode_path(raw_path))
    version = None
    if match := _VERSION.match(path):
        version = match.group(1)
        path = normalize_path(path[match.end() :])
    return ApiTarget(path=path, version=version, query=_parse_query(raw_query), raw=raw)
