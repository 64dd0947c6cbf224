"""Looking up an image's identity for the socket grant: the image itself, what the registry
says the allowlisted tags are now, and the local images an image may be derived from.

Only a create that binds a Docker socket pays for this; the costs are measured in
bench/grants.py. Tag digests are asked of dockerd (``GET /distribution/{name}/json``, which
goes through the engine's registry configuration and mirrors) and kept for a few minutes, as
Docker Desktop refreshes its allowed digests periodically. An answer that does not come is not
cached: the tag then matches nothing (fail closed) until the registry answers again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from eci.policy.imagelist import ImageIdentity, ImageList
from eci.proxy.upstream import LookupFailed, get_json, get_object

DIGEST_TTL = 300.0  # seconds a registry's answer for a tag is trusted


class DigestCache:
    """``repository:tag`` → registry digest, each answer kept ``ttl`` seconds."""

    def __init__(self, ttl: float = DIGEST_TTL) -> None:
        self.ttl = ttl
        self.entries: dict[str, tuple[float, str]] = {}

    async def resolve(self, socket_path: Path, reference: str) -> str | None:
        now = time.monotonic()
        cached = self.entries.get(reference)
        if cached and now - cached[0] < self.ttl:
            return cached[1]
        try:
            status, data = await get_json(
                socket_path, f"/distribution/{quote(reference, safe='/:@')}/json"
            )
        except LookupFailed:
            return None
        descriptor = data.get("Descriptor") if isinstance(data, dict) else None
        digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
        if status != 200 or not isinstance(digest, str):
            return None
        self.entries[reference] = (now, digest)
        return digest


async def _inspect(socket_path: Path, name: str) -> ImageIdentity | None:
    target = f"/images/{quote(name, safe='/:@')}/json"
    data = await get_object(socket_path, target, f"image {name!r}")
    return ImageIdentity.from_inspect(data) if data is not None else None


async def _bases(socket_path: Path, images: ImageList, exclude: str) -> tuple[ImageIdentity, ...]:
    """Local images carrying a registry digest of an allowlisted repository: the only ones an
    allowed derived image can have been built ``FROM``."""
    status, listing = await get_json(socket_path, "/images/json?digests=1")
    if status != 200 or not isinstance(listing, list):
        raise LookupFailed(f"listing images: dockerd answered {status}")
    wanted = images.repositories
    candidates = []
    for summary in listing:
        if not isinstance(summary, dict) or summary.get("Id") == exclude:
            continue
        found = ImageIdentity.from_inspect({"RepoDigests": summary.get("RepoDigests")})
        if found.repositories & wanted:
            candidates.append(str(summary.get("Id")))
    inspected = await asyncio.gather(*(_inspect(socket_path, c) for c in candidates))
    return tuple(i for i in inspected if i is not None)


async def image_identity(
    socket_path: Path, name: str, images: ImageList, cache: DigestCache
) -> tuple[ImageIdentity | None, Mapping[str, str | None], tuple[ImageIdentity, ...]]:
    """The image ``name`` (``None``: no such image), the imageList's tags resolved, and the
    possible bases (looked up only when the image is not allowed by itself)."""
    refs = sorted(images.resolvable)
    image, digests = await asyncio.gather(
        _inspect(socket_path, name),
        asyncio.gather(*(cache.resolve(socket_path, r) for r in refs)),
    )
    resolved = dict(zip(refs, digests, strict=True))
    if image is None or not images.allow_derived or images.direct(image, resolved):
        return image, resolved, ()
    return image, resolved, await _bases(socket_path, images, image.id)
