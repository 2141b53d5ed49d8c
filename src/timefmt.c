/*
 * timefmt.c — timestamps as text (see timefmt.h).
 */
#include <stdio.h>
#include <time.h>

#include "hubcap/timefmt.h"

char *hc_time_format(int64_t ms, int millis, char buf[HC_TIME_LEN])
{
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int frac = (int)(ms - secs * 1000);
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, HC_TIME_LEN, "invalid");
        return buf;
    }
    size_t n = strftime(buf, HC_TIME_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    if (millis)
        snprintf(buf + n, HC_TIME_LEN - n, ".%03dZ", frac);
    else
        snprintf(buf + n, HC_TIME_LEN - n, "Z");
    return buf;
}

int64_t hc_time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t hc_time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
