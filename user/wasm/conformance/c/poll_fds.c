/* poll_oneoff on descriptors of every kind: a file (read and write),
 * stdin (a file here), stdout, a directory, a bad fd; with and without a
 * clock. Events are printed sorted by userdata. A call with several
 * subscriptions subscribes to no file for reading: wasmtime then reports
 * that read event in some runs and not in others (weft always does). */
#include "common.h"
#include <fcntl.h>
#include <stdlib.h>

static __wasi_subscription_t fd_sub(uint64_t ud, int fd, int write) {
    __wasi_subscription_t s;
    memset(&s, 0, sizeof s);
    s.userdata = ud;
    s.u.tag = write ? __WASI_EVENTTYPE_FD_WRITE : __WASI_EVENTTYPE_FD_READ;
    s.u.u.fd_read.file_descriptor = fd;
    return s;
}

static int by_ud(const void *a, const void *b) {
    uint64_t x = ((const __wasi_event_t *)a)->userdata, y = ((const __wasi_event_t *)b)->userdata;
    return x < y ? -1 : x > y;
}

static void poll(const char *label, __wasi_subscription_t *s, int count) {
    __wasi_event_t ev[8];
    __wasi_size_t n = 0;
    int e = __wasi_poll_oneoff(s, ev, count, &n);
    printf("%s: %s, %lu events\n", label, en(e), (unsigned long)n);
    qsort(ev, n, sizeof *ev, by_ud);
    for (__wasi_size_t i = 0; i < n; i++) {
        printf("  userdata %llu type %u error %s", (unsigned long long)ev[i].userdata, ev[i].type, en(ev[i].error));
        if (ev[i].type != __WASI_EVENTTYPE_CLOCK && !ev[i].error)
            printf(" nbytes>0 %s", ev[i].fd_readwrite.nbytes > 0 ? "yes" : "no");
        printf("\n");
    }
}

int main(void) {
    int f = open("b.txt", O_RDWR);
    int d = open("dir", O_RDONLY | O_DIRECTORY);
    int g = open("dir/c.txt", O_RDWR);
    __wasi_subscription_t s[6];
    s[0] = fd_sub(1, f, 0);
    poll("file read", s, 1);
    s[0] = fd_sub(2, f, 1);
    poll("file write", s, 1);
    s[0] = fd_sub(3, 0, 0);
    poll("stdin read", s, 1);
    s[0] = fd_sub(4, 1, 1);
    poll("stdout write", s, 1);
    s[0] = fd_sub(5, d, 0);
    poll("directory read", s, 1);
    s[0] = fd_sub(6, 99, 0);
    poll("fd 99 read", s, 1);
    s[0] = fd_sub(8, g, 1);
    s[1] = fd_sub(9, 1, 1);
    poll("two at once", s, 2);
    s[0] = fd_sub(10, f, 0);
    memset(&s[1], 0, sizeof s[1]);
    s[1].userdata = 11;
    s[1].u.tag = __WASI_EVENTTYPE_CLOCK;
    s[1].u.u.clock.id = __WASI_CLOCKID_MONOTONIC;
    s[1].u.u.clock.timeout = 5000000000ull;
    poll("file and a 5s clock", s, 2);
    return 0;
}
