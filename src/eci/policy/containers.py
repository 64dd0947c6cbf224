"""Rules for creating, starting, updating and exec-ing into containers."""

from __future__ import annotations

import copy
import posixpath
from typing import Any

from eci.contract.devices import ALLOWED_DEVICE_PATHS
from eci.contract.grants import grant_path
from eci.contract.labels import GRANT_LABEL, REQUESTER_LABEL
from eci.contract.requester import requester_value
from eci.dockerapi import gojson
from eci.dockerapi.gojson import GoObject, InvalidBody
from eci.dockerapi.imageref import InvalidReference, is_image_id, parse_reference
from eci.dockerapi.request import ApiRequest
from eci.errors import (
    ECI_PREFIX,
    PolicyDenied,
    device_message,
    host_namespaces_message,
    proc_workdir_refusal,
    socket_mount_message,
)
from eci.policy.context import PolicyContext
from eci.policy.decision import Allow, Decision, ExtractInContainer, Rewrite
from eci.policy.facts import ContainerFacts, Facts, FactsQuery
from eci.policy.grants import Grant, pin_image, redirect_sockets
from eci.policy.labels import set_label
from eci.policy.mounts import HostMount, host_mounts, local_volume_source, volumes_from
from eci.policy.ownership import check_owner, check_volume

#: Namespace modes of HostConfig, by the name used in error texts.
NAMESPACE_MODES = (
    ("pid", "PidMode"),
    ("ipc", "IpcMode"),
    ("uts", "UTSMode"),
    ("network", "NetworkMode"),
)
#: HostConfig fields a create must leave empty: a cgroup outside the engine's own tree
CREATE_FORBIDDEN = ("CgroupParent",)
#: Resources a `container update` must not touch: they would reach host devices or cgroups.
UPDATE_FORBIDDEN = ("Devices", "DeviceCgroupRules", "DeviceRequests", "CgroupParent")
BUILTIN_NETWORKS = {"", "default", "bridge", "none", "host"}


def body_object(request: ApiRequest) -> GoObject:
    body = request.json
    if not isinstance(body, GoObject):
        raise InvalidBody("the request body must be a JSON object")
    return body


def host_configs(body: GoObject) -> list[GoObject]:
    """The inner ``HostConfig`` and the body itself: dockerd reads HostConfig fields from the
    top level when there is no inner one (a legacy form), so both are policed."""
    inner = body.obj("HostConfig")
    return [inner, body] if inner is not None else [body]


def image_name(body: GoObject) -> str:
    """The image as the socket-mount message names it (repository, no tag)."""
    image = body.string("Image")
    if is_image_id(image):
        return image
    try:
        return parse_reference(image).repository
    except InvalidReference:
        return image


def _container_ref(mode: str) -> str | None:
    kind, sep, ref = mode.partition(":")
    return ref if sep and kind.lower() == "container" and ref else None


def _full_id(ref: str, facts: Facts) -> str:
    found = facts.containers.get(ref)
    return found.id if found is not None and found.id else ref


def pin_containers(body: GoObject, facts: Facts) -> GoObject:
    """A copy of ``body`` naming the containers whose namespaces or volumes it shares by the
    full ids looked up (see ``policy.pinning``: dockerd resolves ``VolumesFrom`` at create
    and ``container:<ref>`` at every start)."""
    body = copy.deepcopy(body)
    for hc in host_configs(body):
        for _, field in NAMESPACE_MODES:
            mode = hc.string(field)
            if ref := _container_ref(mode):
                hc.set_field(field, f"{mode.partition(':')[0]}:{_full_id(ref, facts)}")
        if specs := hc.array("VolumesFrom"):
            pinned = []
            for spec in specs:
                ref, sep, options = str(spec).partition(":")
                pinned.append(f"{_full_id(ref, facts)}{sep}{options}")
            hc.set_field("VolumesFrom", pinned)
    return body


def create_facts(request: ApiRequest) -> FactsQuery:
    body = body_object(request)
    hcs = host_configs(body)
    containers = set(volumes_from(hcs))
    networks: set[str] = set()
    for hc in hcs:
        for _, field in NAMESPACE_MODES:
            mode = hc.string(field)
            if ref := _container_ref(mode):
                containers.add(ref)
            elif field == "NetworkMode" and mode.lower() not in BUILTIN_NETWORKS:
                networks.add(mode)
    networking = body.obj("NetworkingConfig")
    endpoints = networking.obj("EndpointsConfig") if networking else None
    networks.update(k for k in (endpoints or {}) if k.lower() not in BUILTIN_NETWORKS)
    mounts = list(host_mounts(body, hcs))
    paths = frozenset(m.path for m in mounts if m.path)
    return FactsQuery(
        containers=frozenset(containers),
        volumes=frozenset(m.volume for m in mounts if m.volume),
        networks=frozenset(networks),
        paths=paths,
        image=body.string("Image") if paths else None,
    )


def _not_eci(ref: str, facts: Facts, ctx: PolicyContext) -> str | None:
    """The runtime of container ``ref`` if it exists and is not an ECI container."""
    found = facts.containers.get(ref)
    if found is not None and found.runtime != ctx.runtime:
        return found.runtime or "default"
    return None


def check_namespaces(hcs: list[GoObject], body: GoObject, facts: Facts, ctx: PolicyContext) -> None:
    shared: list[str] = []
    for hc in hcs:
        for kind, field in NAMESPACE_MODES:
            mode = hc.string(field)
            driver = facts.network_drivers.get(mode) if field == "NetworkMode" else None
            if mode.lower() == "host" or driver == "host":
                shared.append(kind)
            elif ref := _container_ref(mode):
                if runtime := _not_eci(ref, facts, ctx):
                    raise PolicyDenied(
                        "shared-namespace",
                        f"{ECI_PREFIX}can't share the {kind} namespace of container {ref!r}: "
                        f"it is not an enhanced-isolation container (runtime {runtime})",
                    )
                found = facts.containers.get(ref)
                check_owner(ref, found, f"share the {kind} namespace of", ctx, facts)
    networking = body.obj("NetworkingConfig")
    endpoints = networking.obj("EndpointsConfig") if networking else None
    for name in endpoints or {}:
        if name.lower() == "host" or facts.network_drivers.get(name) == "host":
            shared.append("network")
    if shared:
        kinds = list(dict.fromkeys(shared))
        raise PolicyDenied("host-namespace", host_namespaces_message(kinds))


def check_mounts(
    mounts: list[HostMount],
    image: str,
    facts: Facts,
    ctx: PolicyContext,
    granted: str | None = None,
) -> None:
    """Every host mount against the protected paths; ``granted`` is the socket eci itself
    put in (see ``grant_socket``)."""
    for mount in mounts:
        if mount.path is not None and mount.path == granted:
            continue
        if mount.path is not None:
            ctx.host_paths.check(mount.path, facts.real_paths.get(mount.path), image)
        elif mount.volume is not None and (
            device := local_volume_source(facts.volume_options.get(mount.volume))
        ):
            ctx.host_paths.check(device, facts.real_paths.get(device), image)


def check_volumes_from(hcs: list[GoObject], image: str, facts: Facts, ctx: PolicyContext) -> None:
    for ref in volumes_from(hcs):
        found = facts.containers.get(ref)
        check_owner(ref, found, "mount the volumes of", ctx, facts)
        for mount in found.mounts if found else ():
            if mount.type == "bind":
                ctx.host_paths.check(mount.source, facts.real_paths.get(mount.source), image)


def grant_socket(body: GoObject, ctx: PolicyContext, facts: Facts) -> tuple[GoObject, Grant]:
    """The create body with its Docker socket mounts redirected to a socket of its own, if
    the image may have one (``imagelist``); else the socket-mount refusal."""
    denied = PolicyDenied("docker-socket-mount", socket_mount_message(image_name(body)))
    token = facts.grant_token
    if not ctx.grants_dir or facts.image is None or token is None:
        raise denied
    match = ctx.image_list.match(facts.image, facts.resolved, facts.bases)
    if match is None:
        raise denied
    body = copy.deepcopy(body)

    def is_socket(path: str) -> bool:
        return ctx.host_paths.is_socket(path, facts.real_paths.get(path))

    redirect_sockets(body, host_configs(body), is_socket, grant_path(ctx.grants_dir, token))
    grant = Grant(token, body.string("Image"), match)
    pin_image(body, facts.image.id, token)
    return body, grant


def refuse_reserved_labels(body: GoObject, set_by_eci: list[str]) -> None:
    """eci's own labels (``set_by_eci``: those eci itself just put in) are not the client's
    to set: they mark a granted Docker socket, or who asked for a container or volume."""
    labels = body.obj("Labels") or GoObject()
    reserved = [label for label in (GRANT_LABEL, REQUESTER_LABEL) if label in labels]
    if [label for label in reserved if label not in set_by_eci]:
        raise PolicyDenied(
            "reserved-label",
            f"{ECI_PREFIX}the label {reserved[-1]} is eci's own (it marks a granted Docker "
            "socket, or who asked for a container or volume); requests may not set it",
        )


def own_grant(found: ContainerFacts | None, ctx: PolicyContext) -> str | None:
    """The host path of the socket eci granted container ``found``, if any."""
    if found is None or not found.grant or not ctx.grants_dir:
        return None
    return grant_path(ctx.grants_dir, found.grant)


def force_runtime(body: GoObject, ctx: PolicyContext, grant: Grant | None = None) -> Decision:
    """Set the runtime in the HostConfig dockerd will use (inner, else the top level)."""
    body = copy.deepcopy(body)  # the request stays as it came; the rewrite is a new body
    inner = body.obj("HostConfig")
    target = inner if inner is not None else body
    target.set_field("Runtime", ctx.runtime)
    return Rewrite(gojson.encode(body), f"runtime forced to {ctx.runtime}", grant)


def check_workdir(body: GoObject) -> None:
    refusal = proc_workdir_refusal(body.string("WorkingDir") or "/")
    if refusal:
        raise PolicyDenied("proc-workdir", ECI_PREFIX + refusal)


def check_devices(hcs: list[GoObject]) -> None:
    """No host devices but the allowed pseudo-devices (`--device`); device cgroup rules and
    device requests (GPUs) would hand the host's hardware over."""
    for hc in hcs:
        for device in hc.array("Devices"):
            path = device.string("PathOnHost") if isinstance(device, GoObject) else str(device)
            if posixpath.normpath(path or "/") not in ALLOWED_DEVICE_PATHS:
                raise PolicyDenied("host-device", device_message(path))
        for field in ("DeviceCgroupRules", "DeviceRequests"):
            if hc.array(field):
                raise PolicyDenied(
                    "host-device",
                    f"{ECI_PREFIX}containers may not set {field}: containers get no host devices",
                )


def create(request: ApiRequest, ctx: PolicyContext, facts: Facts) -> Decision:
    body = body_object(request)
    hcs = host_configs(body)
    image = image_name(body)
    check_namespaces(hcs, body, facts, ctx)
    for hc in hcs:
        for field in CREATE_FORBIDDEN:
            if hc.field(field):
                raise PolicyDenied(
                    "container-create",
                    f"{ECI_PREFIX}containers may not set {field}: it would move them out of "
                    "the engine's cgroup",
                )
    check_workdir(body)
    check_devices(hcs)
    mounts = list(host_mounts(body, hcs))
    grant = None
    if ctx.host_paths.binds_socket((m.path for m in mounts if m.path), facts.real_paths):
        body, grant = grant_socket(body, ctx, facts)
        hcs = host_configs(body)
        mounts = list(host_mounts(body, hcs))  # checked again, as rewritten
    refuse_reserved_labels(body, [GRANT_LABEL] if grant is not None else [])
    granted = grant_path(ctx.grants_dir, grant.token) if grant else None
    check_mounts(mounts, image, facts, ctx, granted)
    for volume in sorted({m.volume for m in mounts if m.volume}):
        check_volume(volume, "mount", ctx, facts)
    check_volumes_from(hcs, image, facts, ctx)
    body = pin_containers(body, facts)
    if facts.requester is not None:  # root's too (0:gid names no one): not an image's label
        set_label(body, REQUESTER_LABEL, requester_value(*facts.requester))
    return force_runtime(body, ctx, grant)


def start(request: ApiRequest, ctx: PolicyContext, facts: Facts) -> Decision:
    """API < 1.24 let `start` carry a HostConfig (binds, privileges): only an empty one passes.

    The container's bind sources are checked again, resolved now: dockerd mounts them at
    start, and a symlink in a user's directory may point elsewhere than at create."""
    if request.body.strip() not in (b"", b"{}", b"null"):
        raise PolicyDenied(
            "start-hostconfig",
            f"{ECI_PREFIX}a HostConfig in the container start request (API before v1.24) is "
            "not allowed; give it when creating the container",
        )
    found = facts.containers.get(request.param("id"))
    granted = own_grant(found, ctx)
    for mount in found.mounts if found else ():
        if mount.type == "bind" and mount.source != granted:
            ctx.host_paths.check(mount.source, facts.real_paths.get(mount.source), "container")
    return Allow()


def update(request: ApiRequest, ctx: PolicyContext, facts: Facts) -> Decision:
    body = body_object(request)
    for field in UPDATE_FORBIDDEN:
        value: Any = body.field(field)
        if value:
            raise PolicyDenied(
                "container-update",
                f"{ECI_PREFIX}container update may not change {field}: it would weaken the "
                "container's isolation",
            )
    return Allow()


def target_container_facts(request: ApiRequest) -> FactsQuery:
    return FactsQuery(containers=frozenset({request.param("id")}))


def exec_create(request: ApiRequest, ctx: PolicyContext, facts: Facts) -> Decision:
    body = body_object(request)
    target = request.param("id")
    check_workdir(body)
    if body.flag("Privileged") and (runtime := _not_eci(target, facts, ctx)):
        raise PolicyDenied(
            "privileged-exec",
            f"{ECI_PREFIX}privileged exec into container {target!r} is not allowed: it is not "
            f"an enhanced-isolation container (runtime {runtime})",
        )
    return Allow()


def archive(request: ApiRequest, ctx: PolicyContext, facts: Facts) -> Decision:
    """`docker cp` into or out of a container with a host bind mount is refused, whatever
    path it names: dockerd copies through the bind's *host* path itself, as host root, keeping
    the tar's owners (a setuid-root file planted in a user's directory) and following the
    container's symlinks into the bind. The files are on the host already for whoever made
    the bind; `docker cp` of containers without host binds works as ever. An upload into a
    running eci container is extracted inside it, as its root (see ExtractInContainer)."""
    target = request.param("id")
    found = facts.containers.get(target)
    granted = own_grant(found, ctx)
    binds = [m for m in (found.mounts if found else ()) if m.type == "bind" and m.source != granted]
    if binds:
        raise PolicyDenied(
            "cp-with-host-bind",
            f"{ECI_PREFIX}docker cp is refused for containers with host bind mounts "
            f"({binds[0].source} at {binds[0].destination}): dockerd would copy through the "
            "host path as root; use the files on the host directly",
        )
    upload = request.route_name == "container.archive_put"
    if upload and found is not None and found.pid and found.runtime == ctx.runtime:
        return ExtractInContainer(
            found.pid,
            found.id,
            request.target.query_first("path") or "",
            request.target.query_flag("noOverwriteDirNonDir"),
            found.user if request.target.query_flag("copyUIDGID") else "",
        )
    return Allow()
