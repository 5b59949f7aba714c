/* fd_filestat_set_size: shrinking, growing (zeros), on a read-only fd, a
 * directory, negative sizes; truncate() by path. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    int fd = SHOW("open b.txt rw", open("b.txt", O_RDWR));
    SHOW("ftruncate 3", ftruncate(fd, 3));
    struct stat st;
    fstat(fd, &st);
    printf("size %lld\n", (long long)st.st_size);
    SHOW("position kept", lseek(fd, 0, SEEK_CUR));
    SHOW("ftruncate 10", ftruncate(fd, 10));
    fstat(fd, &st);
    printf("size %lld\n", (long long)st.st_size);
    SHOW("ftruncate -1", ftruncate(fd, -1));
    close(fd);
    show_file("b.txt");
    fd = open("a.txt", O_RDONLY);
    SHOW("ftruncate read-only fd", ftruncate(fd, 0));
    close(fd);
    SHOW("truncate by path", truncate("dir/c.txt", 1));
    show_file("dir/c.txt");
    SHOW("truncate a dir", truncate("dir", 0));
    SHOW("truncate missing", truncate("missing", 0));
    WASI("fd_filestat_set_size on stdout", __wasi_fd_filestat_set_size(1, 0));
    WASI("fd_filestat_set_size on fd 99", __wasi_fd_filestat_set_size(99, 0));
    return 0;
}
