/*
 * test_framer.c - the watch-stream line framer: a recorded stream fed with
 * chunk boundaries at every position (2 and 3 chunks) and byte by byte must
 * give the same lines; oversize lines, "\r\n", blank lines, stopping,
 * zero-copy, the buffer freed after a large line.
 */
#include "check.h"
#include "framer.h"
#include "kube_samples.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Collected output: lines joined with '\n', plus oversize reports. */
struct sink {
    char *buf;
    size_t len, cap;
    unsigned lines;
    unsigned oversize;
    size_t oversize_len[8];
    unsigned stop_after; /* stop (return 7) after this many lines; 0: never */
    const char *chunk;   /* current chunk, to see zero-copy */
    size_t chunk_len;
    unsigned in_place;
};

static int on_line(void *opaque, const char *line, size_t len)
{
    struct sink *s = opaque;

    if (s->len + len + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        char *p;

        while (cap < s->len + len + 1) {
            cap *= 2;
        }
        p = realloc(s->buf, cap);
        if (!p) {
            return -ENOMEM;
        }
        s->buf = p;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, line, len);
    s->len += len;
    s->buf[s->len++] = '\n';
    s->lines++;
    if (s->chunk && line >= s->chunk && line < s->chunk + s->chunk_len) {
        s->in_place++;
    }
    if (s->stop_after && s->lines == s->stop_after) {
        return 7;
    }
    return 0;
}

static int on_oversize(void *opaque, size_t len_so_far)
{
    struct sink *s = opaque;

    if (s->oversize < 8) {
        s->oversize_len[s->oversize] = len_so_far;
    }
    s->oversize++;
    return 0;
}

static void sink_clear(struct sink *s)
{
    free(s->buf);
    memset(s, 0, sizeof(*s));
}

static int feed(struct kwb_framer *f, struct sink *s, const char *p, size_t n)
{
    s->chunk = p;
    s->chunk_len = n;
    return kwb_framer_feed(f, p, n, on_line, on_oversize, s);
}

/* A recorded stream: pod events, a bookmark, an error, CRLF and blank
 * lines. Returns the stream (malloc) and the expected output. */
static char *make_stream(size_t *len, char **want, size_t *want_len,
                         unsigned *nlines)
{
    size_t cap = 64 * 1024, n = 0, w = 0;
    char *s = malloc(cap);
    char *e = malloc(cap);
    static const char *const extra[] = {
        "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":{"
        "\"resourceVersion\":\"99\",\"annotations\":{"
        "\"k8s.io/initial-events-end\":\"true\"}}}}",
        "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410}}",
        "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"uid\":\"u\"}}}",
    };

    *nlines = 0;
    if (!s || !e) {
        free(s);
        free(e);
        return NULL;
    }
    for (unsigned i = 0; i < 12; i++) {
        char line[8192];
        int k;

        if (i % 4 == 3) {
            k = (int)strlen(extra[i / 4]);
            memcpy(line, extra[i / 4], (size_t)k);
        } else {
            k = sample_pod_event(line, sizeof(line),
                                 i % 2 ? "MODIFIED" : "ADDED", i);
        }
        if (k < 0 || n + (size_t)k + 8 > cap) {
            break;
        }
        memcpy(s + n, line, (size_t)k);
        n += (size_t)k;
        if (i % 3 == 1) {
            s[n++] = '\r'; /* CRLF line */
        }
        s[n++] = '\n';
        if (i % 5 == 2) {
            memcpy(s + n, " \t\r\n\n", 5); /* blank lines */
            n += 5;
        }
        memcpy(e + w, line, (size_t)k);
        w += (size_t)k;
        e[w++] = '\n';
        (*nlines)++;
    }
    *len = n;
    *want = e;
    *want_len = w;
    return s;
}

static void test_splits(void)
{
    size_t n, want_len;
    char *want;
    unsigned nlines;
    char *stream = make_stream(&n, &want, &want_len, &nlines);
    struct kwb_framer f;
    struct sink s;
    unsigned bad = 0;

    if (!CHECK(stream != NULL)) {
        return;
    }
    CHECK_EQ_INT(nlines, 12);
    kwb_framer_init(&f, 1 << 20);
    memset(&s, 0, sizeof(s));

    /* whole */
    CHECK_EQ_INT(feed(&f, &s, stream, n), 0);
    CHECK_EQ_MEM(s.buf, s.len, want, want_len);
    CHECK_EQ_INT(s.lines, nlines);
    CHECK_EQ_INT(s.in_place, nlines); /* all zero-copy */
    CHECK_EQ_INT(kwb_framer_pending(&f), 0);
    sink_clear(&s);

    /* two chunks, every split point */
    for (size_t a = 0; a <= n; a++) {
        int rc = feed(&f, &s, stream, a);

        rc |= feed(&f, &s, stream + a, n - a);
        if (rc != 0 || s.len != want_len || memcmp(s.buf, want, want_len) ||
            kwb_framer_pending(&f) != 0 || s.in_place < nlines - 1) {
            bad++;
        }
        sink_clear(&s);
    }
    CHECK_EQ_INT(bad, 0);

    /* byte by byte */
    for (size_t i = 0; i < n; i++) {
        if (feed(&f, &s, stream + i, 1) != 0) {
            bad++;
        }
        if (i + 1 < n && stream[i] != '\n' && kwb_framer_pending(&f) == 0 &&
            stream[i] != ' ' && stream[i] != '\t' && stream[i] != '\r') {
            bad++; /* a partial line must show as pending */
        }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_MEM(s.buf, s.len, want, want_len);
    CHECK_EQ_INT(s.in_place, 0);
    sink_clear(&s);

    /* the buffer never grew past the longest line */
    CHECK(f.cap <= 1 << 20);
    kwb_framer_free(&f);
    free(stream);
    free(want);
}

/* Three chunks, every pair of split points, on a short stream (the pairs
 * grow with the square of its length). */
static void test_three_chunks(void)
{
    const char *stream =
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"uid\":\"a\"}}}\n"
        "\r\n"
        "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"uid\":\"b\","
        "\"name\":\"x\\ny\"}}}\r\n"
        " \t \n"
        "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{"
        "\"resourceVersion\":\"7\"}}}\n"
        "\n\n"
        "{\"type\":\"DELETED\",\"object\":{}}\r\r\n"
        "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
        "\"message\":\"too old resource version\"}}\n";
    const char *want =
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"uid\":\"a\"}}}\n"
        "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"uid\":\"b\","
        "\"name\":\"x\\ny\"}}}\n"
        "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{"
        "\"resourceVersion\":\"7\"}}}\n"
        "{\"type\":\"DELETED\",\"object\":{}}\r\n"
        "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
        "\"message\":\"too old resource version\"}}\n";
    size_t n = strlen(stream), want_len = strlen(want);
    struct kwb_framer f;
    struct sink s;
    unsigned long bad = 0, runs = 0;
    size_t longest = 0, cur = 0;

    for (size_t i = 0; i < n; i++) {
        cur = stream[i] == '\n' ? 0 : cur + 1;
        longest = cur > longest ? cur : longest;
    }
    CHECK(longest > 90);
    /* max_line: exactly the longest line, so the limit is exercised */
    kwb_framer_init(&f, longest);
    memset(&s, 0, sizeof(s));
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b++) {
            int rc = feed(&f, &s, stream, a);

            rc |= feed(&f, &s, stream + a, b - a);
            rc |= feed(&f, &s, stream + b, n - b);
            if (rc != 0 || s.len != want_len || memcmp(s.buf, want, want_len) ||
                s.oversize != 0 || kwb_framer_pending(&f) != 0) {
                bad++;
            }
            runs++;
            s.len = 0;
            s.lines = 0;
        }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(runs, (n + 1) * (n + 2) / 2);
    sink_clear(&s);

    /* one byte less and the longest line is oversize */
    kwb_framer_free(&f);
    kwb_framer_init(&f, longest - 1);
    memset(&s, 0, sizeof(s));
    CHECK_EQ_INT(feed(&f, &s, stream, n), 0);
    CHECK_EQ_INT(s.oversize, 1);
    CHECK_EQ_INT(s.lines, 4);
    sink_clear(&s);
    kwb_framer_free(&f);
}

static void test_oversize(void)
{
    struct kwb_framer f;
    struct sink s;
    char big[300];
    char stream[1024];
    size_t n = 0;

    memset(big, 'x', sizeof(big));
    /* line of exactly max (100) passes, 101 does not */
    n += (size_t)sprintf(stream + n, "{\"a\":1}\n");
    memcpy(stream + n, big, 100);
    n += 100;
    stream[n++] = '\n';
    memcpy(stream + n, big, 101);
    n += 101;
    stream[n++] = '\n';
    memcpy(stream + n, big, 250);
    n += 250;
    stream[n++] = '\r';
    stream[n++] = '\n';
    n += (size_t)sprintf(stream + n, "{\"b\":2}\r\n");

    kwb_framer_init(&f, 100);
    for (size_t chunk = 1; chunk <= n; chunk++) {
        memset(&s, 0, sizeof(s));
        for (size_t i = 0; i < n; i += chunk) {
            size_t k = n - i < chunk ? n - i : chunk;

            CHECK_EQ_INT(feed(&f, &s, stream + i, k), 0);
        }
        CHECK_EQ_INT(s.lines, 3);
        CHECK_EQ_INT(s.oversize, 2);
        CHECK(s.len == 8 + 101 + 8 && memcmp(s.buf, "{\"a\":1}\n", 8) == 0 &&
              memcmp(s.buf + 109, "{\"b\":2}\n", 8) == 0);
        /* the report comes as soon as the line is known too long */
        CHECK(s.oversize_len[0] > 100 && s.oversize_len[0] <= 101);
        CHECK(s.oversize_len[1] > 100 && s.oversize_len[1] <= 251);
        CHECK_EQ_INT(kwb_framer_pending(&f), 0);
        CHECK(f.cap <= 100);
        sink_clear(&s);
    }

    /* a stream ending inside an oversize line shows it as pending */
    memset(&s, 0, sizeof(s));
    CHECK_EQ_INT(feed(&f, &s, big, 150), 0);
    CHECK_EQ_INT(s.oversize, 1);
    CHECK_EQ_INT(kwb_framer_pending(&f), 150);
    CHECK_EQ_INT(feed(&f, &s, big, 50), 0);
    CHECK_EQ_INT(s.oversize, 1); /* reported once */
    CHECK_EQ_INT(kwb_framer_pending(&f), 200);
    kwb_framer_reset(&f);
    CHECK_EQ_INT(kwb_framer_pending(&f), 0);
    CHECK_EQ_INT(feed(&f, &s, "{}\n", 3), 0);
    CHECK_EQ_INT(s.lines, 1);
    sink_clear(&s);

    /* without an oversize callback the line is skipped silently */
    memset(&s, 0, sizeof(s));
    s.chunk = NULL;
    CHECK_EQ_INT(kwb_framer_feed(&f, big, 200, on_line, NULL, &s), 0);
    CHECK_EQ_INT(kwb_framer_feed(&f, "\n[]\n", 4, on_line, NULL, &s), 0);
    CHECK_EQ_INT(s.lines, 1);
    CHECK_EQ_MEM(s.buf, s.len, "[]\n", 3);
    sink_clear(&s);
    kwb_framer_free(&f);
}

static void test_stop_and_reset(void)
{
    struct kwb_framer f;
    struct sink s;
    const char *stream = "a1\nb2\nc3\nd4";

    kwb_framer_init(&f, 64);
    memset(&s, 0, sizeof(s));
    s.stop_after = 2;
    CHECK_EQ_INT(feed(&f, &s, stream, strlen(stream)), 7);
    CHECK_EQ_INT(s.lines, 2);
    CHECK_EQ_MEM(s.buf, s.len, "a1\nb2\n", 6);
    kwb_framer_reset(&f);
    s.stop_after = 0;
    CHECK_EQ_INT(feed(&f, &s, "x", 1), 0);
    CHECK_EQ_INT(kwb_framer_pending(&f), 1);
    kwb_framer_reset(&f);
    CHECK_EQ_INT(kwb_framer_pending(&f), 0);
    CHECK_EQ_INT(feed(&f, &s, "y\n", 2), 0);
    CHECK_EQ_MEM(s.buf, s.len, "a1\nb2\ny\n", 8);
    sink_clear(&s);

    /* a stop from a line completed out of the buffer */
    memset(&s, 0, sizeof(s));
    s.stop_after = 1;
    CHECK_EQ_INT(feed(&f, &s, "par", 3), 0);
    CHECK_EQ_INT(feed(&f, &s, "tial\nnext\n", 10), 7);
    CHECK_EQ_MEM(s.buf, s.len, "partial\n", 8);
    sink_clear(&s);
    kwb_framer_free(&f);
    kwb_framer_free(&f); /* twice is fine */
    kwb_framer_free(NULL);
}

static void test_blank_and_cr(void)
{
    struct kwb_framer f;
    struct sink s;
    const char *stream = "\n\r\n \n\t\r\n{}\r\r\n \"x\" \n\r{}\n";

    kwb_framer_init(&f, 64);
    memset(&s, 0, sizeof(s));
    CHECK_EQ_INT(feed(&f, &s, stream, strlen(stream)), 0);
    /* only one '\r' is stripped; leading spaces are kept (the scanner
     * allows them) */
    CHECK_EQ_MEM(s.buf, s.len, "{}\r\n \"x\" \n\r{}\n", 14);
    sink_clear(&s);
    kwb_framer_free(&f);
}

/* The buffer holds a partial line; after a line over 256 KiB it is freed,
 * a small one's is kept for the next. */
static void test_buffer_release(void)
{
    struct kwb_framer f;
    struct sink s;
    size_t big = (size_t)1 << 20;
    char *line = malloc(big + 1);

    CHECK(line != NULL);
    if (!line) {
        return;
    }
    memset(line, 'x', big);
    line[0] = '{';
    line[big - 1] = '}';
    line[big] = '\n';
    kwb_framer_init(&f, (size_t)4 << 20);
    memset(&s, 0, sizeof(s));

    CHECK_EQ_INT(feed(&f, &s, "{\"a\":", 5), 0);
    CHECK_EQ_INT(feed(&f, &s, "1}\n", 3), 0);
    CHECK_EQ_MEM(s.buf, s.len, "{\"a\":1}\n", 8);
    CHECK(f.buf != NULL && f.cap > 0 && f.cap <= 4096);

    CHECK_EQ_INT(feed(&f, &s, line, big / 2), 0);
    CHECK(f.cap >= big / 2);
    CHECK_EQ_INT(feed(&f, &s, line + big / 2, big + 1 - big / 2), 0);
    CHECK_EQ_INT(s.lines, 2);
    CHECK_EQ_INT(s.len, 8 + big + 1);
    CHECK(s.len == 8 + big + 1 && memcmp(s.buf + 8, line, big + 1) == 0);
    CHECK(f.buf == NULL && f.cap == 0);
    CHECK_EQ_INT(kwb_framer_pending(&f), 0);

    /* and it grows again for the next partial line */
    CHECK_EQ_INT(feed(&f, &s, "{\"b\"", 4), 0);
    CHECK_EQ_INT(feed(&f, &s, ":2}\n", 4), 0);
    CHECK_EQ_INT(s.lines, 3);
    CHECK_EQ_MEM(s.buf + 8 + big + 1, 8, "{\"b\":2}\n", 8);

    /* Over max_line after half of it was buffered: skipped, freed too. */
    kwb_framer_free(&f);
    kwb_framer_init(&f, big - 1);
    CHECK_EQ_INT(feed(&f, &s, line, big / 2), 0);
    CHECK(f.cap >= big / 2);
    CHECK_EQ_INT(feed(&f, &s, line + big / 2, big + 1 - big / 2), 0);
    CHECK_EQ_INT(s.oversize, 1);
    CHECK_EQ_INT(s.lines, 3);
    CHECK(f.buf == NULL && f.cap == 0);
    sink_clear(&s);
    kwb_framer_free(&f);
    free(line);
}

int main(void)
{
    test_splits();
    test_three_chunks();
    test_oversize();
    test_stop_and_reset();
    test_blank_and_cr();
    test_buffer_release();
    return check_report();
}
