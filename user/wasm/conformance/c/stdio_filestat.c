/* fd_filestat_get on the standard streams (stdin is a file here). */
#include "common.h"

int main(void) {
    for (int fd = 0; fd < 3; fd++) {
        __wasi_filestat_t st;
        int e = __wasi_fd_filestat_get(fd, &st);
        printf("fd %d filestat: %s", fd, en(e));
        if (!e)
            printf(" type %s", ftname(st.filetype));
        printf("\n");
    }
    return 0;
}
