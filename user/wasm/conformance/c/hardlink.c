/* path_link: nlink and inode after linking, unlinking one name, linking a
 * directory, over an existing name, a symlink (followed or not), across
 * directories, into a missing directory. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    struct stat a, h;
    SHOW("link a.txt h.txt", link("a.txt", "h.txt"));
    stat("a.txt", &a);
    stat("h.txt", &h);
    printf("nlink %lld %lld, ino equal %s\n", (long long)a.st_nlink, (long long)h.st_nlink,
           a.st_ino == h.st_ino ? "yes" : "no");
    int fd = open("h.txt", O_WRONLY | O_APPEND);
    write(fd, "via h\n", 6);
    close(fd);
    show_file("a.txt");
    SHOW("unlink a.txt", unlink("a.txt"));
    stat("h.txt", &h);
    printf("nlink after unlink %lld\n", (long long)h.st_nlink);
    SHOW("link a directory", link("dir", "dir2"));
    SHOW("link over an existing name", link("b.txt", "h.txt"));
    SHOW("link a missing file", link("missing", "m"));
    SHOW("link into a missing dir", link("b.txt", "nodir/b"));
    SHOW("link into a subdir", link("b.txt", "dir/sub/b.txt"));
    SHOW("linkat a symlink, no follow", linkat(AT_FDCWD, "link-file", AT_FDCWD, "hl1", 0));
    struct stat st;
    lstat("hl1", &st);
    printf("hl1 is a symlink %d\n", S_ISLNK(st.st_mode));
    SHOW("linkat a symlink, follow", linkat(AT_FDCWD, "link-dir/c.txt", AT_FDCWD, "hl2", AT_SYMLINK_FOLLOW));
    SHOW("link with a trailing slash", link("b.txt/", "hl3"));
    return 0;
}
