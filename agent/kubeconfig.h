/*
 * kubeconfig.h - how to reach the cluster: server URL, TLS material and
 * bearer token, resolved once at start.
 *
 * Resolution order (SPEC: "default: in-cluster, then kubeconfig"):
 *   1. cluster.server from the config, with token_file, ca_file,
 *      client_cert_file/client_key_file, insecure_skip_tls_verify.
 *   2. In-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT both
 *      set; token, ca.crt and namespace under cfg->serviceaccount_dir
 *      (default /var/run/secrets/kubernetes.io/serviceaccount).
 *   3. A kubeconfig: cluster.kubeconfig, else the first non-empty path of
 *      $KUBECONFIG (no merging of several files), else ~/.kube/config.
 * With a kubeconfig: cfg->context or current-context; relative paths are
 * relative to the kubeconfig file's directory; exec and auth-provider
 * plugins, basic auth, impersonation and tls-server-name are rejected with
 * a clear error.
 * In cases 2 and 3, token_file, ca_file, client_cert_file/client_key_file
 * and insecure_skip_tls_verify from the config, when set, take precedence
 * over what was found (as kubectl's flags do).
 *
 * A plain http:// server needs no token and gets no TLS options; a token,
 * when one is configured, is still sent.
 *
 * Callers: main (resolve once, free last), kube.c and leader.c (apply on
 * each request, invalidate after a 401).
 * Thread: the object is read-only after resolve, except the token cache,
 * which a mutex guards; apply and invalidate may be called from any thread.
 * Locks: `lock` guards the token cache only; never held across logging.
 * Never logs a token.
 */
#ifndef KWB_KUBECONFIG_H
#define KWB_KUBECONFIG_H

#include <stddef.h>

struct kwb_config;
struct curl_slist;
struct kwb_kube_auth;

/* Largest token file or kubeconfig we read. */
#define KWB_KUBE_TOKEN_MAX (64 * 1024)
#define KWB_KUBECONFIG_MAX (16 * 1024 * 1024)

/*
 * Resolve how to reach the cluster from cfg (borrowed; not kept). Reads
 * files (kubeconfig, token, certificates) but does no network I/O. On
 * success returns 0 and *out (free with kwb_kube_auth_free). On failure a
 * negative errno and a message naming the file (with line for YAML) and the
 * field in errbuf.
 */
int kwb_kube_auth_resolve(const struct kwb_config *cfg,
                          struct kwb_kube_auth **out, char *errbuf,
                          size_t errsize);

/*
 * The kubeconfig step alone, on kubeconfig text already in memory: data
 * (len bytes, borrowed) as if read from `path`, which names it in messages
 * and whose directory anchors relative paths. cfg supplies context and
 * overrides.
 * For resolve, the unit tests and the fuzzer.
 */
int kwb_kube_auth_from_kubeconfig_mem(const char *data, size_t len,
                                      const char *path,
                                      const struct kwb_config *cfg,
                                      struct kwb_kube_auth **out, char *errbuf,
                                      size_t errsize);

/* "https://10.0.0.1:443": no trailing slash. Borrowed from a. */
const char *kwb_kube_auth_server(const struct kwb_kube_auth *a);
/* "config", "in-cluster" or "kubeconfig:/path" (for logs). */
const char *kwb_kube_auth_source(const struct kwb_kube_auth *a);
/* The namespace the source names (in-cluster namespace file, kubeconfig
 * context namespace), or NULL. Borrowed. */
const char *kwb_kube_auth_namespace(const struct kwb_kube_auth *a);
/* The context used ("" unless the source is a kubeconfig). Borrowed. */
const char *kwb_kube_auth_context(const struct kwb_kube_auth *a);

/*
 * One line for the start-up log: source, context, server and where each
 * credential comes from, e.g. "source=kubeconfig:/k context=dev
 * server=https://h:6443 ca=data client-cert=file:/c token=file:/t".
 * Never the token or key material. Returns snprintf's result.
 */
int kwb_kube_auth_describe(const struct kwb_kube_auth *a, char *buf,
                           size_t size);

/*
 * Set TLS options (CA file or blob, client certificate and key, verify
 * flags, proxy) on the curl easy handle and append "Authorization: Bearer
 * ..." to *headers when a token applies (*headers may be NULL; on success
 * it may change; the caller frees it with curl_slist_free_all). A token
 * file is re-read when it changed (inode, size, mtime; checked at most once
 * a second) or after kwb_kube_auth_invalidate. If re-reading fails while a
 * token is cached, the cached token is used (like client-go).
 * Certificate blobs are set without copy: `a` must outlive every handle
 * it was applied to. Returns 0 or a negative errno with errbuf filled.
 */
int kwb_kube_auth_apply(struct kwb_kube_auth *a, void *curl_easy,
                        struct curl_slist **headers, char *errbuf,
                        size_t errsize);

/* After a 401: force the token file to be re-read on the next apply.
 * Returns 1 when a token file is in use (a retry can help), 0 otherwise. */
int kwb_kube_auth_invalidate(struct kwb_kube_auth *a);

/* NULL-safe; wipes tokens and keys. */
void kwb_kube_auth_free(struct kwb_kube_auth *a);

#endif
