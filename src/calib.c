/*
 * calib.c — sample sizes and pairwise drift statistics (see calib.h).
 *
 * Histogram bins are cut straight from the IEEE-754 bits of the squared
 * chord: exponent plus the top HC_DRIFT_SUB_BITS of the mantissa, which is
 * a logarithmic scale with no log() per pair.  Bin 0 also takes everything
 * below 2^-68 (a few millimetres), the last bin everything up to 4.
 *
 * Trimming takes medians by selection (Hoare's quickselect) on a scratch
 * array rather than by sorting: a session is a few dozen to a few thousand
 * fixes, and four medians per session stay linear in its length.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "hubcap/calib.h"
#include "hubcap/error.h"
#include "hubcap/geo.h"

#define MIN_EXP (-68)                   /* 2^-68: smallest binned chord^2 */

long hc_calib_sample_size(double z, double p, double e)
{
    if (!(z > 0.0) || !(p > 0.0 && p < 1.0) || !(e > 0.0 && e < 1.0))
        return -EINVAL;
    return lround(z * z * p * (1.0 - p) / (e * e));
}

double hc_calib_z(int confidence_pct)
{
    switch (confidence_pct) {
    case 90: return 1.64;
    case 95: return 1.96;
    case 99: return 2.58;
    default: return 0.0;
    }
}

int hc_drift_init(struct hc_drift *h)
{
    memset(h, 0, sizeof(*h));
    h->hist = calloc(HC_DRIFT_BINS, sizeof(*h->hist));
    return h->hist ? 0 : -ENOMEM;
}

void hc_drift_free(struct hc_drift *h)
{
    if (!h)
        return;
    free(h->hist);
    h->hist = NULL;
}

static unsigned bin_of(double c2)
{
    uint64_t bits;
    memcpy(&bits, &c2, sizeof(bits));
    /* Biased exponent and leading mantissa bits, as one ordered integer. */
    int64_t key = (int64_t)(bits >> (52 - HC_DRIFT_SUB_BITS));
    int64_t lo = (int64_t)(1023 + MIN_EXP) << HC_DRIFT_SUB_BITS;
    if (key < lo)
        return 0;
    if (key - lo >= (int64_t)HC_DRIFT_BINS)
        return HC_DRIFT_BINS - 1;
    return (unsigned)(key - lo);
}

/* Smallest squared chord of the bin after b: the upper edge of bin b. */
static double bin_upper(unsigned b)
{
    uint64_t key = (uint64_t)((1023 + MIN_EXP) << HC_DRIFT_SUB_BITS) + b + 1;
    uint64_t bits = key << (52 - HC_DRIFT_SUB_BITS);
    double c2;
    memcpy(&c2, &bits, sizeof(c2));
    return c2;
}

/* 0, or the error for the first position out of range. */
static int check_positions(const double *lat, const double *lon, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!hc_geo_valid_lat(lat[i]))
            return HC_ERANGE_LAT;
        if (!hc_geo_valid_lon(lon[i]))
            return HC_ERANGE_LON;
    }
    return 0;
}

int hc_drift_add(struct hc_drift *h, const struct hc_kernel *k,
                 const double *lat, const double *lon, size_t n)
{
    int rc = check_positions(lat, lon, n);
    if (rc < 0)
        return rc;
    if (n == 0)
        return 0;
    double *buf = malloc(4 * n * sizeof(double));
    if (!buf)
        return -ENOMEM;
    double *x = buf, *y = buf + n, *z = buf + 2 * n, *out = buf + 3 * n;
    for (size_t i = 0; i < n; i++) {
        double v[3];
        hc_geo_unit(lat[i], lon[i], v);
        x[i] = v[0];
        y[i] = v[1];
        z[i] = v[2];
    }
    for (size_t i = 1; i < n; i++) {
        double p[3] = { x[i], y[i], z[i] };
        k->chord2(x, y, z, i, p, out);
        for (size_t j = 0; j < i; j++) {
            h->hist[bin_of(out[j])]++;
            if (out[j] > h->max_chord2)
                h->max_chord2 = out[j];
        }
    }
    h->vehicles++;
    h->fixes += n;
    h->pairs += n * (n - 1) / 2;
    free(buf);
    return 0;
}

void hc_drift_merge(struct hc_drift *dst, const struct hc_drift *src)
{
    dst->vehicles += src->vehicles;
    dst->fixes += src->fixes;
    dst->pairs += src->pairs;
    if (src->max_chord2 > dst->max_chord2)
        dst->max_chord2 = src->max_chord2;
    for (unsigned b = 0; b < HC_DRIFT_BINS; b++)
        dst->hist[b] += src->hist[b];
}

double hc_drift_max_m(const struct hc_drift *h)
{
    return hc_geo_chord2_to_m(h->max_chord2);
}

double hc_drift_quantile_m(const struct hc_drift *h, double q)
{
    if (h->pairs == 0)
        return 0.0;
    if (q < 0.0)
        q = 0.0;
    if (q > 1.0)
        q = 1.0;
    /* Smallest bin whose cumulative count reaches ceil(q * pairs). */
    uint64_t want = (uint64_t)ceil(q * (double)h->pairs);
    if (want == 0)
        want = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < HC_DRIFT_BINS; b++) {
        seen += h->hist[b];
        if (seen >= want) {
            double c2 = bin_upper(b);
            return hc_geo_chord2_to_m(c2 < h->max_chord2 ? c2 : h->max_chord2);
        }
    }
    return hc_drift_max_m(h);
}

/* Reorders a[0..n) so that a[k] is its k-th smallest value (from 0), with
 * nothing larger before it and nothing smaller after it; returns a[k].
 * Hoare's partition around the middle element: runs of equal values (a
 * parked receiver repeating itself) still split evenly. */
static double select_kth(double *a, size_t n, size_t k)
{
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, want = (ptrdiff_t)k;
    while (lo < hi) {
        double pivot = a[lo + (hi - lo) / 2];
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i <= j) {
                double t = a[i];
                a[i++] = a[j];
                a[j--] = t;
            }
        }
        if (want <= j)
            hi = j;
        else if (want >= i)
            lo = i;
        else
            break;              /* between the halves: equal to the pivot */
    }
    return a[want];
}

/* The two middle values of a[0..n), n >= 1, lower and upper (the same one
 * when n is odd).  Reorders a. */
static void middle(double *a, size_t n, double *lower, double *upper)
{
    size_t h = n / 2;
    *upper = select_kth(a, n, h);
    *lower = *upper;
    if (n % 2 == 0) {
        *lower = a[0];          /* the largest of the lower half */
        for (size_t i = 1; i < h; i++)
            if (a[i] > *lower)
                *lower = a[i];
    }
}

/* The component-wise median of n unit vectors v (3 doubles each), scaled
 * back onto the sphere into c; 0, or -1 when that median is the origin
 * (fixes all over the globe: there is no centre). */
static int centre(const double *v, size_t n, double *scratch, double c[3])
{
    for (int d = 0; d < 3; d++) {
        double lower, upper;
        for (size_t i = 0; i < n; i++)
            scratch[i] = v[3 * i + d];
        middle(scratch, n, &lower, &upper);
        c[d] = 0.5 * (lower + upper);
    }
    double norm = sqrt(c[0] * c[0] + c[1] * c[1] + c[2] * c[2]);
    if (!(norm > 0.0))
        return -1;
    for (int d = 0; d < 3; d++)
        c[d] /= norm;
    return 0;
}

long hc_calib_trim(const double *lat, const double *lon, size_t n, double k, uint8_t *keep)
{
    if (!(k > 0.0) || !isfinite(k))
        return -EINVAL;
    int rc = check_positions(lat, lon, n);
    if (rc < 0)
        return rc;
    memset(keep, 1, n);
    if (n < 3)
        return (long)n;
    double *v = malloc(4 * n * sizeof(double));
    if (!v)
        return -ENOMEM;
    double *scratch = v + 3 * n, c[3];
    for (size_t i = 0; i < n; i++)
        hc_geo_unit(lat[i], lon[i], v + 3 * i);
    long kept = (long)n;
    if (centre(v, n, scratch, c) == 0) {
        /* Squared chords order the fixes as distances do: the median is
         * found on them and only its two middle values become meters. */
        double lower, upper;
        for (size_t i = 0; i < n; i++)
            scratch[i] = hc_geo_chord2(v + 3 * i, c);
        middle(scratch, n, &lower, &upper);
        double m = 0.5 * (hc_geo_chord2_to_m(lower) + hc_geo_chord2_to_m(upper));
        double cut = k * (m > HC_CALIB_TRIM_FLOOR_M ? m : HC_CALIB_TRIM_FLOOR_M);
        for (size_t i = 0; i < n; i++) {
            keep[i] = hc_geo_chord2_to_m(hc_geo_chord2(v + 3 * i, c)) <= cut;
            kept -= !keep[i];
        }
    }
    free(v);
    return kept;
}
