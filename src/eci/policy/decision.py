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


@dataclass(frozen=True, slots=True)
class ExtractInContainer:
    """Answer a `docker cp` upload into running eci container ``container_id`` by extracting
    it inside the container, as its root (``pid``: its init process). dockerd would write
    through the container's idmapped root filesystem as host root, which has no id there."""

    pid: int
    container_id: str
    #: the destination directory and dockerd's flag
    path: str
    no_overwrite_dir_non_dir: bool
    #: with ``copyUIDGID``, the container's configured user, whom every file is given to
    #: (as dockerd does); "" keeps the archive's owners
    chown_to: str = ""


Decision = Allow | Deny | Rewrite | ExtractInContainer
