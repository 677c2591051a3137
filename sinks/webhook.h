/*
 * webhook.h - private header of the webhook sink (webhook.c,
 * webhook_conf.c) and its unit test. Not for agent/: the pipeline reaches
 * the sink only through `kwb_sink_webhook` in sink.h.
 *
 * Thread: everything here runs on the pipeline thread (init, submit,
 * poll_acks, flush, close); the pure helpers are thread-agnostic.
 */
#ifndef KWB_WEBHOOK_H
#define KWB_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct config_setting_t;

enum kwb_webhook_format {
    KWB_WEBHOOK_NDJSON = 0, /* application/x-ndjson, one event a line */
    KWB_WEBHOOK_JSON,       /* application/json, a JSON array */
    KWB_WEBHOOK_CLOUDEVENTS /* application/cloudevents-batch+json */
};

/* Upper bounds on what we read from files and keep from answers. */
#define KWB_WEBHOOK_MAX_SECRET         65536
#define KWB_WEBHOOK_MAX_HEADERS        64
#define KWB_WEBHOOK_MAX_RETRY_AFTER_MS (3600 * 1000)

struct kwb_webhook_header {
    char *name;
    char *value; /* may be sensitive (API keys): never logged */
};

/* The sink's validated configuration; owned by the sink, freed with
 * kwb_webhook_conf_free (secrets are wiped). */
struct kwb_webhook_conf {
    char *url;
    char *host; /* from url, for log messages */
    int https;
    char *hmac_secret_file;
    unsigned char *hmac_secret; /* file bytes, one trailing newline
                                   stripped; sensitive */
    size_t hmac_secret_len;
    char *bearer_token_file;
    char *ca_file;
    char *cert_file;
    char *key_file;
    int insecure_skip_tls_verify;
    long batch_max_events;
    long batch_max_bytes;
    long linger_ms;
    long timeout_ms;
    long connect_timeout_ms;
    long retry_initial_ms;
    long retry_max_ms;
    enum kwb_webhook_format format;
    struct kwb_webhook_header *headers;
    size_t n_headers;
};

/* Keys accepted in the sink's group (NULL-terminated). */
extern const char *const kwb_webhook_keys[];

/*
 * Validate `group` and fill *conf (zeroed first). Reads the secret and
 * token files (no network). On failure returns a negative errno, writes a
 * message naming the key into errbuf and leaves *conf empty.
 */
int kwb_webhook_conf_parse(struct kwb_webhook_conf *conf,
                           const struct config_setting_t *group, char *errbuf,
                           size_t errsize);
/*
 * The files the sink reads (ca_file, cert_file, key_file must be readable
 * regular files; hmac_secret_file and bearer_token_file non-empty, the
 * token without control characters), read into conf->hmac_secret unless
 * already there. kwb_webhook_conf_parse calls it with missing_ok = 1: a
 * file that does not exist yet passes, so that `--check` works where the
 * secrets are not mounted (conf/ examples, CI), while an existing file
 * that is unreadable, empty or not a regular file is an error at once.
 * start() calls it with missing_ok = 0. 0 or negative errno with errbuf
 * naming the key and the path.
 */
int kwb_webhook_conf_files(struct kwb_webhook_conf *conf, int missing_ok,
                           char *errbuf, size_t errsize);
/* NULL-safe; wipes the secret. */
void kwb_webhook_conf_free(struct kwb_webhook_conf *conf);

/*
 * Read a small secret file (at most KWB_WEBHOOK_MAX_SECRET bytes) into a
 * malloc'd NUL-terminated buffer (caller wipes and frees) with one
 * trailing "\n" or "\r\n" stripped. 0 or negative errno.
 */
int kwb_webhook_read_secret(const char *path, unsigned char **out,
                            size_t *outlen);

/*
 * X-KWB-Signature value: "t=<t>,v1=<hex>" with hex = lowercase
 * HMAC-SHA256(key, "<t>.<body>"). Writes into out (at least 96 bytes).
 * 0 or negative errno.
 */
int kwb_webhook_sign(const unsigned char *key, size_t keylen, int64_t t,
                     const char *body, size_t bodylen, char *out,
                     size_t outsize);

/*
 * Parse a Retry-After value (delta seconds or HTTP-date) relative to `now`
 * (unix seconds). Returns the delay in milliseconds (0 for a date in the
 * past), capped at KWB_WEBHOOK_MAX_RETRY_AFTER_MS, or -1 when invalid.
 */
long kwb_webhook_retry_after_ms(const char *value, time_t now);

/*
 * Backoff before attempt `attempt` (1 = first retry): exponential from
 * initial_ms, capped at max_ms, with "equal jitter": a uniform value in
 * [d/2, d]; `rnd` in [0, 1) is injected for tests.
 */
long kwb_webhook_backoff_ms(long initial_ms, long max_ms, unsigned attempt,
                            double rnd);

/* 1 when an HTTP status is retried (408, 429, 5xx; also 1xx and 3xx,
 * which are never followed), 0 when it is a permanent failure. */
int kwb_webhook_status_transient(long status);

/*
 * 413 Payload Too Large: the sink sends the batch again in two halves,
 * first half first (recursively, per-object order kept), and lowers its
 * effective batch limits. A single event that still gets 413 fails alone.
 * After KWB_WEBHOOK_GROW_AFTER 2xx answers in a row without a 413 each
 * lowered limit grows back by a quarter (at least by one), at most to the
 * configured value.
 */
#define KWB_WEBHOOK_GROW_AFTER 64
/* Parts pending at once while a batch is sent in halves: log2 of the
 * events of a batch, so 64 always suffices. */
#define KWB_WEBHOOK_MAX_SPLIT_DEPTH 64

/* The batch limits in force (configured ones, or lowered after a 413). */
struct kwb_webhook_limits {
    long max_events;
    long max_bytes;
    unsigned ok_run; /* 2xx answers since the last 413 or growth */
};

/*
 * A request of n >= 2 events got 413 and is sent again in two halves, the
 * larger of them `half_len` bytes: each limit becomes at most one half
 * (max_events <= n - n / 2, max_bytes <= half_len), so that both halves
 * fit and later batches are about half as big; never below 1 (a batch
 * always takes at least one event, whatever its size). Resets the run of
 * successes. Returns 1 when the limits were lowered, 0 when n < 2 (one
 * event says nothing about batches: nothing changes).
 */
int kwb_webhook_limits_lower(struct kwb_webhook_limits *l, size_t n,
                             size_t half_len);

/*
 * A 2xx: counts the run; at KWB_WEBHOOK_GROW_AFTER in a row, each limit
 * below its configured value grows by a quarter (at least 1), capped at it,
 * and the run starts again. Returns 1 when a limit grew.
 */
int kwb_webhook_limits_ok(struct kwb_webhook_limits *l, long conf_events,
                          long conf_bytes);

/*
 * Where event i starts in a batch body whose event j ends (exclusive) at
 * ends[j]: NDJSON events are followed by their "\n"; the JSON formats open
 * with "[" and separate with ",". The request body of events [lo, hi)
 * (lo < hi) is the slice start(lo) .. ends[hi - 1], in "[" "]" for the
 * JSON formats: kwb_webhook_part_len is its length.
 */
size_t kwb_webhook_part_start(enum kwb_webhook_format format,
                              const size_t *ends, size_t i);
size_t kwb_webhook_part_len(enum kwb_webhook_format format, const size_t *ends,
                            size_t lo, size_t hi);

/*
 * Find the top-level string member `key` of the JSON object in
 * json..json+len. Sets *val and *vlen to the raw (still escaped) contents
 * between the quotes. 0 when found, -1 when absent or not a string.
 */
int kwb_webhook_json_member(const char *json, size_t len, const char *key,
                            const char **val, size_t *vlen);

#endif
