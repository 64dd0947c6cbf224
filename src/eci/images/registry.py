"""A small client of a distribution registry's HTTP API (v2), over TCP or a unix socket: the
blob uploads and the manifest PUT that put an image into it, and the manifest lookup.

Stdlib only. `eci images` writes through the engine's root-only writer socket with it; the
security tests run the same client as a local user against the loopback mirror, which must
refuse every write.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import shutil
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from eci.errors import RegistryRefused
from eci.images.manifest import LAYER_TYPE, MANIFEST_TYPE, Blob, image_manifest

TIMEOUT = 60.0
#: gzip level of layers: 1 packs a 100 MB layer in about a second, 6 takes several
GZIP_LEVEL = 1


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 to a server listening on a unix socket."""

    def __init__(self, path: Path, timeout: float = TIMEOUT) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Registry:
    """A registry reached through ``connect`` (a new connection per request); ``where`` names
    it in messages."""

    where: str
    connect: Callable[[], http.client.HTTPConnection]

    @classmethod
    def tcp(cls, address: str) -> Registry:
        host, _, port = address.rpartition(":")
        return cls(address, lambda: http.client.HTTPConnection(host, int(port), timeout=TIMEOUT))

    @classmethod
    def unix(cls, path: Path) -> Registry:
        return cls(f"unix:{path}", lambda: UnixHTTPConnection(path))

    def request(
        self,
        method: str,
        target: str,
        body: bytes | BinaryIO | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        connection = self.connect()
        try:
            connection.request(method, target, body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            return Answer(
                response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            )
        finally:
            connection.close()

    def expect(
        self,
        status: int,
        method: str,
        target: str,
        body: bytes | BinaryIO | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """``request``, raising RegistryRefused unless the answer has ``status``."""
        answer = self.request(method, target, body, headers)
        if answer.status != status:
            text = answer.body[:300].decode(errors="replace").strip()
            raise RegistryRefused(self.where, f"{method} {target}", answer.status, text)
        return answer

    def has_blob(self, repository: str, blob: Blob) -> bool:
        return self.request("HEAD", f"/v2/{repository}/blobs/{blob.digest}").status == 200

    def upload_blob(self, repository: str, blob: Blob, data: bytes | BinaryIO) -> None:
        """A monolithic upload: POST opens it, one PUT with the digest sends every byte."""
        started = self.expect(202, "POST", f"/v2/{repository}/blobs/uploads/")
        location = urlsplit(started.headers.get("location", ""))
        query = "&".join(q for q in (location.query, f"digest={blob.digest}") if q)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}
        self.expect(201, "PUT", f"{location.path}?{query}", data, headers)

    def put_manifest(self, repository: str, tag: str, manifest: bytes) -> str:
        """Tag ``manifest``; returns the digest the registry gives it."""
        answer = self.expect(
            201,
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            body=manifest,
            headers={"Content-Type": MANIFEST_TYPE},
        )
        return answer.headers.get("docker-content-digest", "")

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest ``repository:reference`` has now, or None when the registry has none."""
        answer = self.request(
            "HEAD", f"/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFEST_TYPE}
        )
        return answer.headers.get("docker-content-digest") if answer.status == 200 else None


def gzip_layer(tar_path: Path, out_path: Path) -> Blob:
    """``tar_path`` gzipped into ``out_path`` (no name, no time: the same tar gives the same
    blob), described as a layer."""
    with (
        open(tar_path, "rb") as src,
        open(out_path, "wb") as raw,
        gzip.GzipFile("", "wb", GZIP_LEVEL, raw, mtime=0) as packed,
    ):
        shutil.copyfileobj(src, packed, 1 << 20)
    with open(out_path, "rb") as written:
        digest = hashlib.file_digest(written, "sha256").hexdigest()
    return Blob(LAYER_TYPE, f"sha256:{digest}", out_path.stat().st_size)


def push_image(
    registry: Registry, repository: str, tag: str, config: Blob, config_data: bytes,
    layers: Sequence[tuple[Blob, Path]],
) -> str:  # fmt: skip
    """Blobs the registry lacks, then the manifest under ``tag``; returns its digest."""
    for blob, path in layers:
        if not registry.has_blob(repository, blob):
            with open(path, "rb") as data:
                registry.upload_blob(repository, blob, data)
    if not registry.has_blob(repository, config):
        registry.upload_blob(repository, config, config_data)
    return registry.put_manifest(repository, tag, image_manifest(config, [b for b, _ in layers]))
