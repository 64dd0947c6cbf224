"""Bypass attempts, section 3 — the wire: targets, content types, framing, smuggling.

How a case works: see conftest.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from tests.security.api_bypass.common import (
    CREATE,
    EVIL,
    IMAGE,
    PID_HOST,
    SECRET_ENV,
    SHORT,
    Env,
    assert_refused,
    http,
    inspect,
    json_post,
    not_from_eci,
    pairs,
    remove_container,
    snapshot,
    unique,
)
from tests.security.rawhttp import Connection, exchange, request

pytestmark = pytest.mark.engine


def chunked(body: bytes, size: int = 7, ext: str = "") -> bytes:
    out = b"".join(
        f"{len(body[i : i + size]):x}{ext}\r\n".encode() + body[i : i + size] + b"\r\n"
        for i in range(0, len(body), size)
    )
    return out + b"0\r\n\r\n"


def chunked_post(name: str, te: list[str], body: bytes = EVIL, size: int = 7) -> bytes:
    headers = ["Content-Type: application/json", *te]
    return http("POST", CREATE.format(name=name), headers, chunked(body, size))


def padded_field(name: str) -> bytes:
    """The dangerous field after 1.5 MiB of a harmless one (CVE-2026-34040: a check that
    reads only the first MiB), within the proxy's 2 MiB limit."""
    body = pairs(
        ("Image", IMAGE),
        ("Env", SECRET_ENV),
        ("Labels", {"pad": "A" * (3 << 19)}),
        ("HostConfig", {"PidMode": "host"}),
    )
    return json_post(CREATE.format(name=name), body)


@dataclass(frozen=True)
class Wire:
    id: str
    data: Callable[[str], bytes]
    #: dockerd's answers to the bytes
    control: tuple[int, ...]
    #: the proxy's answers: status and exact text (None: a text of eci's own; ignored < 400)
    refusal: tuple[tuple[int, str | None], ...]
    #: the control creates the container with the host PID namespace; when False, the
    #: comment on the case says why dockerd cannot act on it (it still processes it)
    created: bool = True


WIRE_CASES = [
    Wire("target-plain", lambda n: json_post(CREATE.format(name=n)), (201,), ((403, PID_HOST),)),
    Wire(
        "target-absolute-form",
        lambda n: json_post(f"http://x/v1.41/containers/create?name={n}"),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "target-percent-encoded-slash",
        lambda n: json_post(f"/v1.41/containers%2Fcreate?name={n}"),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "target-percent-encoded-slash-lowercase",
        lambda n: json_post(f"/v1.41/containers%2fcreate?name={n}"),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "target-percent-encoded-letters",
        lambda n: json_post(f"/v1.41/%63ontainers/create?name={n}"),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "target-no-version",
        lambda n: json_post(f"/containers/create?name={n}"),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "target-version-1.12",
        lambda n: json_post(f"/v1.12/containers/create?name={n}"),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "target-version-1.41.0",
        lambda n: json_post(f"/v1.41.0/containers/create?name={n}"),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "target-query-like-a-path",
        lambda n: json_post(f"/containers/create?x=/../../build&name={n}"),
        (201,),
        ((403, PID_HOST),),
    ),
    # dockerd refuses an API version above its own (400): it processes, cannot act.
    Wire(
        "target-version-1.99",
        lambda n: json_post(f"/v1.99/containers/create?name={n}"),
        (400,),
        ((403, PID_HOST),),
        created=False,
    ),
    # gorilla/mux answers a 301 to the cleaned path for `//`, `.` and `..` (a client that
    # follows it re-sends the body): the daemon processes, the proxy polices the cleaned route.
    Wire(
        "target-double-slash",
        lambda n: json_post(f"/v1.41//containers/create?name={n}"),
        (301,),
        ((403, PID_HOST),),
        created=False,
    ),
    Wire(
        "target-dot-segment",
        lambda n: json_post(f"/v1.41/containers/./create?name={n}"),
        (301,),
        ((403, PID_HOST),),
        created=False,
    ),
    Wire(
        "target-dotdot-segment",
        lambda n: json_post(f"/v1.41/containers/x/../create?name={n}"),
        (301,),
        ((403, PID_HOST),),
        created=False,
    ),
    # dockerd 20.10 routes case-sensitively and without a trailing slash (404); a later
    # daemon or a router in front might not: the proxy folds them onto the create route.
    Wire(
        "target-trailing-slash",
        lambda n: json_post(f"/v1.41/containers/create/?name={n}"),
        (404,),
        ((403, PID_HOST),),
        created=False,
    ),
    Wire(
        "target-uppercase-path",
        lambda n: json_post(f"/CONTAINERS/create?name={n}"),
        (404,),
        ((403, PID_HOST),),
        created=False,
    ),
    Wire(
        "target-uppercase-version",
        lambda n: json_post(f"/V1.41/containers/create?name={n}"),
        (404,),
        ((403, PID_HOST),),
        created=False,
    ),
    # Go's router does not match a lower-case method (404); the proxy polices it as POST.
    Wire(
        "method-lowercase",
        lambda n: json_post(CREATE.format(name=n)).replace(b"POST ", b"post ", 1),
        (404,),
        ((403, PID_HOST),),
        created=False,
    ),
    # content types: dockerd insists on JSON (400) for all but the JSON spellings
    Wire(
        "content-type-json-charset",
        lambda n: http(
            "POST",
            CREATE.format(name=n),
            ["Content-Type: application/json; charset=utf-8", f"Content-Length: {len(EVIL)}"],
            EVIL,
        ),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "content-type-json-uppercase",
        lambda n: http(
            "POST",
            CREATE.format(name=n),
            ["Content-Type: APPLICATION/JSON", f"Content-Length: {len(EVIL)}"],
            EVIL,
        ),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "content-type-text-plain",
        lambda n: http(
            "POST",
            CREATE.format(name=n),
            ["Content-Type: text/plain", f"Content-Length: {len(EVIL)}"],
            EVIL,
        ),
        (400,),
        ((403, PID_HOST),),
        created=False,
    ),
    Wire(
        "content-type-none",
        lambda n: http("POST", CREATE.format(name=n), [f"Content-Length: {len(EVIL)}"], EVIL),
        (400,),
        ((403, PID_HOST),),
        created=False,
    ),
    Wire(
        "content-type-form-urlencoded",
        lambda n: http(
            "POST",
            CREATE.format(name=n),
            ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(EVIL)}"],
            EVIL,
        ),
        (400,),
        ((400, None),),
        created=False,
    ),
    # framing
    Wire(
        "framing-http-1.0",
        lambda n: json_post(CREATE.format(name=n)).replace(b"HTTP/1.1", b"HTTP/1.0", 1),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "framing-bare-lf",
        lambda n: http(
            "POST",
            CREATE.format(name=n),
            ["Content-Type: application/json", f"Content-Length: {len(EVIL)}"],
            EVIL,
            eol="\n",
        ),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "framing-expect-100-continue",
        lambda n: json_post(CREATE.format(name=n), EVIL, "Expect: 100-continue"),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "framing-chunked",
        lambda n: chunked_post(n, ["Transfer-Encoding: chunked"]),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "framing-chunked-one-byte-chunks",
        lambda n: chunked_post(n, ["Transfer-Encoding: chunked"], size=1),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "framing-chunked-uppercase",
        lambda n: chunked_post(n, ["Transfer-Encoding: CHUNKED"]),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "framing-chunk-extension",
        lambda n: http(
            "POST",
            CREATE.format(name=n),
            ["Content-Type: application/json", "Transfer-Encoding: chunked"],
            chunked(EVIL, size=len(EVIL), ext=";x=y"),
        ),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "framing-content-length-then-chunked",
        lambda n: chunked_post(n, ["Content-Length: 4", "Transfer-Encoding: chunked"]),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "framing-chunked-then-content-length",
        lambda n: chunked_post(n, ["Transfer-Encoding: chunked", "Content-Length: 4"]),
        (201,),
        ((403, PID_HOST),),
    ),
    # Go refuses transfer codings it does not know (501): never forwarded by the proxy either
    Wire(
        "framing-gzip-chunked",
        lambda n: chunked_post(n, ["Transfer-Encoding: gzip, chunked"]),
        (501,),
        ((501, None),),
        created=False,
    ),
    Wire(
        "framing-transfer-encoding-twice",
        lambda n: chunked_post(n, ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"]),
        (501,),
        ((501, None),),
        created=False,
    ),
    Wire(
        "framing-transfer-encoding-space-before-colon",
        lambda n: chunked_post(n, ["Transfer-Encoding : chunked"]),
        (400,),
        ((400, None),),
        created=False,
    ),
    Wire(
        "framing-conflicting-content-lengths",
        lambda n: http(
            "POST",
            CREATE.format(name=n),
            ["Content-Type: application/json", f"Content-Length: {len(EVIL)}", "Content-Length: 2"],
            EVIL,
        ),
        (400,),
        ((400, None),),
        created=False,
    ),
    # CVE-2024-41110: `Content-Length: 0` and a body behind it. The hidden bytes are a whole
    # request: dockerd answers the empty create (500 EOF) and then runs the hidden one.
    Wire(
        "content-length-zero-hiding-a-request",
        lambda n: http(
            "POST",
            "/v1.41/containers/create",
            ["Content-Type: application/json", "Content-Length: 0"],
            json_post(CREATE.format(name=n)),
        ),
        (500, 201),
        ((400, None), (403, PID_HOST)),
    ),
    # The hidden bytes are the JSON body itself: dockerd reads it as a (bad) next request.
    Wire(
        "content-length-zero-hiding-a-body",
        lambda n: http(
            "POST",
            CREATE.format(name=n),
            ["Content-Type: application/json", "Content-Length: 0"],
            EVIL + b"\r\n\r\n",
        ),
        (500, 400),
        ((400, None), (400, None)),
        created=False,
    ),
    Wire(
        "pipelined-get-then-create",
        lambda n: request("GET", "/v1.41/_ping") + json_post(CREATE.format(name=n)),
        (200, 201),
        ((200, None), (403, PID_HOST)),
    ),
    Wire(
        "pipelined-allowed-create-then-refused-create",
        lambda n: (
            request("POST", CREATE.format(name=n + "-ok"), {"Image": IMAGE})
            + json_post(CREATE.format(name=n))
        ),
        (201, 201),
        ((201, None), (403, PID_HOST)),
    ),
    Wire(
        "pipelined-refused-create-twice",
        lambda n: (
            json_post(CREATE.format(name=n + "-ok"), json.dumps({"Image": IMAGE}).encode())
            + json_post(CREATE.format(name=n))
            + json_post(CREATE.format(name=n + "-2"))
        ),
        (201, 201, 201),
        ((201, None), (403, PID_HOST), (403, PID_HOST)),
    ),
    # bodies past 1 MiB (CVE-2026-34040) and past the proxy's limit (2 MiB for a create)
    Wire(
        "body-padded-with-whitespace",
        lambda n: json_post(CREATE.format(name=n), b" " * (3 << 19) + EVIL + b"\n" * 4096),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire("body-padded-with-a-field", padded_field, (201,), ((403, PID_HOST),)),
    Wire(
        "body-over-the-limit",
        lambda n: json_post(CREATE.format(name=n), b" " * (17 << 20) + EVIL),
        (201,),
        ((413, None),),
    ),
    Wire(
        "body-over-the-limit-chunked",
        lambda n: chunked_post(
            n, ["Transfer-Encoding: chunked"], b" " * (17 << 20) + EVIL, size=1 << 20
        ),
        (201,),
        ((413, None),),
    ),
]


@pytest.mark.parametrize("case", WIRE_CASES, ids=lambda c: c.id)
def test_wire_refused(env: Env, case: Wire) -> None:
    name = unique()
    names = [name, name + "-ok", name + "-2"]
    data = case.data(name)
    responses = exchange(env.raw, data, len(case.control), timeout=SHORT, partial=True)
    try:
        assert tuple(r.status for r in responses) == case.control, responses
        for response in responses:
            not_from_eci(response)
        info = inspect(env, "containers", name)
        if case.created:
            assert info is not None
            assert info["HostConfig"]["PidMode"] == "host"
        else:
            assert info is None
    finally:
        for n in names:
            remove_container(env, n)
    before = snapshot(env)
    responses = exchange(env.user, data, len(case.refusal), timeout=SHORT, partial=True)
    try:
        assert len(responses) == len(case.refusal), responses
        for response, (status, message) in zip(responses, case.refusal, strict=True):
            if status < 400:
                assert response.status == status, response
            else:
                assert_refused(response, status, message)
        assert inspect(env, "containers", name) is None
        assert inspect(env, "containers", name + "-2") is None
    finally:
        remove_container(env, name + "-ok")
    try:
        assert snapshot(env) == before
    finally:
        for n in names:
            remove_container(env, n)


KEEP_ALIVE_FIRST: dict[str, tuple[Callable[[str], bytes], str, int, int]] = {
    # (first request, its method, dockerd's status, the proxy's status)
    "after-a-get": (lambda n: request("GET", "/v1.41/_ping"), "GET", 200, 200),
    "after-a-refusal": (lambda n: json_post(CREATE.format(name=n)), "POST", 201, 403),
    "after-an-unreadable-body": (
        lambda n: json_post(CREATE.format(name=n), b"{"),
        "POST",
        500,
        400,
    ),
}


@pytest.mark.parametrize(
    "first", list(KEEP_ALIVE_FIRST.values()), ids=[f"keep-alive-{k}" for k in KEEP_ALIVE_FIRST]
)
def test_keep_alive_second_request_refused(
    env: Env, first: tuple[Callable[[str], bytes], str, int, int]
) -> None:
    """A second request on a kept-alive connection, sent after the first was answered."""
    build, method, daemon_status, proxy_status = first
    name = unique()
    data, second = build(name + "-first"), json_post(CREATE.format(name=name))
    try:
        with Connection(env.raw) as conn:  # control: dockerd runs the second request
            conn.send(data)
            r = conn.read(method)
            assert r is not None
            assert r.status == daemon_status, r
            conn.send(second)
            r = conn.read()
            assert r is not None
            assert r.status == 201, r
        info = inspect(env, "containers", name)
        assert info is not None
        assert info["HostConfig"]["PidMode"] == "host"
    finally:
        remove_container(env, name)
        remove_container(env, name + "-first")
    before = snapshot(env)
    with Connection(env.user) as conn:
        conn.send(data)
        r = conn.read(method)
        assert r is not None
        assert r.status == proxy_status, r
        conn.send(second)
        r = conn.read()
        assert r is not None
        assert_refused(r, 403, PID_HOST)
    assert inspect(env, "containers", name) is None
    assert snapshot(env) == before
