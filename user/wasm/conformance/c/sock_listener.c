/* A granted TCP listener (fd 4): its fdstat, accepting with NONBLOCK set
 * and nothing pending (EAGAIN), polling it until a client comes; then the
 * connection: fdstat, sock_recv to the end, sock_send, fd_write, shutdown,
 * poll, recv after the end. The test's client sends "ping 0\n" and closes
 * its side. */
#include "common.h"
#include <unistd.h>

static void show_fdstat(const char *label, int fd) {
    __wasi_fdstat_t st;
    int e = __wasi_fd_fdstat_get(fd, &st);
    printf("%s fdstat: %s", label, en(e));
    if (!e)
        printf(" type %s nonblock %s", ftname(st.fs_filetype), st.fs_flags & __WASI_FDFLAGS_NONBLOCK ? "yes" : "no");
    printf("\n");
}

int main(void) {
    show_fdstat("listener", 4);
    __wasi_prestat_t p;
    WASI("listener prestat", __wasi_fd_prestat_get(4, &p));
    WASI("set NONBLOCK", __wasi_fd_fdstat_set_flags(4, __WASI_FDFLAGS_NONBLOCK));
    show_fdstat("listener", 4);
    __wasi_fd_t conn;
    WASI("accept with nothing pending", __wasi_sock_accept(4, 0, &conn));
    WASI("clear NONBLOCK", __wasi_fd_fdstat_set_flags(4, 0));
    printf("waiting for a client on listener 0\n");
    fflush(stdout);
    __wasi_subscription_t ls[2];
    memset(ls, 0, sizeof ls);
    ls[0].userdata = 40;
    ls[0].u.tag = __WASI_EVENTTYPE_FD_READ;
    ls[0].u.u.fd_read.file_descriptor = 4;
    ls[1].userdata = 41;
    ls[1].u.tag = __WASI_EVENTTYPE_CLOCK;
    ls[1].u.u.clock.id = __WASI_CLOCKID_MONOTONIC;
    ls[1].u.u.clock.timeout = 3000000000ull;
    __wasi_event_t lev[2];
    __wasi_size_t ln;
    WASI("poll the listener (3s clock beside)", __wasi_poll_oneoff(ls, lev, 2, &ln));
    printf("first event userdata %llu error %s\n", (unsigned long long)lev[0].userdata, en(lev[0].error));
    WASI("accept", __wasi_sock_accept(4, 0, &conn));
    printf("new descriptor: %s\n", conn > 4 ? "yes" : "no");
    show_fdstat("connection", conn);
    char buf[64];
    size_t got = 0;
    for (;;) {
        __wasi_iovec_t iov = {(uint8_t *)buf + got, sizeof buf - got};
        __wasi_size_t n;
        __wasi_roflags_t ro;
        int e = __wasi_sock_recv(conn, &iov, 1, 0, &n, &ro);
        if (e || n == 0) {
            printf("recv ended: %s\n", en(e));
            break;
        }
        got += n;
    }
    printf("received \"%.*s\"\n", (int)(got ? got - 1 : 0), buf);
    __wasi_ciovec_t out = {(const uint8_t *)"pong ", 5};
    __wasi_size_t n;
    WASI("send", __wasi_sock_send(conn, &out, 1, 0, &n));
    printf("sent %lu\n", (unsigned long)n);
    SHOW("fd_write on the connection", write(conn, buf, got));
    __wasi_subscription_t s;
    memset(&s, 0, sizeof s);
    s.userdata = 1;
    s.u.tag = __WASI_EVENTTYPE_FD_READ;
    s.u.u.fd_read.file_descriptor = conn;
    __wasi_event_t ev;
    WASI("poll read at the end", __wasi_poll_oneoff(&s, &ev, 1, &n));
    printf("events %lu error %s\n", (unsigned long)n, en(ev.error));
    WASI("shutdown WR", __wasi_sock_shutdown(conn, __WASI_SDFLAGS_WR));
    __wasi_iovec_t iov = {(uint8_t *)buf, sizeof buf};
    __wasi_roflags_t ro;
    WASI("recv after the end", __wasi_sock_recv(conn, &iov, 1, 0, &n, &ro));
    printf("got %lu\n", (unsigned long)n);
    WASI("close", __wasi_fd_close(conn));
    return 0;
}
