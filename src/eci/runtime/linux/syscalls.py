"""System call numbers per architecture, and the audit architecture seccomp reports them with.

Calls older than Linux 5.1 have each architecture's own numbers (statx is 332 on x86_64, 291
on aarch64), and a wrong one makes a different call, silently. So there is one table, chosen
by the machine this process runs on (`os.uname().machine`), and an architecture it does not
list is an error that names it, never a guess. The seccomp supervisor reads the same table
the other way round: a notification carries (audit arch, number) of the caller's ABI, which
on an x86_64 host may be i386's.
"""

from __future__ import annotations

import errno
import os

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7
#: set in an x86_64 call's number by the x32 ABI (which shares x86_64's audit arch)
X32_SYSCALL_BIT = 0x40000000

#: calls numbered alike on every architecture (from 424, Linux 5.1, the tables are one)
_UNIFIED = {
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "openat2": 437,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
}

#: machine (as os.uname() names it) or ABI -> (its AUDIT_ARCH_*, call name -> number), for
#: the calls eci makes and those the supervisor vets. "i386" is the 32-bit x86 ABI, which an
#: x86_64 host runs as well.
TABLE: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        AUDIT_ARCH_X86_64,
        {"mount": 165, "umount2": 166, "sysinfo": 99, "statx": 332, **_UNIFIED},
    ),
    "i386": (
        AUDIT_ARCH_I386,
        {"mount": 21, "umount": 22, "umount2": 52, "sysinfo": 116, "statx": 383, **_UNIFIED},
    ),
    "aarch64": (
        AUDIT_ARCH_AARCH64,
        {"mount": 40, "umount2": 39, "sysinfo": 179, "statx": 291, **_UNIFIED},
    ),
}

#: the ABIs a machine runs, as seccomp profiles name them: a container's filter must name
#: each (a 32-bit call must not slip by)
SECCOMP_ARCHES = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "aarch64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
}


def numbers(machine: str) -> dict[str, int]:
    """The call numbers of `machine`; OSError(ENOSYS) naming it when the table has none."""
    try:
        return TABLE[machine][1]
    except KeyError:
        known = ", ".join(sorted(TABLE))
        message = f"no system call numbers for machine {machine!r} (known: {known})"
        raise OSError(errno.ENOSYS, message) from None


def number(name: str, machine: str | None = None) -> int:
    """The number of call `name` on `machine` (default: this one); OSError(ENOSYS) if unknown."""
    machine = machine or os.uname().machine
    try:
        return numbers(machine)[name]
    except KeyError:
        raise OSError(errno.ENOSYS, f"no number for system call {name!r} on {machine}") from None
