"""Byte pass-through from the user-facing socket to dockerd's root-only socket.

The foundation's stand-in for the policing proxy: it already owns the user-facing socket (so the
raw dockerd socket is never exposed), copies bytes both ways with half-close, and stops cleanly.
The HTTP-aware proxy replaces `_pipe_connection` without changing how the socket is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import signal
import stat
from pathlib import Path

CHUNK = 64 * 1024
_LIVE_CONNECTIONS: set[asyncio.Task[None]] = set()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction until EOF, then half-close it.

    A failure here ends this direction only: closing the shared transport would throw away
    what the other direction has not relayed yet (e.g. a container's last output racing the
    client's half-close)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()  # backpressure: never buffer more than one chunk per direction
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the peer sees EOF, the other direction goes on
    except (ConnectionError, OSError):
        return


async def _pipe_connection(
    upstream: Path, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
) -> None:
    # asyncio holds tasks only weakly, and a stream opened with open_unix_connection is held
    # only weakly by its protocol: without a strong reference a connection whose client has
    # half-closed can be garbage-collected mid-stream, losing the container's output.
    task = asyncio.current_task()
    if task is not None:
        _LIVE_CONNECTIONS.add(task)
        task.add_done_callback(_LIVE_CONNECTIONS.discard)
    try:
        daemon_r, daemon_w = await asyncio.open_unix_connection(str(upstream))
    except OSError:
        client_w.write(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: 50\r\n\r\n"
            b'{"message":"eci: the Docker engine is not running"}'
        )
        with contextlib.suppress(OSError):
            await client_w.drain()
        client_w.close()
        return
    try:
        await asyncio.gather(_copy(client_r, daemon_w), _copy(daemon_r, client_w))
    finally:
        for w in (client_w, daemon_w):
            w.close()


def _prepare_socket_path(path: Path) -> None:
    """Remove a stale socket left by a crash; refuse to delete anything that is not a socket."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SystemExit(f"eci proxy: {path} exists and is not a socket; refusing to replace it")
    path.unlink()


async def serve(listen: Path, upstream: Path, group: str, mode: int = 0o660) -> None:
    _prepare_socket_path(listen)
    server = await asyncio.start_unix_server(
        lambda r, w: _pipe_connection(upstream, r, w), path=str(listen)
    )
    gid = grp.getgrnam(group).gr_gid
    os.chown(listen, 0, gid)
    os.chmod(listen, mode)
    inode = listen.stat().st_ino
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    async with server:
        await stopping.wait()
    with contextlib.suppress(FileNotFoundError):
        if listen.stat().st_ino == inode:
            listen.unlink()
