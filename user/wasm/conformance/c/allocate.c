/* fd_allocate (posix_fallocate): growing a file, inside it, zero length, on
 * a read-only fd, a directory and a bad fd. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    int fd = open("b.txt", O_RDWR);
    struct stat st;
    WASI("allocate 0..100", __wasi_fd_allocate(fd, 0, 100));
    fstat(fd, &st);
    printf("size %lld\n", (long long)st.st_size);
    WASI("allocate 2..4 (inside)", __wasi_fd_allocate(fd, 2, 2));
    WASI("allocate length 0", __wasi_fd_allocate(fd, 0, 0));
    close(fd);
    fd = open("a.txt", O_RDONLY);
    WASI("allocate on a read-only fd", __wasi_fd_allocate(fd, 0, 100));
    close(fd);
    fd = open("dir", O_RDONLY | O_DIRECTORY);
    WASI("allocate on a directory", __wasi_fd_allocate(fd, 0, 100));
    WASI("allocate on fd 99", __wasi_fd_allocate(99, 0, 100));
    return 0;
}
