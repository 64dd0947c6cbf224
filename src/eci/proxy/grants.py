"""Filtered Docker sockets granted to containers (see ``eci.policy.grants``).

Each grant is a listening socket (``eci.contract.grants.grant_path``) served like the user
socket, plus the admin's ``commandList``. It is opened before the create is forwarded (the
container's bind needs it), kept if dockerd created the container, and removed when the
container is destroyed (dockerd's events) or found gone (a reconcile at start and whenever
the event stream is re-established). Only directories named like a token are ever removed.

A proxy restart re-creates the sockets of existing containers at the same paths: containers
started afterwards reach them; a container that was running keeps the old, dead socket until
it restarts (its mount holds the old inode).

A grant's token is no secret (it is a label: `docker inspect` shows it), so the label alone
proves nothing: an image can carry it (committed from a granted container, or built with it)
and pass it to any container. The holder of a grant is the one container that binds its
socket; only that container's destroy closes the grant, and requests through the socket are
made for the user who created that container (its ``io.eci.requester``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import stat
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from eci.contract.grants import TOKEN_BYTES, grant_path, is_token
from eci.contract.labels import GRANT_LABEL, REQUESTER_LABEL
from eci.contract.requester import parse_requester, requester_value
from eci.proxy.limits import CLIENT_BUFFER
from eci.proxy.upstream import LookupFailed, get_json, stream_json_lines

RETRY = 1.0  # seconds before the event stream is re-opened

Serve = Callable[[str, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def new_token() -> str:
    return secrets.token_hex(TOKEN_BYTES)


class Holder(NamedTuple):
    """The container a grant's socket is bound into, and the user who created it (None:
    root, or not known)."""

    container: str
    requester: tuple[int, int] | None


class GrantedSockets:
    def __init__(self, directory: Path, upstream: Path, serve: Serve) -> None:
        self.directory = directory
        self.upstream = upstream
        self.serve = serve
        self.servers: dict[str, asyncio.AbstractServer] = {}
        #: opened for a create still in flight: a reconcile must not take them away
        self.pending: set[str] = set()
        #: token -> the container holding it, as last listed
        self.holders: dict[str, Holder] = {}

    def path(self, token: str) -> Path:
        return Path(grant_path(str(self.directory), token))

    async def open(self, token: str) -> None:
        """Listen on the grant's socket (mode 0666: container root is an unprivileged host
        uid; the directories above are root-only, so only the container's bind reaches it)."""
        if not is_token(token):
            raise ValueError(f"not a grant token: {token!r}")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.path(token)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(path.lstat().st_mode):
                path.unlink()  # left by an earlier proxy: nobody listens on it any more
        server = await asyncio.start_unix_server(
            partial(self.serve, token), path=str(path), limit=CLIENT_BUFFER
        )
        os.chmod(path, 0o666)
        self.servers[token] = server

    def requester(self, token: str) -> tuple[int, int] | None:
        """The user requests through grant ``token`` are made for (None: nobody known)."""
        holder = self.holders.get(token)
        return holder.requester if holder is not None else None

    def close(self, token: str) -> None:
        """Stop serving the grant and remove its socket and directory."""
        self.holders.pop(token, None)
        server = self.servers.pop(token, None)
        if server is not None:
            server.close()
        if not is_token(token):
            return
        path = self.path(token)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(path.lstat().st_mode):
                path.unlink()
        with contextlib.suppress(FileNotFoundError, OSError):
            path.parent.rmdir()  # only when empty: never anything but what eci put there

    async def begin(self, token: str, requester: tuple[int, int] | None) -> None:
        """Open a grant for a create about to be forwarded by ``requester``: its requests are
        made for that user from the start (the holder's id is known once it exists)."""
        self.pending.add(token)
        label = requester_value(*requester) if requester is not None else ""
        self.holders[token] = Holder("", parse_requester(label))  # as its label will say
        try:
            await self.open(token)
        except BaseException:
            self.pending.discard(token)
            self.close(token)
            raise

    async def settle(self, token: str) -> str | None:
        """After the create: keep the grant if dockerd made the container (its id), else
        remove it."""
        try:
            holders = await self._holders()
        except (LookupFailed, OSError):
            return None  # kept: the next reconcile removes it if there is no container
        finally:
            self.pending.discard(token)
        if token not in holders:
            self.close(token)
            return None
        self.holders[token] = holders[token]
        return holders[token].container

    async def _holders(self) -> dict[str, Holder]:
        """token -> its holder, for every container with a grant label that binds it."""
        filters = quote(json.dumps({"label": [GRANT_LABEL]}))
        status, listing = await get_json(self.upstream, f"/containers/json?all=1&filters={filters}")
        if status != 200 or not isinstance(listing, list):
            raise LookupFailed(f"listing granted containers: dockerd answered {status}")
        holders = {}
        for c in listing:
            labels = c.get("Labels") if isinstance(c, dict) else None
            token = labels.get(GRANT_LABEL) if isinstance(labels, dict) else None
            # the label alone is not holding: an image committed from a granted container
            # carries it too; the holder is the container that binds the grant's socket
            if not (isinstance(token, str) and is_token(token) and self._binds(c, token)):
                continue
            assert isinstance(labels, dict)  # (the token came from them)
            requester = labels.get(REQUESTER_LABEL)
            ids = parse_requester(requester) if isinstance(requester, str) else None
            holders[token] = Holder(str(c.get("Id")), ids)
        return holders

    def _binds(self, container: dict[str, Any], token: str) -> bool:
        mounts = container.get("Mounts")
        path = str(self.path(token))
        return isinstance(mounts, list) and any(
            isinstance(m, dict) and m.get("Source") == path for m in mounts
        )

    async def reconcile(self) -> None:
        """Serve the grants of existing containers; remove those of containers gone."""
        holders = await self._holders()
        on_disk = (
            {p.name for p in self.directory.iterdir() if is_token(p.name)}
            if self.directory.is_dir()
            else set()
        )
        for token in (on_disk | set(self.servers)) - set(holders) - self.pending:
            self.close(token)
        for token, holder in holders.items():
            self.holders[token] = holder
            if is_token(token) and token not in self.servers:
                await self.open(token)

    def _destroyed(self, event: object) -> bool:
        """A container was destroyed: close its grant if it was the holder (a container
        that only carries a copy of the label closes nothing). True when a served grant's
        holder is not known yet (its create's look-up failed): reconcile to find out."""
        actor = event.get("Actor") if isinstance(event, dict) else None
        attributes = actor.get("Attributes") if isinstance(actor, dict) else None
        token = attributes.get(GRANT_LABEL) if isinstance(attributes, dict) else None
        if not isinstance(token, str) or not isinstance(actor, dict):
            return False
        holder = self.holders.get(token)
        if holder is None:
            return token in self.servers
        if holder.container == actor.get("ID"):
            self.close(token)
        return False

    async def watch(self) -> None:
        """Follow container destroy events for as long as the proxy runs."""
        filters = json.dumps({"type": ["container"], "event": ["destroy"]})
        while True:
            since = (
                int(time.time()) - 1
            )  # replayed: nothing destroyed during the reconcile is missed
            try:
                await self.reconcile()
                target = f"/events?since={since}&filters={quote(filters)}"
                async for event in stream_json_lines(self.upstream, target):
                    if self._destroyed(event):
                        await self.reconcile()
            except Exception as exc:  # never stop following: sockets would outlive containers
                print(f"eci proxy: granted sockets: {exc!r}; retrying", file=sys.stderr)
            await asyncio.sleep(RETRY)

    def close_all(self) -> None:
        """On proxy stop: stop listening; sockets stay for the next proxy to take over."""
        for server in self.servers.values():
            server.close()
        self.servers.clear()
