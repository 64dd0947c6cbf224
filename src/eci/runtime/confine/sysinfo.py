"""sysinfo(2) as the container sees it: its memory limit, its uptime (seccomp notify).

lxcfs virtualizes /proc/meminfo and /proc/uptime, but `free`, `top` and language runtimes
ask the kernel directly with sysinfo(2). A helper of the supervisor, charged to the
container (the write into the caller's memory can block), answers that call for it: the
kernel's own answer with RAM and swap bounded by the container's memory cgroup, the uptime
of the container's init and the number of its tasks, written into the caller's buffer.
Anything it cannot read keeps the kernel's value only where that reveals no more than the
container's own /proc does.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from eci.runtime.confine import charge, seccomp
from eci.runtime.linux import libc
from eci.runtime.linux.process import start_ticks
from eci.runtime.linux.syscalls import AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64

#: struct sysinfo: long uptime; unsigned long loads[3], totalram, freeram, sharedram,
#: bufferram, totalswap, freeswap; unsigned short procs, pad; unsigned long totalhigh,
#: freehigh; unsigned int mem_unit; char _f[…] (64-bit and 32-bit longs)
LAYOUT = {
    AUDIT_ARCH_X86_64: struct.Struct("=q3Q6QHH4xQQI4x"),
    AUDIT_ARCH_AARCH64: struct.Struct("=q3Q6QHH4xQQI4x"),
    AUDIT_ARCH_I386: struct.Struct("=i3I6IHHIII8x"),
}
CGROUP_ROOT = "/sys/fs/cgroup"


class _Sysinfo(ctypes.Structure):
    _fields_ = [
        ("uptime", ctypes.c_long),
        ("loads", ctypes.c_ulong * 3),
        ("totalram", ctypes.c_ulong),
        ("freeram", ctypes.c_ulong),
        ("sharedram", ctypes.c_ulong),
        ("bufferram", ctypes.c_ulong),
        ("totalswap", ctypes.c_ulong),
        ("freeswap", ctypes.c_ulong),
        ("procs", ctypes.c_ushort),
        ("pad", ctypes.c_ushort),
        ("totalhigh", ctypes.c_ulong),
        ("freehigh", ctypes.c_ulong),
        ("mem_unit", ctypes.c_uint),
        ("_f", ctypes.c_char * 4),
    ]


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return None if text == "max" else int(text) if text.isdigit() else None


def cgroup_paths(pid: int) -> dict[str, str]:
    """controller -> directory under /sys/fs/cgroup (v1 per controller; v2 as "")."""
    paths = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for controllers, path in charge.memberships(f.read()):
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    return paths


def memory(paths: dict[str, str]) -> tuple[int | None, int | None, int | None]:
    """(limit, usage, memory+swap limit) of the container's memory cgroup, v1 or v2."""
    if "memory" in paths:
        base = f"{CGROUP_ROOT}/memory{paths['memory']}"
        return (
            _read_int(f"{base}/memory.limit_in_bytes"),
            _read_int(f"{base}/memory.usage_in_bytes"),
            _read_int(f"{base}/memory.memsw.limit_in_bytes"),
        )
    base = f"{CGROUP_ROOT}{paths.get('', '/')}"
    limit = _read_int(f"{base}/memory.max")
    swap = _read_int(f"{base}/memory.swap.max")
    both = None if limit is None or swap is None else limit + swap
    return limit, _read_int(f"{base}/memory.current"), both


def tasks(paths: dict[str, str]) -> int | None:
    base = f"{CGROUP_ROOT}/pids{paths['pids']}" if "pids" in paths else None
    base = base or f"{CGROUP_ROOT}{paths.get('', '/')}"
    return _read_int(f"{base}/pids.current")


def uptime_of(pid: int) -> int | None:
    """Seconds since process `pid` started (the container's init: its uptime)."""
    started = start_ticks(pid)
    try:
        with open("/proc/uptime") as f:
            host = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if started is None:
        return None
    return max(0, int(host - started / os.sysconf("SC_CLK_TCK")))


def virtualize(
    real: _Sysinfo,
    limit: int | None,
    usage: int | None,
    swap_limit: int | None,
    uptime: int | None,
    procs: int | None,
) -> tuple[int, ...]:
    """The fields of the container's answer, in bytes (mem_unit 1)."""
    unit = real.mem_unit or 1
    total, free = real.totalram * unit, real.freeram * unit
    swap_total, swap_free = real.totalswap * unit, real.freeswap * unit
    if limit is not None and limit < total:
        total = limit
        free = max(0, limit - (usage or 0))
    if swap_limit is not None and limit is not None and total == limit and swap_limit >= limit:
        swap_total = min(swap_total, swap_limit - limit)
        swap_free = min(swap_free, swap_total)
    return (
        uptime if uptime is not None else 0,
        *real.loads,
        total,
        min(free, total),
        0,
        0,
        swap_total,
        swap_free,
        min(procs if procs is not None else real.procs, 0xFFFF),
        0,
        0,
        0,
        1,
    )


def answer(listener: int, notif: seccomp.Notification, container_dir: str) -> int:
    """Write the container's sysinfo into the caller's buffer; the errno to answer."""
    layout = LAYOUT.get(notif.arch)
    if layout is None:
        return errno.ENOSYS
    real = _Sysinfo()
    try:
        libc.call("sysinfo", ctypes.byref(real))
    except OSError as exc:
        return exc.errno or errno.EFAULT
    try:
        with open(os.path.join(container_dir, "init")) as f:
            init = int(f.read())
        paths = cgroup_paths(notif.pid)
    except (OSError, ValueError):
        return errno.ESRCH
    fields = virtualize(real, *memory(paths), uptime_of(init), tasks(paths))
    if notif.arch == AUDIT_ARCH_I386:  # 32-bit longs: count in pages, as the kernel
        page = 4096
        fields = (
            *fields[:4],
            *(min(v // page, 0xFFFFFFFF) for v in fields[4:10]),
            *fields[10:14],
            page,
        )
    data = layout.pack(*fields)
    try:
        fd = os.open(f"/proc/{notif.pid}/mem", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return errno.ESRCH
    try:
        if not seccomp.is_valid(listener, notif.id):  # opened the caller's, not a reused pid's
            return errno.ESRCH
        written = os.pwrite(fd, data, notif.args[0])
    except OSError:
        return errno.EFAULT
    finally:
        os.close(fd)
    return 0 if written == len(data) else errno.EFAULT
