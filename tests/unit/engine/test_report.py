"""The typed status report and its `eci status --json` document."""

from __future__ import annotations

from pathlib import Path

from eci.engine.report import ProcessStatus, RecordedEngine, StatusReport

SOCKETS = {"user": Path("/run/x/docker.sock"), "dockerdRaw": Path("/run/x/private/d.sock")}
SETTINGS = {"enhancedContainerIsolation": {"value": False, "source": {"description": "default"}}}
RECORDED = RecordedEngine(
    eci_enabled=False,
    settings=SETTINGS,
    registry=None,
    bridge="eci0",
    bridge_cidr="10.213.7.1/24",
    started_at="2026-12-03T20:00:00+00:00",
    log_dir=Path("/var/lib/x/log"),
)


def _report(recorded: RecordedEngine | None) -> StatusReport:
    processes = {"dockerd": ProcessStatus(41, True), "proxy": ProcessStatus(42, False)}
    return StatusReport(Path("/var/lib/x"), Path("/run/x"), False, SOCKETS, processes, recorded)


def test_an_engine_never_started_reports_paths_only() -> None:
    assert _report(None).to_json() == {
        "stateDir": "/var/lib/x",
        "runDir": "/run/x",
        "running": False,
        "sockets": {"user": "/run/x/docker.sock", "dockerdRaw": "/run/x/private/d.sock"},
        "processes": {"dockerd": {"pid": 41, "alive": True}, "proxy": {"pid": 42, "alive": False}},
    }


def test_a_started_engine_adds_what_engine_json_records() -> None:
    data = _report(RECORDED).to_json()
    assert {k: data[k] for k in data.keys() - _report(None).to_json().keys()} == {
        "eciEnabled": False,
        "settings": SETTINGS,
        "registry": None,
        "bridge": {"name": "eci0", "cidr": "10.213.7.1/24"},
        "startedAt": "2026-12-03T20:00:00+00:00",
        "logs": "/var/lib/x/log",
    }


def test_the_applied_eci_setting_and_its_source() -> None:
    assert (RECORDED.eci_applied, RECORDED.eci_source) == (False, "default")
