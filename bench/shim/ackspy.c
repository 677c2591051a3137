/*
 * ackspy.c - LD_PRELOAD shim for the latency benchmark: records when
 * each fdatasync()/fsync() of the file sink completes and how large the
 * file was then, so that every line up to that size is known durable
 * (the file sink acknowledges exactly those events after that call).
 *
 * KWB_ACKSPY_OUT=FILE: one binary record per completed call on a regular
 * file, struct { uint64_t ns (CLOCK_REALTIME, at return); uint64_t ino;
 * uint64_t size; uint64_t duration_ns; }, appended with one write(2)
 * (atomic for O_APPEND). Without the variable the shim only forwards.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int out_fd = -2;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void record(int fd, uint64_t start)
{
    struct stat st;
    uint64_t rec[4];

    rec[0] = now_ns();
    if (out_fd == -2) {
        const char *p = getenv("KWB_ACKSPY_OUT");
        out_fd =
            p ? open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
    }
    if (out_fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        return;
    }
    rec[1] = (uint64_t)st.st_ino;
    rec[2] = (uint64_t)st.st_size;
    rec[3] = rec[0] - start;
    if (write(out_fd, rec, sizeof(rec)) < 0) {
        return;
    }
}

int fdatasync(int fd)
{
    static int (*real)(int);
    uint64_t start = now_ns();
    int rc;

    if (!real) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    }
    rc = real(fd);
    if (rc == 0) {
        record(fd, start);
    }
    return rc;
}

int fsync(int fd)
{
    static int (*real)(int);
    uint64_t start = now_ns();
    int rc;

    if (!real) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    }
    rc = real(fd);
    if (rc == 0) {
        record(fd, start);
    }
    return rc;
}
