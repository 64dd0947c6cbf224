"""Bypass attempts, section 7 — unknown write routes.

How a case works: see conftest.py."""

from __future__ import annotations

import pytest
from tests.security.api_bypass.common import (
    Env,
    assert_refused,
    container,
)
from tests.security.rawhttp import exchange, request

pytestmark = pytest.mark.engine


UNKNOWN_CASES: dict[str, tuple[str, str, int]] = {
    "unknown-post-container-subroute": ("POST", "/v1.41/containers/xyz/whatever", 404),
    "unknown-put-containers-create": ("PUT", "/v1.41/containers/create", 404),
    "unknown-post-system": ("POST", "/v1.41/system/reset", 404),
    "unknown-patch-container": ("PATCH", "/v1.41/containers/xyz", 404),
}


@pytest.mark.parametrize("case", list(UNKNOWN_CASES.values()), ids=list(UNKNOWN_CASES))
def test_unknown_write_route_refused(env: Env, case: tuple[str, str, int]) -> None:
    """dockerd does not know these either (404): it processes them; eci refuses any write
    it has not reviewed, so a new endpoint of a later daemon cannot slip through."""
    method, target, daemon_status = case
    data = request(method, target, container(PidMode="host"))
    responses = exchange(env.raw, data)
    assert [r.status for r in responses] == [daemon_status], responses
    responses = exchange(env.user, data)
    assert len(responses) == 1, responses
    assert_refused(responses[0], 403, None)
    assert "is not known to eci" in responses[0].message
