/* lstat against stat on symlinks: to a file, to a directory, dangling, a
 * loop; path_filestat_get with and without SYMLINK_FOLLOW. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>

static void both(const char *p) {
    struct stat st;
    errno = 0;
    int r = lstat(p, &st);
    printf("lstat %s: %s", p, r ? en(errno) : "ok");
    if (!r)
        printf(" symlink %d size %lld", S_ISLNK(st.st_mode), (long long)st.st_size);
    errno = 0;
    r = stat(p, &st);
    printf("; stat: %s", r ? en(errno) : "ok");
    if (!r)
        printf(" reg %d dir %d", S_ISREG(st.st_mode), S_ISDIR(st.st_mode));
    printf("\n");
}

int main(void) {
    both("link-file");
    both("link-dir");
    both("link-dir/");
    both("link-dir/c.txt");
    both("dir/link-up");
    both("dangling");
    both("loop-a");
    both("escape");
    both("abs-link");
    both("a.txt");
    __wasi_filestat_t st;
    int e = __wasi_path_filestat_get(3, 0, "link-file", &st);
    printf("path_filestat_get no-follow: %s type %s\n", en(e), e ? "-" : ftname(st.filetype));
    e = __wasi_path_filestat_get(3, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, "link-file", &st);
    printf("path_filestat_get follow: %s type %s\n", en(e), e ? "-" : ftname(st.filetype));
    e = __wasi_path_filestat_get(3, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, "loop-a", &st);
    printf("path_filestat_get follow a loop: %s\n", en(e));
    return 0;
}
