"""The images eci builds for its demo and tests. Add recipes here; the builder is generic."""

from __future__ import annotations

from pathlib import Path

from eci.images.builder import ImageRecipe

#: Debian's docker.io client; dynamic, so the builder copies its libraries along.
DOCKER_CLIENT = Path("/usr/bin/docker")

#: Host files that images carry (shipped as package data).
FILES = Path(__file__).resolve().parent / "files"

#: The reaper testcontainers starts (`testcontainers/ryuk`): a busybox `nc` server plus the
#: docker CLI, speaking Ryuk's protocol (see the script's header). testcontainers-python 4.x asks
#: for tag 0.8.1; `RYUK_CONTAINER_IMAGE` points other clients at it.
RYUK_STANDIN = FILES / "ryuk-standin.sh"
RYUK_STANDIN_PATH = "/usr/local/bin/ryuk-standin.sh"

TEST_IMAGES: tuple[ImageRecipe, ...] = (
    ImageRecipe("busybox:latest"),
    ImageRecipe("docker:cli", files={"/usr/local/bin/docker": DOCKER_CLIENT}),
    ImageRecipe(
        "testcontainers/ryuk:0.8.1",
        files={"/usr/local/bin/docker": DOCKER_CLIENT, RYUK_STANDIN_PATH: RYUK_STANDIN},
        cmd=("/bin/sh", RYUK_STANDIN_PATH),
    ),
)
