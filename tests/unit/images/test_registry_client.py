"""The registry client against a small fake registry on a unix socket: the upload protocol
(POST, then one PUT to the Location given, with the digest), skipped blobs, refusals."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from eci.errors import RegistryRefused
from eci.images.manifest import CONFIG_TYPE, LAYER_TYPE, Blob
from eci.images.registry import Registry, gzip_layer, push_image


class FakeRegistry(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, read_only: bool) -> None:
        self.read_only = read_only
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, bytes] = {}
        self.requests: list[str] = []
        super().__init__(str(path), Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    server: FakeRegistry
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {"Content-Length": "0", **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_HEAD(self) -> None:
        self.server.requests.append(f"HEAD {self.path}")
        digest = self.path.rpartition("/")[2]
        self._answer(200 if digest in self.server.blobs else 404)

    def do_POST(self) -> None:
        self.server.requests.append(f"POST {self.path}")
        if self.server.read_only:
            return self._answer(405)
        location = f"http://localhost{self.path}u1?_state=s"
        self._answer(202, {"Location": location})

    def do_PUT(self) -> None:
        target = urlsplit(self.path)
        self.server.requests.append(f"PUT {target.path}")
        body = self._body()
        if self.server.read_only:
            return self._answer(405)
        if "/manifests/" in target.path:
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            self.server.manifests[target.path.rpartition("/")[2]] = body
            return self._answer(201, {"Docker-Content-Digest": digest})
        query = parse_qs(target.query)
        digest = query["digest"][0]
        assert query["_state"] == ["s"]  # the upload's own query is kept
        if digest != "sha256:" + hashlib.sha256(body).hexdigest():
            return self._answer(400)
        self.server.blobs[digest] = body
        self._answer(201)


@contextlib.contextmanager
def serving(tmp_path: Path, read_only: bool) -> Iterator[tuple[FakeRegistry, Registry]]:
    server = FakeRegistry(tmp_path / "registry.sock", read_only)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, Registry.unix(tmp_path / "registry.sock")
    finally:
        server.shutdown()
        server.server_close()


def _image(tmp_path: Path) -> tuple[Blob, bytes, list[tuple[Blob, Path]]]:
    tar = tmp_path / "layer.tar"
    tar.write_bytes(b"layer bytes" * 100)
    layer_path = tmp_path / "layer.tar.gz"
    config_data = b'{"config": {}}'
    return (
        Blob.of(CONFIG_TYPE, config_data),
        config_data,
        [(gzip_layer(tar, layer_path), layer_path)],
    )


def test_push_uploads_what_is_missing_then_tags(tmp_path: Path) -> None:
    config, config_data, layers = _image(tmp_path)
    with serving(tmp_path, read_only=False) as (fake, registry):
        digest = push_image(registry, "library/x", "latest", config, config_data, layers)
        assert fake.blobs == {
            layers[0][0].digest: layers[0][1].read_bytes(),
            config.digest: config_data,
        }
        assert digest == "sha256:" + hashlib.sha256(fake.manifests["latest"]).hexdigest()
        fake.requests.clear()
        push_image(registry, "library/x", "latest", config, config_data, layers)
    assert not any(r.startswith("POST") for r in fake.requests)  # blobs it has are skipped


def test_a_refused_write_raises_with_the_status(tmp_path: Path) -> None:
    config, config_data, layers = _image(tmp_path)
    refusal = "refused POST /v2/library/x/blobs/uploads/: 405"
    with (
        serving(tmp_path, read_only=True) as (fake, registry),
        pytest.raises(RegistryRefused, match=refusal),
    ):
        push_image(registry, "library/x", "latest", config, config_data, layers)
    assert fake.blobs == {}
    assert fake.manifests == {}


def test_gzip_layer_is_reproducible(tmp_path: Path) -> None:
    tar = tmp_path / "layer.tar"
    tar.write_bytes(b"same bytes" * 1000)
    first = gzip_layer(tar, tmp_path / "one.gz")
    assert gzip_layer(tar, tmp_path / "two.gz") == first
    assert first.media_type == LAYER_TYPE


def test_an_absent_socket_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Registry.unix(tmp_path / "none.sock").manifest_digest("library/x", "latest")
