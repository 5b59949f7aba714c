/* A trap after output: status 125, a message on stderr, stdout kept. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    write(1, "before the trap\n", 16);
    __builtin_trap();
}
