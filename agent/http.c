/*
 * http.c - /metrics, /healthz and /readyz on libmicrohttpd. See http.h.
 *
 * Thread: MHD's internal polling thread calls answer(); it reads the
 * metrics' atomics only and allocates nothing but the rendered page.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "log.h"

#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TYPE_TEXT    "text/plain; charset=utf-8"

struct kwb_http {
    struct MHD_Daemon *daemon;
    struct kwb_metrics *metrics;
    int port;
    /* 0 while kwb_http_start runs: its failures reach the caller through
     * errbuf, so MHD's own messages about them are only debug. */
    atomic_int started;
};

int kwb_http_parse_address(const char *address, char *host, size_t hostsize,
                           int *port, char *errbuf, size_t errsize)
{
    const char *h, *hend, *p;
    char *end;
    long v;

    if (!address || !*address) {
        snprintf(errbuf, errsize, "metrics_address is empty");
        return -EINVAL;
    }
    if (address[0] == '[') {
        h = address + 1;
        hend = strchr(h, ']');
        if (!hend || hend[1] != ':') {
            snprintf(errbuf, errsize,
                     "metrics_address \"%s\": expected \"[ipv6]:port\"",
                     address);
            return -EINVAL;
        }
        p = hend + 2;
    } else {
        h = address;
        hend = strrchr(address, ':');
        if (!hend) {
            snprintf(errbuf, errsize,
                     "metrics_address \"%s\": expected \"host:port\"", address);
            return -EINVAL;
        }
        if (memchr(h, ':', (size_t)(hend - h))) {
            snprintf(errbuf, errsize,
                     "metrics_address \"%s\": IPv6 addresses need brackets, "
                     "as in \"[::1]:9090\"",
                     address);
            return -EINVAL;
        }
        p = hend + 1;
    }
    if ((size_t)(hend - h) >= hostsize) {
        snprintf(errbuf, errsize, "metrics_address \"%s\": host too long",
                 address);
        return -EINVAL;
    }
    if (*p < '0' || *p > '9') {
        snprintf(errbuf, errsize,
                 "metrics_address \"%s\": port must be a number 0-65535",
                 address);
        return -EINVAL;
    }
    errno = 0;
    v = strtol(p, &end, 10);
    if (errno || *end || v < 0 || v > 65535) {
        snprintf(errbuf, errsize,
                 "metrics_address \"%s\": port must be a number 0-65535",
                 address);
        return -EINVAL;
    }
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = '\0';
    *port = (int)v;
    return 0;
}

/* Resolve host (empty = all IPv4 interfaces) into *ss with the port set. */
static int resolve(const char *address, const char *host, int port,
                   struct sockaddr_storage *ss, socklen_t *sslen, char *errbuf,
                   size_t errsize)
{
    struct addrinfo hints = {0};
    struct addrinfo *res = NULL;
    int rc;

    memset(ss, 0, sizeof(*ss));
    if (!*host) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;

        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        sin->sin_port = htons((uint16_t)port);
        *sslen = sizeof(*sin);
        return 0;
    }
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(errbuf, errsize, "metrics_address \"%s\": %s", address,
                 rc ? gai_strerror(rc) : "no address");
        if (res) {
            freeaddrinfo(res);
        }
        return -EINVAL;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    if (ss->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    } else {
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    }
    freeaddrinfo(res);
    return 0;
}

/* MHD does not report why it could not listen; binding a probe socket the
 * same way recovers the errno for the message. */
static int bind_errno(const struct sockaddr_storage *ss, socklen_t sslen)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int err = 0;
    int on = 1;

    if (fd < 0) {
        return errno;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(fd, (const struct sockaddr *)ss, sslen) < 0) {
        err = errno;
    }
    close(fd);
    return err;
}

__attribute__((format(printf, 2, 0))) static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct kwb_http *h = cls;
    int level = atomic_load(&h->started) ? KWB_LOG_WARN : KWB_LOG_DEBUG;
    char msg[512];
    size_t n;

    if (!kwb_log_enabled(level)) {
        return;
    }
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0) {
        return;
    }
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
        msg[--n] = '\0';
    }
    kwb_log_kv(level, "http", NULL, "%s", msg);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status,
                             const char *content_type, char *body,
                             enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(strlen(body), body, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE) {
            free(body);
        }
        return MHD_NO;
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                content_type) != MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                                "no-store") != MHD_YES) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") !=
            MHD_YES) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result reply_static(struct MHD_Connection *conn,
                                    unsigned int status, const char *body)
{
    return reply(conn, status, CONTENT_TYPE_TEXT, (char *)body,
                 MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    struct kwb_http *h = cls;
    const struct kwb_metrics *m = h->metrics;

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        return reply_static(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                            "method not allowed\n");
    }
    if (strcmp(url, "/metrics") == 0) {
        char *page = kwb_metrics_render(m, kwb_now_ms());

        if (!page) {
            return reply_static(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                "out of memory\n");
        }
        return reply(conn, MHD_HTTP_OK, CONTENT_TYPE_METRICS, page,
                     MHD_RESPMEM_MUST_FREE);
    }
    if (strcmp(url, "/healthz") == 0) {
        if (kwb_metrics_healthy(m, kwb_now_ms())) {
            return reply_static(conn, MHD_HTTP_OK, "ok\n");
        }
        return reply_static(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "pipeline stalled\n");
    }
    if (strcmp(url, "/readyz") == 0) {
        if (kwb_metrics_ready(m)) {
            return reply_static(conn, MHD_HTTP_OK, "ready\n");
        }
        return reply_static(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready\n");
    }
    return reply_static(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

struct kwb_http *kwb_http_start(const char *address, struct kwb_metrics *m,
                                char *errbuf, size_t errsize)
{
    struct kwb_http *h = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    char host[256];
    int port = 0;
    unsigned int flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *info;

    if (kwb_http_parse_address(address, host, sizeof(host), &port, errbuf,
                               errsize) < 0) {
        goto fail;
    }
    if (resolve(address, host, port, &ss, &sslen, errbuf, errsize) < 0) {
        goto fail;
    }
    if (ss.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(errbuf, errsize, "metrics_address \"%s\": out of memory",
                 address);
        goto fail;
    }
    h->metrics = m;
    atomic_init(&h->started, 0);
    h->daemon = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, answer, h,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64, MHD_OPTION_END);
    if (!h->daemon) {
        int err = bind_errno(&ss, sslen);

        snprintf(errbuf, errsize, "metrics_address \"%s\": cannot listen: %s",
                 address, err ? strerror(err) : "HTTP server failed to start");
        goto fail;
    }
    info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : port;
    if (h->port == 0) {
        snprintf(errbuf, errsize,
                 "metrics_address \"%s\": cannot find the bound port", address);
        goto fail;
    }
    atomic_store(&h->started, 1);
    return h;

fail:
    kwb_http_stop(h);
    return NULL;
}

void kwb_http_stop(struct kwb_http *h)
{
    if (!h) {
        return;
    }
    if (h->daemon) {
        MHD_stop_daemon(h->daemon);
    }
    free(h);
}

int kwb_http_port(const struct kwb_http *h)
{
    return h->port;
}
