"""The OCI spec rewrite on `create`: a pure `transform(spec, ctx) -> spec` of one-concern steps.

Theory of operation: dockerd hands the shim a runc bundle whose config.json may ask for anything
a Docker API client could. Each step below enforces one isolation property on a deep copy of the
spec; a step refuses (SpecRefused) rather than weaken isolation. All facts about the host that a
step needs (bounding capabilities, which namespace paths are the host's, where staged mounts
ended up) arrive in `SpecContext`, so this module does no IO and is unit-tested with plain dicts.
"""

from __future__ import annotations

import copy
import re

from eci.errors import SpecRefused, host_namespaces_message
from eci.runtime.mountinfo import is_under

# The shim imports this on every container start: no typing/dataclasses at run time (they cost
# more than the interpreter's own start-up). Types are for mypy only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

RANGE_SIZE = 65536
#: Namespaces a container must have of its own, as named in the OCI spec and in error texts.
PRIVATE_NAMESPACES = ("pid", "ipc", "uts", "mount")
PING_GROUP_RANGE = "net.ipv4.ping_group_range"

if TYPE_CHECKING:
    Spec = dict[str, Any]


class SpecContext:
    """What the transform needs to know about this container and host.

    range_base: first host uid/gid of the container's exclusive range;
    bounding_caps: capability names (CAP_…) the host's bounding set holds;
    host_namespace_paths: namespace types whose spec `path` is a host namespace;
    staged_sources: spec mount index -> source staged by the caller (ro-locked or idmapped);
    staged_rootfs: the root filesystem the caller staged (reachable by container root).
    """

    __slots__ = (
        "bounding_caps",
        "host_namespace_paths",
        "range_base",
        "staged_rootfs",
        "staged_sources",
    )

    def __init__(
        self,
        range_base: int,
        bounding_caps: frozenset[str],
        host_namespace_paths: frozenset[str] = frozenset(),
        staged_sources: Mapping[int, str] | None = None,
        staged_rootfs: str | None = None,
    ) -> None:
        self.range_base = range_base
        self.bounding_caps = bounding_caps
        self.host_namespace_paths = host_namespace_paths
        self.staged_sources: Mapping[int, str] = staged_sources or {}
        self.staged_rootfs = staged_rootfs


def _namespaces(spec: Spec) -> list[dict[str, Any]]:
    linux = spec.setdefault("linux", {})
    namespaces: list[dict[str, Any]] = linux.setdefault("namespaces", [])
    return namespaces


def refuse_host_namespaces(spec: Spec, ctx: SpecContext) -> None:
    """No host pid/ipc/uts/network namespace: a missing entry means 'share the host's'."""
    own = {ns["type"] for ns in _namespaces(spec) if ns.get("type")}
    host = set(ctx.host_namespace_paths)
    if "network" not in own or "network" in host:
        raise SpecRefused(host_namespaces_message(["network"]))
    shared = [t for t in PRIVATE_NAMESPACES if t not in own or t in host]
    if shared:
        raise SpecRefused(host_namespaces_message(shared))


def own_user_namespace(spec: Spec, ctx: SpecContext) -> None:
    """A fresh user namespace mapping container 0..65535 to the exclusive host range.

    Whatever was asked (`--userns=host`, a userns path to join) is replaced, never obeyed."""
    namespaces = [ns for ns in _namespaces(spec) if ns.get("type") != "user"]
    namespaces.append({"type": "user"})
    spec["linux"]["namespaces"] = namespaces
    mapping = [{"containerID": 0, "hostID": ctx.range_base, "size": RANGE_SIZE}]
    spec["linux"]["uidMappings"] = copy.deepcopy(mapping)
    spec["linux"]["gidMappings"] = copy.deepcopy(mapping)


def own_cgroup_namespace(spec: Spec, ctx: SpecContext) -> None:
    """A fresh cgroup namespace: the container sees its own cgroup as the root of
    /sys/fs/cgroup. One to join by path (the host's or another's) is replaced, not obeyed."""
    del ctx
    namespaces = [ns for ns in _namespaces(spec) if ns.get("type") != "cgroup"]
    namespaces.append({"type": "cgroup"})
    spec["linux"]["namespaces"] = namespaces


def clamp_ping_group_range(spec: Spec, ctx: SpecContext) -> None:
    """Docker asks for '0 2147483647', which a user namespace cannot grant: clamp to its ids."""
    del ctx
    sysctl = spec.get("linux", {}).get("sysctl") or {}
    value = sysctl.get(PING_GROUP_RANGE)
    if value is None:
        return
    try:
        low, high = (int(part) for part in str(value).split())
    except ValueError as exc:
        raise SpecRefused(f"sysctl {PING_GROUP_RANGE}={value!r} is not two numbers") from exc
    low, high = max(0, min(low, RANGE_SIZE - 1)), max(0, min(high, RANGE_SIZE - 1))
    sysctl[PING_GROUP_RANGE] = f"{low} {high}"


def trim_capabilities(spec: Spec, ctx: SpecContext) -> None:
    """Capabilities the host's bounding set lacks cannot be granted (runc would fail)."""
    caps = spec.get("process", {}).get("capabilities") or {}
    for kind, names in caps.items():
        if isinstance(names, list):
            caps[kind] = [name for name in names if name in ctx.bounding_caps]


def use_staged_mounts(spec: Spec, ctx: SpecContext) -> None:
    """Point mounts at the sources the caller staged (read-only locked or idmapped)."""
    mounts = spec.get("mounts") or []
    for index, source in ctx.staged_sources.items():
        if not 0 <= index < len(mounts):
            raise SpecRefused(f"staged mount index {index} is outside the spec's mounts")
        mounts[index]["source"] = source


def use_staged_rootfs(spec: Spec, ctx: SpecContext) -> None:
    """runc sets the rootfs up as container root, which cannot traverse dockerd's 0710 dirs."""
    if ctx.staged_rootfs is not None:
        spec.setdefault("root", {})["path"] = ctx.staged_rootfs


STEPS: tuple[Callable[[Spec, SpecContext], None], ...] = (
    refuse_host_namespaces,
    own_user_namespace,
    own_cgroup_namespace,
    clamp_ping_group_range,
    trim_capabilities,
    use_staged_mounts,
    use_staged_rootfs,
)


def transform(spec: Spec, ctx: SpecContext) -> Spec:
    """The rewritten spec (the input is not modified)."""
    result = copy.deepcopy(spec)
    for step in STEPS:
        step(result, ctx)
    return result


# --- mount planning (pure): which spec mounts the caller must stage, and how ---


class MountPlan:
    """One bind mount to stage in the host namespace before runc sees the spec.

    idmap: map disk ids into the container's range (Docker-managed, container-owned data);
    readonly: lock read-only (staged ro in the host namespace, so remount rw is EPERM).
    """

    __slots__ = ("idmap", "index", "readonly", "source")

    def __init__(self, index: int, source: str, idmap: bool, readonly: bool) -> None:
        self.index = index
        self.source = source
        self.idmap = idmap
        self.readonly = readonly

    def _key(self) -> tuple[int, str, bool, bool]:
        return (self.index, self.source, self.idmap, self.readonly)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MountPlan) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"MountPlan(index={self.index}, source={self.source!r}, idmap={self.idmap}, "
            f"readonly={self.readonly})"
        )


def _is_bind(mount: Mapping[str, Any]) -> bool:
    options = mount.get("options") or []
    return mount.get("type") == "bind" or "bind" in options or "rbind" in options


#: A container's own files dockerd bind-mounts into it (below containers/<id>/).
CONTAINER_OWN_FILES = frozenset({"hosts", "hostname", "resolv.conf", "mounts"})


def _container_owned(source: str, docker_data_root: str, container_id: str) -> bool:
    """Docker-managed data that belongs to containers: a named volume's `_data`, or this
    container's own files (hosts, hostname, resolv.conf, mounts/ such as shm). Anything else
    under the data-root (layers, the image store, hostconfig.json, other containers) is not,
    and is never idmapped."""
    root = docker_data_root.rstrip("/")
    if not is_under(source, root) or source == root:
        return False
    parts = source[len(root) + 1 :].split("/")
    if any(part in ("", ".", "..") for part in parts):
        return False
    if parts[0] == "volumes":
        return len(parts) >= 3 and parts[2] == "_data"
    if parts[0] == "containers":
        return (
            len(parts) >= 3
            and bool(container_id)
            and parts[1] == container_id
            and parts[2] in CONTAINER_OWN_FILES
        )
    return False


def plan_mounts(spec: Spec, docker_data_root: str, container_id: str = "") -> list[MountPlan]:
    """Every bind is staged by eci. Binds of a volume's data and of this container's own files
    are idmapped so container root owns them; every other host path keeps host ids (safe
    default: root's files stay nobody's) and is checked against the restricted paths once
    resolved, on the very mount runc will use; every read-only bind is staged read-only so the
    kernel locks it."""
    plans = []
    for index, mount in enumerate(spec.get("mounts") or []):
        if not _is_bind(mount):
            continue
        source = str(mount.get("source", ""))
        idmap = _container_owned(source, docker_data_root, container_id)
        readonly = "ro" in (mount.get("options") or [])
        plans.append(MountPlan(index, source, idmap, readonly))
    return plans


def restricted_source(resolved: str, restricted: Iterable[str]) -> bool:
    """A bind source (resolved on the host) that is, lies in, or contains a restricted path."""
    return any(is_under(resolved, r) or is_under(r, resolved) for r in restricted)


GRANT_NAME = re.compile(r"[0-9a-f]{16}/docker\.sock\Z")


def granted_socket(resolved: str, grants_dir: str) -> bool:
    """A bind source that is exactly a socket the proxy granted (``<grants>/<token>/docker.sock``,
    eci's own rewrite of an allowed image's socket mount); the caller checks it is a socket."""
    prefix = grants_dir.rstrip("/") + "/"
    return (
        bool(grants_dir)
        and resolved.startswith(prefix)
        and bool(GRANT_NAME.match(resolved[len(prefix) :]))
    )
