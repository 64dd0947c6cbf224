"""One client connection of the policing proxy: reading requests, relaying answers.

Theory of operation. Each request on the connection is parsed with h11 (a fresh server-side
parser per request, fed what was left over from the previous one, so keep-alive and
pipelined requests are each parsed and policed). The target is normalized and routed by
``dockerapi``; the body of every route except the streaming ones (build context, archives,
image tarballs) is read whole, up to the body limit, before anything is forwarded.
``Policing`` (``proxy/policing.py``) decides; this module reads and relays.

What reaches dockerd is re-serialized by h11 from what was parsed, never the client's raw
bytes: the normalized target, the policed (or rewritten) body with its own Content-Length.
So a body hidden behind ``Content-Length: 0``, a second request smuggled in a body, or a
framing dockerd would read differently cannot get past the policy.

Responses are relayed as dockerd sent them, unbuffered, with backpressure, in two phases:
the head (read by an h11 client parser, which sees a 101 or raw-stream 200 that hijacks the
connection) and the body (followed by offsets only, ``proxy/framing.py``). Hijacked routes
(attach, exec start, /session, /grpc) become a raw bidirectional pipe with half-close. Bulk
downloads (`docker cp` out, `export`, `save`) and `logs` are asked with ``Connection: close``:
their body ends with the upstream connection, so it is spliced through in the kernel
(``proxy/splice.py``) without being read.

State, explicit (no loose flags): ``ClientInput`` is the client's side as read (bytes read
ahead of the parser, whether the client has ended its side, and the one deadline its reads
are under, ``Wait``); the upstream connection is a ``Lease`` (``BUSY``, ``READY`` or the
final ``SPENT``: only a ``READY`` one carries another request or goes back to the pool);
each request is an ``Exchange``; an answer being relayed is a ``Relay``, which is what the
client's EOF stops (the lease's write side is shut, so dockerd ends `logs -f`, and a splice).

What a client can make the proxy hold is bounded (``proxy/limits.py``): a policed body has
its route's size limit and reserves its size in the budget shared by all connections
(``proxy/admission.py``) before it is read; the head, a policed body and an idle connection
each have a deadline (``Waiting``), nothing after the request has been read does; a uid has at
most so many connections open.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import sys
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import quote, urlencode

import h11

from eci.dockerapi.request import ApiRequest, parse_request
from eci.dockerapi.routes import Body, Route
from eci.dockerapi.target import ApiTarget, BadTarget
from eci.errors import ECI_PREFIX
from eci.policy import Deny, ExtractInContainer, Rewrite
from eci.proxy.config import ProxyConfig
from eci.proxy.framing import FramingError, LengthBody, body_tracker
from eci.proxy.limits import CLIENT_READ, Limits
from eci.proxy.peer import peer_of
from eci.proxy.policing import Policing
from eci.proxy.splice import SpliceRelay
from eci.proxy.streams import CHUNK, pipe_both_ways
from eci.proxy.upload import extract_in_container
from eci.proxy.upstream import Lease, LeaseState

MAX_HEAD = 64 * 1024
#: What is read ahead of the parser while a response is relayed (pipelined requests).
READ_AHEAD = MAX_HEAD
#: A response read smaller than this is a trickle: pause reading briefly (see
#: ``_let_upstream_fill``); measured with bench/proxy.py (64 KiB starved `docker cp`).
TRICKLE = 16 * 1024
TRICKLE_PAUSE = 0.001
#: Requests safe to send again on a fresh connection when a reused one turns out dead.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
#: Headers the proxy sets itself on the forwarded request.
_FRAMING = {b"content-length", b"transfer-encoding", b"expect"}
_CLOSE = {b"connection", b"keep-alive"}
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
#: How a request on no route ``dockerapi`` knows is handled: its body read whole, its
#: answer plain HTTP (the policy refuses such a request unless it is a read).
NO_ROUTE = Route("", "", "")


class Outcome(enum.Enum):
    """How a relayed response ended; decides what happens to the connection next."""

    KEEP_ALIVE = "keep-alive"
    CLOSE = "close"
    HIJACKED = "hijacked"
    #: a reused upstream connection was closed before any response byte: send again
    STALE = "stale"


class Waiting(enum.Enum):
    """What a connection waits for from its client, and so which timeout applies."""

    IDLE = "a request"
    HEAD = "the rest of the request head"
    BODY = "the request body"

    def timeout(self, limits: Limits) -> float:
        if self is Waiting.IDLE:
            return limits.idle_timeout
        return limits.header_timeout if self is Waiting.HEAD else limits.body_timeout


@dataclass(frozen=True, slots=True)
class Wait:
    """The client's reads are waiting for ``what`` until ``deadline`` (event-loop time)."""

    what: Waiting
    deadline: float


class _Refused(Exception):
    """The request is refused before it is read whole: answer ``deny`` and close."""

    def __init__(self, deny: Deny) -> None:
        super().__init__(deny.message)
        self.deny = deny


class _TimedOut(Exception):
    def __init__(self, waiting: Waiting) -> None:
        super().__init__(waiting.value)
        self.waiting = waiting


def _target_for_upstream(target: ApiTarget) -> str:
    """The normalized target: dockerd routes exactly what the policy decided on."""
    path = (f"/v{target.version}" if target.version else "") + quote(target.path, safe=_PATH_SAFE)
    pairs = [(k, v) for k, values in target.query.items() for v in values]
    return path + ("?" + urlencode(pairs) if pairs else "")


def _unframed(response: h11.Response) -> bool:
    """dockerd starts a raw stream (attach, exec start without Upgrade) with a 200 that has
    no body framing; a detached exec start answers a framed 200 and stays HTTP."""
    return not any(n in (b"content-length", b"transfer-encoding") for n, _ in response.headers)


def _stream_length(event: h11.Request) -> int | None:
    """The client's own framing of a body: ``None`` for chunked (h11 prefers chunked when
    both are sent, and so does the forwarded request). h11 has checked the value."""
    if any(n == b"transfer-encoding" for n, _ in event.headers):
        return None
    return next((int(v) for n, v in event.headers if n == b"content-length"), 0)


def _too_large(limit: int) -> Deny:
    return Deny(
        "body-too-large",
        f"{ECI_PREFIX}request body is larger than the proxy's limit of {limit} bytes; refused",
        413,
    )


def _read_small(writer: asyncio.StreamWriter) -> None:
    """Socket reads of at most ``CLIENT_READ`` from this client (see limits.py)."""
    transport = writer.transport
    if hasattr(transport, "max_size"):  # (selector transports; there is no public way)
        transport.max_size = CLIENT_READ


class ClientInput:
    """The client's side of the connection as read: the bytes read ahead of the parser
    (pipelined requests, read while a response was relayed), whether the client has ended
    its side, and the deadline its reads are under (``None``: untimed)."""

    __slots__ = ("ahead", "eof", "limits", "reader", "wait")

    def __init__(self, reader: asyncio.StreamReader, limits: Limits) -> None:
        self.reader = reader
        self.limits = limits
        self.ahead = b""
        self.eof = False
        self.wait: Wait | None = None

    def wait_for(self, waiting: Waiting | None) -> None:
        """From now on reads wait for ``waiting``, under its timeout (``None``: untimed)."""
        if waiting is None:
            self.wait = None
        else:
            deadline = asyncio.get_running_loop().time() + waiting.timeout(self.limits)
            self.wait = Wait(waiting, deadline)

    def start_request(self, conn: h11.Connection) -> None:
        """Hand what was read ahead to the next request's parser; time its arrival."""
        self.wait_for(Waiting.HEAD if self.ahead else Waiting.IDLE)
        if self.ahead:  # (receive_data(b"") would mean EOF)
            conn.receive_data(self.ahead)
            self.ahead = b""
        if self.eof:
            conn.receive_data(b"")

    def end_request(self, conn: h11.Connection) -> None:
        """Keep what the finished request's parser read past its end, for the next one."""
        trailing, closed = conn.trailing_data
        self.ahead = trailing + self.ahead
        self.eof = self.eof or closed

    def leftover(self, conn: h11.Connection) -> bytes:
        """Everything read past the request that hijacked the connection: the raw stream's."""
        return conn.trailing_data[0] + self.ahead

    async def read(self) -> bytes:
        wait = self.wait
        if wait is None:
            return await self.reader.read(CHUNK)
        try:
            async with asyncio.timeout_at(wait.deadline):
                data = await self.reader.read(CHUNK)
        except TimeoutError:
            raise _TimedOut(wait.what) from None
        if wait.what is Waiting.IDLE and data:
            self.wait_for(Waiting.HEAD)  # a request begins: its head has a shorter while
        return data

    async def next_event(self, conn: h11.Connection) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            conn.receive_data(await self.read())

    async def read_ahead(self, on_eof: Callable[[], None]) -> None:
        """While a response streams: read ahead (pipelined requests), up to ``READ_AHEAD``;
        at the client's EOF, note it and call ``on_eof``."""
        while len(self.ahead) < READ_AHEAD:
            data = await self.reader.read(CHUNK)
            if not data:
                self.eof = True
                on_eof()
                return
            self.ahead += data


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request read from the client (h11's server side of it) and its answer."""

    conn: h11.Connection
    event: h11.Request

    @property
    def head_only(self) -> bool:
        """A HEAD request: its answers have a head only (h11 refuses a body)."""
        return self.event.method.upper() == b"HEAD"


class Relay:
    """An answer on its way from dockerd to the client: what the client's EOF must stop."""

    __slots__ = ("lease", "splice")

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.splice: SpliceRelay | None = None  # while a download is spliced through

    def client_left(self) -> None:
        """Pass the client's EOF on: dockerd ends `logs -f`/`events` as it would for a direct
        client. The lease is ``SPENT`` from now on, however its response ends."""
        if self.splice is not None:
            self.splice.stop()
        self.lease.shut_write()


class ClientConnection:
    def __init__(
        self,
        config: ProxyConfig,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        grant: str | None = None,
    ) -> None:
        self.config = config
        #: the grant token when this is a container's filtered socket (commandList applies)
        self.grant = grant
        self.reader = reader
        self.writer = writer
        self.peer = peer_of(writer)
        _read_small(writer)
        self.client = ClientInput(reader, config.limits)
        self.policing = Policing(config, self.peer, grant)
        #: the upstream connection this client's requests go on (see ``Lease``)
        self.lease: Lease | None = None

    # ---- client side -------------------------------------------------------------------
    async def _send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def _respond(
        self,
        conn: h11.Connection,
        status: int,
        message: str,
        close: bool = False,
        head_only: bool = False,
    ) -> None:
        body = b"" if head_only else json.dumps({"message": message}).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        if close:
            headers.append(("Connection", "close"))
        reason = HTTPStatus(status).phrase.encode()  # only standard codes are ever sent
        with contextlib.suppress(h11.LocalProtocolError):
            await self._send(
                conn.send(h11.Response(status_code=status, headers=headers, reason=reason))
                + conn.send(h11.Data(data=body))
                + conn.send(h11.EndOfMessage())
            )

    async def _read_body(self, conn: h11.Connection, limit: int) -> bytes:
        if conn.client_is_waiting_for_100_continue:
            await self._send(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        body = bytearray()
        while True:
            event = await self.client.next_event(conn)
            if isinstance(event, h11.Data):
                if len(body) + len(event.data) > limit:
                    raise _Refused(_too_large(limit))
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            else:
                raise h11.RemoteProtocolError(f"unexpected {event!r} in a request body")

    @contextlib.asynccontextmanager
    async def _policed_body(self, exchange: Exchange, limit: int) -> AsyncIterator[bytes]:
        """The whole body of a policed request, held in the body budget for the block.

        The budget is reserved before a byte is read: the declared length (refused at once
        when over ``limit``), or ``limit`` for a chunked body; then only what was read is
        kept. Waiting for the budget and reading must end by the body's deadline."""
        length = _stream_length(exchange.event)
        if length is not None and length > limit:
            raise _Refused(_too_large(limit))
        self.client.wait_for(Waiting.BODY)
        assert self.client.wait is not None
        try:
            async with asyncio.timeout_at(self.client.wait.deadline):
                size = limit if length is None else length
                reservation = await self.config.budget.reserve(self.peer.uid, size)
        except TimeoutError:
            limits = self.config.limits
            raise _Refused(
                Deny(
                    "proxy-busy",
                    f"{ECI_PREFIX}the proxy holds as many request bodies as it may "
                    f"({limits.budget} bytes, {limits.budget_per_uid} per user) and none "
                    f"was freed within {limits.body_timeout:g} s; retry later",
                    503,
                )
            ) from None
        try:
            try:
                body = await self._read_body(exchange.conn, limit)
            except _TimedOut:
                raise _Refused(self._timed_out(Waiting.BODY)) from None
            reservation.shrink(len(body))
            yield body
        finally:
            reservation.release()

    def _timed_out(self, waiting: Waiting) -> Deny:
        return Deny(
            "client-timeout",
            f"{ECI_PREFIX}{waiting.value} did not arrive within "
            f"{waiting.timeout(self.config.limits):g} s; closing the connection",
            408,
        )

    # ---- upstream side -----------------------------------------------------------------
    async def _next_lease(self) -> Lease:
        """The upstream connection for the next request: the one the last request used if it
        may carry another (``READY``), else one from the pool. A ``SPENT`` one (e.g. shut
        to pass the client's EOF on) is never written to again."""
        lease = self.lease
        if lease is not None and lease.state is LeaseState.READY:
            lease.begin()
            return lease
        self._drop_lease()
        self.lease = await self.config.pool.acquire()
        return self.lease

    def _drop_lease(self) -> None:
        if self.lease is not None:
            self.config.pool.release(self.lease)  # (pooled if READY, else closed)
            self.lease = None

    async def _relay_response(
        self, upstream_conn: h11.Connection, lease: Lease, method: str, route: Route
    ) -> Outcome:
        """Relay dockerd's answer as it comes, head then body; meanwhile read the client
        ahead, and pass its EOF on (not on a hijacked route: the raw pipe does that)."""
        relay = Relay(lease)
        watcher = None
        if not route.hijack:
            watcher = asyncio.create_task(self.client.read_ahead(relay.client_left))
        try:
            response = await self._relay_head(upstream_conn, lease, route.hijack)
            if isinstance(response, Outcome):
                return response
            return await self._relay_body(upstream_conn, relay, method, response, route.download)
        except (h11.RemoteProtocolError, FramingError):
            return Outcome.CLOSE
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def _relay_head(
        self, upstream_conn: h11.Connection, lease: Lease, hijack: bool
    ) -> h11.Response | Outcome:
        """Relay bytes until h11 has read the response head: the ``Response``, or how the
        exchange ended (hijacked by a 101 or a raw-stream 200; closed; stale)."""
        received = False
        while True:
            event = upstream_conn.next_event()
            if event is h11.NEED_DATA:
                data = await self._read_upstream(lease.reader)
                if data:
                    received = True
                    await self._send(data)
                upstream_conn.receive_data(data)
            elif isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    return Outcome.HIJACKED
            elif isinstance(event, h11.Response):
                if hijack and event.status_code == 200 and _unframed(event):
                    return Outcome.HIJACKED
                return event
            else:  # ConnectionClosed or a broken head
                return Outcome.STALE if not received and lease.reused else Outcome.CLOSE

    async def _relay_body(
        self,
        upstream_conn: h11.Connection,
        relay: Relay,
        method: str,
        response: h11.Response,
        download: bool,
    ) -> Outcome:
        """Relay the body by offsets (its bytes after the head are relayed already) until
        its framing says it ended; the lease is then ``READY`` if nothing else came."""
        headers = list(response.headers)
        tracker = body_tracker(method, response.status_code, headers)
        closing = (
            response.http_version != b"1.1"
            or any(n == b"connection" and b"close" in v.lower() for n, v in headers)
            or upstream_conn.our_state is not h11.DONE
        )
        if download and not isinstance(tracker, LengthBody):
            return await self._splice_until_eof(relay)  # (a length-framed error stays below)
        lease = relay.lease
        data = upstream_conn.trailing_data[0]  # body bytes already relayed with the head
        while True:
            if tracker is not None:
                used = tracker.feed(data)
                if used is not None:
                    lease.ended(reusable=not closing and used == len(data))
                    return Outcome.CLOSE if closing else Outcome.KEEP_ALIVE
            data = await self._read_upstream(lease.reader)
            if not data:
                return Outcome.CLOSE
            await self._send(data)
            if len(data) < TRICKLE:
                await self._let_upstream_fill(lease)

    async def _splice_until_eof(self, relay: Relay) -> Outcome:
        """Relay the rest of a download (asked with ``Connection: close``) until dockerd closes.

        Raw writes to the client's socket must not overtake bytes still queued in asyncio: the
        upstream StreamReader's buffer goes first, through the client transport, which is
        then flushed to empty; the upstream transport stops reading before that, so every
        later byte is in the socket for the splice."""
        up_reader, up_writer = relay.lease.stream
        up_transport = up_writer.transport
        try:  # (no public way to take what a StreamReader holds without waiting for more)
            buffered = await up_reader.read(len(up_reader._buffer))  # type: ignore[attr-defined]
        except ConnectionError:
            return Outcome.CLOSE
        if isinstance(up_transport, asyncio.ReadTransport):
            up_transport.pause_reading()  # (the read above did not wait: nothing came since)
        if buffered:
            self.writer.write(buffered)
        self.writer.transport.set_write_buffer_limits(high=0)
        await self.writer.drain()  # with no high-water mark: until the transport is empty
        relay.splice = SpliceRelay(
            up_writer.get_extra_info("socket").fileno(),
            self.writer.get_extra_info("socket").fileno(),
        )
        if self.client.eof:  # the watcher saw the client leave before there was a splice
            relay.splice.stop()
        try:
            await relay.splice.run()
        except OSError:
            pass  # either side failed: the connection closes as it would at EOF
        finally:
            relay.splice = None
        return Outcome.CLOSE

    @staticmethod
    async def _let_upstream_fill(lease: Lease) -> None:
        """dockerd writes streamed answers (events, stats, pull progress) a line per write:
        reading each as it lands costs the proxy a wake-up per line (`logs`, which did the
        same, are spliced now). After a small read (already relayed, so nothing waits on it), stop
        reading for a moment and let the kernel gather the next lines into one read."""
        transport = lease.writer.transport
        if not isinstance(transport, asyncio.ReadTransport):
            return
        transport.pause_reading()
        try:
            await asyncio.sleep(TRICKLE_PAUSE)
        finally:
            transport.resume_reading()

    @staticmethod
    async def _read_upstream(reader: asyncio.StreamReader) -> bytes:
        try:
            return await reader.read(CHUNK)
        except ConnectionError:
            return b""  # dockerd went away: as an EOF (errors past here are the client's)

    # ---- one request -------------------------------------------------------------------
    async def _refuse(
        self, exchange: Exchange, request: ApiRequest | None, deny: Deny, close: bool = False
    ) -> None:
        event = exchange.event
        route = request.target.path if request is not None else event.target.decode("latin-1")
        self.config.audit.refused(self.peer, event.method.decode(), route, deny, self.grant)
        await self._respond(
            exchange.conn, deny.status, deny.message, close=close, head_only=exchange.head_only
        )

    @staticmethod
    def _forward_head(
        event: h11.Request, length: int | None, close: bool = False
    ) -> list[tuple[bytes, bytes]]:
        """The client's headers, with the framing of the body eci forwards; ``close`` asks
        dockerd to close after the response, so that its body ends with the connection."""
        dropped = _FRAMING | _CLOSE if close else _FRAMING
        headers = [(n, v) for n, v in event.headers if n not in dropped]
        if not any(n == b"host" for n, _ in headers):
            headers.append((b"host", b"docker"))
        if length is None:
            headers.append((b"transfer-encoding", b"chunked"))
        else:
            headers.append((b"content-length", str(length).encode()))
        if close:
            headers.append((b"connection", b"close"))
        return headers

    async def _one_request(self, exchange: Exchange) -> Outcome:
        event = exchange.event
        content_type = next(
            (v.decode("latin-1") for n, v in event.headers if n == b"content-type"), None
        )
        try:
            request = parse_request(event.method.decode("ascii"), event.target, b"", content_type)
        except BadTarget as exc:
            await self._refuse(exchange, None, Deny("bad-target", f"{ECI_PREFIX}{exc}", 400))
            return Outcome.CLOSE
        route = request.route.route if request.route else NO_ROUTE
        self.client.wait_for(None)
        if route.body is Body.STREAM:
            return await self._policed(exchange, request, route)
        if _stream_length(event) == 0:  # no body (most requests): nothing to hold or time
            await self._read_body(exchange.conn, 0)  # (h11's end of the message, nothing read)
            return await self._policed(exchange, request, route)
        limit = self.config.limits.body_limit(request.method, route)
        try:
            async with self._policed_body(exchange, limit) as body:
                self.client.wait_for(None)
                request = dataclasses.replace(request, body=body)
                return await self._policed(exchange, request, route)
        except _Refused as refused:  # (raised only while the body is read)
            await self._refuse(exchange, request, refused.deny, close=True)
            return Outcome.CLOSE

    async def _policed(self, exchange: Exchange, request: ApiRequest, route: Route) -> Outcome:
        """Decide on a request read (but for a streamed body), and carry the decision out."""
        event = exchange.event
        streaming = route.body is Body.STREAM
        decision, target = await self.policing.decide(request, event.target.decode("latin-1"))
        if isinstance(decision, Deny):
            await self._refuse(exchange, request, decision, close=streaming)
            conn = exchange.conn
            done = conn.our_state is h11.DONE and conn.their_state is h11.DONE
            return Outcome.KEEP_ALIVE if done else Outcome.CLOSE

        if isinstance(decision, ExtractInContainer):
            return await self._extract(exchange, decision)
        body = decision.body if isinstance(decision, Rewrite) else request.body
        length = _stream_length(event) if streaming else len(body)
        head = h11.Request(
            method=request.method,
            target=_target_for_upstream(target),
            headers=self._forward_head(event, length, close=route.download),
        )
        try:
            grant = await self.policing.begin_grant(decision)
        except OSError as exc:
            deny = Deny(
                "grant-failed", f"{ECI_PREFIX}cannot create the container's socket: {exc}", 500
            )
            await self._refuse(exchange, request, deny)
            return Outcome.KEEP_ALIVE
        try:
            return await self._forward(exchange, request.method, head, body, route)
        finally:
            if grant is not None:
                await self.policing.settle_grant(grant)

    async def _forward(
        self, exchange: Exchange, method: str, head: h11.Request, body: bytes, route: Route
    ) -> Outcome:
        """Send the policed request to dockerd and relay its answer."""
        streaming = route.body is Body.STREAM
        while True:
            upstream_conn = h11.Connection(h11.CLIENT)
            lease = await self._next_lease()
            up_writer = lease.writer
            up_writer.write(upstream_conn.send(head))
            if streaming:
                await self._stream_body(exchange.conn, upstream_conn, up_writer)
            elif body:
                up_writer.write(upstream_conn.send(h11.Data(data=body)))
            up_writer.write(upstream_conn.send(h11.EndOfMessage()))
            try:
                await up_writer.drain()
            except ConnectionError:
                if not lease.reused:
                    raise
                outcome = Outcome.STALE
            else:
                outcome = await self._relay_response(upstream_conn, lease, method, route)
            if outcome is not Outcome.STALE:
                break
            if streaming or method not in IDEMPOTENT:
                return Outcome.CLOSE  # never send a write twice: the client sees the close
            self._drop_lease()  # dockerd closed the idle connection: once more, fresh
        if outcome is Outcome.HIJACKED:
            leftover = self.client.leftover(exchange.conn)
            if leftover:
                up_writer.write(leftover)
        return outcome

    async def _body_chunks(self, conn: h11.Connection) -> AsyncIterator[bytes]:
        """A streamed request body (build context, archive, image tarball) as it comes."""
        if conn.client_is_waiting_for_100_continue:
            await self._send(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        while not isinstance(event := await self.client.next_event(conn), h11.EndOfMessage):
            if not isinstance(event, h11.Data):
                raise h11.RemoteProtocolError(f"unexpected {event!r} in a request body")
            yield event.data

    async def _stream_body(
        self, conn: h11.Connection, upstream_conn: h11.Connection, up_writer: asyncio.StreamWriter
    ) -> None:
        """Relay a streamed request body to dockerd as it comes."""
        async for data in self._body_chunks(conn):
            up_writer.write(upstream_conn.send(h11.Data(data=data)))
            await up_writer.drain()

    async def _extract(self, exchange: Exchange, decision: ExtractInContainer) -> Outcome:
        """Answer a `docker cp` upload into a running eci container (see proxy.upload)."""
        conn = exchange.conn
        status, reason = await extract_in_container(decision, self._body_chunks(conn))
        if status != 200:
            await self._respond(conn, status, reason, head_only=exchange.head_only)
        else:
            await self._send(
                conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                + conn.send(h11.EndOfMessage())
            )
        return Outcome.KEEP_ALIVE

    # ---- the connection ----------------------------------------------------------------
    async def serve(self) -> None:
        """Serve the client's requests until either side closes; a uid that has its most
        connections open is answered 429 instead."""
        counts = self.config.connections
        if not counts.admit(self.peer.uid):
            await self._turn_away()
            return
        try:
            await self._serve()
        finally:
            counts.leave(self.peer.uid)

    async def _turn_away(self) -> None:
        """Read the first request's head (without keeping it, within the header timeout),
        answer 429 and close: never hold more than a read for a connection over the cap."""
        limit = self.config.limits.connections_per_uid
        deny = Deny(
            "too-many-connections",
            f"{ECI_PREFIX}uid {self.peer.uid} has {limit} connections open to the Docker "
            "socket, the most one user may have; close some and retry",
            429,
        )
        self.config.audit.refused(self.peer, "?", "?", deny, self.grant)
        tail = b""
        try:
            async with asyncio.timeout(self.config.limits.header_timeout):
                while b"\r\n\r\n" not in tail:
                    data = await self.reader.read(CHUNK)
                    if not data:
                        break
                    tail = tail[-3:] + data
            conn = h11.Connection(h11.SERVER)
            await self._respond(conn, deny.status, deny.message, close=True)
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            self.writer.close()

    async def _serve(self) -> None:
        try:
            while True:
                conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
                self.client.start_request(conn)
                exchange: Exchange | None = None
                try:
                    event = await self.client.next_event(conn)
                    if not isinstance(event, h11.Request):
                        return  # ConnectionClosed: the client is done
                    exchange = Exchange(conn, event)
                    outcome = await self._one_request(exchange)
                except _TimedOut as timed_out:
                    if timed_out.waiting is Waiting.HEAD:  # (an idle connection just closes)
                        deny = self._timed_out(timed_out.waiting)
                        self.config.audit.refused(self.peer, "?", "?", deny, self.grant)
                        await self._respond(conn, deny.status, deny.message, close=True)
                    return
                except h11.RemoteProtocolError as exc:
                    status = exc.error_status_hint
                    # h11's message quotes the request's bytes: never into the audit log
                    self.config.audit.refused(
                        self.peer, "?", "?", Deny("bad-http", "malformed HTTP request", status)
                    )
                    await self._respond(
                        conn,
                        status,
                        f"{ECI_PREFIX}bad HTTP request: {exc}",
                        close=True,
                        head_only=exchange is not None and exchange.head_only,
                    )
                    return
                except (ConnectionError, OSError, h11.LocalProtocolError):
                    raise
                except Exception:  # a bug: refuse (never forward) and leave a trace
                    traceback.print_exc(file=sys.stderr)
                    await self._respond(
                        conn,
                        500,
                        f"{ECI_PREFIX}internal error in the proxy; refused",
                        close=True,
                        head_only=exchange is not None and exchange.head_only,
                    )
                    return
                if outcome is Outcome.HIJACKED:
                    assert self.lease is not None
                    await pipe_both_ways((self.reader, self.writer), self.lease.stream)
                    return
                if outcome is Outcome.CLOSE:
                    return
                self.client.end_request(conn)
        except (ConnectionError, OSError):
            return
        finally:
            self._drop_lease()
            self.writer.close()
