/* path_rename edge cases: to a new name, over a file, directories over
 * empty and non-empty directories, file over directory and back, into
 * itself, missing source, a symlink (the link moves), onto itself. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    SHOW("rename a.txt -> a2.txt", rename("a.txt", "a2.txt"));
    SHOW("rename a2.txt over b.txt", rename("a2.txt", "b.txt"));
    show_file("b.txt");
    SHOW("rename to itself", rename("b.txt", "b.txt"));
    SHOW("rename missing", rename("missing", "x"));
    SHOW("rename dir/sub over emptydir", rename("dir/sub", "emptydir"));
    mkdir("full", 0755);
    close(open("full/f", O_WRONLY | O_CREAT, 0644));
    SHOW("rename dir over a non-empty dir", rename("dir", "full"));
    SHOW("rename a file over a dir", rename("b.txt", "full"));
    SHOW("rename a dir over a file", rename("full", "empty.txt"));
    SHOW("rename a dir into itself", rename("dir", "dir/inside"));
    SHOW("rename link-file -> moved-link", rename("link-file", "moved-link"));
    char t[32] = {0};
    readlink("moved-link", t, 31);
    printf("moved-link -> %s\n", t);
    SHOW("rename into a missing dir", rename("empty.txt", "nodir/e"));
    SHOW("rename with a trailing slash on a file", rename("empty.txt/", "e2"));
    SHOW("rename dir/ with a trailing slash", rename("dir/", "dir3/"));
    SHOW("rename dangling symlink", rename("dangling", "dangling2"));
    SHOW("rename . ", rename(".", "x"));
    SHOW("rename to ..", rename("empty.txt", ".."));
    return 0;
}
