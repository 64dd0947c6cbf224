"""Serve the user-facing socket: one ``ClientConnection`` task per client, policy settings
reloaded on SIGHUP, clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import signal
import stat
import sys
from pathlib import Path

from eci.engine.config import host_paths
from eci.engine.layout import EngineLayout
from eci.policy import PolicyContext
from eci.policy.imagelist import ImageList
from eci.proxy.audit import AuditLog
from eci.proxy.config import ProxyConfig
from eci.proxy.connection import ClientConnection
from eci.proxy.grants import GrantedSockets
from eci.proxy.limits import CLIENT_BUFFER, Limits
from eci.settings.model import DockerSocketMount


class SettingsUnreadable(Exception):
    """The effective-settings snapshot cannot be read: the proxy does not start (fail
    closed) or, on reload, keeps the settings it has."""


def policy_context(layout: EngineLayout) -> PolicyContext:
    """ECI on/off, the socket grants and container ownership from the snapshot ``eci up``
    wrote; protected paths from the layout."""
    try:
        data = json.loads(layout.settings_snapshot.read_text())
        section = data["enhancedContainerIsolation"]
        enabled = section["value"]
        socket = DockerSocketMount.model_validate(section["dockerSocketMount"])
        ownership = section.get("containerOwnership", True)  # (a snapshot from before it)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SettingsUnreadable(f"{layout.settings_snapshot}: {exc}") from exc
    if not isinstance(enabled, bool) or not isinstance(ownership, bool):
        raise SettingsUnreadable(
            f"{layout.settings_snapshot}: value or containerOwnership is not a boolean"
        )
    return PolicyContext(
        eci_enabled=enabled,
        host_paths=host_paths(layout),
        image_list=ImageList.from_settings(
            socket.imageList.images, socket.imageList.allowDerivedImages
        ),
        command_list=socket.commandList,
        grants_dir=str(layout.grants_dir),
        container_ownership=ownership,
    )


def _prepare_socket_path(path: Path) -> None:
    """Remove a stale socket left by a crash; refuse to delete anything that is not a socket."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SystemExit(f"eci proxy: {path} exists and is not a socket; refusing to replace it")
    path.unlink()


class Proxy:
    def __init__(self, layout: EngineLayout, group: str, limits: Limits) -> None:
        self.layout = layout
        self.group = group
        self.config = ProxyConfig(
            upstream=layout.raw_socket,
            policy=policy_context(layout),
            audit=AuditLog(layout.audit_log),
            limits=limits,
            grants=GrantedSockets(layout.grants_dir, layout.raw_socket, self._granted_client),
        )
        # asyncio holds tasks only weakly: a connection whose client has half-closed could
        # be garbage-collected mid-stream, losing a container's last output.
        self.connections: set[asyncio.Task[None]] = set()

    def reload(self) -> None:
        try:
            self.config.policy = policy_context(self.layout)
        except SettingsUnreadable as exc:
            print(f"eci proxy: reload failed, keeping the current settings: {exc}", file=sys.stderr)

    async def _client(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        grant: str | None = None,
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.connections.add(task)
            task.add_done_callback(self.connections.discard)
        await ClientConnection(self.config, reader, writer, grant).serve()

    async def _granted_client(
        self, grant: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await self._client(reader, writer, grant)

    async def serve(self, listen: Path, mode: int = 0o660) -> None:
        _prepare_socket_path(listen)
        server = await asyncio.start_unix_server(
            self._client, path=str(listen), limit=CLIENT_BUFFER
        )
        os.chown(listen, 0, grp.getgrnam(self.group).gr_gid)
        os.chmod(listen, mode)
        inode = listen.stat().st_ino
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        grants = self.config.grants
        watcher = asyncio.create_task(grants.watch()) if grants else None
        async with server:
            await stopping.wait()
        if watcher is not None and grants is not None:
            watcher.cancel()
            grants.close_all()
        with contextlib.suppress(FileNotFoundError):
            if listen.stat().st_ino == inode:
                listen.unlink()
