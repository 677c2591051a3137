/*
 * config.h - the agent's configuration, read once at start by config.c,
 * the sole reader of libconfig. Immutable after kwb_config_load(); every
 * thread may read it without locks.
 */
#ifndef KWB_CONFIG_H
#define KWB_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libconfig.h>

struct kwb_sink_ops;

enum kwb_initial { KWB_INITIAL_EMIT = 0, KWB_INITIAL_SKIP };

struct kwb_watch_conf {
    char *api;               /* "v1", "apps/v1", "example.com/v1" */
    char *group;             /* "" for core, else the part before '/' */
    char *version;           /* "v1" */
    char *resource;          /* "pods" */
    char *namespace_;        /* NULL = all namespaces / cluster-scoped */
    char *label_selector;    /* NULL when unset or "" */
    char *field_selector;    /* NULL when unset or "" */
    char *id;                /* "<api>/<resource>[@<namespace>]" */
    int trim_managed_fields; /* per watch; -1 = use global */
    char *redact_paths;      /* per watch; NULL = use global */
    char *topic;             /* optional per-watch Kafka topic override */
};

/* The pipeline keeps one acknowledgement bit per sink and event. */
#define KWB_MAX_SINKS 32

struct kwb_sink_conf {
    char *type;                     /* "file", "kafka", "webhook" */
    char *name;                     /* `name` key or the type */
    char *dead_letter_path;         /* NULL when unset */
    config_setting_t *group;        /* borrowed from the kept config_t */
    int line;                       /* line of the group, for messages */
    const struct kwb_sink_ops *ops; /* kwb_sink_find(type), never NULL */
};

struct kwb_config {
    char *path;  /* the config file, as given */
    config_t lc; /* kept open: sinks read their groups at init */

    /* cluster */
    char *cluster_name;
    char *server;     /* NULL: in-cluster, then kubeconfig */
    char *kubeconfig; /* NULL: $KUBECONFIG, then ~/.kube/config */
    char *context;    /* NULL: current-context */
    char *token_file;
    char *ca_file;
    char *client_cert_file;
    char *client_key_file;
    int insecure_skip_tls_verify;
    /* In-cluster paths, overridable for tests. */
    char
        *serviceaccount_dir; /* default
                                /var/run/secrets/kubernetes.io/serviceaccount */

    /* state */
    char *state_dir;            /* default /var/lib/kube-watch-bridge */
    char *state_backend;        /* "file" (default) or "configmap" */
    int checkpoint_interval_ms; /* default 1000 */
    /* backend "configmap": ConfigMap names start with the prefix; the
     * namespace defaults to <serviceaccount_dir>/namespace, else
     * "default"; the prefix to "kube-watch-bridge". */
    char *state_configmap_namespace;
    char *state_configmap_name_prefix;

    enum kwb_initial initial;

    /* watch behaviour (global, key group `watch_defaults`) */
    int list_page_size;       /* default 500 */
    int watch_timeout_min_s;  /* default 300 */
    int watch_timeout_max_s;  /* default 600 */
    int stall_timeout_s;      /* default 90: no bytes at all for this long */
    int connect_timeout_s;    /* default 10 */
    double backoff_initial_s; /* default 0.8 */
    double backoff_factor;    /* default 2.0 */
    double backoff_jitter;    /* default 1.0 */
    double backoff_max_s;     /* default 30 */
    double backoff_reset_s;   /* default 120 */
    int watch_list;           /* "auto" (-1, default), on (1), off (0) */
    size_t max_event_bytes;   /* default 16 MiB */
    int trim_managed_fields;  /* default 0 */
    char *redact_paths;       /* "a.b,c.d": values replaced; NULL none */

    /* pipeline */
    size_t queue_events;         /* default 8192: backpressure bound */
    size_t queue_bytes;          /* default 8 MiB, 32 MiB with kafka */
    int shutdown_timeout_ms;     /* default 25000 */
    double sink_retry_initial_s; /* default 1 */
    double sink_retry_max_s;     /* default 60 */

    /* redaction */
    char *redaction_hash_key_file; /* NULL: "redacted" */

    /* logging */
    int log_level; /* 0 debug .. 3 error; default 1 */

    char *metrics_address; /* NULL: no HTTP endpoint */
    /* metrics_address split: host without brackets ("" = all addresses,
     * from ":9090"), port 0..65535 (0: any free port); NULL/0 when
     * metrics_address is NULL. */
    char *metrics_host;
    int metrics_port;

    /* leader election (issue 9) */
    int leader_election;
    char *lease_namespace; /* default like state_configmap_namespace */
    char *lease_name;
    char *identity; /* default: the host name */
    /* client-go semantics; lease > renew > retry. */
    int lease_duration_s; /* default 15 */
    int renew_deadline_s; /* default 10 */
    int retry_period_s;   /* default 2 */

    struct kwb_watch_conf *watches;
    size_t n_watches;
    struct kwb_sink_conf *sinks;
    size_t n_sinks;
};

/*
 * Load and validate `path`. On success returns 0 and fills *cfg (free with
 * kwb_config_free). On failure returns -1 and writes "FILE:LINE: message"
 * (or "FILE: message" when no line is known) into errbuf.
 */
int kwb_config_load(struct kwb_config *cfg, const char *path, char *errbuf,
                    size_t errsize);
/*
 * Same as kwb_config_load() on `len` bytes of `text` (need not be
 * NUL-terminated). `name` stands for FILE in messages and cfg->path.
 * @include paths are relative to the working directory. For the fuzzer
 * and the unit tests.
 */
int kwb_config_load_string(struct kwb_config *cfg, const char *text, size_t len,
                           const char *name, char *errbuf, size_t errsize);
/* NULL-safe; frees everything the config owns. Safe after a failed load
 * (which leaves *cfg zeroed) and twice. */
void kwb_config_free(struct kwb_config *cfg);

/*
 * --check: for each sink, ops->init() on its group (offline) then
 * ops->close(). 0 when every sink accepts its group; else -1 and
 * "FILE:LINE: sinks[i] (name): <the sink's message>" in errbuf, LINE
 * being that of the key the message names first, else the group's.
 */
int kwb_config_check_sinks(const struct kwb_config *cfg, char *errbuf,
                           size_t errsize);

/*
 * Print the effective configuration (defaults filled in) as libconfig-like
 * text to `out`, for --check -v. Sensitive keys, URL user info and the
 * values inside a sink's nested groups (Kafka properties, webhook headers)
 * print as [redacted]. With `verbose`, each key carries its help text as a
 * comment. Returns 0 or -EIO.
 */
int kwb_config_dump(const struct kwb_config *cfg, FILE *out, int verbose);

#endif
