/*
 * jscan.h - the hot-path JSON scanner.
 *
 * It validates a JSON text and locates only the fields the agent needs,
 * without allocating and without building a tree: the object's bytes are
 * later copied through unchanged (event.c). cJSON stays for cold paths.
 *
 * All spans point into the caller's buffer (borrowed). A string span
 * excludes the quotes and is still JSON-escaped; `esc` says whether it
 * contains a backslash (then use kwb_jscan_unescape()).
 *
 * Duplicate keys: the last occurrence wins, including its type ("kind":1
 * after "kind":"Pod" leaves kind absent). Keys match after unescaping.
 * A wanted field of the wrong JSON type counts as absent.
 *
 * Validation is strict RFC 8259 (structure, strings incl. control chars and
 * escapes, numbers, literals, UTF-8 well-formedness), so anything the
 * scanner accepts can be spliced into our output as valid JSON. Nesting
 * deeper than KWB_JSCAN_MAX_DEPTH is rejected.
 *
 * Thread: none; pure functions.
 */
#ifndef KWB_JSCAN_H
#define KWB_JSCAN_H

#include <stddef.h>

#define KWB_JSCAN_MAX_DEPTH 512

struct kwb_jspan {
    const char *p; /* NULL when absent */
    size_t len;
    int esc; /* string contains a backslash escape */
};

/* Fields of one Kubernetes object (list item or watch event object). */
struct kwb_jobj {
    struct kwb_jspan obj;               /* the whole object, '{' .. '}' */
    struct kwb_jspan kind, api_version; /* top-level strings */
    struct kwb_jspan uid, name, namespace_, resource_version; /* metadata */
    /* BOOKMARK: metadata.annotations["k8s.io/initial-events-end"]=="true" */
    int initial_events_end;
    /* Status objects (kind "Status"): code (0 when absent, not a number
     * with an integral value, or out of int range), reason and message. Cleared
     * for any other kind (a core/v1 Event has top-level reason/message too). */
    int status_code;
    struct kwb_jspan reason, message;
};

/* One watch-stream line: {"type": "...", "object": {...}} */
struct kwb_jevent {
    struct kwb_jspan type; /* "ADDED", "MODIFIED", "DELETED", "BOOKMARK",
                              "ERROR" or anything else (caller rejects) */
    struct kwb_jobj object;
};

/* Error detail: byte offset into the input and a static message. */
struct kwb_jerr {
    size_t offset;
    const char *msg;
};

/*
 * Validate the JSON value starting at buf (leading whitespace allowed) and
 * return a pointer just past it, or NULL with *err filled. Trailing bytes
 * after the value are not examined.
 */
const char *kwb_jscan_skip(const char *buf, const char *end,
                           struct kwb_jerr *err);

/*
 * Parse one watch-event line (exactly one JSON object, surrounding
 * whitespace allowed, nothing else). 0 on success; -1 with *err on invalid
 * JSON, a missing/non-string "type" or a missing/non-object "object".
 */
int kwb_jscan_event(const char *line, size_t len, struct kwb_jevent *ev,
                    struct kwb_jerr *err);

/* Fill *obj from the object value at [p, p+len) (must be a JSON object;
 * it is validated). 0 or -1 with *err. */
int kwb_jscan_object(const char *p, size_t len, struct kwb_jobj *obj,
                     struct kwb_jerr *err);

/*
 * List responses: {"kind":"PodList","apiVersion":"v1","metadata":
 * {"resourceVersion":"…","continue":"…"},"items":[…]}.
 * kwb_jscan_list validates the whole text and fills the list fields;
 * items are then visited with kwb_jscan_list_next.
 */
struct kwb_jlist {
    struct kwb_jspan kind, api_version;
    struct kwb_jspan resource_version, continue_;
    struct kwb_jspan items; /* the array '[' .. ']' (p NULL if absent) */
    /* Status objects instead of a list */
    int status_code;
    struct kwb_jspan reason, message;
    const char *cursor; /* iteration state for kwb_jscan_list_next */
};

int kwb_jscan_list(const char *buf, size_t len, struct kwb_jlist *list,
                   struct kwb_jerr *err);
/* Next item: 1 with *obj filled, 0 at the end, -1 with *err (cannot
 * happen after kwb_jscan_list succeeded, but callers check; the offset is
 * then relative to items.p). Spans point into the list buffer. */
int kwb_jscan_list_next(struct kwb_jlist *list, struct kwb_jobj *obj,
                        struct kwb_jerr *err);

/*
 * Unescape a string span into out (size outsize), NUL-terminated. Returns
 * the unescaped length or -1 when it does not fit or is invalid. \u0000 is
 * rejected (our strings are C strings).
 */
long kwb_jscan_unescape(const struct kwb_jspan *s, char *out, size_t outsize);

/* 1 when span equals the NUL-terminated literal, comparing after
 * unescaping when the span has escapes; 0 for an absent span. */
int kwb_jspan_eq(const struct kwb_jspan *s, const char *lit);

#endif
