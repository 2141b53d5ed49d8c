/*
 * test_calib.c — sample sizes of the seed table and the pairwise drift
 * statistics against brute force.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "hubcap/calib.h"
#include "hubcap/error.h"
#include "hubcap/geo.h"
#include "hubcap/rng.h"
#include "hubcap/sim.h"

Test(calib, sample_sizes_match_the_seed_table)
{
    cr_assert_eq(hc_calib_sample_size(1.96, 0.5, 0.03), 1067);
    cr_assert_eq(hc_calib_sample_size(1.96, 0.5, 0.05), 384);
    cr_assert_eq(hc_calib_sample_size(1.96, 0.5, 0.10), 96);
    cr_assert_eq(hc_calib_sample_size(1.64, 0.5, 0.03), 747);
    cr_assert_eq(hc_calib_sample_size(1.64, 0.5, 0.05), 269);
    cr_assert_eq(hc_calib_sample_size(1.64, 0.5, 0.10), 67);
    cr_assert_eq(hc_calib_sample_size(hc_calib_z(95), 0.5, 0.03), 1067);
    cr_assert_eq(hc_calib_sample_size(hc_calib_z(90), 0.5, 0.05), 269);
}

Test(calib, bad_sample_size_inputs_are_refused)
{
    cr_assert_eq(hc_calib_sample_size(0, 0.5, 0.03), -EINVAL);
    cr_assert_eq(hc_calib_sample_size(1.96, 0, 0.03), -EINVAL);
    cr_assert_eq(hc_calib_sample_size(1.96, 1, 0.03), -EINVAL);
    cr_assert_eq(hc_calib_sample_size(1.96, 0.5, 0), -EINVAL);
    cr_assert_eq(hc_calib_sample_size(NAN, 0.5, 0.03), -EINVAL);
    cr_assert_eq(hc_calib_z(80), 0.0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

Test(calib, drift_statistics_equal_brute_force)
{
    struct hc_drift h;
    cr_assert_eq(hc_drift_init(&h), 0);
    struct hc_rng r;
    hc_rng_seed(&r, 5);
    enum { VEH = 40, MAXF = 80 };
    static double all[VEH * MAXF * MAXF / 2];
    size_t n_all = 0, fixes = 0;
    double brute_max = 0;

    for (int v = 0; v < VEH; v++) {
        double lat[MAXF], lon[MAXF];
        size_t n = 1 + hc_rng_below(&r, MAXF);
        double clat = hc_rng_range(&r, -80, 80), clon = hc_rng_range(&r, -180, 180);
        double sigma = hc_rng_range(&r, 2, 30);
        for (size_t i = 0; i < n; i++)
            hc_sim_offset(clat, clon, fabs(hc_rng_normal(&r)) * sigma,
                          hc_rng_range(&r, 0, 6.2831853), &lat[i], &lon[i]);
        cr_assert_eq(hc_drift_add(&h, hc_kernel_best(), lat, lon, n), 0);
        fixes += n;
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++) {
                double d = hc_geo_haversine_m(lat[i], lon[i], lat[j], lon[j]);
                all[n_all++] = d;
                if (d > brute_max)
                    brute_max = d;
            }
    }
    cr_assert_eq(h.vehicles, VEH);
    cr_assert_eq(h.fixes, fixes);
    cr_assert_eq(h.pairs, n_all);
    cr_assert_float_eq(hc_drift_max_m(&h), brute_max, 1e-6);

    qsort(all, n_all, sizeof(double), cmp_double);
    double qs[] = { 0.5, 0.9, 0.99, 0.999, 1.0 };
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        size_t rank = (size_t)ceil(qs[i] * (double)n_all);
        double exact = all[rank - 1];
        double got = hc_drift_quantile_m(&h, qs[i]);
        /* Rounded up to the bin: never below (but for a micrometre of chord
         * versus haversine rounding), at most 0.3 % above. */
        cr_assert(got >= exact - 1e-6 && got <= exact * 1.003 + 1e-6,
                  "q%.3f: histogram %.4f m, exact %.4f m", qs[i], got, exact);
    }
    cr_assert_float_eq(hc_drift_quantile_m(&h, 1.0), brute_max, 1e-6);
    hc_drift_free(&h);
}

Test(calib, merge_equals_one_accumulator)
{
    struct hc_drift a, b, both;
    hc_drift_init(&a);
    hc_drift_init(&b);
    hc_drift_init(&both);
    double lat1[] = { 10, 10.0001, 10.0002 }, lon1[] = { 20, 20, 20.0003 };
    double lat2[] = { -5, -5.001 }, lon2[] = { 100, 100 };
    hc_drift_add(&a, hc_kernel_best(), lat1, lon1, 3);
    hc_drift_add(&b, hc_kernel_best(), lat2, lon2, 2);
    hc_drift_add(&both, hc_kernel_best(), lat1, lon1, 3);
    hc_drift_add(&both, hc_kernel_best(), lat2, lon2, 2);
    hc_drift_merge(&a, &b);
    cr_assert_eq(a.pairs, both.pairs);
    cr_assert_eq(a.pairs, 4);
    cr_assert_eq(a.max_chord2, both.max_chord2);
    for (unsigned i = 0; i < HC_DRIFT_BINS; i++)
        cr_assert_eq(a.hist[i], both.hist[i]);
    cr_assert_float_eq(hc_drift_max_m(&a), hc_geo_haversine_m(-5, 100, -5.001, 100), 1e-6);
    hc_drift_free(&a);
    hc_drift_free(&b);
    hc_drift_free(&both);
    hc_drift_free(NULL);
}

Test(calib, bad_positions_are_refused_whole)
{
    struct hc_drift h;
    hc_drift_init(&h);
    double lat[] = { 10, 95 }, lon[] = { 20, 20 };
    cr_assert_eq(hc_drift_add(&h, hc_kernel_best(), lat, lon, 2), HC_ERANGE_LAT);
    cr_assert_eq(h.pairs, 0);
    cr_assert_eq(h.vehicles, 0);
    cr_assert_eq(hc_drift_quantile_m(&h, 0.99), 0.0);
    hc_drift_free(&h);
}
