/*
 * idprobe: say which ids it runs with and, given a path, create that file with them.
 *
 *     idprobe [path]   prints "ruid=R euid=E rgid=G egid=F", then "wrote" or "errno=<NAME>"
 *
 * The host-rootfs tests plant it setuid in a container: run by a non-root user inside the
 * container it must gain its owner's ids (setuid works there); run by a local user on the
 * host through the container's host-side mount it must not run at all.
 * Built static (`gcc -static -O2`) so it runs in busybox.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    printf("ruid=%d euid=%d rgid=%d egid=%d\n", (int)getuid(), (int)geteuid(), (int)getgid(),
           (int)getegid());
    if (argc < 2)
        return 0;
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, "planted\n", 8) != 8) {
        printf("errno=%s\n", strerrorname_np(errno));
        return 1;
    }
    close(fd);
    printf("wrote\n");
    return 0;
}
