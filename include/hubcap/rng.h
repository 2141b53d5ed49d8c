/*
 * rng.h — a small, fast, seedable random number generator (xoshiro256**,
 * seeded through splitmix64) for simulations, tests and benchmarks, where
 * the same seed must give the same fleet on every machine.  Not for secrets.
 */
#ifndef HUBCAP_RNG_H
#define HUBCAP_RNG_H

#include <math.h>
#include <stdint.h>

struct hc_rng {
    uint64_t s[4];
};

static inline uint64_t hc_rng_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void hc_rng_seed(struct hc_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = hc_rng_splitmix(&seed);
}

static inline uint64_t hc_rng_next(struct hc_rng *r)
{
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5;
    uint64_t out = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return out;
}

/* Uniform in [0, 1). */
static inline double hc_rng_unit(struct hc_rng *r)
{
    return (double)(hc_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [lo, hi). */
static inline double hc_rng_range(struct hc_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * hc_rng_unit(r);
}

/* Uniform integer in [0, n), n > 0. */
static inline uint64_t hc_rng_below(struct hc_rng *r, uint64_t n)
{
    return hc_rng_next(r) % n;
}

/* Standard normal (Box-Muller; one value per call, simplicity over speed). */
static inline double hc_rng_normal(struct hc_rng *r)
{
    double u = hc_rng_unit(r), v = hc_rng_unit(r);
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

#endif
