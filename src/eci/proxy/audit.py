"""The audit log: one JSON line per refused request. Never request bodies (they may carry
secrets: registry auth, env values)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

from eci.policy import Deny
from eci.proxy.peer import Peer


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def refused(self, peer: Peer, method: str, route: str, decision: Deny) -> None:
        record = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "pid": peer.pid,
            "uid": peer.uid,
            "gid": peer.gid,
            "method": method,
            "route": route,
            "rule": decision.rule,
            "status": decision.status,
            "reason": decision.message,
        }
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line)  # one write of one line: O_APPEND keeps lines whole
            finally:
                os.close(fd)
        except OSError as exc:  # the refusal stands; losing its record must be visible
            print(f"eci proxy: cannot write audit log {self.path}: {exc}", file=sys.stderr)
