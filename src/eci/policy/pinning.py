"""Forward a request naming the container the policy looked up, by its full id.

dockerd resolves a container reference at every request: a full id, else a name, else an id
prefix. The policy decided on what that reference named when the proxy looked it up; if the
request went on naming it the same way, a rename in between (``abc`` was my container's
name; now it is gone and ``abc`` is the prefix of someone else's id) would let the action
land on a container that was never checked. A full id names exactly one container, always.
"""

from __future__ import annotations

import dataclasses

from eci.dockerapi.request import ApiRequest
from eci.dockerapi.target import ApiTarget
from eci.policy.facts import Facts
from eci.policy.ownership import COMMIT_QUERY

PARAM = "{id}"


def _full_id(ref: str, facts: Facts) -> str | None:
    found = facts.containers.get(ref)
    return found.id if found is not None and found.id else None


def pin_target(request: ApiRequest, facts: Facts) -> ApiTarget:
    """``request``'s target with the container it names (a ``/containers/{id}`` path, the
    ``container`` of a commit) replaced by the full id looked up; as it came otherwise."""
    target = request.target
    route = request.route
    if route is None:
        return target
    if route.name.startswith("container.") and PARAM in route.route.template:
        full = _full_id(request.param("id"), facts)
        template = route.route.template.split("/")
        parts = target.path.split("/")
        if full is None or len(parts) != len(template):
            return target
        parts[template.index(PARAM)] = full
        return dataclasses.replace(target, path="/".join(parts))
    if route.name == "image.commit":
        query = {
            key: tuple(_full_id(v, facts) or v for v in values)
            if key.lower() == COMMIT_QUERY
            else values
            for key, values in target.query.items()
        }
        return dataclasses.replace(target, query=query)
    return target
