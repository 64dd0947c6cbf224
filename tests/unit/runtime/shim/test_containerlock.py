"""The per-container lock: one holder at a time, and a lock file removed by its last holder
never leaves a waiter holding a lock on a file nobody else can find.

Threads stand in for processes: flock(2) locks belong to open file descriptions, so two
opens in one process exclude each other as two processes would."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from eci.runtime.shim.containerlock import ContainerLock


def _in_thread(
    directory: Path, events: list[str], name: str, hold: float = 0.0
) -> threading.Thread:
    """A locker of container c1 that records when it holds the lock, and whether the file
    it locked is the one at the lock's path (as every other locker finds it)."""

    def run() -> None:
        with ContainerLock(str(directory), "c1") as lock:
            events.append(f"{name} in")
            held = os.fstat(lock._fd)  # the file this holder locked
            try:
                at_path = os.stat(lock.path)
                same = (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)
            except FileNotFoundError:
                same = False
            events.append(f"{name} {'holds the file at the path' if same else 'holds a lost file'}")
            time.sleep(hold)
            events.append(f"{name} out")

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_one_holder_at_a_time(tmp_path: Path) -> None:
    events: list[str] = []
    with ContainerLock(str(tmp_path), "c1"):
        waiter = _in_thread(tmp_path, events, "waiter")
        time.sleep(0.3)
        assert events == []  # still waiting
    waiter.join(timeout=5)
    assert events == ["waiter in", "waiter holds the file at the path", "waiter out"]
    assert (tmp_path / "c1.lock").exists()  # not removed: the container's staging lives on


def test_other_containers_do_not_wait(tmp_path: Path) -> None:
    with ContainerLock(str(tmp_path), "c1"), ContainerLock(str(tmp_path), "c2") as other:
        assert Path(other.path).name == "c2.lock"


def test_a_waiter_on_a_removed_lock_file_locks_the_new_one(tmp_path: Path) -> None:
    """The cleanup's end: a waiter had opened the file its holder removes. It must not hold a
    lock on that lost file while a newcomer locks the new one."""
    events: list[str] = []
    with ContainerLock(str(tmp_path), "c1") as lock:
        waiter = _in_thread(tmp_path, events, "waiter", hold=0.5)
        time.sleep(0.3)
        lock.remove()
    time.sleep(0.1)
    newcomer = _in_thread(tmp_path, events, "newcomer")
    waiter.join(timeout=5)
    newcomer.join(timeout=5)
    assert events == [
        "waiter in",
        "waiter holds the file at the path",
        "waiter out",
        "newcomer in",
        "newcomer holds the file at the path",
        "newcomer out",
    ]


def test_the_last_holder_removes_the_file(tmp_path: Path) -> None:
    with ContainerLock(str(tmp_path), "c1") as lock:
        lock.remove()
        assert (tmp_path / "c1.lock").exists()  # removed on the way out, under the lock
    assert list(tmp_path.iterdir()) == []
