/* path_open with fdflags DSYNC, RSYNC, SYNC and NONBLOCK: accepted or not,
 * and what fd_fdstat_get reports after. */
#include "common.h"

int main(void) {
    const char *names[] = {"DSYNC", "NONBLOCK", "RSYNC", "SYNC"};
    __wasi_fdflags_t fl[] = {__WASI_FDFLAGS_DSYNC, __WASI_FDFLAGS_NONBLOCK, __WASI_FDFLAGS_RSYNC,
                             __WASI_FDFLAGS_SYNC};
    for (int i = 0; i < 4; i++) {
        __wasi_fd_t fd;
        int e = __wasi_path_open(3, 0, "a.txt", 0, __WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_WRITE, 0,
                                 fl[i], &fd);
        printf("open with %s: %s", names[i], en(e));
        if (!e) {
            __wasi_fdstat_t st;
            int e2 = __wasi_fd_fdstat_get(fd, &st);
            printf(" fdstat %s flags now %u", en(e2), e2 ? 0 : st.fs_flags);
            printf(" close %s", en(__wasi_fd_close(fd)));
        }
        printf("\n");
    }
    return 0;
}
