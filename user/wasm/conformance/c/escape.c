/* Leaving the root: "..", paths climbing out through a subdirectory, a
 * symlink leaving, an absolute symlink; and ".." that stays inside. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    struct stat st;
    SHOW("open ..", open("..", O_RDONLY | O_DIRECTORY));
    SHOW("open ../a.txt", open("../a.txt", O_RDONLY));
    SHOW("open /../a.txt", open("/../a.txt", O_RDONLY));
    SHOW("stat dir/../../a.txt", stat("dir/../../a.txt", &st));
    SHOW("stat dir/../a.txt", stat("dir/../a.txt", &st));
    SHOW("stat dir/sub/../../b.txt", stat("dir/sub/../../b.txt", &st));
    SHOW("stat ./a.txt", stat("./a.txt", &st));
    SHOW("stat //a.txt", stat("//a.txt", &st));
    SHOW("stat dir//c.txt", stat("dir//c.txt", &st));
    SHOW("mkdir ../x", mkdir("../x", 0755));
    SHOW("unlink ../x", unlink("../x"));
    SHOW("rename a.txt ../x", rename("a.txt", "../x"));
    SHOW("open escape", open("escape", O_RDONLY));
    SHOW("open abs-link", open("abs-link", O_RDONLY));
    SHOW("create through escape", open("escape", O_WRONLY | O_CREAT, 0644));
    __wasi_fd_t fd;
    WASI("path_open .. on the preopen", __wasi_path_open(3, 0, "..", __WASI_OFLAGS_DIRECTORY, 0, 0, 0, &fd));
    WASI("path_open with an absolute path", __wasi_path_open(3, 0, "/a.txt", 0, 0, 0, 0, &fd));
    return 0;
}
