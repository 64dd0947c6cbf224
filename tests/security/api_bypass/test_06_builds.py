"""Bypass attempts, section 6 — builds.

How a case works: see conftest.py."""

from __future__ import annotations

import uuid

import pytest
from tests.security.api_bypass.common import (
    BUILD_MESSAGE,
    SHIM_HOST_NETWORK,
    Env,
    assert_refused,
    snapshot,
    tar,
)
from tests.security.rawhttp import exchange, request

pytestmark = pytest.mark.engine


BUILD_CASES: dict[str, tuple[str, str | None]] = {
    "build-networkmode-host": ("networkmode=host", BUILD_MESSAGE),
    "build-networkmode-host-then-default": ("networkmode=host&networkmode=default", BUILD_MESSAGE),
    "build-networkmode-percent-encoded-key": ("network%6Dode=host", BUILD_MESSAGE),
    # the same rule as `--pid/--network container:<id>` on create: a runc container's netns
    "build-networkmode-container-runc": ("networkmode=container:{holder}", None),
}


@pytest.mark.parametrize("case", list(BUILD_CASES.values()), ids=list(BUILD_CASES))
def test_build_network_refused(env: Env, case: tuple[str, str | None]) -> None:
    """Legacy-builder RUN steps run with the build's network mode. The control cannot finish:
    eci's runtime shim refuses the host network (defence in depth), so the control shows
    dockerd took the request and handed the step's network to the runtime."""
    query, message = case
    context = tar({"Dockerfile": f"FROM busybox\nRUN echo {uuid.uuid4().hex}\n".encode()})
    target = f"/v1.41/build?{query.format(holder=env.holder)}&rm=1&forcerm=1&nocache=1"
    data = request("POST", target, context, content_type="application/x-tar")
    responses = exchange(env.raw, data)
    assert [r.status for r in responses] == [200], responses
    assert SHIM_HOST_NETWORK in responses[0].body.decode(), responses[0].body[-2000:]
    before = snapshot(env)
    responses = exchange(env.user, data)
    assert len(responses) == 1, responses
    assert_refused(responses[0], 403, message)
    assert snapshot(env) == before
