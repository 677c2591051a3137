/*
 * fuzz_checkpoint.c - libFuzzer target for the checkpoint reader
 * (kwb_checkpoint_parse). The first byte is a flag: odd = the fuzzer
 * appends the correct "sha256 <hex>" trailer to the rest, so mutations
 * reach the parser behind the checksum; even = the rest is parsed as is.
 * Whatever parses must round-trip: format(parse(x)) parses again to the
 * same resourceVersion and object count, and formats to the same lines
 * (the store's iteration order may differ, and with it the trailer).
 */
#include "checkpoint.h"
#include "store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WATCH "v1/pods"

static char *with_trailer(const uint8_t *p, size_t n, size_t *len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char *buf = malloc(n + 7 + 64 + 2);

    if (!buf || !EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL)) {
        abort();
    }
    memcpy(buf, p, n);
    memcpy(buf + n, "sha256 ", 7);
    for (unsigned i = 0; i < mdlen; i++) {
        snprintf(buf + n + 7 + 2 * i, 3, "%02x", md[i]);
    }
    buf[n + 7 + 2 * mdlen] = '\n';
    buf[n + 8 + 2 * mdlen] = '\0';
    *len = n + 8 + 2 * mdlen;
    return buf;
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of a formatted checkpoint without its sha256 trailer, sorted
 * and joined again; modifies buf. */
static char *sorted_lines(char *buf)
{
    size_t n = 0, cap = 16, total = 1;
    char **v = malloc(cap * sizeof(*v)), *out, *w;

    if (!v) {
        abort();
    }
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "sha256 ", 7) == 0) {
            continue;
        }
        if (n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof(*v));
            if (!v) {
                abort();
            }
        }
        v[n++] = line;
        total += strlen(line) + 1;
    }
    qsort(v, n, sizeof(*v), cmp_line);
    w = out = malloc(total);
    if (!out) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(v[i]);
        memcpy(w, v[i], k);
        w += k;
        *w++ = '\n';
    }
    *w = '\0';
    free(v);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512], *buf, *out1 = NULL, *out2 = NULL, *rv = NULL, *rv2 = NULL;
    size_t len, len1 = 0, len2 = 0;
    struct kwb_store *s = NULL, *s2 = NULL;

    if (size < 1) {
        return 0;
    }
    if (data[0] & 1) {
        buf = with_trailer(data + 1, size - 1, &len);
    } else {
        len = size - 1;
        buf = malloc(len + 1);
        if (!buf) {
            abort();
        }
        memcpy(buf, data + 1, len);
        buf[len] = '\0';
    }
    if (kwb_checkpoint_parse(buf, len, "fuzz", WATCH, &rv, &s, err,
                             sizeof(err)) == 0) {
        if (!rv || !s ||
            kwb_checkpoint_format(WATCH, rv, s, &out1, &len1) != 0 ||
            kwb_checkpoint_parse(out1, len1, "fuzz", WATCH, &rv2, &s2, err,
                                 sizeof(err)) != 0 ||
            strcmp(rv, rv2) != 0 || kwb_store_count(s) != kwb_store_count(s2) ||
            kwb_checkpoint_format(WATCH, rv2, s2, &out2, &len2) != 0) {
            abort();
        }
        /* out1 was parsed in place: format both stores again to compare */
        free(out1);
        out1 = NULL;
        if (kwb_checkpoint_format(WATCH, rv, s, &out1, &len1) != 0 ||
            len1 != len2) {
            abort();
        }
        char *a = sorted_lines(out1), *b = sorted_lines(out2);
        if (strcmp(a, b) != 0) {
            abort();
        }
        free(a);
        free(b);
    }
    free(out1);
    free(out2);
    free(rv);
    free(rv2);
    kwb_store_free(s);
    kwb_store_free(s2);
    free(buf);
    return 0;
}
