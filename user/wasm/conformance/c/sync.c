/* fd_sync and fd_datasync on a file written, read-only, a directory, stdout. */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

int main(void) {
    int fd = open("new.txt", O_WRONLY | O_CREAT, 0644);
    write(fd, "data\n", 5);
    SHOW("fsync written file", fsync(fd));
    SHOW("fdatasync written file", fdatasync(fd));
    int r = open("a.txt", O_RDONLY);
    SHOW("fsync read-only file", fsync(r));
    SHOW("fdatasync read-only file", fdatasync(r));
    int d = open("dir", O_RDONLY | O_DIRECTORY);
    SHOW("fsync directory", fsync(d));
    SHOW("fsync stdout", fsync(1));
    SHOW("fdatasync stdout", fdatasync(1));
    return 0;
}
