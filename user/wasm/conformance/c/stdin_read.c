/* Reading all of stdin: bytes, lines, the content echoed; reads at end of
 * input return 0. */
#include "common.h"
#include <unistd.h>

int main(void) {
    static char buf[65536];
    size_t total = 0, lines = 0;
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
        fwrite(buf, 1, n, stdout);
        total += n;
    }
    printf("last read: %zd\n", n);
    printf("bytes %zu lines %zu\n", total, lines);
    SHOW("read after end", read(0, buf, sizeof buf));
    SHOW("read 0 bytes", read(0, buf, 0));
    return 0;
}
