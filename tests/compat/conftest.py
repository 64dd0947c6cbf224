"""Fixtures of the transparency tests (the engine itself is the session fixture `engine`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.compat.twopaths import Made, Pushed, sh, unique, wait_for
from tests.support import EngineHandle, scratch_registry


def _dangling(engine: EngineHandle) -> set[bytes]:
    return set(sh(engine, "direct", "images", "-q", "--filter", "dangling=true").stdout.split())


@pytest.fixture(scope="module", autouse=True)
def nothing_left(engine: EngineHandle) -> Iterator[None]:
    """Each module removes every container and image it made (checked past the proxy)."""
    dangling = _dangling(engine)
    yield
    ps = sh(engine, "direct", "ps", "-a", "--filter", "name=compat-", "--format", "{{.Names}}")
    images = sh(engine, "direct", "images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    assert ps.stdout.split() == []
    assert [ref for ref in images.split() if b"compat" in ref] == []
    assert _dangling(engine) - dangling == set()


@pytest.fixture
def made(engine: EngineHandle) -> Iterator[Made]:
    """Names for what a test creates; all of it is removed afterwards."""
    things = Made()
    yield things
    things.remove(engine)


@pytest.fixture(scope="module")
def sleeper(engine: EngineHandle) -> Iterator[str]:
    """A running eci container (created past the proxy) to exec into, copy from, stat."""
    name = unique("compat-sleeper")
    try:
        sh(
            engine,
            "direct",
            "run",
            "-d",
            "--name",
            name,
            "busybox",
            "sh",
            "-c",
            "seq 1 1000000 > /seq.tmp && mv /seq.tmp /seq && exec sleep 600",
        )
        ready = wait_for(
            lambda: (
                sh(engine, "direct", "exec", name, "test", "-f", "/seq", check=False).returncode
                == 0
            )
        )
        assert ready, "the sleeper container never wrote /seq"
        yield name
    finally:
        sh(engine, "direct", "rm", "-f", name, check=False)


@pytest.fixture(scope="module")
def pushed(engine: EngineHandle) -> Iterator[Pushed]:
    """An image with a layer of its own, pushed (past the proxy) to a scratch registry on
    loopback and then removed locally, so that a pull has something to download."""
    with scratch_registry() as address:
        yield from _pushed_to(engine, f"{address}/compat/{unique('busybox')}:x")


def _pushed_to(engine: EngineHandle, ref: str) -> Iterator[Pushed]:
    source = unique("compat-src")
    try:
        sh(engine, "direct", "run", "--name", source, "busybox", "sh", "-c", "seq 1 200000 > /d")
        sh(engine, "direct", "commit", source, ref)
        image_id = sh(engine, "direct", "image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()
        sh(engine, "direct", "push", ref)
        sh(engine, "direct", "rm", source)
        sh(engine, "direct", "rmi", ref)
        yield Pushed(ref, image_id.decode())
    finally:
        sh(engine, "direct", "rm", "-f", source, check=False)
        sh(engine, "direct", "rmi", "-f", ref, check=False)
