/*
 * scenario.h — a seeded, reproducible parked fleet described by a scenario
 * file, with the ground truth of every parking session: the stream that
 * detection quality is measured on.  (sim.h is the lock-step demo fleet of
 * the quickstart, loadgen and benchmarks; this is a separate model.)
 *
 * The model, exactly:
 *
 * - Vehicles.  Vehicle i (0 <= i < vehicles) has its own random generator,
 *   seeded from the scenario seed and i (hc_rng splitmix of i << 1 | the
 *   calibration flag, xor the seed), and nothing else: its reports do not
 *   depend on how many other vehicles there are.  At creation it draws a
 *   home point, uniformly 0-20 km in a uniform direction from one of six
 *   cities (one on the antimeridian, one above the Arctic circle), and a
 *   maker with probability share / sum of shares.  Its id is "SIM" and
 *   seven digits (hc_sim_vid), "CAL" and seven digits in the calibration
 *   set.
 * - Nights.  Night n (0 <= n < nights) is one parking session.  The
 *   vehicle arrives at start + n days + U[0, arrive_spread_h) and sends
 *   one ignition-on report (acc 1) at its parking spot, uniformly 0-2 km in
 *   a uniform direction from home.  The session lasts U[session_min_h,
 *   session_max_h).  Report slot k (k = 0, 1, ...) falls at the arrival
 *   plus k + 1 intervals, each interval a whole number of milliseconds
 *   uniform in [interval_s - interval_jitter_s, interval_s +
 *   interval_jitter_s] seconds; the slots end at the first one later than
 *   the session's end.  arrive_spread_h + session_max_h < 24, so a
 *   session is over before the next night's ignition-on report (which is
 *   what ends it for the detector); after the last night nothing more is
 *   sent.  A vehicle's timestamps strictly increase.
 * - Lost fixes.  A slot inside a reporting gap is lost.  Otherwise, with
 *   probability gap_rate the slot starts a gap of U{gap_min..gap_max}
 *   slots (itself included); otherwise it is lost with probability
 *   missing.  Lost slots are simply not sent; time goes on.
 * - Positions.  A sent slot is a parked fix (acc 0).  Its position is the
 *   true spot, plus the drift, plus either the jitter, N(0, sigma_m) per
 *   axis (north, east), or, for a multipath fix, a displacement of
 *   log-uniform size in [multipath_min_m, multipath_max_m] in a uniform
 *   direction, drawn afresh for every fix.  The drift is a random walk
 *   that starts at 0 each session and takes a step of N(0, drift_m) per
 *   axis at every slot, lost or sent.  The offset (metres north and east)
 *   is applied along the great circle (hc_sim_offset).  The ignition-on
 *   report is exactly at the spot.
 * - Multipath.  Among sent fixes: a fix not continuing an event starts
 *   one with probability multipath; after each outlier fix the next sent
 *   fix is one too with probability multipath_burst, at most 3 in a row.
 *   Lost slots are never multipath.
 * - Tows.  A session has a tow with probability tow_rate (never in the
 *   calibration set): distance U[tow_min_m, tow_max_m), uniform bearing.
 *   With probability tow_in_gap it is a tow in a gap: a gap of
 *   U{gap_min..gap_max} slots is forced at a uniformly chosen slot a such
 *   that at least 3 fixes are sent before slot a and at least 4 after the
 *   gap, and the tow moment is uniform strictly between the times of slot
 *   a - 1 and the slot after the gap.  Otherwise the tow moment is uniform
 *   strictly between the times of the 3rd sent fix and the 4th sent fix
 *   from the end, so at least 3 fixes come before it and 4 after.  A
 *   session with no room for that (fewer than 7 sent fixes, or no room for
 *   the gap) has no tow.  Moments are whole milliseconds; one that falls on
 *   a slot's time moves 1 ms earlier, so no report is ever at the tow
 *   moment.  Fixes later than it are at the new spot, where the vehicle
 *   stays until the session ends.
 * - Order.  The stream is in time order, ties broken by vehicle number,
 *   produced by a min-heap of vehicles keyed by their next report:
 *   memory is O(vehicles), never O(reports).  Each session is planned in
 *   two passes over a separate slot generator, seeded per session: the
 *   first finds which slots are sent (for the tow), the second replays it
 *   as the reports go out.
 *
 * All arithmetic is IEEE double with the libm functions sim.c uses (log,
 * sqrt, cos, sin, asin, atan2, exp, fmod), so the same file and seed give
 * a byte-identical stream wherever those are correctly rounded the same.
 *
 * Threading: a generator belongs to one thread; nothing here locks.
 */
#ifndef HUBCAP_SCENARIO_H
#define HUBCAP_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hubcap/detect.h"

#define HC_SCN_MAKERS_MAX 16
#define HC_SCN_NAME_MAX 64          /* bytes in a scenario name */
#define HC_SCN_VEHICLES_MAX 10000000u   /* ids have seven digits */

struct hc_scn_maker {
    char name[HC_MAKER_MAX + 1];    /* 1-32 of [A-Za-z0-9._-] */
    double share;                   /* weight in the fleet */
    double sigma_m;                 /* jitter per axis */
    double drift_m;                 /* random-walk step per slot per axis */
    uint32_t interval_s, interval_jitter_s;
    double missing;                 /* probability a slot is lost */
    double multipath;               /* probability a fix starts an event */
    double multipath_min_m, multipath_max_m;
    double multipath_burst;         /* probability an event goes on */
};

/* A scenario: the [scenario] section and the makers, in file order. */
struct hc_scn {
    char name[HC_SCN_NAME_MAX + 1];
    uint64_t seed;
    uint32_t vehicles, nights;
    int64_t start_ms;               /* the first evening, ms since the epoch */
    double arrive_spread_h, session_min_h, session_max_h;
    double tow_rate, tow_min_m, tow_max_m, tow_in_gap;
    double gap_rate;
    uint32_t gap_min, gap_max;
    uint64_t calibration_seed;
    uint32_t calibration_vehicles, calibration_nights;
    struct hc_scn_maker makers[HC_SCN_MAKERS_MAX];
    unsigned n_makers;
};

/* The defaults of every [scenario] key, and no makers. */
void hc_scn_default(struct hc_scn *s);

/* The defaults of every maker key ("acme"'s values, share 1), named name
 * (not checked here). */
void hc_scn_maker_default(struct hc_scn_maker *m, const char *name);

/* Fill s from the INI file at path: defaults first, then the file's
 * [scenario] section and one [maker NAME] section per maker (1 to 16).
 * Returns 0; HC_ECONFIG when the file is wrong (an unknown section or key,
 * a key given twice, a value that does not parse or is out of range, an
 * inconsistent pair such as min > max), with "PATH:LINE: what and the
 * accepted range" in err; or -errno when it cannot be read (err says so).
 * s is unspecified after a failure. */
int hc_scn_load(const char *path, struct hc_scn *s, char *err, size_t errlen);

/* 0 if every value of s is in range and consistent, else HC_ECONFIG with
 * the reason in err (which may be NULL). */
int hc_scn_check(const struct hc_scn *s, char *err, size_t errlen);

/* The id of vehicle i, "SIM0000042" (or "CAL0000042" in the calibration
 * set), into buf (>= 16 bytes); returns its length. */
size_t hc_scn_vid(uint32_t i, bool calibration, char *buf);

/* vehicles x nights (or the calibration set's). */
uint64_t hc_scn_vehicle_nights(const struct hc_scn *s, bool calibration);

/* The ground truth of one parking session, complete once its last report
 * has been handed out. */
struct hc_scn_session {
    uint32_t vehicle;           /* vehicle number: the id's digits */
    uint32_t night;             /* 0-based */
    uint8_t maker;              /* index into hc_scn.makers */
    bool tow_in_gap;
    int64_t start_ms;           /* the ignition-on report */
    int64_t end_ms;             /* the last parked fix sent (start_ms if none) */
    uint32_t fixes;             /* parked fixes sent */
    uint32_t after_fixes;       /* of which at the new spot */
    uint32_t multipath_fixes;   /* of which outliers */
    double tow_m;               /* 0: no tow */
    int64_t tow_ms;             /* the tow moment, 0: none */
    int64_t moved_ms;           /* first fix sent at the new spot, 0: none */
};

/* What one report really is. */
struct hc_scn_fix {
    uint32_t vehicle, night;
    uint8_t maker;
    bool multipath;
    bool moved;                 /* sent from the new spot, after a tow */
    double true_lat, true_lon;  /* where the vehicle really is */
};

struct hc_scn_maker_stats {
    uint64_t vehicles, fixes, multipath, lost;
};

/* Running totals of a generator. */
struct hc_scn_stats {
    uint64_t reports;           /* all reports handed out */
    uint64_t fixes;             /* parked fixes among them */
    uint64_t multipath;         /* outlier fixes among those */
    uint64_t lost;              /* slots not sent */
    uint64_t sessions;          /* sessions completed */
    uint64_t tows, tows_in_gap; /* among completed sessions */
    struct hc_scn_maker_stats maker[HC_SCN_MAKERS_MAX];
};

struct hc_scn_gen;

/* A generator of s's evaluation stream, or with calibration set of its
 * calibration set (calibration_seed, calibration_vehicles,
 * calibration_nights, no tows, "CAL" ids).  s is copied.  Returns 0,
 * -EINVAL when hc_scn_check refuses s, or -ENOMEM. */
int hc_scn_gen_new(const struct hc_scn *s, bool calibration, struct hc_scn_gen **out);
void hc_scn_gen_free(struct hc_scn_gen *g);

/* The next report in time order: 1 with *r (and *fix unless NULL) filled,
 * or 0 at the end of the stream. */
int hc_scn_gen_next(struct hc_scn_gen *g, struct hc_report *r, struct hc_scn_fix *fix);

/* The session the report just returned by hc_scn_gen_next completed, or
 * NULL if it was not a session's last report.  Valid until the next call
 * of hc_scn_gen_next.  Sessions therefore complete in order of end_ms,
 * ties by vehicle number. */
const struct hc_scn_session *hc_scn_gen_session(const struct hc_scn_gen *g);

const struct hc_scn_stats *hc_scn_gen_stats(const struct hc_scn_gen *g);

#endif
