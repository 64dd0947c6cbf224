"""Granted sockets against a scripted dockerd: served while their container exists, removed
with it (destroy events, or a reconcile after a restart), and nothing else touched."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from eci.contract.labels import GRANT_LABEL, REQUESTER_LABEL
from eci.proxy.grants import GrantedSockets, new_token

LIVE, GONE, NEW = new_token(), new_token(), new_token()


class FakeDockerd:
    """Answers ``/containers/json`` from ``containers`` and streams ``/events`` from a queue."""

    def __init__(self) -> None:
        self.containers: list[dict[str, Any]] = []
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._answer(reader, writer)
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b" ")[1].decode()
        if target.startswith("/containers/json"):
            body = json.dumps(self.containers).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        elif target.startswith("/events"):
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            while True:
                line = json.dumps(await self.events.get()).encode() + b"\n"
                writer.write(b"%x\r\n%s\r\n" % (len(line), line))
                await writer.drain()
        await writer.drain()


@contextlib.asynccontextmanager
async def dockerd(tmp_path: Path) -> AsyncIterator[tuple[FakeDockerd, Path]]:
    fake = FakeDockerd()
    path = tmp_path / "dockerd.sock"
    server = await asyncio.start_unix_server(fake.handle, path=str(path))
    async with server:
        yield fake, path


def run(test: Callable[[Path], Awaitable[None]], _: Path) -> None:
    """Each test in its own event loop (no pytest-asyncio), under a timeout, in a short
    directory (unix socket paths are at most 107 bytes)."""
    short = Path(tempfile.mkdtemp(prefix="eci-grants-", dir="/tmp"))

    async def main() -> None:
        await asyncio.wait_for(test(short), 10)

    try:
        asyncio.run(main())
    finally:
        shutil.rmtree(short)


def _container(token: str, root: Path) -> dict[str, Any]:
    """A container that binds its grant's socket (the label alone is not ownership)."""
    return {
        "Id": f"id-{token[:4]}",
        "Labels": {GRANT_LABEL: token, "other": "x"},
        "Mounts": [{"Type": "bind", "Source": str(root / "grants" / token / "docker.sock")}],
    }


def _grants(tmp_path: Path, dockerd_path: Path) -> tuple[GrantedSockets, list[str]]:
    served: list[str] = []

    async def serve(token: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(token)
        writer.close()

    return GrantedSockets(tmp_path / "grants", dockerd_path, serve), served


async def _connect(path: Path) -> None:
    reader, writer = await asyncio.open_unix_connection(str(path))
    await reader.read()  # the fake serve closes at once
    writer.close()


def test_reconcile_serves_live_grants_and_removes_only_dead_ones(tmp_path: Path) -> None:
    run(_test_reconcile_serves_live_grants_and_removes_only_dead_ones, tmp_path)


async def _test_reconcile_serves_live_grants_and_removes_only_dead_ones(tmp_path: Path) -> None:
    async with dockerd(tmp_path) as (fake, path):
        inherited = {"Id": "from-a-commit", "Labels": {GRANT_LABEL: GONE}, "Mounts": []}
        fake.containers = [_container(LIVE, tmp_path), {"Id": "unlabelled"}, inherited]
        grants, served = _grants(tmp_path, path)
        for token in (LIVE, GONE):  # left by an earlier proxy: stale sockets nobody listens on
            (tmp_path / "grants" / token).mkdir(parents=True)
            stale = socket.socket(socket.AF_UNIX)
            stale.bind(str(grants.path(token)))
            stale.close()
        foreign = tmp_path / "grants" / "not-a-token"
        foreign.mkdir()

        await grants.reconcile()

        assert sorted(p.name for p in (tmp_path / "grants").iterdir()) == sorted(
            [LIVE, "not-a-token"]
        )
        await _connect(grants.path(LIVE))
        assert served == [LIVE]
        assert grants.path(LIVE).stat().st_mode & 0o777 == 0o666
        grants.close_all()


def test_a_destroy_event_of_the_holder_removes_the_socket(tmp_path: Path) -> None:
    run(_test_a_destroy_event_of_the_holder_removes_the_socket, tmp_path)


async def _until(done: Callable[[], bool]) -> None:
    for _ in range(500):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the watcher did not get there")


def _destroyed(container: str, token: str) -> dict[str, Any]:
    attributes = {GRANT_LABEL: token}
    return {
        "Type": "container",
        "Action": "destroy",
        "Actor": {"ID": container, "Attributes": attributes},
    }


async def _test_a_destroy_event_of_the_holder_removes_the_socket(tmp_path: Path) -> None:
    """A container carrying a copy of the label (from an image: the token is visible to
    every docker user) is destroyed: nothing happens to the grant. Events are handled in
    order: once the later event's grant (GONE) is closed, the copy's has been seen."""
    async with dockerd(tmp_path) as (fake, path):
        fake.containers = [_container(LIVE, tmp_path), _container(GONE, tmp_path)]
        grants, _ = _grants(tmp_path, path)
        watcher = asyncio.create_task(grants.watch())
        try:
            await _until(lambda: grants.path(LIVE).exists() and grants.path(GONE).exists())
            await fake.events.put({"Type": "container", "Action": "destroy", "Actor": {}})
            await fake.events.put(_destroyed("a-copy-of-the-label", LIVE))
            await fake.events.put(_destroyed(f"id-{GONE[:4]}", GONE))
            await _until(lambda: not grants.path(GONE).parent.exists())
            assert grants.path(LIVE).is_socket()
            assert LIVE in grants.servers

            await fake.events.put(_destroyed(f"id-{LIVE[:4]}", LIVE))
            await _until(lambda: not grants.path(LIVE).parent.exists())
            assert LIVE not in grants.servers
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            grants.close_all()


def test_requests_through_a_grant_are_made_for_the_holder_s_creator(tmp_path: Path) -> None:
    run(_test_requests_through_a_grant_are_made_for_the_holder_s_creator, tmp_path)


async def _test_requests_through_a_grant_are_made_for_the_holder_s_creator(
    tmp_path: Path,
) -> None:
    async with dockerd(tmp_path) as (fake, path):
        alice = _container(LIVE, tmp_path)
        alice["Labels"][REQUESTER_LABEL] = "1000:1000"
        roots = _container(GONE, tmp_path)
        roots["Labels"][REQUESTER_LABEL] = "0:0"
        fake.containers = [alice, roots]
        grants, _ = _grants(tmp_path, path)
        await grants.reconcile()
        assert grants.requester(LIVE) == (1000, 1000)
        assert grants.requester(GONE) is None  # root's: acts for no one
        assert grants.requester(NEW) is None  # not known
        grants.close_all()


def test_a_grant_is_kept_only_if_dockerd_created_the_container(tmp_path: Path) -> None:
    run(_test_a_grant_is_kept_only_if_dockerd_created_the_container, tmp_path)


async def _test_a_grant_is_kept_only_if_dockerd_created_the_container(tmp_path: Path) -> None:
    async with dockerd(tmp_path) as (fake, path):
        grants, _ = _grants(tmp_path, path)
        await grants.begin(NEW, (1000, 1000))
        assert grants.path(NEW).is_socket()
        await grants.reconcile()  # a create in flight is not taken away
        assert grants.path(NEW).is_socket()
        assert await grants.settle(NEW) is None  # dockerd refused the create
        assert not grants.path(NEW).parent.exists()

        await grants.begin(LIVE, (1000, 1000))
        assert grants.requester(LIVE) == (1000, 1000)  # before it is even created
        alice = _container(LIVE, tmp_path)
        alice["Labels"][REQUESTER_LABEL] = "1000:1000"
        fake.containers = [alice]
        assert await grants.settle(LIVE) == f"id-{LIVE[:4]}"
        assert grants.path(LIVE).is_socket()
        grants.close_all()


def test_tokens_are_never_paths(tmp_path: Path) -> None:
    grants, _ = _grants(tmp_path, tmp_path / "none.sock")
    with pytest.raises(ValueError, match="not a grant token"):
        asyncio.run(grants.open("../../etc"))
    grants.close("../../etc")  # no-op: nothing outside the grants dir is touched
