/* fd_seek and fd_tell: every whence, negative results, past the end, then
 * writing there. */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

int main(void) {
    int fd = SHOW("open b.txt rw", open("b.txt", O_RDWR));
    SHOW("SEEK_SET 4", lseek(fd, 4, SEEK_SET));
    SHOW("SEEK_CUR 2", lseek(fd, 2, SEEK_CUR));
    SHOW("SEEK_CUR -1", lseek(fd, -1, SEEK_CUR));
    SHOW("SEEK_END 0", lseek(fd, 0, SEEK_END));
    SHOW("SEEK_END -3", lseek(fd, -3, SEEK_END));
    SHOW("SEEK_SET -1", lseek(fd, -1, SEEK_SET));
    SHOW("SEEK_CUR -100", lseek(fd, -100, SEEK_CUR));
    SHOW("position after failures", lseek(fd, 0, SEEK_CUR));
    __wasi_filesize_t pos;
    WASI("fd_tell", __wasi_fd_tell(fd, &pos));
    printf("tell %llu\n", (unsigned long long)pos);
    SHOW("SEEK_SET 20 (past end)", lseek(fd, 20, SEEK_SET));
    char c;
    SHOW("read past end", read(fd, &c, 1));
    SHOW("write past end", write(fd, "!", 1));
    close(fd);
    show_file("b.txt");
    SHOW("seek on stdout", lseek(1, 0, SEEK_CUR));
    WASI("fd_tell on fd 99", __wasi_fd_tell(99, &pos));
    return 0;
}
