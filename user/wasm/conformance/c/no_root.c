/* Run without a tree: no preopen at all. Path calls find no directory to
 * resolve in; fd 3 is not open. */
#include "common.h"
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

int main(void) {
    struct stat st;
    SHOW("open a.txt", open("a.txt", O_RDONLY));
    SHOW("open /a.txt", open("/a.txt", O_RDONLY));
    SHOW("stat /", stat("/", &st));
    SHOW("mkdir /x", mkdir("/x", 0755));
    DIR *d = opendir("/");
    printf("opendir /: %s\n", d ? "ok" : en(errno));
    __wasi_prestat_t p;
    WASI("prestat 3", __wasi_fd_prestat_get(3, &p));
    __wasi_fdstat_t fs;
    WASI("fdstat 3", __wasi_fd_fdstat_get(3, &fs));
    return 0;
}
