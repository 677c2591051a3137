/*
 * sink.h - the interface between the pipeline (agent/) and sink modules.
 *
 * This is the only header agent/ and sinks/ share. A sink is one
 * `const struct kwb_sink_ops` plus the state its init returns. The pipeline
 * thread is the only caller of every function here; a sink may run threads
 * of its own inside, but it reports acknowledgements only from poll_acks(),
 * on the pipeline thread.
 *
 * Ownership: the event bytes passed to submit() are owned by the pipeline
 * and stay valid and unchanged until the sink acks that token; a sink that
 * needs them longer copies them.
 */
#ifndef KWB_SINK_H
#define KWB_SINK_H

#include <stddef.h>
#include <stdint.h>

struct config_setting_t;

enum kwb_ack_status {
    KWB_ACK_OK = 0, /* durable: fsync'd, delivery report, 2xx */
    KWB_ACK_RETRY,  /* transient failure the sink gave up on, or not sent
                     * because an earlier event failed: resubmit later */
    KWB_ACK_FAIL,   /* permanent failure: dead letter or resubmit */
};

/* Called by a sink, from poll_acks() or flush() only, once per accepted
 * token. `reason` is borrowed, may be NULL for KWB_ACK_OK. */
typedef void (*kwb_sink_ack_fn)(void *opaque, uint64_t token,
                                enum kwb_ack_status status, const char *reason);

/* One event as the pipeline hands it to a sink. All strings are borrowed,
 * NUL-terminated and already unescaped (safe for Kafka headers). */
struct kwb_sink_event {
    const char *json; /* the SPEC event, one JSON object */
    size_t json_len;  /* without the newline; json[json_len] is '\n', and
                       * consecutive events of one batch are usually
                       * adjacent in memory, so a sink may coalesce them */
    const char *type; /* "ADDED" | "MODIFIED" | "DELETED" */
    const char *kind;
    const char *api_version;
    const char *resource;
    const char *namespace_; /* "" for cluster-scoped objects */
    const char *name;
    const char *uid;
    const char *resource_version;
    const char *cluster;
    const char *watch_id; /* "<api>/<resource>[@<namespace>]" */
};

/* Log function handed to sinks, so that sinks/ does not include agent/.
 * level: 0 debug, 1 info, 2 warn, 3 error. `fmt` is a printf format for
 * the human message; never pass secrets. */
typedef void (*kwb_sink_log_fn)(int level, const char *sink_name,
                                const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Called by a sink that retries internally (the webhook sink retries a
 * batch itself on 5xx, 429, timeouts), from poll_acks() or flush() only:
 * `n_events` events are being sent again. Feeds kwb_sink_retries_total. */
typedef void (*kwb_sink_retry_fn)(void *opaque, uint64_t n_events);

struct kwb_sink_env {
    const char *name;          /* "<type>" or the sink's `name` key */
    const char *cluster;       /* cluster.name */
    kwb_sink_ack_fn ack;       /* report acks here */
    void *ack_opaque;          /* first argument of ack */
    kwb_sink_log_fn log;       /* structured logger */
    const char *conf_file;     /* for FILE:LINE messages */
    kwb_sink_retry_fn retried; /* optional, NULL-able; gets ack_opaque */
};

#define KWB_SINK_CAP_BATCH 0x1u /* groups events itself (file, webhook) */

struct kwb_sink_ops {
    const char *type; /* value of the `type` key: "file", "kafka" ... */
    unsigned caps;
    /* Keys this sink accepts in its group besides "type", "name" and
     * "dead_letter_path", NULL-terminated; config.c rejects others. */
    const char *const *keys;

    /* Validate the sink's config group and allocate its state; no network
     * I/O, so --check stays offline. On error write a message naming the
     * key into errbuf (config.c prefixes FILE:LINE) and return NULL. */
    void *(*init)(const struct config_setting_t *group,
                  const struct kwb_sink_env *env, char *errbuf, size_t errsize);
    /* Start I/O (threads, connections); called once after init when the
     * agent runs (not for --check). 0 or negative errno. */
    int (*start)(void *sink);
    /* 0 = accepted, exactly one ack follows; -EAGAIN = full, call
     * poll_acks() and retry; other negative = rejected, never acked. */
    int (*submit)(void *sink, const struct kwb_sink_event *ev, uint64_t token);
    /* Drive I/O for at most timeout_ms and report acks. Returns the number
     * of acks reported or a negative errno. */
    int (*poll_acks)(void *sink, int timeout_ms);
    /* Push everything pending and wait for its acks until deadline_ms
     * (CLOCK_MONOTONIC milliseconds). 0 when nothing is pending anymore. */
    int (*flush)(void *sink, int64_t deadline_ms);
    /* 1 when the sink can deliver (for /readyz). */
    int (*ready)(void *sink);
    /* NULL-safe. Pending tokens are never acked. */
    void (*close)(void *sink);
};

/* sink.c: the static registry. */
const struct kwb_sink_ops *kwb_sink_find(const char *type);
/* NULL-terminated list of all registered sinks. */
const struct kwb_sink_ops *const *kwb_sink_all(void);

extern const struct kwb_sink_ops kwb_sink_file;
extern const struct kwb_sink_ops kwb_sink_kafka;
extern const struct kwb_sink_ops kwb_sink_webhook;

#endif
