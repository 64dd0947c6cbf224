"""An engine's audit log file: one JSON object per line, appended by the proxy (refusals,
grants) and by the runtime (processes killed for holding a freed id range).

Root-only (0600) and appended with one write per line: O_APPEND keeps concurrent writers'
lines whole. Stdlib only: the runtime shim imports it when it has something to record.
"""

from __future__ import annotations

import datetime as dt
import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def timestamp() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def append(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append `record` as one line, stamped with the time; raises OSError."""
    line = (json.dumps({"time": timestamp(), **record}, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
