"""Raw HTTP/1.1 over unix sockets, for the bypass tests: the bytes sent are exactly the bytes
written in a test (no client library re-frames, re-encodes or normalizes anything), and the
responses are read back with a small parser of our own (Content-Length, chunked, or close).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Connection", "Response", "api", "exchange", "request"]

TIMEOUT = 60.0


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None

    @property
    def message(self) -> str:
        data = self.json()
        return str(data.get("message")) if isinstance(data, dict) else ""

    def __repr__(self) -> str:
        return f"<{self.status} {self.reason} {self.body[:300]!r}>"


def request(
    method: str,
    target: str,
    body: bytes | str | dict[str, Any] | list[Any] | None = None,
    *,
    content_type: str | None = "application/json",
    headers: list[tuple[str, str]] | None = None,
    length: bool = True,
) -> bytes:
    """One HTTP/1.1 request as bytes. A dict/list body is JSON; ``length`` adds the true
    Content-Length (a test that frames the body itself passes ``length=False``)."""
    if isinstance(body, dict | list):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else (body or b"")
    lines = [f"{method} {target} HTTP/1.1", "Host: docker"]
    if content_type is not None and (data or not length):
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{k}: {v}" for k, v in headers or []]
    if length and (data or method in ("POST", "PUT")):
        lines.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


class _Reader:
    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.buf = b""
        self.eof = False
        self.deadline = deadline

    def _fill(self) -> bool:
        if self.eof:
            return False
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete response in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:  # the peer closed with our unread bytes queued
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def line(self) -> bytes | None:
        while b"\r\n" not in self.buf:
            if not self._fill():
                return None
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"connection closed {n - len(self.buf)} bytes short")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def rest(self) -> bytes:
        while self._fill():
            pass
        data, self.buf = self.buf, b""
        return data


def _read_response(reader: _Reader, method: str) -> Response | None:
    status_line = reader.line()
    if status_line is None:
        return None
    _, _, rest = status_line.decode("latin-1").partition(" ")
    code, _, reason = rest.partition(" ")
    headers: dict[str, str] = {}
    while (line := reader.line()) not in (None, b""):
        assert line is not None
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(code)
    if 100 <= status < 200 and status != 101:
        return _read_response(reader, method)
    if method == "HEAD" or status in (101, 204, 304):
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size_line = reader.line()
            if size_line is None:
                break
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while reader.line() not in (None, b""):
                    pass
                break
            body += reader.exactly(size)
            reader.exactly(2)
    elif "content-length" in headers:
        body = reader.exactly(int(headers["content-length"]))
    else:
        body = reader.rest()
    return Response(status, reason, headers, body)


class Connection:
    """One kept-alive connection: send some bytes, read a response, send more."""

    def __init__(self, path: Path | str, timeout: float = TIMEOUT) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.timeout = timeout

    def send(self, data: bytes) -> None:
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def read(self, method: str = "POST") -> Response | None:
        """The next response, or ``None`` if the server closed the connection."""
        reader = _Reader(self.sock, time.monotonic() + self.timeout)
        response = _read_response(reader, method)
        assert not reader.buf, f"unexpected bytes after the response: {reader.buf[:200]!r}"
        return response

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def exchange(
    path: Path | str,
    data: bytes,
    responses: int = 1,
    *,
    methods: list[str] | None = None,
    timeout: float = TIMEOUT,
    partial: bool = False,
) -> list[Response]:
    """Send ``data`` on one new connection to the unix socket ``path`` and read up to
    ``responses`` responses (fewer if the server closes first, or, with ``partial``, if no
    more come within ``timeout``). The bytes are sent from a thread, so a server that
    answers and closes before reading everything (413) is seen."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(path))
    send_error: list[BaseException] = []

    def send() -> None:
        try:
            sock.sendall(data)
        except OSError as exc:  # the server closed early: it answered what it had
            send_error.append(exc)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    reader = _Reader(sock, time.monotonic() + timeout)
    found: list[Response] = []
    try:
        for i in range(responses):
            method = (methods or [])[i] if methods and i < len(methods) else "POST"
            try:
                response = _read_response(reader, method)
            except TimeoutError:
                if not partial:
                    raise
                break
            if response is None:
                break
            found.append(response)
            if response.status == 101:
                break
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        sender.join(timeout=timeout)
    return found


def api(
    path: Path | str,
    method: str,
    target: str,
    body: bytes | str | dict[str, Any] | list[Any] | None = None,
    *,
    content_type: str | None = "application/json",
    timeout: float = TIMEOUT,
) -> Response:
    """One ordinary request (for set-up, checks and clean-up); the response must come."""
    found = exchange(
        path,
        request(method, target, body, content_type=content_type),
        methods=[method],
        timeout=timeout,
    )
    if not found:
        raise AssertionError(f"{method} {target}: no response from {path}")
    return found[0]
