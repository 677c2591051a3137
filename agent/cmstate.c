/*
 * cmstate.c - checkpoints in ConfigMaps; see cmstate.h.
 *
 * ConfigMap objects are built and read with cJSON (a cold path: at most one
 * write per watch and checkpoint interval). The text inside is exactly the
 * file backend's (kwb_checkpoint_format/parse), so an operator reads both
 * the same way and corruption is caught by the same SHA-256 trailer.
 */
#include "cmstate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "checkpoint.h"
#include "config.h"
#include "kube.h"
#include "kubeconfig.h"
#include "log.h"
#include "metrics.h"

#define MODULE             "checkpoint"
#define RESP_MAX           (8u * 1024 * 1024)
#define REQUEST_TIMEOUT_MS 10000L
#define READ_ATTEMPTS      5
#define BACKOFF_MIN_MS     1000
#define BACKOFF_MAX_MS     30000
#define LABEL_NAME         "app.kubernetes.io/name"
#define LABEL_COMPONENT    "app.kubernetes.io/component"
#define ANNOTATION_WATCH   "kube-watch-bridge/watch"

struct cm {
    char *id;    /* watch id */
    char *name;  /* ConfigMap name */
    char *where; /* "namespace/name" */
    char *url;   /* .../namespaces/NS/configmaps/NAME */
    char *rv;    /* metadata.resourceVersion last read or written */
    int omitted; /* the last write left the object set out */
};

struct kwb_cmstate {
    struct kwb_kube_auth *auth; /* borrowed */
    char *namespace_;
    char *collection_url; /* .../namespaces/NS/configmaps */
    long connect_timeout_ms;
    struct cm *cms;
    size_t n;
    struct kwb_kube *kube;
    /* After a failed write, writes wait (all ConfigMaps share one API
     * server) so the pipeline thread does not block on every interval. */
    int64_t retry_at_ms; /* kwb_now_ms() clock */
    int64_t backoff_ms;  /* 0 after a success */
};

/* ---- names -------------------------------------------------------------- */

int kwb_cmstate_name(const char *prefix, const char *watch_id, int hashed,
                     char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    char name[KWB_CMSTATE_NAME_MAX + 64];
    size_t j = 0, plen = strlen(prefix);
    unsigned char md[32];
    unsigned int mdlen = 0;

    if (!*prefix || !*watch_id) {
        return -EINVAL;
    }
    if (size < KWB_CMSTATE_NAME_MAX + 1) {
        return -ENAMETOOLONG;
    }
    /* Only the first NAME_MAX characters can survive; the rest forces
     * a hash. */
    if (plen > KWB_CMSTATE_NAME_MAX) {
        plen = KWB_CMSTATE_NAME_MAX;
        hashed = 1;
    }
    memcpy(name, prefix, plen);
    j = plen;
    name[j++] = '-';
    for (const char *p = watch_id; *p; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            c = '-';
        }
        if (c == '-' && name[j - 1] == '-') {
            continue;
        }
        if (j >= KWB_CMSTATE_NAME_MAX + 1) {
            hashed = 1; /* cut */
            break;
        }
        name[j++] = c;
    }
    while (j > 0 && (name[j - 1] == '-' || name[j - 1] == '.')) {
        j--;
    }
    if (j > KWB_CMSTATE_NAME_MAX) {
        hashed = 1;
    }
    if (hashed) {
        size_t keep = KWB_CMSTATE_NAME_MAX - 1 - KWB_CMSTATE_HASH_HEX;
        if (j > keep) {
            j = keep;
        }
        while (j > 0 && (name[j - 1] == '-' || name[j - 1] == '.')) {
            j--;
        }
        EVP_Digest(watch_id, strlen(watch_id), md, &mdlen, EVP_sha256(), NULL);
        name[j++] = '-';
        for (unsigned i = 0; i < KWB_CMSTATE_HASH_HEX; i++) {
            name[j++] = hex[(md[i / 2] >> ((i % 2) ? 0 : 4)) & 15];
        }
    }
    memcpy(out, name, j);
    out[j] = '\0';
    return hashed;
}

/* ---- HTTP --------------------------------------------------------------- */

/*
 * One request. Returns the HTTP status, or a negative errno with errbuf
 * (-ETIMEDOUT, -EIO, -ENOMEM). The body lands in *r (caller resets it).
 */
static int http_do(struct kwb_cmstate *cs, const char *method, const char *url,
                   const char *body, struct kwb_kube_resp *r, char *errbuf,
                   size_t errsize)
{
    struct kwb_kube_req req = {.method = method,
                               .url = url,
                               .body = body,
                               .agent = "checkpoint",
                               .timeout_ms = REQUEST_TIMEOUT_MS,
                               .connect_timeout_ms = cs->connect_timeout_ms,
                               .max_body = RESP_MAX};

    return kwb_kube_request(cs->kube, &req, r, errbuf, errsize);
}

/* A non-2xx answer as a negative errno with a message naming the
 * ConfigMap and the Status message. */
static int http_error(struct kwb_cmstate *cs, const struct cm *c,
                      const char *method, int code,
                      const struct kwb_kube_resp *r, char *errbuf,
                      size_t errsize)
{
    cJSON *j = r->body ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    const char *msg = cJSON_IsString(m) ? m->valuestring : "(no message)";
    int rc = -EPROTO;

    if (code == 401 || code == 403) {
        if (code == 401) {
            kwb_kube_auth_invalidate(cs->auth);
        }
        rc = -EACCES;
        snprintf(errbuf, errsize,
                 "%s configmap %s: HTTP %d: %s (the service account needs "
                 "get, create and update on configmaps in namespace %s)",
                 method, c->where, code, msg, cs->namespace_);
    } else {
        if (code == 429 || code >= 500) {
            rc = -EAGAIN;
        }
        snprintf(errbuf, errsize, "%s configmap %s: HTTP %d: %s", method,
                 c->where, code, msg);
    }
    cJSON_Delete(j);
    return rc;
}

/* Remember metadata.resourceVersion of a ConfigMap answer. 0, -EPROTO
 * when the answer is not a ConfigMap, -ENOMEM. */
static int take_rv(struct cm *c, const cJSON *obj)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const cJSON *rv = cJSON_GetObjectItemCaseSensitive(md, "resourceVersion");
    char *dup;

    if (!cJSON_IsString(rv) || !rv->valuestring[0]) {
        return -EPROTO;
    }
    dup = strdup(rv->valuestring);
    if (!dup) {
        return -ENOMEM;
    }
    free(c->rv);
    c->rv = dup;
    return 0;
}

static struct cm *find(const struct kwb_cmstate *cs, const char *watch_id)
{
    for (size_t i = 0; i < cs->n; i++) {
        if (strcmp(cs->cms[i].id, watch_id) == 0) {
            return &cs->cms[i];
        }
    }
    return NULL;
}

/* ---- public ------------------------------------------------------------- */

void kwb_cmstate_free(struct kwb_cmstate *cs)
{
    if (!cs) {
        return;
    }
    for (size_t i = 0; i < cs->n; i++) {
        free(cs->cms[i].id);
        free(cs->cms[i].name);
        free(cs->cms[i].where);
        free(cs->cms[i].url);
        free(cs->cms[i].rv);
    }
    free(cs->cms);
    free(cs->namespace_);
    free(cs->collection_url);
    kwb_kube_free(cs->kube);
    free(cs);
}

int kwb_cmstate_new(const struct kwb_config *cfg, struct kwb_kube_auth *auth,
                    struct kwb_cmstate **out, char *errbuf, size_t errsize)
{
    struct kwb_cmstate *cs = calloc(1, sizeof(*cs));
    const char *prefix = cfg->state_configmap_name_prefix
                             ? cfg->state_configmap_name_prefix
                             : "kube-watch-bridge";
    const char *ns =
        cfg->state_configmap_namespace && *cfg->state_configmap_namespace
            ? cfg->state_configmap_namespace
            : "default";
    char name[KWB_CMSTATE_NAME_MAX + 1];
    int rc = -ENOMEM;

    *out = NULL;
    if (!cs) {
        snprintf(errbuf, errsize, "out of memory");
        return -ENOMEM;
    }
    cs->auth = auth;
    cs->connect_timeout_ms =
        cfg->connect_timeout_s > 0 &&
                cfg->connect_timeout_s * 1000L < REQUEST_TIMEOUT_MS
            ? (long)cfg->connect_timeout_s * 1000L
            : REQUEST_TIMEOUT_MS;
    cs->namespace_ = strdup(ns);
    cs->cms = calloc(cfg->n_watches ? cfg->n_watches : 1, sizeof(*cs->cms));
    cs->kube = kwb_kube_new(auth, NULL);
    if (!cs->namespace_ || !cs->cms || !cs->kube ||
        asprintf(&cs->collection_url, "%s/api/v1/namespaces/%s/configmaps",
                 kwb_kube_auth_server(auth), ns) < 0) {
        cs->collection_url = NULL;
        snprintf(errbuf, errsize, "out of memory");
        goto out;
    }
    cs->n = cfg->n_watches;
    for (size_t i = 0; i < cs->n; i++) {
        struct cm *c = &cs->cms[i];
        int hashed = 0;
        /* Hash-suffix a name that another watch's plain name shares. */
        for (size_t k = 0; k < cs->n && !hashed; k++) {
            char other[KWB_CMSTATE_NAME_MAX + 1];
            if (k == i) {
                continue;
            }
            if (kwb_cmstate_name(prefix, cfg->watches[i].id, 0, name,
                                 sizeof(name)) == 0 &&
                kwb_cmstate_name(prefix, cfg->watches[k].id, 0, other,
                                 sizeof(other)) >= 0 &&
                strcmp(name, other) == 0) {
                hashed = 1;
            }
        }
        rc = kwb_cmstate_name(prefix, cfg->watches[i].id, hashed, name,
                              sizeof(name));
        if (rc < 0) {
            snprintf(errbuf, errsize,
                     "state: no ConfigMap name for watch %s (prefix %s)",
                     cfg->watches[i].id, prefix);
            goto out;
        }
        rc = -ENOMEM;
        c->id = strdup(cfg->watches[i].id);
        c->name = strdup(name);
        if (!c->id || !c->name || asprintf(&c->where, "%s/%s", ns, name) < 0) {
            c->where = NULL;
            snprintf(errbuf, errsize, "out of memory");
            goto out;
        }
        if (asprintf(&c->url, "%s/%s", cs->collection_url, name) < 0) {
            c->url = NULL;
            snprintf(errbuf, errsize, "out of memory");
            goto out;
        }
        {
            const char *kv[] = {"watch", c->id, NULL};
            kwb_log_kv(KWB_LOG_INFO, MODULE, kv, "checkpoint in configmap %s",
                       c->where);
        }
    }
    *out = cs;
    cs = NULL;
    rc = 0;
out:
    kwb_cmstate_free(cs);
    return rc;
}

const char *kwb_cmstate_where(const struct kwb_cmstate *cs,
                              const char *watch_id)
{
    const struct cm *c = find(cs, watch_id);

    return c ? c->where : NULL;
}

/* The ConfigMap as JSON text; NULL on ENOMEM. */
static char *cm_body(const struct kwb_cmstate *cs, const struct cm *c,
                     const char *text, int omitted, int with_rv)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *md = cJSON_AddObjectToObject(o, "metadata");
    cJSON *labels = cJSON_AddObjectToObject(md, "labels");
    cJSON *ann = cJSON_AddObjectToObject(md, "annotations");
    cJSON *data = cJSON_AddObjectToObject(o, "data");
    char *body = NULL;

    if (!o || !md || !labels || !ann || !data ||
        !cJSON_AddStringToObject(o, "apiVersion", "v1") ||
        !cJSON_AddStringToObject(o, "kind", "ConfigMap") ||
        !cJSON_AddStringToObject(md, "name", c->name) ||
        !cJSON_AddStringToObject(md, "namespace", cs->namespace_) ||
        (with_rv && c->rv &&
         !cJSON_AddStringToObject(md, "resourceVersion", c->rv)) ||
        !cJSON_AddStringToObject(labels, LABEL_NAME, "kube-watch-bridge") ||
        !cJSON_AddStringToObject(labels, LABEL_COMPONENT, "checkpoint") ||
        !cJSON_AddStringToObject(ann, ANNOTATION_WATCH, c->id) ||
        !cJSON_AddStringToObject(data, "checkpoint", text) ||
        !cJSON_AddStringToObject(data, "objects",
                                 omitted ? "omitted" : "included")) {
        goto out;
    }
    body = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(o);
    return body;
}

/*
 * GET the ConfigMap: 0 with *obj (caller deletes) and the RV remembered,
 * -ENOENT (RV forgotten), or a negative errno with errbuf (-EAGAIN for
 * answers worth retrying).
 */
static int cm_get(struct kwb_cmstate *cs, struct cm *c, cJSON **obj,
                  char *errbuf, size_t errsize)
{
    struct kwb_kube_resp r = {0};
    int code, rc;

    *obj = NULL;
    code = http_do(cs, "GET", c->url, NULL, &r, errbuf, errsize);
    if (code < 0) {
        rc = code == -ENOMEM ? code : -EAGAIN;
        goto out;
    }
    if (code == 404) {
        free(c->rv);
        c->rv = NULL;
        rc = -ENOENT;
        goto out;
    }
    if (code != 200) {
        rc = http_error(cs, c, "GET", code, &r, errbuf, errsize);
        goto out;
    }
    *obj = cJSON_ParseWithLength(r.body, r.body_len);
    if (!cJSON_IsObject(*obj) || take_rv(c, *obj) < 0) {
        cJSON_Delete(*obj);
        *obj = NULL;
        rc = -EPROTO;
        snprintf(errbuf, errsize,
                 "GET configmap %s: answer is not a "
                 "ConfigMap",
                 c->where);
        goto out;
    }
    rc = 0;
out:
    kwb_kube_resp_reset(&r);
    return rc;
}

int kwb_cmstate_write(struct kwb_cmstate *cs, const char *watch_id,
                      const char *rv, const struct kwb_store *s, char *errbuf,
                      size_t errsize)
{
    struct cm *c = find(cs, watch_id);
    const char *kv[] = {"watch", watch_id, NULL};
    char *text = NULL, *body = NULL;
    size_t len = 0;
    struct kwb_kube_resp r = {0};
    int omitted = 0, conflicts = 0;
    int rc, code;

    if (!c) {
        snprintf(errbuf, errsize, "no ConfigMap for watch %s", watch_id);
        return -EINVAL;
    }
    if (cs->backoff_ms && kwb_now_ms() < cs->retry_at_ms) {
        snprintf(errbuf, errsize, "configmap %s: waiting after a failed write",
                 c->where);
        return -EAGAIN;
    }
    rc = kwb_checkpoint_format(watch_id, rv, s, &text, &len);
    if (rc == 0 && len > KWB_CMSTATE_MAX_TEXT) {
        /* Too large for a ConfigMap: keep only the resourceVersion. */
        free(text);
        text = NULL;
        omitted = 1;
        rc = kwb_checkpoint_format(watch_id, rv, NULL, &text, &len);
    }
    if (rc < 0) {
        snprintf(errbuf, errsize, "out of memory");
        goto out;
    }
    if (omitted != c->omitted) {
        if (omitted) {
            kwb_log_kv(KWB_LOG_WARN, MODULE, kv,
                       "checkpoint of %zu objects exceeds %u bytes: "
                       "configmap %s keeps the resourceVersion only (after "
                       "a restart whose resourceVersion expired, every "
                       "object is emitted again and deletions during the "
                       "downtime are missed)",
                       kwb_store_count(s), KWB_CMSTATE_MAX_TEXT, c->where);
        } else {
            kwb_log_kv(KWB_LOG_INFO, MODULE, kv,
                       "checkpoint fits configmap %s again (%zu known "
                       "objects)",
                       c->where, kwb_store_count(s));
        }
    }
    for (;;) {
        cJSON *obj = NULL;
        int create = c->rv == NULL;

        free(body);
        body = cm_body(cs, c, text, omitted, !create);
        if (!body) {
            rc = -ENOMEM;
            snprintf(errbuf, errsize, "out of memory");
            goto out;
        }
        code = http_do(cs, create ? "POST" : "PUT",
                       create ? cs->collection_url : c->url, body, &r, errbuf,
                       errsize);
        if (code < 0) {
            rc = code == -ENOMEM ? code : -EIO;
            goto out;
        }
        if (code == 200 || code == 201) {
            obj = cJSON_ParseWithLength(r.body, r.body_len);
            rc = take_rv(c, obj);
            cJSON_Delete(obj);
            if (rc < 0) {
                /* Written, but its version is unknown: ask next time. */
                free(c->rv);
                c->rv = NULL;
            }
            if (create) {
                kwb_log_kv(KWB_LOG_INFO, MODULE, kv,
                           "created checkpoint configmap %s", c->where);
            }
            c->omitted = omitted;
            rc = 0;
            goto out;
        }
        if (code == 404 && !create) {
            /* Deleted behind our back: create it again. */
            free(c->rv);
            c->rv = NULL;
            continue;
        }
        if (code == 409 && conflicts++ == 0) {
            /* Changed since we last saw it (PUT), or it exists already
             * (POST): read the current version and retry once. */
            kwb_log_kv(KWB_LOG_WARN, MODULE, kv,
                       "configmap %s was %s by someone else; retrying "
                       "once with its current version",
                       c->where, create ? "created" : "changed");
            rc = cm_get(cs, c, &obj, errbuf, errsize);
            cJSON_Delete(obj);
            if (rc < 0 && rc != -ENOENT) {
                rc = rc == -EAGAIN ? -EIO : rc;
                goto out;
            }
            continue;
        }
        if (code == 409) {
            rc = -EBUSY;
            snprintf(errbuf, errsize,
                     "%s configmap %s: conflict again after re-reading it",
                     create ? "POST" : "PUT", c->where);
            goto out;
        }
        rc = http_error(cs, c, create ? "POST" : "PUT", code, &r, errbuf,
                        errsize);
        if (rc == -EAGAIN) {
            rc = -EIO;
        }
        goto out;
    }
out:
    if (rc == 0) {
        cs->backoff_ms = 0;
    } else if (rc != -ENOMEM) {
        cs->backoff_ms = cs->backoff_ms ? cs->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (cs->backoff_ms > BACKOFF_MAX_MS) {
            cs->backoff_ms = BACKOFF_MAX_MS;
        }
        cs->retry_at_ms = kwb_now_ms() + cs->backoff_ms;
    }
    kwb_kube_resp_reset(&r);
    free(body);
    free(text);
    return rc;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

int kwb_cmstate_read(struct kwb_cmstate *cs, const char *watch_id, char **rv,
                     struct kwb_store **s, int *omitted, char *errbuf,
                     size_t errsize)
{
    struct cm *c = find(cs, watch_id);
    const char *kv[] = {"watch", watch_id, NULL};
    cJSON *obj = NULL;
    const cJSON *data, *text, *objects;
    char *buf = NULL;
    char where[600];
    size_t len;
    long delay = 500;
    int rc;

    *rv = NULL;
    *s = NULL;
    *omitted = 0;
    if (!c) {
        snprintf(errbuf, errsize, "no ConfigMap for watch %s", watch_id);
        return -EINVAL;
    }
    for (int attempt = 1;; attempt++) {
        rc = cm_get(cs, c, &obj, errbuf, errsize);
        if (rc != -EAGAIN || attempt == READ_ATTEMPTS) {
            break;
        }
        kwb_log_kv(KWB_LOG_WARN, MODULE, kv,
                   "cannot read checkpoint (attempt %d of %d): %s", attempt,
                   READ_ATTEMPTS, errbuf);
        pause_ms(delay);
        delay *= 2;
    }
    if (rc == -EAGAIN) {
        rc = -EIO;
    }
    if (rc < 0) {
        goto out;
    }
    snprintf(where, sizeof(where), "configmap %s", c->where);
    data = cJSON_GetObjectItemCaseSensitive(obj, "data");
    text = cJSON_GetObjectItemCaseSensitive(data, "checkpoint");
    objects = cJSON_GetObjectItemCaseSensitive(data, "objects");
    if (!cJSON_IsString(text)) {
        rc = -EBADMSG;
        snprintf(errbuf, errsize, "%s: no data.checkpoint", where);
        goto out;
    }
    len = strlen(text->valuestring);
    buf = malloc(len + 1);
    if (!buf) {
        rc = -ENOMEM;
        snprintf(errbuf, errsize, "out of memory");
        goto out;
    }
    memcpy(buf, text->valuestring, len + 1);
    rc =
        kwb_checkpoint_parse(buf, len, where, watch_id, rv, s, errbuf, errsize);
    if (rc < 0) {
        goto out;
    }
    if (cJSON_IsString(objects) &&
        strcmp(objects->valuestring, "omitted") == 0) {
        *omitted = 1;
        c->omitted = 1;
        if (kwb_store_count(*s) != 0) {
            rc = -EBADMSG;
            snprintf(errbuf, errsize, "%s: objects \"omitted\" but %zu entries",
                     where, kwb_store_count(*s));
        }
    } else if (!cJSON_IsString(objects) ||
               strcmp(objects->valuestring, "included") != 0) {
        rc = -EBADMSG;
        snprintf(errbuf, errsize,
                 "%s: data.objects must be \"included\" or \"omitted\"", where);
    }
out:
    if (rc < 0) {
        free(*rv);
        *rv = NULL;
        kwb_store_free(*s);
        *s = NULL;
        *omitted = 0;
    }
    free(buf);
    cJSON_Delete(obj);
    return rc;
}
