"""Rootfs directory -> image with real registry digests.

The rootfs tar becomes one gzipped layer and an image config; both are written into the
engine's registry under the docker.io path (`library/busybox`) through its root-only writer
socket, then the image is pulled by its plain name through the engine's registry mirror, so
`RepoDigests` reads `busybox@sha256:…` exactly as it does for images users pull.
An image whose rootfs digest label already matches is left alone (re-running is cheap).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from eci.errors import ImageBuildError
from eci.images import rootfs
from eci.images.manifest import CONFIG_TYPE, Blob, image_config
from eci.images.registry import Registry, gzip_layer, push_image

CONTENT_LABEL = "org.eci.rootfs-sha256"


@dataclass(frozen=True)
class ImageRecipe:
    """A test image: its name, host files to put in it (image path -> host path), its CMD."""

    name: str
    files: Mapping[str, Path] = field(default_factory=dict)
    cmd: tuple[str, ...] = ("sh",)
    with_busybox: bool = True

    @property
    def repository(self) -> str:
        return self.name.rpartition(":")[0] if ":" in self.name else self.name

    @property
    def tag(self) -> str:
        return self.name.rpartition(":")[2] if ":" in self.name else "latest"

    @property
    def registry_path(self) -> str:
        """Path under the registry root, as docker.io names it (`busybox` -> `library/busybox`)."""
        return self.repository if "/" in self.repository else f"library/{self.repository}"


def _check_stream(events: Iterable[dict[str, Any]], what: str) -> None:
    for event in events:
        if "error" in event:
            raise ImageBuildError(f"{what}: {event['error']}")


def _current_label(client: docker.DockerClient, name: str) -> str | None:
    try:
        attrs = client.api.inspect_image(name)
    except docker.errors.ImageNotFound:
        return None
    if not attrs.get("RepoDigests"):
        return None
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    return labels.get(CONTENT_LABEL)


def build(client: docker.DockerClient, recipe: ImageRecipe, writer: Registry) -> str:
    """Assemble the recipe's rootfs, then `build_from_rootfs`."""
    with tempfile.TemporaryDirectory(prefix="eci-image-") as tmp:
        root = Path(tmp) / "rootfs"
        root.mkdir()
        rootfs.assemble(root, recipe.files, with_busybox=recipe.with_busybox)
        return build_from_rootfs(client, root, recipe, writer)


def build_from_rootfs(
    client: docker.DockerClient, root: Path, recipe: ImageRecipe, writer: Registry
) -> str:
    """Rootfs dir -> image written into the registry (``writer``) and pulled from it by dockerd;
    'built' or 'up to date'."""
    with tempfile.TemporaryDirectory(prefix="eci-image-") as tmp:
        tar_path = Path(tmp) / "rootfs.tar"
        content = rootfs.pack(root, tar_path)
        if _current_label(client, recipe.name) == content:
            return "up to date"
        layer_path = Path(tmp) / "rootfs.tar.gz"
        layer = gzip_layer(tar_path, layer_path)
        try:
            config_data = image_config(
                [f"sha256:{content}"],
                architecture=client.version()["Arch"],
                cmd=recipe.cmd,
                labels={CONTENT_LABEL: content},
                created=dt.datetime.fromtimestamp(rootfs.FIXED_MTIME, dt.UTC),
            )
            config = Blob.of(CONFIG_TYPE, config_data)
            push_image(
                writer, recipe.registry_path, recipe.tag, config, config_data, [(layer, layer_path)]
            )
            _check_stream(
                client.api.pull(recipe.repository, tag=recipe.tag, stream=True, decode=True),
                f"pull {recipe.name} through the eci registry mirror",
            )
        except docker.errors.APIError as exc:
            raise ImageBuildError(f"{recipe.name}: {exc.explanation or exc}") from exc
        except OSError as exc:
            raise ImageBuildError(
                f"{recipe.name}: the registry's writer at {writer.where} is unreachable: {exc}"
            ) from exc
    if _current_label(client, recipe.name) != content:
        raise ImageBuildError(f"{recipe.name}: pulled image does not carry the built content")
    return "built"
