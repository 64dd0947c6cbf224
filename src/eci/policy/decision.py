"""What the policy returns: the proxy forwards, refuses or forwards a rewritten body."""

from __future__ import annotations

from dataclasses import dataclass


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


Decision = Allow | Deny | Rewrite
