/* Byte I/O on a directory descriptor: read, write, pread, seek, sync. */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

int main(void) {
    int d = SHOW("open dir", open("dir", O_RDONLY | O_DIRECTORY));
    char buf[16];
    SHOW("read", read(d, buf, sizeof buf));
    SHOW("pread", pread(d, buf, sizeof buf, 0));
    SHOW("write", write(d, "x", 1));
    SHOW("lseek", lseek(d, 0, SEEK_SET));
    SHOW("lseek SEEK_END", lseek(d, 0, SEEK_END));
    __wasi_filesize_t pos;
    WASI("fd_tell", __wasi_fd_tell(d, &pos));
    SHOW("fsync", fsync(d));
    SHOW("fdatasync", fdatasync(d));
    SHOW("ftruncate", ftruncate(d, 0));
    SHOW("read the preopen", read(3, buf, sizeof buf));
    return 0;
}
