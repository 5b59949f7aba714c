/* poll_oneoff on clocks: a relative timeout (waits at least that long), an
 * absolute time in the past, two clocks (the earlier fires), no
 * subscriptions, the userdata and type of each event. */
#include "common.h"

static __wasi_timestamp_t now(void) {
    __wasi_timestamp_t t;
    (void)__wasi_clock_time_get(__WASI_CLOCKID_MONOTONIC, 1, &t);
    return t;
}

static __wasi_subscription_t clock_sub(uint64_t ud, uint64_t timeout, int abstime) {
    __wasi_subscription_t s;
    memset(&s, 0, sizeof s);
    s.userdata = ud;
    s.u.tag = __WASI_EVENTTYPE_CLOCK;
    s.u.u.clock.id = __WASI_CLOCKID_MONOTONIC;
    s.u.u.clock.timeout = timeout;
    s.u.u.clock.flags = abstime ? __WASI_SUBCLOCKFLAGS_SUBSCRIPTION_CLOCK_ABSTIME : 0;
    return s;
}

int main(void) {
    __wasi_event_t ev[4];
    __wasi_size_t n;
    __wasi_subscription_t s[2];
    s[0] = clock_sub(11, 20000000, 0);
    __wasi_timestamp_t t0 = now();
    WASI("relative 20ms", __wasi_poll_oneoff(s, ev, 1, &n));
    __wasi_timestamp_t waited = now() - t0;
    printf("events %lu userdata %llu type %u error %s; waited at least 20ms %s, under 2s %s\n", (unsigned long)n,
           (unsigned long long)ev[0].userdata, ev[0].type, en(ev[0].error), waited >= 20000000 ? "yes" : "no",
           waited < 2000000000ull ? "yes" : "no");
    s[0] = clock_sub(12, now() - 1000000, 1);
    WASI("absolute in the past", __wasi_poll_oneoff(s, ev, 1, &n));
    printf("events %lu userdata %llu\n", (unsigned long)n, (unsigned long long)ev[0].userdata);
    s[0] = clock_sub(13, 5000000000ull, 0);
    s[1] = clock_sub(14, 10000000, 0);
    WASI("5s and 10ms", __wasi_poll_oneoff(s, ev, 2, &n));
    printf("events %lu first userdata %llu\n", (unsigned long)n, (unsigned long long)ev[0].userdata);
    s[0] = clock_sub(15, 0, 0);
    WASI("relative 0", __wasi_poll_oneoff(s, ev, 1, &n));
    printf("events %lu\n", (unsigned long)n);
    WASI("no subscriptions", __wasi_poll_oneoff(s, ev, 0, &n));
    s[0] = clock_sub(16, 1000, 0);
    s[0].u.u.clock.id = __WASI_CLOCKID_REALTIME;
    WASI("realtime clock 1us", __wasi_poll_oneoff(s, ev, 1, &n));
    printf("events %lu\n", (unsigned long)n);
    return 0;
}
