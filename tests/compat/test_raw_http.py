"""Byte-level transparency: pipelined keep-alive requests and hijacked streams written by
hand on one connection get the same responses through the proxy as directly."""

from __future__ import annotations

import json
import re
import socket
import struct

import pytest
from tests.compat.twopaths import (
    Made,
    assert_same,
    http_parts,
    on_both,
    raw_exchange,
    socket_of,
)
from tests.support import EngineHandle

pytestmark = pytest.mark.engine

_DATE = re.compile(rb"\r\nDate: [^\r]*", re.IGNORECASE)


def get(target: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: docker\r\n\r\n".encode()


def post(target: str, body: bytes = b"", extra: str = "") -> bytes:
    head = f"POST {target} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n{extra}"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def _without_date(response: bytes) -> bytes:
    return _DATE.sub(b"", response, count=1)


def test_pipelined_keep_alive_requests_answered_in_order(engine: EngineHandle) -> None:
    """Two pings, an event stream that ends at once (chunked), and a version, written in one
    sendall: four whole responses, in order, byte for byte as dockerd sends them."""
    data = get("/_ping") + get("/_ping") + get("/v1.41/events?since=1&until=2") + get("/version")

    def workload(path: str) -> list[bytes]:
        return [_without_date(r) for r in raw_exchange(socket_of(engine, path), data, 4)]

    responses = assert_same(on_both(workload))
    assert len(responses) == 4
    ping, ping2, events, version = (http_parts(r) for r in responses)
    assert ping == ping2
    assert (ping[0], ping[2]) == ("HTTP/1.1 200 OK", b"OK")
    assert events[1]["transfer-encoding"] == "chunked"
    assert json.loads(version[2])["ApiVersion"] == "1.41"


def test_pipelined_requests_with_bodies(engine: EngineHandle, made: Made) -> None:
    """create (with a JSON body), inspect, delete and ping, pipelined on one connection."""

    def workload(path: str) -> tuple[list[str], dict[str, object], str]:
        name = made.container()
        body = json.dumps({"Image": "busybox", "Cmd": ["true"], "HostConfig": {}}).encode()
        data = (
            post(f"/v1.41/containers/create?name={name}", body)
            + get(f"/v1.41/containers/{name}/json")
            + f"DELETE /v1.41/containers/{name}?force=1 HTTP/1.1\r\nHost: docker\r\n\r\n".encode()
            + get("/_ping")
        )
        found = [http_parts(r) for r in raw_exchange(socket_of(engine, path), data, 4)]
        statuses = [status for status, _, _ in found]
        if len(found) < 2:
            return statuses, {}, ""
        created, inspected = json.loads(found[0][2]), json.loads(found[1][2])
        created["Id"] = len(created["Id"])
        return statuses, created, inspected["Name"].replace(name, "<name>")

    statuses, created, shown_name = assert_same(on_both(workload))
    assert statuses == [
        "HTTP/1.1 201 Created",
        "HTTP/1.1 200 OK",
        "HTTP/1.1 204 No Content",
        "HTTP/1.1 200 OK",
    ]
    assert created["Id"] == 64
    assert shown_name == "/<name>"


def test_create_without_host_config_is_created_with_the_runtime_forced(
    engine: EngineHandle, made: Made
) -> None:
    """A create body without HostConfig (the API allows it; raw API clients send it) is
    created on both paths. The proxy adds the HostConfig that forces the runtime (so dockerd
    also runs its HostConfig checks, and may add their warnings): a deliberate difference,
    documented in docs/proxy.md."""

    def workload(path: str) -> tuple[str, str | None, str]:
        name = made.container()
        body = json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode()
        data = post(f"/v1.41/containers/create?name={name}", body) + get(
            f"/v1.41/containers/{name}/json"
        )
        found = [http_parts(r) for r in raw_exchange(socket_of(engine, path), data, 2)]
        inspected = json.loads(found[1][2])
        return found[0][0], inspected["HostConfig"].get("Runtime"), found[1][0]

    results = on_both(workload)
    assert results["proxy"][0] == results["direct"][0] == "HTTP/1.1 201 Created"
    assert results["proxy"][1] == "sysbox-runc"
    assert results["direct"][1] in (None, "", "sysbox-runc")  # set by dockerd at start


def _demux(stream: bytes) -> tuple[bytes, bytes]:
    """stdout and stderr of a multiplexed (non-tty) attach/exec stream."""
    out = {1: b"", 2: b""}
    while stream:
        kind, size = struct.unpack(">BxxxL", stream[:8])
        out[kind] += stream[8 : 8 + size]
        stream = stream[8 + size :]
    return out[1], out[2]


@pytest.mark.parametrize("upgrade", [True, False], ids=["upgrade-tcp", "no-upgrade"])
def test_exec_start_hijack_half_close(engine: EngineHandle, sleeper: str, upgrade: bool) -> None:
    """POST /exec/{id}/start with and without `Upgrade: tcp`: the raw stream carries stdin,
    half-closing it ends the command's input, and all of its output still arrives."""

    def workload(path: str) -> tuple[str, str, bytes, bytes]:
        sock_path = socket_of(engine, path)
        config = {
            "AttachStdin": True,
            "AttachStdout": True,
            "AttachStderr": True,
            "Cmd": ["sh", "-c", "cat; echo done >&2"],
        }
        created = raw_exchange(
            sock_path, post(f"/v1.41/containers/{sleeper}/exec", json.dumps(config).encode()), 1
        )
        exec_id = json.loads(http_parts(created[0])[2])["Id"]
        extra = "Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else ""
        start = post(f"/v1.41/exec/{exec_id}/start", b'{"Detach":false,"Tty":false}', extra)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(str(sock_path))
            sock.sendall(start)
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                assert chunk, f"no response head: {received!r}"
                received += chunk
            head, _, stream = received.partition(b"\r\n\r\n")
            sock.sendall(b"line one\nline two\n")
            sock.shutdown(socket.SHUT_WR)  # half-close: `cat` sees EOF
            while chunk := sock.recv(65536):
                stream += chunk
        status, headers, _ = http_parts(head + b"\r\n\r\n")
        out, err = _demux(stream)
        return status, headers.get("content-type", ""), out, err

    status, content_type, out, err = assert_same(on_both(workload))
    assert status.startswith("HTTP/1.1 101" if upgrade else "HTTP/1.1 200")
    assert content_type.startswith("application/vnd.docker.")
    assert (out, err) == (b"line one\nline two\n", b"done\n")
