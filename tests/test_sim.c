/*
 * test_sim.c — the simulated fleet is reproducible and its ground truth
 * describes the stream it produces.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "hubcap/geo.h"
#include "hubcap/sim.h"

static struct hc_sim *make(uint64_t seed)
{
    struct hc_sim_config c;
    hc_sim_config_default(&c);
    c.vehicles = 200;
    c.tow_rate = 0.2;
    c.stray_rate = 0.02;
    c.seed = seed;
    struct hc_sim *s;
    cr_assert_eq(hc_sim_new(&c, &s), 0);
    return s;
}

Test(sim, same_seed_same_stream_other_seed_other_stream)
{
    struct hc_sim *a = make(11), *b = make(11), *c = make(12);
    struct hc_report ra, rb, rc;
    int differ = 0;
    uint64_t n = 0;
    while (hc_sim_next(a, &ra, NULL)) {
        cr_assert_eq(hc_sim_next(b, &rb, NULL), 1);
        cr_assert_eq(hc_sim_next(c, &rc, NULL), 1);
        cr_assert(memcmp(&ra, &rb, sizeof(ra)) == 0, "report %lu differs", (unsigned long)n);
        differ |= ra.lat != rc.lat;
        n++;
    }
    cr_assert_eq(n, hc_sim_total(a));
    cr_assert_eq(hc_sim_next(b, &rb, NULL), 0);
    cr_assert(differ);
    hc_sim_free(a);
    hc_sim_free(b);
    hc_sim_free(c);
}

Test(sim, truth_matches_the_stream)
{
    struct hc_sim *s = make(3);
    struct hc_report r;
    struct hc_sim_truth t;
    int64_t *last = calloc(200, sizeof(int64_t));
    double *plat = calloc(200, sizeof(double)), *plon = calloc(200, sizeof(double));
    int tows = 0, strays = 0, checked = 0;
    while (hc_sim_next(s, &r, &t)) {
        cr_assert_eq(hc_report_check(&r), 0);
        char vid[16];
        size_t len = hc_sim_vid(t.vehicle, vid);
        cr_assert(r.vid_len == len && memcmp(r.vid, vid, len) == 0);
        cr_assert_gt(r.ts, last[t.vehicle], "time goes forward per vehicle");
        last[t.vehicle] = r.ts;
        if (r.acc) {                    /* session start: the parking spot */
            plat[t.vehicle] = r.lat;
            plon[t.vehicle] = r.lon;
            tows += t.towed;
            continue;
        }
        double d = hc_geo_haversine_m(plat[t.vehicle], plon[t.vehicle], r.lat, r.lon);
        if (t.stray) {
            strays++;
        } else if (t.after_tow) {
            /* Tow distance, give or take the maker's jitter (< 100 m). */
            cr_assert(d > t.tow_m - 100 && d < t.tow_m + 100, "tow %f got %f", t.tow_m, d);
            checked++;
        } else {
            cr_assert_lt(d, 100.0, "an untowed fix within jitter of its spot");
            checked++;
        }
    }
    cr_assert_gt(tows, 60);     /* 20 % of 600 sessions, give or take */
    cr_assert_gt(strays, 100);
    cr_assert_gt(checked, 25000);
    free(last);
    free(plat);
    free(plon);
    hc_sim_free(s);
}

Test(sim, offset_moves_by_the_distance_asked)
{
    double lat, lon;
    hc_sim_offset(64.1, -21.9, 1234.5, 1.0, &lat, &lon);
    cr_assert_float_eq(hc_geo_haversine_m(64.1, -21.9, lat, lon), 1234.5, 1e-6);
    hc_sim_offset(0, 179.9999, 100, 3.14159265358979 / 2, &lat, &lon);
    cr_assert_lt(lon, -179.99, "wraps across the antimeridian");
    cr_assert_float_eq(hc_geo_haversine_m(0, 179.9999, lat, lon), 100, 1e-6);
}

Test(sim, bad_configs_are_refused)
{
    struct hc_sim_config c;
    struct hc_sim *s;
    hc_sim_config_default(&c);
    c.vehicles = 0;
    cr_assert_lt(hc_sim_new(&c, &s), 0);
    hc_sim_config_default(&c);
    c.tow_rate = 1.5;
    cr_assert_lt(hc_sim_new(&c, &s), 0);
}
