/* path_symlink: relative targets to a file and a directory, a dangling
 * one, over an existing name, absolute targets, targets leaving the root,
 * in a missing directory. */
#include "common.h"
#include <unistd.h>

int main(void) {
    SHOW("symlink to a file", symlink("a.txt", "s1"));
    show_file("s1");
    SHOW("symlink to a dir", symlink("dir/sub", "s2"));
    show_file("s2/d.txt");
    SHOW("symlink dangling", symlink("nowhere", "s3"));
    SHOW("symlink over a file", symlink("a.txt", "b.txt"));
    SHOW("symlink over a symlink", symlink("a.txt", "link-file"));
    SHOW("symlink over a dir", symlink("a.txt", "emptydir"));
    SHOW("symlink with an absolute target", symlink("/a.txt", "s4"));
    SHOW("symlink leaving the root", symlink("../../etc/passwd", "s5"));
    SHOW("symlink in a missing dir", symlink("a.txt", "nodir/s6"));
    SHOW("symlink in a subdir", symlink("../a.txt", "dir/s7"));
    show_file("dir/s7");
    SHOW("symlink with an empty target", symlink("", "s8"));
    SHOW("symlink with a trailing slash on the name", symlink("a.txt", "s9/"));
    return 0;
}
