"""The OCI spec rewrite on `create`: a pure `transform(spec, ctx) -> spec` of one-concern steps.

Theory of operation: dockerd hands the shim a runc bundle whose config.json may ask for anything
a Docker API client could. Each step below enforces one isolation property on a deep copy of the
spec; a step refuses (SpecRefused) rather than weaken isolation. All facts about the host that a
step needs (bounding capabilities, which namespace paths are the host's, where staged mounts
ended up) arrive in `SpecContext`, so this module does no IO and is unit-tested with plain dicts.
"""

from __future__ import annotations

import copy
import errno

from eci.contract.devices import ALLOWED_DEVICE_NUMBERS
from eci.contract.masks import (
    LXCFS_PROC_FILES,
    LXCFS_SYS_FILES,
    MASKED_PROC_DIRS,
    MASKED_PROC_FILES,
    MASKED_SYS_DIRS,
    READONLY_PROC,
)
from eci.errors import SpecRefused, host_namespaces_message, proc_workdir_refusal
from eci.runtime.linux.mountinfo import is_under

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
    staged_rootfs: the root filesystem the caller staged (reachable by container root);
    listener_path: the mount supervisor's socket (runc's seccomp `listenerPath`);
    seccomp_arches: the SCMP_ARCH_… names of this host (a filter must cover every one);
    lxcfs_dir: where lxcfs is mounted (its proc/… files virtualize the container's /proc).
    """

    __slots__ = (
        "bounding_caps",
        "host_namespace_paths",
        "listener_path",
        "lxcfs_dir",
        "range_base",
        "seccomp_arches",
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
        listener_path: str | None = None,
        seccomp_arches: tuple[str, ...] = (),
        lxcfs_dir: str | None = None,
    ) -> None:
        self.range_base = range_base
        self.bounding_caps = bounding_caps
        self.host_namespace_paths = host_namespace_paths
        self.staged_sources: Mapping[int, str] = staged_sources or {}
        self.staged_rootfs = staged_rootfs
        self.listener_path = listener_path
        self.seccomp_arches = seccomp_arches
        self.lxcfs_dir = lxcfs_dir


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


def refuse_proc_workdir(spec: Spec, ctx: SpecContext) -> None:
    """No working directory under /proc (see `proc_workdir_refusal`), the image's included."""
    del ctx
    refusal = proc_workdir_refusal(str(spec.get("process", {}).get("cwd") or "/"))
    if refusal:
        raise SpecRefused(refusal)


#: Docker's masked and read-only paths, and more (see eci.contract.masks); set for every
#: container, --privileged and `--security-opt systempaths=unconfined` included.
MASKED_PATHS = (
    *tuple(f"/proc/{n}" for n in sorted(MASKED_PROC_FILES + MASKED_PROC_DIRS)),
    *tuple(f"/sys/{n}" for n in sorted(MASKED_SYS_DIRS)),
)
READONLY_PATHS = tuple(f"/proc/{n}" for n in READONLY_PROC)


def mask_system_paths(spec: Spec, ctx: SpecContext) -> None:
    del ctx
    linux = spec.setdefault("linux", {})
    for key, paths in (("maskedPaths", MASKED_PATHS), ("readonlyPaths", READONLY_PATHS)):
        current = list(linux.get(key) or [])
        linux[key] = current + [p for p in paths if p not in current]


def _allowed_device(kind: object, major: object, minor: object) -> bool:
    """One of eci.contract.devices (None there: any minor)."""
    allowed = ALLOWED_DEVICE_NUMBERS
    return (kind, major, minor) in allowed or (kind, major, None) in allowed


def confine_devices(spec: Spec, ctx: SpecContext) -> None:
    """No host devices: --privileged hands over every node of the host's /dev (disks, kmsg,
    mem…). Keep the allowed ones (by number, not by path: `--device /dev/vda:/dev/null`), and
    let the device cgroup allow no more: mknod anywhere, read/write only those."""
    del ctx
    linux = spec.setdefault("linux", {})
    linux["devices"] = [
        d
        for d in linux.get("devices") or []
        if _allowed_device(d.get("type"), d.get("major"), d.get("minor"))
    ]
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    rules += [{"allow": True, "type": t, "major": -1, "minor": -1, "access": "m"} for t in "cb"]
    rules += [
        {
            "allow": True,
            "type": t,
            "major": major,
            "minor": -1 if minor is None else minor,
            "access": "rwm",
        }
        for t, major, minor in sorted(ALLOWED_DEVICE_NUMBERS, key=repr)
    ]
    linux.setdefault("resources", {})["devices"] = rules


#: procfs and sysfs files lxcfs virtualizes
LXCFS_FILES = (
    *tuple(f"/proc/{name}" for name in LXCFS_PROC_FILES),
    *tuple(f"/sys/{name}" for name in LXCFS_SYS_FILES),
)


def virtualize_proc(spec: Spec, ctx: SpecContext) -> None:
    """The container's /proc/{meminfo,cpuinfo,stat,uptime,…} show its own limits and uptime:
    lxcfs answers for the reading process's cgroup (bound after /proc and /sys are mounted)."""
    if ctx.lxcfs_dir is None:
        return
    mounts = spec.setdefault("mounts", [])
    mounts += [
        {
            "destination": path,
            "type": "bind",
            "source": ctx.lxcfs_dir.rstrip("/") + path,
            "options": ["bind", "rprivate"],
        }
        for path in LXCFS_FILES
    ]


#: mount(2) and umount2(2) go to the supervisor, and sysinfo(2) (answered with the container's
#: memory and uptime); the new mount API (fd-based, so beyond its path checks) fails as on an
#: old kernel, and callers fall back to mount(2).
SUPERVISED_SYSCALLS = ("mount", "umount", "umount2", "sysinfo")
UNSUPPORTED_SYSCALLS = (
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "mount_setattr",
    "move_mount",
    "open_tree",
)
ALLOWING = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG")


def _allowed_syscalls(seccomp: dict[str, Any], names: Iterable[str]) -> list[str]:
    """Which of `names` the filter lets through for some arguments at least: by its default
    action or by an allowing rule, conditional or not (unless a rule refuses it outright).
    Those go to the supervisor whole: a rule of the profile that refuses only some arguments
    would leave the rest unsupervised."""
    rules = seccomp.get("syscalls") or []
    default_allows = seccomp.get("defaultAction") in ALLOWING
    allowed = []
    for name in names:
        named = [r for r in rules if name in (r.get("names") or [])]
        if any(r.get("action") not in ALLOWING and not r.get("args") for r in named):
            continue  # refused whatever the arguments: it stays refused
        if default_allows or any(r.get("action") in ALLOWING for r in named):
            allowed.append(name)
    return allowed


def supervise_syscalls(spec: Spec, ctx: SpecContext) -> None:
    """Send mount, umount2 and sysinfo to the supervisor (seccomp notify) where the profile
    allows them at all: without CAP_SYS_ADMIN Docker's profile refuses mount, and still does.
    The supervisor then decides every call: the profile's own rules for them are dropped."""
    if ctx.listener_path is None:
        return
    linux = spec.setdefault("linux", {})
    seccomp = linux.get("seccomp") or {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": list(ctx.seccomp_arches),
        "syscalls": [],
    }
    supervised = _allowed_syscalls(seccomp, SUPERVISED_SYSCALLS)
    if not supervised:
        return
    unsupported = _allowed_syscalls(seccomp, UNSUPPORTED_SYSCALLS)
    changed = set(supervised) | set(unsupported)
    rules = []
    for rule in seccomp.get("syscalls") or []:
        names = [n for n in rule.get("names") or [] if n not in changed]
        if names:
            rules.append({**rule, "names": names})
    rules.append({"names": supervised, "action": "SCMP_ACT_NOTIFY"})
    if unsupported:
        rules.append({"names": unsupported, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS})
    seccomp["syscalls"] = rules
    seccomp["listenerPath"] = ctx.listener_path
    linux["seccomp"] = seccomp


STEPS: tuple[Callable[[Spec, SpecContext], None], ...] = (
    refuse_host_namespaces,
    refuse_proc_workdir,
    own_user_namespace,
    own_cgroup_namespace,
    clamp_ping_group_range,
    trim_capabilities,
    use_staged_mounts,
    use_staged_rootfs,
    mask_system_paths,
    confine_devices,
    virtualize_proc,
    supervise_syscalls,
)


def transform(spec: Spec, ctx: SpecContext, in_place: bool = False) -> Spec:
    """The rewritten spec; the input is not modified unless `in_place` (the shim's own freshly
    loaded copy: a deep copy of a --privileged spec costs milliseconds on every start)."""
    result = spec if in_place else copy.deepcopy(spec)
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
