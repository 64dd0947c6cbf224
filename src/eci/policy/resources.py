"""Rules for volumes, networks, builds, plugins and swarm services."""

from __future__ import annotations

import copy

from eci.contract.labels import REQUESTER_LABEL
from eci.contract.requester import requester_value
from eci.dockerapi import gojson
from eci.dockerapi.gojson import GoObject, InvalidBody
from eci.dockerapi.request import ApiRequest
from eci.errors import ECI_PREFIX, PolicyDenied, host_namespaces_message
from eci.policy import remote
from eci.policy.containers import body_object, check_mounts, image_name, refuse_reserved_labels
from eci.policy.context import PolicyContext
from eci.policy.decision import Allow, Decision, Rewrite
from eci.policy.facts import Facts, FactsQuery
from eci.policy.labels import set_label
from eci.policy.mounts import HostMount, from_mounts, local_volume_source
from eci.policy.ownership import NETWORK_BODY

LOCAL_DRIVERS = ("", "local")


def volume_device(request: ApiRequest) -> str | None:
    body = body_object(request)
    if body.string("Driver").lower() not in LOCAL_DRIVERS:
        return None
    return local_volume_source(body.obj("DriverOpts"))


def volume_create_facts(request: ApiRequest) -> FactsQuery:
    device = volume_device(request)
    return FactsQuery(paths=frozenset({device} if device else set()))


def volume_create(request: ApiRequest, ctx: PolicyContext, facts: Facts) -> Decision:
    """A local volume with ``device=/path`` (``o=bind``) is a host mount by another name. The
    volume is labelled with who asked for it: its owner (``policy.ownership``)."""
    if device := volume_device(request):
        ctx.host_paths.check(device, facts.real_paths.get(device), "volume")
    body = body_object(request)
    refuse_reserved_labels(body, [])
    if facts.requester is None:
        return Allow()
    body = copy.deepcopy(body)  # the request stays as it came
    set_label(body, REQUESTER_LABEL, requester_value(*facts.requester))
    return Rewrite(gojson.encode(body), "labelled with its requester")


def network_connect_facts(request: ApiRequest) -> FactsQuery:
    return FactsQuery(networks=frozenset({request.param("id")}))


def network_connect(request: ApiRequest, ctx: PolicyContext, facts: Facts) -> Decision:
    network = request.param("id")
    if network.lower() == "host" or facts.network_drivers.get(network) == "host":
        raise PolicyDenied("host-namespace", host_namespaces_message(["network"]))
    return pin_network_container(request, facts)


def network_disconnect(request: ApiRequest, ctx: PolicyContext, facts: Facts) -> Decision:
    return pin_network_container(request, facts)


def pin_network_container(request: ApiRequest, facts: Facts) -> Decision:
    """Connect or disconnect the container looked up, named by its full id (see
    ``policy.pinning``); as it came when nothing was looked up."""
    body = body_object(request)
    ref = body.string(NETWORK_BODY)
    found = facts.containers.get(ref)
    if found is None or found.id in ("", ref):
        return Allow()
    body = copy.deepcopy(body)  # the request stays as it came
    body.set_field(NETWORK_BODY, found.id)
    return Rewrite(gojson.encode(body), "container named by its full id")


BUILDKIT_REFUSED = (
    f"{ECI_PREFIX}BuildKit builds are refused: this engine's BuildKit runs RUN steps with "
    "plain runc as host root, outside eci's user namespaces; build with the classic builder "
    "(DOCKER_BUILDKIT=0), whose RUN steps are isolated containers"
)


def buildkit(request: ApiRequest, ctx: PolicyContext, facts: Facts) -> Decision:
    """dockerd 20.10's embedded BuildKit executes RUN with its own runc, never the configured
    runtime: until eci isolates those steps, BuildKit solves (``/build?version=2``, ``/grpc``)
    are refused. ``/session`` stays open: the classic builder uses it to sync the context."""
    raise PolicyDenied("buildkit", BUILDKIT_REFUSED)


def build_facts(request: ApiRequest) -> FactsQuery:
    return FactsQuery(hosts=remote.hosts(request))


def build(request: ApiRequest, ctx: PolicyContext, facts: Facts) -> Decision:
    """Classic-builder options in the query (its RUN steps run under the default runtime),
    and its remote context (``policy.remote``)."""
    if any(v.strip() == "2" for v in request.target.query_values("version")):
        return buildkit(request, ctx, facts)
    remote.check(request, facts)
    modes = [v.strip().lower() for v in request.target.query_values("networkmode")]
    if any(m.startswith("container:") for m in modes):
        raise PolicyDenied(
            "build-shared-network",
            f"{ECI_PREFIX}builds may not join another container's network namespace",
        )
    if any(v.strip() for v in request.target.query_values("cgroupparent")):
        raise PolicyDenied(
            "build-cgroup-parent",
            f"{ECI_PREFIX}builds may not set a cgroup parent: it would move their containers "
            "out of the engine's cgroup",
        )
    if "host" in modes:
        raise PolicyDenied("build-host-network", f"{ECI_PREFIX}builds may not use the host network")
    return Allow()


def plugin_install(request: ApiRequest, ctx: PolicyContext, facts: Facts) -> Decision:
    raise PolicyDenied(
        "plugin-install",
        f"{ECI_PREFIX}installing, enabling or configuring engine plugins is not allowed "
        "(plugins run with the engine's full host privileges)",
    )


def _task_template(body: GoObject) -> GoObject:
    return body.obj("TaskTemplate") or GoObject()


def service_mounts(request: ApiRequest) -> list[HostMount]:
    spec = _task_template(body_object(request)).obj("ContainerSpec")
    return list(from_mounts(spec.array("Mounts"))) if spec else []


def service_facts(request: ApiRequest) -> FactsQuery:
    mounts = service_mounts(request)
    body = body_object(request)
    networks = [
        n.string("Target")
        for n in (*_task_template(body).array("Networks"), *body.array("Networks"))
        if isinstance(n, GoObject)
    ]
    return FactsQuery(
        volumes=frozenset(m.volume for m in mounts if m.volume),
        paths=frozenset(m.path for m in mounts if m.path),
        networks=frozenset(n for n in networks if n),
    )


def service(request: ApiRequest, ctx: PolicyContext, facts: Facts) -> Decision:
    """Swarm tasks run with the default runtime (sysbox-runc); what is checked is what a
    service can ask beyond a container: host mounts, the host network, plugin tasks."""
    body = body_object(request)
    template = _task_template(body)
    if template.obj("PluginSpec") is not None or template.string("Runtime").lower() == "plugin":
        return plugin_install(request, ctx, facts)
    for entry in (*template.array("Networks"), *body.array("Networks")):
        if not isinstance(entry, GoObject):
            raise InvalidBody("Networks entries must be objects")
        target = entry.string("Target")
        if target.lower() == "host" or facts.network_drivers.get(target) == "host":
            raise PolicyDenied("host-namespace", host_namespaces_message(["network"]))
    spec = template.obj("ContainerSpec") or GoObject()
    check_mounts(service_mounts(request), image_name(spec), facts, ctx)
    return Allow()


def swarm_join(request: ApiRequest, ctx: PolicyContext, facts: Facts) -> Decision:
    """Swarm managers schedule tasks on this engine without passing the proxy: joining a
    swarm, or creating one (its join tokens let another engine join as a manager)."""
    raise PolicyDenied(
        "swarm",
        f"{ECI_PREFIX}swarm mode is not allowed: its managers would run tasks on this "
        "engine without eci's checks",
    )
