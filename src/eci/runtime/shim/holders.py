"""Host processes holding ids of an id range, found in /proc and killed.

A process that holds a uid or gid of a container's range after the container is gone (one
that escaped it, or was given the ids) would own the files of the next container handed the
same range. Before a freed range is handed out again (ranges.py) every task on the host is
read: its real, effective, saved and filesystem uids and gids and its supplementary groups,
from `/proc/<pid>/task/<tid>/status`. `stat /proc/<pid>` is not enough: it shows only the
effective ids, and root's for a process a setuid exec made non-dumpable; each thread has
credentials of its own. The host's /proc shows the tasks of every pid namespace, so processes
left in a container's namespaces are found too. Zombies hold nothing and are skipped.

Imported by the shim on a container's release: os and signal only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

Ids = tuple[int, ...]
#: rounds of scan-and-kill before a range is left quarantined (a holder forking faster than
#: it is killed, or one the kernel cannot kill yet)
ROUNDS = 50
ROUND_PAUSE = 0.02


class Holder:
    """One task found holding ids of a range: its process (thread group), thread and ids."""

    __slots__ = ("comm", "gids", "groups", "pid", "tid", "uids")

    def __init__(
        self,
        pid: int,
        tid: int,
        comm: str,
        uids: tuple[int, ...],
        gids: tuple[int, ...],
        groups: tuple[int, ...],
    ) -> None:
        self.pid = pid
        self.tid = tid
        self.comm = comm
        self.uids = uids
        self.gids = gids
        self.groups = groups

    def __repr__(self) -> str:
        return f"Holder(pid={self.pid}, tid={self.tid}, comm={self.comm!r})"

    def ids(self) -> set[int]:
        return {*self.uids, *self.gids, *self.groups}

    def describe(self) -> str:
        """The ids as /proc shows them: real, effective, saved, filesystem."""
        uids = "/".join(map(str, self.uids))
        gids = "/".join(map(str, self.gids))
        groups = ",".join(map(str, self.groups)) or "none"
        return f"uids {uids}, gids {gids}, groups {groups}"


#: the status lines a sweep reads, by their key
_WANTED = {b"Name": 0, b"State": 1, b"Uid": 2, b"Gid": 3, b"Groups": 4}


def parse_status(
    text: str | bytes,
) -> tuple[str, str, tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(name, state letter, uids, gids, groups) from the text of a /proc status file."""
    data = text.encode() if isinstance(text, str) else text
    fields = [b"", b"?", b"", b"", b""]
    for line in data.split(b"\n"):
        key, sep, value = line.partition(b":")
        index = _WANTED.get(key)
        if sep and index is not None:
            fields[index] = value.strip()
            if index == 4:  # Groups comes after the others
                break
    name, state, uids, gids, groups = fields
    return (
        name.decode("utf-8", "replace"),
        state[:1].decode("ascii", "replace"),
        tuple(map(int, uids.split())),
        tuple(map(int, gids.split())),
        tuple(map(int, groups.split())),
    )


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # gone meanwhile, or not a task
        return None
    try:
        return os.read(fd, 65536)
    except OSError:
        return None
    finally:
        os.close(fd)


def _numeric(directory: str) -> list[str]:
    try:
        return [name for name in os.listdir(directory) if name.isdigit()]
    except OSError:
        return []


def tasks(proc: str = "/proc") -> Iterator[tuple[int, int, bytes]]:
    """(pid, tid, status bytes) of every task the procfs at `proc` shows."""
    for pid in _numeric(proc):
        for tid in _numeric(f"{proc}/{pid}/task"):
            data = _read(f"{proc}/{pid}/task/{tid}/status")
            if data is not None:
                yield int(pid), int(tid), data


def ids_between(first: int, count: int) -> Callable[[int], bool]:
    """`pick` for the ids [first, first + count) of one range."""
    return lambda i: first <= i < first + count


def holding(text: str | bytes, pid: int, tid: int, pick: Callable[[int], bool]) -> Holder | None:
    """The task whose status is `text`, if it holds an id `pick` picks and is not a zombie.
    `pick` is asked only for ids of tasks seen (and again before a kill): a caller can judge
    an id by the state of its range at that moment."""
    comm, state, uids, gids, groups = parse_status(text)
    if state in ("Z", "X"):
        return None
    if any(pick(i) for i in {*uids, *gids, *groups}):
        return Holder(pid, tid, comm, uids, gids, groups)
    return None


def find(pick: Callable[[int], bool], proc: str = "/proc") -> list[Holder]:
    """Every live task holding an id `pick` picks."""
    found = []
    for pid, tid, text in tasks(proc):
        holder = holding(text, pid, tid, pick)
        if holder is not None:
            found.append(holder)
    return found


def kill(holder: Holder, pick: Callable[[int], bool], proc: str = "/proc") -> bool:
    """SIGKILL the holder's process, once a pidfd pins it and its task is seen holding a
    picked id again (a pid reused meanwhile is never signalled). True when signalled."""
    try:
        pidfd = os.pidfd_open(holder.pid)
    except OSError:  # gone
        return False
    try:
        text = _read(f"{proc}/{holder.pid}/task/{holder.tid}/status")
        if text is None or holding(text, holder.pid, holder.tid, pick) is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return True
    finally:
        os.close(pidfd)


def sweep(
    pick: Callable[[int], bool],
    killed: Callable[[Holder], None],
    proc: str = "/proc",
    rounds: int = ROUNDS,
) -> list[Holder]:
    """Kill every process holding an id `pick` picks, calling `killed` once for each one
    signalled, and scan again until a scan finds none. Returns the holders still there after
    `rounds` scans (empty: none left; otherwise the caller must not hand their ranges out)."""
    reported: set[int] = set()
    for _ in range(rounds):
        found = find(pick, proc)
        if not found:
            return []
        for holder in found:
            if kill(holder, pick, proc) and holder.pid not in reported:
                reported.add(holder.pid)
                killed(holder)
        time.sleep(ROUND_PAUSE)  # let the kernel finish the exits
    return find(pick, proc)
