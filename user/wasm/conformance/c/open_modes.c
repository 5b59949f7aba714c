/* The permission bits of created files and directories, and opening a file
 * whose mode forbids writing. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    int fd = SHOW("create with mode 0600", open("m600.txt", O_WRONLY | O_CREAT, 0600));
    close(fd);
    struct stat st;
    stat("m600.txt", &st);
    printf("is a regular file: %s\n", S_ISREG(st.st_mode) ? "yes" : "no");
    SHOW("mkdir with mode 0700", mkdir("d700", 0700));
    stat("d700", &st);
    printf("is a directory: %s\n", S_ISDIR(st.st_mode) ? "yes" : "no");
    fd = SHOW("open ro.txt read-only", open("ro.txt", O_RDONLY));
    close(fd);
    fd = SHOW("open ro.txt for writing", open("ro.txt", O_WRONLY));
    if (fd >= 0)
        close(fd);
    return 0;
}
