/*
 * framer.c - watch-stream line framer. See framer.h.
 */
#include "framer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A buffer grown past this for one line is freed once the line is out
 * (delivered or skipped as oversize): one large object does not keep its
 * size for the life of the watch. */
#define KEEP_BYTES ((size_t)256 << 10)

static void release_large(struct kwb_framer *f)
{
    if (f->cap > KEEP_BYTES) {
        free(f->buf);
        f->buf = NULL;
        f->cap = 0;
    }
}

void kwb_framer_init(struct kwb_framer *f, size_t max_line)
{
    memset(f, 0, sizeof(*f));
    f->max_line = max_line;
}

void kwb_framer_reset(struct kwb_framer *f)
{
    release_large(f);
    f->len = 0;
    f->skipped = 0;
    f->skipping = 0;
}

void kwb_framer_free(struct kwb_framer *f)
{
    if (!f) {
        return;
    }
    free(f->buf);
    f->buf = NULL;
    f->cap = 0;
    kwb_framer_reset(f);
}

size_t kwb_framer_pending(const struct kwb_framer *f)
{
    return f->skipping ? f->skipped : f->len;
}

/* Append n bytes; the caller made sure len + n <= max_line. */
static int append(struct kwb_framer *f, const char *p, size_t n)
{
    size_t need = f->len + n;

    if (need > f->cap) {
        size_t cap = f->cap ? f->cap : 4096;
        char *buf;

        while (cap < need) {
            cap = cap > f->max_line / 2 ? f->max_line : cap * 2;
        }
        if (cap > f->max_line) {
            cap = need > f->max_line ? need : f->max_line;
        }
        buf = realloc(f->buf, cap);
        if (!buf) {
            return -ENOMEM;
        }
        f->buf = buf;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, p, n);
    f->len = need;
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

int kwb_framer_feed(struct kwb_framer *f, const char *data, size_t len,
                    kwb_framer_line_fn on_line,
                    kwb_framer_oversize_fn on_oversize, void *opaque)
{
    const char *p = data;
    const char *end = data + len;
    int rc;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        const char *line;
        size_t line_len;

        if (f->skipping) {
            if (!nl) {
                f->skipped += n;
                return 0;
            }
            f->skipping = 0;
            f->skipped = 0;
            p = nl + 1;
            continue;
        }
        if (n > f->max_line - f->len) {
            size_t so_far = f->len + n;

            f->len = 0;
            release_large(f);
            if (nl) {
                p = nl + 1;
            } else {
                f->skipping = 1;
                f->skipped = so_far;
                p = end;
            }
            if (on_oversize && (rc = on_oversize(opaque, so_far)) != 0) {
                return rc;
            }
            continue;
        }
        if (!nl) {
            rc = append(f, p, n);
            if (rc < 0) {
                f->skipping = 1;
                f->skipped = f->len + n;
                f->len = 0;
            }
            return rc;
        }
        if (f->len) {
            rc = append(f, p, n);
            if (rc < 0) {
                f->len = 0;
                return rc;
            }
            line = f->buf;
            line_len = f->len;
            f->len = 0;
        } else {
            line = p;
            line_len = n;
        }
        p = nl + 1;
        if (line_len && line[line_len - 1] == '\r') {
            line_len--;
        }
        rc = line_len && !blank(line, line_len)
                 ? on_line(opaque, line, line_len)
                 : 0;
        if (line == f->buf) {
            release_large(f);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}
