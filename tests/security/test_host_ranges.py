"""Issue 15, finding 2 (and the per-user cap of item 7): id ranges on the host.

A host process that holds an id of a container's range — here started by the test as root,
standing in for what finding 1 allowed (a setuid binary of the container run from the host) —
outlived its container, and the next container was handed the same range (lowest free first):
that process then owned the next tenant's files. Wanted: the holder is found and killed, and
audited, before its range is handed out again; freed ranges are reused least recently used.

A docker-group user also could take every range of the pool: a per-user cap refuses the
create that would go past it, with a clear error, while root is not capped.
"""

from __future__ import annotations

import contextlib
import json
import pwd
import subprocess
import sys
from collections.abc import Iterator

import pytest
from tests.support import (
    ECI_ON_LOCKED,
    RANGES_DIR,
    SECOND_USER,
    TEST_USER,
    EngineHandle,
    eventually,
    settings_applied,
    uid_map,
)

from eci.runtime.shim.config import host_pool

pytestmark = pytest.mark.engine

#: the holder's program: take the ids given, then wait (the parent kills it if eci does not)
HOLD = """
import os, sys, time
ruid, euid, suid, gid = (int(a) for a in sys.argv[1:5])
os.setgroups([gid])
os.setresgid(gid, gid, gid)
os.setresuid(ruid, euid, suid)
print("holding", flush=True)
time.sleep(600)
"""
NOBODY = 65534


def _start(engine: EngineHandle, name: str, user: str | None = TEST_USER) -> int:
    """A detached container of `user`: the base of its id range."""
    engine.docker("run", "-d", "--name", name, "busybox", "sleep", "600", user=user)
    return uid_map(engine.docker("exec", name, "cat", "/proc/self/uid_map", user=user).stdout)[1]


def _started(engine: EngineHandle, name: str) -> bool:
    """`docker run -d` of a container of the test user; a refused one is removed again."""
    if engine.docker(
        "run", "-d", "--name", name, "busybox", "sleep", "600", check=False
    ).returncode:
        _remove(engine, name)
        return False
    return True


def _remove(engine: EngineHandle, *names: str) -> None:
    engine.docker("rm", "-f", *names, user=None, check=False)


def _holder_ids(base: int) -> dict[str, tuple[int, int, int, int]]:
    """Holder name -> (real, effective, saved uid; gid)."""
    return {
        "container-root": (base, base, base, base),
        "saved-uid-only": (NOBODY, NOBODY, base + 1000, base + 1000),
    }


@contextlib.contextmanager
def _holders(base: int) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Two host processes holding ids of the range at `base`: one as the container's root
    (uid base), one that shows nobody everywhere but in its saved set-user-id and its group
    list (`stat /proc/<pid>` says nobody, or root: only /proc/<pid>/status tells)."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-I", "-c", HOLD, *(str(i) for i in args)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, args in _holder_ids(base).items()
    }
    try:
        for proc in procs.values():
            assert proc.stdout is not None
            assert proc.stdout.readline() == "holding\n"
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _audited(engine: EngineHandle, pid: int) -> list[dict[str, object]]:
    try:
        lines = engine.layout.audit_log.read_text().splitlines()
    except FileNotFoundError:
        return []
    records = [json.loads(line) for line in lines]
    return [r for r in records if r.get("pid") == pid and r.get("rule") == "id-range-holder"]


def test_a_holder_of_a_freed_range_is_killed_before_the_range_is_reused(
    engine: EngineHandle,
) -> None:
    first, second = "eci-ranges-first", "eci-ranges-second"
    _remove(engine, first, second)
    try:
        base = _start(engine, first)
        with _holders(base) as procs:
            _remove(engine, first)
            # the released range is freed once the cleanup (not waited for by `rm`) is done
            eventually(lambda: all(p.poll() is not None for p in procs.values()))
            next_base = _start(engine, second, user=SECOND_USER)
            alive = {name: p.pid for name, p in procs.items() if p.poll() is None}
            assert alive == {}, (
                f"holders {alive} of range {base} outlived its container; "
                f"the next container got range {next_base}"
            )
            assert next_base != base, "a freed range was handed out again first (not LRU)"
            for name, proc in procs.items():
                (record,) = _audited(engine, proc.pid)
                assert record["uid"] == _holder_ids(base)[name][0]  # its real uid
                assert f"range {base}-{base + 65535}" in str(record["reason"]), record
                assert "killed" in str(record["reason"]), (name, record)
    finally:
        _remove(engine, first, second)


def test_a_process_taking_a_free_ranges_ids_later_is_killed(engine: EngineHandle) -> None:
    """The ids of a range already freed, taken afterwards (as by a setuid file the container
    left in a bind): the background sweep of free ranges kills it before long."""
    name = "eci-ranges-later"
    _remove(engine, name)
    try:
        base = _start(engine, name)
        _remove(engine, name)
        slot = RANGES_DIR / f"slot-{(base - host_pool().start) // 65536}"
        assert eventually(lambda: not slot.exists())  # released, swept, free
        with _holders(base) as procs:
            gone = eventually(lambda: all(p.poll() is not None for p in procs.values()), timeout=30)
            assert gone, f"holders of free range {base} still run: {procs}"
            for proc in procs.values():
                (record,) = _audited(engine, proc.pid)
                assert "background sweep of free ranges" in str(record["reason"]), record
    finally:
        _remove(engine, name)


def test_freed_ranges_are_reused_least_recently_used(engine: EngineHandle) -> None:
    names = [f"eci-ranges-lru-{n}" for n in range(3)]
    _remove(engine, *names)
    try:
        freed = []
        for name in names[:2]:
            freed.append(_start(engine, name))
            _remove(engine, name)
        again = _start(engine, names[2])
        assert again not in freed, f"range {again} was freed a moment ago: {freed}"
    finally:
        _remove(engine, *names)


CAP = 2
CAPPED = {
    "configurationFileVersion": 2,
    "enhancedContainerIsolation": {
        **ECI_ON_LOCKED["enhancedContainerIsolation"],  # type: ignore[dict-item]
        "idRangesPerUser": CAP,
    },
}


def test_one_user_cannot_take_more_ranges_than_the_cap(engine: EngineHandle) -> None:
    mine = [f"eci-ranges-cap-{n}" for n in range(CAP + 1)]
    roots = [f"eci-ranges-cap-root-{n}" for n in range(CAP + 1)]
    _remove(engine, *mine, *roots)
    try:
        with settings_applied(engine, CAPPED):
            for name in mine[:CAP]:
                _start(engine, name)
            refused = engine.docker(
                "run", "-d", "--name", mine[CAP], "busybox", "sleep", "600", check=False
            )
            assert refused.returncode != 0
            uid = pwd.getpwnam(TEST_USER).pw_uid
            assert (
                f"enhanced container isolation: user {uid} already holds {CAP} id ranges"
                in refused.stderr
            ), refused.stderr
            # another user, and root (no requester: not capped), still get theirs
            _start(engine, roots[0], user=SECOND_USER)
            for name in roots[1:]:
                _start(engine, name, user=None)
            # a removed container gives its range back to its user
            _remove(engine, mine[0], mine[CAP])
            assert eventually(lambda: _started(engine, mine[CAP]))
    finally:
        _remove(engine, *mine, *roots)
