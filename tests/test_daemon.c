/*
 * test_daemon.c — hubcapd end to end: a real daemon on ports picked at run
 * time, a temporary data directory, real TCP and UDP sockets on 127.0.0.1,
 * its control socket, alarms.log, SIGTERM and kill -9.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "hubcap/sim.h"
#include "hubcap/wire.h"

#define LAT 52.52
#define LON 13.405
#define T0 1795000000000LL
#define STEP 300000          /* 5 minutes between fixes */

static struct daemon d;
static const char *const acme35[] = { "thresholds.acme=35", NULL };

static void fini(void)
{
    daemon_cleanup(&d);
    memset(&d, 0, sizeof(d));
}

TestSuite(daemon, .fini = fini, .timeout = 120);

/* n parked fixes of vid around (lat, lon), a few meters of jitter, from
 * fix number `from` on. */
static void parked(struct hc_report *out, const char *vid, int from, int n, double lat,
                   double lon)
{
    for (int i = 0; i < n; i++) {
        double la, lo;
        hc_sim_offset(lat, lon, 2.0 + (i % 3), i * 2.1, &la, &lo);
        out[i] = report(vid, T0 + (int64_t)(from + i) * STEP, la, lo, 0, "acme");
    }
}

/* Fixes 0..15 parked, 16..17 moved 300 m north: a tow. */
static size_t tow(struct hc_report *out, const char *vid)
{
    double la, lo;
    parked(out, vid, 0, 16, LAT, LON);
    hc_sim_offset(LAT, LON, 300, 0, &la, &lo);
    parked(out + 16, vid, 16, 2, la, lo);
    return 18;
}

/* 18 reports of a tow for each of n vehicles PREFIX-000, PREFIX-001, ... */
static void fleet_of_tows(struct hc_report *out, int n, const char *prefix)
{
    for (int c = 0; c < n; c++) {
        char vid[32];
        snprintf(vid, sizeof(vid), "%s-%03d", prefix, c);
        tow(out + c * 18, vid);
    }
}

Test(daemon, tow_over_tcp_raises_one_alarm_with_the_webhook_body)
{
    struct hc_report r[18];
    daemon_start(&d, acme35);
    int fd = tcp_connect(d.tcp);
    send_reports_tcp(fd, r, tow(r, "CAR-1"));
    daemon_wait_processed(&d, 18);
    json_t *alarms = daemon_alarms(&d);
    cr_assert_eq(json_array_size(alarms), 1);
    json_t *a = json_array_get(alarms, 0);
    cr_assert_str_eq(json_string_value(json_object_get(a, "type")), "vehicle.moved");
    json_t *data = json_object_get(a, "data");
    cr_assert_str_eq(json_string_value(json_object_get(data, "vid")), "CAR-1");
    cr_assert_str_eq(json_string_value(json_object_get(data, "maker")), "acme");
    cr_assert_str_eq(json_string_value(json_object_get(data, "state")), "firing");
    cr_assert_float_eq(json_real_value(json_object_get(data, "threshold_m")), 35.0, 1e-9);
    cr_assert_eq(json_integer_value(json_object_get(data, "exceeding_pairs")), 28);
    double far = json_real_value(json_object_get(data, "max_distance_m"));
    cr_assert(far > 295 && far < 306, "max distance %f", far);
    cr_assert_not_null(json_string_value(json_object_get(data, "alarm_id")));
    cr_assert_float_eq(json_real_value(json_object_get(json_object_get(data, "parked"), "lat")),
                       r[0].lat, 1e-8);    /* 12 significant digits: < 1 mm */
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(data, "latest"), "ts")),
                     "2026-11-18T12:31:40.000Z");
    json_decref(alarms);
    cr_assert_eq(daemon_stat(&d, "alarms"), 1);
    close(fd);
    cr_assert_eq(daemon_stop(&d), 0);
}

Test(daemon, drift_and_one_stray_do_not_alarm_and_ignition_resets)
{
    struct hc_report r[40];
    double la, lo;
    daemon_start(&d, acme35);
    int fd = tcp_connect(d.tcp);
    parked(r, "CAR-2", 0, 20, LAT, LON);
    hc_sim_offset(LAT, LON, 400, 1.0, &la, &lo);
    r[10] = report("CAR-2", r[10].ts, la, lo, 0, "acme");     /* one stray */
    /* Ignition on, then two fixes at a far spot: a new session, no alarm. */
    r[20] = report("CAR-2", T0 + 20 * STEP, LAT, LON, 1, "acme");
    hc_sim_offset(LAT, LON, 900, 2.0, &la, &lo);
    parked(r + 21, "CAR-2", 21, 2, la, lo);
    send_reports_tcp(fd, r, 23);
    daemon_wait_processed(&d, 23);
    cr_assert_eq(daemon_alarm_count(&d), 0);
    close(fd);
}

Test(daemon, tow_over_udp_alarms)
{
    struct hc_report r[18];
    daemon_start(&d, acme35);
    cr_assert_neq(d.udp, 0);
    tow(r, "VAN-9");
    send_reports_udp(d.udp, r, 10);     /* two datagrams */
    daemon_wait_processed(&d, 10);
    send_reports_udp(d.udp, r + 10, 8);
    daemon_wait_processed(&d, 18);
    cr_assert_eq(daemon_alarm_count(&d), 1);
    cr_assert_eq(daemon_stat(&d, "front.udp_datagrams"), 2);
}

Test(daemon, frames_split_anywhere_and_packed_together_decode_the_same)
{
    struct hc_report r[18];
    uint8_t buf[8192];
    size_t len = 0;
    daemon_start(&d, acme35);
    tow(r, "CAR-3");
    /* 18 frames of one report each, in one buffer ... */
    for (int i = 0; i < 18; i++)
        len += frame_reports(&r[i], 1, buf + len, sizeof(buf) - len);
    int fd = tcp_connect(d.tcp);
    /* ... sent one byte at a time for the first frames, then in one go. */
    size_t i = 0;
    for (; i < 200; i++) {
        send_all(fd, buf + i, 1);
        if (i % 16 == 0)
            usleep(200);
    }
    send_all(fd, buf + i, len - i);
    daemon_wait_processed(&d, 18);
    cr_assert_eq(daemon_alarm_count(&d), 1);
    cr_assert_eq(daemon_stat(&d, "front.frames"), 18);
    close(fd);
}

Test(daemon, malformed_frame_closes_only_its_connection)
{
    struct hc_report r[18];
    daemon_start(&d, acme35);
    int good = tcp_connect(d.tcp), bad = tcp_connect(d.tcp);
    tow(r, "CAR-4");
    send_reports_tcp(good, r, 9);
    daemon_wait_processed(&d, 9);
    uint8_t junk[] = { 0, 0, 0, 4, 0xc1, 0xc1, 0xc1, 0xc1 };   /* 0xc1: never valid */
    send_all(bad, junk, sizeof(junk));
    cr_assert(peer_closed(bad, 5000), "the bad connection is closed");
    send_reports_tcp(good, r + 9, 9);
    daemon_wait_processed(&d, 18);
    cr_assert(!peer_closed(good, 100), "the good connection stays open");
    cr_assert_eq(daemon_alarm_count(&d), 1);
    cr_assert_eq(daemon_stat(&d, "front.malformed"), 1);
    close(good);
    close(bad);
}

Test(daemon, oversized_frame_closes_only_its_connection)
{
    static const char *const sets[] = { "msgpack.max_payload=4096", "thresholds.acme=35", NULL };
    struct hc_report r[18];
    daemon_start(&d, sets);
    int good = tcp_connect(d.tcp), bad = tcp_connect(d.tcp);
    uint8_t hdr[4];
    hc_wire_frame_header(hdr, 4097);
    send_all(bad, hdr, 4);
    cr_assert(peer_closed(bad, 5000));
    tow(r, "CAR-5");
    send_reports_tcp(good, r, 18);  /* 18 reports fit in 4096 bytes */
    daemon_wait_processed(&d, 18);
    cr_assert_eq(daemon_stat(&d, "front.oversized"), 1);
    cr_assert_eq(daemon_alarm_count(&d), 1);
    close(good);
    close(bad);
}

Test(daemon, bad_report_inside_a_good_payload_is_skipped_and_counted)
{
    struct hc_report r[18];
    daemon_start(&d, acme35);
    tow(r, "CAR-6");
    struct hc_report bad = r[3];
    bad.lat = 123.0;                    /* out of range */
    struct hc_report all[19];
    memcpy(all, r, 3 * sizeof(*r));
    all[3] = bad;
    memcpy(all + 4, r + 3, 15 * sizeof(*r));
    int fd = tcp_connect(d.tcp);
    send_reports_tcp(fd, all, 19);
    daemon_wait_processed(&d, 18);
    cr_assert_eq(daemon_stat(&d, "rejected"), 1);
    cr_assert_eq(daemon_alarm_count(&d), 1);
    close(fd);
}

Test(daemon, restart_after_kill_9_restores_windows)
{
    struct hc_report r[18];
    daemon_start(&d, acme35);
    tow(r, "CAR-7");
    int fd = tcp_connect(d.tcp);
    send_reports_tcp(fd, r, 17);        /* 16 parked and the first moved fix */
    daemon_wait_processed(&d, 17);
    close(fd);
    daemon_kill(&d);                    /* no clean shutdown */
    daemon_start(&d, acme35);
    fd = tcp_connect(d.tcp);
    send_reports_tcp(fd, r + 17, 1);    /* the second moved fix */
    daemon_wait_processed(&d, 1);
    cr_assert_eq(daemon_alarm_count(&d), 1, "the tow that straddles the restart is detected");
    /* A replayed old fix is stale, not a new position. */
    send_reports_tcp(fd, r, 1);
    daemon_wait_processed(&d, 2);
    cr_assert_eq(daemon_stat(&d, "stale"), 1);
    close(fd);
}

/* Many vehicles, reports spread over many commits, so the rolling pass
 * rewrites and trims the journal many times before the crash: the first
 * half of the fleet parks and then goes quiet while the second half
 * reports, so only the rolling pass keeps the quiet half in the journal.
 * After kill -9 every vehicle comes back with its whole window. */
Test(daemon, restart_after_journal_trims_restores_every_vehicle)
{
    enum { CARS = 300, HALF = CARS / 2 };
    static struct hc_report r[CARS * 18], wave[HALF];
    daemon_start(&d, acme35);
    fleet_of_tows(r, CARS, "LOT");
    int fd = tcp_connect(d.tcp);
    uint64_t sent = 0;
    for (int half = 0; half < 2; half++)
        for (int k = 0; k < 17; k++) {  /* fix k of every car of the half */
            for (int c = 0; c < HALF; c++)
                wave[c] = r[(half * HALF + c) * 18 + k];
            send_reports_tcp(fd, wave, HALF);
            daemon_wait_processed(&d, sent += HALF);
            usleep(12000);              /* a few commit intervals */
        }
    close(fd);
    uint64_t passes = daemon_stat(&d, "workers.0.passes") + daemon_stat(&d, "workers.1.passes");
    cr_assert_geq(passes, 8, "the journal was trimmed (%llu passes)", (unsigned long long)passes);
    daemon_kill(&d);

    daemon_start(&d, acme35);
    cr_assert_eq(daemon_stat(&d, "vehicles"), CARS);
    fd = tcp_connect(d.tcp);
    for (int half = 0; half < 2; half++) {
        for (int c = 0; c < HALF; c++)
            wave[c] = r[(half * HALF + c) * 18 + 17];  /* the second moved fix */
        send_reports_tcp(fd, wave, HALF);
    }
    daemon_wait_processed(&d, CARS);
    close(fd);
    cr_assert_eq(daemon_alarm_count(&d), CARS, "every tow straddling the restart is detected");
}

/* The rolling pass keeps pace with the journal instead of racing ahead of
 * it: when even and odd cars report in turn, each half is written by its
 * own reports, and the pass finds almost nothing left to rewrite (racing
 * ahead, it rewrote the other half every time: one record per report). */
Test(daemon, rolling_pass_writes_little_when_the_fleet_reports)
{
    enum { CARS = 2000 };
    static struct hc_report r[CARS * 18], wave[CARS / 2];
    daemon_start(&d, acme35);
    fleet_of_tows(r, CARS, "ODD");
    int fd = tcp_connect(d.tcp);
    uint64_t sent = 0;
    for (int k = 0; k < 16; k++)
        for (int parity = 0; parity < 2; parity++) {
            for (int c = 0; c < CARS / 2; c++)
                wave[c] = r[(2 * c + parity) * 18 + k];
            send_reports_tcp(fd, wave, CARS / 2);
            daemon_wait_processed(&d, sent += CARS / 2);
            usleep(12000);              /* a commit in between */
        }
    close(fd);
    uint64_t persisted = daemon_stat(&d, "persisted");
    uint64_t rolled = daemon_stat(&d, "workers.0.rolled") + daemon_stat(&d, "workers.1.rolled");
    uint64_t passes = daemon_stat(&d, "workers.0.passes") + daemon_stat(&d, "workers.1.passes");
    cr_assert_geq(persisted, sent * 9 / 10, "nearly every report dirtied its car");
    cr_assert_geq(passes, 4, "the pass still completes (%llu passes)", (unsigned long long)passes);
    cr_assert_leq(rolled * 4, persisted, "the pass rewrote %llu records beside %llu dirty ones",
                  (unsigned long long)rolled, (unsigned long long)persisted);
}

Test(daemon, sigterm_drains_everything_sent)
{
    enum { CARS = 200 };
    static const char *const sets[] = { "thresholds.acme=35", "ring.size=1024", NULL };
    static struct hc_report r[CARS * 18];
    daemon_start(&d, sets);
    fleet_of_tows(r, CARS, "FLEET");
    int fd = tcp_connect(d.tcp);
    for (int i = 0; i < CARS * 18; i += 100)
        send_reports_tcp(fd, r + i, CARS * 18 - i < 100 ? (size_t)(CARS * 18 - i) : 100);
    usleep(100000);     /* let the kernel hand the last bytes over */
    cr_assert_eq(daemon_stop(&d), 0, "SIGTERM exits 0");
    close(fd);
    cr_assert_eq(daemon_alarm_count(&d), CARS, "every tow sent before SIGTERM is an alarm");
}

Test(daemon, backpressure_loses_nothing)
{
    enum { N = 20000 };
    static const char *const sets[] = { "ring.size=1024", "core.workers=1", NULL };
    static struct hc_report r[N];
    daemon_start(&d, sets);
    for (int i = 0; i < N; i++) {
        char vid[16];
        snprintf(vid, sizeof(vid), "BP-%04d", i % 500);
        r[i] = report(vid, T0 + (int64_t)(i / 500) * STEP, LAT + (i % 500) * 0.01, LON, 0, "acme");
    }
    int fd = tcp_connect(d.tcp);
    for (int i = 0; i < N; i += 2000)
        send_reports_tcp(fd, r + i, 2000);
    daemon_wait_processed(&d, N);
    cr_assert_eq(daemon_stat(&d, "reports"), N);
    cr_assert_eq(daemon_stat(&d, "stale"), 0);
    cr_assert_eq(daemon_stat(&d, "front.lost"), 0);
    cr_assert_eq(daemon_stat(&d, "vehicles"), 500);
    close(fd);
}

Test(daemon, control_socket_refuses_bad_requests)
{
    daemon_start(&d, NULL);
    json_t *a = daemon_control(&d, "this is not json\n");
    cr_assert(json_is_false(json_object_get(a, "ok")));
    cr_assert_not_null(json_string_value(json_object_get(a, "error")));
    json_decref(a);
    a = daemon_control(&d, "{\"cmd\":\"frobnicate\"}\n");
    cr_assert(json_is_false(json_object_get(a, "ok")));
    json_decref(a);
    a = daemon_control(&d, "{\"cmd\":\"status\"}\n");
    cr_assert(json_is_true(json_object_get(a, "ok")));
    cr_assert_eq(json_integer_value(json_object_get(a, "msgpack_tcp")), d.tcp);
    json_decref(a);

    /* Oversized: refused, and the daemon still answers. */
    size_t big = 70000;
    char *req = malloc(big + 1);
    cr_assert_not_null(req);
    memset(req, ' ', big);
    static const char head[] = "{\"cmd\":\"status\",\"pad\":\"";
    memcpy(req, head, strlen(head));
    memcpy(req + big - 3, "\"}\n", 3);
    req[big] = '\0';
    a = daemon_control(&d, req);
    free(req);
    cr_assert(json_is_false(json_object_get(a, "ok")));
    cr_assert(strstr(json_string_value(json_object_get(a, "error")), "too large"));
    json_decref(a);

    /* Bad values change nothing. */
    static const char *const bad[] = {
        "{\"cmd\":\"threshold.set\",\"maker\":\"acme\",\"meters\":\"nan\"}\n",
        "{\"cmd\":\"threshold.set\",\"maker\":\"acme\",\"meters\":-3}\n",
        "{\"cmd\":\"threshold.set\",\"thresholds\":{\"acme\":5,\"zeta\":0}}\n",
        "{\"cmd\":\"threshold.set\",\"maker\":\"acme\"}\n",
        "{\"cmd\":\"threshold.unset\",\"maker\":\"acme\"}\n",
        "{\"cmd\":\"vehicle.alarm\",\"vid\":\"CAR\",\"on\":\"yes\"}\n",
        "{\"cmd\":\"vehicle.list\",\"limit\":0}\n",
        "{\"cmd\":\"vehicle.show\",\"vid\":\"never-seen\"}\n",
        "{\"cmd\":\"alarm.ack\",\"id\":\"0-999\",\"state\":\"done\"}\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        a = daemon_control(&d, bad[i]);
        cr_assert(json_is_false(json_object_get(a, "ok")), "refused: %s", bad[i]);
        cr_assert_not_null(json_string_value(json_object_get(a, "error")));
        json_decref(a);
    }
    a = daemon_control(&d, "{\"cmd\":\"threshold.list\"}\n");
    cr_assert_eq(json_array_size(json_object_get(a, "thresholds")), 0, "no threshold was set");
    json_decref(a);
    a = daemon_control(&d, "{\"cmd\":\"vehicle.list\"}\n");
    cr_assert_eq(json_array_size(json_object_get(a, "vehicles")), 0, "no vehicle was made");
    json_decref(a);
}

Test(daemon, second_daemon_on_the_same_data_dir_is_refused)
{
    daemon_start(&d, NULL);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s --data-dir %s --set msgpack.port=0 --set jt808.port=0 --set teltonika.port=0 2>/dev/null",
             getenv("HUBCAPD"), d.dir);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "refused with exit status 1");
}

Test(daemon, a_data_dir_keeps_its_worker_count)
{
    daemon_start(&d, NULL);             /* the harness runs 2 workers */
    cr_assert_eq(daemon_stop(&d), 0);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s --data-dir %s --set msgpack.port=0 --set jt808.port=0 --set teltonika.port=0 --set core.workers=1"
             " 2>/dev/null", getenv("HUBCAPD"), d.dir);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1,
              "refused: its vehicles are sharded over 2 workers");
    daemon_start(&d, NULL);             /* the same count still starts */
}

Test(daemon, a_control_client_that_never_reads_cannot_block_sigterm)
{
    daemon_start(&d, NULL);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, d.control, sizeof(d.control));
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    /* Many requests, never reading an answer. */
    static char burst[200 * 16];
    for (int i = 0; i < 200; i++)
        memcpy(burst + i * 16, "{\"cmd\":\"stats\"}\n", 16);
    for (int i = 0; i < 20; i++)
        if (send(fd, burst, sizeof(burst), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            break;
    usleep(200000);
    cr_assert_eq(daemon_stop(&d), 0, "SIGTERM still stops hubcapd");
    close(fd);
}

Test(daemon, alarms_survive_a_failing_alarms_log)
{
    struct hc_report r[18];
    char log[300];
    snprintf(d.dir, sizeof(d.dir), "/tmp/hubcap-test-XXXXXX");
    cr_assert_not_null(mkdtemp(d.dir));
    snprintf(log, sizeof(log), "%s/alarms.log", d.dir);
    cr_assert_eq(symlink("/dev/full", log), 0);     /* every append: ENOSPC */
    daemon_start(&d, acme35);
    int fd = tcp_connect(d.tcp);
    for (int c = 0; c < 3; c++) {
        char vid[16];
        snprintf(vid, sizeof(vid), "FULL-%d", c);
        send_reports_tcp(fd, r, tow(r, vid));
    }
    daemon_wait_processed(&d, 54);
    cr_assert_eq(daemon_stat(&d, "alarms"), 3);
    close(fd);
    cr_assert_eq(daemon_stop(&d), 0);
    /* The disk has room again: the next start appends what the store kept. */
    cr_assert_eq(unlink(log), 0);
    daemon_start(&d, acme35);
    cr_assert_eq(daemon_alarm_count(&d), 3, "no alarm lost while alarms.log could not be written");
}

Test(daemon, a_udp_datagram_that_cannot_be_queued_is_dropped_whole_and_counted)
{
    enum { N = 1100 };                  /* more than a 1024-slot ring holds */
    static const char *const sets[] = { "ring.size=1024", "core.workers=1", NULL };
    static struct hc_report r[N];
    daemon_start(&d, sets);
    for (int i = 0; i < N; i++) {
        char vid[8];
        snprintf(vid, sizeof(vid), "U%d", i);
        r[i] = report(vid, T0, LAT, LON, 0, NULL);
    }
    send_reports_udp(d.udp, r, N);
    struct hc_report one = report("U-ok", T0, LAT, LON, 0, NULL);
    for (int i = 0; i < 100 && daemon_stat(&d, "front.udp_datagrams") < 1; i++)
        usleep(10000);
    send_reports_udp(d.udp, &one, 1);
    daemon_wait_processed(&d, 1);
    cr_assert_eq(daemon_stat(&d, "front.udp_datagrams"), 2);
    cr_assert_eq(daemon_stat(&d, "front.udp_dropped"), 1, "the big datagram, whole");
    cr_assert_eq(daemon_stat(&d, "reports"), 1, "none of its reports, all of the next one");
    cr_assert_eq(daemon_stat(&d, "vehicles"), 1);
}
