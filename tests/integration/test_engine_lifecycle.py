"""Engines started and stopped inside a test: bad settings, ECI off, reload, crash, down.

Each test owns its engine (own --state-dir) and tears it down, asserting nothing is left.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator

import pytest
from tests.support import (
    ECI_ON_LOCKED,
    EngineHandle,
    assert_nothing_left,
    engine_under_test,
    live_ranges,
    run,
    write_settings,
)

from eci.errors import host_namespaces_message
from eci.host.processes import processes_mentioning

pytestmark = pytest.mark.engine

ECI_OFF_LOCKED = {
    "configurationFileVersion": 2,
    "enhancedContainerIsolation": {"value": False, "locked": True},
}


@pytest.fixture
def fresh() -> Iterator[EngineHandle]:
    """An engine that is not started yet; whatever the test starts is stopped afterwards."""
    with engine_under_test("eci-life-") as handle:
        yield handle


def _bridge_exists(name: str) -> bool:
    links = json.loads(run(["ip", "-j", "link", "show"]).stdout)
    return any(link["ifname"] == name for link in links)


BAD_SETTINGS = [
    ("not-json", "{ value: true", "$: not valid JSON"),
    ("wrong-version", {"configurationFileVersion": 3}, "$.configurationFileVersion: expected 2"),
    (
        "wrong-type",
        {"configurationFileVersion": 2, "enhancedContainerIsolation": {"value": "yes"}},
        "$.enhancedContainerIsolation.value: expected true or false, got 'yes'",
    ),
    (
        "unknown-key",
        {"configurationFileVersion": 2, "enhancedContainerIsolation": {"value": True, "x": 1}},
        "$.enhancedContainerIsolation: unknown key 'x'",
    ),
]


@pytest.mark.parametrize(
    ("content", "json_path"), [b[1:] for b in BAD_SETTINGS], ids=[b[0] for b in BAD_SETTINGS]
)
def test_bad_admin_settings_start_nothing(
    fresh: EngineHandle, content: object, json_path: str
) -> None:
    settings = write_settings(fresh.admin_settings.parent, content)
    result = fresh.eci("up", "--admin-settings", str(settings), check=False)
    assert result.returncode != 0
    assert str(settings) in result.stderr
    assert f"{json_path}" in result.stderr
    assert not fresh.layout.state_file.exists()
    assert not fresh.layout.run_dir.exists()
    assert processes_mentioning(str(fresh.layout.state_dir)) == []
    assert not _bridge_exists(fresh.layout.bridge_name)


def test_missing_explicit_admin_file_is_refused(fresh: EngineHandle) -> None:
    result = fresh.eci("up", "--admin-settings", "/nonexistent/admin.json", check=False)
    assert result.returncode != 0
    assert "/nonexistent/admin.json" in result.stderr
    assert not fresh.layout.state_file.exists()


def _create_with_host_pid(engine: EngineHandle) -> str:
    """Ask the user socket for a --pid=host container of an image that does not exist: the
    proxy refuses it when ECI is on; otherwise dockerd itself answers (no such image)."""
    body = json.dumps({"Image": "eci-no-such-image:1", "HostConfig": {"PidMode": "host"}})
    return run(
        [
            "curl",
            "-s",
            "--unix-socket",
            str(engine.layout.user_socket),
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            "http://docker/v1.41/containers/create",
        ]
    ).stdout


def test_eci_off_then_on_by_reload(fresh: EngineHandle) -> None:
    settings = write_settings(fresh.admin_settings.parent, ECI_OFF_LOCKED)
    assert "ECI OFF" in fresh.eci("up", "--admin-settings", str(settings)).stdout
    assert "Default Runtime: runc" in fresh.docker("info").stdout
    assert "No such image" in _create_with_host_pid(fresh)  # the proxy passes it through
    pids = fresh.status()["processes"]

    write_settings(fresh.admin_settings.parent, ECI_ON_LOCKED)
    result = fresh.eci("up", "--admin-settings", str(settings))
    assert "settings reloaded" in result.stdout
    assert fresh.status()["processes"] == pids  # applied without a restart
    info = ""
    for _ in range(50):  # dockerd applies SIGHUP asynchronously
        info = fresh.docker("info").stdout
        if "Default Runtime: sysbox-runc" in info:
            break
    assert "Default Runtime: sysbox-runc" in info
    assert host_namespaces_message(["pid"]) in _create_with_host_pid(fresh)  # proxy reloaded


def test_crash_recovery_and_clean_down(fresh: EngineHandle) -> None:
    settings = write_settings(fresh.admin_settings.parent, ECI_ON_LOCKED)
    fresh.eci("up", "--registry", "--admin-settings", str(settings))
    fresh.eci("images")
    fresh.docker("run", "-d", "--name", "sleeper", "busybox", "sleep", "600")
    status = fresh.status()
    processes = status["processes"]
    assert isinstance(processes, dict)
    os.kill(processes["dockerd"]["pid"], signal.SIGKILL)

    crashed = fresh.eci("status", check=False)
    assert crashed.returncode == 3
    assert "DEAD" in crashed.stdout

    assert len(live_ranges(fresh.layout)) == 1  # the sleeper's, orphaned by the crash
    restarted = fresh.eci("up", "--admin-settings", str(settings))  # keeps its registry
    assert "started" in restarted.stdout
    assert live_ranges(fresh.layout) == {}
    assert fresh.docker("run", "--rm", "busybox", "echo", "ok").stdout == "ok\n"
    assert _bridge_exists(fresh.layout.bridge_name)

    down = fresh.eci("down")
    assert "stopped proxy, dockerd, registry, registry-writer, containerd" in down.stdout
    assert_nothing_left(fresh.layout)
    assert not _bridge_exists(fresh.layout.bridge_name)
    assert "nothing was running" in fresh.eci("down").stdout
