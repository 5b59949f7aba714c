/* Returning from main: status 0, buffered output flushed. */
#include <stdio.h>

int main(void) {
    printf("buffered line without newline at exit");
    return 0;
}
