/* path_open's O_CREAT, O_EXCL, O_TRUNC and O_DIRECTORY edge cases. */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

int main(void) {
    SHOW("O_CREAT|O_EXCL existing", open("a.txt", O_WRONLY | O_CREAT | O_EXCL, 0644));
    int fd = SHOW("O_CREAT|O_EXCL new", open("x.txt", O_WRONLY | O_CREAT | O_EXCL, 0644));
    close(fd);
    SHOW("O_CREAT|O_EXCL on a dangling symlink", open("dangling", O_WRONLY | O_CREAT | O_EXCL, 0644));
    SHOW("O_CREAT|O_EXCL on a symlink", open("link-file", O_WRONLY | O_CREAT | O_EXCL, 0644));
    SHOW("O_CREAT in a missing directory", open("nodir/x.txt", O_WRONLY | O_CREAT, 0644));
    SHOW("open missing", open("missing.txt", O_RDONLY));
    fd = SHOW("O_TRUNC", open("b.txt", O_WRONLY | O_TRUNC));
    close(fd);
    show_file("b.txt");
    fd = SHOW("O_CREAT|O_TRUNC existing", open("dir/c.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644));
    SHOW("write", write(fd, "new", 3));
    close(fd);
    show_file("dir/c.txt");
    SHOW("O_DIRECTORY on a file", open("a.txt", O_RDONLY | O_DIRECTORY));
    SHOW("O_DIRECTORY on a symlink to a file", open("link-file", O_RDONLY | O_DIRECTORY));
    SHOW("O_WRONLY on a directory", open("dir", O_WRONLY));
    SHOW("O_RDWR on a directory", open("dir", O_RDWR));
    SHOW("O_CREAT on a directory", open("dir", O_RDONLY | O_CREAT, 0644));
    SHOW("O_CREAT|O_EXCL on a directory", open("dir", O_WRONLY | O_CREAT | O_EXCL, 0644));
    SHOW("O_CREAT with a trailing slash", open("y.txt/", O_WRONLY | O_CREAT, 0644));
    SHOW("trailing slash on a file", open("a.txt/", O_RDONLY));
    SHOW("O_CREAT on an empty name", open("", O_WRONLY | O_CREAT, 0644));
    SHOW("open empty path", open("", O_RDONLY));
    fd = SHOW("O_RDONLY|O_CREAT new", open("z.txt", O_RDONLY | O_CREAT, 0644));
    SHOW("write to it", write(fd, "z", 1));
    close(fd);
    return 0;
}
