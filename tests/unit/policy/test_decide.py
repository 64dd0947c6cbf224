"""`decide` for each rule, with ECI on and a hand-made `Facts` (tests/unit/policy/cases.py).

Every refusal is checked against the exact message of `eci.errors` (what the Docker CLI
prints after "Error response from daemon:"), its rule (the audit log) and its status. Every
allowed container create is checked in the body dockerd would receive.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from tests.unit.policy.cases import BUSYBOX, FACTS, OFF, ON, create, forwarded, request

from eci.contract.devices import ALLOWED_DEVICE_PATHS
from eci.dockerapi.gojson import GoObject
from eci.errors import (
    ECI_PREFIX,
    device_message,
    host_namespaces_message,
    proc_workdir_refusal,
    restricted_mount_message,
    socket_mount_message,
)
from eci.policy import Allow, Deny, ExtractInContainer, Facts, Rewrite, decide
from eci.policy.resources import BUILDKIT_REFUSED

PID = host_namespaces_message(["pid"])
NETWORK = host_namespaces_message(["network"])
PLUGIN = (
    f"{ECI_PREFIX}installing, enabling or configuring engine plugins is not allowed "
    "(plugins run with the engine's full host privileges)"
)


def shared(kind: str, ref: str, runtime: str) -> str:
    return (
        f"{ECI_PREFIX}can't share the {kind} namespace of container {ref!r}: it is not an "
        f"enhanced-isolation container (runtime {runtime})"
    )


def _denied(decision: Any, rule: str, message: str, status: int = 403) -> None:
    assert decision == Deny(rule, message, status)


# --- host namespaces ----------------------------------------------------------------------------

NAMESPACES = [
    ("pid", {"HostConfig": {"PidMode": "host"}}, PID),
    ("ipc", {"HostConfig": {"IpcMode": "host"}}, host_namespaces_message(["ipc"])),
    ("uts", {"HostConfig": {"UTSMode": "host"}}, host_namespaces_message(["uts"])),
    ("network", {"HostConfig": {"NetworkMode": "host"}}, NETWORK),
    (
        "pid+ipc+uts",
        {"HostConfig": {"UTSMode": "host", "IpcMode": "host", "PidMode": "host"}},
        host_namespaces_message(["pid", "ipc", "uts"]),
    ),
    ("pid+network", {"HostConfig": {"PidMode": "host", "NetworkMode": "host"}}, NETWORK),
    ("legacy-top-level", {"PidMode": "host"}, PID),
    ("top-level-beside-inner", {"PidMode": "host", "HostConfig": {}}, PID),
    ("top-level-beside-null-inner", {"PidMode": "host", "HostConfig": None}, PID),
    ("lower-case-keys", {"hostconfig": {"pidmode": "host"}}, PID),
    ("upper-case-keys", {"HOSTCONFIG": {"PIDMODE": "host"}}, PID),
    ("long-s-key", {"Ho\u017ftConfig": {"PidMode": "host"}}, PID),
    ("kelvin-key", {"HostConfig": {"Networ\u212aMode": "host"}}, NETWORK),
    ("upper-case-value", {"HostConfig": {"PidMode": "HOST"}}, PID),
    ("network-driver-host", {"HostConfig": {"NetworkMode": "hostnet"}}, NETWORK),
    (
        "endpoints-host",
        {"NetworkingConfig": {"EndpointsConfig": {"host": {}}}},
        NETWORK,
    ),
    (
        "endpoints-host-upper",
        {"networkingconfig": {"endpointsconfig": {"HOST": {}}}},
        NETWORK,
    ),
    (
        "endpoints-driver-host",
        {"NetworkingConfig": {"EndpointsConfig": {"mynet": {}, "hostnet": {}}}},
        NETWORK,
    ),
    (
        "network-container-runc",
        {"HostConfig": {"NetworkMode": "container:runc-c"}},
        shared("network", "runc-c", "runc"),
    ),
    (
        "pid-container-runc",
        {"HostConfig": {"PidMode": "container:runc-c"}},
        shared("pid", "runc-c", "runc"),
    ),
    (
        "ipc-container-runc-upper-prefix",
        {"HostConfig": {"IpcMode": "Container:runc-c"}},
        shared("ipc", "runc-c", "runc"),
    ),
    (
        "pid-container-default-runtime",
        {"HostConfig": {"PidMode": "container:old-c"}},
        shared("pid", "old-c", "default"),
    ),
]


@pytest.mark.parametrize(
    ("body", "message"), [c[1:] for c in NAMESPACES], ids=[c[0] for c in NAMESPACES]
)
def test_host_namespaces_are_refused(body: dict[str, Any], message: str) -> None:
    decision = decide(create({"Image": "busybox", **body}), ON, FACTS)
    rule = "shared-namespace" if "can't share the" in message else "host-namespace"
    _denied(decision, rule, message)


NAMESPACES_ALLOWED = [
    ("pid-container-eci", {"HostConfig": {"PidMode": "container:eci-c"}}),
    ("network-container-eci", {"HostConfig": {"NetworkMode": "container:eci-c"}}),
    ("container-missing", {"HostConfig": {"PidMode": "container:missing"}}),
    ("container-unknown", {"HostConfig": {"IpcMode": "container:nobody"}}),
    ("bridge", {"HostConfig": {"NetworkMode": "bridge"}}),
    ("user-network", {"HostConfig": {"NetworkMode": "mynet"}}),
    ("none", {"HostConfig": {"NetworkMode": "none", "IpcMode": "private"}}),
    ("shareable-ipc", {"HostConfig": {"IpcMode": "shareable"}}),
    ("endpoints", {"NetworkingConfig": {"EndpointsConfig": {"mynet": {}, "bridge": {}}}}),
    ("userns-host-is-ignored-by-the-runtime", {"HostConfig": {"UsernsMode": "host"}}),
    ("hostname-like-value", {"HostConfig": {"NetworkMode": "hostile"}}),
]


@pytest.mark.parametrize(
    "body", [c[1] for c in NAMESPACES_ALLOWED], ids=[c[0] for c in NAMESPACES_ALLOWED]
)
def test_other_namespace_modes_are_allowed(body: dict[str, Any]) -> None:
    req = create({"Image": "busybox", **body})
    decision = decide(req, ON, FACTS)
    assert isinstance(decision, Rewrite)


# --- restricted mounts --------------------------------------------------------------------------

ETC_DOCKER = restricted_mount_message("/etc/docker")

MOUNTS = [
    ("binds-inner", {"HostConfig": {"Binds": ["/etc/docker:/x"]}}, ETC_DOCKER),
    ("binds-top-level", {"Binds": ["/etc/docker:/x"]}, ETC_DOCKER),
    ("binds-lower-case", {"hostconfig": {"binds": ["/etc/docker:/x:ro"]}}, ETC_DOCKER),
    (
        "binds-file",
        {"HostConfig": {"Binds": ["/tmp:/t", "/etc/docker/daemon.json:/d.json:ro"]}},
        restricted_mount_message("/etc/docker/daemon.json"),
    ),
    (
        "binds-dotdot",
        {"HostConfig": {"Binds": ["/etc/x/../docker:/x"]}},
        restricted_mount_message("/etc/x/../docker"),
    ),
    (
        "binds-symlink",
        {"HostConfig": {"Binds": ["/home/u/link:/x"]}},
        restricted_mount_message("/home/u/link"),
    ),
    (
        "mounts-bind",
        {"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/var/lib/docker", "Target": "/x"}]}},
        restricted_mount_message("/var/lib/docker"),
    ),
    (
        "mounts-bind-case",
        {"HostConfig": {"mounts": [{"type": "BIND", "source": "/etc/docker", "target": "/x"}]}},
        ETC_DOCKER,
    ),
    (
        "mounts-bind-no-source",
        {"HostConfig": {"Mounts": [{"Type": "bind", "Target": "/x"}]}},
        restricted_mount_message("/"),
    ),
    (
        "mounts-volume-driver-device",
        {
            "HostConfig": {
                "Mounts": [
                    {
                        "Type": "volume",
                        "Source": "fresh",
                        "Target": "/x",
                        "VolumeOptions": {
                            "DriverConfig": {
                                "Name": "local",
                                "Options": {"type": "none", "o": "bind", "device": "/etc/docker"},
                            }
                        },
                    }
                ]
            }
        },
        ETC_DOCKER,
    ),
    (
        "mounts-volume-driver-device-key-case",
        {
            "HostConfig": {
                "Mounts": [
                    {
                        "Target": "/x",
                        "volumeoptions": {
                            "driverconfig": {
                                "options": {"Type": "none", "O": "bind", "Device": "/etc/docker"}
                            }
                        },
                    }
                ]
            }
        },
        ETC_DOCKER,
    ),
    (
        "mounts-volume-absolute-source",
        {"HostConfig": {"Mounts": [{"Type": "volume", "Source": "/etc/docker", "Target": "/x"}]}},
        ETC_DOCKER,
    ),
    (
        "mounts-named-volume-with-device",
        {"HostConfig": {"Mounts": [{"Type": "volume", "Source": "devvol", "Target": "/x"}]}},
        ETC_DOCKER,
    ),
    ("binds-named-volume-with-device", {"HostConfig": {"Binds": ["devvol:/x"]}}, ETC_DOCKER),
    (
        "binds-named-volume-symlinked-device",
        {"HostConfig": {"Binds": ["linkvol:/x"]}},
        restricted_mount_message("/home/u/link"),
    ),
    ("volumes-key-with-colon", {"Volumes": {"/etc/docker:/x": {}}}, ETC_DOCKER),
    ("volumes-key-lower-case-field", {"volumes": {"/etc/docker:/x:ro": {}}}, ETC_DOCKER),
    ("volumes-from", {"HostConfig": {"VolumesFrom": ["binder"]}}, ETC_DOCKER),
    ("volumes-from-ro", {"HostConfig": {"VolumesFrom": ["safe-binder", "binder:ro"]}}, ETC_DOCKER),
    (
        "volumes-from-symlink",
        {"HostConfig": {"VolumesFrom": ["link-binder"]}},
        restricted_mount_message("/home/u/link"),
    ),
    ("ancestor-root", {"HostConfig": {"Binds": ["/:/host"]}}, restricted_mount_message("/")),
    ("ancestor-var", {"HostConfig": {"Binds": ["/var:/v"]}}, restricted_mount_message("/var")),
    ("ancestor-run", {"HostConfig": {"Binds": ["/run:/r"]}}, restricted_mount_message("/run")),
    (
        "ancestor-var-run",
        {"HostConfig": {"Binds": ["/var/run:/r"]}},
        restricted_mount_message("/var/run"),
    ),
    ("ancestor-etc", {"HostConfig": {"Binds": ["/etc:/e:ro"]}}, restricted_mount_message("/etc")),
]


@pytest.mark.parametrize(("body", "message"), [c[1:] for c in MOUNTS], ids=[c[0] for c in MOUNTS])
def test_restricted_mounts_are_refused_through_every_field(
    body: dict[str, Any], message: str
) -> None:
    decision = decide(create({"Image": "busybox", **body}), ON, FACTS)
    _denied(decision, "restricted-mount", message)


SOCKET = socket_mount_message("docker.io/library/docker")

SOCKETS = [
    ("var-run", {"HostConfig": {"Binds": ["/var/run/docker.sock:/var/run/docker.sock"]}}),
    ("run", {"HostConfig": {"Binds": ["/run/docker.sock:/var/run/docker.sock"]}}),
    ("dotdot", {"HostConfig": {"Binds": ["/var/run/../run/docker.sock:/s"]}}),
    ("slashes", {"HostConfig": {"Binds": ["//run//docker.sock:/s"]}}),
    ("symlink", {"HostConfig": {"Binds": ["/home/u/sock:/s"]}}),
    ("top-level", {"Binds": ["/var/run/docker.sock:/s"]}),
    ("mounts", {"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/run/docker.sock"}]}}),
    ("volumes-key", {"Volumes": {"/var/run/docker.sock:/s": {}}}),
    ("named-volume", {"HostConfig": {"Binds": ["sockvol:/s"]}}),
    ("volumes-from", {"HostConfig": {"VolumesFrom": ["sock-binder"]}}),
]


@pytest.mark.parametrize("body", [c[1] for c in SOCKETS], ids=[c[0] for c in SOCKETS])
@pytest.mark.parametrize("image", ["docker", "docker:cli", "docker.io/library/docker:24"])
def test_docker_socket_is_refused_in_every_spelling(body: dict[str, Any], image: str) -> None:
    decision = decide(create({"Image": image, **body}), ON, FACTS)
    _denied(decision, "docker-socket-mount", SOCKET)


@pytest.mark.parametrize(
    ("image", "named"),
    [
        ("busybox", BUSYBOX),
        ("localhost:5000/a/b:t", "localhost:5000/a/b"),
        ("sha256:" + "a" * 64, "sha256:" + "a" * 64),
        ("a" * 64, "a" * 64),
        ("Not A Reference", "Not A Reference"),
        ("", ""),
    ],
    ids=["short", "registry", "id", "bare-id", "invalid", "empty"],
)
def test_socket_message_names_the_image_repository(image: str, named: str) -> None:
    body = {"Image": image, "HostConfig": {"Binds": ["/run/docker.sock:/s"]}}
    decision = decide(create(body), ON, FACTS)
    _denied(decision, "docker-socket-mount", socket_mount_message(named))


MOUNTS_ALLOWED = [
    ("procfoo", {"HostConfig": {"Binds": ["/procfoo:/p"]}}),
    ("etc-dockerfile", {"HostConfig": {"Binds": ["/etc/dockerfile:/d"]}}),
    ("home", {"HostConfig": {"Binds": ["/home/u/x:/x:ro"]}}),
    ("named-volume", {"HostConfig": {"Binds": ["data:/data"]}}),
    ("named-volume-plain", {"HostConfig": {"Binds": ["plainvol:/data"]}}),
    ("named-volume-home-device", {"HostConfig": {"Binds": ["homevol:/data"]}}),
    ("named-volume-other-driver", {"HostConfig": {"Binds": ["othervol:/data"]}}),
    ("anonymous-volume", {"HostConfig": {"Binds": ["/etc/docker"]}}),
    ("volumes-plain-key", {"Volumes": {"/etc/docker": {}}}),
    ("mounts-tmpfs", {"HostConfig": {"Mounts": [{"Type": "tmpfs", "Target": "/etc/docker"}]}}),
    ("mounts-named-volume", {"HostConfig": {"Mounts": [{"Type": "volume", "Source": "data"}]}}),
    (
        "mounts-other-driver",
        {
            "HostConfig": {
                "Mounts": [
                    {
                        "Type": "volume",
                        "Source": "v",
                        "VolumeOptions": {
                            "DriverConfig": {"Name": "sshfs", "Options": {"device": "/etc/docker"}}
                        },
                    }
                ]
            }
        },
    ),
    ("volumes-from-safe", {"HostConfig": {"VolumesFrom": ["safe-binder:ro"]}}),
    ("volumes-from-missing", {"HostConfig": {"VolumesFrom": ["missing"]}}),
    ("socket-lookalike", {"HostConfig": {"Binds": ["/run/docker.sockets:/s"]}}),
    ("run-user", {"HostConfig": {"Binds": ["/run/user/1000:/r"]}}),
]


@pytest.mark.parametrize("body", [c[1] for c in MOUNTS_ALLOWED], ids=[c[0] for c in MOUNTS_ALLOWED])
def test_other_mounts_are_allowed(body: dict[str, Any]) -> None:
    decision = decide(create({"Image": "busybox", **body}), ON, FACTS)
    assert isinstance(decision, Rewrite)


def test_named_volume_with_overlay_options_is_refused() -> None:
    body = {"Image": "busybox", "HostConfig": {"Binds": ["overlayvol:/x"]}}
    decision = decide(create(body), ON, FACTS)
    assert isinstance(decision, Deny)
    assert decision.rule == "volume-options"
    assert decision.message.startswith(f"{ECI_PREFIX}local volume options refused: ")


def test_create_with_cgroup_parent_is_refused() -> None:
    body = {"Image": "busybox", "HostConfig": {"CgroupParent": "/system.slice"}}
    _denied(
        decide(create(body), ON, FACTS),
        "container-create",
        f"{ECI_PREFIX}containers may not set CgroupParent: it would move them out of the "
        "engine's cgroup",
    )


# --- runtime rewrite ----------------------------------------------------------------------------

RUNTIME_CASES = [
    # (body, path of the HostConfig dockerd uses: () top level, else the key)
    ("no-hostconfig", {"Image": "busybox"}, None),
    ("empty-hostconfig", {"Image": "busybox", "HostConfig": {}}, "HostConfig"),
    ("null-hostconfig", {"Image": "busybox", "HostConfig": None}, None),
    ("runc-inner", {"Image": "busybox", "HostConfig": {"Runtime": "runc"}}, "HostConfig"),
    ("runc-lower", {"Image": "busybox", "hostconfig": {"runtime": "runc"}}, "hostconfig"),
    (
        "runc-many-spellings",
        {"Image": "busybox", "HostConfig": {"runtime": "runc", "RUNTIME": "runc", "RunTime": "x"}},
        "HostConfig",
    ),
    ("runc-top-level", {"Image": "busybox", "Runtime": "runc"}, None),
    ("runc-top-level-lower", {"Image": "busybox", "runtime": "runc", "RUNTIME": "x"}, None),
    (
        "already-sysbox",
        {"Image": "busybox", "HostConfig": {"Runtime": "sysbox-runc"}},
        "HostConfig",
    ),
    (
        "already-sysbox-lower",
        {"Image": "busybox", "HostConfig": {"runtime": "sysbox-runc"}},
        "HostConfig",
    ),
]


@pytest.mark.parametrize(
    ("body", "inner"), [c[1:] for c in RUNTIME_CASES], ids=[c[0] for c in RUNTIME_CASES]
)
def test_runtime_is_forced_where_dockerd_reads_it(body: dict[str, Any], inner: str | None) -> None:
    req = create(body)
    original = copy.deepcopy(req.json)
    decision = decide(req, ON, FACTS)
    sent = forwarded(req, decision)
    host_config = sent if inner is None else sent[inner]
    runtime_keys = [k for k in host_config if k.lower() == "runtime"]
    assert runtime_keys == ["Runtime"]
    assert host_config["Runtime"] == "sysbox-runc"
    assert req.json == original, "the request's own body was mutated"
    assert json.loads(req.body) == body
    if isinstance(decision, Rewrite):
        assert decision.note == "runtime forced to sysbox-runc"


def test_runtime_rewrite_keeps_everything_else_exactly() -> None:
    body: dict[str, Any] = {
        "Image": "busybox",
        "Labels": {"a": "1", "A": "2", "Runtime": "runc", "\u212a": "kelvin", "\u00e9": "e"},
        "Env": ["A=1", "Runtime=runc"],
        "Cmd": ["sh", "-c", "echo \u2603"],
        "HostConfig": {"Binds": ["/home/u/x:/x"], "Memory": 1 << 40, "CpuShares": 2},
        "NetworkingConfig": {"EndpointsConfig": {"mynet": {"Aliases": ["A", "a"]}}},
    }
    req = create(body)
    sent = forwarded(req, decide(req, ON, FACTS))
    assert isinstance(sent, GoObject)
    expected = copy.deepcopy(body)
    expected["HostConfig"]["Runtime"] = "sysbox-runc"
    assert sent == expected
    assert list(sent["Labels"]) == list(body["Labels"])
    assert list(sent) == list(body)


def test_top_level_runtime_beside_an_inner_hostconfig() -> None:
    """dockerd ignores the top-level HostConfig fields when an inner one is given: the
    runtime goes into the inner one."""
    req = create({"Image": "busybox", "Runtime": "runc", "HostConfig": {}})
    sent = forwarded(req, decide(req, ON, FACTS))
    assert sent["HostConfig"]["Runtime"] == "sysbox-runc"


def test_ambiguous_hostconfig_is_refused_not_rewritten() -> None:
    req = create(b'{"Image": "busybox", "HostConfig": {}, "hostconfig": {"PidMode": "host"}}')
    decision = decide(req, ON, FACTS)
    assert isinstance(decision, Deny)
    assert (decision.rule, decision.status) == ("unreadable-body", 400)
    assert decision.message.startswith(f"{ECI_PREFIX}request body refused: ")


@pytest.mark.parametrize(
    "body",
    [
        b'{"Image": "busybox", "HostConfig": {"Binds": ["/etc/docker:/x"]}, '
        b'"HostConfig": {"Runtime": "sysbox-runc"}}',
        b'{"Image": "busybox", "HostConfig": {"PidMode": "host", "PidMode": ""}}',
    ],
    ids=["repeated-hostconfig", "repeated-pidmode"],
)
def test_repeated_keys_are_refused(body: bytes) -> None:
    decision = decide(create(body), ON, FACTS)
    assert isinstance(decision, Deny)
    assert decision.rule == "unreadable-body"


# --- unreadable bodies --------------------------------------------------------------------------

UNREADABLE = [
    ("empty", b""),
    ("not-json", b"not json"),
    ("array", b"[]"),
    ("string", b'"x"'),
    ("null", b"null"),
    ("nan", b'{"Image": "busybox", "CpuShares": NaN}'),
    ("trailing", b'{"Image": "busybox"} {"HostConfig": {"PidMode": "host"}}'),
    ("not-utf8", b'{"Image": "\xff"}'),
    ("hostconfig-not-object", b'{"Image": "busybox", "HostConfig": "host"}'),
    ("binds-not-list", b'{"Image": "busybox", "HostConfig": {"Binds": "/etc:/x"}}'),
    ("binds-not-strings", b'{"Image": "busybox", "HostConfig": {"Binds": [1]}}'),
    ("pidmode-not-string", b'{"Image": "busybox", "HostConfig": {"PidMode": ["host"]}}'),
    ("mounts-entry-not-object", b'{"Image": "busybox", "HostConfig": {"Mounts": ["/x"]}}'),
    ("volumes-not-object", b'{"Image": "busybox", "Volumes": ["/etc/docker:/x"]}'),
    ("image-not-string", b'{"Image": 1}'),
    ("deep", b'{"Image": "busybox", "Env": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
]


@pytest.mark.parametrize("body", [c[1] for c in UNREADABLE], ids=[c[0] for c in UNREADABLE])
def test_unreadable_create_bodies_are_a_400(body: bytes) -> None:
    decision = decide(create(body), ON, FACTS)
    assert isinstance(decision, Deny)
    assert (decision.rule, decision.status) == ("unreadable-body", 400)
    assert decision.message.startswith(f"{ECI_PREFIX}request body refused: ")


# --- start, update, exec ------------------------------------------------------------------------

START_HOSTCONFIG = (
    f"{ECI_PREFIX}a HostConfig in the container start request (API before v1.24) is not "
    "allowed; give it when creating the container"
)


@pytest.mark.parametrize("body", [b"", b"{}", b"null", b" {} \n", b"\n"], ids=repr)
def test_start_without_a_hostconfig_is_allowed(body: bytes) -> None:
    assert decide(request("POST", "/v1.23/containers/eci-c/start", body), ON, FACTS) == Allow()


@pytest.mark.parametrize(
    "body",
    [
        b'{"Binds": ["/etc/docker:/x"]}',
        b'{"Privileged": true}',
        b'{"PidMode": "host"}',
        b"[]",
        b"not json",
        b'{"HostConfig": {}}',
    ],
    ids=repr,
)
def test_start_with_a_hostconfig_is_refused(body: bytes) -> None:
    decision = decide(request("POST", "/v1.23/containers/eci-c/start", body), ON, FACTS)
    _denied(decision, "start-hostconfig", START_HOSTCONFIG)


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ("binder", ETC_DOCKER),
        ("link-binder", restricted_mount_message("/home/u/link")),
        ("sock-binder", socket_mount_message("container")),
    ],
    ids=["restricted", "symlink", "socket"],
)
def test_start_rechecks_the_containers_binds(container: str, message: str) -> None:
    decision = decide(request("POST", f"/containers/{container}/start"), ON, FACTS)
    rule = "docker-socket-mount" if "socket" in message else "restricted-mount"
    _denied(decision, rule, message)


@pytest.mark.parametrize("container", ["eci-c", "safe-binder", "missing", "unknown"])
def test_start_of_other_containers_is_allowed(container: str) -> None:
    assert decide(request("POST", f"/containers/{container}/start"), ON, FACTS) == Allow()


def update_refused(field: str) -> str:
    return (
        f"{ECI_PREFIX}container update may not change {field}: it would weaken the container's "
        "isolation"
    )


UPDATES = [
    ("Devices", {"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]}),
    ("Devices", {"devices": [{"PathOnHost": "/dev/sda"}]}),
    ("DeviceCgroupRules", {"DeviceCgroupRules": ["b 8:* rwm"]}),
    ("DeviceRequests", {"DeviceRequests": [{"Driver": "nvidia", "Count": -1}]}),
    ("CgroupParent", {"CgroupParent": "/"}),
    ("CgroupParent", {"Memory": 1000, "CGROUPPARENT": "/system.slice"}),
]


@pytest.mark.parametrize(("field", "body"), UPDATES, ids=[json.dumps(c[1]) for c in UPDATES])
def test_update_of_devices_and_cgroup_parent_is_refused(field: str, body: dict[str, Any]) -> None:
    decision = decide(request("POST", "/containers/eci-c/update", body), ON, FACTS)
    _denied(decision, "container-update", update_refused(field))


@pytest.mark.parametrize(
    "body",
    [
        {"Memory": 1 << 30, "CpuShares": 512},
        {"Devices": [], "CgroupParent": "", "DeviceRequests": None},
        {"RestartPolicy": {"Name": "always"}},
    ],
    ids=["resources", "empty-forbidden-fields", "restart-policy"],
)
def test_other_updates_are_forwarded_as_parsed(body: dict[str, Any]) -> None:
    req = request("POST", "/containers/eci-c/update", body)
    assert forwarded(req, decide(req, ON, FACTS)) == body


def privileged_exec(container: str, runtime: str) -> str:
    return (
        f"{ECI_PREFIX}privileged exec into container {container!r} is not allowed: it is not an "
        f"enhanced-isolation container (runtime {runtime})"
    )


@pytest.mark.parametrize(
    ("container", "body", "runtime"),
    [
        ("runc-c", {"Privileged": True, "Cmd": ["sh"]}, "runc"),
        ("runc-c", {"privileged": True, "Cmd": ["sh"]}, "runc"),
        ("old-c", {"PRIVILEGED": True}, "default"),
    ],
    ids=["runc", "lower-case-key", "default-runtime"],
)
def test_privileged_exec_into_a_non_eci_container_is_refused(
    container: str, body: dict[str, Any], runtime: str
) -> None:
    decision = decide(request("POST", f"/v1.41/containers/{container}/exec", body), ON, FACTS)
    _denied(decision, "privileged-exec", privileged_exec(container, runtime))


@pytest.mark.parametrize(
    ("container", "body"),
    [
        ("eci-c", {"Privileged": True, "Cmd": ["sh"]}),
        ("runc-c", {"Privileged": False, "Cmd": ["sh"]}),
        ("runc-c", {"Cmd": ["sh"]}),
        ("missing", {"Privileged": True}),
    ],
    ids=["privileged-into-eci", "unprivileged-into-runc", "default-into-runc", "missing"],
)
def test_other_execs_are_allowed(container: str, body: dict[str, Any]) -> None:
    req = request("POST", f"/containers/{container}/exec", body)
    assert forwarded(req, decide(req, ON, FACTS)) == body


# --- volumes and networks -----------------------------------------------------------------------

VOLUMES_REFUSED = [
    (
        "bind-device",
        {"Name": "v", "DriverOpts": {"type": "none", "o": "bind", "device": "/etc/docker"}},
        "restricted-mount",
        ETC_DOCKER,
    ),
    (
        "key-case",
        {"name": "v", "driveropts": {"Type": "none", "O": "bind", "DEVICE": "/etc/docker"}},
        "restricted-mount",
        ETC_DOCKER,
    ),
    (
        "local-driver",
        {"Driver": "local", "DriverOpts": {"type": "none", "o": "bind", "device": "/"}},
        "restricted-mount",
        restricted_mount_message("/"),
    ),
    (
        "symlinked-device",
        {"DriverOpts": {"type": "none", "o": "bind", "device": "/home/u/link"}},
        "restricted-mount",
        restricted_mount_message("/home/u/link"),
    ),
    (
        "socket",
        {"DriverOpts": {"type": "none", "o": "bind", "device": "/var/run/docker.sock"}},
        "docker-socket-mount",
        socket_mount_message("volume"),
    ),
]


@pytest.mark.parametrize(
    ("body", "rule", "message"),
    [c[1:] for c in VOLUMES_REFUSED],
    ids=[c[0] for c in VOLUMES_REFUSED],
)
def test_volume_create_binding_a_protected_path_is_refused(
    body: dict[str, Any], rule: str, message: str
) -> None:
    _denied(decide(request("POST", "/volumes/create", body), ON, FACTS), rule, message)


@pytest.mark.parametrize(
    "options",
    [
        {"type": "none", "o": "bind", "device": "etc/docker"},
        {"type": "none", "o": "bind", "device": "../../etc/docker"},
        {
            "type": "overlay",
            "o": "lowerdir=/etc/docker,upperdir=/tmp/u,workdir=/tmp/w",
            "device": "overlay",
        },
        {"type": "ext4", "device": "/dev/sda1"},
        {"type": "ext4", "o": "loop", "device": "/home/u/disk.img"},
        {"type": "none", "device": 1},
        {"device": "/x", "Device": "/etc/docker"},
    ],
    ids=[
        "relative",
        "relative-dotdot",
        "overlay",
        "block-device",
        "loop",
        "not-a-string",
        "two-spellings",
    ],
)
def test_volume_options_that_reach_host_paths_otherwise_are_refused(
    options: dict[str, Any],
) -> None:
    decision = decide(request("POST", "/volumes/create", {"DriverOpts": options}), ON, FACTS)
    assert isinstance(decision, Deny)
    assert decision.rule in ("volume-options", "unreadable-body")


@pytest.mark.parametrize(
    "body",
    [
        {"Name": "v"},
        {"Name": "v", "DriverOpts": {}},
        {"Name": "v", "DriverOpts": {"type": "tmpfs", "device": "tmpfs", "o": "size=100m"}},
        {"Name": "v", "DriverOpts": {"type": "none", "o": "bind", "device": "/home/u/x"}},
        {"Name": "v", "DriverOpts": {"type": "nfs", "o": "addr=10.0.0.1", "device": ":/export"}},
        {"Name": "v", "Driver": "sshfs", "DriverOpts": {"device": "/etc/docker"}},
    ],
    ids=["plain", "no-options", "tmpfs", "home-bind", "nfs", "other-driver"],
)
def test_other_volume_creates_are_forwarded_as_parsed(body: dict[str, Any]) -> None:
    req = request("POST", "/volumes/create", body)
    assert forwarded(req, decide(req, ON, FACTS)) == body


@pytest.mark.parametrize("network", ["host", "HOST", "hostnet"])
def test_network_connect_to_the_host_network_is_refused(network: str) -> None:
    req = request("POST", f"/networks/{network}/connect", {"Container": "eci-c"})
    _denied(decide(req, ON, FACTS), "host-namespace", NETWORK)


@pytest.mark.parametrize("network", ["mynet", "bridge", "gone"])
def test_network_connect_to_other_networks_is_allowed(network: str) -> None:
    req = request("POST", f"/networks/{network}/connect", {"Container": "eci-c"})
    assert decide(req, ON, FACTS) == Allow()


# --- builds, plugins, services, swarm -----------------------------------------------------------

BUILD_HOST = f"{ECI_PREFIX}builds may not use the host network"


@pytest.mark.parametrize(
    ("target", "rule", "message"),
    [
        ("/build?networkmode=host", "build-host-network", BUILD_HOST),
        ("/v1.41/build?t=x&networkmode=HOST", "build-host-network", BUILD_HOST),
        ("/build?NetworkMode=host", "build-host-network", BUILD_HOST),
        ("/build?NETWORKMODE=Host", "build-host-network", BUILD_HOST),
        ("/build?networkmode=bridge&networkmode=host", "build-host-network", BUILD_HOST),
        ("/build?networkmode=%20host%20", "build-host-network", BUILD_HOST),
        ("/BUILD/?networkmode=host", "build-host-network", BUILD_HOST),
        (
            "/build?networkmode=container:runc-c",
            "build-shared-network",
            f"{ECI_PREFIX}builds may not join another container's network namespace",
        ),
        ("/build?version=2", "buildkit", BUILDKIT_REFUSED),
        ("/v1.41/build?version=1&version=2", "buildkit", BUILDKIT_REFUSED),
    ],
    ids=lambda v: str(v)[:40],
)
def test_builds_with_host_network_or_buildkit_are_refused(
    target: str, rule: str, message: str
) -> None:
    decision = decide(request("POST", target, b"tar bytes", "application/x-tar"), ON, FACTS)
    _denied(decision, rule, message)


@pytest.mark.parametrize(
    "target",
    ["/build", "/build?t=x:1&networkmode=bridge", "/build?version=1", "/build?networkmode=hostile"],
)
def test_classic_builds_are_allowed(target: str) -> None:
    assert decide(request("POST", target, b"tar bytes", "application/x-tar"), ON, FACTS) == Allow()


def test_grpc_is_refused_and_session_allowed() -> None:
    _denied(decide(request("POST", "/grpc"), ON, FACTS), "buildkit", BUILDKIT_REFUSED)
    assert decide(request("POST", "/session"), ON, FACTS) == Allow()


@pytest.mark.parametrize(
    "target",
    [
        "/plugins/pull?remote=vieux/sshfs",
        "/plugins/create?name=p",
        "/plugins/vieux/sshfs:latest/enable",
        "/plugins/p/upgrade?remote=x",
        "/plugins/p/set",
        "/v1.41/PLUGINS/PULL",
    ],
)
def test_plugin_installs_are_refused(target: str) -> None:
    decision = decide(request("POST", target, b"[]"), ON, FACTS)
    _denied(decision, "plugin-install", PLUGIN)


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/plugins"),
        ("GET", "/plugins/p/json"),
        ("POST", "/plugins/p/disable"),
        ("DELETE", "/plugins/p"),
    ],
)
def test_other_plugin_routes_are_allowed(method: str, target: str) -> None:
    assert decide(request(method, target), ON, FACTS) == Allow()


def service(**task: Any) -> dict[str, Any]:
    spec = {"Image": "busybox", **task.pop("spec", {})}
    return {"Name": "s", "TaskTemplate": {"ContainerSpec": spec, **task}}


SERVICES = [
    (
        "bind",
        service(spec={"Mounts": [{"Type": "bind", "Source": "/etc/docker", "Target": "/x"}]}),
        "restricted-mount",
        ETC_DOCKER,
    ),
    (
        "socket",
        service(
            spec={"Image": "docker:cli", "Mounts": [{"Type": "bind", "Source": "/run/docker.sock"}]}
        ),
        "docker-socket-mount",
        SOCKET,
    ),
    (
        "named-volume-device",
        service(spec={"Mounts": [{"Type": "volume", "Source": "devvol", "Target": "/x"}]}),
        "restricted-mount",
        ETC_DOCKER,
    ),
    ("host-network", service(Networks=[{"Target": "host"}]), "host-namespace", NETWORK),
    ("host-driver", service(Networks=[{"Target": "hostnet"}]), "host-namespace", NETWORK),
    (
        "top-level-networks",
        {**service(), "Networks": [{"Target": "HOST"}]},
        "host-namespace",
        NETWORK,
    ),
    ("plugin-spec", service(PluginSpec={"Name": "p"}), "plugin-install", PLUGIN),
    ("plugin-runtime", service(Runtime="plugin"), "plugin-install", PLUGIN),
    (
        "plugin-runtime-case",
        {"name": "s", "tasktemplate": {"runtime": "Plugin"}},
        "plugin-install",
        PLUGIN,
    ),
]


@pytest.mark.parametrize("route", ["/services/create", "/v1.41/services/s1/update?version=3"])
@pytest.mark.parametrize(
    ("body", "rule", "message"), [c[1:] for c in SERVICES], ids=[c[0] for c in SERVICES]
)
def test_services_reaching_the_host_are_refused(
    route: str, body: dict[str, Any], rule: str, message: str
) -> None:
    _denied(decide(request("POST", route, body), ON, FACTS), rule, message)


@pytest.mark.parametrize("route", ["/services/create", "/services/s1/update"])
def test_other_services_are_forwarded_as_parsed(route: str) -> None:
    body = service(
        spec={"Mounts": [{"Type": "volume", "Source": "data", "Target": "/d"}]},
        Networks=[{"Target": "mynet"}],
    )
    req = request("POST", route, body)
    assert forwarded(req, decide(req, ON, FACTS)) == body


def test_swarm_join_is_refused() -> None:
    _denied(
        decide(request("POST", "/swarm/join", {"RemoteAddrs": ["10.0.0.1"]}), ON, FACTS),
        "swarm",
        f"{ECI_PREFIX}swarm mode is not allowed: its managers would run tasks on this "
        "engine without eci's checks",
    )


# --- docker cp ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("GET", "/containers/binder/archive?path=/cfg/daemon.json", None),
        ("HEAD", "/containers/binder/archive?path=/cfg", None),
        ("PUT", "/containers/binder/archive?path=/", b"tar"),
        ("PUT", "/containers/binder/archive?path=/cfg/../cfg/x", b"tar"),
        ("POST", "/containers/binder/copy", {"Resource": "/cfg/daemon.json"}),
    ],
    ids=["get", "head", "put-parent", "put-dotdot", "copy"],
)
def test_cp_through_a_host_bind_is_refused(method: str, target: str, body: Any) -> None:
    decision = decide(request(method, target, body), ON, FACTS)
    assert isinstance(decision, Deny)
    assert decision.rule == "cp-with-host-bind"
    assert "/cfg" in decision.message
    assert "/etc/docker" in decision.message


@pytest.mark.parametrize(
    "target",
    [
        "/containers/binder/archive?path=/etc",
        "/containers/binder/archive?path=/cfgx",
        "/containers/safe-binder/archive?path=/v",
        "/containers/link-binder/archive?path=/",
    ],
    ids=["sibling", "prefix", "volume-path-of-a-binder", "root-of-a-binder"],
)
def test_cp_of_any_path_of_a_container_with_a_host_bind_is_refused(target: str) -> None:
    """Whatever path is named: the container's own symlinks could lead dockerd into the bind."""
    decision = decide(request("GET", target), ON, FACTS)
    assert isinstance(decision, Deny)
    assert decision.rule == "cp-with-host-bind"


@pytest.mark.parametrize(
    "target",
    [
        "/containers/eci-c/archive?path=/",
        "/containers/eci-c/archive?path=/etc/docker",
    ],
)
def test_cp_of_containers_without_host_binds_is_allowed(target: str) -> None:
    assert decide(request("GET", target), ON, FACTS) == Allow()


@pytest.mark.parametrize(
    ("container", "query", "no_overwrite", "chown_to"),
    [
        ("eci-running", "path=/tmp", False, ""),
        ("eci-running", "path=/tmp&noOverwriteDirNonDir=true", True, ""),
        ("eci-running", "path=/tmp&copyUIDGID=1&noOverwriteDirNonDir=0", False, ""),
        ("eci-user", "path=/tmp&copyUIDGID=True&noOverwriteDirNonDir=no", False, "app:staff"),
        ("eci-user", "path=/tmp&copyUIDGID=false", False, ""),
    ],
    ids=["plain", "no-overwrite", "copy-uidgid-no-user", "copy-uidgid-to-user", "keep-owners"],
)
def test_cp_into_a_running_eci_container_is_extracted_inside_it(
    container: str, query: str, no_overwrite: bool, chown_to: str
) -> None:
    """dockerd would write through the idmapped root filesystem as host root (EOVERFLOW)."""
    decision = decide(request("PUT", f"/containers/{container}/archive?{query}", b"tar"), ON, FACTS)
    assert decision == ExtractInContainer(4242, f"{container}-id", "/tmp", no_overwrite, chown_to)


@pytest.mark.parametrize(
    ("method", "container"),
    [("PUT", "eci-c"), ("PUT", "runc-running"), ("GET", "eci-running"), ("HEAD", "eci-running")],
    ids=["eci-stopped", "runc-running", "cp-out-of-eci-running", "stat-in-eci-running"],
)
def test_other_cp_requests_go_to_dockerd(method: str, container: str) -> None:
    body = b"tar" if method == "PUT" else None
    target = f"/containers/{container}/archive?path=/tmp"
    assert decide(request(method, target, body), ON, FACTS) == Allow()


# --- routes eci does not know, form bodies, ECI off ---------------------------------------------


def unknown(method: str, path: str) -> str:
    return (
        f"{ECI_PREFIX}API request {method} {path} is not known to eci; it refuses requests "
        "that could change the engine until they are reviewed"
    )


@pytest.mark.parametrize(
    ("method", "target", "path"),
    [
        ("POST", "/containers/abc/frobnicate", "/containers/abc/frobnicate"),
        ("POST", "/v1.99/containers/abc/checkpoints", "/containers/abc/checkpoints"),
        ("PATCH", "/containers/create", "/containers/create"),
        ("PUT", "/containers/create", "/containers/create"),
        ("DELETE", "/everything", "/everything"),
        ("post", "/nowhere", "/nowhere"),
        ("POST", "/v1.41/v1.40/containers/create", "/v1.40/containers/create"),
        ("POST", "/containers/create%3Fname=x", "/containers/create?name=x"),
    ],
    ids=lambda v: str(v),
)
def test_unknown_writes_are_refused(method: str, target: str, path: str) -> None:
    _denied(
        decide(request(method, target), ON, FACTS), "unknown-route", unknown(method.upper(), path)
    )


@pytest.mark.parametrize(
    ("method", "target"),
    [("GET", "/nowhere"), ("HEAD", "/nowhere"), ("GET", "/containers/a/b/json"), ("GET", "/")],
)
def test_unknown_reads_are_allowed(method: str, target: str) -> None:
    assert decide(request(method, target), ON, FACTS) == Allow()


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=utf-8",
        "Application/X-WWW-Form-Urlencoded",
        " application/x-www-form-urlencoded ;x=y",
    ],
)
@pytest.mark.parametrize(
    ("method", "target"),
    [("POST", "/containers/create"), ("POST", "/containers/eci-c/start"), ("DELETE", "/images/x")],
)
def test_form_encoded_bodies_are_refused(method: str, target: str, content_type: str) -> None:
    req = request(method, target, b"HostConfig.PidMode=host", content_type)
    _denied(
        decide(req, ON, FACTS),
        "form-body",
        f"{ECI_PREFIX}form-encoded request bodies are not accepted ({content_type!r})",
        400,
    )


def test_form_content_type_on_a_read_is_allowed() -> None:
    req = request("GET", "/containers/json", b"", "application/x-www-form-urlencoded")
    assert decide(req, ON, FACTS) == Allow()


def test_reads_of_known_routes_are_allowed() -> None:
    for method, target in [
        ("GET", "/containers/json?all=1"),
        ("GET", "/v1.41/images/json"),
        ("HEAD", "/_ping"),
        ("GET", "/events"),
        ("GET", "/containers/runc-c/logs?follow=1"),
    ]:
        assert decide(request(method, target), ON, FACTS) == Allow()


EVERYTHING_REFUSED = [
    create({"Image": "busybox", "HostConfig": {"PidMode": "host", "Binds": ["/:/host"]}}),
    create(b"not json"),
    request("POST", "/containers/eci-c/start", {"Binds": ["/:/h"]}),
    request("POST", "/containers/eci-c/update", {"Devices": [{"PathOnHost": "/dev/sda"}]}),
    request("POST", "/containers/runc-c/exec", {"Privileged": True}),
    request("POST", "/volumes/create", {"DriverOpts": {"o": "bind", "device": "/"}}),
    request("POST", "/networks/host/connect", {"Container": "x"}),
    request("POST", "/build?networkmode=host"),
    request("POST", "/grpc"),
    request("POST", "/plugins/pull"),
    request("POST", "/services/create", service(PluginSpec={})),
    request("POST", "/swarm/join", {}),
    request("POST", "/nowhere"),
    request("POST", "/containers/create", b"a=b", "application/x-www-form-urlencoded"),
    request("GET", "/containers/binder/archive?path=/cfg"),
]


@pytest.mark.parametrize("req", EVERYTHING_REFUSED, ids=lambda r: r.describe())
def test_every_refusal_with_eci_off_is_allowed_untouched(req: Any) -> None:
    assert isinstance(decide(req, ON, FACTS), Deny)
    assert decide(req, OFF, FACTS) == Allow()
    assert decide(req, OFF) == Allow()


def test_eci_off_leaves_the_runtime_alone() -> None:
    req = create({"Image": "busybox", "HostConfig": {"Runtime": "runc"}})
    assert decide(req, OFF, FACTS) == Allow()


def test_decide_without_facts_treats_the_engine_as_empty() -> None:
    req = create({"Image": "busybox", "HostConfig": {"PidMode": "container:runc-c"}})
    assert isinstance(decide(req, ON), Rewrite)
    assert isinstance(decide(req, ON, Facts()), Rewrite)
    assert isinstance(decide(req, ON, FACTS), Deny)


# --- gaps found while writing these tests (see each test's docstring) --------------------------


@pytest.mark.parametrize(
    "target",
    ["/build?cgroupparent=/", "/v1.41/build?t=x&cgroupparent=/system.slice"],
)
def test_build_with_a_cgroup_parent_is_refused(target: str) -> None:
    """A create may not set ``CgroupParent`` (it would move the container out of the engine's
    cgroup); the classic builder creates every RUN step's container with the ``cgroupparent``
    of the build's query, so the same request through ``/build`` must be refused too."""
    decision = decide(request("POST", target, b"tar bytes", "application/x-tar"), ON, FACTS)
    assert isinstance(decision, Deny)


def test_swarm_init_is_refused_like_join() -> None:
    """``swarm join`` is refused because a remote manager would schedule tasks on this engine
    without the proxy. ``swarm init`` opens the same door from the other side: the manager
    join token is readable (``GET /swarm``), so a second engine of the user's joins as a
    manager and schedules a task with a host bind or the host network onto this node."""
    decision = decide(request("POST", "/swarm/init", {"ListenAddr": "0.0.0.0:2377"}), ON, FACTS)
    assert isinstance(decision, Deny)


# --- working directory under /proc (CVE-2024-21626), host devices --------------------------


@pytest.mark.parametrize(
    "workdir", ["/proc/self/fd/7", "/proc", "/proc/1/cwd", "//proc/./self/fd/8", "/x/../proc/1"]
)
def test_a_working_directory_under_proc_is_refused(workdir: str) -> None:
    message = proc_workdir_refusal(workdir)
    assert message is not None
    assert workdir in message
    body = {"Image": BUSYBOX, "WorkingDir": workdir}
    _denied(decide(create(body), ON, FACTS), "proc-workdir", ECI_PREFIX + message)
    exec_body = {"Cmd": ["sh"], "WorkingDir": workdir}
    decision = decide(request("POST", "/v1.41/containers/eci-c/exec", exec_body), ON, FACTS)
    _denied(decision, "proc-workdir", ECI_PREFIX + message)


@pytest.mark.parametrize("workdir", ["/procfoo", "/work/proc", "", "/"])
def test_other_working_directories_pass(workdir: str) -> None:
    assert proc_workdir_refusal(workdir) is None
    body = {"Image": BUSYBOX, "WorkingDir": workdir}
    assert forwarded(create(body), decide(create(body), ON, FACTS))["WorkingDir"] == workdir


@pytest.mark.parametrize("path", ["/dev/vda", "/dev/kmsg", "/dev/mem", "/dev/../dev/sda", ""])
def test_host_devices_are_refused(path: str) -> None:
    device = {"PathOnHost": path, "PathInContainer": "/dev/null", "CgroupPermissions": "rwm"}
    body = {"Image": BUSYBOX, "HostConfig": {"Devices": [device]}}
    _denied(decide(create(body), ON, FACTS), "host-device", device_message(path))


@pytest.mark.parametrize("path", sorted(ALLOWED_DEVICE_PATHS))
def test_allowed_pseudo_devices_pass(path: str) -> None:
    device = {"PathOnHost": path, "PathInContainer": path, "CgroupPermissions": "rwm"}
    body = {"Image": BUSYBOX, "HostConfig": {"Devices": [device]}}
    assert not isinstance(decide(create(body), ON, FACTS), Deny)


@pytest.mark.parametrize(
    "host_config",
    [
        {"DeviceCgroupRules": ["b *:* rwm"]},
        {"DeviceRequests": [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}]},
    ],
    ids=["cgroup-rules", "gpus"],
)
def test_device_rules_and_requests_are_refused(host_config: dict[str, Any]) -> None:
    decision = decide(create({"Image": BUSYBOX, "HostConfig": host_config}), ON, FACTS)
    assert isinstance(decision, Deny)
    assert decision.rule == "host-device"
