/*
 * config.c - the sole reader of libconfig: reads the file, validates every
 * key and fills struct kwb_config (see config.h).
 *
 * Every group has one key table (name, type, flags, default, help, where
 * the value goes); validation, defaults and kwb_config_dump() are driven
 * by the tables, so a new key is one table line plus its struct field.
 * Every message is "FILE:LINE: message", or "FILE: message" when libconfig
 * knows no line [N].
 *
 * Quoted setting names: SPEC's Kafka example writes
 *     properties = { "security.protocol" = "SASL_SSL"; };
 * which libconfig 1.5 rejects (names are [A-Za-z*][-A-Za-z0-9_*]*, and '.'
 * separates path components). quote_keys() rewrites every quoted name
 * followed by '=' or ':' into a placeholder that does not occur in the
 * text, and after parsing rename_keys() gives the settings their real names
 * back, so sinks see "security.protocol" through config_setting_name().
 * Line numbers are kept. Quoted names in @include'd files are not
 * rewritten. The same pass rejects integer literals beyond 32 bits without
 * an L suffix, which libconfig 1.5 would silently truncate.
 *
 * Thread: main thread, once at start (and --check).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "sink.h"

#define MAX_FILE_BYTES   (16u * 1024 * 1024)
#define MAX_STRING_BYTES 4096
#define MAX_QUOTED_NAME  255
#define MAX_KEYS         32 /* entries of the largest table */
/* pipeline.queue_bytes when unset: with a kafka sink, and without */
#define QUEUE_BYTES_KAFKA ((size_t)32 << 20)
#define QUEUE_BYTES_OTHER ((size_t)8 << 20)

enum ktype {
    KT_STRING, /* char *; "" kept unless KF_EMPTY_NULL */
    KT_BOOL,   /* int 0/1; def NULL stores -1 ("unset") */
    KT_INT,    /* int, in [min, max] */
    KT_SIZE,   /* size_t, in [min, max]; int or int64 in the file */
    KT_DOUBLE, /* double, in [min, max]; ints accepted */
    KT_ENUM,   /* int, one of `enums` given by name */
    KT_GROUP,  /* a nested group, table `sub`, same target struct */
    KT_LIST,   /* a list of groups, loaded and dumped by `list` */
};

#define KF_REQUIRED   0x01u
#define KF_SENSITIVE  0x02u /* kwb_config_dump() prints [redacted] */
#define KF_NONEMPTY   0x04u /* strings: "" is an error */
#define KF_EMPTY_NULL 0x08u /* strings: "" means unset (NULL) */
#define KF_MIN_EXCL   0x10u /* numbers: must be > min, not >= min */

struct kenum {
    const char *name;
    int value;
};

struct loader;
struct key;

struct klist {
    /* Load the list setting `s` (not NULL) at `path` into the config. */
    int (*load)(struct loader *ld, const config_setting_t *s, const char *path);
    int (*dump)(const struct kwb_config *cfg, FILE *out, int verbose);
};

struct key {
    const char *name;
    enum ktype type;
    unsigned flags;
    const char *def;  /* default as text ("500", "0.8", "true", "emit") */
    const char *help; /* one line, for kwb_config_dump(verbose) */
    size_t off;       /* of the field in the target struct */
    double min, max;  /* numbers */
    const struct kenum *enums; /* KT_ENUM, {NULL} terminated */
    const struct key *sub;     /* KT_GROUP, {NULL} terminated */
    const struct klist *list;  /* KT_LIST */
    /* Strings: NULL or a shape check; on failure writes what the value
     * "must be ..." into msg and returns -1. */
    int (*check)(const char *value, char *msg, size_t msgsize);
};

struct loader {
    struct kwb_config *cfg;
    const char *path; /* FILE in messages */
    char *errbuf;
    size_t errsize;
};

/* ---- value shape checks ------------------------------------------------ */

/* RFC 1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 bytes. */
static int is_dns_label(const char *s, size_t len)
{
    if (len == 0 || len > 63) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

        if (!alnum && !(c == '-' && i > 0 && i + 1 < len)) {
            return 0;
        }
    }
    return 1;
}

/* RFC 1123 subdomain: dot-separated labels, at most 253 bytes. */
static int is_dns_subdomain(const char *s, size_t len)
{
    size_t start = 0;

    if (len == 0 || len > 253) {
        return 0;
    }
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (!is_dns_label(s + start, i - start)) {
                return 0;
            }
            start = i + 1;
        }
    }
    return 1;
}

/* Core API versions: v1, v2beta1, v1alpha3 ... */
static int is_kube_version(const char *s)
{
    const char *p = s;

    if (*p++ != 'v' || !isdigit((unsigned char)*p) || *p == '0') {
        return 0;
    }
    while (isdigit((unsigned char)*p)) {
        p++;
    }
    if (*p == '\0') {
        return 1;
    }
    if (strncmp(p, "alpha", 5) == 0) {
        p += 5;
    } else if (strncmp(p, "beta", 4) == 0) {
        p += 4;
    } else {
        return 0;
    }
    if (!isdigit((unsigned char)*p) || *p == '0') {
        return 0;
    }
    while (isdigit((unsigned char)*p)) {
        p++;
    }
    return *p == '\0';
}

/* A DNS-1035 label: like a DNS-1123 label but starting with a letter. */
static int is_dns1035_label(const char *s)
{
    return s[0] >= 'a' && s[0] <= 'z' && is_dns_label(s, strlen(s));
}

static int check_api(const char *v, char *msg, size_t msgsize)
{
    const char *slash = strchr(v, '/');
    int ok;

    if (!slash) {
        ok = is_kube_version(v);
    } else {
        ok = is_dns_subdomain(v, (size_t)(slash - v)) &&
             is_dns1035_label(slash + 1);
    }
    if (!ok) {
        snprintf(msg, msgsize,
                 "must be \"v1\" (core) or \"<group>/<version>\" such as "
                 "\"apps/v1\" or \"example.com/v1\"");
        return -1;
    }
    return 0;
}

static int check_resource(const char *v, char *msg, size_t msgsize)
{
    if (!is_dns_label(v, strlen(v))) {
        snprintf(msg, msgsize,
                 "must be a lowercase plural resource name such as "
                 "\"pods\" (a DNS label)");
        return -1;
    }
    return 0;
}

static int check_namespace(const char *v, char *msg, size_t msgsize)
{
    if (!is_dns_label(v, strlen(v))) {
        snprintf(msg, msgsize,
                 "must be a namespace name (lowercase DNS label, at most "
                 "63 characters)");
        return -1;
    }
    return 0;
}

static int check_dns_subdomain(const char *v, char *msg, size_t msgsize)
{
    if (!is_dns_subdomain(v, strlen(v))) {
        snprintf(msg, msgsize,
                 "must be a lowercase DNS subdomain (a-z, 0-9, '-', '.')");
        return -1;
    }
    return 0;
}

static int check_printable(const char *v, char *msg, size_t msgsize)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            snprintf(msg, msgsize, "must not contain control characters");
            return -1;
        }
    }
    return 0;
}

static int check_server(const char *v, char *msg, size_t msgsize)
{
    const char *host;

    if (strncmp(v, "https://", 8) == 0) {
        host = v + 8;
    } else if (strncmp(v, "http://", 7) == 0) {
        host = v + 7;
    } else {
        snprintf(msg, msgsize,
                 "must be a URL starting with https:// (or http:// for "
                 "local testing)");
        return -1;
    }
    if (*host == '\0' || *host == '/') {
        snprintf(msg, msgsize, "must name a host after the scheme");
        return -1;
    }
    return check_printable(v, msg, msgsize);
}

static int check_backend(const char *v, char *msg, size_t msgsize)
{
    if (strcmp(v, "file") != 0 && strcmp(v, "configmap") != 0) {
        snprintf(msg, msgsize, "must be \"file\" or \"configmap\"");
        return -1;
    }
    return 0;
}

/* Kafka's legal topic names: [a-zA-Z0-9._-]{1,249}. */
static int check_topic(const char *v, char *msg, size_t msgsize)
{
    size_t len = strlen(v);

    for (size_t i = 0; i < len; i++) {
        if (!isalnum((unsigned char)v[i]) && !strchr("._-", v[i])) {
            len = 0;
            break;
        }
    }
    if (len == 0 || len > 249 || strcmp(v, ".") == 0 || strcmp(v, "..") == 0) {
        snprintf(msg, msgsize,
                 "must be a Kafka topic name (1-249 characters of a-z, A-Z, "
                 "0-9, '.', '_', '-')");
        return -1;
    }
    return 0;
}

/* Sink names label metrics and log lines. */
static int check_sink_name(const char *v, char *msg, size_t msgsize)
{
    size_t len = strlen(v);

    for (size_t i = 0; i < len; i++) {
        if (!isalnum((unsigned char)v[i]) && !strchr("._-", v[i])) {
            len = 0;
            break;
        }
    }
    if (len == 0 || len > 63) {
        snprintf(msg, msgsize,
                 "must be 1-63 characters of a-z, A-Z, 0-9, '.', '_', '-'");
        return -1;
    }
    return 0;
}

/*
 * "host:port", "[v6]:port" or ":port" (all addresses); port 0 = any free
 * port, as http.c allows. On success *host and *port are set (*host
 * malloc'd, without brackets).
 */
static int split_hostport(const char *v, char **host, int *port)
{
    const char *colon;
    const char *h = v;
    size_t hlen;
    char *end;
    long p;

    if (v[0] == '[') {
        const char *close = strchr(v, ']');

        if (!close || close[1] != ':' || close == v + 1) {
            return -1;
        }
        h = v + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(v, ':');
        if (!colon || memchr(v, ':', (size_t)(colon - v))) {
            return -1; /* none, or an unbracketed IPv6 address */
        }
        hlen = (size_t)(colon - v);
    }
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)h[i];

        if (!isalnum(c) && !strchr(".-_:%", c)) {
            return -1;
        }
    }
    if (!isdigit((unsigned char)colon[1])) {
        return -1;
    }
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (errno || *end != '\0' || p < 0 || p > 65535) {
        return -1;
    }
    if (host) {
        *host = strndup(h, hlen);
        if (!*host) {
            return -ENOMEM;
        }
    }
    if (port) {
        *port = (int)p;
    }
    return 0;
}

static int check_hostport(const char *v, char *msg, size_t msgsize)
{
    if (split_hostport(v, NULL, NULL) != 0) {
        snprintf(msg, msgsize,
                 "must be \"host:port\", \"[ipv6]:port\" or \":port\" with a "
                 "port between 0 and 65535");
        return -1;
    }
    return 0;
}

/* ---- key tables -------------------------------------------------------- */

#define C(field) offsetof(struct kwb_config, field)
#define W(field) offsetof(struct kwb_watch_conf, field)
#define S(field) offsetof(struct kwb_sink_conf, field)

static const struct kenum initial_enums[] = {
    {"emit", KWB_INITIAL_EMIT},
    {"skip", KWB_INITIAL_SKIP},
    {NULL, 0},
};

static const struct kenum log_level_enums[] = {
    {"debug", KWB_LOG_DEBUG},
    {"info", KWB_LOG_INFO},
    {"warn", KWB_LOG_WARN},
    {"error", KWB_LOG_ERROR},
    {NULL, 0},
};

static const struct kenum watch_list_enums[] = {
    {"auto", -1},
    {"on", 1},
    {"off", 0},
    {NULL, 0},
};

static const struct key cluster_keys[] = {
    {.name = "name",
     .type = KT_STRING,
     .flags = KF_REQUIRED | KF_NONEMPTY,
     .help = "stamped on every event as \"cluster\"",
     .off = C(cluster_name),
     .check = check_printable},
    {.name = "server",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .help = "API server URL; default: in-cluster, then kubeconfig",
     .off = C(server),
     .check = check_server},
    {.name = "kubeconfig",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .help = "kubeconfig file; default $KUBECONFIG, then ~/.kube/config",
     .off = C(kubeconfig)},
    {.name = "context",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .help = "kubeconfig context; default its current-context",
     .off = C(context)},
    {.name = "token_file",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .help = "bearer token file, re-read when it changes",
     .off = C(token_file)},
    {.name = "ca_file",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .help = "CA bundle that verifies the API server",
     .off = C(ca_file)},
    {.name = "client_cert_file",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .help = "client certificate (PEM), with client_key_file",
     .off = C(client_cert_file)},
    {.name = "client_key_file",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .help = "client private key (PEM), with client_cert_file",
     .off = C(client_key_file)},
    {.name = "insecure_skip_tls_verify",
     .type = KT_BOOL,
     .def = "false",
     .help = "skip TLS verification (never in production)",
     .off = C(insecure_skip_tls_verify)},
    {.name = "serviceaccount_dir",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .def = "/var/run/secrets/kubernetes.io/serviceaccount",
     .help = "in-cluster token, ca.crt and namespace",
     .off = C(serviceaccount_dir)},
    {.name = NULL},
};

static const struct key state_keys[] = {
    {.name = "dir",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .def = "/var/lib/kube-watch-bridge",
     .help = "checkpoints live here (file backend)",
     .off = C(state_dir)},
    {.name = "backend",
     .type = KT_STRING,
     .def = "file",
     .help = "\"file\" or \"configmap\"",
     .off = C(state_backend),
     .check = check_backend},
    {.name = "checkpoint_interval_ms",
     .type = KT_INT,
     .def = "1000",
     .help = "longest time between checkpoint writes",
     .off = C(checkpoint_interval_ms),
     .min = 1,
     .max = 3600000},
    {.name = "configmap_namespace",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .help = "configmap backend; default the pod's namespace, else "
             "\"default\"",
     .off = C(state_configmap_namespace),
     .check = check_namespace},
    {.name = "configmap_name_prefix",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .def = "kube-watch-bridge",
     .help = "configmap backend: prefix of the ConfigMap names",
     .off = C(state_configmap_name_prefix),
     .check = check_dns_subdomain},
    {.name = NULL},
};

static const struct key backoff_keys[] = {
    {.name = "initial_seconds",
     .type = KT_DOUBLE,
     .def = "0.8",
     .help = "first reconnect delay",
     .off = C(backoff_initial_s),
     .flags = KF_MIN_EXCL,
     .min = 0,
     .max = 3600},
    {.name = "factor",
     .type = KT_DOUBLE,
     .def = "2.0",
     .help = "delay multiplier per failure",
     .off = C(backoff_factor),
     .min = 1,
     .max = 100},
    {.name = "jitter",
     .type = KT_DOUBLE,
     .def = "1.0",
     .help = "random fraction added to each delay (0..1)",
     .off = C(backoff_jitter),
     .min = 0,
     .max = 1},
    {.name = "max_seconds",
     .type = KT_DOUBLE,
     .def = "30.0",
     .help = "cap of the delay",
     .off = C(backoff_max_s),
     .flags = KF_MIN_EXCL,
     .min = 0,
     .max = 86400},
    {.name = "reset_seconds",
     .type = KT_DOUBLE,
     .def = "120.0",
     .help = "a watch healthy this long resets the delay",
     .off = C(backoff_reset_s),
     .flags = KF_MIN_EXCL,
     .min = 0,
     .max = 86400},
    {.name = NULL},
};

static const struct key watch_defaults_keys[] = {
    {.name = "list_page_size",
     .type = KT_INT,
     .def = "500",
     .help = "objects per list page (limit=)",
     .off = C(list_page_size),
     .min = 1,
     .max = 100000},
    {.name = "timeout_min_seconds",
     .type = KT_INT,
     .def = "300",
     .help = "watch timeoutSeconds is random in [min, max]",
     .off = C(watch_timeout_min_s),
     .min = 1,
     .max = 86400},
    {.name = "timeout_max_seconds",
     .type = KT_INT,
     .def = "600",
     .help = "see timeout_min_seconds",
     .off = C(watch_timeout_max_s),
     .min = 1,
     .max = 86400},
    {.name = "stall_timeout_seconds",
     .type = KT_INT,
     .def = "90",
     .help = "reconnect when no byte arrived for this long",
     .off = C(stall_timeout_s),
     .min = 1,
     .max = 86400},
    {.name = "connect_timeout_seconds",
     .type = KT_INT,
     .def = "10",
     .help = "TCP + TLS connect timeout",
     .off = C(connect_timeout_s),
     .min = 1,
     .max = 3600},
    {.name = "watch_list",
     .type = KT_ENUM,
     .def = "auto",
     .help = "streaming lists (sendInitialEvents): \"auto\", \"on\", "
             "\"off\"",
     .off = C(watch_list),
     .enums = watch_list_enums},
    {.name = "max_event_bytes",
     .type = KT_SIZE,
     .def = "16777216",
     .help = "largest object accepted from the stream",
     .off = C(max_event_bytes),
     .min = 1024,
     .max = 1073741824},
    {.name = "trim_managed_fields",
     .type = KT_BOOL,
     .def = "false",
     .help = "drop metadata.managedFields from emitted objects",
     .off = C(trim_managed_fields)},
    {.name = "redact_paths",
     .type = KT_STRING,
     .flags = KF_EMPTY_NULL,
     .help = "comma-separated JSON paths whose values are replaced by "
             "\"redacted\" (e.g. \"spec.containers.env\")",
     .off = C(redact_paths),
     .check = check_printable},
    {.name = "backoff",
     .type = KT_GROUP,
     .help = "reconnect backoff",
     .sub = backoff_keys},
    {.name = NULL},
};

static const struct key pipeline_keys[] = {
    {.name = "queue_events",
     .type = KT_SIZE,
     .def = "8192",
     .help = "events in flight before watches block (backpressure)",
     .off = C(queue_events),
     .min = 1,
     .max = 16777216},
    {.name = "queue_bytes",
     .type = KT_SIZE,
     .def = "0", /* unset: finish() picks it by the sinks */
     .help = "bytes of events in flight before watches block "
             "(backpressure); default 32 MiB with a kafka sink, else 8 MiB",
     .off = C(queue_bytes),
     .min = 65536,
     .max = 1073741824},
    {.name = "shutdown_timeout_ms",
     .type = KT_INT,
     .def = "25000",
     .help = "on SIGTERM, how long sinks may flush",
     .off = C(shutdown_timeout_ms),
     .min = 0,
     .max = 3600000},
    {.name = "retry_initial_seconds",
     .type = KT_DOUBLE,
     .def = "1.0",
     .help = "first resubmit delay after a sink failure",
     .off = C(sink_retry_initial_s),
     .flags = KF_MIN_EXCL,
     .min = 0,
     .max = 3600},
    {.name = "retry_max_seconds",
     .type = KT_DOUBLE,
     .def = "60.0",
     .help = "cap of the resubmit delay",
     .off = C(sink_retry_max_s),
     .flags = KF_MIN_EXCL,
     .min = 0,
     .max = 86400},
    {.name = NULL},
};

static const struct key redaction_keys[] = {
    {.name = "hash_key_file",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .help = "Secret values become hmac-sha256 under this key",
     .off = C(redaction_hash_key_file)},
    {.name = NULL},
};

static const struct key leader_election_keys[] = {
    {.name = "enabled",
     .type = KT_BOOL,
     .def = "false",
     .help = "only the Lease holder watches",
     .off = C(leader_election)},
    {.name = "namespace",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .help = "namespace of the Lease; default the pod's, else \"default\"",
     .off = C(lease_namespace),
     .check = check_namespace},
    {.name = "name",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .def = "kube-watch-bridge",
     .help = "name of the Lease",
     .off = C(lease_name),
     .check = check_dns_subdomain},
    {.name = "identity",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .help = "holder identity; default the host name",
     .off = C(identity),
     .check = check_printable},
    {.name = "lease_duration_seconds",
     .type = KT_INT,
     .def = "15",
     .help = "non-leaders wait this long before taking over",
     .off = C(lease_duration_s),
     .min = 1,
     .max = 3600},
    {.name = "renew_deadline_seconds",
     .type = KT_INT,
     .def = "10",
     .help = "the leader gives up when it cannot renew for this long",
     .off = C(renew_deadline_s),
     .min = 1,
     .max = 3600},
    {.name = "retry_period_seconds",
     .type = KT_INT,
     .def = "2",
     .help = "interval between acquire/renew attempts",
     .off = C(retry_period_s),
     .min = 1,
     .max = 3600},
    {.name = NULL},
};

static const struct key watch_keys[] = {
    {.name = "api",
     .type = KT_STRING,
     .flags = KF_REQUIRED,
     .help = "\"v1\", \"apps/v1\", \"example.com/v1\"",
     .off = W(api),
     .check = check_api},
    {.name = "resource",
     .type = KT_STRING,
     .flags = KF_REQUIRED,
     .help = "plural resource name: \"pods\"",
     .off = W(resource),
     .check = check_resource},
    {.name = "namespace",
     .type = KT_STRING,
     .flags = KF_EMPTY_NULL,
     .help = "only this namespace; default all",
     .off = W(namespace_),
     .check = check_namespace},
    {.name = "label_selector",
     .type = KT_STRING,
     .flags = KF_EMPTY_NULL,
     .help = "labelSelector, \"\" = none",
     .off = W(label_selector),
     .check = check_printable},
    {.name = "field_selector",
     .type = KT_STRING,
     .flags = KF_EMPTY_NULL,
     .help = "fieldSelector, \"\" = none",
     .off = W(field_selector),
     .check = check_printable},
    {.name = "trim_managed_fields",
     .type = KT_BOOL,
     .help = "overrides watch_defaults.trim_managed_fields",
     .off = W(trim_managed_fields)},
    {.name = "redact_paths",
     .type = KT_STRING,
     .flags = KF_EMPTY_NULL,
     .help = "overrides watch_defaults.redact_paths",
     .off = W(redact_paths),
     .check = check_printable},
    {.name = "topic",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .help = "Kafka sinks: topic for this watch's events",
     .off = W(topic),
     .check = check_topic},
    {.name = NULL},
};

static const struct key sink_keys[] = {
    {.name = "type",
     .type = KT_STRING,
     .flags = KF_REQUIRED,
     .help = "registered sink type",
     .off = S(type)},
    {.name = "name",
     .type = KT_STRING,
     .help = "unique name, for metrics and logs; default the type",
     .off = S(name),
     .check = check_sink_name},
    {.name = "dead_letter_path",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .help = "permanent failures go here as JSON lines",
     .off = S(dead_letter_path)},
    {.name = NULL},
};

static int load_watches(struct loader *ld, const config_setting_t *s,
                        const char *path);
static int load_sinks(struct loader *ld, const config_setting_t *s,
                      const char *path);
static int dump_watches(const struct kwb_config *cfg, FILE *out, int verbose);
static int dump_sinks(const struct kwb_config *cfg, FILE *out, int verbose);

static const struct klist watches_list = {load_watches, dump_watches};
static const struct klist sinks_list = {load_sinks, dump_sinks};

static const struct key root_keys[] = {
    {.name = "cluster",
     .type = KT_GROUP,
     .flags = KF_REQUIRED,
     .help = "the API server and its credentials",
     .sub = cluster_keys},
    {.name = "state",
     .type = KT_GROUP,
     .help = "checkpoints",
     .sub = state_keys},
    {.name = "initial",
     .type = KT_ENUM,
     .def = "emit",
     .help = "first start: \"emit\" listed objects as ADDED, or \"skip\"",
     .off = C(initial),
     .enums = initial_enums},
    {.name = "log_level",
     .type = KT_ENUM,
     .def = "info",
     .help = "\"debug\", \"info\", \"warn\", \"error\"",
     .off = C(log_level),
     .enums = log_level_enums},
    {.name = "watch_defaults",
     .type = KT_GROUP,
     .help = "behaviour of every watch",
     .sub = watch_defaults_keys},
    {.name = "pipeline",
     .type = KT_GROUP,
     .help = "queue and sink retries",
     .sub = pipeline_keys},
    {.name = "redaction",
     .type = KT_GROUP,
     .help = "Secret redaction",
     .sub = redaction_keys},
    {.name = "leader_election",
     .type = KT_GROUP,
     .help = "one active replica through a Lease",
     .sub = leader_election_keys},
    {.name = "metrics_address",
     .type = KT_STRING,
     .flags = KF_NONEMPTY,
     .help = "/metrics, /healthz, /readyz; default none",
     .off = C(metrics_address),
     .check = check_hostport},
    {.name = "watches",
     .type = KT_LIST,
     .flags = KF_REQUIRED,
     .help = "resources to watch",
     .list = &watches_list},
    {.name = "sinks",
     .type = KT_LIST,
     .flags = KF_REQUIRED,
     .help = "where events go",
     .list = &sinks_list},
    {.name = NULL},
};

/* ---- messages ---------------------------------------------------------- */

static int vfail_at(struct loader *ld, const char *file, int line,
                    const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static int vfail_at(struct loader *ld, const char *file, int line,
                    const char *fmt, va_list ap)
{
    char msg[1024];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (ld->errsize == 0) {
        return -1;
    }
    if (line > 0) {
        snprintf(ld->errbuf, ld->errsize, "%s:%d: %s", file, line, msg);
    } else {
        snprintf(ld->errbuf, ld->errsize, "%s: %s", file, msg);
    }
    return -1;
}

static int fail_at(struct loader *ld, const char *file, int line,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail_at(struct loader *ld, const char *file, int line,
                   const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail_at(ld, file, line, fmt, ap);
    va_end(ap);
    return -1;
}

/* "FILE:LINE: message" at setting `s` (NULL: no line). Returns -1. */
static int fail(struct loader *ld, const config_setting_t *s, const char *fmt,
                ...) __attribute__((format(printf, 3, 4)));
static int fail(struct loader *ld, const config_setting_t *s, const char *fmt,
                ...)
{
    const char *file = ld->path;
    int line = 0;
    va_list ap;

    if (s) {
        line = config_setting_source_line(s);
        if (config_setting_source_file(s)) {
            file = config_setting_source_file(s);
        }
    }
    va_start(ap, fmt);
    vfail_at(ld, file, line, fmt, ap);
    va_end(ap);
    return -1;
}

/* Levenshtein distance, capped: for "did you mean" hints. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[65];

    if (la > 64 || lb > 64) {
        return SIZE_MAX;
    }
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];

        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);

            if (up + 1 < best) {
                best = up + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static const char *closest(const char *name, const struct key *table,
                           const char *const *extra)
{
    const char *best = NULL;
    size_t best_d = 3; /* suggest at distance 1 or 2 only */

    for (size_t i = 0; table && table[i].name; i++) {
        size_t d = edit_distance(name, table[i].name);

        if (d < best_d) {
            best_d = d;
            best = table[i].name;
        }
    }
    for (size_t i = 0; extra && extra[i]; i++) {
        size_t d = edit_distance(name, extra[i]);

        if (d < best_d) {
            best_d = d;
            best = extra[i];
        }
    }
    return best;
}

static int fail_unknown(struct loader *ld, const config_setting_t *s,
                        const char *where, const struct key *table,
                        const char *const *extra)
{
    const char *name = config_setting_name(s);
    const char *hint = closest(name, table, extra);

    if (hint) {
        return fail(ld, s, "unknown key '%s' %s (did you mean '%s'?)", name,
                    where, hint);
    }
    return fail(ld, s, "unknown key '%s' %s", name, where);
}

/* ---- table-driven loading ---------------------------------------------- */

static void join_path(char *buf, size_t size, const char *prefix,
                      const char *name)
{
    if (prefix && *prefix) {
        snprintf(buf, size, "%s.%s", prefix, name);
    } else {
        snprintf(buf, size, "%s", name);
    }
}

static const char *type_phrase(const struct key *k)
{
    switch (k->type) {
    case KT_STRING:
        return "a string";
    case KT_BOOL:
        return "a boolean (true or false)";
    case KT_INT:
    case KT_SIZE:
        return "an integer";
    case KT_DOUBLE:
        return "a number";
    case KT_ENUM:
        return "a string";
    case KT_GROUP:
        return "a group { ... }";
    case KT_LIST:
        return "a list ( { ... }, ... )";
    }
    return "?";
}

static int enum_lookup(const struct kenum *e, const char *name, int *value)
{
    for (size_t i = 0; e[i].name; i++) {
        if (strcmp(e[i].name, name) == 0) {
            *value = e[i].value;
            return 0;
        }
    }
    return -1;
}

static const char *enum_name(const struct kenum *e, int value)
{
    for (size_t i = 0; e[i].name; i++) {
        if (e[i].value == value) {
            return e[i].name;
        }
    }
    return "?";
}

static int fail_enum(struct loader *ld, const config_setting_t *s,
                     const char *path, const struct kenum *e)
{
    char list[256];
    size_t pos = 0;

    list[0] = '\0';
    for (size_t i = 0; e[i].name && pos < sizeof(list); i++) {
        int n =
            snprintf(list + pos, sizeof(list) - pos, "%s\"%s\"",
                     i == 0 ? "" : (e[i + 1].name ? ", " : " or "), e[i].name);
        if (n < 0) {
            break;
        }
        pos += (size_t)n;
    }
    return fail(ld, s, "'%s' must be %s", path, list);
}

static int check_range(struct loader *ld, const config_setting_t *s,
                       const char *path, const struct key *k, double v)
{
    int integer = k->type != KT_DOUBLE;

    if (isnan(v) || ((k->flags & KF_MIN_EXCL) ? v <= k->min : v < k->min)) {
        if (k->flags & KF_MIN_EXCL) {
            return fail(ld, s, "'%s' must be greater than %g", path, k->min);
        }
        if (integer) {
            return fail(ld, s, "'%s' must be at least %lld", path,
                        (long long)k->min);
        }
        return fail(ld, s, "'%s' must be at least %g", path, k->min);
    }
    if (v > k->max) {
        if (integer) {
            return fail(ld, s, "'%s' must be at most %lld", path,
                        (long long)k->max);
        }
        return fail(ld, s, "'%s' must be at most %g", path, k->max);
    }
    return 0;
}

static int store_string(struct loader *ld, const config_setting_t *s,
                        char **field, const char *v)
{
    char *copy = NULL;

    if (v) {
        copy = strdup(v);
        if (!copy) {
            return fail(ld, s, "out of memory");
        }
    }
    free(*field);
    *field = copy;
    return 0;
}

static int load_group(struct loader *ld, const struct key *table,
                      const config_setting_t *s, char *base, const char *path,
                      const char *const *extra);

/* Default of one key (not present in the file) into base+k->off. */
static int set_default(struct loader *ld, const struct key *k, char *base,
                       const char *path)
{
    void *field = base + k->off;

    switch (k->type) {
    case KT_STRING:
        return store_string(ld, NULL, field, k->def);
    case KT_BOOL:
        *(int *)field = k->def ? strcmp(k->def, "true") == 0 : -1;
        return 0;
    case KT_INT:
        *(int *)field = (int)strtol(k->def, NULL, 10);
        return 0;
    case KT_SIZE:
        *(size_t *)field = (size_t)strtoull(k->def, NULL, 10);
        return 0;
    case KT_DOUBLE:
        *(double *)field = strtod(k->def, NULL);
        return 0;
    case KT_ENUM:
        return enum_lookup(k->enums, k->def, field);
    case KT_GROUP:
        return load_group(ld, k->sub, NULL, base, path, NULL);
    case KT_LIST:
        return 0;
    }
    return -1;
}

/* The value of setting `s` for key `k` into base+k->off. */
static int set_value(struct loader *ld, const struct key *k,
                     const config_setting_t *s, char *base, const char *path)
{
    void *field = base + k->off;
    int type = config_setting_type(s);
    char msg[256];
    double d;

    switch (k->type) {
    case KT_STRING: {
        const char *v;

        if (type != CONFIG_TYPE_STRING) {
            break;
        }
        v = config_setting_get_string(s);
        if (strlen(v) > MAX_STRING_BYTES) {
            return fail(ld, s, "'%s' is longer than %d bytes", path,
                        MAX_STRING_BYTES);
        }
        if (*v == '\0') {
            if (k->flags & KF_NONEMPTY) {
                return fail(ld, s, "'%s' must not be empty", path);
            }
            if (k->flags & KF_EMPTY_NULL) {
                return store_string(ld, s, field, NULL);
            }
        }
        if (k->check && k->check(v, msg, sizeof(msg)) != 0) {
            return fail(ld, s, "'%s' %s", path, msg);
        }
        return store_string(ld, s, field, v);
    }
    case KT_BOOL:
        if (type != CONFIG_TYPE_BOOL) {
            break;
        }
        *(int *)field = config_setting_get_bool(s) ? 1 : 0;
        return 0;
    case KT_INT:
    case KT_SIZE:
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
            break;
        }
        d = (double)config_setting_get_int64(s);
        if (check_range(ld, s, path, k, d) != 0) {
            return -1;
        }
        if (k->type == KT_INT) {
            *(int *)field = (int)config_setting_get_int64(s);
        } else {
            *(size_t *)field = (size_t)config_setting_get_int64(s);
        }
        return 0;
    case KT_DOUBLE:
        if (type == CONFIG_TYPE_FLOAT) {
            d = config_setting_get_float(s);
        } else if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
            d = (double)config_setting_get_int64(s);
        } else {
            break;
        }
        if (check_range(ld, s, path, k, d) != 0) {
            return -1;
        }
        *(double *)field = d;
        return 0;
    case KT_ENUM:
        if (type != CONFIG_TYPE_STRING ||
            enum_lookup(k->enums, config_setting_get_string(s), field)) {
            return fail_enum(ld, s, path, k->enums);
        }
        return 0;
    case KT_GROUP:
        if (type != CONFIG_TYPE_GROUP) {
            break;
        }
        return load_group(ld, k->sub, s, base, path, NULL);
    case KT_LIST:
        if (type != CONFIG_TYPE_LIST) {
            break;
        }
        return k->list->load(ld, s, path);
    }
    return fail(ld, s, "'%s' must be %s", path, type_phrase(k));
}

/*
 * Validate group `s` (NULL: absent, defaults only) against `table`, into
 * the struct at `base`. `path` names the group in messages ("" = top
 * level); `extra` lists keys accepted without a value check (a sink's).
 */
static int load_group(struct loader *ld, const struct key *table,
                      const config_setting_t *s, char *base, const char *path,
                      const char *const *extra)
{
    unsigned char seen[MAX_KEYS] = {0};
    char where[160];
    char sub[160];
    int n = s ? config_setting_length(s) : 0;

    if (*path) {
        snprintf(where, sizeof(where), "in %s", path);
    } else {
        snprintf(where, sizeof(where), "at top level");
    }
    for (int i = 0; i < n; i++) {
        const config_setting_t *c = config_setting_get_elem(s, (unsigned)i);
        const char *name = config_setting_name(c);
        size_t j;

        for (j = 0; table[j].name; j++) {
            if (strcmp(table[j].name, name) == 0) {
                break;
            }
        }
        if (!table[j].name) {
            size_t e = 0;

            while (extra && extra[e] && strcmp(extra[e], name) != 0) {
                e++;
            }
            if (extra && extra[e]) {
                continue;
            }
            return fail_unknown(ld, c, where, table, extra);
        }
        seen[j] = 1;
        join_path(sub, sizeof(sub), path, name);
        if (set_value(ld, &table[j], c, base, sub) != 0) {
            return -1;
        }
    }
    for (size_t j = 0; table[j].name; j++) {
        if (seen[j]) {
            continue;
        }
        join_path(sub, sizeof(sub), path, table[j].name);
        if (table[j].flags & KF_REQUIRED) {
            /* At the enclosing group's line; the root has none. */
            return fail(ld, s, "missing required key '%s'", sub);
        }
        if (set_default(ld, &table[j], base, sub) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- watches and sinks ------------------------------------------------- */

static int load_watches(struct loader *ld, const config_setting_t *s,
                        const char *path)
{
    struct kwb_config *cfg = ld->cfg;
    unsigned n = (unsigned)config_setting_length(s);

    if (n == 0) {
        return fail(ld, s, "'%s' must not be empty", path);
    }
    cfg->watches = calloc(n, sizeof(*cfg->watches));
    if (!cfg->watches) {
        return fail(ld, s, "out of memory");
    }
    for (unsigned i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, i);
        struct kwb_watch_conf *w = &cfg->watches[i];
        char wpath[64];
        const char *slash;
        size_t idlen;

        cfg->n_watches = i + 1; /* so that kwb_config_free() sees it */
        snprintf(wpath, sizeof(wpath), "%s[%u]", path, i);
        if (!config_setting_is_group(e)) {
            return fail(ld, e,
                        "'%s' must be a group { api = ...; "
                        "resource = ...; }",
                        wpath);
        }
        if (load_group(ld, watch_keys, e, (char *)w, wpath, NULL) != 0) {
            return -1;
        }
        slash = strchr(w->api, '/');
        w->group = strndup(w->api, slash ? (size_t)(slash - w->api) : 0);
        w->version = strdup(slash ? slash + 1 : w->api);
        idlen = strlen(w->api) + strlen(w->resource) + 3 +
                (w->namespace_ ? strlen(w->namespace_) : 0);
        w->id = malloc(idlen);
        if (!w->group || !w->version || !w->id) {
            return fail(ld, e, "out of memory");
        }
        snprintf(w->id, idlen, "%s/%s%s%s", w->api, w->resource,
                 w->namespace_ ? "@" : "", w->namespace_ ? w->namespace_ : "");
        for (unsigned j = 0; j < i; j++) {
            if (strcmp(cfg->watches[j].id, w->id) == 0) {
                return fail(
                    ld, e, "duplicate watch '%s' (also at line %d)", w->id,
                    config_setting_source_line(config_setting_get_elem(s, j)));
            }
        }
    }
    return 0;
}

static void list_sink_types(char *buf, size_t size)
{
    const struct kwb_sink_ops *const *all = kwb_sink_all();
    size_t pos = 0;

    buf[0] = '\0';
    for (size_t i = 0; all[i] && pos < size; i++) {
        int n = snprintf(buf + pos, size - pos, "%s%s", i ? ", " : "",
                         all[i]->type);
        if (n < 0) {
            break;
        }
        pos += (size_t)n;
    }
}

static int load_sinks(struct loader *ld, const config_setting_t *s,
                      const char *path)
{
    struct kwb_config *cfg = ld->cfg;
    unsigned n = (unsigned)config_setting_length(s);

    if (n == 0) {
        return fail(ld, s, "'%s' must not be empty", path);
    }
    if (n > KWB_MAX_SINKS) {
        return fail(ld, s, "'%s': at most %d sinks", path, KWB_MAX_SINKS);
    }
    cfg->sinks = calloc(n, sizeof(*cfg->sinks));
    if (!cfg->sinks) {
        return fail(ld, s, "out of memory");
    }
    for (unsigned i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, i);
        struct kwb_sink_conf *sk = &cfg->sinks[i];
        const config_setting_t *t;
        char spath[96];
        char known[256];

        cfg->n_sinks = i + 1;
        snprintf(spath, sizeof(spath), "%s[%u]", path, i);
        if (!config_setting_is_group(e)) {
            return fail(ld, e, "'%s' must be a group { type = ...; }", spath);
        }
        sk->group = e;
        sk->line = config_setting_source_line(e);
        /* The type decides which keys the group may hold. */
        t = config_setting_get_member(e, "type");
        if (!t) {
            return fail(ld, e, "missing required key '%s.type'", spath);
        }
        if (config_setting_type(t) != CONFIG_TYPE_STRING) {
            return fail(ld, t, "'%s.type' must be a string", spath);
        }
        sk->ops = kwb_sink_find(config_setting_get_string(t));
        if (!sk->ops) {
            list_sink_types(known, sizeof(known));
            return fail(ld, t, "unknown sink type '%s' in %s (known: %s)",
                        config_setting_get_string(t), spath, known);
        }
        snprintf(spath, sizeof(spath), "%s[%u] (%s)", path, i, sk->ops->type);
        if (load_group(ld, sink_keys, e, (char *)sk, spath, sk->ops->keys) !=
            0) {
            return -1;
        }
        if (!sk->name && store_string(ld, e, &sk->name, sk->type) != 0) {
            return -1;
        }
        for (unsigned j = 0; j < i; j++) {
            if (strcmp(cfg->sinks[j].name, sk->name) == 0) {
                return fail(ld, e,
                            "duplicate sink name '%s' (also at line %d); "
                            "give one a distinct 'name'",
                            sk->name, cfg->sinks[j].line);
            }
        }
    }
    return 0;
}

/* ---- checks across keys and computed defaults -------------------------- */

/* Line of the first of `paths` present in the file, for messages. */
static const config_setting_t *first_of(const struct kwb_config *cfg,
                                        const char *a, const char *b)
{
    const config_setting_t *s = config_lookup(&cfg->lc, a);

    return s ? s : config_lookup(&cfg->lc, b);
}

/* The pod's namespace from <serviceaccount_dir>/namespace, else
 * "default". Returns a malloc'd string or NULL (ENOMEM). */
static char *default_namespace(const char *sa_dir)
{
    char path[PATH_MAX];
    char buf[256];
    size_t n = 0;
    FILE *f;

    if (snprintf(path, sizeof(path), "%s/namespace", sa_dir) <
            (int)sizeof(path) &&
        (f = fopen(path, "re")) != NULL) {
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
    }
    while (n > 0 && isspace((unsigned char)buf[n - 1])) {
        n--;
    }
    buf[n] = '\0';
    if (!is_dns_label(buf, n)) {
        return strdup("default");
    }
    return strdup(buf);
}

static int finish(struct loader *ld)
{
    struct kwb_config *cfg = ld->cfg;
    char host[256];

    if (cfg->watch_timeout_min_s > cfg->watch_timeout_max_s) {
        return fail(ld,
                    first_of(cfg, "watch_defaults.timeout_max_seconds",
                             "watch_defaults.timeout_min_seconds"),
                    "'watch_defaults.timeout_min_seconds' (%d) must not "
                    "exceed 'watch_defaults.timeout_max_seconds' (%d)",
                    cfg->watch_timeout_min_s, cfg->watch_timeout_max_s);
    }
    if (cfg->backoff_initial_s > cfg->backoff_max_s) {
        return fail(ld,
                    first_of(cfg, "watch_defaults.backoff.max_seconds",
                             "watch_defaults.backoff.initial_seconds"),
                    "'watch_defaults.backoff.initial_seconds' (%g) must not "
                    "exceed 'watch_defaults.backoff.max_seconds' (%g)",
                    cfg->backoff_initial_s, cfg->backoff_max_s);
    }
    if (cfg->sink_retry_initial_s > cfg->sink_retry_max_s) {
        return fail(ld,
                    first_of(cfg, "pipeline.retry_max_seconds",
                             "pipeline.retry_initial_seconds"),
                    "'pipeline.retry_initial_seconds' (%g) must not exceed "
                    "'pipeline.retry_max_seconds' (%g)",
                    cfg->sink_retry_initial_s, cfg->sink_retry_max_s);
    }
    if (cfg->renew_deadline_s >= cfg->lease_duration_s) {
        return fail(ld,
                    first_of(cfg, "leader_election.renew_deadline_seconds",
                             "leader_election.lease_duration_seconds"),
                    "'leader_election.renew_deadline_seconds' (%d) must be "
                    "less than 'leader_election.lease_duration_seconds' (%d)",
                    cfg->renew_deadline_s, cfg->lease_duration_s);
    }
    if (cfg->retry_period_s >= cfg->renew_deadline_s) {
        return fail(ld,
                    first_of(cfg, "leader_election.retry_period_seconds",
                             "leader_election.renew_deadline_seconds"),
                    "'leader_election.retry_period_seconds' (%d) must be "
                    "less than 'leader_election.renew_deadline_seconds' (%d)",
                    cfg->retry_period_s, cfg->renew_deadline_s);
    }
    if (!cfg->client_cert_file != !cfg->client_key_file) {
        return fail(ld,
                    first_of(cfg, "cluster.client_cert_file",
                             "cluster.client_key_file"),
                    "'cluster.client_cert_file' and "
                    "'cluster.client_key_file' go together");
    }
    if (cfg->metrics_address) {
        if (split_hostport(cfg->metrics_address, &cfg->metrics_host,
                           &cfg->metrics_port) != 0) {
            return fail(ld, NULL, "out of memory");
        }
    }
    if (!cfg->identity) {
        if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0') {
            snprintf(host, sizeof(host), "kube-watch-bridge");
        }
        host[sizeof(host) - 1] = '\0';
        cfg->identity = strdup(host);
    }
    if (!cfg->lease_namespace) {
        cfg->lease_namespace = default_namespace(cfg->serviceaccount_dir);
    }
    if (!cfg->state_configmap_namespace) {
        cfg->state_configmap_namespace =
            default_namespace(cfg->serviceaccount_dir);
    }
    if (!cfg->identity || !cfg->lease_namespace ||
        !cfg->state_configmap_namespace) {
        return fail(ld, NULL, "out of memory");
    }
    if (cfg->queue_bytes == 0) {
        /* Kafka needs the wide window (librdkafka acknowledges in large
         * rounds: 32 MiB ~80k pods/s, 4 MiB ~25k/s). The file and webhook
         * sinks do not: at 8 MiB the file sink ran as fast or faster
         * (pods, median of 8: 149k/s against 117k/s), with 30 % less CPU
         * (page faults of fresh batch buffers: 41 against 109 per 1k
         * events) and a 27 MB lower VmHWM while streaming. */
        cfg->queue_bytes = QUEUE_BYTES_OTHER;
        for (size_t i = 0; i < cfg->n_sinks; i++) {
            if (strcmp(cfg->sinks[i].type, "kafka") == 0) {
                cfg->queue_bytes = QUEUE_BYTES_KAFKA;
            }
        }
    }
    return 0;
}

/* ---- quoted setting names ---------------------------------------------- */

struct qkeys {
    char *prefix; /* placeholder prefix, absent from the text */
    size_t prefix_len;
    char **names;
    size_t n;
};

static void qkeys_free(struct qkeys *qk)
{
    for (size_t i = 0; i < qk->n; i++) {
        free(qk->names[i]);
    }
    free(qk->names);
    free(qk->prefix);
    memset(qk, 0, sizeof(*qk));
}

/* Index just past the comment or whitespace run at i, or i. */
static size_t skip_blank(const char *t, size_t len, size_t i)
{
    for (;;) {
        if (i < len && isspace((unsigned char)t[i])) {
            i++;
        } else if (i < len && (t[i] == '#' || (t[i] == '/' && i + 1 < len &&
                                               t[i + 1] == '/'))) {
            while (i < len && t[i] != '\n') {
                i++;
            }
        } else if (i + 1 < len && t[i] == '/' && t[i + 1] == '*') {
            const char *end = memmem(t + i + 2, len - i - 2, "*/", 2);

            i = end ? (size_t)(end - t) + 2 : len;
        } else {
            return i;
        }
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decode the body of a libconfig string literal; NULL when it holds a
 * control character or is empty or too long, or on ENOMEM. */
static char *decode_name(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    size_t o = 0;

    if (!out) {
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '\\' && i + 1 < len) {
            c = (unsigned char)s[++i];
            switch (c) {
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case 'r':
                c = '\r';
                break;
            case 'f':
                c = '\f';
                break;
            case 'x':
                if (i + 2 < len && hexval(s[i + 1]) >= 0 &&
                    hexval(s[i + 2]) >= 0) {
                    c = (unsigned char)(hexval(s[i + 1]) * 16 +
                                        hexval(s[i + 2]));
                    i += 2;
                }
                break;
            default:
                break;
            }
        }
        if (c < 0x20 || c == 0x7f) {
            free(out);
            return NULL;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    if (o == 0 || o > MAX_QUOTED_NAME) {
        free(out);
        return NULL;
    }
    return out;
}

static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = (*cap ? *cap : 256);
        char *nbuf;

        while (*len + n + 1 > ncap) {
            ncap *= 2;
        }
        nbuf = realloc(*buf, ncap);
        if (!nbuf) {
            return -ENOMEM;
        }
        *buf = nbuf;
        *cap = ncap;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

static int is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '*' || c == '-' ||
           c == '.';
}

/*
 * If an integer literal starts at text[i], its length, else 0. *too_big
 * is set when it has no L suffix and does not fit 32 bits: libconfig 1.5
 * would silently truncate it (rotate_bytes = 5000000000 -> 705032704).
 */
static size_t int_literal(const char *text, size_t len, size_t i, int *too_big)
{
    size_t j = i, start = i;
    int hex = 0;
    unsigned long long v = 0;
    int overflow = 0;

    *too_big = 0;
    if (i > 0 && (text[i - 1] == '-' || text[i - 1] == '+')) {
        start = i - 1;
    }
    if (start > 0 && is_name_char(text[start - 1])) {
        return 0; /* part of a name, or of a float's exponent */
    }
    if (j + 1 < len && text[j] == '0' && (text[j + 1] | 0x20) == 'x') {
        hex = 1;
        j += 2;
    }
    for (; j < len; j++) {
        int d = hex ? hexval(text[j])
                    : (isdigit((unsigned char)text[j]) ? text[j] - '0' : -1);
        if (d < 0) {
            break;
        }
        if (v > (ULLONG_MAX - (unsigned)d) / (hex ? 16 : 10)) {
            overflow = 1;
        } else {
            v = v * (hex ? 16 : 10) + (unsigned)d;
        }
    }
    if (j < len && (text[j] == 'L' || text[j] == '.' ||
                    (!hex && (text[j] | 0x20) == 'e'))) {
        return 0; /* int64 or float: libconfig handles those */
    }
    *too_big = overflow || v > (hex ? 0xffffffffull : 2147483647ull);
    return j - i;
}

/*
 * Copy `text` into *out (malloc'd, NUL-terminated) with every quoted
 * setting name replaced by "<prefix><index>", its name stored in qk.
 * Also rejects integers libconfig would truncate.
 */
static int quote_keys(struct loader *ld, const char *text, size_t len,
                      char **out, struct qkeys *qk)
{
    char *buf = NULL;
    size_t blen = 0, cap = 0;
    size_t i = 0;
    int line = 1;
    int rc = -1;

    qk->prefix = strdup("kwbq");
    while (qk->prefix && memmem(text, len, qk->prefix, strlen(qk->prefix))) {
        size_t pl = strlen(qk->prefix);
        char *p = realloc(qk->prefix, pl + 2);

        if (!p) {
            goto oom;
        }
        p[pl] = 'x';
        p[pl + 1] = '\0';
        qk->prefix = p;
    }
    if (!qk->prefix) {
        goto oom;
    }
    qk->prefix_len = strlen(qk->prefix);
    if (append(&buf, &blen, &cap, "", 0) != 0) {
        goto oom;
    }
    while (i < len) {
        size_t j = skip_blank(text, len, i);
        size_t end, k;

        if (j > i) {
            for (size_t x = i; x < j; x++) {
                line += text[x] == '\n';
            }
            if (append(&buf, &blen, &cap, text + i, j - i) != 0) {
                goto oom;
            }
            i = j;
            continue;
        }
        if (isdigit((unsigned char)text[i])) {
            int too_big;
            size_t n = int_literal(text, len, i, &too_big);

            if (too_big) {
                fail_at(ld, ld->path, line,
                        "integer %.*s does not fit 32 bits; write %.*sL for "
                        "a 64-bit value",
                        (int)(n > 40 ? 40 : n), text + i,
                        (int)(n > 40 ? 40 : n), text + i);
                goto out;
            }
            if (n > 0) {
                if (append(&buf, &blen, &cap, text + i, n) != 0) {
                    goto oom;
                }
                i += n;
                continue;
            }
        }
        if (text[i] != '"') {
            line += text[i] == '\n';
            if (append(&buf, &blen, &cap, text + i, 1) != 0) {
                goto oom;
            }
            i++;
            continue;
        }
        for (end = i + 1; end < len && text[end] != '"'; end++) {
            if (text[end] == '\\' && end + 1 < len) {
                end++;
            }
        }
        if (end >= len) { /* unterminated: libconfig will say so */
            if (append(&buf, &blen, &cap, text + i, len - i) != 0) {
                goto oom;
            }
            break;
        }
        end++;
        k = skip_blank(text, len, end);
        if (k < len && (text[k] == '=' || text[k] == ':')) {
            char num[32];
            char *name = decode_name(text + i + 1, end - i - 2);
            char **names;

            if (!name) {
                fail_at(ld, ld->path, line,
                        "invalid quoted setting name (empty, longer than "
                        "%d bytes or with control characters)",
                        MAX_QUOTED_NAME);
                goto out;
            }
            names = realloc(qk->names, (qk->n + 1) * sizeof(*names));
            if (!names) {
                free(name);
                goto oom;
            }
            qk->names = names;
            qk->names[qk->n] = name;
            snprintf(num, sizeof(num), "%zu", qk->n);
            qk->n++;
            if (append(&buf, &blen, &cap, qk->prefix, qk->prefix_len) ||
                append(&buf, &blen, &cap, num, strlen(num))) {
                goto oom;
            }
            /* Keep the lines of a multi-line literal. */
            for (size_t x = i; x < end; x++) {
                if (text[x] == '\n') {
                    line++;
                    if (append(&buf, &blen, &cap, "\n", 1) != 0) {
                        goto oom;
                    }
                }
            }
        } else {
            for (size_t x = i; x < end; x++) {
                line += text[x] == '\n';
            }
            if (append(&buf, &blen, &cap, text + i, end - i) != 0) {
                goto oom;
            }
        }
        i = end;
    }
    *out = buf;
    buf = NULL;
    rc = 0;
    goto out;
oom:
    fail_at(ld, ld->path, 0, "out of memory");
out:
    free(buf);
    return rc;
}

/* Give placeholder-named settings under `s` their quoted names back. */
static int rename_keys(struct loader *ld, config_setting_t *s,
                       const struct qkeys *qk)
{
    const char *name = config_setting_name(s);
    int n;

    if (name && strncmp(name, qk->prefix, qk->prefix_len) == 0) {
        char *end;
        unsigned long idx = strtoul(name + qk->prefix_len, &end, 10);
        config_setting_t *parent = config_setting_parent(s);
        char *real;

        if (*end != '\0' || idx >= qk->n) {
            return fail(ld, s, "invalid setting name '%s'", name);
        }
        real = strdup(qk->names[idx]);
        if (!real) {
            return fail(ld, s, "out of memory");
        }
        /* libconfig owns and frees setting names with free(). */
        free(s->name);
        s->name = real;
        for (int i = 0; parent && i < config_setting_length(parent); i++) {
            config_setting_t *o = config_setting_get_elem(parent, (unsigned)i);

            if (o != s && o->name && strcmp(o->name, real) == 0) {
                int later = config_setting_source_line(o) >
                            config_setting_source_line(s);

                return fail(ld, later ? o : s, "duplicate setting name '%s'",
                            real);
            }
        }
    }
    if (!config_setting_is_aggregate(s)) {
        return 0;
    }
    n = config_setting_length(s);
    for (int i = 0; i < n; i++) {
        if (rename_keys(ld, config_setting_get_elem(s, (unsigned)i), qk)) {
            return -1;
        }
    }
    return 0;
}

/* ---- entry points ------------------------------------------------------ */

static int load_text(struct kwb_config *cfg, const char *text, size_t len,
                     const char *name, const char *include_dir, char *errbuf,
                     size_t errsize)
{
    struct loader ld = {cfg, name, errbuf, errsize};
    struct qkeys qk = {0};
    char *rewritten = NULL;
    const char *nul;
    int rc = -1;

    memset(cfg, 0, sizeof(*cfg));
    if (errsize) {
        errbuf[0] = '\0';
    }
    config_init(&cfg->lc);
    cfg->path = strdup(name);
    if (!cfg->path) {
        fail_at(&ld, name, 0, "out of memory");
        goto out;
    }
    nul = memchr(text, '\0', len);
    if (nul) {
        int line = 1;

        for (const char *p = text; p < nul; p++) {
            line += *p == '\n';
        }
        fail_at(&ld, name, line, "NUL byte in the configuration");
        goto out;
    }
    if (include_dir) {
        config_set_include_dir(&cfg->lc, include_dir);
    }
    if (quote_keys(&ld, text, len, &rewritten, &qk) != 0) {
        goto out;
    }
    if (config_read_string(&cfg->lc, rewritten) != CONFIG_TRUE) {
        const char *file = config_error_file(&cfg->lc);

        fail_at(&ld, file ? file : name, config_error_line(&cfg->lc), "%s",
                config_error_text(&cfg->lc));
        goto out;
    }
    if (qk.n && rename_keys(&ld, config_root_setting(&cfg->lc), &qk)) {
        goto out;
    }
    if (load_group(&ld, root_keys, config_root_setting(&cfg->lc), (char *)cfg,
                   "", NULL) != 0) {
        goto out;
    }
    if (finish(&ld) != 0) {
        goto out;
    }
    rc = 0;
out:
    free(rewritten);
    qkeys_free(&qk);
    if (rc != 0) {
        kwb_config_free(cfg);
    }
    return rc;
}

int kwb_config_load_string(struct kwb_config *cfg, const char *text, size_t len,
                           const char *name, char *errbuf, size_t errsize)
{
    return load_text(cfg, text, len, name, NULL, errbuf, errsize);
}

int kwb_config_load(struct kwb_config *cfg, const char *path, char *errbuf,
                    size_t errsize)
{
    struct loader ld = {cfg, path, errbuf, errsize};
    char *text = NULL;
    char *dir = NULL;
    size_t len = 0;
    struct stat st;
    int fd = -1;
    int rc = -1;

    memset(cfg, 0, sizeof(*cfg));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        fail_at(&ld, path, 0, "cannot open: %s", strerror(errno));
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        fail_at(&ld, path, 0, "is a directory");
        goto out;
    }
    /* A buffer of the file's size (grown if it reads longer: a pipe, a
     * file being rewritten), not of the limit: freeing a 16 MiB buffer
     * raised glibc's mmap threshold to 16 MiB and its trim threshold to
     * 32 MiB for the process's life, so every thread's malloc arena kept
     * up to 32 MiB of freed memory resident. Reads stop one byte past the
     * limit, which is then an error. */
    size_t cap = st.st_size > 0 && st.st_size <= (off_t)MAX_FILE_BYTES
                     ? (size_t)st.st_size + 1
                     : 4096;
    text = malloc(cap);
    if (!text) {
        fail_at(&ld, path, 0, "out of memory");
        goto out;
    }
    for (;;) {
        if (len == cap) {
            /* len <= MAX_FILE_BYTES here, so cap grows */
            size_t ncap =
                cap * 2 < MAX_FILE_BYTES + 1 ? cap * 2 : MAX_FILE_BYTES + 1;
            char *grown = realloc(text, ncap);
            if (!grown) {
                fail_at(&ld, path, 0, "out of memory");
                goto out;
            }
            text = grown;
            cap = ncap;
        }
        ssize_t n = read(fd, text + len, cap - len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            fail_at(&ld, path, 0, "cannot read: %s", strerror(errno));
            goto out;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
        if (len > MAX_FILE_BYTES) {
            fail_at(&ld, path, 0, "larger than %u bytes", MAX_FILE_BYTES);
            goto out;
        }
    }
    /* @include "x" is relative to the including file's directory. */
    dir = strdup(path);
    if (!dir) {
        fail_at(&ld, path, 0, "out of memory");
        goto out;
    }
    if (strrchr(dir, '/')) {
        strrchr(dir, '/')[1] = '\0';
    } else {
        dir[0] = '\0';
    }
    rc = load_text(cfg, text, len, path, dir[0] ? dir : NULL, errbuf, errsize);
out:
    if (fd >= 0) {
        close(fd);
    }
    free(text);
    free(dir);
    return rc;
}

static void free_table(const struct key *table, char *base)
{
    for (size_t i = 0; table[i].name; i++) {
        if (table[i].type == KT_STRING) {
            char **field = (char **)(void *)(base + table[i].off);

            free(*field);
            *field = NULL;
        } else if (table[i].type == KT_GROUP) {
            free_table(table[i].sub, base);
        }
    }
}

void kwb_config_free(struct kwb_config *cfg)
{
    if (!cfg) {
        return;
    }
    for (size_t i = 0; cfg->watches && i < cfg->n_watches; i++) {
        struct kwb_watch_conf *w = &cfg->watches[i];

        free_table(watch_keys, (char *)w);
        free(w->group);
        free(w->version);
        free(w->id);
    }
    free(cfg->watches);
    for (size_t i = 0; cfg->sinks && i < cfg->n_sinks; i++) {
        free_table(sink_keys, (char *)&cfg->sinks[i]);
    }
    free(cfg->sinks);
    free_table(root_keys, (char *)cfg);
    free(cfg->metrics_host);
    free(cfg->path);
    if (config_root_setting(&cfg->lc)) {
        config_destroy(&cfg->lc);
    }
    memset(cfg, 0, sizeof(*cfg));
}

/* ---- --check: sinks' own validation ------------------------------------ */

static void check_ack(void *opaque, uint64_t token, enum kwb_ack_status status,
                      const char *reason)
{
    (void)opaque;
    (void)token;
    (void)status;
    (void)reason;
}

static void check_log(int level, const char *sink_name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void check_log(int level, const char *sink_name, const char *fmt, ...)
{
    const char *kv[] = {"sink", sink_name, NULL};
    va_list ap;

    if (!kwb_log_enabled(level)) {
        return;
    }
    va_start(ap, fmt);
    kwb_log_kvv(level, "config", kv, fmt, ap);
    va_end(ap);
}

/*
 * The line of the key a sink's message is about: the first of its first
 * three words that names a member of the group ("'rotate_keep' must ...",
 * "webhook: url must ...", "topic: ..."); else the group's line.
 */
static int message_line(const config_setting_t *group, int line,
                        const char *msg)
{
    const char *p = msg;

    for (int words = 0; *p && words < 3; words++) {
        char name[64];
        size_t n = 0;
        const config_setting_t *m;

        while (*p && !is_name_char(*p)) {
            p++;
        }
        while (*p && is_name_char(*p)) {
            if (n + 1 < sizeof(name)) {
                name[n++] = *p;
            }
            p++;
        }
        name[n] = '\0';
        m = n ? config_setting_get_member(group, name) : NULL;
        if (m && config_setting_source_line(m) > 0) {
            return (int)config_setting_source_line(m);
        }
    }
    return line;
}

int kwb_config_check_sinks(const struct kwb_config *cfg, char *errbuf,
                           size_t errsize)
{
    if (errsize) {
        errbuf[0] = '\0';
    }
    for (size_t i = 0; i < cfg->n_sinks; i++) {
        const struct kwb_sink_conf *sk = &cfg->sinks[i];
        struct kwb_sink_env env = {
            .name = sk->name,
            .cluster = cfg->cluster_name,
            .ack = check_ack,
            .ack_opaque = NULL,
            .log = check_log,
            .conf_file = cfg->path,
        };
        char msg[1024] = "";
        const char *file = config_setting_source_file(sk->group);
        void *sink;

        sink = sk->ops->init(sk->group, &env, msg, sizeof(msg));
        if (!sink) {
            if (errsize) {
                snprintf(errbuf, errsize, "%s:%d: sinks[%zu] (%s): %s",
                         file ? file : cfg->path,
                         message_line(sk->group, sk->line, msg), i, sk->name,
                         msg[0] ? msg : "invalid configuration");
            }
            return -1;
        }
        sk->ops->close(sink);
    }
    return 0;
}

/* ---- dump -------------------------------------------------------------- */

/* Print s as a libconfig string literal; userinfo in URLs redacted. */
static void put_string(FILE *out, const char *s)
{
    const char *scheme = strstr(s, "://");
    const char *at = NULL;

    if (scheme) {
        size_t auth = strcspn(scheme + 3, "/?#");
        const char *a = memchr(scheme + 3, '@', auth);

        at = a;
    }
    fputc('"', out);
    for (const char *p = s; *p; p++) {
        if (at && p == scheme + 3) {
            fputs("[redacted]", out);
            p = at - 1;
            at = NULL;
            continue;
        }
        if (*p == '"' || *p == '\\') {
            fputc('\\', out);
            fputc(*p, out);
        } else if ((unsigned char)*p < 0x20) {
            fprintf(out, "\\x%02x", (unsigned char)*p);
        } else {
            fputc(*p, out);
        }
    }
    fputc('"', out);
}

/* Shortest form that reads back as a libconfig float ("0.8", "30.0"). */
static void put_double(FILE *out, double v)
{
    char buf[64];

    snprintf(buf, sizeof(buf), "%.15g", v);
    if (!strpbrk(buf, ".eEni")) {
        strncat(buf, ".0", sizeof(buf) - strlen(buf) - 1);
    }
    fputs(buf, out);
}

static void dump_table(FILE *out, const struct key *table, const char *base,
                       int depth, int verbose)
{
    for (size_t i = 0; table[i].name; i++) {
        const struct key *k = &table[i];
        const void *field = base + k->off;

        if (k->type == KT_LIST) {
            continue;
        }
        if ((k->type == KT_STRING && !*(char *const *)field) ||
            (k->type == KT_BOOL && *(const int *)field < 0)) {
            /* Unset: a comment, so that the dump stays valid input. */
            fprintf(out, "%*s# %s: unset%s%s\n", depth * 2, "", k->name,
                    verbose ? " -- " : "", verbose ? k->help : "");
            continue;
        }
        fprintf(out, "%*s%s = ", depth * 2, "", k->name);
        if (k->type == KT_GROUP) {
            fprintf(out, "{%s%s\n", verbose ? "  # " : "",
                    verbose ? k->help : "");
            dump_table(out, k->sub, base, depth + 1, verbose);
            fprintf(out, "%*s};\n", depth * 2, "");
            continue;
        }
        if (k->flags & KF_SENSITIVE) {
            fputs("[redacted]", out);
        } else {
            switch (k->type) {
            case KT_STRING:
                put_string(out, *(char *const *)field);
                break;
            case KT_BOOL:
                fputs(*(const int *)field ? "true" : "false", out);
                break;
            case KT_INT:
                fprintf(out, "%d", *(const int *)field);
                break;
            case KT_SIZE:
                fprintf(out, "%zu", *(const size_t *)field);
                break;
            case KT_DOUBLE:
                put_double(out, *(const double *)field);
                break;
            case KT_ENUM:
                fprintf(out, "\"%s\"",
                        enum_name(k->enums, *(const int *)field));
                break;
            case KT_GROUP:
            case KT_LIST:
                break;
            }
        }
        fprintf(out, ";%s%s\n", verbose ? "  # " : "", verbose ? k->help : "");
    }
}

static int dump_watches(const struct kwb_config *cfg, FILE *out, int verbose)
{
    fputs("watches = (\n", out);
    for (size_t i = 0; i < cfg->n_watches; i++) {
        fprintf(out, "  {  # %s\n", cfg->watches[i].id);
        dump_table(out, watch_keys, (const char *)&cfg->watches[i], 2, verbose);
        fprintf(out, "  }%s\n", i + 1 < cfg->n_watches ? "," : "");
    }
    fputs(");\n", out);
    return 0;
}

/* A sink's own keys as written; values of nested groups and lists (Kafka
 * properties, webhook headers: passwords, Authorization) redacted. */
static void dump_setting(FILE *out, const config_setting_t *s, int depth,
                         int redact)
{
    const char *name = config_setting_name(s);

    fprintf(out, "%*s", depth * 2, "");
    if (name) {
        if (strchr(name, '.') || !isalpha((unsigned char)name[0])) {
            put_string(out, name);
            fputs(" = ", out);
        } else {
            fprintf(out, "%s = ", name);
        }
    }
    if (config_setting_is_aggregate(s)) {
        int n = config_setting_length(s);
        int group = config_setting_is_group(s);

        fputs(group ? "{\n" : "(\n", out);
        for (int i = 0; i < n; i++) {
            dump_setting(out, config_setting_get_elem(s, (unsigned)i),
                         depth + 1, 1);
        }
        fprintf(out, "%*s%s%s\n", depth * 2, "", group ? "}" : ")",
                name ? ";" : ",");
        return;
    }
    if (redact) {
        fputs("[redacted]", out);
    } else {
        switch (config_setting_type(s)) {
        case CONFIG_TYPE_STRING:
            put_string(out, config_setting_get_string(s));
            break;
        case CONFIG_TYPE_BOOL:
            fputs(config_setting_get_bool(s) ? "true" : "false", out);
            break;
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_INT64:
            fprintf(out, "%lld", config_setting_get_int64(s));
            break;
        case CONFIG_TYPE_FLOAT:
            put_double(out, config_setting_get_float(s));
            break;
        default:
            fputs("?", out);
            break;
        }
    }
    fputs(name ? ";\n" : ",\n", out);
}

static int dump_sinks(const struct kwb_config *cfg, FILE *out, int verbose)
{
    fputs("sinks = (\n", out);
    for (size_t i = 0; i < cfg->n_sinks; i++) {
        const struct kwb_sink_conf *sk = &cfg->sinks[i];
        int n = config_setting_length(sk->group);

        fputs("  {\n", out);
        dump_table(out, sink_keys, (const char *)sk, 2, verbose);
        for (int j = 0; j < n; j++) {
            const config_setting_t *c =
                config_setting_get_elem(sk->group, (unsigned)j);
            const char *name = config_setting_name(c);

            if (strcmp(name, "type") && strcmp(name, "name") &&
                strcmp(name, "dead_letter_path")) {
                dump_setting(out, c, 2, 0);
            }
        }
        fprintf(out, "  }%s\n", i + 1 < cfg->n_sinks ? "," : "");
    }
    fputs(");\n", out);
    return 0;
}

int kwb_config_dump(const struct kwb_config *cfg, FILE *out, int verbose)
{
    fprintf(out, "# %s (effective configuration)\n", cfg->path);
    dump_table(out, root_keys, (const char *)cfg, 0, verbose);
    for (size_t i = 0; root_keys[i].name; i++) {
        if (root_keys[i].type == KT_LIST) {
            root_keys[i].list->dump(cfg, out, verbose);
        }
    }
    if (fflush(out) != 0 || ferror(out)) {
        return -EIO;
    }
    return 0;
}
