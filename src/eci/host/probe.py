"""Readiness probes: is a socket accepting, does an HTTP endpoint answer 200."""

from __future__ import annotations

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


def free_loopback_port() -> int:
    """A port nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
