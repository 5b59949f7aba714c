/* clock_res_get and clock_time_get with a clock id no clock has. */
#include "common.h"

int main(void) {
    __wasi_timestamp_t t;
    printf("asking clock 4\n");
    fflush(stdout);
    WASI("clock 4 time", __wasi_clock_time_get(4, 0, &t));
    WASI("clock 4 res", __wasi_clock_res_get(4, &t));
    return 0;
}
