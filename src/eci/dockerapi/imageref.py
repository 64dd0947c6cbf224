"""Docker image references, normalized the way the Docker CLI and dockerd read them.

``busybox`` → ``docker.io/library/busybox:latest``; ``localhost:5000/x`` keeps its registry;
``name@sha256:…`` keeps the digest. A 64-hex image id (or ``sha256:<id>``) is not a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ImageRef", "InvalidReference", "parse_pattern", "parse_reference"]

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_PREFIX = "library/"
_ID = re.compile(r"(sha256:)?[a-f0-9]{64}\Z")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
# labels joined by mandatory dots: linear time (an optional dot made it exponential)
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?\Z|\[[0-9a-fA-F:]+\](?::[0-9]+)?\Z")
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}\Z")


class InvalidReference(ValueError):
    """Not an image reference dockerd would accept."""


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A normalized reference: ``repository`` is ``domain/path``; tag and digest optional."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def is_image_id(text: str) -> bool:
    return bool(_ID.match(text))


def parse_reference(text: str, default_tag: str | None = "latest") -> ImageRef:
    """Normalize ``text``; a reference with neither tag nor digest gets ``default_tag``."""
    if not text or text != text.strip():
        raise InvalidReference(f"image reference {text!r} is empty or padded")
    if is_image_id(text):
        raise InvalidReference(f"{text!r} is an image id, not a reference")
    rest, at, digest = text.partition("@")
    if at and not _DIGEST.match(digest):
        raise InvalidReference(f"image reference {text!r} has an invalid digest")
    name, tag = rest, None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        name, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidReference(f"image reference {text!r} has an invalid tag {tag!r}")
    first, slash, remainder = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, remainder
        if not _DOMAIN.match(domain):
            raise InvalidReference(f"image reference {text!r} has an invalid registry {domain!r}")
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain in ("index.docker.io", "registry-1.docker.io"):
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    if not path or not all(_COMPONENT.match(c) for c in path.split("/")):
        raise InvalidReference(f"image reference {text!r} is not a valid repository name")
    if tag is None and not digest:
        tag = default_tag
    return ImageRef(domain, path, tag, digest or None)


ANY_IMAGE = "*"
ANY_TAG = ":*"


def parse_pattern(text: str) -> ImageRef | None:
    """An image pattern of the admin settings: ``*`` (every image: ``None``), ``name:*`` (any
    tag: no tag, no digest), ``name@sha256:…`` (a pin) or ``name[:tag]`` (tag defaults to
    ``latest``)."""
    if text == ANY_IMAGE:
        return None
    if text.endswith(ANY_TAG):
        ref = parse_reference(text[: -len(ANY_TAG)], default_tag=None)
        if ref.tag or ref.digest:
            raise InvalidReference(f"image pattern {text!r}: ':*' must follow a bare name")
        return ref
    ref = parse_reference(text)
    return ImageRef(ref.domain, ref.path, None, ref.digest) if ref.digest else ref
