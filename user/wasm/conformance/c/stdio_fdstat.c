/* fd_fdstat_get and fd_filestat_get on the standard streams: file type,
 * flags; isatty. */
#include "common.h"
#include <unistd.h>

int main(void) {
    for (int fd = 0; fd < 3; fd++) {
        __wasi_fdstat_t st;
        int e = __wasi_fd_fdstat_get(fd, &st);
        printf("fd %d fdstat: %s", fd, en(e));
        if (!e)
            printf(" type %s flags %u", ftname(st.fs_filetype), st.fs_flags);
        printf("\n");
        printf("fd %d isatty %d\n", fd, isatty(fd));
    }
    return 0;
}
