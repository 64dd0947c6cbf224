"""`Pool.from_subid` on in-memory text and `RangeStore` on a scratch directory.

Hypothesis invariant (test_from_subid_parses_or_refuses): for any subuid text, `from_subid`
returns a Pool with start > 0 and at least one 65536-id slot, or raises RuntimeShimError;
never anything else.

Store invariants checked throughout: two owners never hold the same slot, including under
concurrent allocators in separate processes; a freed range is handed out again only after
every never-used and earlier-freed one (least recently used first), and only once its sweep
found no holder.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eci.errors import RangeCapReached, RangePoolExhausted, RuntimeShimError
from eci.runtime.shim.ranges import RANGE_SIZE, STALE_GRACE_SECONDS, Pool, RangeStore, default_cap

START = 100000


def live(owner: str) -> bool:
    return True


def dead(owner: str) -> bool:
    return False


def owner(n: int | str) -> str:
    """Owners look like the shim's: runc's state directory of the container."""
    return f"/run/eci/runc/moby/{n}"


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


# --- Pool.from_subid ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("eci:100000:65536\n", Pool(100000, 65536)),
        ("eci:100000:268435456\n", Pool(100000, 268435456)),
        ("eci:100000:65536", Pool(100000, 65536)),
        ("eci:100000:65536\neci:900000:131072\n", Pool(100000, 65536)),
        ("alice:100000:65536\neci:165536:131072\nbob:296608:65536\n", Pool(165536, 131072)),
        ("eci2:100000:65536\nxeci:200000:65536\neci:300000:65536\n", Pool(300000, 65536)),
        ("garbage\n\n# comment\nalice::\neci:100000:65536\n", Pool(100000, 65536)),
        ("  eci:100000:65536  \r\n", Pool(100000, 65536)),
        ("eci:100000:200000\n", Pool(100000, 200000)),
    ],
    ids=[
        "valid",
        "debian-default-size",
        "no-trailing-newline",
        "first-entry-wins",
        "other-users-ignored",
        "name-prefix-suffix-ignored",
        "malformed-other-lines-ignored",
        "whitespace-crlf",
        "count-not-multiple",
    ],
)
def test_from_subid_valid(text: str, expected: Pool) -> None:
    assert Pool.from_subid(text, "eci") == expected


@pytest.mark.parametrize(
    ("count", "slots"),
    [(65536, 1), (131071, 1), (131072, 2), (268435456, 4096)],
    ids=["one", "just-under-two", "two", "debian-default"],
)
def test_pool_slots_and_bases(count: int, slots: int) -> None:
    pool = Pool(START, count)
    assert pool.slots == slots
    assert [pool.base(s) for s in range(min(slots, 3))] == [
        START + s * RANGE_SIZE for s in range(min(slots, 3))
    ]


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("alice:100000:65536\n", ["/etc/subuid", "no valid entry", "'eci'", "make setup"]),
        ("", ["/etc/subuid", "no valid entry", "'eci'"]),
        ("eci:abc:65536\n", ["no valid entry", "'eci'"]),
        ("eci:100000:lots\n", ["no valid entry", "'eci'"]),
        ("eci:100000\n", ["no valid entry", "'eci'"]),
        ("eci:100000:65535\n", ["/etc/subuid", "'eci:100000:65535'", "too small", "65536"]),
        ("eci:100000:1000\nbob:1:65536\n", ["'eci:100000:1000'", "too small", "65536"]),
        ("eci:100000:0\n", ["'eci:100000:0'", "too small"]),
        ("eci:100000:-65536\n", ["'eci:100000:-65536'", "too small"]),
        ("eci:0:65536\n", ["'eci:0:65536'", "above 0"]),
        ("eci:-5:65536\n", ["'eci:-5:65536'", "above 0"]),
    ],
    ids=[
        "missing-user",
        "empty-file",
        "malformed-start",
        "malformed-count",
        "two-fields",
        "count-one-short",
        "count-tiny",
        "count-zero",
        "count-negative",
        "start-zero",
        "start-negative",
    ],
)
def test_from_subid_refused(text: str, fragments: list[str]) -> None:
    with pytest.raises(RuntimeShimError) as info:
        Pool.from_subid(text, "eci")
    for fragment in fragments:
        assert fragment in str(info.value), fragment


def test_from_subid_names_the_origin_file() -> None:
    with pytest.raises(RuntimeShimError, match=r"^/etc/subgid"):
        Pool.from_subid("eci:1:10\n", "eci", "/etc/subgid")
    with pytest.raises(RuntimeShimError, match=r"^/etc/subgid has no valid entry for user 'ops'"):
        Pool.from_subid("eci:100000:65536\n", "ops", "/etc/subgid")


subid_lines = st.one_of(
    st.text(alphabet="eci:0123456789-x \t", max_size=30),
    st.builds(
        lambda u, s, c: f"{u}:{s}:{c}",
        st.sampled_from(["eci", "alice", "ec", "eci "]),
        st.integers(-(2**33), 2**33),
        st.integers(-(2**33), 2**33),
    ),
    st.text(max_size=20),
)


@given(lines=st.lists(subid_lines, max_size=5))
def test_from_subid_parses_or_refuses(lines: list[str]) -> None:
    text = "\n".join(lines)
    try:
        pool = Pool.from_subid(text, "eci")
    except RuntimeShimError as exc:
        refusal: str | None = str(exc)
    else:
        refusal = None
    if refusal is not None:
        assert "/etc/subuid" in refusal
        return
    assert pool.start > 0
    assert pool.slots >= 1
    assert pool.count >= RANGE_SIZE


# --- RangeStore: allocate / release ---


@pytest.fixture
def store(tmp_path: Path) -> RangeStore:
    return RangeStore(tmp_path / "ranges", Pool(START, 4 * RANGE_SIZE))


def test_first_allocation_is_the_pool_start(store: RangeStore) -> None:
    assert store.allocate(owner("a"), live) == START
    assert store.allocations() == {0: owner("a")}


def test_second_allocation_does_not_overlap(store: RangeStore) -> None:
    a = store.allocate(owner("a"), live)
    b = store.allocate(owner("b"), live)
    assert a != b
    assert abs(a - b) >= RANGE_SIZE  # [a, a+65536) and [b, b+65536) are disjoint
    assert (b - START) % RANGE_SIZE == 0
    assert START <= b <= START + 3 * RANGE_SIZE
    assert store.allocations() == {0: owner("a"), 1: owner("b")}


def test_same_owner_gets_its_range_back(store: RangeStore) -> None:
    store.allocate(owner("a"), live)
    b = store.allocate(owner("b"), live)
    assert store.allocate(owner("b"), live) == b
    assert store.allocate(owner("b"), dead) == b
    assert store.slot_of(owner("b")) == 1
    assert len(store.allocations()) == 2


def test_release_frees_the_slot_for_reuse(store: RangeStore) -> None:
    a = store.allocate(owner("a"), live)
    b = store.allocate(owner("b"), live)
    c = store.allocate(owner("c"), live)
    assert store.release(owner("b")) is True
    assert store.slot_of(owner("b")) is None
    assert store.allocations() == {0: owner("a"), 2: owner("c")}
    d = store.allocate(owner("d"), live)
    assert d == START + 3 * RANGE_SIZE  # the never-used range before the one just freed
    assert store.allocate(owner("e"), live) == b
    assert {a, b, c, d} == {store.pool.base(s) for s in store.allocations()}


@pytest.mark.parametrize(
    ("held", "release", "expected"),
    [
        ([], "a", False),
        (["a"], "b", False),
        (["a"], "a", True),
        (["a", "b"], "/run/eci/runc/moby", False),
    ],
    ids=["empty-store", "other-owner", "own", "prefix-of-owner"],
)
def test_release_result(store: RangeStore, held: list[str], release: str, expected: bool) -> None:
    for name in held:
        store.allocate(owner(name), live)
    target = release if release.startswith("/") else owner(release)
    assert store.release(target) is expected
    assert store.release(target) is False  # nothing left to release
    assert len(store.allocations()) == len(held) - (1 if expected else 0)


def test_directory_is_created_private(tmp_path: Path) -> None:
    directory = tmp_path / "var" / "lib" / "eci" / "ranges"
    store = RangeStore(directory, Pool(START, RANGE_SIZE))
    assert store.allocations() == {}  # missing directory: nothing allocated
    store.allocate(owner("a"), live)
    assert directory.is_dir()
    assert directory.stat().st_mode & 0o077 == 0


def test_store_reads_its_slot_files_only(store: RangeStore) -> None:
    store.allocate(owner("a"), live)
    directory = Path(store.directory)
    (directory / "README").write_text("x")
    (directory / "slot-x").write_text(owner("junk"))
    (directory / ".claim-1-3").write_text(owner("half"))
    assert store.allocations() == {0: owner("a")}
    assert store.allocate(owner("b"), live) == START + RANGE_SIZE


def test_no_claim_files_left_behind(store: RangeStore) -> None:
    store.allocate(owner("a"), live)
    store.allocate(owner("b"), live)
    store.release(owner("a"))
    store.allocate(owner("c"), live)
    names = os.listdir(store.directory)
    assert sorted(n for n in names if n.startswith("slot-")) == ["slot-1", "slot-2"]
    assert [n for n in names if n.startswith(".")] == []
    assert Path(store.directory, "slot-2").read_text() == owner("c")


def test_two_stores_on_one_directory_share_allocations(tmp_path: Path) -> None:
    """Every engine on the host uses one directory: a second store sees the first's slots."""
    pool = Pool(START, 4 * RANGE_SIZE)
    first = RangeStore(tmp_path, pool)
    second = RangeStore(str(tmp_path), pool)
    a = first.allocate(owner("a"), live)
    b = second.allocate("/run/other-engine/runc/b", live)
    assert a != b
    assert second.allocate(owner("a"), live) == a


# --- exhaustion and stale reclaim ---


def small_store(tmp_path: Path) -> RangeStore:
    return RangeStore(tmp_path, Pool(START, 2 * RANGE_SIZE))


def test_exhaustion_raises_with_counts(tmp_path: Path) -> None:
    store = small_store(tmp_path)
    store.allocate(owner("a"), live)
    store.allocate(owner("b"), live)
    with pytest.raises(RangePoolExhausted) as info:
        store.allocate(owner("c"), live)
    message = str(info.value)
    assert "all 2 ranges" in message
    assert f"{START}-{START + 2 * RANGE_SIZE - 1}" in message
    assert "/etc/subuid" in message
    assert isinstance(info.value, RuntimeShimError)
    assert store.allocations() == {0: owner("a"), 1: owner("b")}  # nothing taken over


@pytest.mark.parametrize(
    ("old", "is_live", "reclaimed"),
    [
        (True, dead, True),
        (False, dead, False),
        (True, live, False),
        (False, live, False),
    ],
    ids=["old-dead-reclaimed", "young-dead-kept", "old-live-kept", "young-live-kept"],
)
def test_reclaim_stale_one_slot(
    tmp_path: Path, old: bool, is_live: Callable[[str], bool], reclaimed: bool
) -> None:
    store = small_store(tmp_path)
    store.allocate(owner("a"), live)
    if old:
        age(tmp_path / "slot-0", STALE_GRACE_SECONDS + 30)
    assert store.reclaim_stale(is_live) == ([owner("a")] if reclaimed else [])
    assert store.allocations() == ({} if reclaimed else {0: owner("a")})


def test_reclaim_stale_asks_about_each_owner(tmp_path: Path) -> None:
    store = RangeStore(tmp_path, Pool(START, 4 * RANGE_SIZE))
    for name in ("old-dead", "old-live", "young-dead", "old-dead-2"):
        store.allocate(owner(name), live)
    for slot in (0, 1, 3):
        age(tmp_path / f"slot-{slot}", STALE_GRACE_SECONDS * 10)
    asked: list[str] = []

    def is_live(who: str) -> bool:
        asked.append(who)
        return who == owner("old-live")

    assert sorted(store.reclaim_stale(is_live)) == [owner("old-dead"), owner("old-dead-2")]
    assert store.allocations() == {1: owner("old-live"), 2: owner("young-dead")}
    assert owner("old-live") in asked


@pytest.mark.parametrize(
    ("seconds_old", "grace", "reclaimed"),
    [(0, 0.0, True), (10, 5.0, True), (10, 60.0, False)],
    ids=["zero-grace", "older-than-grace", "younger-than-grace"],
)
def test_reclaim_stale_grace_argument(
    tmp_path: Path, seconds_old: float, grace: float, reclaimed: bool
) -> None:
    store = small_store(tmp_path)
    store.allocate(owner("a"), live)
    age(tmp_path / "slot-0", seconds_old)
    assert store.reclaim_stale(dead, grace=grace) == ([owner("a")] if reclaimed else [])


@pytest.mark.parametrize(
    ("stale_seconds", "is_live", "gets"),
    [
        (STALE_GRACE_SECONDS + 30, dead, 1),
        (STALE_GRACE_SECONDS / 2, dead, None),
        (STALE_GRACE_SECONDS + 30, live, None),
    ],
    ids=["stale-slot-reclaimed", "young-slot-not-reclaimed", "live-slot-not-reclaimed"],
)
def test_full_pool_allocation_reclaims_only_stale(
    tmp_path: Path, stale_seconds: float, is_live: Callable[[str], bool], gets: int | None
) -> None:
    store = small_store(tmp_path)
    store.allocate(owner("a"), live)
    store.allocate(owner("crashed"), live)
    age(tmp_path / "slot-1", stale_seconds)

    def liveness(who: str) -> bool:
        return who == owner("a") or is_live(who)

    if gets is None:
        with pytest.raises(RangePoolExhausted):
            store.allocate(owner("new"), liveness)
        assert store.allocations() == {0: owner("a"), 1: owner("crashed")}
    else:
        assert store.allocate(owner("new"), liveness) == store.pool.base(gets)
        assert store.allocations() == {0: owner("a"), 1: owner("new")}


def test_reclaim_does_not_delete_a_slot_claimed_meanwhile(tmp_path: Path) -> None:
    """Two shims reclaim the same stale slot; the first re-claims it for its container before
    the second, which saw the old file, unlinks `slot-0`. The second must not remove the
    first's fresh claim, or two live containers end up sharing one id range."""
    pool = Pool(START, RANGE_SIZE)
    RangeStore(tmp_path, pool).allocate(owner("crashed"), live)
    age(tmp_path / "slot-0", STALE_GRACE_SECONDS + 30)
    other_shim = RangeStore(tmp_path, pool)
    raced = []

    def is_live(who: str) -> bool:
        if who == owner("crashed") and not raced:  # the other shim runs in this window
            raced.append(other_shim.allocate(owner("first"), dead))
        return False

    RangeStore(tmp_path, pool).reclaim_stale(is_live)
    assert raced == [START]
    assert RangeStore(tmp_path, pool).allocations() == {0: owner("first")}


# --- concurrency and scale ---


def _allocate_batch(directory: str, slots: int, worker: int, results: Any) -> None:
    try:
        store = RangeStore(directory, Pool(START, slots * RANGE_SIZE))
        bases = [
            (owner(f"w{worker}-{i}"), store.allocate(owner(f"w{worker}-{i}"), live))
            for i in range(50)
        ]
        results.put((worker, bases))
    except BaseException as exc:  # reported to the parent, which fails the test
        results.put((worker, repr(exc)))


@pytest.mark.parametrize("slots", [4096, 400], ids=["roomy-pool", "exact-fit-pool"])
def test_concurrent_allocators_never_share_a_slot(tmp_path: Path, slots: int) -> None:
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_allocate_batch, args=(str(tmp_path), slots, w, results))
        for w in range(8)
    ]
    for process in workers:
        process.start()
    got = dict(results.get(timeout=120) for _ in workers)
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    failures = {w: r for w, r in got.items() if isinstance(r, str)}
    assert failures == {}
    pairs = [pair for batch in got.values() for pair in batch]
    bases = [base for _, base in pairs]
    assert len(pairs) == 400
    assert len(set(bases)) == 400  # all distinct: no slot shared
    assert all(
        (b - START) % RANGE_SIZE == 0 and START <= b < START + slots * RANGE_SIZE for b in bases
    )
    store = RangeStore(tmp_path, Pool(START, slots * RANGE_SIZE))
    on_disk = {store.pool.base(slot): who for slot, who in store.allocations().items()}
    assert on_disk == {base: who for who, base in pairs}  # what each process was told is held
    assert [n for n in os.listdir(tmp_path) if n.startswith(".claim-")] == []


def test_full_4096_slot_pool(tmp_path: Path) -> None:
    """4096 ranges (Debian's default 268435456-id entry): all distinct, the 4097th refused.

    4080 slots are written in the on-disk layout every store reads (`slot-<n>` holding its
    owner, as an older eci leaves them), leaving 16 holes spread over the pool: the first
    allocation builds the queue from what is unclaimed, in order."""
    pool = Pool(START, 4096 * RANGE_SIZE)
    store = RangeStore(tmp_path, pool)
    holes = set(range(0, 4096, 256))
    for slot in set(range(4096)) - holes:
        (tmp_path / f"slot-{slot}").write_text(owner(f"pre-{slot}"))
    held = store.allocations()
    assert len(held) == 4096 - 16
    free = sorted(pool.base(s) for s in range(4096) if s not in held)
    got = [store.allocate(owner(f"new-{i}"), live) for i in range(16)]
    assert got == free  # lowest free slot first, each hole filled once
    allocations = store.allocations()
    assert len(allocations) == 4096
    assert len(set(allocations.values())) == 4096
    assert {pool.base(s) for s in allocations} == {START + s * RANGE_SIZE for s in range(4096)}
    with pytest.raises(RangePoolExhausted, match="all 4096 ranges"):
        store.allocate(owner("one-more"), live)
    assert store.slot_of(owner("one-more")) is None
    assert store.release(owner("new-15")) is True
    assert store.allocate(owner("one-more"), live) == free[-1]


# --- least recently used, sweeps, coexistence ---


class FakeSweeper:
    """Records what it is asked to sweep; `dirty` slots keep a holder (cannot be killed)."""

    def __init__(self, dirty: set[int] | None = None) -> None:
        self.dirty = dirty or set()
        self.calls: list[set[int]] = []
        self.free_when_asked: dict[int, bool] = {}

    def __call__(self, pool: Pool, slots: set[int], still_free: Callable[[int], bool]) -> set[int]:
        self.calls.append(set(slots))
        self.free_when_asked.update({slot: still_free(slot) for slot in slots})
        return slots & self.dirty


def swept_store(tmp_path: Path, slots: int, sweeper: FakeSweeper) -> RangeStore:
    return RangeStore(tmp_path, Pool(START, slots * RANGE_SIZE), sweeper)


def test_freed_ranges_are_reused_least_recently_used_first(store: RangeStore) -> None:
    slots = {n: store.pool.slot_of_id(store.allocate(owner(n), live)) for n in "abcd"}
    for name in "bda":
        store.release(owner(name))
    got = [store.pool.slot_of_id(store.allocate(owner(f"new-{n}"), live)) for n in range(3)]
    assert got == [slots["b"], slots["d"], slots["a"]]


def test_never_used_ranges_come_before_freed_ones(tmp_path: Path) -> None:
    store = RangeStore(tmp_path, Pool(START, 8 * RANGE_SIZE))
    first = store.allocate(owner("a"), live)
    store.release(owner("a"))
    got = [store.allocate(owner(f"n{i}"), live) for i in range(7)]
    assert first not in got
    assert store.allocate(owner("last"), live) == first


def test_release_sweeps_the_range_before_it_is_free_again(tmp_path: Path) -> None:
    sweeper = FakeSweeper()
    store = swept_store(tmp_path, 4, sweeper)
    store.allocate(owner("a"), live)  # the first allocation builds the queue: one sweep
    assert sweeper.calls == [{0, 1, 2, 3}]
    assert store.release(owner("a")) is True
    assert sweeper.calls[-1] == {0}
    assert sweeper.free_when_asked[0] is True  # released: free for the sweep's kills
    assert store.allocations() == {}


def test_a_range_whose_holder_survives_is_never_handed_out(tmp_path: Path) -> None:
    sweeper = FakeSweeper()
    store = swept_store(tmp_path, 1, sweeper)
    store.allocate(owner("a"), live)
    sweeper.dirty = {0}
    assert store.release(owner("a")) is True
    assert store.allocations() == {0: "released:" + owner("a")}  # still claimed
    assert store.slot_of(owner("a")) is None
    with pytest.raises(RangePoolExhausted, match="could not be killed"):
        store.allocate(owner("b"), dead)  # young: not stale yet
    age(tmp_path / "slot-0", STALE_GRACE_SECONDS + 30)
    with pytest.raises(RangePoolExhausted):
        store.allocate(owner("b"), dead)  # stale, swept again: the holder is still there
    assert store.allocations() == {0: "released:" + owner("a")}
    sweeper.dirty = set()
    assert store.allocate(owner("b"), dead) == START  # the next sweep found none
    assert store.allocations() == {0: owner("b")}


def test_a_live_containers_slot_is_not_free_for_a_sweep(tmp_path: Path) -> None:
    sweeper = FakeSweeper()
    store = swept_store(tmp_path, 2, sweeper)
    store.allocate(owner("a"), live)
    store.allocate(owner("b"), live)
    assert store.is_free(0) is False
    store.release(owner("a"))
    assert store.is_free(0) is True
    assert store.is_free(1) is False


def test_stale_reclaim_sweeps_before_freeing(tmp_path: Path) -> None:
    sweeper = FakeSweeper()
    store = swept_store(tmp_path, 2, sweeper)
    store.allocate(owner("crashed"), live)
    age(tmp_path / "slot-0", STALE_GRACE_SECONDS + 30)
    assert store.reclaim_stale(dead) == [owner("crashed")]
    assert sweeper.calls[-1] == {0}
    assert store.allocations() == {}


def test_a_slot_an_older_store_claims_is_skipped(tmp_path: Path) -> None:
    """An older eci sharing the directory claims `slot-<n>` by link() and knows nothing of
    the queue: the queue's head it took is skipped, never handed out twice."""
    store = RangeStore(tmp_path, Pool(START, 3 * RANGE_SIZE))
    store.allocate(owner("a"), live)  # queue now: 1, 2
    (tmp_path / "slot-1").write_text("/run/old-engine/runc/x")  # the older code's claim
    assert store.allocate(owner("b"), live) == START + 2 * RANGE_SIZE
    with pytest.raises(RangePoolExhausted):
        store.allocate(owner("c"), live)
    (tmp_path / "slot-1").unlink()  # the older code released it (lost from the queue)
    assert store.allocate(owner("c"), live) == START + RANGE_SIZE  # found by a rebuild


def test_an_owners_range_is_found_without_its_index(tmp_path: Path) -> None:
    store = RangeStore(tmp_path, Pool(START, 2 * RANGE_SIZE))
    (tmp_path / "slot-1").write_text(owner("old"))  # claimed by an older eci: no index
    assert store.slot_of(owner("old")) == 1
    assert store.release(owner("old")) is True
    assert store.allocations() == {}


def test_a_damaged_queue_is_rebuilt(store: RangeStore) -> None:
    store.allocate(owner("a"), live)
    Path(store.directory, "queue").write_bytes(b"garbage")
    assert store.allocate(owner("b"), live) == START + RANGE_SIZE
    assert store.allocate(owner("c"), live) == START + 2 * RANGE_SIZE


def test_upcoming_names_what_allocation_hands_out_next(store: RangeStore) -> None:
    assert store.upcoming(2) == []  # no queue yet
    store.allocate(owner("a"), live)
    assert store.upcoming(2) == [START + RANGE_SIZE, START + 2 * RANGE_SIZE]
    assert store.allocate(owner("b"), live) == START + RANGE_SIZE


# --- the per-user cap ---


def test_a_requester_is_capped_and_others_are_not(store: RangeStore) -> None:
    store.allocate(owner("u1"), live, requester=1000, cap=2)
    store.allocate(owner("u2"), live, requester=1000, cap=2)
    with pytest.raises(RangeCapReached) as info:
        store.allocate(owner("u3"), live, requester=1000, cap=2)
    assert str(info.value).startswith(
        "enhanced container isolation: user 1000 already holds 2 id ranges"
    )
    assert "idRangesPerUser" in str(info.value)
    assert store.slot_of(owner("u3")) is None  # nothing taken
    store.allocate(owner("other"), live, requester=1001, cap=2)
    store.allocate(owner("root"), live)  # no requester: not capped
    assert len(store.allocations()) == 4


def test_a_released_range_no_longer_counts_for_its_user(store: RangeStore) -> None:
    store.allocate(owner("u1"), live, requester=1000, cap=1)
    assert store.allocate(owner("u1"), live, requester=1000, cap=1) == START  # its own again
    store.release(owner("u1"))
    assert store.allocate(owner("u2"), live, requester=1000, cap=1)
    assert os.listdir(Path(store.directory, "users", "1000")) != []


def test_the_default_cap_is_an_eighth_of_the_pool(tmp_path: Path) -> None:
    assert default_cap(Pool(START, 4096 * RANGE_SIZE)) == 512
    assert default_cap(Pool(START, 4 * RANGE_SIZE)) == 1
    store = RangeStore(tmp_path, Pool(START, 16 * RANGE_SIZE))
    store.allocate(owner("u1"), live, requester=1000)
    store.allocate(owner("u2"), live, requester=1000)
    with pytest.raises(RangeCapReached, match="already holds 2 id ranges"):
        store.allocate(owner("u3"), live, requester=1000)


def _allocate_capped(directory: str, worker: int, results: Any) -> None:
    try:
        store = RangeStore(directory, Pool(START, 64 * RANGE_SIZE))
        got = 0
        for i in range(10):
            try:
                store.allocate(owner(f"w{worker}-{i}"), live, requester=1000, cap=12)
                got += 1
            except RangeCapReached:
                pass
        results.put((worker, got))
    except BaseException as exc:
        results.put((worker, repr(exc)))


def test_concurrent_creates_of_one_user_stop_at_the_cap(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_allocate_capped, args=(str(tmp_path), w, results)) for w in range(4)
    ]
    for process in workers:
        process.start()
    got = dict(results.get(timeout=120) for _ in workers)
    for process in workers:
        process.join(timeout=60)
    assert sum(got.values()) == 12, got
    assert len(RangeStore(tmp_path, Pool(START, 64 * RANGE_SIZE)).allocations()) == 12


def test_sweep_free_sweeps_every_free_range_and_claims_survivors(tmp_path: Path) -> None:
    sweeper = FakeSweeper()
    store = swept_store(tmp_path, 4, sweeper)
    store.allocate(owner("a"), live)  # slot 0
    store.allocate(owner("b"), live)  # slot 1
    store.release(owner("b"))
    sweeper.dirty = {2}  # a holder of free range 2 that cannot be killed
    assert store.sweep_free() == {2}
    assert sweeper.calls[-1] == {0, 1, 2, 3}
    assert sweeper.free_when_asked == {0: False, 1: True, 2: True, 3: True}
    assert store.allocations()[2].startswith("released:")  # claimed: never handed out
    got = {store.allocate(owner(n), live) for n in ("c", "d")}
    assert got == {store.pool.base(1), store.pool.base(3)}
