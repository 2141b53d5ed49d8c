/*
 * kernel_avx2.c — AVX2 kernel: four squared chords per step.
 *
 * Compiled for any x86-64 and enabled per function with a target attribute;
 * hc_kernel_best() only hands it out when the CPU reports AVX2.  The
 * arithmetic mirrors the scalar kernel exactly (see kernel.h).
 */
#include <immintrin.h>

#include "hubcap/geo.h"
#include "hubcap/kernel.h"

#define AVX2 __attribute__((target("avx2,popcnt")))

static inline AVX2 __m256d chord2_4(const double *x, const double *y,
                                    const double *z, __m256d px,
                                    __m256d py, __m256d pz)
{
    __m256d dx = _mm256_sub_pd(_mm256_loadu_pd(x), px);
    __m256d dy = _mm256_sub_pd(_mm256_loadu_pd(y), py);
    __m256d dz = _mm256_sub_pd(_mm256_loadu_pd(z), pz);
    __m256d s = _mm256_add_pd(_mm256_mul_pd(dx, dx), _mm256_mul_pd(dy, dy));
    return _mm256_add_pd(s, _mm256_mul_pd(dz, dz));
}

static AVX2 uint64_t avx2_exceed(const double *x, const double *y,
                                 const double *z, size_t n,
                                 const double p[3], double limit)
{
    __m256d px = _mm256_set1_pd(p[0]), py = _mm256_set1_pd(p[1]);
    __m256d pz = _mm256_set1_pd(p[2]), lim = _mm256_set1_pd(limit);
    uint64_t mask = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d s = chord2_4(x + i, y + i, z + i, px, py, pz);
        unsigned m = (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(s, lim, _CMP_GT_OQ));
        mask |= (uint64_t)m << i;
    }
    for (; i < n; i++) {
        double q[3] = { x[i], y[i], z[i] };
        if (hc_geo_chord2(q, p) > limit)
            mask |= (uint64_t)1 << i;
    }
    return mask;
}

static AVX2 unsigned avx2_exceed_count(const double *x, const double *y,
                                       const double *z, size_t n,
                                       const double p[3], double limit, uint64_t skip)
{
    return (unsigned)__builtin_popcountll(avx2_exceed(x, y, z, n, p, limit) & ~skip);
}

static AVX2 void avx2_exceed_count2(const double *x, const double *y,
                                    const double *z, size_t n, const double out[3],
                                    const double in[3], double limit, uint64_t skip,
                                    unsigned *n_out, unsigned *n_in)
{
    __m256d ox = _mm256_set1_pd(out[0]), oy = _mm256_set1_pd(out[1]);
    __m256d oz = _mm256_set1_pd(out[2]), ix = _mm256_set1_pd(in[0]);
    __m256d iy = _mm256_set1_pd(in[1]), iz = _mm256_set1_pd(in[2]);
    __m256d lim = _mm256_set1_pd(limit);
    uint64_t mo = 0, mi = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d so = chord2_4(x + i, y + i, z + i, ox, oy, oz);
        __m256d si = chord2_4(x + i, y + i, z + i, ix, iy, iz);
        mo |= (uint64_t)(unsigned)_mm256_movemask_pd(_mm256_cmp_pd(so, lim, _CMP_GT_OQ)) << i;
        mi |= (uint64_t)(unsigned)_mm256_movemask_pd(_mm256_cmp_pd(si, lim, _CMP_GT_OQ)) << i;
    }
    for (; i < n; i++) {
        double q[3] = { x[i], y[i], z[i] };
        mo |= (uint64_t)(hc_geo_chord2(q, out) > limit) << i;
        mi |= (uint64_t)(hc_geo_chord2(q, in) > limit) << i;
    }
    *n_out = (unsigned)__builtin_popcountll(mo & ~skip);
    *n_in = (unsigned)__builtin_popcountll(mi & ~skip);
}

static AVX2 void avx2_chord2(const double *x, const double *y, const double *z,
                             size_t n, const double p[3], double *out)
{
    __m256d px = _mm256_set1_pd(p[0]), py = _mm256_set1_pd(p[1]);
    __m256d pz = _mm256_set1_pd(p[2]);
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        _mm256_storeu_pd(out + i, chord2_4(x + i, y + i, z + i, px, py, pz));
    for (; i < n; i++) {
        double q[3] = { x[i], y[i], z[i] };
        out[i] = hc_geo_chord2(q, p);
    }
}

const struct hc_kernel hc_kernel_avx2 = {
    .name = "avx2",
    .exceed = avx2_exceed,
    .exceed_count = avx2_exceed_count,
    .exceed_count2 = avx2_exceed_count2,
    .chord2 = avx2_chord2,
};
