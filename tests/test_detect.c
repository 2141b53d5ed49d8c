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
