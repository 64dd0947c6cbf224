"""The Docker Engine API's routes (as dockerd 20.10+ registers them), matched on a normalized
path.

Route names are stable identifiers (``container.create``) that the policy table is keyed by.
Static path parts match case-insensitively (stricter than the daemon); parameters keep their
case. ``{x}`` is one path segment, ``{x*}`` one or more (image and plugin names carry
slashes). The first match in table order wins, as in gorilla/mux.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

__all__ = ["ROUTES", "Body", "Route", "RouteMatch", "match_route"]


class Body(Enum):
    """How the proxy handles a request body on this route."""

    #: read whole (bounded by the body limit) before the policy decides
    BUFFERED = "buffered"
    #: streamed through unread (build context, image tarballs, archives): decided on the
    #: method, path and query alone
    STREAM = "stream"


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    method: str
    template: str
    body: Body = Body.BUFFERED
    #: the connection turns into a raw bidirectional stream after the response head
    hijack: bool = False
    #: the response is bulk (a tarball, a container's logs): asked with ``Connection: close``,
    #: so the proxy relays it until EOF without following its framing (spliced in the kernel)
    download: bool = False

    def pattern(self) -> re.Pattern[str]:
        regex = ""
        for part in re.split(r"(\{[a-z]+\*?\})", self.template):
            if part.startswith("{"):
                name = part.strip("{}*")
                regex += f"(?P<{name}>.+)" if part.endswith("*}") else f"(?P<{name}>[^/]+)"
            else:
                regex += re.escape(part)
        return re.compile(regex + r"\Z", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: Route
    params: Mapping[str, str]

    @property
    def name(self) -> str:
        return self.route.name


def _r(
    name: str,
    method: str,
    template: str,
    body: Body = Body.BUFFERED,
    hijack: bool = False,
    download: bool = False,
) -> Route:
    return Route(name, method, template, body, hijack, download)


S = Body.STREAM
ROUTES: tuple[Route, ...] = (
    # system
    _r("system.ping", "GET", "/_ping"),
    _r("system.ping", "HEAD", "/_ping"),
    _r("system.events", "GET", "/events"),
    _r("system.info", "GET", "/info"),
    _r("system.version", "GET", "/version"),
    _r("system.df", "GET", "/system/df"),
    _r("system.auth", "POST", "/auth"),
    # containers
    _r("container.list", "GET", "/containers/json"),
    _r("container.create", "POST", "/containers/create"),
    _r("container.prune", "POST", "/containers/prune"),
    _r("container.inspect", "GET", "/containers/{id}/json"),
    _r("container.top", "GET", "/containers/{id}/top"),
    _r("container.logs", "GET", "/containers/{id}/logs", download=True),
    _r("container.changes", "GET", "/containers/{id}/changes"),
    _r("container.export", "GET", "/containers/{id}/export", download=True),
    _r("container.stats", "GET", "/containers/{id}/stats"),
    _r("container.attach_ws", "GET", "/containers/{id}/attach/ws", hijack=True),
    _r("container.archive_get", "GET", "/containers/{id}/archive", download=True),
    _r("container.archive_head", "HEAD", "/containers/{id}/archive"),
    _r("container.archive_put", "PUT", "/containers/{id}/archive", S),
    _r("container.start", "POST", "/containers/{id}/start"),
    _r("container.stop", "POST", "/containers/{id}/stop"),
    _r("container.restart", "POST", "/containers/{id}/restart"),
    _r("container.kill", "POST", "/containers/{id}/kill"),
    _r("container.pause", "POST", "/containers/{id}/pause"),
    _r("container.unpause", "POST", "/containers/{id}/unpause"),
    _r("container.wait", "POST", "/containers/{id}/wait"),
    _r("container.resize", "POST", "/containers/{id}/resize"),
    _r("container.rename", "POST", "/containers/{id}/rename"),
    _r("container.update", "POST", "/containers/{id}/update"),
    _r("container.attach", "POST", "/containers/{id}/attach", hijack=True),
    _r("container.copy", "POST", "/containers/{id}/copy"),
    _r("container.exec_create", "POST", "/containers/{id}/exec"),
    _r("container.delete", "DELETE", "/containers/{id}"),
    _r("exec.start", "POST", "/exec/{id}/start", hijack=True),
    _r("exec.resize", "POST", "/exec/{id}/resize"),
    _r("exec.inspect", "GET", "/exec/{id}/json"),
    # images
    _r("image.list", "GET", "/images/json"),
    _r("image.search", "GET", "/images/search"),
    _r("image.get_all", "GET", "/images/get", download=True),
    _r("image.create", "POST", "/images/create", S),
    _r("image.load", "POST", "/images/load", S),
    _r("image.prune", "POST", "/images/prune"),
    _r("image.get", "GET", "/images/{name*}/get", download=True),
    _r("image.history", "GET", "/images/{name*}/history"),
    _r("image.inspect", "GET", "/images/{name*}/json"),
    _r("image.push", "POST", "/images/{name*}/push"),
    _r("image.tag", "POST", "/images/{name*}/tag"),
    _r("image.delete", "DELETE", "/images/{name*}"),
    _r("image.commit", "POST", "/commit"),
    _r("distribution.inspect", "GET", "/distribution/{name*}/json"),
    # build
    _r("build.build", "POST", "/build", S),
    _r("build.prune", "POST", "/build/prune"),
    _r("build.cancel", "POST", "/build/cancel"),
    _r("session.session", "POST", "/session", hijack=True),
    _r("session.grpc", "POST", "/grpc", hijack=True),
    # networks
    _r("network.list", "GET", "/networks"),
    _r("network.create", "POST", "/networks/create"),
    _r("network.prune", "POST", "/networks/prune"),
    _r("network.inspect", "GET", "/networks/{id*}"),
    _r("network.connect", "POST", "/networks/{id*}/connect"),
    _r("network.disconnect", "POST", "/networks/{id*}/disconnect"),
    _r("network.delete", "DELETE", "/networks/{id*}"),
    # volumes
    _r("volume.list", "GET", "/volumes"),
    _r("volume.create", "POST", "/volumes/create"),
    _r("volume.prune", "POST", "/volumes/prune"),
    _r("volume.inspect", "GET", "/volumes/{name*}"),
    _r("volume.update", "PUT", "/volumes/{name*}"),
    _r("volume.delete", "DELETE", "/volumes/{name*}"),
    # plugins
    _r("plugin.list", "GET", "/plugins"),
    _r("plugin.privileges", "GET", "/plugins/privileges"),
    _r("plugin.pull", "POST", "/plugins/pull"),
    _r("plugin.create", "POST", "/plugins/create", S),
    _r("plugin.inspect", "GET", "/plugins/{name*}/json"),
    _r("plugin.enable", "POST", "/plugins/{name*}/enable"),
    _r("plugin.disable", "POST", "/plugins/{name*}/disable"),
    _r("plugin.push", "POST", "/plugins/{name*}/push"),
    _r("plugin.upgrade", "POST", "/plugins/{name*}/upgrade"),
    _r("plugin.set", "POST", "/plugins/{name*}/set"),
    _r("plugin.delete", "DELETE", "/plugins/{name*}"),
    # swarm
    _r("swarm.inspect", "GET", "/swarm"),
    _r("swarm.unlockkey", "GET", "/swarm/unlockkey"),
    _r("swarm.init", "POST", "/swarm/init"),
    _r("swarm.join", "POST", "/swarm/join"),
    _r("swarm.leave", "POST", "/swarm/leave"),
    _r("swarm.update", "POST", "/swarm/update"),
    _r("swarm.unlock", "POST", "/swarm/unlock"),
    _r("service.list", "GET", "/services"),
    _r("service.create", "POST", "/services/create"),
    _r("service.logs", "GET", "/services/{id}/logs"),
    _r("service.inspect", "GET", "/services/{id}"),
    _r("service.update", "POST", "/services/{id}/update"),
    _r("service.delete", "DELETE", "/services/{id}"),
    _r("node.list", "GET", "/nodes"),
    _r("node.inspect", "GET", "/nodes/{id}"),
    _r("node.update", "POST", "/nodes/{id}/update"),
    _r("node.delete", "DELETE", "/nodes/{id}"),
    _r("task.list", "GET", "/tasks"),
    _r("task.logs", "GET", "/tasks/{id}/logs"),
    _r("task.inspect", "GET", "/tasks/{id}"),
    _r("secret.list", "GET", "/secrets"),
    _r("secret.create", "POST", "/secrets/create"),
    _r("secret.inspect", "GET", "/secrets/{id}"),
    _r("secret.update", "POST", "/secrets/{id}/update"),
    _r("secret.delete", "DELETE", "/secrets/{id}"),
    _r("config.list", "GET", "/configs"),
    _r("config.create", "POST", "/configs/create"),
    _r("config.inspect", "GET", "/configs/{id}"),
    _r("config.update", "POST", "/configs/{id}/update"),
    _r("config.delete", "DELETE", "/configs/{id}"),
)

_COMPILED = tuple((route, route.pattern()) for route in ROUTES)


def match_route(method: str, path: str) -> RouteMatch | None:
    """The route dockerd would dispatch ``method path`` to, or ``None``.

    ``method`` is compared upper-cased: a lower-case method is not routed by dockerd, and
    treating it like the upper-case one can only make policy stricter.
    """
    upper = method.upper()
    for route, pattern in _COMPILED:
        if route.method == upper and (m := pattern.match(path)):
            return RouteMatch(route, dict(m.groupdict()))
    return None
