/* A status returned from main: 7. */
#include <stdio.h>

int main(void) {
    puts("returning 7");
    return 7;
}
