/*
 * error.c — names for hubcap's return codes (see include/hubcap/error.h).
 */
#include <string.h>

#include "hubcap/error.h"

static const char *const project_msgs[] = {
    [HC_ERANGE_LAT - HC_EBASE] = "latitude must be a finite number in [-90, 90]",
    [HC_ERANGE_LON - HC_EBASE] = "longitude must be a finite number in [-180, 180]",
    [HC_ERANGE_TS - HC_EBASE] = "timestamp must be milliseconds since 1970 and before year 10000",
    [HC_EVID - HC_EBASE] = "vehicle id must be 1 to 64 bytes",
    [HC_EMAKER - HC_EBASE] = "maker name must be at most 32 bytes",
    [HC_ESTALE - HC_EBASE] = "report is not newer than the vehicle's latest report",
    [HC_ETHRESHOLD - HC_EBASE] = "threshold must be a finite number of meters in (0, 20000000]",
    [HC_ECONFIG - HC_EBASE] = "detection parameters must satisfy 2 <= n1 <= window <= 64, n2 < window*(window-1)/2, a known rule, and for the robust rule robust_after >= 4, robust_before >= 2, robust_after + robust_before <= window, 0 < share <= 1, 0 < tight <= 1, 1 <= far <= 100",
    [HC_EFULL - HC_EBASE] = "table is full",
    [HC_EWIRE - HC_EBASE] = "payload is not one msgpack map or array of maps",
    [HC_EMISSING - HC_EBASE] = "report lacks one of vid, ts, lat, lon, acc",
    [HC_ETYPE - HC_EBASE] = "report field has the wrong type (vid: string or unsigned, ts: integer, lat/lon: number, acc: bool, maker: string)",
    [HC_ESTORE - HC_EBASE] = "state store (LMDB) failed",
};

const char *hc_strerror(int rc)
{
    if (rc >= 0)
        return "success";
    if (rc >= HC_EBASE && rc < HC_ELAST)
        return project_msgs[rc - HC_EBASE];
    return strerror(-rc);
}
