"""Bypass attempts, section 9 — swarm services.

How a case works: see conftest.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.security.api_bypass.common import (
    IMAGE,
    Env,
    Message,
    assert_refused,
    eci_text,
    encode,
    inspect,
    ns,
    pairs,
    restricted,
    socket_text,
    unique,
)
from tests.security.rawhttp import api, exchange, request

from eci.errors import (
    restricted_mount_message,
)

pytestmark = pytest.mark.engine


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
