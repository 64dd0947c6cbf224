"""The audit log: one JSON line per refused request and per Docker socket granted. Never
request bodies (they may carry secrets: registry auth, env values)."""

from __future__ import annotations

import sys
from pathlib import Path

from eci import auditfile
from eci.policy import Deny
from eci.policy.grants import Grant
from eci.proxy.peer import Peer

GRANT_RULE = "docker-socket-grant"


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def refused(
        self, peer: Peer, method: str, route: str, decision: Deny, via: str | None = None
    ) -> None:
        """A refusal; ``via``: the grant token when it came through a container's socket."""
        self._write(peer, method, route, decision.rule, decision.status, decision.message, via)

    def granted(self, peer: Peer, grant: Grant, container: str) -> None:
        """A Docker socket granted: always recorded, with a warning for ``"*"``."""
        match = grant.match
        reason = (
            f"filtered Docker socket granted to container {container[:12]} of image "
            f"{grant.image!r} by imageList entry {match.entry.text!r}"
        )
        if match.base:
            reason += f" (derived from allowed image {match.base})"
        if match.wildcard:
            reason += '; WARNING: imageList contains "*": every image may have the Docker socket'
        self._write(peer, "POST", "/containers/create", GRANT_RULE, 201, reason, grant.token)

    def _write(
        self,
        peer: Peer,
        method: str,
        route: str,
        rule: str,
        status: int,
        reason: str,
        via: str | None,
    ) -> None:
        record: dict[str, object] = {
            "pid": peer.pid,
            "uid": peer.uid,
            "gid": peer.gid,
            "method": method,
            "route": route,
            "rule": rule,
            "status": status,
            "reason": reason,
        }
        if via is not None:
            record["socket"] = via
        try:
            auditfile.append(self.path, record)
        except OSError as exc:  # the refusal stands; losing its record must be visible
            print(f"eci proxy: cannot write audit log {self.path}: {exc}", file=sys.stderr)
