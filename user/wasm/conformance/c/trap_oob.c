/* A load past the end of linear memory traps. */
#include <stdint.h>
#include <unistd.h>

int main(void) {
    write(1, "loading\n", 8);
    volatile uint8_t *p = (uint8_t *)0xfffffff0u;
    return *p;
}
