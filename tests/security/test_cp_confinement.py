"""`docker cp` into a running container: the extractor is one of the container's processes
(issue 15, item 7).

The proxy extracts a docker-group user's archive inside the container, with host code (the
runtime's Python, `runtime/cp/archive.py`). Whatever an archive or the container sets up for it
to meet, that code must have no more power than the container's own processes: the same
seccomp filter, cgroups, pid and network namespaces (and user and mount), no new
privileges. The test streams an archive slowly, reads the extractor's /proc entry while it
works, and compares it with the container's own init (the control).
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import TEST_USER, EngineHandle, eventually

from eci.host.processes import children_of
from eci.runtime.confine.sysinfo import cgroup_paths

pytestmark = pytest.mark.engine

SIZE = 8 << 20
CHUNK = 1 << 20
NAMESPACES = ("pid", "net", "user", "mnt", "ipc", "uts", "cgroup")
CHARGED = ("cpu", "cpuacct", "memory", "pids")


@pytest.fixture
def container(engine: EngineHandle) -> Iterator[str]:
    result = engine.docker("run", "-d", "busybox", "sleep", "600")
    yield result.stdout.strip()
    engine.docker("rm", "-f", result.stdout.strip(), check=False)


def status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def namespaces(pid: int) -> dict[str, str]:
    return {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NAMESPACES}


def extractors(container: str) -> set[int]:
    """Host processes extracting an archive into `container` (by their command line)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--eci-extract" in argv and container.encode() in argv:
            found.add(int(entry.name))
    return found


def working_extractor(container: str) -> int | None:
    """The extractor that does the work: the one without an extractor child."""
    found = extractors(container)
    leaves = [pid for pid in found if not children_of(pid) & found]
    return leaves[0] if len(leaves) == 1 else None


def test_the_cp_extractor_is_confined_like_the_container(
    engine: EngineHandle, container: str
) -> None:
    init = int(engine.docker("inspect", "-f", "{{.State.Pid}}", container, direct=True).stdout)
    host = f"unix://{engine.layout.user_socket}"
    argv = ["runuser", "-u", TEST_USER, "--", "docker", "-H", host, "cp", "-", f"{container}:/tmp"]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as copy:
        assert copy.stdin is not None
        assert copy.stderr is not None
        member = tarfile.TarInfo("big")
        member.size = SIZE
        copy.stdin.write(member.tobuf(format=tarfile.GNU_FORMAT))
        copy.stdin.write(b"\0" * CHUNK)
        copy.stdin.flush()
        try:
            assert eventually(lambda: working_extractor(container) is not None, timeout=30)
            extractor = working_extractor(container)
            assert extractor is not None
            seen, expected = status(extractor), status(init)
            seen_ns, seen_cgroups = namespaces(extractor), cgroup_paths(extractor)
        finally:
            for _ in range(SIZE // CHUNK - 1):
                copy.stdin.write(b"\0" * CHUNK)
            copy.stdin.write(b"\0" * 1024)  # the end of the archive
            copy.stdin.close()
            errors = copy.stderr.read()
    assert copy.returncode == 0, errors
    assert seen_ns == namespaces(init)
    container_cgroups = cgroup_paths(init)
    assert {c: seen_cgroups[c] for c in CHARGED} == {c: container_cgroups[c] for c in CHARGED}
    assert seen["NoNewPrivs"] == "1", seen
    assert seen["Seccomp"] == "2", seen
    assert int(seen["Seccomp_filters"]) >= int(expected["Seccomp_filters"]) >= 1
    assert seen["Uid"].split()[:1] == expected["Uid"].split()[:1]  # the container's root
    size = engine.docker("exec", container, "stat", "-c", "%s", "/tmp/big").stdout.strip()
    assert size == str(SIZE)


def test_cp_into_a_running_container_still_works(engine: EngineHandle, container: str) -> None:
    """A small file with an owner of the archive's, as `docker cp` sends it."""
    host = f"unix://{engine.layout.user_socket}"
    argv = ["runuser", "-u", TEST_USER, "--", "docker", "-H", host, "cp", "-", f"{container}:/"]
    with subprocess.Popen(argv, stdin=subprocess.PIPE) as copy:
        assert copy.stdin is not None
        member = tarfile.TarInfo("etc/greeting")
        data = b"hello\n"
        member.size, member.uid, member.gid = len(data), 1000, 1000
        copy.stdin.write(member.tobuf(format=tarfile.GNU_FORMAT) + data.ljust(512, b"\0"))
        copy.stdin.write(b"\0" * 1024)
        copy.stdin.close()
    assert copy.returncode == 0
    shown = engine.docker("exec", container, "stat", "-c", "%u:%g %s", "/etc/greeting")
    assert shown.stdout.strip() == "1000:1000 6"
    assert not extractors(container)  # nothing left behind: it exited with the request
