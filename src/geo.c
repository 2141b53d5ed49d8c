/*
 * geo.c — the double-precision haversine reference (see geo.h).
 */
#include "hubcap/geo.h"

double hc_geo_haversine_m(double lat1, double lon1, double lat2, double lon2)
{
    double p1 = lat1 * HC_DEG2RAD, p2 = lat2 * HC_DEG2RAD;
    double sdp = sin((p2 - p1) * 0.5);
    double sdl = sin((lon2 - lon1) * HC_DEG2RAD * 0.5);
    double h = sdp * sdp + cos(p1) * cos(p2) * sdl * sdl;
    if (h > 1.0)
        h = 1.0;
    return 2.0 * HC_EARTH_RADIUS_M * asin(sqrt(h));
}

/*
 * sin and cos on [-pi/4, pi/4] by their Taylor series to t^15 and t^16:
 * the first omitted terms are below 5e-17 there, so the result is as good
 * as the double rounding of the evaluation (a few units in the last
 * place).  The reduction to that interval happens in degrees, where it is
 * exact: deg - 90 q is computed without rounding (Sterbenz).  A tie in the
 * choice of quadrant, broken either way, still leaves |t| <= pi/4 plus an
 * ulp, where the series is just as accurate.
 *
 * hc_geo_unit needs two angles (latitude and longitude), so the series is
 * written for two lanes at once with SSE2, which every x86-64 has; other
 * targets run the same arithmetic one lane at a time.  Either way each lane
 * sees the same IEEE operations, so results do not depend on the path.
 */
#if defined(__SSE2__)
#include <emmintrin.h>
typedef __m128d v2d;
#define V2(a, b) _mm_set_pd((b), (a))
#define V2S(a) _mm_set1_pd(a)
#define VADD _mm_add_pd
#define VMUL _mm_mul_pd
#define VSUB _mm_sub_pd
static inline void v2_store(v2d v, double out[2]) { _mm_storeu_pd(out, v); }
#else
typedef struct { double v[2]; } v2d;
static inline v2d V2(double a, double b) { v2d r = { { a, b } }; return r; }
static inline v2d V2S(double a) { return V2(a, a); }
static inline v2d VADD(v2d a, v2d b) { return V2(a.v[0] + b.v[0], a.v[1] + b.v[1]); }
static inline v2d VMUL(v2d a, v2d b) { return V2(a.v[0] * b.v[0], a.v[1] * b.v[1]); }
static inline v2d VSUB(v2d a, v2d b) { return V2(a.v[0] - b.v[0], a.v[1] - b.v[1]); }
static inline void v2_store(v2d v, double out[2]) { out[0] = v.v[0]; out[1] = v.v[1]; }
#endif

/* Nearest multiple of 90 degrees, as a count of quadrants.  A truncating
 * conversion instead of nearbyint(): no libm call on baseline x86-64. */
static inline long quadrant(double deg)
{
    return (long)(deg * (1.0 / 90.0) + (deg >= 0 ? 0.5 : -0.5));
}

/* Rotate (sin t, cos t) by q quadrants.  Table lookups instead of a
 * switch: fleets straddle quadrant boundaries (lat 45, lon 90...) and a
 * mispredicted branch per report costs more than the whole series. */
static inline void place(long q, double sp, double cp, double *s, double *c)
{
    static const double sign_s[4] = { 1, 1, -1, -1 }, sign_c[4] = { 1, -1, -1, 1 };
    double v[2] = { sp, cp };
    unsigned odd = (unsigned)q & 1, k = (unsigned)q & 3;
    *s = v[odd] * sign_s[k];
    *c = v[odd ^ 1] * sign_c[k];
}

/* sin and cos of two angles in degrees. */
static inline void sincos2_deg(double a, double b, double s[2], double c[2])
{
    long qa = quadrant(a), qb = quadrant(b);
    v2d t = VMUL(VSUB(V2(a, b), VMUL(V2S(90.0), V2((double)qa, (double)qb))),
                 V2S(HC_DEG2RAD));
    /* Estrin's scheme in u = t^2: independent pairs combined by u^2 and
     * u^4, a dependency chain a third as long as Horner's. */
    v2d u = VMUL(t, t), u2 = VMUL(u, u), u4 = VMUL(u2, u2);
#define P2(c0, c1) VADD(V2S(c0), VMUL(u, V2S(c1)))
    v2d s03 = VADD(P2(1.0, -1.0 / 6), VMUL(u2, P2(1.0 / 120, -1.0 / 5040)));
    v2d s47 = VADD(P2(1.0 / 362880, -1.0 / 39916800),
                   VMUL(u2, P2(1.0 / 6227020800, -1.0 / 1307674368000)));
    v2d sp = VMUL(t, VADD(s03, VMUL(u4, s47)));
    v2d c03 = VADD(P2(1.0, -0.5), VMUL(u2, P2(1.0 / 24, -1.0 / 720)));
    v2d c47 = VADD(P2(1.0 / 40320, -1.0 / 3628800),
                   VMUL(u2, P2(1.0 / 479001600, -1.0 / 87178291200)));
    v2d c8 = VMUL(VMUL(u4, u4), V2S(1.0 / 20922789888000));
    v2d cp = VADD(VADD(c03, VMUL(u4, c47)), c8);
#undef P2
    double spv[2], cpv[2];
    v2_store(sp, spv);
    v2_store(cp, cpv);
    place(qa, spv[0], cpv[0], &s[0], &c[0]);
    place(qb, spv[1], cpv[1], &s[1], &c[1]);
}

void hc_geo_sincos_deg(double deg, double *s, double *c)
{
    double sv[2], cv[2];
    sincos2_deg(deg, deg, sv, cv);
    *s = sv[0];
    *c = cv[0];
}

void hc_geo_unit(double lat_deg, double lon_deg, double v[3])
{
    double s[2], c[2];
    sincos2_deg(lat_deg, lon_deg, s, c);
    v[0] = c[0] * c[1];
    v[1] = c[0] * s[1];
    v[2] = s[0];
}
