"""The runtime server and its client: the dispatcher's create/delete through a live server,
through none, and through a dead one, give the same outcome; runc (a recording fake) runs in
the client with eci's arguments stripped; requests that are not from a client do nothing.

No daemon and no mounts: the halves exercised are the ones that need neither (a refused
container id, the cleanup of a container runc no longer knows)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import eventually

from eci.runtime.shim.containerlock import ContainerLock

RUNTIME = Path(__file__).resolve().parents[4] / "src" / "eci" / "runtime"
DISPATCHER = RUNTIME / "eci-runtime"
ENTRY = RUNTIME / "entry.py"


class Engine:
    """A state dir with runtime.conf, a fake runc that records its argv, and maybe a server."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server_dir = root / "srv"
        self.runc_root = root / "runc-root"
        self.ranges = root / "ranges"
        self.runtime_dir = root / "rt"
        self.recorded = root / "runc-argv"
        self.log = root / "runc.log"
        self.server: subprocess.Popen[str] | None = None
        fake_runc = root / "runc"
        fake_runc.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {self.recorded}\n")
        fake_runc.chmod(0o755)
        (root / "config").mkdir()
        (root / "config" / "runtime.conf").write_text(
            f"dockerDataRoot={root}/data\nruntimeDir={self.runtime_dir}\n"
            f"rootfsDir={root}/rootfs\nrangesDir={self.ranges}\nbackend={fake_runc}\n"
            f"restrictedPaths=/nonexistent\nserverDir={self.server_dir}\n"
        )

    def start_server(self) -> None:
        self.server = subprocess.Popen(
            [sys.executable, "-I", "-S", str(ENTRY), "--eci-serve", str(self.root)],
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 10
        while not (self.server_dir / "pid").exists():
            assert self.server.poll() is None, self.server.communicate()[1]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)

    def stop_server(self) -> str:
        """SIGTERM; returns what the server logged."""
        assert self.server is not None
        self.server.send_signal(signal.SIGTERM)
        _, log = self.server.communicate(timeout=10)
        return log

    def command(self, *argv: str) -> list[str]:
        """The dispatcher run directly for this engine, with runc's globals."""
        dispatcher = ["sh", str(DISPATCHER), "--eci-state", str(self.root)]
        return [*dispatcher, "--root", str(self.runc_root), "--log", str(self.log), *argv]

    def dispatch(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*argv),
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin"},
            timeout=30,
        )

    def hold_range(self, container: str, slot: int = 7) -> Path:
        """A range slot held by `container` of this runc root (as a create leaves it)."""
        self.ranges.mkdir(exist_ok=True)
        path = self.ranges / f"slot-{slot}"
        path.write_text(os.path.join(os.path.realpath(self.runc_root), container))
        return path


MODES = ["server", "no-server", "dead-server"]


@pytest.fixture(params=MODES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(tmp_path)
    if request.param != "no-server":
        eng.start_server()
    if request.param == "dead-server":  # killed: its FIFO and pid file stay behind
        assert eng.server is not None
        eng.server.kill()
        eng.server.communicate()
        assert (eng.server_dir / "requests").exists()
    yield eng
    if request.param == "server":
        eng.stop_server()


def test_delete_runs_runc_without_eci_arguments_then_cleans_up(engine: Engine) -> None:
    slot = engine.hold_range("c1")
    (engine.runtime_dir / "c1" / "upper").mkdir(parents=True)  # staged (without mounts)
    result = engine.dispatch("delete", "--force", "c1")
    assert result.returncode == 0, result.stderr + engine.log.read_text()
    assert engine.recorded.read_text().split() == [
        "--root",
        str(engine.runc_root),
        "--log",
        str(engine.log),
        "delete",
        "--force",
        "c1",
    ]
    assert eventually(lambda: not slot.exists())  # the cleanup is not waited for
    assert eventually(lambda: not (engine.runtime_dir / "c1").exists())
    assert eventually(lambda: not (engine.runtime_dir / "c1.lock").exists())


def test_the_next_half_of_a_container_waits_for_its_cleanup(tmp_path: Path) -> None:
    """A delete returns once a worker holds the container's lock, not before: whatever
    containerd does next for the container (a restart's create) waits for the cleanup."""
    eng = Engine(tmp_path)
    eng.start_server()
    slot = eng.hold_range("c1")
    (eng.runtime_dir / "c1").mkdir(parents=True)
    with ContainerLock(str(eng.runtime_dir), "c1"):  # as if a cleanup were under way
        delete = subprocess.Popen(eng.command("delete", "c1"), env={"PATH": "/usr/bin:/bin"})
        time.sleep(1)
        assert delete.poll() is None  # not taken up: the worker waits for the lock
        assert slot.exists()
    assert delete.wait(timeout=10) == 0
    assert eventually(lambda: not slot.exists())
    assert "cleanup c1 (pid " in eng.stop_server()


def test_delete_of_a_container_runc_still_knows_keeps_its_range(engine: Engine) -> None:
    slot = engine.hold_range("c1")
    (engine.runtime_dir / "c1").mkdir(parents=True)
    (engine.runc_root / "c1").mkdir(parents=True)  # runc's state dir: the delete did nothing
    assert engine.dispatch("delete", "c1").returncode == 0
    assert slot.exists()
    assert (engine.runtime_dir / "c1").exists()


def test_a_refused_create_never_reaches_runc(engine: Engine) -> None:
    result = engine.dispatch("create", "--bundle", str(engine.root), "bad..id")
    assert result.returncode == 1
    assert not engine.recorded.exists()
    assert "refusing container id 'bad..id'" in engine.log.read_text()


def test_the_server_logs_each_half_and_goes_away_cleanly(tmp_path: Path) -> None:
    eng = Engine(tmp_path)
    eng.start_server()
    eng.hold_range("c1")
    (eng.runtime_dir / "c1").mkdir(parents=True)
    assert eng.dispatch("delete", "c1").returncode == 0
    log = eng.stop_server()
    assert "cleanup c1 (pid " in log
    assert ": exit 0 in " in log
    assert not (eng.server_dir / "requests").exists()
    assert not (eng.server_dir / "pid").exists()
    assert sorted(p.name for p in eng.server_dir.iterdir()) == []


def test_requests_not_from_a_client_do_nothing(tmp_path: Path) -> None:
    """A process that is not an eci-runtime-client (its argv says otherwise) gets no half run
    and nothing written into its pipe, even when it holds one."""
    eng = Engine(tmp_path)
    eng.start_server()
    slot = eng.hold_range("c1")
    (eng.runtime_dir / "c1").mkdir(parents=True)
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    as_if = ["--eci-state", str(tmp_path), "--root", str(eng.runc_root), "delete", "c1"]
    impostor = subprocess.Popen([*sleeper, *as_if], stdout=subprocess.PIPE)
    try:
        assert impostor.stdout is not None
        os.set_blocking(impostor.stdout.fileno(), False)
        with open(eng.server_dir / "requests", "w") as requests:
            requests.write("rm -rf /\nprepare abc\n\n")  # ignored, and the server lives on
            requests.write(f"cleanup {impostor.pid} 1\n")  # its stdout is a pipe
        time.sleep(0.5)
        assert impostor.stdout.read() is None  # nothing written (None: would block)
    finally:
        impostor.kill()
        impostor.communicate()
    assert slot.exists()
    assert (eng.runtime_dir / "c1").exists()
    assert eng.dispatch("delete", "c1").returncode == 0  # a real client is still served
    assert eventually(lambda: not slot.exists())
    log = eng.stop_server()
    assert "ignoring request b'rm -rf /'" in log
    assert f"process {impostor.pid} is not an eci-runtime-client" in log


def test_a_client_gone_before_its_request_is_taken_up_gets_nothing_done(tmp_path: Path) -> None:
    eng = Engine(tmp_path)
    eng.start_server()
    slot = eng.hold_range("c1")
    with open(eng.server_dir / "requests", "w") as requests:
        requests.write("cleanup 999999 3\n")  # no such process
    time.sleep(0.3)
    log = eng.stop_server()
    assert slot.exists()
    assert "cleanup" not in log


def test_a_server_that_does_not_answer_fails_the_create_where_runc_logs(tmp_path: Path) -> None:
    eng = Engine(tmp_path)
    eng.start_server()
    assert eng.server is not None
    eng.server.send_signal(signal.SIGSTOP)  # alive, but takes nothing up
    try:
        started = time.monotonic()
        result = eng.dispatch("--log-format", "json", "create", "--bundle", str(tmp_path), "c1")
        elapsed = time.monotonic() - started
    finally:
        eng.server.send_signal(signal.SIGCONT)
    assert result.returncode == 254
    assert not eng.recorded.exists()
    [line] = eng.log.read_text().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "error"
    assert entry["msg"].startswith("eci: the runtime server did not take up prepare of create")
    assert elapsed < 15  # the cleanup after it did not wait for the server a second time
    eng.stop_server()


def test_free_range_sweeps_are_spaced_by_their_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep every SWEEP_INTERVAL seconds, one at a time, and never more than 1/SWEEP_SHARE
    of the time (a slow sweep pushes the next one back)."""
    from eci.runtime.shim import server

    clock = [1000.0]
    forked: list[str] = []
    running: set[int] = set()
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(server, "_running", lambda pid: pid in running)

    def fork(work: object, listening: int, what: str) -> int:
        forked.append(what)
        running.add(len(forked))
        return len(forked)

    monkeypatch.setattr(server, "_fork", fork)
    sweeps = server._FreeRangeSweeps(None, None, -1)  # type: ignore[arg-type]
    assert sweeps.due_in() == server.SWEEP_INTERVAL
    assert sweeps.tick() is None
    clock[0] += server.SWEEP_INTERVAL
    assert sweeps.tick() == 1
    clock[0] += 3 * server.SWEEP_INTERVAL
    assert sweeps.tick() is None  # the first still runs
    running.clear()
    assert sweeps.tick() is None  # it took 30 s: the next one waits 20 times that
    assert sweeps.due_in() == 3 * server.SWEEP_INTERVAL * (server.SWEEP_SHARE - 1)
    clock[0] += sweeps.due_in()
    assert sweeps.tick() == 2
    assert forked == ["free-range sweep", "free-range sweep"]


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="mapping a user namespace onto a range needs root")
def test_user_namespaces_are_made_for_the_next_ranges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made in the serving loop, where SIGCHLD is ignored (children reap themselves): for
    exactly the ranges the queue hands out next, and dropped once they are not."""
    from eci.runtime.shim import lifecycle, server
    from eci.runtime.shim.ranges import RANGE_SIZE, Pool, RangeStore
    from eci.runtime.shim.userns import UsernsHandles

    pool = Pool(4_000_000_000, 16 * RANGE_SIZE)  # far above eci's pool
    handles = UsernsHandles()
    resources = lifecycle.Resources(handles, pool=lambda: pool)
    monkeypatch.setattr(server, "USERNS_MADE", 2)
    store = RangeStore(tmp_path, pool)
    store.allocate("/run/test/a", lambda owner: True)
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        server._make_userns_ahead(str(tmp_path), resources)
        assert handles.made() == [pool.base(1), pool.base(2)]
        fd = handles.take(pool.base(1))
        try:
            assert os.readlink(f"/proc/self/fd/{fd}").startswith("user:[")
        finally:
            os.close(fd)
        store.allocate("/run/test/b", lambda owner: True)
        server._make_userns_ahead(str(tmp_path), resources)
        assert handles.made() == [pool.base(2), pool.base(3)]
    finally:
        signal.signal(signal.SIGCHLD, previous)
        handles.close()
