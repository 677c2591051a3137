/*
 * test_kube.c - kwb_kube_get's body buffer against a one-answer-per-
 * connection HTTP server on 127.0.0.1 (ephemeral port, a thread of this
 * test): the pages of a list share one buffer, whose pages go back to the
 * system when the list drops it; an error body is parsed as a Status.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "check.h"
#include "config.h"
#include "kube.h"
#include "kubeconfig.h"

#define BIG_LEN ((size_t)3 << 20)

struct server {
    int fd;
    int port;
    int answers; /* connections to serve */
    char *big;   /* BIG_LEN bytes of JSON */
};

static const char small_body[] = "{\"kind\":\"PodList\",\"items\":[]}";
static const char status_body[] = "{\"kind\":\"Status\",\"reason\":\"Expired\","
                                  "\"message\":\"too old resource version\"}";

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        /* The client may hang up first (a body over its limit). */
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Answer one request: the path picks the body. */
static void answer(struct server *s, int c)
{
    char req[4096], head[256];
    size_t got = 0;
    const char *body = small_body, *status = "200 OK";
    size_t len = sizeof(small_body) - 1;

    while (got < sizeof(req) - 1) {
        ssize_t n = read(c, req + got, sizeof(req) - 1 - got);
        if (n <= 0) {
            return;
        }
        got += (size_t)n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n")) {
            break;
        }
    }
    if (strncmp(req, "GET /big ", 9) == 0) {
        body = s->big;
        len = BIG_LEN;
    } else if (strncmp(req, "GET /gone ", 10) == 0) {
        body = status_body;
        len = sizeof(status_body) - 1;
        status = "410 Gone";
    }
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, len);
    if (write_all(c, head, (size_t)n) == 0) {
        write_all(c, body, len);
    }
}

static void *serve(void *arg)
{
    struct server *s = arg;

    for (int i = 0; i < s->answers; i++) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) {
            break;
        }
        answer(s, c);
        close(c);
    }
    return NULL;
}

static int listen_local(struct server *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(s->fd, 8) < 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &alen) < 0) {
        return -1;
    }
    s->port = ntohs(a.sin_port);
    return 0;
}

/* Is the page at p mapped? mincore fails with ENOMEM on an unmapped one. */
static int mapped(void *p)
{
    unsigned char vec;

    return mincore(p, 4096, &vec) == 0;
}

int main(void)
{
    struct server s = {.answers = 4};
    struct kwb_config cfg;
    struct kwb_kube_auth *auth = NULL;
    struct kwb_kube *k = NULL;
    struct kwb_kube_resp r = {0};
    pthread_t t;
    char url[128], err[512];
    char *first;
    size_t cap;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    s.big = malloc(BIG_LEN);
    if (!s.big || listen_local(&s) < 0 ||
        pthread_create(&t, NULL, serve, &s) != 0) {
        perror("server");
        return 1;
    }
    /* A JSON string of BIG_LEN bytes: "xxx...x" */
    memset(s.big, 'x', BIG_LEN);
    s.big[0] = s.big[BIG_LEN - 1] = '"';

    memset(&cfg, 0, sizeof(cfg));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", s.port);
    cfg.server = url;
    cfg.connect_timeout_s = 5;
    cfg.stall_timeout_s = 10;
    CHECK_EQ_INT(kwb_kube_auth_resolve(&cfg, &auth, err, sizeof(err)), 0);
    k = kwb_kube_new(auth, &cfg);
    CHECK(k != NULL);

    /* A large page: the body grows to hold it. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/big", s.port);
    CHECK_EQ_INT(kwb_kube_get(k, url, (size_t)1 << 30, NULL, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(r.body_len, BIG_LEN);
    CHECK(r.body_cap > BIG_LEN);
    CHECK(r.body && memcmp(r.body, s.big, BIG_LEN) == 0 &&
          r.body[BIG_LEN] == '\0');
    first = r.body;
    cap = r.body_cap;

    /* The next page reuses the buffer: no new allocation per page. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/small", s.port);
    CHECK_EQ_INT(kwb_kube_get(k, url, (size_t)1 << 30, NULL, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.body == first);
    CHECK_EQ_INT(r.body_cap, cap);
    CHECK_EQ_INT(r.body_len, sizeof(small_body) - 1);
    CHECK_EQ_STR(r.body, small_body);

    /* The list is done: the buffer's pages are handed back at once, the
     * status stays. */
    CHECK(mapped(first));
    kwb_kube_resp_drop_body(&r);
    CHECK(r.body == NULL && r.body_len == 0 && r.body_cap == 0);
    CHECK(!mapped(first));
    CHECK_EQ_INT(r.status, 200);

    /* An error answer: the body is a Status, parsed into the messages. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/gone", s.port);
    CHECK_EQ_INT(kwb_kube_get(k, url, (size_t)1 << 30, NULL, &r), 0);
    CHECK_EQ_INT(r.status, 410);
    CHECK_EQ_STR(r.reason, "Expired");
    CHECK_EQ_STR(r.errmsg, "too old resource version");

    /* Too large for max_body: refused, and the buffer stays bounded. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/big", s.port);
    CHECK(kwb_kube_get(k, url, 1 << 20, NULL, &r) < 0);
    CHECK_EQ_INT(r.truncated, 1);
    CHECK(r.body_cap <= (size_t)2 << 20);
    CHECK(strstr(r.errmsg, "response larger than 1048576 bytes") != NULL);
    kwb_kube_resp_reset(&r);
    CHECK(r.body == NULL && r.body_cap == 0 && r.status == 0);

    pthread_join(t, NULL);
    close(s.fd);
    kwb_kube_free(k);
    kwb_kube_auth_free(auth);
    free(s.big);
    curl_global_cleanup();
    return check_report();
}
