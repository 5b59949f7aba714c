/* The largest portable status, 255, through exit(). */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    puts("exiting 255");
    exit(255);
}
