/* proc_raise (deprecated in preview 1): what the runtime answers. */
#include "common.h"

__attribute__((import_module("wasi_snapshot_preview1"), import_name("proc_raise")))
int raw_proc_raise(int sig);

int main(void) {
    printf("calling proc_raise(0)\n");
    fflush(stdout);
    int e = raw_proc_raise(0);
    printf("proc_raise(0): %s\n", en(e));
    return 0;
}
