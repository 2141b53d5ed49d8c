/*
 * calib.h — threshold calibration from historical parked positions.
 *
 * The seed method: sample n vehicles of a maker, n = z^2 p(1-p) / e^2
 * (rounded to the nearest integer, as the seed table does: z 1.96 and
 * e 3 % give 1067); the maker's drift threshold is the largest pairwise
 * distance among the parked positions of any sampled vehicle.
 *
 * struct hc_drift accumulates a maker's pairwise drift: the exact maximum
 * and a log histogram of every pair (128 bins per octave of squared chord,
 * so quantiles are within 0.3 % of distance) for the high quantiles an
 * operator wants to see beside the maximum.  Pairs are computed with the
 * same chord kernels as detection, one vehicle at a time.  One thread per
 * accumulator; merge accumulators to combine threads.
 *
 * hc_calib_trim finds the multipath fixes of one parking session, so that
 * the drift of the real position can be measured without them.
 */
#ifndef HUBCAP_CALIB_H
#define HUBCAP_CALIB_H

#include <stddef.h>
#include <stdint.h>

#include "hubcap/kernel.h"

/* Sample size for confidence z, expected proportion p and margin e:
 * round(z^2 p (1-p) / e^2).  Returns it, or -EINVAL unless z > 0,
 * 0 < p < 1 and 0 < e < 1. */
long hc_calib_sample_size(double z, double p, double e);

/* The z value the seed table uses for a two-sided confidence level in
 * percent: 90 -> 1.64, 95 -> 1.96, 99 -> 2.58; 0 for any other level. */
double hc_calib_z(int confidence_pct);

#define HC_DRIFT_SUB_BITS 7
#define HC_DRIFT_BINS (72u << HC_DRIFT_SUB_BITS)

struct hc_drift {
    uint64_t vehicles;      /* calls to hc_drift_add with >= 1 fix */
    uint64_t fixes;
    uint64_t pairs;
    double max_chord2;      /* exact largest squared chord seen */
    uint64_t *hist;         /* HC_DRIFT_BINS counters */
};

/* 0 or -ENOMEM.  Free with hc_drift_free (accepts NULL / freed). */
int hc_drift_init(struct hc_drift *h);
void hc_drift_free(struct hc_drift *h);

/* Add one vehicle's parked positions (degrees): every pair among them.
 * Returns 0, -ENOMEM, or HC_ERANGE_LAT/LON (nothing added) for a bad
 * position. */
int hc_drift_add(struct hc_drift *h, const struct hc_kernel *k,
                 const double *lat, const double *lon, size_t n);

/* dst += src. */
void hc_drift_merge(struct hc_drift *dst, const struct hc_drift *src);

/* The seed threshold: largest pairwise distance in meters (0 if no pair). */
double hc_drift_max_m(const struct hc_drift *h);

/* Distance in meters at or below which a fraction q (0..1) of all pairs
 * lie, rounded up to its histogram bin (never above the maximum). */
double hc_drift_quantile_m(const struct hc_drift *h, double q);

/* A session's median distance from its centre is taken as at least this
 * when trimming, so that a session of near-identical fixes (a receiver that
 * repeats its last position) does not cut a fix a few decimetres away. */
#define HC_CALIB_TRIM_FLOOR_M 1.0

/* Outliers of one parking session of n fixes (degrees).  The centre is the
 * component-wise median of the fixes' unit vectors, put back on the sphere;
 * r_i is fix i's great-circle distance from it and M the median of the r_i
 * (the mean of the two middle ones when n is even).  Fix i is kept, keep[i]
 * = 1, when r_i <= k * max(M, HC_CALIB_TRIM_FLOOR_M), else keep[i] = 0.
 * Fewer than 3 fixes have no majority to judge by: all are kept.  The cut
 * holds only while the outliers are fewer than half the session.
 *
 * Returns the number kept, -EINVAL unless k is finite and > 0, -ENOMEM, or
 * HC_ERANGE_LAT/LON for a bad position (keep untouched).  O(n) expected
 * time, one allocation of 4n doubles; any thread. */
long hc_calib_trim(const double *lat, const double *lon, size_t n, double k, uint8_t *keep);

#endif
