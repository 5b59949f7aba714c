/* Names: the longest a component may be (255 bytes) and one longer, UTF-8,
 * spaces, leading dots, a name with a newline. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static void create(const char *label, const char *name) {
    int fd = open(name, O_WRONLY | O_CREAT, 0644);
    printf("create %s: %s\n", label, fd >= 0 ? "ok" : en(errno));
    if (fd >= 0)
        close(fd);
}

int main(void) {
    char n255[256], n256[257];
    memset(n255, 'a', 255);
    n255[255] = 0;
    memset(n256, 'b', 256);
    n256[256] = 0;
    create("255 bytes", n255);
    create("256 bytes", n256);
    create("UTF-8", "caf\xc3\xa9-\xe2\x82\xac.txt");
    create("spaces", "with spaces.txt");
    create("leading dot", ".hidden");
    create("newline", "new\nline");
    create("backslash", "back\\slash");
    struct stat st;
    printf("stat the UTF-8 name: %s\n", stat("caf\xc3\xa9-\xe2\x82\xac.txt", &st) == 0 ? "ok" : en(errno));
    printf("mkdir 256 bytes: %s\n", mkdir(n256, 0755) == 0 ? "ok" : en(errno));
    return 0;
}
