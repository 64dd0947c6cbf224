"""`sysinfo`: the container's answer to sysinfo(2) — host values bounded by its memory cgroup —,
the cgroup files it reads (a fake /sys/fs/cgroup under tmp_path) and the struct layouts.

Hypothesis invariant (test_virtualize_never_reveals_more_than_the_host_or_the_limit): for any
host answer and any cgroup values, the answer packs into the 64-bit layout, its RAM is at most
the host's and at most the limit, free ≤ total, swap free ≤ swap total ≤ host swap, nothing is
negative, procs ≤ 0xFFFF and mem_unit is 1.

Gaps found in the code while writing these are at the end (fixed since; kept as tests).
"""

from __future__ import annotations

import builtins
import ctypes
import os
from pathlib import Path
from typing import IO, Any, NamedTuple, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eci.runtime.confine import sysinfo
from eci.runtime.linux import libc
from eci.runtime.linux.syscalls import AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64

GiB, MiB = 1 << 30, 1 << 20
#: what cgroup v1 shows for "no limit" (PAGE_COUNTER_MAX pages, in bytes)
V1_UNLIMITED = 9223372036854771712
LP64 = ctypes.sizeof(ctypes.c_long) == 8


class Answer(NamedTuple):
    """The fields of `virtualize`'s tuple, in struct sysinfo's order."""

    uptime: int
    load1: int
    load5: int
    load15: int
    totalram: int
    freeram: int
    sharedram: int
    bufferram: int
    totalswap: int
    freeswap: int
    procs: int
    pad: int
    totalhigh: int
    freehigh: int
    mem_unit: int


def host(
    total: int = 16 * GiB,
    free: int = 8 * GiB,
    swap_total: int = 4 * GiB,
    swap_free: int = 3 * GiB,
    procs: int = 512,
    unit: int = 1,
    loads: tuple[int, int, int] = (65536, 32768, 16384),
) -> sysinfo._Sysinfo:
    """A kernel answer (sizes in bytes, stored in `unit`s as the kernel does)."""
    real = sysinfo._Sysinfo()
    real.uptime = 123456
    real.loads[:] = loads
    real.totalram, real.freeram = total // (unit or 1), free // (unit or 1)
    real.sharedram, real.bufferram = 1 * GiB // (unit or 1), 2 * GiB // (unit or 1)
    real.totalswap, real.freeswap = swap_total // (unit or 1), swap_free // (unit or 1)
    real.procs = procs
    real.totalhigh, real.freehigh = 7, 5
    real.mem_unit = unit
    return real


def virtualize(
    real: sysinfo._Sysinfo | None = None,
    limit: int | None = None,
    usage: int | None = None,
    swap_limit: int | None = None,
    uptime: int | None = 60,
    procs: int | None = 3,
) -> Answer:
    return Answer(*sysinfo.virtualize(real or host(), limit, usage, swap_limit, uptime, procs))


# --- virtualize: memory ---


def test_limit_below_host_total_becomes_total() -> None:
    answer = virtualize(limit=512 * MiB, usage=100 * MiB)
    assert answer.totalram == 512 * MiB
    assert answer.freeram == 412 * MiB
    assert answer.mem_unit == 1


@pytest.mark.parametrize("usage", [512 * MiB, 600 * MiB, 10 * GiB], ids=["full", "over", "far"])
def test_free_is_never_negative(usage: int) -> None:
    answer = virtualize(limit=512 * MiB, usage=usage)
    assert answer.freeram == 0


def test_unknown_usage_counts_as_nothing_used() -> None:
    assert virtualize(limit=512 * MiB, usage=None).freeram == 512 * MiB


@pytest.mark.parametrize(
    "limit", [None, 16 * GiB, 32 * GiB, V1_UNLIMITED], ids=["none", "equal", "above", "v1-max"]
)
def test_no_limit_below_the_host_keeps_host_values(limit: int | None) -> None:
    answer = virtualize(limit=limit, usage=1 * GiB)
    assert (answer.totalram, answer.freeram) == (16 * GiB, 8 * GiB)


def test_free_is_capped_by_total() -> None:
    """A limit above the host's free memory but below its total: free = limit - usage, and
    never more than the total."""
    answer = virtualize(host(total=16 * GiB, free=1 * GiB), limit=12 * GiB, usage=0)
    assert answer.totalram == 12 * GiB
    assert answer.freeram == 12 * GiB


@pytest.mark.parametrize("unit", [1, 4096, 0], ids=["bytes", "pages", "zero-means-one"])
def test_host_values_are_converted_to_bytes(unit: int) -> None:
    answer = virtualize(host(unit=unit))
    assert (answer.totalram, answer.freeram) == (16 * GiB, 8 * GiB)
    assert (answer.totalswap, answer.freeswap) == (4 * GiB, 3 * GiB)
    assert answer.mem_unit == 1


def test_shared_buffers_and_high_memory_are_hidden() -> None:
    answer = virtualize(limit=512 * MiB, usage=0)
    assert (answer.sharedram, answer.bufferram) == (0, 0)
    assert (answer.totalhigh, answer.freehigh, answer.pad) == (0, 0, 0)


# --- virtualize: swap ---


def test_swap_bounded_by_memsw_minus_limit() -> None:
    answer = virtualize(limit=512 * MiB, usage=0, swap_limit=1 * GiB)
    assert answer.totalswap == 512 * MiB
    assert answer.freeswap == 512 * MiB


def test_swap_free_never_above_swap_total() -> None:
    answer = virtualize(host(swap_free=100 * MiB), limit=512 * MiB, swap_limit=1 * GiB)
    assert (answer.totalswap, answer.freeswap) == (512 * MiB, 100 * MiB)


def test_memsw_equal_to_the_limit_means_no_swap() -> None:
    answer = virtualize(limit=512 * MiB, swap_limit=512 * MiB)
    assert (answer.totalswap, answer.freeswap) == (0, 0)


def test_swap_limit_above_the_hosts_swap_keeps_the_hosts() -> None:
    answer = virtualize(limit=512 * MiB, swap_limit=100 * GiB)
    assert (answer.totalswap, answer.freeswap) == (4 * GiB, 3 * GiB)


@pytest.mark.parametrize(
    ("limit", "swap_limit"),
    [(512 * MiB, None), (None, 1 * GiB), (None, None), (1 * GiB, 512 * MiB)],
    ids=["no-memsw", "no-limit", "neither", "memsw-below-limit"],
)
def test_swap_keeps_host_values_without_both_limits(
    limit: int | None, swap_limit: int | None
) -> None:
    answer = virtualize(limit=limit, swap_limit=swap_limit)
    assert (answer.totalswap, answer.freeswap) == (4 * GiB, 3 * GiB)


# --- virtualize: the rest ---


@pytest.mark.parametrize(("uptime", "expected"), [(0, 0), (60, 60), (10**7, 10**7), (None, 0)])
def test_uptime_is_the_containers(uptime: int | None, expected: int) -> None:
    assert virtualize(uptime=uptime).uptime == expected


@pytest.mark.parametrize(
    ("procs", "host_procs", "expected"),
    [(3, 512, 3), (0xFFFF, 512, 0xFFFF), (70000, 512, 0xFFFF), (None, 512, 512)],
    ids=["few", "max", "capped", "unknown-host"],
)
def test_procs(procs: int | None, host_procs: int, expected: int) -> None:
    assert virtualize(host(procs=host_procs), procs=procs).procs == expected


def test_loads_are_the_hosts() -> None:
    answer = virtualize(host(loads=(1, 2, 3)), limit=1 * GiB)
    assert (answer.load1, answer.load5, answer.load15) == (1, 2, 3)


SIZES = st.integers(0, 1 << 44)
MAYBE = st.none() | SIZES


@given(
    st.tuples(SIZES, SIZES),
    st.tuples(SIZES, SIZES),
    st.sampled_from([0, 1, 4096]),
    MAYBE,
    MAYBE,
    MAYBE,
    st.none() | st.integers(0, 1 << 40),
    st.none() | st.integers(0, 1 << 24),
)
def test_virtualize_never_reveals_more_than_the_host_or_the_limit(
    ram: tuple[int, int],
    swap: tuple[int, int],
    unit: int,
    limit: int | None,
    usage: int | None,
    swap_limit: int | None,
    uptime: int | None,
    procs: int | None,
) -> None:
    real = host(max(ram), min(ram), max(swap), min(swap), unit=unit)
    scale = unit or 1
    host_total, host_swap = real.totalram * scale, real.totalswap * scale
    answer = virtualize(real, limit, usage, swap_limit, uptime, procs)
    sysinfo.LAYOUT[AUDIT_ARCH_X86_64].pack(*answer)  # fits the 64-bit struct
    assert 0 <= answer.freeram <= answer.totalram <= host_total
    if limit is not None and limit < host_total:
        assert answer.totalram == limit
    else:
        assert answer.totalram == host_total
    assert 0 <= answer.freeswap <= answer.totalswap <= host_swap
    assert answer.freeswap <= real.freeswap * scale
    assert 0 <= answer.procs <= 0xFFFF
    assert answer.mem_unit == 1


# --- the cgroup files ---


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def cgroup_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(sysinfo, "CGROUP_ROOT", str(tmp_path))
    return tmp_path


def redirect_open(monkeypatch: pytest.MonkeyPatch, files: dict[str, Path]) -> None:
    """`open` in the sysinfo module reads `files[path]` instead of `path`."""
    real_open = builtins.open

    def fake_open(path: str, *args: Any, **kwargs: Any) -> IO[Any]:
        return cast(IO[Any], real_open(files.get(path, path), *args, **kwargs))

    monkeypatch.setattr(sysinfo, "open", fake_open, raising=False)


V1_CGROUP = """\
12:pids:/docker/3f4e
11:cpu,cpuacct:/docker/3f4e
10:memory:/docker/3f4e
9:net_cls,net_prio:/docker/3f4e
4:blkio:/docker/3f4e
1:name=systemd:/docker/3f4e
0::/system.slice/containerd.service
"""
V2_CGROUP = "0::/system.slice/docker-3f4e.scope\n"


def test_cgroup_paths_v1_with_multi_controller_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "cgroup", V1_CGROUP)
    redirect_open(monkeypatch, {"/proc/4242/cgroup": tmp_path / "cgroup"})
    assert sysinfo.cgroup_paths(4242) == {
        "pids": "/docker/3f4e",
        "cpu": "/docker/3f4e",
        "cpuacct": "/docker/3f4e",
        "memory": "/docker/3f4e",
        "net_cls": "/docker/3f4e",
        "net_prio": "/docker/3f4e",
        "blkio": "/docker/3f4e",
        "name=systemd": "/docker/3f4e",
        "": "/system.slice/containerd.service",
    }


def test_cgroup_paths_v2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "cgroup", V2_CGROUP)
    redirect_open(monkeypatch, {"/proc/4242/cgroup": tmp_path / "cgroup"})
    assert sysinfo.cgroup_paths(4242) == {"": "/system.slice/docker-3f4e.scope"}


def test_cgroup_path_with_colons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "cgroup", "0::/a:b:c\n")
    redirect_open(monkeypatch, {"/proc/4242/cgroup": tmp_path / "cgroup"})
    assert sysinfo.cgroup_paths(4242) == {"": "/a:b:c"}


def test_cgroup_paths_of_this_process() -> None:
    paths = sysinfo.cgroup_paths(os.getpid())
    assert paths
    assert all(path.startswith("/") for path in paths.values())


def test_cgroup_paths_of_a_gone_process() -> None:
    with pytest.raises(FileNotFoundError):
        sysinfo.cgroup_paths(1 << 30)


def test_memory_v1(cgroup_root: Path) -> None:
    base = "memory/docker/3f4e"
    write(cgroup_root, f"{base}/memory.limit_in_bytes", "536870912\n")
    write(cgroup_root, f"{base}/memory.usage_in_bytes", "104857600\n")
    write(cgroup_root, f"{base}/memory.memsw.limit_in_bytes", "1073741824\n")
    paths = {"memory": "/docker/3f4e", "cpu": "/docker/3f4e", "": "/"}
    assert sysinfo.memory(paths) == (512 * MiB, 100 * MiB, 1 * GiB)


def test_memory_v1_without_swap_accounting(cgroup_root: Path) -> None:
    write(cgroup_root, "memory/docker/3f4e/memory.limit_in_bytes", "536870912\n")
    write(cgroup_root, "memory/docker/3f4e/memory.usage_in_bytes", "0\n")
    assert sysinfo.memory({"memory": "/docker/3f4e"}) == (512 * MiB, 0, None)


def test_memory_v1_unlimited(cgroup_root: Path) -> None:
    for name in ("limit_in_bytes", "memsw.limit_in_bytes"):
        write(cgroup_root, f"memory/docker/3f4e/memory.{name}", f"{V1_UNLIMITED}\n")
    limit, usage, both = sysinfo.memory({"memory": "/docker/3f4e"})
    assert (limit, usage, both) == (V1_UNLIMITED, None, V1_UNLIMITED)


def test_memory_v2(cgroup_root: Path) -> None:
    base = "system.slice/docker-3f4e.scope"
    write(cgroup_root, f"{base}/memory.max", "536870912\n")
    write(cgroup_root, f"{base}/memory.current", "104857600\n")
    write(cgroup_root, f"{base}/memory.swap.max", "536870912\n")
    paths = {"": "/system.slice/docker-3f4e.scope"}
    assert sysinfo.memory(paths) == (512 * MiB, 100 * MiB, 1 * GiB)


@pytest.mark.parametrize(
    ("memory_max", "swap_max", "expected"),
    [
        ("max", "max", (None, 7, None)),
        ("max", "0", (None, 7, None)),
        ("536870912", "max", (512 * MiB, 7, None)),
        ("536870912", "0", (512 * MiB, 7, 512 * MiB)),
        ("536870912", None, (512 * MiB, 7, None)),
        ("garbage", "0", (None, 7, None)),
    ],
    ids=["unlimited", "no-limit-no-swap", "unlimited-swap", "no-swap", "no-swap-file", "garbage"],
)
def test_memory_v2_limits(
    cgroup_root: Path,
    memory_max: str,
    swap_max: str | None,
    expected: tuple[int | None, int | None, int | None],
) -> None:
    write(cgroup_root, "c/memory.max", memory_max + "\n")
    write(cgroup_root, "c/memory.current", "7\n")
    if swap_max is not None:
        write(cgroup_root, "c/memory.swap.max", swap_max + "\n")
    assert sysinfo.memory({"": "/c"}) == expected


def test_memory_of_a_cgroup_that_is_gone(cgroup_root: Path) -> None:
    assert sysinfo.memory({"": "/gone"}) == (None, None, None)
    assert sysinfo.memory({"memory": "/gone"}) == (None, None, None)


def test_memory_at_the_v2_root(cgroup_root: Path) -> None:
    write(cgroup_root, "memory.max", "1024\n")
    write(cgroup_root, "memory.current", "10\n")
    assert sysinfo.memory({"": "/"})[:2] == (1024, 10)
    assert sysinfo.memory({})[:2] == (1024, 10)


def test_tasks_v1_and_v2(cgroup_root: Path) -> None:
    write(cgroup_root, "pids/docker/3f4e/pids.current", "5\n")
    write(cgroup_root, "c/pids.current", "9\n")
    assert sysinfo.tasks({"pids": "/docker/3f4e", "": "/c"}) == 5
    assert sysinfo.tasks({"": "/c"}) == 9
    assert sysinfo.tasks({"": "/gone"}) is None


@pytest.mark.parametrize(
    ("text", "value"),
    [("123\n", 123), ("0", 0), ("max\n", None), ("-1\n", None), ("", None), ("1 2", None)],
)
def test_read_int(tmp_path: Path, text: str, value: int | None) -> None:
    write(tmp_path, "f", text)
    assert sysinfo._read_int(str(tmp_path / "f")) == value
    assert sysinfo._read_int(str(tmp_path / "missing")) is None


def test_uptime_of_this_process() -> None:
    with open("/proc/uptime") as f:
        host_uptime = float(f.read().split()[0])
    uptime = sysinfo.uptime_of(os.getpid())
    assert uptime is not None
    assert 0 <= uptime <= host_uptime + 1


def test_uptime_of_a_gone_process() -> None:
    assert sysinfo.uptime_of(1 << 30) is None


# --- struct layouts ---


def test_layout_sizes() -> None:
    assert sysinfo.LAYOUT[AUDIT_ARCH_X86_64].size == 112
    assert sysinfo.LAYOUT[AUDIT_ARCH_AARCH64].size == 112
    assert sysinfo.LAYOUT[AUDIT_ARCH_I386].size == 64


def test_layouts_have_every_field() -> None:
    """15 fields each, in Answer's order (i386 values are pages: small)."""
    values = tuple(range(1, len(Answer._fields) + 1))
    for layout in sysinfo.LAYOUT.values():
        assert layout.unpack(layout.pack(*values)) == values


@pytest.mark.parametrize(
    ("arch", "offsets"),
    [
        (
            AUDIT_ARCH_X86_64,
            {"totalram": 32, "procs": 80, "totalhigh": 88, "mem_unit": 104},
        ),
        (AUDIT_ARCH_I386, {"totalram": 16, "procs": 40, "totalhigh": 44, "mem_unit": 52}),
    ],
    ids=["lp64", "i386"],
)
def test_layout_offsets_match_struct_sysinfo(arch: int, offsets: dict[str, int]) -> None:
    """Each field where the C struct has it (longs 8 or 4 bytes, padding after `pad`)."""
    layout = sysinfo.LAYOUT[arch]
    for name, offset in offsets.items():
        marked = Answer(*(0 for _ in Answer._fields))._replace(**{name: 0xAB})
        data = layout.pack(*marked)
        assert data[offset] == 0xAB, name
        assert data.count(b"\xab") == 1, name


@pytest.mark.skipif(not LP64, reason="the ctypes struct is the host's: 64-bit longs")
def test_ctypes_struct_matches_the_lp64_layout() -> None:
    assert ctypes.sizeof(sysinfo._Sysinfo) == 112
    answer = virtualize(limit=1 * GiB, usage=1, uptime=99, procs=7)
    data = sysinfo.LAYOUT[AUDIT_ARCH_X86_64].pack(*answer)
    back = sysinfo._Sysinfo.from_buffer_copy(data)
    assert (back.uptime, back.totalram, back.freeram) == (99, 1 * GiB, 1 * GiB - 1)
    assert (back.procs, back.mem_unit, list(back.loads)) == (7, 1, [65536, 32768, 16384])


@pytest.mark.skipif(not LP64, reason="the ctypes struct is the host's: 64-bit longs")
def test_the_kernels_answer_reads_the_same_through_both() -> None:
    real = sysinfo._Sysinfo()
    assert libc.call("sysinfo", ctypes.byref(real)) == 0
    fields = sysinfo.LAYOUT[AUDIT_ARCH_X86_64].unpack(bytes(real))
    assert fields[0] == real.uptime
    assert fields[4:10] == (
        real.totalram,
        real.freeram,
        real.sharedram,
        real.bufferram,
        real.totalswap,
        real.freeswap,
    )
    assert (fields[10], fields[14]) == (real.procs, real.mem_unit)
    assert sysinfo.LAYOUT[AUDIT_ARCH_X86_64].size == ctypes.sizeof(real)


# --- gaps found while writing these tests, fixed since ---


def test_v1_container_without_memory_limit_sees_the_hosts_swap(cgroup_root: Path) -> None:
    for name in ("limit_in_bytes", "memsw.limit_in_bytes"):
        write(cgroup_root, f"memory/docker/3f4e/memory.{name}", f"{V1_UNLIMITED}\n")
    write(cgroup_root, "memory/docker/3f4e/memory.usage_in_bytes", "0\n")
    limit, usage, both = sysinfo.memory({"memory": "/docker/3f4e"})
    answer = virtualize(limit=limit, usage=usage, swap_limit=both)
    assert (answer.totalswap, answer.freeswap) == (4 * GiB, 3 * GiB)
