/*
 * geo.h — distances on the sphere, the two ways hubcap computes them.
 *
 * The reference is the haversine formula in double precision on a sphere of
 * radius HC_EARTH_RADIUS_M; tests and calibration use it as ground truth.
 * The hot path never calls trigonometry per pair: each position becomes a
 * unit vector once, and "distance > T" becomes "squared chord > 4 sin^2(T/2R)",
 * a comparison that is monotonic in distance and exact to well under a
 * millimetre in double precision.  Pure functions; any thread.
 */
#ifndef HUBCAP_GEO_H
#define HUBCAP_GEO_H

#include <math.h>
#include <stdbool.h>

#define HC_EARTH_RADIUS_M 6378137.0
#define HC_GEO_PI 3.14159265358979323846
#define HC_DEG2RAD (HC_GEO_PI / 180.0)

/* Great-circle distance in meters between two WGS84 points given in degrees,
 * by the haversine formula (the reference every kernel must agree with). */
double hc_geo_haversine_m(double lat1, double lon1, double lat2, double lon2);

/* Unit vector of a point on the sphere (degrees in, within 3e-16 of the
 * exact vector).  Sines and cosines come from a polynomial after an exact
 * reduction in degrees, several times faster than libm's sin and cos; this
 * runs once per report on the hot path. */
void hc_geo_unit(double lat_deg, double lon_deg, double v[3]);

/* sin and cos of an angle in degrees, |deg| <= 720, to within 2e-16. */
void hc_geo_sincos_deg(double deg, double *s, double *c);

/* Squared chord length between two unit vectors.  The operation order is
 * the one every kernel uses, so all of them round identically. */
static inline double hc_geo_chord2(const double a[3], const double b[3])
{
    double dx = a[0] - b[0], dy = a[1] - b[1], dz = a[2] - b[2];
    double s = dx * dx + dy * dy;
    return s + dz * dz;
}

/* The squared-chord limit equivalent to a distance of meters: a pair is
 * farther apart than meters exactly when its squared chord exceeds this.
 * From half the circumference on no pair is farther, and the sine would
 * fall again: the limit is then above any squared chord (at most 4). */
static inline double hc_geo_chord2_limit(double meters)
{
    if (meters >= HC_GEO_PI * HC_EARTH_RADIUS_M)
        return 5.0;
    double h = sin(meters / (2.0 * HC_EARTH_RADIUS_M));
    return 4.0 * h * h;
}

/* Great-circle distance in meters for a squared chord (inverse of the
 * above): d = 2R asin(c/2). */
static inline double hc_geo_chord2_to_m(double c2)
{
    double h = sqrt(c2) * 0.5;
    if (h > 1.0)
        h = 1.0;
    return 2.0 * HC_EARTH_RADIUS_M * asin(h);
}

/* Inverse of hc_geo_unit: latitude and longitude in degrees. */
static inline void hc_geo_latlon(const double v[3], double *lat_deg, double *lon_deg)
{
    *lat_deg = atan2(v[2], sqrt(v[0] * v[0] + v[1] * v[1])) / HC_DEG2RAD;
    *lon_deg = atan2(v[1], v[0]) / HC_DEG2RAD;
}

static inline bool hc_geo_valid_lat(double lat)
{
    return isfinite(lat) && lat >= -90.0 && lat <= 90.0;
}

static inline bool hc_geo_valid_lon(double lon)
{
    return isfinite(lon) && lon >= -180.0 && lon <= 180.0;
}

#endif
