"""The exclusive range allocator on a scratch directory."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from eci.errors import RangePoolExhausted, RuntimeShimError
from eci.runtime.ranges import RANGE_SIZE, STALE_GRACE_SECONDS, Pool, RangeStore

SUBUID = "alice:100000:65536\neci:100000:268435456\neci:900000000:65536\n"


def never_live(owner: str) -> bool:
    return False


def always_live(owner: str) -> bool:
    return True


@pytest.mark.parametrize(
    ("text", "user", "expected"),
    [
        (SUBUID, "eci", Pool(100000, 268435456)),
        (SUBUID, "alice", Pool(100000, 65536)),
    ],
    ids=["first-entry-wins", "other-user"],
)
def test_pool_from_subid(text: str, user: str, expected: Pool) -> None:
    assert Pool.from_subid(text, user) == expected
    assert Pool.from_subid(SUBUID, "eci").slots == 4096


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("bob:1:65536\n", "no valid entry for user 'eci'"),
        ("eci:x:65536\n", "no valid entry"),
        ("eci:100000:1000\n", "too small"),
    ],
    ids=["missing", "malformed", "too-small"],
)
def test_bad_pool_is_a_clear_error(text: str, match: str) -> None:
    with pytest.raises(RuntimeShimError, match=match):
        Pool.from_subid(text, "eci")


def test_allocate_distinct_reuse_and_release(tmp_path: Path) -> None:
    store = RangeStore(tmp_path, Pool(100000, 4 * RANGE_SIZE))
    a = store.allocate("/r/a", never_live)
    b = store.allocate("/r/b", never_live)
    assert (a, b) == (100000, 165536)
    assert store.allocate("/r/a", never_live) == a  # same owner, same range
    assert store.release("/r/a") is True
    assert store.release("/r/a") is False
    assert store.allocate("/r/c", never_live) == a  # lowest free slot again


def test_exhaustion_is_refused_never_shared(tmp_path: Path) -> None:
    store = RangeStore(tmp_path, Pool(100000, 2 * RANGE_SIZE))
    store.allocate("/r/a", always_live)
    store.allocate("/r/b", always_live)
    with pytest.raises(RangePoolExhausted, match="all 2 ranges"):
        store.allocate("/r/c", always_live)


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_stale_slots_are_reclaimed_only_when_old_and_dead(tmp_path: Path) -> None:
    store = RangeStore(tmp_path, Pool(100000, 3 * RANGE_SIZE))
    store.allocate("/r/old-dead", never_live)
    store.allocate("/r/old-live", never_live)
    store.allocate("/r/young-dead", never_live)
    _age(tmp_path / "slot-0", STALE_GRACE_SECONDS + 5)
    _age(tmp_path / "slot-1", STALE_GRACE_SECONDS + 5)
    reclaimed = store.reclaim_stale(lambda owner: owner == "/r/old-live")
    assert reclaimed == ["/r/old-dead"]
    assert sorted(store.allocations().values()) == ["/r/old-live", "/r/young-dead"]


def test_full_pool_reclaims_a_stale_slot(tmp_path: Path) -> None:
    store = RangeStore(tmp_path, Pool(100000, RANGE_SIZE))
    store.allocate("/r/crashed", never_live)
    _age(tmp_path / "slot-0", STALE_GRACE_SECONDS + 5)
    assert store.allocate("/r/new", never_live) == 100000
    assert store.allocations() == {0: "/r/new"}


def _allocate_many(directory: str, worker: int, queue: multiprocessing.Queue[int]) -> None:
    store = RangeStore(directory, Pool(100000, 4096 * RANGE_SIZE))
    for i in range(50):
        queue.put(store.allocate(f"/r/{worker}-{i}", always_live))


def test_concurrent_allocators_never_share_a_range(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[int] = ctx.Queue()
    workers = [ctx.Process(target=_allocate_many, args=(str(tmp_path), w, queue)) for w in range(8)]
    for w in workers:
        w.start()
    bases = [queue.get(timeout=60) for _ in range(8 * 50)]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert len(set(bases)) == 400


def test_4096_live_ranges(tmp_path: Path) -> None:
    store = RangeStore(tmp_path, Pool(100000, 4096 * RANGE_SIZE))
    assert store.allocations() == {}
    for slot in range(4096):  # claim directly: allocate() rescans, O(n) each
        assert store._claim(slot, f"/r/{slot}")
    assert len(store.allocations()) == 4096
    with pytest.raises(RangePoolExhausted):
        store.allocate("/r/one-more", always_live)
