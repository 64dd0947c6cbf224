"""Finding 3 of issue 15: the engine's loopback registry (dockerd's mirror for docker.io, the
stand-in for Docker Hub on machines without internet) takes writes from root alone.

The attackers: a local user outside group docker, with raw HTTP to the loopback port (push an
image under docker.io's ``library/busybox:latest``, delete its manifest); a docker-group user,
making dockerd push there through the proxy; root in a container, reaching for the port on its
own loopback and on the bridge's gateway. On main the first two worked, and the next
``docker pull busybox`` (and the socket-mount allowlist's ``/distribution`` digest lookup)
trusted what they left. The control: root writes through eci's writer socket, and the same
planted image is then pulled through the mirror (so a refusal is the registry's, not a broken
attack). An engine started without ``--registry`` runs none.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support import (
    ECI_ON_LOCKED,
    OUTSIDER,
    SECOND_USER,
    TEST_USER,
    EngineHandle,
    engine_under_test,
    run,
    write_settings,
)

from eci.host.processes import processes_mentioning
from eci.images.registry import Registry

pytestmark = pytest.mark.engine

ATTACK = Path(__file__).with_name("registry_attack.py")
SRC = Path(__file__).resolve().parents[2] / "src"
BUSYBOX = "library/busybox"


def attack(user: str | None, *args: str) -> dict[str, Any]:
    """registry_attack.py as ``user`` (None: root), with the system python."""
    argv = ["/usr/bin/python3", "-I", str(ATTACK), str(SRC), *args]
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    result = run(argv)
    return dict(json.loads(result.stdout))


def registry_address(engine: EngineHandle) -> str:
    address = engine.status()["registry"]
    assert isinstance(address, str)
    assert address, "the session engine runs no registry"
    return address


def image_id(engine: EngineHandle, name: str) -> str:
    return engine.docker("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()


@pytest.fixture
def mirror(engine: EngineHandle) -> Iterator[Registry]:
    """The engine's mirror as any host user reaches it. If an attack got through (on main), the
    session's busybox is built and pushed again afterwards, so later tests are not poisoned."""
    registry = Registry.tcp(registry_address(engine))
    digest = registry.manifest_digest(BUSYBOX, "latest")
    local = image_id(engine, "busybox")
    assert digest is not None
    yield registry
    now = (registry.manifest_digest(BUSYBOX, "latest"), image_id(engine, "busybox"))
    if now != (digest, local):
        engine.docker("rmi", "-f", "busybox:latest", direct=True, check=False)
        engine.eci("images")


def test_outsider_cannot_plant_an_image_under_a_docker_io_name(
    engine: EngineHandle, mirror: Registry
) -> None:
    before = (mirror.manifest_digest(BUSYBOX, "latest"), image_id(engine, "busybox"))
    planted = attack(OUTSIDER, "plant", mirror.where, BUSYBOX, "latest")
    engine.docker("pull", "busybox")
    after = (mirror.manifest_digest(BUSYBOX, "latest"), image_id(engine, "busybox"))
    assert after[1] != planted.get("image"), (
        f"`docker pull busybox` got the image {OUTSIDER} planted: {planted}"
    )
    assert after == before
    assert planted["status"] == 405, planted  # Method Not Allowed: the mirror is read-only


def test_outsider_cannot_delete_a_manifest(engine: EngineHandle, mirror: Registry) -> None:
    before = mirror.manifest_digest(BUSYBOX, "latest")
    deleted = attack(OUTSIDER, "delete", mirror.where, BUSYBOX, "latest")
    assert deleted == {"status": 405, "digest": before}
    assert mirror.manifest_digest(BUSYBOX, "latest") == before
    # the socket-mount allowlist asks dockerd for a tag's digest: it still gets eci's
    lookup = run(
        ["curl", "-s", "--unix-socket", str(engine.layout.raw_socket),
         "http://docker/distribution/docker.io/library/busybox:latest/json"]
    )  # fmt: skip
    assert json.loads(lookup.stdout)["Descriptor"]["digest"] == before


def test_docker_group_user_cannot_push_through_dockerd(
    engine: EngineHandle, mirror: Registry
) -> None:
    """dockerd reaches loopback: a docker-group user makes it push docker:cli as busybox."""
    before = (mirror.manifest_digest(BUSYBOX, "latest"), image_id(engine, "busybox"))
    target = f"{mirror.where}/{BUSYBOX}:latest"
    engine.docker("tag", "docker:cli", target)
    try:
        pushed = engine.docker("push", target, check=False)
    finally:
        engine.docker("rmi", target, check=False)
    engine.docker("pull", "busybox")
    after = (mirror.manifest_digest(BUSYBOX, "latest"), image_id(engine, "busybox"))
    assert after[1] != image_id(engine, "docker:cli"), "`docker pull busybox` got docker:cli"
    assert after == before
    assert pushed.returncode != 0
    assert "405" in pushed.stderr or "not allowed" in pushed.stderr.lower(), pushed.stderr


@pytest.mark.parametrize("user", [OUTSIDER, TEST_USER, SECOND_USER])
def test_no_host_user_but_root_reaches_the_writer(engine: EngineHandle, user: str) -> None:
    writer = str(engine.layout.registry_writer_socket)
    assert attack(user, "plant", writer, BUSYBOX, "latest") == {
        "status": None,
        "error": "PermissionError",
    }


def test_root_writes_through_the_writer_and_the_mirror_serves_it(engine: EngineHandle) -> None:
    """The control of the attacks above: the same image, written by root through eci's writer,
    is pulled through the mirror by its docker.io name."""
    name = "eci-test/planted-by-root"
    planted = attack(None, "plant", str(engine.layout.registry_writer_socket), name, "latest")
    assert planted["status"] == 201, planted
    try:
        engine.docker("pull", name)
        assert image_id(engine, name) == planted["image"]
    finally:
        engine.docker("rmi", name, check=False)


@contextlib.contextmanager
def host_listener(host: str) -> Iterator[int]:
    """An HTTP server of the host on ``host`` (a free port, returned)."""
    server = socket.create_server((host, 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:  # shut down
                return
            with connection:
                connection.recv(4096)
                connection.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        server.shutdown(socket.SHUT_RDWR)  # wakes the accept
        server.close()
        thread.join(5)


def test_containers_cannot_reach_the_registry(engine: EngineHandle) -> None:
    """Containers have their own loopback, and the registry listens on the host's only: not
    on the bridge's gateway, which they do reach (the control: a host server there)."""
    port = registry_address(engine).rpartition(":")[2]
    bridge = engine.status()["bridge"]
    assert isinstance(bridge, dict)
    gateway = bridge["cidr"].partition("/")[0]
    with host_listener(gateway) as open_port:
        targets = [f"127.0.0.1:{port}", f"{gateway}:{port}", f"{gateway}:{open_port}"]
        script = "; ".join(_http_get_from_container(*t.split(":")) for t in targets)
        seen = engine.docker("run", "--rm", "busybox", "sh", "-c", script).stdout.splitlines()
    assert seen == [
        f"unreachable {targets[0]}",
        f"unreachable {targets[1]}",
        f"reached {targets[2]}",
    ]


def _http_get_from_container(host: str, port: str) -> str:
    """Shell that prints ``reached HOST:PORT`` when an HTTP server answers there, else
    ``unreachable HOST:PORT`` (busybox nc: the static busybox's wget crashes resolving)."""
    request = "printf 'GET /v2/ HTTP/1.0\\r\\n\\r\\n'"
    return (
        f"if {request} | nc -w 5 {host} {port} 2>/dev/null | grep -q '^HTTP/'; "
        f"then echo reached {host}:{port}; else echo unreachable {host}:{port}; fi"
    )


def test_engine_started_without_registry_runs_none() -> None:
    with engine_under_test("eci-noreg-") as fresh:
        write_settings(fresh.admin_settings.parent, ECI_ON_LOCKED)
        fresh.eci("up", "--admin-settings", str(fresh.admin_settings))
        status = fresh.status()
        processes = status["processes"]
        assert isinstance(processes, dict)
        assert "registry" not in processes, processes
        assert not status["registry"]
        assert processes_mentioning(str(fresh.layout.registry_config)) == []
        assert "registry-mirrors" not in json.loads(fresh.layout.dockerd_config.read_text())
        images = fresh.eci("images", check=False)
        assert images.returncode == 1
        assert "--registry" in images.stderr, images.stderr
        again = fresh.eci(
            "up", "--registry", "--admin-settings", str(fresh.admin_settings), check=False
        )
        assert again.returncode == 1
        assert "running without its registry" in again.stderr, again.stderr
        assert fresh.status()["processes"] == processes  # nothing changed
