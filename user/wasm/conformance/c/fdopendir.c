/* fdopendir on a directory fd from openat, reading names (sorted), and
 * readdir of a subdirectory, an empty directory and a symlinked one. */
#include "common.h"
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }

static void list(const char *label, DIR *dir) {
    if (!dir) {
        printf("%s: %s\n", label, en(errno));
        return;
    }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) && n < 64)
        names[n++] = strdup(e->d_name);
    qsort(names, n, sizeof *names, cmp);
    printf("%s:", label);
    for (int i = 0; i < n; i++)
        printf(" %s", names[i]);
    printf("\n");
    closedir(dir);
}

int main(void) {
    int d = open("dir", O_RDONLY | O_DIRECTORY);
    list("fdopendir dir", fdopendir(d));
    int r = open("/", O_RDONLY | O_DIRECTORY);
    int s = openat(r, "dir/sub", O_RDONLY | O_DIRECTORY);
    list("fdopendir dir/sub via openat", fdopendir(s));
    list("opendir emptydir", opendir("emptydir"));
    list("opendir link-dir", opendir("link-dir"));
    list("opendir link-dir/", opendir("link-dir/"));
    list("opendir a.txt", opendir("a.txt"));
    list("opendir missing", opendir("missing"));
    int f = open("a.txt", O_RDONLY);
    list("fdopendir on a file", fdopendir(f));
    return 0;
}
