/* proc_exit called directly: no atexit handlers, no flushing of buffered
 * output; what was written with write() stays. Status 3. */
#include "common.h"
#include <stdlib.h>
#include <unistd.h>

static void handler(void) { write(1, "atexit ran\n", 11); }

int main(void) {
    atexit(handler);
    write(1, "written\n", 8);
    printf("buffered, lost");
    __wasi_proc_exit(3);
}
