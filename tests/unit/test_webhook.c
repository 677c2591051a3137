/*
 * test_webhook.c - the webhook sink's pure parts: HMAC signature,
 * Retry-After, backoff, status classes, the 413 limits and the parts of a
 * split batch, the event member finder, and configuration validation. No
 * network, no sleeps (the sink's delivery is tested against a receiver in
 * tests/integration/test_webhook_*.py).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

#include "check.h"
#include "webhook.h"

static char tmpdir[64];

static void test_sign(void)
{
    char out[128];
    const char *body = "hello\n";

    /* python3: hmac.new(b"key", b"1700000000.hello\n", sha256) */
    CHECK_EQ_INT(kwb_webhook_sign((const unsigned char *)"key", 3, 1700000000,
                                  body, strlen(body), out, sizeof(out)),
                 0);
    CHECK_EQ_STR(out, "t=1700000000,v1=61d23d8d23ba51aaba4d5ffd20e251b0887"
                      "53c5e9fd74b1840880f6f2abaad1e");

    /* A key longer than the block size, an empty body. */
    {
        unsigned char key[100];

        memset(key, 'k', sizeof(key));
        CHECK_EQ_INT(
            kwb_webhook_sign(key, sizeof(key), 0, "", 0, out, sizeof(out)), 0);
        CHECK_EQ_STR(out, "t=0,v1=243c2f8200e1d4ee892e7a7ded377a65e2beb1c"
                          "64b997c54b8b0f516216d4b0f");
    }
    /* Too small an output buffer is an error, not a truncation. */
    CHECK_EQ_INT(
        kwb_webhook_sign((const unsigned char *)"key", 3, 1, "x", 1, out, 40),
        -ENOSPC);
}

static void test_retry_after(void)
{
    const time_t now = 1700000000; /* Tue, 14 Nov 2023 22:13:20 GMT */

    CHECK_EQ_INT(kwb_webhook_retry_after_ms("2", now), 2000);
    CHECK_EQ_INT(kwb_webhook_retry_after_ms(" 10 ", now), 10000);
    CHECK_EQ_INT(kwb_webhook_retry_after_ms("0", now), 0);
    CHECK_EQ_INT(kwb_webhook_retry_after_ms("99999999999999999999", now),
                 KWB_WEBHOOK_MAX_RETRY_AFTER_MS);
    CHECK_EQ_INT(kwb_webhook_retry_after_ms("2x", now), -1);
    CHECK_EQ_INT(kwb_webhook_retry_after_ms("soon", now), -1);
    CHECK_EQ_INT(kwb_webhook_retry_after_ms("", now), -1);
    CHECK_EQ_INT(
        kwb_webhook_retry_after_ms("Tue, 14 Nov 2023 22:15:00 GMT", now),
        100000);
    CHECK_EQ_INT(
        kwb_webhook_retry_after_ms("Tue, 14 Nov 2023 22:00:00 GMT", now), 0);
    CHECK_EQ_INT(
        kwb_webhook_retry_after_ms("Wed, 15 Nov 2023 22:15:00 GMT", now),
        KWB_WEBHOOK_MAX_RETRY_AFTER_MS);
}

static void test_backoff(void)
{
    CHECK_EQ_INT(kwb_webhook_backoff_ms(500, 30000, 1, 0.0), 250);
    CHECK_EQ_INT(kwb_webhook_backoff_ms(500, 30000, 1, 0.5), 375);
    CHECK(kwb_webhook_backoff_ms(500, 30000, 1, 0.99999) <= 500);
    CHECK_EQ_INT(kwb_webhook_backoff_ms(500, 30000, 2, 0.0), 500);
    CHECK_EQ_INT(kwb_webhook_backoff_ms(500, 30000, 3, 0.0), 1000);
    /* Capped, and never overflowing however many attempts. */
    CHECK_EQ_INT(kwb_webhook_backoff_ms(500, 30000, 10, 0.0), 15000);
    CHECK(kwb_webhook_backoff_ms(500, 30000, 4000000000u, 0.99999) <= 30000);
    CHECK(kwb_webhook_backoff_ms(500, 30000, 4000000000u, 0.0) >= 15000);
    /* Out-of-range randomness is clamped. */
    CHECK_EQ_INT(kwb_webhook_backoff_ms(100, 100, 1, -3.0), 50);
    CHECK(kwb_webhook_backoff_ms(100, 100, 1, 7.0) <= 100);
}

static void test_status(void)
{
    static const long transient[] = {408, 429, 500, 502, 503,
                                     504, 599, 301, 307, 100};
    static const long permanent[] = {400, 401, 403, 404, 405,
                                     409, 413, 422, 451, 499};

    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
        CHECK_EQ_INT(kwb_webhook_status_transient(transient[i]), 1);
    }
    for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++) {
        CHECK_EQ_INT(kwb_webhook_status_transient(permanent[i]), 0);
    }
}

static int member(const char *json, const char *key, char *out, size_t size)
{
    const char *v = NULL;
    size_t n = 0;

    if (kwb_webhook_json_member(json, strlen(json), key, &v, &n) != 0) {
        return -1;
    }
    if (n >= size) {
        return -2;
    }
    memcpy(out, v, n);
    out[n] = '\0';
    return 0;
}

static void test_limits(void)
{
    struct kwb_webhook_limits l = {500, 1048576, 7};

    /* One event says nothing about batches. */
    CHECK_EQ_INT(kwb_webhook_limits_lower(&l, 1, 2000000), 0);
    CHECK_EQ_INT(l.max_events, 500);
    CHECK_EQ_INT(l.max_bytes, 1048576);
    CHECK_EQ_INT(l.ok_run, 7);
    CHECK_EQ_INT(kwb_webhook_limits_lower(&l, 0, 0), 0);

    /* The larger half of what got the 413, not half of the old limit. */
    CHECK_EQ_INT(kwb_webhook_limits_lower(&l, 100, 25001), 1);
    CHECK_EQ_INT(l.max_events, 50);
    CHECK_EQ_INT(l.max_bytes, 25001);
    CHECK_EQ_INT(l.ok_run, 0);
    /* An odd count: the larger half. */
    CHECK_EQ_INT(kwb_webhook_limits_lower(&l, 7, 3000), 1);
    CHECK_EQ_INT(l.max_events, 4);
    CHECK_EQ_INT(l.max_bytes, 3000);

    /* Never raised by a 413, never below 1. */
    l.max_events = 10;
    l.max_bytes = 1000;
    CHECK_EQ_INT(kwb_webhook_limits_lower(&l, 400, 100000), 1);
    CHECK_EQ_INT(l.max_events, 10);
    CHECK_EQ_INT(l.max_bytes, 1000);
    CHECK_EQ_INT(kwb_webhook_limits_lower(&l, 2, 0), 1);
    CHECK_EQ_INT(l.max_events, 1);
    CHECK_EQ_INT(l.max_bytes, 1);

    /* Growth: a quarter (at least 1) after KWB_WEBHOOK_GROW_AFTER. */
    l.max_events = 50;
    l.max_bytes = 25000;
    l.ok_run = 0;
    for (int i = 1; i < KWB_WEBHOOK_GROW_AFTER; i++) {
        CHECK_EQ_INT(kwb_webhook_limits_ok(&l, 500, 1048576), 0);
    }
    CHECK_EQ_INT(l.max_events, 50);
    CHECK_EQ_INT(kwb_webhook_limits_ok(&l, 500, 1048576), 1);
    CHECK_EQ_INT(l.max_events, 62);
    CHECK_EQ_INT(l.max_bytes, 31250);
    CHECK_EQ_INT(l.ok_run, 0);

    /* A 413 in the run starts it again. */
    for (int i = 1; i < KWB_WEBHOOK_GROW_AFTER; i++) {
        kwb_webhook_limits_ok(&l, 500, 1048576);
    }
    kwb_webhook_limits_lower(&l, 2, 100000); /* bytes stay 31250 */
    CHECK_EQ_INT(l.max_events, 1);
    CHECK_EQ_INT(kwb_webhook_limits_ok(&l, 500, 1048576), 0);
    CHECK_EQ_INT(l.max_events, 1);

    /* From 1, by one; capped at the configured values. */
    l.max_events = 1;
    l.max_bytes = 1;
    l.ok_run = KWB_WEBHOOK_GROW_AFTER - 1;
    CHECK_EQ_INT(kwb_webhook_limits_ok(&l, 500, 1048576), 1);
    CHECK_EQ_INT(l.max_events, 2);
    CHECK_EQ_INT(l.max_bytes, 2);
    l.max_events = 450;
    l.max_bytes = 1048000;
    l.ok_run = KWB_WEBHOOK_GROW_AFTER - 1;
    CHECK_EQ_INT(kwb_webhook_limits_ok(&l, 500, 1048576), 1);
    CHECK_EQ_INT(l.max_events, 500);
    CHECK_EQ_INT(l.max_bytes, 1048576);

    /* At the configured values: nothing to grow, the run is not kept. */
    for (int i = 0; i < 2 * KWB_WEBHOOK_GROW_AFTER; i++) {
        CHECK_EQ_INT(kwb_webhook_limits_ok(&l, 500, 1048576), 0);
    }
    CHECK_EQ_INT(l.ok_run, 0);
    CHECK_EQ_INT(l.max_events, 500);

    /* Repeated growth gets back to the configured values. */
    l.max_events = 1;
    l.max_bytes = 1;
    for (int i = 0; i < 200 * KWB_WEBHOOK_GROW_AFTER; i++) {
        kwb_webhook_limits_ok(&l, 500, 1048576);
    }
    CHECK_EQ_INT(l.max_events, 500);
    CHECK_EQ_INT(l.max_bytes, 1048576);
}

static void test_parts(void)
{
    /* NDJSON "a\nbb\nccc\n": each event with its newline. */
    const char *nd = "a\nbb\nccc\n";
    const size_t nd_ends[] = {2, 5, 9};
    /* JSON "[a,bb,ccc]": "[" then "," before each later event. */
    const char *js = "[a,bb,ccc]";
    const size_t js_ends[] = {2, 5, 9};
    enum kwb_webhook_format f;
    size_t st;

    f = KWB_WEBHOOK_NDJSON;
    CHECK_EQ_INT(kwb_webhook_part_start(f, nd_ends, 0), 0);
    CHECK_EQ_INT(kwb_webhook_part_start(f, nd_ends, 1), 2);
    CHECK_EQ_INT(kwb_webhook_part_start(f, nd_ends, 2), 5);
    CHECK_EQ_INT(kwb_webhook_part_len(f, nd_ends, 0, 3), strlen(nd));
    CHECK_EQ_INT(kwb_webhook_part_len(f, nd_ends, 0, 1), 2);
    st = kwb_webhook_part_start(f, nd_ends, 1);
    CHECK_EQ_MEM(nd + st, kwb_webhook_part_len(f, nd_ends, 1, 3), "bb\nccc\n",
                 7);
    st = kwb_webhook_part_start(f, nd_ends, 2);
    CHECK_EQ_MEM(nd + st, kwb_webhook_part_len(f, nd_ends, 2, 3), "ccc\n", 4);

    for (f = KWB_WEBHOOK_JSON; f <= KWB_WEBHOOK_CLOUDEVENTS; f++) {
        CHECK_EQ_INT(kwb_webhook_part_start(f, js_ends, 0), 1);
        CHECK_EQ_INT(kwb_webhook_part_start(f, js_ends, 1), 3);
        CHECK_EQ_INT(kwb_webhook_part_start(f, js_ends, 2), 6);
        /* The whole batch is the sealed body, brackets included. */
        CHECK_EQ_INT(kwb_webhook_part_len(f, js_ends, 0, 3), strlen(js));
        /* A part: its slice plus "[" and "]". */
        CHECK_EQ_INT(kwb_webhook_part_len(f, js_ends, 1, 2), strlen("[bb]"));
        CHECK_EQ_INT(kwb_webhook_part_len(f, js_ends, 1, 3),
                     strlen("[bb,ccc]"));
        CHECK_EQ_INT(kwb_webhook_part_len(f, js_ends, 0, 1), strlen("[a]"));
        st = kwb_webhook_part_start(f, js_ends, 1);
        CHECK_EQ_MEM(js + st, js_ends[2] - st, "bb,ccc", 6);
    }
}

static void test_json_member(void)
{
    char out[64];
    const char *ev =
        "{\"type\":\"ADDED\",\"object\":{\"observedAt\":\"inner\",\"a\":[1,"
        "{\"b\":\"}\"}],\"s\":\"x\\\"observedAt\\\":\"},\"n\":-1.5e3,"
        "\"t\":true,\"z\":null, \"observedAt\" : \"2026-11-22T15:04:05.123Z\","
        "\"esc\":\"a\\\"b\"}";

    CHECK_EQ_INT(member(ev, "observedAt", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "2026-11-22T15:04:05.123Z");
    CHECK_EQ_INT(member(ev, "type", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "ADDED");
    CHECK_EQ_INT(member(ev, "esc", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "a\\\"b"); /* raw, still escaped */
    CHECK_EQ_INT(member(ev, "missing", out, sizeof(out)), -1);
    CHECK_EQ_INT(member(ev, "object", out, sizeof(out)), -1); /* not str */
    CHECK_EQ_INT(member(ev, "n", out, sizeof(out)), -1);
    CHECK_EQ_INT(member("{}", "a", out, sizeof(out)), -1);
    CHECK_EQ_INT(member("[\"a\"]", "a", out, sizeof(out)), -1);
    CHECK_EQ_INT(member("{\"a\":\"unterminated", "a", out, sizeof(out)), -1);
    CHECK_EQ_INT(member("{\"x\":{\"a\":\"1\"", "a", out, sizeof(out)), -1);
    CHECK_EQ_INT(member("", "a", out, sizeof(out)), -1);
}

static const char *write_file(const char *name, const char *data)
{
    static char path[8][128];
    static int next;
    char *p = path[next++ % 8];
    FILE *f;

    snprintf(p, 128, "%s/%s", tmpdir, name);
    f = fopen(p, "wb");
    if (!f) {
        return p;
    }
    fwrite(data, 1, strlen(data), f);
    fclose(f);
    return p;
}

/* Parse `text` ("sink = {...};"); returns the rc and fills err. */
static int parse(const char *text, struct kwb_webhook_conf *conf, char *err,
                 size_t errsize)
{
    config_t lc;
    int rc;

    err[0] = '\0';
    config_init(&lc);
    if (!config_read_string(&lc, text)) {
        snprintf(err, errsize, "syntax: %s", config_error_text(&lc));
        config_destroy(&lc);
        return -999;
    }
    rc = kwb_webhook_conf_parse(conf, config_lookup(&lc, "sink"), err, errsize);
    config_destroy(&lc);
    return rc;
}

static void expect_error(const char *body, const char *needle)
{
    struct kwb_webhook_conf conf;
    char text[1024];
    char err[512];
    int rc;

    snprintf(text, sizeof(text), "sink = { %s };", body);
    rc = parse(text, &conf, err, sizeof(err));
    CHECK(rc < 0 && rc != -999);
    if (!CHECK(strstr(err, needle) != NULL)) {
        fprintf(stderr, "    config %s\n    error \"%s\"\n", body, err);
    }
    if (rc == 0) {
        kwb_webhook_conf_free(&conf);
    }
}

static void test_conf(void)
{
    struct kwb_webhook_conf conf;
    char text[2048];
    char err[512];
    const char *secret = write_file("hmac", "s3cret\r\n");
    const char *token = write_file("token", "tok\n");
    const char *twice = write_file("twice", "a\n\n");

    /* Defaults. */
    CHECK_EQ_INT(parse("sink = { url = \"https://h.example:8443/in?x=1\"; };",
                       &conf, err, sizeof(err)),
                 0);
    CHECK_EQ_STR(conf.host, "h.example");
    CHECK_EQ_INT(conf.https, 1);
    CHECK_EQ_INT(conf.batch_max_events, 500);
    CHECK_EQ_INT(conf.batch_max_bytes, 1048576);
    CHECK_EQ_INT(conf.linger_ms, 50);
    CHECK_EQ_INT(conf.timeout_ms, 10000);
    CHECK_EQ_INT(conf.connect_timeout_ms, 5000);
    CHECK_EQ_INT(conf.retry_initial_ms, 500);
    CHECK_EQ_INT(conf.retry_max_ms, 30000);
    CHECK_EQ_INT(conf.format, KWB_WEBHOOK_NDJSON);
    CHECK_EQ_INT(conf.insecure_skip_tls_verify, 0);
    CHECK_EQ_INT(conf.n_headers, 0);
    kwb_webhook_conf_free(&conf);

    /* Everything set; the secret loses exactly one "\r\n". */
    snprintf(text, sizeof(text),
             "sink = { url = \"http://127.0.0.1:9/\"; hmac_secret_file = "
             "\"%s\"; bearer_token_file = \"%s\"; format = \"cloudevents\"; "
             "batch_max_events = 7; batch_max_bytes = 9000; linger_ms = 0; "
             "timeout_ms = 1500; connect_timeout_ms = 100; "
             "retry_initial_ms = 10; retry_max_ms = 20; "
             "headers = { X-A = \"1\"; X-B = \"two words\"; }; };",
             secret, token);
    CHECK_EQ_INT(parse(text, &conf, err, sizeof(err)), 0);
    CHECK_EQ_INT(conf.hmac_secret_len, 6);
    CHECK(conf.hmac_secret && memcmp(conf.hmac_secret, "s3cret", 6) == 0);
    CHECK_EQ_INT(conf.format, KWB_WEBHOOK_CLOUDEVENTS);
    CHECK_EQ_INT(conf.batch_max_events, 7);
    CHECK_EQ_INT(conf.n_headers, 2);
    CHECK_EQ_STR(conf.headers[1].name, "X-B");
    CHECK_EQ_STR(conf.headers[1].value, "two words");
    kwb_webhook_conf_free(&conf);
    CHECK(conf.hmac_secret == NULL && conf.url == NULL);

    snprintf(text, sizeof(text),
             "sink = { url = \"http://h/\"; hmac_secret_file = \"%s\"; "
             "headers = ( \"X.Dotted: v: with colon\" ); };",
             twice);
    CHECK_EQ_INT(parse(text, &conf, err, sizeof(err)), 0);
    CHECK_EQ_INT(conf.hmac_secret_len, 2);
    CHECK(conf.hmac_secret && memcmp(conf.hmac_secret, "a\n", 2) == 0);
    CHECK_EQ_STR(conf.headers[0].name, "X.Dotted");
    CHECK_EQ_STR(conf.headers[0].value, "v: with colon");
    kwb_webhook_conf_free(&conf);

    expect_error("format = \"ndjson\";", "url is required");
    expect_error("url = \"\";", "url must not be empty");
    expect_error("url = \"ftp://h/\";", "scheme must be http or https");
    expect_error("url = \"h/path\";", "url: not a valid URL");
    expect_error("url = \"http://h/\"; format = \"xml\";", "format must be");
    expect_error("url = \"http://h/\"; batch_max_events = 0;",
                 "batch_max_events must be between");
    expect_error("url = \"http://h/\"; batch_max_bytes = 1.5;",
                 "batch_max_bytes must be an integer");
    expect_error("url = \"http://h/\"; linger_ms = -1;", "linger_ms");
    expect_error("url = \"http://h/\"; insecure_skip_tls_verify = 1;",
                 "insecure_skip_tls_verify must be true or false");
    expect_error("url = \"http://h/\"; retry_initial_ms = 100; "
                 "retry_max_ms = 50;",
                 "retry_max_ms (50) is less than retry_initial_ms");
    expect_error("url = \"http://h/\"; headers = { Authorization = \"x\"; };",
                 "Authorization is set by the sink");
    expect_error("url = \"http://h/\"; headers = { x-kwb-signature = \"x\"; "
                 "};",
                 "x-kwb-signature is set by the sink");
    expect_error("url = \"http://h/\"; headers = ( \"X-KWB-Batch-Id: 1\" );",
                 "X-KWB-Batch-Id is set by the sink");
    expect_error("url = \"http://h/\"; headers = ( \"Bad Name: v\" );",
                 "not a valid header name");
    expect_error("url = \"http://h/\"; headers = ( \"X-A: 1\", \"x-a: 2\" );",
                 "x-a given twice"); /* names are case-insensitive */
    expect_error("url = \"http://h/\"; headers = ( \"X-A: a\\nb\" );",
                 "control characters");
    expect_error("url = \"http://h/\"; headers = ( 5 );", "must be a string");
    expect_error("url = \"http://h/\"; headers = \"X: y\";",
                 "headers must be a group");
    expect_error("url = \"https://h/\"; key_file = \"/k\";",
                 "key_file needs cert_file");
    expect_error("url = \"http://h/\"; ca_file = \"/etc/hostname\";",
                 "ca_file is set but url is not https");

    /* Files: present but unusable is an error at once. */
    write_file("empty", "\n");
    snprintf(text, sizeof(text),
             "url = \"http://h/\"; hmac_secret_file = "
             "\"%s/empty\";",
             tmpdir);
    expect_error(text, "hmac_secret_file:");
    snprintf(text, sizeof(text), "url = \"https://h/\"; ca_file = \"%s\";",
             tmpdir);
    expect_error(text, "not a regular file");
    write_file("ctl", "ab\001c\n");
    snprintf(text, sizeof(text),
             "url = \"http://h/\"; bearer_token_file = "
             "\"%s/ctl\";",
             tmpdir);
    expect_error(text, "bearer_token_file");

    /* Missing files pass parse (secrets not mounted at --check) and fail
     * kwb_webhook_conf_files(strict). */
    snprintf(text, sizeof(text),
             "sink = { url = \"https://h/\"; hmac_secret_file = \"%s/nope\"; "
             "};",
             tmpdir);
    CHECK_EQ_INT(parse(text, &conf, err, sizeof(err)), 0);
    CHECK(conf.hmac_secret == NULL);
    CHECK_EQ_INT(kwb_webhook_conf_files(&conf, 0, err, sizeof(err)), -ENOENT);
    CHECK(strstr(err, "hmac_secret_file") && strstr(err, "nope"));
    write_file("nope", "late\n");
    CHECK_EQ_INT(kwb_webhook_conf_files(&conf, 0, err, sizeof(err)), 0);
    CHECK(conf.hmac_secret && strcmp((char *)conf.hmac_secret, "late") == 0);
    kwb_webhook_conf_free(&conf);
}

static void test_read_secret(void)
{
    unsigned char *s = NULL;
    size_t n = 0;
    char *big = malloc(KWB_WEBHOOK_MAX_SECRET + 2);

    CHECK_EQ_INT(kwb_webhook_read_secret(write_file("s1", "abc"), &s, &n), 0);
    CHECK_EQ_INT(n, 3);
    free(s);
    CHECK_EQ_INT(
        kwb_webhook_read_secret(write_file("s2", "abc\r\n\r\n"), &s, &n), 0);
    CHECK_EQ_INT(n, 5);
    CHECK(s && memcmp(s, "abc\r\n", 5) == 0);
    free(s);
    CHECK_EQ_INT(kwb_webhook_read_secret(write_file("s3", "\r"), &s, &n), 0);
    CHECK_EQ_INT(n, 1); /* a lone CR is not a newline */
    free(s);
    if (big) {
        memset(big, 'x', KWB_WEBHOOK_MAX_SECRET + 1);
        big[KWB_WEBHOOK_MAX_SECRET + 1] = '\0';
        CHECK_EQ_INT(kwb_webhook_read_secret(write_file("big", big), &s, &n),
                     -EFBIG);
        CHECK(s == NULL);
        free(big);
    }
    CHECK_EQ_INT(kwb_webhook_read_secret("/nonexistent/x", &s, &n), -ENOENT);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    char cmd[128];

    snprintf(tmpdir, sizeof(tmpdir), "%s/kwb-test-webhook-XXXXXX",
             base && strlen(base) < 32 ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_sign();
    test_retry_after();
    test_backoff();
    test_status();
    test_json_member();
    test_limits();
    test_parts();
    test_conf();
    test_read_secret();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", tmpdir);
    }
    return check_report();
}
