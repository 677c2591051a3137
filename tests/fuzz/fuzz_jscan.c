/*
 * fuzz_jscan.c - libFuzzer target for the JSON scanner: every input goes
 * through kwb_jscan_skip, kwb_jscan_event (and kwb_jscan_object on its
 * object) and kwb_jscan_list/kwb_jscan_list_next. The input is copied into
 * an exact-size buffer so any read past the end is caught by ASan.
 *
 * Invariants checked (abort on violation):
 * - an accepted event/list is a valid JSON value for kwb_jscan_skip too;
 * - spans lie inside the input; the object span starts '{' and ends '}'
 *   and scans again to the same fields;
 * - accepted string spans unescape (unless they hold \u0000);
 * - kwb_jscan_list_next never fails after kwb_jscan_list succeeded;
 * - error offsets lie inside [0, len];
 * - differential with cJSON: what jscan accepts cJSON accepts (except
 *   number tokens over 63 bytes, which cJSON cannot read), and what jscan
 *   rejects cJSON rejects too unless the error is one of the classes where
 *   cJSON is lax (see tests/unit/test_jscan.c).
 */
#include "jscan.h"

#include <cjson/cJSON.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *lo, *hi;

static void check_span(const struct kwb_jspan *s)
{
    static char out[1 << 16];
    long n;

    if (!s->p) {
        if (s->len != 0) {
            abort();
        }
        return;
    }
    if (s->p < lo || s->p + s->len > hi) {
        abort();
    }
    if (!s->esc && memchr(s->p, '\\', s->len)) {
        abort();
    }
    n = kwb_jscan_unescape(s, out, sizeof(out));
    if (n < 0 && s->len < sizeof(out) / 2) {
        /* only \u0000 may refuse a validated span that fits */
        struct kwb_jspan t = *s;
        int has_nul = 0;

        for (size_t i = 0; i + 6 <= t.len; i++) {
            if (memcmp(t.p + i, "\\u0000", 6) == 0) {
                has_nul = 1;
            }
        }
        if (!has_nul && memchr(t.p, '\0', t.len) == NULL) {
            abort();
        }
    }
    if (n >= 0 && !kwb_jspan_eq(s, out) && !memchr(out, '\0', (size_t)n)) {
        abort();
    }
}

static void check_obj(const struct kwb_jobj *o)
{
    struct kwb_jobj again;
    struct kwb_jerr err;

    if (!o->obj.p || o->obj.p < lo || o->obj.p + o->obj.len > hi ||
        o->obj.len < 2 || o->obj.p[0] != '{' ||
        o->obj.p[o->obj.len - 1] != '}') {
        abort();
    }
    check_span(&o->kind);
    check_span(&o->api_version);
    check_span(&o->uid);
    check_span(&o->name);
    check_span(&o->namespace_);
    check_span(&o->resource_version);
    check_span(&o->reason);
    check_span(&o->message);
    if (kwb_jscan_object(o->obj.p, o->obj.len, &again, &err) != 0 ||
        again.uid.p != o->uid.p || again.kind.p != o->kind.p ||
        again.resource_version.p != o->resource_version.p ||
        again.status_code != o->status_code ||
        again.initial_events_end != o->initial_events_end) {
        abort();
    }
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* cJSON accepts the whole text (only whitespace after the value). */
static int cjson_valid(const char *p, size_t n)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(p, n, &end, 0);

    if (!root) {
        return 0;
    }
    cJSON_Delete(root);
    while (end < p + n && is_ws(*end)) {
        end++;
    }
    return end == p + n;
}

static int long_number_run(const char *p, size_t n)
{
    size_t run = 0;

    for (size_t i = 0; i < n; i++) {
        run = strchr("0123456789+-.eE", p[i]) && p[i] ? run + 1 : 0;
        if (run >= 63) {
            return 1;
        }
    }
    return 0;
}

/* jscan's rejection is one cJSON does not make (by design of cJSON). */
static int cjson_lax(const struct kwb_jerr *err, const char *p, size_t n)
{
    unsigned char at = err->offset < n ? (unsigned char)p[err->offset] : 0;
    const char *m = err->msg;

    if (strncmp(m, "number:", 7) == 0) {
        return 1; /* strtod: "01", "1.", "-01" */
    }
    if (strcmp(m, "invalid UTF-8") == 0) {
        return at >= 0x80;
    }
    if (strcmp(m, "invalid \\u escape") == 0) {
        return at == '\\'; /* bad hex reads as U+0000 */
    }
    if (strcmp(m, "nesting too deep") == 0) {
        return 1; /* cJSON allows 1000 levels */
    }
    /* raw control bytes: in strings, and as whitespace (<= 0x20) */
    return at < 0x20 && (strcmp(m, "control character in string") == 0 ||
                         strcmp(m, "unexpected character") == 0 ||
                         strcmp(m, "expected string key") == 0 ||
                         strcmp(m, "expected ':'") == 0 ||
                         strcmp(m, "expected ',' or '}'") == 0 ||
                         strcmp(m, "expected ',' or ']'") == 0 ||
                         strcmp(m, "unexpected end of input") == 0 ||
                         strcmp(m, "trailing data") == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    struct kwb_jerr err = {0, NULL};
    struct kwb_jevent ev;
    struct kwb_jlist list;
    struct kwb_jobj obj;
    const char *end;
    int valid;

    if (!buf) {
        return 0;
    }
    memcpy(buf, data, size);
    lo = buf;
    hi = buf + size;

    end = kwb_jscan_skip(buf, buf + size, &err);
    if (end) {
        const char *q = end;

        if (end < buf || end > buf + size) {
            abort();
        }
        while (q < hi && is_ws(*q)) {
            q++;
        }
        valid = q == hi;
        if (!valid) {
            err.offset = (size_t)(q - buf);
            err.msg = "trailing data";
        }
    } else {
        valid = 0;
        if (err.offset > size || !err.msg) {
            abort();
        }
    }
    if (valid && !cjson_valid(buf, size) && !long_number_run(buf, size)) {
        abort();
    }
    if (!valid && cjson_valid(buf, size) && !cjson_lax(&err, buf, size)) {
        abort();
    }

    if (kwb_jscan_event(buf, size, &ev, &err) == 0) {
        if (!valid || !ev.type.p) {
            abort();
        }
        check_span(&ev.type);
        check_obj(&ev.object);
    } else if (err.offset > size || !err.msg) {
        abort();
    }

    if (kwb_jscan_list(buf, size, &list, &err) == 0) {
        int rc;

        if (!valid) {
            abort();
        }
        check_span(&list.kind);
        check_span(&list.resource_version);
        check_span(&list.continue_);
        while ((rc = kwb_jscan_list_next(&list, &obj, &err)) == 1) {
            check_obj(&obj);
        }
        if (rc != 0) {
            abort();
        }
    } else if (err.offset > size || !err.msg) {
        abort();
    }
    free(buf);
    return 0;
}
