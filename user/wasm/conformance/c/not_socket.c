/* The socket calls on descriptors that are not sockets: a file, a
 * directory, stdout. */
#include "common.h"
#include <fcntl.h>
#include <sys/socket.h>

int main(void) {
    int fds[] = {open("a.txt", O_RDONLY), open("dir", O_RDONLY | O_DIRECTORY), 1};
    const char *names[] = {"file", "directory", "stdout"};
    for (int i = 0; i < 3; i++) {
        uint8_t b[8] = "sendme\n";
        __wasi_iovec_t iov = {b, 8};
        __wasi_ciovec_t ciov = {b, 8};
        __wasi_size_t n;
        __wasi_roflags_t ro;
        __wasi_fd_t fd;
        printf("%s: shutdown %s", names[i], en(__wasi_sock_shutdown(fds[i], __WASI_SDFLAGS_RD | __WASI_SDFLAGS_WR)));
        printf(" accept %s", en(__wasi_sock_accept(fds[i], 0, &fd)));
        printf(" recv %s", en(__wasi_sock_recv(fds[i], &iov, 1, 0, &n, &ro)));
        printf(" send %s\n", en(__wasi_sock_send(fds[i], &ciov, 1, 0, &n)));
    }
    SHOW("shutdown() on a file", shutdown(fds[0], SHUT_RDWR));
    SHOW("send() on a file", send(fds[0], "x", 1, 0));
    return 0;
}
