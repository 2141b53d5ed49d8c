/*
 * test_detect.c — the detection rules of DESIGN.md with their defaults
 * (W 16, N1 10, N2 15, unknown maker 100 m).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubcap/detect.h"
#include "hubcap/error.h"
#include "hubcap/geo.h"
#include "hubcap/sim.h"

#define LAT 22.543
#define LON 114.058

static struct hc_detector det;
static struct hc_vehicle *veh;
static int64_t now;
static int alarms;
static struct hc_alarm last;

static void setup(void)
{
    struct hc_detect_config c;
    hc_detect_config_default(&c);
    c.rule = HC_RULE_SEED;      /* these tests pin the seed rule */
    cr_assert_eq(hc_detector_init(&det, &c), 0);
    cr_assert_geq(hc_detector_set_threshold(&det, "acme", 4, 35.0), 0);
    veh = malloc(hc_vehicle_size(&det));
    hc_vehicle_init(&det, veh);
    now = 1795000000000LL;
    alarms = 0;
}

static void teardown(void)
{
    free(veh);
    hc_detector_free(&det);
}

TestSuite(detect, .init = setup, .fini = teardown);

static int report_full(const char *maker, double lat, double lon, int acc)
{
    struct hc_report r;
    memset(&r, 0, sizeof(r));
    r.ts = (now += 300000);
    r.lat = lat;
    r.lon = lon;
    r.acc = (uint8_t)acc;
    r.vid_len = 6;
    memcpy(r.vid, "CAR-01", 6);
    r.maker_len = (uint8_t)strlen(maker);
    memcpy(r.maker, maker, r.maker_len);
    int rc = hc_detect_step(&det, veh, &r, &last);
    if (rc == HC_DETECT_ALARM)
        alarms++;
    return rc;
}

/* A parked fix near (lat, lon): a few meters of deterministic jitter. */
static int fix_at(double lat, double lon, int i)
{
    double la, lo;
    hc_sim_offset(lat, lon, 2.0 + (i % 3), i * 2.1, &la, &lo);
    return report_full("acme", la, lo, 0);
}

static void park(int n)
{
    for (int i = 0; i < n; i++)
        cr_assert_eq(fix_at(LAT, LON, i), 0);
}

/* A spot `meters` north of the parking spot. */
static void moved(double meters, double *lat, double *lon)
{
    hc_sim_offset(LAT, LON, meters, 0.0, lat, lon);
}

Test(detect, defaults_are_the_design_ones)
{
    cr_assert_eq(det.cfg.window, 16);
    cr_assert_eq(det.cfg.n1, 10);
    cr_assert_eq(det.cfg.n2, 15);
    cr_assert_eq(det.cfg.default_threshold_m, 100.0);
}

Test(detect, single_stray_never_alarms)
{
    double la, lo;
    park(16);
    moved(300, &la, &lo);
    cr_assert_eq(report_full("acme", la, lo, 0), 0);
    /* The stray stays in the window for 15 more fixes: still no alarm. */
    for (int i = 0; i < 30; i++)
        cr_assert_eq(fix_at(LAT, LON, i), 0);
    cr_assert_eq(alarms, 0);
}

Test(detect, two_fixes_after_a_real_move_alarm)
{
    double la, lo;
    park(16);
    moved(300, &la, &lo);
    cr_assert_eq(report_full("acme", la, lo, 0), 0);
    cr_assert_eq(fix_at(la, lo, 1), HC_DETECT_ALARM);
    cr_assert_eq(alarms, 1);
    /* 2 new fixes x 14 old ones. */
    cr_assert_eq(last.exceeding_pairs, 28);
    cr_assert_eq(last.window_len, 16);
    cr_assert_str_eq(last.vid, "CAR-01");
    cr_assert_str_eq(last.maker, "acme");
    cr_assert_float_eq(last.threshold_m, 35.0, 1e-9);
    cr_assert(last.max_distance_m > 295 && last.max_distance_m < 306,
              "max distance %f", last.max_distance_m);
    /* Parked = first fix of the session; latest = the alarming report. */
    cr_assert_lt(hc_geo_haversine_m(last.parked_lat, last.parked_lon, LAT, LON), 5);
    cr_assert_lt(hc_geo_haversine_m(last.latest_lat, last.latest_lon, la, lo), 5);
    cr_assert_eq(last.parked_ts, 1795000000000LL + 300000);
    cr_assert_eq(last.latest_ts, now);
}

Test(detect, ignition_on_ends_the_session)
{
    double la, lo;
    park(16);
    moved(300, &la, &lo);
    cr_assert_eq(report_full("acme", la, lo, 0), 0);
    cr_assert_eq(report_full("acme", la, lo, 1), 0);     /* driver is back */
    cr_assert_eq(hc_vehicle_window(veh)->len, 0);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(fix_at(la, lo, i), 0);
    cr_assert_eq(alarms, 0);
}

Test(detect, alarm_switch_off_silences_and_on_starts_afresh)
{
    double la, lo;
    hc_vehicle_set_alarm(veh, false);
    park(16);
    moved(300, &la, &lo);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(fix_at(la, lo, i), 0);     /* staff moving the car */
    hc_vehicle_set_alarm(veh, true);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(fix_at(la, lo, i), 0);     /* its new spot is the baseline */
    cr_assert_eq(alarms, 0);
    /* A real tow after that is reported. */
    double la2, lo2;
    hc_sim_offset(la, lo, 500, 1.0, &la2, &lo2);
    cr_assert_eq(fix_at(la2, lo2, 0), 0);
    cr_assert_eq(fix_at(la2, lo2, 1), HC_DETECT_ALARM);
}

Test(detect, fewer_than_n1_positions_never_alarm)
{
    double la, lo;
    park(5);
    moved(300, &la, &lo);
    /* 5 here + 4 there: 20 exceeding pairs > N2, but only 9 positions. */
    for (int i = 0; i < 4; i++)
        cr_assert_eq(fix_at(la, lo, i), 0);
    cr_assert_eq(hc_vehicle_window(veh)->pairs, 20);
    /* The 10th position: 5 x 5 = 25 pairs and N1 reached. */
    cr_assert_eq(fix_at(la, lo, 4), HC_DETECT_ALARM);
    cr_assert_eq(last.exceeding_pairs, 25);
}

Test(detect, one_alarm_per_parking_session)
{
    double la, lo;
    park(16);
    moved(300, &la, &lo);
    cr_assert_eq(fix_at(la, lo, 0), 0);
    cr_assert_eq(fix_at(la, lo, 1), HC_DETECT_ALARM);
    double la2, lo2;
    hc_sim_offset(la, lo, 800, 2.0, &la2, &lo2);
    for (int i = 0; i < 40; i++)
        fix_at(i < 20 ? la : la2, i < 20 ? lo : lo2, i);
    cr_assert_eq(alarms, 1);
    /* A new session can raise a new alarm. */
    cr_assert_eq(report_full("acme", LAT, LON, 1), 0);
    park(16);
    cr_assert_eq(fix_at(la, lo, 0), 0);
    cr_assert_eq(fix_at(la, lo, 1), HC_DETECT_ALARM);
    cr_assert_eq(alarms, 2);
}

Test(detect, unknown_maker_uses_default_threshold)
{
    double la, lo;
    moved(60, &la, &lo);
    /* 60 m is under the 100 m default ... */
    for (int i = 0; i < 16; i++)
        cr_assert_eq(report_full("", LAT, LON, 0), 0);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(report_full("zenith", la, lo, 0), 0);
    cr_assert_eq(alarms, 0);
    cr_assert_float_eq(hc_detector_maker_at(&det, (unsigned)hc_detector_maker(&det, "zenith", 6))->threshold_m,
                       100.0, 0);
    /* ... and over acme's 35 m. */
    cr_assert_eq(report_full("acme", la, lo, 1), 0);
    for (int i = 0; i < 16; i++)
        report_full("acme", LAT, LON, 0);
    cr_assert_eq(report_full("acme", la, lo, 0), 0);
    cr_assert_eq(report_full("acme", la, lo, 0), HC_DETECT_ALARM);
}

Test(detect, threshold_change_applies_to_the_next_report)
{
    double la, lo;
    moved(60, &la, &lo);
    cr_assert_geq(hc_detector_set_threshold(&det, "acme", 4, 100.0), 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(report_full("acme", LAT, LON, 0), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(report_full("acme", la, lo, 0), 0);
    cr_assert_eq(hc_vehicle_window(veh)->pairs, 0);
    /* Lower the threshold: the next report recounts, 8 x 4 = 32 > 15. */
    cr_assert_geq(hc_detector_set_threshold(&det, "acme", 4, 35.0), 0);
    cr_assert_eq(report_full("acme", la, lo, 0), HC_DETECT_ALARM);
    cr_assert_eq(last.exceeding_pairs, 32);
    cr_assert_float_eq(last.threshold_m, 35.0, 0);
}

Test(detect, unset_threshold_and_default_change)
{
    cr_assert_eq(hc_detector_unset_threshold(&det, "acme", 4), 0);
    int e = hc_detector_maker(&det, "acme", 4);
    cr_assert_float_eq(hc_detector_maker_at(&det, (unsigned)e)->threshold_m, 100.0, 0);
    cr_assert_eq(hc_detector_set_default(&det, 250.0), 0);
    cr_assert_float_eq(hc_detector_maker_at(&det, (unsigned)e)->threshold_m, 250.0, 0);
    cr_assert_eq(hc_detector_unset_threshold(&det, "nobody", 6), -ENOENT);
}

Test(detect, bad_thresholds_are_refused_and_change_nothing)
{
    double bad[] = { 0.0, -5.0, NAN, INFINITY, 3e7 };
    uint32_t gen = det.gen;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(hc_detector_set_threshold(&det, "acme", 4, bad[i]), HC_ETHRESHOLD);
        cr_assert_eq(hc_detector_set_default(&det, bad[i]), HC_ETHRESHOLD);
    }
    cr_assert_eq(det.gen, gen);
    int e = hc_detector_maker(&det, "acme", 4);
    cr_assert_float_eq(hc_detector_maker_at(&det, (unsigned)e)->threshold_m, 35.0, 0);
    char longname[40];
    memset(longname, 'x', sizeof(longname));
    cr_assert_eq(hc_detector_set_threshold(&det, longname, 33, 10), HC_EMAKER);
}

Test(detect, stale_and_invalid_reports_are_rejected_without_effect)
{
    park(3);
    struct hc_report r;
    memset(&r, 0, sizeof(r));
    r.vid_len = 1;
    r.vid[0] = 'x';
    r.ts = now;                         /* not newer than the last */
    r.lat = LAT;
    r.lon = LON;
    cr_assert_eq(hc_detect_step(&det, veh, &r, NULL), HC_ESTALE);
    r.ts = now + 1;
    r.lat = 91;
    cr_assert_eq(hc_detect_step(&det, veh, &r, NULL), HC_ERANGE_LAT);
    r.lat = LAT;
    r.lon = NAN;
    cr_assert_eq(hc_detect_step(&det, veh, &r, NULL), HC_ERANGE_LON);
    r.lon = LON;
    r.ts = -1;
    cr_assert_eq(hc_detect_step(&det, veh, &r, NULL), HC_ERANGE_TS);
    r.ts = now + 1;
    r.vid_len = 0;
    cr_assert_eq(hc_detect_step(&det, veh, &r, NULL), HC_EVID);
    cr_assert_eq(hc_vehicle_window(veh)->len, 3);
    cr_assert_eq(veh->last_ts, now);
    cr_assert_str_neq(hc_strerror(HC_ESTALE), "");
    cr_assert_str_eq(hc_strerror(-ENOENT), "No such file or directory");
}

Test(detect, config_is_validated)
{
    struct hc_detect_config c;
    hc_detect_config_default(&c);
    cr_assert_eq(hc_detect_config_check(&c), 0);
    c.window = 65;
    cr_assert_eq(hc_detect_config_check(&c), HC_ECONFIG);
    c.window = 16;
    c.n1 = 17;
    cr_assert_eq(hc_detect_config_check(&c), HC_ECONFIG);
    c.n1 = 10;
    c.n2 = 120;                          /* 16*15/2 pairs: can never exceed */
    cr_assert_eq(hc_detect_config_check(&c), HC_ECONFIG);
    c.n2 = 15;
    c.default_threshold_m = -1;
    cr_assert_eq(hc_detect_config_check(&c), HC_ETHRESHOLD);
    c.default_threshold_m = 100;

    /* The robust rule: at least 4 after, and its positions must fit the
     * window when it is the default; a seed-only detector may be small. */
    c.robust_after = 3;
    cr_assert_eq(hc_detect_config_check(&c), HC_ECONFIG);
    c.robust_after = 4;
    c.window = 6;
    c.n1 = 6;
    c.n2 = 5;
    cr_assert_eq(hc_detect_config_check(&c), HC_ECONFIG);
    c.rule = HC_RULE_SEED;
    cr_assert_eq(hc_detect_config_check(&c), 0);
    struct hc_detector small;
    cr_assert_eq(hc_detector_init(&small, &c), 0);
    cr_assert_eq(hc_detector_set_rule(&small, "acme", 4, HC_RULE_ROBUST), HC_ECONFIG,
                 "no room for the robust rule in a window of 6");
    cr_assert_eq(hc_detector_set_rule(&small, NULL, 0, HC_RULE_ROBUST), HC_ECONFIG);
    cr_assert_geq(hc_detector_set_rule(&small, "acme", 4, HC_RULE_SEED), 0);
    hc_detector_free(&small);
    c.robust_share = 0;
    c.window = 16;
    c.n2 = 15;
    cr_assert_eq(hc_detect_config_check(&c), HC_ECONFIG);
    c.robust_share = 0.8;
    c.robust_far = 0.5;
    cr_assert_eq(hc_detect_config_check(&c), HC_ECONFIG);
}

Test(detect, maker_table_is_bounded)
{
    char name[16];
    int full = 0;
    for (int i = 0; i < HC_MAKERS_MAX + 10; i++) {
        int len = snprintf(name, sizeof(name), "m%d", i);
        int e = hc_detector_maker(&det, name, (size_t)len);
        if (e == HC_EFULL)
            full++;
        else
            cr_assert_geq(e, 0);
    }
    cr_assert_gt(full, 0);
    cr_assert_eq(det.n_makers, HC_MAKERS_MAX);
    /* Reports naming yet another maker keep working, on the vehicle's own. */
    park(3);
    cr_assert_eq(report_full("overflow", LAT, LON, 0), 0);
    cr_assert_eq(det.makers_overflow, 1);
    cr_assert_str_eq(hc_detector_maker_at(&det, veh->maker)->name, "acme");
}

/* ---- the robust rule ---------------------------------------------------
 * The same vehicle helpers, acme at 35 m, the robust rule by default.
 * Each test that contrasts the rules replays its session on a second
 * vehicle with acme switched to the seed rule. */

static void setup_robust(void)
{
    setup();
    cr_assert_eq(hc_detector_set_rule(&det, NULL, 0, HC_RULE_ROBUST), 0);
}

TestSuite(robust, .init = setup_robust, .fini = teardown);

/* A position `meters` from the parking spot at bearing b. */
static void spot(double meters, double b, double *lat, double *lon)
{
    hc_sim_offset(LAT, LON, meters, b, lat, lon);
}

/* Start the vehicle afresh (a new parking session, no alarms counted) and
 * switch acme to rule. */
static void restart_with(enum hc_rule rule)
{
    hc_vehicle_init(&det, veh);
    alarms = 0;
    cr_assert_geq(hc_detector_set_rule(&det, "acme", 4, rule), 0);
}

/* Scattered strays: a burst of three in a row, 300, 250 and 400 m out in
 * directions far apart, so no two are within 35 m of each other. */
static void stray_burst(int n)
{
    static const double dist[] = { 300, 250, 400 }, bearing[] = { 0.0, 2.0, 4.0 };
    for (int i = 0; i < n; i++) {
        double la, lo;
        spot(dist[i], bearing[i], &la, &lo);
        report_full("acme", la, lo, 0);
    }
}

Test(robust, defaults)
{
    struct hc_detect_config c;
    hc_detect_config_default(&c);
    cr_assert_eq(c.rule, HC_RULE_ROBUST);
    cr_assert_eq(c.robust_after, 4);
    cr_assert_eq(c.robust_before, 3);
    cr_assert_float_eq(c.robust_share, 0.8, 1e-12);
    cr_assert_float_eq(c.robust_tight, 0.25, 1e-12);
    cr_assert_float_eq(c.robust_far, 4.0, 1e-12);
    cr_assert_str_eq(hc_rule_name(HC_RULE_SEED), "seed");
    cr_assert_str_eq(hc_rule_name(HC_RULE_ROBUST), "robust");
    enum hc_rule r;
    cr_assert_eq(hc_rule_parse("seed", 4, &r), 0);
    cr_assert_eq(r, HC_RULE_SEED);
    cr_assert_eq(hc_rule_parse("robust", 6, &r), 0);
    cr_assert_eq(r, HC_RULE_ROBUST);
    cr_assert_eq(hc_rule_parse("robus", 5, &r), HC_ECONFIG);
    cr_assert_eq(hc_rule_parse("Seed", 4, &r), HC_ECONFIG);
}

Test(robust, a_tow_alarms_on_the_second_fix_at_the_new_spot)
{
    double la, lo;
    park(16);
    spot(300, 1.0, &la, &lo);
    cr_assert_eq(fix_at(la, lo, 0), 0);
    cr_assert_eq(fix_at(la, lo, 1), HC_DETECT_ALARM);
    cr_assert_str_eq(last.maker, "acme");
    cr_assert_float_eq(last.threshold_m, 35.0, 1e-9);
    cr_assert_lt(hc_geo_haversine_m(last.latest_lat, last.latest_lon, la, lo), 5);
    cr_assert_lt(hc_geo_haversine_m(last.parked_lat, last.parked_lon, LAT, LON), 5);
}

Test(robust, bursts_of_two_or_three_strays_never_alarm)
{
    for (int burst = 2; burst <= 3; burst++) {
        restart_with(HC_RULE_ROBUST);
        park(16);
        stray_burst(burst);
        park(20);
        cr_assert_eq(alarms, 0, "robust, a burst of %d", burst);

        /* The seed rule counts 2 x 14 pairs > 15: a false alarm. */
        restart_with(HC_RULE_SEED);
        park(16);
        stray_burst(burst);
        cr_assert_eq(alarms, 1, "seed, a burst of %d", burst);
    }
}

/* Slow drift: 5 m a fix in one direction, so a window of 16 spans 75 m,
 * twice the threshold, but never jumps. */
static void drift(int n)
{
    for (int i = 0; i < n; i++) {
        double la, lo;
        spot(5.0 * i, 0.5, &la, &lo);
        report_full("acme", la, lo, 0);
    }
}

Test(robust, slow_drift_never_alarms)
{
    drift(60);
    cr_assert_eq(alarms, 0);
    restart_with(HC_RULE_SEED);
    drift(60);
    cr_assert_eq(alarms, 1, "the seed rule counts the far ends of the drift");
}

Test(robust, a_short_tow_soon_after_parking_alarms_on_the_third_fix)
{
    /* Three fixes parked, then 80 m (a car moved round the corner): past
     * the threshold but not 4 thresholds, so a third fix confirms it. */
    double la, lo;
    park(3);
    spot(80, 2.5, &la, &lo);
    cr_assert_eq(fix_at(la, lo, 0), 0);
    cr_assert_eq(fix_at(la, lo, 1), 0);
    cr_assert_eq(fix_at(la, lo, 2), HC_DETECT_ALARM);

    /* The seed rule waits for N1 = 10 positions and 3 x 6 > 15 pairs. */
    restart_with(HC_RULE_SEED);
    park(3);
    int delay = 0;
    while (alarms == 0 && delay < 20)
        fix_at(la, lo, delay++);
    cr_assert_eq(delay, 7);
}

Test(robust, a_tow_across_a_reporting_gap_alarms_on_the_second_fix_after)
{
    double la, lo;
    park(12);
    now += 3 * 3600 * 1000LL;           /* three hours without a report */
    spot(1500, 4.0, &la, &lo);
    cr_assert_eq(fix_at(la, lo, 0), 0);
    cr_assert_eq(fix_at(la, lo, 1), HC_DETECT_ALARM);
}

Test(robust, a_stray_among_the_fixes_after_a_tow_is_left_out)
{
    double la, lo;
    park(16);
    spot(500, 1.0, &la, &lo);
    cr_assert_eq(fix_at(la, lo, 0), 0);
    stray_burst(1);
    cr_assert_eq(alarms, 0);
    cr_assert_eq(fix_at(la, lo, 1), HC_DETECT_ALARM);
}

Test(robust, too_few_positions_before_the_move_never_alarm)
{
    double la, lo;
    park(2);                            /* robust_before is 3 */
    spot(300, 1.0, &la, &lo);
    for (int i = 0; i < 14; i++)
        cr_assert_eq(fix_at(la, lo, i), 0);
}

Test(robust, one_alarm_per_session_and_ignition_resets)
{
    double la, lo, la2, lo2;
    park(16);
    spot(300, 1.0, &la, &lo);
    fix_at(la, lo, 0);
    cr_assert_eq(fix_at(la, lo, 1), HC_DETECT_ALARM);
    hc_sim_offset(la, lo, 600, 3.0, &la2, &lo2);
    for (int i = 0; i < 16; i++)
        cr_assert_eq(fix_at(la2, lo2, i), 0, "a second move in the session is not raised");
    cr_assert_eq(report_full("acme", la2, lo2, 1), 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(fix_at(la2, lo2, i), 0);
    cr_assert_eq(fix_at(la, lo, 0), 0);
    cr_assert_eq(fix_at(la, lo, 1), HC_DETECT_ALARM, "a new session, a new alarm");
}

Test(robust, rule_changes_apply_per_maker_without_a_recount)
{
    /* The default rule reaches makers without their own; a maker's own
     * rule stays until unset. */
    cr_assert_geq(hc_detector_set_rule(&det, "globex", 6, HC_RULE_SEED), 0);
    int acme = hc_detector_maker(&det, "acme", 4), globex = hc_detector_maker(&det, "globex", 6);
    cr_assert_eq(hc_detector_maker_at(&det, (unsigned)acme)->rule, HC_RULE_ROBUST);
    cr_assert_eq(hc_detector_set_rule(&det, NULL, 0, HC_RULE_SEED), 0);
    cr_assert_eq(hc_detector_maker_at(&det, (unsigned)acme)->rule, HC_RULE_SEED);
    cr_assert_eq(hc_detector_set_rule(&det, NULL, 0, HC_RULE_ROBUST), 0);
    cr_assert_eq(hc_detector_maker_at(&det, (unsigned)globex)->rule, HC_RULE_SEED);
    cr_assert_eq(hc_detector_unset_rule(&det, "globex", 6), 0);
    cr_assert_eq(hc_detector_maker_at(&det, (unsigned)globex)->rule, HC_RULE_ROBUST);
    cr_assert_eq(hc_detector_unset_rule(&det, "nosuch", 6), -ENOENT);
    cr_assert_eq(hc_detector_set_rule(&det, "acme", 4, (enum hc_rule)7), HC_ECONFIG);

    /* Mid-session: strays counted under robust, then seed decides the
     * next report from the same pair count. */
    uint32_t gen = det.gen;
    park(16);
    stray_burst(2);
    cr_assert_eq(alarms, 0);
    cr_assert_geq(hc_detector_set_rule(&det, "acme", 4, HC_RULE_SEED), 0);
    cr_assert_eq(det.gen, gen, "a rule change needs no recount");
    cr_assert_eq(fix_at(LAT, LON, 0), HC_DETECT_ALARM);
}

/* The three exceed matrices of positions given in metres on a local
 * plane (east, north), as hc_window_rows makes them for threshold t. */
static void rows_of(const double (*p)[2], unsigned n, double t, const struct hc_detect_config *c,
                    struct hc_robust_rows *x)
{
    memset(x, 0, sizeof(*x));
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = 0; j < n; j++) {
            double d = hypot(p[i][0] - p[j][0], p[i][1] - p[j][1]);
            x->near[i] |= (uint64_t)(d > t) << j;
            x->tight[i] |= (uint64_t)(d > t * c->robust_tight) << j;
            x->far[i] |= (uint64_t)(d > t * c->robust_far) << j;
        }
}

static bool moved_at(const double (*p)[2], unsigned n, const struct hc_detect_config *c)
{
    struct hc_robust_rows x;
    rows_of(p, n, 35.0, c, &x);
    return hc_robust_moved(&x, n, c);
}

Test(robust, a_far_limit_past_half_the_earth_does_not_wrap)
{
    /* A 6000 km threshold: 4 thresholds is more than half the circumference,
     * so no two fixes are "far"; a move waits for its third fix. */
    cr_assert_geq(hc_detector_set_threshold(&det, "acme", 4, 6.0e6), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(fix_at(0.0, 0.0, i), 0);
    cr_assert_eq(fix_at(0.0, 153.0, 0), 0);
    cr_assert_eq(fix_at(0.0, 153.0, 1), 0, "17,000 km is not 4 x 6000 km");
    cr_assert_eq(fix_at(0.0, 153.0, 2), HC_DETECT_ALARM);
}

Test(robust, the_decision_on_hand_made_windows)
{
    struct hc_detect_config c;
    hc_detect_config_default(&c);
    /* Threshold 35 m: tight is 8.75 m, far 140 m. */
    static const double far[][2] = { {0, 0}, {2, 0}, {0, 2}, {200, 0}, {201, 1} };
    cr_assert_not(moved_at(far, 4, &c), "one fix at the new spot");
    cr_assert(moved_at(far, 5, &c), "two, tight and far");

    static const double near[][2] = { {0, 0}, {2, 0}, {0, 2}, {80, 0}, {81, 1}, {80, 2} };
    cr_assert_not(moved_at(near, 5, &c), "two tight but within 4 thresholds: wait");
    cr_assert(moved_at(near, 6, &c), "three tight past the threshold");

    static const double loose[][2] = { {0, 0}, {2, 0}, {0, 2}, {200, 0}, {200, 20},
                                       {210, 10}, {195, 15} };
    cr_assert_not(moved_at(loose, 5, &c), "two 20 m apart: not tight");
    cr_assert_not(moved_at(loose, 6, &c), "three, not tight");
    cr_assert(moved_at(loose, 7, &c), "robust_after (4) within the threshold");

    static const double apart[][2] = { {0, 0}, {2, 0}, {0, 2}, {200, 0}, {260, 0}, {200, 50} };
    cr_assert_not(moved_at(apart, 6, &c), "fixes at the new spot apart from each other");

    /* A stray (300, 300) among them takes no part. */
    static const double stray[][2] = { {0, 0}, {2, 0}, {300, 300}, {0, 2}, {200, 0}, {201, 1} };
    cr_assert(moved_at(stray, 6, &c));
    /* Too few before: two positions and a stray. */
    cr_assert_not(moved_at(stray + 1, 5, &c));

    /* Share: 4 of 5 before positions far is the 0.8 needed; 0.9 is not. */
    static const double share[][2] = { {0, 0}, {2, 0}, {0, 2}, {1, 1}, {170, 0},
                                       {200, 0}, {201, 1} };
    cr_assert(moved_at(share, 7, &c));
    c.robust_share = 0.9;
    cr_assert_not(moved_at(share, 7, &c));
}
