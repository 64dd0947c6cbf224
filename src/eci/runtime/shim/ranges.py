"""Exclusive 65536-id ranges for containers, from the `eci` user's /etc/subuid entry.

Store layout (one directory for every engine on the host, e.g. /var/lib/eci/ranges):
    slot-<n>          the claim of record: range n is held. It holds the owner (`<runc root>/
                      <container id>`), or `released:<owner>` while a released range is swept;
                      created with O_EXCL (an older eci links a complete file there), so two
                      creators never both win
    queue             the free ranges, least recently released first: a ring of slot numbers
                      in one file, changed under flock. Allocation pops its head, a release
                      appends to its tail
    owners/<owner>    a symlink to `slot-<n>` (or `slot-<n>:<uid>`, the requester's): an
                      owner's range, found at release without reading every slot
    users/<uid>/<n>   a hard link to `slot-<n>` per live range of a container user <uid> asked
                      for, removed at release: the user's count for the cap

Theory of operation. A range is handed out only after a scan of every task on the host found
no process holding one of its ids (holders.py): a process that outlived its container would
otherwise own the next tenant's files.
- allocate: pop the queue's head and claim its slot: constant time, whatever the number of
  live ranges (a slot someone else claimed meanwhile is skipped). A requester at its cap is
  refused before anything is taken.
- release: the slot becomes `released:<owner>` (the range stays claimed), every process holding
  one of its ids is killed and reported, and only when a scan finds none is the slot removed
  and queued at the tail. A range whose holders survive stays claimed: never handed out.
- sweep_free: every free range swept in one scan (the runtime server does it periodically),
  for processes that gained a free range's ids after its release.
- rebuild, when the queue is empty or unreadable (first use, a full pool): stale slots are
  reclaimed, every unclaimed range is swept in one scan and queued in order.
- stale: a slot whose owner runc no longer knows, or a release never finished, older than a
  grace period, is swept and freed, so a shim killed mid-create never leaks a range for long.
Code that knows only `slot-<n>` (an older eci sharing the directory) claims and frees them as
before; the queue never hands out a claimed slot, so two stores never share a range.

Imported by the shim on every create and delete: os only (no pathlib, no dataclasses).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

from eci.errors import RangeCapReached, RangePoolExhausted, RuntimeShimError
from eci.runtime.shim import holders

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    #: sweeps ranges: (pool, slots, still_free) -> the slots whose holders could not be
    #: killed; still_free(slot) tells, at the moment a holder is seen, that the slot is not
    #: (again) claimed by a live container
    Sweeper = Callable[["Pool", "set[int]", "Callable[[int], bool]"], "set[int]"]

RANGE_SIZE = 65536
STALE_GRACE_SECONDS = 120.0
RELEASED = "released:"


class Pool:
    """The id range eci may hand out: [start, start + count), cut into 65536-id slots."""

    __slots__ = ("count", "start")

    def __init__(self, start: int, count: int) -> None:
        self.start = start
        self.count = count

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pool) and (self.start, self.count) == (other.start, other.count)

    def __hash__(self) -> int:
        return hash((self.start, self.count))

    def __repr__(self) -> str:
        return f"Pool(start={self.start}, count={self.count})"

    @property
    def slots(self) -> int:
        return self.count // RANGE_SIZE

    def base(self, slot: int) -> int:
        return self.start + slot * RANGE_SIZE

    def slot_of_id(self, host_id: int) -> int | None:
        """The slot whose range holds `host_id`; None outside the pool's slots."""
        slot = (host_id - self.start) // RANGE_SIZE
        return slot if host_id >= self.start and slot < self.slots else None

    @classmethod
    def from_subid(cls, text: str, user: str, origin: str = "/etc/subuid") -> Pool:
        """Parse subuid/subgid text (`name:start:count` lines) for `user`'s first entry."""
        for line in text.splitlines():
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[0] == user:
                try:
                    pool = cls(int(parts[1]), int(parts[2]))
                except ValueError:
                    break
                if pool.start <= 0 or pool.slots < 1:
                    raise RuntimeShimError(
                        f"{origin}: entry {line.strip()!r} is too small: need at least "
                        f"{RANGE_SIZE} ids starting above 0"
                    )
                return pool
        raise RuntimeShimError(
            f"{origin} has no valid entry for user {user!r}; "
            "run `make setup` (scripts/setup-host) to create it"
        )


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _owner_name(owner: str) -> str:
    """owners/ entry name of an owner path (reversible escaping; a hash when too long)."""
    name = owner.replace("%", "%25").replace("/", "%2F")
    if len(name.encode()) <= 255:
        return name
    import hashlib

    return "sha256-" + hashlib.sha256(owner.encode()).hexdigest()


def default_cap(pool: Pool) -> int:
    """Ranges one requesting user may hold when the admin sets no limit: an eighth of the
    pool (512 of Debian's default 4096), at least one."""
    return max(1, pool.slots // 8)


class _Queue:
    """The free list: a ring of slot numbers in the file `queue`, used under an exclusive
    flock of that file. Header: magic, head, tail (counters), capacity; then 4-byte slots."""

    MAGIC = b"eci-lru1"
    HEADER = 32

    def __init__(self, directory: str, capacity: int, mode: int = fcntl.LOCK_EX) -> None:
        self.path = os.path.join(directory, "queue")
        self.capacity = capacity
        self.mode = mode
        self.fd = -1
        self.head = self.tail = 0
        self.valid = False

    def __enter__(self) -> _Queue:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, self.mode)
        header = os.pread(self.fd, self.HEADER, 0)
        if len(header) == self.HEADER and header[:8] == self.MAGIC:
            self.head = int.from_bytes(header[8:16], "little")
            self.tail = int.from_bytes(header[16:24], "little")
            capacity = int.from_bytes(header[24:28], "little")
            self.valid = capacity == self.capacity and 0 <= self.tail - self.head <= capacity
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing the descriptor releases the lock

    def _write_header(self) -> None:
        header = (
            self.MAGIC
            + self.head.to_bytes(8, "little")
            + self.tail.to_bytes(8, "little")
            + self.capacity.to_bytes(4, "little")
        )
        os.pwrite(self.fd, header.ljust(self.HEADER, b"\0"), 0)

    def _offset(self, index: int) -> int:
        return self.HEADER + (index % self.capacity) * 4

    def peek(self) -> int | None:
        if not self.valid or self.head == self.tail:
            return None
        return int.from_bytes(os.pread(self.fd, 4, self._offset(self.head)), "little")

    def drop_head(self) -> None:
        self.head += 1
        self._write_header()

    def push(self, slot: int) -> None:
        if self.tail - self.head >= self.capacity:  # only duplicates can fill it: drop one
            self.head += 1
        os.pwrite(self.fd, slot.to_bytes(4, "little"), self._offset(self.tail))
        self.tail += 1
        self._write_header()

    def reset(self, slots: list[int]) -> None:
        data = b"".join(s.to_bytes(4, "little") for s in slots)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, self.HEADER)
        self.head, self.tail, self.valid = 0, len(slots), True
        self._write_header()

    def upcoming(self, count: int) -> list[int]:
        """The next `count` slots allocation will try, in order."""
        if not self.valid:
            return []
        count = min(count, self.tail - self.head)
        return [
            int.from_bytes(os.pread(self.fd, 4, self._offset(self.head + i)), "little")
            for i in range(count)
        ]


class RangeStore:
    """Allocations of one pool, kept as files in `directory` (see module docstring).
    `sweeper` kills the processes holding ids of ranges about to be freed (see Sweeper)."""

    def __init__(
        self, directory: str | os.PathLike[str], pool: Pool, sweeper: Sweeper | None = None
    ) -> None:
        self.directory = os.fspath(directory)
        self.pool = pool
        self.sweeper = sweeper

    def _slot_path(self, slot: int) -> str:
        return os.path.join(self.directory, f"slot-{slot}")

    def _holder_of(self, slot: int) -> str | None:
        try:
            return _read(self._slot_path(slot))
        except FileNotFoundError:
            return None

    def is_free(self, slot: int) -> bool:
        """Not claimed by a live container: unclaimed, or released and being swept."""
        holder = self._holder_of(slot)
        return holder is None or holder.startswith(RELEASED)

    def allocations(self) -> dict[int, str]:
        """slot -> owner, for every claimed slot (`released:<owner>` while being swept)."""
        found = {}
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return {}
        for name in names:
            if name.startswith("slot-") and name[5:].isdigit():
                try:
                    found[int(name[5:])] = _read(os.path.join(self.directory, name))
                except FileNotFoundError:
                    continue
        return found

    def slot_of(self, owner: str) -> int | None:
        """The owner's slot: from its owners/ entry, else (a slot an older eci claimed) by
        reading every slot."""
        indexed = self._indexed(owner)
        if indexed is not None:
            return indexed[0]
        for slot, held_by in self.allocations().items():
            if held_by == owner:
                return slot
        return None

    def _indexed(self, owner: str) -> tuple[int, int | None] | None:
        """(slot, requester uid or None) that owners/ names for `owner`, if the slot holds it.
        The entry is a symlink to `slot-<n>` or `slot-<n>:<uid>`."""
        try:
            target = os.readlink(self._owner_path(owner))
        except OSError:
            return None
        slot, _, uid = target[5:].partition(":")
        if not (target.startswith("slot-") and slot.isdigit() and (uid == "" or uid.isdigit())):
            return None
        if self._holder_of(int(slot)) != owner:
            return None
        return int(slot), int(uid) if uid else None

    def _owner_path(self, owner: str) -> str:
        return os.path.join(self.directory, "owners", _owner_name(owner))

    # --- allocate ---

    def allocate(
        self,
        owner: str,
        is_live: Callable[[str], bool],
        requester: int | None = None,
        cap: int | None = None,
    ) -> int:
        """The base uid of a range held by nobody else (reusing this owner's, if any).
        `requester`: the uid of the user who asked for the container, who may hold at most
        `cap` ranges (default_cap without one); None (root, or unknown) is not capped."""
        indexed = self._indexed(owner)
        if indexed is not None:
            with contextlib.suppress(FileNotFoundError):  # reused: a new grace period
                os.utime(self._slot_path(indexed[0]))
                return self.pool.base(indexed[0])
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
        if requester is None:
            slot = self._take(owner, is_live)
        else:
            with self._user_lock(requester) as user_dir:
                self._check_cap(requester, user_dir, default_cap(self.pool) if cap is None else cap)
                slot = self._take(owner, is_live)
                with contextlib.suppress(FileExistsError):
                    os.link(self._slot_path(slot), os.path.join(user_dir, str(slot)))
        self._index(owner, slot, requester)
        return self.pool.base(slot)

    def _index(self, owner: str, slot: int, requester: int | None) -> None:
        target = f"slot-{slot}" if requester is None else f"slot-{slot}:{requester}"
        path = self._owner_path(owner)
        try:
            os.symlink(target, path)
        except FileExistsError:  # left by a create or release that was killed
            os.unlink(path)
            os.symlink(target, path)
        except FileNotFoundError:  # a store made by an older eci: no owners/ yet
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            os.symlink(target, path)

    def _user_lock(self, uid: int) -> _Flock:
        user_dir = os.path.join(self.directory, "users", str(uid))
        os.makedirs(user_dir, mode=0o700, exist_ok=True)
        return _Flock(user_dir, fcntl.LOCK_EX)

    @staticmethod
    def _check_cap(uid: int, user_dir: str, cap: int) -> None:
        """Refuse when the user holds `cap` ranges. Its entries are removed at release; only
        when they reach the cap are they checked one by one (a create or release killed
        midway leaves one behind): a hard link to a slot file that is still named and
        claimed."""
        names = os.listdir(user_dir)
        if len(names) < cap:
            return
        held = 0
        for name in names:
            path = os.path.join(user_dir, name)
            try:
                if os.stat(path).st_nlink > 1 and not _read(path).startswith(RELEASED):
                    held += 1
                    continue
                os.unlink(path)
            except FileNotFoundError:
                continue
        if held >= cap:
            raise RangeCapReached(
                f"enhanced container isolation: user {uid} already holds {held} id ranges, "
                "the most one user may (idRangesPerUser in the admin settings); remove some "
                "of your containers to start new ones"
            )

    def _take(self, owner: str, is_live: Callable[[str], bool]) -> int:
        """Claim the least recently released free slot (rebuilding the queue once if empty)."""
        with _Queue(self.directory, 2 * self.pool.slots) as queue:
            for attempt in range(2):
                while (slot := queue.peek()) is not None:
                    claimed = slot < self.pool.slots and self._claim(slot, owner)
                    queue.drop_head()  # after the claim: a crash between leaves it claimed
                    if claimed:
                        return slot
                if attempt == 0:
                    self._rebuild(queue, is_live)
        raise RangePoolExhausted(
            f"no free user-id range: all {self.pool.slots} ranges of eci's pool "
            f"({self.pool.start}-{self.pool.start + self.pool.count - 1}) are held by live "
            "containers (or by processes that could not be killed); remove containers or "
            "enlarge the eci entry in /etc/subuid and /etc/subgid"
        )

    def _claim(self, slot: int, owner: str) -> bool:
        """Create slot-<n> holding `owner`, unless it exists (O_EXCL: one creator wins).
        An older eci links a complete file there instead; either way a slot exists once."""
        try:
            with self._locked(fcntl.LOCK_SH):  # claims run together, never during a reclaim
                fd = os.open(
                    self._slot_path(slot),
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                    0o600,
                )
        except FileExistsError:
            return False
        try:
            os.write(fd, owner.encode())
        finally:
            os.close(fd)
        return True

    def _locked(self, mode: int) -> _Flock:
        return _Flock(self.directory, mode)

    # --- release, sweep, free ---

    def release(self, owner: str) -> bool:
        """Free the owner's range: marked released (still claimed), swept of every process
        holding its ids, then queued. True when the owner held a range (even if it stays
        claimed because a holder could not be killed)."""
        if not os.path.isdir(self.directory):
            return False
        indexed = self._indexed(owner)
        if indexed is None:
            slot = self.slot_of(owner)
            if slot is None:
                return False
            indexed = slot, None
        slot, requester = indexed
        marker = self._mark_released(slot, owner)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._owner_path(owner))
        if requester is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.directory, "users", str(requester), str(slot)))
        if marker is not None:
            self._sweep_and_free({slot: marker})
        return marker is not None

    def _mark_released(self, slot: int, expected: str) -> str | None:
        """Turn slot-<n> holding `expected` into `released:<owner>`, in place (a longer text
        over the owner); None when it no longer holds `expected`. Under the exclusive lock: a
        slot a reclaim and a new claim gave someone else is never touched."""
        with self._locked(fcntl.LOCK_EX):
            if self._holder_of(slot) != expected:
                return None
            if expected.startswith(RELEASED):  # a release that never finished: as it is
                return expected
            marker = RELEASED + expected
            fd = os.open(self._slot_path(slot), os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.pwrite(fd, marker.encode(), 0)
            finally:
                os.close(fd)
        return marker

    def _sweep_and_free(self, released: dict[int, str]) -> None:
        """Sweep released slots (slot -> its marker) and free those left without holders."""
        dirty = self._sweep(set(released))
        clean = {slot: marker for slot, marker in released.items() if slot not in dirty}
        if not clean:
            return
        with _Queue(self.directory, 2 * self.pool.slots) as queue:
            with self._locked(fcntl.LOCK_EX):
                freed = []
                for slot, marker in sorted(clean.items()):
                    if self._holder_of(slot) == marker:
                        os.unlink(self._slot_path(slot))
                        freed.append(slot)
            if queue.valid:  # else the next allocation rebuilds it with these
                for slot in freed:
                    queue.push(slot)

    def _sweep(self, slots: set[int]) -> set[int]:
        """The slots whose holders could not be killed (none without a sweeper)."""
        if self.sweeper is None or not slots:
            return set()
        return self.sweeper(self.pool, slots, self.is_free)

    def _rebuild(self, queue: _Queue, is_live: Callable[[str], bool]) -> None:
        """Under the queue's lock: reclaim stale slots, sweep every unclaimed range in one
        scan, and queue them in order."""
        stale = self._mark_stale(is_live)
        held = self.allocations()
        unclaimed = {slot for slot in range(self.pool.slots) if slot not in held}
        dirty = self._sweep(unclaimed | set(stale))
        with self._locked(fcntl.LOCK_EX):
            for slot, marker in stale.items():
                if slot not in dirty and self._holder_of(slot) == marker:
                    os.unlink(self._slot_path(slot))
                    unclaimed.add(slot)
        queue.reset(sorted(unclaimed - dirty))

    def _mark_stale(
        self, is_live: Callable[[str], bool], grace: float = STALE_GRACE_SECONDS
    ) -> dict[int, str]:
        """Mark released the slots older than `grace` whose owner runc no longer knows (or
        whose release never finished): slot -> marker. Liveness is judged without the lock
        (it may take a while); a slot is marked only if it is still the very file judged
        (same inode, mtime and owner), so a slot re-claimed meanwhile is never taken away."""
        now = time.time()
        candidates = []
        for slot, owner in self.allocations().items():
            try:
                st = os.stat(self._slot_path(slot))
            except FileNotFoundError:
                continue
            dead = owner.startswith(RELEASED) or not is_live(owner)
            if now - st.st_mtime >= grace and dead:
                candidates.append((slot, owner, st.st_ino, st.st_mtime_ns))
        marked: dict[int, str] = {}
        for slot, owner, ino, mtime in candidates:
            try:
                st = os.stat(self._slot_path(slot))
            except FileNotFoundError:
                continue
            if (st.st_ino, st.st_mtime_ns) == (ino, mtime):
                marker = self._mark_released(slot, owner)
                if marker is not None:
                    marked[slot] = marker
        return marked

    def reclaim_stale(
        self, is_live: Callable[[str], bool], grace: float = STALE_GRACE_SECONDS
    ) -> list[str]:
        """Release (sweep and free) slots older than `grace` seconds whose owner runc no
        longer knows; returns their owners."""
        marked = self._mark_stale(is_live, grace)
        self._sweep_and_free(marked)
        return [marker[len(RELEASED) :] for marker in marked.values()]

    def sweep_free(self) -> set[int]:
        """Sweep every free range (unclaimed, or released) in one scan, for processes that
        gained a free range's ids after its release (root, or a setuid file owned by them);
        returns the slots whose holders survive, which are claimed as released so nothing
        hands them out (the stale reclaim sweeps them again)."""
        claimed: set[int] = set()

        def still_free(slot: int) -> bool:  # a claim seen is kept for the scan: never a kill
            if slot in claimed:
                return False
            if self.is_free(slot):
                return True
            claimed.add(slot)
            return False

        if self.sweeper is None:
            return set()
        dirty = self.sweeper(self.pool, set(range(self.pool.slots)), still_free)
        for slot in dirty:
            self._claim(slot, RELEASED + "(a holder survived a sweep)")
        return dirty

    def upcoming(self, count: int) -> list[int]:
        """The bases of the next `count` free ranges allocation will hand out (a hint: for
        the runtime server to make their user namespaces ahead)."""
        if not os.path.exists(os.path.join(self.directory, "queue")):
            return []
        with _Queue(self.directory, 2 * self.pool.slots, fcntl.LOCK_SH) as queue:
            return [self.pool.base(s) for s in queue.upcoming(count) if s < self.pool.slots]


class ProcSweeper:
    """The Sweeper of the host: kills the processes holding ids of the slots (holders.py)
    and tells `report(holder, first_id, last_id)` of each one killed."""

    def __init__(
        self, report: Callable[[holders.Holder, int, int], None], proc: str = "/proc"
    ) -> None:
        self.report = report
        self.proc = proc

    def __call__(self, pool: Pool, slots: set[int], still_free: Callable[[int], bool]) -> set[int]:
        def slots_of(holder: holders.Holder) -> set[int]:
            return {slot for i in holder.ids() if (slot := pool.slot_of_id(i)) in slots}

        def pick(host_id: int) -> bool:
            slot = pool.slot_of_id(host_id)
            return slot is not None and slot in slots and still_free(slot)

        def killed(holder: holders.Holder) -> None:
            base = pool.base(min(slots_of(holder)))
            self.report(holder, base, base + RANGE_SIZE - 1)

        left = holders.sweep(pick, killed, self.proc)
        return {slot for holder in left for slot in slots_of(holder)}


class _Flock:
    """flock(2) on a directory itself (no lock file to leave behind)."""

    def __init__(self, directory: str, mode: int) -> None:
        self.directory = directory
        self.mode = mode
        self.fd = -1

    def __enter__(self) -> str:
        self.fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self.fd, self.mode)
        return self.directory

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing the descriptor releases the lock
