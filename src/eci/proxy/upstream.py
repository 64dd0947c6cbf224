"""Talking to dockerd's root-only socket: opening connections and the lookups the policy
asks for (``FactsQuery`` → ``Facts``)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import h11

from eci.contract.labels import GRANT_LABEL, REQUESTER_LABEL
from eci.contract.requester import parse_requester
from eci.dockerapi.gojson import InvalidBody
from eci.errors import PolicyDenied
from eci.policy import ContainerFacts, Facts, FactsQuery, MountFact
from eci.policy.mounts import local_volume_source
from eci.proxy.addresses import local_addresses, resolve

CHUNK = 256 * 1024


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class LeaseState(enum.Enum):
    """Where an upstream connection is between requests. Only ``READY`` is reused or pooled;
    ``SPENT`` is final. A lease let go in any other state is closed."""

    #: a request is being sent or its response relayed (a hijacked stream or a spliced
    #: download stays BUSY until it ends, and is then closed)
    BUSY = "busy"
    #: its last response ended cleanly and nothing more came: it may carry another request
    READY = "ready"
    #: it can carry nothing more: its write side was shut to pass a client's EOF on to
    #: dockerd, or its response asked for a close or left bytes over
    SPENT = "spent"


class Lease:
    """One upstream connection, held by one client connection between ``acquire`` and
    ``release``. ``shut_write`` (the client-EOF watcher) is one way: a response that ends
    cleanly afterwards does not make the connection reusable again."""

    __slots__ = ("reader", "reused", "state", "writer")

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reused: bool
    ) -> None:
        self.reader = reader
        self.writer = writer
        #: it served another request before (so it may have been closed by dockerd since)
        self.reused = reused
        self.state = LeaseState.BUSY

    @property
    def stream(self) -> Stream:
        return self.reader, self.writer

    def begin(self) -> None:
        """Start the next exchange on a ``READY`` connection."""
        if self.state is not LeaseState.READY:
            raise ValueError(f"an upstream connection that is {self.state.value} cannot be reused")
        self.state, self.reused = LeaseState.BUSY, True

    def ended(self, reusable: bool) -> None:
        """The response ended; ``reusable``: cleanly, nothing after it, no close asked."""
        if self.state is LeaseState.BUSY:
            self.state = LeaseState.READY if reusable else LeaseState.SPENT

    def shut_write(self) -> None:
        """Pass a client's EOF on to dockerd (it ends `logs -f`, `events`): spent for good."""
        self.state = LeaseState.SPENT
        if self.writer.can_write_eof():
            with contextlib.suppress(OSError):
                self.writer.write_eof()

    def close(self) -> None:
        self.state = LeaseState.SPENT
        self.writer.close()


class UpstreamPool:
    """Idle keep-alive connections to dockerd, handed to the next client.

    The Docker CLI opens a new connection per command; reusing an idle upstream saves a
    connect per request. Only ``READY`` connections come back here (``Lease``); one that
    dockerd closed meanwhile is noticed (EOF) and dropped, and a request that finds its
    reused connection dead is sent again on a fresh one."""

    def __init__(self, path: Path, size: int = 16) -> None:
        self.path = path
        self.size = size
        self.idle: list[Lease] = []

    async def acquire(self) -> Lease:
        """A ``BUSY`` lease: an idle connection, or a fresh one."""
        while self.idle:
            lease = self.idle.pop()
            if _open(lease):
                lease.begin()
                return lease
            lease.close()
        reader, writer = await asyncio.open_unix_connection(str(self.path))
        return Lease(reader, writer, reused=False)

    def release(self, lease: Lease) -> None:
        """Keep ``lease`` for the next client if it is ``READY``, else close it."""
        if lease.state is LeaseState.READY and len(self.idle) < self.size and _open(lease):
            self.idle.append(lease)
        else:
            lease.close()

    def close(self) -> None:
        """Close every idle connection."""
        while self.idle:
            self.idle.pop().close()


def _open(lease: Lease) -> bool:
    return not lease.reader.at_eof() and not lease.writer.is_closing()


class LookupFailed(Exception):
    """dockerd could not answer a lookup the decision depends on: the request is refused."""


def _get(target: str) -> tuple[h11.Connection, bytes]:
    """A client connection that has sent ``GET target``, and the bytes to send."""
    conn = h11.Connection(h11.CLIENT)
    request = h11.Request(method="GET", target=target, headers=[("Host", "docker")])
    return conn, conn.send(request) + conn.send(h11.EndOfMessage())


async def stream_json_lines(socket_path: Path, target: str) -> AsyncIterator[Any]:
    """A ``GET`` whose answer is a stream of JSON lines (``/events``), one value per line,
    until dockerd ends it."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path))
    try:
        conn, data = _get(target)
        writer.write(data)
        pending = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(CHUNK))
            elif isinstance(event, h11.Response) and event.status_code != 200:
                raise LookupFailed(f"GET {target}: dockerd answered {event.status_code}")
            elif isinstance(event, h11.Data):
                *lines, pending = (pending + event.data).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return
    except (h11.ProtocolError, ValueError) as exc:
        raise LookupFailed(f"GET {target}: {exc}") from exc
    finally:
        writer.close()


async def get_json(socket_path: Path, target: str) -> tuple[int, Any]:
    """One ``GET`` on a fresh connection: (status, decoded JSON or None)."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path))
    try:
        conn, data = _get(target)
        writer.write(data)
        status, body = 0, bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(CHUNK))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        return status, json.loads(body) if body else None
    except (h11.ProtocolError, ValueError, OSError) as exc:
        raise LookupFailed(f"GET {target}: {exc}") from exc
    finally:
        writer.close()


async def get_object(socket_path: Path, target: str, what: str) -> dict[str, Any] | None:
    """An inspect-like ``GET``: the object, ``None`` if dockerd has no such thing (404), and
    ``LookupFailed`` for any other answer."""
    status, data = await get_json(socket_path, target)
    if status == 404:
        return None
    if status != 200 or not isinstance(data, dict):
        raise LookupFailed(f"looking up {what}: dockerd answered {status}")
    return data


async def _lookup(socket_path: Path, kind: str, name: str) -> Any:
    json_suffix = kind in ("containers", "exec")
    target = f"/{kind}/{quote(name, safe='')}" + ("/json" if json_suffix else "")
    return await get_object(socket_path, target, f"{kind[:-1]} {name!r}")


def _container(data: dict[str, Any]) -> ContainerFacts:
    mounts = tuple(
        MountFact(str(m.get("Type", "")), str(m.get("Source", "")), str(m.get("Destination", "")))
        for m in data.get("Mounts") or []
    )
    runtime = str((data.get("HostConfig") or {}).get("Runtime") or "")
    labels = (data.get("Config") or {}).get("Labels") or {}
    grant = labels.get(GRANT_LABEL) if isinstance(labels, dict) else None
    state = data.get("State") or {}
    pid = state.get("Pid") if isinstance(state, dict) and state.get("Running") else 0
    user = (data.get("Config") or {}).get("User") or ""
    return ContainerFacts(
        str(data.get("Id", "")),
        runtime,
        mounts,
        grant if isinstance(grant, str) else None,
        pid if isinstance(pid, int) and pid > 0 else 0,
        user if isinstance(user, str) else "",
        _owner(labels),
    )


def _owner(labels: Any) -> int | None:
    """The uid an ``io.eci.requester`` label among ``labels`` names (None: no one)."""
    value = labels.get(REQUESTER_LABEL) if isinstance(labels, dict) else None
    ids = parse_requester(value) if isinstance(value, str) else None
    return ids[0] if ids is not None else None


async def _volume_owners(socket_path: Path, name: str, volume: Any) -> frozenset[int]:
    """Who volume ``name`` belongs to: its own label's uid, and the owners of the containers
    using it (the volumes dockerd makes for a container carry no label)."""
    if not isinstance(volume, dict):
        return frozenset()
    filters = quote(json.dumps({"volume": [name]}))
    status, listing = await get_json(socket_path, f"/containers/json?all=1&filters={filters}")
    if status != 200 or not isinstance(listing, list):
        raise LookupFailed(f"listing the containers of volume {name!r}: dockerd answered {status}")
    owners = {_owner(c.get("Labels")) for c in listing if isinstance(c, dict)}
    owners.add(_owner(volume.get("Labels")))
    return frozenset(o for o in owners if o is not None)


async def _exec_container(socket_path: Path, exec_id: str) -> dict[str, Any] | None:
    """The container an exec instance runs in (None: no such exec instance or container)."""
    found = await _lookup(socket_path, "exec", exec_id)
    container = found.get("ContainerID") if found else None
    if not isinstance(container, str) or not container:
        return None
    return await _lookup(socket_path, "containers", container)  # type: ignore[no-any-return]


def _local_volume_options(data: dict[str, Any]) -> dict[str, str] | None:
    if str(data.get("Driver", "local")) != "local":
        return None
    options = data.get("Options") or {}
    return {str(k): str(v) for k, v in options.items()} if isinstance(options, dict) else None


def _volume_path(options: dict[str, str] | None) -> str | None:
    """The host path to resolve for the policy; refusing odd options is the policy's job."""
    try:
        return local_volume_source(options)
    except (PolicyDenied, InvalidBody):
        return None


async def gather_facts(socket_path: Path, query: FactsQuery) -> Facts:
    """Look everything in ``query`` up (concurrently); resolve host paths with symlinks."""
    containers, volumes, networks, execs, hosts = (
        sorted(query.containers),
        sorted(query.volumes),
        sorted(query.networks),
        sorted(query.execs),
        sorted(query.hosts),
    )
    results = await asyncio.gather(
        *(_lookup(socket_path, "containers", c) for c in containers),
        *(_lookup(socket_path, "volumes", v) for v in volumes),
        *(_lookup(socket_path, "networks", n) for n in networks),
        *(_exec_container(socket_path, e) for e in execs),
        *(resolve(h) for h in hosts),
    )
    ends = itertools.accumulate(map(len, (containers, volumes, networks, execs, hosts)))
    found_c, found_v, found_n, found_e, found_h = (
        results[start:end] for start, end in itertools.pairwise((0, *ends))
    )
    container_facts = {
        c: _container(d) if d else None for c, d in zip(containers, found_c, strict=True)
    }
    volume_options = {
        v: _local_volume_options(d) if d else None for v, d in zip(volumes, found_v, strict=True)
    }
    owners = await asyncio.gather(
        *(_volume_owners(socket_path, v, d) for v, d in zip(volumes, found_v, strict=True))
    )
    network_drivers = {
        n: str(d.get("Driver", "")) if d else None for n, d in zip(networks, found_n, strict=True)
    }
    paths = set(query.paths)
    paths.update(p for o in volume_options.values() if (p := _volume_path(o)))
    for facts in container_facts.values():
        paths.update(m.source for m in facts.mounts if m.type == "bind") if facts else None
    return Facts(
        containers=container_facts,
        volume_options=volume_options,
        network_drivers=network_drivers,
        real_paths={p: os.path.realpath(p) for p in paths},
        execs={e: _container(d) if d else None for e, d in zip(execs, found_e, strict=True)},
        volume_owners=dict(zip(volumes, owners, strict=True)),
        addresses=dict(zip(hosts, found_h, strict=True)),
        local_addresses=local_addresses() if hosts else frozenset(),
    )
