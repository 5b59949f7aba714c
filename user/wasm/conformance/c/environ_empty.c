/* environ_sizes_get and environ_get with an empty environment. */
#include "common.h"
#include <stdlib.h>

extern char **environ;

int main(void) {
    __wasi_size_t count, size;
    WASI("environ_sizes_get", __wasi_environ_sizes_get(&count, &size));
    printf("count %lu size %lu\n", (unsigned long)count, (unsigned long)size);
    int n = 0;
    for (char **e = environ; *e; e++)
        n++;
    printf("environ entries %d\n", n);
    printf("getenv(HOME) %s\n", getenv("HOME") ? getenv("HOME") : "(unset)");
    return 0;
}
