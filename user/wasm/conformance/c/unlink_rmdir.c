/* path_unlink_file and path_remove_directory edge cases: files, symlinks
 * (to a dir too), directories, non-empty, missing, trailing slashes, ".". */
#include "common.h"
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    SHOW("unlink a.txt", unlink("a.txt"));
    SHOW("unlink a.txt again", unlink("a.txt"));
    SHOW("unlink a dir", unlink("emptydir"));
    SHOW("unlink link-dir", unlink("link-dir"));
    struct stat st;
    printf("dir still there: %s\n", stat("dir", &st) == 0 ? "yes" : "no");
    SHOW("unlink dangling", unlink("dangling"));
    SHOW("unlink b.txt/", unlink("b.txt/"));
    SHOW("unlink loop-a", unlink("loop-a"));
    SHOW("rmdir non-empty", rmdir("dir"));
    SHOW("rmdir a file", rmdir("b.txt"));
    symlink("dir", "link-dir2");
    SHOW("rmdir a symlink to a dir", rmdir("link-dir2"));
    SHOW("rmdir missing", rmdir("missing"));
    SHOW("rmdir emptydir/", rmdir("emptydir/"));
    SHOW("rmdir emptydir again", rmdir("emptydir"));
    SHOW("rmdir .", rmdir("."));
    SHOW("rmdir dir/sub/..", rmdir("dir/sub/.."));
    SHOW("unlink dir/sub/d.txt", unlink("dir/sub/d.txt"));
    SHOW("rmdir dir/sub", rmdir("dir/sub"));
    SHOW("unlink ''", unlink(""));
    SHOW("rmdir /", rmdir("/"));
    return 0;
}
