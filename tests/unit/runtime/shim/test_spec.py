"""`transform(spec, ctx)` and `plan_mounts(spec, root, CID)` on specs shaped like dockerd 20.10's.

The base spec is what dockerd 20.10 writes for `docker run -v /srv:/data:ro -v v:/vol busybox`
(trimmed of resources/seccomp, which the transform does not touch).

Hypothesis invariant (test_transform_invariant): for any combination of present, missing,
joined (path) and host namespaces, any user-namespace request and any capability lists,
`transform` either raises SpecRefused -- exactly when the spec shares the network, pid, ipc or
uts namespace with the host -- or returns a spec that has exactly one user namespace (a fresh
`{"type": "user"}`), exactly eci's uid/gid maps `[{containerID: 0, hostID: base, size: 65536}]`,
exactly one cgroup namespace, and every capability list a subset of the bounding set. It never
raises anything else and never modifies its input.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eci.errors import RuntimeShimError, SpecRefused
from eci.runtime.linux.capabilities import CAP_NAMES
from eci.runtime.shim.spec import MountPlan, SpecContext, plan_mounts, restricted_source, transform

DATA_ROOT = "/var/lib/eci/docker"
CID = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa99887766554433221100"
CONTAINER_DIR = f"{DATA_ROOT}/containers/{CID}"
VOLUME_DATA = f"{DATA_ROOT}/volumes/v/_data"
BASE = 165536
ALL_CAPS = frozenset(CAP_NAMES)
HOST_BOUNDING = ALL_CAPS - {"CAP_SYS_RESOURCE"}  # what our hosts hold (design §3)
CAP_SETS = ("bounding", "effective", "permitted", "inheritable")
REASON = "(because they use the linux user-namespace for isolation)"
NETWORK_REFUSAL = f"sysbox containers can't share a network namespace with the host {REASON}"
ECI_MAP = [{"containerID": 0, "hostID": BASE, "size": 65536}]
DOCKER_DEFAULT_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

# Indices of the mounts in docker_run_busybox(): the tests below rely on them.
PROC, DEV, DEVPTS, SYS, CGROUP, MQUEUE, SHM = range(7)
RESOLV, HOSTNAME, HOSTS, USER_BIND, VOLUME = range(7, 12)


def shared_refusal(*kinds: str) -> str:
    return f"sysbox containers can't share namespaces [{' '.join(kinds)}] with the host {REASON}"


def docker_run_busybox(caps: list[str] | None = None) -> dict[str, Any]:
    """A fresh copy of dockerd 20.10's config.json for `docker run -v /srv:/data:ro -v v:/vol`."""
    caps = DOCKER_DEFAULT_CAPS if caps is None else caps
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {kind: list(caps) for kind in CAP_SETS},
            "apparmorProfile": "docker-default",
            "oomScoreAdj": 0,
        },
        "root": {"path": f"{DATA_ROOT}/overlay2/0a1b2c/merged"},
        "hostname": CID[:12],
        "mounts": [
            {
                "destination": "/proc",
                "type": "proc",
                "source": "proc",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["ro", "nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
            },
            {
                "destination": "/etc/resolv.conf",
                "type": "bind",
                "source": f"{CONTAINER_DIR}/resolv.conf",
                "options": ["rbind", "rprivate"],
            },
            {
                "destination": "/etc/hostname",
                "type": "bind",
                "source": f"{CONTAINER_DIR}/hostname",
                "options": ["rbind", "rprivate"],
            },
            {
                "destination": "/etc/hosts",
                "type": "bind",
                "source": f"{CONTAINER_DIR}/hosts",
                "options": ["rbind", "rprivate"],
            },
            {
                "destination": "/data",
                "type": "bind",
                "source": "/srv",
                "options": ["rbind", "rprivate", "ro"],
            },
            {
                "destination": "/vol",
                "type": "bind",
                "source": VOLUME_DATA,
                "options": ["rbind", "rprivate"],
            },
        ],
        "linux": {
            "sysctl": {
                "net.ipv4.ip_unprivileged_port_start": "0",
                "net.ipv4.ping_group_range": "0 2147483647",
            },
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "cgroupsPath": f"/docker/{CID}",
            "namespaces": [
                {"type": "mount"},
                {"type": "network"},
                {"type": "uts"},
                {"type": "pid"},
                {"type": "ipc"},
            ],
            "maskedPaths": ["/proc/asound", "/proc/kcore", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


LISTENER = "/run/eci/private/supervisor/listener.sock"
LXCFS = "/run/eci/lxcfs"


def make_ctx(
    bounding: frozenset[str] = HOST_BOUNDING,
    host: frozenset[str] = frozenset(),
    staged: dict[int, str] | None = None,
    rootfs: str | None = None,
    base: int = BASE,
    lxcfs: str | None = LXCFS,
) -> SpecContext:
    return SpecContext(
        base,
        bounding,
        host,
        staged,
        rootfs,
        listener_path=LISTENER,
        seccomp_arches=("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
        lxcfs_dir=lxcfs,
    )


def namespaces_of(spec: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [ns for ns in spec["linux"]["namespaces"] if ns.get("type") == kind]


def without_namespaces(spec: dict[str, Any], *kinds: str) -> dict[str, Any]:
    spec["linux"]["namespaces"] = [
        ns for ns in spec["linux"]["namespaces"] if ns["type"] not in kinds
    ]
    return spec


def with_namespace_path(spec: dict[str, Any], kind: str, path: str) -> dict[str, Any]:
    for ns in spec["linux"]["namespaces"]:
        if ns["type"] == kind:
            ns["path"] = path
    return spec


# --- user namespace ---


def test_user_namespace_is_added_with_eci_maps() -> None:
    spec = docker_run_busybox()
    result = transform(spec, make_ctx())
    assert namespaces_of(result, "user") == [{"type": "user"}]
    assert result["linux"]["uidMappings"] == ECI_MAP
    assert result["linux"]["gidMappings"] == ECI_MAP
    # The namespaces dockerd asked for are all kept, in order, before the added ones.
    types = [ns["type"] for ns in result["linux"]["namespaces"]]
    assert types[:5] == ["mount", "network", "uts", "pid", "ipc"]
    assert sorted(types[5:]) == ["cgroup", "user"]


@pytest.mark.parametrize(
    "base", [100000, BASE, 100000 + 4095 * 65536], ids=["pool-start", "slot-1", "last-slot"]
)
def test_maps_use_the_context_range_base(base: int) -> None:
    result = transform(docker_run_busybox(), make_ctx(base=base))
    expected = [{"containerID": 0, "hostID": base, "size": 65536}]
    assert result["linux"]["uidMappings"] == expected
    assert result["linux"]["gidMappings"] == expected


REMAP = [{"containerID": 0, "hostID": 231072, "size": 65536}]


def _userns_host(spec: dict[str, Any]) -> None:
    """`--userns=host` (or a daemon without userns-remap): no user namespace at all."""


def _userns_join_path(spec: dict[str, Any]) -> None:
    spec["linux"]["namespaces"].append({"type": "user", "path": "/proc/4242/ns/user"})


def _userns_remap(spec: dict[str, Any]) -> None:
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = copy.deepcopy(REMAP)
    spec["linux"]["gidMappings"] = copy.deepcopy(REMAP)


def _userns_remap_multi(spec: dict[str, Any]) -> None:
    spec["linux"]["namespaces"].insert(0, {"type": "user"})
    maps = [
        {"containerID": 0, "hostID": 0, "size": 1},  # container root = host root
        {"containerID": 1, "hostID": 100001, "size": 65535},
    ]
    spec["linux"]["uidMappings"] = copy.deepcopy(maps)
    spec["linux"]["gidMappings"] = copy.deepcopy(maps)


def _userns_path_and_maps(spec: dict[str, Any]) -> None:
    _userns_remap(spec)
    _userns_join_path(spec)


def _userns_host_path(spec: dict[str, Any]) -> None:
    spec["linux"]["namespaces"].append({"type": "user", "path": "/proc/1/ns/user"})


@pytest.mark.parametrize(
    ("prepare", "host"),
    [
        (_userns_host, frozenset()),
        (_userns_join_path, frozenset()),
        (_userns_remap, frozenset()),
        (_userns_remap_multi, frozenset()),
        (_userns_path_and_maps, frozenset()),
        (_userns_host_path, frozenset({"user"})),
    ],
    ids=[
        "userns-host-none",
        "join-path",
        "userns-remap-maps",
        "remap-root-to-host-root",
        "duplicate-user-entries",
        "host-user-ns-path",
    ],
)
def test_any_user_namespace_request_ends_as_one_fresh_eci_namespace(
    prepare: Any, host: frozenset[str]
) -> None:
    spec = docker_run_busybox()
    prepare(spec)
    result = transform(spec, make_ctx(host=host))
    assert namespaces_of(result, "user") == [{"type": "user"}]  # no path: never joined
    assert result["linux"]["uidMappings"] == ECI_MAP
    assert result["linux"]["gidMappings"] == ECI_MAP
    others = [ns for ns in result["linux"]["namespaces"] if ns["type"] not in ("user", "cgroup")]
    assert others == [ns for ns in spec["linux"]["namespaces"] if ns["type"] != "user"]


# --- cgroup namespace ---


@pytest.mark.parametrize(
    "existing",
    [[], [{"type": "cgroup"}]],
    ids=["missing-added", "present-not-duplicated"],
)
def test_cgroup_namespace_exactly_once(existing: list[dict[str, str]]) -> None:
    spec = docker_run_busybox()
    spec["linux"]["namespaces"].extend(existing)
    result = transform(spec, make_ctx())
    assert namespaces_of(result, "cgroup") == [{"type": "cgroup"}]


def test_host_cgroup_namespace_path_is_not_kept() -> None:
    """A cgroup ns joined by the host's path must be refused or replaced by a fresh one."""
    spec = docker_run_busybox()
    spec["linux"]["namespaces"].append({"type": "cgroup", "path": "/proc/1/ns/cgroup"})
    try:
        result = transform(spec, make_ctx(host=frozenset({"cgroup"})))
    except SpecRefused:
        return
    assert namespaces_of(result, "cgroup") == [{"type": "cgroup"}]


# --- namespaces shared with the host ---


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        (("pid",), shared_refusal("pid")),
        (("ipc",), shared_refusal("ipc")),
        (("uts",), shared_refusal("uts")),
        (("pid", "ipc"), shared_refusal("pid", "ipc")),
        (("ipc", "uts"), shared_refusal("ipc", "uts")),
        (("uts", "ipc", "pid"), shared_refusal("pid", "ipc", "uts")),
        (("network",), NETWORK_REFUSAL),
    ],
    ids=[
        "pid-host",
        "ipc-host",
        "uts-host",
        "pid-and-ipc-host",
        "ipc-and-uts-host",
        "pid-ipc-uts-host",
        "network-host",
    ],
)
def test_missing_namespace_entry_is_refused(missing: tuple[str, ...], message: str) -> None:
    spec = without_namespaces(docker_run_busybox(), *missing)
    with pytest.raises(SpecRefused) as info:
        transform(spec, make_ctx())
    assert str(info.value) == message
    assert isinstance(info.value, RuntimeShimError)  # reaches docker as "OCI runtime create failed"


@pytest.mark.parametrize(
    ("host", "message"),
    [
        (("pid",), shared_refusal("pid")),
        (("ipc",), shared_refusal("ipc")),
        (("uts",), shared_refusal("uts")),
        (("pid", "ipc"), shared_refusal("pid", "ipc")),
        (("network",), NETWORK_REFUSAL),
    ],
    ids=["pid-path", "ipc-path", "uts-path", "pid-and-ipc-paths", "network-path"],
)
def test_namespace_path_of_the_host_is_refused(host: tuple[str, ...], message: str) -> None:
    spec = docker_run_busybox()
    for kind in host:
        with_namespace_path(spec, kind, f"/proc/1/ns/{'net' if kind == 'network' else kind}")
    with pytest.raises(SpecRefused) as info:
        transform(spec, make_ctx(host=frozenset(host)))
    assert str(info.value) == message


def test_host_mount_namespace_path_is_refused() -> None:
    """Joining the host's mount namespace (the shim flags it in host_namespace_paths) would give
    the container the host's filesystem; it must be refused like pid/ipc/uts/network."""
    spec = with_namespace_path(docker_run_busybox(), "mount", "/proc/1/ns/mnt")
    with pytest.raises(SpecRefused, match="mount"):
        transform(spec, make_ctx(host=frozenset({"mount"})))


def test_network_and_pid_missing_is_refused() -> None:
    spec = without_namespaces(docker_run_busybox(), "network", "pid")
    with pytest.raises(SpecRefused) as info:
        transform(spec, make_ctx())
    assert str(info.value) in {NETWORK_REFUSAL, shared_refusal("pid")}


@pytest.mark.parametrize(
    "spec",
    [
        {"ociVersion": "1.0.2-dev", "process": {"args": ["sh"]}},
        {"ociVersion": "1.0.2-dev", "linux": {}},
        {"ociVersion": "1.0.2-dev", "linux": {"namespaces": []}},
    ],
    ids=["no-linux-section", "no-namespaces-key", "empty-namespaces"],
)
def test_spec_without_namespaces_is_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(SpecRefused, match="share a network namespace with the host"):
        transform(spec, make_ctx())


@pytest.mark.parametrize(
    "kind",
    ["pid", "ipc", "network", "uts"],
    ids=["pid-container", "ipc-container", "net-container", "uts-path"],
)
def test_namespace_path_of_another_container_is_kept(kind: str) -> None:
    """`--pid=container:x` & co. join a path that is not the host's: allowed, path kept."""
    path = f"/proc/4242/ns/{'net' if kind == 'network' else kind}"
    spec = with_namespace_path(docker_run_busybox(), kind, path)
    result = transform(spec, make_ctx(host=frozenset({"user"})))
    assert namespaces_of(result, kind) == [{"type": kind, "path": path}]


# --- sysctl net.ipv4.ping_group_range ---

PING = "net.ipv4.ping_group_range"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0 2147483647", "0 65535"),
        ("0 65535", "0 65535"),
        ("0 65536", "0 65535"),
        ("1 1", "1 1"),
        ("100 70000", "100 65535"),
        ("0\t2147483647", "0 65535"),
        ("  0   2147483647  ", "0 65535"),
        ("-1 10", "0 10"),
        ("2147483647 2147483647", "65535 65535"),
    ],
    ids=[
        "docker-default",
        "already-in-range",
        "one-over",
        "single-group",
        "high-clamped",
        "tab-separated",
        "extra-spaces",
        "negative-low",
        "both-over",
    ],
)
def test_ping_group_range_is_clamped(value: str, expected: str) -> None:
    spec = docker_run_busybox()
    spec["linux"]["sysctl"][PING] = value
    result = transform(spec, make_ctx())
    assert result["linux"]["sysctl"][PING] == expected
    assert result["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"] == "0"


@pytest.mark.parametrize(
    "value",
    ["garbage", "", "0", "0 1 2", "0 x", "0-65535", "1.5 2"],
    ids=["word", "empty", "one-number", "three-numbers", "non-number", "dash", "float"],
)
def test_garbage_ping_group_range_is_refused(value: str) -> None:
    spec = docker_run_busybox()
    spec["linux"]["sysctl"][PING] = value
    with pytest.raises(SpecRefused) as info:
        transform(spec, make_ctx())
    assert PING in str(info.value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    "sysctl",
    [None, {}, {"net.ipv4.ip_unprivileged_port_start": "0"}],
    ids=["no-sysctl-key", "empty-sysctl", "other-sysctl-only"],
)
def test_absent_ping_group_range_is_not_added(sysctl: dict[str, str] | None) -> None:
    spec = docker_run_busybox()
    if sysctl is None:
        del spec["linux"]["sysctl"]
    else:
        spec["linux"]["sysctl"] = sysctl
    result = transform(spec, make_ctx())
    assert result["linux"].get("sysctl") == sysctl


# --- capabilities ---


@pytest.mark.parametrize(
    ("caps", "bounding"),
    [
        (DOCKER_DEFAULT_CAPS, HOST_BOUNDING),
        (list(CAP_NAMES), HOST_BOUNDING),
        ([*DOCKER_DEFAULT_CAPS, "CAP_SYS_RESOURCE", "CAP_SYS_ADMIN"], HOST_BOUNDING),
        (list(CAP_NAMES), ALL_CAPS - {"CAP_SYS_RESOURCE", "CAP_BPF", "CAP_PERFMON"}),
        (DOCKER_DEFAULT_CAPS, frozenset()),
        ([], HOST_BOUNDING),
        (["CAP_SYS_RESOURCE"], HOST_BOUNDING),
    ],
    ids=[
        "docker-default-kept",
        "privileged-drops-sys-resource",
        "cap-add-sys-resource",
        "older-kernel-bounding",
        "empty-bounding",
        "cap-drop-all",
        "only-missing-cap",
    ],
)
def test_capabilities_trimmed_to_bounding_set(caps: list[str], bounding: frozenset[str]) -> None:
    spec = docker_run_busybox(caps)
    result = transform(spec, make_ctx(bounding=bounding))
    expected = [c for c in caps if c in bounding]  # order kept
    for kind in CAP_SETS:
        assert result["process"]["capabilities"][kind] == expected, kind


def test_privileged_loses_only_sys_resource() -> None:
    result = transform(docker_run_busybox(list(CAP_NAMES)), make_ctx())
    for kind in CAP_SETS:
        got = result["process"]["capabilities"][kind]
        assert "CAP_SYS_RESOURCE" not in got
        assert set(CAP_NAMES) - set(got) == {"CAP_SYS_RESOURCE"}


def test_ambient_capabilities_are_trimmed_too() -> None:
    spec = docker_run_busybox()
    spec["process"]["capabilities"]["ambient"] = ["CAP_NET_RAW", "CAP_SYS_RESOURCE"]
    result = transform(spec, make_ctx())
    assert result["process"]["capabilities"]["ambient"] == ["CAP_NET_RAW"]


@pytest.mark.parametrize(
    "process",
    [None, {"args": ["sh"]}, {"args": ["sh"], "capabilities": {}}],
    ids=["no-process", "no-capabilities", "empty-capabilities"],
)
def test_missing_capabilities_are_left_missing(process: dict[str, Any] | None) -> None:
    spec = docker_run_busybox()
    if process is None:
        del spec["process"]
    else:
        spec["process"] = process
    result = transform(spec, make_ctx())
    assert result.get("process") == process


# --- staged mounts and root filesystem ---


@pytest.mark.parametrize(
    "staged",
    [
        {HOSTS: "/run/eci/stage/c1/m9"},
        {USER_BIND: "/run/eci/stage/c1/m10"},
        {RESOLV: "/run/eci/s/7", HOSTNAME: "/run/eci/s/8", HOSTS: "/run/eci/s/9", VOLUME: "/x"},
        {PROC: "/run/eci/s/0"},
        {},
    ],
    ids=["hosts", "user-bind", "several", "first-index", "none"],
)
def test_staged_sources_replace_only_the_source(staged: dict[int, str]) -> None:
    spec = docker_run_busybox()
    result = transform(spec, make_ctx(staged=staged, lxcfs=None))  # lxcfs binds: their own test
    assert len(result["mounts"]) == len(spec["mounts"])
    for index, (before, after) in enumerate(zip(spec["mounts"], result["mounts"], strict=True)):
        expected = dict(before, source=staged[index]) if index in staged else before
        assert after == expected, index


@pytest.mark.parametrize(
    "index",
    [VOLUME + 1, 99, -1, -12],
    ids=["one-past-end", "far-past-end", "negative", "negative-wraps-to-first"],
)
def test_staged_source_out_of_range_is_refused(index: int) -> None:
    with pytest.raises(SpecRefused, match=f"index {index}"):
        transform(docker_run_busybox(), make_ctx(staged={HOSTS: "/ok", index: "/run/eci/x"}))


def test_staged_source_without_mounts_is_refused() -> None:
    spec = docker_run_busybox()
    del spec["mounts"]
    with pytest.raises(SpecRefused, match="index 0"):
        transform(spec, make_ctx(staged={0: "/run/eci/x"}))


@pytest.mark.parametrize(
    ("rootfs", "expected"),
    [(None, f"{DATA_ROOT}/overlay2/0a1b2c/merged"), ("/run/eci/rootfs/c1", "/run/eci/rootfs/c1")],
    ids=["not-staged", "staged"],
)
def test_staged_rootfs(rootfs: str | None, expected: str) -> None:
    result = transform(docker_run_busybox(), make_ctx(rootfs=rootfs))
    assert result["root"] == {"path": expected}


# --- the transform as a whole ---


def test_only_isolation_fields_change() -> None:
    spec = docker_run_busybox(list(CAP_NAMES))
    result = transform(spec, make_ctx(staged={HOSTS: "/run/eci/s/9"}, rootfs="/run/eci/r"))

    def rest(s: dict[str, Any]) -> dict[str, Any]:
        s = copy.deepcopy(s)
        for key in (
            "namespaces",
            "uidMappings",
            "gidMappings",
            "sysctl",
            "maskedPaths",
            "readonlyPaths",
            "devices",
            "seccomp",
        ):
            s["linux"].pop(key, None)
        s["linux"].get("resources", {}).pop("devices", None)
        s["mounts"] = [m for m in s["mounts"] if not m["source"].startswith(LXCFS)]
        s["process"].pop("capabilities")
        s["mounts"][HOSTS].pop("source")
        s.pop("root")
        return s

    assert rest(result) == rest(spec)
    assert result["linux"]["sysctl"] == {
        "net.ipv4.ip_unprivileged_port_start": "0",
        PING: "0 65535",
    }


def _privileged(spec: dict[str, Any]) -> dict[str, Any]:
    spec["process"]["capabilities"] = {kind: list(CAP_NAMES) for kind in CAP_SETS}
    return spec


@pytest.mark.parametrize(
    ("prepare", "ctx"),
    [
        (lambda s: s, make_ctx()),
        (_privileged, make_ctx(staged={HOSTS: "/s/9", VOLUME: "/s/11"}, rootfs="/r")),
        (lambda s: (_userns_path_and_maps(s), s)[1], make_ctx()),
        (lambda s: without_namespaces(s, "pid"), make_ctx()),
        (lambda s: s, make_ctx(staged={99: "/s"})),
        (lambda s: (s["linux"]["sysctl"].update({PING: "x"}), s)[1], make_ctx()),
    ],
    ids=["plain", "privileged-staged", "userns-remap", "refused-pid", "refused-index", "bad-ping"],
)
def test_input_spec_is_not_mutated(prepare: Any, ctx: SpecContext) -> None:
    spec = prepare(docker_run_busybox())
    before = copy.deepcopy(spec)
    staged_before = dict(ctx.staged_sources)
    try:
        result = transform(spec, ctx)
    except SpecRefused:
        result = None
    assert spec == before
    assert dict(ctx.staged_sources) == staged_before
    if result is not None:
        assert result is not spec
        assert result["linux"] is not spec["linux"]


# --- plan_mounts ---


def test_plan_for_docker_run_busybox() -> None:
    spec = docker_run_busybox()
    assert plan_mounts(spec, DATA_ROOT, CID) == [
        MountPlan(RESOLV, f"{CONTAINER_DIR}/resolv.conf", idmap=True, readonly=False),
        MountPlan(HOSTNAME, f"{CONTAINER_DIR}/hostname", idmap=True, readonly=False),
        MountPlan(HOSTS, f"{CONTAINER_DIR}/hosts", idmap=True, readonly=False),
        MountPlan(USER_BIND, "/srv", idmap=False, readonly=True),
        MountPlan(VOLUME, VOLUME_DATA, idmap=True, readonly=False),
    ]


def bind(source: str, *extra: str, type_: str | None = "bind") -> dict[str, Any]:
    mount: dict[str, Any] = {"destination": "/x", "source": source}
    if type_ is not None:
        mount["type"] = type_
    mount["options"] = ["rbind", "rprivate", *extra]
    return mount


@pytest.mark.parametrize(
    ("mount", "expected"),
    [
        (bind(f"{CONTAINER_DIR}/hosts"), (True, False)),
        (bind(VOLUME_DATA), (True, False)),
        (bind(VOLUME_DATA, "ro"), (True, True)),
        (bind("/srv", "ro"), (False, True)),
        (bind("/srv"), (False, False)),
        (bind("/srv", "rw"), (False, False)),
        (bind("/srv", "nosuid", "nodev", "noexec"), (False, False)),
        (bind("/var/lib/eci/dockerX/volumes/v/_data"), (False, False)),
        (bind("/var/lib/eci/docker-old/volumes/v/_data"), (False, False)),
        (bind("/var/lib/eci/dockerX/volumes/v/_data", "ro"), (False, True)),
        (bind("/var/lib/eci"), (False, False)),
        (bind("/var/lib"), (False, False)),
        (bind(VOLUME_DATA, type_=None), (True, False)),
        (bind("/srv", "ro", type_=None), (False, True)),
        ({"destination": "/x", "type": "bind", "source": VOLUME_DATA}, (True, False)),
        ({"destination": "/x", "source": "/srv", "options": ["bind", "ro"]}, (False, True)),
        ({"destination": "/x", "type": "bind", "source": "/srv", "options": ["ro"]}, (False, True)),
        ({"destination": "/proc", "type": "proc", "source": "proc", "options": ["ro"]}, None),
        ({"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]}, None),
        ({"destination": "/t", "type": "tmpfs", "source": VOLUME_DATA}, None),
        ({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]}, None),
        ({"destination": "/o", "type": "overlay", "source": "overlay", "options": ["ro"]}, None),
    ],
    ids=[
        "etc-hosts-idmapped",
        "named-volume-idmapped",
        "ro-named-volume",
        "ro-user-bind",
        "rw-user-bind-host-ids",
        "explicit-rw-host-ids",
        "other-options-not-ro",
        "sibling-dir-prefix-not-under-root",
        "sibling-dash-suffix-not-under-root",
        "sibling-dir-ro-not-idmapped",
        "parent-of-root",
        "grandparent-of-root",
        "bind-without-type",
        "ro-bind-without-type",
        "bind-without-options",
        "bind-option-only",
        "ro-without-rbind-option",
        "proc-never",
        "tmpfs-never",
        "tmpfs-with-data-root-source-never",
        "sysfs-never",
        "overlay-never",
    ],
)
def test_plan_one_mount(mount: dict[str, Any], expected: tuple[bool, bool] | None) -> None:
    spec = {"mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}, mount]}
    plans = plan_mounts(spec, DATA_ROOT, CID)
    if expected is None:
        assert plans == []
    else:
        idmap, readonly = expected
        assert plans == [MountPlan(1, mount["source"], idmap=idmap, readonly=readonly)]


@pytest.mark.parametrize(
    "root",
    [DATA_ROOT, DATA_ROOT + "/", DATA_ROOT + "//"],
    ids=["plain-root", "trailing-slash", "double-trailing-slash"],
)
def test_plan_data_root_spelling(root: str) -> None:
    spec = {"mounts": [bind(VOLUME_DATA), bind("/var/lib/eci/dockerX/v", "ro")]}
    assert plan_mounts(spec, root, CID) == [
        MountPlan(0, VOLUME_DATA, idmap=True, readonly=False),
        MountPlan(1, "/var/lib/eci/dockerX/v", idmap=False, readonly=True),
    ]


@pytest.mark.parametrize(
    "source",
    [DATA_ROOT, f"{DATA_ROOT}/overlay2", f"{DATA_ROOT}/image", f"{DATA_ROOT}/containers"],
    ids=["whole-data-root", "overlay2-layers", "image-store", "all-containers"],
)
def test_user_bind_of_docker_internals_is_not_idmapped(source: str) -> None:
    """`-v /var/lib/eci/docker:/d`: idmapping it would make container root own every other
    container's layers, volumes and config. Only a container's own files and volumes qualify."""
    spec = {"mounts": [bind(source)]}
    try:
        plans = plan_mounts(spec, DATA_ROOT, CID)
    except SpecRefused:
        return
    assert all(not plan.idmap for plan in plans), plans


OTHER_CID = "9" * 64


@pytest.mark.parametrize(
    ("source", "container_id", "idmap"),
    [
        (f"{CONTAINER_DIR}/hosts", CID, True),
        (f"{CONTAINER_DIR}/mounts/shm", CID, True),
        (f"{DATA_ROOT}/containers/{OTHER_CID}/hosts", CID, False),
        (f"{DATA_ROOT}/containers/{CID}x/hosts", CID, False),
        (f"{CONTAINER_DIR}/hosts", "", False),
        (CONTAINER_DIR, "", False),
        (VOLUME_DATA, CID, True),
        (f"{VOLUME_DATA}/sub/dir", CID, True),
        (VOLUME_DATA, "", True),
        (f"{DATA_ROOT}/volumes/v", CID, False),
        (f"{DATA_ROOT}/volumes/metadata.db", CID, False),
        (f"{DATA_ROOT}/volumes/v/other", CID, False),
        (f"{DATA_ROOT}/volumes/./_data", CID, False),
        (f"{DATA_ROOT}/volumes/../_data", CID, False),
        (f"{DATA_ROOT}/volumes//_data", CID, False),
        (f"{DATA_ROOT}/plugins/p/rootfs", CID, False),
    ],
    ids=[
        "own-hosts",
        "own-shm",
        "other-containers-hosts",
        "id-prefix-is-not-own",
        "own-files-without-container-id",
        "containers-dir-without-container-id",
        "volume-data",
        "volume-data-subdir",
        "volume-data-any-container",
        "volume-dir-not-data",
        "volume-metadata-db",
        "volume-sibling-of-data",
        "volume-name-dot",
        "volume-name-dotdot",
        "volume-name-empty",
        "plugins",
    ],
)
def test_plan_idmaps_only_volumes_and_own_files(
    source: str, container_id: str, idmap: bool
) -> None:
    spec = {"mounts": [bind(source)]}
    # every bind is staged; only these are idmapped (the rest keeps host ids)
    assert plan_mounts(spec, DATA_ROOT, container_id) == [
        MountPlan(0, source, idmap=idmap, readonly=False)
    ]


@pytest.mark.parametrize(
    "spec",
    [{}, {"mounts": None}, {"mounts": []}],
    ids=["no-mounts-key", "mounts-null", "mounts-empty"],
)
def test_plan_without_mounts(spec: dict[str, Any]) -> None:
    assert plan_mounts(spec, DATA_ROOT, CID) == []


def test_plan_does_not_mutate_spec() -> None:
    spec = docker_run_busybox()
    before = copy.deepcopy(spec)
    plan_mounts(spec, DATA_ROOT, CID)
    assert spec == before


@pytest.mark.parametrize(
    ("other", "equal"),
    [
        (MountPlan(3, "/s", idmap=True, readonly=False), True),
        (MountPlan(4, "/s", idmap=True, readonly=False), False),
        (MountPlan(3, "/t", idmap=True, readonly=False), False),
        (MountPlan(3, "/s", idmap=False, readonly=False), False),
        (MountPlan(3, "/s", idmap=True, readonly=True), False),
        ((3, "/s", True, False), False),
    ],
    ids=["same", "index", "source", "idmap", "readonly", "tuple"],
)
def test_mount_plan_equality(other: object, equal: bool) -> None:
    plan = MountPlan(3, "/s", idmap=True, readonly=False)
    assert (plan == other) is equal
    if equal:
        assert hash(plan) == hash(other)
    assert repr(plan) == "MountPlan(index=3, source='/s', idmap=True, readonly=False)"


# --- hypothesis ---

NS_TYPES = ("mount", "network", "uts", "pid", "ipc", "cgroup")
PRIVATE = ("network", "pid", "ipc", "uts", "mount")
cap_names = st.sampled_from([*CAP_NAMES, "CAP_BOGUS", ""])


@st.composite
def namespace_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    namespaces: list[dict[str, Any]] = []
    for kind in draw(st.lists(st.sampled_from(NS_TYPES), unique=True)):
        ns: dict[str, Any] = {"type": kind}
        if draw(st.booleans()):
            ns["path"] = f"/proc/{draw(st.integers(1, 99999))}/ns/{kind}"
        namespaces.append(ns)
    for _ in range(draw(st.integers(0, 2))):  # user namespaces asked for: none, one, or two
        user: dict[str, Any] = {"type": "user"}
        if draw(st.booleans()):
            user["path"] = "/proc/77/ns/user"
        namespaces.insert(draw(st.integers(0, len(namespaces))), user)
    return draw(st.permutations(namespaces))


id_maps = st.lists(
    st.fixed_dictionaries(
        {
            "containerID": st.integers(0, 2**32 - 1),
            "hostID": st.integers(0, 2**32 - 1),
            "size": st.integers(1, 2**32),
        }
    ),
    max_size=3,
)


@given(
    namespaces=namespace_lists(),
    host=st.frozensets(st.sampled_from([*PRIVATE, "user"])),
    caps=st.dictionaries(
        st.sampled_from([*CAP_SETS, "ambient"]), st.lists(cap_names, max_size=45), min_size=0
    ),
    bounding=st.frozensets(st.sampled_from(CAP_NAMES)),
    maps=st.one_of(st.none(), id_maps),
    base=st.integers(1, 2**32 - 65536),
)
@settings(max_examples=300)
def test_transform_invariant(
    namespaces: list[dict[str, Any]],
    host: frozenset[str],
    caps: dict[str, list[str]],
    bounding: frozenset[str],
    maps: list[dict[str, int]] | None,
    base: int,
) -> None:
    spec = docker_run_busybox()
    spec["linux"]["namespaces"] = namespaces
    spec["process"]["capabilities"] = caps
    if maps is not None:
        spec["linux"]["uidMappings"] = maps
        spec["linux"]["gidMappings"] = copy.deepcopy(maps)
    before = copy.deepcopy(spec)
    own = {ns["type"] for ns in namespaces}
    shares_host = any(kind not in own or kind in host for kind in PRIVATE)

    try:
        result = transform(spec, make_ctx(bounding=bounding, host=host, base=base))
    except SpecRefused:
        assert shares_host
        assert spec == before
        return

    assert not shares_host
    assert spec == before
    assert namespaces_of(result, "user") == [{"type": "user"}]
    assert len(namespaces_of(result, "cgroup")) == 1
    eci_map = [{"containerID": 0, "hostID": base, "size": 65536}]
    assert result["linux"]["uidMappings"] == eci_map
    assert result["linux"]["gidMappings"] == eci_map
    for kind, names in result["process"]["capabilities"].items():
        assert set(names) <= bounding, kind
        assert names == [n for n in caps[kind] if n in bounding]


@given(value=st.one_of(st.text(max_size=30), st.integers().map(lambda n: f"0 {n}")))
def test_ping_group_range_is_clamped_or_refused(value: str) -> None:
    spec = docker_run_busybox()
    spec["linux"]["sysctl"][PING] = value
    try:
        result = transform(spec, make_ctx())
    except SpecRefused as exc:
        refusal = str(exc)
    else:
        refusal = None
    if refusal is not None:
        assert repr(value) in refusal
        return
    low, high = (int(part) for part in result["linux"]["sysctl"][PING].split(" "))
    assert 0 <= low <= 65535
    assert 0 <= high <= 65535


def test_staged_source_index_outside_the_mounts_is_refused() -> None:
    with pytest.raises(SpecRefused, match="outside the spec's mounts"):
        transform(docker_run_busybox(), make_ctx(staged={99: "/run/eci/x"}))


@pytest.mark.parametrize(
    ("resolved", "refused"),
    [
        ("/etc/docker", True),
        ("/etc/docker/daemon.json", True),
        ("/", True),
        ("/etc", True),
        ("/etc/dockerfile", False),
        ("/home/u/src", False),
        ("/run/docker.sock", True),
    ],
    ids=[
        "restricted",
        "inside",
        "root-contains",
        "parent-contains",
        "sibling-prefix",
        "home",
        "socket",
    ],
)
def test_restricted_source_compares_whole_components_both_ways(
    resolved: str, refused: bool
) -> None:
    assert restricted_source(resolved, ("/etc/docker", "/run/docker.sock")) is refused
