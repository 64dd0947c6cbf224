"""Response-body framing trackers: wherever a stream is split, they find the message's end.

Invariant: fed any split of a well-formed body followed by extra bytes, a tracker reports the
end exactly at the body's last byte; a malformed chunked body raises ``FramingError``.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eci.proxy.framing import ChunkedBody, FramingError, LengthBody, body_tracker


def chunked(chunks: list[bytes], trailer: bytes = b"") -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c)
    return body + b"0\r\n" + trailer + b"\r\n"


def _end(tracker: LengthBody | ChunkedBody, stream: bytes, cuts: list[int]) -> int | None:
    """Offset in ``stream`` where the tracker says the message ended."""
    offset = 0
    for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        used = tracker.feed(stream[start:stop])
        if used is not None:
            return offset + used
        offset += stop - start
    return None


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=40), max_size=6),
    trailer=st.sampled_from([b"", b"X-Trailer: 1\r\n"]),
    extra=st.binary(max_size=8),
    data=st.data(),
)
def test_chunked_end_is_found_across_any_split(
    chunks: list[bytes], trailer: bytes, extra: bytes, data: st.DataObject
) -> None:
    body = chunked(chunks, trailer)
    stream = body + extra
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    assert _end(ChunkedBody(), stream, cuts) == len(body)


@settings(max_examples=200, deadline=None)
@given(length=st.integers(0, 64), extra=st.binary(max_size=8), data=st.data())
def test_length_end_is_found_across_any_split(
    length: int, extra: bytes, data: st.DataObject
) -> None:
    stream = b"x" * length + extra
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    found = _end(LengthBody(length), stream, cuts)
    assert found == length or (length == 0 and found in (0, None))


def test_chunk_extensions_are_skipped() -> None:
    assert ChunkedBody().feed(b"3;ext=1\r\nabc\r\n0\r\n\r\n") == 19


@pytest.mark.parametrize(
    "stream",
    [b"zz\r\n", b"3\r\nabcX\r\n", b"-1\r\n", b"1" * 5000],
    ids=["not-hex", "no-crlf-after-data", "negative", "endless-size-line"],
)
def test_malformed_chunked_bodies_raise(stream: bytes) -> None:
    with pytest.raises(FramingError):
        ChunkedBody().feed(stream)


@pytest.mark.parametrize(
    ("method", "status", "headers", "kind"),
    [
        ("HEAD", 200, [(b"content-length", b"10")], LengthBody),
        ("GET", 204, [], LengthBody),
        ("GET", 304, [], LengthBody),
        ("GET", 200, [(b"transfer-encoding", b"chunked")], ChunkedBody),
        ("GET", 200, [(b"content-length", b"5")], LengthBody),
        ("GET", 200, [(b"content-type", b"application/vnd.docker.raw-stream")], type(None)),
    ],
    ids=["head", "204", "304", "chunked", "length", "until-close"],
)
def test_body_tracker_follows_http_rules(
    method: str, status: int, headers: list[tuple[bytes, bytes]], kind: type
) -> None:
    assert isinstance(body_tracker(method, status, headers), kind)
