"""Exclusive 65536-id ranges for containers, from the `eci` user's /etc/subuid entry.

Store layout (one directory per engine, e.g. /var/lib/eci/ranges):
    slot-<n>        holds the container id that owns range n (created with link(): atomic,
                    exists only with its content, so a crash never leaves half an allocation)
Allocation takes the lowest free slot; release removes the slot. A slot whose container runc no
longer knows (no state dir under runc's --root) and that is older than a grace period is stale
and is reclaimed, so a shim killed mid-create never leaks a range for long.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eci.errors import RangePoolExhausted, RuntimeShimError

RANGE_SIZE = 65536
STALE_GRACE_SECONDS = 120.0


@dataclass(frozen=True)
class Pool:
    """The id range eci may hand out: [start, start + count), cut into 65536-id slots."""

    start: int
    count: int

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


class RangeStore:
    """Allocations of one pool, kept as files in `directory` (see module docstring)."""

    def __init__(self, directory: Path, pool: Pool) -> None:
        self.directory = directory
        self.pool = pool

    def _slot_path(self, slot: int) -> Path:
        return self.directory / f"slot-{slot}"

    def allocations(self) -> dict[int, str]:
        """slot -> container id, for every allocated slot."""
        found = {}
        with contextlib.suppress(FileNotFoundError), os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.name.startswith("slot-") and entry.name[5:].isdigit():
                    with contextlib.suppress(FileNotFoundError):
                        found[int(entry.name[5:])] = Path(entry.path).read_text()
        return found

    def slot_of(self, container_id: str) -> int | None:
        for slot, owner in self.allocations().items():
            if owner == container_id:
                return slot
        return None

    def allocate(self, container_id: str, is_live: Callable[[str], bool]) -> int:
        """The base uid of a range held by no other container (reusing this one's, if any)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        existing = self.slot_of(container_id)
        if existing is not None:
            return self.pool.base(existing)
        for attempt in range(2):
            taken = set(self.allocations())
            for slot in range(self.pool.slots):
                if slot not in taken and self._claim(slot, container_id):
                    return self.pool.base(slot)
            if attempt == 0 and not self.reclaim_stale(is_live):
                break
        raise RangePoolExhausted(
            f"no free user-id range: all {self.pool.slots} ranges of eci's pool "
            f"({self.pool.start}-{self.pool.start + self.pool.count - 1}) are held by live "
            "containers; remove containers or enlarge the eci entry in /etc/subuid and /etc/subgid"
        )

    def _claim(self, slot: int, container_id: str) -> bool:
        tmp = self.directory / f".claim-{os.getpid()}-{slot}"
        tmp.write_text(container_id)
        try:
            os.link(tmp, self._slot_path(slot))
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink()

    def release(self, container_id: str) -> bool:
        released = False
        for slot, owner in self.allocations().items():
            if owner == container_id:
                with contextlib.suppress(FileNotFoundError):
                    self._slot_path(slot).unlink()
                released = True
        return released

    def reclaim_stale(
        self, is_live: Callable[[str], bool], grace: float = STALE_GRACE_SECONDS
    ) -> list[str]:
        """Release slots of containers runc no longer knows, once older than `grace` seconds."""
        now = time.time()
        reclaimed = []
        for slot, owner in self.allocations().items():
            path = self._slot_path(slot)
            try:
                age = now - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if age >= grace and not is_live(owner):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                reclaimed.append(owner)
        return reclaimed
