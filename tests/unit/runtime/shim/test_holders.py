"""`holders` on a scripted /proc tree: which tasks hold ids of a range, and the sweep's
fail-closed end (a holder that cannot be killed is returned, never forgotten)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eci.runtime.shim import holders

BASE = 165536
PICK = holders.ids_between(BASE, 65536)


def status(
    uids: str = "1000 1000 1000 1000",
    gids: str = "1000 1000 1000 1000",
    groups: str = "",
    state: str = "S (sleeping)",
    name: str = "sleep",
) -> str:
    return (
        f"Name:\t{name}\nUmask:\t0022\nState:\t{state}\nTgid:\t1\nPid:\t1\n"
        f"Uid:\t{uids.replace(' ', chr(9))}\nGid:\t{gids.replace(' ', chr(9))}\n"
        f"FDSize:\t64\nGroups:\t{groups}\nNStgid:\t1\n"
    )


def fake_proc(root: Path, tasks: dict[tuple[int, int], str]) -> str:
    """A /proc with `tasks` ((pid, tid) -> status text) and some entries that are not tasks."""
    for (pid, tid), text in tasks.items():
        task = root / str(pid) / "task" / str(tid)
        task.mkdir(parents=True)
        (task / "status").write_text(text)
    (root / "self").mkdir(exist_ok=True)
    (root / "meminfo").write_text("MemTotal: 1 kB\n")
    (root / "77").mkdir()  # a process gone while listed: no task dir
    return str(root)


@pytest.mark.parametrize(
    ("text", "held"),
    [
        (status(), False),
        (status(uids=f"{BASE} {BASE} {BASE} {BASE}"), True),
        (status(uids=f"1000 {BASE + 5} 1000 1000"), True),
        (status(uids=f"65534 65534 {BASE + 1000} 65534"), True),
        (status(uids=f"1000 1000 1000 {BASE + 65535}"), True),
        (status(gids=f"{BASE} 1000 1000 1000"), True),
        (status(gids=f"1000 1000 {BASE + 7} 1000"), True),
        (status(groups=f"4 24 {BASE + 100}"), True),
        (status(uids=f"{BASE + 65536} 1 1 1", gids=f"{BASE - 1} 1 1 1"), False),
        (status(uids=f"{BASE} {BASE} {BASE} {BASE}", state="Z (zombie)"), False),
        (status(uids=f"{BASE} {BASE} {BASE} {BASE}", state="X (dead)"), False),
    ],
    ids=[
        "unrelated",
        "container-root",
        "effective-only",
        "saved-only",
        "fs-only",
        "real-gid",
        "saved-gid",
        "supplementary-group",
        "just-outside",
        "zombie",
        "dead",
    ],
)
def test_which_tasks_hold_a_range(text: str, held: bool) -> None:
    holder = holders.holding(text, 10, 11, PICK)
    assert (holder is not None) is held
    if holder is not None:
        assert (holder.pid, holder.tid, holder.comm) == (10, 11, "sleep")


def test_parse_status_reads_every_id() -> None:
    name, state, uids, gids, groups = holders.parse_status(
        status(uids="1 2 3 4", gids="5 6 7 8", groups="9 10")
    )
    assert (name, state, uids, gids, groups) == ("sleep", "S", (1, 2, 3, 4), (5, 6, 7, 8), (9, 10))


def test_find_reads_every_thread(tmp_path: Path) -> None:
    """Threads have credentials of their own: a holder thread in a process whose main
    thread holds nothing is found, and so is a process of any pid namespace (the host's
    /proc lists them all)."""
    proc = fake_proc(
        tmp_path,
        {
            (100, 100): status(),
            (100, 101): status(uids=f"1000 {BASE} 1000 1000"),
            (200, 200): status(groups=str(BASE + 3)),
            (300, 300): status(),
        },
    )
    found = holders.find(PICK, proc)
    assert sorted((h.pid, h.tid) for h in found) == [(100, 101), (200, 200)]
    assert found[0].describe().startswith("uids ")


def test_a_holder_that_cannot_be_killed_is_returned(tmp_path: Path) -> None:
    """A pid that is not ours to signal here (no such process): the sweep gives up after
    its rounds and returns the holder, so the caller keeps the range claimed."""
    pid = 2**22 - 3  # above any pid this test machine hands out
    assert not os.path.exists(f"/proc/{pid}")
    proc = fake_proc(tmp_path, {(pid, pid): status(uids=f"{BASE} {BASE} {BASE} {BASE}")})
    killed: list[holders.Holder] = []
    left = holders.sweep(PICK, killed.append, proc, rounds=2)
    assert [h.pid for h in left] == [pid]
    assert killed == []


def test_a_clean_sweep_returns_nothing(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {(100, 100): status()})
    killed: list[holders.Holder] = []
    assert holders.sweep(PICK, killed.append, proc) == []
    assert killed == []


#: a range far above eci's pool, so no real container's ids are ever picked
FAR = 4_000_000_000


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="setresuid to another uid needs root")
def test_a_real_holder_is_killed_and_reported() -> None:
    """A process whose only id of the range is its saved set-user-id (its effective ids, and
    so `stat /proc/<pid>`, say nobody) is found in the real /proc and killed."""
    import subprocess
    import sys

    # the ids are taken after exec: an exec resets the saved set-user-id to the effective one
    hold = (
        "import os, time; os.setresgid(65534, 65534, 65534); "
        f"os.setresuid(65534, 65534, {FAR + 12}); print(flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-I", "-c", hold], stdout=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline() == b"\n"
    try:
        killed: list[holders.Holder] = []
        left = holders.sweep(holders.ids_between(FAR, 65536), killed.append)
        assert left == []
        assert [h.pid for h in killed] == [child.pid]
        assert killed[0].uids == (65534, 65534, FAR + 12, 65534)
        assert child.wait(timeout=10) == -9
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
