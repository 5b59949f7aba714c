/* isatty on the standard streams (files and pipes here), a file, a
 * directory and a bad fd. */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

int main(void) {
    int fd = open("a.txt", O_RDONLY);
    int d = open("dir", O_RDONLY | O_DIRECTORY);
    int fds[] = {0, 1, 2, fd, d, 99};
    for (int i = 0; i < 6; i++) {
        errno = 0;
        int r = isatty(fds[i]);
        printf("isatty(%d) %d %s\n", fds[i], r, en(errno));
    }
    return 0;
}
