"""The runtime server through the real Docker CLI: containers start through it; without it
they start through a fresh interpreter with every check in place; `eci up` brings it back
alone, without touching running containers."""

from __future__ import annotations

import os
import signal
import time

import pytest
from tests.support import EngineHandle, uid_map

from eci.engine.state import load_state
from eci.errors import restricted_mount_message
from eci.host.processes import is_alive

pytestmark = pytest.mark.engine


def server_log(engine: EngineHandle) -> str:
    return engine.layout.log_file("runtime-server").read_text()


def server_pid(engine: EngineHandle) -> int:
    state = load_state(engine.layout.state_file)
    assert state is not None
    return state.processes["runtime-server"].pid


def run_detached(engine: EngineHandle, *args: str) -> str:
    return engine.docker("run", "-d", *args).stdout.strip()


def test_create_and_delete_go_through_the_runtime_server(engine: EngineHandle) -> None:
    container = run_detached(engine, "busybox", "true")
    engine.docker("wait", container)
    engine.docker("rm", container)
    log = server_log(engine)
    assert f"prepare {container} (pid " in log
    assert f"cleanup {container} (pid " in log


def test_without_the_server_containers_start_fully_checked_and_eci_up_brings_it_back(
    engine: EngineHandle,
) -> None:
    running = run_detached(engine, "busybox", "sleep", "300")
    started = engine.docker("inspect", "-f", "{{.State.StartedAt}}", running).stdout
    os.kill(server_pid(engine), signal.SIGKILL)
    try:
        # the dispatcher falls back to a fresh interpreter: still an own user namespace...
        mapping = engine.docker("run", "--rm", "busybox", "cat", "/proc/self/uid_map").stdout
        inside, outside, count = uid_map(mapping)
        assert (inside, count) == (0, 65536)
        assert outside >= 100000
        # ...and the shim's own checks, past the proxy
        refused = engine.docker(
            "run", "--rm", "-v", "/:/host", "busybox", "true", direct=True, check=False
        )
        assert refused.returncode != 0
        assert restricted_mount_message("/") in refused.stderr
        fallback = run_detached(engine, "busybox", "true")
        engine.docker("wait", fallback)
        engine.docker("rm", fallback)
        assert f"prepare {fallback}" not in server_log(engine)
    finally:
        result = engine.eci("up", "--admin-settings", str(engine.admin_settings))
    assert "restarted runtime-server" in result.stdout + result.stderr
    # the running container was not touched, and new ones use the server again
    assert engine.docker("inspect", "-f", "{{.State.StartedAt}}", running).stdout == started
    assert engine.docker("inspect", "-f", "{{.State.Running}}", running).stdout.strip() == "true"
    state = load_state(engine.layout.state_file)
    assert state is not None
    assert all(is_alive(p) for p in state.processes.values())
    again = run_detached(engine, "busybox", "true")
    engine.docker("wait", again)
    engine.docker("rm", "-f", again, running)
    deadline = time.monotonic() + 5
    while f"cleanup {again}" not in server_log(engine) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"prepare {again} (pid " in server_log(engine)
    assert f"cleanup {again} (pid " in server_log(engine)
