"""Containers (and volumes) belong to the user whose request created them; only that user or
root acts on them.

Docker lets every member of group docker do anything to every container. eci gives a
container its creator's files (host binds are mapped to the ``io.eci.requester``), so a
second tenant who could exec into it, copy into it or start it with its binds would reach
the first tenant's private files. The owner is the uid of that label, which only the proxy
sets (a create naming it is refused, and the proxy's value wins over an image's); root (uid
0) may act on any container, and containers without an owner (root's, or made before eci)
stay open to everyone as in Docker.

What is refused to others (``OWNED``) is everything that runs something in a container,
reads or writes its files or output, or changes its state, configuration or name; joining
its namespaces or mounting its volumes at create (``containers.create``) too. Reading the
container's output (``logs``) is refused with the rest: it is the container's data, as its
files are, and often holds what a process printed of its secrets. What Docker shows to every
client about containers stays open: ``ps``, ``inspect``, ``top``, ``stats``, ``diff``,
``wait``, ``exec inspect``, ``events``. ``container prune`` stays open too (it removes only
stopped containers, all users' alike: see docs/proxy.md).

Volumes hold container data too: a named volume is another user's when its own
``io.eci.requester`` label says so (the proxy sets it on ``volume create``) or while a
container of another user uses it (the volumes dockerd creates for a container carry no
label); mounting it (``-v name:/x``, ``--mount``) or removing it is then refused, as
``--volumes-from`` of its container is. A volume that no label and no container names an
owner of is open to all.

An exec instance is addressed by its own id (``/exec/{id}/start``): it is looked up with the
container it runs in, whose owner decides. Containers are looked up by dockerd itself (name,
full id or id prefix, as every route resolves them), and the request is forwarded naming the
container by the full id found (``pinning``), so a rename between the check and the action
cannot swap the container.
"""

from __future__ import annotations

from collections.abc import Mapping

from eci.dockerapi.gojson import GoObject
from eci.dockerapi.request import ApiRequest
from eci.errors import PolicyDenied, owner_message
from eci.policy.context import PolicyContext
from eci.policy.facts import ContainerFacts, Facts, FactsQuery

#: Routes only the owner or root may use, with the action the refusal names.
OWNED: Mapping[str, str] = {
    "container.exec_create": "exec into",
    "exec.start": "exec into",
    "exec.resize": "exec into",
    "container.attach": "attach to",
    "container.attach_ws": "attach to",
    "container.resize": "resize",
    "container.start": "start",
    "container.restart": "restart",
    "container.stop": "stop",
    "container.kill": "kill",
    "container.pause": "pause",
    "container.unpause": "unpause",
    "container.rename": "rename",
    "container.delete": "remove",
    "container.update": "update",
    "container.logs": "read the logs of",
    "container.export": "export",
    "container.archive_get": "copy files from",
    "container.archive_head": "copy files from",
    "container.archive_put": "copy files into",
    "container.copy": "copy files from",
    "image.commit": "commit",
    "network.connect": "connect a network to",
    "network.disconnect": "disconnect a network from",
}

#: Volume routes only the owner or root may use.
OWNED_VOLUMES: Mapping[str, str] = {"volume.delete": "remove"}

#: Query keys and body fields that name the container of a route that is not /containers/.
COMMIT_QUERY = "container"
NETWORK_BODY = "Container"


def targets(request: ApiRequest) -> tuple[frozenset[str], frozenset[str]]:
    """The containers and the exec instances ``request`` acts on, as the client named them."""
    name = request.route_name or ""
    if name.startswith("exec."):
        return frozenset(), frozenset({request.param("id")})
    if name.startswith("container."):
        return frozenset({request.param("id")}), frozenset()
    if name == "image.commit":
        return frozenset(v for v in request.target.query_values(COMMIT_QUERY) if v), frozenset()
    body = request.json if request.body else None
    container = body.string(NETWORK_BODY) if isinstance(body, GoObject) else ""
    return frozenset({container} if container else ()), frozenset()


def facts(request: ApiRequest, ctx: PolicyContext) -> FactsQuery:
    """The lookups ownership needs for ``request`` (none when it is off or not an owned route)."""
    if not ctx.container_ownership:
        return FactsQuery()
    if request.route_name in OWNED_VOLUMES:
        return FactsQuery(volumes=frozenset({request.param("name")}))
    if request.route_name not in OWNED:
        return FactsQuery()
    containers, execs = targets(request)
    return FactsQuery(containers=containers, execs=execs)


def _other_owner(owners: frozenset[int], facts: Facts) -> int | None:
    """An owner among ``owners`` that is not the requester, unless the requester is root;
    None when the requester may act. An unknown requester is nobody's owner."""
    requester = facts.requester
    if requester is not None and requester[0] == 0:
        return None
    others = owners - {requester[0]} if requester is not None else owners
    return min(others) if others else None


def check_owner(
    ref: str, found: ContainerFacts | None, action: str, ctx: PolicyContext, facts: Facts
) -> None:
    """Raise ``PolicyDenied`` unless the requester may ``action`` container ``found`` (as
    ``ref`` named it): its owner, root, or anyone when it has no owner or ownership is off."""
    if not ctx.container_ownership or found is None or found.owner is None:
        return
    if (other := _other_owner(frozenset({found.owner}), facts)) is not None:
        raise PolicyDenied("container-owner", owner_message("container", ref, other, action))


def check_volume(name: str, action: str, ctx: PolicyContext, facts: Facts) -> None:
    """Raise ``PolicyDenied`` unless the requester may ``action`` volume ``name``: it belongs
    to no one else (see the module doc), or the requester is root."""
    if not ctx.container_ownership:
        return
    owners = facts.volume_owners.get(name, frozenset())
    if (other := _other_owner(owners, facts)) is not None:
        raise PolicyDenied("volume-owner", owner_message("volume", name, other, action))


def check(request: ApiRequest, ctx: PolicyContext, facts: Facts) -> None:
    """Ownership of the containers an ``OWNED`` route acts on, or of the volume of an
    ``OWNED_VOLUMES`` one (others: nothing to check)."""
    if volume_action := OWNED_VOLUMES.get(request.route_name or ""):
        check_volume(request.param("name"), volume_action, ctx, facts)
        return
    action = OWNED.get(request.route_name or "")
    if action is None:
        return
    containers, execs = targets(request)
    for ref in sorted(containers):
        check_owner(ref, facts.containers.get(ref), action, ctx, facts)
    for ref in sorted(execs):  # named by the container it runs in
        found = facts.execs.get(ref)
        check_owner(found.id if found else ref, found, action, ctx, facts)
