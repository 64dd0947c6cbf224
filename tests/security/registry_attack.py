"""A host user's raw-HTTP writes to a registry, run as that user by test_host_registry.py with
the system python (stdlib only, plus eci's own registry client from ``SRC``):

    registry_attack.py SRC plant  WHERE REPOSITORY TAG  -> {"status": 201, "image": "sha256:…"}
    registry_attack.py SRC delete WHERE REPOSITORY TAG  -> {"status": 202, "digest": "sha256:…"}

WHERE is ``host:port`` or a unix socket's path. ``status`` is the registry's answer to the
last request (None when it could not be reached: ``error`` names why). The planted image has
one file, /planted, and runs it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import platform
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

PLANTED = b"#!/bin/sh\necho planted by a host user\n"
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}


def _registry(where: str) -> Any:
    from eci.images.registry import Registry

    return Registry.unix(Path(where)) if where.startswith("/") else Registry.tcp(where)


def plant(where: str, repository: str, tag: str) -> dict[str, Any]:
    from eci.images.manifest import CONFIG_TYPE, Blob, image_config
    from eci.images.registry import gzip_layer, push_image

    with tempfile.TemporaryDirectory(prefix="eci-plant-") as tmp:
        tar_path = Path(tmp) / "layer.tar"
        with tarfile.open(tar_path, "w") as tar:
            info = tarfile.TarInfo("planted")
            info.size, info.mode = len(PLANTED), 0o755
            tar.addfile(info, io.BytesIO(PLANTED))
        diff_id = "sha256:" + hashlib.sha256(tar_path.read_bytes()).hexdigest()
        layer_path = Path(tmp) / "layer.tar.gz"
        layer = gzip_layer(tar_path, layer_path)
        config_data = image_config(
            [diff_id],
            architecture=ARCHITECTURES.get(platform.machine(), platform.machine()),
            cmd=["/planted"],
            labels={},
            created=dt.datetime.now(dt.UTC),
        )
        config = Blob.of(CONFIG_TYPE, config_data)
        push_image(_registry(where), repository, tag, config, config_data, [(layer, layer_path)])
        return {"status": 201, "image": config.digest}


def delete(where: str, repository: str, tag: str) -> dict[str, Any]:
    registry = _registry(where)
    digest = registry.manifest_digest(repository, tag)
    answer = registry.request("DELETE", f"/v2/{repository}/manifests/{digest}")
    return {"status": answer.status, "digest": digest}


def main() -> None:
    src, command, where, repository, tag = sys.argv[1:]
    sys.path.insert(0, src)
    from eci.errors import RegistryRefused

    try:
        result = {"plant": plant, "delete": delete}[command](where, repository, tag)
    except RegistryRefused as exc:
        result = {"status": exc.status, "error": str(exc)}
    except OSError as exc:
        result = {"status": None, "error": type(exc).__name__}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
