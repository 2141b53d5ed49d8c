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
