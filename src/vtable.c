/*
 * vtable.c — a worker's vehicle table (see vtable.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hubcap/vtable.h"

/* The records and the index are the worker's random-access working set
 * (hundreds of megabytes for a million vehicles): they live in their own
 * anonymous mappings, zeroed by the kernel, grown with mremap, and asked
 * for transparent huge pages, so a lookup costs cache misses but rarely a
 * TLB miss.  Untouched capacity is not resident. */
static void *big_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    madvise(p, size, MADV_HUGEPAGE);
    return p;
}

static void *big_grow(void *p, size_t old, size_t size)
{
    void *q = mremap(p, old, size, MREMAP_MAYMOVE);
    if (q == MAP_FAILED)
        return NULL;
    madvise(q, size, MADV_HUGEPAGE);
    return q;
}

static void big_free(void *p, size_t size)
{
    if (p)
        munmap(p, size);
}

static size_t index_bytes(const struct hc_vtable *t)
{
    return ((size_t)t->mask + 1) * sizeof(*t->index);
}

static uint32_t pow2_at_least(uint64_t n)
{
    uint32_t p = 16;
    while (p < n && p < (1u << 31))
        p <<= 1;
    return p;
}

int hc_vtable_init(struct hc_vtable *t, size_t vsize, uint32_t expect)
{
    memset(t, 0, sizeof(*t));
    t->vsize = vsize;
    t->rsize = (sizeof(struct hc_vrec) + vsize + 7) & ~(size_t)7;
    t->cap = expect < 64 ? 64 : expect;
    t->recs = big_alloc((size_t)t->cap * t->rsize);
    uint32_t slots = pow2_at_least((uint64_t)t->cap * 2);
    t->mask = slots - 1;
    t->index = big_alloc(index_bytes(t));
    t->arena_cap = (size_t)t->cap * 16;
    t->arena = malloc(t->arena_cap);
    if (!t->recs || !t->index || !t->arena) {
        hc_vtable_free(t);
        return -ENOMEM;
    }
    return 0;
}

void hc_vtable_free(struct hc_vtable *t)
{
    if (!t)
        return;
    big_free(t->recs, (size_t)t->cap * t->rsize);
    if (t->index)
        big_free(t->index, index_bytes(t));
    free(t->arena);
    memset(t, 0, sizeof(*t));
}

int64_t hc_vtable_find(const struct hc_vtable *t, const char *vid, size_t len, uint64_t hash)
{
    for (uint32_t i = (uint32_t)hash & t->mask;; i = (i + 1) & t->mask) {
        uint32_t e = t->index[i];
        if (e == 0)
            return -1;
        const struct hc_vrec *r = hc_vtable_rec(t, e - 1);
        if (r->hash == hash && r->vid_len == len && memcmp(t->arena + r->vid_off, vid, len) == 0)
            return e - 1;
    }
}

static int grow_index(struct hc_vtable *t)
{
    uint32_t slots = (t->mask + 1) * 2;
    uint32_t *idx = big_alloc((size_t)slots * sizeof(*idx));
    if (!idx)
        return -ENOMEM;
    for (uint32_t n = 0; n < t->count; n++) {
        uint32_t i = (uint32_t)hc_vtable_rec(t, n)->hash & (slots - 1);
        while (idx[i])
            i = (i + 1) & (slots - 1);
        idx[i] = n + 1;
    }
    big_free(t->index, index_bytes(t));
    t->index = idx;
    t->mask = slots - 1;
    return 0;
}

static int reserve(struct hc_vtable *t, size_t id_len)
{
    if (t->count == t->cap) {
        uint32_t cap = t->cap * 2;
        unsigned char *r = big_grow(t->recs, (size_t)t->cap * t->rsize, (size_t)cap * t->rsize);
        if (!r)
            return -ENOMEM;
        t->recs = r;
        t->cap = cap;
    }
    if (t->arena_len + id_len > t->arena_cap) {
        size_t cap = t->arena_cap * 2;
        if (cap > UINT32_MAX)
            return -ENOMEM;
        char *a = realloc(t->arena, cap);
        if (!a)
            return -ENOMEM;
        t->arena = a;
        t->arena_cap = cap;
    }
    if ((uint64_t)(t->count + 1) * 2 > (uint64_t)t->mask + 1)
        return grow_index(t);
    return 0;
}

int64_t hc_vtable_upsert(struct hc_vtable *t, const char *vid, size_t len, uint64_t hash,
                         void (*init)(void *ctx, struct hc_vehicle *v), void *ctx,
                         bool *created)
{
    *created = false;
    uint32_t i = (uint32_t)hash & t->mask;
    for (;; i = (i + 1) & t->mask) {
        uint32_t e = t->index[i];
        if (e == 0)
            break;
        const struct hc_vrec *r = hc_vtable_rec(t, e - 1);
        if (r->hash == hash && r->vid_len == len && memcmp(t->arena + r->vid_off, vid, len) == 0)
            return e - 1;
    }
    uint32_t old_mask = t->mask;
    int rc = reserve(t, len);
    if (rc < 0)
        return rc;
    if (t->mask != old_mask)    /* index rebuilt: find the free slot again */
        for (i = (uint32_t)hash & t->mask; t->index[i]; i = (i + 1) & t->mask)
            ;
    uint32_t n = t->count++;
    struct hc_vrec *r = hc_vtable_rec(t, n);
    memset(r, 0, sizeof(*r));
    r->hash = hash;
    r->vid_off = (uint32_t)t->arena_len;
    r->vid_len = (uint8_t)len;
    memcpy(t->arena + t->arena_len, vid, len);
    t->arena_len += len;
    init(ctx, hc_vrec_vehicle(r));
    t->index[i] = n + 1;
    *created = true;
    return n;
}
