/*
 * benchgen.h - pre-serialised Kubernetes objects for the benchmarks:
 * realistic ~3.6 KB Pods and ~1.2 KB core/v1 Events, built once from a
 * template per variant and then patched in place (uid, name,
 * resourceVersion, send timestamp are fixed-width fields), so streaming
 * them costs a memcpy and a few digit writes per event.
 *
 * Used by streamd (the stream server), anchors (cJSON anchors) and the
 * store benchmark. Thread: a struct kwb_bgen is read-only after init.
 */
#ifndef KWB_BENCHGEN_H
#define KWB_BENCHGEN_H

#include <stddef.h>
#include <stdint.h>

#define KWB_BGEN_NVAR     4 /* variants; pool sizes must be multiples */
#define KWB_BGEN_MAXOCC   4 /* occurrences of one field in a template */
#define KWB_BGEN_RV_BASE  100000000000ull /* listed objects: base + k */
#define KWB_BGEN_WATCH_RV 200000000000ull /* watch seq s: this + s + 1 */
/* Annotation holding the server's send time (ns, CLOCK_REALTIME). */
#define KWB_BGEN_TS_KEY      "bench.kwb/sent-ns"
#define KWB_BGEN_NAME_DIGITS 7 /* the name ends in k, zero-padded */

enum kwb_bgen_field {
    KWB_BGEN_UID,
    KWB_BGEN_NAME,
    KWB_BGEN_RV,
    KWB_BGEN_TS,
    KWB_BGEN_NFIELD
};

enum kwb_bgen_kind { KWB_BGEN_PODS, KWB_BGEN_EVENTS };

struct kwb_bgen_tmpl {
    char *obj; /* the object, '{' .. '}' */
    size_t len;
    size_t off[KWB_BGEN_NFIELD][KWB_BGEN_MAXOCC];
    int nocc[KWB_BGEN_NFIELD];
};

struct kwb_bgen {
    enum kwb_bgen_kind kind;
    const char *resource;  /* "pods", "events" */
    const char *list_kind; /* "PodList", "EventList" */
    struct kwb_bgen_tmpl var[KWB_BGEN_NVAR];
};

/* 0, or -1 on allocation failure. kind: "pods" or "events". */
int kwb_bgen_init(struct kwb_bgen *g, const char *kind);
void kwb_bgen_free(struct kwb_bgen *g);

/* Variant of pool object k. */
static inline const struct kwb_bgen_tmpl *kwb_bgen_var(const struct kwb_bgen *g,
                                                       uint64_t k)
{
    return &g->var[k % KWB_BGEN_NVAR];
}

/*
 * Patch the copy `obj` of template t for pool object k at resourceVersion
 * rv (< 10^12) with send time ts_ns (0 leaves the field as it is).
 */
void kwb_bgen_patch(const struct kwb_bgen_tmpl *t, char *obj, uint64_t k,
                    uint64_t rv, uint64_t ts_ns);
/* Only the send time. */
void kwb_bgen_patch_ts(const struct kwb_bgen_tmpl *t, char *obj,
                       uint64_t ts_ns);

/* Watch event type of sequence number seq: 20 % ADDED, 80 % MODIFIED. */
static inline const char *kwb_bgen_type(uint64_t seq)
{
    return seq % 5 == 0 ? "ADDED" : "MODIFIED";
}

/*
 * Write the watch line {"type":..,"object":..}\n of sequence number seq
 * (pool object k = seq % pool) into buf; returns its length or 0 when it
 * does not fit.
 */
size_t kwb_bgen_line(const struct kwb_bgen *g, char *buf, size_t size,
                     uint64_t seq, uint64_t pool, uint64_t ts_ns);

/* Bytes of the HTTP chunk "<hex>\r\n<line>\r\n" carrying line seq. */
size_t kwb_bgen_chunk_len(const struct kwb_bgen *g, uint64_t seq,
                          uint64_t pool);

/* Fixed-width decimal into p[0..width). */
void kwb_bgen_digits(char *p, int width, uint64_t v);
/* The uid of pool object k: a canonical lower-case UUID, 36 chars. */
void kwb_bgen_uid(char out[37], uint64_t k);

uint64_t kwb_bgen_now_ns(void); /* CLOCK_REALTIME */
double kwb_bgen_mono(void);     /* CLOCK_MONOTONIC, seconds */

#endif
