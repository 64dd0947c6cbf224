"""The route table: every known (method, route) has a deliberate decision.

Reads (GET/HEAD) of routes not in the table are allowed: they change nothing and dockerd
answers 404 for what it does not know. Anything else not in the table is refused: a new
write endpoint must be reviewed before eci lets it through. Every route name the tables below
use is checked against the route table when this module loads: a misspelled one would leave
its route allowed without its rule, so it stops the proxy from starting instead.

Invariant: ``decide`` returns a decision for any request; a body it cannot read the way
dockerd would is a 400 refusal, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from eci.dockerapi import gojson
from eci.dockerapi.gojson import BodyError
from eci.dockerapi.request import ApiRequest
from eci.dockerapi.routes import ROUTES
from eci.errors import ECI_PREFIX, PolicyDenied
from eci.policy import containers, ownership, resources
from eci.policy.context import PolicyContext
from eci.policy.decision import Allow, Decision, Deny, Rewrite
from eci.policy.facts import Facts, FactsQuery

Rule = Callable[[ApiRequest, PolicyContext, Facts], Decision]
FactsRule = Callable[[ApiRequest], FactsQuery]


def allow(request: ApiRequest, ctx: PolicyContext, facts: Facts) -> Decision:
    return Allow()


#: Routes with a rule; every other route of ``dockerapi.routes`` is allowed (``ALLOWED``).
RULES: dict[str, Rule] = {
    "container.create": containers.create,
    "container.start": containers.start,
    "container.update": containers.update,
    "container.exec_create": containers.exec_create,
    "container.archive_get": containers.archive,
    "container.archive_head": containers.archive,
    "container.archive_put": containers.archive,
    "container.copy": containers.archive,
    "volume.create": resources.volume_create,
    "network.connect": resources.network_connect,
    "network.disconnect": resources.network_disconnect,
    "build.build": resources.build,
    "session.grpc": resources.buildkit,
    "swarm.join": resources.swarm_join,
    "swarm.init": resources.swarm_join,
    "plugin.pull": resources.plugin_install,
    "plugin.create": resources.plugin_install,
    "plugin.enable": resources.plugin_install,
    "plugin.upgrade": resources.plugin_install,
    "plugin.set": resources.plugin_install,
    "service.create": resources.service,
    "service.update": resources.service,
}

FACTS: dict[str, FactsRule] = {
    "container.create": containers.create_facts,
    "container.exec_create": containers.target_container_facts,
    "container.start": containers.target_container_facts,
    "container.archive_get": containers.target_container_facts,
    "container.archive_head": containers.target_container_facts,
    "container.archive_put": containers.target_container_facts,
    "container.copy": containers.target_container_facts,
    "volume.create": resources.volume_create_facts,
    "network.connect": resources.network_connect_facts,
    "build.build": resources.build_facts,
    "service.create": resources.service_facts,
    "service.update": resources.service_facts,
}

#: Routes whose JSON body a rule reads: an allowed one is forwarded re-encoded from the
#: parsed value, so dockerd decodes exactly what the policy saw.
REENCODED = {
    "container.update",
    "container.exec_create",
    "volume.create",
    "service.create",
    "service.update",
}


def check_route_names(tables: dict[str, Collection[str]]) -> None:
    """Raise ``LookupError`` if a table (by its name) names a route ``ROUTES`` does not have."""
    known = {route.name for route in ROUTES}
    for table, names in tables.items():
        unknown = sorted(set(names) - known)
        if unknown:
            raise LookupError(f"decide.{table} names routes that do not exist: {unknown}")


check_route_names({"RULES": RULES, "FACTS": FACTS, "REENCODED": REENCODED})

#: Content types dockerd parses as form values (merged into the query): never let a body
#: smuggle query parameters past the rules.
FORM_TYPES = ("application/x-www-form-urlencoded",)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _no_facts(request: ApiRequest) -> FactsQuery:
    return FactsQuery()


def facts_needed(request: ApiRequest, ctx: PolicyContext) -> FactsQuery:
    """What to look up before ``decide`` (the route's rule's and ownership's needs); nothing
    when ECI is off or the body is unreadable (``decide`` will refuse it)."""
    if not ctx.eci_enabled:
        return FactsQuery()
    rule = FACTS.get(request.route_name or "", _no_facts)
    try:
        return rule(request) | ownership.facts(request, ctx)
    except (BodyError, PolicyDenied, RecursionError):
        return FactsQuery()


def _rule(request: ApiRequest) -> Rule:
    if request.route is None:
        if request.method in ("GET", "HEAD"):
            return allow
        raise PolicyDenied(
            "unknown-route",
            f"{ECI_PREFIX}API request {request.describe()} is not known to eci; it refuses "
            "requests that could change the engine until they are reviewed",
        )
    return RULES.get(request.route.name, allow)


def decide(request: ApiRequest, ctx: PolicyContext, facts: Facts | None = None) -> Decision:
    """The decision for one request (see module doc)."""
    if not ctx.eci_enabled:
        return Allow()
    try:
        if _media_type(request.content_type) in FORM_TYPES and request.method != "GET":
            raise PolicyDenied(
                "form-body",
                f"{ECI_PREFIX}form-encoded request bodies are not accepted "
                f"({request.content_type!r})",
                400,
            )
        facts = facts or Facts()
        ownership.check(request, ctx, facts)
        decision = _rule(request)(request, ctx, facts)
        if isinstance(decision, Allow) and request.route_name in REENCODED and request.body:
            return Rewrite(gojson.encode(request.json), "forwarded as parsed")
        return decision
    except PolicyDenied as denied:
        return Deny(denied.rule, str(denied), denied.status)
    except BodyError as bad:
        return Deny("unreadable-body", f"{ECI_PREFIX}request body refused: {bad}", 400)
    except RecursionError:  # json.loads (C) nests deeper than a rewrite (Python) can follow
        return Deny("unreadable-body", f"{ECI_PREFIX}request body refused: nests too deeply", 400)
