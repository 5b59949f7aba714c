/* Directories as descriptors: open with O_DIRECTORY, fdstat and filestat of
 * the fd, path calls relative to it (openat, mkdirat, fstatat, unlinkat,
 * renameat between two directory fds, readlinkat, symlinkat, linkat). */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    int d = SHOW("open dir O_DIRECTORY", open("dir", O_RDONLY | O_DIRECTORY));
    __wasi_fdstat_t fs;
    WASI("fdstat", __wasi_fd_fdstat_get(d, &fs));
    printf("type %s\n", ftname(fs.fs_filetype));
    struct stat st;
    SHOW("fstat", fstat(d, &st));
    printf("S_ISDIR %d\n", S_ISDIR(st.st_mode));
    int f = SHOW("openat c.txt", openat(d, "c.txt", O_RDONLY));
    char buf[16];
    ssize_t n = SHOW("read", read(f, buf, sizeof buf));
    printf("got \"%.*s\"\n", (int)(n > 0 ? n - 1 : 0), buf);
    close(f);
    SHOW("openat sub/d.txt", f = openat(d, "sub/d.txt", O_RDONLY));
    close(f);
    SHOW("openat ../a.txt", f = openat(d, "../a.txt", O_RDONLY));
    if (f >= 0)
        close(f);
    SHOW("openat ../../x escapes", openat(d, "../../x", O_RDONLY));
    SHOW("openat link-up", f = openat(d, "link-up", O_RDONLY));
    n = read(f, buf, sizeof buf);
    printf("link-up reads \"%.*s\"\n", (int)(n > 0 ? 3 : 0), buf);
    close(f);
    SHOW("fstatat c.txt", fstatat(d, "c.txt", &st, 0));
    printf("size %lld\n", (long long)st.st_size);
    SHOW("mkdirat new", mkdirat(d, "new", 0755));
    int d2 = SHOW("openat new O_DIRECTORY", openat(d, "new", O_RDONLY | O_DIRECTORY));
    SHOW("renameat c.txt -> new/moved.txt", renameat(d, "c.txt", d2, "moved.txt"));
    SHOW("symlinkat", symlinkat("moved.txt", d2, "ln"));
    char target[64] = {0};
    SHOW("readlinkat", readlinkat(d2, "ln", target, sizeof target - 1));
    printf("target \"%s\"\n", target);
    SHOW("linkat", linkat(d2, "moved.txt", d, "hard.txt", 0));
    SHOW("unlinkat sub/d.txt", unlinkat(d, "sub/d.txt", 0));
    SHOW("unlinkat sub AT_REMOVEDIR", unlinkat(d, "sub", AT_REMOVEDIR));
    SHOW("openat on a file fd", openat(0, "x", O_RDONLY));
    SHOW("mkdirat on a file fd", mkdirat(0, "x", 0755));
    close(d2);
    close(d);
    return 0;
}
