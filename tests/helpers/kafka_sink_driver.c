/*
 * kafka_sink_driver.c - drives the Kafka sink through its kwb_sink_ops, as
 * the pipeline would, for the integration tests.
 *
 *   kafka_sink_driver --conf FILE [--check] [--uids N] [--cluster NAME]
 *
 * FILE holds one group `sink = { brokers = "..."; topic = "..."; ... };`.
 * With --check only init() runs: prints "init ok" (exit 0) or
 * "init error: MSG" (exit 1). Otherwise the sink is started and commands
 * are read from stdin, one a line; each answers with one line:
 *
 *   submit N [SIZE]      N events (uids round-robin over --uids), retrying
 *                        -EAGAIN after a poll  -> "submitted N eagain K"
 *   try-submit N [SIZE]  stop at the first -EAGAIN -> "accepted K eagain E"
 *   big SIZE             one event with a SIZE-byte JSON -> "submitted 1"
 *   poll MS              poll_acks for MS ms    -> "acks TOTAL"
 *   wait-acks N MS       poll until N acks in all or MS ms -> "acks TOTAL"
 *   flush MS             flush with deadline now+MS -> "flush RC"
 *   ready MS             poll until ready() or MS ms -> "ready 0|1"
 *   quit                 close the sink and exit
 *
 * Every ack is printed when the sink reports it, before the answer of the
 * command that polled: "ack TOKEN OK|RETRY|FAIL [REASON]". An ack for a
 * token not pending, or a second ack, prints "bad-ack TOKEN" instead.
 * Each event's bytes are malloc'd and freed at its ack, so a sink that
 * reads them after acking shows under ASan/valgrind.
 *
 * Event token = sequence number from 1; resourceVersion = the token; the
 * first event of a uid is ADDED, later ones MODIFIED; uid index i % 4 == 3
 * is cluster-scoped (kind Namespace, namespace "").
 */
#include "sink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libconfig.h>

struct pending {
    char *json; /* NULL when not pending */
};

static struct pending *pending;
static size_t n_pending;
static uint64_t next_token = 1;
static uint64_t total_acks;
static int n_uids = 10;
static unsigned char *uid_seen;
static const char *cluster_name = "test-cluster";

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_log(int level, const char *sink_name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void on_log(int level, const char *sink_name, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "[driver log %d %s] ", level, sink_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void on_ack(void *opaque, uint64_t token, enum kwb_ack_status status,
                   const char *reason)
{
    static const char *const names[] = {"OK", "RETRY", "FAIL"};

    (void)opaque;
    if (token == 0 || token >= n_pending || !pending[token].json) {
        printf("bad-ack %" PRIu64 "\n", token);
        return;
    }
    /* Scribble before freeing: a sink still reading these bytes would
     * send garbage, which the tests would see. */
    memset(pending[token].json, 'X', strlen(pending[token].json));
    free(pending[token].json);
    pending[token].json = NULL;
    total_acks++;
    printf("ack %" PRIu64 " %s%s%s\n", token, names[status], reason ? " " : "",
           reason ? reason : "");
}

static int grow_pending(uint64_t token)
{
    if (token < n_pending) {
        return 0;
    }
    size_t n = n_pending ? n_pending * 2 : 1024;
    while (n <= token) {
        n *= 2;
    }
    struct pending *p = realloc(pending, n * sizeof(*p));
    if (!p) {
        return -ENOMEM;
    }
    memset(p + n_pending, 0, (n - n_pending) * sizeof(*p));
    pending = p;
    n_pending = n;
    return 0;
}

/*
 * Build event `token` and submit it. `size` > 0 pads the JSON to about
 * that many bytes. Returns submit()'s result; on anything but 0 the event
 * is freed and the token not consumed.
 */
static int submit_one(const struct kwb_sink_ops *ops, void *sink, size_t size)
{
    uint64_t token = next_token;
    int u = (int)((token - 1) % (uint64_t)n_uids);
    int cluster_scoped = u % 4 == 3;
    char uid[32], name[32], ns[32], rv[32];
    const char *type = uid_seen[u] ? "MODIFIED" : "ADDED";
    const char *kind = cluster_scoped ? "Namespace" : "Pod";
    const char *resource = cluster_scoped ? "namespaces" : "pods";
    struct kwb_sink_event ev;
    size_t pad = 0;
    size_t cap;
    char *json;
    int len;
    int rc;

    if (grow_pending(token)) {
        return -ENOMEM;
    }
    snprintf(uid, sizeof(uid), "uid-%04d", u);
    snprintf(name, sizeof(name), "obj-%d", u);
    snprintf(ns, sizeof(ns), "%s", cluster_scoped ? "" : "ns-a");
    snprintf(rv, sizeof(rv), "%" PRIu64, token);
    if (size > 400) {
        pad = size - 400;
    }
    cap = 600 + pad;
    json = malloc(cap);
    if (!json) {
        return -ENOMEM;
    }
    len = snprintf(json, cap,
                   "{\"type\":\"%s\",\"cluster\":\"%s\",\"apiVersion\":\"v1\","
                   "\"kind\":\"%s\",\"resource\":\"%s\",\"namespace\":\"%s\","
                   "\"name\":\"%s\",\"uid\":\"%s\",\"resourceVersion\":\"%s\","
                   "\"origin\":\"watch\",\"observedAt\":"
                   "\"2026-11-22T15:04:05.123Z\",\"object\":{\"metadata\":{"
                   "\"name\":\"%s\",\"uid\":\"%s\",\"resourceVersion\":\"%s\"}"
                   ",\"pad\":\"",
                   type, cluster_name, kind, resource, ns, name, uid, rv, name,
                   uid, rv);
    if (len < 0 || (size_t)len + pad + 8 > cap) {
        free(json);
        return -EINVAL;
    }
    memset(json + len, 'p', pad);
    len += (int)pad;
    memcpy(json + len, "\"}}\n", 5);
    len += 3; /* json[len] is the '\n', as the pipeline hands it */

    memset(&ev, 0, sizeof(ev));
    ev.json = json;
    ev.json_len = (size_t)len;
    ev.type = type;
    ev.kind = kind;
    ev.api_version = "v1";
    ev.resource = resource;
    ev.namespace_ = ns;
    ev.name = name;
    ev.uid = uid;
    ev.resource_version = rv;
    ev.cluster = cluster_name;
    ev.watch_id = cluster_scoped ? "v1/namespaces" : "v1/pods";

    pending[token].json = json;
    rc = ops->submit(sink, &ev, token);
    if (rc != 0) {
        pending[token].json = NULL;
        free(json);
        return rc;
    }
    uid_seen[u] = 1;
    next_token++;
    return 0;
}

static void poll_for(const struct kwb_sink_ops *ops, void *sink, int64_t ms,
                     uint64_t until_acks)
{
    int64_t deadline = now_ms() + ms;

    while (total_acks < until_acks) {
        int64_t left = deadline - now_ms();

        if (left <= 0) {
            break;
        }
        ops->poll_acks(sink, (int)(left < 50 ? left : 50));
    }
}

static int run(const struct kwb_sink_ops *ops, void *sink)
{
    char line[256];

    while (fgets(line, sizeof(line), stdin)) {
        char cmd[32] = "";
        long a = 0, b = 0;
        int n = sscanf(line, "%31s %ld %ld", cmd, &a, &b);

        if (n < 1) {
            continue;
        }
        if (strcmp(cmd, "submit") == 0 || strcmp(cmd, "try-submit") == 0) {
            long done = 0, eagain = 0;
            int keep_trying = cmd[0] == 's';
            int rc = 0;

            while (done < a) {
                rc = submit_one(ops, sink, n >= 3 ? (size_t)b : 0);
                if (rc == -EAGAIN) {
                    eagain++;
                    if (!keep_trying) {
                        break;
                    }
                    ops->poll_acks(sink, 10);
                    continue;
                }
                if (rc != 0) {
                    break;
                }
                done++;
            }
            if (rc != 0 && rc != -EAGAIN) {
                printf("submit-error %d after %ld\n", rc, done);
            } else if (keep_trying) {
                printf("submitted %ld eagain %ld\n", done, eagain);
            } else {
                printf("accepted %ld eagain %ld\n", done, eagain);
            }
        } else if (strcmp(cmd, "big") == 0) {
            int rc = submit_one(ops, sink, (size_t)a);

            if (rc) {
                printf("submit-error %d after 0\n", rc);
            } else {
                printf("submitted 1\n");
            }
        } else if (strcmp(cmd, "poll") == 0) {
            poll_for(ops, sink, a, UINT64_MAX);
            printf("acks %" PRIu64 "\n", total_acks);
        } else if (strcmp(cmd, "wait-acks") == 0) {
            poll_for(ops, sink, b, (uint64_t)a);
            printf("acks %" PRIu64 "\n", total_acks);
        } else if (strcmp(cmd, "flush") == 0) {
            int rc = ops->flush(sink, now_ms() + a);

            printf("flush %d\n", rc);
        } else if (strcmp(cmd, "ready") == 0) {
            int64_t deadline = now_ms() + a;
            int r = ops->ready(sink);

            while (!r && now_ms() < deadline) {
                ops->poll_acks(sink, 50);
                r = ops->ready(sink);
            }
            printf("ready %d\n", r);
        } else if (strcmp(cmd, "quit") == 0) {
            break;
        } else {
            printf("unknown-command %s\n", cmd);
        }
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const struct kwb_sink_ops *ops = &kwb_sink_kafka;
    const char *conf_path = NULL;
    int check = 0;
    config_t lc;
    config_setting_t *group;
    struct kwb_sink_env env;
    char errbuf[1024] = "";
    void *sink = NULL;
    int rc = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--conf") == 0 && i + 1 < argc) {
            conf_path = argv[++i];
        } else if (strcmp(argv[i], "--check") == 0) {
            check = 1;
        } else if (strcmp(argv[i], "--uids") == 0 && i + 1 < argc) {
            n_uids = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--cluster") == 0 && i + 1 < argc) {
            cluster_name = argv[++i];
        } else {
            fprintf(stderr, "usage: kafka_sink_driver --conf FILE [--check] "
                            "[--uids N] [--cluster NAME]\n");
            return 2;
        }
    }
    if (!conf_path || n_uids < 1) {
        fprintf(stderr, "kafka_sink_driver: --conf FILE required\n");
        return 2;
    }
    uid_seen = calloc((size_t)n_uids, 1);
    if (!uid_seen) {
        return 1;
    }
    config_init(&lc);
    if (!config_read_file(&lc, conf_path)) {
        printf("init error: %s:%d: %s\n", conf_path, config_error_line(&lc),
               config_error_text(&lc));
        goto out;
    }
    group = config_lookup(&lc, "sink");
    if (!group) {
        printf("init error: no `sink` group\n");
        goto out;
    }
    memset(&env, 0, sizeof(env));
    env.name = "kafka";
    env.cluster = cluster_name;
    env.ack = on_ack;
    env.log = on_log;
    env.conf_file = conf_path;
    sink = ops->init(group, &env, errbuf, sizeof(errbuf));
    if (!sink) {
        printf("init error: %s\n", errbuf);
        goto out;
    }
    if (check) {
        printf("init ok\n");
        rc = 0;
        goto out;
    }
    rc = ops->start(sink);
    if (rc) {
        printf("start error %d\n", rc);
        rc = 1;
        goto out;
    }
    printf("started\n");
    fflush(stdout);
    rc = run(ops, sink);
out:
    fflush(stdout);
    ops->close(sink);
    config_destroy(&lc);
    for (size_t i = 0; i < n_pending; i++) {
        free(pending[i].json);
    }
    free(pending);
    free(uid_seen);
    return rc;
}
