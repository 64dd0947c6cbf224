"""Which images may mount the Docker socket: the admin's ``imageList``, matched by identity.

A tag is a name anyone can give any image (``docker tag evil docker:cli``), so a name never
decides. What does:

- ``name@sha256:…`` (a pin): the image carries that registry digest for that repository;
- ``name:*``: the image carries a registry digest of that repository (it was pulled from, or
  pushed to, that repository; a retagged image carries none);
- ``name[:tag]``: the image carries the digest the registry gives for ``name:tag`` now
  (resolved by the proxy, cached for minutes, as Docker Desktop does);
- ``*``: every image (allowed, and warned about loudly);
- with ``allowDerivedImages``: an image whose layer chain starts with the whole layer chain of
  an image allowed by the rules above (it was built ``FROM`` it).

Registry digests (``RepoDigests``) and layer ids (``RootFS.Layers``, content digests) are set
by dockerd from what it pulled and built; a user cannot forge them through the API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eci.dockerapi.imageref import InvalidReference, parse_pattern, parse_reference


@dataclass(frozen=True, slots=True)
class ImageEntry:
    """One ``imageList.images`` entry, normalized (``docker:cli`` →
    ``docker.io/library/docker`` + tag ``cli``). ``repository`` is ``None`` for ``*``; ``tag``
    is ``None`` for ``name:*`` and for digest pins."""

    text: str
    repository: str | None
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageEntry:
        """Raises ``InvalidReference`` for an entry that names no image."""
        ref = parse_pattern(text)
        return cls(text, None) if ref is None else cls(text, ref.repository, ref.tag, ref.digest)

    @property
    def resolvable(self) -> str | None:
        """``repository:tag`` when the entry's digest must be asked of the registry."""
        return f"{self.repository}:{self.tag}" if self.repository and self.tag else None


def _repo_digest(text: str) -> tuple[str, str] | None:
    try:
        ref = parse_reference(text, default_tag=None)
    except InvalidReference:
        return None
    return (ref.repository, ref.digest) if ref.digest else None


@dataclass(frozen=True, slots=True)
class ImageIdentity:
    """What identifies a local image: its id, registry digests, layer chain."""

    id: str
    repo_digests: frozenset[tuple[str, str]] = frozenset()
    layers: tuple[str, ...] = ()

    @classmethod
    def from_inspect(cls, data: Mapping[str, Any]) -> ImageIdentity:
        """From dockerd's ``GET /images/{name}/json``; odd entries are ignored."""
        digests = data.get("RepoDigests") or []
        rootfs = data.get("RootFS") or {}
        layers = rootfs.get("Layers") if isinstance(rootfs, Mapping) else None
        return cls(
            id=str(data.get("Id", "")),
            repo_digests=frozenset(
                d for text in digests if isinstance(text, str) and (d := _repo_digest(text))
            ),
            layers=tuple(str(layer) for layer in layers or ()),
        )

    @property
    def repositories(self) -> frozenset[str]:
        return frozenset(repository for repository, _ in self.repo_digests)


@dataclass(frozen=True, slots=True)
class ImageMatch:
    """Why an image may mount the socket: the entry, and the allowed base it was built
    ``FROM`` when it was allowed as a derived image."""

    entry: ImageEntry
    base: str | None = None

    @property
    def wildcard(self) -> bool:
        return self.entry.repository is None


@dataclass(frozen=True, slots=True)
class ImageList:
    entries: tuple[ImageEntry, ...] = ()
    allow_derived: bool = True

    @classmethod
    def from_settings(cls, images: Iterable[str], allow_derived: bool) -> ImageList:
        """Entries were validated with the settings; one that still does not parse is
        dropped (it can match nothing: fail closed)."""
        entries = []
        for text in images:
            try:
                entries.append(ImageEntry.parse(text))
            except InvalidReference:
                continue
        return cls(tuple(entries), allow_derived)

    @property
    def resolvable(self) -> frozenset[str]:
        """The ``repository:tag`` references whose registry digest a match needs."""
        return frozenset(r for e in self.entries if (r := e.resolvable))

    @property
    def repositories(self) -> frozenset[str]:
        return frozenset(e.repository for e in self.entries if e.repository)

    def direct(self, image: ImageIdentity, resolved: Mapping[str, str | None]) -> ImageEntry | None:
        """The first entry ``image`` itself satisfies (``resolved``: reference → digest,
        ``None`` when the registry could not say)."""
        for entry in self.entries:
            if entry.repository is None:
                return entry
            if entry.digest is not None:
                wanted: str | None = entry.digest
            elif entry.resolvable is not None:
                wanted = resolved.get(entry.resolvable)
                if wanted is None:
                    continue
            elif entry.repository in image.repositories:
                return entry
            else:
                continue
            if (entry.repository, wanted) in image.repo_digests:
                return entry
        return None

    def match(
        self,
        image: ImageIdentity,
        resolved: Mapping[str, str | None],
        bases: Iterable[ImageIdentity] = (),
    ) -> ImageMatch | None:
        """Why ``image`` may mount the socket, or ``None``. ``bases``: local images that may
        be allowed ones (derived images are checked against them)."""
        if entry := self.direct(image, resolved):
            return ImageMatch(entry)
        if not self.allow_derived:
            return None
        for base in bases:
            chain = base.layers
            if not chain or image.layers[: len(chain)] != chain:
                continue  # a base with no layers would make every image "derived"
            if entry := self.direct(base, resolved):
                return ImageMatch(entry, base=base.id)
        return None
