/* Following symlinks on open: to a file, a directory, through a directory
 * link, dangling, loops, O_NOFOLLOW, trailing slashes, leaving the root. */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

static void try(const char *label, const char *p, int flags) {
    int fd = SHOW(label, open(p, flags, 0644));
    if (fd >= 0)
        close(fd);
}

int main(void) {
    try("open link-file", "link-file", O_RDONLY);
    try("open link-dir/c.txt", "link-dir/c.txt", O_RDONLY);
    try("open link-dir O_DIRECTORY", "link-dir", O_RDONLY | O_DIRECTORY);
    try("open link-dir/ O_DIRECTORY", "link-dir/", O_RDONLY | O_DIRECTORY);
    try("open link-file/", "link-file/", O_RDONLY);
    try("open dir/link-up", "dir/link-up", O_RDONLY);
    try("open dangling", "dangling", O_RDONLY);
    try("open loop-a", "loop-a", O_RDONLY);
    try("open loop-a/x", "loop-a/x", O_RDONLY);
    try("open escape", "escape", O_RDONLY);
    try("open abs-link", "abs-link", O_RDONLY);
    try("open link-file O_NOFOLLOW", "link-file", O_RDONLY | O_NOFOLLOW);
    try("open link-dir O_NOFOLLOW|O_DIRECTORY", "link-dir", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    try("open link-dir/c.txt O_NOFOLLOW", "link-dir/c.txt", O_RDONLY | O_NOFOLLOW);
    try("create through dangling", "dangling", O_WRONLY | O_CREAT);
    try("write through link-file", "link-file", O_WRONLY | O_TRUNC);
    show_file("a.txt");
    show_file("missing.txt");
    return 0;
}
