/*
 * event.c - build SPEC events into batches; Secret redaction. See event.h.
 */
#include "event.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "log.h"

const char *const kwb_ev_type_names[KWB_EV_TYPES] = {"ADDED", "MODIFIED",
                                                     "DELETED"};
static const char *const origin_names[KWB_ORIGINS] = {"watch", "list"};

/* Longest uid/rv/name/namespace/kind/apiVersion we accept (Kubernetes
 * limits are 253 and below). */
#define FIELD_MAX 512

int kwb_event_ctx_init(struct kwb_event_ctx *ctx, const char *cluster,
                       const char *resource, const char *api_version,
                       int trim_managed_fields, const unsigned char *hash_key,
                       size_t hash_key_len)
{
    char esc[1024];
    size_t pos = 0;

    memset(ctx, 0, sizeof(*ctx));
    kwb_json_escape_append(esc, sizeof(esc), &pos, cluster);
    ctx->cluster_esc = strdup(esc);
    ctx->resource = strdup(resource);
    ctx->api_version = strdup(api_version);
    ctx->trim_managed_fields = trim_managed_fields;
    if (hash_key && hash_key_len) {
        ctx->hash_key = malloc(hash_key_len);
        if (ctx->hash_key) {
            memcpy(ctx->hash_key, hash_key, hash_key_len);
            ctx->hash_key_len = hash_key_len;
        }
    }
    if (!ctx->cluster_esc || !ctx->resource || !ctx->api_version ||
        (hash_key_len && !ctx->hash_key)) {
        kwb_event_ctx_free(ctx);
        return -ENOMEM;
    }
    return 0;
}

void kwb_event_ctx_free(struct kwb_event_ctx *ctx)
{
    if (!ctx) {
        return;
    }
    free(ctx->cluster_esc);
    free(ctx->resource);
    free(ctx->api_version);
    free(ctx->kind);
    for (size_t i = 0; i < ctx->n_redact_paths; i++) {
        free(ctx->redact_paths[i]);
    }
    free(ctx->redact_paths);
    if (ctx->hash_key) {
        OPENSSL_cleanse(ctx->hash_key, ctx->hash_key_len);
        free(ctx->hash_key);
    }
    memset(ctx, 0, sizeof(*ctx));
}

int kwb_event_ctx_set_redact_paths(struct kwb_event_ctx *ctx, const char *csv)
{
    const char *p = csv;

    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (*p == ' ')) {
            p++;
            len--;
        }
        while (len && p[len - 1] == ' ') {
            len--;
        }
        if (len) {
            char **n = realloc(ctx->redact_paths,
                               (ctx->n_redact_paths + 1) * sizeof(*n));
            if (!n) {
                return -ENOMEM;
            }
            ctx->redact_paths = n;
            n[ctx->n_redact_paths] = strndup(p, len);
            if (!n[ctx->n_redact_paths]) {
                return -ENOMEM;
            }
            ctx->n_redact_paths++;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* Replace the value at `path` (dot-separated, from `node`) by
 * "redacted"; arrays apply the rest of the path to every element. */
static int redact_path(cJSON *node, const char *path)
{
    const char *dot = strchr(path, '.');
    size_t len = dot ? (size_t)(dot - path) : strlen(path);
    char key[256];
    cJSON *child, *el;

    if (cJSON_IsArray(node)) {
        cJSON_ArrayForEach(el, node)
        {
            if (redact_path(el, path) < 0) {
                return -ENOMEM;
            }
        }
        return 0;
    }
    if (!cJSON_IsObject(node) || len == 0 || len >= sizeof(key)) {
        return 0;
    }
    memcpy(key, path, len);
    key[len] = '\0';
    /* Every member of that name: a duplicate key must not slip through. */
    cJSON_ArrayForEach(child, node)
    {
        if (!child->string || strcmp(child->string, key) != 0) {
            continue;
        }
        if (dot) {
            if (redact_path(child, dot + 1) < 0) {
                return -ENOMEM;
            }
            continue;
        }
        cJSON *nv = cJSON_CreateString("redacted");
        if (!nv) {
            return -ENOMEM;
        }
        nv->string = child->string; /* the key moves to the new value */
        nv->type |= child->type & cJSON_StringIsConst;
        child->string = NULL;
        cJSON_ReplaceItemViaPointer(node, child, nv);
        child = nv;
    }
    return 0;
}

int kwb_event_ctx_set_list_kind(struct kwb_event_ctx *ctx, const char *kind,
                                size_t len)
{
    if (ctx->kind || len <= 4 || memcmp(kind + len - 4, "List", 4) != 0) {
        return 0;
    }
    ctx->kind = strndup(kind, len - 4);
    return ctx->kind ? 0 : -ENOMEM;
}

int kwb_event_span_str(const struct kwb_jspan *s, char *out, size_t size)
{
    if (!s->p) {
        out[0] = '\0';
        return 0;
    }
    if (!s->esc) {
        if (s->len >= size) {
            return -1;
        }
        memcpy(out, s->p, s->len);
        out[s->len] = '\0';
        return 0;
    }
    return kwb_jscan_unescape(s, out, size) < 0 ? -1 : 0;
}

/* "2026-11-22T15:04:05.123Z": the seconds part is cached per thread. */
static size_t format_observed(char out[32])
{
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char cached[24];
    struct timespec now;
    struct tm tm;
    unsigned ms;

    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec != cached_sec) {
        gmtime_r(&now.tv_sec, &tm);
        strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S.", &tm);
        cached_sec = now.tv_sec;
    }
    ms = (unsigned)(now.tv_nsec / 1000000);
    memcpy(out, cached, 20);
    out[20] = (char)('0' + ms / 100);
    out[21] = (char)('0' + ms / 10 % 10);
    out[22] = (char)('0' + ms % 10);
    out[23] = 'Z';
    out[24] = '\0';
    return 24;
}

void kwb_event_ctx_stamp(struct kwb_event_ctx *ctx)
{
    ctx->observed_len = format_observed(ctx->observed);
}

void kwb_event_ctx_unstamp(struct kwb_event_ctx *ctx)
{
    ctx->observed_len = 0;
    ctx->observed[0] = '\0';
}

static char *put(char *w, const char *s, size_t n)
{
    memcpy(w, s, n);
    return w + n;
}

#define PUT_LIT(w, lit) ((w) = put((w), (lit), sizeof(lit) - 1))

/* An escaped string value: raw span bytes are already valid JSON string
 * content; fallback strings are escaped here. */
struct strval {
    const char *p;
    size_t len;
};

/* Decode base64 (standard alphabet, padding optional). -1 on bad input. */
static long b64_decode(const char *in, size_t len, unsigned char *out)
{
    unsigned acc = 0;
    int bits = 0;
    long n = 0;

    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i], v;
        if (c >= 'A' && c <= 'Z') {
            v = c - 'A';
        } else if (c >= 'a' && c <= 'z') {
            v = c - 'a' + 26;
        } else if (c >= '0' && c <= '9') {
            v = c - '0' + 52;
        } else if (c == '+') {
            v = 62;
        } else if (c == '/') {
            v = 63;
        } else if (c == '=') {
            break;
        } else {
            return -1;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return n;
}

static int redact_values(const struct kwb_event_ctx *ctx, cJSON *map,
                         int base64)
{
    cJSON *v;

    if (!cJSON_IsObject(map)) {
        return 0;
    }
    cJSON_ArrayForEach(v, map)
    {
        char repl[16 + 64 + 1] = "redacted";
        cJSON *nv;

        if (ctx->hash_key) {
            const char *s = cJSON_IsString(v) ? v->valuestring : "";
            size_t slen = strlen(s);
            unsigned char *dec = malloc(slen + 1);
            unsigned char mac[EVP_MAX_MD_SIZE];
            unsigned int maclen = 0;
            long dlen = (long)slen;

            if (!dec) {
                return -ENOMEM;
            }
            if (base64) {
                dlen = b64_decode(s, slen, dec);
                if (dlen < 0) { /* not base64: hash the raw text */
                    memcpy(dec, s, slen);
                    dlen = (long)slen;
                }
            } else {
                memcpy(dec, s, slen);
            }
            if (!HMAC(EVP_sha256(), ctx->hash_key, (int)ctx->hash_key_len, dec,
                      (size_t)dlen, mac, &maclen)) {
                OPENSSL_cleanse(dec, slen + 1);
                free(dec);
                return -EIO;
            }
            OPENSSL_cleanse(dec, slen + 1);
            free(dec);
            memcpy(repl, "hmac-sha256:", 12);
            for (unsigned i = 0; i < maclen && i < 32; i++) {
                snprintf(repl + 12 + 2 * i, 3, "%02x", mac[i]);
            }
        }
        nv = cJSON_CreateString(repl);
        if (!nv) {
            return -ENOMEM;
        }
        /* Replacing via pointer does not carry the key over: move it, or
         * every key would print as "". */
        nv->string = v->string;
        nv->type |= v->type & cJSON_StringIsConst;
        v->string = NULL;
        if (!cJSON_ReplaceItemViaPointer(map, v, nv)) {
            v->string = nv->string;
            nv->string = NULL;
            cJSON_Delete(nv);
            return -ENOMEM;
        }
        v = nv;
    }
    return 0;
}

char *kwb_event_rewrite(const struct kwb_event_ctx *ctx, const char *obj,
                        size_t len, int redact, char *errbuf, size_t errsize)
{
    cJSON *root = cJSON_ParseWithLength(obj, len);
    char *out = NULL;
    int rc;

    if (!cJSON_IsObject(root)) {
        snprintf(errbuf, errsize, "object is not valid JSON");
        goto out;
    }
    if (redact) {
        cJSON *m;

        /* Every member named data or stringData: a duplicate key must not
         * carry values past the first one (readers differ on which
         * duplicate wins). One that is not an object (a malformed Secret)
         * is replaced as a whole. */
        rc = 0;
        cJSON_ArrayForEach(m, root)
        {
            int is_data = m->string && strcmp(m->string, "data") == 0;

            if (!is_data &&
                !(m->string && strcmp(m->string, "stringData") == 0)) {
                continue;
            }
            if (cJSON_IsObject(m)) {
                rc = redact_values(ctx, m, is_data);
            } else if (!cJSON_IsNull(m)) {
                cJSON *nv = cJSON_CreateString("redacted");
                if (!nv) {
                    rc = -ENOMEM;
                } else {
                    nv->string = m->string;
                    nv->type |= m->type & cJSON_StringIsConst;
                    m->string = NULL;
                    cJSON_ReplaceItemViaPointer(root, m, nv);
                    m = nv;
                }
            }
            if (rc < 0) {
                break;
            }
        }
        if (rc < 0) {
            snprintf(errbuf, errsize, "cannot redact secret: %s",
                     strerror(-rc));
            goto out;
        }
    }
    for (size_t i = 0; i < ctx->n_redact_paths; i++) {
        if (redact_path(root, ctx->redact_paths[i]) < 0) {
            snprintf(errbuf, errsize, "out of memory redacting a path");
            goto out;
        }
    }
    if (ctx->trim_managed_fields) {
        cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "metadata");
        if (cJSON_IsObject(md)) {
            cJSON_DeleteItemFromObjectCaseSensitive(md, "managedFields");
        }
    }
    if (!cJSON_GetObjectItemCaseSensitive(root, "kind") && ctx->kind) {
        cJSON_AddStringToObject(root, "kind", ctx->kind);
    }
    if (!cJSON_GetObjectItemCaseSensitive(root, "apiVersion")) {
        cJSON_AddStringToObject(root, "apiVersion", ctx->api_version);
    }
    out = cJSON_PrintUnformatted(root);
    if (!out) {
        snprintf(errbuf, errsize, "out of memory printing object");
    }
out:
    cJSON_Delete(root);
    return out;
}

struct fields {
    char uid[FIELD_MAX], rv[FIELD_MAX], name[FIELD_MAX], ns[FIELD_MAX];
    char kind[FIELD_MAX], apiv[FIELD_MAX];
};

static int add_strings(struct kwb_batch *b, struct kwb_item *it,
                       const struct fields *f)
{
    it->uid = kwb_batch_str(b, f->uid, strlen(f->uid));
    it->rv = kwb_batch_str(b, f->rv, strlen(f->rv));
    it->name = kwb_batch_str(b, f->name, strlen(f->name));
    it->ns = kwb_batch_str(b, f->ns, strlen(f->ns));
    it->kind = kwb_batch_str(b, f->kind, strlen(f->kind));
    it->api_version = kwb_batch_str(b, f->apiv, strlen(f->apiv));
    if (it->uid == KWB_NO_OFF || it->rv == KWB_NO_OFF ||
        it->name == KWB_NO_OFF || it->ns == KWB_NO_OFF ||
        it->kind == KWB_NO_OFF || it->api_version == KWB_NO_OFF) {
        return -ENOMEM;
    }
    return 0;
}

/*
 * Write the envelope and object into b->json. The envelope's string
 * values come as escaped JSON string content.
 */
static int write_event(struct kwb_batch *b, struct kwb_item *it,
                       const struct kwb_event_ctx *ctx, enum kwb_ev_type type,
                       enum kwb_origin origin, struct strval apiv,
                       struct strval kind, struct strval ns, struct strval name,
                       struct strval uid, struct strval rv, const char *obj,
                       size_t obj_len, struct strval inject)
{
    char now[32];
    const char *observed = ctx->observed;
    size_t olen = ctx->observed_len;

    if (olen == 0) {
        olen = format_observed(now);
        observed = now;
    }
    size_t clen = strlen(ctx->cluster_esc), rlen = strlen(ctx->resource);
    size_t need = 200 + clen + rlen + apiv.len + kind.len + ns.len + name.len +
                  uid.len + rv.len + olen + obj_len + inject.len;
    size_t start = b->json_len;
    char *w0, *w;

    if (need > UINT32_MAX - b->json_len) {
        return -E2BIG;
    }
    w0 = w = kwb_batch_json_reserve(b, need);
    if (!w) {
        return -ENOMEM;
    }
    PUT_LIT(w, "{\"type\":\"");
    w = put(w, kwb_ev_type_names[type], strlen(kwb_ev_type_names[type]));
    PUT_LIT(w, "\",\"cluster\":\"");
    w = put(w, ctx->cluster_esc, clen);
    PUT_LIT(w, "\",\"apiVersion\":\"");
    w = put(w, apiv.p, apiv.len);
    PUT_LIT(w, "\",\"kind\":\"");
    w = put(w, kind.p, kind.len);
    PUT_LIT(w, "\",\"resource\":\"");
    w = put(w, ctx->resource, rlen);
    PUT_LIT(w, "\",\"namespace\":\"");
    w = put(w, ns.p, ns.len);
    PUT_LIT(w, "\",\"name\":\"");
    w = put(w, name.p, name.len);
    PUT_LIT(w, "\",\"uid\":\"");
    w = put(w, uid.p, uid.len);
    PUT_LIT(w, "\",\"resourceVersion\":\"");
    w = put(w, rv.p, rv.len);
    PUT_LIT(w, "\",\"origin\":\"");
    w = put(w, origin_names[origin], strlen(origin_names[origin]));
    PUT_LIT(w, "\",\"observedAt\":\"");
    w = put(w, observed, olen);
    PUT_LIT(w, "\",\"object\":");
    if (inject.len) {
        /* '{' + injected members + the rest of the object after '{' */
        *w++ = '{';
        w = put(w, inject.p, inject.len);
        size_t rest = obj_len - 1;
        const char *r = obj + 1;
        /* An empty object "{}" needs no separating comma. */
        while (rest && (*r == ' ' || *r == '\t' || *r == '\n' || *r == '\r')) {
            r++;
            rest--;
        }
        if (rest && *r != '}') {
            *w++ = ',';
        }
        w = put(w, r, rest);
    } else {
        w = put(w, obj, obj_len);
    }
    *w++ = '}';
    *w++ = '\n';
    it->json_off = (uint32_t)start;
    it->json_len = (uint32_t)((size_t)(w - w0) - 1);
    b->json_len = start + (size_t)(w - w0);
    return 0;
}

static struct strval span_val(const struct kwb_jspan *s)
{
    struct strval v = {s->p ? s->p : "", s->p ? s->len : 0};
    return v;
}

static struct strval cstr_val(const char *s)
{
    struct strval v = {s, strlen(s)};
    return v;
}

int kwb_event_append(struct kwb_batch *b, const struct kwb_event_ctx *ctx,
                     enum kwb_ev_type type, enum kwb_origin origin,
                     const struct kwb_jobj *obj, const char *resume_rv,
                     char *errbuf, size_t errsize)
{
    struct fields *f = NULL;
    struct kwb_item *it;
    char *rewritten = NULL;
    char inject[FIELD_MAX * 3];
    struct strval apiv, kind, injv = {"", 0};
    int redact, rc = -EINVAL;
    size_t saved_json = b->json_len, saved_str = b->str_len;
    size_t saved_items = b->n_items;

    /* Per-event fields live on the heap only on this cold-ish path;
     * the struct is large, keep it off small thread stacks. */
    static _Thread_local struct fields tf;
    f = &tf;
    if (!obj->uid.p || !obj->uid.len || !obj->name.p ||
        !obj->resource_version.p || !obj->resource_version.len) {
        snprintf(errbuf, errsize, "object lacks metadata.%s",
                 !obj->uid.p || !obj->uid.len
                     ? "uid"
                     : (!obj->name.p ? "name" : "resourceVersion"));
        return -EINVAL;
    }
    if (kwb_event_span_str(&obj->uid, f->uid, sizeof(f->uid)) < 0 ||
        kwb_event_span_str(&obj->resource_version, f->rv, sizeof(f->rv)) < 0 ||
        kwb_event_span_str(&obj->name, f->name, sizeof(f->name)) < 0 ||
        kwb_event_span_str(&obj->namespace_, f->ns, sizeof(f->ns)) < 0 ||
        kwb_event_span_str(&obj->kind, f->kind, sizeof(f->kind)) < 0 ||
        kwb_event_span_str(&obj->api_version, f->apiv, sizeof(f->apiv)) < 0) {
        snprintf(errbuf, errsize, "object metadata field too long");
        return -EINVAL;
    }
    /* Objects of a list carry no kind/apiVersion: take the watch's. */
    if (obj->api_version.p) {
        apiv = span_val(&obj->api_version);
    } else {
        snprintf(f->apiv, sizeof(f->apiv), "%s", ctx->api_version);
        apiv = cstr_val(ctx->api_version);
    }
    if (obj->kind.p) {
        kind = span_val(&obj->kind);
    } else {
        snprintf(f->kind, sizeof(f->kind), "%s", ctx->kind ? ctx->kind : "");
        kind = cstr_val(ctx->kind ? ctx->kind : "");
    }
    redact = strcmp(f->kind, "Secret") == 0 && strcmp(f->apiv, "v1") == 0;

    it = kwb_batch_item(b);
    if (!it) {
        return -ENOMEM;
    }
    it->item_kind = KWB_ITEM_EVENT;
    it->type = (uint8_t)type;
    it->origin = (uint8_t)origin;
    rc = add_strings(b, it, f);
    if (rc == 0 && resume_rv) {
        it->resume_rv = kwb_batch_str(b, resume_rv, strlen(resume_rv));
        if (it->resume_rv == KWB_NO_OFF) {
            rc = -ENOMEM;
        }
    }
    if (rc < 0) {
        goto out;
    }
    if (redact || ctx->trim_managed_fields || ctx->n_redact_paths) {
        rewritten = kwb_event_rewrite(ctx, obj->obj.p, obj->obj.len, redact,
                                      errbuf, errsize);
        if (!rewritten) {
            rc = -EINVAL;
            goto out;
        }
        rc = write_event(b, it, ctx, type, origin, apiv, kind,
                         span_val(&obj->namespace_), span_val(&obj->name),
                         span_val(&obj->uid), span_val(&obj->resource_version),
                         rewritten, strlen(rewritten), injv);
    } else {
        size_t n = 0;
        if (!obj->api_version.p || !obj->kind.p) {
            /* Splice the missing type fields in, as client-go does for
             * list items, so every object is self-describing. */
            if (!obj->api_version.p) {
                n += (size_t)snprintf(inject + n, sizeof(inject) - n,
                                      "\"apiVersion\":\"%.*s\"", (int)apiv.len,
                                      apiv.p);
            }
            if (!obj->kind.p && kind.len) {
                n += (size_t)snprintf(inject + n, sizeof(inject) - n,
                                      "%s\"kind\":\"%.*s\"", n ? "," : "",
                                      (int)kind.len, kind.p);
            }
            injv.p = inject;
            injv.len = n < sizeof(inject) ? n : 0;
        }
        rc = write_event(b, it, ctx, type, origin, apiv, kind,
                         span_val(&obj->namespace_), span_val(&obj->name),
                         span_val(&obj->uid), span_val(&obj->resource_version),
                         obj->obj.p, obj->obj.len, injv);
    }
    if (rc == 0) {
        b->n_events++;
    }
out:
    free(rewritten);
    if (rc < 0) {
        /* Roll the batch back to before this event. */
        b->json_len = saved_json;
        b->str_len = saved_str;
        b->n_items = saved_items;
        if (rc == -ENOMEM) {
            snprintf(errbuf, errsize, "out of memory");
        } else if (rc == -E2BIG) {
            snprintf(errbuf, errsize, "event too large for a batch");
        }
    }
    return rc;
}

int kwb_event_append_vanished(struct kwb_batch *b,
                              const struct kwb_event_ctx *ctx,
                              const struct kwb_store_entry *e)
{
    char uid[FIELD_MAX], rv[FIELD_MAX], name[FIELD_MAX], ns[FIELD_MAX];
    char kind[FIELD_MAX], apiv[FIELD_MAX];
    char obj[FIELD_MAX * 8];
    struct fields *f;
    struct kwb_item *it;
    size_t pos;
    int n, rc;
    size_t saved_json = b->json_len, saved_str = b->str_len;
    size_t saved_items = b->n_items;

    /* Escape the stored (unescaped) strings back for JSON output. */
    pos = 0;
    kwb_json_escape_append(uid, sizeof(uid), &pos, e->uid);
    pos = 0;
    kwb_json_escape_append(rv, sizeof(rv), &pos, e->rv);
    pos = 0;
    kwb_json_escape_append(name, sizeof(name), &pos, e->name);
    pos = 0;
    kwb_json_escape_append(ns, sizeof(ns), &pos, e->namespace_);
    pos = 0;
    kwb_json_escape_append(kind, sizeof(kind), &pos,
                           ctx->kind ? ctx->kind : "");
    pos = 0;
    kwb_json_escape_append(apiv, sizeof(apiv), &pos, ctx->api_version);

    if (ns[0]) {
        n = snprintf(obj, sizeof(obj),
                     "{\"apiVersion\":\"%s\",\"kind\":\"%s\",\"metadata\":{"
                     "\"name\":\"%s\",\"namespace\":\"%s\",\"uid\":\"%s\","
                     "\"resourceVersion\":\"%s\"}}",
                     apiv, kind, name, ns, uid, rv);
    } else {
        n = snprintf(obj, sizeof(obj),
                     "{\"apiVersion\":\"%s\",\"kind\":\"%s\",\"metadata\":{"
                     "\"name\":\"%s\",\"uid\":\"%s\","
                     "\"resourceVersion\":\"%s\"}}",
                     apiv, kind, name, uid, rv);
    }
    if (n < 0 || (size_t)n >= sizeof(obj)) {
        return -EINVAL;
    }
    it = kwb_batch_item(b);
    if (!it) {
        return -ENOMEM;
    }
    it->item_kind = KWB_ITEM_EVENT;
    it->type = KWB_EV_DELETED;
    it->origin = KWB_ORIGIN_LIST;
    f = malloc(sizeof(*f));
    if (!f) {
        rc = -ENOMEM;
        goto out;
    }
    snprintf(f->uid, sizeof(f->uid), "%s", e->uid);
    snprintf(f->rv, sizeof(f->rv), "%s", e->rv);
    snprintf(f->name, sizeof(f->name), "%s", e->name);
    snprintf(f->ns, sizeof(f->ns), "%s", e->namespace_);
    snprintf(f->kind, sizeof(f->kind), "%s", ctx->kind ? ctx->kind : "");
    snprintf(f->apiv, sizeof(f->apiv), "%s", ctx->api_version);
    rc = add_strings(b, it, f);
    free(f);
    if (rc == 0) {
        struct strval none = {"", 0};
        rc = write_event(b, it, ctx, KWB_EV_DELETED, KWB_ORIGIN_LIST,
                         cstr_val(apiv), cstr_val(kind), cstr_val(ns),
                         cstr_val(name), cstr_val(uid), cstr_val(rv), obj,
                         (size_t)n, none);
    }
    if (rc == 0) {
        b->n_events++;
    }
out:
    if (rc < 0) {
        b->json_len = saved_json;
        b->str_len = saved_str;
        b->n_items = saved_items;
    }
    return rc;
}

int kwb_event_append_state(struct kwb_batch *b, const char *uid, const char *rv,
                           const char *name, const char *ns, int deleted)
{
    struct kwb_item *it = kwb_batch_item(b);
    size_t saved_str = b->str_len, saved_items = b->n_items - 1;

    if (!it) {
        return -ENOMEM;
    }
    it->item_kind = KWB_ITEM_STATE;
    it->type = deleted ? KWB_EV_DELETED : KWB_EV_ADDED;
    it->uid = kwb_batch_str(b, uid, strlen(uid));
    it->rv = kwb_batch_str(b, rv, strlen(rv));
    it->name = kwb_batch_str(b, name, strlen(name));
    it->ns = kwb_batch_str(b, ns, strlen(ns));
    if (it->uid == KWB_NO_OFF || it->rv == KWB_NO_OFF ||
        it->name == KWB_NO_OFF || it->ns == KWB_NO_OFF) {
        b->str_len = saved_str;
        b->n_items = saved_items;
        return -ENOMEM;
    }
    return 0;
}
