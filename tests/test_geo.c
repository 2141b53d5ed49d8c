/*
 * test_geo.c — the haversine reference and the chord decision that stands
 * in for it on the hot path.
 */
#include <criterion/criterion.h>
#include <math.h>

#include "hubcap/geo.h"
#include "hubcap/rng.h"
#include "hubcap/sim.h"

Test(geo, haversine_known_distances)
{
    /* One degree along the equator: R * pi / 180. */
    cr_assert_float_eq(hc_geo_haversine_m(0, 0, 0, 1), 111319.49079327357, 1e-6);
    /* Across the antimeridian the short way round. */
    cr_assert_float_eq(hc_geo_haversine_m(0, 179.9999, 0, -179.9999),
                       2 * 0.0001 * 111319.49079327357, 1e-6);
    /* Every longitude at the pole is the same point. */
    cr_assert_float_eq(hc_geo_haversine_m(90, 0, 90, 120), 0.0, 1e-6);
    /* Pole to equator: a quarter of the circumference. */
    cr_assert_float_eq(hc_geo_haversine_m(90, 0, 0, 45),
                       HC_EARTH_RADIUS_M * 3.14159265358979323846 / 2, 1e-6);
    cr_assert_float_eq(hc_geo_haversine_m(10, 20, 10, 20), 0.0, 0.0);
}

Test(geo, chord_round_trips_to_meters)
{
    double ms[] = { 0.01, 1, 35, 100, 2000, 1e6, 1.9e7 };
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        double back = hc_geo_chord2_to_m(hc_geo_chord2_limit(ms[i]));
        cr_assert_float_eq(back, ms[i], 1e-6 * (1 + ms[i]) , "%g m came back as %.9g", ms[i], back);
    }
}

Test(geo, unit_vector_round_trips_to_lat_lon)
{
    struct hc_rng r;
    hc_rng_seed(&r, 7);
    for (int i = 0; i < 10000; i++) {
        double lat = hc_rng_range(&r, -89.999, 89.999), lon = hc_rng_range(&r, -180, 180);
        double v[3], lat2, lon2;
        hc_geo_unit(lat, lon, v);
        hc_geo_latlon(v, &lat2, &lon2);
        cr_assert(hc_geo_haversine_m(lat, lon, lat2, lon2) < 1e-6);
    }
}

/* A random point, biased towards the places where formulas break: the
 * poles and the antimeridian. */
static void random_point(struct hc_rng *r, double *lat, double *lon)
{
    switch (hc_rng_below(r, 4)) {
    case 0:     /* uniform on the sphere */
        *lat = asin(hc_rng_range(r, -1, 1)) / HC_DEG2RAD;
        *lon = hc_rng_range(r, -180, 180);
        break;
    case 1:     /* within ~10 km of a pole */
        *lat = (hc_rng_below(r, 2) ? 1 : -1) * hc_rng_range(r, 89.9, 90);
        *lon = hc_rng_range(r, -180, 180);
        break;
    case 2:     /* on either side of the antimeridian */
        *lat = hc_rng_range(r, -80, 80);
        *lon = (hc_rng_below(r, 2) ? 1 : -1) * hc_rng_range(r, 179.99, 180);
        break;
    default:    /* mid latitudes, where fleets are */
        *lat = hc_rng_range(r, -60, 70);
        *lon = hc_rng_range(r, -180, 180);
        break;
    }
}

Test(geo, chord_decision_equals_haversine_on_a_million_pairs)
{
    struct hc_rng r;
    hc_rng_seed(&r, 2026);
    const long n = 1000000;
    long decided = 0, skipped = 0, straddling = 0, above = 0;
    for (long i = 0; i < n; i++) {
        double lat1, lon1, lat2, lon2;
        random_point(&r, &lat1, &lon1);
        /* Thresholds from 1 m to 20 km, log-uniform. */
        double t = exp(hc_rng_range(&r, log(1.0), log(20000.0)));
        double d;
        switch (hc_rng_below(&r, 4)) {
        case 0:     /* within 5 cm of the threshold: the hard cases */
            d = t + hc_rng_range(&r, -0.05, 0.05);
            straddling++;
            break;
        case 1:     /* within 1 % of it */
            d = t * hc_rng_range(&r, 0.99, 1.01);
            straddling++;
            break;
        case 2:     /* anywhere up to 10x */
            d = t * hc_rng_range(&r, 0, 10);
            break;
        default:    /* a second independent point: any distance at all */
            d = -1;
            break;
        }
        if (d >= 0)
            hc_sim_offset(lat1, lon1, d < 0 ? 0 : d, hc_rng_range(&r, 0, 6.2831853),
                          &lat2, &lon2);
        else
            random_point(&r, &lat2, &lon2);

        double ref = hc_geo_haversine_m(lat1, lon1, lat2, lon2);
        if (fabs(ref - t) <= 0.01) {
            skipped++;
            continue;
        }
        double a[3], b[3];
        hc_geo_unit(lat1, lon1, a);
        hc_geo_unit(lat2, lon2, b);
        int chord = hc_geo_chord2(a, b) > hc_geo_chord2_limit(t);
        int hav = ref > t;
        cr_assert_eq(chord, hav,
                     "pair %ld: (%.9f,%.9f)-(%.9f,%.9f) haversine %.6f m, threshold %.6f m: "
                     "chord says %d, haversine %d", i, lat1, lon1, lat2, lon2, ref, t, chord, hav);
        decided++;
        above += hav;
    }
    /* Enough hard cases were actually decided, not skipped. */
    cr_assert_geq(decided, 900000, "only %ld pairs decided", decided);
    cr_assert_gt(straddling, 400000);
    cr_assert_lt(skipped, 150000, "%ld pairs skipped as ties", skipped);
    cr_assert(above > 100000 && decided - above > 100000, "both outcomes well represented");
}

Test(geo, fast_sincos_matches_libm)
{
    struct hc_rng r;
    hc_rng_seed(&r, 8);
    double worst = 0;
    for (int i = 0; i < 2000000; i++) {
        double deg = i < 1000 ? (i - 500) * 0.5 : hc_rng_range(&r, -360, 360);
        double s, c;
        hc_geo_sincos_deg(deg, &s, &c);
        double es = sin(deg * HC_DEG2RAD), ec = cos(deg * HC_DEG2RAD);
        double e = fmax(fabs(s - es), fabs(c - ec));
        if (e > worst)
            worst = e;
    }
    /* libm itself is within an ulp; together well under 1e-15. */
    cr_assert_lt(worst, 1e-15, "worst difference %g", worst);
    /* Exact at the quadrant points. */
    double s, c;
    hc_geo_sincos_deg(90, &s, &c);
    cr_assert(s == 1.0 && c == 0.0);
    hc_geo_sincos_deg(-180, &s, &c);
    cr_assert(s == 0.0 && c == -1.0);
}
