/* Positional and metadata calls on the standard streams: pread on stdin,
 * pwrite on stdout, fd_tell, set_size, set_times, advise. */
#include "common.h"
#include <unistd.h>

int main(void) {
    char buf[8];
    SHOW("pread stdin", pread(0, buf, 4, 0));
    SHOW("read stdin", read(0, buf, 4));
    printf("got \"%.4s\"\n", buf);
    SHOW("pwrite stdout", pwrite(1, "xx\n", 3, 0));
    __wasi_filesize_t pos;
    WASI("fd_tell stdout", __wasi_fd_tell(1, &pos));
    WASI("fd_seek stdin", __wasi_fd_seek(0, 0, __WASI_WHENCE_CUR, &pos));
    WASI("fd_filestat_set_size stdin", __wasi_fd_filestat_set_size(0, 0));
    WASI("fd_filestat_set_times stdout", __wasi_fd_filestat_set_times(1, 0, 0, __WASI_FSTFLAGS_MTIM_NOW));
    WASI("fd_readdir stdin", __wasi_fd_readdir(0, (uint8_t *)buf, sizeof buf, 0, (__wasi_size_t *)&pos));
    return 0;
}
