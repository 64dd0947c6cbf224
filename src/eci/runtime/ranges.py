"""Exclusive 65536-id ranges for containers, from the `eci` user's /etc/subuid entry.

Store layout (one directory for every engine on the host, e.g. /var/lib/eci/ranges):
    slot-<n>        holds the owner of range n (`<runc root>/<container id>`); created with
                    link(), so it exists only with its content and two creators never both win
Allocation takes the lowest free slot; release removes the slot. A slot whose owner runc no
longer knows (no state dir) and that is older than a grace period is stale and is reclaimed,
so a shim killed mid-create never leaks a range for long.

Imported by the shim on every create and delete: os only (no pathlib, no dataclasses).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

from eci.errors import RangePoolExhausted, RuntimeShimError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

RANGE_SIZE = 65536
STALE_GRACE_SECONDS = 120.0


class Pool:
    """The id range eci may hand out: [start, start + count), cut into 65536-id slots."""

    __slots__ = ("count", "start")

    def __init__(self, start: int, count: int) -> None:
        self.start = start
        self.count = count

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pool) and (self.start, self.count) == (other.start, other.count)

    def __hash__(self) -> int:
        return hash((self.start, self.count))

    def __repr__(self) -> str:
        return f"Pool(start={self.start}, count={self.count})"

    @property
    def slots(self) -> int:
        return self.count // RANGE_SIZE

    def base(self, slot: int) -> int:
        return self.start + slot * RANGE_SIZE

    @classmethod
    def from_subid(cls, text: str, user: str, origin: str = "/etc/subuid") -> Pool:
        """Parse subuid/subgid text (`name:start:count` lines) for `user`'s first entry."""
        for line in text.splitlines():
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[0] == user:
                try:
                    pool = cls(int(parts[1]), int(parts[2]))
                except ValueError:
                    break
                if pool.start <= 0 or pool.slots < 1:
                    raise RuntimeShimError(
                        f"{origin}: entry {line.strip()!r} is too small: need at least "
                        f"{RANGE_SIZE} ids starting above 0"
                    )
                return pool
        raise RuntimeShimError(
            f"{origin} has no valid entry for user {user!r}; "
            "run `make setup` (scripts/setup-host) to create it"
        )


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


class RangeStore:
    """Allocations of one pool, kept as files in `directory` (see module docstring)."""

    def __init__(self, directory: str | os.PathLike[str], pool: Pool) -> None:
        self.directory = os.fspath(directory)
        self.pool = pool

    def _slot_path(self, slot: int) -> str:
        return os.path.join(self.directory, f"slot-{slot}")

    def allocations(self) -> dict[int, str]:
        """slot -> owner, for every allocated slot."""
        found = {}
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return {}
        for name in names:
            if name.startswith("slot-") and name[5:].isdigit():
                try:
                    found[int(name[5:])] = _read(os.path.join(self.directory, name))
                except FileNotFoundError:
                    continue
        return found

    def slot_of(self, owner: str) -> int | None:
        for slot, held_by in self.allocations().items():
            if held_by == owner:
                return slot
        return None

    def allocate(self, owner: str, is_live: Callable[[str], bool]) -> int:
        """The base uid of a range held by nobody else (reusing this owner's, if any)."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        for attempt in range(2):
            held = self.allocations()  # one read of the store per attempt
            for slot, held_by in held.items():
                if held_by == owner:
                    try:  # reused: restart the stale-reclaim grace period
                        os.utime(self._slot_path(slot))
                    except FileNotFoundError:
                        continue
                    return self.pool.base(slot)
            for slot in range(self.pool.slots):
                if slot not in held and self._claim(slot, owner):
                    return self.pool.base(slot)
            if attempt == 0 and not self.reclaim_stale(is_live):
                break
        raise RangePoolExhausted(
            f"no free user-id range: all {self.pool.slots} ranges of eci's pool "
            f"({self.pool.start}-{self.pool.start + self.pool.count - 1}) are held by live "
            "containers; remove containers or enlarge the eci entry in /etc/subuid and "
            "/etc/subgid"
        )

    def _claim(self, slot: int, owner: str) -> bool:
        tmp = os.path.join(self.directory, f".claim-{os.getpid()}-{slot}")
        with open(tmp, "w") as f:
            f.write(owner)
        try:
            with self._locked(fcntl.LOCK_SH):  # claims run together, never during a reclaim
                os.link(tmp, self._slot_path(slot))
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def _locked(self, mode: int) -> _Flock:
        return _Flock(self.directory, mode)

    def release(self, owner: str) -> bool:
        """Free the owner's range. Read and removed under the exclusive lock, so a slot that a
        reclaim and a new claim gave to someone else in the meantime is never freed."""
        released = False
        if not os.path.isdir(self.directory):
            return False
        with self._locked(fcntl.LOCK_EX):
            for slot, held_by in self.allocations().items():
                if held_by == owner:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self._slot_path(slot))
                    released = True
        return released

    def reclaim_stale(
        self, is_live: Callable[[str], bool], grace: float = STALE_GRACE_SECONDS
    ) -> list[str]:
        """Release slots whose owner runc no longer knows, once older than `grace` seconds.

        Liveness is judged without the lock (it may take a while); the slot is then removed
        under the exclusive lock only if it is still the very file that was judged (same
        inode, mtime and owner), so a slot re-claimed meanwhile is never taken away."""
        now = time.time()
        candidates = []
        for slot, owner in self.allocations().items():
            try:
                st = os.stat(self._slot_path(slot))
            except FileNotFoundError:
                continue
            if now - st.st_mtime >= grace and not is_live(owner):
                candidates.append((slot, owner, st.st_ino, st.st_mtime_ns))
        reclaimed: list[str] = []
        if not candidates:
            return reclaimed
        with self._locked(fcntl.LOCK_EX):
            for slot, owner, ino, mtime in candidates:
                path = self._slot_path(slot)
                try:
                    st = os.stat(path)
                    if (st.st_ino, st.st_mtime_ns) != (ino, mtime) or _read(path) != owner:
                        continue
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                reclaimed.append(owner)
        return reclaimed


class _Flock:
    """flock(2) on the store directory itself (no lock file to leave behind)."""

    def __init__(self, directory: str, mode: int) -> None:
        self.directory = directory
        self.mode = mode
        self.fd = -1

    def __enter__(self) -> None:
        self.fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self.fd, self.mode)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing the descriptor releases the lock
