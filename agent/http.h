/*
 * http.h - the metrics and probe endpoint on metrics_address.
 *
 *   GET /metrics  Prometheus text format 0.0.4 (kwb_metrics_render)
 *   GET /healthz  200 "ok" while the pipeline heartbeat is recent, else 503
 *   GET /readyz   503 until kwb_metrics_ready(), then 200
 *   HEAD is answered like GET without a body; other methods get 405,
 *   other paths 404.
 *
 * Callers: main.c starts it after the metrics exist and stops it before
 * freeing them. Thread: libmicrohttpd runs one internal polling thread that
 * only loads the metrics' atomics; start and stop run on the main thread.
 */
#ifndef KWB_HTTP_H
#define KWB_HTTP_H

#include <stddef.h>

#include "metrics.h"

struct kwb_http;

/*
 * Listen on `address`: "host:port", "0.0.0.0:9090", "[::1]:9090" or
 * ":9090" (all IPv4 interfaces). Port 0 picks an ephemeral port (see
 * kwb_http_port). `m` is borrowed and must outlive the server. Returns the
 * running server, or NULL with a message in errbuf.
 */
struct kwb_http *kwb_http_start(const char *address, struct kwb_metrics *m,
                                char *errbuf, size_t errsize);

/* Stop the thread and close the socket; NULL-safe. */
void kwb_http_stop(struct kwb_http *h);

/* The port actually bound. */
int kwb_http_port(const struct kwb_http *h);

/*
 * Split "host:port" / "[v6]:port" / ":port" into host (empty for ":port")
 * and port. Returns 0, or -EINVAL with a message in errbuf. Exposed for
 * tests.
 */
int kwb_http_parse_address(const char *address, char *host, size_t hostsize,
                           int *port, char *errbuf, size_t errsize);

#endif
