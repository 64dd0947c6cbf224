"""The engine's table of daemons: order, what each part declares, and how the engine uses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eci.engine import engine
from eci.engine.components import COMPONENTS, Component, StopHook, lost_parts
from eci.engine.config import EngineOptions, dockerd_config
from eci.engine.layout import EngineLayout
from eci.engine.report import DownReport
from eci.engine.state import EngineState, save_state
from eci.host.processes import ProcessId

NAMES = [c.name for c in COMPONENTS]
BY_NAME = {c.name: c for c in COMPONENTS}
LAYOUT = EngineLayout.for_state_dir(Path("/tmp/eci-x"))
RESTARTABLE = ["runtime-server", "mount-supervisor", "lxcfs"]


def test_every_part_has_its_own_name() -> None:
    assert len(set(NAMES)) == len(NAMES)


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("runtime-server", "containerd"),  # no container is ever created without it
        ("mount-supervisor", "containerd"),
        ("lxcfs", "containerd"),
        ("containerd", "dockerd"),
        ("registry-writer", "registry"),  # the mirror never serves what nobody can fill
        ("registry", "dockerd"),
        ("dockerd", "proxy"),
    ],
)
def test_start_order(first: str, then: str) -> None:
    assert NAMES.index(first) < NAMES.index(then)


def test_the_proxy_comes_last_and_is_stopped_first() -> None:
    assert NAMES[-1] == "proxy"


def test_only_parts_containers_survive_without_are_restartable() -> None:
    assert [c.name for c in COMPONENTS if c.restartable] == RESTARTABLE
    assert all(c.before_restart is None for c in COMPONENTS if not c.restartable)


def test_root_only_sockets_sit_in_the_private_dir() -> None:
    sockets = {c.name: c.root_only_socket(LAYOUT) for c in COMPONENTS if c.root_only_socket}
    assert sockets == {
        "registry-writer": LAYOUT.registry_writer_socket,
        "dockerd": LAYOUT.raw_socket,
    }
    assert all(path.parent == LAYOUT.private_dir for path in sockets.values())
    assert LAYOUT.user_socket not in sockets.values()  # group docker's, served by the proxy


def test_settings_reach_dockerd_and_the_proxy_by_sighup() -> None:
    assert [c.name for c in COMPONENTS if c.reloads_on_sighup] == ["dockerd", "proxy"]


def test_dockerd_is_given_longer_than_its_own_shutdown_timeout() -> None:
    options = EngineOptions(True, Path("/opt/eci/eci-runtime"), None, "10.213.7.1/24")
    grace = json.loads(dockerd_config(LAYOUT, options))["shutdown-timeout"]
    assert BY_NAME["dockerd"].stop_timeout > grace
    assert BY_NAME["dockerd"].stop_timeout > max(
        c.stop_timeout for c in COMPONENTS if c.name != "dockerd"
    )


def _alive(*names: str) -> dict[str, bool]:
    return dict.fromkeys(names, True)


LOST = [
    ("all-up", _alive(*NAMES), []),
    ("lxcfs-gone", _alive(*(n for n in NAMES if n != "lxcfs")), ["lxcfs"]),
    ("restartables-gone", _alive(*(n for n in NAMES if n not in RESTARTABLE)), RESTARTABLE),
    ("dockerd-gone-too", _alive(*(n for n in NAMES if n not in ("lxcfs", "dockerd"))), []),
    ("containerd-gone", _alive(*(n for n in NAMES if n != "containerd")), []),
    ("nothing-recorded", {}, []),
]


@pytest.mark.parametrize(("alive", "expected"), [c[1:] for c in LOST], ids=[c[0] for c in LOST])
def test_lost_parts_restart_alone_only_while_the_rest_runs(
    alive: dict[str, bool], expected: list[str]
) -> None:
    parts = lost_parts(COMPONENTS, lambda name: alive.get(name, False))
    assert [c.name for c in parts] == expected


def test_keepers_are_stopped_after_the_supervisor(tmp_path: Path) -> None:
    layout = EngineLayout.for_state_dir(tmp_path)
    keepers = layout.supervisor_dir / "keepers"
    keepers.mkdir(parents=True)
    (keepers / str(2**22 + 1)).write_text("keeper 0 1\n")  # a pid no process can have
    (keepers / "notes").write_text("not a keeper")
    hook = BY_NAME["mount-supervisor"].after_stop
    assert hook is not None
    hook(layout, DownReport())
    assert sorted(p.name for p in keepers.iterdir()) == ["notes"]


def test_down_asks_each_part_in_reverse_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`eci down` takes timeouts and hooks from the table, never from a part's name."""
    events: list[str] = []

    def hook(what: str) -> StopHook:
        return lambda layout, report: events.append(what)

    table = (
        Component("a", lambda lay, st: [], lambda lay, st: True, 1.0, after_stop=hook("after a")),
        Component("b", lambda lay, st: [], lambda lay, st: True, 1.0, stop_timeout=7.0),
        Component("c", lambda lay, st: [], lambda lay, st: True, 1.0, before_stop=hook("before c")),
    )
    layout = EngineLayout.for_state_dir(tmp_path)
    state = EngineState(str(tmp_path), str(layout.run_dir), True, {})
    state.processes = {n: ProcessId(n, 100 + i, 1) for i, n in enumerate("abc")}
    save_state(layout.state_file, state)

    def stop(proc: ProcessId, timeout: float) -> bool:
        events.append(f"stop {proc.name} {timeout:g}")
        return proc.name != "b"

    monkeypatch.setattr(engine, "COMPONENTS", table)
    monkeypatch.setattr(engine, "stop", stop)
    monkeypatch.setattr(engine.mounts, "detach_all_under", lambda path: [])
    monkeypatch.setattr(engine.mounts, "mounts_under", lambda path: [])
    monkeypatch.setattr(engine.cgroups, "remove_subtree", lambda parent: None)
    monkeypatch.setattr(engine.network, "remove_bridge", lambda name, state_dir: True)
    monkeypatch.setattr(engine, "_release_ranges", lambda layout: 0)

    report = engine.down(layout)
    assert events == ["before c", "stop c 15", "stop b 7", "stop a 15", "after a"]
    assert report.stopped == ["c", "a"]  # b did not stop in time
    assert not layout.state_file.exists()
