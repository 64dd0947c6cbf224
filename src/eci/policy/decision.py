"""What the policy returns: the proxy forwards, refuses or forwards a rewritten body."""

from __future__ import annotations

from dataclasses import dataclass

from eci.policy.grants import Grant


@dataclass(frozen=True, slots=True)
class Allow:
    """Forward the request as it came."""


@dataclass(frozen=True, slots=True)
class Deny:
    """Answer ``status`` with ``{"message": message}`` and audit ``rule``."""

    rule: str
    message: str
    status: int = 403


@dataclass(frozen=True, slots=True)
class Rewrite:
    """Forward with this body instead (e.g. the runtime forced to sysbox-runc)."""

    body: bytes
    note: str
    #: a Docker socket the proxy must serve for the container this creates
    grant: Grant | None = None


Decision = Allow | Deny | Rewrite
