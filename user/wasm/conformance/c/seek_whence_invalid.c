/* fd_seek with a whence no preview-1 whence has (3). */
#include "common.h"
#include <fcntl.h>

int main(void) {
    int fd = SHOW("open a.txt", open("a.txt", O_RDONLY));
    __wasi_filesize_t pos;
    WASI("fd_seek whence 3", __wasi_fd_seek(fd, 0, 3, &pos));
    return 0;
}
