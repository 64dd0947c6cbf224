"""Processes eci starts and later stops, identified by pid *and* start time.

A pid alone can be recycled between `eci up` and `eci down`; the kernel's start time of the
process (field 22 of /proc/PID/stat) makes the identity exact, so eci never signals a stranger.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

SANE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ProcessId:
    """A process as eci knows it: pid + kernel start time (+ name, for humans)."""

    name: str
    pid: int
    start_time: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ProcessId:
        return cls(
            name=str(data["name"]),
            pid=int(str(data["pid"])),
            start_time=int(str(data["start_time"])),
        )


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def start_time_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own, reaped children's) CPU time of `pid`, user + system, in seconds."""
    fields = _stat_fields(pid)
    if fields is None:
        raise ProcessLookupError(pid)
    tick = os.sysconf("SC_CLK_TCK")
    own, children = (int(fields[11]) + int(fields[12])), (int(fields[13]) + int(fields[14]))
    return own / tick, children / tick


def children_of(pid: int) -> set[int]:
    """The live children of `pid` (from every process's /proc/PID/stat)."""
    found = set()
    for entry in Path("/proc").iterdir():
        fields = _stat_fields(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and fields[0] not in ("Z", "X") and int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def is_alive(proc: ProcessId) -> bool:
    """True while the very process eci started runs (not a zombie, not a recycled pid)."""
    fields = _stat_fields(proc.pid)
    if fields is None or fields[0] in ("Z", "X"):
        _reap(proc.pid)
        return False
    return int(fields[19]) == proc.start_time


def _reap(pid: int) -> None:
    """Collect our own zombie child if it is one; harmless for anyone else's process."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def spawn(
    name: str, argv: Sequence[str], log_file: Path, env: dict[str, str] | None = None
) -> ProcessId:
    """Start a daemon in its own session with output to its log; returns its exact identity."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    child_env = {"PATH": SANE_PATH, "LANG": "C.UTF-8"}
    child_env.update(env or {})
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=child_env,
        )
    start = start_time_of(proc.pid)
    if start is None:
        raise ChildProcessError(f"{name} exited at once (pid {proc.pid}); see {log_file}")
    return ProcessId(name=name, pid=proc.pid, start_time=start)


def stop(proc: ProcessId, timeout: float = 20.0) -> bool:
    """SIGTERM, wait up to `timeout`, then SIGKILL. Returns False if it was already gone."""
    if not is_alive(proc):
        return False
    os.kill(proc.pid, signal.SIGTERM)
    if wait_gone(proc, timeout):
        return True
    if is_alive(proc):
        os.kill(proc.pid, signal.SIGKILL)
        wait_gone(proc, 5.0)
    return True


def wait_gone(proc: ProcessId, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(proc):
            return True
        time.sleep(0.05)
    return not is_alive(proc)


def processes_mentioning(needle: str) -> list[ProcessId]:
    """Processes whose command line contains `needle` (an exact path of ours), e.g. leftover
    containerd shims that were started with our containerd socket as their --address."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(needle.encode() == arg or needle.encode() + b"/" in arg for arg in argv):
            pid = int(entry.name)
            start = start_time_of(pid)
            if start is not None and pid != os.getpid():
                found.append(ProcessId(argv[0].decode(errors="replace"), pid, start))
    return found
