/*
 * kubeconfig.c - resolve the cluster's address and credentials; see
 * kubeconfig.h for the order and the thread rules.
 *
 * The kubeconfig (YAML) is read with libyaml's event parser into a small
 * tree of our own (scalars, mappings, sequences, each with its line), and
 * the few fields we need are picked from that tree. Anchors and aliases are
 * rejected: kubeconfigs do not use them and they would make the tree a
 * graph.
 */
#include "kubeconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <yaml.h>

#include "config.h"
#include "log.h"

#define MODULE         "kubeauth"
#define DEFAULT_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define YAML_MAX_DEPTH 64
#define YAML_MAX_NODES 200000
#define PEM_MAX        (4 * 1024 * 1024)
#define TOKEN_CHECK_NS 1000000000LL

/* One blob of certificate or key material held in memory (decoded
 * *-data fields). Handed to curl with CURL_BLOB_NOCOPY. */
struct blob {
    unsigned char *data;
    size_t len;
};

struct kwb_kube_auth {
    char *server;
    char *source;
    char *namespace_;
    char *context;
    char *proxy;
    int https;
    int insecure;
    char *ca_file;
    struct blob ca;
    char *cert_file;
    struct blob cert;
    char *key_file;
    struct blob key;

    /* Token cache. Locks: `lock` guards every field below. */
    pthread_mutex_t lock;
    char *token;      /* current token (static or last read), or NULL */
    char *token_path; /* NULL: static token or none */
    int have_stat;
    dev_t st_dev;
    ino_t st_ino;
    off_t st_size;
    struct timespec st_mtim;
    int64_t last_check_ns; /* monotonic; 0 = never */
    int force_reread;
    int read_failing; /* last re-read failed (warn once per episode) */
};

static int fail(char *errbuf, size_t errsize, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *errbuf, size_t errsize, int err, const char *fmt, ...)
{
    va_list ap;

    if (errbuf && errsize > 0) {
        va_start(ap, fmt);
        vsnprintf(errbuf, errsize, fmt, ap);
        va_end(ap);
    }
    return err;
}

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void wipe_free(void *p, size_t len)
{
    if (p) {
        OPENSSL_cleanse(p, len);
        free(p);
    }
}

static void wipe_str(char *s)
{
    if (s) {
        wipe_free(s, strlen(s));
    }
}

/*
 * Read a regular file of at most `max` bytes into a NUL-terminated buffer
 * (returned in *data, caller frees; wipe when secret). Non-regular files
 * (FIFOs, devices) are refused so a bad path cannot block or stream.
 */
static int read_small_file(const char *path, size_t max, char **data,
                           size_t *len, struct stat *st_out, char *errbuf,
                           size_t errsize)
{
    int fd = -1;
    int rc = 0;
    char *buf = NULL;
    size_t have = 0;
    struct stat st;

    *data = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        rc = fail(errbuf, errsize, -errno, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        rc = fail(errbuf, errsize, -errno, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = fail(errbuf, errsize, -EINVAL, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        rc = fail(errbuf, errsize, -EFBIG, "%s: larger than %zu bytes", path,
                  max);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc = fail(errbuf, errsize, -ENOMEM, "%s: out of memory", path);
        goto out;
    }
    /* The file may grow between fstat and read: read at most its size. */
    while (have < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = fail(errbuf, errsize, -errno, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0) {
            break;
        }
        have += (size_t)n;
    }
    buf[have] = '\0';
    *data = buf;
    *len = have;
    buf = NULL;
    if (st_out) {
        *st_out = st;
    }
out:
    wipe_free(buf, have);
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* ---- YAML tree ---------------------------------------------------------- */

enum ytype { Y_SCALAR, Y_MAP, Y_SEQ };

struct ynode {
    enum ytype type;
    int line;  /* 1-based */
    int kline; /* a mapping value: its key's line (for messages) */
    int plain; /* scalar written without quotes */
    char *str; /* scalar value, NUL-terminated */
    size_t len;
    struct ynode **kids; /* map: key, value, key, value ...; seq: items */
    size_t n, cap;
};

static void ynode_free(struct ynode *y)
{
    if (!y) {
        return;
    }
    for (size_t i = 0; i < y->n; i++) {
        ynode_free(y->kids[i]);
    }
    free(y->kids);
    /* Scalars may be tokens or key data: wipe. */
    wipe_free(y->str, y->len);
    free(y);
}

static int ynode_add(struct ynode *parent, struct ynode *kid)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        struct ynode **k = realloc(parent->kids, cap * sizeof(*k));
        if (!k) {
            return -ENOMEM;
        }
        parent->kids = k;
        parent->cap = cap;
    }
    if (parent->type == Y_MAP && parent->n % 2 == 1) {
        kid->kline = parent->kids[parent->n - 1]->line;
    }
    parent->kids[parent->n++] = kid;
    return 0;
}

/*
 * Parse the first YAML document of [data, data+len) into *root (NULL for
 * an empty document). Errors are "NAME:LINE: message".
 */
static int yaml_tree_parse(const char *data, size_t len, const char *name,
                           struct ynode **root, char *errbuf, size_t errsize)
{
    yaml_parser_t parser;
    yaml_event_t event;
    struct ynode *stack[YAML_MAX_DEPTH];
    size_t depth = 0;
    size_t nodes = 0;
    struct ynode *top = NULL;
    int have_event = 0;
    int rc = 0;
    int done = 0;

    *root = NULL;
    if (!yaml_parser_initialize(&parser)) {
        return fail(errbuf, errsize, -ENOMEM, "%s: out of memory", name);
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    while (!done) {
        struct ynode *y = NULL;
        int line;

        if (!yaml_parser_parse(&parser, &event)) {
            if (parser.error == YAML_MEMORY_ERROR) {
                rc = fail(errbuf, errsize, -ENOMEM, "%s: out of memory", name);
            } else {
                rc = fail(errbuf, errsize, -EINVAL, "%s:%lu: YAML: %s%s%s",
                          name, (unsigned long)parser.problem_mark.line + 1,
                          parser.problem ? parser.problem : "syntax error",
                          parser.context ? " " : "",
                          parser.context ? parser.context : "");
            }
            goto out;
        }
        have_event = 1;
        line = (int)event.start_mark.line + 1;
        switch (event.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_START_EVENT:
        case YAML_NO_EVENT:
            break;
        case YAML_DOCUMENT_END_EVENT:
        case YAML_STREAM_END_EVENT:
            /* Only the first document counts. */
            done = 1;
            break;
        case YAML_ALIAS_EVENT:
            rc = fail(errbuf, errsize, -EINVAL,
                      "%s:%d: YAML aliases are not supported", name, line);
            goto out;
        case YAML_SCALAR_EVENT:
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            if (++nodes > YAML_MAX_NODES) {
                rc = fail(errbuf, errsize, -E2BIG,
                          "%s:%d: YAML: more than %d nodes", name, line,
                          YAML_MAX_NODES);
                goto out;
            }
            y = calloc(1, sizeof(*y));
            if (!y) {
                rc = fail(errbuf, errsize, -ENOMEM, "%s: out of memory", name);
                goto out;
            }
            y->line = line;
            if (event.type == YAML_SCALAR_EVENT) {
                y->type = Y_SCALAR;
                y->plain = event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                y->len = event.data.scalar.length;
                y->str = malloc(y->len + 1);
                if (!y->str) {
                    ynode_free(y);
                    rc = fail(errbuf, errsize, -ENOMEM, "%s: out of memory",
                              name);
                    goto out;
                }
                memcpy(y->str, event.data.scalar.value, y->len);
                y->str[y->len] = '\0';
            } else {
                y->type =
                    event.type == YAML_MAPPING_START_EVENT ? Y_MAP : Y_SEQ;
            }
            if (depth == 0) {
                if (top) { /* cannot happen: one root per document */
                    ynode_free(y);
                    rc = fail(errbuf, errsize, -EINVAL,
                              "%s:%d: YAML: several roots", name, line);
                    goto out;
                }
                top = y;
            } else if (ynode_add(stack[depth - 1], y) != 0) {
                ynode_free(y);
                rc = fail(errbuf, errsize, -ENOMEM, "%s: out of memory", name);
                goto out;
            }
            if (y->type != Y_SCALAR) {
                if (depth == YAML_MAX_DEPTH) {
                    rc = fail(errbuf, errsize, -E2BIG,
                              "%s:%d: YAML: nested deeper than %d", name, line,
                              YAML_MAX_DEPTH);
                    goto out;
                }
                stack[depth++] = y;
            }
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            if (depth > 0) {
                depth--;
            }
            break;
        }
        yaml_event_delete(&event);
        have_event = 0;
    }
    *root = top;
    top = NULL;
out:
    if (have_event) {
        yaml_event_delete(&event);
    }
    ynode_free(top);
    yaml_parser_delete(&parser);
    return rc;
}

/* Line for messages about a value: where its key is. */
#define YLINE(y) ((y)->kline ? (y)->kline : (y)->line)

/* YAML null: absent value. */
static int yscalar_is_null(const struct ynode *y)
{
    return y->type == Y_SCALAR && y->plain &&
           (y->len == 0 || strcmp(y->str, "~") == 0 ||
            strcmp(y->str, "null") == 0 || strcmp(y->str, "Null") == 0 ||
            strcmp(y->str, "NULL") == 0);
}

/* Value for `key` in mapping y (NULL when y is not a map, the key is
 * missing, or the value is null). */
static const struct ynode *ymap_get(const struct ynode *y, const char *key)
{
    if (!y || y->type != Y_MAP) {
        return NULL;
    }
    for (size_t i = 0; i + 1 < y->n; i += 2) {
        const struct ynode *k = y->kids[i];
        if (k->type == Y_SCALAR && strcmp(k->str, key) == 0) {
            if (yscalar_is_null(y->kids[i + 1])) {
                return NULL;
            }
            return y->kids[i + 1];
        }
    }
    return NULL;
}

/* Context for errors: kubeconfig path and where in the document. */
struct kctx {
    const char *path;
    char *errbuf;
    size_t errsize;
};

static const char *ytype_name(enum ytype t)
{
    switch (t) {
    case Y_SCALAR:
        return "a scalar";
    case Y_MAP:
        return "a mapping";
    case Y_SEQ:
        return "a sequence";
    }
    return "?";
}

/* String field: 0 with *out (borrowed, NULL when absent), or -EINVAL. */
static int yget_str(const struct kctx *k, const struct ynode *map,
                    const char *key, const char *where, const char **out)
{
    const struct ynode *v = ymap_get(map, key);

    *out = NULL;
    if (!v) {
        return 0;
    }
    if (v->type != Y_SCALAR) {
        return fail(k->errbuf, k->errsize, -EINVAL,
                    "%s:%d: %s.%s: expected a string, found %s", k->path,
                    YLINE(v), where, key, ytype_name(v->type));
    }
    if (strlen(v->str) != v->len) {
        return fail(k->errbuf, k->errsize, -EINVAL,
                    "%s:%d: %s.%s: contains a NUL character", k->path, YLINE(v),
                    where, key);
    }
    *out = v->str;
    return 0;
}

static int yget_bool(const struct kctx *k, const struct ynode *map,
                     const char *key, const char *where, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "y"};
    static const char *const no[] = {"false", "no", "off", "n"};
    const struct ynode *v = ymap_get(map, key);

    *out = 0;
    if (!v) {
        return 0;
    }
    if (v->type == Y_SCALAR) {
        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
            if (strcasecmp(v->str, yes[i]) == 0) {
                *out = 1;
                return 0;
            }
            if (strcasecmp(v->str, no[i]) == 0) {
                return 0;
            }
        }
    }
    return fail(k->errbuf, k->errsize, -EINVAL,
                "%s:%d: %s.%s: expected true or false", k->path, YLINE(v),
                where, key);
}

/*
 * Find the entry named `name` in the named list `list` ("clusters",
 * "contexts", "users") and return its `inner` mapping ("cluster", ...).
 * *line gets the entry's line for later messages.
 */
static int yfind_named(const struct kctx *k, const struct ynode *root,
                       const char *list, const char *inner, const char *name,
                       const struct ynode **out, int *line)
{
    const struct ynode *seq = ymap_get(root, list);

    *out = NULL;
    *line = 0;
    if (seq && seq->type != Y_SEQ) {
        return fail(k->errbuf, k->errsize, -EINVAL,
                    "%s:%d: %s: expected a sequence, found %s", k->path,
                    YLINE(seq), list, ytype_name(seq->type));
    }
    for (size_t i = 0; seq && i < seq->n; i++) {
        const struct ynode *item = seq->kids[i];
        const struct ynode *n = ymap_get(item, "name");
        const struct ynode *v;

        if (item->type != Y_MAP) {
            return fail(k->errbuf, k->errsize, -EINVAL,
                        "%s:%d: %s[%zu]: expected a mapping, found %s", k->path,
                        YLINE(item), list, i, ytype_name(item->type));
        }
        if (!n || n->type != Y_SCALAR || strcmp(n->str, name) != 0) {
            continue;
        }
        v = ymap_get(item, inner);
        if (v && v->type != Y_MAP) {
            return fail(k->errbuf, k->errsize, -EINVAL,
                        "%s:%d: %s[name=%s].%s: expected a mapping, found "
                        "%s",
                        k->path, YLINE(v), list, name, inner,
                        ytype_name(v->type));
        }
        *out = v;
        *line = YLINE(item);
        return 1;
    }
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

/* Standard base64 (padding optional, whitespace ignored). 0 or -EINVAL. */
static int b64_decode(const char *in, size_t inlen, struct blob *out)
{
    unsigned char *buf = malloc(inlen / 4 * 3 + 3 + 1);
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    int pad = 0;

    if (!buf) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < inlen; i++) {
        unsigned char c = (unsigned char)in[i];
        int v;

        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            continue;
        }
        if (c == '=') {
            pad++;
            continue;
        }
        v = b64val(c);
        if (v < 0 || pad) {
            goto bad;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* A lone 6-bit group cannot encode a byte; over-padding is invalid. */
    if (bits == 6 || pad > 2) {
        goto bad;
    }
    buf[n] = '\0';
    out->data = buf;
    out->len = n;
    return 0;
bad:
    wipe_free(buf, inlen / 4 * 3 + 3 + 1);
    return -EINVAL;
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* 0 when data holds at least one PEM certificate (keys: a private key). */
static int pem_check(const unsigned char *data, size_t len, int key)
{
    BIO *bio;
    int ok = 0;

    if (len == 0 || len > PEM_MAX) {
        return -EINVAL;
    }
    bio = BIO_new_mem_buf(data, (int)len);
    if (!bio) {
        return -ENOMEM;
    }
    if (key) {
        EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
        ok = pk != NULL;
        EVP_PKEY_free(pk);
    } else {
        X509 *x = PEM_read_bio_X509(bio, NULL, no_password, NULL);
        ok = x != NULL;
        X509_free(x);
    }
    BIO_free(bio);
    ERR_clear_error();
    return ok ? 0 : -EINVAL;
}

static const char *pem_what(int key)
{
    return key ? "an unencrypted PEM private key" : "a PEM certificate";
}

/* Check that the file at path is readable PEM (certificate or key). */
static int pem_check_file(const char *path, int key, const char *field,
                          char *errbuf, size_t errsize)
{
    char *data = NULL;
    size_t len = 0;
    int rc;

    rc = read_small_file(path, PEM_MAX, &data, &len, NULL, errbuf, errsize);
    if (rc < 0) {
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "%s", errbuf ? errbuf : "");
        rc = fail(errbuf, errsize, rc, "%s: %s", field, tmp);
        goto out;
    }
    if (pem_check((const unsigned char *)data, len, key) != 0) {
        rc = fail(errbuf, errsize, -EINVAL, "%s: %s: not %s", field, path,
                  pem_what(key));
        goto out;
    }
out:
    wipe_free(data, len);
    return rc;
}

/* Token text: surrounding whitespace trimmed; printable ASCII only (it goes
 * into an HTTP header). Returns a new string or NULL with *err. */
static char *token_clean(const char *s, size_t len, int *err)
{
    char *t;

    while (len > 0 && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' ||
                       s[len - 1] == '\r' || s[len - 1] == '\n')) {
        len--;
    }
    if (len == 0) {
        *err = -ENODATA;
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e) {
            *err = -EINVAL;
            return NULL;
        }
    }
    t = malloc(len + 1);
    if (!t) {
        *err = -ENOMEM;
        return NULL;
    }
    memcpy(t, s, len);
    t[len] = '\0';
    return t;
}

/* "dir/rel" unless rel is absolute; dir NULL means as is. */
static char *path_join(const char *dir, const char *rel)
{
    char *p;

    if (!dir || rel[0] == '/') {
        return strdup(rel);
    }
    if (asprintf(&p, "%s/%s", dir, rel) < 0) {
        return NULL;
    }
    return p;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (!slash) {
        return strdup(".");
    }
    if (slash == path) {
        return strdup("/");
    }
    return strndup(path, (size_t)(slash - path));
}

/*
 * Normalise a server URL: a missing scheme means https (as client-go),
 * trailing slashes are dropped. Sets *https.
 */
static int server_norm(const char *in, char **out, int *https)
{
    char *s;
    size_t len, host;

    /* The scheme is stored in lower case. */
    if (strncasecmp(in, "https://", 8) == 0) {
        *https = 1;
        if (asprintf(&s, "https://%s", in + 8) < 0) {
            s = NULL;
        }
    } else if (strncasecmp(in, "http://", 7) == 0) {
        *https = 0;
        if (asprintf(&s, "http://%s", in + 7) < 0) {
            s = NULL;
        }
    } else if (strstr(in, "://")) {
        return -EPROTONOSUPPORT;
    } else {
        *https = 1;
        if (asprintf(&s, "https://%s", in) < 0) {
            s = NULL;
        }
    }
    if (!s) {
        return -ENOMEM;
    }
    len = strlen(s);
    host = (size_t)(strstr(s, "://") - s) + 3;
    while (len > host && s[len - 1] == '/') {
        s[--len] = '\0';
    }
    /* A host after the scheme, and no whitespace or control chars. */
    if (len == host || s[host] == '/') {
        free(s);
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f) {
            free(s);
            return -EINVAL;
        }
    }
    *out = s;
    return 0;
}

static int set_server(struct kwb_kube_auth *a, const char *server,
                      const char *what, char *errbuf, size_t errsize)
{
    int rc = server_norm(server, &a->server, &a->https);

    if (rc == -EPROTONOSUPPORT) {
        return fail(errbuf, errsize, -EINVAL,
                    "%s: \"%s\": only http:// and https:// are supported", what,
                    server);
    }
    if (rc == -EINVAL) {
        return fail(errbuf, errsize, -EINVAL, "%s: \"%s\": not a valid URL",
                    what, server);
    }
    if (rc < 0) {
        return fail(errbuf, errsize, rc, "out of memory");
    }
    return 0;
}

static struct kwb_kube_auth *auth_new(void)
{
    struct kwb_kube_auth *a = calloc(1, sizeof(*a));

    if (!a) {
        return NULL;
    }
    if (pthread_mutex_init(&a->lock, NULL) != 0) {
        free(a);
        return NULL;
    }
    return a;
}

static void blob_wipe(struct blob *b)
{
    wipe_free(b->data, b->len);
    b->data = NULL;
    b->len = 0;
}

void kwb_kube_auth_free(struct kwb_kube_auth *a)
{
    if (!a) {
        return;
    }
    free(a->server);
    free(a->source);
    free(a->namespace_);
    free(a->context);
    wipe_str(a->proxy); /* may carry user:password */
    free(a->ca_file);
    blob_wipe(&a->ca);
    free(a->cert_file);
    blob_wipe(&a->cert);
    free(a->key_file);
    blob_wipe(&a->key);
    wipe_str(a->token);
    free(a->token_path);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/*
 * Load the token file into the cache. Locks: called with a->lock held, or
 * before the object is shared. Returns 0, or a negative errno with errbuf.
 */
static int token_reload(struct kwb_kube_auth *a, char *errbuf, size_t errsize)
{
    char *data = NULL;
    size_t len = 0;
    struct stat st;
    char *tok;
    int err = 0;
    int rc;

    rc = read_small_file(a->token_path, KWB_KUBE_TOKEN_MAX, &data, &len, &st,
                         errbuf, errsize);
    if (rc < 0) {
        return rc;
    }
    tok = token_clean(data, len, &err);
    wipe_free(data, len);
    if (!tok) {
        if (err == -ENOMEM) {
            return fail(errbuf, errsize, err, "out of memory");
        }
        return fail(errbuf, errsize, err, "%s: %s", a->token_path,
                    err == -ENODATA ? "empty token file"
                                    : "token contains characters not "
                                      "allowed in an HTTP header");
    }
    wipe_str(a->token);
    a->token = tok;
    a->have_stat = 1;
    a->st_dev = st.st_dev;
    a->st_ino = st.st_ino;
    a->st_size = st.st_size;
    a->st_mtim = st.st_mtim;
    return 0;
}

/* Set the token source: a file (read now, must work) or a static token. */
static int set_token_file(struct kwb_kube_auth *a, const char *path,
                          const char *field, char *errbuf, size_t errsize)
{
    char tmp[512];
    int rc;

    free(a->token_path);
    a->token_path = strdup(path);
    if (!a->token_path) {
        return fail(errbuf, errsize, -ENOMEM, "out of memory");
    }
    rc = token_reload(a, tmp, sizeof(tmp));
    if (rc < 0) {
        return fail(errbuf, errsize, rc, "%s: %s", field, tmp);
    }
    a->last_check_ns = mono_ns();
    return 0;
}

static int set_static_token(struct kwb_kube_auth *a, const char *token,
                            const char *field, char *errbuf, size_t errsize)
{
    int err = 0;
    char *tok = token_clean(token, strlen(token), &err);

    if (!tok) {
        if (err == -ENOMEM) {
            return fail(errbuf, errsize, err, "out of memory");
        }
        return fail(errbuf, errsize, -EINVAL, "%s: %s", field,
                    err == -ENODATA ? "empty token"
                                    : "token contains characters not "
                                      "allowed in an HTTP header");
    }
    wipe_str(a->token);
    a->token = tok;
    return 0;
}

static int set_str(char **dst, const char *src, char *errbuf, size_t errsize)
{
    free(*dst);
    *dst = src ? strdup(src) : NULL;
    if (src && !*dst) {
        return fail(errbuf, errsize, -ENOMEM, "out of memory");
    }
    return 0;
}

/*
 * Settings from the config file that override what in-cluster or a
 * kubeconfig found (and are the whole story with an explicit server).
 */
static int apply_config_overrides(struct kwb_kube_auth *a,
                                  const struct kwb_config *cfg, char *errbuf,
                                  size_t errsize)
{
    int rc;

    if (!!cfg->client_cert_file != !!cfg->client_key_file) {
        return fail(errbuf, errsize, -EINVAL,
                    "cluster: client_cert_file and client_key_file must be "
                    "set together");
    }
    if (cfg->ca_file) {
        rc =
            pem_check_file(cfg->ca_file, 0, "cluster.ca_file", errbuf, errsize);
        if (rc < 0) {
            return rc;
        }
        blob_wipe(&a->ca);
        rc = set_str(&a->ca_file, cfg->ca_file, errbuf, errsize);
        if (rc < 0) {
            return rc;
        }
    }
    if (cfg->client_cert_file) {
        rc = pem_check_file(cfg->client_cert_file, 0,
                            "cluster.client_cert_file", errbuf, errsize);
        if (rc == 0) {
            rc = pem_check_file(cfg->client_key_file, 1,
                                "cluster.client_key_file", errbuf, errsize);
        }
        if (rc < 0) {
            return rc;
        }
        blob_wipe(&a->cert);
        blob_wipe(&a->key);
        rc = set_str(&a->cert_file, cfg->client_cert_file, errbuf, errsize);
        if (rc == 0) {
            rc = set_str(&a->key_file, cfg->client_key_file, errbuf, errsize);
        }
        if (rc < 0) {
            return rc;
        }
    }
    if (cfg->insecure_skip_tls_verify) {
        a->insecure = 1;
    }
    if (cfg->token_file) {
        wipe_str(a->token);
        a->token = NULL;
        rc = set_token_file(a, cfg->token_file, "cluster.token_file", errbuf,
                            errsize);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- in-cluster --------------------------------------------------------- */

static int resolve_in_cluster(struct kwb_kube_auth *a,
                              const struct kwb_config *cfg, const char *host,
                              const char *port, char *errbuf, size_t errsize)
{
    const char *dir =
        cfg->serviceaccount_dir ? cfg->serviceaccount_dir : DEFAULT_SA_DIR;
    char *path = NULL;
    char *data = NULL;
    size_t len = 0;
    char *server = NULL;
    int bracket;
    int rc = 0;

    a->source = strdup("in-cluster");
    if (!a->source) {
        rc = fail(errbuf, errsize, -ENOMEM, "out of memory");
        goto out;
    }
    if (port[0] == '\0' || strspn(port, "0123456789") != strlen(port) ||
        strlen(port) > 5) {
        rc = fail(errbuf, errsize, -EINVAL,
                  "in-cluster: KUBERNETES_SERVICE_PORT \"%s\" is not a port",
                  port);
        goto out;
    }
    /* An IPv6 address needs brackets in a URL. */
    bracket = strchr(host, ':') != NULL && host[0] != '[';
    if (asprintf(&server, "https://%s%s%s:%s", bracket ? "[" : "", host,
                 bracket ? "]" : "", port) < 0) {
        server = NULL;
        rc = fail(errbuf, errsize, -ENOMEM, "out of memory");
        goto out;
    }
    rc = set_server(a, server, "in-cluster: KUBERNETES_SERVICE_HOST", errbuf,
                    errsize);
    if (rc < 0) {
        goto out;
    }

    if (!cfg->token_file) {
        if (asprintf(&path, "%s/token", dir) < 0) {
            path = NULL;
            rc = fail(errbuf, errsize, -ENOMEM, "out of memory");
            goto out;
        }
        rc = set_token_file(a, path, "in-cluster service account token", errbuf,
                            errsize);
        if (rc < 0) {
            goto out;
        }
        free(path);
        path = NULL;
    }

    if (asprintf(&path, "%s/ca.crt", dir) < 0) {
        path = NULL;
        rc = fail(errbuf, errsize, -ENOMEM, "out of memory");
        goto out;
    }
    if (!cfg->ca_file) {
        char tmp[512];
        if (pem_check_file(path, 0, "in-cluster ca.crt", tmp, sizeof(tmp)) ==
            0) {
            a->ca_file = path;
            path = NULL;
        } else {
            /* As client-go: without a usable ca.crt, the system roots. */
            KWB_WARN(MODULE,
                     "%s; verifying the API server with the "
                     "system CA certificates",
                     tmp);
        }
    }
    free(path);
    path = NULL;

    if (asprintf(&path, "%s/namespace", dir) < 0) {
        path = NULL;
        rc = fail(errbuf, errsize, -ENOMEM, "out of memory");
        goto out;
    }
    if (read_small_file(path, 4096, &data, &len, NULL, NULL, 0) == 0) {
        int err = 0;
        a->namespace_ = token_clean(data, len, &err);
        if (!a->namespace_ && err == -ENOMEM) {
            rc = fail(errbuf, errsize, -ENOMEM, "out of memory");
            goto out;
        }
    }
    rc = apply_config_overrides(a, cfg, errbuf, errsize);
out:
    free(server);
    free(path);
    free(data);
    return rc;
}

/* ---- kubeconfig --------------------------------------------------------- */

/* Decode a *-data field into *b and check its PEM. */
static int data_field(const struct kctx *k, const struct ynode *map,
                      const char *key, const char *where, int pem_key,
                      struct blob *b)
{
    const struct ynode *v = ymap_get(map, key);
    const char *s;
    int rc = yget_str(k, map, key, where, &s);

    if (rc < 0 || !s) {
        return rc;
    }
    rc = b64_decode(s, strlen(s), b);
    if (rc == -ENOMEM) {
        return fail(k->errbuf, k->errsize, rc, "out of memory");
    }
    if (rc < 0) {
        return fail(k->errbuf, k->errsize, rc, "%s:%d: %s.%s: invalid base64",
                    k->path, YLINE(v), where, key);
    }
    if (pem_check(b->data, b->len, pem_key) != 0) {
        blob_wipe(b);
        return fail(k->errbuf, k->errsize, -EINVAL,
                    "%s:%d: %s.%s: does not decode to %s", k->path, YLINE(v),
                    where, key, pem_what(pem_key));
    }
    return 0;
}

/* A path field, made relative to the kubeconfig's directory; checked. */
static int path_field(const struct kctx *k, const char *dir,
                      const struct ynode *map, const char *key,
                      const char *where, int pem_key, char **out)
{
    const struct ynode *v = ymap_get(map, key);
    const char *s;
    char field[256];
    int rc = yget_str(k, map, key, where, &s);

    *out = NULL;
    if (rc < 0 || !s) {
        return rc;
    }
    *out = path_join(dir, s);
    if (!*out) {
        return fail(k->errbuf, k->errsize, -ENOMEM, "out of memory");
    }
    if (pem_key < 0) { /* not PEM: token file */
        return 0;
    }
    snprintf(field, sizeof(field), "%s:%d: %s.%s", k->path, YLINE(v), where,
             key);
    return pem_check_file(*out, pem_key, field, k->errbuf, k->errsize);
}

int kwb_kube_auth_from_kubeconfig_mem(const char *data, size_t len,
                                      const char *path,
                                      const struct kwb_config *cfg,
                                      struct kwb_kube_auth **out, char *errbuf,
                                      size_t errsize)
{
    static const char *const unsupported_user[] = {
        "exec", "auth-provider", "username", "password",
        "as",   "as-uid",        "as-groups"};
    struct kctx k = {path, errbuf, errsize};
    struct ynode *root = NULL;
    struct kwb_kube_auth *a = NULL;
    const struct ynode *ctx, *cluster, *user = NULL;
    const char *ctxname, *cluster_name, *user_name, *s;
    char *dir = NULL;
    char *tmp = NULL;
    char where[320];
    int line;
    int rc;

    *out = NULL;
    rc = yaml_tree_parse(data, len, path, &root, errbuf, errsize);
    if (rc < 0) {
        goto out;
    }
    if (root && root->type != Y_MAP && !yscalar_is_null(root)) {
        rc = fail(errbuf, errsize, -EINVAL,
                  "%s:%d: expected a mapping at the top, found %s", path,
                  YLINE(root), ytype_name(root->type));
        goto out;
    }
    a = auth_new();
    dir = dir_of(path);
    if (!a || !dir) {
        rc = fail(errbuf, errsize, -ENOMEM, "out of memory");
        goto out;
    }
    if (asprintf(&a->source, "kubeconfig:%s", path) < 0) {
        a->source = NULL;
        rc = fail(errbuf, errsize, -ENOMEM, "out of memory");
        goto out;
    }

    ctxname = cfg->context;
    if (!ctxname || !*ctxname) {
        rc = yget_str(&k, root, "current-context", "kubeconfig", &ctxname);
        if (rc < 0) {
            goto out;
        }
    }
    if (!ctxname || !*ctxname) {
        rc = fail(errbuf, errsize, -ENOENT,
                  "%s: no current-context set and cluster.context not given",
                  path);
        goto out;
    }
    rc = set_str(&a->context, ctxname, errbuf, errsize);
    if (rc < 0) {
        goto out;
    }
    rc = yfind_named(&k, root, "contexts", "context", ctxname, &ctx, &line);
    if (rc < 0) {
        goto out;
    }
    if (rc == 0) {
        rc = fail(errbuf, errsize, -ENOENT, "%s: context \"%s\" not found",
                  path, ctxname);
        goto out;
    }
    snprintf(where, sizeof(where), "contexts[name=%s].context", ctxname);
    if (!ctx) {
        rc = fail(errbuf, errsize, -EINVAL, "%s:%d: %s: missing", path, line,
                  where);
        goto out;
    }
    rc = yget_str(&k, ctx, "cluster", where, &cluster_name);
    if (rc == 0) {
        rc = yget_str(&k, ctx, "user", where, &user_name);
    }
    if (rc == 0) {
        rc = yget_str(&k, ctx, "namespace", where, &s);
    }
    if (rc < 0) {
        goto out;
    }
    if (s && *s) {
        rc = set_str(&a->namespace_, s, errbuf, errsize);
        if (rc < 0) {
            goto out;
        }
    }
    if (!cluster_name || !*cluster_name) {
        rc = fail(errbuf, errsize, -EINVAL, "%s:%d: %s.cluster: missing", path,
                  YLINE(ctx), where);
        goto out;
    }

    /* cluster */
    rc = yfind_named(&k, root, "clusters", "cluster", cluster_name, &cluster,
                     &line);
    if (rc < 0) {
        goto out;
    }
    if (rc == 0) {
        rc = fail(errbuf, errsize, -ENOENT,
                  "%s: cluster \"%s\" (of context \"%s\") not found", path,
                  cluster_name, ctxname);
        goto out;
    }
    snprintf(where, sizeof(where), "clusters[name=%s].cluster", cluster_name);
    if (!cluster) {
        rc = fail(errbuf, errsize, -EINVAL, "%s:%d: %s: missing", path, line,
                  where);
        goto out;
    }
    rc = yget_str(&k, cluster, "server", where, &s);
    if (rc < 0) {
        goto out;
    }
    if (!s || !*s) {
        rc = fail(errbuf, errsize, -EINVAL, "%s:%d: %s.server: missing", path,
                  YLINE(cluster), where);
        goto out;
    }
    {
        char field[400];
        snprintf(field, sizeof(field), "%s:%d: %s.server", path,
                 YLINE(ymap_get(cluster, "server")), where);
        rc = set_server(a, s, field, errbuf, errsize);
        if (rc < 0) {
            goto out;
        }
    }
    if (ymap_get(cluster, "tls-server-name")) {
        rc = fail(errbuf, errsize, -ENOTSUP,
                  "%s:%d: %s.tls-server-name: not supported", path,
                  YLINE(ymap_get(cluster, "tls-server-name")), where);
        goto out;
    }
    rc =
        yget_bool(&k, cluster, "insecure-skip-tls-verify", where, &a->insecure);
    if (rc < 0) {
        goto out;
    }
    rc = yget_str(&k, cluster, "proxy-url", where, &s);
    if (rc == 0 && s && *s) {
        rc = set_str(&a->proxy, s, errbuf, errsize);
    }
    if (rc < 0) {
        goto out;
    }
    /* As client-go: the -data field wins over the file. */
    rc =
        data_field(&k, cluster, "certificate-authority-data", where, 0, &a->ca);
    if (rc < 0) {
        goto out;
    }
    if (!a->ca.data) {
        rc = path_field(&k, dir, cluster, "certificate-authority", where, 0,
                        &a->ca_file);
        if (rc < 0) {
            goto out;
        }
    }

    /* user */
    if (user_name && *user_name) {
        rc = yfind_named(&k, root, "users", "user", user_name, &user, &line);
        if (rc < 0) {
            goto out;
        }
        if (rc == 0) {
            rc = fail(errbuf, errsize, -ENOENT,
                      "%s: user \"%s\" (of context \"%s\") not found", path,
                      user_name, ctxname);
            goto out;
        }
        rc = 0;
    }
    if (user) {
        snprintf(where, sizeof(where), "users[name=%s].user", user_name);
        for (size_t i = 0;
             i < sizeof(unsupported_user) / sizeof(unsupported_user[0]); i++) {
            const struct ynode *v = ymap_get(user, unsupported_user[i]);
            if (v) {
                rc = fail(errbuf, errsize, -ENOTSUP,
                          "%s:%d: %s.%s: %s are not supported; use token, "
                          "tokenFile or client-certificate/client-key",
                          path, YLINE(v), where, unsupported_user[i],
                          strcmp(unsupported_user[i], "exec") == 0
                              ? "exec credential plugins"
                          : strcmp(unsupported_user[i], "auth-provider") == 0
                              ? "auth-provider plugins"
                          : strncmp(unsupported_user[i], "as", 2) == 0
                              ? "impersonation settings"
                              : "basic-auth credentials");
                goto out;
            }
        }
        rc =
            data_field(&k, user, "client-certificate-data", where, 0, &a->cert);
        if (rc == 0 && !a->cert.data) {
            rc = path_field(&k, dir, user, "client-certificate", where, 0,
                            &a->cert_file);
        }
        if (rc == 0) {
            rc = data_field(&k, user, "client-key-data", where, 1, &a->key);
        }
        if (rc == 0 && !a->key.data) {
            rc =
                path_field(&k, dir, user, "client-key", where, 1, &a->key_file);
        }
        if (rc < 0) {
            goto out;
        }
        if ((a->cert.data || a->cert_file) != (a->key.data || a->key_file)) {
            rc = fail(errbuf, errsize, -EINVAL,
                      "%s:%d: %s: client-certificate and client-key must be "
                      "given together",
                      path, YLINE(user), where);
            goto out;
        }
        rc = yget_str(&k, user, "token", where, &s);
        if (rc == 0 && s && *s) {
            char field[400];
            snprintf(field, sizeof(field), "%s:%d: %s.token", path,
                     YLINE(ymap_get(user, "token")), where);
            rc = set_static_token(a, s, field, errbuf, errsize);
        }
        if (rc < 0) {
            goto out;
        }
        /* As client-go: tokenFile, when readable, wins over token. */
        rc = path_field(&k, dir, user, "tokenFile", where, -1, &tmp);
        if (rc < 0) {
            goto out;
        }
        if (tmp && !cfg->token_file) {
            char field[400];
            snprintf(field, sizeof(field), "%s:%d: %s.tokenFile", path,
                     YLINE(ymap_get(user, "tokenFile")), where);
            rc = set_token_file(a, tmp, field, errbuf, errsize);
            if (rc < 0) {
                goto out;
            }
        }
    }
    rc = apply_config_overrides(a, cfg, errbuf, errsize);
    if (rc < 0) {
        goto out;
    }
    *out = a;
    a = NULL;
out:
    free(tmp);
    free(dir);
    ynode_free(root);
    kwb_kube_auth_free(a);
    return rc;
}

static int kubeconfig_path(const struct kwb_config *cfg, char **out,
                           char *errbuf, size_t errsize)
{
    const char *env = getenv("KUBECONFIG");
    const char *home;

    *out = NULL;
    if (cfg->kubeconfig && *cfg->kubeconfig) {
        *out = strdup(cfg->kubeconfig);
        goto done;
    }
    /* Only the first non-empty entry of a colon list; no merging. */
    while (env && *env) {
        size_t n = strcspn(env, ":");
        if (n > 0) {
            *out = strndup(env, n);
            goto done;
        }
        env++;
    }
    home = getenv("HOME");
    if (!home || !*home) {
        struct passwd pw, *res = NULL;
        char buf[4096];
        if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res) {
            if (asprintf(out, "%s/.kube/config", res->pw_dir) < 0) {
                *out = NULL;
            }
            goto done;
        }
        return fail(errbuf, errsize, -ENOENT,
                    "no cluster configured: set cluster.server, run in a "
                    "pod, or provide a kubeconfig (HOME is not set)");
    }
    if (asprintf(out, "%s/.kube/config", home) < 0) {
        *out = NULL;
    }
done:
    if (!*out) {
        return fail(errbuf, errsize, -ENOMEM, "out of memory");
    }
    return 0;
}

static int resolve_kubeconfig(const struct kwb_config *cfg,
                              struct kwb_kube_auth **out, char *errbuf,
                              size_t errsize)
{
    char *path = NULL;
    char *data = NULL;
    size_t len = 0;
    int rc;

    rc = kubeconfig_path(cfg, &path, errbuf, errsize);
    if (rc < 0) {
        goto out;
    }
    rc = read_small_file(path, KWB_KUBECONFIG_MAX, &data, &len, NULL, errbuf,
                         errsize);
    if (rc == -ENOENT && !cfg->kubeconfig) {
        rc = fail(errbuf, errsize, rc,
                  "no cluster configured: set cluster.server, run in a pod, "
                  "or provide a kubeconfig (%s: not found)",
                  path);
        goto out;
    }
    if (rc < 0) {
        goto out;
    }
    rc = kwb_kube_auth_from_kubeconfig_mem(data, len, path, cfg, out, errbuf,
                                           errsize);
out:
    wipe_free(data, len);
    free(path);
    return rc;
}

/* ---- public ------------------------------------------------------------- */

int kwb_kube_auth_resolve(const struct kwb_config *cfg,
                          struct kwb_kube_auth **out, char *errbuf,
                          size_t errsize)
{
    struct kwb_kube_auth *a = NULL;
    const char *host, *port;
    int rc = 0;

    *out = NULL;
    if (errbuf && errsize) {
        errbuf[0] = '\0';
    }
    if (cfg->server && *cfg->server) {
        a = auth_new();
        if (!a || !(a->source = strdup("config"))) {
            rc = fail(errbuf, errsize, -ENOMEM, "out of memory");
            goto out;
        }
        rc = set_server(a, cfg->server, "cluster.server", errbuf, errsize);
        if (rc == 0) {
            rc = apply_config_overrides(a, cfg, errbuf, errsize);
        }
        if (rc < 0) {
            goto out;
        }
        *out = a;
        a = NULL;
        goto out;
    }
    host = getenv("KUBERNETES_SERVICE_HOST");
    port = getenv("KUBERNETES_SERVICE_PORT");
    if (host && *host && port && *port) {
        a = auth_new();
        if (!a) {
            rc = fail(errbuf, errsize, -ENOMEM, "out of memory");
            goto out;
        }
        rc = resolve_in_cluster(a, cfg, host, port, errbuf, errsize);
        if (rc < 0) {
            goto out;
        }
        *out = a;
        a = NULL;
        goto out;
    }
    rc = resolve_kubeconfig(cfg, out, errbuf, errsize);
out:
    kwb_kube_auth_free(a);
    return rc;
}

const char *kwb_kube_auth_server(const struct kwb_kube_auth *a)
{
    return a->server;
}

const char *kwb_kube_auth_source(const struct kwb_kube_auth *a)
{
    return a->source;
}

const char *kwb_kube_auth_namespace(const struct kwb_kube_auth *a)
{
    return a->namespace_;
}

const char *kwb_kube_auth_context(const struct kwb_kube_auth *a)
{
    return a->context ? a->context : "";
}

int kwb_kube_auth_describe(const struct kwb_kube_auth *a, char *buf,
                           size_t size)
{
    struct kwb_kube_auth *m = (struct kwb_kube_auth *)a;
    char ca[300], cert[300], tok[300];
    int rc;

    if (a->ca.data) {
        snprintf(ca, sizeof(ca), "data");
    } else if (a->ca_file) {
        snprintf(ca, sizeof(ca), "file:%s", a->ca_file);
    } else {
        snprintf(ca, sizeof(ca), "system");
    }
    if (a->cert.data) {
        snprintf(cert, sizeof(cert), "data");
    } else if (a->cert_file) {
        snprintf(cert, sizeof(cert), "file:%s", a->cert_file);
    } else {
        snprintf(cert, sizeof(cert), "none");
    }
    /* The token fields are guarded; describe is const for callers. */
    pthread_mutex_lock(&m->lock);
    if (a->token_path) {
        snprintf(tok, sizeof(tok), "file:%s", a->token_path);
    } else if (a->token) {
        snprintf(tok, sizeof(tok), "static");
    } else {
        snprintf(tok, sizeof(tok), "none");
    }
    pthread_mutex_unlock(&m->lock);
    rc = snprintf(buf, size,
                  "source=%s%s%s server=%s tls=%s ca=%s "
                  "client-cert=%s token=%s%s%s",
                  a->source, a->context ? " context=" : "",
                  a->context ? a->context : "", a->server,
                  !a->https     ? "off"
                  : a->insecure ? "insecure"
                                : "verify",
                  a->https ? ca : "-", cert, tok, a->proxy ? " proxy=" : "",
                  a->proxy ? "set" : "");
    return rc;
}

static int setopt_fail(CURLcode cc, const char *what, char *errbuf,
                       size_t errsize)
{
    return fail(errbuf, errsize, cc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -ENOTSUP,
                "curl: cannot set %s: %s", what, curl_easy_strerror(cc));
}

static int apply_tls(struct kwb_kube_auth *a, CURL *h, char *errbuf,
                     size_t errsize)
{
    CURLcode cc;

    cc = curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, a->insecure ? 0L : 1L);
    if (cc == CURLE_OK) {
        cc = curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, a->insecure ? 0L : 2L);
    }
    if (cc != CURLE_OK) {
        return setopt_fail(cc, "verify flags", errbuf, errsize);
    }
    /* A cluster CA replaces the system roots (also the default CA path). */
    if (a->ca.data) {
        struct curl_blob b = {a->ca.data, a->ca.len, CURL_BLOB_NOCOPY};
        cc = curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
        if (cc == CURLE_OK) {
            cc = curl_easy_setopt(h, CURLOPT_CAINFO, NULL);
        }
        if (cc == CURLE_OK) {
            cc = curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
        }
        if (cc != CURLE_OK) {
            return setopt_fail(cc, "certificate-authority-data", errbuf,
                               errsize);
        }
    } else if (a->ca_file) {
        cc = curl_easy_setopt(h, CURLOPT_CAINFO, a->ca_file);
        if (cc == CURLE_OK) {
            cc = curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
        }
        if (cc != CURLE_OK) {
            return setopt_fail(cc, "CA file", errbuf, errsize);
        }
    }
    if (a->cert.data) {
        struct curl_blob b = {a->cert.data, a->cert.len, CURL_BLOB_NOCOPY};
        cc = curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &b);
    } else if (a->cert_file) {
        cc = curl_easy_setopt(h, CURLOPT_SSLCERT, a->cert_file);
    }
    if (cc == CURLE_OK && (a->cert.data || a->cert_file)) {
        cc = curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (cc != CURLE_OK) {
        return setopt_fail(cc, "client certificate", errbuf, errsize);
    }
    if (a->key.data) {
        struct curl_blob b = {a->key.data, a->key.len, CURL_BLOB_NOCOPY};
        cc = curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &b);
    } else if (a->key_file) {
        cc = curl_easy_setopt(h, CURLOPT_SSLKEY, a->key_file);
    }
    if (cc == CURLE_OK && (a->key.data || a->key_file)) {
        cc = curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (cc != CURLE_OK) {
        return setopt_fail(cc, "client key", errbuf, errsize);
    }
    return 0;
}

/*
 * Refresh the token cache if due. Locks: a->lock held. Returns 1 when a
 * re-read failed and the cached token is kept (the caller warns), 0 when
 * the token is fresh, negative errno when no token can be had.
 */
static int token_refresh_locked(struct kwb_kube_auth *a, char *errbuf,
                                size_t errsize)
{
    int64_t now = mono_ns();
    struct stat st;
    int changed;
    int rc;

    if (!a->token_path) {
        return 0;
    }
    if (!a->force_reread && a->token &&
        now - a->last_check_ns < TOKEN_CHECK_NS) {
        return 0;
    }
    a->last_check_ns = now;
    if (stat(a->token_path, &st) != 0) {
        rc = fail(errbuf, errsize, -errno, "%s: %s", a->token_path,
                  strerror(errno));
        goto failed;
    }
    changed = !a->have_stat || st.st_dev != a->st_dev ||
              st.st_ino != a->st_ino || st.st_size != a->st_size ||
              st.st_mtim.tv_sec != a->st_mtim.tv_sec ||
              st.st_mtim.tv_nsec != a->st_mtim.tv_nsec;
    if (!changed && !a->force_reread && a->token) {
        return 0;
    }
    rc = token_reload(a, errbuf, errsize);
    if (rc < 0) {
        goto failed;
    }
    a->force_reread = 0;
    a->read_failing = 0;
    return 0;
failed:
    if (!a->token) {
        return rc;
    }
    /* Keep the cached token; a forced re-read is retried next time. */
    if (a->read_failing) {
        return 0;
    }
    a->read_failing = 1;
    return 1;
}

int kwb_kube_auth_apply(struct kwb_kube_auth *a, void *curl_easy,
                        struct curl_slist **headers, char *errbuf,
                        size_t errsize)
{
    static const char prefix[] = "Authorization: Bearer ";
    char msg[512];
    char *hdr = NULL;
    size_t hdrlen = 0;
    struct curl_slist *l;
    int warn = 0;
    int rc = 0;

    if (a->https) {
        rc = apply_tls(a, curl_easy, errbuf, errsize);
        if (rc < 0) {
            goto out;
        }
    }
    if (a->proxy) {
        CURLcode cc = curl_easy_setopt(curl_easy, CURLOPT_PROXY, a->proxy);
        if (cc != CURLE_OK) {
            rc = setopt_fail(cc, "proxy", errbuf, errsize);
            goto out;
        }
    }

    pthread_mutex_lock(&a->lock);
    rc = token_refresh_locked(a, msg, sizeof(msg));
    if (rc == 1) {
        warn = 1;
        rc = 0;
    }
    if (rc == 0 && a->token) {
        hdrlen = sizeof(prefix) + strlen(a->token);
        hdr = malloc(hdrlen);
        if (hdr) {
            memcpy(hdr, prefix, sizeof(prefix) - 1);
            memcpy(hdr + sizeof(prefix) - 1, a->token, strlen(a->token) + 1);
        } else {
            rc = -ENOMEM;
        }
    }
    pthread_mutex_unlock(&a->lock);

    if (warn) {
        KWB_WARN(MODULE,
                 "cannot re-read the token file, using the cached "
                 "token: %s",
                 msg);
    }
    if (rc == -ENOMEM) {
        rc = fail(errbuf, errsize, rc, "out of memory");
        goto out;
    }
    if (rc < 0) {
        rc = fail(errbuf, errsize, rc, "token: %s", msg);
        goto out;
    }
    if (hdr) {
        l = curl_slist_append(*headers, hdr);
        if (!l) {
            rc = fail(errbuf, errsize, -ENOMEM, "out of memory");
            goto out;
        }
        *headers = l;
    }
out:
    wipe_free(hdr, hdrlen);
    return rc;
}

int kwb_kube_auth_invalidate(struct kwb_kube_auth *a)
{
    int has_file;

    pthread_mutex_lock(&a->lock);
    has_file = a->token_path != NULL;
    if (has_file) {
        a->force_reread = 1;
    }
    pthread_mutex_unlock(&a->lock);
    return has_file;
}
