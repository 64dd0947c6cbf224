"""Where a response body ends, tracked by offsets while its bytes are relayed untouched.

h11 reads the response head (status, headers, the 101/200 hijack switch); the body is relayed
as dockerd sent it. Parsing it into h11 ``Data`` events, only to throw them away, cost half the
proxy's CPU on a `docker cp` and three quarters on `logs` (dockerd flushes every log line as
its own chunk). These trackers only count: a Content-Length countdown, and a chunked-encoding
scanner that looks at chunk-size lines and skips chunk data without copying it.

``feed(data)`` returns how many bytes of ``data`` belong to the message once it is complete,
or ``None`` while it needs more. A malformed chunked body raises ``FramingError`` (the
connection is then closed: dockerd is trusted, so this means a bug or a broken stream).
"""

from __future__ import annotations

import enum

__all__ = ["ChunkedBody", "FramingError", "LengthBody", "body_tracker"]

MAX_LINE = 4096


class FramingError(ValueError):
    """The body's framing cannot be followed."""


class LengthBody:
    __slots__ = ("remaining",)

    def __init__(self, length: int) -> None:
        self.remaining = length

    def feed(self, data: bytes) -> int | None:
        if len(data) >= self.remaining:
            used, self.remaining = self.remaining, 0
            return used
        self.remaining -= len(data)
        return None


class _State(enum.Enum):
    SIZE = "size"
    DATA = "data"
    DATA_END = "data-end"
    TRAILER = "trailer"


class ChunkedBody:
    __slots__ = ("line", "remaining", "state")

    def __init__(self) -> None:
        self.state = _State.SIZE
        self.remaining = 0
        self.line = b""

    def feed(self, data: bytes) -> int | None:
        pos, end = 0, len(data)
        while pos < end:
            if self.state is _State.DATA:
                take = min(self.remaining, end - pos)
                pos += take
                self.remaining -= take
                if not self.remaining:
                    self.state = _State.DATA_END
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                self.line += data[pos:]
                if len(self.line) > MAX_LINE:
                    raise FramingError("chunk-size line too long")
                return None
            line = (self.line + data[pos:newline]).rstrip(b"\r")
            self.line, pos = b"", newline + 1
            if self.state is _State.SIZE:
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError as exc:
                    raise FramingError(f"bad chunk size {line[:40]!r}") from exc
                if size < 0:
                    raise FramingError(f"bad chunk size {line[:40]!r}")
                self.state, self.remaining = (_State.DATA, size) if size else (_State.TRAILER, 0)
            elif self.state is _State.DATA_END:
                if line:
                    raise FramingError("chunk data not followed by CRLF")
                self.state = _State.SIZE
            elif not line:  # TRAILER: an empty line ends the message
                return pos
        return None


def body_tracker(
    method: str, status: int, headers: list[tuple[bytes, bytes]]
) -> LengthBody | ChunkedBody | None:
    """The tracker for a response body; ``None`` means: until the connection closes."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return LengthBody(0)
    names = {name.lower(): value for name, value in headers}
    if b"chunked" in names.get(b"transfer-encoding", b"").lower():
        return ChunkedBody()
    if b"content-length" in names:
        return LengthBody(int(names[b"content-length"]))
    return None
