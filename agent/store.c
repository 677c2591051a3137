/*
 * store.c - known objects of one watch. See store.h.
 *
 * Open addressing with linear probing over {hash, record*} slots; a record
 * is one allocation: header, uid (16 bytes when it is a canonical
 * lower-case UUID, else the raw string), rv and name, NUL-terminated.
 * Namespaces are interned once per store. Deletion uses backward-shift so
 * no tombstones accumulate under churn.
 */
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define REC_UUID 0x1u

struct rec {
    const char *ns; /* interned, "" for cluster-scoped */
    uint32_t gen;
    uint8_t flags;
    uint8_t uid_len; /* raw length, or 16 when packed */
    uint8_t rv_len;
    uint8_t name_len;
    char data[]; /* uid, rv "\0", name "\0" */
};

struct slot {
    uint64_t hash; /* 0 = empty */
    struct rec *rec;
};

struct kwb_store {
    struct slot *slots;
    size_t cap; /* power of two */
    size_t count;
    uint32_t gen;
    char **ns; /* interned namespaces, open addressing */
    size_t ns_cap, ns_count;
    size_t rec_bytes;
    uint64_t version; /* changes whenever slots move or appear */
};

/* The final mix of both hashes; never 0 (0 marks an empty slot). */
static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h ? h : 1;
}

/* A packed UUID is already well spread: mix its two words (no byte loop). */
static uint64_t hash_uuid(const unsigned char p[16])
{
    uint64_t a, b;

    memcpy(&a, p, 8);
    memcpy(&b, p + 8, 8);
    return mix64(a ^ (b * 0x9e3779b97f4a7c15ull));
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    /* FNV-1a, then the final mix. */
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return mix64(h);
}

/* Eight ASCII characters (little-endian word) as lower-case hex digits:
 * the four bytes they spell, first pair in the lowest byte; -1 when any
 * character is not one of 0-9a-f. SWAR: no loop, no table. */
static int64_t hex8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull;
    /* Digits: low nibble; letters a-f: low nibble 1-6 + 9 (bit 6 set). */
    uint64_t n = (x & 0x0f0f0f0f0f0f0f0full) + ((x >> 6) & ones) * 9;
    /* Spell n back ('0' + n, + 39 more from 10 on): a byte that is not a
     * lower-case hex digit never spells itself, once n < 16 is checked. */
    uint64_t letter = ((n + 0x0606060606060606ull) >> 4) & ones;
    uint64_t spelled = n + 0x3030303030303030ull + letter * 39;

    if (spelled != x || ((n + 0x7070707070707070ull) & 0x8080808080808080ull)) {
        return -1;
    }
    /* Nibble pairs to bytes, then the four bytes together. */
    n = ((n << 4) | (n >> 8)) & 0x00ff00ff00ff00ffull;
    n = (n | (n >> 8)) & 0x0000ffff0000ffffull;
    return (int64_t)((n | (n >> 16)) & 0xffffffffull);
}

/* Little-endian loads: the first character in the lowest byte. */
static uint64_t load64(const unsigned char *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static uint64_t load32x2(const unsigned char *a, const unsigned char *b)
{
    uint32_t lo, hi;

    memcpy(&lo, a, 4);
    memcpy(&hi, b, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    lo = __builtin_bswap32(lo);
    hi = __builtin_bswap32(hi);
#endif
    return (uint64_t)lo | (uint64_t)hi << 32;
}

/* Pack a canonical lower-case UUID into 16 bytes; 0 on success. Hot:
 * every event's uid passes here three times (lookup, live and committed
 * store), so the 32 digits go as four words of eight ("8-4-4-4-12"). */
static int uuid_pack(const char *uid, size_t len, unsigned char out[16])
{
    const unsigned char *u = (const unsigned char *)uid;
    int64_t w[4];

    if (len != 36 || u[8] != '-' || u[13] != '-' || u[18] != '-' ||
        u[23] != '-') {
        return -1;
    }
    w[0] = hex8(load64(u));
    w[1] = hex8(load32x2(u + 9, u + 14));
    w[2] = hex8(load32x2(u + 19, u + 24));
    w[3] = hex8(load64(u + 28));
    if ((w[0] | w[1] | w[2] | w[3]) < 0) {
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        uint32_t v = (uint32_t)w[i]; /* first byte lowest */
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap32(v);
#endif
        memcpy(out + 4 * i, &v, 4);
    }
    return 0;
}

static void uuid_unpack(const unsigned char in[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    size_t j = 0;

    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[j++] = '-';
        }
        out[j++] = hex[in[i] >> 4];
        out[j++] = hex[in[i] & 15];
    }
    out[j] = '\0';
}

static const char *rec_rv(const struct rec *r)
{
    return r->data + r->uid_len;
}

static const char *rec_name(const struct rec *r)
{
    return r->data + r->uid_len + r->rv_len + 1;
}

static int rec_uid_eq(const struct rec *r, const char *uid, size_t len,
                      const unsigned char *packed)
{
    if (r->flags & REC_UUID) {
        return packed && memcmp(r->data, packed, 16) == 0;
    }
    return !packed && r->uid_len == len && memcmp(r->data, uid, len) == 0;
}

static void fill_entry(const struct rec *r, struct kwb_store_entry *e)
{
    if (r->flags & REC_UUID) {
        uuid_unpack((const unsigned char *)r->data, e->uidbuf);
    } else {
        memcpy(e->uidbuf, r->data, r->uid_len);
        e->uidbuf[r->uid_len] = '\0';
    }
    e->uid = e->uidbuf;
    e->rv = rec_rv(r);
    e->name = rec_name(r);
    e->namespace_ = r->ns;
}

struct kwb_store *kwb_store_new(void)
{
    struct kwb_store *s = calloc(1, sizeof(*s));

    if (!s) {
        return NULL;
    }
    s->cap = 64;
    s->slots = calloc(s->cap, sizeof(*s->slots));
    s->ns_cap = 16;
    s->ns = calloc(s->ns_cap, sizeof(*s->ns));
    if (!s->slots || !s->ns) {
        kwb_store_free(s);
        return NULL;
    }
    return s;
}

void kwb_store_free(struct kwb_store *s)
{
    if (!s) {
        return;
    }
    for (size_t i = 0; s->slots && i < s->cap; i++) {
        free(s->slots[i].rec);
    }
    for (size_t i = 0; s->ns && i < s->ns_cap; i++) {
        free(s->ns[i]);
    }
    free(s->slots);
    free(s->ns);
    free(s);
}

size_t kwb_store_count(const struct kwb_store *s)
{
    return s->count;
}

static const char *intern_ns(struct kwb_store *s, const char *ns)
{
    size_t len = strlen(ns);
    uint64_t h;
    size_t i;

    if (len == 0) {
        return "";
    }
    if ((s->ns_count + 1) * 2 > s->ns_cap) {
        size_t ncap = s->ns_cap * 2;
        char **n = calloc(ncap, sizeof(*n));
        if (!n) {
            return NULL;
        }
        for (size_t k = 0; k < s->ns_cap; k++) {
            if (!s->ns[k]) {
                continue;
            }
            size_t j = hash_bytes(s->ns[k], strlen(s->ns[k])) & (ncap - 1);
            while (n[j]) {
                j = (j + 1) & (ncap - 1);
            }
            n[j] = s->ns[k];
        }
        free(s->ns);
        s->ns = n;
        s->ns_cap = ncap;
    }
    h = hash_bytes(ns, len);
    for (i = h & (s->ns_cap - 1); s->ns[i]; i = (i + 1) & (s->ns_cap - 1)) {
        if (strcmp(s->ns[i], ns) == 0) {
            return s->ns[i];
        }
    }
    s->ns[i] = strdup(ns);
    if (!s->ns[i]) {
        return NULL;
    }
    s->ns_count++;
    return s->ns[i];
}

/* Find the slot of uid, or the empty slot where it would go. */
static size_t find_slot(const struct kwb_store *s, const char *uid, size_t len,
                        const unsigned char *packed, uint64_t h)
{
    size_t i = h & (s->cap - 1);

    while (s->slots[i].hash) {
        if (s->slots[i].hash == h &&
            rec_uid_eq(s->slots[i].rec, uid, len, packed)) {
            return i;
        }
        i = (i + 1) & (s->cap - 1);
    }
    return i;
}

static const unsigned char *pos_packed(const struct kwb_store_pos *k)
{
    return k->packed ? k->packed_buf : NULL;
}

static void make_key(const char *uid, struct kwb_store_pos *k)
{
    k->uid = uid;
    k->len = strlen(uid);
    k->packed = uuid_pack(uid, k->len, k->packed_buf) == 0;
    k->hash = k->packed ? hash_uuid(k->packed_buf) : hash_bytes(uid, k->len);
}

/* Key and slot of uid in s. */
static void locate(const struct kwb_store *s, const char *uid,
                   struct kwb_store_pos *k)
{
    make_key(uid, k);
    k->slot = find_slot(s, uid, k->len, pos_packed(k), k->hash);
    k->version = s->version;
}

/* The slot of a located key, found again if the slots changed since. */
static size_t pos_slot(const struct kwb_store *s, struct kwb_store_pos *k)
{
    if (k->version != s->version) {
        k->slot = find_slot(s, k->uid, k->len, pos_packed(k), k->hash);
        k->version = s->version;
    }
    return k->slot;
}

static int grow(struct kwb_store *s)
{
    size_t ncap = s->cap * 2;
    struct slot *n = calloc(ncap, sizeof(*n));

    if (!n) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->slots[i].hash) {
            continue;
        }
        size_t j = s->slots[i].hash & (ncap - 1);
        while (n[j].hash) {
            j = (j + 1) & (ncap - 1);
        }
        n[j] = s->slots[i];
    }
    free(s->slots);
    s->slots = n;
    s->cap = ncap;
    s->version++;
    return 0;
}

/* The record of uid, or NULL. */
static struct rec *find_rec(const struct kwb_store *s, const char *uid)
{
    struct kwb_store_pos k;

    locate(s, uid, &k);
    return s->slots[k.slot].hash ? s->slots[k.slot].rec : NULL;
}

const char *kwb_store_get_rv(const struct kwb_store *s, const char *uid)
{
    const struct rec *r = find_rec(s, uid);

    return r ? rec_rv(r) : NULL;
}

const char *kwb_store_find(const struct kwb_store *s, const char *uid,
                           struct kwb_store_pos *pos)
{
    locate(s, uid, pos);
    return s->slots[pos->slot].hash ? rec_rv(s->slots[pos->slot].rec) : NULL;
}

int kwb_store_lookup(const struct kwb_store *s, const char *uid,
                     struct kwb_store_entry *e)
{
    const struct rec *r = find_rec(s, uid);

    if (!r) {
        return -ENOENT;
    }
    fill_entry(r, e);
    return 0;
}

static struct rec *rec_new(const struct kwb_store_pos *k, const char *rv,
                           const char *name, const char *ns, uint32_t gen,
                           size_t *bytes)
{
    size_t uid_len = k->packed ? 16 : k->len;
    size_t rv_len = strlen(rv), name_len = strlen(name);
    size_t size;
    struct rec *r;

    if (uid_len > 255 || rv_len > 255 || name_len > 255) {
        return NULL;
    }
    size = sizeof(*r) + uid_len + rv_len + 1 + name_len + 1;
    r = malloc(size);
    if (!r) {
        return NULL;
    }
    r->ns = ns;
    r->gen = gen;
    r->flags = k->packed ? REC_UUID : 0;
    r->uid_len = (uint8_t)uid_len;
    r->rv_len = (uint8_t)rv_len;
    r->name_len = (uint8_t)name_len;
    memcpy(r->data, k->packed ? (const char *)k->packed_buf : k->uid, uid_len);
    memcpy(r->data + uid_len, rv, rv_len + 1);
    memcpy(r->data + uid_len + rv_len + 1, name, name_len + 1);
    *bytes = size;
    return r;
}

int kwb_store_put(struct kwb_store *s, const char *uid, const char *rv,
                  const char *name, const char *namespace_)
{
    struct kwb_store_pos k;

    locate(s, uid, &k);
    return kwb_store_put_at(s, &k, rv, name, namespace_);
}

int kwb_store_put_at(struct kwb_store *s, struct kwb_store_pos *k,
                     const char *rv, const char *name, const char *namespace_)
{
    const char *ns;
    struct rec *r, *old;
    size_t i, bytes;

    if ((s->count + 1) * 4 > s->cap * 3 && grow(s) < 0) {
        return -ENOMEM;
    }
    i = pos_slot(s, k);
    old = s->slots[i].hash ? s->slots[i].rec : NULL;
    if (old && strcmp(rec_name(old), name) == 0 &&
        strcmp(old->ns, namespace_ ? namespace_ : "") == 0) {
        size_t rv_len = strlen(rv);

        /* The common update: a new RV of the same length (RVs are counters
         * of fixed width for long stretches). In place: no allocation per
         * event in the steady state. */
        if (rv_len == old->rv_len) {
            memcpy(old->data + old->uid_len, rv, rv_len);
            old->gen = s->gen;
            return 0;
        }
    }
    ns = intern_ns(s, namespace_ ? namespace_ : "");
    if (!ns) {
        return -ENOMEM;
    }
    r = rec_new(k, rv, name, ns, s->gen, &bytes);
    if (!r) {
        /* Over-long fields cannot be Kubernetes values; report as -EINVAL
         * only when that was the cause. */
        if (strlen(rv) > 255 || strlen(name) > 255 || k->len > 255) {
            return -EINVAL;
        }
        return -ENOMEM;
    }
    if (old) {
        s->rec_bytes -=
            sizeof(*old) + old->uid_len + old->rv_len + 1 + old->name_len + 1;
        free(old);
    } else {
        s->count++;
        s->version++;
    }
    s->slots[i].hash = k->hash;
    s->slots[i].rec = r;
    s->rec_bytes += bytes;
    return 0;
}

int kwb_store_del(struct kwb_store *s, const char *uid)
{
    struct kwb_store_pos k;

    locate(s, uid, &k);
    return kwb_store_del_at(s, &k);
}

int kwb_store_del_at(struct kwb_store *s, struct kwb_store_pos *k)
{
    size_t i, j;
    struct rec *r;

    i = pos_slot(s, k);
    if (!s->slots[i].hash) {
        return 0;
    }
    r = s->slots[i].rec;
    s->rec_bytes -= sizeof(*r) + r->uid_len + r->rv_len + 1 + r->name_len + 1;
    free(r);
    s->count--;
    s->version++;
    /* Backward-shift deletion keeps probe chains intact. */
    j = i;
    for (;;) {
        j = (j + 1) & (s->cap - 1);
        if (!s->slots[j].hash) {
            break;
        }
        size_t home = s->slots[j].hash & (s->cap - 1);
        /* Move j into the hole at i if its home is not in (i, j]. */
        if ((j > i && (home <= i || home > j)) ||
            (j < i && (home <= i && home > j))) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i].hash = 0;
    s->slots[i].rec = NULL;
    return 1;
}

void kwb_store_begin_mark(struct kwb_store *s)
{
    s->gen++;
}

int kwb_store_mark_seen(struct kwb_store *s, const char *uid)
{
    struct rec *r = find_rec(s, uid);

    if (!r) {
        return -ENOENT;
    }
    r->gen = s->gen;
    return 0;
}

int kwb_store_foreach(const struct kwb_store *s, int only_unseen,
                      kwb_store_visit_fn fn, void *opaque)
{
    struct kwb_store_entry e;

    for (size_t i = 0; i < s->cap; i++) {
        const struct rec *r = s->slots[i].rec;
        if (!s->slots[i].hash || (only_unseen && r->gen == s->gen)) {
            continue;
        }
        fill_entry(r, &e);
        int rc = fn(opaque, &e);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

struct kwb_store *kwb_store_clone(const struct kwb_store *s)
{
    struct kwb_store *c = kwb_store_new();
    struct kwb_store_entry e;

    if (!c) {
        return NULL;
    }
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->slots[i].hash) {
            continue;
        }
        fill_entry(s->slots[i].rec, &e);
        if (kwb_store_put(c, e.uid, e.rv, e.name, e.namespace_) < 0) {
            kwb_store_free(c);
            return NULL;
        }
    }
    return c;
}

size_t kwb_store_memory(const struct kwb_store *s)
{
    /* malloc adds about 16 bytes of bookkeeping per record. */
    size_t m = sizeof(*s) + s->cap * sizeof(*s->slots) +
               s->ns_cap * sizeof(*s->ns) + s->rec_bytes + s->count * 16;

    for (size_t i = 0; i < s->ns_cap; i++) {
        if (s->ns[i]) {
            m += strlen(s->ns[i]) + 1 + 16;
        }
    }
    return m;
}
