/*
 * test_calib.c — sample sizes of the seed table, the pairwise drift
 * statistics against brute force, and the trimming of a session's outliers
 * against an independent reference.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
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

/* ---- trimming ------------------------------------------------------------------ */

/* The median as a textbook states it: sort, take the middle one, or the
 * mean of the middle two. */
static double sorted_median(double *a, size_t n)
{
    qsort(a, n, sizeof(double), cmp_double);
    return n % 2 ? a[n / 2] : 0.5 * (a[n / 2 - 1] + a[n / 2]);
}

/* hc_calib_trim's rule computed independently: unit vectors from libm,
 * medians by sorting, the centre as latitude and longitude, distances by
 * haversine.  Returns the count kept. */
static size_t trim_reference(const double *lat, const double *lon, size_t n, double k,
                             uint8_t *keep)
{
    enum { MAXN = 256 };
    double comp[3][MAXN], r[MAXN], s[MAXN], c[3];
    cr_assert_leq(n, MAXN);
    for (size_t i = 0; i < n; i++) {
        double p = lat[i] * HC_DEG2RAD, l = lon[i] * HC_DEG2RAD;
        comp[0][i] = cos(p) * cos(l);
        comp[1][i] = cos(p) * sin(l);
        comp[2][i] = sin(p);
    }
    for (int d = 0; d < 3; d++)
        c[d] = sorted_median(comp[d], n);
    double clat = atan2(c[2], hypot(c[0], c[1])) / HC_DEG2RAD, clon = atan2(c[1], c[0]) / HC_DEG2RAD;
    for (size_t i = 0; i < n; i++)
        s[i] = r[i] = hc_geo_haversine_m(lat[i], lon[i], clat, clon);
    double m = sorted_median(s, n);
    double cut = k * fmax(m, 1.0);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        kept += keep[i] = r[i] <= cut;
    return kept;
}

/* A parked receiver's fix: Gaussian jitter of sigma meters per axis
 * around the spot, so its distance from the spot is Rayleigh. */
static void jitter(struct hc_rng *r, double lat, double lon, double sigma, double *la,
                   double *lo)
{
    double d = sigma * sqrt(-2.0 * log(1.0 - hc_rng_unit(r)));
    hc_sim_offset(lat, lon, d, hc_rng_range(r, 0, 6.283185307179586), la, lo);
}

Test(calib, trim_keeps_exactly_what_brute_force_keeps)
{
    /* Spots anywhere, across the antimeridian, and a few metres from
     * either pole; jitter of 0.5 to 20 m; multipath strays of 30 to 400 m,
     * alone or 2 or 3 in a row, in a third of the sessions. */
    static const double spot[][2] = {
        { NAN, NAN }, { 0.0001, 179.99999 }, { -33.9, -179.99998 }, { 89.99995, 12 },
        { -89.99998, -150 }, { 72.5, 180 }, { 90, 0 },
    };
    struct hc_rng r;
    hc_rng_seed(&r, 11);
    size_t fixes = 0, cut = 0;
    for (int t = 0; t < 3000; t++) {
        double lat[200], lon[200];
        uint8_t keep[200], want[200];
        size_t n = 3 + hc_rng_below(&r, t % 10 ? 30 : 198);
        size_t which = hc_rng_below(&r, sizeof(spot) / sizeof(spot[0]));
        double clat = spot[which][0], clon = spot[which][1];
        if (isnan(clat)) {
            clat = hc_rng_range(&r, -89, 89);
            clon = hc_rng_range(&r, -180, 180);
        }
        double sigma = hc_rng_range(&r, 0.5, 20);
        for (size_t i = 0; i < n; i++)
            jitter(&r, clat, clon, sigma, &lat[i], &lon[i]);
        if (hc_rng_below(&r, 3) == 0) {
            size_t burst = 1 + hc_rng_below(&r, 3), at = hc_rng_below(&r, n);
            for (size_t i = at; i < at + burst && i < n; i++)
                hc_sim_offset(clat, clon, hc_rng_range(&r, 30, 400),
                              hc_rng_range(&r, 0, 6.283185307179586), &lat[i], &lon[i]);
        }
        size_t kept = trim_reference(lat, lon, n, 6, want);
        cr_assert_eq(hc_calib_trim(lat, lon, n, 6, keep), (long)kept, "session %d", t);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(keep[i], want[i], "session %d (n %zu at %.6f %.6f), fix %zu", t, n,
                         clat, clon, i);
        fixes += n;
        cut += n - kept;
    }
    /* The comparison means something: some fixes were cut, most kept. */
    cr_assert(cut > 300 && cut < fixes / 20, "%zu of %zu cut", cut, fixes);
}

Test(calib, trim_follows_k)
{
    struct hc_rng r;
    hc_rng_seed(&r, 12);
    for (int t = 0; t < 500; t++) {
        double lat[40], lon[40], k = hc_rng_range(&r, 1, 10);
        uint8_t keep[40], want[40];
        size_t n = 3 + hc_rng_below(&r, 38);
        for (size_t i = 0; i < n; i++)
            jitter(&r, 48.1, 11.6, 5, &lat[i], &lon[i]);
        size_t kept = trim_reference(lat, lon, n, k, want);
        cr_assert_eq(hc_calib_trim(lat, lon, n, k, keep), (long)kept, "k %g", k);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(keep[i], want[i], "k %g, fix %zu", k, i);
    }
}

Test(calib, trim_of_identical_fixes_keeps_them_all_and_cuts_beyond_k_meters)
{
    /* All the same: the median distance is 0, so the 1 m floor sets the
     * cut at k meters; a fix 5 m off is kept, one 7 m off is not. */
    double lat[12], lon[12];
    uint8_t keep[12];
    for (int i = 0; i < 12; i++) {
        lat[i] = -41.2865;
        lon[i] = 174.7762;
    }
    cr_assert_eq(hc_calib_trim(lat, lon, 12, 6, keep), 12);
    for (int i = 0; i < 12; i++)
        cr_assert_eq(keep[i], 1);
    hc_sim_offset(-41.2865, 174.7762, 5, 1.0, &lat[3], &lon[3]);
    hc_sim_offset(-41.2865, 174.7762, 7, 2.0, &lat[8], &lon[8]);
    cr_assert_eq(hc_calib_trim(lat, lon, 12, 6, keep), 11);
    for (int i = 0; i < 12; i++)
        cr_assert_eq(keep[i], i != 8, "fix %d", i);
}

Test(calib, trim_of_three_fixes_cuts_the_one_far_off)
{
    double lat[3], lon[3];
    uint8_t keep[3];
    lat[0] = 60;
    lon[0] = 25;
    hc_sim_offset(60, 25, 3, 0.5, &lat[1], &lon[1]);
    hc_sim_offset(60, 25, 80, 4.0, &lat[2], &lon[2]);
    cr_assert_eq(hc_calib_trim(lat, lon, 3, 6, keep), 2);
    cr_assert(keep[0] && keep[1] && !keep[2]);
    /* Three fixes 10 m apart: none is an outlier. */
    hc_sim_offset(60, 25, 10, 0, &lat[1], &lon[1]);
    hc_sim_offset(60, 25, 10, 1.0471975511965976, &lat[2], &lon[2]);
    cr_assert_eq(hc_calib_trim(lat, lon, 3, 6, keep), 3);
    /* Fewer than 3: nothing to judge by, all kept. */
    keep[0] = keep[1] = 7;
    cr_assert_eq(hc_calib_trim(lat, lon, 2, 6, keep), 2);
    cr_assert(keep[0] == 1 && keep[1] == 1);
    cr_assert_eq(hc_calib_trim(lat, lon, 0, 6, keep), 0);
}

Test(calib, trim_refuses_bad_input_and_leaves_keep_alone)
{
    double lat[] = { 10, 10.00001, 95 }, lon[] = { 20, 20, 20 };
    uint8_t keep[3] = { 7, 7, 7 };
    cr_assert_eq(hc_calib_trim(lat, lon, 3, 6, keep), HC_ERANGE_LAT);
    lat[2] = 10;
    lon[1] = -181;
    cr_assert_eq(hc_calib_trim(lat, lon, 3, 6, keep), HC_ERANGE_LON);
    lon[1] = 20;
    cr_assert_eq(hc_calib_trim(lat, lon, 3, 0, keep), -EINVAL);
    cr_assert_eq(hc_calib_trim(lat, lon, 3, NAN, keep), -EINVAL);
    cr_assert_eq(hc_calib_trim(lat, lon, 3, INFINITY, keep), -EINVAL);
    cr_assert(keep[0] == 7 && keep[1] == 7 && keep[2] == 7);
}
