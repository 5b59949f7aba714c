/* A directory of 500 entries read back with readdir (several fd_readdir
 * calls resumed by cookie): each name once, none missing; after removing
 * every other one, the count again. */
#include "common.h"
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define N 500

static int count(int *seen) {
    DIR *d = opendir("many");
    if (!d) {
        printf("opendir: %s\n", en(errno));
        return -1;
    }
    int n = 0;
    struct dirent *e;
    memset(seen, 0, N * sizeof *seen);
    while ((e = readdir(d))) {
        int i;
        if (sscanf(e->d_name, "entry-with-a-longish-name-%d", &i) == 1 && i >= 0 && i < N)
            seen[i]++;
        n++;
    }
    printf("readdir ended: %s\n", en(errno));
    closedir(d);
    return n;
}

int main(void) {
    static int seen[N];
    SHOW("mkdir many", mkdir("many", 0755));
    char name[80];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "many/entry-with-a-longish-name-%d", i);
        close(open(name, O_WRONLY | O_CREAT, 0644));
    }
    int n = count(seen);
    int once = 0;
    for (int i = 0; i < N; i++)
        once += seen[i] == 1;
    printf("entries %d, each name exactly once: %d\n", n, once);
    for (int i = 0; i < N; i += 2) {
        snprintf(name, sizeof name, "many/entry-with-a-longish-name-%d", i);
        unlink(name);
    }
    n = count(seen);
    once = 0;
    for (int i = 1; i < N; i += 2)
        once += seen[i] == 1;
    printf("after removing half: entries %d, odd names once: %d\n", n, once);
    return 0;
}
