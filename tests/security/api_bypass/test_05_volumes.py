"""Bypass attempts, section 5 — volumes.

How a case works: see conftest.py."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from tests.security.api_bypass.common import (
    MARKER,
    Env,
    Message,
    Value,
    assert_refused,
    eci_text,
    encode,
    engine_state_dir,
    inspect,
    pairs,
    relative_to_dockerd,
    remove_volume,
    restricted,
    snapshot,
    unique,
    value,
)
from tests.security.rawhttp import exchange, request

from eci.errors import (
    socket_mount_message,
)

pytestmark = pytest.mark.engine


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
    VolumeCase(
        "volume-bind-engine-state-dir",
        _local_bind(engine_state_dir),
        engine_state_dir,
        restricted(engine_state_dir),
    ),
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
        relative_to_dockerd("/etc/docker"),
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
