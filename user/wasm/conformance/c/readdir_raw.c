/* fd_readdir itself: buffer sizes (0, smaller than one entry, exact),
 * cookies (resume after the first entry, past the end), on a file and a bad
 * fd. Counts, not orders, are printed. */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

static uint8_t buf[4096];

/* The number of whole entries in a filled buffer and the last one's next
 * cookie. */
static int entries(size_t used, __wasi_dircookie_t *last) {
    int n = 0;
    size_t off = 0;
    while (off + sizeof(__wasi_dirent_t) <= used) {
        __wasi_dirent_t d;
        memcpy(&d, buf + off, sizeof d);
        if (off + sizeof d + d.d_namlen > used)
            break;
        *last = d.d_next;
        n++;
        off += sizeof d + d.d_namlen;
    }
    return n;
}

int main(void) {
    int d = open("dir", O_RDONLY | O_DIRECTORY);
    __wasi_size_t used;
    __wasi_dircookie_t last = 0;
    WASI("readdir full", __wasi_fd_readdir(d, buf, sizeof buf, 0, &used));
    int all = entries(used, &last);
    printf("entries %d (with . and ..: %s)\n", all, all == 5 ? "yes" : "no");
    WASI("readdir into 0 bytes", __wasi_fd_readdir(d, buf, 0, 0, &used));
    printf("used %lu\n", (unsigned long)used);
    WASI("readdir into 10 bytes", __wasi_fd_readdir(d, buf, 10, 0, &used));
    printf("used %lu (buffer filled: %s)\n", (unsigned long)used, used == 10 ? "yes" : "no");
    WASI("readdir from the first cookie", __wasi_fd_readdir(d, buf, sizeof buf, 0, &used));
    __wasi_dircookie_t first = 0;
    entries(sizeof(__wasi_dirent_t) + ((__wasi_dirent_t *)buf)->d_namlen, &first);
    WASI("readdir after the first entry", __wasi_fd_readdir(d, buf, sizeof buf, first, &used));
    printf("entries %d (one fewer: %s)\n", entries(used, &last), entries(used, &last) == all - 1 ? "yes" : "no");
    WASI("readdir past the end", __wasi_fd_readdir(d, buf, sizeof buf, 1000, &used));
    printf("used %lu\n", (unsigned long)used);
    int f = open("a.txt", O_RDONLY);
    WASI("readdir on a file", __wasi_fd_readdir(f, buf, sizeof buf, 0, &used));
    WASI("readdir on fd 99", __wasi_fd_readdir(99, buf, sizeof buf, 0, &used));
    WASI("readdir on stdout", __wasi_fd_readdir(1, buf, sizeof buf, 0, &used));
    return 0;
}
