/* random_get: empty, small and large requests; the bytes vary. */
#include "common.h"
#include <stdlib.h>

int main(void) {
    uint8_t a[64] = {0}, b[64] = {0};
    WASI("random_get 0", __wasi_random_get(a, 0));
    WASI("random_get 64", __wasi_random_get(a, 64));
    WASI("random_get 64 again", __wasi_random_get(b, 64));
    printf("two draws differ: %s\n", memcmp(a, b, 64) ? "yes" : "no");
    size_t big = 1 << 20;
    uint8_t *p = calloc(big, 1);
    WASI("random_get 1MiB", __wasi_random_get(p, big));
    size_t zeros = 0;
    for (size_t i = 0; i < big; i++)
        zeros += p[i] == 0;
    printf("zero bytes under 1%%: %s\n", zeros < big / 100 ? "yes" : "no");
    unsigned counts[2] = {0, 0};
    for (size_t i = 0; i < big; i++)
        counts[p[i] >> 7]++;
    printf("high bit balanced within 1%%: %s\n",
           (counts[1] > big / 2 - big / 100 && counts[1] < big / 2 + big / 100) ? "yes" : "no");
    return 0;
}
