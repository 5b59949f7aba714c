/* O_APPEND: writes go to the end whatever the position; pwrite on an
 * append file; fd_fdstat_get shows the flag; O_APPEND with O_TRUNC. */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

int main(void) {
    int fd = SHOW("open b.txt O_APPEND", open("b.txt", O_WRONLY | O_APPEND));
    __wasi_fdstat_t st;
    WASI("fdstat", __wasi_fd_fdstat_get(fd, &st));
    printf("append flag %s\n", st.fs_flags & __WASI_FDFLAGS_APPEND ? "set" : "clear");
    SHOW("write", write(fd, "four\n", 5));
    SHOW("seek to 0", lseek(fd, 0, SEEK_SET));
    SHOW("write after seek", write(fd, "five\n", 5));
    SHOW("position", lseek(fd, 0, SEEK_CUR));
    SHOW("pwrite at 0", pwrite(fd, "PW\n", 3, 0));
    close(fd);
    show_file("b.txt");
    fd = SHOW("open new file O_CREAT|O_APPEND|O_RDWR", open("n.txt", O_RDWR | O_CREAT | O_APPEND, 0644));
    SHOW("write", write(fd, "abc", 3));
    lseek(fd, 0, SEEK_SET);
    char buf[8];
    SHOW("read from 0", read(fd, buf, 8));
    close(fd);
    show_file("n.txt");
    SHOW("O_APPEND|O_TRUNC", fd = open("dir/c.txt", O_WRONLY | O_APPEND | O_TRUNC));
    SHOW("write", write(fd, "t\n", 2));
    close(fd);
    show_file("dir/c.txt");
    return 0;
}
