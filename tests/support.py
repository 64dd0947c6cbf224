"""Helpers for tests that drive a real eci engine through its CLI and the Docker CLI."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eci.engine.layout import EngineLayout
from eci.host.mounts import mounts_under
from eci.host.probe import http_status_tcp
from eci.host.processes import processes_mentioning

ECI = str(Path(sys.executable).with_name("eci"))
TEST_USER = "eci-tester"
#: a second member of group docker: another tenant of the same engine
SECOND_USER = "eci-tester2"
#: a local user outside group docker: sees host files, /proc and loopback, never the Docker API
OUTSIDER = "eci-outsider"
DOCKER_CLIS = [p for p in ("/usr/bin/docker", "/usr/local/bin/docker") if Path(p).exists()]


@dataclass(frozen=True)
class EngineHandle:
    """A running eci engine under test: its layout and how to talk to it."""

    layout: EngineLayout
    admin_settings: Path

    @property
    def docker_host(self) -> str:
        return f"unix://{self.layout.user_socket}"

    def eci(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([ECI, *args, "--state-dir", str(self.layout.state_dir)], check=check)

    @property
    def raw_docker_host(self) -> str:
        return f"unix://{self.layout.raw_socket}"

    def docker(
        self,
        *args: str,
        user: str | None = TEST_USER,
        check: bool = True,
        cli: str = "docker",
        direct: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """The real Docker CLI against the user-facing socket, by default as the unprivileged
        test user (who eci protects the host from). ``direct``: as root on dockerd's own
        socket, past the proxy (controls, and the runtime's defence in depth)."""
        host = self.raw_docker_host if direct else self.docker_host
        argv = [cli, "-H", host, *args]
        if direct:
            user = None
        if user is not None:
            argv = ["runuser", "-u", user, "--", *argv]
        return run(argv, check=check)

    def status(self) -> dict[str, object]:
        return dict(json.loads(self.eci("status", "--json", check=False).stdout))


def run(
    argv: Sequence[str], check: bool = True, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {result.returncode}\nstdout:\n{result.stdout}\n"
            f"stderr:\n{result.stderr}"
        )
    return result


def unique(prefix: str) -> str:
    """A fresh name for what a test creates (containers, images, volumes)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def as_user(
    user: str, argv: Sequence[str], check: bool = False
) -> subprocess.CompletedProcess[str]:
    """``argv`` run as the host user ``user`` (runuser: no password, a clean login-less env)."""
    return run(["runuser", "-u", user, "--", *argv], check=check)


def api_as_user(
    engine: EngineHandle,
    user: str,
    method: str,
    target: str,
    body: str = "",
    content_type: str = "application/json",
) -> str:
    """One raw API request to the user socket, sent by curl as the host user ``user`` (so
    SO_PEERCRED names that user): the response body."""
    argv = [
        "curl", "-sS", "--unix-socket", str(engine.layout.user_socket), "-X", method,
        "-H", f"Content-Type: {content_type}", "--data-binary", body, f"http://docker{target}",
    ]  # fmt: skip
    return as_user(user, argv, check=True).stdout


def make_state_dir(prefix: str = "eci-test-") -> Path:
    """A fresh state dir the unprivileged test user can traverse to reach the user socket."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o711)
    return path


def write_settings(directory: Path, data: object, name: str = "admin-settings.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    path.chmod(0o644)
    return path


ECI_ON_LOCKED = {
    "configurationFileVersion": 2,
    "enhancedContainerIsolation": {"value": True, "locked": True},
}


#: the proxy re-reads its settings on SIGHUP, a moment after `eci up` returns
RELOAD_GRACE = 0.5


def socket_settings(**socket_mount: Any) -> dict[str, Any]:
    """ECI on and locked, the test images allowed to mount the Docker socket; ``imageList``
    and ``commandList`` keys given here are merged in."""
    image_list = {"images": ["docker:cli", "docker.io/testcontainers/ryuk:*"]}
    image_list.update(socket_mount.pop("imageList", {}))
    return {
        "configurationFileVersion": 2,
        "enhancedContainerIsolation": {
            "value": True,
            "locked": True,
            "dockerSocketMount": {"imageList": image_list, **socket_mount},
        },
    }


def reload_settings(engine: EngineHandle, data: object | None = None) -> None:
    """Apply admin settings ``data`` to the running engine (None: its own settings back)."""
    path = engine.admin_settings
    if data is not None:
        path = write_settings(engine.admin_settings.parent, data, "reloaded-settings.json")
    engine.eci("up", "--admin-settings", str(path))
    time.sleep(RELOAD_GRACE)


@contextlib.contextmanager
def settings_applied(engine: EngineHandle, data: object) -> Iterator[None]:
    reload_settings(engine, data)
    try:
        yield
    finally:
        reload_settings(engine)


def assert_nothing_left(layout: EngineLayout) -> None:
    assert mounts_under(layout.state_dir) == []
    assert mounts_under(layout.run_dir) == []
    assert processes_mentioning(str(layout.state_dir)) == []


def remove_state_dir(layout: EngineLayout) -> None:
    """Only once nothing is mounted below it: never recurse into a live mount."""
    if not mounts_under(layout.state_dir):
        shutil.rmtree(layout.state_dir, ignore_errors=True)


@contextlib.contextmanager
def engine_under_test(prefix: str) -> Iterator[EngineHandle]:
    """An engine on fresh temporary paths, not started yet. Whatever the caller starts is
    brought down on exit, which then asserts that no mount or process of it is left."""
    settings_dir = Path(tempfile.mkdtemp(prefix="eci-settings-", dir="/tmp"))
    handle = EngineHandle(
        EngineLayout.for_state_dir(make_state_dir(prefix)), settings_dir / "admin-settings.json"
    )
    try:
        yield handle
    finally:
        handle.eci("down", check=False)
        try:
            assert_nothing_left(handle.layout)
        finally:
            remove_state_dir(handle.layout)
            shutil.rmtree(settings_dir, ignore_errors=True)


RANGES_DIR = Path("/var/lib/eci/ranges")
#: how long a container's cleanup may take after its delete returned (it is not waited for)
CLEANUP_TIMEOUT = 10.0


def eventually(check: Callable[[], bool], timeout: float = CLEANUP_TIMEOUT) -> bool:
    """`check()` became true within `timeout` seconds: for what eci finishes after a command
    returned (a container's cleanup runs after its delete has answered, a supervisor
    restarts)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def live_ranges(layout: EngineLayout) -> dict[str, str]:
    """slot file -> owner, for the id ranges held by containers of this engine."""
    held = {}
    if RANGES_DIR.is_dir():
        for slot in RANGES_DIR.glob("slot-*"):
            owner = slot.read_text()
            if owner.startswith(str(layout.private_dir) + "/"):
                held[slot.name] = owner
    return held


def uid_map(text: str) -> tuple[int, int, int]:
    inside, outside, count = (int(x) for x in text.split())
    return inside, outside, count


@contextlib.contextmanager
def user_owned_dir(prefix: str) -> Iterator[Path]:
    """A fresh 0755 host directory owned by the test user, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    user = pwd.getpwnam(TEST_USER)
    os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def scratch_registry() -> Iterator[str]:
    """A writable registry of the test's own on a free loopback port (dockerd takes 127/8 as
    insecure by itself): the engine's mirror is read-only to dockerd, so a pull test pushes
    here. Stopped by its pid and removed with its storage when the test is done."""
    directory = Path(tempfile.mkdtemp(prefix="eci-scratch-registry-", dir="/tmp"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    config = directory / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {json.dumps(str(directory / 'data'))}\n"
        f"http:\n  addr: {json.dumps(address)}\n"
    )
    log = open(directory / "registry.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log)
    try:
        assert eventually(lambda: http_status_tcp(address, "/v2/") == 200, 20), (
            f"scratch registry on {address} never answered: "
            f"{(directory / 'registry.log').read_text()[-2000:]}"
        )
        yield address
    finally:
        process.terminate()
        process.wait(10)
        log.close()
        shutil.rmtree(directory, ignore_errors=True)
