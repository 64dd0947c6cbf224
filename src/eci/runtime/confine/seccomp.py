"""Seccomp user notification, through ioctl and ctypes (stdlib only).

- `receive(fd)`: the next notification of a listener fd (`Notification`: id, pid, syscall);
- `respond(fd, id, error)`: answer it (0: the call returns 0; else it fails with `error`);
- `is_valid(fd, id)`: the notifying task still waits (its pid was not reused);
- `read_string(mem_fd, address)`: a NUL-terminated string from the task's memory;
- `pidfd_getfd(pidfd, fd)`: a copy of another process's fd (the supervisor takes a listener
  back from its keeper after a restart, and a container's `/proc/self/fd/N` paths);
- `filters_of(pid)` / `install(program)`: a process's seccomp filters (classic BPF, read
  with ptrace) and laying one on this process: what eci runs for a container (the `docker
  cp` extractor) is filtered as the container's own processes are.

Structures (linux/seccomp.h): seccomp_notif {u64 id; u32 pid; u32 flags; seccomp_data {int nr;
u32 arch; u64 ip; u64 args[6]}} is 80 bytes; seccomp_notif_resp {u64 id; s64 val; s32 error;
u32 flags} is 24.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import struct
import time

from eci.runtime.linux import libc
from eci.runtime.linux.constants import (
    AT_EMPTY_PATH,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_SECCOMP,
    PTRACE_DETACH,
    PTRACE_INTERRUPT,
    PTRACE_SECCOMP_GET_FILTER,
    PTRACE_SEIZE,
    SECCOMP_MODE_FILTER,
    STATX_MNT_ID,
    WALL,
)
from eci.runtime.linux.syscalls import AUDIT_ARCH_X86_64, TABLE, X32_SYSCALL_BIT

#: ioctls of a listener fd (linux/seccomp.h), numbered from the sizes of the structures below
IOCTL_NOTIF_RECV = 0xC0502100
IOCTL_NOTIF_SEND = 0xC0182101
IOCTL_NOTIF_ID_VALID = 0x40082102
NOTIF = struct.Struct("=QIIiIQ6Q")
RESPONSE = struct.Struct("=QqiI")
#: a filter program instruction: u16 code, u8 jt, u8 jf, u32 k
INSTRUCTION = 8

#: the calls the container's filter sends to the supervisor (spec.SUPERVISED_SYSCALLS)
VETTED = ("mount", "umount", "umount2", "sysinfo")
#: (arch, nr) → the syscall the supervisor vets; anything else it is sent is refused
SYSCALLS = {
    (arch, nr): name
    for arch, numbers in TABLE.values()
    for name, nr in numbers.items()
    if name in VETTED
}


class Notification:
    __slots__ = ("arch", "args", "id", "nr", "pid")

    def __init__(self, raw: bytes) -> None:
        fields = NOTIF.unpack(raw)
        self.id, self.pid, _flags, self.nr, self.arch, _ip = fields[:6]
        self.args = fields[6:]

    @property
    def syscall(self) -> str | None:
        nr = self.nr & ~X32_SYSCALL_BIT if self.arch == AUDIT_ARCH_X86_64 else self.nr
        return SYSCALLS.get((self.arch, nr))


def receive(fd: int) -> Notification:
    buf = bytearray(NOTIF.size)  # the kernel wants it zeroed
    fcntl.ioctl(fd, IOCTL_NOTIF_RECV, buf, True)
    return Notification(bytes(buf))


def respond(fd: int, notif_id: int, error: int, value: int = 0) -> None:
    """`error` is a positive errno (0 for success); the kernel wants it negated."""
    fcntl.ioctl(fd, IOCTL_NOTIF_SEND, bytearray(RESPONSE.pack(notif_id, value, -error, 0)), True)


def is_valid(fd: int, notif_id: int) -> bool:
    try:
        fcntl.ioctl(fd, IOCTL_NOTIF_ID_VALID, bytearray(struct.pack("=Q", notif_id)), True)
        return True
    except OSError:
        return False


def read_string(mem_fd: int, address: int, limit: int = 4096) -> str | None:
    """The NUL-terminated string at `address` (None for a NULL pointer)."""
    if address == 0:
        return None
    data = b""
    while len(data) < limit:
        # never read across a page boundary at once: the next page may be unmapped
        chunk = min(limit - len(data), 4096 - (address + len(data)) % 4096)
        part = os.pread(mem_fd, chunk, address + len(data))
        if not part:
            break
        end = part.find(b"\0")
        if end >= 0:
            return (data + part[:end]).decode("utf-8", "surrogateescape")
        data += part
    raise OSError(errno.EINVAL, f"no string terminator within {limit} bytes")


def pidfd_getfd(pidfd: int, fd: int) -> int:
    result = libc.syscall("pidfd_getfd", pidfd, fd, 0)
    os.set_inheritable(result, False)
    return int(result)


def mount_id(fd: int) -> int:
    """The id of the mount an open fd lies in (statx STATX_MNT_ID, Linux 5.8)."""
    buf = ctypes.create_string_buffer(256)
    libc.syscall("statx", fd, b"", AT_EMPTY_PATH, STATX_MNT_ID, buf)
    mask = struct.unpack_from("=I", buf.raw, 0)[0]
    if not mask & STATX_MNT_ID:
        raise OSError(errno.EOPNOTSUPP, "statx: no mount id")
    return int(struct.unpack_from("=Q", buf.raw, 0x90)[0])


def _ptrace(request: int, pid: int, addr: int, data: object) -> int:
    what = f"ptrace {request:#x} of pid {pid}"
    return libc.call("ptrace", request, pid, ctypes.c_void_p(addr), data, what=what)


def filters_of(pid: int, timeout: float = 2.0) -> list[bytes]:
    """The seccomp filters of process `pid`, oldest first, as classic BPF programs. The process
    is stopped for the instant it takes (ptrace); one that does not stop within `timeout`
    (frozen, as a paused container's are) is an error."""
    _ptrace(PTRACE_SEIZE, pid, 0, None)
    try:
        _ptrace(PTRACE_INTERRUPT, pid, 0, None)
        deadline = time.monotonic() + timeout
        while os.waitpid(pid, WALL | os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                raise OSError(errno.EAGAIN, f"pid {pid} did not stop (is it paused?)")
            time.sleep(0.001)
        programs: list[bytes] = []
        while True:
            try:
                count = _ptrace(PTRACE_SECCOMP_GET_FILTER, pid, len(programs), None)
            except OSError as exc:
                # ENOENT: no more filters; EINVAL at the first: not filtered at all
                if exc.errno == errno.ENOENT or (exc.errno == errno.EINVAL and not programs):
                    return programs[::-1]
                raise
            buf = ctypes.create_string_buffer(count * INSTRUCTION)
            _ptrace(PTRACE_SECCOMP_GET_FILTER, pid, len(programs), buf)
            programs.append(buf.raw)
    finally:
        with contextlib.suppress(OSError):  # not stopped: let go when this process exits
            _ptrace(PTRACE_DETACH, pid, 0, None)


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def no_new_privileges() -> None:
    libc.call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, what="prctl PR_SET_NO_NEW_PRIVS")


def install(program: bytes) -> None:
    """Filter this process's system calls with `program` (no_new_privileges first)."""
    fprog = _Program(len(program) // INSTRUCTION, program)
    args = (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0)
    libc.call("prctl", *args, what="prctl PR_SET_SECCOMP")
