/* fd_advise with each advice on a file; on a directory, stdout and a bad
 * fd. */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

int main(void) {
    int fd = open("b.txt", O_RDONLY);
    const char *names[] = {"NORMAL", "SEQUENTIAL", "RANDOM", "WILLNEED", "DONTNEED", "NOREUSE"};
    for (int a = 0; a < 6; a++) {
        printf("advise %s: ", names[a]);
        printf("%s\n", en(__wasi_fd_advise(fd, 0, 10, a)));
    }
    WASI("advise past the end", __wasi_fd_advise(fd, 1000, 10, 0));
    WASI("advise length 0", __wasi_fd_advise(fd, 0, 0, 0));
    int d = open("dir", O_RDONLY | O_DIRECTORY);
    WASI("advise on a directory", __wasi_fd_advise(d, 0, 10, 0));
    WASI("advise on stdout", __wasi_fd_advise(1, 0, 10, 0));
    WASI("advise on fd 99", __wasi_fd_advise(99, 0, 10, 0));
    SHOW("posix_fadvise", posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL));
    return 0;
}
