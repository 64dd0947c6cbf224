"""Shared fixtures: the real private engine for integration, security and compat tests.

The engine is started once per session through the real CLI (`eci up --state-dir <tmp>`) on its
own temporary paths (never the host's default Docker socket) and always torn down, after which
the session asserts that no mount or process of it is left.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from tests.support import (
    ECI_ON_LOCKED,
    EngineHandle,
    engine_under_test,
    write_settings,
)


def _requires_engine() -> str | None:
    if os.geteuid() != 0:
        return "the engine tests need root"
    missing = [
        c
        for c in ("dockerd", "containerd", "docker-registry", "runc")
        if shutil.which(c, path="/usr/sbin:/usr/bin:/sbin:/bin") is None
    ]
    return f"missing {missing}: run `make setup`" if missing else None


@pytest.fixture(scope="session")
def engine() -> Iterator[EngineHandle]:
    """One real eci engine (ECI on, locked) with its registry and the test images, for the
    whole session."""
    reason = _requires_engine()
    if reason:
        pytest.fail(reason)  # a missing engine is a broken set-up, never a silent skip
    with engine_under_test("eci-test-") as handle:
        write_settings(handle.admin_settings.parent, ECI_ON_LOCKED)
        handle.eci("up", "--registry", "--admin-settings", str(handle.admin_settings))
        handle.eci("images")
        yield handle
