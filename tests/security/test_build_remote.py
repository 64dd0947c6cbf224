"""Classic-builder `remote=` contexts may not point at the host itself (item 7d of issue 15).

dockerd fetches a `POST /build?remote=URL` context itself, from the host's network namespace,
as root: a docker-group user could make it read a service that listens on the host's
loopback (the loopback registry, a metadata endpoint on a link-local address, anything
bound to 127.0.0.1 that trusts local callers) and turn what it answered into an image. The
control shows dockerd's own socket fetching from a loopback server; through the proxy the
same request by ``TEST_USER`` is refused, for every spelling of the host's own addresses,
and the server is never asked.
"""

from __future__ import annotations

import http.server
import io
import ipaddress
import json
import socket
import subprocess
import tarfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest
from tests.security.rawhttp import api
from tests.support import TEST_USER, EngineHandle, api_as_user

from eci.errors import ECI_PREFIX

pytestmark = pytest.mark.engine

DOCKERFILE = b"FROM busybox\nLABEL eci.test=fetched-from-loopback\n"


def _context() -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(DOCKERFILE)
        tar.addfile(info, io.BytesIO(DOCKERFILE))
    return data.getvalue()


@dataclass
class LoopbackServer:
    """A build context served on the host's loopback; counts the requests it gets."""

    port: int = 0
    requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    found = LoopbackServer()
    context = _context()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found.requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-tar")
            self.send_header("Content-Length", str(len(context)))
            self.end_headers()
            self.wfile.write(context)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        httpd.shutdown()
        httpd.server_close()


def _host_address() -> str:
    """A global address of one of the host's own interfaces."""
    out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True)
    for link in json.loads(out.stdout):
        for info in link.get("addr_info", []):
            address = ipaddress.ip_address(info["local"])
            if address.version == 4 and not address.is_loopback and not address.is_link_local:
                return str(address)
    raise AssertionError("the host has no global IPv4 address")


def _build_as_user(engine: EngineHandle, remote: str, tag: str) -> dict[str, object]:
    target = f"/v1.41/build?remote={quote(remote, safe='')}&t={tag}"
    out = api_as_user(engine, TEST_USER, "POST", target, content_type="application/x-tar")
    first = out.splitlines()[0] if out.strip() else "{}"
    return dict(json.loads(first))


def _remove_image(engine: EngineHandle, tag: str) -> None:
    engine.docker("rmi", tag, direct=True, check=False)


def test_control_dockerd_fetches_a_loopback_context(
    engine: EngineHandle, server: LoopbackServer
) -> None:
    tag = f"eci-remote-control-{uuid.uuid4().hex[:8]}"
    remote = f"http://127.0.0.1:{server.port}/context.tar"
    try:
        response = api(
            engine.layout.raw_socket,
            "POST",
            f"/v1.41/build?remote={quote(remote, safe='')}&t={tag}",
            b"",
            content_type="application/x-tar",
        )
        assert response.status == 200, response
        label = engine.docker(
            "image", "inspect", "--format", "{{index .Config.Labels \"eci.test\"}}", tag,
            direct=True,
        ).stdout.strip()  # fmt: skip
        assert label == "fetched-from-loopback"
    finally:
        _remove_image(engine, tag)


def _remotes(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/context.tar",
        f"http://localhost:{port}/context.tar",
        f"http://127.1:{port}/context.tar",
        f"http://2130706433:{port}/context.tar",
        f"http://0.0.0.0:{port}/context.tar",
        f"http://[::1]:{port}/context.tar",
        f"https://[::ffff:127.0.0.1]:{port}/context.tar",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/context.tar",
        f"git://127.0.0.1:{port}/repo.git",
        f"http://127.0.0.1:{port}/repo.git#main",
        "git@localhost:repo.git",
        f"http://HOST:{port}/context.tar",
    ]


@pytest.mark.parametrize("index", range(len(_remotes(0))), ids=lambda i: _remotes(0)[i])
def test_remote_on_the_host_is_refused(
    engine: EngineHandle, server: LoopbackServer, index: int
) -> None:
    remote = _remotes(server.port)[index].replace("HOST", _host_address())
    tag = f"eci-remote-{uuid.uuid4().hex[:8]}"
    before = len(server.requests)
    try:
        answer = _build_as_user(engine, remote, tag)
        message = str(answer.get("message", ""))
        assert message.startswith(ECI_PREFIX), answer
        assert "build context" in message, answer
        assert len(server.requests) == before  # dockerd was never sent to fetch it
    finally:
        _remove_image(engine, tag)


def test_a_hostname_is_resolved_as_dockerd_would(engine: EngineHandle) -> None:
    """`localhost` is in /etc/hosts, not DNS: the check reads the host's resolver config."""
    assert socket.getaddrinfo("localhost", None)  # the premise of the localhost case
    answer = _build_as_user(engine, "http://localhost/context.tar", "eci-remote-localhost")
    assert "loopback" in str(answer.get("message", "")), answer
