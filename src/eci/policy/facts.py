"""Engine state a decision depends on, looked up by the proxy before the policy decides.

The policy names what it needs (``FactsQuery``); the proxy fetches it from dockerd and
resolves host paths; the policy then decides on ``Facts`` without doing any IO itself. A
container or volume that does not exist maps to ``None`` (dockerd will refuse the request).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

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
    #: the uid of the user whose request created it (its ``io.eci.requester`` label); None
    #: for root's containers and those made before eci: they belong to nobody
    owner: int | None = None


@dataclass(frozen=True, slots=True)
class FactsQuery:
    containers: frozenset[str] = frozenset()
    volumes: frozenset[str] = frozenset()
    networks: frozenset[str] = frozenset()
    paths: frozenset[str] = frozenset()
    #: the image of a create that binds host paths: looked up if one of them is a Docker
    #: socket (with the imageList's registry digests and possible bases)
    image: str | None = None
    #: exec instances, each looked up with the container it runs in
    execs: frozenset[str] = frozenset()
    #: host names to resolve as dockerd would (a build's remote context)
    hosts: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def __or__(self, other: FactsQuery) -> FactsQuery:
        """Both queries' lookups (the image of ``self`` wins: only a create names one)."""
        return FactsQuery(
            containers=self.containers | other.containers,
            volumes=self.volumes | other.volumes,
            networks=self.networks | other.networks,
            paths=self.paths | other.paths,
            image=self.image or other.image,
            execs=self.execs | other.execs,
            hosts=self.hosts | other.hosts,
        )


@dataclass(frozen=True, slots=True)
class Facts:
    containers: Mapping[str, ContainerFacts | None] = field(default_factory=dict)
    #: volume name -> its local driver's options (None: no such volume, or another driver)
    volume_options: Mapping[str, Mapping[str, str] | None] = field(default_factory=dict)
    #: network name or id -> driver ("host", "bridge", …); None when it does not exist
    network_drivers: Mapping[str, str | None] = field(default_factory=dict)
    #: absolute host path as given -> the path with symlinks resolved on the host
    real_paths: Mapping[str, str] = field(default_factory=dict)
    #: (uid, primary gid) of the user who sent the request (SO_PEERCRED, the gid from the
    #: passwd database; through a granted socket, the user who created its container); None
    #: when unknown: such a request acts on no one's container but the unowned
    requester: tuple[int, int] | None = None
    #: the create's image, when it asks for a Docker socket (None: not looked up, or none)
    image: ImageIdentity | None = None
    #: imageList ``repository:tag`` -> the digest its registry gives now (None: unknown)
    resolved: Mapping[str, str | None] = field(default_factory=dict)
    #: local images that may be the allowed base of a derived image
    bases: tuple[ImageIdentity, ...] = ()
    #: a fresh token for the socket eci would grant (set with ``image``)
    grant_token: str | None = None
    #: volume name -> the uids it belongs to: its own ``io.eci.requester`` label's, and the
    #: owners of the containers using it (empty: no one's)
    volume_owners: Mapping[str, frozenset[int]] = field(default_factory=dict)
    #: exec id -> the container it runs in (None: no such exec instance)
    execs: Mapping[str, ContainerFacts | None] = field(default_factory=dict)
    #: host name -> the addresses it resolves to on the host (empty: it does not resolve)
    addresses: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: the host's own addresses (every interface), when a host name was asked about
    local_addresses: frozenset[str] = frozenset()
