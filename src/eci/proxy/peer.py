"""Who is on the other end of a unix socket (SO_PEERCRED): for the audit log."""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Peer:
    pid: int
    uid: int
    gid: int


UNKNOWN = Peer(-1, -1, -1)


def peer_of(writer: asyncio.StreamWriter) -> Peer:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return UNKNOWN
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return UNKNOWN
    return Peer(*struct.unpack("3i", raw))
