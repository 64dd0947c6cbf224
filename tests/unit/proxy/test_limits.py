"""The proxy's limits (``proxy/limits.py``, ``proxy/admission.py``) against the scripted fake
dockerd: body sizes, the budget of held bodies, timeouts of heads, bodies and idle
connections (and none for streams and responses), the per-uid connection cap.

Timeouts are shrunk to a fraction of a second; what is asserted is what happens (the answer,
the close, what reached dockerd), never how fast.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from tests.unit.proxy.test_connection import (
    Hijack,
    Reply,
    Seen,
    chunked,
    default_reply,
    http,
    proxy,
    response,
    run,
)

from eci.errors import ECI_PREFIX
from eci.proxy import memory
from eci.proxy.admission import BodyBudget, ConnectionCounts
from eci.proxy.limits import Limits

SHORT = 0.2
#: longer than every SHORT timeout
PAUSE = 3 * SHORT
FAST = Limits(header_timeout=SHORT, body_timeout=SHORT, idle_timeout=SHORT)
CREATE = "/v1.41/containers/create"


def head(length: int) -> bytes:
    """A create's head announcing ``length`` bytes of body."""
    return (
        http("POST", CREATE, headers=(("Content-Type", "application/json"),), length=False)[:-2]
        + f"Content-Length: {length}\r\n\r\n".encode()
    )


# --- body sizes -----------------------------------------------------------------------------------


def test_an_announced_body_over_the_limit_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with proxy(tmp_path, limits=Limits(policed_body=1000)) as px, px.client() as client:
            await client.send(head(1001))  # and not one byte of the body
            refused = await client.response()
            assert refused.status == 413
            assert refused.message == (
                f"{ECI_PREFIX}request body is larger than the proxy's limit of 1000 bytes; refused"
            )
            assert await client.closed()
        assert px.fake.requests == []

    run(scenario())


@pytest.mark.parametrize(
    ("method", "target", "limit"),
    [
        ("POST", CREATE, "policed_body"),
        ("POST", "/v1.41/secrets/create", "policed_body"),
        ("POST", "/v1.41/no/such/route", "policed_body"),
        ("GET", "/v1.41/containers/json", "small_body"),
        ("DELETE", "/v1.41/containers/x", "small_body"),
        ("POST", "/v1.41/containers/x/wait", "small_body"),
    ],
)
def test_each_route_has_its_body_limit(
    tmp_path: Path, method: str, target: str, limit: str
) -> None:
    limits = Limits(policed_body=3000, small_body=2000)
    expected = getattr(limits, limit)

    async def scenario() -> None:
        async with proxy(tmp_path, limits=limits) as px:
            for size, status in ((expected, 200), (expected + 1, 413)):
                async with px.client() as client:
                    body = b" " * (size - 2) + b"{}"
                    await client.send(http(method, target, body))
                    answer = await client.response(method)
                    if status == 413 or target != "/v1.41/no/such/route":
                        assert answer.status == status, (size, answer)
                    else:  # read whole, then refused as an unknown route
                        assert answer.status == 403, (size, answer)

    run(scenario())


# --- the budget of held bodies --------------------------------------------------------------------


def test_a_body_waits_for_the_budget_then_is_served(tmp_path: Path) -> None:
    """Two bodies of 600 bytes under a 1000-byte budget: the second is read once the first
    is done."""
    limits = Limits(budget=1000, budget_per_uid=1000, body_timeout=30.0)
    body = b'{"Image": "busybox"}' + b" " * 580

    async def scenario() -> None:
        async with proxy(tmp_path, limits=limits) as px:
            async with px.client() as first, px.client() as second:
                await first.send(head(len(body)) + body[:100])
                while px.config.budget.used != len(body):
                    await asyncio.sleep(0.01)
                await second.send(head(len(body)) + body)
                await asyncio.sleep(PAUSE)
                assert px.fake.forwarded == []  # the second waits, unread
                await first.send(body[100:])
                assert (await first.response()).status == 200
                assert (await second.response()).status == 200
            assert px.config.budget.used == 0
        assert len(px.fake.forwarded) == 2

    run(scenario())


def test_a_body_that_never_fits_the_budget_is_a_503(tmp_path: Path) -> None:
    """A create answered slowly holds its body (600 of 1000 bytes) until answered: another
    600 bytes do not fit within the body timeout."""
    limits = Limits(budget=1000, budget_per_uid=1000, body_timeout=SHORT)
    body = b'{"Image": "busybox"}' + b" " * 580
    answered = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: bytes) -> None:
        await answered.wait()
        writer.write(response(201, {"Id": "c1"}, "Created"))
        await writer.drain()

    def reply(seen: Seen) -> Reply:
        return Hijack(b"", slow) if "name=slow" in seen.target else default_reply(seen)

    async def scenario() -> None:
        async with (
            proxy(tmp_path, reply, limits=limits) as px,
            px.client() as holder,
            px.client() as late,
        ):
            await holder.send(http("POST", CREATE + "?name=slow", body))
            while not px.fake.forwarded:
                await asyncio.sleep(0.01)
            await late.send(http("POST", CREATE, body))
            busy = await late.response()
            assert busy.status == 503
            assert busy.message == (
                f"{ECI_PREFIX}the proxy holds as many request bodies as it may (1000 bytes,"
                f" 1000 per user) and none was freed within {SHORT:g} s; retry later"
            )
            assert await late.closed()
            answered.set()
            assert (await holder.response()).status == 201
        assert len(px.fake.forwarded) == 1

    run(scenario())


def test_one_uid_cannot_take_the_whole_budget() -> None:
    async def scenario() -> None:
        budget = BodyBudget(total=1000, per_uid=600)
        held = await budget.reserve(1, 600)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(SHORT):
                await budget.reserve(1, 1)  # uid 1 has its share
        other = await budget.reserve(2, 400)  # another uid is served
        held.shrink(100)
        assert (budget.used, budget.by_uid) == (500, {1: 100, 2: 400})
        held.release()
        other.release()
        assert (budget.used, budget.by_uid) == (0, {})
        with pytest.raises(ValueError, match="can never fit"):
            await budget.reserve(1, 601)

    asyncio.run(scenario())


def test_what_is_given_back_is_reported() -> None:
    freed: list[int] = []

    async def scenario() -> None:
        budget = BodyBudget(total=1000, per_uid=1000, on_release=freed.append)
        held = await budget.reserve(1, 800)
        held.shrink(300)
        held.release()

    asyncio.run(scenario())
    assert freed == [500, 300]


def test_the_heap_is_trimmed_once_after_a_burst_of_frees(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "TRIM_DELAY", 0.0)

    async def scenario() -> None:
        returned = memory.MemoryReturn()
        returned.freed_bytes(memory.TRIM_AFTER - 1)
        await asyncio.sleep(0.01)
        assert returned.trims == 0  # not worth a trim yet
        returned.freed_bytes(1)
        returned.freed_bytes(memory.TRIM_AFTER)  # (before the trim runs: the same burst)
        await asyncio.sleep(0.01)
        assert (returned.trims, returned.freed) == (1, 0)

    asyncio.run(scenario())


# --- timeouts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "waiting", "timeout"),
    [
        (b"GET /_ping HTTP/1.1\r\nHost: docker\r\n", "the rest of the request head", SHORT),
        (head(100) + b'{"Image": ', "the request body", SHORT),
    ],
    ids=["head", "body"],
)
def test_a_stalled_request_is_a_408_and_closed(
    tmp_path: Path, sent: bytes, waiting: str, timeout: float
) -> None:
    async def scenario() -> None:
        async with proxy(tmp_path, limits=FAST) as px, px.client() as client:
            await client.send(sent)
            answer = await client.response()
            assert answer.status == 408
            assert answer.message == (
                f"{ECI_PREFIX}{waiting} did not arrive within {timeout:g} s; closing the connection"
            )
            assert await client.closed()
        assert px.fake.forwarded == []
        [record] = px.audit_records()
        assert (record["rule"], record["status"]) == ("client-timeout", 408)

    run(scenario())


def test_an_idle_connection_is_closed_without_an_answer(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with proxy(tmp_path, limits=FAST) as px, px.client() as client:
            await client.send(http("GET", "/_ping"))
            assert (await client.response()).status == 200
            assert await client.closed()  # after idle_timeout with nothing sent
        assert px.audit_records() == []

    run(scenario())


def test_a_slow_streamed_body_is_relayed_as_it_comes_untimed(tmp_path: Path) -> None:
    """An image load is relayed, not held: dockerd has its first bytes while the client still
    holds the rest, and no body timeout ends it."""
    tarball = os.urandom(4000)

    async def scenario() -> None:
        async with proxy(tmp_path, limits=FAST) as px, px.client() as client:
            chunks = (("Transfer-Encoding", "chunked"),)
            load = http("POST", "/v1.41/images/load", headers=chunks, length=False)
            await client.send(load + chunked(tarball[:1000])[: -len(b"0\r\n\r\n")])
            while tarball[:1000] not in bytes(px.fake.raw):
                await asyncio.sleep(0.01)
            assert px.config.budget.used == 0
            await asyncio.sleep(PAUSE)  # longer than the body and header timeouts
            await client.send(chunked(tarball[1000:]))
            assert (await client.response()).status == 200
        [seen] = px.fake.forwarded
        assert seen.body == tarball

    run(scenario())


def test_a_slow_response_is_relayed_untimed(tmp_path: Path) -> None:
    """`wait`, `logs -f`, `events` answer late: no client timeout runs meanwhile."""

    async def late(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: bytes) -> None:
        await asyncio.sleep(PAUSE)
        writer.write(response(200, {"StatusCode": 0}))
        await writer.drain()

    def reply(seen: Seen) -> Reply:
        return Hijack(b"", late) if seen.target.endswith("/wait") else default_reply(seen)

    async def scenario() -> None:
        async with proxy(tmp_path, reply, limits=FAST) as px, px.client() as client:
            await client.send(http("POST", "/v1.41/containers/eci-c/wait"))
            assert (await client.response()).status == 200

    run(scenario())


# --- connections per uid --------------------------------------------------------------------------


def test_a_uid_over_its_connections_is_a_429_and_others_are_served(tmp_path: Path) -> None:
    limits = Limits(connections_per_uid=2, unlimited_uids=frozenset())
    uid = os.getuid()

    async def scenario() -> None:
        async with proxy(tmp_path, limits=limits) as px:
            async with px.client() as one, px.client() as two:
                for client in (one, two):
                    await client.send(http("GET", "/_ping"))
                    assert (await client.response()).status == 200
                async with px.client() as three:
                    await three.send(http("GET", "/_ping"))
                    refused = await three.response()
                    assert refused.status == 429
                    assert refused.message == (
                        f"{ECI_PREFIX}uid {uid} has 2 connections open to the Docker socket, "
                        "the most one user may have; close some and retry"
                    )
                    assert await three.closed()
            while px.config.connections.open:
                await asyncio.sleep(0.01)
            async with px.client() as again:
                await again.send(http("GET", "/_ping"))
                assert (await again.response()).status == 200
        assert [s.target for s in px.fake.forwarded] == ["/_ping"] * 3
        assert [r["rule"] for r in px.audit_records()] == ["too-many-connections"]

    run(scenario())


def test_root_is_not_counted() -> None:
    counts = ConnectionCounts(Limits(connections_per_uid=1))
    assert counts.admit(0)
    assert counts.admit(0)
    assert counts.admit(1000)
    assert not counts.admit(1000)
    counts.leave(1000)
    assert counts.admit(1000)
    assert counts.open == {1000: 1}
