"""Who is on the other end of a unix socket (SO_PEERCRED): for the audit log and the
requester the policy decides for."""

from __future__ import annotations

import asyncio
import pwd
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


def requester_of(peer: Peer) -> tuple[int, int] | None:
    """(uid, primary gid) of the user behind ``peer``; None when unknown.

    The kernel gives the client's current egid, which `newgrp` or `sg` change to any group
    the user belongs to: the gid comes from the passwd database instead, as the user's own
    (the runtime maps the requester's gid in host binds). A uid without a passwd entry
    keeps the kernel's gid: there is no other to take."""
    if peer.uid < 0:
        return None
    try:
        return peer.uid, pwd.getpwuid(peer.uid).pw_gid
    except KeyError:
        return peer.uid, peer.gid
