/* sched_yield succeeds, many times in a row. */
#include "common.h"
#include <sched.h>

int main(void) {
    WASI("sched_yield", __wasi_sched_yield());
    int fails = 0;
    for (int i = 0; i < 1000; i++)
        fails += sched_yield() != 0;
    printf("1000 yields, failures %d\n", fails);
    return 0;
}
