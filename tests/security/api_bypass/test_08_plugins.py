"""Bypass attempts, section 8 — plugins.

How a case works: see conftest.py."""

from __future__ import annotations

import json
from base64 import urlsafe_b64encode
from collections.abc import Iterator
from typing import Any

import pytest
from tests.security.api_bypass.common import (
    PLUGIN_MESSAGE,
    Env,
    assert_refused,
    inspect,
    tar,
    unique,
)
from tests.security.rawhttp import api, exchange, request
from tests.support import scratch_registry

pytestmark = pytest.mark.engine


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
