/* fd_prestat_get and fd_prestat_dir_name on the preopen and on others. */
#include "common.h"

int main(void) {
    for (int fd = 0; fd < 6; fd++) {
        __wasi_prestat_t p;
        int e = __wasi_fd_prestat_get(fd, &p);
        printf("fd %d prestat: %s", fd, en(e));
        if (!e) {
            char name[64] = {0};
            printf(" tag %u len %lu", p.tag, (unsigned long)p.u.dir.pr_name_len);
            int e2 = __wasi_fd_prestat_dir_name(fd, (uint8_t *)name, p.u.dir.pr_name_len);
            printf(" dir_name %s \"%s\"", en(e2), name);
            printf(" short buffer %s", en(__wasi_fd_prestat_dir_name(fd, (uint8_t *)name, 0)));
        }
        printf("\n");
    }
    char name[8];
    WASI("dir_name of stdin", __wasi_fd_prestat_dir_name(0, (uint8_t *)name, 8));
    WASI("dir_name of fd 99", __wasi_fd_prestat_dir_name(99, (uint8_t *)name, 8));
    return 0;
}
