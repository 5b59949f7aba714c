/* Writing a file: create, write, pwrite inside and past the end (a hole),
 * the position after each, the content. */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

int main(void) {
    int fd = SHOW("create new.txt", open("new.txt", O_WRONLY | O_CREAT, 0644));
    SHOW("write", write(fd, "abcdef", 6));
    SHOW("position", lseek(fd, 0, SEEK_CUR));
    SHOW("pwrite at 2", pwrite(fd, "XY", 2, 2));
    SHOW("position unchanged", lseek(fd, 0, SEEK_CUR));
    SHOW("pwrite at 10 (hole)", pwrite(fd, "Z", 1, 10));
    SHOW("write 0", write(fd, "", 0));
    SHOW("write after the hole", write(fd, "123", 3));
    char buf[4];
    SHOW("read on write-only", read(fd, buf, 4));
    SHOW("close", close(fd));
    show_file("new.txt");
    fd = SHOW("open a.txt read-only", open("a.txt", O_RDONLY));
    SHOW("write on read-only", write(fd, "x", 1));
    SHOW("pwrite on read-only", pwrite(fd, "x", 1, 0));
    close(fd);
    fd = SHOW("open a.txt read-write", open("a.txt", O_RDWR));
    SHOW("write", write(fd, "J", 1));
    SHOW("read after write", read(fd, buf, 4));
    printf("got \"%.4s\"\n", buf);
    close(fd);
    show_file("a.txt");
    return 0;
}
