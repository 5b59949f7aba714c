/* path_create_directory edge cases: new, existing, nested, missing parent,
 * trailing slash, over a file and a symlink, through a directory link. */
#include "common.h"
#include <sys/stat.h>

int main(void) {
    SHOW("mkdir new", mkdir("new", 0755));
    SHOW("mkdir new again", mkdir("new", 0755));
    SHOW("mkdir new/inner", mkdir("new/inner", 0755));
    SHOW("mkdir missing parent", mkdir("a/b/c", 0755));
    SHOW("mkdir trailing slash", mkdir("slash/", 0755));
    SHOW("mkdir over a file", mkdir("a.txt", 0755));
    SHOW("mkdir over a symlink", mkdir("link-file", 0755));
    SHOW("mkdir over a dangling symlink", mkdir("dangling", 0755));
    SHOW("mkdir through link-dir", mkdir("link-dir/viaLink", 0755));
    SHOW("mkdir under a file", mkdir("a.txt/x", 0755));
    SHOW("mkdir ''", mkdir("", 0755));
    SHOW("mkdir .", mkdir(".", 0755));
    SHOW("mkdir /", mkdir("/", 0755));
    SHOW("mkdir ..", mkdir("..", 0755));
    return 0;
}
