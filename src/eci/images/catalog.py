"""The images eci builds for its demo and tests. Add recipes here; the builder is generic."""

from __future__ import annotations

from pathlib import Path

from eci.images.builder import ImageRecipe

#: Debian's docker.io client; dynamic, so the builder copies its libraries along.
DOCKER_CLIENT = Path("/usr/bin/docker")

TEST_IMAGES: tuple[ImageRecipe, ...] = (
    ImageRecipe("busybox:latest"),
    ImageRecipe("docker:cli", files={"/usr/local/bin/docker": DOCKER_CLIENT}),
)
