/*
 * log.h — one-line log records on stderr:
 *   2026-11-22T03:04:05.123Z info  front: listening on 0.0.0.0:5170 (tcp)
 * Any thread; each record is one write(2), so lines from different threads
 * never interleave.  The level is process-wide, set once at start-up.
 */
#ifndef HUBCAP_LOG_H
#define HUBCAP_LOG_H

enum { HC_LOG_ERROR = 0, HC_LOG_WARN = 1, HC_LOG_INFO = 2, HC_LOG_DEBUG = 3 };

void hc_log_set_level(int level);
int hc_log_level(void);
void hc_log(int level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define hc_error(who, ...) hc_log(HC_LOG_ERROR, who, __VA_ARGS__)
#define hc_warn(who, ...)  hc_log(HC_LOG_WARN, who, __VA_ARGS__)
#define hc_info(who, ...)  hc_log(HC_LOG_INFO, who, __VA_ARGS__)
#define hc_debug(who, ...) \
    do { if (hc_log_level() >= HC_LOG_DEBUG) hc_log(HC_LOG_DEBUG, who, __VA_ARGS__); } while (0)

#endif
