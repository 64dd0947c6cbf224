"""What the proxy lets in, shared by every connection: connections per uid, and the budget of
request bodies held in memory at once.

A body reserves its whole size (its Content-Length, or its route's limit when chunked) before
a byte of it is read, and gives it back once forwarded or refused. A connection never holds
part of the budget while waiting for more, so waiting cannot deadlock: it ends when enough is
given back, or at the body's deadline (the caller's timeout, then a 503).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from eci.proxy.limits import Limits

__all__ = ["BodyBudget", "ConnectionCounts", "Reservation"]


class ConnectionCounts:
    """Open connections per uid, against ``Limits.connections_per_uid``."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open: dict[int, int] = {}

    def admit(self, uid: int) -> bool:
        """Count a new connection of ``uid``; ``False`` (not counted) when it has its most."""
        if not self.limits.counts_connections_of(uid):
            return True
        held = self.open.get(uid, 0)
        if held >= self.limits.connections_per_uid:
            return False
        self.open[uid] = held + 1
        return True

    def leave(self, uid: int) -> None:
        """An admitted connection of ``uid`` has closed."""
        held = self.open.get(uid, 0) - 1
        if held > 0:
            self.open[uid] = held
        else:
            self.open.pop(uid, None)


class BodyBudget:
    """Bytes of request bodies held across connections: ``total`` in all, ``per_uid`` by one
    uid. ``on_release(n)`` is told of every ``n`` bytes given back (to return memory)."""

    def __init__(
        self, total: int, per_uid: int, on_release: Callable[[int], None] | None = None
    ) -> None:
        self.total = total
        self.per_uid = per_uid
        self.used = 0
        self.by_uid: dict[int, int] = {}
        self.on_release = on_release
        self._waiters: list[asyncio.Future[None]] = []

    def _fits(self, uid: int, size: int) -> bool:
        return self.used + size <= self.total and self.by_uid.get(uid, 0) + size <= self.per_uid

    async def reserve(self, uid: int, size: int) -> Reservation:
        """Reserve ``size`` bytes for ``uid``, waiting while they do not fit; the caller
        releases them (``Reservation.release``)."""
        if size > min(self.total, self.per_uid):
            raise ValueError(f"a body of {size} bytes can never fit the budget")
        while not self._fits(uid, size):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        self.used += size
        self.by_uid[uid] = self.by_uid.get(uid, 0) + size
        return Reservation(self, uid, size)

    def _release(self, uid: int, size: int) -> None:
        if not size:
            return
        self.used -= size
        left = self.by_uid[uid] - size
        if left:
            self.by_uid[uid] = left
        else:
            del self.by_uid[uid]
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:  # each checks again whether it fits now
            if not waiter.done():
                waiter.set_result(None)
        if self.on_release is not None:
            self.on_release(size)


class Reservation:
    """Bytes of the budget held for one body."""

    def __init__(self, budget: BodyBudget, uid: int, size: int) -> None:
        self.budget = budget
        self.uid = uid
        self.size = size

    def shrink(self, size: int) -> None:
        """Keep only ``size`` bytes (the body read was smaller than reserved)."""
        if size < self.size:
            self.budget._release(self.uid, self.size - size)
            self.size = size

    def release(self) -> None:
        self.shrink(0)
