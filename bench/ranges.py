"""Id-range allocation with 4096 ranges live, and the sweep for holders of a freed range.

1. allocate + release of one range while 4096 others are live (a pool of 8192 ranges, so there
   is always a free one: no collision), on a scratch store directory: this code's store (the
   LRU queue; release without a sweep, to time the store alone), the same with the per-user
   cap counted (a requester holding 0 and 100 ranges), and main's store (`git show
   main:src/eci/runtime/shim/ranges.py`, which read every slot file on each allocation and release);
2. the sweep a release runs before a range is free again (ranges.ProcSweeper over the real
   /proc, nothing to kill): with the tasks the machine has, then with 500 more processes, to
   show the cost per task. It runs at release (the runtime server's cleanup worker, not waited
   for by `docker rm`), never at allocation.

Prints medians and p90 in microseconds.

    .venv/bin/python bench/ranges.py [--runs 2000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

from eci.runtime.shim import holders
from eci.runtime.shim.ranges import RANGE_SIZE, Pool, ProcSweeper, RangeStore

LIVE = 4096
SLOTS = 8192
START = 100000
REPO = Path(__file__).resolve().parents[1]


def owner(name: str) -> str:
    return f"/run/eci-bench/runc/moby/{name}"


def fill(directory: Path, live: int) -> None:
    """`live` claimed slots, in the store's on-disk layout (what any store reads)."""
    directory.mkdir(mode=0o700)
    for slot in range(live):
        (directory / f"slot-{slot}").write_text(owner(f"live-{slot}"))


def live(_: str) -> bool:
    return True


def timed(runs: int, step: Callable[[int], object]) -> list[float]:
    samples = []
    for i in range(runs):
        start = time.perf_counter()
        step(i)
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def show(label: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    print(f"| {label} | {len(samples)} | {statistics.median(samples):.0f} | {p90:.0f} |")


def main_store_class() -> type:
    """main's RangeStore, loaded from git (it needs nothing this tree lacks)."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", "main:src/eci/runtime/shim/ranges.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType("eci_main_ranges")
    exec(compile(source, "main:src/eci/runtime/shim/ranges.py", "exec"), module.__dict__)
    return module.RangeStore  # type: ignore[no-any-return]


def bench_store(scratch: Path, runs: int, old_runs: int) -> None:
    pool = Pool(START, SLOTS * RANGE_SIZE)
    print(f"\nallocate + release, {LIVE} ranges live (pool of {SLOTS}), microseconds\n")
    print("| store | runs | median | p90 |\n|---|---|---|---|")

    directory = scratch / "now"
    fill(directory, LIVE)
    store = RangeStore(directory, pool)
    store.allocate(owner("warm-up"), live)  # the first allocation builds the queue
    store.release(owner("warm-up"))

    def cycle(i: int, requester: int | None = None) -> None:
        store.allocate(owner(f"n{i}"), live, requester=requester, cap=SLOTS)
        store.release(owner(f"n{i}"))

    show("this branch (LRU queue)", timed(runs, cycle))
    show("this branch, requester with 0 ranges", timed(runs, lambda i: cycle(i, 1000)))
    for i in range(100):
        store.allocate(owner(f"held-{i}"), live, requester=1001, cap=SLOTS)
    show("this branch, requester with 100 ranges", timed(runs, lambda i: cycle(i, 1001)))

    old_directory = scratch / "main"
    fill(old_directory, LIVE)
    old = main_store_class()(old_directory, pool)

    def old_cycle(i: int) -> None:
        old.allocate(owner(f"o{i}"), live)
        old.release(owner(f"o{i}"))

    show("main (reads every slot)", timed(old_runs, old_cycle))


def bench_sweep(runs: int) -> None:
    pool = Pool(START, SLOTS * RANGE_SIZE)
    sweeper = ProcSweeper(lambda holder, first, last: None)
    print("\nsweep of one released range over the real /proc (nothing to kill), microseconds\n")
    print("| tasks on the machine | runs | median | p90 | per task |\n|---|---|---|---|---|")
    extra: list[subprocess.Popen[bytes]] = []
    try:
        for more in (0, 500):
            while len(extra) < more:
                extra.append(subprocess.Popen(["sleep", "600"]))
            tasks = sum(1 for _ in holders.tasks())
            samples = timed(runs, lambda i: sweeper(pool, {SLOTS - 1}, lambda slot: True))
            ordered = sorted(samples)
            median = statistics.median(samples)
            print(
                f"| {tasks} | {runs} | {median:.0f} | {ordered[int(runs * 0.9) - 1]:.0f} | "
                f"{median / tasks:.1f} |"
            )
    finally:
        for proc in extra:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--old-runs", type=int, default=20)
    parser.add_argument("--sweep-runs", type=int, default=50)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="eci-bench-ranges-"))
    try:
        bench_store(scratch, args.runs, args.old_runs)
        bench_sweep(args.sweep_runs)
    finally:
        shutil.rmtree(scratch)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
