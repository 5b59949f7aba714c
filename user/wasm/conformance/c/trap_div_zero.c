/* An integer division by zero traps. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
    volatile int zero = 0;
    write(1, "dividing\n", 9);
    printf("%d\n", 10 / zero);
    return 0;
}
