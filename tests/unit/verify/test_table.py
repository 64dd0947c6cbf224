"""The verification table can only pass a row by running its check."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from eci.engine.layout import EngineLayout
from eci.verify.checks import BUILT_FEATURES, TABLE, Check, Outcome, Status, Target, run_check

TARGET = Target(
    client=cast(Any, None), layout=EngineLayout.for_state_dir(Path("/x")), eci_enabled=True
)


def test_unbuilt_capability_is_not_yet_and_never_runs() -> None:
    ran = []

    def would_pass(t: Target) -> Outcome:
        ran.append(t)
        return Outcome(True, "fine")

    result = run_check(Check("c", "no-such-capability", "x", "y", would_pass), TARGET)
    assert result.status is Status.NOT_YET
    assert ran == []


def test_built_row_without_a_check_is_not_yet() -> None:
    assert run_check(Check("c", "engine", "x", "y", None), TARGET).status is Status.NOT_YET


def test_built_row_reports_failure() -> None:
    result = run_check(Check("c", "engine", "x", "y", lambda t: Outcome(False, "bad")), TARGET)
    assert (result.status, result.observed) == (Status.FAIL, "bad")


def test_every_built_row_has_a_check_and_the_table_names_the_seed_checks() -> None:
    for check in TABLE:
        if check.feature in BUILT_FEATURES:
            assert check.run is not None, check.name
    names = " ".join(c.name for c in TABLE)
    for seed in (
        "uid_map",
        "HostConfig.Runtime",
        "--pid=host",
        "docker.sock",
        "/proc/uptime",
        "remount,rw",
        "retag",
    ):
        assert seed in names
