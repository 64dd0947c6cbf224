"""Byte copying with backpressure and half-close, shared by hijacked streams."""

from __future__ import annotations

import asyncio

CHUNK = 256 * 1024


async def copy_until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction until EOF, then half-close it.

    A failure here ends this direction only: closing the shared transport would throw away
    what the other direction has not relayed yet (e.g. a container's last output racing the
    client's half-close)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()  # backpressure: at most one chunk in flight per direction
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the peer sees EOF, the other direction goes on
    except (ConnectionError, OSError):
        return


async def pipe_both_ways(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    await asyncio.gather(copy_until_eof(a[0], b[1]), copy_until_eof(b[0], a[1]))
