"""Host names resolved as dockerd resolves them, and the host's own addresses: for the
build-remote check (``eci.policy.remote``).

dockerd resolves through the host's resolver configuration (/etc/hosts, /etc/resolv.conf,
nsswitch); ``getaddrinfo`` reads the same, and also takes the numeric spellings Go would
hand to it (``127.1``, ``2130706433``). The proxy runs in the host's network namespace, as
dockerd does: the addresses of its interfaces are the host's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from pathlib import Path

FIB_TRIE = Path("/proc/net/fib_trie")
IF_INET6 = Path("/proc/net/if_inet6")


async def resolve(host: str) -> tuple[str, ...]:
    """Every address ``host`` resolves to (empty: it does not resolve)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):  # socket.gaierror is an OSError
        return ()
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


def _ipv4_local(text: str) -> set[str]:
    """The addresses of the local routing table (``/32 host LOCAL`` leaves of fib_trie)."""
    found, leaf = set(), ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|-- "):
            leaf = stripped[4:]
        elif stripped.startswith("/32 host LOCAL") and leaf:
            found.add(leaf)
    return found


def _ipv6_local(text: str) -> set[str]:
    found = set()
    for line in text.splitlines():
        fields = line.split()
        if fields and len(fields[0]) == 32:
            found.add(str(ipaddress.IPv6Address(int(fields[0], 16))))
    return found


def local_addresses() -> frozenset[str]:
    """Every address of the host's interfaces (IPv4 and IPv6)."""
    found: set[str] = set()
    for path, parse in ((FIB_TRIE, _ipv4_local), (IF_INET6, _ipv6_local)):
        try:
            found |= parse(path.read_text())
        except OSError:
            continue
    return frozenset(found)
