/*
 * harness.h — integration-test helpers: start a real hubcapd on ports
 * picked at run time with a temporary data directory, talk to it over TCP,
 * UDP and its control socket, read its alarms.log, stop or kill it.
 */
#ifndef HUBCAP_TEST_HARNESS_H
#define HUBCAP_TEST_HARNESS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hubcap/detect.h"

struct daemon {
    pid_t pid;
    char dir[256];
    unsigned tcp, udp;
    unsigned jt808, teltonika;      /* device listeners' ports */
    char control[108];
};

/* Start hubcapd (path from $HUBCAPD) with --data-dir d->dir (made fresh
 * when empty) and the extra NULL-terminated --set values; waits until it is
 * ready.  Aborts the test on failure. */
void daemon_start(struct daemon *d, const char *const *sets);
/* SIGTERM and wait; returns the exit status (or -signal). */
int daemon_stop(struct daemon *d);
/* SIGKILL and wait. */
void daemon_kill(struct daemon *d);
/* Remove the data directory. */
void daemon_cleanup(struct daemon *d);

/* One control request; the parsed answer (caller decrefs). */
json_t *daemon_control(const struct daemon *d, const char *request);
/* A counter from {"cmd":"stats"}: path like "reports" or "front.malformed". */
uint64_t daemon_stat(const struct daemon *d, const char *path);
/* Wait until the workers have taken n reports (stale and rejected count)
 * off their rings and committed them; aborts after 10 s. */
void daemon_wait_processed(const struct daemon *d, uint64_t n);

/* Lines of alarms.log, parsed (a JSON array; caller decrefs). */
json_t *daemon_alarms(const struct daemon *d);
/* How many lines alarms.log holds. */
size_t daemon_alarm_count(const struct daemon *d);

int tcp_connect(unsigned port);
/* Encode reports as one payload (an array), prefixed with its length. */
size_t frame_reports(const struct hc_report *r, size_t n, uint8_t *out, size_t cap);
void send_all(int fd, const void *buf, size_t len);
void send_reports_tcp(int fd, const struct hc_report *r, size_t n);
void send_reports_udp(unsigned port, const struct hc_report *r, size_t n);
/* 1 if the peer closed the connection within timeout_ms, 0 if not. */
int peer_closed(int fd, int timeout_ms);

/* A report for vid at (lat, lon), ts in ms. */
struct hc_report report(const char *vid, int64_t ts, double lat, double lon, int acc,
                        const char *maker);

#endif
