/* Closing the preopen: later path calls have no directory to resolve in. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    WASI("fd_close 3", __wasi_fd_close(3));
    __wasi_prestat_t p;
    WASI("prestat 3 after", __wasi_fd_prestat_get(3, &p));
    struct stat st;
    SHOW("stat a.txt", stat("a.txt", &st));
    SHOW("open a.txt", open("a.txt", O_RDONLY));
    __wasi_fd_t fd;
    WASI("path_open on 3", __wasi_path_open(3, 0, "a.txt", 0, __WASI_RIGHTS_FD_READ, 0, 0, &fd));
    return 0;
}
