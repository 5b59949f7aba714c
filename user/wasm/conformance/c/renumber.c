/* fd_renumber: onto an open fd, onto a closed one, onto itself, a
 * preopen, bad fds; the descriptor works under its new number. */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

int main(void) {
    int a = SHOW("open a.txt", open("a.txt", O_RDONLY));
    int b = SHOW("open b.txt", open("b.txt", O_RDONLY));
    WASI("renumber a onto b", __wasi_fd_renumber(a, b));
    char buf[16];
    ssize_t n = SHOW("read b's number", read(b, buf, sizeof buf));
    printf("got \"%.*s\"\n", (int)(n > 0 ? n - 1 : 0), buf);
    SHOW("read a's old number", read(a, buf, sizeof buf));
    WASI("renumber onto itself", __wasi_fd_renumber(b, b));
    WASI("renumber onto a closed fd 20", __wasi_fd_renumber(b, 20));
    WASI("renumber a closed fd", __wasi_fd_renumber(21, b));
    WASI("renumber onto fd 99", __wasi_fd_renumber(b, 99));
    int c = SHOW("open c", open("dir/c.txt", O_RDONLY));
    WASI("renumber c onto stdin", __wasi_fd_renumber(c, 0));
    n = SHOW("read stdin", read(0, buf, sizeof buf));
    printf("got \"%.*s\"\n", (int)(n > 0 ? n - 1 : 0), buf);
    int d = SHOW("open dir", open("dir", O_RDONLY | O_DIRECTORY));
    WASI("renumber dir onto the preopen", __wasi_fd_renumber(d, 3));
    __wasi_prestat_t p;
    WASI("prestat of 3 after", __wasi_fd_prestat_get(3, &p));
    return 0;
}
