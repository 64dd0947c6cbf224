"""Bypass attempts, section 2 — the runtime: forced to sysbox-runc in every spelling.

How a case works: see conftest.py."""

from __future__ import annotations

from typing import Any

import pytest
from tests.security.api_bypass.common import (
    CREATE,
    IMAGE,
    Env,
    Json,
    encode,
    inspect,
    pairs,
    remove_container,
    unique,
)
from tests.security.rawhttp import exchange, request

pytestmark = pytest.mark.engine


RUNTIME_CASES = {
    "runtime": {"Image": IMAGE, "HostConfig": {"Runtime": "runc"}},
    "runtime-lowercase": {"Image": IMAGE, "HostConfig": {"runtime": "runc"}},
    "runtime-uppercase": {"Image": IMAGE, "HostConfig": {"RUNTIME": "runc"}},
    "runtime-lowercase-hostconfig": {"Image": IMAGE, "hostconfig": {"Runtime": "runc"}},
    "runtime-legacy-top-level": {"Image": IMAGE, "Runtime": "runc"},
    "runtime-legacy-null-hostconfig": {"Image": IMAGE, "HostConfig": None, "Runtime": "runc"},
    "runtime-inner-and-top-level": {
        "Image": IMAGE,
        "HostConfig": {"Runtime": "runc"},
        "Runtime": "runc",
    },
    "runtime-unicode-escape": Json(b'{"Image":"busybox","HostConfig":{"\\u0052untime":"runc"}}'),
    "runtime-duplicate-folded": pairs(
        ("Image", IMAGE), ("HostConfig", pairs(("Runtime", "sysbox-runc"), ("runtime", "runc")))
    ),
}


@pytest.mark.parametrize("body", list(RUNTIME_CASES.values()), ids=list(RUNTIME_CASES))
def test_runtime_forced_to_sysbox(env: Env, body: Any) -> None:
    name = unique()
    data = request("POST", CREATE.format(name=name), encode(body))
    for socket_path, runtime in ((env.raw, "runc"), (env.user, "sysbox-runc")):
        try:
            responses = exchange(socket_path, data)
            assert [r.status for r in responses] == [201], responses
            info = inspect(env, "containers", name)
            assert info is not None
            assert info["HostConfig"]["Runtime"] == runtime, socket_path
        finally:
            remove_container(env, name)
