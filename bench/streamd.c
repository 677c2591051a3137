/*
 * streamd.c - a fast Kubernetes LIST/WATCH server for the benchmarks.
 *
 * Serves pre-serialised Pods (~3.6 KB an event line) or core/v1 Events
 * (~1.2 KB) from memory over plain HTTP/1.1 on 127.0.0.1 (port 0, the
 * chosen port written to --port-file):
 *   GET <collection>?limit=&continue=        LIST page (Content-Length)
 *   GET <collection>?watch=1&resourceVersion= WATCH, chunked NDJSON, one
 *                                            chunk per event line
 *   ...&sendInitialEvents=true               watch-list: the LIST's objects
 *                                            as ADDED, the initial-events-end
 *                                            BOOKMARK, then the WATCH
 * Watch event seq s (0-based) is object k = s % pool, resourceVersion
 * 200000000000 + s + 1, ADDED when s % 5 == 0 else MODIFIED. Each
 * connection owns a ring of chunk-framed lines and patches uid, name, rv
 * (and with --rate the send time, ns CLOCK_REALTIME, in the annotation
 * bench.kwb/sent-ns) in place before writev, so the cost per event is a
 * few digit writes.
 *
 * Signals: SIGUSR1 opens the --gate (watches hold their events until
 * then); SIGUSR2 starts a relist: the LIST changes (1 % of the listed
 * objects modified, 1 % deleted, 1 % new) and every open watch gets an
 * ERROR 410 Expired event and is closed.
 *
 * --ceiling SECONDS: measure the server's own ceiling: an in-process null
 * reader (another thread) GETs a watch and discards bytes; prints events/s
 * and MB/s and exits.
 *
 * Statistics go to stderr as one line per watch when it ends.
 */
#include "benchgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define RING    1000 /* events per connection ring; multiple of 5 * NVAR */
#define BATCH   64   /* events per writev in fast mode */
#define REQ_MAX 16384

struct opts {
    const char *kind;
    const char *port_file;
    uint64_t count; /* watch events in total; 0 = unlimited */
    double rate;    /* events/s; 0 = as fast as the socket takes */
    uint64_t pool;  /* objects the watch cycles over */
    uint64_t list;  /* objects in LIST */
    int gate;
    double ceiling; /* seconds; 0 = serve */
};

static struct opts opt = {
    .kind = "pods",
    .pool = 10000,
};
static struct kwb_bgen gen;
static atomic_int gate_open;
static atomic_int list_gen;
static atomic_uint_fast64_t head;         /* highest watch seq handed out + 1 */
static atomic_uint_fast64_t watch_events; /* sent, all watches */
static int listen_fd = -1;

static void on_usr1(int sig)
{
    (void)sig;
    atomic_store(&gate_open, 1);
}

static void on_usr2(int sig)
{
    (void)sig;
    atomic_fetch_add(&list_gen, 1);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int writev_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t w = writev(fd, iov, cnt > 1024 ? 1024 : cnt);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        while (cnt > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* ---- watch -------------------------------------------------------------- */

struct slot {
    char *chunk; /* "<hex>\r\n" line "\r\n" */
    size_t len;
    char *obj; /* inside chunk */
    const struct kwb_bgen_tmpl *t;
};

struct ring {
    char *mem;
    struct slot s[RING];
};

static int ring_init(struct ring *r)
{
    size_t total = 0, off = 0;

    for (int j = 0; j < RING; j++) {
        total += gen.var[j % KWB_BGEN_NVAR].len + 64;
    }
    r->mem = malloc(total);
    if (!r->mem) {
        return -1;
    }
    for (int j = 0; j < RING; j++) {
        const struct kwb_bgen_tmpl *t = &gen.var[j % KWB_BGEN_NVAR];
        char pre[64];
        int n = snprintf(pre, sizeof(pre), "{\"type\":\"%s\",\"object\":",
                         kwb_bgen_type((uint64_t)j));
        size_t line = (size_t)n + t->len + 2;
        int h = snprintf(r->mem + off, 16, "%zx\r\n", line);
        struct slot *s = &r->s[j];

        s->chunk = r->mem + off;
        memcpy(s->chunk + h, pre, (size_t)n);
        s->obj = s->chunk + h + n;
        memcpy(s->obj, t->obj, t->len);
        memcpy(s->obj + t->len, "}\n\r\n", 4);
        s->len = (size_t)h + line + 2;
        s->t = t;
        off += s->len;
    }
    return 0;
}

static void ring_patch(struct ring *r, uint64_t seq, uint64_t ts)
{
    struct slot *s = &r->s[seq % RING];

    kwb_bgen_patch(s->t, s->obj, seq % opt.pool, KWB_BGEN_WATCH_RV + seq + 1,
                   ts);
}

/* Object i of the LIST at generation g; 0 when it is deleted there.
 * Generation >0: i % 100 == 1 deleted, i % 100 == 2 modified, and
 * list/100 new objects after the original ones. */
static int list_obj(uint64_t i, int g, uint64_t *k, uint64_t *rv)
{
    *k = i;
    *rv = KWB_BGEN_RV_BASE + i;
    if (g > 0) {
        if (i % 100 == 1) {
            return 0;
        }
        if (i % 100 == 2) {
            *rv = KWB_BGEN_RV_BASE + 50000000000ull + i + (uint64_t)g;
        }
    }
    return 1;
}

/*
 * watch-list (sendInitialEvents=true): the LIST's objects as ADDED events,
 * then a BOOKMARK with the k8s.io/initial-events-end annotation at the
 * list's resourceVersion. 0 or -1 on a write error.
 */
static int send_initial(int fd, int g)
{
    uint64_t total = opt.list + (g > 0 ? opt.list / 100 : 0);
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    int rc = -1;

    if (!buf) {
        return -1;
    }
    for (uint64_t j = 0; j < total; j++) {
        uint64_t k, rv;
        const struct kwb_bgen_tmpl *t;
        char pre[64];
        int n, h;

        if (j >= opt.list) {
            k = j;
            rv = KWB_BGEN_RV_BASE + 60000000000ull + j;
        } else if (!list_obj(j, g, &k, &rv)) {
            continue;
        }
        t = kwb_bgen_var(&gen, k);
        if (len + t->len + 128 > cap) {
            if (write_all(fd, buf, len) < 0) {
                goto out;
            }
            len = 0;
        }
        n = snprintf(pre, sizeof(pre), "{\"type\":\"ADDED\",\"object\":");
        h = snprintf(buf + len, 32, "%zx\r\n", (size_t)n + t->len + 2);
        len += (size_t)h;
        memcpy(buf + len, pre, (size_t)n);
        len += (size_t)n;
        memcpy(buf + len, t->obj, t->len);
        kwb_bgen_patch(t, buf + len, k, rv, 0);
        len += t->len;
        memcpy(buf + len, "}\n\r\n", 4);
        len += 4;
    }
    {
        char bm[512];
        int n = snprintf(bm, sizeof(bm),
                         "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":"
                         "\"%s\",\"apiVersion\":\"v1\",\"metadata\":{"
                         "\"resourceVersion\":\"%" PRIu64 "\",\"annotations\":"
                         "{\"k8s.io/initial-events-end\":\"true\"}}}}\n",
                         gen.kind == KWB_BGEN_PODS ? "Pod" : "Event",
                         (uint64_t)(KWB_BGEN_WATCH_RV + atomic_load(&head)));
        int h = snprintf(buf + len, cap - len, "%x\r\n%s\r\n", n, bm);
        len += (size_t)h;
    }
    rc = write_all(fd, buf, len);
out:
    free(buf);
    return rc;
}

static const char expired[] =
    "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":"
    "\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"too old "
    "resource version\",\"reason\":\"Expired\",\"code\":410}}\n";

/* 1 when the peer closed (or sent something we do not expect). */
static int peer_gone(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char b[256];

    if (poll(&p, 1, ms) > 0) {
        ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
        return n <= 0 ? (n == 0 || (errno != EAGAIN && errno != EINTR)) : 0;
    }
    return 0;
}

static void sleep_until(double t)
{
    struct timespec ts;

    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
           EINTR) {
    }
}

static void serve_watch(int fd, uint64_t from_rv, int initial)
{
    static const char hdr[] = "HTTP/1.1 200 OK\r\n"
                              "Content-Type: application/json\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n";
    struct ring r = {0};
    struct iovec iov[BATCH];
    uint64_t seq =
        from_rv > KWB_BGEN_WATCH_RV ? from_rv - KWB_BGEN_WATCH_RV : 0;
    uint64_t start = seq, end = opt.count ? opt.count : UINT64_MAX;
    int gen0 = atomic_load(&list_gen);
    double t0 = 0, t1 = 0;
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (ring_init(&r) < 0 || write_all(fd, hdr, sizeof(hdr) - 1) < 0) {
        goto out;
    }
    if (initial) {
        /* The stream continues after the list's resourceVersion. */
        seq = start = atomic_load(&head);
        if (send_initial(fd, gen0) < 0) {
            goto out;
        }
    }
    while (opt.gate && !atomic_load(&gate_open) &&
           atomic_load(&list_gen) == gen0) {
        if (peer_gone(fd, 5)) {
            goto out;
        }
    }
    t0 = kwb_bgen_mono();
    while (seq < end) {
        int cnt = 0;
        uint64_t n;

        if (atomic_load(&list_gen) != gen0) {
            break;
        }
        if (opt.rate > 0) {
            /* Paced: every millisecond, the events due by now. */
            double now = kwb_bgen_mono();
            uint64_t due = start + (uint64_t)((now - t0) * opt.rate) + 1;
            if (due <= seq) {
                sleep_until(t0 + (double)(seq - start) / opt.rate);
                continue;
            }
            n = due - seq;
        } else {
            n = BATCH;
        }
        if (n > BATCH) {
            n = BATCH;
        }
        if (n > end - seq) {
            n = end - seq;
        }
        uint64_t ts = opt.rate > 0 ? kwb_bgen_now_ns() : 0;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t s = seq + i;
            /* Stop at the ring's end: a slot appears once per writev. */
            if (i > 0 && s % RING == 0) {
                break;
            }
            ring_patch(&r, s, ts);
            iov[cnt].iov_base = r.s[s % RING].chunk;
            iov[cnt].iov_len = r.s[s % RING].len;
            cnt++;
        }
        if (writev_all(fd, iov, cnt) < 0) {
            goto out;
        }
        seq += (uint64_t)cnt;
        atomic_fetch_add(&watch_events, (uint64_t)cnt);
        uint64_t h = atomic_load(&head);
        while (h < seq && !atomic_compare_exchange_weak(&head, &h, seq)) {
        }
    }
    t1 = kwb_bgen_mono();
    fprintf(stderr,
            "{\"msg\":\"watch done\",\"events\":%" PRIu64
            ",\"seconds\":%.3f}\n",
            seq - start, t1 - t0);
    /* All sent: stay open (a real watch is long-lived) until the peer
     * goes, or a relist closes it with 410. */
    while (atomic_load(&list_gen) == gen0) {
        if (peer_gone(fd, 5)) {
            goto out;
        }
    }
    {
        char c[512];
        int h = snprintf(c, sizeof(c), "%zx\r\n%s\r\n0\r\n\r\n",
                         sizeof(expired) - 1, expired);
        write_all(fd, c, (size_t)h);
    }
out:
    free(r.mem);
}

/* ---- list --------------------------------------------------------------- */

static int serve_list(int fd, uint64_t limit, uint64_t cont)
{
    int g = atomic_load(&list_gen);
    uint64_t total = opt.list + (g > 0 ? opt.list / 100 : 0);
    uint64_t i = cont, n = 0;
    size_t cap = 4096, len = 0;
    char *body = NULL;
    char hdr[256];
    int rc = -1, h;

    if (limit == 0 || limit > total - (i < total ? i : total)) {
        limit = total - (i < total ? i : total);
    }
    for (uint64_t j = i; j < i + limit; j++) {
        cap += gen.var[j % KWB_BGEN_NVAR].len + 1;
    }
    body = malloc(cap);
    if (!body) {
        goto out;
    }
    len = (size_t)snprintf(body, cap,
                           "{\"kind\":\"%s\",\"apiVersion\":\"v1\","
                           "\"metadata\":{\"resourceVersion\":\"%" PRIu64 "\"",
                           gen.list_kind,
                           (uint64_t)(KWB_BGEN_WATCH_RV + atomic_load(&head)));
    i += limit;
    if (i < total) {
        len += (size_t)snprintf(body + len, cap - len,
                                ",\"continue\":\"%" PRIu64
                                "\",\"remainingItemCount\":%" PRIu64,
                                i, total - i);
    }
    len += (size_t)snprintf(body + len, cap - len, "},\"items\":[");
    n = 0;
    for (uint64_t j = cont; j < i; j++) {
        uint64_t k, rv;
        const struct kwb_bgen_tmpl *t;

        if (j >= opt.list) {
            k = j; /* new objects continue the numbering */
            rv = KWB_BGEN_RV_BASE + 60000000000ull + j;
        } else if (!list_obj(j, g, &k, &rv)) {
            continue;
        }
        t = kwb_bgen_var(&gen, k);
        if (n++) {
            body[len++] = ',';
        }
        memcpy(body + len, t->obj, t->len);
        kwb_bgen_patch(t, body + len, k, rv, 0);
        len += t->len;
    }
    memcpy(body + len, "]}", 2);
    len += 2;
    h = snprintf(hdr, sizeof(hdr),
                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n",
                 len);
    struct iovec iov[2] = {{hdr, (size_t)h}, {body, len}};
    rc = writev_all(fd, iov, 2);
out:
    free(body);
    return rc;
}

/* ---- connections -------------------------------------------------------- */

static int query_u64(const char *q, const char *key, uint64_t *v)
{
    size_t kl = strlen(key);

    for (const char *p = q; p && *p;) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            *v = strtoull(p + kl + 1, NULL, 10);
            return 1;
        }
        p = strchr(p, '&');
        if (p) {
            p++;
        }
    }
    return 0;
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char req[REQ_MAX + 1];
    size_t have = 0;

    for (;;) {
        char *end, *sp, *q;
        uint64_t watch = 0, rv = 0, limit = 0, cont = 0;
        int initial = 0;
        ssize_t n;

        while (!(end = memmem(req, have, "\r\n\r\n", 4))) {
            if (have == REQ_MAX) {
                goto out;
            }
            n = read(fd, req + have, REQ_MAX - have);
            if (n <= 0) {
                goto out;
            }
            have += (size_t)n;
        }
        *end = '\0';
        sp = strchr(req, ' ');
        if (!sp || strncmp(req, "GET ", 4) != 0) {
            goto out;
        }
        q = strchr(sp + 1, '?');
        if (q) {
            char *e = strchr(q, ' ');
            if (e) {
                *e = '\0';
            }
            q++;
            query_u64(q, "watch", &watch);
            query_u64(q, "resourceVersion", &rv);
            query_u64(q, "limit", &limit);
            query_u64(q, "continue", &cont);
            initial = strstr(q, "sendInitialEvents=true") != NULL;
        }
        if (watch) {
            serve_watch(fd, rv, initial);
            goto out;
        }
        if (serve_list(fd, limit, cont) < 0) {
            goto out;
        }
        have -= (size_t)(end + 4 - req);
        memmove(req, end + 4, have);
    }
out:
    close(fd);
    return NULL;
}

static void *accept_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        pthread_t t;

        if (fd < 0) {
            if (errno == EINTR) {
                continue;
            }
            return NULL;
        }
        if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)fd) != 0) {
            close(fd);
            continue;
        }
        pthread_detach(t);
    }
}

/* ---- the null reader ---------------------------------------------------- */

static int null_reader(int port, double secs)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    char req[256];
    static char buf[1 << 20];
    uint64_t bytes = 0, e0;
    double t0, t;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        perror("connect");
        return -1;
    }
    snprintf(req, sizeof(req),
             "GET /api/v1/%s?watch=1&resourceVersion=0 HTTP/1.1\r\n"
             "Host: 127.0.0.1\r\n\r\n",
             gen.resource);
    if (write_all(fd, req, strlen(req)) < 0) {
        return -1;
    }
    /* Warm up, then measure. */
    t0 = kwb_bgen_mono();
    while (kwb_bgen_mono() - t0 < 0.3) {
        if (read(fd, buf, sizeof(buf)) <= 0) {
            return -1;
        }
    }
    e0 = atomic_load(&watch_events);
    t0 = kwb_bgen_mono();
    do {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
            return -1;
        }
        bytes += (uint64_t)n;
        t = kwb_bgen_mono();
    } while (t - t0 < secs);
    uint64_t ev = atomic_load(&watch_events) - e0;
    printf("streamd ceiling (%s, null reader, %.1f s): %.0f events/s, "
           "%.0f MB/s, %.0f bytes/event\n",
           gen.resource, t - t0, (double)ev / (t - t0),
           (double)bytes / (t - t0) / 1e6, (double)bytes / (double)ev);
    close(fd);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: streamd [--kind pods|events] [--port-file F] "
                    "[--count N] [--rate EV/S] [--pool N] [--list N] [--gate] "
                    "[--ceiling SECONDS]\n");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"kind", 1, NULL, 'k'},  {"port-file", 1, NULL, 'p'},
        {"count", 1, NULL, 'c'}, {"rate", 1, NULL, 'r'},
        {"pool", 1, NULL, 'P'},  {"list", 1, NULL, 'l'},
        {"gate", 0, NULL, 'g'},  {"ceiling", 1, NULL, 'C'},
        {NULL, 0, NULL, 0}};
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);
    pthread_t t;
    int c, one = 1;

    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'k':
            opt.kind = optarg;
            break;
        case 'p':
            opt.port_file = optarg;
            break;
        case 'c':
            opt.count = strtoull(optarg, NULL, 10);
            break;
        case 'r':
            opt.rate = strtod(optarg, NULL);
            break;
        case 'P':
            opt.pool = strtoull(optarg, NULL, 10);
            break;
        case 'l':
            opt.list = strtoull(optarg, NULL, 10);
            break;
        case 'g':
            opt.gate = 1;
            break;
        case 'C':
            opt.ceiling = strtod(optarg, NULL);
            break;
        default:
            usage();
            return 2;
        }
    }
    if (opt.pool == 0 || opt.pool % (5 * KWB_BGEN_NVAR) != 0) {
        fprintf(stderr, "--pool must be a positive multiple of %d\n",
                5 * KWB_BGEN_NVAR);
        return 2;
    }
    if (kwb_bgen_init(&gen, opt.kind) < 0) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, on_usr2);
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof(a)) ||
        listen(listen_fd, 64) ||
        getsockname(listen_fd, (struct sockaddr *)&a, &alen)) {
        perror("listen");
        return 1;
    }
    if (pthread_create(&t, NULL, accept_main, NULL) != 0) {
        return 1;
    }
    if (opt.ceiling > 0) {
        opt.gate = 0;
        opt.rate = 0;
        opt.count = 0;
        return null_reader(ntohs(a.sin_port), opt.ceiling) < 0;
    }
    if (opt.port_file) {
        char tmp[4096];
        FILE *f;
        snprintf(tmp, sizeof(tmp), "%s.tmp", opt.port_file);
        f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", ntohs(a.sin_port)) < 0 || fclose(f) ||
            rename(tmp, opt.port_file)) {
            perror("port file");
            return 1;
        }
    }
    fprintf(stderr, "{\"msg\":\"listening\",\"port\":%d}\n", ntohs(a.sin_port));
    pthread_join(t, NULL);
    kwb_bgen_free(&gen);
    return 0;
}
