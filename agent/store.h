/*
 * store.h - the set of known objects of one watch: uid -> resourceVersion,
 * name and namespace. It answers "is this (uid, rv) already known?"
 * (dedup), drives the relist diff (mark what a list saw, then visit what
 * vanished) and is what a checkpoint persists.
 *
 * Compact by design (large clusters): no object bodies, one allocation per
 * object, UUID uids stored as 16 bytes; about 110 bytes per object.
 *
 * Thread: a store has one owner thread (a watch worker owns the live store,
 * the pipeline owns the committed store). No locks inside.
 */
#ifndef KWB_STORE_H
#define KWB_STORE_H

#include <stddef.h>
#include <stdint.h>

struct kwb_store;

/* A read-only view of one entry; strings valid until the next change. */
struct kwb_store_entry {
    const char *uid;
    char uidbuf[256]; /* backing for uid when stored packed */
    const char *rv;
    const char *name;
    const char *namespace_; /* "" for cluster-scoped */
};

struct kwb_store *kwb_store_new(void);
void kwb_store_free(struct kwb_store *s); /* NULL-safe */
/* Deep copy; NULL on -ENOMEM. */
struct kwb_store *kwb_store_clone(const struct kwb_store *s);
size_t kwb_store_count(const struct kwb_store *s);

/* Lookup: returns the stored rv of uid (borrowed) or NULL. */
const char *kwb_store_get_rv(const struct kwb_store *s, const char *uid);

/*
 * Where a uid is (or would go), as kwb_store_find learnt it: a put or del
 * of the same uid that follows uses it instead of packing, hashing and
 * probing again (the watch's per-event lookup-then-update). It stays
 * valid across other changes to the store (they are noticed, and the slot
 * is found again), but not across another store or uid.
 */
struct kwb_store_pos {
    const char *uid;
    size_t len;
    uint64_t hash;
    size_t slot;
    uint64_t version; /* the store's version when slot was found */
    int packed;       /* packed_buf holds the uid as a UUID */
    unsigned char packed_buf[16];
};

/* kwb_store_get_rv that also fills *pos for the update that follows. */
const char *kwb_store_find(const struct kwb_store *s, const char *uid,
                           struct kwb_store_pos *pos);
/* kwb_store_put / kwb_store_del of pos->uid, found by kwb_store_find. */
int kwb_store_put_at(struct kwb_store *s, struct kwb_store_pos *pos,
                     const char *rv, const char *name, const char *namespace_);
int kwb_store_del_at(struct kwb_store *s, struct kwb_store_pos *pos);

/*
 * Insert or update uid with rv/name/namespace (copied) and mark it seen in
 * the current generation. 0 or -ENOMEM.
 */
int kwb_store_put(struct kwb_store *s, const char *uid, const char *rv,
                  const char *name, const char *namespace_);
/* Remove uid; 1 when it was known, 0 otherwise. */
int kwb_store_del(struct kwb_store *s, const char *uid);
/* Fill *e for uid; 0 or -ENOENT. */
int kwb_store_lookup(const struct kwb_store *s, const char *uid,
                     struct kwb_store_entry *e);

/* Relist diff: start a new generation; every put() marks an entry seen.
 * kwb_store_mark_seen() marks without changing. */
void kwb_store_begin_mark(struct kwb_store *s);
int kwb_store_mark_seen(struct kwb_store *s, const char *uid);

/* Visit entries; with only_unseen, those not marked since begin_mark.
 * The callback must not change the store; return nonzero to stop. */
typedef int (*kwb_store_visit_fn)(void *opaque,
                                  const struct kwb_store_entry *e);
int kwb_store_foreach(const struct kwb_store *s, int only_unseen,
                      kwb_store_visit_fn fn, void *opaque);

/* Bytes the store holds (table + records + interned namespaces),
 * for the benchmark's bytes-per-object figure. */
size_t kwb_store_memory(const struct kwb_store *s);

#endif
