/* clock_res_get and clock_time_get on every clock: errnos, and sanity of
 * the values (never the values themselves). */
#include "common.h"
#include <time.h>

int main(void) {
    const char *names[] = {"realtime", "monotonic", "process_cputime", "thread_cputime"};
    for (int id = 0; id < 4; id++) {
        __wasi_timestamp_t res = 0, t1 = 0, t2 = 0;
        int e = __wasi_clock_res_get(id, &res);
        printf("%s res: %s", names[id], en(e));
        if (!e)
            printf(" positive %s, at most 1ms %s", res > 0 ? "yes" : "no", res <= 1000000 ? "yes" : "no");
        printf("\n");
        e = __wasi_clock_time_get(id, 1, &t1);
        printf("%s time: %s", names[id], en(e));
        if (!e) {
            (void)__wasi_clock_time_get(id, 1, &t2);
            printf(" non-decreasing %s", t2 >= t1 ? "yes" : "no");
        }
        printf("\n");
    }
    __wasi_timestamp_t t;
    (void)__wasi_clock_time_get(__WASI_CLOCKID_REALTIME, 0, &t);
    printf("realtime after 2020: %s\n", t > 1577836800ull * 1000000000ull ? "yes" : "no");
    printf("realtime before 2200: %s\n", t < 7258118400ull * 1000000000ull ? "yes" : "no");
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (volatile int i = 0; i < 1000000; i++)
        ;
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("monotonic advanced: %s\n",
           (b.tv_sec > a.tv_sec || (b.tv_sec == a.tv_sec && b.tv_nsec > a.tv_nsec)) ? "yes" : "no");
    printf("time() agrees with realtime: %s\n", (time(NULL) - (time_t)(t / 1000000000ull)) < 5 ? "yes" : "no");
    return 0;
}
