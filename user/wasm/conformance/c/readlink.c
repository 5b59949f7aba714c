/* path_readlink: link targets, short buffers, on a file, a directory, a
 * missing path, through a directory link. */
#include "common.h"
#include <unistd.h>

static void rl(const char *p, size_t len) {
    char buf[64];
    memset(buf, 0, sizeof buf);
    errno = 0;
    ssize_t n = readlink(p, buf, len);
    if (n < 0)
        printf("readlink %s (%zu): -1 %s\n", p, len, en(errno));
    else
        printf("readlink %s (%zu): %zd \"%.*s\"\n", p, len, n, (int)n, buf);
}

int main(void) {
    rl("link-file", 63);
    rl("link-dir", 63);
    rl("dir/link-up", 63);
    rl("link-dir/link-up", 63);
    rl("dangling", 63);
    rl("loop-a", 63);
    rl("escape", 63);
    rl("abs-link", 63);
    rl("link-file", 3);
    rl("link-file", 1);
    rl("a.txt", 63);
    rl("dir", 63);
    rl("missing", 63);
    rl("link-file/", 63);
    uint8_t buf[8];
    __wasi_size_t used;
    WASI("path_readlink into 0 bytes", __wasi_path_readlink(3, "link-file", buf, 0, &used));
    printf("used %lu\n", (unsigned long)used);
    return 0;
}
