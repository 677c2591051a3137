/*
 * test_event.c - object rewriting of event.c: Secret redaction ("redacted"
 * or keyed HMAC of the decoded value, keys kept, order kept) and
 * trim_managed_fields. The expected HMACs were computed independently
 * (Python hmac/hashlib).
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "event.h"
#include "jscan.h"
#include "pipeline.h"

static const char secret_obj[] =
    "{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"s\"},"
    "\"data\":{\"a\":\"aGVsbG8=\",\"b\":\"d29ybGQ=\"},"
    "\"stringData\":{\"c\":\"plain\"},\"type\":\"Opaque\"}";

static char *rewrite(const struct kwb_event_ctx *ctx, const char *obj,
                     int redact)
{
    char err[256] = "";
    char *out =
        kwb_event_rewrite(ctx, obj, strlen(obj), redact, err, sizeof(err));

    if (!out) {
        fprintf(stderr, "rewrite failed: %s\n", err);
    }
    return out;
}

static void test_redacted(void)
{
    struct kwb_event_ctx ctx;
    char *out;

    CHECK_EQ_INT(kwb_event_ctx_init(&ctx, "c", "secrets", "v1", 0, NULL, 0), 0);
    out = rewrite(&ctx, secret_obj, 1);
    CHECK_EQ_STR(out,
                 "{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"metadata\":{"
                 "\"name\":\"s\"},\"data\":{\"a\":\"redacted\",\"b\":"
                 "\"redacted\"},\"stringData\":{\"c\":\"redacted\"},"
                 "\"type\":\"Opaque\"}");
    free(out);
    /* Not asked to redact: values stay. */
    out = rewrite(&ctx, secret_obj, 0);
    CHECK(out && strstr(out, "\"a\":\"aGVsbG8=\"") != NULL);
    free(out);
    kwb_event_ctx_free(&ctx);
}

/* Found by fuzz_event: a second "data" member kept its values, and a
 * "data" that is not an object passed through. */
static void test_duplicate_and_malformed_members(void)
{
    struct kwb_event_ctx ctx;
    char *out;

    CHECK_EQ_INT(kwb_event_ctx_init(&ctx, "c", "secrets", "v1", 0, NULL, 0), 0);
    out = rewrite(&ctx,
                  "{\"data\":{\"a\":\"YQ==\"},\"data\":{\"b\":"
                  "\"U0VDUkVU\"},\"stringData\":[\"SECRET\"]}",
                  1);
    CHECK_EQ_STR(out, "{\"data\":{\"a\":\"redacted\"},\"data\":{\"b\":"
                      "\"redacted\"},\"stringData\":\"redacted\","
                      "\"apiVersion\":\"v1\"}");
    free(out);
    out = rewrite(&ctx, "{\"data\":\"U0VDUkVU\",\"stringData\":null}", 1);
    CHECK_EQ_STR(out, "{\"data\":\"redacted\",\"stringData\":null,"
                      "\"apiVersion\":\"v1\"}");
    free(out);
    kwb_event_ctx_free(&ctx);
}

static void test_hmac(void)
{
    static const unsigned char key[] = "test-key";
    struct kwb_event_ctx ctx;
    char *out;

    CHECK_EQ_INT(
        kwb_event_ctx_init(&ctx, "c", "secrets", "v1", 0, key, sizeof(key) - 1),
        0);
    out = rewrite(&ctx,
                  "{\"data\":{\"a\":\"aGVsbG8=\",\"bad\":\"not base64!\"},"
                  "\"stringData\":{\"c\":\"plain\"}}",
                  1);
    CHECK_EQ_STR(out,
                 "{\"data\":{\"a\":\"hmac-sha256:"
                 "3dae003f1cd85bdd35ea02a5ce2e492b9ba862592532f0ca31d398da8d"
                 "2133fa\",\"bad\":\"hmac-sha256:"
                 "906250870cb224829b0df7ff337d9ae8ee00e54f6269b1b17db1f111e4"
                 "b54091\"},\"stringData\":{\"c\":\"hmac-sha256:"
                 "d7295e20c577648e66e3a273bd04c528733591619561f0038d04aacbef"
                 "4f43dd\"},\"apiVersion\":\"v1\"}");
    free(out);
    kwb_event_ctx_free(&ctx);
}

static void test_trim_managed_fields(void)
{
    struct kwb_event_ctx ctx;
    char *out;

    CHECK_EQ_INT(kwb_event_ctx_init(&ctx, "c", "pods", "v1", 1, NULL, 0), 0);
    CHECK_EQ_INT(kwb_event_ctx_set_list_kind(&ctx, "PodList", 7), 0);
    out = rewrite(&ctx,
                  "{\"metadata\":{\"name\":\"p\",\"managedFields\":[{\"m\":"
                  "1}],\"uid\":\"u\"},\"spec\":{\"x\":[1,2]}}",
                  0);
    CHECK_EQ_STR(out, "{\"metadata\":{\"name\":\"p\",\"uid\":\"u\"},"
                      "\"spec\":{\"x\":[1,2]},\"kind\":\"Pod\","
                      "\"apiVersion\":\"v1\"}");
    free(out);
    /* Not JSON: an error, never a partial object. */
    CHECK(rewrite(&ctx, "{\"metadata\":", 0) == NULL);
    kwb_event_ctx_free(&ctx);
}

/* The observedAt of item i of b, copied into out. */
static void observed_of(const struct kwb_batch *b, size_t i, char out[32])
{
    const struct kwb_item *it = &b->items[i];
    const char *j = b->json + it->json_off;
    const char *k = memmem(j, it->json_len, "\"observedAt\":\"", 14);

    out[0] = '\0';
    if (k && k + 14 + 24 <= j + it->json_len) {
        memcpy(out, k + 14, 24);
        out[24] = '\0';
    }
}

/* A stamp gives every event appended under it the same observedAt, in the
 * format of an unstamped one; unstamping goes back to the clock. */
static void test_observed_stamp(void)
{
    static const char obj_text[] =
        "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":"
        "\"p\",\"namespace\":\"d\",\"uid\":\"u1\",\"resourceVersion\":"
        "\"5\"}}";
    struct kwb_event_ctx ctx;
    struct kwb_batch *b = kwb_batch_new(0);
    struct kwb_jobj obj;
    struct kwb_jerr jerr = {0};
    char err[128], o[4][32];

    CHECK(b != NULL);
    CHECK_EQ_INT(kwb_event_ctx_init(&ctx, "c", "pods", "v1", 0, NULL, 0), 0);
    CHECK_EQ_INT(kwb_jscan_object(obj_text, sizeof(obj_text) - 1, &obj, &jerr),
                 0);
    CHECK_EQ_INT(kwb_event_append(b, &ctx, KWB_EV_ADDED, KWB_ORIGIN_WATCH, &obj,
                                  "5", err, sizeof(err)),
                 0);
    kwb_event_ctx_stamp(&ctx);
    CHECK_EQ_INT((int)ctx.observed_len, 24);
    /* The stamp, not the clock: overwrite it and the events follow. */
    memcpy(ctx.observed, "2001-02-03T04:05:06.789Z", 24);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(kwb_event_append(b, &ctx, KWB_EV_MODIFIED,
                                      KWB_ORIGIN_WATCH, &obj, "5", err,
                                      sizeof(err)),
                     0);
    }
    kwb_event_ctx_unstamp(&ctx);
    CHECK_EQ_INT(kwb_event_append(b, &ctx, KWB_EV_DELETED, KWB_ORIGIN_WATCH,
                                  &obj, "5", err, sizeof(err)),
                 0);
    CHECK_EQ_INT((int)b->n_items, 4);
    for (size_t i = 0; i < 4; i++) {
        observed_of(b, i, o[i]);
    }
    CHECK_EQ_STR(o[1], "2001-02-03T04:05:06.789Z");
    CHECK_EQ_STR(o[2], "2001-02-03T04:05:06.789Z");
    /* Unstamped events: this year, same shape. */
    for (int i = 0; i < 4; i += 3) {
        CHECK_EQ_INT((int)strlen(o[i]), 24);
        CHECK(strncmp(o[i], "2001", 4) != 0);
        CHECK(o[i][10] == 'T' && o[i][19] == '.' && o[i][23] == 'Z');
    }
    kwb_event_ctx_free(&ctx);
    kwb_batch_free(b);
}

int main(void)
{
    test_observed_stamp();
    test_redacted();
    test_duplicate_and_malformed_members();
    test_hmac();
    test_trim_managed_fields();
    return check_report();
}
