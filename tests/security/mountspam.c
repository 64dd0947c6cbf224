/*
 * mountspam: N threads, each mounting a tmpfs on /spam/<n> and unmounting it, forever.
 *
 *     mountspam <threads>
 *
 * The load of issue 15's finding 5: every call is sent to eci's mount supervisor, which
 * has it vetted and made by a helper on the host. One process, one pid per thread: a
 * container's pids limit is left for those helpers. Built static (`gcc -static -pthread`)
 * so it runs in busybox.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>

static void *spam(void *arg) {
    char path[64];
    snprintf(path, sizeof path, "/spam/%ld", (long)arg);
    mkdir(path, 0755);
    for (;;) {
        if (mount("spam", path, "tmpfs", 0, "size=4k") == 0)
            umount2(path, 0);
    }
    return NULL;
}

int main(int argc, char **argv) {
    long threads = argc > 1 ? atol(argv[1]) : 16;
    pthread_t thread;
    mkdir("/spam", 0755);
    for (long i = 1; i < threads; i++)
        if (pthread_create(&thread, NULL, spam, (void *)i) != 0)
            return 1;
    spam((void *)0);
    return 0;
}
