"""What every module of the API bypass suite shares: the environment its cases run in,
request bodies, the effects a control shows, and the messages the proxy must answer with.
See conftest.py for how a case works."""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.security.rawhttp import Response, api
from tests.support import EngineHandle

from eci.errors import (
    ECI_PREFIX,
    host_namespaces_message,
    restricted_mount_message,
    socket_mount_message,
)

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


# ---- used by more than one section ------------------------------------------------------------


def engine_state_dir(env: Env) -> str:
    return env.state_dir


def relative_to_dockerd(path: str) -> Callable[[Env], str]:
    return lambda env: os.path.relpath(path, env.dockerd_cwd)


#: A create body the proxy refuses (host pid namespace), for the wire's framings.
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
