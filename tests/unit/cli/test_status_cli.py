"""`eci status` as an admin reads it, from an engine.json written by the test (no engine runs:
the recorded processes are this test's own, alive, or a pid that cannot be running)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from eci.cli.main import app
from eci.engine.layout import EngineLayout
from eci.engine.state import EngineState, save_state
from eci.host.processes import ProcessId, start_time_of

runner = CliRunner()

PARTS = ["runtime-server", "mount-supervisor", "lxcfs", "containerd", "dockerd", "proxy"]
REGISTRY_PARTS = ["registry-writer", "registry"]
SETTINGS = {
    "enhancedContainerIsolation": {
        "value": True,
        "source": {"description": "admin settings (locked)"},
    }
}
#: never a live process: above any pid_max the kernel allows
GONE = ProcessId("gone", 2**22 + 1, 1)


def _me(name: str) -> ProcessId:
    pid = os.getpid()
    start = start_time_of(pid)
    assert start is not None
    return ProcessId(name, pid, start)


def _record(state_dir: Path, registry: str = "", dead: str = "") -> EngineLayout:
    layout = EngineLayout.for_state_dir(state_dir)
    names = PARTS[:4] + (REGISTRY_PARTS if registry else []) + PARTS[4:]
    state = EngineState(
        state_dir=str(layout.state_dir),
        run_dir=str(layout.run_dir),
        eci_enabled=True,
        settings=SETTINGS,
        bridge="eci1234560",
        bridge_cidr="10.213.7.1/24",
        registry_address=registry,
        started_at="2026-12-03T20:00:00+00:00",
        processes={n: GONE if n == dead else _me(n) for n in names},
    )
    save_state(layout.state_file, state)
    return layout


def _paths(layout: EngineLayout) -> dict[str, Any]:
    """The part of the JSON report every engine has, started or not."""
    return {
        "stateDir": str(layout.state_dir),
        "runDir": str(layout.run_dir),
        "running": False,
        "sockets": {
            "user": str(layout.user_socket),
            "dockerdRaw": str(layout.raw_socket),
            "containerd": str(layout.containerd_socket),
        },
    }


def _status(layout: EngineLayout, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["status", "--state-dir", str(layout.state_dir), *args])
    return result.exit_code, result.stdout


def test_never_started_engine_is_reported_not_running(tmp_path: Path) -> None:
    layout = EngineLayout.for_state_dir(tmp_path)
    code, text = _status(layout)
    assert code == 3
    assert text == (
        f"eci engine: not running (state {tmp_path})\n"
        f"  socket user       {layout.user_socket}\n"
        f"  socket dockerdRaw {layout.raw_socket}\n"
        f"  socket containerd {layout.containerd_socket}\n"
    )


def test_never_started_engine_as_json_names_only_paths(tmp_path: Path) -> None:
    layout = EngineLayout.for_state_dir(tmp_path)
    code, text = _status(layout, "--json")
    assert code == 3
    assert json.loads(text) == {**_paths(layout), "processes": {}}


def test_running_engine_lists_every_part_and_its_registry(tmp_path: Path) -> None:
    layout = _record(tmp_path, registry="127.0.0.1:723")
    code, text = _status(layout)
    assert code == 0
    pid = f"{os.getpid():<8}"
    names = sorted(PARTS + REGISTRY_PARTS)  # engine.json keeps them sorted
    assert text == (
        f"eci engine: running (state {tmp_path})\n"
        + "".join(f"  {n:<16} pid {pid} running\n" for n in names)
        + f"  socket user             {layout.user_socket}\n"
        f"  socket dockerdRaw       {layout.raw_socket}\n"
        f"  socket containerd       {layout.containerd_socket}\n"
        f"  socket registryWriter   {layout.registry_writer_socket}\n"
        "  registry         127.0.0.1:723 (docker.io mirror, read-only)\n"
        "  ECI on (source: admin settings (locked))\n"
    )


def test_dead_part_is_shown_and_exits_3(tmp_path: Path) -> None:
    layout = _record(tmp_path, dead="dockerd")
    code, text = _status(layout)
    assert code == 3
    assert text.startswith(f"eci engine: not running (state {tmp_path})\n")
    assert f"  dockerd          pid {GONE.pid:<8} DEAD\n" in text
    assert f"  proxy            pid {os.getpid():<8} running\n" in text
    assert "registry " not in text  # an engine without its registry names none


@pytest.mark.parametrize("registry", ["", "127.0.0.1:723"], ids=["no-registry", "registry"])
def test_json_report_of_a_started_engine(tmp_path: Path, registry: str) -> None:
    layout = _record(tmp_path, registry=registry, dead="lxcfs")
    code, text = _status(layout, "--json")
    assert code == 3
    report: dict[str, Any] = json.loads(text)
    expected = _paths(layout)
    if registry:
        expected["sockets"]["registryWriter"] = str(layout.registry_writer_socket)
    names = PARTS[:4] + (REGISTRY_PARTS if registry else []) + PARTS[4:]
    assert report == {
        **expected,
        "processes": {
            n: {"pid": GONE.pid, "alive": False}
            if n == "lxcfs"
            else {"pid": os.getpid(), "alive": True}
            for n in names
        },
        "eciEnabled": True,
        "settings": SETTINGS,
        "registry": registry or None,
        "bridge": {"name": "eci1234560", "cidr": "10.213.7.1/24"},
        "startedAt": "2026-12-03T20:00:00+00:00",
        "logs": str(layout.log_dir),
    }
