/*
 * webhook.c - the webhook sink: batches events and POSTs them over HTTP(S)
 * with libcurl, one batch in flight at a time so that order holds.
 *
 * Thread: the pipeline thread only. The sink has no thread of its own:
 * poll_acks() and flush() drive a curl multi handle without blocking for
 * longer than they are asked to, and report acks from there.
 *
 * Batches: submit() appends the event, encoded for the configured format,
 * to the open batch `next` (the bytes are copied there, so nothing stays
 * borrowed but the token). `next` is sealed when it is full or older than
 * linger_ms and becomes `cur`, the batch being delivered. `cur` is POSTed
 * until it gets a 2xx (every token acked OK) or a permanent 4xx (every
 * token acked FAIL with the status and an excerpt of the answer); network
 * errors, TLS errors, 408, 429, 5xx (and 3xx, which we never follow) are
 * retried with exponential backoff and jitter, Retry-After being a lower
 * bound. While `cur` is being retried and `next` is full, submit() returns
 * -EAGAIN.
 *
 * After a permanent failure, without `dead_letter_path` in the sink's group,
 * the pipeline sends the failed events again after its backoff, and every
 * event after them after that, in order (pipeline.h). So nothing the sink
 * holds behind them (the rest of `cur`, all of `next`) may go out first: a
 * later change of an object would reach the receiver before the earlier
 * one, and then again. Those events are handed back unsent, acked RETRY in
 * order right after the FAIL acks, and the pipeline sends them after the
 * failed ones; it counts them as retries itself (not env->retried, which is
 * for what the sink sends again). With `dead_letter_path` the failed events
 * are dead-lettered and count as delivered, so the rest goes on (order
 * across a dead-lettered event is not promised). Should the dead letter
 * fail to be written, the pipeline goes back to the failed event after all,
 * and the events after it that went out meanwhile reach the receiver twice:
 * a double fault, logged by the pipeline.
 *
 * 413 Payload Too Large: `cur` is sent in parts instead. The part that got
 * the 413 (at first all of `cur`) is halved, the first half sent at once,
 * the second only after the first was acknowledged (a 2xx, or a permanent
 * failure), each halved again on its own 413: order holds. The limits in
 * force (`lim`, the configured batch_max_events and batch_max_bytes at
 * start) drop to the larger half of what got the 413
 * (kwb_webhook_limits_lower) and shape later batches (a batch filled
 * before they went down is cut to fit them before it is sent); after
 * KWB_WEBHOOK_GROW_AFTER 2xx answers in a row they grow by a quarter, up to
 * the configured values. One event that still gets 413 alone is acked FAIL
 * (reason: 413 and its size), then the rest goes on or is handed back as
 * after any permanent failure (above). Each part is a request of its own:
 * its own X-KWB-Batch-Id and X-KWB-Events, its own signature. A
 * split logs one warning and counts the events sent again as retries
 * (kwb_sink_retries_total).
 *
 * Every attempt is signed anew (X-KWB-Signature over the exact body sent),
 * carries X-KWB-Attempt, X-KWB-Events and X-KWB-Batch-Id (the same for
 * every attempt of a batch) and re-reads the bearer token file when it
 * changed (rotation). Secrets, tokens, signatures and bodies are never
 * logged.
 */
#include "webhook.h"
#include "sink.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libconfig.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define RESP_EXCERPT 512 /* bytes of an answer kept for the FAIL reason */

enum state {
    ST_IDLE = 0, /* no batch being delivered */
    ST_READY,    /* cur sealed, next attempt may start now */
    ST_INFLIGHT, /* the easy handle is in the multi handle */
    ST_BACKOFF,  /* waiting until retry_at_ms */
};

struct batch {
    uint64_t *tokens;
    size_t *ends; /* event i's encoding ends at body + ends[i] */
    size_t n, cap;
    char *body; /* the encoded batch, as sent */
    size_t len, size;
    int64_t first_ms; /* arrival of the first event, for linger */
};

struct webhook {
    struct kwb_webhook_conf conf;
    char *name; /* env->name, copied */
    char *cluster;
    kwb_sink_ack_fn ack;
    void *ack_opaque;
    kwb_sink_log_fn log;
    kwb_sink_retry_fn retried; /* NULL when the pipeline does not count */
    /* The group has dead_letter_path: the pipeline takes a FAIL ack as the
     * end of the event, not as a reason to send it again. */
    int dead_letter;

    CURLM *multi;
    CURL *easy;
    struct curl_slist *hdrs; /* of the attempt in flight */
    char curl_err[CURL_ERROR_SIZE];
    int started;

    struct batch cur, next;
    enum state state;
    unsigned attempt; /* attempts of the part of cur in flight so far */

    /* cur is delivered in parts: [lo, hi) is the part being sent (all of
     * cur unless a 413 split it or it is over the limits), stack[0..depth)
     * the ends of the parts after it, the next one on top. */
    size_t lo, hi;
    size_t stack[KWB_WEBHOOK_MAX_SPLIT_DEPTH];
    size_t depth;
    struct batch part;             /* body of a part in the JSON formats */
    const char *send_body;         /* body of the attempt: cur's, part's or a */
    size_t send_len;               /* slice of cur's (NDJSON) */
    struct kwb_webhook_limits lim; /* lowered after a 413 */

    int64_t retry_at_ms;
    uint64_t batch_seq;
    uint64_t instance; /* random per sink instance, for X-KWB-Batch-Id */
    int failing;       /* the last attempt failed: log the recovery */

    /* Answer of the attempt in flight. */
    long retry_after_ms; /* -1 when absent */
    char resp[RESP_EXCERPT];
    size_t resp_len;

    /* Bearer token and the identity of the file it came from. */
    char *token;
    size_t token_len;
    dev_t token_dev;
    ino_t token_ino;
    off_t token_size;
    struct timespec token_mtime;
    int token_warned;

    uint64_t rng;
};

#define WLOG(w, level, ...)                                                    \
    do {                                                                       \
        if ((w)->log) {                                                        \
            (w)->log((level), (w)->name, __VA_ARGS__);                         \
        }                                                                      \
    } while (0)

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double rnd01(struct webhook *w)
{
    /* xorshift64*: jitter only, no security role. */
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return (double)((w->rng * 2685821657736338717ULL) >> 11) /
           9007199254740992.0;
}

/* ---- pure helpers (webhook.h) ---- */

int kwb_webhook_sign(const unsigned char *key, size_t keylen, int64_t t,
                     const char *body, size_t bodylen, char *out,
                     size_t outsize)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    char ts[32];
    size_t maclen = 0;
    EVP_MAC *hmac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    int tslen;
    int n;
    int rc = -EIO;

    tslen = snprintf(ts, sizeof(ts), "%lld.", (long long)t);
    if (tslen < 0 || (size_t)tslen >= sizeof(ts)) {
        return -EINVAL;
    }
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!hmac) {
        goto out;
    }
    ctx = EVP_MAC_CTX_new(hmac);
    if (!ctx) {
        goto out;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (!EVP_MAC_init(ctx, key, keylen, params) ||
        !EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)tslen) ||
        !EVP_MAC_update(ctx, (const unsigned char *)body, bodylen) ||
        !EVP_MAC_final(ctx, mac, &maclen, sizeof(mac))) {
        goto out;
    }
    n = snprintf(out, outsize, "t=%lld,v1=", (long long)t);
    if (n < 0 || (size_t)n + 2 * maclen >= outsize) {
        rc = -ENOSPC;
        goto out;
    }
    for (size_t i = 0; i < maclen; i++) {
        out[n++] = hex[mac[i] >> 4];
        out[n++] = hex[mac[i] & 15];
    }
    out[n] = '\0';
    rc = 0;
out:
    OPENSSL_cleanse(mac, sizeof(mac));
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    return rc;
}

long kwb_webhook_retry_after_ms(const char *value, time_t now)
{
    const char *p = value;
    char *end;
    long long secs;
    time_t when;

    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (*p >= '0' && *p <= '9') {
        errno = 0;
        secs = strtoll(p, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') {
            end++;
        }
        if (*end != '\0') {
            return -1;
        }
        if (errno == ERANGE || secs > KWB_WEBHOOK_MAX_RETRY_AFTER_MS / 1000) {
            return KWB_WEBHOOK_MAX_RETRY_AFTER_MS;
        }
        return (long)secs * 1000;
    }
    when = curl_getdate(p, NULL);
    if (when == (time_t)-1) {
        return -1;
    }
    if (when <= now) {
        return 0;
    }
    if (when - now > KWB_WEBHOOK_MAX_RETRY_AFTER_MS / 1000) {
        return KWB_WEBHOOK_MAX_RETRY_AFTER_MS;
    }
    return (long)(when - now) * 1000;
}

long kwb_webhook_backoff_ms(long initial_ms, long max_ms, unsigned attempt,
                            double rnd)
{
    double d = (double)initial_ms;

    for (unsigned i = 1; i < attempt && d < (double)max_ms; i++) {
        d *= 2;
    }
    if (d > (double)max_ms) {
        d = (double)max_ms;
    }
    if (rnd < 0) {
        rnd = 0;
    }
    if (rnd >= 1) {
        rnd = 0.999999;
    }
    return (long)(d / 2 + rnd * (d / 2));
}

int kwb_webhook_status_transient(long status)
{
    return status == 408 || status == 429 || status >= 500 ||
           (status >= 300 && status < 400) || status < 200;
}

int kwb_webhook_limits_lower(struct kwb_webhook_limits *l, size_t n,
                             size_t half_len)
{
    size_t ev = n - n / 2;

    if (n < 2) {
        return 0;
    }
    if (ev < (size_t)l->max_events) {
        l->max_events = (long)ev;
    }
    if (half_len < (size_t)l->max_bytes) {
        l->max_bytes = (long)half_len;
    }
    if (l->max_events < 1) {
        l->max_events = 1;
    }
    if (l->max_bytes < 1) {
        l->max_bytes = 1;
    }
    l->ok_run = 0;
    return 1;
}

static long grow(long v, long cap)
{
    long step = v / 4 > 0 ? v / 4 : 1;

    return v >= cap || cap - v <= step ? cap : v + step;
}

int kwb_webhook_limits_ok(struct kwb_webhook_limits *l, long conf_events,
                          long conf_bytes)
{
    if (l->max_events >= conf_events && l->max_bytes >= conf_bytes) {
        l->ok_run = 0;
        return 0;
    }
    if (++l->ok_run < KWB_WEBHOOK_GROW_AFTER) {
        return 0;
    }
    l->ok_run = 0;
    l->max_events = grow(l->max_events, conf_events);
    l->max_bytes = grow(l->max_bytes, conf_bytes);
    return 1;
}

size_t kwb_webhook_part_start(enum kwb_webhook_format format,
                              const size_t *ends, size_t i)
{
    size_t sep = format == KWB_WEBHOOK_NDJSON ? 0 : 1; /* "[" or "," */

    return (i == 0 ? 0 : ends[i - 1]) + sep;
}

size_t kwb_webhook_part_len(enum kwb_webhook_format format, const size_t *ends,
                            size_t lo, size_t hi)
{
    size_t brackets = format == KWB_WEBHOOK_NDJSON ? 0 : 2;

    return ends[hi - 1] - kwb_webhook_part_start(format, ends, lo) + brackets;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}

/* p at an opening quote; returns the closing quote or NULL. */
static const char *string_end(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\') {
            p++;
        } else if (*p == '"') {
            return p;
        }
    }
    return NULL;
}

/* Past one JSON value (already validated upstream; we only need to find
 * its end). NULL on a malformed value. */
static const char *value_end(const char *p, const char *end)
{
    int depth = 0;

    for (; p < end; p++) {
        if (*p == '"') {
            p = string_end(p, end);
            if (!p) {
                return NULL;
            }
            if (depth == 0) {
                return p + 1;
            }
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (depth == 0) {
                return p; /* end of a scalar before the closer */
            }
            if (--depth == 0) {
                return p + 1;
            }
        } else if (depth == 0 && (*p == ',' || *p == ' ' || *p == '\t' ||
                                  *p == '\n' || *p == '\r')) {
            return p;
        }
    }
    return depth == 0 ? p : NULL;
}

int kwb_webhook_json_member(const char *json, size_t len, const char *key,
                            const char **val, size_t *vlen)
{
    const char *end = json + len;
    const char *p = skip_ws(json, end);
    size_t klen = strlen(key);

    if (p >= end || *p != '{') {
        return -1;
    }
    p++;
    for (;;) {
        const char *k, *kend;

        p = skip_ws(p, end);
        if (p >= end || *p != '"') {
            return -1;
        }
        k = p + 1;
        kend = string_end(p, end);
        if (!kend) {
            return -1;
        }
        p = skip_ws(kend + 1, end);
        if (p >= end || *p != ':') {
            return -1;
        }
        p = skip_ws(p + 1, end);
        if (p >= end) {
            return -1;
        }
        if ((size_t)(kend - k) == klen && memcmp(k, key, klen) == 0) {
            const char *vend;

            if (*p != '"') {
                return -1;
            }
            vend = string_end(p, end);
            if (!vend) {
                return -1;
            }
            *val = p + 1;
            *vlen = (size_t)(vend - p - 1);
            return 0;
        }
        p = value_end(p, end);
        if (!p) {
            return -1;
        }
        p = skip_ws(p, end);
        if (p >= end || *p != ',') {
            return -1;
        }
        p++;
    }
}

/* ---- batches ---- */

static int batch_reserve(struct batch *b, size_t more)
{
    size_t need = b->len + more + 1;
    char *body;

    if (need <= b->size) {
        return 0;
    }
    if (need < 4096) {
        need = 4096;
    }
    if (need < b->size * 2) {
        need = b->size * 2;
    }
    body = realloc(b->body, need);
    if (!body) {
        return -ENOMEM;
    }
    b->body = body;
    b->size = need;
    return 0;
}

static int put(struct batch *b, const char *s, size_t n)
{
    int rc = batch_reserve(b, n);

    if (rc < 0) {
        return rc;
    }
    memcpy(b->body + b->len, s, n);
    b->len += n;
    b->body[b->len] = '\0';
    return 0;
}

static int put_str(struct batch *b, const char *s)
{
    return put(b, s, strlen(s));
}

/* Append s JSON-escaped (no quotes). */
static int put_escaped(struct batch *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    int rc = 0;

    for (; s && *s && rc == 0; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            rc = put(b, esc, 2);
        } else if (c < 0x20) {
            rc = put(b, esc, 6);
        } else {
            rc = put(b, (const char *)&c, 1);
        }
    }
    return rc;
}

static int put_lower(struct batch *b, const char *s)
{
    int rc = 0;

    for (; s && *s && rc == 0; s++) {
        char c = *s;

        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
            c == '-' || c == '.') {
            rc = put(b, &c, 1);
        }
    }
    return rc;
}

/*
 * One CloudEvent (structured mode, JSON) wrapping the SPEC event:
 * {"specversion":"1.0","id":"<uid>:<rv>:<TYPE>",
 *  "source":"<cluster>/<watch>","type":"io.k8s.watch.<type lower-case>",
 *  "subject":"<namespace>/<name>" (or "<name>"),"time":"<observedAt>",
 *  "datacontenttype":"application/json","data":<event>}
 */
static int put_cloudevent(struct webhook *w, struct batch *b,
                          const struct kwb_sink_event *ev)
{
    const char *cluster = ev->cluster ? ev->cluster : w->cluster;
    const char *t = NULL;
    size_t tlen = 0;
    int rc;

    if ((rc = put_str(b, "{\"specversion\":\"1.0\",\"id\":\"")) < 0 ||
        (rc = put_escaped(b, ev->uid)) < 0 || (rc = put_str(b, ":")) < 0 ||
        (rc = put_escaped(b, ev->resource_version)) < 0 ||
        (rc = put_str(b, ":")) < 0 || (rc = put_escaped(b, ev->type)) < 0 ||
        (rc = put_str(b, "\",\"source\":\"")) < 0 ||
        (rc = put_escaped(b, cluster ? cluster : "")) < 0 ||
        (rc = put_str(b, "/")) < 0 || (rc = put_escaped(b, ev->watch_id)) < 0 ||
        (rc = put_str(b, "\",\"type\":\"io.k8s.watch.")) < 0 ||
        (rc = put_lower(b, ev->type)) < 0 ||
        (rc = put_str(b, "\",\"subject\":\"")) < 0) {
        return rc;
    }
    if (ev->namespace_ && *ev->namespace_) {
        if ((rc = put_escaped(b, ev->namespace_)) < 0 ||
            (rc = put_str(b, "/")) < 0) {
            return rc;
        }
    }
    if ((rc = put_escaped(b, ev->name)) < 0 || (rc = put_str(b, "\"")) < 0) {
        return rc;
    }
    if (kwb_webhook_json_member(ev->json, ev->json_len, "observedAt", &t,
                                &tlen) == 0) {
        /* Copied as it is in the event: still valid JSON string text. */
        if ((rc = put_str(b, ",\"time\":\"")) < 0 ||
            (rc = put(b, t, tlen)) < 0 || (rc = put_str(b, "\"")) < 0) {
            return rc;
        }
    }
    if ((rc = put_str(b, ",\"datacontenttype\":\"application/json\","
                         "\"data\":")) < 0 ||
        (rc = put(b, ev->json, ev->json_len)) < 0) {
        return rc;
    }
    return put_str(b, "}");
}

static int batch_append(struct webhook *w, struct batch *b,
                        const struct kwb_sink_event *ev, uint64_t token)
{
    int rc;

    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        uint64_t *tokens = realloc(b->tokens, cap * sizeof(*tokens));
        size_t *ends;

        if (!tokens) {
            return -ENOMEM;
        }
        b->tokens = tokens;
        ends = realloc(b->ends, cap * sizeof(*ends));
        if (!ends) {
            return -ENOMEM;
        }
        b->ends = ends;
        b->cap = cap;
    }
    switch (w->conf.format) {
    case KWB_WEBHOOK_NDJSON:
        if ((rc = put(b, ev->json, ev->json_len)) < 0 ||
            (rc = put(b, "\n", 1)) < 0) {
            return rc;
        }
        break;
    case KWB_WEBHOOK_JSON:
        if ((rc = put(b, b->n ? "," : "[", 1)) < 0 ||
            (rc = put(b, ev->json, ev->json_len)) < 0) {
            return rc;
        }
        break;
    case KWB_WEBHOOK_CLOUDEVENTS:
        if ((rc = put(b, b->n ? "," : "[", 1)) < 0 ||
            (rc = put_cloudevent(w, b, ev)) < 0) {
            return rc;
        }
        break;
    }
    b->ends[b->n] = b->len;
    b->tokens[b->n++] = token;
    return 0;
}

/* Bytes the batch will have once sealed. */
static size_t batch_sealed_len(const struct webhook *w, const struct batch *b)
{
    return b->len + (w->conf.format == KWB_WEBHOOK_NDJSON ? 0 : 1);
}

static int batch_full(const struct webhook *w, const struct batch *b)
{
    return b->n >= (size_t)w->lim.max_events ||
           batch_sealed_len(w, b) >= (size_t)w->lim.max_bytes;
}

static void batch_reset(struct batch *b)
{
    b->n = 0;
    b->len = 0;
    if (b->body) {
        b->body[0] = '\0';
    }
    b->first_ms = 0;
}

static void batch_free(struct batch *b)
{
    free(b->tokens);
    free(b->ends);
    free(b->body);
    memset(b, 0, sizeof(*b));
}

/* 1 when the part [lo, hi) of cur is within the limits in force. */
static int part_fits(const struct webhook *w, size_t lo, size_t hi)
{
    return hi - lo <= (size_t)w->lim.max_events &&
           kwb_webhook_part_len(w->conf.format, w->cur.ends, lo, hi) <=
               (size_t)w->lim.max_bytes;
}

/* A part over the limits (cur was filled before they went down): cut it
 * to its longest prefix within them (at least one event), the rest
 * pending. */
static void part_fit(struct webhook *w)
{
    size_t k = w->lo + 1;

    if (w->hi - w->lo < 2 || part_fits(w, w->lo, w->hi) ||
        w->depth >= KWB_WEBHOOK_MAX_SPLIT_DEPTH) {
        return;
    }
    while (k < w->hi && part_fits(w, w->lo, k + 1)) {
        k++;
    }
    w->stack[w->depth++] = w->hi;
    w->hi = k;
}

/* The next part of cur becomes the one to send (a new batch id). Returns
 * 0 when there was none left. */
static int part_next(struct webhook *w)
{
    if (w->depth == 0) {
        return 0;
    }
    w->lo = w->hi;
    w->hi = w->stack[--w->depth];
    part_fit(w);
    w->state = ST_READY;
    w->attempt = 0;
    w->batch_seq++;
    return 1;
}

/* The request body of the part [lo, hi) into send_body, send_len. */
static int part_body(struct webhook *w)
{
    size_t start;
    size_t end;
    int rc;

    if (w->lo == 0 && w->hi == w->cur.n) {
        w->send_body = w->cur.body;
        w->send_len = w->cur.len;
        return 0;
    }
    start = kwb_webhook_part_start(w->conf.format, w->cur.ends, w->lo);
    end = w->cur.ends[w->hi - 1];
    if (w->conf.format == KWB_WEBHOOK_NDJSON) {
        w->send_body = w->cur.body + start;
        w->send_len = end - start;
        return 0;
    }
    batch_reset(&w->part);
    if ((rc = put(&w->part, "[", 1)) < 0 ||
        (rc = put(&w->part, w->cur.body + start, end - start)) < 0 ||
        (rc = put(&w->part, "]", 1)) < 0) {
        return rc;
    }
    w->send_body = w->part.body;
    w->send_len = w->part.len;
    return 0;
}

/* next -> cur (cur must be idle). The buffers are swapped, not freed. */
static int promote(struct webhook *w)
{
    struct batch tmp;
    int rc;

    if (w->conf.format != KWB_WEBHOOK_NDJSON) {
        rc = put(&w->next, "]", 1);
        if (rc < 0) {
            return rc;
        }
    }
    tmp = w->cur;
    w->cur = w->next;
    w->next = tmp;
    batch_reset(&w->next);
    /* One part, the whole batch, halved first if the limits went down
     * after it was filled. */
    w->lo = 0;
    w->hi = 0;
    w->stack[0] = w->cur.n;
    w->depth = 1;
    part_next(w);
    return 0;
}

/* ---- HTTP ---- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque)
{
    struct webhook *w = opaque;
    size_t n = size * nmemb;
    size_t room = sizeof(w->resp) - 1 - w->resp_len;
    size_t take = n < room ? n : room;

    memcpy(w->resp + w->resp_len, data, take);
    w->resp_len += take;
    w->resp[w->resp_len] = '\0';
    return n; /* the rest is discarded */
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *opaque)
{
    struct webhook *w = opaque;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    char value[128];
    size_t vlen;

    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new response (after 100 Continue, say): forget the last. */
        w->retry_after_ms = -1;
        w->resp_len = 0;
        w->resp[0] = '\0';
        return n;
    }
    if (n > sizeof(name) - 1 &&
        strncasecmp(data, name, sizeof(name) - 1) == 0) {
        vlen = n - (sizeof(name) - 1);
        if (vlen >= sizeof(value)) {
            vlen = sizeof(value) - 1;
        }
        memcpy(value, data + sizeof(name) - 1, vlen);
        while (vlen > 0 &&
               (value[vlen - 1] == '\r' || value[vlen - 1] == '\n' ||
                value[vlen - 1] == ' ')) {
            vlen--;
        }
        value[vlen] = '\0';
        w->retry_after_ms = kwb_webhook_retry_after_ms(value, time(NULL));
    }
    return n;
}

static void wipe_slist(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p; p = p->next) {
        if (p->data) {
            OPENSSL_cleanse(p->data, strlen(p->data));
        }
    }
    curl_slist_free_all(l);
}

static void token_forget(struct webhook *w)
{
    if (w->token) {
        OPENSSL_cleanse(w->token, w->token_len);
        free(w->token);
    }
    w->token = NULL;
    w->token_len = 0;
}

/* Re-read the bearer token file when its inode, size or mtime changed.
 * On failure the previous token is kept (rotation is usually a rename). */
static void token_refresh(struct webhook *w)
{
    const char *path = w->conf.bearer_token_file;
    unsigned char *tok = NULL;
    size_t len = 0;
    struct stat st;
    int rc;

    if (!path) {
        return;
    }
    if (stat(path, &st) != 0) {
        rc = -errno;
        goto fail;
    }
    if (w->token && st.st_dev == w->token_dev && st.st_ino == w->token_ino &&
        st.st_size == w->token_size &&
        st.st_mtim.tv_sec == w->token_mtime.tv_sec &&
        st.st_mtim.tv_nsec == w->token_mtime.tv_nsec) {
        return;
    }
    rc = kwb_webhook_read_secret(path, &tok, &len);
    if (rc < 0) {
        goto fail;
    }
    if (len == 0 || strlen((char *)tok) != len ||
        strpbrk((char *)tok, "\r\n")) {
        rc = -EINVAL;
        goto fail;
    }
    token_forget(w);
    w->token = (char *)tok;
    w->token_len = len;
    tok = NULL;
    w->token_dev = st.st_dev;
    w->token_ino = st.st_ino;
    w->token_size = st.st_size;
    w->token_mtime = st.st_mtim;
    if (w->token_warned) {
        WLOG(w, 1, "bearer_token_file %s is readable again", path);
    }
    w->token_warned = 0;
    return;
fail:
    if (tok) {
        OPENSSL_cleanse(tok, len);
        free(tok);
    }
    if (!w->token_warned) {
        WLOG(w, 2, "cannot read bearer_token_file %s: %s; %s", path,
             rc == -EINVAL ? "empty or contains control characters"
                           : strerror(-rc),
             w->token ? "keeping the previous token" : "sending no token");
        w->token_warned = 1;
    }
}

static int header_add(struct curl_slist **l, const char *name,
                      const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = malloc(n);
    struct curl_slist *nl;
    int rc = 0;

    if (!line) {
        return -ENOMEM;
    }
    if (snprintf(line, n, "%s: %s", name, value) < 0) {
        rc = -EIO;
        goto out;
    }
    nl = curl_slist_append(*l, line);
    if (!nl) {
        rc = -ENOMEM;
        goto out;
    }
    *l = nl;
out:
    OPENSSL_cleanse(line, n);
    free(line);
    return rc;
}

static const char *content_type(const struct webhook *w)
{
    switch (w->conf.format) {
    case KWB_WEBHOOK_JSON:
        return "application/json";
    case KWB_WEBHOOK_CLOUDEVENTS:
        return "application/cloudevents-batch+json";
    case KWB_WEBHOOK_NDJSON:
    default:
        return "application/x-ndjson";
    }
}

/* Headers of one attempt: signed now, over exactly send_body. */
static int build_headers(struct webhook *w, struct curl_slist **out)
{
    struct curl_slist *l = NULL;
    char sig[128];
    char num[48];
    int rc;

    *out = NULL;
    if ((rc = header_add(&l, "Content-Type", content_type(w))) < 0 ||
        (rc = header_add(&l, "Expect", "")) < 0) {
        goto out;
    }
    /* "Expect:" with an empty value removes curl's 100-continue.
     * X-KWB-Batch-Id stays the same over the attempts of one batch, so a
     * receiver can drop a retry of a batch it already took (a 2xx lost to
     * a client timeout). */
    if (snprintf(num, sizeof(num), "%u", w->attempt + 1) < 0 ||
        (rc = header_add(&l, "X-KWB-Attempt", num)) < 0 ||
        snprintf(num, sizeof(num), "%zu", w->hi - w->lo) < 0 ||
        (rc = header_add(&l, "X-KWB-Events", num)) < 0 ||
        snprintf(num, sizeof(num), "%016llx-%llu",
                 (unsigned long long)w->instance,
                 (unsigned long long)w->batch_seq) < 0 ||
        (rc = header_add(&l, "X-KWB-Batch-Id", num)) < 0) {
        rc = rc < 0 ? rc : -EIO;
        goto out;
    }
    if (w->conf.bearer_token_file) {
        token_refresh(w);
        if (w->token) {
            size_t n = w->token_len + 8;
            char *v = malloc(n);

            if (!v) {
                rc = -ENOMEM;
                goto out;
            }
            memcpy(v, "Bearer ", 7);
            memcpy(v + 7, w->token, w->token_len + 1);
            rc = header_add(&l, "Authorization", v);
            OPENSSL_cleanse(v, n);
            free(v);
            if (rc < 0) {
                goto out;
            }
        }
    }
    if (w->conf.hmac_secret) {
        rc = kwb_webhook_sign(w->conf.hmac_secret, w->conf.hmac_secret_len,
                              (int64_t)time(NULL), w->send_body, w->send_len,
                              sig, sizeof(sig));
        if (rc == 0) {
            rc = header_add(&l, "X-KWB-Signature", sig);
        }
        OPENSSL_cleanse(sig, sizeof(sig));
        if (rc < 0) {
            goto out;
        }
    }
    for (size_t i = 0; i < w->conf.n_headers; i++) {
        rc = header_add(&l, w->conf.headers[i].name, w->conf.headers[i].value);
        if (rc < 0) {
            goto out;
        }
    }
    *out = l;
    l = NULL;
    rc = 0;
out:
    wipe_slist(l);
    return rc;
}

static void schedule_retry(struct webhook *w, int64_t now)
{
    long delay = kwb_webhook_backoff_ms(
        w->conf.retry_initial_ms, w->conf.retry_max_ms, w->attempt, rnd01(w));

    if (w->retry_after_ms > delay) {
        delay = w->retry_after_ms;
    }
    w->retry_at_ms = now + delay;
    w->state = ST_BACKOFF;
    if (w->retried && w->hi > w->lo) {
        w->retried(w->ack_opaque, w->hi - w->lo);
    }
}

static int start_attempt(struct webhook *w, int64_t now)
{
    struct curl_slist *hdrs = NULL;
    int rc;

    rc = part_body(w);
    if (rc < 0) {
        goto fail;
    }
    rc = build_headers(w, &hdrs);
    if (rc < 0) {
        goto fail;
    }
    w->retry_after_ms = -1;
    w->resp_len = 0;
    w->resp[0] = '\0';
    w->curl_err[0] = '\0';
    if (curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
        curl_easy_setopt(w->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)w->send_len) != CURLE_OK ||
        curl_easy_setopt(w->easy, CURLOPT_POSTFIELDS, w->send_body) !=
            CURLE_OK) {
        rc = -EINVAL;
        goto fail;
    }
    if (curl_multi_add_handle(w->multi, w->easy) != CURLM_OK) {
        rc = -EIO;
        goto fail;
    }
    wipe_slist(w->hdrs);
    w->hdrs = hdrs;
    w->attempt++;
    w->state = ST_INFLIGHT;
    return 0;
fail:
    wipe_slist(hdrs);
    w->attempt++;
    w->retry_after_ms = -1;
    schedule_retry(w, now);
    WLOG(w, 3, "cannot prepare a request to %s: %s; retrying in %lld ms",
         w->conf.host, strerror(-rc), (long long)(w->retry_at_ms - now));
    return rc;
}

/* Ack every event of the part in flight, then go on with the next part
 * of cur, or become idle. Returns the acks reported. */
static int ack_part(struct webhook *w, enum kwb_ack_status status,
                    const char *reason)
{
    size_t n = w->hi - w->lo;

    for (size_t i = w->lo; i < w->hi; i++) {
        w->ack(w->ack_opaque, w->cur.tokens[i], status, reason);
    }
    if (!part_next(w)) {
        batch_reset(&w->cur);
        w->lo = 0;
        w->hi = 0;
        w->state = ST_IDLE;
        w->attempt = 0;
    }
    return (int)n;
}

/*
 * A permanent failure of the part in flight, without dead_letter_path: ack
 * the part FAIL, then hand back everything behind it unsent, RETRY, in
 * order (see the top of the file), and become idle with empty batches.
 * Returns the acks reported.
 */
static int fail_and_hand_back(struct webhook *w, long status,
                              const char *reason)
{
    size_t n = w->hi - w->lo;
    size_t rest = w->cur.n - w->hi;
    size_t back = rest + w->next.n;
    char why[160];

    for (size_t i = w->lo; i < w->hi; i++) {
        w->ack(w->ack_opaque, w->cur.tokens[i], KWB_ACK_FAIL, reason);
    }
    if (back > 0) {
        if (snprintf(why, sizeof(why),
                     "webhook: not sent: an earlier event failed "
                     "permanently (HTTP %ld) and goes again first",
                     status) < 0) {
            why[0] = '\0';
        }
        WLOG(w, 2,
             "%zu events queued behind batch %llu were not sent: handed "
             "back to be sent after its %zu failed events, in order",
             back, (unsigned long long)w->batch_seq, n);
        for (size_t i = w->hi; i < w->cur.n; i++) {
            w->ack(w->ack_opaque, w->cur.tokens[i], KWB_ACK_RETRY, why);
        }
        for (size_t i = 0; i < w->next.n; i++) {
            w->ack(w->ack_opaque, w->next.tokens[i], KWB_ACK_RETRY, why);
        }
    }
    batch_reset(&w->cur);
    batch_reset(&w->next);
    w->lo = 0;
    w->hi = 0;
    w->depth = 0;
    w->state = ST_IDLE;
    w->attempt = 0;
    return (int)(n + back);
}

/* The answer excerpt, made printable (it goes into a reason and a log). */
static void excerpt(const struct webhook *w, char *out, size_t outsize)
{
    size_t j = 0;

    for (size_t i = 0; i < w->resp_len && j + 1 < outsize && i < 200; i++) {
        unsigned char c = (unsigned char)w->resp[i];

        out[j++] =
            (c < 0x20 || c == 0x7f || c == '"' || c == '\\') ? ' ' : (char)c;
    }
    while (j > 0 && out[j - 1] == ' ') {
        j--;
    }
    out[j] = '\0';
}

/* TLS failures are logged as errors: they rarely heal by themselves. A
 * rejected client certificate shows up (TLS 1.3) as a read error with an
 * OpenSSL message. */
static int is_tls_error(const struct webhook *w, CURLcode cc)
{
    switch (cc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CLIENTCERT:
        return 1;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        return w->conf.https && strstr(w->curl_err, "SSL") != NULL;
    default:
        return 0;
    }
}

/*
 * 413 for the part in flight, of two events or more: lower the limits to
 * the larger half, send the first half next (at once: no backoff), then
 * the second. Returns 0 (no acks) or -1 when the part cannot be split
 * (never: depth <= log2 of the events).
 */
static int split_part(struct webhook *w, const char *body)
{
    size_t n = w->hi - w->lo;
    size_t mid, first, second;
    long old_events = w->lim.max_events;
    long old_bytes = w->lim.max_bytes;

    if (w->depth >= KWB_WEBHOOK_MAX_SPLIT_DEPTH) {
        return -1;
    }
    mid = w->lo + n / 2;
    first = kwb_webhook_part_len(w->conf.format, w->cur.ends, w->lo, mid);
    second = kwb_webhook_part_len(w->conf.format, w->cur.ends, mid, w->hi);
    kwb_webhook_limits_lower(&w->lim, n, first > second ? first : second);
    w->stack[w->depth++] = w->hi;
    w->hi = mid;
    WLOG(w, 2,
         "HTTP 413 (Payload Too Large) from %s for batch %llu (%zu events, "
         "%zu bytes): sending it again in two halves of %zu and %zu events, "
         "in order; batch limit lowered from %ld events/%ld bytes to %ld "
         "events/%ld bytes: %s",
         w->conf.host, (unsigned long long)w->batch_seq, n, w->send_len, n / 2,
         n - n / 2, old_events, old_bytes, w->lim.max_events, w->lim.max_bytes,
         body);
    if (w->retried) {
        w->retried(w->ack_opaque, n);
    }
    w->state = ST_READY;
    w->attempt = 0;
    w->batch_seq++;
    return 0;
}

/* The attempt in flight ended with `cc`. Returns the acks reported. */
static int finish_attempt(struct webhook *w, CURLcode cc, int64_t now)
{
    size_t n = w->hi - w->lo;
    long status = 0;
    char body[256];
    char reason[512];

    curl_multi_remove_handle(w->multi, w->easy);
    wipe_slist(w->hdrs);
    w->hdrs = NULL;
    if (cc != CURLE_OK) {
        schedule_retry(w, now);
        WLOG(w, is_tls_error(w, cc) ? 3 : 2,
             "%s to %s failed (batch %llu, %zu events, attempt %u): %s; "
             "retrying in %lld ms",
             is_tls_error(w, cc) ? "TLS connection" : "POST", w->conf.host,
             (unsigned long long)w->batch_seq, n, w->attempt,
             w->curl_err[0] ? w->curl_err : curl_easy_strerror(cc),
             (long long)(w->retry_at_ms - now));
        w->failing = 1;
        return 0;
    }
    curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
        if (w->failing) {
            WLOG(w, 1, "delivered to %s again (batch %llu after %u attempts)",
                 w->conf.host, (unsigned long long)w->batch_seq, w->attempt);
        }
        w->failing = 0;
        if (kwb_webhook_limits_ok(&w->lim, w->conf.batch_max_events,
                                  w->conf.batch_max_bytes)) {
            WLOG(w, 1,
                 "no 413 from %s in %d requests: batch limit raised to %ld "
                 "events/%ld bytes (configured %ld/%ld)",
                 w->conf.host, KWB_WEBHOOK_GROW_AFTER, w->lim.max_events,
                 w->lim.max_bytes, w->conf.batch_max_events,
                 w->conf.batch_max_bytes);
        }
        return ack_part(w, KWB_ACK_OK, NULL);
    }
    excerpt(w, body, sizeof(body));
    if (kwb_webhook_status_transient(status)) {
        schedule_retry(w, now);
        WLOG(w, 2,
             "HTTP %ld from %s (batch %llu, %zu events, attempt %u): %s; "
             "retrying in %lld ms",
             status, w->conf.host, (unsigned long long)w->batch_seq, n,
             w->attempt, body, (long long)(w->retry_at_ms - now));
        w->failing = 1;
        return 0;
    }
    if (status == 413 && n > 1 && split_part(w, body) == 0) {
        return 0;
    }
    if (status == 413 && n == 1) {
        /* The event itself, without the framing of the body. */
        size_t ev = w->cur.ends[w->lo] -
                    kwb_webhook_part_start(w->conf.format, w->cur.ends, w->lo) -
                    (w->conf.format == KWB_WEBHOOK_NDJSON ? 1 : 0);

        if (snprintf(reason, sizeof(reason),
                     "webhook: HTTP 413 (Payload Too Large) from %s for an "
                     "event of %zu bytes sent alone: %s",
                     w->conf.host, ev, body) < 0) {
            reason[0] = '\0';
        }
        WLOG(w, 3,
             "HTTP 413 from %s (batch %llu): an event of %zu bytes is too "
             "large even alone; it failed permanently: %s",
             w->conf.host, (unsigned long long)w->batch_seq, ev, body);
    } else {
        if (snprintf(reason, sizeof(reason), "webhook: HTTP %ld from %s: %s",
                     status, w->conf.host, body) < 0) {
            reason[0] = '\0';
        }
        WLOG(w, 3,
             "HTTP %ld from %s (batch %llu): %zu events failed permanently: "
             "%s",
             status, w->conf.host, (unsigned long long)w->batch_seq, n, body);
    }
    w->failing = 0;
    if (!w->dead_letter) {
        return fail_and_hand_back(w, status, reason);
    }
    return ack_part(w, KWB_ACK_FAIL, reason);
}

/*
 * One turn of the state machine without waiting: promote `next` when due
 * (or when `force`), start attempts, read completed transfers. Returns the
 * number of acks reported.
 */
static int drive(struct webhook *w, int force)
{
    int acks = 0;

    for (int turn = 0; turn < 4; turn++) {
        int64_t now = mono_ms();
        enum state before = w->state;

        if (w->state == ST_BACKOFF && now >= w->retry_at_ms) {
            w->state = ST_READY;
        }
        if (w->state == ST_IDLE && w->next.n > 0 &&
            (force || batch_full(w, &w->next) ||
             now - w->next.first_ms >= w->conf.linger_ms)) {
            if (promote(w) < 0) {
                break; /* -ENOMEM: try again on the next turn */
            }
        }
        if (w->state == ST_READY) {
            start_attempt(w, now);
        }
        if (w->state == ST_INFLIGHT) {
            CURLMsg *msg;
            int running = 0;
            int left = 0;

            curl_multi_perform(w->multi, &running);
            while ((msg = curl_multi_info_read(w->multi, &left))) {
                if (msg->msg == CURLMSG_DONE && msg->easy_handle == w->easy) {
                    acks += finish_attempt(w, msg->data.result, mono_ms());
                }
            }
        }
        if (w->state == before) {
            break;
        }
    }
    return acks;
}

/* Milliseconds until the state machine needs a turn without I/O. */
static int64_t next_wakeup(const struct webhook *w, int64_t now, int force)
{
    if (w->state == ST_BACKOFF) {
        return w->retry_at_ms - now;
    }
    if (w->state == ST_IDLE && w->next.n > 0) {
        if (force || batch_full(w, &w->next)) {
            return 0;
        }
        return w->next.first_ms + w->conf.linger_ms - now;
    }
    return -1;
}

/* Drive for at most timeout_ms; returns as soon as acks were reported. */
static int run(struct webhook *w, int64_t timeout_ms, int force)
{
    int64_t deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int acks = 0;

    for (;;) {
        int64_t now, wait, wake;

        acks += drive(w, force);
        now = mono_ms();
        if (acks > 0 || now >= deadline) {
            break;
        }
        if (force && w->state == ST_IDLE && w->next.n == 0) {
            break;
        }
        wait = deadline - now;
        wake = next_wakeup(w, now, force);
        if (wake >= 0 && wake < wait) {
            wait = wake;
        }
        if (wait > 0) {
            /* Sleeps on curl's sockets, or just sleeps without a
             * transfer; curl shortens it to its own timers. */
            curl_multi_poll(w->multi, NULL, 0, (int)(wait > 1000 ? 1000 : wait),
                            NULL);
        }
    }
    return acks;
}

/* ---- sink ops ---- */

static void webhook_close(void *sink);

static void *webhook_init(const struct config_setting_t *group,
                          const struct kwb_sink_env *env, char *errbuf,
                          size_t errsize)
{
    struct webhook *w = NULL;
    const char *dl = NULL;
    int rc;

    w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(errbuf, errsize, "webhook: out of memory");
        goto fail;
    }
    rc = kwb_webhook_conf_parse(&w->conf, group, errbuf, errsize);
    if (rc < 0) {
        goto fail;
    }
    w->lim.max_events = w->conf.batch_max_events;
    w->lim.max_bytes = w->conf.batch_max_bytes;
    /* The pipeline's key (config.c checked it), read for what a FAIL ack
     * will lead to. */
    if (config_setting_lookup_string(group, "dead_letter_path", &dl) ==
            CONFIG_TRUE &&
        dl && *dl) {
        w->dead_letter = 1;
    }
    w->name = strdup(env && env->name ? env->name : "webhook");
    w->cluster = strdup(env && env->cluster ? env->cluster : "");
    if (!w->name || !w->cluster) {
        snprintf(errbuf, errsize, "webhook: out of memory");
        goto fail;
    }
    if (env) {
        w->ack = env->ack;
        w->ack_opaque = env->ack_opaque;
        w->log = env->log;
        w->retried = env->retried;
    }
    w->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^
             (uint64_t)(uintptr_t)w;
    if (!w->rng) {
        w->rng = 0x9e3779b97f4a7c15ULL;
    }
    w->instance = (uint64_t)(rnd01(w) * 9007199254740992.0) ^
                  ((uint64_t)time(NULL) << 20);
    return w;
fail:
    webhook_close(w);
    return NULL;
}

static int webhook_start(void *sink)
{
    struct webhook *w = sink;
    char err[512];
    CURL *e;
    int ok;
    int rc;

    if (w->started) {
        return 0;
    }
    if (!w->ack) {
        return -EINVAL;
    }
    /* Files that did not exist at init must exist now. */
    rc = kwb_webhook_conf_files(&w->conf, 0, err, sizeof(err));
    if (rc < 0) {
        WLOG(w, 3, "%s", err);
        return rc;
    }
    w->multi = curl_multi_init();
    w->easy = curl_easy_init();
    if (!w->multi || !w->easy) {
        return -ENOMEM;
    }
    e = w->easy;
    ok = curl_easy_setopt(e, CURLOPT_URL, w->conf.url) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_POST, 1L) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, w->conf.timeout_ms) ==
             CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                          w->conf.connect_timeout_ms) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_USERAGENT,
                          "kube-watch-bridge/" KWB_VERSION) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_ERRORBUFFER, w->curl_err) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_WRITEDATA, w) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_HEADERDATA, w) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER,
                          w->conf.insecure_skip_tls_verify ? 0L : 1L) ==
             CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST,
                          w->conf.insecure_skip_tls_verify ? 0L : 2L) ==
             CURLE_OK;
    if (ok && w->conf.ca_file) {
        ok = curl_easy_setopt(e, CURLOPT_CAINFO, w->conf.ca_file) == CURLE_OK;
    }
    if (ok && w->conf.cert_file) {
        ok =
            curl_easy_setopt(e, CURLOPT_SSLCERT, w->conf.cert_file) == CURLE_OK;
    }
    if (ok && w->conf.key_file) {
        ok = curl_easy_setopt(e, CURLOPT_SSLKEY, w->conf.key_file) == CURLE_OK;
    }
    if (!ok) {
        WLOG(w, 3, "libcurl rejected an option (too old or without TLS?)");
        return -EINVAL;
    }
    if (w->conf.insecure_skip_tls_verify && w->conf.https) {
        WLOG(w, 2,
             "TLS verification of %s is disabled "
             "(insecure_skip_tls_verify)",
             w->conf.host);
    }
    w->started = 1;
    return 0;
}

static int webhook_submit(void *sink, const struct kwb_sink_event *ev,
                          uint64_t token)
{
    struct webhook *w = sink;
    struct batch *b = &w->next;
    size_t old_len;
    int rc;

    if (!w->started) {
        return -EINVAL;
    }
    if (b->n >= (size_t)w->lim.max_events) {
        goto full;
    }
    old_len = b->len;
    rc = batch_append(w, b, ev, token);
    if (rc < 0) {
        b->len = old_len;
        return rc;
    }
    if (b->n > 1 && batch_sealed_len(w, b) > (size_t)w->lim.max_bytes) {
        /* Does not fit: take it back, seal what we have. */
        b->n--;
        b->len = old_len;
        b->body[old_len] = '\0';
        goto full;
    }
    if (b->n == 1) {
        b->first_ms = mono_ms();
    }
    return 0;
full:
    if (w->state != ST_IDLE) {
        return -EAGAIN; /* backpressure: cur is still being delivered */
    }
    rc = promote(w);
    if (rc < 0) {
        return rc;
    }
    old_len = b->len;
    rc = batch_append(w, b, ev, token);
    if (rc < 0) {
        b->len = old_len;
        return rc;
    }
    b->first_ms = mono_ms();
    return 0;
}

static int webhook_poll_acks(void *sink, int timeout_ms)
{
    struct webhook *w = sink;

    if (!w->started) {
        return -EINVAL;
    }
    return run(w, timeout_ms, 0);
}

static int webhook_flush(void *sink, int64_t deadline_ms)
{
    struct webhook *w = sink;

    if (!w->started) {
        return 0;
    }
    for (;;) {
        int64_t now = mono_ms();

        if (w->state == ST_IDLE && w->next.n == 0) {
            return 0;
        }
        if (now >= deadline_ms) {
            return -ETIMEDOUT;
        }
        run(w, deadline_ms - now, 1);
    }
}

static int webhook_ready(void *sink)
{
    const struct webhook *w = sink;

    return w && w->started;
}

static void webhook_close(void *sink)
{
    struct webhook *w = sink;

    if (!w) {
        return;
    }
    if (w->multi && w->easy && w->state == ST_INFLIGHT) {
        curl_multi_remove_handle(w->multi, w->easy);
    }
    if (w->easy) {
        curl_easy_cleanup(w->easy);
    }
    if (w->multi) {
        curl_multi_cleanup(w->multi);
    }
    wipe_slist(w->hdrs);
    batch_free(&w->cur);
    batch_free(&w->next);
    batch_free(&w->part);
    token_forget(w);
    kwb_webhook_conf_free(&w->conf);
    free(w->name);
    free(w->cluster);
    free(w);
}

const struct kwb_sink_ops kwb_sink_webhook = {
    .type = "webhook",
    .caps = KWB_SINK_CAP_BATCH,
    .keys = kwb_webhook_keys,
    .init = webhook_init,
    .start = webhook_start,
    .submit = webhook_submit,
    .poll_acks = webhook_poll_acks,
    .flush = webhook_flush,
    .ready = webhook_ready,
    .close = webhook_close,
};
