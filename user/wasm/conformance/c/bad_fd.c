/* Every descriptor call on a descriptor that is not open (99). */
#include "common.h"

int main(void) {
    uint8_t b[8];
    __wasi_iovec_t iov = {b, 8};
    __wasi_ciovec_t ciov = {b, 8};
    __wasi_size_t n;
    __wasi_filesize_t pos;
    __wasi_fdstat_t fs;
    __wasi_filestat_t st;
    __wasi_prestat_t ps;
    __wasi_fd_t fd;
    int f = 99;
    WASI("fd_read", __wasi_fd_read(f, &iov, 1, &n));
    WASI("fd_write", __wasi_fd_write(f, &ciov, 1, &n));
    WASI("fd_pread", __wasi_fd_pread(f, &iov, 1, 0, &n));
    WASI("fd_pwrite", __wasi_fd_pwrite(f, &ciov, 1, 0, &n));
    WASI("fd_seek", __wasi_fd_seek(f, 0, __WASI_WHENCE_SET, &pos));
    WASI("fd_tell", __wasi_fd_tell(f, &pos));
    WASI("fd_close", __wasi_fd_close(f));
    WASI("fd_sync", __wasi_fd_sync(f));
    WASI("fd_datasync", __wasi_fd_datasync(f));
    WASI("fd_fdstat_get", __wasi_fd_fdstat_get(f, &fs));
    WASI("fd_fdstat_set_flags", __wasi_fd_fdstat_set_flags(f, 0));
    WASI("fd_fdstat_set_rights", __wasi_fd_fdstat_set_rights(f, 0, 0));
    WASI("fd_filestat_get", __wasi_fd_filestat_get(f, &st));
    WASI("fd_filestat_set_size", __wasi_fd_filestat_set_size(f, 0));
    WASI("fd_filestat_set_times", __wasi_fd_filestat_set_times(f, 0, 0, 0));
    WASI("fd_advise", __wasi_fd_advise(f, 0, 0, 0));
    WASI("fd_allocate", __wasi_fd_allocate(f, 0, 1));
    WASI("fd_readdir", __wasi_fd_readdir(f, b, 8, 0, &n));
    WASI("fd_renumber", __wasi_fd_renumber(f, 1));
    WASI("fd_prestat_get", __wasi_fd_prestat_get(f, &ps));
    WASI("fd_prestat_dir_name", __wasi_fd_prestat_dir_name(f, b, 8));
    WASI("path_open", __wasi_path_open(f, 0, "a.txt", 0, 0, 0, 0, &fd));
    WASI("path_filestat_get", __wasi_path_filestat_get(f, 0, "a.txt", &st));
    WASI("path_filestat_set_times", __wasi_path_filestat_set_times(f, 0, "a.txt", 0, 0, 0));
    WASI("path_create_directory", __wasi_path_create_directory(f, "x"));
    WASI("path_remove_directory", __wasi_path_remove_directory(f, "x"));
    WASI("path_unlink_file", __wasi_path_unlink_file(f, "x"));
    WASI("path_rename", __wasi_path_rename(f, "a.txt", 3, "x"));
    WASI("path_rename to a bad fd", __wasi_path_rename(3, "a.txt", f, "x"));
    WASI("path_link", __wasi_path_link(f, 0, "a.txt", 3, "x"));
    WASI("path_symlink", __wasi_path_symlink("a.txt", f, "x"));
    WASI("path_readlink", __wasi_path_readlink(f, "x", b, 8, &n));
    WASI("sock_shutdown", __wasi_sock_shutdown(f, __WASI_SDFLAGS_WR));
    WASI("sock_accept", __wasi_sock_accept(f, 0, &fd));
    __wasi_roflags_t ro;
    WASI("sock_recv", __wasi_sock_recv(f, &iov, 1, 0, &n, &ro));
    WASI("sock_send", __wasi_sock_send(f, &ciov, 1, 0, &n));
    return 0;
}
