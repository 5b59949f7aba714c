/* fd_filestat_get and path_filestat_get: type, size, nlink, and inode and
 * device relations between files (never their values). */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    struct stat a, a2, b, d, c, root;
    SHOW("stat a.txt", stat("a.txt", &a));
    printf("regular %d size %lld nlink %lld\n", S_ISREG(a.st_mode), (long long)a.st_size, (long long)a.st_nlink);
    int fd = open("a.txt", O_RDONLY);
    SHOW("fstat a.txt", fstat(fd, &a2));
    printf("fstat and stat: ino equal %s, dev equal %s\n", a.st_ino == a2.st_ino ? "yes" : "no",
           a.st_dev == a2.st_dev ? "yes" : "no");
    stat("b.txt", &b);
    printf("a.txt and b.txt: ino differ %s, dev equal %s\n", a.st_ino != b.st_ino ? "yes" : "no",
           a.st_dev == b.st_dev ? "yes" : "no");
    stat("dir", &d);
    stat("dir/c.txt", &c);
    stat("/", &root);
    printf("dir: directory %d, ino differs from a.txt %s\n", S_ISDIR(d.st_mode), d.st_ino != a.st_ino ? "yes" : "no");
    printf("dir/c.txt dev equal to a.txt %s\n", c.st_dev == a.st_dev ? "yes" : "no");
    printf("root: directory %d, ino differs from dir %s\n", S_ISDIR(root.st_mode), root.st_ino != d.st_ino ? "yes" : "no");
    printf("inode numbers nonzero %s\n", a.st_ino && b.st_ino && d.st_ino && root.st_ino ? "yes" : "no");
    printf("device number nonzero %s\n", a.st_dev ? "yes" : "no");
    struct stat l;
    stat("link-file", &l);
    printf("link-file follows to a.txt: ino equal %s\n", l.st_ino == a.st_ino ? "yes" : "no");
    struct stat e;
    stat("empty.txt", &e);
    printf("empty.txt size %lld\n", (long long)e.st_size);
    printf("mtime of a.txt after 2020 %s\n", a.st_mtim.tv_sec > 1577836800 ? "yes" : "no");
    SHOW("stat missing", stat("missing", &e));
    SHOW("stat a.txt/", stat("a.txt/", &e));
    SHOW("stat dir/", stat("dir/", &e));
    SHOW("stat ''", stat("", &e));
    SHOW("fstat fd 99", fstat(99, &e));
    __wasi_filestat_t ws;
    WASI("path_filestat_get on a file fd", __wasi_path_filestat_get(fd, 0, "x", &ws));
    return 0;
}
