/* fd_write on stdout and stderr: empty ones, a large write,
 * a write to stdin. */
#include "common.h"
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

int main(void) {
    struct iovec v[1] = {{"one\n", 4}};
    SHOW("write stderr", write(2, "to stderr\n", 10));
    SHOW("write 0 bytes", write(1, "", 0));
    SHOW("writev no iovecs", writev(1, v, 0));
    SHOW("write to stdin", write(0, "x", 1));
    size_t big = 300000;
    char *p = malloc(big);
    for (size_t i = 0; i < big; i++)
        p[i] = (i % 64 == 63) ? '\n' : 'a' + i % 26;
    size_t done = 0;
    while (done < big) {
        ssize_t n = write(1, p + done, big - done);
        if (n <= 0)
            break;
        done += n;
    }
    printf("\nlarge write done %zu\n", done);
    return 0;
}
