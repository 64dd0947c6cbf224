"""Rootfs directory -> image with real registry digests.

The image is imported, pushed to the engine's loopback registry under its docker.io path
(`library/busybox`), then pulled back by its plain name through the engine's registry mirror,
so `RepoDigests` reads `busybox@sha256:…` exactly as it does for images users pull.
An image whose rootfs digest label already matches is left alone (re-running is cheap).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from eci.errors import ImageBuildError
from eci.images import rootfs

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


def build(client: docker.DockerClient, recipe: ImageRecipe, registry: str) -> str:
    """Assemble the recipe's rootfs, then `build_from_rootfs`."""
    with tempfile.TemporaryDirectory(prefix="eci-image-") as tmp:
        root = Path(tmp) / "rootfs"
        root.mkdir()
        rootfs.assemble(root, recipe.files, with_busybox=recipe.with_busybox)
        return build_from_rootfs(client, root, recipe, registry)


def build_from_rootfs(
    client: docker.DockerClient, root: Path, recipe: ImageRecipe, registry: str
) -> str:
    """Rootfs dir -> image pushed to and pulled back from the registry; 'built' or 'up to date'."""
    with tempfile.TemporaryDirectory(prefix="eci-image-") as tmp:
        tar_path = Path(tmp) / "rootfs.tar"
        content = rootfs.pack(root, tar_path)
        if _current_label(client, recipe.name) == content:
            return "up to date"
        staged = f"{registry}/{recipe.registry_path}"
        changes = [f"CMD {json.dumps(list(recipe.cmd))}", f"LABEL {CONTENT_LABEL}={content}"]
        try:
            client.api.import_image(
                src=str(tar_path), repository=staged, tag=recipe.tag, changes=changes
            )
            _check_stream(
                client.api.push(staged, tag=recipe.tag, stream=True, decode=True),
                f"push {staged}:{recipe.tag}",
            )
            client.api.remove_image(f"{staged}:{recipe.tag}")
            _check_stream(
                client.api.pull(recipe.repository, tag=recipe.tag, stream=True, decode=True),
                f"pull {recipe.name} through the eci registry mirror",
            )
        except docker.errors.APIError as exc:
            raise ImageBuildError(f"{recipe.name}: {exc.explanation or exc}") from exc
    if _current_label(client, recipe.name) != content:
        raise ImageBuildError(f"{recipe.name}: pulled image does not carry the built content")
    return "built"
