"""The shim's one exception to restricted binds: exactly a socket the proxy granted."""

from __future__ import annotations

import pytest

from eci.runtime.shim.spec import granted_socket

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
        (f"{GRANTS}x/{TOKEN}/docker.sock", GRANTS, False),
        ("/run/docker.sock", GRANTS, False),
    ],
)
def test_granted_socket(resolved: str, grants_dir: str, expected: bool) -> None:
    assert granted_socket(resolved, grants_dir) is expected
