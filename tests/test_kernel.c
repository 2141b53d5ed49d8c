/*
 * test_kernel.c — every kernel this CPU runs gives bit-identical squared
 * chords and identical exceed masks to the scalar specification.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "hubcap/geo.h"
#include "hubcap/kernel.h"
#include "hubcap/rng.h"
#include "hubcap/sim.h"

#define N 200

static void block(struct hc_rng *r, double *x, double *y, double *z, size_t n,
                  double lat, double lon, double spread_m)
{
    for (size_t i = 0; i < n; i++) {
        double la, lo, v[3];
        hc_sim_offset(lat, lon, hc_rng_range(r, 0, spread_m),
                      hc_rng_range(r, 0, 6.2831853), &la, &lo);
        hc_geo_unit(la, lo, v);
        x[i] = v[0];
        y[i] = v[1];
        z[i] = v[2];
    }
}

Test(kernel, scalar_is_always_available)
{
    const struct hc_kernel *ks[4];
    size_t n = hc_kernel_list(ks, 4);
    cr_assert_geq(n, 1);
    cr_assert_str_eq(ks[0]->name, "scalar");
    cr_assert_not_null(hc_kernel_best());
    cr_assert_eq(hc_kernel_by_name("scalar"), &hc_kernel_scalar);
    cr_assert_null(hc_kernel_by_name("sse9"));
}

Test(kernel, all_kernels_match_scalar_bit_for_bit)
{
    const struct hc_kernel *ks[4];
    size_t nk = hc_kernel_list(ks, 4);
    struct hc_rng r;
    hc_rng_seed(&r, 42);
    double x[N], y[N], z[N], want[N], got[N];

    for (int round = 0; round < 2000; round++) {
        double lat = hc_rng_range(&r, -89.99, 89.99), lon = hc_rng_range(&r, -180, 180);
        double spread = round % 2 ? 100.0 : 5e6;
        block(&r, x, y, z, N, lat, lon, spread);
        double p[3] = { x[N - 1], y[N - 1], z[N - 1] };
        size_t n = (size_t)round % N;
        double limit = hc_geo_chord2_limit(hc_rng_range(&r, 1, spread));
        /* Using point 0's own chord as the limit puts a value exactly on
         * the edge: equal is not "exceeds", in every kernel. */
        hc_kernel_scalar.chord2(x, y, z, n, p, want);
        size_t m = n < HC_KERNEL_MAX_BLOCK ? n : HC_KERNEL_MAX_BLOCK;
        uint64_t want_mask = hc_kernel_scalar.exceed(x, y, z, m, p, m ? want[0] : limit);
        for (size_t k = 0; k < nk; k++) {
            memset(got, 0xff, sizeof(got));
            ks[k]->chord2(x, y, z, n, p, got);
            cr_assert(memcmp(want, got, n * sizeof(double)) == 0,
                      "%s chord2 differs from scalar at n=%zu", ks[k]->name, n);
            uint64_t mask = ks[k]->exceed(x, y, z, m, p, m ? want[0] : limit);
            cr_assert_eq(mask, want_mask, "%s exceed mask differs at n=%zu", ks[k]->name, m);
            mask = ks[k]->exceed(x, y, z, m, p, limit);
            cr_assert_eq(mask, hc_kernel_scalar.exceed(x, y, z, m, p, limit));
            uint64_t skip = hc_rng_next(&r);
            cr_assert_eq(ks[k]->exceed_count(x, y, z, m, p, limit, skip),
                         (unsigned)__builtin_popcountll(mask & ~skip));
            /* The two-row pass equals two single rows. */
            double q[3] = { x[N / 2], y[N / 2], z[N / 2] };
            unsigned n_out, n_in;
            ks[k]->exceed_count2(x, y, z, m, q, p, limit, skip, &n_out, &n_in);
            cr_assert_eq(n_in, (unsigned)__builtin_popcountll(mask & ~skip));
            cr_assert_eq(n_out, (unsigned)__builtin_popcountll(
                                    hc_kernel_scalar.exceed(x, y, z, m, q, limit) & ~skip));
        }
        /* The scalar mask itself is the plain definition. */
        for (size_t i = 0; i < m; i++)
            cr_assert_eq((want_mask >> i) & 1, (uint64_t)(want[i] > want[0]));
    }
}

Test(kernel, chord2_leaves_memory_past_n_alone)
{
    const struct hc_kernel *ks[4];
    size_t nk = hc_kernel_list(ks, 4);
    double x[16] = { 0 }, y[16] = { 0 }, z[16] = { 0 }, out[16];
    double p[3] = { 1, 0, 0 };
    for (size_t k = 0; k < nk; k++)
        for (size_t n = 0; n < 12; n++) {
            for (int i = 0; i < 16; i++)
                out[i] = -1.0;
            ks[k]->chord2(x, y, z, n, p, out);
            for (size_t i = 0; i < 16; i++)
                cr_assert_eq(out[i], i < n ? 1.0 : -1.0, "%s n=%zu i=%zu", ks[k]->name, n, i);
        }
}
