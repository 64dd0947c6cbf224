"""`process`: start times from /proc, atomic files, and a daemon's pid file around its loop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from eci.runtime.linux.process import serve_until_signalled, start_ticks, write_atomic


def test_start_ticks_of_a_live_process_and_of_none() -> None:
    ticks = start_ticks(os.getpid())
    assert ticks is not None
    assert ticks > 0
    assert start_ticks(2**22 + 1) is None  # above pid_max: no such process


def test_a_zombie_has_no_start_time() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        pass
    try:
        assert start_ticks(child.pid) is None
    finally:
        child.wait()


def test_write_atomic_leaves_only_the_complete_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_atomic(str(path), "one\n")
    write_atomic(str(path), "two\n")
    assert path.read_text() == "two\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_the_pid_file_lives_as_long_as_the_loop(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    seen = []
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with serve_until_signalled(str(pid_file)):
            seen.append(pid_file.read_text())
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert seen == [f"{os.getpid()}\n"]
    assert not pid_file.exists()
