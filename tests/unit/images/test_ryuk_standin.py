"""The Ryuk stand-in image (`testcontainers/ryuk:0.8.1`): its recipe, and its script speaking
Ryuk's protocol, run on the host under busybox against a fake docker CLI that records its calls
(needs busybox-static from `make setup`)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from eci.images import rootfs
from eci.images.builder import ImageRecipe
from eci.images.catalog import DOCKER_CLIENT, RYUK_STANDIN, RYUK_STANDIN_PATH, TEST_IMAGES

RYUK = "testcontainers/ryuk:0.8.1"
SESSION = "label=org.testcontainers.session-id=3f2b"

# The fake docker: `ps` lists a session container and a reaper (which must be spared), `network
# ls` one network; removals echo their arguments, as the real CLI does.
FAKE_DOCKER = """#!/bin/sh
echo "$*" >> "$CALLS"
case "$1 $2" in
    "version "*) echo 1.47 ;;
    "ps "*) printf 'c0ffee \\nreaper true\\n' ;;
    "rm "*) shift 3; for id in "$@"; do echo "$id"; done ;;
    "network ls") echo net1 ;;
    "network rm") echo net1 ;;
esac
"""


def recipe() -> ImageRecipe:
    [found] = [r for r in TEST_IMAGES if r.name == RYUK]
    return found


def test_recipe_carries_the_script_and_the_docker_client() -> None:
    ryuk = recipe()
    assert ryuk.files == {"/usr/local/bin/docker": DOCKER_CLIENT, RYUK_STANDIN_PATH: RYUK_STANDIN}
    assert ryuk.cmd == ("/bin/sh", RYUK_STANDIN_PATH)
    assert ryuk.with_busybox
    assert ryuk.registry_path == "testcontainers/ryuk"
    assert RYUK_STANDIN.is_file()


def test_recipe_is_the_image_testcontainers_asks_for() -> None:
    if "RYUK_CONTAINER_IMAGE" in os.environ:
        pytest.skip("RYUK_CONTAINER_IMAGE overrides testcontainers' default")
    config = pytest.importorskip("testcontainers.core.config")
    assert config.testcontainers_config.ryuk_image == RYUK


def test_rootfs_holds_the_script_where_cmd_runs_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    rootfs.assemble(root, {RYUK_STANDIN_PATH: RYUK_STANDIN})
    script = root / RYUK_STANDIN_PATH.lstrip("/")
    assert script.read_bytes() == RYUK_STANDIN.read_bytes()
    assert (root / "bin/nc").is_symlink()
    subprocess.run([str(rootfs.BUSYBOX), "sh", "-n", str(script)], check=True)


@dataclass
class Standin:
    process: subprocess.Popen[str]
    port: int
    calls: Path

    def connect(self) -> socket.socket:
        deadline = time.monotonic() + 10
        while True:
            try:
                return socket.create_connection(("127.0.0.1", self.port), timeout=5)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def wait(self) -> tuple[int, str]:
        out, _ = self.process.communicate(timeout=20)
        return self.process.returncode, out

    def docker_calls(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[Standin]:
    """The script as PID-1-to-be, on busybox applets only, with a fake docker."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    applets = subprocess.run(
        [str(rootfs.BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        (bindir / applet).symlink_to(rootfs.BUSYBOX)
    docker = tmp_path / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    calls = tmp_path / "calls"
    port = free_port()
    env = {
        "PATH": str(bindir),
        "CALLS": str(calls),
        "RYUK_PORT": str(port),
        "RYUK_RECONNECTION_TIMEOUT": "300ms",
        "RYUK_REMOVE_RETRIES": "1",
        "RYUK_STANDIN_DOCKER": str(docker),
        "RYUK_STANDIN_SHELL": str(bindir / "sh"),
        "RYUK_STANDIN_STATE": str(tmp_path / "state"),
    }
    process = subprocess.Popen(
        [str(bindir / "sh"), str(RYUK_STANDIN)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield Standin(process, port, calls)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_acks_each_filter_then_reaps_once_the_client_is_gone(standin: Standin) -> None:
    with standin.connect() as conn:
        conn.sendall(f"{SESSION}\r\n".encode())
        assert conn.recv(16) == b"ACK\n"
        conn.sendall(b"\r\nlabel=a%3Db&name=x\n")  # an empty line is not answered
        assert conn.recv(16) == b"ACK\n"
        time.sleep(0.6)  # longer than the reconnection timeout: a client is still connected
        assert standin.process.poll() is None
    code, out = standin.wait()
    assert code == 0, out
    assert "ryuk-standin: Started!" in out
    assert "Removed 2 container(s), 2 network(s), 0 volume(s) 0 image(s)" in out
    calls = standin.docker_calls()
    assert "rm -f -v c0ffee" in calls  # the reaper listed alongside is spared
    assert not [c for c in calls if c.startswith("rm ") and "reaper" in c]
    filters = [c for c in calls if c.startswith("ps ")]
    assert any(c.endswith(f"--filter {SESSION}") for c in filters), filters
    assert any(c.endswith("--filter label=a=b --filter name=x") for c in filters), filters


def test_a_reconnection_within_the_timeout_keeps_it_alive(standin: Standin) -> None:
    with standin.connect() as conn:
        conn.sendall(f"{SESSION}\n".encode())
        assert conn.recv(16) == b"ACK\n"
    with standin.connect() as conn:
        conn.sendall(f"{SESSION}\n".encode())
        assert conn.recv(16) == b"ACK\n"
        time.sleep(0.6)
        assert standin.process.poll() is None
        assert not [c for c in standin.docker_calls() if c.startswith("rm ")]
    code, out = standin.wait()
    assert code == 0, out
    assert "Removed 1 container(s)" in out


def test_sigterm_with_no_client_reaps_at_once(standin: Standin) -> None:
    with standin.connect() as conn:
        conn.sendall(f"{SESSION}\n".encode())
        assert conn.recv(16) == b"ACK\n"
        standin.process.terminate()
        time.sleep(0.5)
        assert standin.process.poll() is None  # a client is still connected
    code, out = standin.wait()
    assert code == 0, out
    assert "signal received" in out
    assert "rm -f -v c0ffee" in standin.docker_calls()
