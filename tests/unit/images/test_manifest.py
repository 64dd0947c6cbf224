"""Image config and manifest documents: the bytes a registry stores, reproducible."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from eci.images.manifest import (
    CONFIG_TYPE,
    LAYER_TYPE,
    MANIFEST_TYPE,
    Blob,
    image_config,
    image_manifest,
    sha256_digest,
)

DIFF_ID = "sha256:" + "a" * 64
CREATED = dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)


def _config(**changes: object) -> bytes:
    arguments: dict[str, object] = {
        "architecture": "amd64",
        "cmd": ("sh",),
        "labels": {"org.eci.rootfs-sha256": "a" * 64},
        "created": CREATED,
    }
    arguments.update(changes)
    return image_config([DIFF_ID], **arguments)  # type: ignore[arg-type]


def test_config_names_the_layers_command_and_labels() -> None:
    config = json.loads(_config())
    assert config["rootfs"] == {"type": "layers", "diff_ids": [DIFF_ID]}
    assert config["config"] == {"Cmd": ["sh"], "Labels": {"org.eci.rootfs-sha256": "a" * 64}}
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert len(config["history"]) == 1  # one entry per layer: dockerd checks they agree


def test_same_inputs_give_the_same_image_id() -> None:
    assert sha256_digest(_config()) == sha256_digest(_config())
    assert sha256_digest(_config()) != sha256_digest(_config(cmd=("true",)))


def test_manifest_refers_to_its_blobs_by_digest() -> None:
    config = Blob.of(CONFIG_TYPE, _config())
    layer = Blob(LAYER_TYPE, "sha256:" + "b" * 64, 1234)
    manifest = json.loads(image_manifest(config, [layer]))
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == MANIFEST_TYPE
    assert manifest["config"] == {
        "mediaType": CONFIG_TYPE,
        "size": len(_config()),
        "digest": sha256_digest(_config()),
    }
    assert manifest["layers"] == [{"mediaType": LAYER_TYPE, "size": 1234, "digest": layer.digest}]


BAD_BLOBS = [
    ("no-algorithm", "a" * 64, 1),
    ("short", "sha256:" + "a" * 63, 1),
    ("upper-case", "sha256:" + "A" * 64, 1),
    ("not-hex", "sha256:" + "g" * 64, 1),
    ("negative-size", "sha256:" + "a" * 64, -1),
]


@pytest.mark.parametrize(
    ("digest", "size"), [b[1:] for b in BAD_BLOBS], ids=[b[0] for b in BAD_BLOBS]
)
def test_a_blob_with_a_bad_digest_or_size_is_refused(digest: str, size: int) -> None:
    with pytest.raises(ValueError, match="blob"):
        Blob(LAYER_TYPE, digest, size)
