/*
 * jscan.c - strict, allocation-free JSON validator that locates the few
 * fields the agent needs. See jscan.h.
 *
 * One pass: the levels that hold wanted fields (event, object, metadata,
 * annotations; list, list metadata, items) are walked member by member;
 * every other value goes through skip_value(), an iterative validator with
 * a bit stack, so recursion is bounded by the fixed field layout and the
 * nesting limit is global.
 *
 * Speed comes from string bodies (most of a Kubernetes object): they are
 * scanned 16 bytes at a time with SSE2 for '"', '\\', control bytes and
 * non-ASCII bytes together; only those stop the fast loop. Everything
 * else uses table lookups.
 *
 * Duplicate keys: the last occurrence wins (like Go's encoding/json and
 * Python's json), including its JSON type: {"kind":"Pod","kind":1} has no
 * kind. Keys are compared after unescaping ("\u006bind" is "kind").
 */
#include "jscan.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

struct scan {
    const char *base; /* offsets in errors are relative to this */
    const char *end;
    struct kwb_jerr *err;
};

/* clang-format off */
#define R16(a) a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a

/* Bytes that end the fast path inside a string. */
static const uint8_t str_special[256] = {
    R16(1), R16(1),                                 /* 0x00-0x1f */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* '"' */
    R16(0), R16(0),
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* '\\' */
    R16(0), R16(0),
    R16(1), R16(1), R16(1), R16(1), R16(1), R16(1), R16(1), R16(1),
};

static const uint8_t ws_tab[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, /* \t \n \r */
    R16(0),
    1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* ' ' */
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0),
    R16(0), R16(0), R16(0), R16(0), R16(0),
};
/* clang-format on */

static const char *fail(struct scan *s, const char *at, const char *msg)
{
    if (s->err) {
        s->err->offset = (size_t)(at - s->base);
        s->err->msg = msg;
    }
    return NULL;
}

static inline __attribute__((always_inline)) const char *
skip_ws(const char *p, const char *end)
{
    /* The API server writes compact JSON: usually nothing to skip, and
     * every whitespace byte is <= ' '. */
    if (__builtin_expect(p < end && (uint8_t)*p > ' ', 1)) {
        return p;
    }
    while (p < end && ws_tab[(uint8_t)*p]) {
        p++;
    }
    return p;
}

static inline int is_digit(char c)
{
    return (unsigned)(c - '0') < 10u;
}

/* First byte in [p, end) that needs a look inside a string, or end. */
static inline __attribute__((always_inline)) const char *
find_special(const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i q = _mm_set1_epi8('"');
    const __m128i bs = _mm_set1_epi8('\\');
    const __m128i sp = _mm_set1_epi8(0x20);

    /* Signed compare: bytes >= 0x80 are negative, so "< 0x20" catches
     * control bytes and non-ASCII bytes in one instruction. 16 bytes a
     * step: most strings are short, and a 32-byte step measured slower. */
    while (end - p >= 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i ma = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(a, q), _mm_cmpeq_epi8(a, bs)),
            _mm_cmplt_epi8(a, sp));
        unsigned m = (unsigned)_mm_movemask_epi8(ma);
        if (m) {
            return p + __builtin_ctz(m);
        }
        p += 16;
    }
#endif
    while (p < end && !str_special[(uint8_t)*p]) {
        p++;
    }
    return p;
}

static int hex4(const char *p)
{
    int v = 0;

    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d;

        if (c >= '0' && c <= '9') {
            d = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            d = c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            d = c - 'A' + 10;
        } else {
            return -1;
        }
        v = v * 16 + d;
    }
    return v;
}

/* p at the backslash; returns past the escape (a surrogate pair counts as
 * one escape). */
static const char *scan_escape(struct scan *s, const char *p)
{
    const char *end = s->end;
    int cp, lo;

    if (end - p < 2) {
        return fail(s, p, "unterminated string");
    }
    switch (p[1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        return p + 2;
    case 'u':
        break;
    default:
        return fail(s, p, "invalid escape in string");
    }
    if (end - p < 6 || (cp = hex4(p + 2)) < 0) {
        return fail(s, p, "invalid \\u escape");
    }
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return fail(s, p, "lone low surrogate in \\u escape");
    }
    if (cp < 0xD800 || cp > 0xDBFF) {
        return p + 6;
    }
    if (end - p < 12 || p[6] != '\\' || p[7] != 'u') {
        return fail(s, p, "high surrogate not followed by low surrogate");
    }
    if ((lo = hex4(p + 8)) < 0) {
        return fail(s, p + 6, "invalid \\u escape");
    }
    if (lo < 0xDC00 || lo > 0xDFFF) {
        return fail(s, p, "high surrogate not followed by low surrogate");
    }
    return p + 12;
}

/* p at a byte >= 0x80: one well-formed UTF-8 sequence (Unicode 3-7:
 * no overlongs, no surrogates, nothing above U+10FFFF). */
static const char *scan_utf8(struct scan *s, const char *p)
{
    const uint8_t *u = (const uint8_t *)p;
    size_t avail = (size_t)(s->end - p);
    uint8_t c = u[0], lo = 0x80, hi = 0xBF;

    if (c < 0xC2) {
        return fail(s, p, "invalid UTF-8");
    }
    if (c < 0xE0) {
        if (avail < 2 || (u[1] & 0xC0) != 0x80) {
            return fail(s, p, "invalid UTF-8");
        }
        return p + 2;
    }
    if (c < 0xF0) {
        if (c == 0xE0) {
            lo = 0xA0;
        } else if (c == 0xED) {
            hi = 0x9F;
        }
        if (avail < 3 || u[1] < lo || u[1] > hi || (u[2] & 0xC0) != 0x80) {
            return fail(s, p, "invalid UTF-8");
        }
        return p + 3;
    }
    if (c < 0xF5) {
        if (c == 0xF0) {
            lo = 0x90;
        } else if (c == 0xF4) {
            hi = 0x8F;
        }
        if (avail < 4 || u[1] < lo || u[1] > hi || (u[2] & 0xC0) != 0x80 ||
            (u[3] & 0xC0) != 0x80) {
            return fail(s, p, "invalid UTF-8");
        }
        return p + 4;
    }
    return fail(s, p, "invalid UTF-8");
}

/* The rest of a string after the fast path stopped at p. */
static const char *scan_string_slow(struct scan *s, const char *p, int *esc)
{
    const char *end = s->end;

    for (;;) {
        if (p >= end) {
            return fail(s, p, "unterminated string");
        }
        uint8_t c = (uint8_t)*p;
        if (c == '"') {
            return p + 1;
        }
        if (c == '\\') {
            *esc = 1;
            p = scan_escape(s, p);
        } else if (c < 0x20) {
            return fail(s, p, "control character in string");
        } else {
            p = scan_utf8(s, p);
        }
        if (!p) {
            return NULL;
        }
        p = find_special(p, end);
    }
}

/* p just after the opening quote; returns just past the closing quote.
 * Inlined: most strings are short and plain, ending at the first stop. */
static inline __attribute__((always_inline)) const char *
scan_string(struct scan *s, const char *p, int *esc)
{
    p = find_special(p, s->end);
    if (__builtin_expect(p < s->end && *p == '"', 1)) {
        return p + 1;
    }
    return scan_string_slow(s, p, esc);
}

/* RFC 8259 number grammar; p at '-' or a digit. */
static const char *scan_number(struct scan *s, const char *p)
{
    const char *end = s->end;

    if (*p == '-') {
        p++;
    }
    if (p >= end || !is_digit(*p)) {
        return fail(s, p, "number: digit expected");
    }
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p)) {
            return fail(s, p, "number: leading zero");
        }
    } else {
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p)) {
            return fail(s, p, "number: digit expected after '.'");
        }
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p >= end || !is_digit(*p)) {
            return fail(s, p, "number: digit expected in exponent");
        }
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    return p;
}

static const char *scan_literal(struct scan *s, const char *p)
{
    size_t avail = (size_t)(s->end - p);

    switch (*p) {
    case 't':
        if (avail >= 4 && memcmp(p, "true", 4) == 0) {
            return p + 4;
        }
        break;
    case 'f':
        if (avail >= 5 && memcmp(p, "false", 5) == 0) {
            return p + 5;
        }
        break;
    case 'n':
        if (avail >= 4 && memcmp(p, "null", 4) == 0) {
            return p + 4;
        }
        break;
    default:
        break;
    }
    return fail(s, p, "invalid literal");
}

/*
 * Validate one value; p at its first byte (whitespace skipped), `depth`
 * containers already enclose it. Iterative: a byte per level says array
 * (1) or object (0); a byte, not a bit, because it is read and written at
 * every container and member.
 */
static const char *skip_value(struct scan *s, const char *p, unsigned depth)
{
    const char *end = s->end;
    const unsigned base = depth;
    uint8_t arr[KWB_JSCAN_MAX_DEPTH];
    int esc = 0;
    int in_arr;

value:
    if (p >= end) {
        return fail(s, p, "unexpected end of input");
    }
    switch (*p) {
    case '"':
        p = scan_string(s, p + 1, &esc);
        if (!p) {
            return NULL;
        }
        break;
    case '{':
    case '[':
        if (depth >= KWB_JSCAN_MAX_DEPTH) {
            return fail(s, p, "nesting too deep");
        }
        in_arr = *p == '[';
        arr[depth] = (uint8_t)in_arr;
        depth++;
        p = skip_ws(p + 1, end);
        if (p < end && *p == (in_arr ? ']' : '}')) {
            p++;
            depth--;
            break;
        }
        if (in_arr) {
            goto value;
        }
        goto key;
    case 't':
    case 'f':
    case 'n':
        p = scan_literal(s, p);
        if (!p) {
            return NULL;
        }
        break;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        p = scan_number(s, p);
        if (!p) {
            return NULL;
        }
        break;
    default:
        return fail(s, p, "unexpected character");
    }

next:
    if (depth == base) {
        return p;
    }
    in_arr = arr[depth - 1];
    p = skip_ws(p, end);
    if (p >= end) {
        return fail(s, p, "unexpected end of input");
    }
    if (*p == ',') {
        p = skip_ws(p + 1, end);
        if (in_arr) {
            goto value;
        }
        goto key;
    }
    if (*p == (in_arr ? ']' : '}')) {
        p++;
        depth--;
        goto next;
    }
    return fail(s, p, in_arr ? "expected ',' or ']'" : "expected ',' or '}'");

key:
    if (p >= end || *p != '"') {
        return fail(s, p, "expected string key");
    }
    p = scan_string(s, p + 1, &esc);
    if (!p) {
        return NULL;
    }
    p = skip_ws(p, end);
    if (p >= end || *p != ':') {
        return fail(s, p, "expected ':'");
    }
    p = skip_ws(p + 1, end);
    goto value;
}

/*
 * Decode the next character of an escaped span into out (up to 4 bytes).
 * Returns the byte count, or -1 on an invalid escape. \u0000 yields one
 * NUL byte; callers that build C strings reject it.
 */
static int unesc_next(const char **pp, const char *end, char *out)
{
    const char *p = *pp;
    long cp;

    if (*p != '\\') {
        out[0] = *p;
        *pp = p + 1;
        return 1;
    }
    if (end - p < 2) {
        return -1;
    }
    switch (p[1]) {
    case '"':
    case '\\':
    case '/':
        out[0] = p[1];
        *pp = p + 2;
        return 1;
    case 'b':
        out[0] = '\b';
        *pp = p + 2;
        return 1;
    case 'f':
        out[0] = '\f';
        *pp = p + 2;
        return 1;
    case 'n':
        out[0] = '\n';
        *pp = p + 2;
        return 1;
    case 'r':
        out[0] = '\r';
        *pp = p + 2;
        return 1;
    case 't':
        out[0] = '\t';
        *pp = p + 2;
        return 1;
    case 'u':
        break;
    default:
        return -1;
    }
    if (end - p < 6 || (cp = hex4(p + 2)) < 0) {
        return -1;
    }
    p += 6;
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return -1;
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        int lo;

        if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
            (lo = hex4(p + 2)) < 0xDC00 || lo > 0xDFFF) {
            return -1;
        }
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        p += 6;
    }
    *pp = p;
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Span (possibly escaped) equals lit[0..n) after unescaping. */
static int span_eq_n(const char *p, size_t len, int esc, const char *lit,
                     size_t n)
{
    const char *end = p + len;
    size_t i = 0;

    if (!esc) {
        return len == n && memcmp(p, lit, n) == 0;
    }
    if (len < n) {
        return 0; /* unescaping never makes a span longer */
    }
    while (p < end) {
        char buf[4];
        int k = unesc_next(&p, end, buf);

        if (k < 0 || n - i < (size_t)k || memcmp(lit + i, buf, (size_t)k)) {
            return 0;
        }
        i += (size_t)k;
    }
    return i == n;
}

int kwb_jspan_eq(const struct kwb_jspan *s, const char *lit)
{
    if (!s->p) {
        return 0;
    }
    return span_eq_n(s->p, s->len, s->esc, lit, strlen(lit));
}

long kwb_jscan_unescape(const struct kwb_jspan *s, char *out, size_t outsize)
{
    const char *p, *end;
    size_t n = 0;

    if (!s->p || outsize == 0) {
        return -1;
    }
    p = s->p;
    end = s->p + s->len;
    if (!s->esc) {
        if (s->len >= outsize || memchr(p, '\0', s->len)) {
            return -1;
        }
        memcpy(out, p, s->len);
        out[s->len] = '\0';
        return (long)s->len;
    }
    while (p < end) {
        char buf[4];
        int k = unesc_next(&p, end, buf);

        if (k < 0 || (k == 1 && buf[0] == '\0') || outsize - n <= (size_t)k) {
            return -1;
        }
        memcpy(out + n, buf, (size_t)k);
        n += (size_t)k;
    }
    out[n] = '\0';
    return (long)n;
}

/* ---- field location ---- */

enum role {
    ROLE_EVENT,
    ROLE_OBJECT,
    ROLE_META,
    ROLE_ANNOT,
    ROLE_LIST,
    ROLE_LIST_META,
};

enum field {
    F_NONE = 0,
    F_TYPE,
    F_OBJECT,
    F_KIND,
    F_API_VERSION,
    F_METADATA,
    F_CODE,
    F_REASON,
    F_MESSAGE,
    F_UID,
    F_NAME,
    F_NAMESPACE,
    F_RESOURCE_VERSION,
    F_ANNOTATIONS,
    F_INITIAL_EVENTS_END,
    F_CONTINUE,
    F_ITEMS,
};

struct key_def {
    const char *name;
    size_t len;
    enum field field;
};

/* The keys each role looks for, listed once: X(name, field). */
#define KEYS_EVENT(X) X("type", F_TYPE) X("object", F_OBJECT)
#define KEYS_OBJECT(X)                                                         \
    X("kind", F_KIND)                                                          \
    X("apiVersion", F_API_VERSION)                                             \
    X("metadata", F_METADATA)                                                  \
    X("code", F_CODE)                                                          \
    X("reason", F_REASON)                                                      \
    X("message", F_MESSAGE)
#define KEYS_META(X)                                                           \
    X("uid", F_UID)                                                            \
    X("name", F_NAME)                                                          \
    X("namespace", F_NAMESPACE)                                                \
    X("resourceVersion", F_RESOURCE_VERSION)                                   \
    X("annotations", F_ANNOTATIONS)
#define KEYS_ANNOT(X) X("k8s.io/initial-events-end", F_INITIAL_EVENTS_END)
#define KEYS_LIST(X)                                                           \
    X("kind", F_KIND)                                                          \
    X("apiVersion", F_API_VERSION)                                             \
    X("metadata", F_METADATA)                                                  \
    X("items", F_ITEMS)                                                        \
    X("code", F_CODE)                                                          \
    X("reason", F_REASON)                                                      \
    X("message", F_MESSAGE)
#define KEYS_LIST_META(X)                                                      \
    X("resourceVersion", F_RESOURCE_VERSION) X("continue", F_CONTINUE)

#define KEY_DEF(s, f)     {s, sizeof(s) - 1, f},
#define KEY_LEN_BIT(s, f) | (uint64_t)1 << (sizeof(s) - 1)

static const struct key_def keys_event[] = {KEYS_EVENT(KEY_DEF){0}};
static const struct key_def keys_object[] = {KEYS_OBJECT(KEY_DEF){0}};
static const struct key_def keys_meta[] = {KEYS_META(KEY_DEF){0}};
static const struct key_def keys_annot[] = {KEYS_ANNOT(KEY_DEF){0}};
static const struct key_def keys_list[] = {KEYS_LIST(KEY_DEF){0}};
static const struct key_def keys_list_meta[] = {KEYS_LIST_META(KEY_DEF){0}};

static const struct key_def *const role_keys[] = {
    [ROLE_EVENT] = keys_event, [ROLE_OBJECT] = keys_object,
    [ROLE_META] = keys_meta,   [ROLE_ANNOT] = keys_annot,
    [ROLE_LIST] = keys_list,   [ROLE_LIST_META] = keys_list_meta,
};

/* Bit n set when a role looks for a key of n bytes (all are < 64): most
 * keys of an object are nobody's, and their length alone says so. */
static const uint64_t role_key_lens[] = {
    [ROLE_EVENT] = 0 KEYS_EVENT(KEY_LEN_BIT),
    [ROLE_OBJECT] = 0 KEYS_OBJECT(KEY_LEN_BIT),
    [ROLE_META] = 0 KEYS_META(KEY_LEN_BIT),
    [ROLE_ANNOT] = 0 KEYS_ANNOT(KEY_LEN_BIT),
    [ROLE_LIST] = 0 KEYS_LIST(KEY_LEN_BIT),
    [ROLE_LIST_META] = 0 KEYS_LIST_META(KEY_LEN_BIT),
};

/* a == b for n bytes, n < 64: a word or two at a time, no call. */
static inline int key_eq(const char *a, const char *b, size_t n)
{
    uint64_t x, y;

    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&x, a + i, 8);
            memcpy(&y, b + i, 8);
            if (x != y) {
                return 0;
            }
        }
        /* The last eight bytes, overlapping what was compared. */
        memcpy(&x, a + n - 8, 8);
        memcpy(&y, b + n - 8, 8);
        return x == y;
    }
    if (n >= 4) {
        uint32_t u, v, u2, v2;

        memcpy(&u, a, 4);
        memcpy(&v, b, 4);
        memcpy(&u2, a + n - 4, 4);
        memcpy(&v2, b + n - 4, 4);
        return u == v && u2 == v2;
    }
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            return 0;
        }
    }
    return 1;
}

static enum field match_key(enum role role, const char *k, size_t len, int esc)
{
    /* An escaped key's raw length is not its length: compare it in full. */
    if (!esc && (len >= 64 || !((role_key_lens[role] >> len) & 1))) {
        return F_NONE;
    }
    for (const struct key_def *d = role_keys[role]; d->name; d++) {
        if (esc ? span_eq_n(k, len, 1, d->name, d->len)
                : (len == d->len && key_eq(k, d->name, len))) {
            return d->field;
        }
    }
    return F_NONE;
}

/* Where the fields of the object being walked go. */
struct target {
    struct kwb_jevent *ev;
    struct kwb_jobj *obj;
    struct kwb_jlist *list;
    const char *items_bad; /* last "items" is not an array of objects */
    const char *items_bad_msg;
};

static struct kwb_jspan *string_dst(struct target *t, enum role role,
                                    enum field f)
{
    int is_list = role == ROLE_LIST || role == ROLE_LIST_META;

    switch (f) {
    case F_TYPE:
        return &t->ev->type;
    case F_KIND:
        return is_list ? &t->list->kind : &t->obj->kind;
    case F_API_VERSION:
        return is_list ? &t->list->api_version : &t->obj->api_version;
    case F_REASON:
        return is_list ? &t->list->reason : &t->obj->reason;
    case F_MESSAGE:
        return is_list ? &t->list->message : &t->obj->message;
    case F_UID:
        return &t->obj->uid;
    case F_NAME:
        return &t->obj->name;
    case F_NAMESPACE:
        return &t->obj->namespace_;
    case F_RESOURCE_VERSION:
        return is_list ? &t->list->resource_version : &t->obj->resource_version;
    case F_CONTINUE:
        return &t->list->continue_;
    default:
        return NULL;
    }
}

static const char *scan_members(struct scan *s, const char *p, unsigned depth,
                                enum role role, struct target *t);

/* Value of the number token [p, q) when it is integral and fits an int
 * ("410", "4.1e2"), else 0. Cold path: only Status objects have "code". */
static int parse_code(const char *p, const char *q)
{
    char buf[64];
    size_t n = (size_t)(q - p);
    double v;

    if (n >= sizeof(buf)) {
        return 0;
    }
    memcpy(buf, p, n);
    buf[n] = '\0';
    v = strtod(buf, NULL);
    if (!(v >= INT_MIN && v <= INT_MAX) || v != (double)(int)v) {
        return 0;
    }
    return (int)v;
}

static void clear_span(struct kwb_jspan *sp)
{
    sp->p = NULL;
    sp->len = 0;
    sp->esc = 0;
}

static void clear_meta(struct kwb_jobj *obj)
{
    clear_span(&obj->uid);
    clear_span(&obj->name);
    clear_span(&obj->namespace_);
    clear_span(&obj->resource_version);
    obj->initial_events_end = 0;
}

/* Status fields belong to Status objects only: a core/v1 Event also has
 * top-level "reason" and "message". */
static void finish_obj(struct kwb_jobj *obj)
{
    if (!kwb_jspan_eq(&obj->kind, "Status")) {
        obj->status_code = 0;
        clear_span(&obj->reason);
        clear_span(&obj->message);
    }
}

static void finish_list(struct kwb_jlist *list)
{
    if (!kwb_jspan_eq(&list->kind, "Status")) {
        list->status_code = 0;
        clear_span(&list->reason);
        clear_span(&list->message);
    }
}

/* "items": an array whose elements are all objects; null counts as
 * absent. Anything else is an error unless a later "items" replaces it
 * (last wins), so it is only marked here. */
static const char *scan_items(struct scan *s, const char *p, unsigned depth,
                              struct target *t)
{
    const char *start = p;
    const char *q;

    clear_span(&t->list->items);
    t->items_bad = NULL;
    if (*p != '[') {
        if (*p != 'n') {
            t->items_bad = p;
            t->items_bad_msg = "\"items\" is not an array";
        }
        return skip_value(s, p, depth);
    }
    if (depth >= KWB_JSCAN_MAX_DEPTH) {
        return fail(s, p, "nesting too deep");
    }
    depth++;
    p = skip_ws(p + 1, s->end);
    if (p < s->end && *p == ']') {
        p++;
        goto out;
    }
    for (;;) {
        if (p < s->end && *p != '{' && !t->items_bad) {
            t->items_bad = p;
            t->items_bad_msg = "list item is not an object";
        }
        q = skip_value(s, p, depth);
        if (!q) {
            return NULL;
        }
        p = skip_ws(q, s->end);
        if (p < s->end && *p == ',') {
            p = skip_ws(p + 1, s->end);
            continue;
        }
        if (p < s->end && *p == ']') {
            p++;
            goto out;
        }
        return fail(s, p, "expected ',' or ']'");
    }
out:
    if (!t->items_bad) {
        t->list->items.p = start;
        t->list->items.len = (size_t)(p - start);
    }
    return p;
}

/* One member value at p (whitespace skipped) for field f. */
static const char *scan_field(struct scan *s, const char *p, unsigned depth,
                              enum role role, enum field f, struct target *t)
{
    struct kwb_jspan *dst;
    const char *q;
    int esc = 0;

    switch (f) {
    case F_NONE:
        return skip_value(s, p, depth);
    case F_OBJECT:
        memset(&t->ev->object, 0, sizeof(t->ev->object));
        if (*p != '{') {
            return skip_value(s, p, depth);
        }
        {
            struct target sub = {t->ev, &t->ev->object, NULL, NULL, NULL};

            q = scan_members(s, p, depth, ROLE_OBJECT, &sub);
            if (q) {
                t->ev->object.obj.p = p;
                t->ev->object.obj.len = (size_t)(q - p);
                finish_obj(&t->ev->object);
            }
            return q;
        }
    case F_METADATA:
        if (role == ROLE_LIST) {
            clear_span(&t->list->resource_version);
            clear_span(&t->list->continue_);
        } else {
            clear_meta(t->obj);
        }
        if (*p != '{') {
            return skip_value(s, p, depth);
        }
        return scan_members(s, p, depth,
                            role == ROLE_LIST ? ROLE_LIST_META : ROLE_META, t);
    case F_ANNOTATIONS:
        t->obj->initial_events_end = 0;
        if (*p != '{') {
            return skip_value(s, p, depth);
        }
        return scan_members(s, p, depth, ROLE_ANNOT, t);
    case F_INITIAL_EVENTS_END:
        t->obj->initial_events_end = 0;
        if (*p != '"') {
            return skip_value(s, p, depth);
        }
        q = scan_string(s, p + 1, &esc);
        if (q) {
            t->obj->initial_events_end =
                span_eq_n(p + 1, (size_t)(q - 1 - (p + 1)), esc, "true", 4);
        }
        return q;
    case F_CODE:
        if (role == ROLE_LIST) {
            t->list->status_code = 0;
        } else {
            t->obj->status_code = 0;
        }
        if (*p != '-' && !is_digit(*p)) {
            return skip_value(s, p, depth);
        }
        q = scan_number(s, p);
        if (q) {
            int code = parse_code(p, q);

            if (role == ROLE_LIST) {
                t->list->status_code = code;
            } else {
                t->obj->status_code = code;
            }
        }
        return q;
    case F_ITEMS:
        return scan_items(s, p, depth, t);
    default:
        break;
    }
    dst = string_dst(t, role, f);
    clear_span(dst);
    if (*p != '"') {
        return skip_value(s, p, depth);
    }
    q = scan_string(s, p + 1, &esc);
    if (q) {
        dst->p = p + 1;
        dst->len = (size_t)(q - 1 - (p + 1));
        dst->esc = esc;
    }
    return q;
}

/* p at '{' of an object enclosed by `depth` containers. */
static const char *scan_members(struct scan *s, const char *p, unsigned depth,
                                enum role role, struct target *t)
{
    const char *end = s->end;

    if (depth >= KWB_JSCAN_MAX_DEPTH) {
        return fail(s, p, "nesting too deep");
    }
    depth++;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') {
        return p + 1;
    }
    for (;;) {
        const char *k;
        int esc = 0;
        enum field f;

        if (p >= end || *p != '"') {
            return fail(s, p, "expected string key");
        }
        k = p + 1;
        p = scan_string(s, k, &esc);
        if (!p) {
            return NULL;
        }
        f = match_key(role, k, (size_t)(p - 1 - k), esc);
        p = skip_ws(p, end);
        if (p >= end || *p != ':') {
            return fail(s, p, "expected ':'");
        }
        p = skip_ws(p + 1, end);
        if (p >= end) {
            return fail(s, p, "unexpected end of input");
        }
        p = scan_field(s, p, depth, role, f, t);
        if (!p) {
            return NULL;
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}') {
            return p + 1;
        }
        return fail(s, p, "expected ',' or '}'");
    }
}

const char *kwb_jscan_skip(const char *buf, const char *end,
                           struct kwb_jerr *err)
{
    struct scan s = {buf, end, err};
    const char *p = skip_ws(buf, end);

    return skip_value(&s, p, 0);
}

/* The whole of [p, end) is one object (surrounding whitespace allowed). */
static const char *scan_top(struct scan *s, enum role role, struct target *t,
                            const char **obj_start)
{
    const char *p = skip_ws(s->base, s->end);
    const char *q;

    if (p >= s->end || *p != '{') {
        return fail(s, p, "expected a JSON object");
    }
    *obj_start = p;
    q = scan_members(s, p, 0, role, t);
    if (!q) {
        return NULL;
    }
    if (skip_ws(q, s->end) != s->end) {
        return fail(s, skip_ws(q, s->end), "unexpected data after JSON value");
    }
    return q;
}

int kwb_jscan_event(const char *line, size_t len, struct kwb_jevent *ev,
                    struct kwb_jerr *err)
{
    struct scan s = {line, line + len, err};
    struct target t = {ev, NULL, NULL, NULL, NULL};
    const char *start;

    memset(ev, 0, sizeof(*ev));
    if (!scan_top(&s, ROLE_EVENT, &t, &start)) {
        return -1;
    }
    if (!ev->type.p) {
        fail(&s, start, "missing or non-string \"type\"");
        return -1;
    }
    if (!ev->object.obj.p) {
        fail(&s, start, "missing or non-object \"object\"");
        return -1;
    }
    return 0;
}

int kwb_jscan_object(const char *p, size_t len, struct kwb_jobj *obj,
                     struct kwb_jerr *err)
{
    struct scan s = {p, p + len, err};
    struct target t = {NULL, obj, NULL, NULL, NULL};
    const char *start, *q;

    memset(obj, 0, sizeof(*obj));
    q = scan_top(&s, ROLE_OBJECT, &t, &start);
    if (!q) {
        return -1;
    }
    obj->obj.p = start;
    obj->obj.len = (size_t)(q - start);
    finish_obj(obj);
    return 0;
}

int kwb_jscan_list(const char *buf, size_t len, struct kwb_jlist *list,
                   struct kwb_jerr *err)
{
    struct scan s = {buf, buf + len, err};
    struct target t = {NULL, NULL, list, NULL, NULL};
    const char *start;

    memset(list, 0, sizeof(*list));
    if (!scan_top(&s, ROLE_LIST, &t, &start)) {
        return -1;
    }
    if (t.items_bad) {
        fail(&s, t.items_bad, t.items_bad_msg);
        return -1;
    }
    finish_list(list);
    list->cursor = list->items.p ? list->items.p + 1 : NULL;
    return 0;
}

int kwb_jscan_list_next(struct kwb_jlist *list, struct kwb_jobj *obj,
                        struct kwb_jerr *err)
{
    struct scan s;
    struct target t = {NULL, obj, NULL, NULL, NULL};
    const char *p, *q;

    if (!list->cursor || !list->items.p) {
        return 0;
    }
    s.base = list->items.p;
    s.end = list->items.p + list->items.len;
    s.err = err;
    p = skip_ws(list->cursor, s.end);
    if (p >= s.end) {
        fail(&s, p, "unexpected end of input");
        return -1;
    }
    if (*p == ']') {
        list->cursor = p;
        return 0;
    }
    if (*p != '{') {
        fail(&s, p, "list item is not an object");
        return -1;
    }
    memset(obj, 0, sizeof(*obj));
    /* An item sits in the list object and its "items" array. */
    q = scan_members(&s, p, 2, ROLE_OBJECT, &t);
    if (!q) {
        return -1;
    }
    obj->obj.p = p;
    obj->obj.len = (size_t)(q - p);
    finish_obj(obj);
    q = skip_ws(q, s.end);
    if (q < s.end && *q == ',') {
        q++;
    } else if (q >= s.end || *q != ']') {
        fail(&s, q, "expected ',' or ']'");
        return -1;
    }
    list->cursor = q;
    return 1;
}
