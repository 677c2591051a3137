/*
 * fuzz_framer.c - libFuzzer target for the line framer. The first bytes
 * choose max_line and the chunk sizes; the rest is the stream. The lines
 * delivered must equal those of a plain reference splitter over the whole
 * stream (same rules: '\n' ends a line, one trailing '\r' stripped, blank
 * lines skipped, lines over max_line reported once and skipped), and the
 * pending count must match the unterminated tail.
 */
#include "framer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct out {
    char *buf;
    size_t len, cap;
    unsigned oversize;
};

static int add(struct out *o, const char *p, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        size_t cap = (o->len + n + 1) * 2;
        char *b = realloc(o->buf, cap);

        if (!b) {
            abort();
        }
        o->buf = b;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    o->buf[o->len++] = '\n';
    return 0;
}

static int on_line(void *opaque, const char *line, size_t len)
{
    if (len == 0 || memchr(line, '\n', len)) {
        abort();
    }
    return add(opaque, line, len);
}

static int on_oversize(void *opaque, size_t len_so_far)
{
    struct out *o = opaque;

    (void)len_so_far;
    o->oversize++;
    return 0;
}

static int blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') {
            return 0;
        }
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kwb_framer f;
    struct out got = {NULL, 0, 0, 0}, want = {NULL, 0, 0, 0};
    size_t max_line, pos, tail_len = 0;
    uint8_t c1, c2;
    const char *s, *p, *end;

    if (size < 3) {
        return 0;
    }
    max_line = data[0] % 64;
    c1 = data[1];
    c2 = data[2];
    s = (const char *)data + 3;
    size -= 3;
    end = s + size;

    /* reference */
    for (p = s; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n;

        if (!nl) {
            tail_len = (size_t)(end - p);
            if (tail_len > max_line) {
                want.oversize++;
            }
            break;
        }
        n = (size_t)(nl - p);
        if (n > max_line) {
            want.oversize++;
        } else {
            size_t k = n && p[n - 1] == '\r' ? n - 1 : n;

            if (k && !blank(p, k)) {
                add(&want, p, k);
            }
        }
        p = nl + 1;
    }

    /* framer, chunk sizes cycling through c1 and c2 (0 = empty chunk) */
    kwb_framer_init(&f, max_line);
    for (pos = 0; pos < size;) {
        size_t k = (pos / 7) % 2 ? c1 % 16 : c2;
        char *chunk;

        if (k > size - pos) {
            k = size - pos;
        }
        /* exact-size copy: ASan sees any read past the chunk */
        chunk = malloc(k ? k : 1);
        if (!chunk) {
            abort();
        }
        memcpy(chunk, s + pos, k);
        if (kwb_framer_feed(&f, chunk, k, on_line, on_oversize, &got) != 0) {
            abort();
        }
        free(chunk);
        pos += k;
        if (k == 0) {
            c2 = 1; /* guarantee progress */
            c1 = 1;
        }
    }
    if (got.len != want.len ||
        (got.len && memcmp(got.buf, want.buf, got.len)) ||
        got.oversize != want.oversize || kwb_framer_pending(&f) != tail_len ||
        f.cap > max_line) {
        abort();
    }
    kwb_framer_free(&f);
    free(got.buf);
    free(want.buf);
    return 0;
}
