/*
 * benchgen.c - see benchgen.h.
 *
 * Templates are printf formats (per-variant words filled once) holding
 * control bytes as field markers: \001 uid, \002 name digits, \003 rv,
 * \004 send time. JSON never contains raw control bytes, so the markers
 * are unambiguous; each is replaced by fixed-width filler and its offset
 * kept for patching.
 */
#include "benchgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const int field_width[KWB_BGEN_NFIELD] = {36, KWB_BGEN_NAME_DIGITS, 12,
                                                 19};

/* clang-format off */
#define POD_FMT \
    "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{" \
    "\"name\":\"%s-7d9f8c6b5-\002\",\"generateName\":\"%s-7d9f8c6b5-\"," \
    "\"namespace\":\"%s\",\"uid\":\"\001\"," \
    "\"resourceVersion\":\"\003\",\"creationTimestamp\":\"2026-11-22T15:04:05Z\"," \
    "\"labels\":{\"app\":\"%s\",\"pod-template-hash\":\"7d9f8c6b5\"," \
    "\"tier\":\"%s\",\"app.kubernetes.io/version\":\"1.24.%d\"," \
    "\"app.kubernetes.io/part-of\":\"%s\",\"team\":\"%s\"}," \
    "\"annotations\":{\"" KWB_BGEN_TS_KEY "\":\"\004\"," \
    "\"prometheus.io/scrape\":\"true\"," \
    "\"prometheus.io/port\":\"9113\"}," \
    "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\"," \
    "\"name\":\"%s-7d9f8c6b5\",\"uid\":\"1b7e5c2a-4e2b-11ee-9c1d-0242ac1200%02d\"," \
    "\"controller\":true}]," \
    "\"managedFields\":[{\"manager\":\"kube-controller-manager\"," \
    "\"operation\":\"Update\",\"apiVersion\":\"v1\"," \
    "\"time\":\"2026-11-22T15:04:05Z\",\"fieldsType\":\"FieldsV1\"," \
    "\"fieldsV1\":{\"f:metadata\":{\"f:annotations\":{\".\":{}," \
    "\"f:kubectl.kubernetes.io/restartedAt\":{}},\"f:generateName\":{},\"f:labels\":" \
    "{\".\":{},\"f:app\":{},\"f:pod-template-hash\":{},\"f:tier\":{}},\"f:ownerReferences\":" \
    "{\".\":{},\"k:{\\\"uid\\\":\\\"1b7e5c2a-4e2b-11ee-9c1d-0242ac1200%02d\\\"}\":{}}}," \
    "\"f:spec\":{\"f:containers\":{\"k:{\\\"name\\\":\\\"%s\\\"}\":{\".\":{}," \
    "\"f:env\":{\".\":{},\"k:{\\\"name\\\":\\\"LOG_LEVEL\\\"}\":{\".\":{},\"f:name\":{},\"f:value\":{}}}," \
    "\"f:image\":{},\"f:imagePullPolicy\":{},\"f:name\":{},\"f:ports\":{}," \
    "\"f:volumeMounts\":{}}," \
    "\"k:{\\\"name\\\":\\\"envoy\\\"}\":{\".\":{},\"f:image\":{},\"f:name\":{}}}," \
    "\"f:dnsPolicy\":{}}}}," \
    "{\"manager\":\"kubelet\",\"operation\":\"Update\",\"apiVersion\":\"v1\"," \
    "\"time\":\"2026-11-22T15:04:09Z\",\"fieldsType\":\"FieldsV1\"," \
    "\"fieldsV1\":{\"f:status\":{\"f:conditions\":{}," \
    "\"f:containerStatuses\":{},\"f:hostIP\":{},\"f:phase\":{},\"f:podIP\":{}," \
    "\"f:podIPs\":{\".\":{},\"k:{\\\"ip\\\":\\\"10.244.%d.17\\\"}\":{}}," \
    "\"f:startTime\":{}}},\"subresource\":\"status\"}]}," \
    "\"spec\":{\"volumes\":[{\"name\":\"kube-api-access-x7k2p\",\"projected\":" \
    "{\"sources\":[{\"serviceAccountToken\":{\"expirationSeconds\":3607," \
    "\"path\":\"token\"}}]," \
    "\"defaultMode\":420}}]," \
    "\"containers\":[{\"name\":\"%s\",\"image\":\"registry.example.com/%s/%s:1.24.%d\"," \
    "\"ports\":[{\"name\":\"http\",\"containerPort\":8080,\"protocol\":\"TCP\"}]," \
    "\"env\":[{\"name\":\"LOG_LEVEL\",\"value\":\"info\"}]," \
    "\"resources\":{\"limits\":{\"cpu\":\"500m\"," \
    "\"memory\":\"256Mi\"},\"requests\":{\"cpu\":\"100m\",\"memory\":\"128Mi\"}}," \
    "\"volumeMounts\":[{\"name\":\"kube-api-access-x7k2p\",\"readOnly\":true," \
    "\"mountPath\":\"/var/run/secrets/kubernetes.io/serviceaccount\"}]," \
    "\"imagePullPolicy\":\"IfNotPresent\"}," \
    "{\"name\":\"envoy\",\"image\":\"envoyproxy/envoy:v1.28.0\",\"args\":" \
    "[\"-c\",\"/etc/envoy/envoy.yaml\"]," \
    "\"imagePullPolicy\":\"IfNotPresent\"}]," \
    "\"restartPolicy\":\"Always\",\"terminationGracePeriodSeconds\":30," \
    "\"dnsPolicy\":\"ClusterFirst\",\"serviceAccountName\":\"default\"," \
    "\"nodeName\":\"node-%d\",\"securityContext\":{},\"schedulerName\":" \
    "\"default-scheduler\"," \
    "\"priority\":0}," \
    "\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Initialized\"," \
    "\"status\":\"True\",\"lastProbeTime\":null,\"lastTransitionTime\":" \
    "\"2026-11-22T15:04:05Z\"},{\"type\":\"Ready\",\"status\":\"True\"," \
    "\"lastProbeTime\":null,\"lastTransitionTime\":\"2026-11-22T15:04:09Z\"}]," \
    "\"hostIP\":\"172.18.0.%d\",\"podIP\":\"10.244.%d.17\",\"podIPs\":[{\"ip\":" \
    "\"10.244.%d.17\"}],\"startTime\":\"2026-11-22T15:04:05Z\"," \
    "\"containerStatuses\":[{\"name\":\"envoy\",\"state\":{\"running\":" \
    "{\"startedAt\":\"2026-11-22T15:04:08Z\"}},\"lastState\":{},\"ready\":true," \
    "\"restartCount\":0,\"image\":\"docker.io/envoyproxy/envoy:v1.28.0\"," \
    "\"containerID\":\"containerd://4f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0\",\"started\":true}," \
    "{\"name\":\"%s\",\"state\":{\"running\":{\"startedAt\":" \
    "\"2026-11-22T15:04:07Z\"}},\"lastState\":{},\"ready\":true," \
    "\"restartCount\":%d,\"image\":\"registry.example.com/%s/%s:1.24.%d\"," \
    "\"containerID\":\"containerd://a0b1c2d3e4f5061728394a5b6c7d8e9fa0b1c2d3e4f5061728394a5b6c7d8e9f\",\"started\":true}]," \
    "\"qosClass\":\"Burstable\"}}"

#define EVENT_FMT \
    "{\"kind\":\"Event\",\"apiVersion\":\"v1\",\"metadata\":{" \
    "\"name\":\"%s-7d9f8c6b5-\002.17a9b3c4d5e6f7a8\",\"namespace\":\"%s\"," \
    "\"uid\":\"\001\",\"resourceVersion\":\"\003\"," \
    "\"creationTimestamp\":\"2026-11-22T15:04:05Z\"," \
    "\"annotations\":{\"" KWB_BGEN_TS_KEY "\":\"\004\"}," \
    "\"managedFields\":[{\"manager\":\"kubelet\",\"operation\":\"Update\"," \
    "\"apiVersion\":\"v1\",\"time\":\"2026-11-22T15:04:05Z\"," \
    "\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:count\":{}," \
    "\"f:firstTimestamp\":{},\"f:involvedObject\":{},\"f:lastTimestamp\":{}," \
    "\"f:message\":{},\"f:reason\":{},\"f:reportingComponent\":{}," \
    "\"f:reportingInstance\":{},\"f:source\":{\"f:component\":{}," \
    "\"f:host\":{}},\"f:type\":{}}}]}," \
    "\"involvedObject\":{\"kind\":\"Pod\",\"namespace\":\"%s\"," \
    "\"name\":\"%s-7d9f8c6b5-\002\",\"uid\":\"6f0c2a9e-1b3d-4c5e-8f7a-0242ac1200%02d\"," \
    "\"apiVersion\":\"v1\",\"resourceVersion\":\"48213377\"," \
    "\"fieldPath\":\"spec.containers{%s}\"}," \
    "\"reason\":\"%s\",\"message\":\"%s\"," \
    "\"source\":{\"component\":\"kubelet\",\"host\":\"node-%d\"}," \
    "\"firstTimestamp\":\"2026-11-22T15:04:05Z\"," \
    "\"lastTimestamp\":\"2026-11-22T15:09:41Z\",\"count\":%d," \
    "\"type\":\"%s\",\"eventTime\":null,\"reportingComponent\":\"kubelet\"," \
    "\"reportingInstance\":\"node-%d\"}"
/* clang-format on */

struct words {
    const char *app, *ns, *tier, *team;
};

static const struct words words[KWB_BGEN_NVAR] = {
    {"web", "shop-frontend", "frontend", "checkout"},
    {"payments-api", "payments", "backend", "payments-platform"},
    {"search", "catalog-search", "backend", "discovery"},
    {"ingest-worker", "data-pipeline", "worker", "data-engineering"},
};

static const char *const ev_reason[KWB_BGEN_NVAR] = {"Pulled", "Unhealthy",
                                                     "Started", "BackOff"};
static const char *const ev_message[KWB_BGEN_NVAR] = {
    "Container image \\\"registry.example.com/shop/web:1.24.3\\\" already "
    "present on machine and can be reused",
    "Readiness probe failed: Get \\\"http://10.244.1.17:8080/readyz\\\": "
    "context deadline exceeded (Client.Timeout)",
    "Started container search after the image was pulled",
    "Back-off restarting failed container ingest-worker in pod "
    "ingest-worker-7d9f8c6b5 (exit code 137)",
};

static int tokenize(struct kwb_bgen_tmpl *t, const char *src, size_t n)
{
    size_t out = 0;

    t->obj = malloc(n * 2 + 64);
    if (!t->obj) {
        return -1;
    }
    memset(t->nocc, 0, sizeof(t->nocc));
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c >= 1 && c <= KWB_BGEN_NFIELD) {
            int f = c - 1;
            if (t->nocc[f] == KWB_BGEN_MAXOCC) {
                return -1;
            }
            t->off[f][t->nocc[f]++] = out;
            memset(t->obj + out, '0', (size_t)field_width[f]);
            out += (size_t)field_width[f];
        } else {
            t->obj[out++] = (char)c;
        }
    }
    t->obj[out] = '\0';
    t->len = out;
    return 0;
}

int kwb_bgen_init(struct kwb_bgen *g, const char *kind)
{
    static char buf[16384];

    memset(g, 0, sizeof(*g));
    if (strcmp(kind, "events") == 0) {
        g->kind = KWB_BGEN_EVENTS;
        g->resource = "events";
        g->list_kind = "EventList";
    } else if (strcmp(kind, "pods") == 0) {
        g->kind = KWB_BGEN_PODS;
        g->resource = "pods";
        g->list_kind = "PodList";
    } else {
        return -1;
    }
    for (int v = 0; v < KWB_BGEN_NVAR; v++) {
        const struct words *w = &words[v];
        int n;
        if (g->kind == KWB_BGEN_PODS) {
            n = snprintf(buf, sizeof(buf), POD_FMT, w->app, w->app, w->ns,
                         w->app, w->tier, v, w->ns, w->team, w->app, v, v,
                         w->app, v, w->app, w->ns, w->app, v, v + 1, v + 2, v,
                         v, w->app, v, w->ns, w->app, v);
        } else {
            n = snprintf(buf, sizeof(buf), EVENT_FMT, w->app, w->ns, w->ns,
                         w->app, v, w->app, ev_reason[v], ev_message[v], v + 1,
                         3 + v * 7, v == 1 || v == 3 ? "Warning" : "Normal",
                         v + 1);
        }
        if (n < 0 || (size_t)n >= sizeof(buf) ||
            tokenize(&g->var[v], buf, (size_t)n) < 0) {
            kwb_bgen_free(g);
            return -1;
        }
    }
    return 0;
}

void kwb_bgen_free(struct kwb_bgen *g)
{
    for (int v = 0; v < KWB_BGEN_NVAR; v++) {
        free(g->var[v].obj);
        g->var[v].obj = NULL;
    }
}

void kwb_bgen_digits(char *p, int width, uint64_t v)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

static const char hexd[] = "0123456789abcdef";

static void hex(char *p, int width, uint64_t v)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = hexd[v & 15];
        v >>= 4;
    }
}

void kwb_bgen_uid(char out[37], uint64_t k)
{
    uint64_t h = (k + 1) * 0x9e3779b97f4a7c15ull;

    h ^= h >> 29;
    /* xxxxxxxx-xxxx-4xxx-8xxx-<12 hex of k>: unique per k */
    hex(out, 8, h >> 32);
    out[8] = '-';
    hex(out + 9, 4, h >> 16);
    out[13] = '-';
    out[14] = '4';
    hex(out + 15, 3, h >> 4);
    out[18] = '-';
    out[19] = '8';
    hex(out + 20, 3, h);
    out[23] = '-';
    hex(out + 24, 12, k);
    out[36] = '\0';
}

void kwb_bgen_patch_ts(const struct kwb_bgen_tmpl *t, char *obj, uint64_t ts_ns)
{
    for (int i = 0; i < t->nocc[KWB_BGEN_TS]; i++) {
        kwb_bgen_digits(obj + t->off[KWB_BGEN_TS][i], 19, ts_ns);
    }
}

void kwb_bgen_patch(const struct kwb_bgen_tmpl *t, char *obj, uint64_t k,
                    uint64_t rv, uint64_t ts_ns)
{
    char uid[37], name[KWB_BGEN_NAME_DIGITS], rvs[12];

    kwb_bgen_uid(uid, k);
    kwb_bgen_digits(name, KWB_BGEN_NAME_DIGITS, k);
    kwb_bgen_digits(rvs, 12, rv);
    for (int i = 0; i < t->nocc[KWB_BGEN_UID]; i++) {
        memcpy(obj + t->off[KWB_BGEN_UID][i], uid, 36);
    }
    for (int i = 0; i < t->nocc[KWB_BGEN_NAME]; i++) {
        memcpy(obj + t->off[KWB_BGEN_NAME][i], name, sizeof(name));
    }
    for (int i = 0; i < t->nocc[KWB_BGEN_RV]; i++) {
        memcpy(obj + t->off[KWB_BGEN_RV][i], rvs, sizeof(rvs));
    }
    if (ts_ns) {
        kwb_bgen_patch_ts(t, obj, ts_ns);
    }
}

size_t kwb_bgen_line(const struct kwb_bgen *g, char *buf, size_t size,
                     uint64_t seq, uint64_t pool, uint64_t ts_ns)
{
    uint64_t k = seq % pool;
    const struct kwb_bgen_tmpl *t = kwb_bgen_var(g, k);
    int n =
        snprintf(buf, size, "{\"type\":\"%s\",\"object\":", kwb_bgen_type(seq));

    if (n < 0 || (size_t)n + t->len + 3 > size) {
        return 0;
    }
    memcpy(buf + n, t->obj, t->len);
    kwb_bgen_patch(t, buf + n, k, KWB_BGEN_WATCH_RV + seq + 1, ts_ns);
    memcpy(buf + (size_t)n + t->len, "}\n", 2);
    return (size_t)n + t->len + 2;
}

size_t kwb_bgen_chunk_len(const struct kwb_bgen *g, uint64_t seq, uint64_t pool)
{
    size_t line = strlen("{\"type\":\"\",\"object\":") +
                  strlen(kwb_bgen_type(seq)) +
                  kwb_bgen_var(g, seq % pool)->len + 2;
    char hexlen[32];
    int h = snprintf(hexlen, sizeof(hexlen), "%zx", line);

    return (size_t)h + 2 + line + 2;
}

uint64_t kwb_bgen_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double kwb_bgen_mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
