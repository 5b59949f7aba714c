/* fd_advise with an advice no preview-1 advice has (6). */
#include "common.h"
#include <fcntl.h>

int main(void) {
    int fd = SHOW("open b.txt", open("b.txt", O_RDONLY));
    WASI("advise 6", __wasi_fd_advise(fd, 0, 10, 6));
    return 0;
}
