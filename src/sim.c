/*
 * sim.c — the simulated fleet (see sim.h).
 *
 * State is a cursor (session, step, vehicle) plus a small record per
 * vehicle for the current session; step 0 of a session is the ignition-on
 * report, steps 1..reports_per_session the parked fixes.  All randomness
 * comes from one seeded generator consumed in stream order, so a config
 * and seed always produce the same stream.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubcap/geo.h"
#include "hubcap/rng.h"
#include "hubcap/sim.h"

static const struct hc_sim_maker default_makers[] = {
    { "acme", 4.0 },
    { "borealis", 9.0 },
    { "cobalt", 18.0 },
};

/* Cities the fleet parks in; vehicles spread within ~20 km of one. */
static const double cities[][2] = {
    { 22.543, 114.058 },    /* Shenzhen */
    { 52.520, 13.405 },     /* Berlin */
    { -23.550, -46.633 },   /* Sao Paulo */
    { 64.147, -21.943 },    /* Reykjavik */
    { -36.848, 174.763 },   /* Auckland, near the antimeridian */
};

struct sim_vehicle {
    double home_lat, home_lon;
    double lat, lon;            /* parking spot of the current session */
    double tow_lat, tow_lon;    /* spot after the tow */
    double tow_m;
    uint32_t phase_ms;          /* offset inside the report interval */
    int32_t tow_at;             /* first step at the new spot; 0: no tow */
    uint8_t maker;
};

struct hc_sim {
    struct hc_sim_config cfg;
    struct hc_rng rng;
    struct sim_vehicle *v;
    uint32_t session, step, vehicle;
    char maker_len[256];
};

void hc_sim_config_default(struct hc_sim_config *c)
{
    memset(c, 0, sizeof(*c));
    c->vehicles = 1000;
    c->sessions = 3;
    c->reports_per_session = 48;
    c->interval_s = 300;
    c->tow_rate = 0.03;
    c->tow_min_m = 150.0;
    c->tow_max_m = 2000.0;
    c->stray_rate = 0.003;
    c->stray_min_m = 200.0;
    c->stray_max_m = 800.0;
    c->seed = 1;
    c->start_ms = 1795000000000LL;      /* 2026-11-18 */
}

const struct hc_sim_maker *hc_sim_default_makers(unsigned *n)
{
    *n = sizeof(default_makers) / sizeof(default_makers[0]);
    return default_makers;
}

size_t hc_sim_vid(uint32_t i, char *buf)
{
    return (size_t)snprintf(buf, 16, "SIM%07u", i);
}

void hc_sim_offset(double lat, double lon, double meters, double bearing,
                   double *out_lat, double *out_lon)
{
    double d = meters / HC_EARTH_RADIUS_M;
    double p1 = lat * HC_DEG2RAD, l1 = lon * HC_DEG2RAD;
    double p2 = asin(sin(p1) * cos(d) + cos(p1) * sin(d) * cos(bearing));
    double l2 = l1 + atan2(sin(bearing) * sin(d) * cos(p1),
                           cos(d) - sin(p1) * sin(p2));
    *out_lat = p2 / HC_DEG2RAD;
    double lo = fmod(l2 / HC_DEG2RAD + 540.0, 360.0) - 180.0;
    *out_lon = lo;
}

int hc_sim_new(const struct hc_sim_config *c, struct hc_sim **out)
{
    if (c->vehicles == 0 || c->sessions == 0 || c->reports_per_session == 0 ||
        c->interval_s == 0 || !(c->tow_rate >= 0 && c->tow_rate <= 1) ||
        !(c->stray_rate >= 0 && c->stray_rate <= 1) ||
        !(c->tow_min_m >= 0 && c->tow_max_m >= c->tow_min_m) ||
        !(c->stray_min_m >= 0 && c->stray_max_m >= c->stray_min_m) ||
        (c->makers && (c->n_makers == 0 || c->n_makers > 255)))
        return -EINVAL;

    struct hc_sim *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->cfg = *c;
    if (!s->cfg.makers)
        s->cfg.makers = hc_sim_default_makers(&s->cfg.n_makers);
    s->v = calloc(c->vehicles, sizeof(*s->v));
    if (!s->v) {
        free(s);
        return -ENOMEM;
    }
    for (unsigned m = 0; m < s->cfg.n_makers; m++) {
        size_t len = strlen(s->cfg.makers[m].name);
        s->maker_len[m] = (char)(len > HC_MAKER_MAX ? HC_MAKER_MAX : len);
    }
    hc_rng_seed(&s->rng, c->seed);
    unsigned n_cities = sizeof(cities) / sizeof(cities[0]);
    for (uint32_t i = 0; i < c->vehicles; i++) {
        struct sim_vehicle *v = &s->v[i];
        const double *city = cities[hc_rng_below(&s->rng, n_cities)];
        hc_sim_offset(city[0], city[1], hc_rng_range(&s->rng, 0, 20000),
                      hc_rng_range(&s->rng, 0, 6.283185307179586),
                      &v->home_lat, &v->home_lon);
        v->maker = (uint8_t)hc_rng_below(&s->rng, s->cfg.n_makers);
        v->phase_ms = (uint32_t)hc_rng_below(&s->rng, (uint64_t)c->interval_s * 1000);
    }
    *out = s;
    return 0;
}

void hc_sim_free(struct hc_sim *s)
{
    if (!s)
        return;
    free(s->v);
    free(s);
}

uint64_t hc_sim_total(const struct hc_sim *s)
{
    return (uint64_t)s->cfg.vehicles * s->cfg.sessions *
           (s->cfg.reports_per_session + 1);
}

unsigned hc_sim_vehicle_maker(const struct hc_sim *s, uint32_t vehicle)
{
    return s->v[vehicle].maker;
}

/* Pick this session's parking spot and, maybe, its tow. */
static void start_session(struct hc_sim *s, struct sim_vehicle *v)
{
    const struct hc_sim_config *c = &s->cfg;
    hc_sim_offset(v->home_lat, v->home_lon, hc_rng_range(&s->rng, 0, 2000),
                  hc_rng_range(&s->rng, 0, 6.283185307179586), &v->lat, &v->lon);
    v->tow_at = 0;
    if (hc_rng_unit(&s->rng) < c->tow_rate) {
        uint32_t n = c->reports_per_session;
        /* A step in the middle half of the session (steps are 1-based). */
        v->tow_at = (int32_t)(1 + n / 4 + hc_rng_below(&s->rng, n / 2 + 1));
        v->tow_m = hc_rng_range(&s->rng, c->tow_min_m, c->tow_max_m);
        hc_sim_offset(v->lat, v->lon, v->tow_m,
                      hc_rng_range(&s->rng, 0, 6.283185307179586),
                      &v->tow_lat, &v->tow_lon);
    }
}

int hc_sim_next(struct hc_sim *s, struct hc_report *r, struct hc_sim_truth *t)
{
    const struct hc_sim_config *c = &s->cfg;
    if (s->session >= c->sessions)
        return 0;

    uint32_t vi = s->vehicle;
    struct sim_vehicle *v = &s->v[vi];
    const struct hc_sim_maker *mk = &c->makers[v->maker];
    /* Sessions start a day apart (or further, if a session lasts longer);
     * fixes are interval_s apart within one. */
    int64_t span = ((int64_t)c->reports_per_session + 1) * c->interval_s * 1000 + 3600000;
    int64_t ts = c->start_ms + (int64_t)s->session * (span > 86400000LL ? span : 86400000LL) +
                 (int64_t)s->step * c->interval_s * 1000 + v->phase_ms;
    bool after = false, stray = false;

    memset(r, 0, sizeof(*r));
    r->vid_len = (uint8_t)hc_sim_vid(vi, r->vid);
    r->maker_len = (uint8_t)s->maker_len[v->maker];
    memcpy(r->maker, mk->name, r->maker_len);
    r->ts = ts;
    if (s->step == 0) {
        start_session(s, v);
        r->acc = 1;
        r->lat = v->lat;
        r->lon = v->lon;
    } else {
        after = v->tow_at && (int32_t)s->step >= v->tow_at;
        double lat = after ? v->tow_lat : v->lat;
        double lon = after ? v->tow_lon : v->lon;
        double dn = hc_rng_normal(&s->rng) * mk->sigma_m;
        double de = hc_rng_normal(&s->rng) * mk->sigma_m;
        double dist = sqrt(dn * dn + de * de), bearing = atan2(de, dn);
        if (hc_rng_unit(&s->rng) < c->stray_rate) {
            stray = true;
            dist += hc_rng_range(&s->rng, c->stray_min_m, c->stray_max_m);
        }
        hc_sim_offset(lat, lon, dist, bearing, &r->lat, &r->lon);
    }
    if (t) {
        t->vehicle = vi;
        t->session = s->session;
        t->towed = v->tow_at != 0;
        t->after_tow = after;
        t->stray = stray;
        t->tow_m = v->tow_at ? v->tow_m : 0.0;
    }

    /* Advance the cursor: vehicles, then steps, then sessions. */
    if (++s->vehicle == c->vehicles) {
        s->vehicle = 0;
        if (++s->step > c->reports_per_session) {
            s->step = 0;
            s->session++;
        }
    }
    return 1;
}
