/*
 * event.h - the SPEC event: envelope + the object's bytes, and Secret
 * redaction.
 *
 * Hot path: the envelope is printed around the object's original bytes,
 * which are copied through unchanged (the scanner validated them). Only
 * objects that must change (Secrets, opt-in managedFields trimming) take
 * the slow path through cJSON.
 *
 * Thread: any; a kwb_event_ctx is owned by one watch worker.
 */
#ifndef KWB_EVENT_H
#define KWB_EVENT_H

#include <stddef.h>

#include "jscan.h"
#include "metrics.h"
#include "pipeline.h"
#include "store.h"

struct kwb_event_ctx {
    char *cluster_esc; /* cluster name, JSON-escaped */
    char *resource;    /* "pods" */
    char *api_version; /* the watch's api: used when an object has none */
    char *kind;        /* from the list kind ("PodList" -> "Pod"); NULL
                          until known */
    int trim_managed_fields;
    unsigned char *hash_key; /* redaction key, NULL: "redacted" */
    size_t hash_key_len;
    char **redact_paths; /* each "a.b.c"; values there become "redacted" */
    size_t n_redact_paths;
    char observed[32]; /* set by kwb_event_ctx_stamp, "" otherwise */
    size_t observed_len;
};

/* Fill ctx from the config of watch `w`; hash key read from the file by
 * the caller (main) and copied. 0 or -ENOMEM. */
int kwb_event_ctx_init(struct kwb_event_ctx *ctx, const char *cluster,
                       const char *resource, const char *api_version,
                       int trim_managed_fields, const unsigned char *hash_key,
                       size_t hash_key_len);
void kwb_event_ctx_free(struct kwb_event_ctx *ctx);
/* Opt-in redaction of further JSON paths: `csv` is "a.b,c.d" (NULL or ""
 * for none). Arrays on the way apply the rest of the path to each
 * element. 0 or -ENOMEM. */
int kwb_event_ctx_set_redact_paths(struct kwb_event_ctx *ctx, const char *csv);

/*
 * observedAt of the events appended from now until kwb_event_ctx_unstamp:
 * the time the bytes that carry them arrived. A watch stamps once per
 * network read instead of reading the clock per event; unstamped, each
 * event takes the time it is built.
 */
void kwb_event_ctx_stamp(struct kwb_event_ctx *ctx);
void kwb_event_ctx_unstamp(struct kwb_event_ctx *ctx);

/* Set the kind from a list kind ("PodList" -> "Pod"), if not yet known. */
int kwb_event_ctx_set_list_kind(struct kwb_event_ctx *ctx, const char *kind,
                                size_t len);

/*
 * Append one EVENT item for `obj` to batch b. `resume_rv` (NULL for list
 * diffs) is the resourceVersion a watch may resume from once this event is
 * acknowledged. Returns 0, -ENOMEM, or -EINVAL with errbuf set when the
 * object lacks fields an event needs (uid, name, resourceVersion).
 */
int kwb_event_append(struct kwb_batch *b, const struct kwb_event_ctx *ctx,
                     enum kwb_ev_type type, enum kwb_origin origin,
                     const struct kwb_jobj *obj, const char *resume_rv,
                     char *errbuf, size_t errsize);

/* Append a DELETED (origin list) event for an object that vanished during
 * a gap; the payload is the last known identity of the object. */
int kwb_event_append_vanished(struct kwb_batch *b,
                              const struct kwb_event_ctx *ctx,
                              const struct kwb_store_entry *e);

/* Append a STATE item (record in the committed store, deliver nothing).
 * `deleted` records a removal. */
int kwb_event_append_state(struct kwb_batch *b, const char *uid, const char *rv,
                           const char *name, const char *ns, int deleted);

/* Unescaped copy of a span into out; "" when absent. -1 when too long. */
int kwb_event_span_str(const struct kwb_jspan *s, char *out, size_t size);

/*
 * Redact a Secret / trim managedFields: parse obj with cJSON, replace every
 * value of data and stringData, optionally drop metadata.managedFields,
 * add kind/apiVersion when missing, print. Returns a malloc'd string (caller
 * frees) or NULL (errbuf set). Exposed for tests.
 */
char *kwb_event_rewrite(const struct kwb_event_ctx *ctx, const char *obj,
                        size_t len, int redact, char *errbuf, size_t errsize);

extern const char *const kwb_ev_type_names[KWB_EV_TYPES];

#endif
