/* Large file I/O: 4 MiB written in uneven chunks, read back in other
 * chunk sizes and compared, preads at scattered offsets, the size; a
 * checksum of the whole. */
#include "common.h"
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIZE (4u << 20)

static uint8_t pattern(size_t i) { return (uint8_t)(i * 2654435761u >> 13); }

int main(void) {
    uint8_t *buf = malloc(SIZE);
    for (size_t i = 0; i < SIZE; i++)
        buf[i] = pattern(i);
    int fd = SHOW("create big.bin", open("big.bin", O_RDWR | O_CREAT | O_TRUNC, 0644));
    size_t done = 0, chunk = 1000;
    while (done < SIZE) {
        size_t len = chunk < SIZE - done ? chunk : SIZE - done;
        ssize_t n = write(fd, buf + done, len);
        if (n <= 0) {
            printf("write failed at %zu: %s\n", done, en(errno));
            return 1;
        }
        done += n;
        chunk = chunk * 3 % 300007 + 1;
    }
    printf("written %zu\n", done);
    struct stat st;
    fstat(fd, &st);
    printf("size %lld\n", (long long)st.st_size);
    lseek(fd, 0, SEEK_SET);
    uint8_t *back = malloc(SIZE);
    done = 0;
    while (done < SIZE) {
        ssize_t n = read(fd, back + done, 65536 + 17);
        if (n <= 0)
            break;
        done += n;
    }
    printf("read back %zu, equal %s\n", done, memcmp(buf, back, SIZE) ? "no" : "yes");
    size_t offsets[] = {0, 4095, 4096, 65535, 1 << 20, SIZE - 10};
    int bad = 0;
    for (int i = 0; i < 6; i++) {
        uint8_t p[10];
        ssize_t n = pread(fd, p, 10, offsets[i]);
        bad += n != 10 || memcmp(p, buf + offsets[i], 10);
    }
    printf("preads wrong %d\n", bad);
    uint32_t sum = 0;
    for (size_t i = 0; i < SIZE; i++)
        sum = sum * 31 + back[i];
    printf("checksum %08x\n", sum);
    close(fd);
    return 0;
}
