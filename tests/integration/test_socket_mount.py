"""Docker socket mounts through the real Docker CLI: allowlisted images get a filtered socket of
their own, every other image (retagged ones included) is refused, derived images follow
``allowDerivedImages``, and ``commandList`` is enforced on the granted socket both ways.

Each refusal is first shown to work on dockerd's own socket with plain runc (the control).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.support import EngineHandle, reload_settings, settings_applied, socket_settings

from eci.errors import command_blocked_message, socket_mount_message

pytestmark = pytest.mark.engine

SOCKET = "/var/run/docker.sock"
BIND = f"{SOCKET}:{SOCKET}"


@pytest.fixture
def allowlist(engine: EngineHandle) -> Iterator[None]:
    """The session engine with an imageList; its own settings back afterwards."""
    with settings_applied(engine, socket_settings()):
        yield


def _wait_until(done: Callable[[], bool], timeout: float = 10) -> None:
    """The proxy removes a grant on dockerd's destroy event, a moment after `--rm`/`rm`."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert done()


def _grants(engine: EngineHandle) -> set[str]:
    directory = engine.layout.grants_dir
    return {p.name for p in directory.iterdir()} if directory.is_dir() else set()


def _refused(engine: EngineHandle, image: str, message: str) -> None:
    result = engine.docker("run", "--rm", "-v", BIND, image, "true", check=False)
    assert result.returncode != 0
    assert f"Error response from daemon: {message}" in result.stderr


def _control_socket_mount(engine: EngineHandle, image: str) -> None:
    """On dockerd's own socket with plain runc the same mount works (the control)."""
    raw = str(engine.layout.raw_socket)
    result = engine.docker(
        "run", "--rm", "--runtime=runc", "-v", f"{raw}:{SOCKET}", image, "test", "-S", SOCKET,
        direct=True,
    )  # fmt: skip
    assert result.returncode == 0


def test_allowed_image_runs_docker_ps_through_a_socket_of_its_own(
    engine: EngineHandle, allowlist: None
) -> None:
    before = _grants(engine)
    name = "eci-sock-allowed"
    out = engine.docker(
        "run", "--rm", "--name", name, "-v", BIND, "docker:cli",
        "sh", "-c", "cat /proc/self/uid_map; docker ps --format '{{.Names}}'",
    ).stdout.split("\n")  # fmt: skip
    assert out[0].split()[:2] != ["0", "0"]  # container root is not host root
    assert name in out[1:]  # it listed itself through the mounted socket
    _wait_until(lambda: _grants(engine) == before)  # the socket went with its container
    records = [json.loads(line) for line in engine.layout.audit_log.read_text().splitlines()]
    assert any(
        r["rule"] == "docker-socket-grant" and "'docker:cli'" in r["reason"] for r in records
    )


def test_the_granted_socket_is_not_the_engine_s(engine: EngineHandle, allowlist: None) -> None:
    cid = engine.docker("run", "-d", "-v", BIND, "docker:cli", "sleep", "60").stdout.strip()
    try:
        mounts = json.loads(engine.docker("inspect", "--format", "{{json .Mounts}}", cid).stdout)
        (source,) = [m["Source"] for m in mounts if m["Destination"] == SOCKET]
        assert Path(source).parent.parent == engine.layout.grants_dir
        assert Path(source).is_socket()
        # what it creates through its socket is an eci container too, and refusals still apply
        inner = engine.docker(
            "exec", cid, "docker", "run", "--rm", "busybox", "cat", "/proc/self/uid_map"
        ).stdout
        assert inner.split()[:2] != ["0", "0"]
        pid_host = engine.docker(
            "exec", cid, "docker", "run", "--rm", "--pid=host", "busybox", "true", check=False
        )
        assert "can't share namespaces [pid] with the host" in pid_host.stderr
    finally:
        engine.docker("rm", "-f", cid)
    _wait_until(lambda: not Path(source).parent.exists())  # removed with the container


def test_image_not_in_the_list_is_refused(engine: EngineHandle, allowlist: None) -> None:
    _control_socket_mount(engine, "busybox")
    _refused(engine, "busybox", socket_mount_message("docker.io/library/busybox"))


@pytest.mark.parametrize("name", ["docker:cli", "testcontainers/ryuk:retagged"])
def test_a_denied_image_retagged_to_an_allowed_name_is_refused(
    engine: EngineHandle, allowlist: None, name: str
) -> None:
    original = engine.docker("image", "inspect", "--format", "{{.Id}}", name, check=False)
    engine.docker("tag", "busybox", name)
    try:
        _control_socket_mount(engine, name)
        repository = "docker.io/" + ("library/docker" if name == "docker:cli" else name[:-9])
        _refused(engine, name, socket_mount_message(repository))
    finally:
        if original.returncode == 0:
            engine.docker("tag", original.stdout.strip(), name)
        else:
            engine.docker("rmi", name)


@pytest.fixture
def derived(engine: EngineHandle) -> Iterator[str]:
    """An image built FROM docker:cli by the test user (classic builder)."""
    name = "eci-derived-tools:1"
    context = Path(tempfile.mkdtemp(prefix="eci-derived-"))
    try:
        context.chmod(0o755)
        (context / "Dockerfile").write_text("FROM docker:cli\nRUN echo derived > /derived\n")
        (context / "Dockerfile").chmod(0o644)
        engine.docker("build", "-q", "-t", name, str(context))
        yield name
    finally:
        engine.docker("rmi", name, check=False)
        shutil.rmtree(context)


@pytest.mark.parametrize("allow_derived", [True, False])
def test_derived_images_follow_the_flag(
    engine: EngineHandle, allowlist: None, derived: str, allow_derived: bool
) -> None:
    reload_settings(engine, socket_settings(imageList={"allowDerivedImages": allow_derived}))
    if allow_derived:
        out = engine.docker("run", "--rm", "-v", BIND, derived, "docker", "version", "-f", "ok")
        assert out.stdout.strip() == "ok"
    else:
        _control_socket_mount(engine, derived)
        _refused(engine, derived, socket_mount_message("docker.io/library/eci-derived-tools"))


COMMAND_CASES = [
    # mode, commands, (docker ps allowed, docker images allowed)
    ("deny", ["ps"], (False, True)),
    ("deny", ["image*"], (True, False)),
    ("allow", ["ps"], (True, False)),
    ("allow", ["images"], (False, True)),
]


@pytest.mark.parametrize(("mode", "commands", "allowed"), COMMAND_CASES)
def test_command_list_is_enforced_both_ways(
    engine: EngineHandle,
    allowlist: None,
    mode: str,
    commands: list[str],
    allowed: tuple[bool, bool],
) -> None:
    reload_settings(engine, socket_settings(commandList={"type": mode, "commands": commands}))
    script = "docker ps -q; echo ps=$?; docker images -q; echo images=$?"
    result = engine.docker("run", "--rm", "-v", BIND, "docker:cli", "sh", "-c", script)
    assert f"ps={0 if allowed[0] else 1}" in result.stdout
    assert f"images={0 if allowed[1] else 1}" in result.stdout
    paths = ("/v1.41/containers/json", "/v1.41/images/json")
    for path, ok in zip(paths, allowed, strict=True):  # the exact text, with the target as sent
        text = re.escape(command_blocked_message(path)).replace(re.escape(path), f'{path}[^"]*')
        assert bool(re.search(f"Error response from daemon: {text}", result.stderr)) != ok
