/*
 * test_window.c — the incremental pair count always equals a brute-force
 * recount of the last W positions, for every kernel and several W; so do
 * the exceed matrix (hc_window_rows) and the newest position's row.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "hubcap/geo.h"
#include "hubcap/rng.h"
#include "hubcap/sim.h"
#include "hubcap/window.h"

static struct hc_window *new_window(unsigned cap)
{
    struct hc_window *w = malloc(hc_window_size(cap));
    cr_assert_not_null(w);
    hc_window_init(w, cap);
    return w;
}

/* Pairs among the last n of (lat, lon) farther apart than t, by haversine;
 * *tie is set when some pair lies within 1 cm of t (not decidable). */
static unsigned brute(const double *lat, const double *lon, size_t end, size_t n,
                      double t, int *tie)
{
    unsigned c = 0;
    size_t from = end > n ? end - n : 0;
    for (size_t i = from; i < end; i++)
        for (size_t j = i + 1; j < end; j++) {
            double d = hc_geo_haversine_m(lat[i], lon[i], lat[j], lon[j]);
            if (fabs(d - t) <= 0.01)
                *tie = 1;
            c += d > t;
        }
    return c;
}

/* hc_window_rows against haversine on the last n of (lat, lon), and the
 * newest row's count against what hc_window_push returned. */
static void check_rows(const struct hc_window *w, const struct hc_kernel *k, double limit,
                       const double *lat, const double *lon, size_t end, double t,
                       unsigned pushed_row)
{
    uint64_t rows[HC_WINDOW_MAX];
    size_t n = w->len, from = end - n;
    hc_window_rows(w, k, limit, rows);
    for (size_t a = 0; a < n; a++)
        for (size_t b = 0; b < n; b++) {
            int want = a != b && hc_geo_haversine_m(lat[from + a], lon[from + a],
                                                    lat[from + b], lon[from + b]) > t;
            cr_assert_eq((int)(rows[a] >> b & 1), want, "%s W=%u row %zu bit %zu", k->name,
                         w->cap, a, b);
        }
    cr_assert_eq((unsigned)__builtin_popcountll(rows[n - 1]), pushed_row);
}

#define STEPS 600

Test(window, incremental_count_equals_brute_force_after_every_step)
{
    static const unsigned caps[] = { 2, 3, 5, 8, 10, 16, 17, 31, 33, 64 };
    const struct hc_kernel *ks[4];
    size_t nk = hc_kernel_list(ks, 4);
    static double lat[STEPS], lon[STEPS];
    struct hc_rng r;
    hc_rng_seed(&r, 99);
    long checked = 0;

    for (size_t k = 0; k < nk; k++)
        for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++)
            for (int session = 0; session < 4; session++) {
                unsigned cap = caps[c];
                struct hc_window *w = new_window(cap);
                double t = hc_rng_range(&r, 5, 200);
                double limit = hc_geo_chord2_limit(t);
                double clat = hc_rng_range(&r, -85, 85), clon = hc_rng_range(&r, -180, 180);
                for (size_t i = 0; i < STEPS; i++) {
                    double u = hc_rng_unit(&r);
                    /* Drift around the spot, some strays, some moves. */
                    double dist = u < 0.9 ? hc_rng_range(&r, 0, t) : hc_rng_range(&r, t, 5 * t);
                    if (u > 0.98)
                        hc_sim_offset(clat, clon, 3 * t, 1.0, &clat, &clon);
                    hc_sim_offset(clat, clon, dist, hc_rng_range(&r, 0, 6.2831853),
                                  &lat[i], &lon[i]);
                    double p[3];
                    hc_geo_unit(lat[i], lon[i], p);
                    unsigned row = hc_window_push(w, ks[k], p, limit);

                    int tie = 0;
                    unsigned want = brute(lat, lon, i + 1, cap, t, &tie);
                    cr_assert_eq(w->len, i + 1 < cap ? i + 1 : cap);
                    if (!tie) {
                        cr_assert_eq(w->pairs, want,
                                     "%s W=%u step %zu: incremental %u, brute force %u",
                                     ks[k]->name, cap, i, w->pairs, want);
                        check_rows(w, ks[k], limit, lat, lon, i + 1, t, row);
                        checked++;
                    }
                    /* The oldest slot holds the position W-1 reports back. */
                    double o[3], e[3];
                    hc_window_get(w, hc_window_slot(w, 0), o);
                    size_t oldest = i + 1 > cap ? i + 1 - cap : 0;
                    hc_geo_unit(lat[oldest], lon[oldest], e);
                    cr_assert(o[0] == e[0] && o[1] == e[1] && o[2] == e[2]);
                }
                uint32_t before = w->pairs;
                cr_assert_eq(hc_window_recount(w, ks[k], limit), before);
                free(w);
            }
    cr_assert_gt(checked, (long)(nk * 10 * 4 * STEPS * 9 / 10));
}

Test(window, clear_empties_and_counts_restart)
{
    struct hc_window *w = new_window(4);
    const struct hc_kernel *k = hc_kernel_best();
    double limit = hc_geo_chord2_limit(10);
    double a[3], b[3];
    hc_geo_unit(10, 10, a);
    hc_geo_unit(10, 10.001, b);    /* ~110 m east */
    hc_window_push(w, k, a, limit);
    hc_window_push(w, k, b, limit);
    cr_assert_eq(w->pairs, 1);
    hc_window_clear(w);
    cr_assert_eq(w->len, 0);
    cr_assert_eq(w->pairs, 0);
    hc_window_push(w, k, a, limit);
    cr_assert_eq(w->pairs, 0);
    cr_assert_eq(w->len, 1);
    free(w);
}

Test(window, recount_follows_a_new_limit)
{
    struct hc_window *w = new_window(8);
    const struct hc_kernel *k = hc_kernel_best();
    double p[3];
    for (int i = 0; i < 8; i++) {
        hc_geo_unit(0, i * 0.0001, p);  /* ~11.1 m apart, in a line */
        hc_window_push(w, k, p, hc_geo_chord2_limit(1000));
    }
    cr_assert_eq(w->pairs, 0);
    /* Pairs more than 50 m apart: index gaps 5, 6, 7 -> 3 + 2 + 1 = 6. */
    cr_assert_eq(hc_window_recount(w, k, hc_geo_chord2_limit(50)), 6);
    double far = hc_geo_chord2_to_m(hc_window_max_chord2(w, k));
    cr_assert_float_eq(far, hc_geo_haversine_m(0, 0, 0, 0.0007), 1e-6);
    free(w);
}
