/*
 * webhook_conf.c - the webhook sink's configuration: key table, validation,
 * secret files. See webhook.h. Runs in init (no network I/O), so
 * `--check` validates everything offline.
 */
#include "webhook.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libconfig.h>
#include <openssl/crypto.h>

const char *const kwb_webhook_keys[] = {
    "url",
    "hmac_secret_file",
    "bearer_token_file",
    "ca_file",
    "cert_file",
    "key_file",
    "insecure_skip_tls_verify",
    "batch_max_events",
    "batch_max_bytes",
    "linger_ms",
    "timeout_ms",
    "connect_timeout_ms",
    "format",
    "headers",
    "retry_initial_ms",
    "retry_max_ms",
    NULL,
};

/* Headers the sink sets itself; a custom header may not replace them. */
static const char *const reserved_headers[] = {
    "Authorization",  "X-KWB-Signature",   "Content-Type",
    "Content-Length", "Transfer-Encoding", "Host",
    "Expect",         "Connection",        "X-KWB-Attempt",
    "X-KWB-Events",   "X-KWB-Batch-Id",    NULL,
};

static void sfree(char **p)
{
    free(*p);
    *p = NULL;
}

/* Optional string key: *out stays NULL when absent. A present key must be
 * a non-empty string. */
static int get_string(const config_setting_t *group, const char *key,
                      char **out, char *errbuf, size_t errsize)
{
    const config_setting_t *s = config_setting_get_member(group, key);
    const char *v;

    *out = NULL;
    if (!s) {
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        snprintf(errbuf, errsize, "webhook: %s must be a string", key);
        return -EINVAL;
    }
    v = config_setting_get_string(s);
    if (!v || !*v) {
        snprintf(errbuf, errsize, "webhook: %s must not be empty", key);
        return -EINVAL;
    }
    *out = strdup(v);
    return *out ? 0 : -ENOMEM;
}

static int get_long(const config_setting_t *group, const char *key, long def,
                    long min, long max, long *out, char *errbuf, size_t errsize)
{
    const config_setting_t *s = config_setting_get_member(group, key);
    long long v;

    *out = def;
    if (!s) {
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_INT &&
        config_setting_type(s) != CONFIG_TYPE_INT64) {
        snprintf(errbuf, errsize, "webhook: %s must be an integer", key);
        return -EINVAL;
    }
    v = config_setting_get_int64(s);
    if (v < min || v > max) {
        snprintf(errbuf, errsize, "webhook: %s must be between %ld and %ld",
                 key, min, max);
        return -ERANGE;
    }
    *out = (long)v;
    return 0;
}

static int get_bool(const config_setting_t *group, const char *key, int def,
                    int *out, char *errbuf, size_t errsize)
{
    const config_setting_t *s = config_setting_get_member(group, key);

    *out = def;
    if (!s) {
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        snprintf(errbuf, errsize, "webhook: %s must be true or false", key);
        return -EINVAL;
    }
    *out = config_setting_get_bool(s) ? 1 : 0;
    return 0;
}

/* A file the sink will open later: it must be a readable regular file.
 * With missing_ok a file that does not exist passes (see webhook.h). */
static int check_file(const char *key, const char *path, int missing_ok,
                      char *errbuf, size_t errsize)
{
    struct stat st;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && missing_ok) {
        return 0;
    }
    if (fd < 0 || fstat(fd, &st) != 0) {
        int err = errno;

        snprintf(errbuf, errsize, "webhook: %s: cannot read %s: %s", key, path,
                 strerror(err));
        if (fd >= 0) {
            close(fd);
        }
        return -err;
    }
    close(fd);
    if (!S_ISREG(st.st_mode)) {
        snprintf(errbuf, errsize, "webhook: %s: %s is not a regular file", key,
                 path);
        return -EINVAL;
    }
    return 0;
}

int kwb_webhook_read_secret(const char *path, unsigned char **out,
                            size_t *outlen)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int fd = -1;
    int rc;

    *out = NULL;
    *outlen = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    buf = malloc(KWB_WEBHOOK_MAX_SECRET + 1);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, KWB_WEBHOOK_MAX_SECRET + 1 - len);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            goto out;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
        if (len > KWB_WEBHOOK_MAX_SECRET) {
            rc = -EFBIG;
            goto out;
        }
    }
    if (len > 0 && buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r') {
            len--;
        }
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    buf = NULL;
    rc = 0;
out:
    if (buf) {
        OPENSSL_cleanse(buf, KWB_WEBHOOK_MAX_SECRET + 1);
        free(buf);
    }
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* With missing_ok a file that does not exist leaves *out NULL. */
static int read_secret_key(const char *key, const char *path, int missing_ok,
                           unsigned char **out, size_t *outlen, char *errbuf,
                           size_t errsize)
{
    int rc = kwb_webhook_read_secret(path, out, outlen);

    if (rc == -ENOENT && missing_ok) {
        return 0;
    }
    if (rc == -EFBIG) {
        snprintf(errbuf, errsize, "webhook: %s: %s is larger than %d bytes",
                 key, path, KWB_WEBHOOK_MAX_SECRET);
        return rc;
    }
    if (rc < 0) {
        snprintf(errbuf, errsize, "webhook: %s: cannot read %s: %s", key, path,
                 strerror(-rc));
        return rc;
    }
    if (*outlen == 0) {
        snprintf(errbuf, errsize, "webhook: %s: %s is empty", key, path);
        rc = -EINVAL;
        goto fail;
    }
    return 0;
fail:
    OPENSSL_cleanse(*out, *outlen);
    free(*out);
    *out = NULL;
    *outlen = 0;
    return rc;
}

static int parse_url(struct kwb_webhook_conf *conf, char *errbuf,
                     size_t errsize)
{
    CURLU *u = NULL;
    char *scheme = NULL;
    char *host = NULL;
    int rc;

    u = curl_url();
    if (!u) {
        rc = -ENOMEM;
        goto out;
    }
    /* No default scheme: "host/path" is an error, not guessed. */
    if (curl_url_set(u, CURLUPART_URL, conf->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
        snprintf(errbuf, errsize, "webhook: url: not a valid URL");
        rc = -EINVAL;
        goto out;
    }
    if (strcmp(scheme, "https") == 0) {
        conf->https = 1;
    } else if (strcmp(scheme, "http") == 0) {
        conf->https = 0;
    } else {
        snprintf(errbuf, errsize,
                 "webhook: url: scheme must be http or https, not \"%s\"",
                 scheme);
        rc = -EINVAL;
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host ||
        !*host) {
        snprintf(errbuf, errsize, "webhook: url: no host");
        rc = -EINVAL;
        goto out;
    }
    conf->host = strdup(host);
    rc = conf->host ? 0 : -ENOMEM;
out:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

static int header_name_ok(const char *name)
{
    /* RFC 9110 token characters. */
    static const char extra[] = "!#$%&'*+-.^_`|~";

    if (!*name) {
        return 0;
    }
    for (const char *p = name; *p; p++) {
        if (!isalnum((unsigned char)*p) && !strchr(extra, *p)) {
            return 0;
        }
    }
    return 1;
}

static int header_value_ok(const char *value)
{
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
            return 0;
        }
    }
    return 1;
}

static int add_header(struct kwb_webhook_conf *conf, const char *name,
                      const char *value, char *errbuf, size_t errsize)
{
    struct kwb_webhook_header *h;

    if (!header_name_ok(name)) {
        snprintf(errbuf, errsize,
                 "webhook: headers: \"%s\" is not a valid header name", name);
        return -EINVAL;
    }
    for (size_t i = 0; reserved_headers[i]; i++) {
        if (strcasecmp(name, reserved_headers[i]) == 0) {
            snprintf(errbuf, errsize,
                     "webhook: headers: %s is set by the sink and cannot "
                     "be configured",
                     name);
            return -EINVAL;
        }
    }
    for (size_t i = 0; i < conf->n_headers; i++) {
        if (strcasecmp(name, conf->headers[i].name) == 0) {
            snprintf(errbuf, errsize, "webhook: headers: %s given twice", name);
            return -EINVAL;
        }
    }
    /* The value is never printed: it may hold an API key. */
    if (!header_value_ok(value)) {
        snprintf(errbuf, errsize,
                 "webhook: headers: value of %s contains control characters",
                 name);
        return -EINVAL;
    }
    if (conf->n_headers >= KWB_WEBHOOK_MAX_HEADERS) {
        snprintf(errbuf, errsize, "webhook: headers: more than %d headers",
                 KWB_WEBHOOK_MAX_HEADERS);
        return -E2BIG;
    }
    h = &conf->headers[conf->n_headers];
    h->name = strdup(name);
    h->value = strdup(value);
    if (!h->name || !h->value) {
        sfree(&h->name);
        sfree(&h->value);
        return -ENOMEM;
    }
    conf->n_headers++;
    return 0;
}

/*
 * headers = { X-Name = "value"; };   (libconfig names:
 * [A-Za-z*][-A-Za-z0-9_*]*) headers = ( "X-Name: value" );     (any header
 * name)
 */
static int parse_headers(struct kwb_webhook_conf *conf,
                         const config_setting_t *group, char *errbuf,
                         size_t errsize)
{
    const config_setting_t *s = config_setting_get_member(group, "headers");
    int n;
    int rc = 0;

    if (!s) {
        return 0;
    }
    if (!config_setting_is_group(s) && !config_setting_is_list(s) &&
        !config_setting_is_array(s)) {
        snprintf(errbuf, errsize,
                 "webhook: headers must be a group { Name = \"value\"; } "
                 "or a list ( \"Name: value\" )");
        return -EINVAL;
    }
    n = config_setting_length(s);
    conf->headers = calloc(KWB_WEBHOOK_MAX_HEADERS, sizeof(*conf->headers));
    if (!conf->headers) {
        return -ENOMEM;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *v = NULL;

        if (config_setting_type(e) == CONFIG_TYPE_STRING) {
            v = config_setting_get_string(e);
        }
        if (!v) {
            snprintf(errbuf, errsize,
                     "webhook: headers: element %d must be a string", i + 1);
            rc = -EINVAL;
        } else if (config_setting_is_group(s)) {
            rc = add_header(conf, config_setting_name(e), v, errbuf, errsize);
        } else {
            const char *colon = strchr(v, ':');
            char name[256];
            size_t nlen;

            if (!colon || colon == v ||
                (nlen = (size_t)(colon - v)) >= sizeof(name)) {
                snprintf(errbuf, errsize,
                         "webhook: headers: element %d must be "
                         "\"Name: value\"",
                         i + 1);
                rc = -EINVAL;
                break;
            }
            memcpy(name, v, nlen);
            name[nlen] = '\0';
            v = colon + 1;
            while (*v == ' ' || *v == '\t') {
                v++;
            }
            rc = add_header(conf, name, v, errbuf, errsize);
        }
    }
    return rc;
}

static int parse_format(struct kwb_webhook_conf *conf,
                        const config_setting_t *group, char *errbuf,
                        size_t errsize)
{
    char *fmt = NULL;
    int rc = get_string(group, "format", &fmt, errbuf, errsize);

    if (rc < 0) {
        return rc;
    }
    if (!fmt || strcmp(fmt, "ndjson") == 0) {
        conf->format = KWB_WEBHOOK_NDJSON;
    } else if (strcmp(fmt, "json") == 0) {
        conf->format = KWB_WEBHOOK_JSON;
    } else if (strcmp(fmt, "cloudevents") == 0) {
        conf->format = KWB_WEBHOOK_CLOUDEVENTS;
    } else {
        snprintf(errbuf, errsize,
                 "webhook: format must be \"ndjson\", \"json\" or "
                 "\"cloudevents\", not \"%s\"",
                 fmt);
        rc = -EINVAL;
    }
    free(fmt);
    return rc;
}

int kwb_webhook_conf_parse(struct kwb_webhook_conf *conf,
                           const config_setting_t *group, char *errbuf,
                           size_t errsize)
{
    int rc;

    memset(conf, 0, sizeof(*conf));
    if (!group || !config_setting_is_group(group)) {
        snprintf(errbuf, errsize, "webhook: sink must be a group");
        rc = -EINVAL;
        goto out;
    }
    rc = get_string(group, "url", &conf->url, errbuf, errsize);
    if (rc < 0) {
        goto out;
    }
    if (!conf->url) {
        snprintf(errbuf, errsize, "webhook: url is required");
        rc = -EINVAL;
        goto out;
    }
    rc = parse_url(conf, errbuf, errsize);
    if (rc < 0) {
        goto out;
    }
    if ((rc = get_string(group, "hmac_secret_file", &conf->hmac_secret_file,
                         errbuf, errsize)) < 0 ||
        (rc = get_string(group, "bearer_token_file", &conf->bearer_token_file,
                         errbuf, errsize)) < 0 ||
        (rc = get_string(group, "ca_file", &conf->ca_file, errbuf, errsize)) <
            0 ||
        (rc = get_string(group, "cert_file", &conf->cert_file, errbuf,
                         errsize)) < 0 ||
        (rc = get_string(group, "key_file", &conf->key_file, errbuf, errsize)) <
            0 ||
        (rc = get_bool(group, "insecure_skip_tls_verify", 0,
                       &conf->insecure_skip_tls_verify, errbuf, errsize)) < 0 ||
        (rc = get_long(group, "batch_max_events", 500, 1, 1000000,
                       &conf->batch_max_events, errbuf, errsize)) < 0 ||
        (rc = get_long(group, "batch_max_bytes", 1L << 20, 1, 1L << 30,
                       &conf->batch_max_bytes, errbuf, errsize)) < 0 ||
        (rc = get_long(group, "linger_ms", 50, 0, 3600000, &conf->linger_ms,
                       errbuf, errsize)) < 0 ||
        (rc = get_long(group, "timeout_ms", 10000, 1, 3600000,
                       &conf->timeout_ms, errbuf, errsize)) < 0 ||
        (rc = get_long(group, "connect_timeout_ms", 5000, 1, 3600000,
                       &conf->connect_timeout_ms, errbuf, errsize)) < 0 ||
        (rc = get_long(group, "retry_initial_ms", 500, 1, 3600000,
                       &conf->retry_initial_ms, errbuf, errsize)) < 0 ||
        (rc = get_long(group, "retry_max_ms", 30000, 1, 3600000,
                       &conf->retry_max_ms, errbuf, errsize)) < 0 ||
        (rc = parse_format(conf, group, errbuf, errsize)) < 0 ||
        (rc = parse_headers(conf, group, errbuf, errsize)) < 0) {
        goto out;
    }
    if (conf->retry_max_ms < conf->retry_initial_ms) {
        snprintf(errbuf, errsize,
                 "webhook: retry_max_ms (%ld) is less than retry_initial_ms "
                 "(%ld)",
                 conf->retry_max_ms, conf->retry_initial_ms);
        rc = -EINVAL;
        goto out;
    }
    if (conf->key_file && !conf->cert_file) {
        snprintf(errbuf, errsize,
                 "webhook: key_file needs cert_file (mTLS client "
                 "certificate)");
        rc = -EINVAL;
        goto out;
    }
    if (!conf->https && (conf->ca_file || conf->cert_file)) {
        snprintf(errbuf, errsize, "webhook: %s is set but url is not https",
                 conf->ca_file ? "ca_file" : "cert_file");
        rc = -EINVAL;
        goto out;
    }
    rc = kwb_webhook_conf_files(conf, 1, errbuf, errsize);
out:
    if (rc < 0) {
        kwb_webhook_conf_free(conf);
    }
    return rc;
}

int kwb_webhook_conf_files(struct kwb_webhook_conf *conf, int missing_ok,
                           char *errbuf, size_t errsize)
{
    unsigned char *token = NULL;
    size_t token_len = 0;
    int rc = 0;

    if ((conf->ca_file && (rc = check_file("ca_file", conf->ca_file, missing_ok,
                                           errbuf, errsize)) < 0) ||
        (conf->cert_file &&
         (rc = check_file("cert_file", conf->cert_file, missing_ok, errbuf,
                          errsize)) < 0) ||
        (conf->key_file &&
         (rc = check_file("key_file", conf->key_file, missing_ok, errbuf,
                          errsize)) < 0)) {
        goto out;
    }
    if (conf->hmac_secret_file && !conf->hmac_secret) {
        rc = read_secret_key("hmac_secret_file", conf->hmac_secret_file,
                             missing_ok, &conf->hmac_secret,
                             &conf->hmac_secret_len, errbuf, errsize);
        if (rc < 0) {
            goto out;
        }
    }
    if (conf->bearer_token_file) {
        /* Read to validate; webhook.c re-reads it when it changes. */
        rc = read_secret_key("bearer_token_file", conf->bearer_token_file,
                             missing_ok, &token, &token_len, errbuf, errsize);
        if (rc < 0) {
            goto out;
        }
        if (token && (!header_value_ok((const char *)token) ||
                      strlen((const char *)token) != token_len)) {
            snprintf(errbuf, errsize,
                     "webhook: bearer_token_file: %s contains control "
                     "characters",
                     conf->bearer_token_file);
            rc = -EINVAL;
            goto out;
        }
    }
    rc = 0;
out:
    if (token) {
        OPENSSL_cleanse(token, token_len);
        free(token);
    }
    return rc;
}

void kwb_webhook_conf_free(struct kwb_webhook_conf *conf)
{
    if (!conf) {
        return;
    }
    sfree(&conf->url);
    sfree(&conf->host);
    sfree(&conf->hmac_secret_file);
    if (conf->hmac_secret) {
        OPENSSL_cleanse(conf->hmac_secret, conf->hmac_secret_len);
        free(conf->hmac_secret);
    }
    sfree(&conf->bearer_token_file);
    sfree(&conf->ca_file);
    sfree(&conf->cert_file);
    sfree(&conf->key_file);
    for (size_t i = 0; i < conf->n_headers; i++) {
        free(conf->headers[i].name);
        if (conf->headers[i].value) {
            OPENSSL_cleanse(conf->headers[i].value,
                            strlen(conf->headers[i].value));
            free(conf->headers[i].value);
        }
    }
    free(conf->headers);
    memset(conf, 0, sizeof(*conf));
}
