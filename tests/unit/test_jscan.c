/*
 * test_jscan.c - the JSON scanner: hand cases (JSONTestSuite style),
 * realistic pods and watch lines, lists, and a differential test against
 * cJSON on generated and mutated documents (fixed seeds).
 *
 * Where cJSON is lax (it accepts raw control characters and invalid UTF-8
 * in strings, any byte <= 0x20 as whitespace, numbers by strtod such as
 * "01" or "1.", and "\u" escapes with bad hex digits as U+0000), a
 * disagreement is only allowed when jscan's error names that class and
 * the byte at the error offset proves it; those cases are counted.
 */
#include "check.h"
#include "jscan.h"
#include "kube_samples.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

/* Whole text is one valid JSON value (surrounding whitespace allowed). */
static int jvalid(const char *p, size_t n, struct kwb_jerr *err)
{
    const char *q = kwb_jscan_skip(p, p + n, err);

    if (!q) {
        return 0;
    }
    while (q < p + n && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) {
        q++;
    }
    if (q != p + n) {
        err->offset = (size_t)(q - p);
        err->msg = "trailing data";
        return 0;
    }
    return 1;
}

/* cJSON with the whole text required (only whitespace after). */
static cJSON *cparse(const char *p, size_t n)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(p, n, &end, 0);

    if (!root) {
        return NULL;
    }
    while (end < p + n &&
           (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')) {
        end++;
    }
    if (end != p + n) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Span unescaped into a static buffer; NULL when absent or not a C
 * string. */
static const char *sv(const struct kwb_jspan *s)
{
    static char bufs[4][4096];
    static int turn;
    char *b = bufs[turn++ % 4];

    if (!s->p || kwb_jscan_unescape(s, b, sizeof(bufs[0])) < 0) {
        return NULL;
    }
    return b;
}

/* ---- hand cases ---- */

struct hand_case {
    int valid;
    const char *doc;
    size_t len; /* 0: strlen */
};

static const struct hand_case hand_cases[] = {
    /* y_: must be accepted */
    {1, "[]", 0},
    {1, "{}", 0},
    {1, " \t\r\n[ ] \n", 0},
    {1, "0", 0},
    {1, "-0", 0},
    {1, "-0.0e-0", 0},
    {1, "1E+2", 0},
    {1, "123e65", 0},
    {1, "[1.5,-2,3e4,0.25E-3]", 0},
    {1, "\"\"", 0},
    {1, "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", 0},
    {1, "\"\\u0041\\u00e9\\u20AC\"", 0},
    {1, "\"\\ud83d\\ude00\"", 0},
    {1, "\"\\uDBFF\\uDFFF\"", 0},
    {1, "\"\\u0000\"", 0},
    {1, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", 0},
    {1, "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80\"", 0},
    {1, "\"\x7f\"", 0},
    {1, "[true,false,null]", 0},
    {1, "{\"a\":{\"b\":[{}]},\"a\":1}", 0},
    {1, "{\"\":0}", 0},
    {1, "[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]", 0},
    {1, "\"a/*b*/c\"", 0},
    /* n_: must be rejected */
    {0, "", 0},
    {0, " ", 0},
    {0, "[", 0},
    {0, "]", 0},
    {0, "[1,]", 0},
    {0, "[,1]", 0},
    {0, "{\"a\":1,}", 0},
    {0, "{,}", 0},
    {0, "{\"a\"}", 0},
    {0, "{\"a\":}", 0},
    {0, "{a:1}", 0},
    {0, "{'a':1}", 0},
    {0, "{\"a\" 1}", 0},
    {0, "[1 2]", 0},
    {0, "[1]]", 0},
    {0, "[1]x", 0},
    {0, "{}{}", 0},
    {0, "01", 0},
    {0, "-01", 0},
    {0, "1.", 0},
    {0, ".5", 0},
    {0, "+1", 0},
    {0, "-", 0},
    {0, "1e", 0},
    {0, "1e+", 0},
    {0, "1.e3", 0},
    {0, "0x10", 0},
    {0, "Infinity", 0},
    {0, "NaN", 0},
    {0, "-Infinity", 0},
    {0, "tru", 0},
    {0, "nul", 0},
    {0, "True", 0},
    {0, "[truefalse]", 0},
    {0, "\"abc", 0},
    {0, "\"\\\"", 0},
    {0, "\"\\x41\"", 0},
    {0, "\"\\a\"", 0},
    {0, "\"\\u12\"", 0},
    {0, "\"\\u12G4\"", 0},
    {0, "\"\\U0041\"", 0},
    {0, "\"\\ud800\"", 0},
    {0, "\"\\ud800x\"", 0},
    {0, "\"\\ud800\\u0041\"", 0},
    {0, "\"\\udc00\"", 0},
    {0, "\"\\udc00\\ud800\"", 0},
    {0, "\"\\ud800\\ud800\"", 0},
    {0, "\"a\tb\"", 0},
    {0, "\"a\nb\"", 0},
    {0, "\"\x01\"", 0},
    {0, "\"\x1f\"", 0},
    {0, "\"a\0b\"", 5},
    {0, "\"\x80\"", 0},
    {0, "\"\xbf\"", 0},
    {0, "\"\xc0\xaf\"", 0},         /* overlong '/' */
    {0, "\"\xc1\xbf\"", 0},         /* overlong */
    {0, "\"\xe0\x80\xaf\"", 0},     /* overlong 3-byte */
    {0, "\"\xe0\x9f\xbf\"", 0},     /* overlong 3-byte */
    {0, "\"\xf0\x80\x80\xaf\"", 0}, /* overlong 4-byte */
    {0, "\"\xf0\x8f\xbf\xbf\"", 0}, /* overlong 4-byte */
    {0, "\"\xed\xa0\x80\"", 0},     /* UTF-8 encoded surrogate */
    {0, "\"\xed\xbf\xbf\"", 0},     /* UTF-8 encoded surrogate */
    {0, "\"\xf4\x90\x80\x80\"", 0}, /* above U+10FFFF */
    {0, "\"\xf5\x80\x80\x80\"", 0},
    {0, "\"\xff\"", 0},
    {0, "\"\xc3\"", 0},         /* truncated */
    {0, "\"\xe2\x82\"", 0},     /* truncated */
    {0, "\"\xf0\x9f\x98\"", 0}, /* truncated */
    {0, "\"\xc3\x28\"", 0},     /* bad continuation */
    {0, "\xef\xbb\xbf{}", 0},   /* BOM */
    {0, "[\x01]", 0},
    {0, "\x0b[]", 0},
    {0, "[\f]", 0},
    {0, "[\"a\"\x00]", 5},
    {0, "/* c */ []", 0},
    {0, "[1,/*x*/2]", 0},
    {0, "{\"a\":1 /**/}", 0},
};

static void test_hand_cases(void)
{
    for (size_t i = 0; i < sizeof(hand_cases) / sizeof(hand_cases[0]); i++) {
        const struct hand_case *c = &hand_cases[i];
        size_t n = c->len ? c->len : strlen(c->doc);
        struct kwb_jerr err = {0, NULL};
        int ok = jvalid(c->doc, n, &err);

        if (!CHECK(ok == c->valid)) {
            fprintf(stderr, "    case %zu \"%s\": %s at %zu\n", i, c->doc,
                    err.msg ? err.msg : "accepted", err.offset);
        }
        if (!ok) {
            CHECK(err.msg != NULL);
            CHECK(err.offset <= n);
        }
    }
}

/* kwb_jscan_skip stops right after the value and leaves the rest alone. */
static void test_skip(void)
{
    static const struct {
        const char *doc;
        size_t stop; /* offset past the value */
    } cases[] = {
        {"[1] xyz", 3},    {"  {\"a\":[]},{}", 10}, {"123abc", 3},
        {"\"s\"\"t\"", 3}, {"true false", 4},       {"-0.5e3]", 6},
        {"null\x01", 4},
    };
    struct kwb_jerr err = {0, NULL};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *d = cases[i].doc;
        const char *q = kwb_jscan_skip(d, d + strlen(d), &err);

        if (CHECK(q != NULL)) {
            CHECK_EQ_INT(q - d, cases[i].stop);
        }
    }
    CHECK(kwb_jscan_skip("", "", &err) == NULL);
    CHECK_EQ_STR(err.msg, "unexpected end of input");
    {
        static const char two[] = "  ";

        CHECK(kwb_jscan_skip(two, two + 2, &err) == NULL);
    }
    CHECK_EQ_INT(err.offset, 2);
}

static void test_error_offsets(void)
{
    struct kwb_jerr err = {0, NULL};
    struct kwb_jevent ev;
    const char *doc = "{\"type\":\"ADDED\",\"object\":{\"a\":\"x\x01\"}}";

    CHECK(kwb_jscan_event(doc, strlen(doc), &ev, &err) == -1);
    CHECK_EQ_STR(err.msg, "control character in string");
    CHECK_EQ_INT(err.offset, 32);

    doc = "[1,2,]";
    CHECK(!jvalid(doc, strlen(doc), &err));
    CHECK_EQ_INT(err.offset, 5);
    CHECK_EQ_STR(err.msg, "unexpected character");

    doc = "{\"type\":\"ADDED\",\"object\":{}} x";
    CHECK(kwb_jscan_event(doc, strlen(doc), &ev, &err) == -1);
    CHECK_EQ_STR(err.msg, "unexpected data after JSON value");
    CHECK_EQ_INT(err.offset, 29);
}

static void test_depth(void)
{
    size_t n = 2 * KWB_JSCAN_MAX_DEPTH + 2;
    char *doc = malloc(n + 64);
    struct kwb_jerr err = {0, NULL};
    struct kwb_jevent ev;
    size_t k;

    if (!CHECK(doc != NULL)) {
        return;
    }
    /* exactly the limit */
    memset(doc, '[', KWB_JSCAN_MAX_DEPTH);
    memset(doc + KWB_JSCAN_MAX_DEPTH, ']', KWB_JSCAN_MAX_DEPTH);
    CHECK(jvalid(doc, 2 * KWB_JSCAN_MAX_DEPTH, &err));
    /* one more */
    memset(doc, '[', KWB_JSCAN_MAX_DEPTH + 1);
    memset(doc + KWB_JSCAN_MAX_DEPTH + 1, ']', KWB_JSCAN_MAX_DEPTH + 1);
    CHECK(!jvalid(doc, n, &err));
    CHECK_EQ_STR(err.msg, "nesting too deep");
    CHECK_EQ_INT(err.offset, KWB_JSCAN_MAX_DEPTH);
    /* mixed objects and arrays, inside an event: the limit counts the
     * event's own levels too */
    k = (size_t)sprintf(doc, "{\"type\":\"ADDED\",\"object\":{\"x\":");
    for (size_t i = 0; i < KWB_JSCAN_MAX_DEPTH - 2; i++) {
        doc = realloc(doc, k + 16 + 2 * KWB_JSCAN_MAX_DEPTH * 6);
        k += (size_t)sprintf(doc + k, i % 2 ? "[" : "{\"a\":");
    }
    {
        size_t depth_open = KWB_JSCAN_MAX_DEPTH - 2;
        size_t k0 = k;

        k += (size_t)sprintf(doc + k, "1");
        for (size_t i = depth_open; i-- > 0;) {
            k += (size_t)sprintf(doc + k, i % 2 ? "]" : "}");
        }
        k += (size_t)sprintf(doc + k, "}}");
        CHECK(kwb_jscan_event(doc, k, &ev, &err) == 0);
        /* one level deeper fails */
        memmove(doc + k0 + 1, doc + k0, k - k0);
        doc[k0] = '[';
        k++;
        memmove(doc + k0 + 3, doc + k0 + 2, k - k0 - 2);
        doc[k0 + 2] = ']';
        k++;
        CHECK(kwb_jscan_event(doc, k, &ev, &err) == -1);
        CHECK_EQ_STR(err.msg, "nesting too deep");
    }
    free(doc);
}

/* ---- realistic objects ---- */

static void test_pod_event(void)
{
    char line[8192];
    char want[64];
    int n = sample_pod_event(line, sizeof(line), "MODIFIED", 4242);
    struct kwb_jevent ev;
    struct kwb_jerr err = {0, NULL};
    cJSON *root;

    CHECK(n > 3000 && n < 4500);
    CHECK_EQ_INT(kwb_jscan_event(line, (size_t)n, &ev, &err), 0);
    CHECK_EQ_STR(sv(&ev.type), "MODIFIED");
    CHECK(kwb_jspan_eq(&ev.type, "MODIFIED"));
    CHECK(!kwb_jspan_eq(&ev.type, "MODIFIE"));
    CHECK_EQ_STR(sv(&ev.object.kind), "Pod");
    CHECK_EQ_STR(sv(&ev.object.api_version), "v1");
    CHECK_EQ_STR(sv(&ev.object.name), "web-4242-7d9f8c6b5-x4242");
    CHECK_EQ_STR(sv(&ev.object.namespace_), "shop-42");
    snprintf(want, sizeof(want), "%08x-4e2b-11ee-9c1d-%012x", 4242, 4242);
    CHECK_EQ_STR(sv(&ev.object.uid), want);
    CHECK_EQ_STR(sv(&ev.object.resource_version), "104242");
    CHECK_EQ_INT(ev.object.initial_events_end, 0);
    CHECK_EQ_INT(ev.object.status_code, 0);
    CHECK(ev.object.reason.p == NULL);
    CHECK(ev.object.message.p == NULL);
    CHECK(ev.object.uid.esc == 0);
    /* the object span is exactly the pod */
    CHECK(ev.object.obj.p ==
          line + strlen("{\"type\":\"MODIFIED\",\"object\":"));
    CHECK_EQ_INT(ev.object.obj.len,
                 (size_t)n - strlen("{\"type\":\"MODIFIED\",\"object\":") - 1);
    CHECK(ev.object.obj.p[0] == '{' &&
          ev.object.obj.p[ev.object.obj.len - 1] == '}');
    root = cparse(ev.object.obj.p, ev.object.obj.len);
    CHECK(root != NULL);
    cJSON_Delete(root);

    /* the object alone */
    {
        struct kwb_jobj obj;

        CHECK_EQ_INT(
            kwb_jscan_object(ev.object.obj.p, ev.object.obj.len, &obj, &err),
            0);
        CHECK_EQ_STR(sv(&obj.uid), want);
        CHECK(obj.obj.p == ev.object.obj.p);
        CHECK_EQ_INT(obj.obj.len, ev.object.obj.len);
    }

    /* pretty-printed by cJSON (whitespace everywhere) gives the same */
    root = cJSON_Parse(line);
    if (CHECK(root != NULL)) {
        char *pretty = cJSON_Print(root);
        struct kwb_jevent ev2;

        if (CHECK(pretty != NULL)) {
            CHECK_EQ_INT(kwb_jscan_event(pretty, strlen(pretty), &ev2, &err),
                         0);
            CHECK_EQ_STR(sv(&ev2.object.uid), want);
            CHECK_EQ_STR(sv(&ev2.type), "MODIFIED");
            CHECK_EQ_STR(sv(&ev2.object.resource_version), "104242");
        }
        free(pretty);
        cJSON_Delete(root);
    }

    /* every truncation of the line is rejected, never read past */
    for (int cut = 0; cut < n; cut++) {
        char *copy = malloc((size_t)cut + 1);

        if (!copy) {
            break;
        }
        memcpy(copy, line, (size_t)cut);
        if (kwb_jscan_event(copy, (size_t)cut, &ev, &err) != -1) {
            CHECK(0);
            fprintf(stderr, "    truncation at %d accepted\n", cut);
        }
        free(copy);
    }
}

static void test_status_and_bookmark(void)
{
    struct kwb_jevent ev;
    struct kwb_jerr err = {0, NULL};
    const char *e410 =
        "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":"
        "\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":"
        "\"too old resource version: 1 (12345) \\u2014 \\\"expired\\\"\","
        "\"reason\":\"Expired\",\"code\":410}}\n";
    const char *bm =
        "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":"
        "\"v1\",\"metadata\":{\"resourceVersion\":\"12746\","
        "\"creationTimestamp\":null,\"annotations\":{"
        "\"k8s.io/initial-events-end\":\"true\"}},\"spec\":{\"containers\":"
        "null},\"status\":{}}}";
    const char *event_kind =
        "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Event\",\"apiVersion\":"
        "\"v1\",\"metadata\":{\"name\":\"e1\",\"namespace\":\"default\","
        "\"uid\":\"u-1\",\"resourceVersion\":\"9\"},\"reason\":\"Pulled\","
        "\"message\":\"Successfully pulled\",\"code\":7}}";

    CHECK_EQ_INT(kwb_jscan_event(e410, strlen(e410), &ev, &err), 0);
    CHECK_EQ_STR(sv(&ev.type), "ERROR");
    CHECK_EQ_STR(sv(&ev.object.kind), "Status");
    CHECK_EQ_INT(ev.object.status_code, 410);
    CHECK_EQ_STR(sv(&ev.object.reason), "Expired");
    CHECK(ev.object.message.esc);
    CHECK_EQ_STR(sv(&ev.object.message),
                 "too old resource version: 1 (12345) \xe2\x80\x94 "
                 "\"expired\"");
    CHECK(ev.object.uid.p == NULL);

    CHECK_EQ_INT(kwb_jscan_event(bm, strlen(bm), &ev, &err), 0);
    CHECK_EQ_STR(sv(&ev.type), "BOOKMARK");
    CHECK_EQ_INT(ev.object.initial_events_end, 1);
    CHECK_EQ_STR(sv(&ev.object.resource_version), "12746");
    CHECK(ev.object.name.p == NULL);

    /* core/v1 Event has reason/message but is not a Status */
    CHECK_EQ_INT(kwb_jscan_event(event_kind, strlen(event_kind), &ev, &err), 0);
    CHECK_EQ_INT(ev.object.status_code, 0);
    CHECK(ev.object.reason.p == NULL);
    CHECK_EQ_STR(sv(&ev.object.uid), "u-1");

    /* annotation values other than "true", escaped key and value */
    {
        static const struct {
            const char *ann;
            int want;
        } cases[] = {
            {"{\"k8s.io/initial-events-end\":\"false\"}", 0},
            {"{\"k8s.io/initial-events-end\":true}", 0},
            {"{\"k8s.io/initial-events-end\":\"True\"}", 0},
            {"{\"k8s.io/initial-events-end\":\"true \"}", 0},
            {"{\"k8s.io\\/initial-events-end\":\"\\u0074rue\"}", 1},
            {"{\"k8s.io/initial-events-end\":\"true\","
             "\"k8s.io/initial-events-end\":\"no\"}",
             0},
            {"{\"k8s.io/initial-events-end\":\"no\","
             "\"k8s.io/initial-events-end\":\"true\"}",
             1},
            {"{\"other\":\"true\"}", 0},
            {"[]", 0},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            char doc[512];

            snprintf(doc, sizeof(doc),
                     "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{"
                     "\"annotations\":%s}}}",
                     cases[i].ann);
            CHECK_EQ_INT(kwb_jscan_event(doc, strlen(doc), &ev, &err), 0);
            CHECK_EQ_INT(ev.object.initial_events_end, cases[i].want);
        }
    }

    /* code edge cases */
    {
        static const struct {
            const char *code;
            int want;
        } cases[] = {
            {"500", 500},
            {"-1", -1},
            {"2147483647", INT_MAX},
            {"-2147483648", INT_MIN},
            {"2147483648", 0},
            {"99999999999", 0},
            {"4.1e2", 410},
            {"410.5", 0},
            {"\"410\"", 0},
            {"null", 0},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            char doc[512];

            snprintf(doc, sizeof(doc),
                     "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\","
                     "\"code\":%s}}",
                     cases[i].code);
            CHECK_EQ_INT(kwb_jscan_event(doc, strlen(doc), &ev, &err), 0);
            CHECK_EQ_INT(ev.object.status_code, cases[i].want);
        }
    }
}

static void test_event_shape(void)
{
    static const struct {
        const char *doc;
        int rc;
        const char *type;
        const char *uid;
    } cases[] = {
        {"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"uid\":\"a\"}}}", 0,
         "ADDED", "a"},
        {"  {\"object\":{\"metadata\":{\"uid\":\"a\"}},\"type\":\"X\"}\r\n", 0,
         "X", "a"},
        {"{\"\\u0074ype\":\"ADDED\",\"obj\\u0065ct\":{\"metadata\":{"
         "\"\\u0075id\":\"\\u0061\"}}}",
         0, "ADDED", "a"},
        /* last duplicate wins, including its type */
        {"{\"type\":\"ADDED\",\"type\":\"DELETED\",\"object\":{\"metadata\":"
         "{\"uid\":\"a\"},\"metadata\":{\"name\":\"n\"}}}",
         0, "DELETED", NULL},
        {"{\"type\":\"ADDED\",\"type\":1,\"object\":{}}", -1, NULL, NULL},
        {"{\"type\":1,\"type\":\"ADDED\",\"object\":{}}", 0, "ADDED", NULL},
        {"{\"type\":\"ADDED\",\"object\":{},\"object\":[]}", -1, NULL, NULL},
        {"{\"type\":\"ADDED\",\"object\":[],\"object\":{}}", 0, "ADDED", NULL},
        {"{\"type\":\"ADDED\"}", -1, NULL, NULL},
        {"{\"object\":{}}", -1, NULL, NULL},
        {"{\"type\":null,\"object\":{}}", -1, NULL, NULL},
        {"{\"type\":\"ADDED\",\"object\":null}", -1, NULL, NULL},
        {"[{\"type\":\"ADDED\",\"object\":{}}]", -1, NULL, NULL},
        {"\"x\"", -1, NULL, NULL},
        {"", -1, NULL, NULL},
        {"{\"type\":\"ADDED\",\"object\":{}}{}", -1, NULL, NULL},
        /* nested "uid" keys elsewhere do not count */
        {"{\"type\":\"ADDED\",\"object\":{\"spec\":{\"metadata\":{\"uid\":"
         "\"no\"}},\"uid\":\"no\"}}",
         0, "ADDED", NULL},
        /* keys that only look alike */
        {"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"uid \":\"no\","
         "\"Uid\":\"no\",\"ui\":\"no\",\"uidx\":\"no\"}}}",
         0, "ADDED", NULL},
        {"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"uid\":5}}}", 0,
         "ADDED", NULL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kwb_jevent ev;
        struct kwb_jerr err = {0, NULL};
        int rc = kwb_jscan_event(cases[i].doc, strlen(cases[i].doc), &ev, &err);

        if (!CHECK(rc == cases[i].rc)) {
            fprintf(stderr, "    case %zu: rc %d (%s)\n", i, rc,
                    err.msg ? err.msg : "");
            continue;
        }
        if (rc == 0) {
            CHECK_EQ_STR(sv(&ev.type), cases[i].type);
            CHECK_EQ_STR(sv(&ev.object.uid), cases[i].uid);
        } else {
            CHECK(err.msg != NULL);
        }
    }
}

static void test_unescape(void)
{
    static const struct {
        const char *raw;
        long rc;
        const char *want;
    } cases[] = {
        {"plain", 5, "plain"},
        {"a\\nb", 3, "a\nb"},
        {"\\\"\\\\\\/\\b\\f\\n\\r\\t", 8, "\"\\/\b\f\n\r\t"},
        {"\\u00e9", 2, "\xc3\xa9"},
        {"\\u20ac", 3, "\xe2\x82\xac"},
        {"\\ud83d\\ude00", 4, "\xf0\x9f\x98\x80"},
        {"\\u0000", -1, NULL},
        {"\\ud83d", -1, NULL},
        {"\\ude00", -1, NULL},
        {"\\x", -1, NULL},
    };
    char out[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kwb_jspan s = {cases[i].raw, strlen(cases[i].raw),
                              strchr(cases[i].raw, '\\') != NULL};
        long rc = kwb_jscan_unescape(&s, out, sizeof(out));

        CHECK_EQ_INT(rc, cases[i].rc);
        if (rc >= 0) {
            CHECK_EQ_STR(out, cases[i].want);
        }
    }
    /* size limits: needs len + 1 */
    {
        struct kwb_jspan s = {"abcd", 4, 0};
        struct kwb_jspan e = {"a\\u20acb", 8, 1};

        CHECK_EQ_INT(kwb_jscan_unescape(&s, out, 4), -1);
        CHECK_EQ_INT(kwb_jscan_unescape(&s, out, 5), 4);
        CHECK_EQ_STR(out, "abcd");
        CHECK_EQ_INT(kwb_jscan_unescape(&e, out, 5), -1);
        CHECK_EQ_INT(kwb_jscan_unescape(&e, out, 6), 5);
        CHECK_EQ_INT(kwb_jscan_unescape(&e, out, 0), -1);
    }
    {
        struct kwb_jspan absent = {NULL, 0, 0};
        struct kwb_jspan e = {"St\\u0061tus", 11, 1};

        CHECK_EQ_INT(kwb_jscan_unescape(&absent, out, sizeof(out)), -1);
        CHECK(!kwb_jspan_eq(&absent, ""));
        CHECK(kwb_jspan_eq(&e, "Status"));
        CHECK(!kwb_jspan_eq(&e, "Statu"));
        CHECK(!kwb_jspan_eq(&e, "Statuss"));
    }
}

/* ---- lists ---- */

static void test_list(void)
{
    size_t cap = 64 * 4096 + 512, n = 0;
    char *buf = malloc(cap);
    struct kwb_jlist list;
    struct kwb_jobj obj;
    struct kwb_jerr err = {0, NULL};
    int count = 0, rc;

    if (!CHECK(buf != NULL)) {
        return;
    }
    n += (size_t)sprintf(buf + n,
                         "{\"kind\":\"PodList\",\"apiVersion\":\"v1\","
                         "\"metadata\":{\"resourceVersion\":\"777\","
                         "\"continue\":\"eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ\","
                         "\"remainingItemCount\":12},\"items\":[ ");
    for (unsigned i = 0; i < 40; i++) {
        char pod[8192];
        int k = sample_pod(pod, sizeof(pod), i);

        /* list items carry no kind/apiVersion: drop the first 32 bytes
         * {"kind":"Pod","apiVersion":"v1", */
        if (!CHECK(k > 32 && memcmp(pod + 32, "\"metadata\"", 10) == 0)) {
            break;
        }
        buf[n++] = '{';
        memcpy(buf + n, pod + 32, (size_t)k - 32);
        n += (size_t)k - 32;
        buf[n++] = i < 39 ? ',' : ' ';
        buf[n++] = '\n';
    }
    n += (size_t)sprintf(buf + n, "]}\n");

    CHECK_EQ_INT(kwb_jscan_list(buf, n, &list, &err), 0);
    CHECK_EQ_STR(sv(&list.kind), "PodList");
    CHECK_EQ_STR(sv(&list.api_version), "v1");
    CHECK_EQ_STR(sv(&list.resource_version), "777");
    CHECK_EQ_STR(sv(&list.continue_), "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ");
    CHECK(list.items.p != NULL && list.items.p[0] == '[');
    CHECK_EQ_INT(list.status_code, 0);
    while ((rc = kwb_jscan_list_next(&list, &obj, &err)) == 1) {
        char want[64];

        snprintf(want, sizeof(want), "%08x-4e2b-11ee-9c1d-%012x", count, count);
        CHECK(obj.kind.p == NULL);
        CHECK(obj.api_version.p == NULL);
        CHECK_EQ_STR(sv(&obj.uid), want);
        CHECK(obj.obj.p[0] == '{' && obj.obj.p[obj.obj.len - 1] == '}');
        count++;
    }
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(count, 40);
    CHECK_EQ_INT(kwb_jscan_list_next(&list, &obj, &err), 0);

    /* corrupt one item deep inside: the whole list is rejected */
    {
        char *q = strstr(buf + n / 2, "\"Running\"");

        if (CHECK(q != NULL)) {
            q[3] = '\x01';
            CHECK_EQ_INT(kwb_jscan_list(buf, n, &list, &err), -1);
            CHECK_EQ_STR(err.msg, "control character in string");
            CHECK_EQ_INT(err.offset, (size_t)(q + 3 - buf));
        }
    }
    free(buf);

    {
        static const struct {
            const char *doc;
            int rc;
            int items;
        } cases[] = {
            {"{\"kind\":\"PodList\",\"items\":[]}", 0, 0},
            {"{\"kind\":\"PodList\",\"items\":null}", 0, -1},
            {"{\"kind\":\"PodList\"}", 0, -1},
            {"{\"items\":[{},{\"metadata\":{}}]}", 0, 2},
            {"{\"items\":[{},1]}", -1, 0},
            {"{\"items\":{}}", -1, 0},
            {"{\"items\":[{},]}", -1, 0},
            {"{\"items\":[{}],\"items\":[{},{},{}]}", 0, 3},
            {"{\"items\":1,\"items\":[{}]}", 0, 1},
            {"{\"items\":[{}],\"items\":1}", -1, 0},
            {"{\"items\":[1],\"items\":[{}]}", 0, 1},
            {"{\"items\":[{}],\"items\":null}", 0, -1},
            {"[]", -1, 0},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            const char *d = cases[i].doc;

            rc = kwb_jscan_list(d, strlen(d), &list, &err);
            if (!CHECK(rc == cases[i].rc)) {
                fprintf(stderr, "    list case %zu\n", i);
                continue;
            }
            if (rc == 0 && cases[i].items < 0) {
                CHECK(list.items.p == NULL);
                CHECK_EQ_INT(kwb_jscan_list_next(&list, &obj, &err), 0);
            } else if (rc == 0) {
                count = 0;
                while (kwb_jscan_list_next(&list, &obj, &err) == 1) {
                    count++;
                }
                CHECK_EQ_INT(count, cases[i].items);
            }
        }
    }

    /* a Status instead of a list */
    {
        const char *st = "{\"kind\":\"Status\",\"apiVersion\":\"v1\","
                         "\"metadata\":{},\"status\":\"Failure\",\"message\":"
                         "\"pods is forbidden\",\"reason\":\"Forbidden\","
                         "\"details\":{\"kind\":\"pods\"},\"code\":403}";

        CHECK_EQ_INT(kwb_jscan_list(st, strlen(st), &list, &err), 0);
        CHECK_EQ_INT(list.status_code, 403);
        CHECK_EQ_STR(sv(&list.reason), "Forbidden");
        CHECK_EQ_STR(sv(&list.message), "pods is forbidden");
        CHECK(list.items.p == NULL);
    }
}

/* ---- differential test against cJSON ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static unsigned rn(unsigned n)
{
    return (unsigned)(rnd() % n);
}

struct gbuf {
    char *p;
    size_t len, cap;
};

static void put(struct gbuf *g, const char *s, size_t n)
{
    if (g->len + n + 1 > g->cap) {
        size_t cap = g->cap ? g->cap : 1024;
        char *p;

        while (cap < g->len + n + 1) {
            cap *= 2;
        }
        p = realloc(g->p, cap);
        if (!p) {
            abort();
        }
        g->p = p;
        g->cap = cap;
    }
    memcpy(g->p + g->len, s, n);
    g->len += n;
    g->p[g->len] = '\0';
}

static void puts_(struct gbuf *g, const char *s)
{
    put(g, s, strlen(s));
}

static void gws(struct gbuf *g)
{
    static const char *const ws[] = {" ", "\n", "\t", "\r\n  ", "  "};

    if (rn(6) == 0) {
        puts_(g, ws[rn(5)]);
    }
}

/* A string body: ASCII, escapes, raw multi-byte UTF-8, surrogate pairs. */
static void gstr_body(struct gbuf *g, unsigned maxlen)
{
    static const char *const atoms[] = {
        "a",
        "Z",
        "0",
        " ",
        "-",
        "/",
        "k8s.io",
        "\\\"",
        "\\\\",
        "\\/",
        "\\n",
        "\\t",
        "\\b",
        "\\f",
        "\\r",
        "\\u00e9",
        "\\u20AC",
        "\\ud83d\\ude00",
        "\xc3\xa9",
        "\xe2\x82\xac",
        "\xf0\x9f\x98\x80",
        "\xed\x9f\xbf",
        "\xef\xbf\xbd",
        "\\u0041",
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "true",
        "\x7f",
    };
    unsigned n = rn(maxlen + 1);

    for (unsigned i = 0; i < n; i++) {
        puts_(g, atoms[rn(sizeof(atoms) / sizeof(atoms[0]))]);
    }
}

static void gstring(struct gbuf *g)
{
    puts_(g, "\"");
    gstr_body(g, 8);
    puts_(g, "\"");
}

static void gnumber(struct gbuf *g)
{
    char b[64];
    size_t k = 0;

    if (rn(3) == 0) {
        b[k++] = '-';
    }
    if (rn(4) == 0) {
        b[k++] = '0';
    } else {
        unsigned d = 1 + rn(12);

        b[k++] = (char)('1' + rn(9));
        while (--d) {
            b[k++] = (char)('0' + rn(10));
        }
    }
    if (rn(3) == 0) {
        unsigned d = 1 + rn(5);

        b[k++] = '.';
        while (d--) {
            b[k++] = (char)('0' + rn(10));
        }
    }
    if (rn(4) == 0) {
        unsigned d = 1 + rn(3);

        b[k++] = rn(2) ? 'e' : 'E';
        if (rn(2)) {
            b[k++] = rn(2) ? '+' : '-';
        }
        while (d--) {
            b[k++] = (char)('0' + rn(10));
        }
    }
    put(g, b, k);
}

static void gvalue(struct gbuf *g, unsigned depth);

static const char *const field_keys[] = {
    "type",
    "object",
    "kind",
    "apiVersion",
    "metadata",
    "uid",
    "name",
    "namespace",
    "resourceVersion",
    "annotations",
    "k8s.io/initial-events-end",
    "code",
    "reason",
    "message",
    "items",
    "continue",
    "spec",
    "status",
};

/* A key: usually a wanted field name (sometimes escaped or nearly equal). */
static void gkey(struct gbuf *g)
{
    const char *k = field_keys[rn(sizeof(field_keys) / sizeof(field_keys[0]))];

    puts_(g, "\"");
    switch (rn(8)) {
    case 0:
        gstr_body(g, 4);
        break;
    case 1: /* escape one character */
    {
        size_t n = strlen(k), at = rn((unsigned)n);
        char esc[8];

        put(g, k, at);
        snprintf(esc, sizeof(esc), "\\u%04x", (unsigned char)k[at]);
        puts_(g, k[at] == '/' && rn(2) ? "\\/" : esc);
        puts_(g, k + at + 1);
    } break;
    case 2: /* near miss */
        put(g, k, strlen(k) - 1);
        break;
    default:
        puts_(g, k);
        break;
    }
    puts_(g, "\"");
}

static void gobject(struct gbuf *g, unsigned depth)
{
    unsigned n = rn(depth < 4 ? 7 : 3);

    puts_(g, "{");
    for (unsigned i = 0; i < n; i++) {
        if (i) {
            puts_(g, ",");
        }
        gws(g);
        gkey(g);
        gws(g);
        puts_(g, ":");
        gws(g);
        gvalue(g, depth + 1);
        gws(g);
    }
    puts_(g, "}");
}

static void gvalue(struct gbuf *g, unsigned depth)
{
    unsigned r = rn(depth > 6 ? 6 : 10);

    switch (r) {
    case 0:
    case 1:
    case 2:
        gstring(g);
        break;
    case 3:
        gnumber(g);
        break;
    case 4:
        puts_(g, rn(3) == 0 ? "null" : rn(2) ? "true" : "false");
        break;
    case 5:
        puts_(g, rn(2) ? "\"true\"" : "\"Status\"");
        break;
    case 6:
    case 7:
    case 8:
        gobject(g, depth);
        break;
    default: {
        unsigned n = rn(5);

        puts_(g, "[");
        for (unsigned i = 0; i < n; i++) {
            if (i) {
                puts_(g, ",");
            }
            gws(g);
            if (rn(2)) {
                gobject(g, depth + 1);
            } else {
                gvalue(g, depth + 1);
            }
            gws(g);
        }
        puts_(g, "]");
        break;
    }
    }
}

/* Last member named key (cJSON keeps duplicates; we want last-wins). */
static cJSON *clast(const cJSON *obj, const char *key)
{
    cJSON *found = NULL;

    if (!cJSON_IsObject(obj)) {
        return NULL;
    }
    for (cJSON *c = obj->child; c; c = c->next) {
        if (c->string && strcmp(c->string, key) == 0) {
            found = c;
        }
    }
    return found;
}

static const char *cstr(const cJSON *obj, const char *key)
{
    cJSON *v = clast(obj, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static unsigned long diff_compared, diff_lax, diff_mismatch, diff_events,
    diff_lists;
/* how often compare_obj saw a located value (the test is not vacuous) */
static unsigned long seen_uid, seen_esc, seen_iee, seen_code, seen_kind;

/* Compare one located object with cJSON's view of it. */
static void compare_obj(const struct kwb_jobj *o, const cJSON *c,
                        const char *doc)
{
    const cJSON *meta = clast(c, "metadata");
    const cJSON *ann;
    const cJSON *code;
    int is_status;
    int want_code = 0;
    int want_iee = 0;
    size_t before = check_failed;

    if (!cJSON_IsObject(meta)) {
        meta = NULL;
    }
    ann = meta ? clast(meta, "annotations") : NULL;
    if (ann && cJSON_IsObject(ann)) {
        const char *v = cstr(ann, "k8s.io/initial-events-end");

        want_iee = v && strcmp(v, "true") == 0;
    }
    seen_uid += o->uid.p != NULL;
    seen_esc += o->uid.esc || o->name.esc || o->kind.esc;
    seen_iee += o->initial_events_end;
    seen_code += o->status_code != 0;
    seen_kind += o->kind.p != NULL;
    CHECK_EQ_STR(sv(&o->kind), cstr(c, "kind"));
    CHECK_EQ_STR(sv(&o->api_version), cstr(c, "apiVersion"));
    CHECK_EQ_STR(sv(&o->uid), meta ? cstr(meta, "uid") : NULL);
    CHECK_EQ_STR(sv(&o->name), meta ? cstr(meta, "name") : NULL);
    CHECK_EQ_STR(sv(&o->namespace_), meta ? cstr(meta, "namespace") : NULL);
    CHECK_EQ_STR(sv(&o->resource_version),
                 meta ? cstr(meta, "resourceVersion") : NULL);
    CHECK_EQ_INT(o->initial_events_end, want_iee);
    is_status = cstr(c, "kind") && strcmp(cstr(c, "kind"), "Status") == 0;
    code = clast(c, "code");
    if (is_status && cJSON_IsNumber(code) && code->valuedouble >= INT_MIN &&
        code->valuedouble <= INT_MAX &&
        code->valuedouble == floor(code->valuedouble)) {
        want_code = (int)code->valuedouble;
    }
    CHECK_EQ_INT(o->status_code, want_code);
    CHECK_EQ_STR(sv(&o->reason), is_status ? cstr(c, "reason") : NULL);
    CHECK_EQ_STR(sv(&o->message), is_status ? cstr(c, "message") : NULL);
    if (check_failed != before) {
        diff_mismatch++;
        fprintf(stderr, "    doc: %s\n", doc);
    }
}

/* Member "key": value, where the value is mostly a string. */
static void gmember(struct gbuf *g, const char *key, int first)
{
    if (!first) {
        puts_(g, ",");
    }
    gws(g);
    puts_(g, key);
    puts_(g, ":");
    gws(g);
    if (rn(5)) {
        gstring(g);
    } else {
        gvalue(g, 3);
    }
}

/* An object shaped like a Kubernetes object: wanted fields in random
 * order, sometimes missing, duplicated, escaped or of another type. */
static void gk8sobj(struct gbuf *g, int with_kind)
{
    static const char *const top[] = {
        "\"kind\"",   "\"apiVersion\"", "\"spec\"",       "\"code\"",
        "\"reason\"", "\"message\"",    "\"kin\\u0064\"", "\"status\""};
    static const char *const meta[] = {
        "\"uid\"",       "\"name\"",   "\"namespace\"", "\"resourceVersion\"",
        "\"\\u0075id\"", "\"labels\"", "\"name\""};
    unsigned n = 1 + rn(8);
    int first = 1;

    puts_(g, "{");
    for (unsigned i = 0; i < n; i++) {
        unsigned r = rn(10);

        if (r < 5) {
            const char *k = top[rn(sizeof(top) / sizeof(top[0]))];

            if (!with_kind && strstr(k, "kin")) {
                k = "\"spec\"";
            }
            if (strcmp(k, "\"code\"") == 0 && rn(2)) {
                if (!first) {
                    puts_(g, ",");
                }
                puts_(g, k);
                puts_(g, ":");
                if (rn(3)) {
                    char num[16];

                    snprintf(num, sizeof(num), "%d", (int)rn(1000) - 100);
                    puts_(g, num);
                } else {
                    gnumber(g);
                }
            } else if (strcmp(k, "\"kind\"") == 0 && rn(2)) {
                if (!first) {
                    puts_(g, ",");
                }
                puts_(g, "\"kind\":\"Status\"");
            } else {
                gmember(g, k, first);
            }
        } else if (r < 9) {
            unsigned m = rn(6);

            if (!first) {
                puts_(g, ",");
            }
            puts_(g, rn(6) ? "\"metadata\":{" : "\"m\\u0065tadata\":{");
            for (unsigned j = 0; j < m; j++) {
                if (rn(6) == 0) {
                    if (j) {
                        puts_(g, ",");
                    }
                    puts_(g, "\"annotations\":{\"a\":\"b\"");
                    if (rn(4)) {
                        puts_(g, rn(2) ? ",\"k8s.io/initial-events-end\":"
                                       : ",\"k8s.io\\/initial-events-end\":");
                        puts_(g, rn(3)   ? "\"true\""
                                 : rn(2) ? "\"\\u0074rue\""
                                         : "true");
                    }
                    puts_(g, "}");
                } else {
                    gmember(g, meta[rn(sizeof(meta) / sizeof(meta[0]))],
                            j == 0);
                }
            }
            puts_(g, "}");
        } else {
            if (!first) {
                puts_(g, ",");
            }
            gkey(g);
            puts_(g, ":");
            gvalue(g, 2);
        }
        first = 0;
    }
    puts_(g, "}");
}

/* Generated event: {"type":..., "object":{...}} with random members. */
static void gevent(struct gbuf *g)
{
    unsigned n = 2 + rn(3);

    puts_(g, "{");
    for (unsigned i = 0; i < n; i++) {
        if (i) {
            puts_(g, ",");
        }
        gws(g);
        switch (i < 2 ? i : rn(3)) {
        case 0:
            puts_(g, "\"type\":");
            if (rn(8)) {
                gstring(g);
            } else {
                gvalue(g, 1);
            }
            break;
        case 1:
            puts_(g, rn(5) ? "\"object\":" : "\"obj\\u0065ct\":");
            if (rn(10)) {
                gk8sobj(g, 1);
            } else {
                gvalue(g, 1);
            }
            break;
        default:
            gkey(g);
            puts_(g, ":");
            gvalue(g, 1);
            break;
        }
    }
    puts_(g, "}");
}

/* Generated list: kind, metadata with resourceVersion/continue, items. */
static void glist(struct gbuf *g)
{
    unsigned n = rn(6);

    puts_(g, "{\"kind\":");
    gstring(g);
    puts_(g, ",\"metadata\":{");
    gmember(g, rn(5) ? "\"resourceVersion\"" : "\"resourc\\u0065Version\"", 1);
    if (rn(2)) {
        gmember(g, "\"continue\"", 0);
    }
    puts_(g, "},\"items\":[");
    for (unsigned i = 0; i < n; i++) {
        if (i) {
            puts_(g, ",");
        }
        gws(g);
        if (rn(20)) {
            gk8sobj(g, rn(4) == 0);
        } else {
            gvalue(g, 2);
        }
    }
    puts_(g, "]}");
}

/* Check one document: validity against cJSON, and fields when valid. */
static void diff_one(const char *doc, size_t len)
{
    struct kwb_jerr err = {0, NULL};
    struct kwb_jevent ev;
    int jok = jvalid(doc, len, &err);
    cJSON *c = cparse(doc, len);

    diff_compared++;
    if (jok && !c) {
        CHECK(0);
        diff_mismatch++;
        fprintf(stderr, "    jscan accepts, cJSON rejects: %.*s\n", (int)len,
                doc);
        return;
    }
    if (!jok && c) {
        unsigned char at =
            err.offset < len ? (unsigned char)doc[err.offset] : 0;
        const char *m = err.msg;
        int lax =
            (strcmp(m, "control character in string") == 0 && at < 0x20) ||
            (strcmp(m, "invalid UTF-8") == 0 && at >= 0x80) ||
            (strncmp(m, "number:", 7) == 0) ||
            (strcmp(m, "invalid \\u escape") == 0 && at == '\\') ||
            (strcmp(m, "unexpected character") == 0 && at < 0x20) ||
            (strcmp(m, "expected string key") == 0 && at < 0x20) ||
            (strcmp(m, "expected ':'") == 0 && at < 0x20) ||
            (strcmp(m, "expected ',' or '}'") == 0 && at < 0x20) ||
            (strcmp(m, "expected ',' or ']'") == 0 && at < 0x20) ||
            (strcmp(m, "trailing data") == 0 && at < 0x20);

        if (lax) {
            diff_lax++;
        } else {
            CHECK(0);
            diff_mismatch++;
            fprintf(stderr,
                    "    jscan rejects (%s at %zu), cJSON accepts: %.*s\n", m,
                    err.offset, (int)len, doc);
        }
        cJSON_Delete(c);
        return;
    }
    if (!jok) {
        return;
    }
    /* both accept: the located fields must be cJSON's */
    {
        int rc = kwb_jscan_event(doc, len, &ev, &err);
        const cJSON *type = clast(c, "type");
        const cJSON *obj = clast(c, "object");
        int want =
            cJSON_IsObject(c) && cJSON_IsString(type) && cJSON_IsObject(obj)
                ? 0
                : -1;

        if (!CHECK(rc == want)) {
            diff_mismatch++;
            fprintf(stderr, "    event rc %d (%s), want %d: %.*s\n", rc,
                    err.msg ? err.msg : "", want, (int)len, doc);
        } else if (rc == 0) {
            diff_events++;
            CHECK_EQ_STR(sv(&ev.type), type->valuestring);
            compare_obj(&ev.object, obj, doc);
        }
    }
    /* and as a list */
    if (cJSON_IsObject(c)) {
        struct kwb_jlist list;
        struct kwb_jobj o;
        const cJSON *items = clast(c, "items");
        const cJSON *lm = clast(c, "metadata");
        int want = 0;
        int rc;

        if (items && !cJSON_IsNull(items)) {
            if (!cJSON_IsArray(items)) {
                want = -1;
            } else {
                for (const cJSON *it = items->child; it; it = it->next) {
                    if (!cJSON_IsObject(it)) {
                        want = -1;
                    }
                }
            }
        }
        rc = kwb_jscan_list(doc, len, &list, &err);
        if (!CHECK(rc == want)) {
            diff_mismatch++;
            fprintf(stderr, "    list rc %d, want %d: %.*s\n", rc, want,
                    (int)len, doc);
        } else if (rc == 0) {
            const cJSON *it = cJSON_IsArray(items) ? items->child : NULL;

            if (!cJSON_IsObject(lm)) {
                lm = NULL;
            }
            CHECK_EQ_STR(sv(&list.kind), cstr(c, "kind"));
            CHECK_EQ_STR(sv(&list.resource_version),
                         lm ? cstr(lm, "resourceVersion") : NULL);
            CHECK_EQ_STR(sv(&list.continue_), lm ? cstr(lm, "continue") : NULL);
            while (kwb_jscan_list_next(&list, &o, &err) == 1) {
                diff_lists++;
                if (!CHECK(it != NULL)) {
                    break;
                }
                compare_obj(&o, it, doc);
                it = it->next;
            }
            CHECK(it == NULL);
        }
    }
    cJSON_Delete(c);
}

static void mutate(struct gbuf *g)
{
    static const char bytes[] = "{}[]\",:\\ 0-.eE+tfnu\x01\x1f\x7f\x80\xc3"
                                "\xed\xf0\xff\n\t";
    unsigned n = 1 + rn(3);

    for (unsigned i = 0; i < n && g->len > 0; i++) {
        size_t at = rn((unsigned)g->len);

        switch (rn(5)) {
        case 0: /* replace */
            g->p[at] = bytes[rn(sizeof(bytes) - 1)];
            break;
        case 1: /* random byte */
            g->p[at] = (char)rn(256);
            break;
        case 2: /* delete */
            memmove(g->p + at, g->p + at + 1, g->len - at - 1);
            g->len--;
            break;
        case 3: /* insert */
            put(g, " ", 1);
            memmove(g->p + at + 1, g->p + at, g->len - at - 1);
            g->p[at] = bytes[rn(sizeof(bytes) - 1)];
            break;
        default: /* truncate */
            g->len = at;
            break;
        }
    }
}

static void test_differential(void)
{
    struct gbuf g = {NULL, 0, 0};
    static const uint64_t seeds[] = {1, 42, 0xdeadbeef, 20261122};
    unsigned long valid_docs = 0;

    for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
        rng_state = seeds[s];
        for (int i = 0; i < 5000; i++) {
            struct kwb_jerr err = {0, NULL};

            g.len = 0;
            switch (rn(4)) {
            case 0:
                gvalue(&g, 0);
                break;
            case 1:
                glist(&g);
                break;
            default:
                gevent(&g);
                break;
            }
            /* generated documents are valid by construction */
            if (!CHECK(jvalid(g.p, g.len, &err))) {
                fprintf(stderr, "    generated doc rejected (%s at %zu): %s\n",
                        err.msg, err.offset, g.p);
            }
            valid_docs++;
            diff_one(g.p, g.len);
            for (int m = 0; m < 4; m++) {
                struct gbuf h = {NULL, 0, 0};

                put(&h, g.p, g.len);
                mutate(&h);
                diff_one(h.p, h.len);
                free(h.p);
            }
        }
    }
    printf("differential: %lu documents (%lu generated valid), %lu events "
           "and %lu list items compared field by field, %lu cJSON-lax "
           "rejections skipped, %lu mismatches\n",
           diff_compared, valid_docs, diff_events, diff_lists, diff_lax,
           diff_mismatch);
    printf("located: %lu uid, %lu escaped, %lu initial-events-end, %lu code, "
           "%lu kind\n",
           seen_uid, seen_esc, seen_iee, seen_code, seen_kind);
    CHECK(seen_uid > 1000 && seen_esc > 1000 && seen_iee > 100 &&
          seen_code > 100 && seen_kind > 1000);
    CHECK(diff_lax < diff_compared / 4);
    CHECK(diff_events > 10000);
    CHECK(diff_lists > 1000);
    free(g.p);
}

/* Inputs the fuzzers made interesting. fuzz_jscan (with its cJSON
 * oracle) found a raw '\n' in a string among \u0000 escapes: rejected by
 * jscan, accepted by cJSON (lax class "control character"). */
static void test_fuzz_inputs(void)
{
    static const char doc[] =
        "{\"type\":\"ERROR\",\"object\":{\"kind\":\"St \\u000000020 "
        "\\u0107*\\\"xc|\n\x00|| \\u00000\\\"xc\",\"code\":410}}";
    struct kwb_jerr err = {0, NULL};
    struct kwb_jevent ev;
    cJSON *c = cparse(doc, sizeof(doc) - 1);

    CHECK(c != NULL); /* cJSON is lax here */
    cJSON_Delete(c);
    CHECK_EQ_INT(kwb_jscan_event(doc, sizeof(doc) - 1, &ev, &err), -1);
    CHECK_EQ_STR(err.msg, "control character in string");
    CHECK_EQ_INT(err.offset, (size_t)(strchr(doc, '\n') - doc));
}

/* Every key the scanner looks for, with each byte changed in turn (and
 * one byte shorter or longer): never taken for the key; the key itself
 * always is. Covers the length filter and the word-wise key compare. */
static void test_near_miss_keys(void)
{
    static const char *const keys[] = {
        "kind", "apiVersion", "name", "namespace", "uid", "resourceVersion"};
    char key[32], text[256];
    struct kwb_jobj obj;
    struct kwb_jerr err = {0, NULL};
    int bad = 0;

    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        size_t n = strlen(keys[k]);
        int meta = k >= 2;

        for (size_t pos = 0; pos <= n + 1; pos++) {
            /* pos < n: one byte changed; n: one byte cut; n + 1: added. */
            memcpy(key, keys[k], n + 1);
            if (pos < n) {
                key[pos] = (char)(key[pos] ^ 0x20);
            } else if (pos == n) {
                key[n - 1] = '\0';
            } else {
                key[n] = 'x';
                key[n + 1] = '\0';
            }
            for (int exact = 0; exact < 2; exact++) {
                const char *use = exact ? keys[k] : key;
                const struct kwb_jspan *got;

                snprintf(text, sizeof(text),
                         meta ? "{\"metadata\":{\"%s\":\"v\"}}"
                              : "{\"%s\":\"v\"}",
                         use);
                if (kwb_jscan_object(text, strlen(text), &obj, &err) < 0) {
                    bad = 1;
                    continue;
                }
                got = k == 0   ? &obj.kind
                      : k == 1 ? &obj.api_version
                      : k == 2 ? &obj.name
                      : k == 3 ? &obj.namespace_
                      : k == 4 ? &obj.uid
                               : &obj.resource_version;
                if (exact != (got->p != NULL)) {
                    fprintf(stderr, "key '%s' %s\n", use,
                            exact ? "not found" : "taken for a field");
                    bad = 1;
                }
            }
        }
    }
    CHECK(!bad);
}

int main(void)
{
    test_near_miss_keys();
    test_hand_cases();
    test_skip();
    test_error_offsets();
    test_depth();
    test_pod_event();
    test_status_and_bookmark();
    test_event_shape();
    test_unescape();
    test_list();
    test_differential();
    test_fuzz_inputs();
    return check_report();
}
