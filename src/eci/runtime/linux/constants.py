"""The kernel's flag values eci passes to system calls (linux/mount.h, sched.h, fcntl.h, …).

One place for them, named as the kernel names them, so a call reads like its man page. They
are the same on every architecture eci runs on (x86_64, aarch64); the system call *numbers*,
which are not, are in `syscalls`. Python's os module has some (`os.O_PATH`, `os.CLONE_*` from
3.12): those in os are used from os.
"""

# mount(2) flags (MS_*) and the magic number old programs put in their high bits
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_STRICTATIME = 1 << 24
#: a propagation change (one of these in the flags makes a mount(2) nothing else)
MS_PROPAGATION = MS_UNBINDABLE | MS_PRIVATE | MS_SLAVE | MS_SHARED
#: "magic" high bits some programs still pass; the kernel drops them (left in, the top
#: bits would read as MS_PRIVATE|MS_SLAVE)
MS_MGC_MSK = 0xFFFF0000
MS_MGC_VAL = 0xC0ED0000

# umount2(2) flags
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

# the *at(2) calls' flags and the "current directory" fd
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000

# the new mount API: open_tree(2), move_mount(2), mount_setattr(2), fsopen/fsconfig/fsmount
OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x00100000
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6

# openat2(2) resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08

# statx(2): the mask bit of stx_mnt_id (Linux 5.8)
STATX_MNT_ID = 0x1000

# namespace types (unshare(2), setns(2))
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# capget(2)/capset(2): 64-bit capability sets, in two 32-bit halves
LINUX_CAPABILITY_VERSION_3 = 0x20080522

# prctl(2), ptrace(2), seccomp
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_SECCOMP_GET_FILTER = 0x420C
SECCOMP_MODE_FILTER = 2
#: waitpid(2) option: wait for any child, clone or not (a ptrace-stopped task)
WALL = 0x40000000
