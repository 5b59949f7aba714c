/* fd_fdstat_set_flags: turning APPEND on and off on a file, NONBLOCK, and
 * on a bad descriptor; fcntl F_GETFL/F_SETFL. */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

static void flags(int fd) {
    __wasi_fdstat_t st;
    int e = __wasi_fd_fdstat_get(fd, &st);
    printf("  fdstat %s flags %u\n", en(e), e ? 0 : st.fs_flags);
}

int main(void) {
    int fd = SHOW("open a.txt rw", open("a.txt", O_RDWR));
    flags(fd);
    WASI("set APPEND", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_APPEND));
    flags(fd);
    SHOW("write", write(fd, "X", 1));
    WASI("clear flags", __wasi_fd_fdstat_set_flags(fd, 0));
    flags(fd);
    lseek(fd, 0, SEEK_SET);
    SHOW("write at 0", write(fd, "Y", 1));
    WASI("set NONBLOCK", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_NONBLOCK));
    flags(fd);
    WASI("set SYNC", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_SYNC));
    flags(fd);
    printf("F_GETFL accmode rdwr: %s\n", (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR ? "yes" : "no");
    SHOW("F_SETFL O_APPEND", fcntl(fd, F_SETFL, O_APPEND));
    flags(fd);
    close(fd);
    show_file("a.txt");
    WASI("set flags on fd 99", __wasi_fd_fdstat_set_flags(99, 0));
    WASI("set APPEND on the root dir", __wasi_fd_fdstat_set_flags(3, __WASI_FDFLAGS_APPEND));
    WASI("set NONBLOCK on stdout", __wasi_fd_fdstat_set_flags(1, __WASI_FDFLAGS_NONBLOCK));
    return 0;
}
