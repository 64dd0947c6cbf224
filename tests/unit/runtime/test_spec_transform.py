"""The pure OCI spec rewrite, on specs shaped like dockerd 20.10's for `docker run busybox`.

Hypothesis invariant: for any mix of present/missing namespaces and any capability lists,
`transform` either raises SpecRefused or returns a spec with exactly one (fresh) user
namespace, eci's uid/gid maps, and capabilities within the bounding set.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eci.errors import SpecRefused
from eci.runtime.capabilities import CAP_NAMES
from eci.runtime.spec import MountPlan, SpecContext, plan_mounts, transform

DATA_ROOT = "/var/lib/eci/docker"
BASE = 165536
BOUNDING = frozenset(CAP_NAMES) - {"CAP_SYS_RESOURCE"}
REASON = "(because they use the linux user-namespace for isolation)"
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_SYS_RESOURCE"]


def docker_spec() -> dict[str, Any]:
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "args": ["sh"],
            "capabilities": {
                k: list(DEFAULT_CAPS) for k in ("bounding", "effective", "permitted", "inheritable")
            },
        },
        "root": {"path": f"{DATA_ROOT}/overlay2/abc/merged"},
        "mounts": [
            {
                "destination": "/proc",
                "type": "proc",
                "source": "proc",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
            {
                "destination": "/etc/hosts",
                "type": "bind",
                "source": f"{DATA_ROOT}/containers/abc/hosts",
                "options": ["rbind", "rprivate"],
            },
            {
                "destination": "/data",
                "type": "bind",
                "source": "/srv",
                "options": ["rbind", "rprivate", "ro"],
            },
            {
                "destination": "/v",
                "type": "bind",
                "source": f"{DATA_ROOT}/volumes/v/_data",
                "options": ["rbind", "rprivate"],
            },
            {
                "destination": "/x",
                "type": "bind",
                "source": "/var/lib/eci/dockerX/y",
                "options": ["rbind"],
            },
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("mount", "network", "uts", "pid", "ipc")],
            "sysctl": {"net.ipv4.ping_group_range": "0 2147483647"},
        },
    }


def ctx(**kwargs: Any) -> SpecContext:
    return SpecContext(BASE, BOUNDING, **kwargs)


def without(spec: dict[str, Any], *types: str) -> dict[str, Any]:
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] not in types]
    return spec


def test_user_namespace_and_maps_added() -> None:
    out = transform(docker_spec(), ctx())
    users = [n for n in out["linux"]["namespaces"] if n["type"] == "user"]
    assert users == [{"type": "user"}]
    mapping = [{"containerID": 0, "hostID": BASE, "size": 65536}]
    assert out["linux"]["uidMappings"] == mapping
    assert out["linux"]["gidMappings"] == mapping


@pytest.mark.parametrize(
    "user_ns",
    [{"type": "user", "path": "/proc/1/ns/user"}, {"type": "user"}],
    ids=["join-a-path", "plain"],
)
def test_existing_user_namespace_and_maps_are_replaced(user_ns: dict[str, str]) -> None:
    spec = docker_spec()
    spec["linux"]["namespaces"].append(user_ns)
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 4294967295}]
    out = transform(spec, ctx())
    assert [n for n in out["linux"]["namespaces"] if n["type"] == "user"] == [{"type": "user"}]
    assert out["linux"]["uidMappings"][0]["hostID"] == BASE


def test_cgroup_namespace_added_once() -> None:
    spec = docker_spec()
    once = transform(spec, ctx())
    twice = transform(once, ctx())
    assert [n["type"] for n in twice["linux"]["namespaces"]].count("cgroup") == 1


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        (("pid",), f"sysbox containers can't share namespaces [pid] with the host {REASON}"),
        (("ipc",), f"sysbox containers can't share namespaces [ipc] with the host {REASON}"),
        (("uts",), f"sysbox containers can't share namespaces [uts] with the host {REASON}"),
        (
            ("pid", "ipc"),
            f"sysbox containers can't share namespaces [pid ipc] with the host {REASON}",
        ),
        (("network",), f"sysbox containers can't share a network namespace with the host {REASON}"),
    ],
    ids=["pid", "ipc", "uts", "pid+ipc", "network"],
)
def test_host_namespaces_refused_with_sysbox_texts(missing: tuple[str, ...], message: str) -> None:
    with pytest.raises(SpecRefused) as info:
        transform(without(docker_spec(), *missing), ctx())
    assert str(info.value) == message


def test_namespace_path_of_the_host_is_refused() -> None:
    spec = docker_spec()
    spec["linux"]["namespaces"][3] = {"type": "pid", "path": "/proc/1/ns/pid"}
    with pytest.raises(SpecRefused, match=r"\[pid\]"):
        transform(spec, ctx(host_namespace_paths=frozenset({"pid"})))


def test_ping_group_range_clamped_and_garbage_refused() -> None:
    assert (
        transform(docker_spec(), ctx())["linux"]["sysctl"]["net.ipv4.ping_group_range"] == "0 65535"
    )
    spec = docker_spec()
    spec["linux"]["sysctl"]["net.ipv4.ping_group_range"] = "lots"
    with pytest.raises(SpecRefused, match="ping_group_range"):
        transform(spec, ctx())


def test_capabilities_trimmed_to_the_bounding_set() -> None:
    out = transform(docker_spec(), ctx())
    for kind, names in out["process"]["capabilities"].items():
        assert "CAP_SYS_RESOURCE" not in names, kind
        assert "CAP_CHOWN" in names, kind


def test_staged_sources_and_rootfs_replace_the_originals() -> None:
    out = transform(
        docker_spec(),
        ctx(
            staged_sources={3: "/run/eci/private/runtime/abc/bind-3"},
            staged_rootfs="/run/eci/rootfs/abc",
        ),
    )
    assert out["mounts"][3]["source"] == "/run/eci/private/runtime/abc/bind-3"
    assert out["root"]["path"] == "/run/eci/rootfs/abc"
    with pytest.raises(SpecRefused, match="outside"):
        transform(docker_spec(), ctx(staged_sources={99: "/x"}))


def test_input_spec_is_not_modified() -> None:
    spec = docker_spec()
    before = copy.deepcopy(spec)
    transform(spec, ctx(staged_sources={2: "/s"}))
    assert spec == before


def test_plan_mounts_idmaps_docker_data_and_locks_read_only_binds() -> None:
    assert plan_mounts(docker_spec(), DATA_ROOT, "abc") == [
        MountPlan(2, f"{DATA_ROOT}/containers/abc/hosts", idmap=True, readonly=False),
        MountPlan(3, "/srv", idmap=False, readonly=True),
        MountPlan(4, f"{DATA_ROOT}/volumes/v/_data", idmap=True, readonly=False),
    ]  # /proc and /dev are not binds; /var/lib/eci/dockerX is not under the data-root


NAMESPACES = ("mount", "network", "uts", "pid", "ipc", "user", "cgroup")


@given(
    present=st.sets(st.sampled_from(NAMESPACES)),
    caps=st.lists(st.sampled_from(CAP_NAMES), max_size=12),
    bounding=st.frozensets(st.sampled_from(CAP_NAMES)),
)
def test_transform_refuses_or_isolates(
    present: set[str], caps: list[str], bounding: frozenset[str]
) -> None:
    spec = docker_spec()
    spec["linux"]["namespaces"] = [{"type": t} for t in sorted(present)]
    spec["process"]["capabilities"] = {"bounding": list(caps), "effective": list(caps)}
    try:
        out = transform(spec, SpecContext(BASE, bounding))
    except SpecRefused:
        assert not {"network", "pid", "ipc", "uts", "mount"} <= present
        return
    assert [n["type"] for n in out["linux"]["namespaces"]].count("user") == 1
    assert out["linux"]["uidMappings"] == [{"containerID": 0, "hostID": BASE, "size": 65536}]
    for names in out["process"]["capabilities"].values():
        assert set(names) <= bounding


@pytest.mark.parametrize(
    "source",
    [
        DATA_ROOT,
        f"{DATA_ROOT}/overlay2/x/diff",
        f"{DATA_ROOT}/image",
        f"{DATA_ROOT}/containers/other/hosts",
        f"{DATA_ROOT}/volumes/v",
        f"{DATA_ROOT}/volumes",
    ],
    ids=["data-root", "a-layer", "image-store", "another-container", "volume-meta", "volumes"],
)
def test_docker_internals_bound_by_a_user_are_never_idmapped(source: str) -> None:
    spec = docker_spec()
    spec["mounts"] = [{"destination": "/x", "type": "bind", "source": source, "options": ["rbind"]}]
    assert plan_mounts(spec, DATA_ROOT, "abc") == []
