/*
 * log.c — stderr logging (see log.h).  The level is the only shared state,
 * written once before threads start and read-only afterwards.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hubcap/log.h"
#include "hubcap/timefmt.h"

static int log_level = HC_LOG_INFO;

void hc_log_set_level(int level)
{
    log_level = level;
}

int hc_log_level(void)
{
    return log_level;
}

void hc_log(int level, const char *who, const char *fmt, ...)
{
    static const char *const names[] = { "error", "warn ", "info ", "debug" };
    if (level > log_level)
        return;
    char line[1024], ts[HC_TIME_LEN];
    int n = snprintf(line, sizeof(line), "%s %s %s: ", hc_time_format(hc_time_now_ms(), 1, ts),
                     names[level < 0 ? 0 : level > 3 ? 3 : level], who);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
