/*
 * cli.h — strict parsing of command-line numbers for every hubcap program:
 * the whole argument must be a number in range, or the program says which
 * option wanted what and exits with status 2 (usage error).
 */
#ifndef HUBCAP_CLI_H
#define HUBCAP_CLI_H

#include <stdint.h>

/* Program name used in messages (set once from argv[0] by hc_cli_init). */
extern const char *hc_cli_prog;
void hc_cli_init(const char *argv0);

/* Parse s as an integer in [min, max] or exit(2) naming opt. */
uint64_t hc_cli_uint(const char *opt, const char *s, uint64_t min, uint64_t max);

/* Parse s as a finite number in [min, max] or exit(2) naming opt. */
double hc_cli_double(const char *opt, const char *s, double min, double max);

/* Print "PROG: message" and "Try 'PROG --help'." to stderr, exit(2). */
void hc_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
