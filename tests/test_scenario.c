/*
 * test_scenario.c — the scenario generator keeps its model (scenario.h):
 * reproducible, each vehicle independent of the fleet, time-ordered,
 * statistics that match the parameters, truth that describes the stream,
 * tows in gaps that really are in gaps; scenario files are checked with
 * errors naming FILE:LINE.  Suite scenario_tool runs hubcap-sim
 * --scenario ($HUBCAP_SIM) and reads back what it wrote.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hubcap/error.h"
#include "hubcap/geo.h"
#include "hubcap/scenario.h"
#include "hubcap/wire.h"
#include "runprog.h"

/* ---- helpers ---------------------------------------------------------------- */

/* A scenario built in code: "still" has no drift and never loses a fix
 * (jitter and intervals are measured on it), "lossy" drifts and loses. */
static void two_makers(struct hc_scn *s, uint32_t vehicles, uint32_t nights)
{
    hc_scn_default(s);
    s->vehicles = vehicles;
    s->nights = nights;
    s->n_makers = 2;
    hc_scn_maker_default(&s->makers[0], "still");
    s->makers[0].drift_m = 0;
    s->makers[0].missing = 0;
    s->makers[0].sigma_m = 5;
    hc_scn_maker_default(&s->makers[1], "lossy");
    s->makers[1].missing = 0.1;
    s->makers[1].interval_s = 600;
    s->makers[1].interval_jitter_s = 60;
}

static struct hc_scn_gen *gen(const struct hc_scn *s, bool calibration)
{
    struct hc_scn_gen *g;
    cr_assert_eq(hc_scn_gen_new(s, calibration, &g), 0);
    return g;
}

static uint32_t vehicle_of(const struct hc_report *r)
{
    cr_assert_eq(r->vid_len, 10);
    return (uint32_t)strtoul(r->vid + 3, NULL, 10);
}

static char dir[64];

static void make_dir(void)
{
    test_dir_make(dir, sizeof(dir), "scenario");
}

static void remove_dir(void)
{
    test_dir_remove(dir);
}

static const char *path_in(const char *name)
{
    return path_in_dir(dir, name);
}

static const char *write_file(const char *name, const char *text)
{
    const char *path = path_in(name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    return path;
}


TestSuite(scenario, .init = make_dir, .fini = remove_dir, .timeout = 120);

/* ---- reproducibility -------------------------------------------------------- */

Test(scenario, same_scenario_and_seed_same_stream_other_seed_other_stream)
{
    struct hc_scn s;
    two_makers(&s, 150, 2);
    s.tow_rate = 0.2;
    struct hc_scn_gen *a = gen(&s, false), *b = gen(&s, false);
    s.seed = 2;
    struct hc_scn_gen *c = gen(&s, false);
    struct hc_report ra, rb, rc;
    uint64_t n = 0, differ = 0, sessions = 0;
    while (hc_scn_gen_next(a, &ra, NULL)) {
        cr_assert_eq(hc_scn_gen_next(b, &rb, NULL), 1);
        cr_assert(memcmp(&ra, &rb, sizeof(ra)) == 0, "report %llu differs", (unsigned long long)n);
        const struct hc_scn_session *ta = hc_scn_gen_session(a), *tb = hc_scn_gen_session(b);
        cr_assert_eq(!ta, !tb);
        if (ta) {
            cr_assert(memcmp(ta, tb, sizeof(*ta)) == 0);
            sessions++;
        }
        if (hc_scn_gen_next(c, &rc, NULL))
            differ += memcmp(&ra, &rc, sizeof(ra)) != 0;
        n++;
    }
    cr_assert_eq(hc_scn_gen_next(b, &rb, NULL), 0);
    cr_assert_eq(sessions, 300);
    cr_assert_gt(differ, n / 2, "another seed gives another stream");
    hc_scn_gen_free(a);
    hc_scn_gen_free(b);
    hc_scn_gen_free(c);
}

/* Vehicle k's reports, sessions and their order are the same in a fleet of
 * 10 and one of 20. */
Test(scenario, a_vehicles_reports_do_not_depend_on_the_rest_of_the_fleet)
{
    struct hc_scn s;
    two_makers(&s, 10, 3);
    s.tow_rate = 0.3;
    struct hc_scn_gen *small = gen(&s, false);
    s.vehicles = 20;
    struct hc_scn_gen *big = gen(&s, false);
    struct hc_report a, b;
    uint64_t n = 0, others = 0;
    while (hc_scn_gen_next(small, &a, NULL)) {
        /* valid until small's next report, so across big's */
        const struct hc_scn_session *ta = hc_scn_gen_session(small);
        do {
            cr_assert_eq(hc_scn_gen_next(big, &b, NULL), 1);
            others += vehicle_of(&b) >= 10;
        } while (vehicle_of(&b) >= 10);
        cr_assert(memcmp(&a, &b, sizeof(a)) == 0, "report %llu differs", (unsigned long long)n);
        const struct hc_scn_session *tb = hc_scn_gen_session(big);
        cr_assert_eq(!ta, !tb);
        cr_assert(!ta || memcmp(ta, tb, sizeof(*ta)) == 0, "session truth differs");
        n++;
    }
    cr_assert_gt(n, 1000);
    cr_assert_gt(others, 1000);
    hc_scn_gen_free(small);
    hc_scn_gen_free(big);
}

/* ---- the stream against its truth ----------------------------------------- */

/* What the test sees of each vehicle's current session. */
struct seen {
    int64_t last_ts;
    int64_t start_ms;           /* its ignition-on report, 0: none yet */
    uint32_t night, ignitions;
    uint32_t fixes, multipath, after;
    int64_t first_after, last_before;
    double lat, lon;            /* true spot before any tow */
    double tow_lat, tow_lon;    /* true spot after it */
};

struct tally {
    uint64_t sessions, tows, tows_in_gap, fixes[2], mp[2], lost[2];
    uint64_t intervals, bad_intervals;
    double interval_sum, d2_sum, tow_sum;
    uint64_t d2_n, mp_dist_n, mp_above_median;
    double mp_min, mp_max;
};

/* Check a session's truth against what the stream showed of it. */
static void check_session(const struct hc_scn *s, const struct hc_scn_session *t,
                          struct seen *v, struct tally *y)
{
    cr_assert_eq(t->start_ms, v->start_ms);
    cr_assert_eq(t->night, v->night);
    cr_assert_eq(t->fixes, v->fixes, "fixes %u, the stream had %u", t->fixes, v->fixes);
    cr_assert_eq(t->end_ms, v->fixes ? v->last_ts : v->start_ms);
    cr_assert_eq(t->multipath_fixes, v->multipath);
    cr_assert_eq(t->after_fixes, v->after);
    y->sessions++;
    if (!t->tow_ms) {
        cr_assert(t->tow_m == 0 && t->moved_ms == 0 && t->after_fixes == 0);
        return;
    }
    y->tows++;
    y->tows_in_gap += t->tow_in_gap;
    y->tow_sum += t->tow_m;
    cr_assert(t->tow_m >= s->tow_min_m && t->tow_m <= s->tow_max_m, "tow of %f m", t->tow_m);
    cr_assert_gt(t->tow_ms, t->start_ms);
    cr_assert_lt(t->tow_ms, t->end_ms);
    cr_assert_eq(t->moved_ms, v->first_after, "moved_ms is the first report after the tow");
    cr_assert_geq(t->after_fixes, 4);
    cr_assert_geq(t->fixes - t->after_fixes, 3);
    cr_assert_lt(v->last_before, t->tow_ms, "vehicle %u night %u: last fix before %lld, tow %lld, "
                 "moved %lld, in gap %d", t->vehicle, t->night, (long long)v->last_before,
                 (long long)t->tow_ms, (long long)t->moved_ms, t->tow_in_gap);
    cr_assert_gt(t->moved_ms, t->tow_ms);
    double moved = hc_geo_haversine_m(v->lat, v->lon, v->tow_lat, v->tow_lon);
    cr_assert(fabs(moved - t->tow_m) < 1e-3, "true spots %f m apart, tow_m %f", moved, t->tow_m);
}

/* One parked fix against the model. */
static void check_fix(const struct hc_scn *s, const struct hc_report *r,
                      const struct hc_scn_fix *f, struct seen *v, struct tally *y)
{
    const struct hc_scn_maker *m = &s->makers[f->maker];
    double d = hc_geo_haversine_m(f->true_lat, f->true_lon, r->lat, r->lon);
    if (f->maker == 0) {
        int64_t iv = r->ts - v->last_ts;    /* "still" loses nothing */
        y->intervals++;
        y->interval_sum += (double)iv;
        y->bad_intervals += iv < (int64_t)(m->interval_s - m->interval_jitter_s) * 1000 ||
                            iv > (int64_t)(m->interval_s + m->interval_jitter_s) * 1000;
    }
    v->fixes++;
    y->fixes[f->maker]++;
    if (f->multipath) {
        v->multipath++;
        y->mp[f->maker]++;
        if (f->maker == 0) {        /* no drift: the distance is the displacement */
            y->mp_min = fmin(y->mp_min, d);
            y->mp_max = fmax(y->mp_max, d);
            y->mp_dist_n++;
            y->mp_above_median += d > sqrt(m->multipath_min_m * m->multipath_max_m);
        }
    } else if (f->maker == 0) {
        y->d2_sum += d * d;
        y->d2_n++;
    }
    if (f->moved) {
        if (!v->after++)
            v->first_after = r->ts;
        v->tow_lat = f->true_lat;
        v->tow_lon = f->true_lon;
    } else {
        cr_assert_eq(v->after, 0, "a fix back at the old spot after the tow");
        cr_assert(f->true_lat == v->lat && f->true_lon == v->lon);
        v->last_before = r->ts;
    }
}

/* Run s through every check; the totals in *y. */
static void run_checked(const struct hc_scn *s, struct tally *y)
{
    struct hc_scn_gen *g = gen(s, false);
    struct seen *v = calloc(s->vehicles, sizeof(*v));
    cr_assert_not_null(v);
    memset(y, 0, sizeof(*y));
    y->mp_min = INFINITY;
    struct hc_report r;
    struct hc_scn_fix f;
    int64_t prev_ts = 0;
    uint32_t prev_vehicle = 0;
    while (hc_scn_gen_next(g, &r, &f)) {
        cr_assert_eq(hc_report_check(&r), 0);
        cr_assert_eq(vehicle_of(&r), f.vehicle);
        cr_assert(r.ts > prev_ts || (r.ts == prev_ts && f.vehicle > prev_vehicle),
                  "time order, ties by vehicle number");
        prev_ts = r.ts;
        prev_vehicle = f.vehicle;
        struct seen *sv = &v[f.vehicle];
        cr_assert_gt(r.ts, sv->last_ts, "a vehicle's timestamps strictly increase");
        cr_assert_eq(r.maker_len, strlen(s->makers[f.maker].name));
        if (r.acc) {
            cr_assert(!sv->start_ms, "one ignition-on report per session, first");
            *sv = (struct seen){ .start_ms = r.ts, .night = f.night, .lat = f.true_lat,
                                 .lon = f.true_lon, .ignitions = sv->ignitions + 1 };
            cr_assert(r.lat == f.true_lat && r.lon == f.true_lon);
        } else {
            cr_assert(sv->start_ms, "a parked fix before the session's ignition-on report");
            check_fix(s, &r, &f, sv, y);
        }
        sv->last_ts = r.ts;
        const struct hc_scn_session *t = hc_scn_gen_session(g);
        if (t) {
            cr_assert_eq(t->vehicle, f.vehicle);
            check_session(s, t, sv, y);
            sv->start_ms = 0;
        }
    }
    for (uint32_t i = 0; i < s->vehicles; i++) {
        cr_assert_eq(v[i].ignitions, s->nights);
        cr_assert_eq(v[i].start_ms, 0, "every session completed");
    }
    const struct hc_scn_stats *st = hc_scn_gen_stats(g);
    cr_assert_eq(y->sessions, hc_scn_vehicle_nights(s, false));
    cr_assert_eq(st->sessions, y->sessions);
    cr_assert_eq(st->tows, y->tows);
    cr_assert_eq(st->tows_in_gap, y->tows_in_gap);
    cr_assert_eq(st->fixes, y->fixes[0] + y->fixes[1]);
    cr_assert_eq(st->multipath, y->mp[0] + y->mp[1]);
    cr_assert_eq(st->reports, st->fixes + y->sessions);
    y->lost[0] = st->maker[0].lost;
    y->lost[1] = st->maker[1].lost;
    free(v);
    hc_scn_gen_free(g);
}

/* Within k standard deviations of a binomial count's expectation. */
static void near_rate(const char *what, uint64_t hits, uint64_t n, double p, double k)
{
    double sd = sqrt((double)n * p * (1 - p));
    cr_assert(fabs((double)hits - (double)n * p) <= k * sd + 1,
              "%s: %llu of %llu, expected %.1f", what, (unsigned long long)hits,
              (unsigned long long)n, (double)n * p);
}

Test(scenario, statistics_match_the_parameters_and_the_truth_the_stream)
{
    struct hc_scn s;
    two_makers(&s, 1500, 2);
    s.tow_rate = 0.1;
    s.tow_in_gap = 0;
    s.gap_rate = 0;             /* so that lost fixes measure missing */
    struct tally y;
    run_checked(&s, &y);

    near_rate("tows", y.tows, y.sessions, s.tow_rate, 4);
    cr_assert_eq(y.tows_in_gap, 0);
    double mean_tow = y.tow_sum / (double)y.tows;
    cr_assert(fabs(mean_tow - (s.tow_min_m + s.tow_max_m) / 2) < 150, "mean tow %f", mean_tow);
    near_rate("lost", y.lost[1], y.lost[1] + y.fixes[1], s.makers[1].missing, 4);
    cr_assert_eq(y.lost[0], 0, "'still' loses nothing");

    /* Outlier fixes: events start with p on a fix not already in one and
     * last 1, 2 or 3 fixes (1 + b + b^2 on average), so a fraction
     * pE / (1 - p + pE) of fixes are outliers. */
    const struct hc_scn_maker *m = &s.makers[0];
    double p = m->multipath, b = m->multipath_burst, e = 1 + b + b * b;
    double want = p * e / (1 - p + p * e);
    uint64_t fixes = y.fixes[0] + y.fixes[1], mp = y.mp[0] + y.mp[1];
    cr_assert(fabs((double)mp / (double)fixes - want) < 0.1 * want,
              "multipath %.4f %%, expected %.4f %%", 100.0 * (double)mp / (double)fixes, 100 * want);
    cr_assert(y.mp_min >= m->multipath_min_m - 1e-6 && y.mp_max <= m->multipath_max_m + 1e-6,
              "outliers %f..%f m", y.mp_min, y.mp_max);
    near_rate("outliers above the log-uniform median", y.mp_above_median, y.mp_dist_n, 0.5, 4);

    /* Jitter: N(0, sigma) per axis, so E[d^2] = 2 sigma^2. */
    double sigma = sqrt(y.d2_sum / (double)y.d2_n / 2);
    cr_assert(fabs(sigma - m->sigma_m) < 0.02 * m->sigma_m, "sigma %f m", sigma);

    cr_assert_eq(y.bad_intervals, 0);
    double mean_iv = y.interval_sum / (double)y.intervals;
    cr_assert(fabs(mean_iv - m->interval_s * 1000.0) < 200, "mean interval %f ms", mean_iv);
}

Test(scenario, gaps_lose_fixes_and_a_short_session_gets_no_tow)
{
    struct hc_scn s;
    two_makers(&s, 300, 2);
    s.gap_rate = 0.02;
    s.tow_rate = 0.5;
    struct tally y;
    run_checked(&s, &y);
    cr_assert_gt(y.tows_in_gap, 0);
    cr_assert_gt(y.lost[0], 0, "gaps lose even the fixes of a maker that misses none");

    /* Sessions of 20-30 minutes at 10 min have at most 3 fixes: no room. */
    s.session_min_h = 0.34;
    s.session_max_h = 0.5;
    s.tow_rate = 1;
    run_checked(&s, &y);
    cr_assert_eq(y.tows, 0);
}

/* Every session towed inside a forced gap: no report between the last fix
 * before the tow and moved_ms, and that silence lasts the gap. */
Test(scenario, a_tow_in_a_gap_is_inside_a_real_gap)
{
    struct hc_scn s;
    two_makers(&s, 200, 2);
    s.tow_rate = 1;
    s.tow_in_gap = 1;
    s.gap_rate = 0;
    s.gap_min = 3;
    s.gap_max = 5;
    s.makers[1].missing = 0;
    struct tally y;
    run_checked(&s, &y);
    cr_assert_eq(y.tows, y.sessions, "every session has room for the gap");
    cr_assert_eq(y.tows_in_gap, y.tows);

    struct hc_scn_gen *g = gen(&s, false);
    int64_t *before = calloc(s.vehicles, sizeof(int64_t));
    struct hc_report r;
    struct hc_scn_fix f;
    uint64_t checked = 0;
    while (hc_scn_gen_next(g, &r, &f)) {
        if (!r.acc && !f.moved)
            before[f.vehicle] = r.ts;
        const struct hc_scn_session *t = hc_scn_gen_session(g);
        if (!t)
            continue;
        const struct hc_scn_maker *m = &s.makers[t->maker];
        int64_t shortest = (int64_t)(m->interval_s - m->interval_jitter_s) * 1000;
        /* no fix was sent between the last one before and moved_ms: the
         * slots in between are the gap, at least gap_min of them */
        cr_assert_geq(t->moved_ms - before[f.vehicle], (int64_t)(s.gap_min + 1) * shortest);
        cr_assert_geq(t->moved_ms - before[f.vehicle], 3 * (int64_t)m->interval_s * 1000);
        cr_assert(t->tow_ms > before[f.vehicle] && t->tow_ms < t->moved_ms);
        checked++;
    }
    cr_assert_eq(checked, y.sessions);
    free(before);
    hc_scn_gen_free(g);
}

/* Without losses, an ordinary tow falls between two consecutive fixes. */
Test(scenario, an_ordinary_tow_falls_between_two_consecutive_fixes)
{
    struct hc_scn s;
    two_makers(&s, 200, 1);
    s.tow_rate = 1;
    s.tow_in_gap = 0;
    s.gap_rate = 0;
    s.makers[1].missing = 0;
    struct hc_scn_gen *g = gen(&s, false);
    int64_t *before = calloc(s.vehicles, sizeof(int64_t));
    struct hc_report r;
    struct hc_scn_fix f;
    uint64_t tows = 0;
    while (hc_scn_gen_next(g, &r, &f)) {
        if (!r.acc && !f.moved)
            before[f.vehicle] = r.ts;
        const struct hc_scn_session *t = hc_scn_gen_session(g);
        if (!t || !t->tow_ms)
            continue;
        const struct hc_scn_maker *m = &s.makers[t->maker];
        cr_assert_leq(t->moved_ms - before[f.vehicle],
                      (int64_t)(m->interval_s + m->interval_jitter_s) * 1000);
        tows++;
    }
    cr_assert_eq(tows, 200);
    free(before);
    hc_scn_gen_free(g);
}

Test(scenario, the_calibration_set_has_its_own_fleet_and_no_tows)
{
    struct hc_scn s;
    two_makers(&s, 50, 1);
    s.tow_rate = 1;
    s.calibration_vehicles = 70;
    s.calibration_nights = 2;
    cr_assert_eq(hc_scn_vehicle_nights(&s, true), 140);
    struct hc_scn_gen *g = gen(&s, true);
    struct hc_report r;
    uint64_t sessions = 0;
    while (hc_scn_gen_next(g, &r, NULL)) {
        cr_assert(!memcmp(r.vid, "CAL", 3));
        const struct hc_scn_session *t = hc_scn_gen_session(g);
        if (t) {
            cr_assert_eq(t->tow_ms, 0);
            sessions++;
        }
    }
    cr_assert_eq(sessions, 140);
    char vid[16];
    cr_assert_eq(hc_scn_vid(42, true, vid), 10);
    cr_assert_str_eq(vid, "CAL0000042");
    hc_scn_vid(42, false, vid);
    cr_assert_str_eq(vid, "SIM0000042");
    hc_scn_gen_free(g);
}

/* ---- scenario files --------------------------------------------------------- */

/* The example of the format's description, comments and all. */
static const char example[] =
    "[scenario]\n"
    "name = standard\n"
    "seed = 1                    ; evaluation stream seed\n"
    "vehicles = 2500\n"
    "nights = 4                  ; each vehicle parks once per night: vehicle-nights = vehicles * nights\n"
    "start = 2026-11-02T16:00:00Z  ; first evening, UTC (ISO 8601, 'Z' required)\n"
    "arrive_spread_h = 4         ; ignition-on time uniformly within this many hours after start (+ 24 h per night)\n"
    "session_min_h = 8           ; parked session length, uniform in [min, max]\n"
    "session_max_h = 14\n"
    "tow_rate = 0.03             ; fraction of sessions with a tow\n"
    "tow_min_m = 100             ; tow distance uniform in [min, max]\n"
    "tow_max_m = 2000\n"
    "tow_in_gap = 0.25           ; fraction of tows that happen inside a reporting gap (outage)\n"
    "gap_rate = 0.004            ; probability that a parked fix starts a reporting gap\n"
    "gap_min = 3                 ; fixes lost in one gap, uniform in [min, max]\n"
    "gap_max = 12\n"
    "calibration_seed = 2        ; used with --calibration\n"
    "calibration_vehicles = 4000\n"
    "calibration_nights = 1\n"
    "\n"
    "[maker acme]                ; one section per maker, 1..16 makers\n"
    "share = 0.4                 ; fraction of the fleet (normalised over makers)\n"
    "sigma_m = 4                 ; Gaussian jitter per axis, metres\n"
    "drift_m = 0.3               ; random-walk step per fix per axis (metres), reset at each session start\n"
    "interval_s = 300            ; parked report interval\n"
    "interval_jitter_s = 20      ; each interval uniform in [interval - j, interval + j]\n"
    "missing = 0.02              ; independent probability a fix is lost\n"
    "multipath = 0.01            ; probability a fix starts a multipath outlier event\n"
    "multipath_min_m = 30        ; outlier displacement, log-uniform in [min, max]\n"
    "multipath_max_m = 400\n"
    "multipath_burst = 0.3       ; probability an outlier fix is followed by another (events last 1..3 fixes)\n";

Test(scenario, the_documented_example_gives_the_defaults)
{
    struct hc_scn s, d;
    char err[512] = "";
    cr_assert_eq(hc_scn_load(write_file("example.ini", example), &s, err, sizeof(err)), 0,
                 "%s", err);
    hc_scn_default(&d);
    d.n_makers = 1;
    hc_scn_maker_default(&d.makers[0], "acme");
    d.makers[0].share = 0.4;
    cr_assert(memcmp(&s, &d, sizeof(s)) == 0, "the example's values are the defaults");

    /* Every key has a default: one empty maker section is a scenario. */
    cr_assert_eq(hc_scn_load(write_file("empty.ini", "[maker acme]\n"), &s, err, sizeof(err)), 0,
                 "%s", err);
    d.makers[0].share = 1;
    cr_assert(memcmp(&s, &d, sizeof(s)) == 0);
}

Test(scenario, the_standard_scenario_loads)
{
    const char *root = getenv("HUBCAP_SOURCE_ROOT");
    cr_assert_not_null(root, "set HUBCAP_SOURCE_ROOT to the source tree");
    char path[512], err[512] = "";
    snprintf(path, sizeof(path), "%s/bench/scenarios/standard.ini", root);
    struct hc_scn s;
    cr_assert_eq(hc_scn_load(path, &s, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(s.name, "standard");
    cr_assert_geq(hc_scn_vehicle_nights(&s, false), 10000);
    cr_assert_eq(s.n_makers, 3);
    cr_assert_gt(s.tow_in_gap, 0);
    cr_assert_gt(s.gap_rate, 0);
}

/* The error a file gets, or "" when it loads. */
static const char *load_error(const char *text)
{
    static char err[600];
    struct hc_scn s;
    err[0] = '\0';
    int rc = hc_scn_load(write_file("bad.ini", text), &s, err, sizeof(err));
    cr_assert(rc == 0 || rc == HC_ECONFIG, "rc %d", rc);
    cr_assert_eq(rc == 0, err[0] == '\0', "rc %d with '%s'", rc, err);
    /* the path is the test's temporary one: return what follows it */
    const char *p = strstr(err, "bad.ini");
    return p ? p : err;
}

Test(scenario, bad_files_are_refused_naming_file_line_key_and_range)
{
#define BAD(body, want) cr_assert_str_eq(load_error(body), want)
    BAD("[scenario]\nvehicels = 3\n[maker a]\n",
        "bad.ini:2: unknown key 'vehicels' in [scenario]; the keys are: name, seed, vehicles, "
        "nights, start, arrive_spread_h, session_min_h, session_max_h, tow_rate, tow_min_m, "
        "tow_max_m, tow_in_gap, gap_rate, gap_min, gap_max, calibration_seed, "
        "calibration_vehicles, calibration_nights");
    BAD("[scenario]\n\nvehicles = abc\n[maker a]\n",
        "bad.ini:3: vehicles wants a whole number from 1 to 10000000, not 'abc'");
    BAD("[scenario]\nvehicles = 10000001\n[maker a]\n",
        "bad.ini:2: vehicles wants a whole number from 1 to 10000000, not '10000001'");
    BAD("[scenario]\ntow_rate = 1.5\n[maker a]\n",
        "bad.ini:2: tow_rate wants a number from 0 to 1, not '1.5'");
    BAD("[scenario]\nseed = -1\n[maker a]\n",
        "bad.ini:2: seed wants a whole number from 0 to 18446744073709551615, not '-1'");
    BAD("[scenario]\nstart = 2026-11-02T16:00:00\n[maker a]\n",
        "bad.ini:2: start wants a UTC time such as 2026-11-02T16:00:00Z, from "
        "1970-01-01T00:00:00Z to 2199-12-31T23:59:59Z, not '2026-11-02T16:00:00'");
    BAD("[scenario]\nstart = 2026-11-31T16:00:00Z\n[maker a]\n",
        "bad.ini:2: start wants a UTC time such as 2026-11-02T16:00:00Z, from "
        "1970-01-01T00:00:00Z to 2199-12-31T23:59:59Z, not '2026-11-31T16:00:00Z'");
    BAD("[scenario]\nsession_min_h = 15\n[maker a]\n",
        "bad.ini:2: session_min_h (15) must not exceed session_max_h (14)");
    BAD("[scenario]\ngap_max = 2\n[maker a]\n", "bad.ini:2: gap_min (3) must not exceed gap_max (2)");
    BAD("[scenario]\nsession_max_h = 21\n[maker a]\n",
        "bad.ini:2: arrive_spread_h + session_max_h (4 + 21) must be less than 24, so that every "
        "session ends before the next night's arrival");
    BAD("[scenario]\nseed = 1\nseed = 2\n[maker a]\n",
        "bad.ini:3: seed is given twice in [scenario] (first on line 2)");
    BAD("[scenario]\n[scenario]\n[maker a]\n", "bad.ini:2: [scenario] appears twice (first on line 1)");
    BAD("[maker a]\n[maker b]\n[maker a]\n", "bad.ini:3: [maker a] appears twice (first on line 1)");
    BAD("[scenery]\n[maker a]\n",
        "bad.ini:1: unknown section [scenery]: the sections are [scenario] and [maker NAME]");
    BAD("[maker a b]\n", "bad.ini:1: maker name 'a b' wants 1 to 32 letters, digits, '.', '_' or '-'");
    BAD("[maker]\n", "bad.ini:1: maker name '' wants 1 to 32 letters, digits, '.', '_' or '-'");
    BAD("[maker a]\ninterval_s = 60\ninterval_jitter_s = 60\n",
        "bad.ini:3: [maker a] interval_jitter_s (60) must be less than interval_s (60)");
    BAD("[maker a]\nmultipath_min_m = 500\n",
        "bad.ini:2: [maker a] multipath_min_m (500) must not exceed multipath_max_m (400)");
    BAD("[maker a]\nsigma = 4\n",
        "bad.ini:2: unknown key 'sigma' in [maker a]; the keys are: share, sigma_m, drift_m, "
        "interval_s, interval_jitter_s, missing, multipath, multipath_min_m, multipath_max_m, "
        "multipath_burst");
    BAD("[maker a]\nshare = 0\n", "bad.ini: every maker has share 0: give at least one a share above 0");
    BAD("seed = 1\n[maker a]\n",
        "bad.ini:1: 'seed' is outside any section: put it under [scenario] or [maker NAME]");
    BAD("[scenario]\nseed 1\n[maker a]\n", "bad.ini:2: expected '[section]' or 'key = value'");
    BAD("[scenario]\n", "bad.ini: no makers: give 1 to 16 [maker NAME] sections");
    BAD("[scenario]\nname = \n[maker a]\n", "bad.ini:2: name wants 1 to 64 printable ASCII characters, not ''");
    /* an indented key is an error, not a continuation of the line above */
    BAD("[scenario]\nseed = 1\n  seed = 2\n[maker a]\n",
        "bad.ini:3: seed is given twice in [scenario] (first on line 2)");
    BAD("[scenario]\nseed = 1 # a comment\n[maker a]\n",
        "bad.ini:2: seed wants a whole number from 0 to 18446744073709551615, not '1 # a comment'");
    char many[2048] = "";
    for (int i = 0; i <= HC_SCN_MAKERS_MAX; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "[maker m%d]\n", i);
    BAD(many, "bad.ini:17: too many makers: at most 16");
#undef BAD
    struct hc_scn s;
    char err[256];
    cr_assert_eq(hc_scn_load(path_in("missing.ini"), &s, err, sizeof(err)), -ENOENT);
    cr_assert(strstr(err, "cannot open") && strstr(err, "missing.ini"), "%s", err);
}

Test(scenario, check_refuses_a_scenario_built_in_code_as_the_loader_would)
{
    struct hc_scn s;
    struct hc_scn_gen *g = NULL;
    char err[256];
    hc_scn_default(&s);
    cr_assert_eq(hc_scn_check(&s, err, sizeof(err)), HC_ECONFIG, "no makers");
    cr_assert_str_eq(err, "0 makers: give 1 to 16 [maker NAME] sections");
    cr_assert_eq(hc_scn_gen_new(&s, false, &g), -EINVAL);
    two_makers(&s, 10, 1);
    cr_assert_eq(hc_scn_check(&s, err, sizeof(err)), 0);
    s.makers[1].missing = -0.1;
    cr_assert_eq(hc_scn_check(&s, err, sizeof(err)), HC_ECONFIG);
    cr_assert_str_eq(err, "[maker lossy] missing wants a number from 0 to 1");
    s.makers[1].missing = 0;
    snprintf(s.makers[1].name, sizeof(s.makers[1].name), "still");
    cr_assert_eq(hc_scn_check(&s, err, sizeof(err)), HC_ECONFIG);
    cr_assert_str_eq(err, "maker 'still' is given twice");
    s.vehicles = 0;
    cr_assert_eq(hc_scn_check(&s, NULL, 0), HC_ECONFIG);
}

/* ---- hubcap-sim --scenario ------------------------------------------------- */

/* hubcap-sim with args (NULL-terminated), its output captured. */
static struct prog_run run_sim(const char *const *args)
{
    return prog_run("HUBCAP_SIM", args, NULL, dir);
}

#define SIM(...) run_sim((const char *const[]){ __VA_ARGS__, NULL })


static const char small_ini[] =
    "[scenario]\nname = small\nvehicles = 40\nnights = 2\ntow_rate = 0.3\n"
    "[maker acme]\nshare = 2\n[maker cobalt]\nsigma_m = 15\ninterval_s = 900\n"
    "interval_jitter_s = 60\nmissing = 0.08\n";

TestSuite(scenario_tool, .init = make_dir, .fini = remove_dir, .timeout = 120);

Test(scenario_tool, same_file_and_seed_give_identical_bytes)
{
    const char *ini = write_file("small.ini", small_ini);
    const char *s1 = path_in("a.msgpack"), *t1 = path_in("a.csv");
    const char *s2 = path_in("b.msgpack"), *t2 = path_in("b.csv");
    const char *s3 = path_in("c.msgpack"), *t3 = path_in("c.csv");
    struct prog_run a = SIM("--scenario", ini, "--stream", s1, "--truth", t1, "-q");
    struct prog_run b = SIM("--scenario", ini, "--stream", s2, "--truth", t2, "-q");
    struct prog_run c = SIM("--scenario", ini, "--stream", s3, "--truth", t3, "-q", "--seed", "9");
    cr_assert(a.status == 0 && b.status == 0 && c.status == 0, "%s%s%s", a.err, b.err, c.err);
    size_t la, lb, lc;
    char *fa = slurp_file(s1, &la), *fb = slurp_file(s2, &lb), *fc = slurp_file(s3, &lc);
    cr_assert(la == lb && memcmp(fa, fb, la) == 0, "streams differ");
    cr_assert(la != lc || memcmp(fa, fc, la) != 0, "another seed, the same stream");
    free(fa);
    free(fb);
    free(fc);
    fa = slurp_file(t1, &la);
    fb = slurp_file(t2, &lb);
    fc = slurp_file(t3, &lc);
    cr_assert(la == lb && memcmp(fa, fb, la) == 0, "truth files differ");
    cr_assert(strstr(fc, "# seed: 9\n"));
    free(fa);
    free(fb);
    free(fc);
    prog_run_free(&a);
    prog_run_free(&b);
    prog_run_free(&c);
}

/* The stream decodes frame by frame into exactly the generator's reports,
 * and the truth file holds its sessions in the order they completed. */
Test(scenario_tool, stream_and_truth_hold_the_generators_reports_and_sessions)
{
    const char *ini = write_file("small.ini", small_ini);
    const char *stream = path_in("s.msgpack"), *truth = path_in("t.csv");
    struct prog_run o = SIM("--scenario", ini, "--stream", stream, "--truth", truth, "--batch",
                           "7", "--vehicles", "25", "--json");
    cr_assert_eq(o.status, 0, "%s", o.err);
    json_t *j = json_loads(o.out, 0, NULL);
    cr_assert_not_null(j, "not JSON: %s", o.out);

    struct hc_scn s;
    char err[512];
    cr_assert_eq(hc_scn_load(ini, &s, err, sizeof(err)), 0, "%s", err);
    s.vehicles = 25;
    struct hc_scn_gen *g = gen(&s, false);

    size_t len, at = 0;
    unsigned char *buf = (unsigned char *)slurp_file(stream, &len);
    char *csv = slurp_file(truth, NULL);
    char *line = csv, *nl;
    const char *header = "vid,maker,night,start_ms,end_ms,fixes,tow_m,tow_ms,moved_ms,"
                         "after_fixes,multipath_fixes";
    cr_assert(!strncmp(csv, "# ", 2));
    cr_assert(strstr(csv, "# scenario: small\n") && strstr(csv, "# seed: 1\n") &&
              strstr(csv, "# calibration: no\n") && strstr(csv, ini));
    while (*line == '#')
        line = strchr(line, '\n') + 1;
    nl = strchr(line, '\n');
    cr_assert(nl && (size_t)(nl - line) == strlen(header) && !strncmp(line, header, strlen(header)));
    line = nl + 1;

    struct hc_wire w;
    struct hc_report got, want;
    uint64_t reports = 0, frames = 0, sessions = 0;
    hc_wire_init(&w);
    while (at < len) {
        cr_assert_leq(at + 4, len);
        uint32_t n = hc_wire_frame_length(buf + at);
        cr_assert_leq(at + 4 + n, len);
        cr_assert_eq(hc_wire_open(&w, buf + at + 4, n), 0);
        uint32_t in_frame = 0;
        while (hc_wire_next(&w, &got) == 1) {
            cr_assert_eq(hc_scn_gen_next(g, &want, NULL), 1);
            cr_assert(memcmp(&got, &want, sizeof(got)) == 0, "report %llu",
                      (unsigned long long)reports);
            const struct hc_scn_session *t = hc_scn_gen_session(g);
            if (t) {
                char expect[256], vid[16];
                hc_scn_vid(t->vehicle, false, vid);
                snprintf(expect, sizeof(expect), "%s,%s,%u,%lld,%lld,%u,%.2f,%lld,%lld,%u,%u\n",
                         vid, s.makers[t->maker].name, t->night, (long long)t->start_ms,
                         (long long)t->end_ms, t->fixes, t->tow_m, (long long)t->tow_ms,
                         (long long)t->moved_ms, t->after_fixes, t->multipath_fixes);
                cr_assert(!strncmp(line, expect, strlen(expect)), "truth line %llu: %.80s",
                          (unsigned long long)sessions, line);
                line += strlen(expect);
                sessions++;
            }
            reports++;
            in_frame++;
        }
        cr_assert(in_frame >= 1 && in_frame <= 7);
        frames++;
        at += 4 + n;
    }
    cr_assert_eq(hc_scn_gen_next(g, &want, NULL), 0, "the stream ends with the generator");
    cr_assert_eq(*line, '\0');
    cr_assert_eq(sessions, 50);
    cr_assert_eq(json_integer_value(json_object_get(j, "reports")), (json_int_t)reports);
    cr_assert_eq(json_integer_value(json_object_get(j, "frames")), (json_int_t)frames);
    cr_assert_eq(json_integer_value(json_object_get(j, "bytes")), (json_int_t)len);
    cr_assert_eq(json_integer_value(json_object_get(j, "vehicle_nights")), 50);
    cr_assert_eq(json_integer_value(json_object_get(j, "tows")),
                 (json_int_t)hc_scn_gen_stats(g)->tows);
    cr_assert_eq(json_array_size(json_object_get(j, "makers")), 2);
    hc_wire_free(&w);
    hc_scn_gen_free(g);
    json_decref(j);
    free(buf);
    free(csv);
    prog_run_free(&o);
}

Test(scenario_tool, calibration_writes_the_calibration_set)
{
    const char *ini = write_file("small.ini", small_ini);
    const char *truth = path_in("cal.csv");
    struct prog_run o = SIM("--scenario", ini, "--calibration", "--stream", path_in("cal.msgpack"),
                           "--truth", truth, "--vehicles", "30", "--seed", "5", "--json");
    cr_assert_eq(o.status, 0, "%s", o.err);
    char *csv = slurp_file(truth, NULL);
    cr_assert(strstr(csv, "# calibration: yes\n") && strstr(csv, "# seed: 5\n"));
    cr_assert(strstr(csv, "\nCAL0000029,") && !strstr(csv, "\nSIM"));
    json_t *j = json_loads(o.out, 0, NULL);
    cr_assert_not_null(j);
    cr_assert_eq(json_integer_value(json_object_get(j, "vehicle_nights")), 30); /* 1 night */
    cr_assert_eq(json_integer_value(json_object_get(j, "tows")), 0);
    cr_assert(json_is_true(json_object_get(j, "calibration")));
    json_decref(j);
    free(csv);
    prog_run_free(&o);
}

Test(scenario_tool, errors_say_what_is_wrong_with_the_right_status)
{
    const char *ini = write_file("small.ini", small_ini);
    const char *bad = write_file("bad.ini", "[scenario]\nnights = 0\n[maker a]\n");
    struct prog_run o = SIM("--scenario", ini);
    cr_assert_eq(o.status, 2);
    cr_assert(strstr(o.err, "--stream"), "%s", o.err);
    prog_run_free(&o);
    o = SIM("--scenario", ini, "--stream", path_in("x"), "--batch", "0");
    cr_assert_eq(o.status, 2);
    cr_assert(strstr(o.err, "--batch wants a whole number from 1 to 10000"), "%s", o.err);
    prog_run_free(&o);
    o = SIM("--scenario", ini, "--stream", path_in("x"), "--window", "8");
    cr_assert_eq(o.status, 2, "the replay's options are not scenario mode's");
    prog_run_free(&o);
    o = SIM("--scenario", bad, "--stream", path_in("x"));
    cr_assert_eq(o.status, 1);
    cr_assert(strstr(o.err, "bad.ini:2: nights wants a whole number from 1 to 1000, not '0'"),
              "%s", o.err);
    prog_run_free(&o);
    o = SIM("--scenario", ini, "--stream", path_in("no/such/dir/x"));
    cr_assert_eq(o.status, 1);
    cr_assert(strstr(o.err, "cannot write"), "%s", o.err);
    prog_run_free(&o);
    /* the summary moves to standard error when the stream takes stdout */
    o = SIM("--scenario", ini, "--stream", "-", "--vehicles", "3");
    cr_assert_eq(o.status, 0, "%s", o.err);
    cr_assert(strstr(o.err, "vehicle-nights") && !strstr(o.out, "vehicle-nights"));
    cr_assert_eq(hc_wire_frame_length((const uint8_t *)o.out) > 0, 1);
    prog_run_free(&o);
}
