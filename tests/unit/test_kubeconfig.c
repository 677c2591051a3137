/*
 * test_kubeconfig.c - cluster resolution: explicit server, in-cluster,
 * kubeconfig variants, errors, token rotation.
 *
 * Files live in a fresh temporary directory; certificates are generated
 * here with OpenSSL (EC P-256, self-signed), so nothing outside is read.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "config.h"
#include "kubeconfig.h"

static int passed, failed;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (cond) {                                                            \
            passed++;                                                          \
        } else {                                                               \
            failed++;                                                          \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
        }                                                                      \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                     \
    do {                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                    \
        if (a_ == b_) {                                                        \
            passed++;                                                          \
        } else {                                                               \
            failed++;                                                          \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__,    \
                    __LINE__, #a, a_, b_);                                     \
        }                                                                      \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                     \
    do {                                                                       \
        const char *a_ = (a), *b_ = (b);                                       \
        if (a_ && b_ && strcmp(a_, b_) == 0) {                                 \
            passed++;                                                          \
        } else {                                                               \
            failed++;                                                          \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n",          \
                    __FILE__, __LINE__, #a, a_ ? a_ : "(null)",                \
                    b_ ? b_ : "(null)");                                       \
        }                                                                      \
    } while (0)

/* The string contains `needle`. */
#define CHECK_HAS(hay, needle)                                                 \
    do {                                                                       \
        const char *h_ = (hay), *n_ = (needle);                                \
        if (h_ && strstr(h_, n_)) {                                            \
            passed++;                                                          \
        } else {                                                               \
            failed++;                                                          \
            fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n",         \
                    __FILE__, __LINE__, h_ ? h_ : "(null)", n_);               \
        }                                                                      \
    } while (0)

static char tmpdir[256];
static char *cert_pem, *key_pem, *cert_b64, *key_b64;

static char *path_in(const char *name)
{
    static char buf[4][512];
    static int i;

    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmpdir, name);
    return buf[i];
}

static void write_file(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void write_file(const char *name, const char *fmt, ...)
{
    char tmp[600];
    va_list ap;
    FILE *f;

    /* Write then rename, so a rewrite is a new inode (as kubelet does). */
    snprintf(tmp, sizeof(tmp), "%s.tmp", path_in(name));
    f = fopen(tmp, "w");
    if (!f) {
        perror(tmp);
        exit(1);
    }
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    if (fclose(f) != 0 || rename(tmp, path_in(name)) != 0) {
        perror(name);
        exit(1);
    }
}

static char *bio_string(BIO *b)
{
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = malloc((size_t)n + 1);

    memcpy(s, p, (size_t)n);
    s[n] = '\0';
    return s;
}

static char *b64(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(4 * ((n + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    return out;
}

static void make_cert(void)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    BIO *b;

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, pk);
    X509_sign(x, pk, EVP_sha256());
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    cert_pem = bio_string(b);
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL);
    key_pem = bio_string(b);
    BIO_free(b);
    X509_free(x);
    EVP_PKEY_free(pk);
    cert_b64 = b64(cert_pem);
    key_b64 = b64(key_pem);
}

static void cfg_reset(struct kwb_config *cfg)
{
    static char sa[512];

    memset(cfg, 0, sizeof(*cfg));
    snprintf(sa, sizeof(sa), "%s/sa", tmpdir);
    cfg->serviceaccount_dir = sa;
}

/* The Authorization header apply adds ("" when none; NULL on error). */
static char hdr_buf[256];

static const char *auth_header(struct kwb_kube_auth *a)
{
    CURL *h = curl_easy_init();
    struct curl_slist *l = NULL;
    char err[256];
    int rc = kwb_kube_auth_apply(a, h, &l, err, sizeof(err));

    hdr_buf[0] = '\0';
    for (struct curl_slist *p = l; p; p = p->next) {
        if (strncmp(p->data, "Authorization:", 14) == 0) {
            snprintf(hdr_buf, sizeof(hdr_buf), "%s", p->data);
        }
    }
    curl_slist_free_all(l);
    curl_easy_cleanup(h);
    if (rc < 0) {
        fprintf(stderr, "apply: %s\n", err);
        return NULL;
    }
    return hdr_buf;
}

static const char *describe(struct kwb_kube_auth *a)
{
    static char buf[1024];

    kwb_kube_auth_describe(a, buf, sizeof(buf));
    return buf;
}

/* Resolve from the kubeconfig file `name` in tmpdir. */
static int from_kubeconfig(struct kwb_config *cfg, const char *name,
                           struct kwb_kube_auth **a, char *err, size_t esz)
{
    cfg->kubeconfig = path_in(name);
    return kwb_kube_auth_resolve(cfg, a, err, esz);
}

#define KC_HEAD                                                                \
    "apiVersion: v1\n"                                                         \
    "kind: Config\n"

static void test_current_context_ca_file_token(void)
{
    struct kwb_config cfg;
    struct kwb_kube_auth *a = NULL;
    char err[512] = "";
    char want[600];

    cfg_reset(&cfg);
    write_file("ca.crt", "%s", cert_pem);
    write_file("kc1",
               KC_HEAD "current-context: dev\n"
                       "clusters:\n"
                       "- name: other\n"
                       "  cluster:\n"
                       "    server: https://127.0.0.2:1\n"
                       "- name: c1\n"
                       "  cluster:\n"
                       "    server: https://127.0.0.1:6443/\n"
                       "    certificate-authority: ca.crt\n"
                       "contexts:\n"
                       "- name: dev\n"
                       "  context: {cluster: c1, user: u1, namespace: team-a}\n"
                       "users:\n"
                       "- name: u1\n"
                       "  user:\n"
                       "    token: \"abc.def\"\n");
    CHECK_EQ_INT(from_kubeconfig(&cfg, "kc1", &a, err, sizeof(err)), 0);
    if (!a) {
        fprintf(stderr, "%s\n", err);
        failed++;
        return;
    }
    CHECK_EQ_STR(kwb_kube_auth_server(a), "https://127.0.0.1:6443");
    snprintf(want, sizeof(want), "kubeconfig:%s", path_in("kc1"));
    CHECK_EQ_STR(kwb_kube_auth_source(a), want);
    CHECK_EQ_STR(kwb_kube_auth_namespace(a), "team-a");
    CHECK_EQ_STR(kwb_kube_auth_context(a), "dev");
    /* Relative to the kubeconfig's directory. */
    snprintf(want, sizeof(want), "ca=file:%s/ca.crt", tmpdir);
    CHECK_HAS(describe(a), want);
    CHECK_HAS(describe(a), "tls=verify");
    CHECK_HAS(describe(a), "token=static");
    CHECK(strstr(describe(a), "abc.def") == NULL);
    CHECK_EQ_STR(auth_header(a), "Authorization: Bearer abc.def");
    /* A static token: a retry after a 401 cannot help. */
    CHECK_EQ_INT(kwb_kube_auth_invalidate(a), 0);
    kwb_kube_auth_free(a);
}

static void test_named_context_ca_data_client_cert(void)
{
    struct kwb_config cfg;
    struct kwb_kube_auth *a = NULL;
    char err[512] = "";

    cfg_reset(&cfg);
    cfg.context = "prod";
    write_file("kc2",
               KC_HEAD "current-context: dev\n"
                       "clusters:\n"
                       "- name: c1\n"
                       "  cluster:\n"
                       "    server: https://127.0.0.1:1\n"
                       "- name: c2\n"
                       "  cluster:\n"
                       "    server: 127.0.0.1:6443\n"
                       "    certificate-authority-data: %s\n"
                       "    certificate-authority: /nonexistent/ignored\n"
                       "contexts:\n"
                       "- name: dev\n"
                       "  context: {cluster: c1, user: u1}\n"
                       "- name: prod\n"
                       "  context:\n"
                       "    cluster: c2\n"
                       "    user: admin\n"
                       "users:\n"
                       "- name: admin\n"
                       "  user:\n"
                       "    client-certificate-data: %s\n"
                       "    client-key-data: %s\n",
               cert_b64, cert_b64, key_b64);
    CHECK_EQ_INT(from_kubeconfig(&cfg, "kc2", &a, err, sizeof(err)), 0);
    if (!a) {
        fprintf(stderr, "%s\n", err);
        failed++;
        return;
    }
    /* No scheme means https, as client-go. */
    CHECK_EQ_STR(kwb_kube_auth_server(a), "https://127.0.0.1:6443");
    CHECK_EQ_STR(kwb_kube_auth_context(a), "prod");
    CHECK(kwb_kube_auth_namespace(a) == NULL);
    CHECK_HAS(describe(a), "ca=data");
    CHECK_HAS(describe(a), "client-cert=data");
    CHECK_HAS(describe(a), "token=none");
    /* No token: no header, and the blobs are accepted by curl. */
    CHECK_EQ_STR(auth_header(a), "");
    kwb_kube_auth_free(a);
}

static void test_token_file_relative_insecure(void)
{
    struct kwb_config cfg;
    struct kwb_kube_auth *a = NULL;
    char err[512] = "";
    char want[600];

    cfg_reset(&cfg);
    write_file("cert.pem", "%s", cert_pem);
    write_file("key.pem", "%s", key_pem);
    write_file("tok", "from-file-1\n");
    write_file("kc3", KC_HEAD "current-context: x\n"
                              "clusters:\n"
                              "- name: c\n"
                              "  cluster:\n"
                              "    server: https://[::1]:6443\n"
                              "    insecure-skip-tls-verify: true\n"
                              "contexts:\n"
                              "- name: x\n"
                              "  context:\n"
                              "    cluster: c\n"
                              "    user: u\n"
                              "users:\n"
                              "- name: u\n"
                              "  user:\n"
                              "    token: static-loses\n"
                              "    tokenFile: ./tok\n"
                              "    client-certificate: cert.pem\n"
                              "    client-key: key.pem\n");
    CHECK_EQ_INT(from_kubeconfig(&cfg, "kc3", &a, err, sizeof(err)), 0);
    if (!a) {
        fprintf(stderr, "%s\n", err);
        failed++;
        return;
    }
    CHECK_EQ_STR(kwb_kube_auth_server(a), "https://[::1]:6443");
    CHECK_HAS(describe(a), "tls=insecure");
    snprintf(want, sizeof(want), "client-cert=file:%s/cert.pem", tmpdir);
    CHECK_HAS(describe(a), want);
    snprintf(want, sizeof(want), "token=file:%s/./tok", tmpdir);
    CHECK_HAS(describe(a), want);
    /* tokenFile wins over token, as client-go. */
    CHECK_EQ_STR(auth_header(a), "Authorization: Bearer from-file-1");

    /* Rotation: a new file, then a 401 forces the re-read. */
    write_file("tok", "from-file-2-longer\n");
    CHECK_EQ_INT(kwb_kube_auth_invalidate(a), 1);
    CHECK_EQ_STR(auth_header(a), "Authorization: Bearer from-file-2-longer");
    /* The file vanishes: the cached token is kept. */
    CHECK_EQ_INT(unlink(path_in("tok")), 0);
    CHECK_EQ_INT(kwb_kube_auth_invalidate(a), 1);
    CHECK_EQ_STR(auth_header(a), "Authorization: Bearer from-file-2-longer");
    write_file("tok", "from-file-3\n");
    CHECK_EQ_INT(kwb_kube_auth_invalidate(a), 1);
    CHECK_EQ_STR(auth_header(a), "Authorization: Bearer from-file-3");
    kwb_kube_auth_free(a);
}

/* Resolve kubeconfig `body` and expect failure with all of `needles`. */
static void expect_error(const char *body, const char *ctx, const char *needle1,
                         const char *needle2)
{
    struct kwb_config cfg;
    struct kwb_kube_auth *a = NULL;
    char err[512] = "";
    int rc;

    cfg_reset(&cfg);
    cfg.context = (char *)ctx;
    write_file("kcerr", "%s", body);
    rc = from_kubeconfig(&cfg, "kcerr", &a, err, sizeof(err));
    CHECK(rc < 0);
    CHECK(a == NULL);
    CHECK_HAS(err, needle1);
    if (needle2) {
        CHECK_HAS(err, needle2);
    }
    kwb_kube_auth_free(a);
}

#define KC_MIN_CTX                                                             \
    "clusters:\n"                                                              \
    "- name: c\n"                                                              \
    "  cluster: {server: \"https://127.0.0.1:6443\"}\n"                        \
    "contexts:\n"                                                              \
    "- name: x\n"                                                              \
    "  context: {cluster: c, user: u}\n"

static void test_errors(void)
{
    char want[600];

    expect_error(KC_HEAD "current-context: x\n" KC_MIN_CTX, "missing",
                 "context \"missing\" not found", NULL);
    expect_error(KC_HEAD KC_MIN_CTX, NULL, "no current-context", NULL);
    /* exec plugin: clear error with file and line of the field. */
    snprintf(want, sizeof(want), "%s:13:", path_in("kcerr"));
    expect_error(KC_HEAD "current-context: x\n" KC_MIN_CTX "users:\n"
                         "- name: u\n"
                         "  user:\n"
                         "    exec:\n"
                         "      command: aws\n",
                 NULL, want, "exec credential plugins are not supported");
    expect_error(KC_HEAD "current-context: x\n" KC_MIN_CTX "users:\n"
                         "- name: u\n"
                         "  user:\n"
                         "    auth-provider: {name: gcp}\n",
                 NULL, "auth-provider", "not supported");
    /* Malformed YAML: file and line. */
    snprintf(want, sizeof(want), "%s:4:", path_in("kcerr"));
    expect_error("apiVersion: v1\n"
                 "clusters:\n"
                 "- name: c\n"
                 "  cluster: [server: x\n"
                 "contexts: }\n",
                 NULL, path_in("kcerr"), "YAML");
    expect_error("a: b\n  c: d\n", NULL, path_in("kcerr"), ":2:");
    expect_error(KC_HEAD "current-context: x\n"
                         "contexts:\n"
                         "- name: x\n"
                         "  context: {cluster: c, user: u}\n",
                 NULL, "cluster \"c\"", "not found");
    expect_error(KC_HEAD "current-context: x\n" KC_MIN_CTX, NULL, "user \"u\"",
                 "not found");
    expect_error(KC_HEAD "current-context: x\n" KC_MIN_CTX "users:\n"
                         "- name: u\n"
                         "  user:\n"
                         "    client-certificate-data: \"!!notbase64\"\n",
                 NULL, "client-certificate-data", "invalid base64");
    expect_error(KC_HEAD "current-context: x\n" KC_MIN_CTX "users:\n"
                         "- name: u\n"
                         "  user:\n"
                         "    client-certificate-data: aGVsbG8=\n",
                 NULL, "client-certificate-data", "PEM certificate");
    expect_error(KC_HEAD "current-context: x\n"
                         "clusters:\n"
                         "- name: c\n"
                         "  cluster: {server: \"https://127.0.0.1:6443\", "
                         "certificate-authority: nope.crt}\n"
                         "contexts:\n"
                         "- name: x\n"
                         "  context: {cluster: c}\n",
                 NULL, "certificate-authority", "nope.crt");
    expect_error(KC_HEAD "current-context: x\n"
                         "clusters:\n"
                         "- name: c\n"
                         "  cluster: {server: \"ftp://127.0.0.1\"}\n"
                         "contexts:\n"
                         "- name: x\n"
                         "  context: {cluster: c}\n",
                 NULL, "server", "only http:// and https://");
    expect_error(KC_HEAD "current-context: x\n"
                         "clusters:\n"
                         "- name: c\n"
                         "  cluster: {server: [1, 2]}\n"
                         "contexts:\n"
                         "- name: x\n"
                         "  context: {cluster: c}\n",
                 NULL, "clusters[name=c].cluster.server", "expected a string");
    expect_error("base: &a {x: 1}\nother: *a\n", NULL, "aliases", NULL);
    expect_error("- 1\n- 2\n", NULL, "expected a mapping", NULL);
    expect_error(KC_HEAD "current-context: x\n" KC_MIN_CTX "users:\n"
                         "- name: u\n"
                         "  user:\n"
                         "    token: \"bad\\ntoken\"\n",
                 NULL, "token", "not allowed in an HTTP header");
}

static void test_kubeconfig_env_and_missing(void)
{
    struct kwb_config cfg;
    struct kwb_kube_auth *a = NULL;
    char err[512] = "";
    char env[1200];

    cfg_reset(&cfg);
    write_file("kcenv",
               KC_HEAD "current-context: x\n"
                       "clusters:\n"
                       "- name: c\n"
                       "  cluster: {server: \"http://127.0.0.1:8080\"}\n"
                       "contexts:\n"
                       "- name: x\n"
                       "  context: {cluster: c}\n");
    /* First non-empty entry of the colon list. */
    snprintf(env, sizeof(env), ":%s:%s", path_in("kcenv"), path_in("nope"));
    setenv("KUBECONFIG", env, 1);
    CHECK_EQ_INT(kwb_kube_auth_resolve(&cfg, &a, err, sizeof(err)), 0);
    if (a) {
        CHECK_EQ_STR(kwb_kube_auth_server(a), "http://127.0.0.1:8080");
        CHECK_HAS(describe(a), "tls=off");
        /* Plain http without a token: no header, no TLS, no error. */
        CHECK_EQ_STR(auth_header(a), "");
    } else {
        fprintf(stderr, "%s\n", err);
        failed++;
    }
    kwb_kube_auth_free(a);
    a = NULL;

    setenv("KUBECONFIG", path_in("nope"), 1);
    CHECK(kwb_kube_auth_resolve(&cfg, &a, err, sizeof(err)) < 0);
    CHECK(a == NULL);
    CHECK_HAS(err, "no cluster configured");
    CHECK_HAS(err, path_in("nope"));

    unsetenv("KUBECONFIG");
    setenv("HOME", path_in("home"), 1);
    CHECK(kwb_kube_auth_resolve(&cfg, &a, err, sizeof(err)) < 0);
    CHECK_HAS(err, "home/.kube/config");
}

static void test_in_cluster(void)
{
    struct kwb_config cfg;
    struct kwb_kube_auth *a = NULL;
    char err[512] = "";
    char want[600];

    cfg_reset(&cfg);
    write_file("sa/token", "sa-token-1");
    write_file("sa/ca.crt", "%s", cert_pem);
    write_file("sa/namespace", "kwb-system\n");
    setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    CHECK_EQ_INT(kwb_kube_auth_resolve(&cfg, &a, err, sizeof(err)), 0);
    if (!a) {
        fprintf(stderr, "%s\n", err);
        failed++;
        return;
    }
    CHECK_EQ_STR(kwb_kube_auth_server(a), "https://127.0.0.1:443");
    CHECK_EQ_STR(kwb_kube_auth_source(a), "in-cluster");
    CHECK_EQ_STR(kwb_kube_auth_namespace(a), "kwb-system");
    snprintf(want, sizeof(want), "ca=file:%s/sa/ca.crt", tmpdir);
    CHECK_HAS(describe(a), want);
    CHECK_EQ_STR(auth_header(a), "Authorization: Bearer sa-token-1");
    write_file("sa/token", "sa-token-2");
    CHECK_EQ_INT(kwb_kube_auth_invalidate(a), 1);
    CHECK_EQ_STR(auth_header(a), "Authorization: Bearer sa-token-2");
    kwb_kube_auth_free(a);
    a = NULL;

    /* IPv6 service address gets brackets. */
    setenv("KUBERNETES_SERVICE_HOST", "::1", 1);
    CHECK_EQ_INT(kwb_kube_auth_resolve(&cfg, &a, err, sizeof(err)), 0);
    if (a) {
        CHECK_EQ_STR(kwb_kube_auth_server(a), "https://[::1]:443");
    }
    kwb_kube_auth_free(a);
    a = NULL;

    /* Config overrides: token_file and insecure. */
    write_file("other-token", "override\n");
    cfg.token_file = path_in("other-token");
    cfg.insecure_skip_tls_verify = 1;
    CHECK_EQ_INT(kwb_kube_auth_resolve(&cfg, &a, err, sizeof(err)), 0);
    if (a) {
        CHECK_EQ_STR(auth_header(a), "Authorization: Bearer override");
        CHECK_HAS(describe(a), "tls=insecure");
    }
    kwb_kube_auth_free(a);
    a = NULL;
    cfg.token_file = NULL;
    cfg.insecure_skip_tls_verify = 0;

    /* In-cluster comes before a kubeconfig, even one named in the config
     * (SPEC: "default: in-cluster, then kubeconfig"). */
    write_file("kcic", KC_HEAD "current-context: x\n"
                               "clusters:\n"
                               "- name: c\n"
                               "  cluster: {server: \"http://127.0.0.1:1\"}\n"
                               "contexts:\n"
                               "- name: x\n"
                               "  context: {cluster: c}\n");
    cfg.kubeconfig = path_in("kcic");
    setenv("KUBECONFIG", path_in("kcic"), 1);
    CHECK_EQ_INT(kwb_kube_auth_resolve(&cfg, &a, err, sizeof(err)), 0);
    if (a) {
        CHECK_EQ_STR(kwb_kube_auth_source(a), "in-cluster");
    }
    kwb_kube_auth_free(a);
    a = NULL;
    cfg.kubeconfig = NULL;
    unsetenv("KUBECONFIG");

    /* Missing token: a clear error. */
    CHECK_EQ_INT(unlink(path_in("sa/token")), 0);
    CHECK(kwb_kube_auth_resolve(&cfg, &a, err, sizeof(err)) < 0);
    CHECK_HAS(err, "in-cluster service account token");
    CHECK_HAS(err, "sa/token");

    /* Bad port. */
    write_file("sa/token", "sa-token-3");
    setenv("KUBERNETES_SERVICE_PORT", "https", 1);
    CHECK(kwb_kube_auth_resolve(&cfg, &a, err, sizeof(err)) < 0);
    CHECK_HAS(err, "KUBERNETES_SERVICE_PORT");
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);

    /* An explicit server wins over in-cluster. */
    write_file("cfg-token", "cfg-token\n");
    write_file("client.crt", "%s", cert_pem);
    write_file("client.key", "%s", key_pem);
    cfg.server = "https://127.0.0.1:9443/";
    cfg.token_file = path_in("cfg-token");
    cfg.ca_file = path_in("sa/ca.crt");
    cfg.client_cert_file = path_in("client.crt");
    cfg.client_key_file = path_in("client.key");
    CHECK_EQ_INT(kwb_kube_auth_resolve(&cfg, &a, err, sizeof(err)), 0);
    if (a) {
        CHECK_EQ_STR(kwb_kube_auth_source(a), "config");
        CHECK_EQ_STR(kwb_kube_auth_server(a), "https://127.0.0.1:9443");
        CHECK_EQ_STR(auth_header(a), "Authorization: Bearer cfg-token");
        snprintf(want, sizeof(want), "client-cert=file:%s",
                 path_in("client.crt"));
        CHECK_HAS(describe(a), want);
    }
    kwb_kube_auth_free(a);
    a = NULL;

    /* A key that is not a key. */
    cfg.client_key_file = path_in("client.crt");
    CHECK(kwb_kube_auth_resolve(&cfg, &a, err, sizeof(err)) < 0);
    CHECK_HAS(err, "cluster.client_key_file");
    cfg.client_key_file = NULL;
    CHECK(kwb_kube_auth_resolve(&cfg, &a, err, sizeof(err)) < 0);
    CHECK_HAS(err, "must be set together");
    cfg.client_cert_file = NULL;

    /* Plain http: no token needed. */
    cfg.server = "http://127.0.0.1:8080";
    cfg.token_file = NULL;
    cfg.ca_file = NULL;
    CHECK_EQ_INT(kwb_kube_auth_resolve(&cfg, &a, err, sizeof(err)), 0);
    if (a) {
        CHECK_EQ_STR(auth_header(a), "");
        CHECK_EQ_INT(kwb_kube_auth_invalidate(a), 0);
    }
    kwb_kube_auth_free(a);
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
}

static void test_server_urls(void)
{
    static const struct {
        const char *in, *want; /* want NULL: rejected */
    } cases[] = {
        {"HTTPS://127.0.0.1:6443/", "https://127.0.0.1:6443"},
        {"Http://127.0.0.1:8080//", "http://127.0.0.1:8080"},
        {"127.0.0.1:6443", "https://127.0.0.1:6443"},
        {"https://127.0.0.1/k8s/clusters/c-1/",
         "https://127.0.0.1/k8s/clusters/c-1"},
        {"https:///", NULL},
        {"https://", NULL},
        {"/", NULL},
        {"https://127.0.0.1 :6443", NULL},
        {"unix:///run/k8s.sock", NULL},
    };
    struct kwb_config cfg;
    char err[512];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kwb_kube_auth *a = NULL;
        int rc;

        cfg_reset(&cfg);
        cfg.server = (char *)cases[i].in;
        rc = kwb_kube_auth_resolve(&cfg, &a, err, sizeof(err));
        if (cases[i].want) {
            CHECK_EQ_INT(rc, 0);
            if (a) {
                CHECK_EQ_STR(kwb_kube_auth_server(a), cases[i].want);
            }
        } else {
            CHECK(rc < 0);
            CHECK_HAS(err, "cluster.server");
        }
        kwb_kube_auth_free(a);
    }
}

/* Threads applying while the token file rotates: every header is one of
 * the tokens written, never a torn or empty one. */
struct apply_arg {
    struct kwb_kube_auth *a;
    int bad;
};

static void *apply_loop(void *p)
{
    struct apply_arg *arg = p;
    CURL *h = curl_easy_init();
    char err[256];

    for (int i = 0; i < 300; i++) {
        struct curl_slist *l = NULL;
        if (kwb_kube_auth_apply(arg->a, h, &l, err, sizeof(err)) != 0 || !l ||
            (strcmp(l->data, "Authorization: Bearer tok-even") != 0 &&
             strcmp(l->data, "Authorization: Bearer tok-odd-longer") != 0)) {
            arg->bad++;
        }
        curl_slist_free_all(l);
    }
    curl_easy_cleanup(h);
    return NULL;
}

static void test_concurrent_apply(void)
{
    struct kwb_config cfg;
    struct kwb_kube_auth *a = NULL;
    struct apply_arg args[4];
    pthread_t th[4];
    char err[512];

    cfg_reset(&cfg);
    write_file("ctok", "tok-even\n");
    cfg.server = "https://127.0.0.1:6443";
    cfg.token_file = path_in("ctok");
    CHECK_EQ_INT(kwb_kube_auth_resolve(&cfg, &a, err, sizeof(err)), 0);
    if (!a) {
        return;
    }
    for (int i = 0; i < 4; i++) {
        args[i].a = a;
        args[i].bad = 0;
        CHECK_EQ_INT(pthread_create(&th[i], NULL, apply_loop, &args[i]), 0);
    }
    for (int i = 0; i < 100; i++) {
        write_file("ctok", "%s\n", i % 2 ? "tok-odd-longer" : "tok-even");
        CHECK_EQ_INT(kwb_kube_auth_invalidate(a), 1);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(args[i].bad, 0);
    }
    kwb_kube_auth_free(a);
}

static void cleanup(void)
{
    char cmd[600];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", tmpdir);
    }
}

int main(void)
{
    const char *base = getenv("TMPDIR");

    snprintf(tmpdir, sizeof(tmpdir), "%s/kwb-kubeconfig-XXXXXX",
             base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    if (mkdir(path_in("sa"), 0700) != 0) {
        perror("mkdir");
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    make_cert();

    test_current_context_ca_file_token();
    test_named_context_ca_data_client_cert();
    test_token_file_relative_insecure();
    test_errors();
    test_kubeconfig_env_and_missing();
    test_in_cluster();
    test_server_urls();
    test_concurrent_apply();

    cleanup();
    free(cert_pem);
    free(key_pem);
    free(cert_b64);
    free(key_b64);
    curl_global_cleanup();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
