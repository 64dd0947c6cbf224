"""The grant path and token: made by the proxy's code, accepted by the runtime's check."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from tests.unit.policy.cases import create, forwarded
from tests.unit.policy.test_socket_grant import ALLOWING, WITH_IMAGE

from eci.contract.grants import TOKEN_BYTES, grant_path, is_grant_path, is_token
from eci.contract.labels import GRANT_LABEL
from eci.policy import decide
from eci.proxy.grants import GrantedSockets, new_token

GRANTS = "/tmp/eci-x/run/private/grants"
TOKEN = "0123456789abcdef"


@pytest.mark.parametrize(
    ("resolved", "grants_dir", "expected"),
    [
        (f"{GRANTS}/{TOKEN}/docker.sock", GRANTS, True),
        (f"{GRANTS}/{TOKEN}/docker.sock", GRANTS + "/", True),
        (f"{GRANTS}/{TOKEN}/docker.sock", "", False),  # no grants dir configured
        (f"{GRANTS}/{TOKEN}", GRANTS, False),  # the directory, not the socket
        (GRANTS, GRANTS, False),
        (f"{GRANTS}/{TOKEN}/other", GRANTS, False),
        (f"{GRANTS}/{TOKEN}/docker.sock/x", GRANTS, False),
        (f"{GRANTS}/../{TOKEN}/docker.sock", GRANTS, False),
        (f"{GRANTS}/{TOKEN.upper()}/docker.sock", GRANTS, False),
        (f"{GRANTS}/{TOKEN}0/docker.sock", GRANTS, False),
        (f"{GRANTS}/{TOKEN[:-1]}/docker.sock", GRANTS, False),
        (f"{GRANTS}x/{TOKEN}/docker.sock", GRANTS, False),
        ("/run/docker.sock", GRANTS, False),
    ],
)
def test_the_runtime_accepts_exactly_a_grant_s_socket(
    resolved: str, grants_dir: str, expected: bool
) -> None:
    assert is_grant_path(resolved, grants_dir) is expected


@pytest.mark.parametrize(
    "text", ["", TOKEN.upper(), TOKEN + "0", TOKEN[:-1], "0123456789abcdeg", "\u0660" * 16, "../x"]
)
def test_what_is_not_a_token(text: str) -> None:
    assert not is_token(text)


def test_the_proxy_s_tokens_are_tokens() -> None:
    tokens = {new_token() for _ in range(64)}
    assert len(tokens) == 64
    assert all(is_token(t) and len(t) == 2 * TOKEN_BYTES for t in tokens)


def test_the_proxy_serves_the_path_the_runtime_accepts(tmp_path: Path) -> None:
    """The socket the proxy listens on is one the runtime's check lets through, and the
    policy redirects the container's bind to that very path."""
    token = new_token()
    sockets = GrantedSockets(tmp_path / "grants", tmp_path / "docker.sock", _never_served)

    async def opened() -> Path:
        await sockets.open(token)
        try:
            return sockets.path(token)
        finally:
            sockets.close_all()

    served = asyncio.run(opened())
    assert served.is_socket()
    assert is_grant_path(str(served), str(tmp_path / "grants"))
    assert str(served) == grant_path(str(tmp_path / "grants"), token)


def test_the_policy_binds_the_path_the_runtime_accepts() -> None:
    """A create of an allowed image mounting the Docker socket is rewritten to bind the socket
    of the token the proxy made, and labelled with that token."""
    token = new_token()
    facts = dataclasses.replace(WITH_IMAGE, grant_token=token)
    body = {"Image": "docker:cli", "HostConfig": {"Binds": ["/run/docker.sock:/d.sock"]}}
    sent = forwarded(create(body), decide(create(body), ALLOWING, facts))
    source = sent["HostConfig"]["Binds"][0].partition(":")[0]
    assert is_grant_path(source, ALLOWING.grants_dir)
    assert source.split("/")[-2] == sent["Labels"][GRANT_LABEL] == token


async def _never_served(*_: object) -> None:
    raise AssertionError("nobody connects in this test")
