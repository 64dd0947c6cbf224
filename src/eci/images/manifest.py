"""An image as a registry stores it: one config blob, gzipped layer blobs, a schema-2 manifest
naming both by digest (pure: bytes in, bytes out).

eci writes its test images into the engine's registry itself rather than through `docker push`:
the registry's write side is a root-only unix socket that dockerd cannot reach (see
docs/engine.md, "The registry"). A manifest with the same bytes has the same digest on every
run, so a rebuilt image keeps its registry digest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """What a manifest says of a blob: its media type, digest and size."""

    media_type: str
    digest: str
    size: int

    def __post_init__(self) -> None:
        hex_part = self.digest.removeprefix("sha256:")
        if self.digest == hex_part or len(hex_part) != 64 or hex_part.strip("0123456789abcdef"):
            raise ValueError(f"blob digest {self.digest!r} is not sha256:<64 hex digits>")
        if self.size < 0:
            raise ValueError(f"blob size {self.size!r} is negative")

    @classmethod
    def of(cls, media_type: str, data: bytes) -> Blob:
        return cls(media_type, sha256_digest(data), len(data))

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "size": self.size, "digest": self.digest}


def image_config(
    diff_ids: Sequence[str],
    *,
    architecture: str,
    cmd: Sequence[str],
    labels: Mapping[str, str],
    created: dt.datetime,
) -> bytes:
    """The image config (its digest is the image id): ``diff_ids`` are the sha256 digests of
    the uncompressed layer tars, bottom first."""
    stamp = created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "architecture": architecture,
        "os": "linux",
        "created": stamp,
        "config": {"Cmd": list(cmd), "Labels": dict(labels)},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created": stamp, "created_by": "eci images"} for _ in diff_ids],
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def image_manifest(config: Blob, layers: Sequence[Blob]) -> bytes:
    """The schema-2 manifest a registry serves for a tag."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    return json.dumps(manifest, indent=3).encode()
