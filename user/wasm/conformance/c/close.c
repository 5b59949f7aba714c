/* fd_close: a file twice, a bad fd, a directory; closing stdout then
 * writing; opening after closing. */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

int main(void) {
    int a = SHOW("open a.txt", open("a.txt", O_RDONLY));
    SHOW("close", close(a));
    SHOW("close again", close(a));
    SHOW("close 99", close(99));
    int b = SHOW("open b.txt", open("b.txt", O_RDONLY));
    printf("number reused: %s\n", a == b ? "yes" : "no");
    int d = SHOW("open dir", open("dir", O_RDONLY | O_DIRECTORY));
    SHOW("close dir", close(d));
    SHOW("close stderr", close(2));
    SHOW("write to closed stderr", write(2, "x", 1));
    int c = open("a.txt", O_RDONLY);
    printf("open after closing stderr: %s\n", c >= 0 ? "opened" : en(errno));
    return 0;
}
