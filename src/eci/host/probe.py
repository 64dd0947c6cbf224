"""Readiness probes: is a socket accepting, does an HTTP endpoint answer 200."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from pathlib import Path


def http_status_unix(path: Path, target: str, timeout: float = 2.0) -> int | None:
    """Status code of `GET target` over a unix socket, or None if nothing answers."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            return _get(sock, target)
    except OSError:
        return None


def http_status_tcp(address: str, target: str, timeout: float = 2.0) -> int | None:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            return _get(sock, target)
    except OSError:
        return None


def _get(sock: socket.socket, target: str) -> int | None:
    sock.sendall(f"GET {target} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
    head = sock.recv(64).decode("latin-1")
    parts = head.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return None
    return int(parts[1])


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


#: where the engine's registry listens: ports only root may bind (while the host's
#: net.ipv4.ip_unprivileged_port_start is above them; 1024 by default)
ROOT_ONLY_PORTS = range(700, 800)
UNPRIVILEGED_PORT_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


def free_root_only_loopback_port() -> int | None:
    """A loopback port that only root can bind and nothing listens on right now, or None.
    No local user can listen there before the registry does, nor in its place if it stops."""
    start = int(UNPRIVILEGED_PORT_START.read_text())
    candidates = [port for port in ROOT_ONLY_PORTS if port < start]
    random.shuffle(candidates)  # engines started side by side rarely try the same one
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return None
