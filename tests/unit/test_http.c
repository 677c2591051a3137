/*
 * test_http.c - the metrics endpoint on 127.0.0.1 with an ephemeral port:
 * status codes, bodies and headers of /metrics, /healthz, /readyz; address
 * parsing and start errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "check.h"
#include "http.h"
#include "metrics.h"

struct answer {
    long status;
    char body[65536];
    size_t len;
    char content_type[128];
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct answer *a = userdata;
    size_t n = size * nmemb;

    if (a->len + n >= sizeof(a->body)) {
        return 0;
    }
    memcpy(a->body + a->len, data, n);
    a->len += n;
    a->body[a->len] = '\0';
    return n;
}

/* Request `method` `path` on 127.0.0.1:port; 0 on a completed exchange. */
static int fetch(int port, const char *method, const char *path,
                 struct answer *a)
{
    CURL *curl = curl_easy_init();
    char url[128];
    char *ct = NULL;
    CURLcode rc;

    memset(a, 0, sizeof(*a));
    if (!curl) {
        return -1;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }
    rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &a->status);
        curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct);
        if (ct) {
            snprintf(a->content_type, sizeof(a->content_type), "%s", ct);
        }
    } else {
        fprintf(stderr, "fetch %s: %s\n", url, curl_easy_strerror(rc));
    }
    curl_easy_cleanup(curl);
    return rc == CURLE_OK ? 0 : -1;
}

static void test_endpoints(void)
{
    const char *watches[] = {"v1/pods"};
    const char *sinks[] = {"file"};
    struct kwb_metrics *m = kwb_metrics_new(watches, 1, sinks, 1);
    struct kwb_http *h = NULL;
    struct answer *a = malloc(sizeof(*a));
    char err[256] = "";

    CHECK(m != NULL && a != NULL);
    if (!m || !a) {
        goto out;
    }
    h = kwb_http_start("127.0.0.1:0", m, err, sizeof(err));
    CHECK(h != NULL);
    if (!h) {
        fprintf(stderr, "start: %s\n", err);
        goto out;
    }
    CHECK(kwb_http_port(h) > 0);

    atomic_store(&m->watches[0].received[KWB_EV_ADDED], 3);
    atomic_store(&m->sinks[0].acked, 5);
    CHECK_EQ_INT(fetch(kwb_http_port(h), "GET", "/metrics", a), 0);
    CHECK_EQ_INT(a->status, 200);
    CHECK_EQ_STR(a->content_type, "text/plain; version=0.0.4; charset=utf-8");
    CHECK(strstr(a->body, "\nkwb_events_received_total{watch=\"v1/pods\","
                          "type=\"ADDED\"} 3\n") != NULL);
    CHECK(strstr(a->body, "\nkwb_sink_acked_total{sink=\"file\"} 5\n") != NULL);
    CHECK(strncmp(a->body, "# HELP ", 7) == 0);

    /* Not ready until every watch synced and every sink is ready. */
    CHECK_EQ_INT(fetch(kwb_http_port(h), "GET", "/readyz", a), 0);
    CHECK_EQ_INT(a->status, 503);
    atomic_store(&m->watches[0].synced, 1);
    CHECK_EQ_INT(fetch(kwb_http_port(h), "GET", "/readyz", a), 0);
    CHECK_EQ_INT(a->status, 503);
    atomic_store(&m->sinks[0].ready, 1);
    CHECK_EQ_INT(fetch(kwb_http_port(h), "GET", "/readyz", a), 0);
    CHECK_EQ_INT(a->status, 200);
    CHECK_EQ_STR(a->body, "ready\n");

    /* Healthy while the pipeline heartbeat is recent. */
    atomic_store(&m->heartbeat_ms, kwb_now_ms());
    CHECK_EQ_INT(fetch(kwb_http_port(h), "GET", "/healthz", a), 0);
    CHECK_EQ_INT(a->status, 200);
    CHECK_EQ_STR(a->body, "ok\n");
    atomic_store(&m->heartbeat_ms,
                 kwb_now_ms() - KWB_METRICS_HEARTBEAT_MAX_MS - 1000);
    CHECK_EQ_INT(fetch(kwb_http_port(h), "GET", "/healthz", a), 0);
    CHECK_EQ_INT(a->status, 503);

    /* HEAD like GET without a body. */
    CHECK_EQ_INT(fetch(kwb_http_port(h), "HEAD", "/readyz", a), 0);
    CHECK_EQ_INT(a->status, 200);
    CHECK_EQ_INT(a->len, 0);

    CHECK_EQ_INT(fetch(kwb_http_port(h), "GET", "/nope", a), 0);
    CHECK_EQ_INT(a->status, 404);
    CHECK_EQ_INT(fetch(kwb_http_port(h), "GET", "/metrics/x", a), 0);
    CHECK_EQ_INT(a->status, 404);
    CHECK_EQ_INT(fetch(kwb_http_port(h), "POST", "/metrics", a), 0);
    CHECK_EQ_INT(a->status, 405);
    CHECK_EQ_INT(fetch(kwb_http_port(h), "DELETE", "/readyz", a), 0);
    CHECK_EQ_INT(a->status, 405);

out:
    kwb_http_stop(h);
    kwb_metrics_free(m);
    free(a);
}

static void test_port_in_use(void)
{
    struct kwb_metrics *m = kwb_metrics_new(NULL, 0, NULL, 0);
    struct kwb_http *h1 = NULL, *h2 = NULL;
    char addr[64];
    char err[256] = "";

    CHECK(m != NULL);
    if (!m) {
        return;
    }
    h1 = kwb_http_start("127.0.0.1:0", m, err, sizeof(err));
    CHECK(h1 != NULL);
    if (h1) {
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", kwb_http_port(h1));
        h2 = kwb_http_start(addr, m, err, sizeof(err));
        CHECK(h2 == NULL);
        CHECK(strstr(err, "Address already in use") != NULL);
        CHECK(strstr(err, addr) != NULL);
    }
    kwb_http_stop(h2);
    kwb_http_stop(h1);
    kwb_http_stop(NULL);
    kwb_metrics_free(m);
}

static void test_parse(void)
{
    char host[64];
    char err[256];
    int port = -1;

    CHECK_EQ_INT(kwb_http_parse_address("0.0.0.0:9090", host, sizeof(host),
                                        &port, err, sizeof(err)),
                 0);
    CHECK_EQ_STR(host, "0.0.0.0");
    CHECK_EQ_INT(port, 9090);
    CHECK_EQ_INT(kwb_http_parse_address("[::1]:9091", host, sizeof(host), &port,
                                        err, sizeof(err)),
                 0);
    CHECK_EQ_STR(host, "::1");
    CHECK_EQ_INT(port, 9091);
    CHECK_EQ_INT(kwb_http_parse_address(":0", host, sizeof(host), &port, err,
                                        sizeof(err)),
                 0);
    CHECK_EQ_STR(host, "");
    CHECK_EQ_INT(port, 0);
    CHECK_EQ_INT(kwb_http_parse_address("localhost:80", host, sizeof(host),
                                        &port, err, sizeof(err)),
                 0);
    CHECK_EQ_STR(host, "localhost");
    CHECK_EQ_INT(port, 80);

    const char *bad[] = {"",           "9090",    "host:",    "host:http",
                         "host:65536", "host:-1", "::1:9090", "[::1]9090",
                         "[::1",       "h:90x",   "h: 90"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        CHECK_EQ_INT(kwb_http_parse_address(bad[i], host, sizeof(host), &port,
                                            err, sizeof(err)),
                     -22);
        CHECK(strncmp(err, "metrics_address", 15) == 0);
    }
}

static void test_bad_address(void)
{
    struct kwb_metrics *m = kwb_metrics_new(NULL, 0, NULL, 0);
    char err[256] = "";

    CHECK(m != NULL);
    if (!m) {
        return;
    }
    CHECK(kwb_http_start("nonsense", m, err, sizeof(err)) == NULL);
    CHECK_EQ_STR(err, "metrics_address \"nonsense\": expected \"host:port\"");
    err[0] = '\0';
    /* Not an address of this machine. */
    CHECK(kwb_http_start("192.0.2.1:0", m, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "cannot listen") != NULL);
    kwb_metrics_free(m);
}

/* IPv6 loopback where the machine has it. */
static void test_ipv6(void)
{
    struct kwb_metrics *m = kwb_metrics_new(NULL, 0, NULL, 0);
    struct kwb_http *h;
    char err[256] = "";

    CHECK(m != NULL);
    if (!m) {
        return;
    }
    h = kwb_http_start("[::1]:0", m, err, sizeof(err));
    if (!h) {
        CHECK(strstr(err, "cannot listen") != NULL);
        fprintf(stderr, "no IPv6 loopback here: %s\n", err);
    } else {
        CURL *curl = curl_easy_init();
        char url[64];
        long status = 0;

        CHECK(kwb_http_port(h) > 0);
        snprintf(url, sizeof(url), "http://[::1]:%d/healthz", kwb_http_port(h));
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
        CHECK_EQ_INT(curl_easy_perform(curl), CURLE_OK);
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        CHECK_EQ_INT(status, 200);
        curl_easy_cleanup(curl);
    }
    kwb_http_stop(h);
    kwb_metrics_free(m);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_parse();
    test_endpoints();
    test_port_in_use();
    test_bad_address();
    test_ipv6();
    curl_global_cleanup();
    return check_report();
}
