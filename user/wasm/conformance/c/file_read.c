/* Reading a file: whole, in pieces, pread at offsets, at and past the end,
 * zero-length reads. */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

int main(void) {
    int fd = SHOW("open b.txt", open("b.txt", O_RDONLY));
    char buf[64];
    ssize_t n = SHOW("read 4", read(fd, buf, 4));
    printf("got \"%.*s\"\n", (int)n, buf);
    n = SHOW("read rest", read(fd, buf, sizeof buf));
    printf("got %zd bytes\n", n);
    SHOW("read at end", read(fd, buf, sizeof buf));
    SHOW("read 0", read(fd, buf, 0));
    n = SHOW("pread 3 at 4", pread(fd, buf, 3, 4));
    printf("got \"%.*s\"\n", (int)n, buf);
    SHOW("pread at end", pread(fd, buf, 3, 14));
    SHOW("pread past end", pread(fd, buf, 3, 1000));
    SHOW("pread negative", pread(fd, buf, 3, -1));
    SHOW("position unchanged by pread", lseek(fd, 0, SEEK_CUR));
    SHOW("close", close(fd));
    fd = SHOW("open empty.txt", open("empty.txt", O_RDONLY));
    SHOW("read empty", read(fd, buf, sizeof buf));
    return 0;
}
