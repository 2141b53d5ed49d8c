/*
 * calib.c — sample sizes and pairwise drift statistics (see calib.h).
 *
 * Histogram bins are cut straight from the IEEE-754 bits of the squared
 * chord: exponent plus the top HC_DRIFT_SUB_BITS of the mantissa, which is
 * a logarithmic scale with no log() per pair.  Bin 0 also takes everything
 * below 2^-68 (a few millimetres), the last bin everything up to 4.
 */
#include <errno.h>
#include <math.h>
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

int hc_drift_add(struct hc_drift *h, const struct hc_kernel *k,
                 const double *lat, const double *lon, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!hc_geo_valid_lat(lat[i]))
            return HC_ERANGE_LAT;
        if (!hc_geo_valid_lon(lon[i]))
            return HC_ERANGE_LON;
    }
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
