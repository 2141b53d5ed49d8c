/*
 * cli.c — command-line number parsing shared by every program (cli.h).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubcap/cli.h"

const char *hc_cli_prog = "hubcap";

void hc_cli_init(const char *argv0)
{
    const char *slash = strrchr(argv0, '/');
    hc_cli_prog = slash ? slash + 1 : argv0;
}

void hc_cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", hc_cli_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help'.\n", hc_cli_prog);
    exit(2);
}

uint64_t hc_cli_uint(const char *opt, const char *s, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno || v < min || v > max)
        hc_cli_usage_error("%s wants a whole number from %llu to %llu, not '%s'",
                           opt, (unsigned long long)min, (unsigned long long)max, s);
    return v;
}

double hc_cli_double(const char *opt, const char *s, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno || !isfinite(v) || v < min || v > max)
        hc_cli_usage_error("%s wants a number from %g to %g, not '%s'", opt, min, max, s);
    return v;
}
