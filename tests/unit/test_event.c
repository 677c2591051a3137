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

static const char secret_obj[] =
    "{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"s\"},"
    "\"data\":{\"a\":\"aGVsbG8=\",\"b\":\"d29ybGQ=\"},"
    "\"stringData\":{\"c\":\"plain\"},\"type\":\"Opaque\"}";

static char *rewrite(const struct kwb_event_ctx *ctx, const char *obj,
                     int redact)
{
    char err[256] = "";
    char *out = kwb_event_rewrite(ctx, obj, strlen(obj), redact, err,
                                  sizeof(err));

    if (!out) {
        fprintf(stderr, "rewrite failed: %s\n", err);
    }
    return out;
}

static void test_redacted(void)
{
    struct kwb_event_ctx ctx;
    char *out;

    CHECK_EQ_INT(kwb_event_ctx_init(&ctx, "c", "secrets", "v1", 0, NULL, 0),
                 0);
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

static void test_hmac(void)
{
    static const unsigned char key[] = "test-key";
    struct kwb_event_ctx ctx;
    char *out;

    CHECK_EQ_INT(kwb_event_ctx_init(&ctx, "c", "secrets", "v1", 0, key,
                                    sizeof(key) - 1),
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

int main(void)
{
    test_redacted();
    test_hmac();
    test_trim_managed_fields();
    return check_report();
}
