/* rewinddir, telldir and seekdir; a directory changed while open. */
#include "common.h"
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

static int count(DIR *d) {
    int n = 0;
    while (readdir(d))
        n++;
    return n;
}

int main(void) {
    DIR *d = opendir("dir");
    int n = count(d);
    printf("entries %d\n", n);
    rewinddir(d);
    printf("after rewinddir %d\n", count(d));
    rewinddir(d);
    readdir(d);
    long pos = telldir(d);
    int rest = count(d);
    seekdir(d, pos);
    printf("after seekdir same rest: %s\n", count(d) == rest ? "yes" : "no");
    close(open("dir/added.txt", O_WRONLY | O_CREAT, 0644));
    rewinddir(d);
    printf("after adding a file and rewinddir %d\n", count(d));
    closedir(d);
    return 0;
}
