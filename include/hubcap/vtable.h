/*
 * vtable.h — a worker's vehicles: an open-addressing hash table from
 * vehicle id to a fixed-size record (struct hc_vrec header, then the
 * detector's struct hc_vehicle with its window).
 *
 * Records live in one array and are addressed by index, so growing the
 * array never invalidates anything a caller keeps (indexes, the dirty
 * list).  Ids live in a byte arena (most are 12-20 bytes; reserving 64 in
 * every record would cost more than the window).  The index holds
 * record-index + 1 (0 = empty) and is kept at most half full.  Nothing is
 * ever removed.  One owner thread (the worker of the shard); no locks.
 */
#ifndef HUBCAP_VTABLE_H
#define HUBCAP_VTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hubcap/detect.h"

struct hc_vrec {
    uint64_t hash;          /* hc_hash of the id */
    uint32_t vid_off;       /* id bytes at arena + vid_off */
    uint8_t vid_len;
    uint8_t dirty;          /* on the worker's dirty list */
    uint16_t pass;          /* the owner's: the worker's rolling pass (worker.c) */
    /* struct hc_vehicle and its window follow */
};

struct hc_vtable {
    size_t vsize;           /* hc_vehicle_size of the detector */
    size_t rsize;           /* bytes per record: header + vsize */
    uint32_t count, cap;
    unsigned char *recs;
    uint32_t *index;
    uint32_t mask;          /* index slots - 1 */
    char *arena;
    size_t arena_len, arena_cap;
};

/* 0 or -ENOMEM; vsize = hc_vehicle_size(detector). */
int hc_vtable_init(struct hc_vtable *t, size_t vsize, uint32_t expect);
void hc_vtable_free(struct hc_vtable *t);

static inline struct hc_vrec *hc_vtable_rec(const struct hc_vtable *t, uint32_t i)
{
    return (struct hc_vrec *)(t->recs + (size_t)i * t->rsize);
}

static inline struct hc_vehicle *hc_vrec_vehicle(struct hc_vrec *r)
{
    return (struct hc_vehicle *)(r + 1);
}

static inline const char *hc_vtable_vid(const struct hc_vtable *t, const struct hc_vrec *r)
{
    return t->arena + r->vid_off;
}

/* Start loading the index slot for hash (call a few reports ahead). */
static inline void hc_vtable_prefetch(const struct hc_vtable *t, uint64_t hash)
{
    __builtin_prefetch(&t->index[hash & t->mask]);
}

/* Index of the record for vid, or -1 if absent. */
int64_t hc_vtable_find(const struct hc_vtable *t, const char *vid, size_t len, uint64_t hash);

/* Index of the record for vid, adding it if absent (the new vehicle is
 * set up with init(ctx, vehicle) and *created set).  Returns the index or
 * -ENOMEM. */
int64_t hc_vtable_upsert(struct hc_vtable *t, const char *vid, size_t len, uint64_t hash,
                         void (*init)(void *ctx, struct hc_vehicle *v), void *ctx,
                         bool *created);

#endif
