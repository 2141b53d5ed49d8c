/*
 * hash.h — the one string hash hubcap uses (64-bit FNV-1a): for routing a
 * vehicle to its worker and for the in-memory tables.  Not for anything an
 * adversary could exploit beyond slowing one table probe chain, which every
 * table bounds by its capacity.
 */
#ifndef HUBCAP_HASH_H
#define HUBCAP_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t hc_hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    /* Final avalanche so low bits are usable as a table index. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

#endif
