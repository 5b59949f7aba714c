/* args_sizes_get and args_get: the count, each argument, and the sizes. */
#include "common.h"
#include <stdlib.h>

int main(int argc, char **argv) {
    printf("argc %d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d] \"%s\" (%zu bytes)\n", i, argv[i], strlen(argv[i]));
    __wasi_size_t count, size;
    WASI("args_sizes_get", __wasi_args_sizes_get(&count, &size));
    printf("count %lu size %lu\n", (unsigned long)count, (unsigned long)size);
    char **ptrs = calloc(count + 1, sizeof *ptrs);
    char *buf = malloc(size);
    WASI("args_get", __wasi_args_get((uint8_t **)ptrs, (uint8_t *)buf));
    size_t total = 0;
    for (size_t i = 0; i < count; i++)
        total += strlen(ptrs[i]) + 1;
    printf("strings fill the buffer: %s\n", total == size ? "yes" : "no");
    return 0;
}
