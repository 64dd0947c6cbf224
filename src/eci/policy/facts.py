"""Engine state a decision depends on, looked up by the proxy before the policy decides.

The policy names what it needs (``FactsQuery``); the proxy fetches it from dockerd and
resolves host paths; the policy then decides on ``Facts`` without doing any IO itself. A
container or volume that does not exist maps to ``None`` (dockerd will refuse the request).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from eci.policy.imagelist import ImageIdentity


@dataclass(frozen=True, slots=True)
class MountFact:
    type: str
    source: str
    destination: str = ""


@dataclass(frozen=True, slots=True)
class ContainerFacts:
    id: str
    runtime: str
    mounts: tuple[MountFact, ...] = ()
    #: the token of the Docker socket eci granted it (its ``io.eci.socket-grant`` label)
    grant: str | None = None
    #: its init process while it runs (0 when it does not)
    pid: int = 0
    #: its configured user (``Config.User``: "", a name or uid, maybe ":group")
    user: str = ""


@dataclass(frozen=True, slots=True)
class FactsQuery:
    containers: frozenset[str] = frozenset()
    volumes: frozenset[str] = frozenset()
    networks: frozenset[str] = frozenset()
    paths: frozenset[str] = frozenset()
    #: the image of a create that binds host paths: looked up if one of them is a Docker
    #: socket (with the imageList's registry digests and possible bases)
    image: str | None = None

    def __bool__(self) -> bool:
        return bool(self.containers or self.volumes or self.networks or self.paths or self.image)


@dataclass(frozen=True, slots=True)
class Facts:
    containers: Mapping[str, ContainerFacts | None] = field(default_factory=dict)
    #: volume name -> its local driver's options (None: no such volume, or another driver)
    volume_options: Mapping[str, Mapping[str, str] | None] = field(default_factory=dict)
    #: network name or id -> driver ("host", "bridge", …); None when it does not exist
    network_drivers: Mapping[str, str | None] = field(default_factory=dict)
    #: absolute host path as given -> the path with symlinks resolved on the host
    real_paths: Mapping[str, str] = field(default_factory=dict)
    #: (uid, gid) of the process that sent the request (SO_PEERCRED), when known
    requester: tuple[int, int] | None = None
    #: the create's image, when it asks for a Docker socket (None: not looked up, or none)
    image: ImageIdentity | None = None
    #: imageList ``repository:tag`` -> the digest its registry gives now (None: unknown)
    resolved: Mapping[str, str | None] = field(default_factory=dict)
    #: local images that may be the allowed base of a derived image
    bases: tuple[ImageIdentity, ...] = ()
    #: a fresh token for the socket eci would grant (set with ``image``)
    grant_token: str | None = None
