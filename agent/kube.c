/*
 * kube.c - libcurl client for LIST and WATCH. See kube.h.
 */
#include "kube.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "kubeconfig.h"
#include "log.h"
#include "metrics.h"

#define ERROR_BODY_MAX (64 * 1024)

struct kwb_kube {
    struct kwb_kube_auth *auth;
    const struct kwb_config *cfg;
    CURL *easy;
    CURLM *multi;
};

struct xfer {
    struct kwb_kube *k;
    struct kwb_kube_resp *r;
    size_t max_body;
    int streaming;
    int whole;     /* kwb_kube_request: every status collected, max_body */
    int bad_type;  /* a 200 answer that is not JSON: refused */
    int body_seen; /* status and type of this answer checked (on_write) */
    kwb_kube_data_fn on_data;
    void *opaque;
    int64_t last_byte_ms; /* kwb_now_coarse_ms: stall detection (seconds) */
};

void kwb_kube_resp_drop_body(struct kwb_kube_resp *r)
{
    if (r->body) {
        munmap(r->body, r->body_cap);
    }
    r->body = NULL;
    r->body_len = 0;
    r->body_cap = 0;
}

void kwb_kube_resp_reset(struct kwb_kube_resp *r)
{
    kwb_kube_resp_drop_body(r);
    memset(r, 0, sizeof(*r));
}

/* For the next request: everything but the body buffer, which is kept
 * (empty) for reuse. */
static void resp_clear_keep_body(struct kwb_kube_resp *r)
{
    char *body = r->body;
    size_t cap = r->body_cap;

    memset(r, 0, sizeof(*r));
    r->body = body;
    r->body_cap = cap;
    if (body) {
        body[0] = '\0';
    }
}

struct kwb_kube *kwb_kube_new(struct kwb_kube_auth *auth,
                              const struct kwb_config *cfg)
{
    struct kwb_kube *k = calloc(1, sizeof(*k));

    if (!k) {
        return NULL;
    }
    k->auth = auth;
    k->cfg = cfg;
    k->easy = curl_easy_init();
    k->multi = curl_multi_init();
    if (!k->easy || !k->multi) {
        kwb_kube_free(k);
        return NULL;
    }
    return k;
}

void kwb_kube_free(struct kwb_kube *k)
{
    if (!k) {
        return;
    }
    if (k->multi) {
        curl_multi_cleanup(k->multi);
    }
    if (k->easy) {
        curl_easy_cleanup(k->easy);
    }
    free(k);
}

int kwb_kube_escape(const char *s, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t j = 0;

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                    c == '_' || c == '~';
        if (j + (plain ? 1 : 3) >= size) {
            return -1;
        }
        if (plain) {
            out[j++] = (char)c;
        } else {
            out[j++] = '%';
            out[j++] = hex[c >> 4];
            out[j++] = hex[c & 15];
        }
    }
    out[j] = '\0';
    return 0;
}

int kwb_kube_collection_url(const struct kwb_kube *k,
                            const struct kwb_watch_conf *wc, char *out,
                            size_t size)
{
    const char *server = kwb_kube_auth_server(k->auth);
    char ns[256] = "";
    int n;

    if (wc->namespace_) {
        n = snprintf(ns, sizeof(ns), "/namespaces/%s", wc->namespace_);
        if (n < 0 || (size_t)n >= sizeof(ns)) {
            return -1;
        }
    }
    if (wc->group[0]) {
        n = snprintf(out, size, "%s/apis/%s/%s%s/%s", server, wc->group,
                     wc->version, ns, wc->resource);
    } else {
        n = snprintf(out, size, "%s/api/%s%s/%s", server, wc->version, ns,
                     wc->resource);
    }
    return (n < 0 || (size_t)n >= size) ? -1 : 0;
}

/*
 * The body buffer is a mapping of its own, not malloc memory: it grows by
 * mremap (no copy), kwb_kube_get reuses it for the next page of a list,
 * and kwb_kube_resp_drop_body returns its pages to the system at once. A
 * list page of 500 pods is ~2 MB; from malloc, the freed pages stayed in
 * the worker's arena (glibc's malloc_trim does not shrink a thread
 * arena's top) and raised malloc's mmap threshold to 2 MB, so later large
 * buffers of every thread landed in arenas too.
 */
static int collect(struct xfer *x, const char *data, size_t len, size_t limit)
{
    struct kwb_kube_resp *r = x->r;

    if (r->body_len + len > limit) {
        r->truncated = 1;
        return -1;
    }
    if (r->body_len + len + 1 > r->body_cap) {
        size_t ncap = r->body_cap ? r->body_cap * 2 : 65536;
        void *n;
        while (ncap < r->body_len + len + 1) {
            ncap *= 2;
        }
        n = r->body ? mremap(r->body, r->body_cap, ncap, MREMAP_MAYMOVE)
                    : mmap(NULL, ncap, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (n == MAP_FAILED) {
            return -1;
        }
        r->body = n;
        r->body_cap = ncap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

/* LIST and WATCH answer JSON; with parameters ("; charset=utf-8") or
 * without a Content-Type at all. Anything else (a proxy's HTML page,
 * protobuf) would only fail later as unparsable bytes. */
static int json_type(const char *ct)
{
    size_t n = strcspn(ct, "; \t");

    return ct[0] == '\0' ||
           (n == 16 && strncasecmp(ct, "application/json", 16) == 0);
}

/* The refusal of a 200 answer of the wrong type: the URL's path only (no
 * server, no query: selectors and continue tokens stay out of logs). */
static int bad_type(struct kwb_kube_resp *r, const char *url, int watch)
{
    const char *p = strstr(url, "://");
    size_t n;

    p = p ? p + 3 : url;
    p += strcspn(p, "/?#");
    n = strcspn(p, "?#");
    if (n > 300) {
        n = 300;
    }
    snprintf(r->errmsg, sizeof(r->errmsg),
             "GET %.*s%s: unexpected Content-Type %s (want application/json)",
             (int)n, n ? p : "/", watch ? "?watch=1" : "", r->content_type);
    return -EPROTO;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *opaque)
{
    struct xfer *x = opaque;
    size_t len = size * nmemb;
    long status = 0;

    x->last_byte_ms = kwb_now_coarse_ms();
    /* Status and Content-Type are known once the body starts: checked at
     * its first chunk, not at every one (a watch gets a chunk per event). */
    if (!x->body_seen) {
        curl_easy_getinfo(x->k->easy, CURLINFO_RESPONSE_CODE, &status);
        x->r->status = status;
        if (status == 200 && !x->whole && !json_type(x->r->content_type)) {
            x->bad_type = 1;
            return CURL_WRITEFUNC_ERROR;
        }
        x->body_seen = 1;
    }
    status = x->r->status;
    if (x->streaming && status == 200) {
        if (x->on_data(x->opaque, data, len) != 0) {
            x->r->aborted = 1;
            return CURL_WRITEFUNC_ERROR;
        }
        return len;
    }
    if (x->whole) {
        return collect(x, data, len, x->max_body) < 0 ? CURL_WRITEFUNC_ERROR
                                                      : len;
    }
    if (collect(x, data, len,
                x->streaming || status != 200 ? ERROR_BODY_MAX : x->max_body) <
        0) {
        return x->r->truncated && status != 200 ? len : CURL_WRITEFUNC_ERROR;
    }
    return len;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *opaque)
{
    struct xfer *x = opaque;
    size_t len = size * nmemb;

    x->last_byte_ms = kwb_now_coarse_ms();
    if (len > 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new answer (after a proxy's CONNECT or a 100 Continue). */
        x->r->content_type[0] = '\0';
        x->body_seen = 0;
    } else if (len > 13 && strncasecmp(data, "Content-Type:", 13) == 0) {
        const char *v = data + 13;
        size_t n = len - 13, j = 0;
        while (n && (*v == ' ' || *v == '\t')) {
            v++;
            n--;
        }
        while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' ||
                     v[n - 1] == '\t')) {
            n--;
        }
        /* Printable only: it goes into log lines. */
        for (size_t i = 0; i < n && j + 1 < sizeof(x->r->content_type); i++) {
            unsigned char c = (unsigned char)v[i];
            x->r->content_type[j++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
        x->r->content_type[j] = '\0';
    }
    if (len > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
        char buf[64];
        size_t n = len - 12 < sizeof(buf) - 1 ? len - 12 : sizeof(buf) - 1;
        memcpy(buf, data + 12, n);
        buf[n] = '\0';
        char *end;
        double v = strtod(buf, &end);
        if (end != buf && v >= 0 && v < 3600) {
            x->r->retry_after_s = v;
        } else {
            /* An HTTP-date: seconds from now. */
            time_t t = curl_getdate(buf, NULL);
            time_t now = time(NULL);
            if (t > now && t - now < 3600) {
                x->r->retry_after_s = (double)(t - now);
            }
        }
    }
    return len;
}

/* Options of one transfer: a LIST page or WATCH (req NULL; streaming in
 * x) or a kwb_kube_request. */
static int setup(struct kwb_kube *k, const char *url, struct xfer *x,
                 struct curl_slist **headers, const struct kwb_kube_req *req)
{
    CURL *h = k->easy;
    char err[sizeof(x->r->errmsg)] = "";
    char agent[128];

    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->r->errmsg);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 10L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Stalls are detected in run(), not with CURLOPT_LOW_SPEED_*: time
     * spent waiting on our own backpressure must not count as silence. */
    if (req) {
        snprintf(agent, sizeof(agent), "kube-watch-bridge/%s%s%s%s",
                 KWB_VERSION, req->agent ? " (" : "",
                 req->agent ? req->agent : "", req->agent ? ")" : "");
        curl_easy_setopt(h, CURLOPT_USERAGENT, agent);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                         req->timeout_ms < 1 ? 1L : req->timeout_ms);
        if (req->body) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)strlen(req->body));
        }
        if (strcmp(req->method, "GET") != 0 &&
            strcmp(req->method, "POST") != 0) {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
        }
    } else {
        curl_easy_setopt(h, CURLOPT_USERAGENT,
                         "kube-watch-bridge/" KWB_VERSION);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT,
                         (long)k->cfg->connect_timeout_s);
        /* Large reads: a watch stream of pods is hundreds of MB/s; 16 KiB
         * reads would cost a recv and a poll per few events. */
        curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
        if (!x->streaming) {
            curl_easy_setopt(h, CURLOPT_TIMEOUT, 300L);
        }
    }
    *headers = curl_slist_append(NULL, "Accept: application/json");
    if (*headers && req && req->body &&
        !curl_slist_append(*headers, "Content-Type: application/json")) {
        curl_slist_free_all(*headers);
        *headers = NULL;
    }
    if (!*headers) {
        snprintf(x->r->errmsg, sizeof(x->r->errmsg), "out of memory");
        return -ENOMEM;
    }
    int rc = kwb_kube_auth_apply(k->auth, h, headers, err, sizeof(err));
    if (rc < 0) {
        snprintf(x->r->errmsg, sizeof(x->r->errmsg), "%s", err);
        return rc;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *headers);
    return 0;
}

/* Run the transfer on the multi handle so stop requests and idle
 * callbacks are served while it runs. */
static int run(struct kwb_kube *k, struct xfer *x, kwb_kube_idle_fn on_idle,
               void *opaque, const atomic_int *stop, int stall_s)
{
    int running = 1, rc = 0;
    CURLMsg *msg;
    int left;
    CURLcode code = CURLE_OK;

    curl_multi_add_handle(k->multi, k->easy);
    x->last_byte_ms = kwb_now_coarse_ms();
    while (running) {
        if (curl_multi_perform(k->multi, &running) != CURLM_OK) {
            code = CURLE_FAILED_INIT;
            break;
        }
        if (on_idle) {
            int64_t t0 = kwb_now_coarse_ms();
            int stop_now = on_idle(opaque) != 0;
            /* Blocked on the pipeline (backpressure) is not silence. */
            x->last_byte_ms += kwb_now_coarse_ms() - t0;
            if (stop_now) {
                x->r->aborted = 1;
                break;
            }
        }
        if (stop && atomic_load(stop)) {
            x->r->aborted = 1;
            break;
        }
        if (!running) {
            break;
        }
        /* Our own stall guard too: curl's low-speed check needs bytes to
         * average over, this one sees a silent socket. */
        if (stall_s > 0 &&
            kwb_now_coarse_ms() - x->last_byte_ms > stall_s * 1000L) {
            x->r->stalled = 1;
            break;
        }
        curl_multi_poll(k->multi, NULL, 0, 100, NULL);
    }
    while ((msg = curl_multi_info_read(k->multi, &left))) {
        if (msg->msg == CURLMSG_DONE) {
            code = msg->data.result;
        }
    }
    curl_multi_remove_handle(k->multi, k->easy);
    curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &x->r->status);
    if (x->r->aborted) {
        return -ECANCELED;
    }
    if (x->r->stalled) {
        snprintf(x->r->errmsg, sizeof(x->r->errmsg),
                 "no data for %d s (stalled)", stall_s);
        return -ETIMEDOUT;
    }
    x->r->curl_code = (int)code;
    if (code != CURLE_OK) {
        rc = -EIO;
    }
    if (code != CURLE_OK && !x->r->errmsg[0]) {
        snprintf(x->r->errmsg, sizeof(x->r->errmsg), "%s",
                 curl_easy_strerror(code));
    }
    return rc;
}

int kwb_kube_get(struct kwb_kube *k, const char *url, size_t max_body,
                 const atomic_int *stop, struct kwb_kube_resp *r)
{
    struct xfer x = {.k = k, .r = r, .max_body = max_body};
    struct curl_slist *headers = NULL;
    int rc;

    resp_clear_keep_body(r);
    rc = setup(k, url, &x, &headers, NULL);
    if (rc == 0) {
        /* A server that sends headers and then nothing is caught by the
         * same stall guard as a silent watch. */
        rc = run(k, &x, NULL, NULL, stop, k->cfg->stall_timeout_s);
        if (x.bad_type ||
            (rc == 0 && r->status == 200 && !json_type(r->content_type))) {
            rc = bad_type(r, url, 0);
        } else if (rc == -EIO && r->truncated) {
            snprintf(r->errmsg, sizeof(r->errmsg),
                     "response larger than %zu bytes", max_body);
        }
    }
    curl_slist_free_all(headers);
    if (r->status != 200 && r->body_len) {
        kwb_kube_parse_status(r);
    }
    return rc;
}

int kwb_kube_request(struct kwb_kube *k, const struct kwb_kube_req *req,
                     struct kwb_kube_resp *r, char *errbuf, size_t errsize)
{
    struct xfer x = {.k = k, .r = r, .max_body = req->max_body, .whole = 1};
    struct curl_slist *headers = NULL;
    int rc;

    kwb_kube_resp_reset(r);
    rc = setup(k, req->url, &x, &headers, req);
    if (rc < 0) {
        snprintf(errbuf, errsize, "%s", r->errmsg);
        goto out;
    }
    rc = run(k, &x, NULL, NULL, req->abort, 0);
    if (rc == -ECANCELED) {
        snprintf(errbuf, errsize, "%s %s: stopped", req->method, req->url);
        goto out;
    }
    if (rc < 0) {
        if (r->curl_code == CURLE_OPERATION_TIMEDOUT) {
            rc = -ETIMEDOUT;
        }
        snprintf(errbuf, errsize, "%s %s: %s", req->method, req->url,
                 r->truncated ? "response too large" : r->errmsg);
        goto out;
    }
    rc = (int)r->status;
out:
    /* The handle keeps pointers to both; drop them before freeing. */
    curl_easy_setopt(k->easy, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(k->easy, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(headers);
    return rc;
}

int kwb_kube_stream(struct kwb_kube *k, const char *url, int stall_s,
                    kwb_kube_data_fn on_data, kwb_kube_idle_fn on_idle,
                    void *opaque, const atomic_int *stop,
                    struct kwb_kube_resp *r)
{
    struct xfer x = {
        .k = k, .r = r, .streaming = 1, .on_data = on_data, .opaque = opaque};
    struct curl_slist *headers = NULL;
    int rc;

    kwb_kube_resp_reset(r);
    rc = setup(k, url, &x, &headers, NULL);
    if (rc == 0) {
        rc = run(k, &x, on_idle, opaque, stop, stall_s);
        if (x.bad_type ||
            (rc == 0 && r->status == 200 && !json_type(r->content_type))) {
            rc = bad_type(r, url, 1);
        }
    }
    curl_slist_free_all(headers);
    if (r->status != 200 && r->body_len) {
        kwb_kube_parse_status(r);
    }
    return rc;
}

void kwb_kube_parse_status(struct kwb_kube_resp *r)
{
    cJSON *root = cJSON_ParseWithLength(r->body, r->body_len);
    const cJSON *msg, *reason;

    if (!cJSON_IsObject(root)) {
        /* Not a Status (an HTML error page from a proxy, say): keep a
         * short, printable excerpt for the log. */
        size_t j = 0;
        char ex[120];
        for (size_t i = 0; i < r->body_len && j + 1 < sizeof(ex); i++) {
            unsigned char c = (unsigned char)r->body[i];
            ex[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : ' ';
        }
        ex[j] = '\0';
        snprintf(r->errmsg, sizeof(r->errmsg), "non-Status body: %s", ex);
        cJSON_Delete(root);
        return;
    }
    msg = cJSON_GetObjectItemCaseSensitive(root, "message");
    reason = cJSON_GetObjectItemCaseSensitive(root, "reason");
    if (cJSON_IsString(msg)) {
        snprintf(r->errmsg, sizeof(r->errmsg), "%s", msg->valuestring);
    }
    if (cJSON_IsString(reason)) {
        snprintf(r->reason, sizeof(r->reason), "%s", reason->valuestring);
    }
    cJSON_Delete(root);
}
