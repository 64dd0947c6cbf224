"""Capability numbers and names, to read the host's bounding set (CapBnd in /proc/self/status)."""

from __future__ import annotations

CAP_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip


def names_in_mask(mask: int) -> frozenset[str]:
    """Names of the capabilities whose bits are set in `mask` (unknown high bits ignored)."""
    return frozenset(name for bit, name in enumerate(CAP_NAMES) if mask >> bit & 1)


def capability_set(proc_status: str, kind: str) -> frozenset[str]:
    """One set (`kind`: CapBnd, CapEff, …) from the text of /proc/<pid>/status."""
    for line in proc_status.splitlines():
        if line.startswith(f"{kind}:"):
            return names_in_mask(int(line.split()[1], 16))
    raise ValueError(f"no {kind} line in the status text")


def bounding_set(proc_status: str) -> frozenset[str]:
    """The bounding set from the text of /proc/<pid>/status."""
    return capability_set(proc_status, "CapBnd")
