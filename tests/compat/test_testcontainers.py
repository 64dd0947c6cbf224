"""testcontainers-python through the proxy and directly: a container started, waited for by
its logs, exec'd into and stopped, the way a project's test suite uses it.

Ryuk (testcontainers' reaper) mounts the Docker socket: with its image allowlisted it gets a
filtered socket of its own and reaps a session whose process died; without, testcontainers
fails with the ECI socket-mount error. The lifecycle comparison turns Ryuk off (the direct
path would hand Ryuk dockerd's own socket).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy
from tests.compat.twopaths import assert_same, host_of, on_both
from tests.support import EngineHandle, settings_applied, socket_settings

from eci.errors import socket_mount_message

pytestmark = pytest.mark.engine


def test_container_lifecycle_is_the_same(
    engine: EngineHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")

    def workload(path: str) -> tuple[int, bytes, bytes, str]:
        monkeypatch.setenv("DOCKER_HOST", host_of(engine, path))
        container = (
            DockerContainer("busybox:latest")
            .with_command(["sh", "-c", "echo ready; sleep 60"])
            .waiting_for(LogMessageWaitStrategy("ready"))
        )
        with container:
            code, output = container.exec(["sh", "-c", "echo from-exec; id -u"])
            stdout, _ = container.get_logs()
            runtime = container.get_wrapped_container().attrs["HostConfig"]["Runtime"]
            container.get_docker_client().client.close()
        return code, output, stdout.split(b"\n")[0], runtime

    code, output, first_line, runtime = assert_same(on_both(workload))
    assert (code, output) == (0, b"from-exec\n0\n")
    assert first_line == b"ready"
    assert runtime == "sysbox-runc"


#: A test process that starts a container and dies without stopping it (as a crashed or
#: killed test run does): only Ryuk can clean up after it.
ABANDON = """
import os
from testcontainers.core.container import DockerContainer
container = DockerContainer("busybox:latest").with_command(["sleep", "300"]).start()
print(container.get_wrapped_container().id, flush=True)
os._exit(0)
"""


def _abandon(engine: EngineHandle) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESTCONTAINERS_", "RYUK_"))}
    env |= {"DOCKER_HOST": engine.docker_host, "RYUK_RECONNECTION_TIMEOUT": "1s"}
    return subprocess.run(
        [sys.executable, "-c", ABANDON], capture_output=True, text=True, env=env, timeout=120
    )


def _exists(engine: EngineHandle, container: str) -> bool:
    result = engine.docker("inspect", "--format", "{{.Id}}", container, check=False, direct=True)
    return result.returncode == 0


def test_ryuk_allowlisted_reaps_an_abandoned_session(engine: EngineHandle) -> None:
    with settings_applied(engine, socket_settings()):
        result = _abandon(engine)
        assert result.returncode == 0, result.stderr
        container = result.stdout.strip()
        try:
            deadline = time.monotonic() + 60
            while _exists(engine, container) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert not _exists(engine, container), "Ryuk did not remove the session's container"
        finally:
            engine.docker("rm", "-f", container, check=False, direct=True)


def test_ryuk_not_allowlisted_fails_with_the_eci_error(engine: EngineHandle) -> None:
    with settings_applied(engine, socket_settings(imageList={"images": ["docker:cli"]})):
        result = _abandon(engine)
    assert result.returncode != 0
    assert socket_mount_message("docker.io/testcontainers/ryuk") in result.stderr
    leftover = engine.docker(
        "ps", "-aq", "--filter", "ancestor=busybox:latest", "--filter", "status=running",
        direct=True,
    )  # fmt: skip
    assert leftover.stdout.strip() == ""
