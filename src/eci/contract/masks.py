"""What of procfs and sysfs a container sees masked, read-only or virtualized by lxcfs.

The runtime shim puts these in every container's spec, and the mount supervisor applies the
same to a procfs or sysfs mounted inside the container later; the tests of both sides check
against these tables. Names are relative to the filesystem's root. Stdlib-free: the runtime
imports it.
"""

#: procfs files lxcfs virtualizes (the container's own memory, cpus and uptime)
LXCFS_PROC_FILES = ("cpuinfo", "diskstats", "loadavg", "meminfo", "stat", "swaps", "uptime")
#: the sysfs file lxcfs virtualizes
LXCFS_SYS_FILES = ("devices/system/cpu/online",)
#: procfs files and directories masked in every container (Docker's defaults and more)
MASKED_PROC_FILES = (
    "interrupts",
    "kcore",
    "keys",
    "latency_stats",
    "sched_debug",
    "timer_list",
    "timer_stats",
)
MASKED_PROC_DIRS = ("acpi", "asound", "scsi")
#: sysfs directories masked in every container
MASKED_SYS_DIRS = ("firmware", "devices/virtual/powercap")
#: procfs paths read-only in every container (/proc/sys stays as Docker asked: the user
#: namespace already makes the host's sysctls unwritable, and DinD writes its own net.*)
READONLY_PROC = ("bus", "fs", "irq", "sysrq-trigger")
