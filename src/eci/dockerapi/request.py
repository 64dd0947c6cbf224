"""One parsed Docker API request: what the policy decides on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from eci.dockerapi import gojson
from eci.dockerapi.routes import RouteMatch, match_route
from eci.dockerapi.target import ApiTarget, parse_target

__all__ = ["ApiRequest", "parse_request"]


@dataclass(frozen=True)
class ApiRequest:
    """Method, normalized target, matched route (or ``None``) and, for buffered routes, the
    complete body. ``json`` decodes the body with Go semantics (``BodyError`` if it cannot)."""

    method: str
    target: ApiTarget
    route: RouteMatch | None
    body: bytes = b""
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def route_name(self) -> str | None:
        return self.route.name if self.route else None

    def param(self, name: str) -> str:
        return self.route.params[name] if self.route else ""

    @cached_property
    def json(self) -> Any:
        return gojson.decode(self.body)

    def describe(self) -> str:
        """``POST /containers/create``: the normalized route, for errors and the audit log."""
        return f"{self.method.upper()} {self.target.path}"


def parse_request(
    method: str,
    target: bytes | str,
    body: bytes = b"",
    content_type: str | None = None,
) -> ApiRequest:
    """Parse method + target (raises ``BadTarget``) and match the route."""
    parsed = parse_target(target)
    return ApiRequest(
        method=method.upper(),
        target=parsed,
        route=match_route(method, parsed.path),
        body=body,
        content_type=content_type,
    )
