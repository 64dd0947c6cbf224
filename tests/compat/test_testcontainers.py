"""testcontainers-python through the proxy and directly: a container started, waited for by
its logs, exec'd into and stopped, the way a project's test suite uses it.

Ryuk (testcontainers' reaper) mounts the Docker socket, which eci refuses unless the admin
allowlists its image (the socket-permissions issue); these tests turn it off and stop their
containers themselves.
"""

from __future__ import annotations

import pytest
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy
from tests.compat.twopaths import assert_same, host_of, on_both
from tests.support import EngineHandle

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
