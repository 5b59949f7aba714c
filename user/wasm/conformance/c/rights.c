/* Rights: what fd_fdstat_get reports for files opened read-only,
 * write-only, read-write and for directories; fd_fdstat_set_rights
 * dropping rights, then using them; raising them back. */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

static void rights(const char *label, int fd) {
    __wasi_fdstat_t st;
    int e = __wasi_fd_fdstat_get(fd, &st);
    printf("%s: %s", label, en(e));
    if (!e)
        printf(" read %s write %s seek %s readdir %s path_open %s", st.fs_rights_base & __WASI_RIGHTS_FD_READ ? "y" : "n",
               st.fs_rights_base & __WASI_RIGHTS_FD_WRITE ? "y" : "n", st.fs_rights_base & __WASI_RIGHTS_FD_SEEK ? "y" : "n",
               st.fs_rights_base & __WASI_RIGHTS_FD_READDIR ? "y" : "n",
               st.fs_rights_base & __WASI_RIGHTS_PATH_OPEN ? "y" : "n");
    printf("\n");
}

int main(void) {
    int r = open("a.txt", O_RDONLY);
    rights("read-only file", r);
    int w = open("b.txt", O_WRONLY);
    rights("write-only file", w);
    int rw = open("empty.txt", O_RDWR);
    rights("read-write file", rw);
    int d = open("dir", O_RDONLY | O_DIRECTORY);
    rights("directory", d);
    rights("preopen", 3);
    WASI("drop FD_WRITE", __wasi_fd_fdstat_set_rights(rw, __WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_SEEK, 0));
    rights("after dropping", rw);
    SHOW("write after dropping FD_WRITE", write(rw, "x", 1));
    WASI("raise FD_WRITE back",
         __wasi_fd_fdstat_set_rights(rw, __WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_WRITE | __WASI_RIGHTS_FD_SEEK, 0));
    SHOW("write after raising", write(rw, "x", 1));
    WASI("set rights on fd 99", __wasi_fd_fdstat_set_rights(99, 0, 0));
    __wasi_fd_t fd;
    WASI("path_open asking FD_WRITE on a read-only... plain file",
         __wasi_path_open(3, 0, "a.txt", 0, __WASI_RIGHTS_FD_WRITE, 0, 0, &fd));
    return 0;
}
