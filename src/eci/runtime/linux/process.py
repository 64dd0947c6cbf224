"""Small process facts and chores shared by the runtime's daemons (server, supervisor).

- `start_ticks(pid)`: field 22 of /proc/<pid>/stat (clock ticks after boot), None when the
  process is gone or a zombie: pid plus start time names a process, and a container's init
  started then is its uptime;
- `write_atomic(path, text)`: a file that exists only complete;
- `serve_until_signalled(pid_file)`: SIGTERM/SIGINT end the daemon (SystemExit), and its pid
  file, written once it is ready, is removed on the way out.
"""

from __future__ import annotations

import contextlib
import os
import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator


def start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def write_atomic(path: str, text: str) -> None:
    with open(f"{path}.tmp", "w") as f:
        f.write(text)
    os.replace(f"{path}.tmp", path)


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


@contextlib.contextmanager
def serve_until_signalled(pid_file: str) -> Iterator[None]:
    """Around a daemon's loop: its pid file says it is ready; a signal ends it cleanly."""
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    write_atomic(pid_file, f"{os.getpid()}\n")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(pid_file)
