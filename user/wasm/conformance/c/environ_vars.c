/* environ_get with variables set: each entry in order, getenv, sizes. */
#include "common.h"
#include <stdlib.h>

extern char **environ;

int main(void) {
    __wasi_size_t count, size;
    WASI("environ_sizes_get", __wasi_environ_sizes_get(&count, &size));
    printf("count %lu size %lu\n", (unsigned long)count, (unsigned long)size);
    for (char **e = environ; *e; e++)
        printf("entry \"%s\"\n", *e);
    const char *names[] = {"GREETING", "EMPTY", "WITH_EQUALS", "MISSING"};
    for (int i = 0; i < 4; i++) {
        const char *v = getenv(names[i]);
        printf("getenv(%s) %s%s%s\n", names[i], v ? "\"" : "", v ? v : "(unset)", v ? "\"" : "");
    }
    return 0;
}
