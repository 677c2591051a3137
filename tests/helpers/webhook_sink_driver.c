/*
 * webhook_sink_driver.c - drives the webhook sink through its ops, as the
 * pipeline would, for tests/integration/test_webhook_*.py.
 *
 *   webhook_sink_driver (--config FILE | --config-string TEXT) [--check]
 *                       [--cluster NAME] CMD... | -
 *
 * The config text holds one group `sink = { url = "..."; ... };`. With
 * --check only init runs: "init ok" or "init error: <errbuf>" (exit 1).
 * Commands (arguments, or lines on stdin with "-"):
 *   submit N     submit N new synthetic events; on -EAGAIN poll 10 ms and
 *                retry. Prints "submitted N eagain K".
 *   size BYTES   pad later events' objects to about BYTES
 *   poll MS      poll_acks for MS milliseconds
 *   wait N MS    poll until N acks in total or MS elapsed: "wait acked=X"
 *   flush MS     flush with a deadline MS ms away: "flush rc=X"
 *   sleep MS     sleep without polling
 * Every ack prints "ack <token> OK|RETRY|FAIL <reason or ->" at once. At
 * the end "summary ..." and exit 0, or 3 when a token was acked twice or
 * an unknown token was acked.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libconfig.h>

#include "sink.h"

struct driver {
    const struct kwb_sink_ops *ops;
    void *sink;
    char **events; /* event i has token i+1 */
    size_t n_events, cap;
    unsigned *acked; /* ack count per token */
    size_t pad;
    unsigned long ok, fail, retry, dup, unknown;
    unsigned long retried; /* events sent again (env.retried) */
    const char *cluster;
};

static struct driver drv;

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_ack(void *opaque, uint64_t token, enum kwb_ack_status status,
                   const char *reason)
{
    struct driver *d = opaque;
    static const char *const names[] = {"OK", "RETRY", "FAIL"};

    printf("ack %llu %s %s\n", (unsigned long long)token,
           status <= KWB_ACK_FAIL ? names[status] : "?",
           reason && *reason ? reason : "-");
    fflush(stdout);
    if (token == 0 || token > d->n_events) {
        d->unknown++;
        return;
    }
    if (d->acked[token - 1]++ > 0) {
        d->dup++;
    }
    if (status == KWB_ACK_OK) {
        d->ok++;
    } else if (status == KWB_ACK_FAIL) {
        d->fail++;
    } else {
        d->retry++;
    }
}

static void on_retried(void *opaque, uint64_t n_events)
{
    struct driver *d = opaque;

    d->retried += n_events;
}

static void on_log(int level, const char *sink_name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void on_log(int level, const char *sink_name, const char *fmt, ...)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    char msg[2048];
    char esc[4200];
    size_t j = 0;
    va_list ap;

    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0) {
        msg[0] = '\0';
    }
    va_end(ap);
    for (size_t i = 0; msg[i] && j + 7 < sizeof(esc); i++) {
        unsigned char c = (unsigned char)msg[i];

        if (c == '"' || c == '\\') {
            esc[j++] = '\\';
            esc[j++] = (char)c;
        } else if (c < 0x20) {
            j += (size_t)snprintf(esc + j, sizeof(esc) - j, "\\u%04x", c);
        } else {
            esc[j++] = (char)c;
        }
    }
    esc[j] = '\0';
    fprintf(stderr,
            "{\"level\":\"%s\",\"module\":\"sink\",\"sink\":\"%s\","
            "\"msg\":\"%s\"}\n",
            levels[level >= 0 && level <= 3 ? level : 3], sink_name, esc);
}

/* A SPEC event; json[len] is '\n' as the pipeline guarantees. */
static char *make_event(struct driver *d, size_t i, size_t *len)
{
    static const char *const types[] = {"ADDED", "MODIFIED", "DELETED"};
    char ts[64];
    struct timespec now;
    struct tm tm;
    char *pad = NULL;
    char *buf = NULL;
    size_t size;
    int n;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
    pad = malloc(d->pad + 1);
    if (!pad) {
        return NULL;
    }
    memset(pad, 'x', d->pad);
    pad[d->pad] = '\0';
    size = d->pad + 1024;
    buf = malloc(size);
    if (!buf) {
        free(pad);
        return NULL;
    }
    n = snprintf(
        buf, size,
        "{\"type\":\"%s\",\"cluster\":\"%s\",\"apiVersion\":\"v1\","
        "\"kind\":\"ConfigMap\",\"resource\":\"configmaps\","
        "\"namespace\":\"default\",\"name\":\"cm-%zu\",\"uid\":\"uid-%06zu\","
        "\"resourceVersion\":\"%zu\",\"origin\":\"watch\","
        "\"observedAt\":\"%s\",\"object\":{\"apiVersion\":\"v1\","
        "\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cm-%zu\","
        "\"namespace\":\"default\",\"uid\":\"uid-%06zu\","
        "\"resourceVersion\":\"%zu\"},\"data\":{\"seq\":\"%zu\","
        "\"note\":\"q\\\"b\\\\ \\u00e9 \xc3\xa9 {[,]}\",\"pad\":\"%s\"}}}",
        types[i % 3], d->cluster, i, i, 1000 + i, ts, i, i, 1000 + i, i, pad);
    free(pad);
    if (n < 0 || (size_t)n >= size - 1) {
        free(buf);
        return NULL;
    }
    buf[n] = '\n';
    buf[n + 1] = '\0';
    *len = (size_t)n;
    return buf;
}

static int submit_one(struct driver *d, unsigned long *eagain)
{
    static const char *const types[] = {"ADDED", "MODIFIED", "DELETED"};
    struct kwb_sink_event ev;
    char name[32], uid[32], rv[32];
    size_t i = d->n_events;
    size_t len = 0;
    char *json;
    int rc;

    if (d->n_events == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 256;
        char **events = realloc(d->events, cap * sizeof(*events));
        unsigned *acked = realloc(d->acked, cap * sizeof(*acked));

        if (events) {
            d->events = events;
        }
        if (acked) {
            d->acked = acked;
        }
        if (!events || !acked) {
            return -ENOMEM;
        }
        memset(d->acked + d->cap, 0, (cap - d->cap) * sizeof(*acked));
        d->cap = cap;
    }
    json = make_event(d, i, &len);
    if (!json) {
        return -ENOMEM;
    }
    d->events[i] = json;
    d->n_events++;
    snprintf(name, sizeof(name), "cm-%zu", i);
    snprintf(uid, sizeof(uid), "uid-%06zu", i);
    snprintf(rv, sizeof(rv), "%zu", 1000 + i);
    memset(&ev, 0, sizeof(ev));
    ev.json = json;
    ev.json_len = len;
    ev.type = types[i % 3];
    ev.kind = "ConfigMap";
    ev.api_version = "v1";
    ev.resource = "configmaps";
    ev.namespace_ = "default";
    ev.name = name;
    ev.uid = uid;
    ev.resource_version = rv;
    ev.cluster = d->cluster;
    ev.watch_id = "v1/configmaps";
    for (;;) {
        rc = d->ops->submit(d->sink, &ev, (uint64_t)(i + 1));
        if (rc != -EAGAIN) {
            break;
        }
        (*eagain)++;
        d->ops->poll_acks(d->sink, 10);
    }
    return rc;
}

static int command(struct driver *d, char *line)
{
    char *cmd = strtok(line, " \t\r\n");
    char *a1 = strtok(NULL, " \t\r\n");
    char *a2 = strtok(NULL, " \t\r\n");
    long n1 = a1 ? atol(a1) : 0;
    long n2 = a2 ? atol(a2) : 0;

    if (!cmd || *cmd == '#') {
        return 0;
    }
    if (strcmp(cmd, "submit") == 0) {
        unsigned long eagain = 0;

        for (long i = 0; i < n1; i++) {
            int rc = submit_one(d, &eagain);

            if (rc < 0) {
                printf("submit error %s\n", strerror(-rc));
                fflush(stdout);
                return -1;
            }
        }
        printf("submitted %ld eagain %lu\n", n1, eagain);
    } else if (strcmp(cmd, "size") == 0) {
        d->pad = n1 > 0 ? (size_t)n1 : 0;
    } else if (strcmp(cmd, "poll") == 0) {
        int64_t end = mono_ms() + n1;

        while (mono_ms() < end) {
            d->ops->poll_acks(d->sink, (int)(end - mono_ms()));
        }
    } else if (strcmp(cmd, "wait") == 0) {
        int64_t end = mono_ms() + n2;

        while (d->ok + d->fail + d->retry < (unsigned long)n1 &&
               mono_ms() < end) {
            d->ops->poll_acks(d->sink, 50);
        }
        printf("wait acked=%lu\n", d->ok + d->fail + d->retry);
    } else if (strcmp(cmd, "flush") == 0) {
        int rc = d->ops->flush(d->sink, mono_ms() + n1);

        printf("flush rc=%d\n", rc);
    } else if (strcmp(cmd, "sleep") == 0) {
        usleep((useconds_t)n1 * 1000);
    } else if (strcmp(cmd, "quit") == 0) {
        return 1;
    } else {
        printf("unknown command %s\n", cmd);
        fflush(stdout);
        return -1;
    }
    fflush(stdout);
    return 0;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
        if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
        }
    }
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    struct driver *d = &drv;
    struct kwb_sink_env env;
    char errbuf[1024] = "";
    char *text = NULL;
    config_t lc;
    const config_setting_t *group;
    int check = 0;
    int i;
    int rc = 2;

    d->cluster = "test-cluster";
    config_init(&lc);
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            free(text);
            text = slurp(argv[++i]);
            if (!text) {
                fprintf(stderr, "cannot read %s\n", argv[i]);
                goto out;
            }
        } else if (strcmp(argv[i], "--config-string") == 0 && i + 1 < argc) {
            free(text);
            text = strdup(argv[++i]);
        } else if (strcmp(argv[i], "--cluster") == 0 && i + 1 < argc) {
            d->cluster = argv[++i];
        } else if (strcmp(argv[i], "--check") == 0) {
            check = 1;
        } else {
            break;
        }
    }
    if (!text) {
        fprintf(stderr,
                "usage: %s --config FILE|--config-string TEXT "
                "[--check] CMD...\n",
                argv[0]);
        goto out;
    }
    if (!config_read_string(&lc, text)) {
        fprintf(stderr, "config line %d: %s\n", config_error_line(&lc),
                config_error_text(&lc));
        goto out;
    }
    group = config_lookup(&lc, "sink");
    if (!group) {
        fprintf(stderr, "config: no sink group\n");
        goto out;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    d->ops = &kwb_sink_webhook;
    memset(&env, 0, sizeof(env));
    env.name = "webhook";
    env.cluster = d->cluster;
    env.ack = on_ack;
    env.ack_opaque = d;
    env.log = on_log;
    env.retried = on_retried;
    env.conf_file = "driver";
    d->sink = d->ops->init(group, &env, errbuf, sizeof(errbuf));
    if (!d->sink) {
        printf("init error: %s\n", errbuf);
        rc = 1;
        goto out;
    }
    printf("init ok\n");
    fflush(stdout);
    if (check) {
        rc = 0;
        goto out;
    }
    rc = d->ops->start(d->sink);
    if (rc != 0) {
        printf("start error: %s\n", strerror(-rc));
        rc = 1;
        goto out;
    }
    rc = 0;
    if (i < argc && strcmp(argv[i], "-") == 0) {
        char line[256];

        while (fgets(line, sizeof(line), stdin)) {
            int r = command(d, line);

            if (r != 0) {
                rc = r < 0 ? 1 : 0;
                break;
            }
        }
    } else {
        for (; i < argc; i++) {
            char line[256];
            int r;

            snprintf(line, sizeof(line), "%s", argv[i]);
            r = command(d, line);
            if (r != 0) {
                rc = r < 0 ? 1 : 0;
                break;
            }
        }
    }
    printf("summary submitted=%zu ok=%lu fail=%lu retry=%lu dup=%lu "
           "unknown=%lu retried=%lu\n",
           d->n_events, d->ok, d->fail, d->retry, d->dup, d->unknown,
           d->retried);
    if (d->dup || d->unknown) {
        rc = 3;
    }
out:
    if (d->ops) {
        d->ops->close(d->sink);
    }
    for (size_t k = 0; k < d->n_events; k++) {
        free(d->events[k]);
    }
    free(d->events);
    free(d->acked);
    free(text);
    config_destroy(&lc);
    curl_global_cleanup();
    fflush(stdout);
    return rc;
}
