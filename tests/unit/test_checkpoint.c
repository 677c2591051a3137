/*
 * test_checkpoint.c - round trip, escaping, and every kind of damage:
 * truncation at each length, a flipped byte, a foreign watch, missing.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint.h"
#include "malloc_probe.h"
#include "store.h"

static char dir[] = "/tmp/kwb-test-ckpt-XXXXXX";

static size_t read_file(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    size_t n = 0;

    *out = NULL;
    if (!f) {
        return 0;
    }
    fseek(f, 0, SEEK_END);
    n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc(n + 1);
    if (fread(*out, 1, n, f) != n) {
        n = 0;
    }
    fclose(f);
    return n;
}

static void write_file(const char *path, const char *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        if (fwrite(p, 1, n, f) != n) {
            fprintf(stderr, "short write\n");
        }
        fclose(f);
    }
}

/* In a thread of its own (a fresh malloc arena, no free space to serve it
 * from): is a block of *arg bytes an mmap of its own? */
static void *probe_mmapped(void *arg)
{
    return (void *)(intptr_t)malloc_is_mmapped(*(const size_t *)arg);
}

/*
 * Reading a checkpoint leaves glibc's malloc thresholds alone: freeing a
 * buffer of the file's size raised the mmap threshold to it and the trim
 * threshold to twice that for the agent's life. Here a ~1.7 MB checkpoint
 * is read; then a block of 7/8 of its size must still be an mmap of its
 * own (the stores' slot tables, freed here too, are smaller). Run first,
 * before anything else frees large blocks.
 */
static void test_read_keeps_malloc_thresholds(void)
{
    struct kwb_store *s = kwb_store_new(), *got = NULL;
    char uid[64], name[64], *rv = NULL, err[512], path[4096];
    struct stat st;
    size_t probe;
    pthread_t t;
    void *mapped = NULL;

    CHECK(s != NULL);
    for (int i = 0; s && i < 20000; i++) {
        snprintf(uid, sizeof(uid), "0b5c3c7e-8f00-4a8e-9d2a-%012d", i);
        snprintf(name, sizeof(name), "payments-api-7d9f8c6b5-%05d", i);
        kwb_store_put(s, uid, "123456789", name, "default");
    }
    CHECK_EQ_INT(kwb_checkpoint_write(dir, "v1/big", "1", s, err, sizeof(err)),
                 0);
    CHECK_EQ_INT(
        kwb_checkpoint_read(dir, "v1/big", &rv, &got, err, sizeof(err)), 0);
    CHECK(got && kwb_store_count(got) == 20000);
    free(rv);
    kwb_store_free(got);
    kwb_store_free(s);
    CHECK_EQ_INT(kwb_checkpoint_path(dir, "v1/big", path, sizeof(path)), 0);
    CHECK_EQ_INT(stat(path, &st), 0);
    CHECK(st.st_size > (1 << 20));
    probe = (size_t)st.st_size / 8 * 7;
    if (!GLIBC_MALLOC) {
        return;
    }
    CHECK(pthread_create(&t, NULL, probe_mmapped, &probe) == 0 &&
          pthread_join(t, &mapped) == 0);
    CHECK(mapped != NULL);
}

int main(void)
{
    struct kwb_store *s = kwb_store_new(), *got = NULL;
    char *rv = NULL, *data = NULL, path[4096], err[512];
    size_t len;
    struct stat st;

    CHECK(mkdtemp(dir) != NULL);
    test_read_keeps_malloc_thresholds();
    kwb_store_put(s, "0b5c3c7e-8f00-4a8e-9d2a-6f1f2c3d4e5f", "100", "web-0",
                  "default");
    kwb_store_put(s, "odd\tuid%", "5\n6", "%n%%a\tm\ne\n%", "");
    CHECK_EQ_INT(kwb_checkpoint_write(dir, "apps/v1/deployments@prod", "777", s,
                                      err, sizeof(err)),
                 0);
    CHECK_EQ_INT(kwb_checkpoint_path(dir, "apps/v1/deployments@prod", path,
                                     sizeof(path)),
                 0);
    CHECK(strstr(path, "apps_v1_deployments@prod.ckpt") != NULL);
    CHECK_EQ_INT(stat(path, &st), 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);

    CHECK_EQ_INT(kwb_checkpoint_read(dir, "apps/v1/deployments@prod", &rv, &got,
                                     err, sizeof(err)),
                 0);
    CHECK_EQ_STR(rv, "777");
    CHECK(got && kwb_store_count(got) == 2);
    if (got) {
        struct kwb_store_entry e;

        CHECK_EQ_STR(kwb_store_get_rv(got, "odd\tuid%"), "5\n6");
        CHECK_EQ_INT(kwb_store_lookup(got, "odd\tuid%", &e), 0);
        CHECK_EQ_STR(e.name, "%n%%a\tm\ne\n%");
        CHECK_EQ_STR(
            kwb_store_get_rv(got, "0b5c3c7e-8f00-4a8e-9d2a-6f1f2c3d4e5f"),
            "100");
    }
    free(rv);
    kwb_store_free(got);

    /* Missing file. */
    CHECK_EQ_INT(
        kwb_checkpoint_read(dir, "v1/pods", &rv, &got, err, sizeof(err)),
        -ENOENT);
    /* Another watch's file under this name. */
    CHECK_EQ_INT(kwb_checkpoint_write(dir, "v1/pods", "1", s, err, sizeof(err)),
                 0);

    len = read_file(path, &data);
    CHECK(len > 80);
    /* Every truncation is detected. */
    int all = 1;
    for (size_t cut = 0; cut < len; cut++) {
        write_file(path, data, cut);
        int rc = kwb_checkpoint_read(dir, "apps/v1/deployments@prod", &rv, &got,
                                     err, sizeof(err));
        all &= rc == -EBADMSG && rv == NULL && got == NULL;
    }
    CHECK(all);
    /* Every single flipped byte is detected. */
    all = 1;
    for (size_t i = 0; i < len; i++) {
        data[i] ^= 0x20;
        write_file(path, data, len);
        int rc = kwb_checkpoint_read(dir, "apps/v1/deployments@prod", &rv, &got,
                                     err, sizeof(err));
        all &= rc == -EBADMSG;
        data[i] ^= 0x20;
    }
    CHECK(all);
    CHECK(strstr(err, path) != NULL);
    /* Restored bytes read fine again. */
    write_file(path, data, len);
    CHECK_EQ_INT(kwb_checkpoint_read(dir, "apps/v1/deployments@prod", &rv, &got,
                                     err, sizeof(err)),
                 0);
    free(rv);
    kwb_store_free(got);

    free(data);
    kwb_store_free(s);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);
    return check_report();
}
