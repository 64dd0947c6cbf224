"""Work the mount supervisor does for a container is paid by that container (issue 15, 5).

The attacker is root in a ``--privileged --cpus 0.1 --pids-limit 32`` container, asked for by
a docker-group user, calling mount(2) in 16 loops. Every call is vetted and made by a helper
the supervisor forks on the host: were the helpers outside the container's cgroups, the
container would spend the host's CPU far beyond its 0.1 quota (about one core was measured).
They run in the container's cgroups (cpu, cpuacct, memory, pids), at most a few at once,
and another container's mount calls and sysinfo(2) answers stay prompt meanwhile, even while
the busy container is paused with its helpers frozen.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.security.escape import PROBE_DIR, build_probe
from tests.support import EngineHandle

from eci.engine.state import load_state
from eci.host.cgroups import cpu_seconds_of
from eci.host.processes import children_of, cpu_seconds
from eci.runtime.confine.sysinfo import cgroup_paths

pytestmark = pytest.mark.engine

#: the attacker's load: 16 threads mounting and unmounting a tmpfs each, as fast as allowed
MOUNT_SPAM = Path(__file__).with_name("mountspam.c")
LIMITS = ("--privileged", "--cpus", "0.1", "--pids-limit", "32")
QUOTA = 0.1
WINDOW = 10.0
#: the supervisor's bound on one container's helpers at once
MAX_HELPERS = 3
#: what "prompt" means for another container's `docker exec` of one mount and `free`
PROMPT = 5.0
CHARGED = ("cpu", "cpuacct", "memory", "pids")


def supervisor_pid(engine: EngineHandle) -> int:
    state = load_state(engine.layout.state_file)
    assert state is not None
    return state.processes["mount-supervisor"].pid


@dataclass
class Observed:
    """What the supervisor's helpers (its children that are not keepers) were while the
    attack ran, sampled every 50 ms."""

    #: helper pid -> its cgroups (controller -> path) each time it was seen
    helpers: dict[int, list[dict[str, str]]] = field(default_factory=dict)
    #: the most helpers seen at once in the attacker's cgroups or not charged yet
    most_at_once: int = 0

    def never_in(self, *containers: dict[str, str]) -> dict[int, dict[str, str]]:
        """Helpers seen more than once (not judged in the instant after their fork, nor
        only while exiting, when the kernel shows a task in the root cgroups) and never
        seen in the charged controllers' cgroups of any of `containers`: their last cgroups."""
        return {
            pid: {c: seen[-1][c] for c in CHARGED}
            for pid, seen in self.helpers.items()
            if len(seen) > 1
            and not any(all(s[c] == cg[c] for c in CHARGED) for s in seen for cg in containers)
        }


def watch_helpers(supervisor: int, keepers: Path, attacker: str, until: float) -> Observed:
    """Sample the supervisor's helpers until `until`; `attacker`: its cpu cgroup."""
    seen = Observed()
    own = cgroup_paths(supervisor)["cpu"]
    kept: set[int] = set()  # every keeper seen: they outlive their file by a moment
    while time.monotonic() < until:
        kept |= {int(p.name.split(".")[0]) for p in keepers.iterdir()}
        at_once = 0
        for pid in children_of(supervisor) - kept:
            try:
                cgroups = cgroup_paths(pid)
            except OSError:  # gone already
                continue
            seen.helpers.setdefault(pid, []).append(cgroups)
            at_once += cgroups["cpu"] in (own, attacker)
        seen.most_at_once = max(seen.most_at_once, at_once)
        time.sleep(0.05)
    return seen


@dataclass
class Neighbour:
    """Another tenant's privileged container: how long its mount calls and `free` take."""

    engine: EngineHandle
    container: str
    timings: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def once(self) -> None:
        start = time.monotonic()
        result = self.engine.docker(
            "exec",
            self.container,
            "sh",
            "-c",
            "mkdir -p /n && mount -t tmpfs t /n && umount /n && free | grep -c Mem:",
            check=False,
        )
        self.timings.append(time.monotonic() - start)
        if result.returncode != 0 or result.stdout.strip() != "1":
            self.failures.append(f"{result.returncode}: {result.stdout} {result.stderr}")

    def keep_trying(self, until: float) -> None:
        while time.monotonic() < until:
            self.once()
            time.sleep(0.5)


@pytest.fixture(scope="module")
def spam_mount() -> Iterator[list[str]]:
    """mountspam.c compiled once, in a directory any container may bind read-only."""
    directory = Path(tempfile.mkdtemp(prefix="eci-mountspam-", dir="/tmp"))
    directory.chmod(0o755)
    try:
        yield build_probe(directory, MOUNT_SPAM)
    finally:
        shutil.rmtree(directory)


@pytest.fixture
def spammer(engine: EngineHandle, spam_mount: list[str]) -> Iterator[str]:
    """The attacker's container: its full id."""
    spam = f"{PROBE_DIR}/{MOUNT_SPAM.stem}"
    result = engine.docker("run", "-d", *LIMITS, *spam_mount, "busybox", spam, "16")
    container = result.stdout.strip()
    yield container
    engine.docker("rm", "-f", container, check=False)


@pytest.fixture
def neighbour(engine: EngineHandle) -> Iterator[Neighbour]:
    result = engine.docker("run", "-d", "--privileged", "busybox", "sleep", "600")
    container = result.stdout.strip()
    yield Neighbour(engine, container)
    engine.docker("rm", "-f", container, check=False)


def init_pid(engine: EngineHandle, container: str) -> int:
    result = engine.docker("inspect", "--format", "{{.State.Pid}}", container, direct=True)
    return int(result.stdout)


def test_mount_helpers_are_charged_to_the_container(
    engine: EngineHandle, spammer: str, neighbour: Neighbour
) -> None:
    supervisor = supervisor_pid(engine)
    attacker = cgroup_paths(init_pid(engine, spammer))
    other = cgroup_paths(init_pid(engine, neighbour.container))
    time.sleep(2)  # the threads are running
    own_before, helpers_before = cpu_seconds(supervisor)
    attacker_before = cpu_seconds_of(attacker["cpuacct"])
    other_before = cpu_seconds_of(other["cpuacct"])
    started = time.monotonic()
    meanwhile = threading.Thread(target=neighbour.keep_trying, args=(started + WINDOW,))
    meanwhile.start()
    keepers = engine.layout.supervisor_dir / "keepers"
    seen = watch_helpers(supervisor, keepers, attacker["cpu"], started + WINDOW)
    meanwhile.join()
    elapsed = time.monotonic() - started
    own_after, helpers_after = cpu_seconds(supervisor)
    attacker_cpu = cpu_seconds_of(attacker["cpuacct"]) - attacker_before
    other_cpu = cpu_seconds_of(other["cpuacct"]) - other_before
    own, helpers = own_after - own_before, helpers_after - helpers_before
    figures = (
        f"in {elapsed:.1f} s: supervisor {own:.2f} s CPU, its helpers {helpers:.2f} s, "
        f"the attacker's cpuacct {attacker_cpu:.2f} s, the neighbour's {other_cpu:.2f} s; "
        f"{len(seen.helpers)} helpers seen, at most {seen.most_at_once} at once for the "
        f"attacker; the neighbour's calls took {max(neighbour.timings, default=0):.2f} s at most"
    )
    print(figures)
    assert sum(len(s) > 1 for s in seen.helpers.values()) > 10, figures
    uncharged = seen.never_in(attacker, other)
    assert not uncharged, (
        f"{len(uncharged)} of {len(seen.helpers)} helpers outside the attacker's "
        f"{attacker['cpu']} and the neighbour's, e.g. {next(iter(uncharged.items()))}; {figures}"
    )
    # one more: a helper of the neighbour's, the instant after its fork, is not charged yet
    assert seen.most_at_once <= MAX_HELPERS + 1, figures
    # the helpers' CPU lands in the containers', and the attacker's stays within its quota
    assert helpers <= attacker_cpu + other_cpu + 0.2, figures
    assert attacker_cpu <= QUOTA * elapsed * 1.5 + 0.2, figures
    # what the supervisor itself spends on the attack is small next to the attacker's quota
    assert own <= QUOTA * elapsed / 2, figures
    assert not neighbour.failures, neighbour.failures
    assert neighbour.timings, figures
    assert max(neighbour.timings) < PROMPT, figures


def test_a_paused_container_stalls_no_other_container(
    engine: EngineHandle, spammer: str, neighbour: Neighbour
) -> None:
    """Paused mid-attack, the container's helpers freeze with it (they are in its freezer
    cgroup): the other container's mount calls and sysinfo answers go on."""
    time.sleep(2)
    engine.docker("pause", spammer)
    try:
        neighbour.keep_trying(time.monotonic() + 5)
    finally:
        engine.docker("unpause", spammer)
    assert not neighbour.failures, neighbour.failures
    assert neighbour.timings
    assert max(neighbour.timings) < PROMPT, neighbour.timings
    after = Neighbour(engine, spammer)
    after.once()  # the unpaused container is served again
    assert not after.failures, after.failures
