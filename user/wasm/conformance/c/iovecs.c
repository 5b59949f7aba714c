/* Scatter/gather in one call: fd_read, fd_write, fd_pread and fd_pwrite
 * with several iovecs, some empty. A runtime may move fewer bytes than all
 * the buffers hold (a short transfer); the counts are printed. */
#include "common.h"
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

int main(void) {
    int fd = SHOW("open new.txt", open("new.txt", O_RDWR | O_CREAT, 0644));
    struct iovec v[4] = {{"one ", 4}, {"", 0}, {"two ", 4}, {"three\n", 6}};
    SHOW("writev file", writev(fd, v, 4));
    __wasi_ciovec_t wv[2] = {{(const uint8_t *)"pq", 2}, {(const uint8_t *)"rs", 2}};
    __wasi_size_t n;
    WASI("fd_pwrite 2 iovecs at 20", __wasi_fd_pwrite(fd, wv, 2, 20, &n));
    printf("wrote %lu\n", (unsigned long)n);
    lseek(fd, 0, SEEK_SET);
    char x[3], y[5], z[100];
    struct iovec r[3] = {{x, 3}, {y, 5}, {z, 100}};
    SHOW("readv", readv(fd, r, 3));
    __wasi_iovec_t rv[2] = {{(uint8_t *)x, 3}, {(uint8_t *)y, 5}};
    WASI("fd_pread 2 iovecs at 2", __wasi_fd_pread(fd, rv, 2, 2, &n));
    printf("read %lu\n", (unsigned long)n);
    close(fd);
    show_file("new.txt");
    SHOW("writev stdout", writev(1, v, 4));
    return 0;
}
