"""Bypass attempts against the policing proxy, sent as raw HTTP bytes over unix sockets.

Every case is first proven against dockerd's own socket (the control): the daemon accepts it
with the dangerous effect, seen in an inspect; where that cannot happen on this host, the
control at least shows the daemon processes the request (the case's comment says why). The
identical bytes then go to the proxy (the user socket), which must refuse them with the
exact status and text, and nothing may be created. Everything a case creates is removed by
exact name or id through the raw socket.

No client library is involved in an attack: ``tests/security/rawhttp.py`` writes the bytes
and reads the responses back itself.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from tests.security.rawhttp import Connection, Response, api, exchange, request
from tests.support import TEST_USER, EngineHandle, run, scratch_registry

from eci.errors import (
    ECI_PREFIX,
    host_namespaces_message,
    restricted_mount_message,
    socket_mount_message,
)

pytestmark = pytest.mark.engine

#: Put in every refused body: the audit log must never contain it.
MARKER = f"SECRET-MARKER-{uuid.uuid4().hex}"
SECRET_ENV = [f"ECI_SECRET={MARKER}"]
IMAGE = "busybox"
IMAGE_REPO = "docker.io/library/busybox"
CREATE = "/v1.41/containers/create?name={name}"
#: How long to wait for a response that may legitimately never come (a half-sent request).
SHORT = 15.0

PLUGIN_MESSAGE = (
    f"{ECI_PREFIX}installing, enabling or configuring engine plugins is not allowed "
    "(plugins run with the engine's full host privileges)"
)
START_MESSAGE = (
    f"{ECI_PREFIX}a HostConfig in the container start request (API before v1.24) is not "
    "allowed; give it when creating the container"
)
BUILD_MESSAGE = f"{ECI_PREFIX}builds may not use the host network"
#: What the runtime shim answers when dockerd asks it for the host network (a build step).
SHIM_HOST_NETWORK = "OCI runtime create failed: eci: " + host_namespaces_message(["network"])


def unique(prefix: str = "sec") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ---- the environment every case runs in --------------------------------------------------


@dataclass(frozen=True)
class Env:
    engine: EngineHandle
    raw: Path
    user: Path
    #: a running container with runtime runc, created through the raw socket (shareable IPC)
    holder: str
    holder_name: str
    #: a runc container holding a bind of /etc/docker (created, never started)
    binder: str
    binder_name: str
    #: a local volume binding /etc/docker, created through the raw socket
    volume: str
    #: a directory of the test's own: link -> /etc/docker, etc -> /etc, safe/
    links: Path
    host_network: str
    dockerd_cwd: str

    @property
    def state_dir(self) -> str:
        return str(self.engine.layout.state_dir)


def inspect(env: Env, kind: str, ref: str) -> dict[str, Any] | None:
    """``GET /{kind}/{ref}[/json]`` through the raw socket; ``None`` when it does not exist."""
    suffix = "/json" if kind in ("containers", "plugins", "exec") else ""
    response = api(env.raw, "GET", f"/{kind}/{quote(ref, safe='')}{suffix}")
    if response.status == 404:
        return None
    assert response.status == 200, response
    data = response.json()
    assert isinstance(data, dict)
    return data


def remove_container(env: Env, ref: str) -> None:
    response = api(env.raw, "DELETE", f"/containers/{quote(ref, safe='')}?force=1&v=1")
    assert response.status in (204, 404), response


def remove_volume(env: Env, name: str) -> None:
    response = api(env.raw, "DELETE", f"/volumes/{quote(name, safe='')}?force=1")
    assert response.status in (204, 404), response


def snapshot(env: Env) -> tuple[frozenset[str], frozenset[str]]:
    """Ids of all containers and names of all volumes: a refusal must change neither."""
    containers = api(env.raw, "GET", "/containers/json?all=1").json()
    volumes = api(env.raw, "GET", "/volumes").json()["Volumes"] or []
    return frozenset(c["Id"] for c in containers), frozenset(v["Name"] for v in volumes)


def create_raw(env: Env, name: str, body: dict[str, Any]) -> str:
    response = api(env.raw, "POST", f"/containers/create?name={name}", body)
    assert response.status == 201, response
    return str(response.json()["Id"])


def assert_refused(response: Response, status: int | tuple[int, ...], message: str | None) -> None:
    """The proxy's refusal: the status, JSON ``{"message": ...}`` and the exact text (or, for
    ``None``, a text of eci's own)."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status in statuses, response
    assert response.headers.get("content-type") == "application/json", response.headers
    if message is None:
        assert response.message.startswith(ECI_PREFIX), response
    else:
        assert response.message == message, response


def not_from_eci(response: Response) -> None:
    """A control's answer comes from dockerd itself, never from eci."""
    assert b"enhanced container isolation" not in response.body, response


@pytest.fixture(scope="module")
def env(engine: EngineHandle) -> Iterator[Env]:
    raw, user = engine.layout.raw_socket, engine.layout.user_socket
    holder_name, binder_name, volume = unique("sec-holder"), unique("sec-binder"), unique("sec-vol")
    links = Path(tempfile.mkdtemp(prefix="sec-links-", dir="/tmp"))
    created: list[str] = []
    try:
        links.chmod(0o755)
        (links / "link").symlink_to("/etc/docker")
        (links / "etc").symlink_to("/etc")
        (links / "safe").mkdir()
        holder = api(
            raw,
            "POST",
            f"/containers/create?name={holder_name}",
            {
                "Image": IMAGE,
                "Cmd": ["sleep", "3600"],
                "HostConfig": {"Runtime": "runc", "IpcMode": "shareable"},
            },
        )
        assert holder.status == 201, holder
        created.append(holder_name)
        started = api(raw, "POST", f"/containers/{holder_name}/start")
        assert started.status == 204, started
        binder = api(
            raw,
            "POST",
            f"/containers/create?name={binder_name}",
            {"Image": IMAGE, "HostConfig": {"Runtime": "runc", "Binds": ["/etc/docker:/x:ro"]}},
        )
        assert binder.status == 201, binder
        created.append(binder_name)
        made = api(
            raw,
            "POST",
            "/volumes/create",
            {
                "Name": volume,
                "Driver": "local",
                "DriverOpts": {"type": "none", "o": "bind", "device": "/etc/docker"},
            },
        )
        assert made.status == 201, made
        host_network = api(raw, "GET", "/networks/host").json()["Id"]
        pid = int(engine.layout.pid_file("dockerd").read_text().strip())
        yield Env(
            engine=engine,
            raw=raw,
            user=user,
            holder=str(holder.json()["Id"]),
            holder_name=holder_name,
            binder=str(binder.json()["Id"]),
            binder_name=binder_name,
            volume=volume,
            links=links,
            host_network=str(host_network),
            dockerd_cwd=os.readlink(f"/proc/{pid}/cwd"),
        )
    finally:
        for name in created:
            api(raw, "DELETE", f"/containers/{name}?force=1&v=1")
        api(raw, "DELETE", f"/volumes/{volume}?force=1")
        shutil.rmtree(links, ignore_errors=True)


# ---- bodies --------------------------------------------------------------------------------


class Json(bytes):
    """JSON text written by hand (duplicate keys, exotic spellings stay exactly as given)."""


def pairs(*items: tuple[str, Any]) -> Json:
    """A JSON object written key by key, in order, duplicates kept."""

    def enc(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else json.dumps(value)

    return Json(("{" + ",".join(f"{json.dumps(k)}:{enc(v)}" for k, v in items) + "}").encode())


def container(**host_config: Any) -> dict[str, Any]:
    return {"Image": IMAGE, "Env": SECRET_ENV, "HostConfig": host_config}


def encode(body: Any) -> bytes:
    return bytes(body) if isinstance(body, bytes) else json.dumps(body).encode()


Value = str | Callable[[Env], str]


def value(v: Value, env: Env) -> str:
    return v if isinstance(v, str) else v(env)


# ---- effects seen in the control's inspect ---------------------------------------------------

Effect = Callable[[dict[str, Any], Env], bool]


def mode(field: str, expected: Value) -> Effect:
    return lambda info, env: info["HostConfig"].get(field) == value(expected, env)


def modes(**expected: str) -> Effect:
    return lambda info, env: all(info["HostConfig"].get(k) == v for k, v in expected.items())


def bound(source: Value) -> Effect:
    """The container holds a bind mount of host path ``source``."""
    return lambda info, env: any(
        m.get("Type") == "bind" and m.get("Source") == value(source, env)
        for m in info.get("Mounts") or []
    )


def bind_given(spec: Value) -> Effect:
    """dockerd kept the bind as given (its source may not exist on this host: nothing is
    checked before start) and will mount it."""
    return lambda info, env: value(spec, env) in (info["HostConfig"].get("Binds") or [])


def joined(network: str) -> Effect:
    return lambda info, env: network in (info["NetworkSettings"].get("Networks") or {})


def inline_device(device: Value) -> Effect:
    def check(info: dict[str, Any], env: Env) -> bool:
        mounts = info["HostConfig"].get("Mounts") or []
        return any(
            ((m.get("VolumeOptions") or {}).get("DriverConfig") or {})
            .get("Options", {})
            .get("device")
            == value(device, env)
            for m in mounts
        )

    return check


def uses_volume(info: dict[str, Any], env: Env) -> bool:
    return any(m.get("Name") == env.volume for m in info.get("Mounts") or [])


# ---- messages --------------------------------------------------------------------------------

Message = Callable[[Env], str | None]


def ns(*kinds: str) -> Message:
    return lambda env: host_namespaces_message(list(kinds))


def restricted(path: Value) -> Message:
    return lambda env: restricted_mount_message(value(path, env))


def socket_text(env: Env) -> str:
    return socket_mount_message(IMAGE_REPO)


def shared(kind: str, ref: Callable[[Env], str]) -> Message:
    return lambda env: (
        f"{ECI_PREFIX}can't share the {kind} namespace of container {ref(env)!r}: it is not an "
        "enhanced-isolation container (runtime runc)"
    )


def eci_text(env: Env) -> None:
    return None


# ---- 1. container create: one request, the body is the attack ------------------------------


@dataclass(frozen=True)
class Create:
    id: str
    body: Callable[[Env], Any]
    effect: Effect
    message: Message
    status: int | tuple[int, ...] = 403


def _state(env: Env) -> str:
    return env.state_dir


def _binds(*specs: Value) -> Callable[[Env], Any]:
    return lambda env: container(Binds=[value(s, env) for s in specs])


def _bind_case(case_id: str, source: Value, message: Message | None = None) -> Create:
    def spec(env: Env) -> str:
        return f"{value(source, env)}:/x"

    return Create(case_id, _binds(spec), bind_given(spec), message or restricted(source))


def _relative_to_dockerd(path: str) -> Callable[[Env], str]:
    return lambda env: os.path.relpath(path, env.dockerd_cwd)


CREATE_CASES = [
    # host namespaces
    Create("pid-host", lambda env: container(PidMode="host"), mode("PidMode", "host"), ns("pid")),
    Create("ipc-host", lambda env: container(IpcMode="host"), mode("IpcMode", "host"), ns("ipc")),
    Create("uts-host", lambda env: container(UTSMode="host"), mode("UTSMode", "host"), ns("uts")),
    Create(
        "network-host",
        lambda env: container(NetworkMode="host"),
        mode("NetworkMode", "host"),
        ns("network"),
    ),
    Create(
        "pid-ipc-uts-host",
        lambda env: container(PidMode="host", IpcMode="host", UTSMode="host"),
        modes(PidMode="host", IpcMode="host", UTSMode="host"),
        ns("pid", "ipc", "uts"),
    ),
    Create(
        "endpoints-config-host",
        lambda env: {
            "Image": IMAGE,
            "Env": SECRET_ENV,
            "NetworkingConfig": {"EndpointsConfig": {"host": {}}},
        },
        joined("host"),
        ns("network"),
    ),
    Create(
        "endpoints-config-host-network-id",
        lambda env: {
            "Image": IMAGE,
            "Env": SECRET_ENV,
            "NetworkingConfig": {"EndpointsConfig": {env.host_network: {}}},
        },
        lambda info, env: joined(env.host_network)(info, env) or joined("host")(info, env),
        ns("network"),
    ),
    Create(
        "network-mode-host-network-id",
        lambda env: container(NetworkMode=env.host_network),
        mode("NetworkMode", lambda env: env.host_network),
        ns("network"),
    ),
    Create(
        "network-mode-host-network-short-id",
        lambda env: container(NetworkMode=env.host_network[:12]),
        mode("NetworkMode", lambda env: env.host_network[:12]),
        ns("network"),
    ),
    Create(
        "pid-container-runc",
        lambda env: container(PidMode=f"container:{env.holder}"),
        mode("PidMode", lambda env: f"container:{env.holder}"),
        shared("pid", lambda env: env.holder),
    ),
    Create(
        "pid-container-runc-by-name",
        lambda env: container(PidMode=f"container:{env.holder_name}"),
        mode("PidMode", lambda env: f"container:{env.holder}"),
        shared("pid", lambda env: env.holder_name),
    ),
    Create(
        "network-container-runc",
        lambda env: container(NetworkMode=f"container:{env.holder}"),
        mode("NetworkMode", lambda env: f"container:{env.holder}"),
        shared("network", lambda env: env.holder),
    ),
    Create(
        "ipc-container-runc",
        lambda env: container(IpcMode=f"container:{env.holder}"),
        mode("IpcMode", lambda env: f"container:{env.holder}"),
        shared("ipc", lambda env: env.holder),
    ),
    # restricted host paths in Binds
    _bind_case("binds-etc-docker", "/etc/docker"),
    Create(
        "binds-etc-docker-ro",
        _binds("/etc/docker:/x:ro"),
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    _bind_case("binds-etc-docker-daemon-json", "/etc/docker/daemon.json"),
    _bind_case("binds-var-lib-docker", "/var/lib/docker"),
    _bind_case("binds-etc-containerd", "/etc/containerd"),
    _bind_case("binds-run-containerd", "/run/containerd"),
    _bind_case("binds-engine-state-dir", _state),
    _bind_case("binds-engine-config-dir", lambda env: f"{env.state_dir}/config"),
    _bind_case("binds-engine-private-run-dir", lambda env: str(env.engine.layout.private_dir)),
    _bind_case("binds-root", "/"),
    _bind_case("binds-var", "/var"),
    _bind_case("binds-var-run", "/var/run"),
    _bind_case("binds-run", "/run"),
    _bind_case("binds-tmp-holding-the-engine", "/tmp"),
    _bind_case("binds-run-eci", "/run/eci"),
    _bind_case("binds-var-run-eci", "/var/run/eci"),
    _bind_case("binds-var-lib-eci", "/var/lib/eci"),
    _bind_case("binds-etc-eci", "/etc/eci"),
    Create(
        "binds-dotdot",
        _binds("/tmp/../etc/docker:/x"),
        bound("/etc/docker"),
        restricted("/tmp/../etc/docker"),
    ),
    Create(
        "binds-double-slashes",
        _binds("//etc//docker/:/x"),
        bound("/etc/docker"),
        restricted("//etc//docker/"),
    ),
    Create(
        "binds-dot-segment",
        _binds("/etc/./docker:/x"),
        bound("/etc/docker"),
        restricted("/etc/./docker"),
    ),
    _bind_case("binds-symlink-to-etc-docker", lambda env: f"{env.links}/link"),
    _bind_case("binds-through-symlinked-parent", lambda env: f"{env.links}/etc/docker"),
    # Docker sockets
    _bind_case("socket-var-run-docker-sock", "/var/run/docker.sock", socket_text),
    _bind_case("socket-run-docker-sock", "/run/docker.sock", socket_text),
    _bind_case(
        "socket-engine-user-socket", lambda env: str(env.engine.layout.user_socket), socket_text
    ),
    _bind_case("socket-dotdot", "/var/run/../run/docker.sock", socket_text),
    _bind_case("socket-double-slashes", "//var//run//docker.sock", socket_text),
    Create(
        "socket-engine-raw-socket",
        _binds(lambda env: f"{env.engine.layout.raw_socket}:/s"),
        bind_given(lambda env: f"{env.engine.layout.raw_socket}:/s"),
        # dockerd's own socket lies in the engine's run dir: a restricted path
        restricted(lambda env: str(env.engine.layout.raw_socket)),
    ),
    # legacy top-level HostConfig fields (dockerd reads them when there is no inner HostConfig)
    Create(
        "legacy-top-level-binds",
        lambda env: {"Image": IMAGE, "Env": SECRET_ENV, "Binds": ["/etc/docker:/x"]},
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    Create(
        "legacy-top-level-pid-mode",
        lambda env: {"Image": IMAGE, "Env": SECRET_ENV, "PidMode": "host"},
        mode("PidMode", "host"),
        ns("pid"),
    ),
    Create(
        "legacy-top-level-with-null-hostconfig",
        lambda env: {"Image": IMAGE, "Env": SECRET_ENV, "HostConfig": None, "PidMode": "host"},
        mode("PidMode", "host"),
        ns("pid"),
    ),
    # Mounts
    Create(
        "mounts-bind-etc-docker",
        lambda env: container(Mounts=[{"Type": "bind", "Source": "/etc/docker", "Target": "/x"}]),
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    Create(
        "mounts-bind-readonly",
        lambda env: container(
            Mounts=[{"Type": "bind", "Source": "/etc/docker", "Target": "/x", "ReadOnly": True}]
        ),
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    Create(
        "mounts-bind-lowercase-keys",
        lambda env: container(mounts=[{"type": "bind", "source": "/etc/docker", "target": "/x"}]),
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    Create(
        "mounts-bind-engine-state-dir",
        lambda env: container(Mounts=[{"Type": "bind", "Source": env.state_dir, "Target": "/x"}]),
        bound(_state),
        restricted(_state),
    ),
    Create(
        "mounts-bind-dotdot",
        lambda env: container(
            Mounts=[{"Type": "bind", "Source": "/tmp/../etc/docker", "Target": "/x"}]
        ),
        bound("/etc/docker"),
        restricted("/tmp/../etc/docker"),
    ),
    Create(
        "mounts-volume-inline-bind-device",
        lambda env: container(
            Mounts=[
                {
                    "Type": "volume",
                    "Target": "/x",
                    "VolumeOptions": {
                        "DriverConfig": {
                            "Options": {"type": "none", "o": "bind", "device": "/etc/docker"}
                        }
                    },
                }
            ]
        ),
        inline_device("/etc/docker"),
        restricted("/etc/docker"),
    ),
    Create(
        "mounts-volume-named-bind-volume",
        lambda env: container(Mounts=[{"Type": "volume", "Source": env.volume, "Target": "/x"}]),
        uses_volume,
        restricted("/etc/docker"),
    ),
    Create(
        "binds-named-bind-volume",
        lambda env: container(Binds=[f"{env.volume}:/x"]),
        uses_volume,
        restricted("/etc/docker"),
    ),
    # A relative `device` is mounted relative to dockerd's working directory.
    Create(
        "mounts-volume-inline-relative-device",
        lambda env: container(
            Mounts=[
                {
                    "Type": "volume",
                    "Target": "/x",
                    "VolumeOptions": {
                        "DriverConfig": {
                            "Options": {
                                "type": "none",
                                "o": "bind",
                                "device": os.path.relpath("/etc/docker", env.dockerd_cwd),
                            }
                        }
                    },
                }
            ]
        ),
        inline_device(_relative_to_dockerd("/etc/docker")),
        eci_text,
        (400, 403),
    ),
    # An overlay volume takes its host directories from `o` (lowerdir=...), not `device`.
    Create(
        "mounts-volume-inline-overlay-lowerdir",
        lambda env: container(
            Mounts=[
                {
                    "Type": "volume",
                    "Target": "/x",
                    "VolumeOptions": {
                        "DriverConfig": {
                            "Options": {
                                "type": "overlay",
                                "device": "overlay",
                                "o": "lowerdir=/etc/docker:/etc/ssl",
                            }
                        }
                    },
                }
            ]
        ),
        inline_device("overlay"),
        eci_text,
        (400, 403),
    ),
    Create(
        "volumes-from-runc-container",
        lambda env: container(VolumesFrom=[env.binder_name]),
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    Create(
        "volumes-from-runc-container-ro",
        lambda env: container(VolumesFrom=[f"{env.binder_name}:ro"]),
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    Create(
        "volumes-from-runc-container-by-id",
        lambda env: container(VolumesFrom=[env.binder]),
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    # how Go's encoding/json reads keys
    Create(
        "keys-lowercase",
        lambda env: {"Image": IMAGE, "Env": SECRET_ENV, "hostconfig": {"pidmode": "host"}},
        mode("PidMode", "host"),
        ns("pid"),
    ),
    Create(
        "keys-uppercase",
        lambda env: {"Image": IMAGE, "Env": SECRET_ENV, "HOSTCONFIG": {"PIDMODE": "host"}},
        mode("PidMode", "host"),
        ns("pid"),
    ),
    Create(
        "keys-kelvin-sign",
        lambda env: pairs(
            ("Image", IMAGE),
            ("Env", SECRET_ENV),
            ("HostConfig", Json('{"Networ\u212aMode":"host"}'.encode())),
        ),
        mode("NetworkMode", "host"),
        ns("network"),
    ),
    Create(
        "keys-long-s",
        lambda env: pairs(
            ("Image", IMAGE),
            ("Env", SECRET_ENV),
            ("Ho\u017ftConfig", {"Bind\u017f": ["/etc/docker:/x"]}),
        ),
        bound("/etc/docker"),
        restricted("/etc/docker"),
    ),
    Create(
        "keys-unicode-escape",
        lambda env: Json(
            b'{"Image":"busybox","Env":'
            + json.dumps(SECRET_ENV).encode()
            + b',"HostConfig":{"\\u0050idMode":"host"}}'
        ),
        mode("PidMode", "host"),
        ns("pid"),
    ),
    # duplicate keys: Go lets the last one win and merges nested objects into the first
    Create(
        "duplicate-keys-folded-hostconfig",
        lambda env: pairs(
            ("Image", IMAGE),
            ("Env", SECRET_ENV),
            ("HostConfig", {"Memory": 0}),
            ("hostconfig", {"PidMode": "host"}),
        ),
        mode("PidMode", "host"),
        eci_text,
        400,
    ),
    Create(
        "duplicate-keys-folded-pid-mode",
        lambda env: pairs(
            ("Image", IMAGE),
            ("Env", SECRET_ENV),
            ("HostConfig", pairs(("pidmode", ""), ("PidMode", "host"))),
        ),
        mode("PidMode", "host"),
        eci_text,
        400,
    ),
    Create(
        "duplicate-keys-exact-last-wins",
        lambda env: pairs(
            ("Image", IMAGE),
            ("Env", SECRET_ENV),
            ("HostConfig", {"PidMode": "private"}),
            ("HostConfig", {"PidMode": "host"}),
        ),
        mode("PidMode", "host"),
        eci_text,
        400,  # a repeated key is ambiguous (Go merges repeats): refused as unreadable
    ),
    Create(
        "runtime-duplicate-exact",
        lambda env: pairs(
            ("Image", IMAGE),
            ("HostConfig", {"Runtime": "sysbox-runc"}),
            ("HostConfig", {"Runtime": "runc"}),
        ),
        mode("Runtime", "runc"),
        eci_text,
        400,
    ),
    # Go merges a repeated HostConfig into the first: the bind of the first one survives
    Create(
        "duplicate-keys-exact-merge-binds",
        lambda env: pairs(
            ("Image", IMAGE),
            ("Env", SECRET_ENV),
            ("HostConfig", {"Binds": ["/etc/docker:/x"]}),
            ("HostConfig", {"Runtime": "sysbox-runc"}),
        ),
        bound("/etc/docker"),
        eci_text,
        (400, 403),
    ),
    Create(
        "duplicate-keys-exact-merge-pid-mode",
        lambda env: pairs(
            ("Image", IMAGE),
            ("Env", SECRET_ENV),
            ("HostConfig", {"PidMode": "host"}),
            ("HostConfig", {"Runtime": "sysbox-runc"}),
        ),
        mode("PidMode", "host"),
        eci_text,
        (400, 403),
    ),
    Create(
        "duplicate-keys-exact-merge-endpoints",
        lambda env: pairs(
            ("Image", IMAGE),
            ("Env", SECRET_ENV),
            ("HostConfig", {"Runtime": "sysbox-runc"}),
            ("NetworkingConfig", {"EndpointsConfig": {"host": {}}}),
            ("NetworkingConfig", {"EndpointsConfig": {}}),
        ),
        joined("host"),
        eci_text,
        (400, 403),
    ),
]


@pytest.mark.parametrize("case", CREATE_CASES, ids=lambda c: c.id)
def test_container_create_refused(env: Env, case: Create) -> None:
    name = unique()
    data = request("POST", CREATE.format(name=name), encode(case.body(env)))
    # control: dockerd creates it, with the dangerous setting
    responses = exchange(env.raw, data)
    try:
        assert [r.status for r in responses] == [201], responses
        info = inspect(env, "containers", name)
        assert info is not None
        assert case.effect(info, env), json.dumps(info["HostConfig"])[:2000]
    finally:
        remove_container(env, name)
    # the proxy refuses the identical bytes, and nothing is created
    before = snapshot(env)
    responses = exchange(env.user, data)
    try:
        assert len(responses) == 1, responses
        assert_refused(responses[0], case.status, case.message(env))
        assert inspect(env, "containers", name) is None
        assert snapshot(env) == before
    finally:
        remove_container(env, name)


# ---- 2. the runtime: forced to sysbox-runc in every spelling -------------------------------

RUNTIME_CASES = {
    "runtime": {"Image": IMAGE, "HostConfig": {"Runtime": "runc"}},
    "runtime-lowercase": {"Image": IMAGE, "HostConfig": {"runtime": "runc"}},
    "runtime-uppercase": {"Image": IMAGE, "HostConfig": {"RUNTIME": "runc"}},
    "runtime-lowercase-hostconfig": {"Image": IMAGE, "hostconfig": {"Runtime": "runc"}},
    "runtime-legacy-top-level": {"Image": IMAGE, "Runtime": "runc"},
    "runtime-legacy-null-hostconfig": {"Image": IMAGE, "HostConfig": None, "Runtime": "runc"},
    "runtime-inner-and-top-level": {
        "Image": IMAGE,
        "HostConfig": {"Runtime": "runc"},
        "Runtime": "runc",
    },
    "runtime-unicode-escape": Json(b'{"Image":"busybox","HostConfig":{"\\u0052untime":"runc"}}'),
    "runtime-duplicate-folded": pairs(
        ("Image", IMAGE), ("HostConfig", pairs(("Runtime", "sysbox-runc"), ("runtime", "runc")))
    ),
}


@pytest.mark.parametrize("body", list(RUNTIME_CASES.values()), ids=list(RUNTIME_CASES))
def test_runtime_forced_to_sysbox(env: Env, body: Any) -> None:
    name = unique()
    data = request("POST", CREATE.format(name=name), encode(body))
    for socket_path, runtime in ((env.raw, "runc"), (env.user, "sysbox-runc")):
        try:
            responses = exchange(socket_path, data)
            assert [r.status for r in responses] == [201], responses
            info = inspect(env, "containers", name)
            assert info is not None
            assert info["HostConfig"]["Runtime"] == runtime, socket_path
        finally:
            remove_container(env, name)


# ---- 3. the wire: targets, content types, framing, smuggling -------------------------------

EVIL = json.dumps(container(PidMode="host")).encode()
PID_HOST = host_namespaces_message(["pid"])


def http(
    method: str, target: str, headers: list[str], body: bytes = b"", eol: str = "\r\n"
) -> bytes:
    head = eol.join([f"{method} {target} HTTP/1.1", "Host: docker", *headers]) + eol + eol
    return head.encode("latin-1") + body


def json_post(target: str, body: bytes = EVIL, *extra: str) -> bytes:
    return http(
        "POST",
        target,
        ["Content-Type: application/json", *extra, f"Content-Length: {len(body)}"],
        body,
    )


def chunked(body: bytes, size: int = 7, ext: str = "") -> bytes:
    out = b"".join(
        f"{len(body[i : i + size]):x}{ext}\r\n".encode() + body[i : i + size] + b"\r\n"
        for i in range(0, len(body), size)
    )
    return out + b"0\r\n\r\n"


def chunked_post(name: str, te: list[str], body: bytes = EVIL, size: int = 7) -> bytes:
    headers = ["Content-Type: application/json", *te]
    return http("POST", CREATE.format(name=name), headers, chunked(body, size))


def padded_field(name: str) -> bytes:
    """The dangerous field after 1.5 MiB of a harmless one (CVE-2026-34040: a check that
    reads only the first MiB), within the proxy's 2 MiB limit."""
    body = pairs(
        ("Image", IMAGE),
        ("Env", SECRET_ENV),
        ("Labels", {"pad": "A" * (3 << 19)}),
        ("HostConfig", {"PidMode": "host"}),
    )
    return json_post(CREATE.format(name=name), body)


@dataclass(frozen=True)
class Wire:
    id: str
    data: Callable[[str], bytes]
    #: dockerd's answers to the bytes
    control: tuple[int, ...]
    #: the proxy's answers: status and exact text (None: a text of eci's own; ignored < 400)
    refusal: tuple[tuple[int, str | None], ...]
    #: the control creates the container with the host PID namespace; when False, the
    #: comment on the case says why dockerd cannot act on it (it still processes it)
    created: bool = True


WIRE_CASES = [
    Wire("target-plain", lambda n: json_post(CREATE.format(name=n)), (201,), ((403, PID_HOST),)),
    Wire(
        "target-absolute-form",
        lambda n: json_post(f"http://x/v1.41/containers/create?name={n}"),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "target-percent-encoded-slash",
        lambda n: json_post(f"/v1.41/containers%2Fcreate?name={n}"),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "target-percent-encoded-slash-lowercase",
        lambda n: json_post(f"/v1.41/containers%2fcreate?name={n}"),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "target-percent-encoded-letters",
        lambda n: json_post(f"/v1.41/%63ontainers/create?name={n}"),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "target-no-version",
        lambda n: json_post(f"/containers/create?name={n}"),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "target-version-1.12",
        lambda n: json_post(f"/v1.12/containers/create?name={n}"),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "target-version-1.41.0",
        lambda n: json_post(f"/v1.41.0/containers/create?name={n}"),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "target-query-like-a-path",
        lambda n: json_post(f"/containers/create?x=/../../build&name={n}"),
        (201,),
        ((403, PID_HOST),),
    ),
    # dockerd refuses an API version above its own (400): it processes, cannot act.
    Wire(
        "target-version-1.99",
        lambda n: json_post(f"/v1.99/containers/create?name={n}"),
        (400,),
        ((403, PID_HOST),),
        created=False,
    ),
    # gorilla/mux answers a 301 to the cleaned path for `//`, `.` and `..` (a client that
    # follows it re-sends the body): the daemon processes, the proxy polices the cleaned route.
    Wire(
        "target-double-slash",
        lambda n: json_post(f"/v1.41//containers/create?name={n}"),
        (301,),
        ((403, PID_HOST),),
        created=False,
    ),
    Wire(
        "target-dot-segment",
        lambda n: json_post(f"/v1.41/containers/./create?name={n}"),
        (301,),
        ((403, PID_HOST),),
        created=False,
    ),
    Wire(
        "target-dotdot-segment",
        lambda n: json_post(f"/v1.41/containers/x/../create?name={n}"),
        (301,),
        ((403, PID_HOST),),
        created=False,
    ),
    # dockerd 20.10 routes case-sensitively and without a trailing slash (404); a later
    # daemon or a router in front might not: the proxy folds them onto the create route.
    Wire(
        "target-trailing-slash",
        lambda n: json_post(f"/v1.41/containers/create/?name={n}"),
        (404,),
        ((403, PID_HOST),),
        created=False,
    ),
    Wire(
        "target-uppercase-path",
        lambda n: json_post(f"/CONTAINERS/create?name={n}"),
        (404,),
        ((403, PID_HOST),),
        created=False,
    ),
    Wire(
        "target-uppercase-version",
        lambda n: json_post(f"/V1.41/containers/create?name={n}"),
        (404,),
        ((403, PID_HOST),),
        created=False,
    ),
    # Go's router does not match a lower-case method (404); the proxy polices it as POST.
    Wire(
        "method-lowercase",
        lambda n: json_post(CREATE.format(name=n)).replace(b"POST ", b"post ", 1),
        (404,),
        ((403, PID_HOST),),
        created=False,
    ),
    # content types: dockerd insists on JSON (400) for all but the JSON spellings
    Wire(
        "content-type-json-charset",
        lambda n: http(
            "POST",
            CREATE.format(name=n),
            ["Content-Type: application/json; charset=utf-8", f"Content-Length: {len(EVIL)}"],
            EVIL,
        ),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "content-type-json-uppercase",
        lambda n: http(
            "POST",
            CREATE.format(name=n),
            ["Content-Type: APPLICATION/JSON", f"Content-Length: {len(EVIL)}"],
            EVIL,
        ),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "content-type-text-plain",
        lambda n: http(
            "POST",
            CREATE.format(name=n),
            ["Content-Type: text/plain", f"Content-Length: {len(EVIL)}"],
            EVIL,
        ),
        (400,),
        ((403, PID_HOST),),
        created=False,
    ),
    Wire(
        "content-type-none",
        lambda n: http("POST", CREATE.format(name=n), [f"Content-Length: {len(EVIL)}"], EVIL),
        (400,),
        ((403, PID_HOST),),
        created=False,
    ),
    Wire(
        "content-type-form-urlencoded",
        lambda n: http(
            "POST",
            CREATE.format(name=n),
            ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(EVIL)}"],
            EVIL,
        ),
        (400,),
        ((400, None),),
        created=False,
    ),
    # framing
    Wire(
        "framing-http-1.0",
        lambda n: json_post(CREATE.format(name=n)).replace(b"HTTP/1.1", b"HTTP/1.0", 1),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "framing-bare-lf",
        lambda n: http(
            "POST",
            CREATE.format(name=n),
            ["Content-Type: application/json", f"Content-Length: {len(EVIL)}"],
            EVIL,
            eol="\n",
        ),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "framing-expect-100-continue",
        lambda n: json_post(CREATE.format(name=n), EVIL, "Expect: 100-continue"),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "framing-chunked",
        lambda n: chunked_post(n, ["Transfer-Encoding: chunked"]),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "framing-chunked-one-byte-chunks",
        lambda n: chunked_post(n, ["Transfer-Encoding: chunked"], size=1),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "framing-chunked-uppercase",
        lambda n: chunked_post(n, ["Transfer-Encoding: CHUNKED"]),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "framing-chunk-extension",
        lambda n: http(
            "POST",
            CREATE.format(name=n),
            ["Content-Type: application/json", "Transfer-Encoding: chunked"],
            chunked(EVIL, size=len(EVIL), ext=";x=y"),
        ),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "framing-content-length-then-chunked",
        lambda n: chunked_post(n, ["Content-Length: 4", "Transfer-Encoding: chunked"]),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire(
        "framing-chunked-then-content-length",
        lambda n: chunked_post(n, ["Transfer-Encoding: chunked", "Content-Length: 4"]),
        (201,),
        ((403, PID_HOST),),
    ),
    # Go refuses transfer codings it does not know (501): never forwarded by the proxy either
    Wire(
        "framing-gzip-chunked",
        lambda n: chunked_post(n, ["Transfer-Encoding: gzip, chunked"]),
        (501,),
        ((501, None),),
        created=False,
    ),
    Wire(
        "framing-transfer-encoding-twice",
        lambda n: chunked_post(n, ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"]),
        (501,),
        ((501, None),),
        created=False,
    ),
    Wire(
        "framing-transfer-encoding-space-before-colon",
        lambda n: chunked_post(n, ["Transfer-Encoding : chunked"]),
        (400,),
        ((400, None),),
        created=False,
    ),
    Wire(
        "framing-conflicting-content-lengths",
        lambda n: http(
            "POST",
            CREATE.format(name=n),
            ["Content-Type: application/json", f"Content-Length: {len(EVIL)}", "Content-Length: 2"],
            EVIL,
        ),
        (400,),
        ((400, None),),
        created=False,
    ),
    # CVE-2024-41110: `Content-Length: 0` and a body behind it. The hidden bytes are a whole
    # request: dockerd answers the empty create (500 EOF) and then runs the hidden one.
    Wire(
        "content-length-zero-hiding-a-request",
        lambda n: http(
            "POST",
            "/v1.41/containers/create",
            ["Content-Type: application/json", "Content-Length: 0"],
            json_post(CREATE.format(name=n)),
        ),
        (500, 201),
        ((400, None), (403, PID_HOST)),
    ),
    # The hidden bytes are the JSON body itself: dockerd reads it as a (bad) next request.
    Wire(
        "content-length-zero-hiding-a-body",
        lambda n: http(
            "POST",
            CREATE.format(name=n),
            ["Content-Type: application/json", "Content-Length: 0"],
            EVIL + b"\r\n\r\n",
        ),
        (500, 400),
        ((400, None), (400, None)),
        created=False,
    ),
    Wire(
        "pipelined-get-then-create",
        lambda n: request("GET", "/v1.41/_ping") + json_post(CREATE.format(name=n)),
        (200, 201),
        ((200, None), (403, PID_HOST)),
    ),
    Wire(
        "pipelined-allowed-create-then-refused-create",
        lambda n: (
            request("POST", CREATE.format(name=n + "-ok"), {"Image": IMAGE})
            + json_post(CREATE.format(name=n))
        ),
        (201, 201),
        ((201, None), (403, PID_HOST)),
    ),
    Wire(
        "pipelined-refused-create-twice",
        lambda n: (
            json_post(CREATE.format(name=n + "-ok"), json.dumps({"Image": IMAGE}).encode())
            + json_post(CREATE.format(name=n))
            + json_post(CREATE.format(name=n + "-2"))
        ),
        (201, 201, 201),
        ((201, None), (403, PID_HOST), (403, PID_HOST)),
    ),
    # bodies past 1 MiB (CVE-2026-34040) and past the proxy's limit (2 MiB for a create)
    Wire(
        "body-padded-with-whitespace",
        lambda n: json_post(CREATE.format(name=n), b" " * (3 << 19) + EVIL + b"\n" * 4096),
        (201,),
        ((403, PID_HOST),),
    ),
    Wire("body-padded-with-a-field", padded_field, (201,), ((403, PID_HOST),)),
    Wire(
        "body-over-the-limit",
        lambda n: json_post(CREATE.format(name=n), b" " * (17 << 20) + EVIL),
        (201,),
        ((413, None),),
    ),
    Wire(
        "body-over-the-limit-chunked",
        lambda n: chunked_post(
            n, ["Transfer-Encoding: chunked"], b" " * (17 << 20) + EVIL, size=1 << 20
        ),
        (201,),
        ((413, None),),
    ),
]


@pytest.mark.parametrize("case", WIRE_CASES, ids=lambda c: c.id)
def test_wire_refused(env: Env, case: Wire) -> None:
    name = unique()
    names = [name, name + "-ok", name + "-2"]
    data = case.data(name)
    responses = exchange(env.raw, data, len(case.control), timeout=SHORT, partial=True)
    try:
        assert tuple(r.status for r in responses) == case.control, responses
        for response in responses:
            not_from_eci(response)
        info = inspect(env, "containers", name)
        if case.created:
            assert info is not None
            assert info["HostConfig"]["PidMode"] == "host"
        else:
            assert info is None
    finally:
        for n in names:
            remove_container(env, n)
    before = snapshot(env)
    responses = exchange(env.user, data, len(case.refusal), timeout=SHORT, partial=True)
    try:
        assert len(responses) == len(case.refusal), responses
        for response, (status, message) in zip(responses, case.refusal, strict=True):
            if status < 400:
                assert response.status == status, response
            else:
                assert_refused(response, status, message)
        assert inspect(env, "containers", name) is None
        assert inspect(env, "containers", name + "-2") is None
    finally:
        remove_container(env, name + "-ok")
    try:
        assert snapshot(env) == before
    finally:
        for n in names:
            remove_container(env, n)


KEEP_ALIVE_FIRST: dict[str, tuple[Callable[[str], bytes], str, int, int]] = {
    # (first request, its method, dockerd's status, the proxy's status)
    "after-a-get": (lambda n: request("GET", "/v1.41/_ping"), "GET", 200, 200),
    "after-a-refusal": (lambda n: json_post(CREATE.format(name=n)), "POST", 201, 403),
    "after-an-unreadable-body": (
        lambda n: json_post(CREATE.format(name=n), b"{"),
        "POST",
        500,
        400,
    ),
}


@pytest.mark.parametrize(
    "first", list(KEEP_ALIVE_FIRST.values()), ids=[f"keep-alive-{k}" for k in KEEP_ALIVE_FIRST]
)
def test_keep_alive_second_request_refused(
    env: Env, first: tuple[Callable[[str], bytes], str, int, int]
) -> None:
    """A second request on a kept-alive connection, sent after the first was answered."""
    build, method, daemon_status, proxy_status = first
    name = unique()
    data, second = build(name + "-first"), json_post(CREATE.format(name=name))
    try:
        with Connection(env.raw) as conn:  # control: dockerd runs the second request
            conn.send(data)
            r = conn.read(method)
            assert r is not None
            assert r.status == daemon_status, r
            conn.send(second)
            r = conn.read()
            assert r is not None
            assert r.status == 201, r
        info = inspect(env, "containers", name)
        assert info is not None
        assert info["HostConfig"]["PidMode"] == "host"
    finally:
        remove_container(env, name)
        remove_container(env, name + "-first")
    before = snapshot(env)
    with Connection(env.user) as conn:
        conn.send(data)
        r = conn.read(method)
        assert r is not None
        assert r.status == proxy_status, r
        conn.send(second)
        r = conn.read()
        assert r is not None
        assert_refused(r, 403, PID_HOST)
    assert inspect(env, "containers", name) is None
    assert snapshot(env) == before


# ---- 4. exec, update, start, network connect ----------------------------------------------


def exec_ids(env: Env) -> list[str]:
    info = inspect(env, "containers", env.holder)
    assert info is not None
    return list(info.get("ExecIDs") or [])


EXEC_CASES: dict[str, tuple[Callable[[Env], str], dict[str, Any]]] = {
    "exec-privileged-by-name": (lambda env: env.holder_name, {"Privileged": True}),
    "exec-privileged-by-id": (lambda env: env.holder, {"Privileged": True}),
    "exec-privileged-by-short-id": (lambda env: env.holder[:12], {"Privileged": True}),
    "exec-privileged-lowercase-key": (lambda env: env.holder_name, {"privileged": True}),
}


@pytest.mark.parametrize("case", list(EXEC_CASES.values()), ids=list(EXEC_CASES))
def test_privileged_exec_into_runc_container_refused(
    env: Env, case: tuple[Callable[[Env], str], dict[str, Any]]
) -> None:
    ref, body = case[0](env), {**case[1], "Cmd": ["true"], "Env": SECRET_ENV}
    data = request("POST", f"/v1.41/containers/{ref}/exec", body)
    # control: dockerd creates the privileged exec in the runc container and runs it. runc
    # then asks for every capability; where the host's own bounding set lacks one (this
    # machine has no CAP_SYS_RESOURCE) runc fails to apply them: dockerd still ran it.
    responses = exchange(env.raw, data)
    assert [r.status for r in responses] == [201], responses
    exec_id = responses[0].json()["Id"]
    started = api(env.raw, "POST", f"/exec/{exec_id}/start", {"Detach": True})
    if started.status == 200:
        deadline = time.monotonic() + 30
        while (info := inspect(env, "exec", exec_id)) is not None and info["Running"]:
            assert time.monotonic() < deadline, info
            time.sleep(0.1)
        assert info is not None
        assert info["ExitCode"] == 0, info
    else:
        assert started.status == 500, started
        assert "unable to apply caps" in started.message, started
    info = inspect(env, "exec", exec_id)
    assert info is not None
    assert info["ProcessConfig"]["privileged"] is True
    before = exec_ids(env)
    responses = exchange(env.user, data)
    assert len(responses) == 1, responses
    assert_refused(
        responses[0],
        403,
        f"{ECI_PREFIX}privileged exec into container {ref!r} is not allowed: it is not an "
        "enhanced-isolation container (runtime runc)",
    )
    assert exec_ids(env) == before


UPDATE_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "update-cgroup-parent": ({"CgroupParent": "/x"}, "CgroupParent"),
    "update-cgroup-parent-lowercase": ({"cgroupparent": "/"}, "CgroupParent"),
    "update-devices": (
        {
            "Devices": [
                {
                    "PathOnHost": "/dev/mem",
                    "PathInContainer": "/dev/mem",
                    "CgroupPermissions": "rwm",
                }
            ]
        },
        "Devices",
    ),
    "update-device-cgroup-rules": ({"DeviceCgroupRules": ["a *:* rwm"]}, "DeviceCgroupRules"),
}


@pytest.mark.parametrize("case", list(UPDATE_CASES.values()), ids=list(UPDATE_CASES))
def test_container_update_refused(env: Env, case: tuple[dict[str, Any], str]) -> None:
    """dockerd 20.10 answers 200 to these (it keeps only the resources it can change live;
    a later daemon may apply more): the control shows the daemon takes the request."""
    body, field = case
    name = unique()
    create_raw(env, name, {"Image": IMAGE, "Cmd": ["true"]})
    try:
        data = request("POST", f"/v1.41/containers/{name}/update", body)
        responses = exchange(env.raw, data)
        assert [r.status for r in responses] == [200], responses
        responses = exchange(env.user, data)
        assert len(responses) == 1, responses
        assert_refused(
            responses[0],
            403,
            f"{ECI_PREFIX}container update may not change {field}: it would weaken the "
            "container's isolation",
        )
    finally:
        remove_container(env, name)


START_CASES: dict[str, tuple[dict[str, Any], Effect]] = {
    "start-v1.23-hostconfig-binds": ({"Binds": ["/etc/docker:/x:ro"]}, bound("/etc/docker")),
    "start-v1.23-hostconfig-pid-host": ({"PidMode": "host"}, mode("PidMode", "host")),
    "start-v1.23-hostconfig-lowercase-binds": (
        {"binds": ["/etc/docker:/x:ro"]},
        bound("/etc/docker"),
    ),
}


@pytest.mark.parametrize("case", list(START_CASES.values()), ids=list(START_CASES))
def test_start_with_hostconfig_refused(env: Env, case: tuple[dict[str, Any], Effect]) -> None:
    """API < 1.24 let `start` carry a HostConfig; dockerd 20.10 still applies it (the pid-host
    start then fails in the runtime shim, after dockerd recorded the host PID namespace)."""
    body, effect = case
    name = unique()
    data = request("POST", f"/v1.23/containers/{name}/start", body)
    create_raw(env, name, {"Image": IMAGE, "Cmd": ["true"]})
    try:
        responses = exchange(env.raw, data)
        assert len(responses) == 1, responses
        assert responses[0].status in (204, 500), responses
        info = inspect(env, "containers", name)
        assert info is not None
        assert effect(info, env), info["HostConfig"]
    finally:
        remove_container(env, name)
    create_raw(env, name, {"Image": IMAGE, "Cmd": ["true"]})
    try:
        responses = exchange(env.user, data)
        assert len(responses) == 1, responses
        assert_refused(responses[0], 403, START_MESSAGE)
        info = inspect(env, "containers", name)
        assert info is not None
        assert not effect(info, env)
        assert info["State"]["StartedAt"].startswith("0001-")
    finally:
        remove_container(env, name)


CONNECT_CASES: dict[str, Callable[[Env], str]] = {
    "network-connect-host": lambda env: "host",
    "network-connect-host-by-id": lambda env: env.host_network,
    "network-connect-host-by-short-id": lambda env: env.host_network[:12],
}


@pytest.mark.parametrize("network", list(CONNECT_CASES.values()), ids=list(CONNECT_CASES))
def test_network_connect_host_refused(env: Env, network: Callable[[Env], str]) -> None:
    """dockerd itself refuses to connect a container to the host network (400): the control
    shows it processes the request; the proxy refuses it with the sysbox text first."""
    name = unique()
    create_raw(env, name, {"Image": IMAGE, "HostConfig": {"NetworkMode": "none"}})
    try:
        data = request("POST", f"/v1.41/networks/{network(env)}/connect", {"Container": name})
        responses = exchange(env.raw, data)
        assert [r.status for r in responses] == [400], responses
        assert "connected to host network" in responses[0].message
        responses = exchange(env.user, data)
        assert len(responses) == 1, responses
        assert_refused(responses[0], 403, host_namespaces_message(["network"]))
        info = inspect(env, "containers", name)
        assert info is not None
        assert list(info["NetworkSettings"]["Networks"]) == ["none"]
    finally:
        remove_container(env, name)


# ---- 5. volumes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeCase:
    id: str
    body: Callable[[Env, str], Any]
    device: Value
    message: Message
    status: int | tuple[int, ...] = 403


def _local_bind(device: Value) -> Callable[[Env, str], Any]:
    return lambda env, name: {
        "Name": name,
        "Driver": "local",
        "DriverOpts": {"type": "none", "o": "bind", "device": value(device, env)},
        "Labels": {"secret": MARKER},
    }


VOLUME_CASES = [
    VolumeCase(
        "volume-bind-etc-docker",
        _local_bind("/etc/docker"),
        "/etc/docker",
        restricted("/etc/docker"),
    ),
    VolumeCase("volume-bind-engine-state-dir", _local_bind(_state), _state, restricted(_state)),
    VolumeCase("volume-bind-root", _local_bind("/"), "/", restricted("/")),
    VolumeCase(
        "volume-bind-double-slashes",
        _local_bind("//etc//docker/"),
        "//etc//docker/",
        restricted("//etc//docker/"),
    ),
    VolumeCase(
        "volume-bind-symlink",
        _local_bind(lambda env: f"{env.links}/link"),
        lambda env: f"{env.links}/link",
        restricted(lambda env: f"{env.links}/link"),
    ),
    VolumeCase(
        "volume-bind-docker-socket",
        _local_bind("/var/run/docker.sock"),
        "/var/run/docker.sock",
        lambda env: socket_mount_message("volume"),
    ),
    VolumeCase(
        "volume-bind-lowercase-keys",
        lambda env, name: {
            "name": name,
            "driver": "local",
            "driveropts": {"type": "none", "o": "bind", "device": "/etc/docker"},
        },
        "/etc/docker",
        restricted("/etc/docker"),
    ),
    VolumeCase(
        "volume-bind-no-driver-named",
        lambda env, name: {
            "Name": name,
            "DriverOpts": {"type": "none", "o": "bind", "device": "/etc/docker"},
        },
        "/etc/docker",
        restricted("/etc/docker"),
    ),
    # Go reuses a map it already holds: a repeated DriverOpts adds to the first one
    VolumeCase(
        "volume-duplicate-driver-opts-merge",
        lambda env, name: pairs(
            ("Name", name),
            ("DriverOpts", {"type": "none", "o": "bind", "device": "/etc/docker"}),
            ("DriverOpts", {}),
        ),
        "/etc/docker",
        eci_text,
        (400, 403),
    ),
    # a relative device is mounted relative to dockerd's working directory
    VolumeCase(
        "volume-bind-relative-device",
        lambda env, name: _local_bind(os.path.relpath("/etc/docker", env.dockerd_cwd))(env, name),
        _relative_to_dockerd("/etc/docker"),
        eci_text,
        (400, 403),
    ),
    # an overlay volume takes host directories from `o`, its device is only a label
    VolumeCase(
        "volume-overlay-lowerdir",
        lambda env, name: {
            "Name": name,
            "DriverOpts": {
                "type": "overlay",
                "device": "overlay",
                "o": "lowerdir=/etc/docker:/etc/ssl",
            },
        },
        "overlay",
        eci_text,
        (400, 403),
    ),
]


@pytest.mark.parametrize("case", VOLUME_CASES, ids=lambda c: c.id)
def test_volume_create_refused(env: Env, case: VolumeCase) -> None:
    name = unique("sec-vol")
    data = request("POST", "/v1.41/volumes/create", encode(case.body(env, name)))
    responses = exchange(env.raw, data)
    try:
        assert [r.status for r in responses] == [201], responses
        info = inspect(env, "volumes", name)
        assert info is not None
        assert info["Options"]["device"] == value(case.device, env), info
    finally:
        remove_volume(env, name)
    before = snapshot(env)
    responses = exchange(env.user, data)
    try:
        assert len(responses) == 1, responses
        assert_refused(responses[0], case.status, case.message(env))
        assert inspect(env, "volumes", name) is None
        assert snapshot(env) == before
    finally:
        remove_volume(env, name)


# ---- 6. builds ------------------------------------------------------------------------------


def tar(files: dict[str, bytes | None]) -> bytes:
    """A tar archive; ``None`` is a directory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


BUILD_CASES: dict[str, tuple[str, str | None]] = {
    "build-networkmode-host": ("networkmode=host", BUILD_MESSAGE),
    "build-networkmode-host-then-default": ("networkmode=host&networkmode=default", BUILD_MESSAGE),
    "build-networkmode-percent-encoded-key": ("network%6Dode=host", BUILD_MESSAGE),
    # the same rule as `--pid/--network container:<id>` on create: a runc container's netns
    "build-networkmode-container-runc": ("networkmode=container:{holder}", None),
}


@pytest.mark.parametrize("case", list(BUILD_CASES.values()), ids=list(BUILD_CASES))
def test_build_network_refused(env: Env, case: tuple[str, str | None]) -> None:
    """Legacy-builder RUN steps run with the build's network mode. The control cannot finish:
    eci's runtime shim refuses the host network (defence in depth), so the control shows
    dockerd took the request and handed the step's network to the runtime."""
    query, message = case
    context = tar({"Dockerfile": f"FROM busybox\nRUN echo {uuid.uuid4().hex}\n".encode()})
    target = f"/v1.41/build?{query.format(holder=env.holder)}&rm=1&forcerm=1&nocache=1"
    data = request("POST", target, context, content_type="application/x-tar")
    responses = exchange(env.raw, data)
    assert [r.status for r in responses] == [200], responses
    assert SHIM_HOST_NETWORK in responses[0].body.decode(), responses[0].body[-2000:]
    before = snapshot(env)
    responses = exchange(env.user, data)
    assert len(responses) == 1, responses
    assert_refused(responses[0], 403, message)
    assert snapshot(env) == before


# ---- 7. unknown write routes ------------------------------------------------------------------

UNKNOWN_CASES: dict[str, tuple[str, str, int]] = {
    "unknown-post-container-subroute": ("POST", "/v1.41/containers/xyz/whatever", 404),
    "unknown-put-containers-create": ("PUT", "/v1.41/containers/create", 404),
    "unknown-post-system": ("POST", "/v1.41/system/reset", 404),
    "unknown-patch-container": ("PATCH", "/v1.41/containers/xyz", 404),
}


@pytest.mark.parametrize("case", list(UNKNOWN_CASES.values()), ids=list(UNKNOWN_CASES))
def test_unknown_write_route_refused(env: Env, case: tuple[str, str, int]) -> None:
    """dockerd does not know these either (404): it processes them; eci refuses any write
    it has not reviewed, so a new endpoint of a later daemon cannot slip through."""
    method, target, daemon_status = case
    data = request(method, target, container(PidMode="host"))
    responses = exchange(env.raw, data)
    assert [r.status for r in responses] == [daemon_status], responses
    responses = exchange(env.user, data)
    assert len(responses) == 1, responses
    assert_refused(responses[0], 403, None)
    assert "is not known to eci" in responses[0].message


# ---- 8. plugins ------------------------------------------------------------------------------

PLUGIN_CONFIG = {
    "Description": "eci security test plugin",
    "Documentation": "https://example.invalid",
    "Entrypoint": ["/bin/true"],
    "Interface": {"Types": ["docker.volumedriver/1.0"], "Socket": "sec.sock"},
    "Network": {"Type": "host"},
    "Linux": {"Capabilities": ["CAP_SYS_ADMIN"], "AllowAllDevices": True, "Devices": None},
    "Env": [{"Name": "DEBUG", "Description": "debug", "Settable": ["value"], "Value": "0"}],
    "Args": {"Name": "", "Description": "", "Settable": None, "Value": None},
}


def plugin_tar(name: str) -> bytes:
    """A plugin of its own content: dockerd 20.10 answers 409 "content … already exists" when
    a plugin is created from blobs an earlier, removed plugin left in its store."""
    config = {**PLUGIN_CONFIG, "Description": f"eci security test plugin {name}"}
    return tar({"config.json": json.dumps(config).encode(), "rootfs": None})


NO_AUTH = urlsafe_b64encode(b"{}").decode()


def plugin_names(env: Env) -> set[str]:
    return {p["Name"] for p in api(env.raw, "GET", "/plugins").json()}


def remove_plugin(env: Env, name: str) -> None:
    response = api(env.raw, "DELETE", f"/plugins/{name}?force=1")
    assert response.status in (200, 404), response


def create_plugin_raw(env: Env, name: str) -> None:
    data = request(
        "POST", f"/plugins/create?name={name}", plugin_tar(name), content_type="application/x-tar"
    )
    responses = exchange(env.raw, data)
    assert [r.status for r in responses] == [204], responses


@pytest.fixture(scope="class")
def remote(env: Env) -> Iterator[tuple[str, list[Any]]]:
    """A plugin pushed to a scratch registry on loopback (the engine's own is read-only to
    dockerd): pull works offline."""
    with scratch_registry() as registry:
        yield _pushed_plugin(env, f"{registry}/{unique('sec-plugin')}:latest")


def _pushed_plugin(env: Env, ref: str) -> tuple[str, list[Any]]:
    create_plugin_raw(env, ref)
    try:
        push = exchange(
            env.raw,
            request("POST", f"/plugins/{ref}/push", b"", headers=[("X-Registry-Auth", NO_AUTH)]),
        )
        assert [r.status for r in push] == [200], push
        assert b"errorDetail" not in push[0].body, push
        privileges = api(env.raw, "GET", f"/plugins/privileges?remote={ref}").json()
    finally:
        remove_plugin(env, ref)
    return ref, privileges


class TestPlugins:
    """Plugins run with the engine's privileges (here: host network, CAP_SYS_ADMIN, every
    device); installing or configuring one is refused outright."""

    def _refused(self, env: Env, data: bytes) -> None:
        before = plugin_names(env)
        responses = exchange(env.user, data)
        assert len(responses) == 1, responses
        assert_refused(responses[0], 403, PLUGIN_MESSAGE)
        assert plugin_names(env) == before

    def test_plugin_pull_refused(self, env: Env, remote: tuple[str, list[Any]]) -> None:
        ref, privileges = remote
        local = f"{unique('sec-pulled')}:latest"
        data = request(
            "POST",
            f"/v1.41/plugins/pull?remote={ref}&name={local}",
            privileges,
            headers=[("X-Registry-Auth", NO_AUTH)],
        )
        try:
            responses = exchange(env.raw, data)
            assert [r.status for r in responses] == [200], responses
            assert b"errorDetail" not in responses[0].body, responses
            assert inspect(env, "plugins", local) is not None
        finally:
            remove_plugin(env, local)
        self._refused(env, data)

    def test_plugin_create_refused(self, env: Env) -> None:
        local = f"{unique('sec-created')}:latest"
        data = request(
            "POST",
            f"/v1.41/plugins/create?name={local}",
            plugin_tar(local),
            content_type="application/x-tar",
        )
        try:
            responses = exchange(env.raw, data)
            assert [r.status for r in responses] == [204], responses
            info = inspect(env, "plugins", local)
            assert info is not None
            assert info["Config"]["Network"]["Type"] == "host"
        finally:
            remove_plugin(env, local)
        self._refused(env, data)

    def test_plugin_enable_refused(self, env: Env) -> None:
        """The plugin asks for the host network: eci's runtime shim refuses to start it, so the
        control shows dockerd tried to run it with the privileges it asks for."""
        local = f"{unique('sec-enable')}:latest"
        data = request("POST", f"/v1.41/plugins/{local}/enable?timeout=5", b"")
        create_plugin_raw(env, local)
        try:
            responses = exchange(env.raw, data)
            assert [r.status for r in responses] == [500], responses
            assert "OCI runtime create failed" in responses[0].message, responses
            self._refused(env, data)
            info = inspect(env, "plugins", local)
            assert info is not None
            assert info["Enabled"] is False
        finally:
            remove_plugin(env, local)

    def test_plugin_set_refused(self, env: Env) -> None:
        local = f"{unique('sec-set')}:latest"
        data = request("POST", f"/v1.41/plugins/{local}/set", ["DEBUG=1"])
        create_plugin_raw(env, local)
        try:
            responses = exchange(env.raw, data)
            assert [r.status for r in responses] == [204], responses
            info = inspect(env, "plugins", local)
            assert info is not None
            assert "DEBUG=1" in info["Settings"]["Env"]
            assert api(env.raw, "POST", f"/plugins/{local}/set", ["DEBUG=0"]).status == 204
            self._refused(env, data)
            info = inspect(env, "plugins", local)
            assert info is not None
            assert "DEBUG=0" in info["Settings"]["Env"]
        finally:
            remove_plugin(env, local)


# ---- 9. swarm services -------------------------------------------------------------------------


def service(name: str, container_spec: dict[str, Any], **template: Any) -> dict[str, Any]:
    return {
        "Name": name,
        "TaskTemplate": {
            "ContainerSpec": {"Image": IMAGE, "Command": ["true"], **container_spec},
            **template,
        },
        "Mode": {"Replicated": {"Replicas": 0}},
    }


def service_ids(env: Env) -> set[str]:
    return {s["ID"] for s in api(env.raw, "GET", "/services").json()}


def spec_mount(source: str) -> Callable[[dict[str, Any], Env], bool]:
    return lambda spec, env: any(
        m.get("Source") == source for m in spec["TaskTemplate"]["ContainerSpec"].get("Mounts", [])
    )


def spec_host_network(spec: dict[str, Any], env: Env) -> bool:
    """A target of the service's networks is the host network (swarm gives it its own id)."""
    networks = [*spec["TaskTemplate"].get("Networks", []), *spec.get("Networks", [])]
    for network in networks:
        info = inspect(env, "networks", network["Target"])
        if info is not None and info["Name"] == "host":
            return True
    return False


def spec_inline_device(spec: dict[str, Any], env: Env) -> bool:
    mounts = spec["TaskTemplate"]["ContainerSpec"].get("Mounts", [])
    return any(
        m["VolumeOptions"]["DriverConfig"]["Options"]["device"] == "/etc/docker" for m in mounts
    )


SERVICE_CASES: dict[str, tuple[Callable[[str, Env], Any], Callable[..., bool], Message, Any]] = {
    "service-bind-etc-docker": (
        lambda n, env: service(
            n, {"Mounts": [{"Type": "bind", "Source": "/etc/docker", "Target": "/x"}]}
        ),
        spec_mount("/etc/docker"),
        restricted("/etc/docker"),
        403,
    ),
    "service-bind-docker-socket": (
        lambda n, env: service(
            n, {"Mounts": [{"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/s"}]}
        ),
        spec_mount("/var/run/docker.sock"),
        socket_text,
        403,
    ),
    "service-volume-inline-bind-device": (
        lambda n, env: service(
            n,
            {
                "Mounts": [
                    {
                        "Type": "volume",
                        "Target": "/x",
                        "VolumeOptions": {
                            "DriverConfig": {
                                "Name": "local",
                                "Options": {"type": "none", "o": "bind", "device": "/etc/docker"},
                            }
                        },
                    }
                ]
            },
        ),
        spec_inline_device,
        restricted("/etc/docker"),
        403,
    ),
    "service-network-host": (
        lambda n, env: service(n, {}, Networks=[{"Target": "host"}]),
        spec_host_network,
        ns("network"),
        403,
    ),
    "service-network-host-legacy-top-level": (
        lambda n, env: {**service(n, {}), "Networks": [{"Target": "host"}]},
        spec_host_network,
        ns("network"),
        403,
    ),
    "service-lowercase-keys": (
        lambda n, env: {
            "name": n,
            "tasktemplate": {
                "containerspec": {
                    "image": IMAGE,
                    "mounts": [{"type": "bind", "source": "/etc/docker", "target": "/x"}],
                }
            },
            "mode": {"replicated": {"replicas": 0}},
        },
        spec_mount("/etc/docker"),
        restricted("/etc/docker"),
        403,
    ),
    # Go merges a repeated TaskTemplate into the first: its mount survives
    "service-duplicate-task-template-merge": (
        lambda n, env: pairs(
            ("Name", n),
            (
                "TaskTemplate",
                {
                    "ContainerSpec": {
                        "Image": IMAGE,
                        "Mounts": [{"Type": "bind", "Source": "/etc/docker", "Target": "/x"}],
                    }
                },
            ),
            ("TaskTemplate", {"ContainerSpec": {"Image": IMAGE, "Command": ["true"]}}),
            ("Mode", {"Replicated": {"Replicas": 0}}),
        ),
        spec_mount("/etc/docker"),
        eci_text,
        (400, 403),
    ),
}


@pytest.fixture(scope="class")
def swarm(env: Env) -> Iterator[None]:
    port = 20000 + uuid.uuid4().int % 20000
    init = api(
        env.raw,
        "POST",
        "/v1.41/swarm/init",
        {
            "ListenAddr": f"127.0.0.1:{port}",
            "AdvertiseAddr": "127.0.0.1",
            "DataPathPort": 20000 + (port + 7919) % 20000,
        },
    )
    try:
        assert init.status == 200, init
        yield
    finally:
        api(env.raw, "POST", "/v1.41/swarm/leave?force=1")


@pytest.mark.usefixtures("swarm")
class TestSwarm:
    """Swarm services: the control needs a one-node swarm on dockerd's raw socket (loopback
    only, random ports so concurrent engines do not collide); it is always left again."""

    @pytest.mark.parametrize("case", list(SERVICE_CASES.values()), ids=list(SERVICE_CASES))
    def test_service_create_refused(self, env: Env, case: tuple[Any, Any, Message, Any]) -> None:
        build, effect, message, status = case
        name = unique("sec-svc")
        data = request("POST", "/v1.41/services/create", encode(build(name, env)))
        responses = exchange(env.raw, data)
        assert [r.status for r in responses] == [201], responses
        service_id = responses[0].json()["ID"]
        try:
            info = inspect(env, "services", service_id)
            assert info is not None
            assert effect(info["Spec"], env), info["Spec"]
        finally:
            assert api(env.raw, "DELETE", f"/services/{service_id}").status in (200, 404)
        before = service_ids(env)
        responses = exchange(env.user, data)
        assert len(responses) == 1, responses
        assert_refused(responses[0], status, message(env))
        assert service_ids(env) == before

    def test_service_update_refused(self, env: Env) -> None:
        def harmless() -> tuple[str, int]:
            made = api(env.raw, "POST", "/v1.41/services/create", service(name, {}))
            assert made.status == 201, made
            info = inspect(env, "services", made.json()["ID"])
            assert info is not None
            return str(info["ID"]), int(info["Version"]["Index"])

        name = unique("sec-svc")
        body = service(
            name, {"Mounts": [{"Type": "bind", "Source": "/etc/docker", "Target": "/x"}]}
        )
        service_id, version = harmless()
        try:
            data = request("POST", f"/v1.41/services/{service_id}/update?version={version}", body)
            responses = exchange(env.raw, data)
            assert [r.status for r in responses] == [200], responses
            info = inspect(env, "services", service_id)
            assert info is not None
            assert spec_mount("/etc/docker")(info["Spec"], env)
        finally:
            api(env.raw, "DELETE", f"/services/{service_id}")
        service_id, version = harmless()
        try:
            data = request("POST", f"/v1.41/services/{service_id}/update?version={version}", body)
            responses = exchange(env.user, data)
            assert len(responses) == 1, responses
            assert_refused(responses[0], 403, restricted_mount_message("/etc/docker"))
            info = inspect(env, "services", service_id)
            assert info is not None
            assert int(info["Version"]["Index"]) == version
        finally:
            api(env.raw, "DELETE", f"/services/{service_id}")


# ---- 10. sequences: a hijack that is not one, a symlink swapped after the check ----------------


def test_detached_exec_start_does_not_open_a_raw_pipe(env: Env) -> None:
    """`POST /exec/{id}/start` is a hijacking route, but with `{"Detach": true}` dockerd
    answers a plain `200` and keeps the connection an HTTP one. A request pipelined after it
    must still be policed, not piped to dockerd raw."""
    holder = unique("sec-exec")
    name = unique()
    smuggled = json_post(CREATE.format(name=name))

    def attempt(socket_path: Path) -> list[Response]:
        made = api(env.user, "POST", f"/v1.41/containers/{holder}/exec", {"Cmd": ["true"]})
        assert made.status == 201, made
        start = request("POST", f"/v1.41/exec/{made.json()['Id']}/start", {"Detach": True})
        return exchange(socket_path, start + smuggled, 2, timeout=SHORT, partial=True)

    made = api(
        env.user,
        "POST",
        f"/containers/create?name={holder}",
        {"Image": IMAGE, "Cmd": ["sleep", "600"]},
    )
    assert made.status == 201, made
    try:
        assert api(env.user, "POST", f"/containers/{holder}/start").status == 204
        try:  # control: on dockerd's socket the second request is simply run
            responses = attempt(env.raw)
            assert [r.status for r in responses] == [200, 201], responses
            info = inspect(env, "containers", name)
            assert info is not None
            assert info["HostConfig"]["PidMode"] == "host"
        finally:
            remove_container(env, name)
        try:
            responses = attempt(env.user)
            assert len(responses) == 2, responses
            assert responses[0].status == 200, responses
            assert_refused(responses[1], 403, PID_HOST)
            assert inspect(env, "containers", name) is None
        finally:
            remove_container(env, name)
    finally:
        remove_container(env, holder)


def test_symlink_swapped_after_the_check_does_not_expose_a_restricted_path(env: Env) -> None:
    """The bind source is a user-owned symlink to a harmless directory when the container is
    created, and points at /etc/docker when it starts (dockerd resolves it only then)."""
    work = Path(tempfile.mkdtemp(prefix="sec-swap-", dir="/tmp"))
    work.chmod(0o755)
    (work / "safe").mkdir()
    link = work / "link"

    def attempt(socket_path: Path, runtime: str = "sysbox-runc") -> bytes:
        """What `ls /x` shows, or the refusal's text."""
        name = unique()
        link.unlink(missing_ok=True)
        link.symlink_to(work / "safe")
        host_config = {"Binds": [f"{link}:/x"], "Runtime": runtime}
        body = {"Image": IMAGE, "Cmd": ["ls", "/x"], "HostConfig": host_config}
        try:
            made = api(socket_path, "POST", f"/containers/create?name={name}", body)
            if made.status != 201:
                return made.body
            link.unlink()
            link.symlink_to("/etc/docker")
            started = api(socket_path, "POST", f"/containers/{name}/start")
            if started.status != 204:
                return started.body
            assert api(env.raw, "POST", f"/containers/{name}/wait").status == 200
            return api(env.raw, "GET", f"/containers/{name}/logs?stdout=1&stderr=1").body
        finally:
            remove_container(env, name)

    try:
        # control: plain runc on dockerd's own socket shows /etc/docker
        assert b"key.json" in attempt(env.raw, runtime="runc")
        assert b"key.json" not in attempt(env.user)  # the proxy re-checks at start
        # and past the proxy, the shim checks the tree it hands to runc
        refused = attempt(env.raw)
        assert b"key.json" not in refused
        assert restricted_mount_message(str(link)).encode() in refused
    finally:
        shutil.rmtree(work, ignore_errors=True)


ARCHIVE_READS: dict[str, tuple[str, str, Any]] = {
    "archive-get-from-runc-container-bind": (
        "GET",
        "/v1.41/containers/{binder}/archive?path=/x/key.json",
        None,
    ),
    "archive-head-from-runc-container-bind": (
        "HEAD",
        "/v1.41/containers/{binder}/archive?path=/x/key.json",
        None,
    ),
    "copy-v1.23-from-runc-container-bind": (
        "POST",
        "/v1.23/containers/{binder}/copy",
        {"Resource": "/x/key.json"},
    ),
}


@pytest.mark.parametrize("case", list(ARCHIVE_READS.values()), ids=list(ARCHIVE_READS))
def test_archive_read_through_a_runc_containers_restricted_bind_refused(
    env: Env, case: tuple[str, str, Any]
) -> None:
    """The runc container holding a bind of /etc/docker is the one `VolumesFrom` may not
    borrow from; copying out of it reads the same host files, as dockerd (root): here the
    0600 /etc/docker/key.json."""
    method, target, body = case
    data = request(method, target.format(binder=env.binder_name), body)
    responses = exchange(env.raw, data, methods=[method])
    assert [r.status for r in responses] == [200], responses
    if method == "HEAD":
        stat = json.loads(urlsafe_b64decode(responses[0].headers["x-docker-container-path-stat"]))
        assert stat["name"] == "key.json"
    else:
        with tarfile.open(fileobj=io.BytesIO(responses[0].body)) as archive:
            assert archive.getnames() == ["key.json"]
    responses = exchange(env.user, data, methods=[method])
    assert len(responses) == 1, responses
    assert responses[0].status == 403, responses
    if method != "HEAD":
        assert_refused(responses[0], 403, None)


def test_archive_write_through_a_runc_containers_restricted_bind_refused(env: Env) -> None:
    """A runc container with a writable bind of a restricted path (a directory of the
    engine's state dir): extracting a tar into it writes on the host, as root."""
    scratch = Path(env.state_dir) / unique("sec-scratch")
    scratch.mkdir()
    name = unique("sec-writer")
    try:
        create_raw(
            env,
            name,
            {"Image": IMAGE, "HostConfig": {"Runtime": "runc", "Binds": [f"{scratch}:/x"]}},
        )
        for socket_path, planted in ((env.raw, "by-dockerd"), (env.user, "by-proxy")):
            data = request(
                "PUT",
                f"/v1.41/containers/{name}/archive?path=/x",
                tar({planted: MARKER.encode()}),
                content_type="application/x-tar",
            )
            responses = exchange(socket_path, data)
            assert len(responses) == 1, responses
            if socket_path == env.raw:
                assert responses[0].status == 200, responses
            else:
                assert_refused(responses[0], 403, None)
        assert sorted(os.listdir(scratch)) == ["by-dockerd"]
    finally:
        remove_container(env, name)
        shutil.rmtree(scratch, ignore_errors=True)


# ---- 11. the raw socket, and the audit log ---------------------------------------------------

CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print("errno", exc.errno)
    raise SystemExit(0)
s.sendall(sys.stdin.buffer.read())
data = b""
while b"\\r\\n\\r\\n" not in data and (chunk := s.recv(65536)):
    data += chunk
print("status", data.split(b" ")[1].decode())
"""


def as_test_user(socket_path: Path, data: bytes = b"") -> str:
    """Connect to ``socket_path`` as the unprivileged test user and send ``data``: prints
    ``errno N`` or ``status N``."""
    done = subprocess.run(
        ["runuser", "-u", TEST_USER, "--", "python3", "-I", "-c", CLIENT, str(socket_path)],
        input=data,
        capture_output=True,
        timeout=60,
        check=True,
    )
    return done.stdout.decode().strip()


def test_raw_socket_unreachable_for_unprivileged_user(env: Env) -> None:
    """CVE-2023-0629 class: the daemon's own socket must not be reachable past the proxy."""
    assert as_test_user(env.raw) == f"errno {errno.EACCES}"
    # the same user does reach the proxy (positive control)
    assert as_test_user(env.user, request("GET", "/_ping")) == "status 200"
    private = env.engine.layout.private_dir.stat()
    assert private.st_uid == 0
    assert private.st_mode & 0o077 == 0


def test_audit_log_records_refusals_without_bodies(env: Env) -> None:
    marker = f"SECRET-MARKER-{uuid.uuid4().hex}"
    name = unique()
    body = {"Image": IMAGE, "Env": [f"TOKEN={marker}"], "HostConfig": {"PidMode": "host"}}
    status = as_test_user(env.user, request("POST", CREATE.format(name=name), body))
    assert status == "status 403"
    bind = {"Image": IMAGE, "Env": [f"TOKEN={marker}"], "HostConfig": {"Binds": ["/etc/docker:/x"]}}
    responses = exchange(env.user, request("POST", CREATE.format(name=name), bind))
    assert [r.status for r in responses] == [403], responses
    assert inspect(env, "containers", name) is None
    log = env.engine.layout.audit_log
    text = log.read_text()
    records = [json.loads(line) for line in text.splitlines()]
    uid = int(run(["id", "-u", TEST_USER]).stdout)
    mine = [r for r in records if r["uid"] == uid and r["rule"] == "host-namespace"]
    assert mine, records[-5:]
    record = mine[-1]
    assert record["route"] == "/containers/create"
    assert record["method"] == "POST"
    assert record["status"] == 403
    assert isinstance(record["pid"], int)
    assert record["pid"] > 0
    assert record["reason"] == PID_HOST
    assert any(r["uid"] == 0 and r["rule"] == "restricted-mount" for r in records)
    # never a request body: neither this test's marker nor any other case's
    assert marker not in text
    assert MARKER not in text
    assert "SECRET-MARKER" not in text
    assert log.stat().st_mode & 0o077 == 0
