/*
 * kafka.c - the Kafka sink, on librdkafka's idempotent producer.
 *
 * One event = one message: key = uid (one object's changes stay in one
 * partition, in order), value = the event JSON, headers type, kind,
 * namespace, cluster, resourceVersion. The topic may be a template with
 * {resource}, {namespace}, {kind} and {cluster}; a watch's own `topic` key
 * overrides it for that watch's events.
 *
 * Producer defaults, each overridable in `properties`: enable.idempotence
 * = true, acks = all, message.timeout.ms = 0 (retry transient errors
 * forever), linger.ms = 5, queue.buffering.max.messages = 32768,
 * client.id = kube-watch-bridge, socket.keepalive.enable = true. Not
 * allowed there: bootstrap.servers (the `brokers` key),
 * delivery.report.only.error, transactional.id. An unknown property name
 * without a '.' has its '_' read as '.' (linger_ms), for plain libconfig
 * names.
 *
 * Delivery: librdkafka retries transient errors itself; by default it does
 * so forever (message.timeout.ms = 0), so an event is acknowledged only
 * with its delivery report. Permanent errors (message too large, topic not
 * authorised, ...) are acknowledged KWB_ACK_FAIL with librdkafka's error
 * named in the reason; the pipeline dead-letters or resubmits them.
 *
 * Payloads are not copied: the pipeline keeps an event's bytes until we ack
 * its token, and we ack only after rd_kafka_poll()/rd_kafka_flush() has
 * returned, when librdkafka has destroyed the message (delivery reports
 * are recorded in the callback and reported afterwards).
 *
 * Thread: every kwb_sink_ops function runs on the pipeline thread, and so
 * do the delivery report and error callbacks (served by rd_kafka_poll).
 * The log callback runs on librdkafka's threads and reads only immutable
 * state (env). No locks.
 */
#include "sink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <libconfig.h>
#include <librdkafka/rdkafka.h>

/* The token travels as the message opaque. */
_Static_assert(sizeof(uintptr_t) >= sizeof(uint64_t),
               "a token must fit the per-message opaque");

#define KAFKA_TOPIC_MAX        249 /* Kafka's limit on a topic name */
#define KAFKA_ERRLOG_SLOTS     4
#define KAFKA_ERRLOG_PERIOD_MS 30000
#define KAFKA_START_WAIT_MS    2000

struct kafka_ack {
    uint64_t token;
    rd_kafka_resp_err_t err;
};

/* Rate limit for repeated librdkafka errors, per error code. */
struct kafka_errlog {
    rd_kafka_resp_err_t err;
    int64_t last_ms;
    unsigned suppressed;
};

/* A watch's own topic (`topic` in its group) overrides the sink's. */
struct kafka_route {
    char *watch_id; /* "<api>/<resource>[@<namespace>]", as config.c */
    char *topic;
};

struct kafka_sink {
    char *name;
    char *cluster;
    kwb_sink_ack_fn ack;
    void *ack_opaque;
    kwb_sink_log_fn log;

    char *topic; /* the topic or its template */
    int templated;
    struct kafka_route *routes;
    size_t n_routes;

    rd_kafka_conf_t *conf; /* kept: each producer gets a dup */
    rd_kafka_t *rk;

    /* Delivery results recorded by the callbacks, reported by dispatch().
     * Room for one per accepted token is reserved at submit, so recording
     * never allocates. */
    struct kafka_ack *acks;
    size_t n_acks;
    size_t cap_acks;
    size_t queued;   /* handed to librdkafka, no delivery report yet */
    size_t inflight; /* accepted, not yet acked (queued + n_acks) */

    int ever_up;  /* metadata fetched or a message delivered */
    int all_down; /* since the last "all brokers down" error */
    int64_t down_since_ms;
    int fatal; /* fatal producer error: purge, then a new producer */
    int64_t retry_create_ms; /* when a failed replacement is tried again */
    struct kafka_errlog errlog[KAFKA_ERRLOG_SLOTS];
};

static const char *const kafka_keys[] = {"brokers", "topic", "properties",
                                         NULL};

static const char *const placeholders[] = {"{resource}", "{namespace}",
                                           "{kind}", "{cluster}", NULL};

/* Properties the sink owns or that would break its promises. */
static const struct {
    const char *name;
    const char *why;
} reserved[] = {
    {"bootstrap.servers", "use the sink's `brokers` key"},
    {"metadata.broker.list", "use the sink's `brokers` key"},
    {"delivery.report.only.error",
     "the sink acknowledges events only on delivery reports"},
    {"transactional.id", "transactions are not supported"},
    {NULL, NULL},
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Values of these may be credentials: never echo them. */
static int is_sensitive(const char *prop)
{
    static const char *const words[] = {
        "password", "secret", "jaas", "oauthbearer.config",
        "key.pem",  "token",  NULL};

    for (size_t i = 0; words[i]; i++) {
        if (strstr(prop, words[i])) {
            return 1;
        }
    }
    return 0;
}

static int topic_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/*
 * Expand the topic template for one event into out (size > 249). Values
 * are made legal topic characters ('_' for anything else). Returns the
 * length, or -1 when the result is empty or longer than Kafka allows.
 */
static int topic_expand(const char *tmpl, const struct kwb_sink_event *ev,
                        const char *cluster, char *out, size_t size)
{
    size_t pos = 0;

    for (const char *p = tmpl; *p;) {
        const char *val = NULL;

        if (*p == '{') {
            if (strncmp(p, "{resource}", 10) == 0) {
                val = ev->resource;
                p += 10;
            } else if (strncmp(p, "{namespace}", 11) == 0) {
                val = ev->namespace_;
                p += 11;
            } else if (strncmp(p, "{kind}", 6) == 0) {
                val = ev->kind;
                p += 6;
            } else if (strncmp(p, "{cluster}", 9) == 0) {
                val = ev->cluster ? ev->cluster : cluster;
                p += 9;
            }
        }
        if (val) {
            for (; *val; val++) {
                if (pos + 1 >= size) {
                    return -1;
                }
                out[pos++] = topic_char_ok(*val) ? *val : '_';
            }
        } else {
            if (pos + 1 >= size) {
                return -1;
            }
            out[pos++] = *p++;
        }
    }
    out[pos] = '\0';
    if (pos == 0 || pos > KAFKA_TOPIC_MAX || strcmp(out, ".") == 0 ||
        strcmp(out, "..") == 0) {
        return -1;
    }
    return (int)pos;
}

/* Validate the `topic` key: legal characters outside placeholders, only
 * known placeholders. Sets *templated. 0 or -1 with errbuf. */
static int topic_check(const char *topic, int *templated, char *errbuf,
                       size_t errsize)
{
    size_t literal = 0;

    *templated = 0;
    for (const char *p = topic; *p;) {
        if (*p == '{') {
            size_t i;

            for (i = 0; placeholders[i]; i++) {
                size_t n = strlen(placeholders[i]);

                if (strncmp(p, placeholders[i], n) == 0) {
                    p += n;
                    *templated = 1;
                    break;
                }
            }
            if (!placeholders[i]) {
                snprintf(errbuf, errsize,
                         "topic: unknown placeholder at \"%.40s\" (use "
                         "{resource}, {namespace}, {kind} or {cluster})",
                         p);
                return -1;
            }
            continue;
        }
        if (!topic_char_ok(*p)) {
            snprintf(errbuf, errsize,
                     "topic: invalid character '%c' in \"%.100s\" (Kafka "
                     "topics use [a-zA-Z0-9._-])",
                     *p, topic);
            return -1;
        }
        literal++;
        p++;
    }
    if (!*templated &&
        (literal == 0 || strcmp(topic, ".") == 0 || strcmp(topic, "..") == 0)) {
        snprintf(errbuf, errsize, "topic: \"%s\" is not a valid topic name",
                 topic);
        return -1;
    }
    if (literal > KAFKA_TOPIC_MAX) {
        snprintf(errbuf, errsize, "topic: longer than %d characters",
                 KAFKA_TOPIC_MAX);
        return -1;
    }
    return 0;
}

/* Errors that retrying the same message cannot fix. */
static int err_permanent(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return 1;
    default:
        return 0;
    }
}

/* Report every recorded delivery result. Re-reads the array on each step:
 * an ack callback may call submit(), which may grow it. */
static int dispatch(struct kafka_sink *ks)
{
    int n = 0;

    for (size_t i = 0; i < ks->n_acks; i++) {
        struct kafka_ack a = ks->acks[i];
        enum kwb_ack_status st = KWB_ACK_OK;
        char reason[256];
        const char *why = NULL;

        if (a.err) {
            st = err_permanent(a.err) ? KWB_ACK_FAIL : KWB_ACK_RETRY;
            if (snprintf(reason, sizeof(reason), "kafka: %s: %s",
                         rd_kafka_err2name(a.err),
                         rd_kafka_err2str(a.err)) < 0) {
                reason[0] = '\0';
            }
            why = reason;
        }
        ks->inflight--;
        n++;
        ks->ack(ks->ack_opaque, a.token, st, why);
    }
    ks->n_acks = 0;
    return n;
}

/* Record a result; the slot was reserved when the token was accepted. */
static void record(struct kafka_sink *ks, uint64_t token,
                   rd_kafka_resp_err_t err)
{
    if (ks->n_acks < ks->cap_acks) {
        ks->acks[ks->n_acks].token = token;
        ks->acks[ks->n_acks].err = err;
        ks->n_acks++;
    }
}

static int reserve(struct kafka_sink *ks, size_t need)
{
    struct kafka_ack *acks;
    size_t cap;

    if (need <= ks->cap_acks) {
        return 0;
    }
    cap = ks->cap_acks ? ks->cap_acks * 2 : 1024;
    while (cap < need) {
        cap *= 2;
    }
    acks = realloc(ks->acks, cap * sizeof(*acks));
    if (!acks) {
        return -ENOMEM;
    }
    ks->acks = acks;
    ks->cap_acks = cap;
    return 0;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg,
                        void *opaque)
{
    struct kafka_sink *ks = opaque;

    (void)rk;
    if (!ks) {
        return;
    }
    ks->queued--;
    record(ks, (uint64_t)(uintptr_t)msg->_private, msg->err);
    if (!msg->err) {
        if (ks->all_down) {
            ks->log(1, ks->name,
                    "kafka: delivering again after %" PRId64
                    " ms with all brokers down",
                    now_ms() - ks->down_since_ms);
            ks->all_down = 0;
        }
        ks->ever_up = 1;
    }
}

/* Log a repeated error at most once per period per error code. */
static void log_limited(struct kafka_sink *ks, int level,
                        rd_kafka_resp_err_t err, const char *reason)
{
    struct kafka_errlog *slot = &ks->errlog[0];
    int64_t t = now_ms();

    for (size_t i = 0; i < KAFKA_ERRLOG_SLOTS; i++) {
        if (ks->errlog[i].err == err && ks->errlog[i].last_ms) {
            slot = &ks->errlog[i];
            break;
        }
        if (ks->errlog[i].last_ms < slot->last_ms) {
            slot = &ks->errlog[i];
        }
    }
    if (slot->err == err && slot->last_ms &&
        t - slot->last_ms < KAFKA_ERRLOG_PERIOD_MS) {
        slot->suppressed++;
        return;
    }
    if (slot->err == err && slot->suppressed) {
        ks->log(level, ks->name, "kafka: %s (%u similar suppressed)", reason,
                slot->suppressed);
    } else {
        ks->log(level, ks->name, "kafka: %s", reason);
    }
    slot->err = err;
    slot->last_ms = t;
    slot->suppressed = 0;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_sink *ks = opaque;

    (void)rk;
    if (!ks) {
        return;
    }
    switch (err) {
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        if (!ks->all_down) {
            ks->all_down = 1;
            ks->down_since_ms = now_ms();
            ks->log(2, ks->name,
                    "kafka: all brokers down, holding events until one is "
                    "back: %s",
                    reason);
        }
        break;
    case RD_KAFKA_RESP_ERR__FATAL:
        break; /* reported by check_fatal() with the underlying error */
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        log_limited(ks, 3, (rd_kafka_resp_err_t)err, reason);
        break;
    default:
        log_limited(ks, 2, (rd_kafka_resp_err_t)err, reason);
        break;
    }
}

/* librdkafka's own log lines, from its threads; only env is read. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    struct kafka_sink *ks = rd_kafka_opaque(rk);
    int lvl;

    if (!ks) {
        return;
    }
    if (level <= LOG_ERR) {
        lvl = 3;
    } else if (level == LOG_WARNING) {
        lvl = 2;
    } else if (level <= LOG_INFO) {
        lvl = 1;
    } else {
        lvl = 0;
    }
    /* Connection failures also reach on_error, which rate-limits them;
     * fatal errors are logged by check_fatal(). */
    if ((strcmp(fac, "FAIL") == 0 || strcmp(fac, "FATAL") == 0) && lvl > 0) {
        lvl = 0;
    }
    ks->log(lvl, ks->name, "librdkafka %s: %s", fac, buf);
}

static void on_log_quiet(const rd_kafka_t *rk, int level, const char *fac,
                         const char *buf)
{
    (void)rk;
    (void)level;
    (void)fac;
    (void)buf;
}

/* A config value as the string librdkafka wants. 0 or -1. */
static int value_string(const config_setting_t *s, char *out, size_t size)
{
    int n;

    switch (config_setting_type(s)) {
    case CONFIG_TYPE_STRING:
        n = snprintf(out, size, "%s", config_setting_get_string(s));
        break;
    case CONFIG_TYPE_INT:
        n = snprintf(out, size, "%d", config_setting_get_int(s));
        break;
    case CONFIG_TYPE_INT64:
        n = snprintf(out, size, "%lld", config_setting_get_int64(s));
        break;
    case CONFIG_TYPE_FLOAT:
        n = snprintf(out, size, "%.17g", config_setting_get_float(s));
        break;
    case CONFIG_TYPE_BOOL:
        n = snprintf(out, size, "%s",
                     config_setting_get_bool(s) ? "true" : "false");
        break;
    default:
        return -1;
    }
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Set one property; on error errbuf names the key as the user wrote it
 * (`raw`) and carries librdkafka's message, never a sensitive value. */
static int conf_set(rd_kafka_conf_t *conf, const char *raw, const char *prop,
                    const char *value, char *errbuf, size_t errsize)
{
    char errstr[512];

    if (rd_kafka_conf_set(conf, prop, value, errstr, sizeof(errstr)) ==
        RD_KAFKA_CONF_OK) {
        return 0;
    }
    if (is_sensitive(prop)) {
        snprintf(errbuf, errsize, "properties: %s: invalid value", raw);
    } else if (strcmp(raw, prop) != 0) {
        snprintf(errbuf, errsize, "properties: %s (\"%s\"): %s", raw, prop,
                 errstr);
    } else if (!strstr(errstr, prop)) {
        snprintf(errbuf, errsize, "properties: \"%s\": %s", prop, errstr);
    } else {
        snprintf(errbuf, errsize, "properties: %s", errstr);
    }
    return -1;
}

/* librdkafka knows the name (a few have '_': log_level, enabled_events). */
static int prop_known(const rd_kafka_conf_t *conf, const char *prop)
{
    size_t size = 0;

    return rd_kafka_conf_get(conf, prop, NULL, &size) != RD_KAFKA_CONF_UNKNOWN;
}

/*
 * Apply the `properties` group. A plain libconfig name cannot contain '.',
 * so an unknown name without one has its '_' read as '.' (linger_ms =
 * "linger.ms"); quoted names ("linger.ms") arrive as they are.
 */
static int apply_properties(rd_kafka_conf_t *conf,
                            const config_setting_t *props, char *errbuf,
                            size_t errsize)
{
    int n;

    if (!config_setting_is_group(props)) {
        snprintf(errbuf, errsize,
                 "properties: must be a group { \"name\" = \"value\"; }");
        return -1;
    }
    n = config_setting_length(props);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(props, i);
        const char *raw = config_setting_name(s);
        char prop[256];
        char value[1024];
        int len = snprintf(prop, sizeof(prop), "%s", raw ? raw : "");

        if (len <= 0 || (size_t)len >= sizeof(prop)) {
            snprintf(errbuf, errsize, "properties: invalid property name");
            return -1;
        }
        if (!strchr(prop, '.') && !prop_known(conf, prop)) {
            for (char *c = prop; *c; c++) {
                if (*c == '_') {
                    *c = '.';
                }
            }
        }
        for (size_t r = 0; reserved[r].name; r++) {
            if (strcmp(prop, reserved[r].name) == 0) {
                snprintf(errbuf, errsize, "properties: \"%s\" not allowed: %s",
                         prop, reserved[r].why);
                return -1;
            }
        }
        if (value_string(s, value, sizeof(value))) {
            snprintf(errbuf, errsize,
                     "properties: \"%s\" must be a string, number or boolean",
                     prop);
            return -1;
        }
        if (conf_set(conf, raw, prop, value, errbuf, errsize)) {
            return -1;
        }
    }
    return 0;
}

/*
 * librdkafka checks combinations of properties (idempotence and acks, ...)
 * only when a client is created. Create one without brokers, so nothing
 * connects, to report those errors at init (and so at --check).
 */
static int conf_check(const rd_kafka_conf_t *conf, char *errbuf, size_t errsize)
{
    static const char *const file_props[] = {
        "ssl.ca.location",      "ssl.certificate.location",
        "ssl.key.location",     "ssl.keystore.location",
        "ssl.crl.location",     "ssl.engine.location",
        "sasl.kerberos.keytab", NULL};
    rd_kafka_conf_t *dup = rd_kafka_conf_dup(conf);
    rd_kafka_t *rk;
    char errstr[512];
    char method[32];
    size_t size = sizeof(method);

    if (!dup) {
        snprintf(errbuf, errsize, "out of memory");
        return -1;
    }
    /* OIDC would fetch a token at creation: network I/O. */
    if (rd_kafka_conf_get(dup, "sasl.oauthbearer.method", method, &size) ==
            RD_KAFKA_CONF_OK &&
        strcmp(method, "oidc") == 0) {
        rd_kafka_conf_destroy(dup);
        return 0;
    }
    /* Files may be missing where --check runs (secrets not mounted):
     * start() reports them. */
    for (size_t i = 0; file_props[i]; i++) {
        if (rd_kafka_conf_set(dup, file_props[i], NULL, errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(dup);
            snprintf(errbuf, errsize, "properties: %s", errstr);
            return -1;
        }
    }
    rd_kafka_conf_set_log_cb(dup, on_log_quiet);
    rd_kafka_conf_set_opaque(dup, NULL);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, dup, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(dup);
        snprintf(errbuf, errsize, "properties: %s", errstr);
        return -1;
    }
    rd_kafka_destroy(rk);
    return 0;
}

static const char *member_string(const config_setting_t *g, const char *key)
{
    const char *v = NULL;

    if (!config_setting_lookup_string(g, key, &v)) {
        return NULL;
    }
    return v;
}

/*
 * Per-watch topics. An event carries only its watch id, so read the
 * watches' `topic` keys from the same config (config.c has validated
 * them) and map id -> topic. 0 or -1 on -ENOMEM.
 */
static int load_routes(struct kafka_sink *ks, const config_setting_t *group)
{
    const config_setting_t *watches;
    int n;

    if (!group->config) {
        return 0;
    }
    watches = config_setting_get_member(config_root_setting(group->config),
                                        "watches");
    n = watches ? config_setting_length(watches) : 0;
    if (n <= 0) {
        return 0;
    }
    ks->routes = calloc((size_t)n, sizeof(*ks->routes));
    if (!ks->routes) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const config_setting_t *w = config_setting_get_elem(watches, i);
        const char *api = member_string(w, "api");
        const char *res = member_string(w, "resource");
        const char *ns = member_string(w, "namespace");
        const char *topic = member_string(w, "topic");
        struct kafka_route *r = &ks->routes[ks->n_routes];
        int len;

        if (!api || !res || !topic || !*topic) {
            continue;
        }
        if (ns && !*ns) {
            ns = NULL; /* "" = all namespaces, as in config.c */
        }
        len = snprintf(NULL, 0, "%s/%s%s%s", api, res, ns ? "@" : "",
                       ns ? ns : "");
        r->watch_id = malloc((size_t)len + 1);
        r->topic = strdup(topic);
        if (!r->watch_id || !r->topic) {
            free(r->watch_id);
            free(r->topic);
            return -1;
        }
        snprintf(r->watch_id, (size_t)len + 1, "%s/%s%s%s", api, res,
                 ns ? "@" : "", ns ? ns : "");
        ks->n_routes++;
    }
    return 0;
}

static const char *route_topic(const struct kafka_sink *ks,
                               const char *watch_id)
{
    if (!watch_id) {
        return NULL;
    }
    for (size_t i = 0; i < ks->n_routes; i++) {
        if (strcmp(ks->routes[i].watch_id, watch_id) == 0) {
            return ks->routes[i].topic;
        }
    }
    return NULL;
}

static void kafka_close(void *sink)
{
    struct kafka_sink *ks = sink;

    if (!ks) {
        return;
    }
    if (ks->rk) {
        /* Pending tokens are never acked; don't wait for them. */
        rd_kafka_purge(ks->rk, RD_KAFKA_PURGE_F_QUEUE |
                                   RD_KAFKA_PURGE_F_INFLIGHT |
                                   RD_KAFKA_PURGE_F_NON_BLOCKING);
        rd_kafka_destroy(ks->rk);
    }
    if (ks->conf) {
        rd_kafka_conf_destroy(ks->conf);
    }
    for (size_t i = 0; i < ks->n_routes; i++) {
        free(ks->routes[i].watch_id);
        free(ks->routes[i].topic);
    }
    free(ks->routes);
    free(ks->acks);
    free(ks->topic);
    free(ks->name);
    free(ks->cluster);
    free(ks);
}

static const char *get_string(const config_setting_t *group, const char *key,
                              int *present)
{
    config_setting_t *s =
        config_setting_get_member((config_setting_t *)group, key);

    *present = s != NULL;
    if (!s || config_setting_type(s) != CONFIG_TYPE_STRING) {
        return NULL;
    }
    return config_setting_get_string(s);
}

static void *kafka_init(const struct config_setting_t *group,
                        const struct kwb_sink_env *env, char *errbuf,
                        size_t errsize)
{
    /* Defaults first, so that `properties` may override each. */
    static const char *const defaults[][2] = {
        {"client.id", "kube-watch-bridge"},
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"message.timeout.ms", "0"}, /* retry transient errors forever */
        {"linger.ms", "5"},
        {"queue.buffering.max.messages", "32768"},
        {"socket.keepalive.enable", "true"},
        {NULL, NULL},
    };
    const config_setting_t *g = (const config_setting_t *)group;
    struct kafka_sink *ks = NULL;
    const config_setting_t *props;
    const char *brokers;
    const char *topic;
    int present;

    brokers = get_string(g, "brokers", &present);
    if (!brokers || !*brokers) {
        snprintf(errbuf, errsize,
                 present ? "brokers: must be a non-empty string "
                           "\"host:port[,host:port...]\""
                         : "brokers: missing (\"host:port[,...]\")");
        goto fail;
    }
    topic = get_string(g, "topic", &present);
    if (!topic) {
        snprintf(errbuf, errsize,
                 present ? "topic: must be a string"
                         : "topic: missing (a topic name or a template such "
                           "as \"k8s.{resource}\")");
        goto fail;
    }
    ks = calloc(1, sizeof(*ks));
    if (!ks) {
        snprintf(errbuf, errsize, "out of memory");
        goto fail;
    }
    if (topic_check(topic, &ks->templated, errbuf, errsize)) {
        goto fail;
    }
    ks->name = strdup(env->name ? env->name : "kafka");
    ks->cluster = strdup(env->cluster ? env->cluster : "");
    ks->topic = strdup(topic);
    ks->conf = rd_kafka_conf_new();
    if (!ks->name || !ks->cluster || !ks->topic || !ks->conf) {
        snprintf(errbuf, errsize, "out of memory");
        goto fail;
    }
    if (load_routes(ks, g)) {
        snprintf(errbuf, errsize, "out of memory");
        goto fail;
    }
    ks->ack = env->ack;
    ks->ack_opaque = env->ack_opaque;
    ks->log = env->log;

    for (size_t i = 0; defaults[i][0]; i++) {
        if (conf_set(ks->conf, defaults[i][0], defaults[i][0], defaults[i][1],
                     errbuf, errsize)) {
            goto fail;
        }
    }
    props = config_setting_get_member((config_setting_t *)g, "properties");
    if (props && apply_properties(ks->conf, props, errbuf, errsize)) {
        goto fail;
    }
    if (conf_check(ks->conf, errbuf, errsize)) {
        goto fail;
    }
    {
        char errstr[512];

        if (rd_kafka_conf_set(ks->conf, "bootstrap.servers", brokers, errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK) {
            snprintf(errbuf, errsize, "brokers: %s", errstr);
            goto fail;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(ks->conf, on_delivery);
    rd_kafka_conf_set_error_cb(ks->conf, on_error);
    rd_kafka_conf_set_log_cb(ks->conf, on_log);
    rd_kafka_conf_set_opaque(ks->conf, ks);
    return ks;
fail:
    kafka_close(ks);
    return NULL;
}

static int producer_new(struct kafka_sink *ks)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(ks->conf);
    char errstr[512];

    if (!conf) {
        return -ENOMEM;
    }
    ks->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!ks->rk) {
        rd_kafka_conf_destroy(conf);
        ks->log(3, ks->name, "kafka: cannot create producer: %s", errstr);
        return -EINVAL;
    }
    return 0;
}

static int kafka_start(void *sink)
{
    struct kafka_sink *ks = sink;
    int rc;

    if (ks->rk) {
        return 0;
    }
    rc = producer_new(ks);
    if (rc < 0) {
        return rc;
    }
    /* The pipeline samples ready() right after start: give the first
     * metadata request a moment, bounded, so a reachable cluster reports
     * ready at once. Events wait in the pipeline meanwhile. */
    if (rd_kafka_controllerid(ks->rk, KAFKA_START_WAIT_MS) >= 0) {
        ks->ever_up = 1;
        ks->log(1, ks->name, "kafka: connected, producing to \"%s\"",
                ks->topic);
    } else {
        ks->log(2, ks->name,
                "kafka: no broker reachable yet; events are held until one "
                "is");
    }
    return 0;
}

/*
 * After a fatal error (idempotence state lost) the producer accepts
 * nothing more: purge it, let the purged messages come back as RETRY, then
 * replace it. At-least-once holds; the purged events may repeat.
 */
static void check_fatal(struct kafka_sink *ks)
{
    char errstr[512];

    if (!ks->rk) {
        /* The replacement failed (logged): try again, once a second. */
        if (ks->fatal && now_ms() >= ks->retry_create_ms) {
            if (producer_new(ks) == 0) {
                ks->fatal = 0;
            } else {
                ks->retry_create_ms = now_ms() + 1000;
            }
        }
        return;
    }
    if (!ks->fatal) {
        if (!rd_kafka_fatal_error(ks->rk, errstr, sizeof(errstr))) {
            return;
        }
        ks->fatal = 1;
        ks->log(3, ks->name,
                "kafka: fatal producer error, replacing the producer: %s",
                errstr);
        rd_kafka_purge(ks->rk,
                       RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    }
    if (ks->queued == 0) {
        rd_kafka_destroy(ks->rk);
        ks->rk = NULL;
        if (producer_new(ks) == 0) {
            ks->fatal = 0;
        } else {
            ks->retry_create_ms = now_ms() + 1000;
        }
    }
}

static int kafka_submit(void *sink, const struct kwb_sink_event *ev,
                        uint64_t token)
{
    struct kafka_sink *ks = sink;
    char topic[KAFKA_TOPIC_MAX + 2];
    const char *name;
    const char *ns = ev->namespace_ ? ev->namespace_ : "";
    const char *cluster = ev->cluster ? ev->cluster : ks->cluster;
    const char *uid = ev->uid ? ev->uid : "";
    rd_kafka_resp_err_t err;

    if (ks->fatal) {
        return -EAGAIN; /* a new producer comes with the next poll */
    }
    if (!ks->rk) {
        return -ENOTCONN;
    }
    if (reserve(ks, ks->inflight + 1)) {
        /* Out of memory is no reason to dead-letter: retry later. */
        return -EAGAIN;
    }
    name = route_topic(ks, ev->watch_id);
    if (!name && ks->templated) {
        if (topic_expand(ks->topic, ev, ks->cluster, topic, sizeof(topic)) <
            0) {
            /* Nothing to retry: the event's own fields make it invalid. */
            record(ks, token, RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION);
            ks->inflight++;
            return 0;
        }
        name = topic;
    } else if (!name) {
        name = ks->topic;
    }
    err = rd_kafka_producev(
        ks->rk, RD_KAFKA_V_TOPIC(name), RD_KAFKA_V_MSGFLAGS(0),
        RD_KAFKA_V_KEY(uid, strlen(uid)),
        RD_KAFKA_V_VALUE((void *)ev->json, ev->json_len),
        RD_KAFKA_V_HEADER("type", ev->type ? ev->type : "", -1),
        RD_KAFKA_V_HEADER("kind", ev->kind ? ev->kind : "", -1),
        RD_KAFKA_V_HEADER("namespace", ns, -1),
        RD_KAFKA_V_HEADER("cluster", cluster, -1),
        RD_KAFKA_V_HEADER("resourceVersion",
                          ev->resource_version ? ev->resource_version : "", -1),
        RD_KAFKA_V_OPAQUE((void *)(uintptr_t)token), RD_KAFKA_V_END);
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        ks->queued++;
        break;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        return -EAGAIN;
    case RD_KAFKA_RESP_ERR__FATAL:
        check_fatal(ks);
        return -EAGAIN;
    default:
        /* Refused before queueing (too large, unknown topic...): the
         * result is known now and reported at the next poll. */
        record(ks, token, err);
        break;
    }
    ks->inflight++;
    return 0;
}

static int kafka_poll_acks(void *sink, int timeout_ms)
{
    struct kafka_sink *ks = sink;

    if (!ks->rk && !ks->fatal) {
        return ks->n_acks ? dispatch(ks) : -ENOTCONN;
    }
    check_fatal(ks);
    if (!ks->rk) {
        return dispatch(ks);
    }
    rd_kafka_poll(ks->rk, ks->n_acks ? 0 : timeout_ms);
    check_fatal(ks);
    return dispatch(ks);
}

static int kafka_flush(void *sink, int64_t deadline_ms)
{
    struct kafka_sink *ks = sink;

    for (;;) {
        int64_t left;

        dispatch(ks);
        if (ks->inflight == 0) {
            return 0;
        }
        left = deadline_ms - now_ms();
        if (left <= 0 || !ks->rk) {
            return -ETIMEDOUT;
        }
        /* rd_kafka_flush() sends lingering messages now and serves
         * delivery reports while it waits. */
        rd_kafka_flush(ks->rk, (int)(left < 100 ? left : 100));
        check_fatal(ks);
    }
}

static int kafka_ready(void *sink)
{
    struct kafka_sink *ks = sink;

    if (!ks->rk || ks->fatal) {
        return 0;
    }
    if (!ks->ever_up && rd_kafka_controllerid(ks->rk, 0) >= 0) {
        ks->ever_up = 1;
    }
    return ks->ever_up;
}

const struct kwb_sink_ops kwb_sink_kafka = {
    .type = "kafka",
    .caps = 0,
    .keys = kafka_keys,
    .init = kafka_init,
    .start = kafka_start,
    .submit = kafka_submit,
    .poll_acks = kafka_poll_acks,
    .flush = kafka_flush,
    .ready = kafka_ready,
    .close = kafka_close,
};
