/*
 * sim.h — a seeded, reproducible simulated fleet: parked vehicles that
 * report their position every few minutes with their maker's GPS drift,
 * with occasional stray fixes (multipath) and tows, plus the ground truth
 * to score a detector against.  Used by hubcap-sim (the quickstart demo),
 * the load generator and the benchmarks.
 *
 * The stream is time-ordered and interleaved across vehicles the way a
 * live feed is.  Each session opens with one ignition-on report (the drive
 * home) and continues with reports_per_session parked fixes.  A session is
 * towed with probability tow_rate: from a random fix in its middle half on,
 * the parking spot is tow distance away.  A stray fix is displaced by a
 * stray distance, once.  The same config and seed give the same stream.
 */
#ifndef HUBCAP_SIM_H
#define HUBCAP_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hubcap/detect.h"

struct hc_sim_maker {
    const char *name;
    double sigma_m;             /* Gaussian jitter per axis, meters */
};

struct hc_sim_config {
    uint32_t vehicles;
    uint32_t sessions;          /* parking sessions per vehicle */
    uint32_t reports_per_session;
    uint32_t interval_s;        /* between parked fixes */
    double tow_rate;            /* fraction of sessions with a tow */
    double tow_min_m, tow_max_m;
    double stray_rate;          /* fraction of parked fixes that are strays */
    double stray_min_m, stray_max_m;
    uint64_t seed;
    int64_t start_ms;           /* time of the first report */
    const struct hc_sim_maker *makers;   /* NULL: the built-in three */
    unsigned n_makers;
};

/* Ground truth for one report. */
struct hc_sim_truth {
    uint32_t vehicle;           /* 0..vehicles-1 */
    uint32_t session;           /* 0..sessions-1 */
    bool towed;                 /* this session contains a tow */
    bool after_tow;             /* this fix is at the new spot */
    bool stray;                 /* this fix is a stray */
    double tow_m;               /* tow distance (towed sessions) */
};

/* Defaults: 1000 vehicles, 3 sessions of 48 fixes every 5 min, 3 % tows of
 * 150-2000 m, 0.3 % strays of 200-800 m, seed 1. */
void hc_sim_config_default(struct hc_sim_config *c);

/* The built-in makers ("acme" 4 m, "borealis" 9 m, "cobalt" 18 m). */
const struct hc_sim_maker *hc_sim_default_makers(unsigned *n);

struct hc_sim;

/* Create a simulation; 0, -EINVAL (bad config) or -ENOMEM. */
int hc_sim_new(const struct hc_sim_config *c, struct hc_sim **out);
void hc_sim_free(struct hc_sim *s);

/* Next report in time order: 1 and *r (and *t when not NULL) filled, or 0
 * at the end of the stream. */
int hc_sim_next(struct hc_sim *s, struct hc_report *r, struct hc_sim_truth *t);

/* Total reports the stream will produce. */
uint64_t hc_sim_total(const struct hc_sim *s);

/* The maker of a vehicle (index into the config's makers). */
unsigned hc_sim_vehicle_maker(const struct hc_sim *s, uint32_t vehicle);

/* Write the id of vehicle i ("SIM0000042") into buf (>= 16 bytes);
 * returns its length. */
size_t hc_sim_vid(uint32_t i, char *buf);

/* Move (lat, lon) by meters towards bearing (radians from north), on the
 * sphere.  Used by the simulator; handy for tests. */
void hc_sim_offset(double lat, double lon, double meters, double bearing,
                   double *out_lat, double *out_lon);

#endif
