/*
 * probe: try one privileged kernel operation, harmlessly, and say what the kernel answered.
 *
 *     probe <check> [path]   prints "ok" (exit 0) or "errno=<NAME>" (exit 1)
 *
 * Every argument is chosen so that a caller the kernel does allow still changes nothing:
 * a module image that is junk, kexec with no files, a BPF program that is loaded and
 * dropped, a software counter, a clock adjustment the kernel rejects as out of range. The
 * new mount API calls act only on the container's own mount namespace.
 * The escape tests run it in a plain-runc control (where the check must get past the
 * permission check) and in an eci --privileged container (where it must not).
 * Built static (`gcc -static -O2`) so it runs in busybox.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/mount.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/mount.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/timex.h>
#include <unistd.h>

static long init_module_junk(const char *path) {
    (void)path;
    static const char junk[] = "this is not an ELF module";
    return syscall(SYS_init_module, junk, sizeof junk, "");
}

static long kexec_no_files(const char *path) {
    (void)path;
    /* bad kernel and initrd fds: fails after the permission check, before any image load */
    return syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL, 0UL);
}

static long bpf_prog_load(const char *path) {
    (void)path;
    struct bpf_insn insns[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0}, /* r0 = 0 */
        {.code = BPF_JMP | BPF_EXIT},                                           /* exit */
    };
    union bpf_attr attr = {
        .prog_type = BPF_PROG_TYPE_SOCKET_FILTER,
        .insn_cnt = 2,
        .insns = (unsigned long)insns,
        .license = (unsigned long)"GPL",
    };
    return syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
}

static long perf_cpu(const char *path) {
    (void)path;
    struct perf_event_attr attr = {
        .type = PERF_TYPE_SOFTWARE,
        .size = sizeof attr,
        .config = PERF_COUNT_SW_CPU_CLOCK,
        .disabled = 1,
    };
    return syscall(SYS_perf_event_open, &attr, -1, 0, -1, 0); /* every task on cpu 0 */
}

static long swapon_junk(const char *path) {
    return syscall(SYS_swapon, path, 0); /* a file without a swap signature */
}

static long adjtimex_bad_tick(const char *path) {
    (void)path;
    /* a tick 10% off is refused as out of range once the caller may set the clock */
    struct timex tx = {.modes = ADJ_TICK, .tick = 0};
    return syscall(SYS_adjtimex, &tx);
}

static long open_tree_clone(const char *path) {
    return syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE);
}

static long fsopen_proc(const char *path) {
    (void)path;
    return syscall(SYS_fsopen, "proc", 0);
}

static long move_mount_clone(const char *path) {
    /* a detached copy of / attached at path */
    long fd = syscall(SYS_open_tree, AT_FDCWD, "/", OPEN_TREE_CLONE);
    if (fd < 0)
        return fd;
    return syscall(SYS_move_mount, (int)fd, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH);
}

static long mount_setattr_ro(const char *path) {
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    return syscall(SYS_mount_setattr, AT_FDCWD, path, 0, &attr, sizeof attr);
}

static long chroot_umount(const char *path) {
    /* chroot without chdir: the cwd stays outside the new root, where the runtime's mounts are */
    mkdir("/jail", 0755);
    if (chroot("/jail") < 0)
        return -1;
    return umount2(path, MNT_DETACH);
}

static const struct {
    const char *name;
    long (*run)(const char *path);
} checks[] = {
    {"init_module", init_module_junk},   {"kexec_file_load", kexec_no_files},
    {"bpf_prog_load", bpf_prog_load},    {"perf_cpu", perf_cpu},
    {"swapon", swapon_junk},             {"adjtimex", adjtimex_bad_tick},
    {"open_tree", open_tree_clone},      {"fsopen", fsopen_proc},
    {"move_mount", move_mount_clone},    {"mount_setattr", mount_setattr_ro},
    {"chroot_umount", chroot_umount},
};

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: probe <check> [path]\n");
        return 2;
    }
    const char *path = argc > 2 ? argv[2] : "/";
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        if (strcmp(argv[1], checks[i].name) != 0)
            continue;
        if (checks[i].run(path) < 0) {
            printf("errno=%s\n", strerrorname_np(errno));
            return 1;
        }
        printf("ok\n");
        return 0;
    }
    fprintf(stderr, "probe: unknown check %s\n", argv[1]);
    return 2;
}
