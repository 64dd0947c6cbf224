"""A socket-grant label copied from another container takes nothing over (item 7a of issue 15).

The token of a granted Docker socket is a label of the container holding it, so every
docker-group user sees it in `docker inspect`. ``SECOND_USER`` gives that token to a
container of its own through an image label (a create naming the label is refused, an
image's labels are copied into its containers), creates and destroys it, and must neither
close the holder's socket nor be served by it. The control: without the copied label the
same create and destroy leave the grant as it was too (the test then proves that it is the
label that the proxy must not trust).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import SECOND_USER, EngineHandle, settings_applied, socket_settings

from eci.contract.labels import GRANT_LABEL

pytestmark = pytest.mark.engine

BIND = "/var/run/docker.sock:/var/run/docker.sock"
#: how long the proxy has to (wrongly) act on a destroy event
SETTLE = 2.0


@pytest.fixture
def holder(engine: EngineHandle) -> Iterator[tuple[str, str]]:
    """A running container of the test user with a granted socket: (id, token)."""
    with settings_applied(engine, socket_settings()):
        cid = engine.docker("run", "-d", "-v", BIND, "docker:cli", "sleep", "600").stdout.strip()
        try:
            token = engine.docker(
                "inspect", "--format", f'{{{{index .Config.Labels "{GRANT_LABEL}"}}}}', cid,
                user=SECOND_USER,
            ).stdout.strip()  # fmt: skip
            yield cid, token
        finally:
            engine.docker("rm", "-f", cid, direct=True, check=False)


def _socket_works(engine: EngineHandle, cid: str) -> bool:
    return engine.docker("exec", cid, "docker", "ps", "-q", check=False).returncode == 0


def _image_with_label(engine: EngineHandle, name: str, label: str | None) -> None:
    """An image of the other tenant's, committed from a container of its own."""
    base = engine.docker("create", "busybox", "true", user=SECOND_USER).stdout.strip()
    try:
        change = ["--change", f"LABEL {GRANT_LABEL}={label}"] if label else []
        engine.docker("commit", *change, base, name, user=SECOND_USER)
    finally:
        engine.docker("rm", "-f", base, direct=True, check=False)


@pytest.mark.parametrize("copied", [True, False], ids=["copied-token", "control"])
def test_a_copied_token_neither_closes_nor_takes_over_the_grant(
    engine: EngineHandle, holder: tuple[str, str], copied: bool
) -> None:
    cid, token = holder
    assert token
    assert _socket_works(engine, cid)
    socket = engine.layout.grants_dir / token / "docker.sock"
    image = f"eci-grant-copy-{uuid.uuid4().hex[:8]}"
    _image_with_label(engine, image, token if copied else None)
    try:
        # created, run and destroyed: a destroy event carrying the holder's token
        run = engine.docker("run", "--rm", image, "true", user=SECOND_USER, check=False)
        assert run.returncode == 0, run.stderr
        labels = engine.docker("image", "inspect", "--format", "{{json .Config.Labels}}", image)
        assert (token in labels.stdout) is copied
        time.sleep(SETTLE)
        assert Path(socket).is_socket()
        assert _socket_works(engine, cid)
        # a long-lived one carrying the token is not served the socket either
        other = engine.docker("run", "-d", image, "sleep", "60", user=SECOND_USER).stdout.strip()
        try:
            mounts = engine.docker("inspect", "--format", "{{json .Mounts}}", other).stdout
            assert token not in mounts
        finally:
            engine.docker("rm", "-f", other, user=SECOND_USER)
        time.sleep(SETTLE)
        assert _socket_works(engine, cid)
    finally:
        engine.docker("rmi", "-f", image, direct=True, check=False)
