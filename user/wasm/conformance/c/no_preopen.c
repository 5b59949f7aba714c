/* Path calls that no preopen covers or that are relative to descriptors
 * other than directories. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>

int main(void) {
    __wasi_fd_t fd;
    __wasi_filestat_t st;
    WASI("path_open relative to stdin", __wasi_path_open(0, 0, "a.txt", 0, 0, 0, 0, &fd));
    WASI("path_filestat_get relative to stdout", __wasi_path_filestat_get(1, 0, "a.txt", &st));
    WASI("path_create_directory relative to stderr", __wasi_path_create_directory(2, "x"));
    int f = open("a.txt", O_RDONLY);
    WASI("path_open relative to a file", __wasi_path_open(f, 0, "x", 0, 0, 0, 0, &fd));
    WASI("path_unlink_file relative to a file", __wasi_path_unlink_file(f, "x"));
    return 0;
}
