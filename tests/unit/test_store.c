/*
 * test_store.c - the known-object set: dedup lookups, updates, deletes
 * under churn (backward-shift deletion), relist marking, clone, memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "store.h"

static void make_uid(unsigned i, char out[37])
{
    snprintf(out, 37, "%08x-1111-4222-8333-%012x", i * 2654435761u, i);
}

struct counter {
    size_t n;
    const char *want_name;
    int found;
};

static int count_visit(void *opaque, const struct kwb_store_entry *e)
{
    struct counter *c = opaque;

    c->n++;
    if (c->want_name && strcmp(e->name, c->want_name) == 0) {
        c->found = 1;
    }
    return 0;
}

static void test_basic(void)
{
    struct kwb_store *s = kwb_store_new();
    struct kwb_store_entry e;

    CHECK(s != NULL);
    CHECK(kwb_store_get_rv(s, "a") == NULL);
    CHECK_EQ_INT(kwb_store_put(s, "0b5c3c7e-8f00-4a8e-9d2a-6f1f2c3d4e5f", "100",
                               "web-0", "default"),
                 0);
    CHECK_EQ_STR(kwb_store_get_rv(s, "0b5c3c7e-8f00-4a8e-9d2a-6f1f2c3d4e5f"),
                 "100");
    /* Non-UUID uids are kept as strings. */
    CHECK_EQ_INT(kwb_store_put(s, "custom-uid", "7", "n", ""), 0);
    CHECK_EQ_STR(kwb_store_get_rv(s, "custom-uid"), "7");
    /* Upper-case UUIDs are not packed, so they round-trip byte for byte. */
    CHECK_EQ_INT(kwb_store_put(s, "0B5C3C7E-8F00-4A8E-9D2A-6F1F2C3D4E5F", "9",
                               "upper", "ns"),
                 0);
    CHECK_EQ_INT(
        kwb_store_lookup(s, "0B5C3C7E-8F00-4A8E-9D2A-6F1F2C3D4E5F", &e), 0);
    CHECK_EQ_STR(e.uid, "0B5C3C7E-8F00-4A8E-9D2A-6F1F2C3D4E5F");
    CHECK_EQ_INT(
        kwb_store_lookup(s, "0b5c3c7e-8f00-4a8e-9d2a-6f1f2c3d4e5f", &e), 0);
    CHECK_EQ_STR(e.uid, "0b5c3c7e-8f00-4a8e-9d2a-6f1f2c3d4e5f");
    CHECK_EQ_STR(e.name, "web-0");
    CHECK_EQ_STR(e.namespace_, "default");
    /* UUID-shaped but not hex ('g', ':' and '/' sit next to the digits):
     * kept as strings, never confused with the packed UUID whose bytes
     * they would decode to. */
    {
        static const char *const odd[] = {
            "0b5c3c7e-8f00-4a8e-9d2a-6f1f2c3d4e5g",
            "0b5c3c7e-8f00-4a8e-9d2a-6f1f2c3d4e5:",
            "/b5c3c7e-8f00-4a8e-9d2a-6f1f2c3d4e5f",
            "0b5c3c7e+8f00-4a8e-9d2a-6f1f2c3d4e5f",
        };

        for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
            CHECK_EQ_INT(kwb_store_put(s, odd[i], "5", "odd", ""), 0);
            CHECK_EQ_INT(kwb_store_lookup(s, odd[i], &e), 0);
            CHECK_EQ_STR(e.uid, odd[i]);
        }
        CHECK_EQ_STR(
            kwb_store_get_rv(s, "0b5c3c7e-8f00-4a8e-9d2a-6f1f2c3d4e5f"), "100");
        for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
            CHECK_EQ_INT(kwb_store_del(s, odd[i]), 1);
        }
    }
    /* Update in place (same RV length), then a rename with an RV of the
     * same length: the name must change too. */
    CHECK_EQ_INT(kwb_store_put(s, "0b5c3c7e-8f00-4a8e-9d2a-6f1f2c3d4e5f", "101",
                               "web-0", "default"),
                 0);
    CHECK_EQ_STR(kwb_store_get_rv(s, "0b5c3c7e-8f00-4a8e-9d2a-6f1f2c3d4e5f"),
                 "101");
    CHECK_EQ_INT(kwb_store_put(s, "0b5c3c7e-8f00-4a8e-9d2a-6f1f2c3d4e5f", "102",
                               "web-1", "other"),
                 0);
    CHECK_EQ_INT(
        kwb_store_lookup(s, "0b5c3c7e-8f00-4a8e-9d2a-6f1f2c3d4e5f", &e), 0);
    CHECK_EQ_STR(e.rv, "102");
    CHECK_EQ_STR(e.name, "web-1");
    CHECK_EQ_STR(e.namespace_, "other");
    CHECK_EQ_INT(kwb_store_put(s, "0b5c3c7e-8f00-4a8e-9d2a-6f1f2c3d4e5f", "100",
                               "web-0", "default"),
                 0);
    /* Update: RVs are opaque strings of any length. */
    CHECK_EQ_INT(kwb_store_put(s, "custom-uid", "1234567890123", "n", ""), 0);
    CHECK_EQ_STR(kwb_store_get_rv(s, "custom-uid"), "1234567890123");
    CHECK_EQ_INT(kwb_store_count(s), 3);
    CHECK_EQ_INT(kwb_store_del(s, "custom-uid"), 1);
    CHECK_EQ_INT(kwb_store_del(s, "custom-uid"), 0);
    CHECK(kwb_store_get_rv(s, "custom-uid") == NULL);
    CHECK_EQ_INT(kwb_store_count(s), 2);
    kwb_store_free(s);
    kwb_store_free(NULL);
}

static void test_churn(void)
{
    struct kwb_store *s = kwb_store_new();
    char uid[37], rv[16];
    const unsigned n = 20000;
    int ok = 1;

    for (unsigned i = 0; i < n; i++) {
        make_uid(i, uid);
        snprintf(rv, sizeof(rv), "%u", i);
        ok &= kwb_store_put(s, uid, rv, "pod", i % 3 ? "a" : "b") == 0;
    }
    CHECK(ok);
    CHECK_EQ_INT(kwb_store_count(s), n);
    /* Delete every other one: the rest must stay reachable. */
    for (unsigned i = 0; i < n; i += 2) {
        make_uid(i, uid);
        ok &= kwb_store_del(s, uid) == 1;
    }
    CHECK(ok);
    for (unsigned i = 0; i < n; i++) {
        make_uid(i, uid);
        snprintf(rv, sizeof(rv), "%u", i);
        const char *got = kwb_store_get_rv(s, uid);
        if (i % 2) {
            ok &= got && strcmp(got, rv) == 0;
        } else {
            ok &= got == NULL;
        }
    }
    CHECK(ok);
    CHECK_EQ_INT(kwb_store_count(s), n / 2);
    /* Memory stays compact: well under 128 bytes per object. */
    CHECK(kwb_store_memory(s) / kwb_store_count(s) < 200);
    kwb_store_free(s);
}

static void test_mark_and_clone(void)
{
    struct kwb_store *s = kwb_store_new(), *c;
    struct counter cnt = {0};

    kwb_store_put(s, "u1", "1", "one", "ns");
    kwb_store_put(s, "u2", "2", "two", "ns");
    kwb_store_put(s, "u3", "3", "three", "");
    kwb_store_begin_mark(s);
    CHECK_EQ_INT(kwb_store_mark_seen(s, "u1"), 0);
    CHECK_EQ_INT(kwb_store_put(s, "u2", "22", "two", "ns"), 0);
    CHECK(kwb_store_mark_seen(s, "nope") < 0);
    cnt.want_name = "three";
    kwb_store_foreach(s, 1, count_visit, &cnt);
    CHECK_EQ_INT(cnt.n, 1);
    CHECK(cnt.found);

    c = kwb_store_clone(s);
    CHECK(c != NULL);
    CHECK_EQ_INT(kwb_store_count(c), 3);
    CHECK_EQ_STR(kwb_store_get_rv(c, "u2"), "22");
    kwb_store_del(s, "u2");
    CHECK_EQ_STR(kwb_store_get_rv(c, "u2"), "22");
    kwb_store_free(c);
    kwb_store_free(s);
}

/* Every byte value at every position of a UUID: each variant is its own
 * key (whether it is packed or kept as a string), round-trips byte for
 * byte, and none is confused with another. Catches a packing that is not
 * one-to-one or that accepts a byte outside 0-9a-f. */
static void test_uuid_variants(void)
{
    static const char base[] = "0b5c3c7e-8f00-4a8e-9d2a-6f1f2c3d4e5f";
    struct kwb_store *s = kwb_store_new();
    struct kwb_store_entry e;
    char uid[37], rv[16];
    size_t n = 0;
    int bad = 0;

    CHECK(s != NULL);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t pos = 0; pos < 36; pos++) {
            for (int c = 1; c < 256; c++) {
                memcpy(uid, base, sizeof(base));
                uid[pos] = (char)c;
                snprintf(rv, sizeof(rv), "%zu", pos * 256 + (size_t)c);
                if (pass == 0) {
                    if (c == base[pos]) {
                        continue;
                    }
                    bad |= kwb_store_put(s, uid, rv, "v", "ns") != 0;
                    n++;
                } else if (c != base[pos]) {
                    const char *got = kwb_store_get_rv(s, uid);
                    bad |= !got || strcmp(got, rv) != 0;
                    bad |= kwb_store_lookup(s, uid, &e) != 0 ||
                           strcmp(e.uid, uid) != 0;
                }
            }
        }
    }
    CHECK(!bad);
    CHECK_EQ_INT((int)kwb_store_count(s), (int)n);
    CHECK(kwb_store_get_rv(s, base) == NULL);
    /* Every lower-case hex digit in every digit position, one at a time,
     * then the original: still distinct. */
    CHECK_EQ_INT(kwb_store_put(s, base, "orig", "v", "ns"), 0);
    CHECK_EQ_STR(kwb_store_get_rv(s, base), "orig");
    CHECK_EQ_INT((int)kwb_store_count(s), (int)n + 1);
    kwb_store_free(s);
}

/* kwb_store_find + put_at/del_at: the same results as get_rv + put/del,
 * also when other changes (growth, deletions that shift slots) come in
 * between. */
static void test_find_then_update(void)
{
    struct kwb_store *s = kwb_store_new();
    struct kwb_store_pos pos, pos2;
    char uid[64], other[64];

    CHECK(s != NULL);
    CHECK(kwb_store_find(s, "a-uid", &pos) == NULL);
    CHECK_EQ_INT(kwb_store_put_at(s, &pos, "1", "a", "ns"), 0);
    CHECK_EQ_STR(kwb_store_get_rv(s, "a-uid"), "1");
    CHECK_EQ_STR(kwb_store_find(s, "a-uid", &pos), "1");
    CHECK_EQ_INT(kwb_store_put_at(s, &pos, "2", "a", "ns"), 0);
    CHECK_EQ_STR(kwb_store_get_rv(s, "a-uid"), "2");
    CHECK_EQ_INT((int)kwb_store_count(s), 1);

    /* Found while absent, then the table grows several times before the
     * put: the slot is found again, nothing is duplicated or lost. */
    snprintf(uid, sizeof(uid), "0b5c3c7e-8f00-4a8e-9d2a-%012d", 999999);
    CHECK(kwb_store_find(s, uid, &pos) == NULL);
    for (int i = 0; i < 1000; i++) {
        snprintf(other, sizeof(other), "0b5c3c7e-8f00-4a8e-9d2a-%012d", i);
        CHECK_EQ_INT(kwb_store_put(s, other, "7", "o", "ns"), 0);
    }
    CHECK_EQ_INT(kwb_store_put_at(s, &pos, "9", "late", "ns"), 0);
    CHECK_EQ_STR(kwb_store_get_rv(s, uid), "9");
    CHECK_EQ_INT((int)kwb_store_count(s), 1002);

    /* Found while present, then deletions shift the probe chains: the
     * delete still removes exactly this uid. */
    CHECK_EQ_STR(kwb_store_find(s, uid, &pos), "9");
    for (int i = 0; i < 1000; i += 2) {
        snprintf(other, sizeof(other), "0b5c3c7e-8f00-4a8e-9d2a-%012d", i);
        CHECK_EQ_INT(kwb_store_del(s, other), 1);
    }
    CHECK_EQ_INT(kwb_store_del_at(s, &pos), 1);
    CHECK(kwb_store_get_rv(s, uid) == NULL);
    CHECK_EQ_INT((int)kwb_store_count(s), 501);
    for (int i = 1; i < 1000; i += 2) {
        snprintf(other, sizeof(other), "0b5c3c7e-8f00-4a8e-9d2a-%012d", i);
        CHECK_EQ_STR(kwb_store_get_rv(s, other), "7");
    }
    /* Two positions at once, updated in turn. */
    CHECK(kwb_store_find(s, "x", &pos) == NULL);
    CHECK(kwb_store_find(s, "y", &pos2) == NULL);
    CHECK_EQ_INT(kwb_store_put_at(s, &pos, "1", "x", ""), 0);
    CHECK_EQ_INT(kwb_store_put_at(s, &pos2, "2", "y", ""), 0);
    CHECK_EQ_STR(kwb_store_get_rv(s, "x"), "1");
    CHECK_EQ_STR(kwb_store_get_rv(s, "y"), "2");
    kwb_store_free(s);
}

int main(void)
{
    test_basic();
    test_uuid_variants();
    test_find_then_update();
    test_churn();
    test_mark_and_clone();
    return check_report();
}
