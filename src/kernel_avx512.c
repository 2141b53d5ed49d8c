/*
 * kernel_avx512.c — AVX-512F kernel: eight squared chords per step, the
 * ragged tail handled with masked loads instead of a scalar loop.
 *
 * Enabled per function with a target attribute; only handed out when the
 * CPU reports AVX-512F.  Arithmetic mirrors the scalar kernel (kernel.h).
 */
#include <immintrin.h>

#include "hubcap/kernel.h"

#define AVX512 __attribute__((target("avx512f,popcnt")))

static inline AVX512 __m512d chord2_8(__mmask8 k, const double *x,
                                      const double *y, const double *z,
                                      __m512d px, __m512d py, __m512d pz)
{
    __m512d dx = _mm512_sub_pd(_mm512_maskz_loadu_pd(k, x), px);
    __m512d dy = _mm512_sub_pd(_mm512_maskz_loadu_pd(k, y), py);
    __m512d dz = _mm512_sub_pd(_mm512_maskz_loadu_pd(k, z), pz);
    __m512d s = _mm512_add_pd(_mm512_mul_pd(dx, dx), _mm512_mul_pd(dy, dy));
    return _mm512_add_pd(s, _mm512_mul_pd(dz, dz));
}

static inline __mmask8 lanes(size_t left)
{
    return left >= 8 ? (__mmask8)0xff : (__mmask8)((1u << left) - 1u);
}

static AVX512 uint64_t avx512_exceed(const double *x, const double *y,
                                     const double *z, size_t n,
                                     const double p[3], double limit)
{
    __m512d px = _mm512_set1_pd(p[0]), py = _mm512_set1_pd(p[1]);
    __m512d pz = _mm512_set1_pd(p[2]), lim = _mm512_set1_pd(limit);
    uint64_t mask = 0;
    for (size_t i = 0; i < n; i += 8) {
        __mmask8 k = lanes(n - i);
        __m512d s = chord2_8(k, x + i, y + i, z + i, px, py, pz);
        __mmask8 m = _mm512_mask_cmp_pd_mask(k, s, lim, _CMP_GT_OQ);
        mask |= (uint64_t)m << i;
    }
    return mask;
}

static AVX512 unsigned avx512_exceed_count(const double *x, const double *y,
                                           const double *z, size_t n,
                                           const double p[3], double limit,
                                           uint64_t skip)
{
    return (unsigned)__builtin_popcountll(avx512_exceed(x, y, z, n, p, limit) & ~skip);
}

static AVX512 void avx512_exceed_count2(const double *x, const double *y,
                                        const double *z, size_t n,
                                        const double out[3], const double in[3],
                                        double limit, uint64_t skip,
                                        unsigned *n_out, unsigned *n_in)
{
    __m512d ox = _mm512_set1_pd(out[0]), oy = _mm512_set1_pd(out[1]);
    __m512d oz = _mm512_set1_pd(out[2]), ix = _mm512_set1_pd(in[0]);
    __m512d iy = _mm512_set1_pd(in[1]), iz = _mm512_set1_pd(in[2]);
    __m512d lim = _mm512_set1_pd(limit);
    uint64_t mo = 0, mi = 0;
    for (size_t i = 0; i < n; i += 8) {
        __mmask8 k = lanes(n - i);
        __m512d vx = _mm512_maskz_loadu_pd(k, x + i);
        __m512d vy = _mm512_maskz_loadu_pd(k, y + i);
        __m512d vz = _mm512_maskz_loadu_pd(k, z + i);
        __m512d dx = _mm512_sub_pd(vx, ox), dy = _mm512_sub_pd(vy, oy);
        __m512d dz = _mm512_sub_pd(vz, oz);
        __m512d so = _mm512_add_pd(_mm512_add_pd(_mm512_mul_pd(dx, dx), _mm512_mul_pd(dy, dy)),
                                   _mm512_mul_pd(dz, dz));
        dx = _mm512_sub_pd(vx, ix);
        dy = _mm512_sub_pd(vy, iy);
        dz = _mm512_sub_pd(vz, iz);
        __m512d si = _mm512_add_pd(_mm512_add_pd(_mm512_mul_pd(dx, dx), _mm512_mul_pd(dy, dy)),
                                   _mm512_mul_pd(dz, dz));
        mo |= (uint64_t)_mm512_mask_cmp_pd_mask(k, so, lim, _CMP_GT_OQ) << i;
        mi |= (uint64_t)_mm512_mask_cmp_pd_mask(k, si, lim, _CMP_GT_OQ) << i;
    }
    *n_out = (unsigned)__builtin_popcountll(mo & ~skip);
    *n_in = (unsigned)__builtin_popcountll(mi & ~skip);
}

static AVX512 void avx512_chord2(const double *x, const double *y,
                                 const double *z, size_t n,
                                 const double p[3], double *out)
{
    __m512d px = _mm512_set1_pd(p[0]), py = _mm512_set1_pd(p[1]);
    __m512d pz = _mm512_set1_pd(p[2]);
    for (size_t i = 0; i < n; i += 8) {
        __mmask8 k = lanes(n - i);
        _mm512_mask_storeu_pd(out + i, k, chord2_8(k, x + i, y + i, z + i, px, py, pz));
    }
}

const struct hc_kernel hc_kernel_avx512 = {
    .name = "avx512",
    .exceed = avx512_exceed,
    .exceed_count = avx512_exceed_count,
    .exceed_count2 = avx512_exceed_count2,
    .chord2 = avx512_chord2,
};
