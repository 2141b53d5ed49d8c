/*
 * test_ctl.c — hubcapctl end to end: the real hubcapctl binary (from
 * $HUBCAPCTL, run with fork/exec, its stdout, stderr and exit status
 * captured) against a real hubcapd on ports picked at run time, reports
 * sent over TCP, alarms read back from alarms.log.  Each test pins what an
 * operator relies on: a change made with hubcapctl changes the daemon's
 * next decision and outlives a restart; a refused change changes nothing;
 * the exit status says which of done / refused / usage / unreachable
 * happened; the socket keeps out users it should.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "httprecv.h"
#include "hubcap/ctl.h"
#include "hubcap/sim.h"

#define LAT 52.52
#define LON 13.405
#define T0 1795000000000LL
#define STEP 300000             /* 5 minutes between fixes */
#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SECRET2 "whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24h"
#define NOBODY 65534            /* nobody / nogroup on Debian */

static struct daemon d;
static struct hr_server *rx;

static void fini(void)
{
    daemon_cleanup(&d);
    memset(&d, 0, sizeof(d));
    hr_free(rx);
    rx = NULL;
}

TestSuite(ctl, .fini = fini, .timeout = 180);

/* ---- running hubcapctl ------------------------------------------------------ */

/* What one hubcapctl run printed and how it ended. */
struct run {
    int status;                 /* exit status, or 128 + the signal */
    char out[1 << 16];
    char err[1 << 14];
};

static struct run r;

static void drain(int fd, char *buf, size_t cap, size_t *len, int *open_)
{
    ssize_t n = read(fd, buf + *len, cap - 1 - *len);
    if (n > 0) {
        *len += (size_t)n;
    } else if (n == 0 || errno != EINTR) {
        *open_ = 0;
    }
    buf[*len] = '\0';
    if (*len == cap - 1)        /* full: read no more, let it finish */
        *open_ = 0;
}

/* Run hubcapctl args (NULL-terminated) into r, as uid:gid with no
 * supplementary groups when uid >= 0; returns its exit status. */
static const char *stdin_text;     /* what hubcapctl reads on stdin; NULL: nothing */

static int run_argv(long uid, long gid, const char *const *args)
{
    const char *bin = getenv("HUBCAPCTL");
    cr_assert_not_null(bin, "set HUBCAPCTL to the hubcapctl binary");
    const char *argv[48];
    int n = 0;
    argv[n++] = bin;
    for (int i = 0; args[i]; i++) {
        cr_assert_lt(n, 47);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    int po[2], pe[2], pi[2];
    cr_assert_eq(pipe2(po, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(pe, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(pi, O_CLOEXEC), 0);
    if (stdin_text)             /* small: fits in the pipe before the child runs */
        cr_assert_eq(write(pi[1], stdin_text, strlen(stdin_text)), (ssize_t)strlen(stdin_text));
    close(pi[1]);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(pi[0], STDIN_FILENO);
        dup2(po[1], STDOUT_FILENO);
        dup2(pe[1], STDERR_FILENO);
        if (uid >= 0 && (setgroups(0, NULL) < 0 || setgid((gid_t)gid) < 0 ||
                         setuid((uid_t)uid) < 0))
            _exit(126);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(pi[0]);
    close(po[1]);
    close(pe[1]);
    size_t lo = 0, le = 0;
    int oo = 1, oe = 1;
    r.out[0] = r.err[0] = '\0';
    for (int waited = 0; (oo || oe) && waited < 60000;) {
        struct pollfd p[2] = { { oo ? po[0] : -1, POLLIN, 0 }, { oe ? pe[0] : -1, POLLIN, 0 } };
        int k = poll(p, 2, 100);
        waited += k == 0 ? 100 : 0;
        if (p[0].revents)
            drain(po[0], r.out, sizeof(r.out), &lo, &oo);
        if (p[1].revents)
            drain(pe[0], r.err, sizeof(r.err), &le, &oe);
    }
    close(po[0]);
    close(pe[0]);
    int st;
    for (int i = 0; waitpid(pid, &st, WNOHANG) != pid; i++) {
        if (i == 1000) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            cr_assert_fail("hubcapctl did not finish within 10 s of closing its output");
        }
        usleep(10000);
    }
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    cr_assert_neq(r.status, 127, "hubcapctl could not be executed: %s", bin);
    cr_assert_neq(r.status, 126, "could not drop privileges to %ld:%ld", uid, gid);
    return r.status;
}

static int run_va(long uid, long gid, const char *dir, const char *first, va_list ap)
{
    const char *args[40];
    int n = 0;
    if (dir) {
        args[n++] = "--data-dir";
        args[n++] = dir;
    }
    for (const char *a = first; a && n < 39; a = va_arg(ap, const char *))
        args[n++] = a;
    args[n] = NULL;
    return run_argv(uid, gid, args);
}

static int ctl_dir(const char *dir, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    int rc = run_va(-1, -1, dir, first, ap);
    va_end(ap);
    return rc;
}

static int ctl_as(long uid, long gid, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    int rc = run_va(uid, gid, d.dir, first, ap);
    va_end(ap);
    return rc;
}

/* hubcapctl --data-dir <the daemon's> ARGS: its exit status; output in r. */
#define CTL(...) ctl_dir(d.dir, __VA_ARGS__, (const char *)NULL)
#define CTL_IN(dir, ...) ctl_dir(dir, __VA_ARGS__, (const char *)NULL)
#define CTL_AS(uid, gid, ...) ctl_as(uid, gid, __VA_ARGS__, (const char *)NULL)

/* Assert hubcapctl ARGS exits with want; say what it printed if not. */
#define EXPECT(want, ...)                                                                     \
    do {                                                                                      \
        int rc_ = CTL(__VA_ARGS__);                                                           \
        cr_assert_eq(rc_, want, "hubcapctl %s: exit %d, want %d\nstdout: %s\nstderr: %s",     \
                     #__VA_ARGS__, rc_, want, r.out, r.err);                                  \
    } while (0)

/* text has a line whose first whitespace-separated words are words. */
static int has_line(const char *text, const char *const *words)
{
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[4096];
        snprintf(buf, sizeof(buf), "%.*s", (int)len, line);
        char *save = NULL, *tok = strtok_r(buf, " \t", &save);
        int i = 0;
        while (words[i] && tok && strcmp(tok, words[i]) == 0) {
            i++;
            tok = strtok_r(NULL, " \t", &save);
        }
        if (!words[i])
            return 1;
        line = end ? end + 1 : NULL;
    }
    return 0;
}

#define HAS_LINE(text, ...) has_line(text, (const char *const[]){ __VA_ARGS__, NULL })

/* r.out as JSON (caller decrefs); asserts it parses. */
static json_t *out_json(void)
{
    json_error_t e;
    json_t *j = json_loads(r.out, 0, &e);
    cr_assert_not_null(j, "--json printed JSON: %s (%s)", e.text, r.out);
    return j;
}

/* ---- reports ------------------------------------------------------------------ */

/* n fixes of vid, numbers from..from+n-1 (5 minutes apart), each `radius`
 * meters from (lat, lon) at a bearing that turns 2.4 rad a fix: with
 * radius 15 no two are more than 30 m apart, and most pairs more than
 * 10 m.  Sent over TCP; returns when the daemon processed them. */
static void fixes(const char *vid, const char *maker, int from, int n, double lat, double lon,
                  double radius)
{
    struct hc_report rep[64];
    cr_assert_leq(n, 64);
    for (int i = 0; i < n; i++) {
        double la, lo;
        hc_sim_offset(lat, lon, radius, (from + i) * 2.4, &la, &lo);
        rep[i] = report(vid, T0 + (int64_t)(from + i) * STEP, la, lo, 0, maker);
    }
    uint64_t before = daemon_stat(&d, "reports");
    int fd = tcp_connect(d.tcp);
    send_reports_tcp(fd, rep, (size_t)n);
    daemon_wait_processed(&d, before + (uint64_t)n);
    close(fd);
}

/* Alarms of vid in alarms.log; the id of the last one into id (if any). */
static size_t alarms_of(const char *vid, char *id, size_t cap)
{
    json_t *all = daemon_alarms(&d), *a;
    size_t i, n = 0;
    json_array_foreach(all, i, a) {
        json_t *data = json_object_get(a, "data");
        const char *v = json_string_value(json_object_get(data, "vid"));
        if (v && strcmp(v, vid) == 0) {
            n++;
            if (id)
                snprintf(id, cap, "%s", json_string_value(json_object_get(data, "alarm_id")));
        }
    }
    json_decref(all);
    return n;
}

static void wait_alarms_of(const char *vid, size_t n)
{
    for (int i = 0; i < 500 && alarms_of(vid, NULL, 0) < n; i++)
        usleep(10000);
    cr_assert_eq(alarms_of(vid, NULL, 0), n, "%zu alarms of %s in alarms.log", n, vid);
}

/* 16 parked fixes at (LAT, LON), then 3 at 300 m north: a tow. */
static void tow(const char *vid)
{
    double la, lo;
    fixes(vid, "acme", 0, 16, LAT, LON, 3);
    hc_sim_offset(LAT, LON, 300, 0, &la, &lo);
    fixes(vid, "acme", 16, 3, la, lo, 3);
}

/* ---- the tests ------------------------------------------------------------------ */

Test(ctl, threshold_set_decides_the_next_report_and_outlives_a_restart)
{
    /* Scattered fixes that only the seed rule calls a move at 10 m. */
    static const char *const sets[] = { "detect.default_threshold_m=100", "thresholds.zeta=50",
                                        "detect.rule=seed", NULL };
    daemon_start(&d, sets);
    EXPECT(0, "threshold", "list");
    cr_assert(HAS_LINE(r.out, "MAKER", "METERS", "SOURCE"), "%s", r.out);
    cr_assert(HAS_LINE(r.out, "zeta", "50", "config"), "%s", r.out);
    cr_assert(HAS_LINE(r.out, "(default)", "100"), "%s", r.out);
    EXPECT(0, "threshold", "get", "acme");
    cr_assert(HAS_LINE(r.out, "acme", "100", "default"), "%s", r.out);

    /* Parked, fixes ~30 m apart: nothing at 100 m. */
    fixes("PARK-1", "acme", 0, 16, LAT, LON, 15);
    cr_assert_eq(alarms_of("PARK-1", NULL, 0), 0);

    EXPECT(0, "threshold", "set", "acme", "10");
    cr_assert(HAS_LINE(r.out, "acme", "10", "live"), "%s", r.out);
    EXPECT(0, "threshold", "get", "acme");
    cr_assert(HAS_LINE(r.out, "acme", "10", "live"), "%s", r.out);
    EXPECT(0, "threshold", "list");
    cr_assert(HAS_LINE(r.out, "acme", "10", "live"), "%s", r.out);
    cr_assert(HAS_LINE(r.out, "zeta", "50", "config"), "%s", r.out);

    /* The same jitter, the same parked vehicle: now it is a move. */
    fixes("PARK-1", "acme", 16, 4, LAT, LON, 15);
    wait_alarms_of("PARK-1", 1);
    json_t *log = daemon_alarms(&d);
    json_t *data = json_object_get(json_array_get(log, 0), "data");
    cr_assert_float_eq(json_number_value(json_object_get(data, "threshold_m")), 10.0, 1e-9);
    json_decref(log);

    cr_assert_eq(daemon_stop(&d), 0);
    daemon_start(&d, sets);
    EXPECT(0, "threshold", "get", "acme");
    cr_assert(HAS_LINE(r.out, "acme", "10", "live"), "kept across the restart: %s", r.out);

    EXPECT(0, "threshold", "unset", "acme");
    cr_assert(HAS_LINE(r.out, "acme", "100", "default"), "%s", r.out);
    EXPECT(0, "threshold", "get", "acme");
    cr_assert(HAS_LINE(r.out, "acme", "100", "default"), "%s", r.out);
}

Test(ctl, vehicle_alarm_off_suppresses_a_tow_and_on_starts_a_fresh_window)
{
    double la, lo, la2, lo2;
    daemon_start(&d, NULL);
    hc_sim_offset(LAT, LON, 2000, 1.0, &la, &lo);
    hc_sim_offset(la, lo, 2000, 2.0, &la2, &lo2);

    fixes("CAR", "acme", 0, 16, LAT, LON, 3);
    EXPECT(0, "vehicle", "alarm", "CAR", "off");
    cr_assert(strstr(r.out, "alarm off"), "%s", r.out);
    /* Staff tow it 2 km: 4 fixes there would alarm (4 x 12 pairs > 15). */
    fixes("CAR", "acme", 16, 4, la, lo, 3);
    usleep(300000);                                 /* well past a commit */
    cr_assert_eq(alarms_of("CAR", NULL, 0), 0, "no alarm while switched off");
    EXPECT(0, "vehicle", "show", "CAR");
    cr_assert(HAS_LINE(r.out, "vid:", "CAR"), "%s", r.out);
    cr_assert(HAS_LINE(r.out, "alarm:", "off"), "%s", r.out);
    EXPECT(0, "vehicle", "list", "--alarm-off");
    cr_assert(HAS_LINE(r.out, "CAR", "acme"), "%s", r.out);

    EXPECT(0, "vehicle", "alarm", "CAR", "on");
    cr_assert(strstr(r.out, "alarm on"), "%s", r.out);
    EXPECT(0, "vehicle", "show", "CAR");
    cr_assert(HAS_LINE(r.out, "alarm:", "on"), "%s", r.out);
    /* Parked where staff left it: the window starts afresh, so the fixes
     * from before the tow do not make these a move. */
    fixes("CAR", "acme", 20, 16, la, lo, 3);
    usleep(300000);
    cr_assert_eq(alarms_of("CAR", NULL, 0), 0, "the tow before 'on' does not count");
    fixes("CAR", "acme", 36, 3, la2, lo2, 3);       /* towed for real */
    wait_alarms_of("CAR", 1);

    EXPECT(0, "vehicle", "list", "--alarming");
    cr_assert(HAS_LINE(r.out, "CAR", "acme"), "%s", r.out);
    EXPECT(0, "vehicle", "list", "--alarming", "--json");
    json_t *j = out_json();
    json_t *v = json_array_get(json_object_get(j, "vehicles"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(v, "vid")), "CAR");
    cr_assert(json_is_true(json_object_get(v, "alarmed")));
    cr_assert_eq(json_array_size(json_object_get(j, "vehicles")), 1);
    json_decref(j);
}

Test(ctl, alarm_ack_moves_an_alarm_through_processing_to_done)
{
    char id[64] = "";
    daemon_start(&d, NULL);
    tow("CAR-A");
    wait_alarms_of("CAR-A", 1);
    alarms_of("CAR-A", id, sizeof(id));

    EXPECT(0, "alarm", "list");
    cr_assert(HAS_LINE(r.out, "ID", "STATE", "ROUND", "VID", "MAKER", "RAISED", "NEXT"), "%s",
              r.out);
    cr_assert(HAS_LINE(r.out, id, "firing", "1", "CAR-A", "acme"), "%s", r.out);
    EXPECT(0, "alarm", "show", id);
    cr_assert(HAS_LINE(r.out, "state:", "firing"), "%s", r.out);

    EXPECT(0, "alarm", "ack", id, "processing");
    EXPECT(0, "alarm", "show", id);
    cr_assert(HAS_LINE(r.out, "state:", "processing"), "%s", r.out);
    EXPECT(0, "alarm", "list", "--state", "processing");
    cr_assert(HAS_LINE(r.out, id, "processing"), "%s", r.out);

    EXPECT(0, "alarm", "ack", id, "done");
    EXPECT(0, "alarm", "show", id);
    cr_assert(HAS_LINE(r.out, "state:", "done"), "%s", r.out);
    EXPECT(0, "alarm", "list", "--state", "done");
    cr_assert(HAS_LINE(r.out, id, "done", "1", "CAR-A"), "%s", r.out);
    EXPECT(0, "alarm", "list", "--state=firing");
    cr_assert(!strstr(r.out, id), "no longer firing: %s", r.out);
    EXPECT(0, "--json", "alarm", "show", id);
    json_t *j = out_json();
    cr_assert_str_eq(json_string_value(hc_json_path(j, "alarm.state")), "done");
    json_decref(j);
}

/* hubcapctl ARGS exits 1 with "hubcapctl: <the daemon's reason>". */
#define REFUSED(...)                                                                          \
    do {                                                                                      \
        EXPECT(1, __VA_ARGS__);                                                               \
        cr_assert(strncmp(r.err, "hubcapctl: ", 11) == 0 && strlen(r.err) > 13,               \
                  "the reason on stderr: %s", r.err);                                         \
        cr_assert_str_empty(r.out);                                                           \
    } while (0)

/* hubcapctl ARGS exits 2, sends nothing, says to try --help. */
#define USAGE(...)                                                                            \
    do {                                                                                      \
        EXPECT(2, __VA_ARGS__);                                                               \
        cr_assert(strstr(r.err, "Try 'hubcapctl --help'."), "%s", r.err);                     \
        cr_assert_str_empty(r.out);                                                           \
    } while (0)

/* What alarm settings and channel list print, together. */
static void snapshot(char *buf, size_t cap)
{
    EXPECT(0, "alarm", "settings");
    size_t len = (size_t)snprintf(buf, cap, "%s", r.out);
    EXPECT(0, "channel", "list");
    snprintf(buf + len, cap - len, "%s", r.out);
}

Test(ctl, bad_values_are_refused_and_change_nothing)
{
    static char before[8192], after[8192];
    static const char *const sets[] = { "detect.default_threshold_m=100", "thresholds.acme=35",
                                        "channel.app.url=http://127.0.0.1:9/app",
                                        "channel.app.secret=" SECRET, NULL };
    daemon_start(&d, sets);
    snapshot(before, sizeof(before));
    cr_assert(HAS_LINE(before, "app", "100", "0s", "http://127.0.0.1:9/app"), "%s", before);

    REFUSED("alarm", "ack", "0-999", "done");
    cr_assert(strstr(r.err, "0-999"), "names the alarm: %s", r.err);
    REFUSED("alarm", "settings", "--snooze", "5parsecs");
    REFUSED("alarm", "settings", "--repeat", "10");
    REFUSED("channel", "set", "nosuch", "--priority", "1");
    REFUSED("channel", "remove", "nosuch");
    snapshot(after, sizeof(after));
    cr_assert_str_eq(after, before, "nothing changed");

    /* Numbers the local check lets through (any finite number) and the
     * daemon refuses (greater than 0, at most 20000000). */
    EXPECT(0, "threshold", "get", "acme");
    cr_assert(HAS_LINE(r.out, "acme", "35", "config"), "%s", r.out);
    REFUSED("threshold", "set", "acme", "-5");
    REFUSED("threshold", "set", "acme", "0");
    REFUSED("threshold", "set", "acme", "30000000");
    EXPECT(0, "threshold", "get", "acme");
    cr_assert(HAS_LINE(r.out, "acme", "35", "config"), "nothing changed: %s", r.out);

    /* --json: the answer on stdout, still exit 1. */
    EXPECT(1, "--json", "threshold", "set", "acme", "30000000");
    json_t *j = out_json();
    cr_assert(json_is_false(json_object_get(j, "ok")));
    cr_assert_not_null(json_string_value(json_object_get(j, "error")));
    json_decref(j);
    EXPECT(0, "threshold", "get", "acme");
    cr_assert(HAS_LINE(r.out, "acme", "35", "config"), "nothing changed: %s", r.out);
}

Test(ctl, rule_set_switches_a_maker_live_and_outlives_a_restart)
{
    static const char *const sets[] = { "thresholds.acme=10", "rules.zeta=seed", NULL };
    daemon_start(&d, sets);
    EXPECT(0, "rule", "list");
    cr_assert(HAS_LINE(r.out, "MAKER", "RULE", "SOURCE"), "%s", r.out);
    cr_assert(HAS_LINE(r.out, "zeta", "seed", "config"), "%s", r.out);
    cr_assert(HAS_LINE(r.out, "(default)", "robust", "default"), "%s", r.out);
    EXPECT(0, "rule", "get", "acme");
    cr_assert(HAS_LINE(r.out, "acme", "robust", "default"), "%s", r.out);

    /* Fixes scattered over 30 m with a 10 m threshold: no time split, so
     * the robust rule sees no move; the seed rule counts the pairs. */
    fixes("PARK-R", "acme", 0, 16, LAT, LON, 15);
    cr_assert_eq(alarms_of("PARK-R", NULL, 0), 0);
    REFUSED("rule", "set", "acme", "fuzzy");
    cr_assert(strstr(r.err, "seed or robust"), "says what is allowed: %s", r.err);
    EXPECT(0, "rule", "get", "acme");
    cr_assert(HAS_LINE(r.out, "acme", "robust", "default"), "nothing changed: %s", r.out);
    EXPECT(0, "rule", "set", "acme", "seed");
    cr_assert(HAS_LINE(r.out, "acme", "seed", "live"), "%s", r.out);
    fixes("PARK-R", "acme", 16, 1, LAT, LON, 15);
    wait_alarms_of("PARK-R", 1);
    /* And back: the workers really decide by the rule named. */
    EXPECT(0, "rule", "set", "acme", "robust");
    fixes("PARK-S", "acme", 0, 20, LAT, LON, 15);
    cr_assert_eq(alarms_of("PARK-S", NULL, 0), 0);
    EXPECT(0, "rule", "set", "acme", "seed");

    cr_assert_eq(daemon_stop(&d), 0);
    daemon_start(&d, sets);
    EXPECT(0, "rule", "get", "acme");
    cr_assert(HAS_LINE(r.out, "acme", "seed", "live"), "kept across the restart: %s", r.out);
    EXPECT(0, "rule", "unset", "zeta");
    cr_assert(HAS_LINE(r.out, "zeta", "robust", "default"), "%s", r.out);
    cr_assert_eq(daemon_stop(&d), 0);
    daemon_start(&d, sets);
    EXPECT(0, "rule", "get", "zeta");
    cr_assert(HAS_LINE(r.out, "zeta", "robust", "default"),
              "the unset outlives a restart though the configuration names zeta: %s", r.out);
    REFUSED("rule", "unset", "zeta");
}

Test(ctl, usage_errors_exit_2_before_contacting_and_unreachable_exits_3)
{
    static char before[8192], after[8192];
    daemon_start(&d, NULL);
    snapshot(before, sizeof(before));
    USAGE("threshold");
    USAGE("threshold", "set", "acme");
    USAGE("threshold", "set", "acme", "nan");
    USAGE("threshold", "set", "acme", "abc");
    USAGE("threshold", "set", "acme", "10", "extra");
    USAGE("bogus");
    USAGE("vehicle", "alarm", "CAR", "maybe");
    USAGE("alarm", "ack", "0-1", "later");
    USAGE("alarm", "list", "--state", "sleeping");
    USAGE("alarm", "settings", "--snooze");
    USAGE("channel", "add", "sms", "--url", "http://127.0.0.1:9/sms");    /* no --secret */
    USAGE("channel", "set", "app", "--priority", "high");
    USAGE("vehicle", "list", "--limit", "many");
    USAGE("deadletter", "replay", "first");
    USAGE("status", "--state", "done");
    USAGE("status", "--bogus");
    snapshot(after, sizeof(after));
    cr_assert_str_eq(after, before, "nothing changed");

    EXPECT(0, "--help");
    cr_assert(strstr(r.out, "threshold set MAKER METERS"), "%s", r.out);
    cr_assert(strstr(r.out, "docs/CONTROL.md"), "%s", r.out);
    EXPECT(0, "alarm", "ack", "--help");
    cr_assert(strstr(r.out, "alarm ack ID processing|done"), "%s", r.out);

    /* Checked before contacting: a usage error is 2 even with no daemon. */
    char empty[] = "/tmp/hubcap-ctl-empty-XXXXXX";
    cr_assert_not_null(mkdtemp(empty));
    cr_assert_eq(CTL_IN(empty, "threshold", "set", "acme", "abc"), 2, "%s", r.err);
    cr_assert_eq(CTL_IN(empty, "status"), 3, "%s", r.err);
    cr_assert(strstr(r.err, "cannot reach hubcapd"), "%s", r.err);
    cr_assert(strstr(r.err, "is hubcapd running"), "says what to do: %s", r.err);
    cr_assert_str_empty(r.out);
    cr_assert_eq(CTL_IN(empty, "--json", "threshold", "set", "acme", "10"), 3, "%s", r.err);
    cr_assert_str_empty(r.out);
    rmdir(empty);
}

/* nobody's uid and nogroup's gid. */
static void nobody(long *uid, long *gid)
{
    struct passwd *pw = getpwnam("nobody");
    struct group *gr = getgrnam("nogroup");
    *uid = pw ? (long)pw->pw_uid : NOBODY;
    *gid = gr ? (long)gr->gr_gid : NOBODY;
}

Test(ctl, a_socket_of_another_user_is_refused)
{
    if (geteuid() != 0)
        cr_skip_test("needs root: it runs hubcapctl as nobody against root's daemon");
    long uid, gid;
    nobody(&uid, &gid);
    daemon_start(&d, NULL);

    /* (a) The socket is 0600 in a 0700 directory: the kernel refuses. */
    cr_assert_eq(CTL_AS(uid, gid, "status"), 3, "%s", r.err);
    cr_assert(strstr(r.err, "permission denied"), "%s", r.err);

    /* (b) The modes loosened by hand: the connect goes through, and the
     * daemon's peer-credential check refuses. */
    cr_assert_eq(chmod(d.control, 0666), 0);
    cr_assert_eq(chmod(d.dir, 0755), 0);
    cr_assert_eq(CTL_AS(uid, gid, "status"), 1, "%s", r.err);
    cr_assert(strstr(r.err, "permission denied"), "%s", r.err);
    cr_assert_null(strstr(r.err, "cannot reach"), "the daemon's answer: %s", r.err);
    cr_assert_eq(CTL("status"), 0, "root still may: %s", r.err);
}

Test(ctl, control_group_members_may_use_the_socket)
{
    if (geteuid() != 0)
        cr_skip_test("needs root: it runs hubcapctl as nobody against root's daemon");
    long uid, gid;
    nobody(&uid, &gid);
    static const char *const sets[] = { "control.group=nogroup", NULL };
    daemon_start(&d, sets);
    struct stat st;
    cr_assert_eq(stat(d.control, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0660, "mode %o", st.st_mode & 0777);
    cr_assert_eq((long)st.st_gid, gid, "group %ld", (long)st.st_gid);
    cr_assert_eq(chmod(d.dir, 0711), 0);    /* lets the connect through the path */
    cr_assert_eq(CTL_AS(uid, gid, "status"), 0, "%s", r.err);
    cr_assert(HAS_LINE(r.out, "version:"), "%s", r.out);
    /* Not in the group: nobody with another group. */
    cr_assert_eq(CTL_AS(uid, 65533, "status"), 3, "%s", r.err);
    cr_assert(strstr(r.err, "permission denied"), "%s", r.err);
}

Test(ctl, config_show_hides_secrets_and_channels_come_and_go)
{
    char url[64], sets_[2][128];
    snprintf(url, sizeof(url), "http://127.0.0.1:9/sms");
    snprintf(sets_[0], sizeof(sets_[0]), "channel.app.url=http://127.0.0.1:9/app");
    snprintf(sets_[1], sizeof(sets_[1]), "channel.app.secret=%s", SECRET);
    const char *const sets[] = { sets_[0], sets_[1], NULL };
    daemon_start(&d, sets);

    EXPECT(0, "config", "show");
    cr_assert(strstr(r.out, "[alarm]"), "%s", r.out);
    cr_assert(strstr(r.out, "[channel.app]"), "%s", r.out);
    cr_assert(strstr(r.out, "(set)"), "%s", r.out);
    cr_assert_null(strstr(r.out, "whsec_"), "no secret shown: %s", r.out);

    EXPECT(0, "channel", "add", "sms", "--url", url, "--secret", SECRET2, "--priority", "1",
           "--delay", "0s");
    cr_assert(HAS_LINE(r.out, "sms", "1", "0s", url), "%s", r.out);
    EXPECT(0, "channel", "list");
    cr_assert(HAS_LINE(r.out, "NAME", "PRIORITY", "DELAY", "URL", "FLAGS"), "%s", r.out);
    cr_assert(HAS_LINE(r.out, "sms", "1", "0s", url), "%s", r.out);
    cr_assert(HAS_LINE(r.out, "app"), "%s", r.out);
    cr_assert_null(strstr(r.out, "whsec_"), "%s", r.out);
    EXPECT(0, "config", "show");
    cr_assert(strstr(r.out, "[channel.sms]"), "live changes included: %s", r.out);
    cr_assert_null(strstr(r.out, "whsec_"), "no secret shown: %s", r.out);

    REFUSED("channel", "add", "sms", "--url", url, "--secret", SECRET);
    EXPECT(0, "channel", "list");
    cr_assert(HAS_LINE(r.out, "sms", "1", "0s", url), "unchanged: %s", r.out);

    EXPECT(0, "channel", "remove", "sms");
    cr_assert(!HAS_LINE(r.out, "sms"), "%s", r.out);
    EXPECT(0, "channel", "list");
    cr_assert(!HAS_LINE(r.out, "sms"), "gone: %s", r.out);
    cr_assert(HAS_LINE(r.out, "app"), "%s", r.out);

    /* A secret from standard input, never on the command line. */
    stdin_text = SECRET2 "\n";
    EXPECT(0, "channel", "set", "app", "--secret-next", "-");
    stdin_text = "";
    EXPECT(2, "channel", "set", "app", "--secret", "-");
    stdin_text = NULL;
    cr_assert(strstr(r.err, "standard input"), "%s", r.err);
    EXPECT(0, "--json", "channel", "list");
    json_t *j = json_loads(r.out, 0, NULL);
    cr_assert(json_is_true(hc_json_path(j, "channels.0.rotating")), "app rotates to the"
              " secret read from stdin: %s", r.out);
    json_decref(j);
}

Test(ctl, stats_and_status_show_the_daemon)
{
    daemon_start(&d, NULL);
    fixes("CAR-S", "acme", 0, 5, LAT, LON, 3);

    EXPECT(0, "stats", "--json");
    json_t *j = out_json();
    json_t *s = json_object_get(j, "stats");
    cr_assert_eq(json_integer_value(json_object_get(s, "reports")), 5);
    cr_assert(json_is_integer(hc_json_path(s, "workers.0.ring_fill")), "%s", r.out);
    cr_assert(json_is_integer(hc_json_path(s, "push.pending")), "%s", r.out);
    json_decref(j);
    EXPECT(0, "stats");
    cr_assert(HAS_LINE(r.out, "reports:", "5"), "%s", r.out);
    cr_assert(HAS_LINE(r.out, "WORKER", "REPORTS", "VEHICLES"), "%s", r.out);
    cr_assert(HAS_LINE(r.out, "0"), "a row per worker: %s", r.out);
    cr_assert(HAS_LINE(r.out, "1"), "a row per worker: %s", r.out);

    char pid[16], port[16];
    snprintf(pid, sizeof(pid), "%d", (int)d.pid);
    snprintf(port, sizeof(port), "%u", d.tcp);
    EXPECT(0, "status");
    cr_assert(HAS_LINE(r.out, "pid:", pid), "%s", r.out);
    cr_assert(HAS_LINE(r.out, "msgpack", "tcp:", port), "%s", r.out);
    cr_assert(HAS_LINE(r.out, "data", "dir:", d.dir), "%s", r.out);
    cr_assert_eq(ctl_dir(NULL, "--socket", d.control, "--json", "status", (const char *)NULL), 0,
                 "%s", r.err);
    j = out_json();
    cr_assert_eq(json_integer_value(json_object_get(j, "pid")), d.pid);
    json_decref(j);
}

Test(ctl, dead_letters_are_listed_and_replayed)
{
    char url[128], sets_[2][160];
    rx = hr_start(0);
    cr_assert_not_null(rx);
    hr_default(rx, 400);                /* not retried: straight to the dead letters */
    hr_url(rx, "/app", url, sizeof(url));
    snprintf(sets_[0], sizeof(sets_[0]), "channel.app.url=%s", url);
    snprintf(sets_[1], sizeof(sets_[1]), "channel.app.secret=%s", SECRET);
    const char *const sets[] = { sets_[0], sets_[1], NULL };
    daemon_start(&d, sets);
    EXPECT(0, "deadletter", "list");
    cr_assert_str_eq(r.out, "no dead letters\n");
    tow("CAR-D");
    cr_assert_eq(hr_wait(rx, 1, 10000), 1);
    for (int i = 0; i < 1000 && daemon_stat(&d, "push.dead_now") < 1; i++)
        usleep(10000);

    json_t *a = daemon_control(&d, "{\"cmd\":\"deadletter.list\"}\n");
    char seq[32];
    snprintf(seq, sizeof(seq), "%lld", (long long)json_integer_value(
                 hc_json_path(a, "deadletters.0.seq")));
    json_decref(a);
    EXPECT(0, "deadletter", "list");
    cr_assert(HAS_LINE(r.out, "SEQ", "CHANNEL", "ATTEMPTS"), "%s", r.out);
    cr_assert(HAS_LINE(r.out, seq, "app"), "%s", r.out);
    cr_assert(strstr(r.out, "HTTP 400"), "the last error: %s", r.out);

    REFUSED("deadletter", "replay", "999999");
    hr_default(rx, 200);
    EXPECT(0, "deadletter", "replay", seq);
    cr_assert_str_eq(r.out, "1 message back in the queue\n");
    cr_assert_eq(hr_wait(rx, 2, 10000), 2, "sent again");
}
