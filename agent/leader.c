/*
 * leader.c - Lease-based leader election; see leader.h.
 *
 * One thread runs the client-go loop: campaign (try every retry period,
 * jittered by up to 20%), then renew every retry period until stopped or
 * lost. Lease objects are handled with cJSON (a cold path): a PUT sends
 * back the object as last read, spec replaced, so labels, annotations and
 * metadata.resourceVersion (the precondition) are kept.
 */
#include "leader.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "kube.h"
#include "kubeconfig.h"
#include "log.h"

#define MODULE          "leader"
#define RESP_MAX        (1024 * 1024)
#define JITTER          1.2
#define MIN_PAUSE_MS    50
#define RELEASE_MAX_MS  5000
#define DEFAULT_LEASE_S 15
#define DEFAULT_RENEW_S 10
#define DEFAULT_RETRY_S 2

enum { ST_CAMPAIGN = 0, ST_LEADER, ST_LOST };

/* The spec fields of a Lease, as seen. */
struct lease_rec {
    char holder[256];
    long duration_s;
    char acquire[40];
    char renew[40];
    long transitions;
};

struct kwb_leader {
    /* Immutable after start. */
    struct kwb_kube_auth *auth; /* borrowed */
    char *url;                  /* .../namespaces/NS/leases/NAME */
    char *collection_url;       /* .../namespaces/NS/leases */
    char *namespace_;
    char *name;
    char *identity;
    int64_t lease_ms, renew_ms, retry_ms;
    int lease_s;
    int lost_fd;
    pthread_t thread;
    int started;

    atomic_int leader; /* lock-free view for is_leader */

    /* Locks: `lock` guards state and stopping; cond signals both. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int state;
    int stopping;
    atomic_int abort_io; /* stop requested: abort requests in flight */

    /* Elector thread only. */
    struct kwb_kube *kube;
    cJSON *cur;           /* last lease object read or written */
    struct lease_rec obs; /* last observed record */
    int have_obs;
    int64_t obs_time_ms;   /* monotonic, when obs last changed */
    char last_holder[256]; /* for "leader is X" logs on change */
    int failing;           /* errors are logged once per episode */
    unsigned int seed;
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* MicroTime: RFC 3339 with microseconds, UTC. */
static void micro_time(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    char base[32];
    unsigned int us;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    if (strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        base[0] = '\0';
    }
    us = (unsigned int)(ts.tv_nsec / 1000) % 1000000u;
    snprintf(buf, size, "%.20s.%06uZ", base, us);
}

static int fail(char *errbuf, size_t errsize, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *errbuf, size_t errsize, int err, const char *fmt, ...)
{
    va_list ap;

    if (errbuf && errsize > 0) {
        va_start(ap, fmt);
        vsnprintf(errbuf, errsize, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* DNS-1123 subdomain, as Lease names and namespaces must be. */
static int dns_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 253) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '.')) {
            return 0;
        }
    }
    return s[0] != '-' && s[0] != '.' && s[n - 1] != '-' && s[n - 1] != '.';
}

/* ---- state -------------------------------------------------------------- */

static int is_stopping(struct kwb_leader *l)
{
    int s;

    pthread_mutex_lock(&l->lock);
    s = l->stopping;
    pthread_mutex_unlock(&l->lock);
    return s;
}

static void set_state(struct kwb_leader *l, int state)
{
    pthread_mutex_lock(&l->lock);
    l->state = state;
    atomic_store(&l->leader, state == ST_LEADER);
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

/* Sleep ms unless stopped first. Returns 1 when stopping. */
static int sleep_ms(struct kwb_leader *l, int64_t ms)
{
    struct timespec ts;
    int s;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&l->lock);
    while (!l->stopping) {
        if (pthread_cond_timedwait(&l->cond, &l->lock, &ts) == ETIMEDOUT) {
            break;
        }
    }
    s = l->stopping;
    pthread_mutex_unlock(&l->lock);
    return s;
}

/* ---- HTTP --------------------------------------------------------------- */

/*
 * One request. Returns the HTTP status, or a negative errno with errbuf
 * (-ECANCELED when aborted by stop). The body lands in *r (caller resets
 * it).
 */
static int http_do(struct kwb_leader *l, const char *method, const char *url,
                   const char *body, int64_t timeout_ms,
                   struct kwb_kube_resp *r, char *errbuf, size_t errsize)
{
    long t = timeout_ms < 1 ? 1L : (long)timeout_ms;
    struct kwb_kube_req req = {.method = method,
                               .url = url,
                               .body = body,
                               .agent = "leader-election",
                               .timeout_ms = t,
                               .connect_timeout_ms = t,
                               .max_body = RESP_MAX,
                               .abort = &l->abort_io};

    return kwb_kube_request(l->kube, &req, r, errbuf, errsize);
}

/* "Status" message of an error answer, for logs. */
static void status_message(const struct kwb_kube_resp *r, char *buf,
                           size_t size)
{
    cJSON *j = r->body ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");

    snprintf(buf, size, "%s",
             cJSON_IsString(m) ? m->valuestring : "(no message)");
    cJSON_Delete(j);
}

/* ---- lease records ------------------------------------------------------ */

static void rec_read(const cJSON *lease, struct lease_rec *rec)
{
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(lease, "spec");
    const cJSON *v;

    memset(rec, 0, sizeof(*rec));
    v = cJSON_GetObjectItemCaseSensitive(spec, "holderIdentity");
    if (cJSON_IsString(v)) {
        snprintf(rec->holder, sizeof(rec->holder), "%s", v->valuestring);
    }
    v = cJSON_GetObjectItemCaseSensitive(spec, "leaseDurationSeconds");
    if (cJSON_IsNumber(v) && v->valuedouble > 0 && v->valuedouble < 1e7) {
        rec->duration_s = (long)v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(spec, "acquireTime");
    if (cJSON_IsString(v)) {
        snprintf(rec->acquire, sizeof(rec->acquire), "%s", v->valuestring);
    }
    v = cJSON_GetObjectItemCaseSensitive(spec, "renewTime");
    if (cJSON_IsString(v)) {
        snprintf(rec->renew, sizeof(rec->renew), "%s", v->valuestring);
    }
    v = cJSON_GetObjectItemCaseSensitive(spec, "leaseTransitions");
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e15) {
        rec->transitions = (long)v->valuedouble;
    }
}

static int rec_equal(const struct lease_rec *a, const struct lease_rec *b)
{
    return strcmp(a->holder, b->holder) == 0 &&
           a->duration_s == b->duration_s &&
           strcmp(a->acquire, b->acquire) == 0 &&
           strcmp(a->renew, b->renew) == 0 && a->transitions == b->transitions;
}

/* Build a spec object from rec; NULL on ENOMEM. An empty holder is left
 * out (as client-go's omitempty on release). */
static cJSON *spec_new(const struct lease_rec *rec)
{
    cJSON *s = cJSON_CreateObject();

    if (!s) {
        return NULL;
    }
    if ((rec->holder[0] &&
         !cJSON_AddStringToObject(s, "holderIdentity", rec->holder)) ||
        !cJSON_AddNumberToObject(s, "leaseDurationSeconds",
                                 (double)rec->duration_s) ||
        !cJSON_AddStringToObject(s, "acquireTime", rec->acquire) ||
        !cJSON_AddStringToObject(s, "renewTime", rec->renew) ||
        !cJSON_AddNumberToObject(s, "leaseTransitions",
                                 (double)rec->transitions)) {
        cJSON_Delete(s);
        return NULL;
    }
    return s;
}

/* Note what we saw; the expiry clock restarts when the record changed. */
static void observe(struct kwb_leader *l, const struct lease_rec *rec,
                    int64_t now)
{
    if (!l->have_obs || !rec_equal(&l->obs, rec)) {
        l->obs = *rec;
        l->have_obs = 1;
        l->obs_time_ms = now;
    }
    if (strcmp(l->last_holder, rec->holder) != 0) {
        snprintf(l->last_holder, sizeof(l->last_holder), "%s", rec->holder);
        if (rec->holder[0] && strcmp(rec->holder, l->identity) != 0) {
            const char *kv[] = {"lease", l->name, "holder", rec->holder, NULL};
            kwb_log_kv(KWB_LOG_INFO, MODULE, kv, "another replica is leader");
        }
    }
}

/* Keep the answer as our current view of the lease. 0 or -EINVAL. */
static int take_answer(struct kwb_leader *l, const struct kwb_kube_resp *r,
                       struct lease_rec *rec)
{
    cJSON *j = r->body ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;

    if (!cJSON_IsObject(j) ||
        !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "metadata"))) {
        cJSON_Delete(j);
        return -EINVAL;
    }
    cJSON_Delete(l->cur);
    l->cur = j;
    rec_read(j, rec);
    return 0;
}

/* Report a failed attempt: warn on the first of a run, debug after. */
static void attempt_failed(struct kwb_leader *l, const char *what)
{
    const char *kv[] = {"lease", l->name, NULL};
    int level = l->failing ? KWB_LOG_DEBUG : KWB_LOG_WARN;

    l->failing = 1;
    if (kwb_log_enabled(level)) {
        kwb_log_kv(level, MODULE, kv, "lease %s", what);
    }
}

/*
 * PUT l->cur with its spec replaced by rec. Returns 1 when written (l->cur
 * and the observation updated), 0 when not (409 or an error, logged),
 * -ECANCELED when stopped.
 */
static int put_lease(struct kwb_leader *l, const struct lease_rec *rec,
                     int64_t timeout_ms, int64_t now)
{
    char err[512], msg[600];
    struct kwb_kube_resp r = {0};
    struct lease_rec got;
    cJSON *spec = spec_new(rec);
    char *body = NULL;
    int code;
    int rc = 0;

    if (!spec) {
        attempt_failed(l, "update: out of memory");
        goto out;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(l->cur, "spec");
    cJSON_AddItemToObject(l->cur, "spec", spec);
    /* apiVersion/kind may be absent in what a GET returned; set them. */
    cJSON_DeleteItemFromObjectCaseSensitive(l->cur, "apiVersion");
    cJSON_DeleteItemFromObjectCaseSensitive(l->cur, "kind");
    cJSON_AddStringToObject(l->cur, "apiVersion", "coordination.k8s.io/v1");
    cJSON_AddStringToObject(l->cur, "kind", "Lease");
    body = cJSON_PrintUnformatted(l->cur);
    if (!body) {
        attempt_failed(l, "update: out of memory");
        goto out;
    }
    code = http_do(l, "PUT", l->url, body, timeout_ms, &r, err, sizeof(err));
    if (code == -ECANCELED) {
        rc = code;
        goto out;
    }
    if (code < 0) {
        snprintf(msg, sizeof(msg), "update failed: %s", err);
        attempt_failed(l, msg);
        goto out;
    }
    if (code == 409) {
        /* Someone wrote it since our GET: re-read next round. */
        const char *kv[] = {"lease", l->name, NULL};
        kwb_log_kv(KWB_LOG_DEBUG, MODULE, kv, "lease update conflict (409)");
        goto out;
    }
    if (code != 200 && code != 201) {
        status_message(&r, err, sizeof(err));
        if (code == 401) {
            kwb_kube_auth_invalidate(l->auth);
        }
        snprintf(msg, sizeof(msg), "update: HTTP %d: %s", code, err);
        attempt_failed(l, msg);
        goto out;
    }
    if (take_answer(l, &r, &got) != 0) {
        attempt_failed(l, "update: answer is not a Lease object");
        goto out;
    }
    observe(l, &got, now);
    l->failing = 0;
    rc = 1;
out:
    kwb_kube_resp_reset(&r);
    free(body);
    return rc;
}

/*
 * client-go's tryAcquireOrRenew. Returns 1 when we hold the lease now, 0
 * when not, -EBUSY when another identity validly holds it, -ECANCELED
 * when stopped.
 */
static int try_acquire_or_renew(struct kwb_leader *l, int64_t timeout_ms)
{
    char err[512], msg[600];
    char now_s[40];
    struct kwb_kube_resp r = {0};
    struct lease_rec old, rec;
    int64_t start = mono_ms();
    int64_t now, valid_ms;
    int code;
    int rc = 0;

    micro_time(now_s, sizeof(now_s));
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.holder, sizeof(rec.holder), "%s", l->identity);
    rec.duration_s = l->lease_s;
    snprintf(rec.acquire, sizeof(rec.acquire), "%s", now_s);
    snprintf(rec.renew, sizeof(rec.renew), "%s", now_s);

    code = http_do(l, "GET", l->url, NULL, timeout_ms, &r, err, sizeof(err));
    if (code == -ECANCELED) {
        rc = code;
        goto out;
    }
    if (code < 0) {
        snprintf(msg, sizeof(msg), "get failed: %s", err);
        attempt_failed(l, msg);
        goto out;
    }
    if (code == 404) {
        cJSON *obj = cJSON_CreateObject();
        cJSON *md = cJSON_AddObjectToObject(obj, "metadata");
        cJSON *spec = spec_new(&rec);
        char *body = NULL;

        if (md && spec && cJSON_AddStringToObject(md, "name", l->name) &&
            cJSON_AddStringToObject(md, "namespace", l->namespace_) &&
            cJSON_AddStringToObject(obj, "apiVersion",
                                    "coordination.k8s.io/v1") &&
            cJSON_AddStringToObject(obj, "kind", "Lease")) {
            cJSON_AddItemToObject(obj, "spec", spec);
            spec = NULL;
            body = cJSON_PrintUnformatted(obj);
        }
        cJSON_Delete(spec);
        cJSON_Delete(obj);
        if (!body) {
            attempt_failed(l, "create: out of memory");
            goto out;
        }
        now = mono_ms();
        code = http_do(l, "POST", l->collection_url, body,
                       timeout_ms - (now - start), &r, err, sizeof(err));
        free(body);
        if (code == -ECANCELED) {
            rc = code;
            goto out;
        }
        if (code < 0) {
            snprintf(msg, sizeof(msg), "create failed: %s", err);
            attempt_failed(l, msg);
            goto out;
        }
        if (code == 409) {
            /* Someone else created it first. */
            goto out;
        }
        if (code != 201 && code != 200) {
            status_message(&r, err, sizeof(err));
            if (code == 401) {
                kwb_kube_auth_invalidate(l->auth);
            }
            snprintf(msg, sizeof(msg), "create: HTTP %d: %s", code, err);
            attempt_failed(l, msg);
            goto out;
        }
        if (take_answer(l, &r, &old) != 0) {
            attempt_failed(l, "create: answer is not a Lease object");
            goto out;
        }
        observe(l, &old, start);
        l->failing = 0;
        rc = strcmp(old.holder, l->identity) == 0;
        goto out;
    }
    if (code != 200) {
        status_message(&r, err, sizeof(err));
        if (code == 401) {
            kwb_kube_auth_invalidate(l->auth);
        }
        snprintf(msg, sizeof(msg), "get: HTTP %d: %s", code, err);
        attempt_failed(l, msg);
        goto out;
    }
    if (take_answer(l, &r, &old) != 0) {
        attempt_failed(l, "get: answer is not a Lease object");
        goto out;
    }
    now = mono_ms();
    observe(l, &old, now);
    l->failing = 0;

    /* Held by another and not expired on our clock: wait. The holder's
     * own duration counts, falling back to ours. */
    valid_ms = (old.duration_s > 0 ? old.duration_s : l->lease_s) * 1000LL;
    if (old.holder[0] && strcmp(old.holder, l->identity) != 0 &&
        l->obs_time_ms + valid_ms > now) {
        rc = -EBUSY;
        goto out;
    }
    if (strcmp(old.holder, l->identity) == 0) {
        /* Renewal: keep acquireTime and the transition count. */
        snprintf(rec.acquire, sizeof(rec.acquire), "%s", old.acquire);
        rec.transitions = old.transitions;
    } else {
        rec.transitions = old.transitions + 1;
    }
    rc = put_lease(l, &rec, timeout_ms - (now - start), start);
out:
    kwb_kube_resp_reset(&r);
    return rc;
}

/* client-go's release: holder cleared, duration 1s, transitions kept. */
static void release(struct kwb_leader *l)
{
    const char *kv[] = {"lease", l->name, NULL};
    struct lease_rec rec;
    char now_s[40];
    int rc;

    if (!l->cur) {
        return;
    }
    memset(&rec, 0, sizeof(rec));
    micro_time(now_s, sizeof(now_s));
    rec.duration_s = 1;
    snprintf(rec.acquire, sizeof(rec.acquire), "%s", now_s);
    snprintf(rec.renew, sizeof(rec.renew), "%s", now_s);
    rec.transitions = l->obs.transitions;
    /* Bounded: shutdown should not wait long for an unreachable server. */
    rc = put_lease(l, &rec,
                   l->renew_ms < RELEASE_MAX_MS ? l->renew_ms : RELEASE_MAX_MS,
                   mono_ms());
    if (rc == 1) {
        kwb_log_kv(KWB_LOG_INFO, MODULE, kv, "released the lease");
    } else {
        kwb_log_kv(KWB_LOG_WARN, MODULE, kv,
                   "could not release the lease; it expires by itself");
    }
}

static void *elector_main(void *arg)
{
    struct kwb_leader *l = arg;
    const char *kv[] = {"lease", l->name, "identity", l->identity, NULL};
    int64_t last_renew, pause;
    uint64_t one = 1;
    int rc;

    /* Campaign. */
    for (;;) {
        double jitter;

        if (is_stopping(l)) {
            goto out;
        }
        /* As for renewals below: the lease counts from before the
         * request that took it. */
        last_renew = mono_ms();
        rc = try_acquire_or_renew(l, l->renew_ms);
        if (rc == 1) {
            break;
        }
        if (rc == -ECANCELED) {
            goto out;
        }
        jitter = (double)rand_r(&l->seed) / RAND_MAX * (JITTER - 1.0);
        if (sleep_ms(l, (int64_t)((double)l->retry_ms * (1.0 + jitter)))) {
            goto out;
        }
    }
    set_state(l, ST_LEADER);
    kwb_log_kv(KWB_LOG_INFO, MODULE, kv, "became leader");

    /* Renew until stopped, or lost. After a failed attempt the next one
     * comes sooner (half the time left, at most a retry period), so one
     * lost request does not cost the lease. */
    pause = l->retry_ms;
    for (;;) {
        int64_t start, left;

        if (sleep_ms(l, pause)) {
            break;
        }
        start = mono_ms();
        left = last_renew + l->renew_ms - start;
        if (left <= 0) {
            rc = 0;
            goto lost;
        }
        rc = try_acquire_or_renew(l, left);
        if (rc == -ECANCELED) {
            break;
        }
        if (rc == 1) {
            /* Measured from before the request: the server may have
             * stored the record at any time after that. */
            last_renew = start;
            pause = l->retry_ms;
            continue;
        }
        if (rc == -EBUSY) {
            goto lost;
        }
        left = last_renew + l->renew_ms - mono_ms();
        if (left <= 0) {
            goto lost;
        }
        pause = left / 2 < l->retry_ms ? left / 2 : l->retry_ms;
        if (pause < MIN_PAUSE_MS) {
            pause = MIN_PAUSE_MS;
        }
    }
    /* Stopping while leader: give the lease back. */
    atomic_store(&l->abort_io, 0);
    set_state(l, ST_CAMPAIGN);
    release(l);
    goto out;
lost:
    set_state(l, ST_LOST);
    kwb_log_kv(KWB_LOG_ERROR, MODULE, kv, "lost leadership: %s",
               rc == -EBUSY ? "another replica holds the lease"
                            : "could not renew within the renew deadline");
    if (write(l->lost_fd, &one, sizeof(one)) != sizeof(one)) {
        kwb_log_kv(KWB_LOG_ERROR, MODULE, kv, "cannot signal lost fd");
    }
out:
    pthread_mutex_lock(&l->lock);
    if (l->state != ST_LOST) {
        l->state = ST_CAMPAIGN;
    }
    atomic_store(&l->leader, 0);
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

/* ---- public ------------------------------------------------------------- */

static void leader_free(struct kwb_leader *l)
{
    if (!l) {
        return;
    }
    kwb_kube_free(l->kube);
    cJSON_Delete(l->cur);
    if (l->lost_fd >= 0) {
        close(l->lost_fd);
    }
    free(l->url);
    free(l->collection_url);
    free(l->namespace_);
    free(l->name);
    free(l->identity);
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static char *default_identity(void)
{
    char host[256];
    unsigned char rnd[6];
    char *id;

    if (gethostname(host, sizeof(host)) != 0) {
        snprintf(host, sizeof(host), "kube-watch-bridge");
    }
    host[sizeof(host) - 1] = '\0';
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        uint64_t t = (uint64_t)mono_ms() ^ (uint64_t)getpid() << 20;
        memcpy(rnd, &t, sizeof(rnd));
    }
    if (asprintf(&id, "%s_%02x%02x%02x%02x%02x%02x", host, rnd[0], rnd[1],
                 rnd[2], rnd[3], rnd[4], rnd[5]) < 0) {
        return NULL;
    }
    return id;
}

int kwb_leader_start(const struct kwb_config *cfg, struct kwb_kube_auth *auth,
                     struct kwb_leader **out, char *errbuf, size_t errsize)
{
    struct kwb_leader *l = NULL;
    pthread_condattr_t ca;
    const char *ns;
    int lease_s, renew_s, retry_s;
    int rc = 0;

    *out = NULL;
    lease_s =
        cfg->lease_duration_s > 0 ? cfg->lease_duration_s : DEFAULT_LEASE_S;
    renew_s =
        cfg->renew_deadline_s > 0 ? cfg->renew_deadline_s : DEFAULT_RENEW_S;
    retry_s = cfg->retry_period_s > 0 ? cfg->retry_period_s : DEFAULT_RETRY_S;
    if (lease_s <= renew_s || renew_s <= retry_s) {
        return fail(errbuf, errsize, -EINVAL,
                    "leader_election: need lease_duration_seconds (%d) > "
                    "renew_deadline_seconds (%d) > retry_period_seconds (%d)",
                    lease_s, renew_s, retry_s);
    }
    l = calloc(1, sizeof(*l));
    if (!l) {
        return fail(errbuf, errsize, -ENOMEM, "out of memory");
    }
    l->lost_fd = -1;
    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cond, &ca);
    pthread_condattr_destroy(&ca);
    l->auth = auth;
    l->lease_s = lease_s;
    l->lease_ms = lease_s * 1000LL;
    l->renew_ms = renew_s * 1000LL;
    l->retry_ms = retry_s * 1000LL;

    ns = cfg->lease_namespace && *cfg->lease_namespace
             ? cfg->lease_namespace
             : kwb_kube_auth_namespace(auth);
    if (!ns || !*ns) {
        ns = "default";
    }
    l->namespace_ = strdup(ns);
    l->name =
        strdup(cfg->lease_name && *cfg->lease_name ? cfg->lease_name
                                                   : KWB_LEADER_DEFAULT_NAME);
    l->identity = cfg->identity && *cfg->identity ? strdup(cfg->identity)
                                                  : default_identity();
    if (!l->namespace_ || !l->name || !l->identity) {
        rc = fail(errbuf, errsize, -ENOMEM, "out of memory");
        goto out;
    }
    if (!dns_name_ok(l->namespace_) || !dns_name_ok(l->name)) {
        rc = fail(errbuf, errsize, -EINVAL,
                  "leader_election: lease namespace \"%s\" and name \"%s\" "
                  "must be DNS names (lower case, digits, '-', '.')",
                  l->namespace_, l->name);
        goto out;
    }
    if (strlen(l->identity) >= sizeof(l->obs.holder)) {
        rc = fail(errbuf, errsize, -EINVAL,
                  "leader_election: identity longer than %zu bytes",
                  sizeof(l->obs.holder) - 1);
        goto out;
    }
    if (asprintf(&l->collection_url,
                 "%s/apis/coordination.k8s.io/v1/namespaces/%s/leases",
                 kwb_kube_auth_server(auth), l->namespace_) < 0) {
        l->collection_url = NULL;
        rc = fail(errbuf, errsize, -ENOMEM, "out of memory");
        goto out;
    }
    if (asprintf(&l->url, "%s/%s", l->collection_url, l->name) < 0) {
        l->url = NULL;
        rc = fail(errbuf, errsize, -ENOMEM, "out of memory");
        goto out;
    }
    l->lost_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->lost_fd < 0) {
        rc = fail(errbuf, errsize, -errno, "eventfd: %s", strerror(errno));
        goto out;
    }
    l->kube = kwb_kube_new(auth, NULL);
    if (!l->kube) {
        rc = fail(errbuf, errsize, -ENOMEM, "curl_easy_init failed");
        goto out;
    }
    {
        unsigned char s[sizeof(l->seed)];
        if (getrandom(s, sizeof(s), 0) == (ssize_t)sizeof(s)) {
            memcpy(&l->seed, s, sizeof(s));
        } else {
            l->seed = (unsigned int)getpid() ^ (unsigned int)mono_ms();
        }
    }
    rc = pthread_create(&l->thread, NULL, elector_main, l);
    if (rc != 0) {
        rc = fail(errbuf, errsize, -rc, "pthread_create: %s", strerror(rc));
        goto out;
    }
    l->started = 1;
    {
        const char *kv[] = {"lease",    l->name,     "namespace", l->namespace_,
                            "identity", l->identity, NULL};
        kwb_log_kv(KWB_LOG_INFO, MODULE, kv,
                   "leader election started (lease %ds, renew %ds, retry "
                   "%ds)",
                   lease_s, renew_s, retry_s);
    }
    *out = l;
    l = NULL;
out:
    leader_free(l);
    return rc;
}

int kwb_leader_wait(struct kwb_leader *l, int timeout_ms)
{
    struct timespec ts;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (timeout_ms >= 0) {
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
    }
    pthread_mutex_lock(&l->lock);
    for (;;) {
        if (l->stopping || l->state == ST_LOST) {
            rc = -ECANCELED;
            break;
        }
        if (l->state == ST_LEADER) {
            rc = 1;
            break;
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&l->cond, &l->lock);
        } else if (pthread_cond_timedwait(&l->cond, &l->lock, &ts) ==
                   ETIMEDOUT) {
            rc = l->state == ST_LEADER ? 1 : 0;
            break;
        }
    }
    pthread_mutex_unlock(&l->lock);
    return rc;
}

int kwb_leader_is_leader(const struct kwb_leader *l)
{
    return atomic_load(&((struct kwb_leader *)l)->leader);
}

int kwb_leader_lost_fd(const struct kwb_leader *l)
{
    return l->lost_fd;
}

const char *kwb_leader_identity(const struct kwb_leader *l)
{
    return l->identity;
}

void kwb_leader_stop(struct kwb_leader *l)
{
    if (!l) {
        return;
    }
    pthread_mutex_lock(&l->lock);
    l->stopping = 1;
    atomic_store(&l->abort_io, 1);
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    if (l->started) {
        pthread_join(l->thread, NULL);
    }
    leader_free(l);
}
