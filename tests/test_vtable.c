/*
 * test_vtable.c — the worker's vehicle table: ids map to stable indexes
 * through growth, new vehicles are initialised once, lookups find exactly
 * what was inserted.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "hubcap/hash.h"
#include "hubcap/vtable.h"

static int inits;

static void init(void *ctx, struct hc_vehicle *v)
{
    (void)ctx;
    memset(v, 0xab, sizeof(*v));
    inits++;
}

Test(vtable, ids_keep_their_index_through_growth)
{
    struct hc_vtable t;
    cr_assert_eq(hc_vtable_init(&t, sizeof(struct hc_vehicle) + 64, 4), 0);
    enum { N = 50000 };
    char vid[32];
    inits = 0;
    for (int i = 0; i < N; i++) {
        int len = snprintf(vid, sizeof(vid), "IMEI-%015d", i * 7919);
        bool created;
        int64_t idx = hc_vtable_upsert(&t, vid, (size_t)len, hc_hash(vid, (size_t)len), init,
                                       NULL, &created);
        cr_assert_eq(idx, i);
        cr_assert(created);
    }
    cr_assert_eq(inits, N);
    cr_assert_eq(t.count, N);
    for (int i = 0; i < N; i++) {
        int len = snprintf(vid, sizeof(vid), "IMEI-%015d", i * 7919);
        bool created;
        cr_assert_eq(hc_vtable_find(&t, vid, (size_t)len, hc_hash(vid, (size_t)len)), i);
        cr_assert_eq(hc_vtable_upsert(&t, vid, (size_t)len, hc_hash(vid, (size_t)len), init,
                                      NULL, &created), i);
        cr_assert(!created);
        struct hc_vrec *r = hc_vtable_rec(&t, (uint32_t)i);
        cr_assert_eq(r->vid_len, len);
        cr_assert(memcmp(hc_vtable_vid(&t, r), vid, (size_t)len) == 0);
    }
    cr_assert_eq(inits, N, "existing vehicles are not initialised again");
    cr_assert_eq(hc_vtable_find(&t, "nobody", 6, hc_hash("nobody", 6)), -1);
    hc_vtable_free(&t);
    hc_vtable_free(NULL);
}

Test(vtable, equal_hashes_are_told_apart_by_id)
{
    struct hc_vtable t;
    hc_vtable_init(&t, sizeof(struct hc_vehicle), 4);
    bool created;
    /* Same (forced) hash, different ids: both live, each found. */
    cr_assert_eq(hc_vtable_upsert(&t, "A", 1, 42, init, NULL, &created), 0);
    cr_assert_eq(hc_vtable_upsert(&t, "B", 1, 42, init, NULL, &created), 1);
    cr_assert_eq(hc_vtable_find(&t, "A", 1, 42), 0);
    cr_assert_eq(hc_vtable_find(&t, "B", 1, 42), 1);
    cr_assert_eq(hc_vtable_find(&t, "AB", 2, 42), -1);
    hc_vtable_free(&t);
}
