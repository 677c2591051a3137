/*
 * kube.h - the Kubernetes API client over libcurl: URLs, LIST pages,
 * streaming WATCH, Status objects, Retry-After.
 *
 * One struct kwb_kube per thread (one easy handle each, reused so
 * connections are kept alive). Authentication and TLS come from
 * kubeconfig.c (kwb_kube_auth_apply) on every request, so a rotated token
 * file is picked up.
 */
#ifndef KWB_KUBE_H
#define KWB_KUBE_H

#include <stdatomic.h>
#include <stddef.h>

#include "config.h"

struct kwb_kube_auth;
struct kwb_kube;

struct kwb_kube_resp {
    long status;            /* HTTP status; 0 when no response arrived */
    int curl_code;          /* CURLE_*; 0 on transfer success */
    char errmsg[512];       /* curl's error text or the Status message */
    char reason[64];        /* Status reason ("Expired", "Forbidden"...) */
    double retry_after_s;   /* Retry-After header; 0 when absent */
    char content_type[128]; /* Content-Type of the final answer ("" none) */
    char *body;             /* collected body (get, request, error bodies) */
    size_t body_len;
    size_t body_cap; /* its buffer's size (an mmap of its own: kube.c) */
    int truncated;   /* body exceeded the limit */
    int aborted;     /* a callback asked to stop */
    int stalled;     /* no bytes for stall_s seconds */
};

/* Frees the body and clears every field. */
void kwb_kube_resp_reset(struct kwb_kube_resp *r);
/* Frees only the body (its buffer's pages go back to the system at once);
 * status and messages stay. */
void kwb_kube_resp_drop_body(struct kwb_kube_resp *r);

/* cfg (connect and stall timeouts) is borrowed and must outlive the
 * client; it may be NULL for a client that only sends kwb_kube_request. */
struct kwb_kube *kwb_kube_new(struct kwb_kube_auth *auth,
                              const struct kwb_config *cfg);
void kwb_kube_free(struct kwb_kube *k); /* NULL-safe */

/*
 * Collection URL of watch wc: <server>/api/v1[/namespaces/<ns>]/<res> or
 * <server>/apis/<group>/<version>[/namespaces/<ns>]/<res>. 0 or -1 when
 * out is too small.
 */
int kwb_kube_collection_url(const struct kwb_kube *k,
                            const struct kwb_watch_conf *wc, char *out,
                            size_t size);

/* URL-encode a query value into out; -1 when it does not fit. */
int kwb_kube_escape(const char *s, char *out, size_t size);

/* GET url and collect the body (at most max_body bytes, else truncated
 * and failed). The body buffer r already has is reused (the pages of a
 * list need one buffer, as large as the largest page): free it with
 * kwb_kube_resp_drop_body once the list is done. 0 when a response
 * arrived (look at r->status), negative on transport failure (r->errmsg says
 * why). A 200 answer that is not application/json (a proxy's HTML page,
 * protobuf) fails with -EPROTO: "GET <path>: unexpected Content-Type <type>
 * (want application/json)". */
int kwb_kube_get(struct kwb_kube *k, const char *url, size_t max_body,
                 const atomic_int *stop, struct kwb_kube_resp *r);

/* One plain request (the Lease and ConfigMap clients). */
struct kwb_kube_req {
    const char *method;      /* "GET", "POST", "PUT"... */
    const char *url;         /* named in error messages: no secrets in it */
    const char *body;        /* sent as application/json; NULL: none */
    const char *agent;       /* User-Agent comment ("checkpoint"); NULL */
    long timeout_ms;         /* the whole request; at least 1 ms */
    long connect_timeout_ms; /* 0: curl's default */
    size_t max_body;         /* a larger answer fails ("response too large") */
    const atomic_int *abort; /* nonzero: stop at once (-ECANCELED); NULL */
};

/*
 * Send req and collect the answer, whatever its status, into r->body /
 * r->body_len (NULL/0 when empty; kwb_kube_resp_reset frees it). Auth and
 * TLS as for every request. Returns the HTTP status, or a negative errno
 * with errbuf ("METHOD URL: why"): -ECANCELED when aborted, -ETIMEDOUT,
 * -EIO (transport, or an answer over max_body), -ENOMEM, or the error of
 * kwb_kube_auth_apply.
 */
int kwb_kube_request(struct kwb_kube *k, const struct kwb_kube_req *req,
                     struct kwb_kube_resp *r, char *errbuf, size_t errsize);

/* Body chunks of a 200 streaming response; return nonzero to abort. */
typedef int (*kwb_kube_data_fn)(void *opaque, const char *data, size_t len);
/* After each round of network I/O (and at least every 100 ms): the place
 * to hand off what was parsed. Return nonzero to abort. */
typedef int (*kwb_kube_idle_fn)(void *opaque);

/*
 * Stream a watch. Non-200 answers are collected into r->body (at most
 * 64 KiB) instead of being passed to on_data. A stream is declared stalled
 * when no byte arrives for stall_s seconds. A 200 answer that is not
 * application/json fails with -EPROTO before on_data sees a byte (errmsg
 * as for kwb_kube_get, path + "?watch=1"). Returns 0 when the server
 * closed the stream cleanly, negative otherwise (r says why).
 */
int kwb_kube_stream(struct kwb_kube *k, const char *url, int stall_s,
                    kwb_kube_data_fn on_data, kwb_kube_idle_fn on_idle,
                    void *opaque, const atomic_int *stop,
                    struct kwb_kube_resp *r);

/* Parse a Status object body into r->errmsg/r->reason (best effort). */
void kwb_kube_parse_status(struct kwb_kube_resp *r);

#endif
