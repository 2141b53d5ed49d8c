/*
 * timefmt.h — timestamps as text: RFC 3339 / ISO 8601 in UTC, the form
 * every hubcap output (alarms, logs, webhooks) uses.
 */
#ifndef HUBCAP_TIMEFMT_H
#define HUBCAP_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#define HC_TIME_LEN 32

/* Format ms since the Unix epoch as "2026-11-22T03:04:05Z" (whole seconds)
 * or, with millis set, "2026-11-22T03:04:05.123Z".  Returns buf. */
char *hc_time_format(int64_t ms, int millis, char buf[HC_TIME_LEN]);

/* Milliseconds since the Unix epoch, now (CLOCK_REALTIME). */
int64_t hc_time_now_ms(void);

/* Monotonic clock in nanoseconds, for measuring. */
uint64_t hc_time_mono_ns(void);

#endif
