/* fd_filestat_set_times and path_filestat_set_times: setting atime and
 * mtime to exact values and reading them back, NOW, OMIT, on a symlink
 * without following, invalid flag combinations. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void show(const char *p, const char *label) {
    struct stat st;
    if (lstat(p, &st)) {
        printf("%s: lstat %s\n", label, en(errno));
        return;
    }
    printf("%s: atime %lld.%09ld mtime %lld.%09ld\n", label, (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
           (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

int main(void) {
    int fd = open("a.txt", O_RDWR);
    struct timespec t[2] = {{1000000000, 500000000}, {1200000000, 250}};
    SHOW("futimens exact", futimens(fd, t));
    show("a.txt", "after futimens");
    struct timespec omit[2] = {{0, UTIME_OMIT}, {1300000000, 0}};
    SHOW("futimens atime OMIT", futimens(fd, omit));
    show("a.txt", "after OMIT");
    struct timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
    SHOW("futimens atime NOW", futimens(fd, now));
    struct stat st;
    fstat(fd, &st);
    printf("atime now is recent: %s\n", st.st_atim.tv_sec > time(NULL) - 60 ? "yes" : "no");
    close(fd);
    SHOW("utimensat by path", utimensat(AT_FDCWD, "b.txt", t, 0));
    show("b.txt", "b.txt");
    SHOW("utimensat a symlink, no follow", utimensat(AT_FDCWD, "link-file", t, AT_SYMLINK_NOFOLLOW));
    show("link-file", "link-file itself");
    SHOW("utimensat through a symlink", utimensat(AT_FDCWD, "link-dir", t, 0));
    show("dir", "dir");
    SHOW("utimensat missing", utimensat(AT_FDCWD, "missing", t, 0));
    fd = open("dir/c.txt", O_RDONLY);
    SHOW("futimens on a read-only fd", futimens(fd, t));
    show("dir/c.txt", "dir/c.txt");
    WASI("fd_filestat_set_times ATIM|ATIM_NOW",
         __wasi_fd_filestat_set_times(fd, 1, 1, __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_ATIM_NOW));
    WASI("fd_filestat_set_times MTIM|MTIM_NOW",
         __wasi_fd_filestat_set_times(fd, 1, 1, __WASI_FSTFLAGS_MTIM | __WASI_FSTFLAGS_MTIM_NOW));
    WASI("fd_filestat_set_times no flags", __wasi_fd_filestat_set_times(fd, 1, 1, 0));
    WASI("fd_filestat_set_times on fd 99", __wasi_fd_filestat_set_times(99, 1, 1, __WASI_FSTFLAGS_ATIM));
    int d = open("emptydir", O_RDONLY | O_DIRECTORY);
    WASI("fd_filestat_set_times on a directory fd",
         __wasi_fd_filestat_set_times(d, 2000000000ull * 1000000000ull, 3, __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM));
    show("emptydir", "emptydir");
    return 0;
}
