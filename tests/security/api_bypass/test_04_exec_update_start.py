"""Bypass attempts, section 4 — exec, update, start, network connect.

How a case works: see conftest.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from tests.security.api_bypass.common import (
    IMAGE,
    SECRET_ENV,
    START_MESSAGE,
    Effect,
    Env,
    assert_refused,
    bound,
    create_raw,
    inspect,
    mode,
    remove_container,
    unique,
)
from tests.security.rawhttp import api, exchange, request

from eci.errors import (
    ECI_PREFIX,
    host_namespaces_message,
)

pytestmark = pytest.mark.engine


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
