/* exit(42): buffered output of both streams flushed, status 42. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    printf("to stdout\n");
    fprintf(stderr, "to stderr\n");
    exit(42);
}
