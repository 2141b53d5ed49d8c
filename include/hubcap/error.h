/*
 * error.h — hubcap's error convention.
 *
 * Every fallible hubcap function returns 0 (or a non-negative count) on
 * success and a negative number on failure: either a negated errno value
 * (-ENOMEM, -EINVAL, ...) or one of the project codes below, which live in
 * a reserved band far below any errno.  hc_strerror() names both.
 */
#ifndef HUBCAP_ERROR_H
#define HUBCAP_ERROR_H

enum hc_error {
    HC_EBASE = -10000,
    HC_ERANGE_LAT = HC_EBASE,   /* latitude not finite or outside [-90, 90] */
    HC_ERANGE_LON,              /* longitude not finite or outside [-180, 180] */
    HC_ERANGE_TS,               /* timestamp negative or beyond year 9999 */
    HC_EVID,                    /* vehicle id empty or longer than 64 bytes */
    HC_EMAKER,                  /* maker name longer than 32 bytes */
    HC_ESTALE,                  /* report not newer than the vehicle's last */
    HC_ETHRESHOLD,              /* threshold not finite, <= 0 or too large */
    HC_ECONFIG,                 /* detection parameters inconsistent */
    HC_EFULL,                   /* a fixed-capacity table is full */
    HC_EWIRE,                   /* payload is not valid msgpack of the native format */
    HC_EMISSING,                /* report lacks vid, ts, lat, lon or acc */
    HC_ETYPE,                   /* report field has the wrong msgpack type */
    HC_ESTORE,                  /* LMDB failed (details in the log) */
    HC_ELAST
};

/* Human-readable text for a return code (negative errno or HC_E*). Never
 * returns NULL; the string is static. */
const char *hc_strerror(int rc);

#endif
