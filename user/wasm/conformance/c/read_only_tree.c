/* A tree granted read-only: reads work, every change is refused. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    int fd = SHOW("open a.txt read-only", open("a.txt", O_RDONLY));
    char buf[16];
    SHOW("read", read(fd, buf, sizeof buf));
    close(fd);
    SHOW("open a.txt for writing", open("a.txt", O_WRONLY));
    SHOW("open a.txt O_RDWR", open("a.txt", O_RDWR));
    SHOW("create new.txt", open("new.txt", O_WRONLY | O_CREAT, 0644));
    SHOW("O_TRUNC", open("b.txt", O_WRONLY | O_TRUNC));
    SHOW("mkdir", mkdir("newdir", 0755));
    SHOW("rmdir emptydir", rmdir("emptydir"));
    SHOW("unlink a.txt", unlink("a.txt"));
    SHOW("rename", rename("a.txt", "z.txt"));
    SHOW("symlink", symlink("a.txt", "s"));
    SHOW("link", link("a.txt", "h"));
    struct stat st;
    SHOW("stat", stat("dir/c.txt", &st));
    SHOW("opendir-ish open of dir", open("dir", O_RDONLY | O_DIRECTORY));
    SHOW("unlink missing", unlink("missing"));
    return 0;
}
