"""/proc in an eci ``--privileged`` container describes the container, not the host.

The control is plain runc with no masked paths: there /proc shows the host's uptime, memory
and CPUs whatever the container's limits, and the host's keys and timers. In eci the same
files show the container's own figures (lxcfs), and the host-wide ones are masked.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.security.escape import (
    MEMORY,
    MEMORY_KB,
    host_mem_total_kb,
    host_uptime,
    in_control,
    in_eci,
    mem_total_kb,
)
from tests.support import EngineHandle

pytestmark = pytest.mark.engine

ONE_CPU = ("--cpuset-cpus", "0")


def test_uptime_is_the_containers(engine: EngineHandle) -> None:
    """The host's uptime tells a container when the host booted (and that it is shared)."""
    script = "cut -d' ' -f1 /proc/uptime"
    control = float(in_control(engine, script).stdout)
    assert control == pytest.approx(host_uptime(), abs=10)
    assert float(in_eci(engine, script).stdout) < 10


def test_free_shows_the_memory_limit(engine: EngineHandle) -> None:
    """Tools size themselves by `free`: it must show the container's limit."""
    script = "free -m | awk '/^Mem:/ { print $2 }'"
    assert int(in_control(engine, script, *MEMORY).stdout) == host_mem_total_kb() // 1024
    assert int(in_eci(engine, script, *MEMORY).stdout) == MEMORY_KB // 1024


def test_meminfo_shows_the_memory_limit(engine: EngineHandle) -> None:
    script = "cat /proc/meminfo"
    assert mem_total_kb(in_control(engine, script, *MEMORY).lines) == host_mem_total_kb()
    assert mem_total_kb(in_eci(engine, script, *MEMORY).lines) == MEMORY_KB


CPU_COUNTS = {
    "cpuinfo": "grep -c '^processor' /proc/cpuinfo",
    "stat": "grep -c '^cpu[0-9]' /proc/stat",
}


@pytest.mark.parametrize("script", CPU_COUNTS.values(), ids=CPU_COUNTS.keys())
def test_cpus_are_the_containers_cpuset(engine: EngineHandle, script: str) -> None:
    """A container limited to one CPU that sees all of them starts too many workers."""
    host_cpus = os.cpu_count()
    assert host_cpus is not None
    assert host_cpus > 1, "the check needs a host with more than one CPU"
    assert int(in_control(engine, script, *ONE_CPU).stdout) == host_cpus
    assert int(in_eci(engine, script, *ONE_CPU).stdout) == 1


MASKED = ["/proc/keys", "/proc/timer_list", "/proc/kcore", "/proc/sched_debug"]


@pytest.mark.parametrize("path", MASKED, ids=[p.removeprefix("/proc/") for p in MASKED])
def test_host_wide_proc_file_is_masked(engine: EngineHandle, path: str) -> None:
    """The host's keyrings, timers (with task names and pids), memory image and scheduler
    state. Where this kernel has no such file (kcore and sched_debug here: not built, or
    moved to debugfs) both sides must show it absent."""
    script = f"[ -e {path} ] || {{ echo absent; exit 0; }}; stat -c %F {path}; wc -c < {path}"
    control = in_control(engine, script).lines
    if Path(path).exists():
        assert control[0] == "regular empty file"  # procfs files report no size
        assert int(control[1]) > 0
        assert in_eci(engine, script).lines == ["character special file", "0"]
    else:
        assert control == ["absent"]
        assert in_eci(engine, script).lines in (["absent"], ["character special file", "0"])
