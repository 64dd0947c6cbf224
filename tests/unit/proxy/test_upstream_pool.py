"""The upstream pool hands out only connections that may carry a request (``Lease``).

Issue 16's bug was a connection whose write side the client-EOF watcher had shut, pooled
because its response then ended cleanly, and written to by the next client. These tests
drive the lease through that order of events on a real socket pair (no dockerd)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from eci.proxy.upstream import Lease, LeaseState, UpstreamPool


def _with_lease(check: Callable[[Lease, UpstreamPool, socket.socket], Awaitable[None]]) -> None:
    async def scenario() -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX)
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        pool = UpstreamPool(Path("/nonexistent/dockerd.sock"))
        try:
            await check(Lease(reader, writer, reused=False), pool, theirs)
        finally:
            pool.close()
            writer.close()
            theirs.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_a_clean_response_makes_the_connection_ready_and_pooled() -> None:
    async def check(lease: Lease, pool: UpstreamPool, _: socket.socket) -> None:
        lease.ended(reusable=True)
        assert lease.state is LeaseState.READY
        pool.release(lease)
        assert pool.idle == [lease]
        assert await pool.acquire() is lease
        assert (lease.state, lease.reused) == (LeaseState.BUSY, True)

    _with_lease(check)


def test_a_connection_shut_for_the_clients_eof_stays_spent_and_is_never_pooled() -> None:
    async def check(lease: Lease, pool: UpstreamPool, dockerd: socket.socket) -> None:
        lease.shut_write()
        await asyncio.sleep(0)
        assert dockerd.recv(10) == b""  # dockerd saw the EOF
        lease.ended(reusable=True)  # the response then ends cleanly: still spent
        assert lease.state is LeaseState.SPENT
        pool.release(lease)
        assert pool.idle == []
        assert lease.writer.is_closing()
        with pytest.raises(ValueError, match="spent cannot be reused"):
            lease.begin()

    _with_lease(check)


@pytest.mark.parametrize("reusable", [False, True])
def test_only_a_busy_connection_changes_when_its_response_ends(reusable: bool) -> None:
    async def check(lease: Lease, pool: UpstreamPool, _: socket.socket) -> None:
        lease.ended(reusable=False)  # e.g. dockerd answered `Connection: close`
        assert lease.state is LeaseState.SPENT
        lease.ended(reusable=reusable)
        assert lease.state is LeaseState.SPENT
        pool.release(lease)
        assert pool.idle == []

    _with_lease(check)


def test_an_idle_connection_dockerd_closed_is_dropped_not_handed_out(tmp_path: Path) -> None:
    async def check(lease: Lease, pool: UpstreamPool, dockerd: socket.socket) -> None:
        lease.ended(reusable=True)
        pool.release(lease)
        dockerd.close()
        while not lease.reader.at_eof():
            await asyncio.sleep(0.001)
        pool.path = tmp_path / "d.sock"  # the fresh connection it opens instead
        accepted: list[asyncio.StreamWriter] = []

        async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)

        async with await asyncio.start_unix_server(accept, path=str(pool.path)):
            fresh = await pool.acquire()
            assert fresh is not lease
            assert not fresh.reused
            fresh.close()
            while not accepted:
                await asyncio.sleep(0.001)
            accepted[0].close()
            await asyncio.sleep(0)
        assert lease.writer.is_closing()

    _with_lease(check)
