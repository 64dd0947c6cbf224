"""`ClientConnection` over real unix sockets, against a scripted fake dockerd (no engine).

The fake records every request it receives (parsed with h11) and answers from a script:
plain responses, a chunked one, a 101 upgrade or a 200 raw stream followed by raw bytes both
ways; like Go's net/http it closes the connection after answering a ``Connection: close``.
What is asserted is what reaches "dockerd": the normalized target, the policed body with its
own Content-Length, nothing smuggled behind a Content-Length: 0, nothing at all for a refused,
over-limit or unframeable request; and what the client gets back, in order.

Each test runs its own event loop (``asyncio.run``, no pytest-asyncio) under a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import pytest

from eci.contract.labels import REQUESTER_LABEL
from eci.errors import ECI_PREFIX, host_namespaces_message, restricted_mount_message
from eci.policy import PolicyContext
from eci.proxy.audit import AuditLog
from eci.proxy.config import ProxyConfig
from eci.proxy.connection import ClientConnection
from eci.proxy.limits import CLIENT_BUFFER, Limits

TIMEOUT = 10.0
PID_HOST = host_namespaces_message(["pid"])
ETC_DOCKER = restricted_mount_message("/etc/docker")
UA = ("User-Agent", "eci-test")


# --- a fake dockerd -----------------------------------------------------------------------------


@dataclass
class Seen:
    """One request as the fake dockerd parsed it."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n == name), None)

    @property
    def lookup(self) -> bool:
        """A lookup the proxy made itself (it sends no User-Agent), not a forwarded request."""
        return self.header("user-agent") is None


RawPhase = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]


@dataclass
class Hijack:
    """Answer with ``head``, then hand the raw connection (and bytes read ahead) to ``run``."""

    head: bytes
    run: RawPhase


Reply = bytes | Hijack


def response(status: int, body: Any = None, reason: str = "OK") -> bytes:
    data = b"" if body is None else json.dumps(body).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


RUNTIMES = {"runc-c": "runc", "eci-c": "sysbox-runc"}
#: exec instance -> the container it runs in
EXECS = {"e1": "eci-c"}


def default_reply(seen: Seen) -> Reply:
    """Container and exec lookups answer from ``RUNTIMES`` and ``EXECS``; everything else gets
    a 200 naming itself."""
    parts = seen.target.split("?")[0].split("/")
    if seen.lookup and len(parts) == 4 and parts[1] == "exec" and parts[3] == "json":
        if parts[2] not in EXECS:
            return response(404, {"message": "No such exec instance"}, "Not Found")
        return response(200, {"ID": parts[2], "ContainerID": EXECS[parts[2]]})
    if seen.method == "GET" and len(parts) == 4 and parts[1] == "containers" and parts[3] == "json":
        runtime = RUNTIMES.get(parts[2])
        if runtime is None:
            return response(404, {"message": "No such container"}, "Not Found")
        return response(200, {"Id": parts[2], "HostConfig": {"Runtime": runtime}, "Mounts": []})
    return response(200, {"seen": f"{seen.method} {seen.target}"})


@dataclass
class FakeDockerd:
    reply: Callable[[Seen], Reply] = default_reply
    requests: list[Seen] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)
    connections: int = 0
    errors: list[Exception] = field(default_factory=list)

    @property
    def forwarded(self) -> list[Seen]:
        return [s for s in self.requests if not s.lookup]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        pending = b""
        try:
            while True:
                conn = h11.Connection(h11.SERVER)
                if pending:
                    conn.receive_data(pending)
                head: h11.Request | None = None
                body = bytearray()
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await reader.read(65536)
                        self.raw += data
                        conn.receive_data(data)
                    elif isinstance(event, h11.Request):
                        head = event
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    else:  # ConnectionClosed: the proxy is done with this connection
                        return
                assert head is not None
                seen = Seen(
                    head.method.decode(),
                    head.target.decode(),
                    [(n.decode(), v.decode()) for n, v in head.headers],
                    bytes(body),
                )
                self.requests.append(seen)
                pending = conn.trailing_data[0]
                reply = self.reply(seen)
                if isinstance(reply, Hijack):
                    writer.write(reply.head)
                    await writer.drain()
                    await reply.run(reader, writer, pending)
                    return
                writer.write(reply)
                await writer.drain()
                if (seen.header("connection") or "").lower() == "close":
                    return
        except (ConnectionError, h11.RemoteProtocolError) as exc:
            self.errors.append(exc)
        finally:
            writer.close()


# --- the proxy under test and a client ------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def message(self) -> str:
        return str(json.loads(self.body)["message"])


class Client:
    """Raw bytes out; responses parsed back one at a time with h11."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.CLIENT)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, method: str = "GET") -> Response:
        # h11 only reads a response for a request it sent: "send" one, the bytes went already
        self.conn.send(h11.Request(method=method, target="/", headers=[("Host", "docker")]))
        self.conn.send(h11.EndOfMessage())
        status, headers, body = 0, {}, bytearray()
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {n.decode(): v.decode() for n, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise EOFError("the proxy closed the connection without a response")
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return Response(status, headers, bytes(body))

    async def closed(self) -> bool:
        """Whether the proxy closed the connection (EOF with nothing more to read)."""
        return await self.reader.read(65536) == b""


@dataclass
class Harness:
    fake: FakeDockerd
    config: ProxyConfig
    listen: Path
    audit: Path

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[Client]:
        reader, writer = await asyncio.open_unix_connection(str(self.listen))
        try:
            yield Client(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def audit_records(self) -> list[dict[str, Any]]:
        if not self.audit.exists():
            return []
        return [json.loads(line) for line in self.audit.read_text().splitlines()]


@contextlib.asynccontextmanager
async def proxy(
    tmp_path: Path, reply: Callable[[Seen], Reply] = default_reply, limits: Limits | None = None
) -> AsyncIterator[Harness]:
    """A fake dockerd on ``tmp_path/d.sock`` and the proxy (ECI on) on ``tmp_path/p.sock``.

    On the way out every connection task (the proxy's and the fake's) is awaited and every
    idle upstream connection closed: no transport is left for the garbage collector."""
    fake = FakeDockerd(reply)
    upstream, listen = tmp_path / "d.sock", tmp_path / "p.sock"
    assert len(str(listen)) < 100, "unix socket paths are limited to 107 bytes"
    tasks: set[asyncio.Task[Any]] = set()

    def tracked(
        serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            await serve(reader, writer)

        return handler

    config = ProxyConfig(
        upstream=upstream,
        policy=PolicyContext(eci_enabled=True),
        audit=AuditLog(tmp_path / "audit.jsonl"),
        limits=limits or Limits(),
    )

    async def client_connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await ClientConnection(config, reader, writer).serve()

    fake_server = await asyncio.start_unix_server(tracked(fake.serve), path=str(upstream))
    proxy_server = await asyncio.start_unix_server(
        tracked(client_connected), path=str(listen), limit=CLIENT_BUFFER
    )
    try:
        yield Harness(fake, config, listen, tmp_path / "audit.jsonl")
    finally:
        proxy_server.close()
        await proxy_server.wait_closed()
        while pending := {t for t in tasks if not t.done()}:
            await asyncio.wait(pending, timeout=0.05)
            config.pool.close()
        fake_server.close()
        await fake_server.wait_closed()
        for _ in range(3):  # let the closed transports run their connection_lost
            await asyncio.sleep(0)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def http(
    method: str,
    target: str,
    body: bytes | dict[str, Any] | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    length: bool = True,
) -> bytes:
    """One request as raw bytes; ``length`` adds the true Content-Length."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body or b""
    lines = [f"{method} {target} HTTP/1.1", "Host: docker", f"{UA[0]}: {UA[1]}"]
    if isinstance(body, dict):
        lines.append("Content-Type: application/json")
    lines += [f"{n}: {v}" for n, v in headers]
    if length:
        lines.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


# --- what dockerd receives ------------------------------------------------------------------------

NORMALIZED = [
    ("/v1.41/containers/json", "/v1.41/containers/json"),
    ("//v1.41//containers//json/", "/v1.41/containers/json"),
    ("/containers/./x/../json", "/containers/json"),
    ("/V1.41/CONTAINERS/JSON", "/v1.41/CONTAINERS/JSON"),
    ("http://docker/v1.41/containers/json?all=1", "/v1.41/containers/json?all=1"),
    ("/v1.41/images/localhost%3A5000%2Fa%2Fb/json", "/v1.41/images/localhost:5000/a/b/json"),
    ("/v1.41/images/a%20b/json", "/v1.41/images/a%20b/json"),
    ("/info?x=/../../containers/create&y=a+b", "/info?x=%2F..%2F..%2Fcontainers%2Fcreate&y=a+b"),
]


@pytest.mark.parametrize(("target", "upstream"), NORMALIZED, ids=[c[0] for c in NORMALIZED])
def test_dockerd_receives_the_normalized_target(tmp_path: Path, target: str, upstream: str) -> None:
    async def scenario() -> None:
        async with proxy(tmp_path) as px, px.client() as client:
            await client.send(http("GET", target))
            assert (await client.response()).status == 200
        assert [s.target for s in px.fake.forwarded] == [upstream]

    run(scenario())


def test_a_create_is_forwarded_policed_with_its_own_content_length(tmp_path: Path) -> None:
    body = {"Image": "busybox", "HostConfig": {"Runtime": "runc", "Binds": ["/home/u:/u"]}}

    async def scenario() -> None:
        async with proxy(tmp_path) as px, px.client() as client:
            await client.send(http("POST", "//v1.41/containers/create/?name=a", body))
            assert (await client.response()).status == 200
        [seen] = px.fake.forwarded
        assert (seen.method, seen.target) == ("POST", "/v1.41/containers/create?name=a")
        sent = json.loads(seen.body)
        assert sent["HostConfig"] == {"Binds": ["/home/u:/u"], "Runtime": "sysbox-runc"}
        assert seen.header("content-length") == str(len(seen.body))
        assert seen.header("transfer-encoding") is None
        assert seen.header("user-agent") == UA[1]

    run(scenario())


def test_a_chunked_body_arrives_with_a_content_length(tmp_path: Path) -> None:
    data = json.dumps({"Image": "busybox", "HostConfig": {}}).encode()

    async def scenario() -> None:
        async with proxy(tmp_path) as px, px.client() as client:
            head = http(
                "POST",
                "/v1.41/containers/create",
                headers=(("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")),
                length=False,
            )
            await client.send(head + chunked(data[:10], data[10:]))
            assert (await client.response()).status == 200
        [seen] = px.fake.forwarded
        assert seen.header("transfer-encoding") is None
        assert seen.header("content-length") == str(len(seen.body))
        assert json.loads(seen.body) == {
            "Image": "busybox",
            "HostConfig": {"Runtime": "sysbox-runc"},
            "Labels": {REQUESTER_LABEL: f"{os.getuid()}:{pwd.getpwuid(os.getuid()).pw_gid}"},
        }
        assert b"chunked" not in bytes(px.fake.raw).lower()

    run(scenario())


def test_chunked_wins_over_a_content_length_sent_beside_it(tmp_path: Path) -> None:
    """``Transfer-Encoding: chunked`` + ``Content-Length: 5``: the body is read chunked (as
    HTTP/1.1 says), and dockerd gets one framing only, the proxy's."""
    data = json.dumps({"Image": "busybox"}).encode()

    async def scenario() -> None:
        async with proxy(tmp_path) as px, px.client() as client:
            head = http(
                "POST",
                "/containers/create",
                headers=(("Transfer-Encoding", "chunked"), ("Content-Length", "5")),
                length=False,
            )
            await client.send(head + chunked(data))
            assert (await client.response()).status == 200
        [seen] = px.fake.forwarded
        assert json.loads(seen.body)["Image"] == "busybox"
        assert [n for n, _ in seen.headers].count("content-length") == 1
        assert seen.header("content-length") == str(len(seen.body))

    run(scenario())


def test_bytes_behind_content_length_zero_are_the_next_request(tmp_path: Path) -> None:
    """CVE-2024-41110: a body hidden behind ``Content-Length: 0`` is not a body. Here it is
    a whole request, so it is parsed and policed as one (and refused)."""
    hidden = http("POST", "/containers/create", {"Image": "b", "HostConfig": {"PidMode": "host"}})

    async def scenario() -> None:
        async with proxy(tmp_path) as px, px.client() as client:
            await client.send(http("POST", "/v1.41/containers/eci-c/stop") + hidden)
            assert (await client.response()).status == 200
            refused = await client.response()
            assert (refused.status, refused.message) == (403, PID_HOST)
        [seen] = px.fake.forwarded
        assert (seen.target, seen.body) == ("/v1.41/containers/eci-c/stop", b"")
        assert seen.header("content-length") == "0"
        assert b"PidMode" not in bytes(px.fake.raw)

    run(scenario())


def test_a_body_behind_content_length_zero_is_not_forwarded(tmp_path: Path) -> None:
    hidden = json.dumps({"Image": "b", "HostConfig": {"Binds": ["/:/host"]}}).encode() + b"\r\n\r\n"

    async def scenario() -> None:
        async with proxy(tmp_path) as px, px.client() as client:
            await client.send(http("POST", "/containers/eci-c/stop") + hidden)
            assert (await client.response()).status == 200
            bad = await client.response()
            assert bad.status == 400
            assert bad.message.startswith(f"{ECI_PREFIX}bad HTTP request")
            assert await client.closed()
        assert [(s.target, s.body) for s in px.fake.forwarded] == [("/containers/eci-c/stop", b"")]
        assert b"/host" not in bytes(px.fake.raw)

    run(scenario())


def test_pipelined_requests_are_each_policed_in_order(tmp_path: Path) -> None:
    requests = (
        http("GET", "/_ping")
        + http("POST", "/containers/create", {"Image": "b", "HostConfig": {"PidMode": "host"}})
        + http("GET", "/v1.41/containers//json?all=1")
        + http("POST", "/containers/create", {"Image": "b", "Binds": ["/etc/docker:/x"]})
        + http("POST", "/containers/create", {"Image": "b"})
    )

    async def scenario() -> None:
        async with proxy(tmp_path) as px, px.client() as client:
            await client.send(requests)
            answers = [await client.response() for _ in range(5)]
            assert [a.status for a in answers] == [200, 403, 200, 403, 200]
            assert answers[1].message == PID_HOST
            assert answers[3].message == ETC_DOCKER
            assert json.loads(answers[4].body) == {"seen": "POST /containers/create"}
        assert [s.target for s in px.fake.forwarded] == [
            "/_ping",
            "/v1.41/containers/json?all=1",
            "/containers/create",
        ]
        assert json.loads(px.fake.forwarded[2].body)["Runtime"] == "sysbox-runc"
        assert [r["rule"] for r in px.audit_records()] == ["host-namespace", "restricted-mount"]

    run(scenario())


def test_a_refusal_is_a_403_json_and_the_connection_goes_on(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with proxy(tmp_path) as px, px.client() as client:
            body = {"Image": "b", "HostConfig": {"Binds": ["/etc/docker:/x"]}}
            await client.send(http("POST", "/v1.41/containers/create", body))
            refused = await client.response()
            assert refused.status == 403
            assert refused.headers["content-type"] == "application/json"
            assert refused.headers["content-length"] == str(len(refused.body))
            assert json.loads(refused.body) == {"message": ETC_DOCKER}
            assert "connection" not in refused.headers
            await client.send(http("GET", "/_ping"))
            assert (await client.response()).status == 200
        assert [s.target for s in px.fake.forwarded] == ["/_ping"]

    run(scenario())


def test_lookups_go_to_dockerd_before_the_decision(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with proxy(tmp_path) as px, px.client() as client:
            exec_body = {"Privileged": True, "Cmd": ["sh"]}
            await client.send(http("POST", "/v1.41/containers/runc-c/exec", exec_body))
            refused = await client.response()
            assert refused.status == 403
            assert "privileged exec into container 'runc-c'" in refused.message
            await client.send(http("POST", "/v1.41/containers/eci-c/exec", exec_body))
            assert (await client.response()).status == 200
        assert [s.target for s in px.fake.requests if s.lookup] == [
            "/containers/runc-c/json",
            "/containers/eci-c/json",
        ]
        assert [s.target for s in px.fake.forwarded] == ["/v1.41/containers/eci-c/exec"]

    run(scenario())


def test_expect_100_continue(tmp_path: Path) -> None:
    data = json.dumps({"Image": "busybox"}).encode()

    async def scenario() -> None:
        async with proxy(tmp_path) as px, px.client() as client:
            head = http(
                "POST",
                "/containers/create",
                headers=(("Expect", "100-continue"), ("Content-Length", str(len(data)))),
                length=False,
            )
            await client.send(head)
            interim = await client.reader.readuntil(b"\r\n\r\n")
            assert interim.startswith(b"HTTP/1.1 100 ")
            await client.send(data)
            client.conn.receive_data(interim)
            assert (await client.response()).status == 200
        [seen] = px.fake.forwarded
        assert seen.header("expect") is None
        assert json.loads(seen.body)["Runtime"] == "sysbox-runc"

    run(scenario())


# --- what is never forwarded ----------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_over_limit_body_is_a_413_and_nothing_is_forwarded(tmp_path: Path, framing: str) -> None:
    data = json.dumps({"Image": "busybox", "Env": ["X=" + "x" * 4000]}).encode()

    async def scenario() -> None:
        limits = Limits(policed_body=1024)
        async with proxy(tmp_path, limits=limits) as px, px.client() as client:
            if framing == "chunked":
                head = http(
                    "POST",
                    "/containers/create",
                    headers=(("Transfer-Encoding", "chunked"),),
                    length=False,
                )
                await client.send(
                    head + chunked(*(data[i : i + 500] for i in range(0, len(data), 500)))
                )
            else:
                await client.send(http("POST", "/containers/create", data))
            refused = await client.response()
            assert refused.status == 413
            assert refused.message == (
                f"{ECI_PREFIX}request body is larger than the proxy's limit of 1024 bytes; refused"
            )
            assert refused.headers.get("connection") == "close"
            assert await client.closed()
        assert px.fake.requests == []
        assert px.fake.raw == b""
        [record] = px.audit_records()
        assert (record["rule"], record["status"], record["route"]) == (
            "body-too-large",
            413,
            "/containers/create",
        )

    run(scenario())


@pytest.mark.parametrize(
    "encoding", ["gzip", "chunked, gzip", "gzip, chunked", "identity", "compress"]
)
def test_unknown_transfer_encoding_is_refused_and_nothing_forwarded(
    tmp_path: Path, encoding: str
) -> None:
    async def scenario() -> None:
        async with proxy(tmp_path) as px, px.client() as client:
            head = http(
                "POST",
                "/containers/create",
                headers=(("Transfer-Encoding", encoding),),
                length=False,
            )
            await client.send(head + chunked(b'{"Image": "busybox"}'))
            refused = await client.response()
            assert refused.status == 501
            assert refused.message.startswith(f"{ECI_PREFIX}bad HTTP request")
            assert await client.closed()
        assert px.fake.connections == 0
        assert px.fake.raw == b""

    run(scenario())


CREATE_HEAD = b"POST /containers/create HTTP/1.1\r\nHost: d\r\n"


@pytest.mark.parametrize(
    "head",
    [
        CREATE_HEAD + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n",
        CREATE_HEAD + b"Content-Length: -1\r\n\r\n",
        CREATE_HEAD + b"Content-Length : 5\r\n\r\n",
        b"NOT HTTP\r\n\r\n",
    ],
    ids=["two-lengths", "negative-length", "space-before-colon", "garbage"],
)
def test_malformed_framing_is_a_400_and_nothing_forwarded(tmp_path: Path, head: bytes) -> None:
    async def scenario() -> None:
        async with proxy(tmp_path) as px, px.client() as client:
            await client.send(head + b'{"Image": "b"}')
            refused = await client.response()
            assert refused.status == 400
            assert await client.closed()
        assert px.fake.connections == 0

    run(scenario())


@pytest.mark.parametrize(
    "target",
    [b"/containers/create%00", b"/containers/cr\xc3\xa9ate", b"/x?q=%ff"],
    ids=["nul", "non-ascii", "bad-utf8-query"],
)
def test_an_unreadable_target_is_a_400_and_nothing_forwarded(tmp_path: Path, target: bytes) -> None:
    async def scenario() -> None:
        async with proxy(tmp_path) as px, px.client() as client:
            await client.send(
                b"POST " + target + b" HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n"
            )
            refused = await client.response()
            assert refused.status == 400
            assert refused.message.startswith(ECI_PREFIX)
        assert px.fake.connections == 0
        if b"\xc3" not in target:  # h11 itself refuses a non-ASCII target, before routing
            [record] = px.audit_records()
            assert record["rule"] == "bad-target"

    run(scenario())


def test_a_policy_error_is_answered_not_a_dropped_connection(tmp_path: Path) -> None:
    """A lone surrogate escape (Go reads it as U+FFFD) must get an answer, never an
    exception that kills the connection without a response."""
    body = b'{"Image": "busybox", "Labels": {"a": "\\ud800"}}'

    async def scenario() -> None:
        async with proxy(tmp_path) as px, px.client() as client:
            await client.send(http("POST", "/containers/create", body))
            answer = await client.response()
            assert answer.status < 500
        for seen in px.fake.forwarded:
            json.loads(seen.body)

    run(scenario())


# --- responses and hijacked streams ---------------------------------------------------------------

CHUNKED_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
)


def test_a_chunked_response_is_relayed_byte_for_byte(tmp_path: Path) -> None:
    def reply(seen: Seen) -> Reply:
        return CHUNKED_RESPONSE if seen.target == "/events" else default_reply(seen)

    async def scenario() -> None:
        async with proxy(tmp_path, reply) as px, px.client() as client:
            await client.send(http("GET", "/events") + http("GET", "/_ping"))
            relayed = await client.reader.readexactly(len(CHUNKED_RESPONSE))
            assert relayed == CHUNKED_RESPONSE
            client.conn.receive_data(relayed)
            client.conn.send(h11.Request(method="GET", target="/", headers=[("Host", "d")]))
            client.conn.send(h11.EndOfMessage())
            while not isinstance(client.conn.next_event(), h11.EndOfMessage):
                pass
            client.conn.start_next_cycle()
            assert (await client.response()).status == 200
        assert [s.target for s in px.fake.forwarded] == ["/events", "/_ping"]

    run(scenario())


async def _echo_after_eof(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, early: bytes, got: bytearray
) -> None:
    """A container's attach: output at once, stdin until EOF, last output after it."""
    writer.write(b"output before stdin ends;")
    await writer.drain()
    got += early
    while data := await reader.read(65536):
        got += data
    writer.write(b"last output after stdin ended")
    await writer.drain()
    writer.write_eof()


UPGRADE_HEAD = (
    b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
    b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
)
RAW_STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n"


@pytest.mark.parametrize(
    ("head", "upgrade"),
    [(UPGRADE_HEAD, True), (RAW_STREAM_HEAD, False)],
    ids=["101-upgrade", "200-raw-stream"],
)
@pytest.mark.parametrize(
    "target",
    ["/v1.41/containers/eci-c/attach?stream=1&stdin=1&stdout=1", "/v1.41/exec/e1/start"],
    ids=["attach", "exec-start"],
)
def test_a_hijacked_stream_pipes_both_ways_with_half_close(
    tmp_path: Path, head: bytes, upgrade: bool, target: str
) -> None:
    stdin = bytearray()

    def reply(seen: Seen) -> Reply:
        if seen.lookup:  # the container (or exec instance) checked first
            return default_reply(seen)
        return Hijack(head, lambda r, w, early: _echo_after_eof(r, w, early, stdin))

    async def scenario() -> None:
        async with proxy(tmp_path, reply) as px, px.client() as client:
            extra = (("Connection", "Upgrade"), ("Upgrade", "tcp")) if upgrade else ()
            body = b'{"Detach": false, "Tty": false}' if "exec" in target else b""
            await client.send(http("POST", target, body, headers=extra) + b"early;")
            assert await client.reader.readexactly(len(head)) == head
            out = await client.reader.readexactly(len(b"output before stdin ends;"))
            assert out == b"output before stdin ends;"
            await client.send(b"stdin data")
            client.writer.write_eof()  # half-close: dockerd must see EOF, output goes on
            rest = await client.reader.read()
            assert rest == b"last output after stdin ended"
        assert bytes(stdin) == b"early;stdin data"
        [seen] = px.fake.forwarded
        assert seen.target == target
        if upgrade:
            assert seen.header("upgrade") == "tcp"

    run(scenario())


def test_a_framed_200_on_exec_start_stays_http(tmp_path: Path) -> None:
    """A detached exec start answers a framed 200: the connection stays HTTP."""

    async def scenario() -> None:
        async with proxy(tmp_path) as px, px.client() as client:
            start = http("POST", "/exec/e1/start", {"Detach": True})
            await client.send(start + http("GET", "/_ping"))
            assert (await client.response()).status == 200
            assert (await client.response()).status == 200
        assert [s.target for s in px.fake.forwarded] == ["/exec/e1/start", "/_ping"]

    run(scenario())


def test_a_streamed_body_is_relayed_with_the_clients_framing(tmp_path: Path) -> None:
    tarball = bytes(range(256)) * 40

    async def scenario() -> None:
        async with proxy(tmp_path) as px, px.client() as client:
            head = http(
                "POST",
                "/v1.41/images/load?quiet=1",
                headers=(("Content-Type", "application/x-tar"), ("Transfer-Encoding", "chunked")),
                length=False,
            )
            await client.send(head + chunked(tarball[:1000], tarball[1000:]))
            assert (await client.response()).status == 200
            await client.send(http("POST", "/images/load", tarball))
            assert (await client.response()).status == 200
        first, second = px.fake.forwarded
        assert (first.header("transfer-encoding"), first.body) == ("chunked", tarball)
        assert first.header("content-length") is None
        assert (second.header("content-length"), second.body) == (str(len(tarball)), tarball)

    run(scenario())


# --- the upstream connection: reused only whole ---------------------------------------------------


def _answer_after_eof(release: asyncio.Event) -> RawPhase:
    """dockerd answering a request whose client has half-closed: the proxy passed the EOF
    on (``write_eof``), the answer comes after it, and the connection stays open until
    ``release`` (as a busy dockerd's would, for a while)."""

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: bytes) -> None:
        while await reader.read(65536):
            pass
        writer.write(response(200, {"seen": "after the client's EOF"}))
        await writer.drain()
        await release.wait()

    return run


def _after_eof_on(target: str, release: asyncio.Event) -> Callable[[Seen], Reply]:
    def reply(seen: Seen) -> Reply:
        if seen.target == target:
            return Hijack(b"", _answer_after_eof(release))
        return default_reply(seen)

    return reply


def test_an_upstream_half_closed_for_a_leaving_client_never_serves_another(
    tmp_path: Path,
) -> None:
    """Issue 16's bug: the client-EOF watcher half-closes the upstream connection, then the
    response ends cleanly; the connection must not go back to the pool, where the next
    client's request would be written after ``write_eof`` (a 500, and a `docker run -d`
    left in Created)."""
    release = asyncio.Event()

    async def scenario() -> None:
        async with proxy(tmp_path, _after_eof_on("/v1.41/info", release)) as px:
            try:
                async with px.client() as first:
                    await first.send(http("GET", "/v1.41/info"))
                    first.writer.write_eof()  # done sending; still reading its answer
                    answer = await first.response()
                    assert json.loads(answer.body) == {"seen": "after the client's EOF"}
                    assert await first.closed()
                async with px.client() as second:
                    await second.send(http("GET", "/v1.41/containers/json"))
                    assert (await second.response()).status == 200
            finally:
                release.set()
        assert [s.target for s in px.fake.forwarded] == ["/v1.41/info", "/v1.41/containers/json"]
        assert px.fake.connections == 2

    run(scenario())


def test_a_request_pipelined_before_the_clients_eof_goes_on_a_fresh_upstream(
    tmp_path: Path,
) -> None:
    """Two requests then EOF: the EOF is passed on to dockerd while the first is answered
    (it ends `logs -f`), so the second cannot go on that half-closed connection."""
    release = asyncio.Event()

    async def scenario() -> None:
        async with proxy(tmp_path, _after_eof_on("/v1.41/info", release)) as px:
            try:
                async with px.client() as client:
                    await client.send(http("GET", "/v1.41/info") + http("GET", "/_ping"))
                    client.writer.write_eof()
                    assert (await client.response()).status == 200
                    second = await client.response()
                    assert json.loads(second.body) == {"seen": "GET /_ping"}
                    assert await client.closed()
            finally:
                release.set()
        assert [s.target for s in px.fake.forwarded] == ["/v1.41/info", "/_ping"]
        assert px.fake.connections == 2

    run(scenario())


# --- the audit log ------------------------------------------------------------------------------


def test_the_audit_log_has_one_line_per_refusal_and_no_bodies(tmp_path: Path) -> None:
    secret = "hunter2-do-not-log"
    refused = [
        http(
            "POST",
            "/v1.41/containers/create?name=x",
            {"Image": "b", "Env": [f"TOKEN={secret}"], "HostConfig": {"PidMode": "host"}},
            headers=(("X-Registry-Auth", secret),),
        ),
        http("POST", "/v1.41/containers/create", {"Image": "b", "Binds": ["/etc/docker:/x"]}),
        http("POST", "/plugins/pull?remote=x", {"Name": secret}),
    ]
    allowed = [http("GET", "/_ping"), http("POST", "/containers/create", {"Image": "b"})]

    async def scenario() -> None:
        async with proxy(tmp_path) as px, px.client() as client:
            for data in (refused[0], allowed[0], refused[1], allowed[1], refused[2]):
                await client.send(data)
                await client.response()
        text = px.audit.read_text()
        assert secret not in text
        records = px.audit_records()
        assert [(r["method"], r["route"], r["rule"], r["status"]) for r in records] == [
            ("POST", "/containers/create", "host-namespace", 403),
            ("POST", "/containers/create", "restricted-mount", 403),
            ("POST", "/plugins/pull", "plugin-install", 403),
        ]
        assert records[0]["reason"] == PID_HOST
        assert records[1]["reason"] == ETC_DOCKER
        for record in records:
            assert (record["pid"], record["uid"], record["gid"]) == (
                os.getpid(),
                os.getuid(),
                os.getgid(),
            )
            assert set(record) == {
                "time",
                "pid",
                "uid",
                "gid",
                "method",
                "route",
                "rule",
                "status",
                "reason",
            }
        assert oct(px.audit.stat().st_mode & 0o777) == oct(0o600)

    run(scenario())


# --- downloads: spliced through until dockerd closes ----------------------------------------------

ARCHIVE = "/v1.41/containers/eci-c/archive?path=/big"
TAR_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nConnection: close\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _splice_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "eci-splice"]


def test_a_download_is_asked_with_close_and_relayed_byte_for_byte_until_eof(
    tmp_path: Path,
) -> None:
    """`docker cp` out: dockerd is asked to close after the response; its body (several pipes'
    worth) reaches the client unchanged, then the client's connection is closed too."""
    data = random.Random(5).randbytes(3 * 1024 * 1024 + 17)
    body = chunked(*(data[i : i + 32768] for i in range(0, len(data), 32768)))

    def reply(seen: Seen) -> Reply:
        return TAR_HEAD + body if "/archive" in seen.target else default_reply(seen)

    async def scenario() -> None:
        fds = _open_fds()
        async with proxy(tmp_path, reply) as px, px.client() as client:
            keep_alive = (("Connection", "keep-alive"),)
            await client.send(http("GET", ARCHIVE, headers=keep_alive, length=False))
            relayed = await client.reader.read()  # until the proxy closes the connection
            assert relayed == TAR_HEAD + body
        [seen] = px.fake.forwarded
        assert seen.target == "/v1.41/containers/eci-c/archive?path=%2Fbig"
        assert [v for n, v in seen.headers if n == "connection"] == ["close"]
        assert _splice_threads() == []
        assert _open_fds() == fds

    run(scenario())


LOGS = "/v1.41/containers/eci-c/logs?stdout=1&follow=1"
LOGS_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
    b"Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def test_logs_are_spliced_and_each_line_arrives_as_it_is_written(tmp_path: Path) -> None:
    """`docker logs -f`: asked with close and spliced like a download, yet a line is relayed
    while dockerd waits for the next one (the splice's batching holds nothing back)."""
    lines = [b"%x\r\n%s\r\n" % (len(x), x) for x in (b"one\n", b"two\n", b"three\n")]
    client_has = [asyncio.Event() for _ in lines]

    async def follow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: bytes) -> None:
        for line, seen in zip(lines, client_has, strict=True):
            writer.write(line)
            await writer.drain()
            await seen.wait()  # the next line only once the client has this one
        writer.write(b"0\r\n\r\n")
        writer.close()

    def reply(seen: Seen) -> Reply:
        return Hijack(LOGS_HEAD, follow) if "/logs" in seen.target else default_reply(seen)

    async def scenario() -> None:
        async with proxy(tmp_path, reply) as px, px.client() as client:
            await client.send(http("GET", LOGS, length=False))
            assert await client.reader.readexactly(len(LOGS_HEAD)) == LOGS_HEAD
            assert len(_splice_threads()) == 1
            for line, seen in zip(lines, client_has, strict=True):
                assert await client.reader.readexactly(len(line)) == line
                seen.set()
            assert await client.reader.read() == b"0\r\n\r\n"  # then the proxy closes
        assert [s.header("connection") for s in px.fake.forwarded] == ["close"]
        assert _splice_threads() == []

    run(scenario())


def test_a_download_answered_with_an_error_is_relayed_whole(tmp_path: Path) -> None:
    """A 404 (Content-Length framed) on a download route is not spliced: relayed, then closed."""

    def reply(seen: Seen) -> Reply:
        if "/archive" in seen.target:
            return response(404, {"message": "Could not find the file /big"}, "Not Found")
        return default_reply(seen)

    async def scenario() -> None:
        async with proxy(tmp_path, reply) as px, px.client() as client:
            await client.send(http("GET", ARCHIVE, length=False))
            answer = await client.response()
            assert (answer.status, answer.message) == (404, "Could not find the file /big")
            assert await client.closed()
        assert [s.header("connection") for s in px.fake.forwarded] == ["close"]

    run(scenario())


def test_a_client_leaving_mid_download_stops_it_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    """A client that stops reading holds dockerd back (bounded buffering); once it closes,
    the relay ends, dockerd's writes fail, and no thread or descriptor is left over."""
    sent = [0]
    piece = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: bytes) -> None:
        while True:
            writer.write(piece)
            await writer.drain()
            sent[0] += len(piece)

    def reply(seen: Seen) -> Reply:
        return Hijack(TAR_HEAD, endless) if "/archive" in seen.target else default_reply(seen)

    async def scenario() -> None:
        fds = _open_fds()
        async with proxy(tmp_path, reply) as px:
            async with px.client() as client:
                await client.send(http("GET", ARCHIVE, length=False))
                await client.reader.readexactly(len(TAR_HEAD) + 4 * len(piece))
                assert len(_splice_threads()) == 1
                await asyncio.sleep(0.3)  # not reading: dockerd must be held back
                held = sent[0]
                await asyncio.sleep(0.2)
                assert sent[0] == held
                assert held < 8 * 1024 * 1024  # a pipe and a few socket buffers
            # the client has closed: the fake's writes must fail soon
            while not px.fake.errors:
                await asyncio.sleep(0.01)
        assert isinstance(px.fake.errors[0], ConnectionError)
        assert _splice_threads() == []
        assert _open_fds() == fds

    run(scenario())


def test_a_client_leaving_a_stalled_download_ends_the_relay(tmp_path: Path) -> None:
    """Nothing to write, so no write fails: the client's EOF alone must end the relay (a
    dockerd that neither sends nor notices the EOF cannot keep the thread alive)."""
    release = asyncio.Event()

    async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: bytes) -> None:
        writer.write(b"1\r\nx\r\n")
        await release.wait()

    def reply(seen: Seen) -> Reply:
        return Hijack(TAR_HEAD, stalled) if "/archive" in seen.target else default_reply(seen)

    async def scenario() -> None:
        async with proxy(tmp_path, reply) as px:
            async with px.client() as client:
                await client.send(http("GET", ARCHIVE, length=False))
                await client.reader.readexactly(len(TAR_HEAD) + 6)
                assert len(_splice_threads()) == 1
            while _splice_threads():
                await asyncio.sleep(0.01)
            release.set()

    run(scenario())
