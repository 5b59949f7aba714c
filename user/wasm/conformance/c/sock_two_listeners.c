/* Two granted listeners (fds 4 and 5): a client on each, served in turn,
 * the second first. Each client sends "ping K\n" and closes its side; the
 * program answers "listener K got: ..." and closes. */
#include "common.h"
#include <unistd.h>

static void serve(int fd, int k) {
    printf("waiting for a client on listener %d\n", k);
    fflush(stdout);
    __wasi_fd_t conn;
    if (WASI("accept", __wasi_sock_accept(fd, 0, &conn)))
        return;
    char buf[64];
    size_t got = 0;
    ssize_t n;
    while ((n = read(conn, buf + got, sizeof buf - got)) > 0)
        got += n;
    printf("listener %d received \"%.*s\"\n", k, (int)(got ? got - 1 : 0), buf);
    char reply[96];
    int len = snprintf(reply, sizeof reply, "listener %d got: %.*s", k, (int)got, buf);
    SHOW("write", write(conn, reply, len));
    SHOW("close", close(conn));
}

int main(void) {
    __wasi_fdstat_t st;
    for (int fd = 4; fd <= 6; fd++) {
        int e = __wasi_fd_fdstat_get(fd, &st);
        printf("fd %d: %s %s\n", fd, en(e), e ? "" : ftname(st.fs_filetype));
    }
    serve(5, 1);
    serve(4, 0);
    return 0;
}
