"""200 create/start/delete cycles, some with a part of the runtime killed mid-create — the
dispatcher's client, a runtime-server worker, runc — nothing leaks (mounts, staging dirs, id
ranges) and the image layers stay byte-identical."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from tests.support import EngineHandle, eventually, live_ranges

from eci.host.mounts import mounts_under

pytestmark = pytest.mark.engine

CYCLES = int(os.environ.get("ECI_LIFECYCLES", "200"))
KILL_EVERY = 10


def layer_dirs(engine: EngineHandle, image: str) -> list[Path]:
    data = json.loads(engine.docker("image", "inspect", image, user=None).stdout)[0]
    graph = data["GraphDriver"]["Data"]
    dirs = [graph["UpperDir"], *graph.get("LowerDir", "").split(":")]
    return [Path(d) for d in dirs if d]


def tree_digest(root: Path) -> str:
    """Names, modes, owners, link targets and contents of everything below `root`."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            st = path.lstat()
            digest.update(
                f"{path.relative_to(root)}|{st.st_mode}|{st.st_uid}|{st.st_gid}|".encode()
            )
            if path.is_symlink():
                digest.update(os.readlink(path).encode())
            elif path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


KILL_TARGETS = ("client", "worker", "runc")


def _parent_of(pid: str) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


class MidCreateKiller(threading.Thread):
    """Kills (SIGKILL) the first process of `target` it sees for this engine: the
    eci-runtime-client of a create, a worker of the runtime server (a prepare or a cleanup),
    or runc's create."""

    def __init__(self, engine: EngineHandle, target: str) -> None:
        super().__init__(daemon=True)
        self.needle = str(engine.layout.state_dir).encode()
        self.target = target
        server_pid = (engine.layout.runtime_server_dir / "pid").read_text().strip()
        self.server_pid = int(server_pid)
        self.killed: str | None = None
        self.stop = threading.Event()

    def _hit(self, pid: str, argv: list[bytes]) -> bool:
        if self.target == "worker":
            return int(pid) != self.server_pid and _parent_of(pid) == self.server_pid
        if b"create" not in argv or b"--bundle" not in argv:
            return False
        if not any(self.needle in a for a in argv):  # another engine's (other tests, benches)
            return False
        if self.target == "runc":
            return argv[0].endswith(b"runc")
        return len(argv) > 1 and argv[1].endswith(b"eci-runtime-client")

    def run(self) -> None:
        deadline = time.monotonic() + 20
        while not self.stop.is_set() and time.monotonic() < deadline:
            with os.scandir("/proc") as entries:
                pids = [e.name for e in entries if e.name.isdigit()]
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv = f.read().split(b"\0")
                    hit = self._hit(pid, argv)
                except (OSError, ValueError, IndexError):
                    continue
                if hit:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        continue
                    self.killed = f"{self.target}: " + b" ".join(argv[:4]).decode(errors="replace")
                    return


def test_lifecycles_with_kills_leak_nothing(engine: EngineHandle) -> None:
    layers = layer_dirs(engine, "busybox")
    before_digests = {d: tree_digest(d) for d in layers}
    before_ranges = live_ranges(engine.layout)
    staging_roots = [engine.layout.runtime_dir, engine.layout.rootfs_dir]
    docker = ["docker", "-H", engine.docker_host]
    kills = dict.fromkeys(KILL_TARGETS, 0)
    for cycle in range(CYCLES):
        if cycle % KILL_EVERY == KILL_EVERY - 1:
            target = KILL_TARGETS[cycle // KILL_EVERY % len(KILL_TARGETS)]
            killer = MidCreateKiller(engine, target)
            killer.start()
            subprocess.run([*docker, "run", "--rm", "busybox", "true"], capture_output=True)
            killer.stop.set()
            killer.join()
            if killer.killed is not None:
                kills[target] += 1
        else:
            result = subprocess.run(
                [*docker, "run", "--rm", "busybox", "true"], capture_output=True, text=True
            )
            assert result.returncode == 0, result.stderr
    leftovers = subprocess.run([*docker, "ps", "-aq"], capture_output=True, text=True).stdout
    if leftovers.split():  # containers whose create was killed: remove them the normal way
        subprocess.run([*docker, "rm", "-f", *leftovers.split()], capture_output=True)
    attempts = CYCLES // KILL_EVERY
    assert sum(kills.values()) >= attempts // 2, f"only {kills} kills landed mid-create"
    assert all(kills.values()), f"some kind of kill never landed: {kills}"
    print(f"kills that landed mid-create in {CYCLES} cycles: {kills}")
    # the last containers' cleanups may still run: they are not waited for by their delete
    assert eventually(lambda: live_ranges(engine.layout) == before_ranges)
    for root in staging_roots:
        # the staging dir itself is an (unbindable) mount of itself; nothing may be below it
        assert eventually(lambda r=root: [m for m in mounts_under(r) if m != str(r)] == []), root
        assert eventually(lambda r=root: not r.exists() or list(r.iterdir()) == []), root
    assert {d: tree_digest(d) for d in layers} == before_digests
    # and the engine still works
    assert engine.docker("run", "--rm", "busybox", "echo", "ok").stdout == "ok\n"
