/*
 * test_eval.c — hubcap-eval end to end: small fleets built here, whose
 * outcome under the seed rule is known report by report (a clean tow, two
 * strays in one window, a tow masked by the false alarm before it, a tow
 * shorter than the threshold, tows across a reporting gap, an alarm that
 * has to wait for the window to fill, two makers with their own
 * thresholds), written as a native stream and a truth file; the tool is
 * run as a program and its --json figures checked exactly.  Then bad
 * inputs, usage errors, and --hubcapd against a real hubcapd with each
 * rule, whose figures and alarms must be the core's.
 *
 * The tool is $HUBCAP_EVAL, the daemon $HUBCAPD.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "runprog.h"
#include "hubcap/sim.h"
#include "hubcap/wire.h"

#define T0 1795000000000LL
#define DAY_MS 86400000LL
#define EVERY_MS 300000LL           /* parked fixes every 5 min */
#define GAP_MS (3 * 3600000LL)      /* a reporting gap: 3 h */
#define MAX_REPORTS 4096

static char dir[64];
static struct daemon d;

static void cleanup(void)
{
    daemon_cleanup(&d);
    memset(&d, 0, sizeof(d));
    test_dir_remove(dir);
}

static void setup(void)
{
    test_dir_make(dir, sizeof(dir), "eval");
}

TestSuite(eval, .init = setup, .fini = cleanup, .timeout = 120);

static const char *path_in(const char *name)
{
    return path_in_dir(dir, name);
}

/* ---- the fleet ---------------------------------------------------------------- */

/* One parking session: an ignition-on report, then fixes parked fixes
 * every 5 minutes a few decimetres around the spot.  From fix tow_at on
 * (1-based; 0: no tow) the spot is tow_m metres away; the fixes listed in
 * strays are 300 m off, each in its own direction; fix gap_at (0: none)
 * comes 3 hours after the one before it. */
struct spec {
    const char *vid, *maker;
    unsigned night, fixes, tow_at, gap_at;
    double tow_m;
    unsigned strays[3];
};

struct fleet {
    struct hc_report rep[MAX_REPORTS];
    size_t n;
    char truth[16384];
    size_t tlen;
};

static void fleet_add(struct fleet *f, const struct hc_report *r)
{
    cr_assert_lt(f->n, MAX_REPORTS);
    f->rep[f->n++] = *r;
}

static int is_stray(const struct spec *s, unsigned k)
{
    for (int i = 0; i < 3; i++)
        if (s->strays[i] == k)
            return 1;
    return 0;
}

/* Vehicle number v's session s: its reports, and its truth line. */
static void park(struct fleet *f, unsigned v, const struct spec *s)
{
    double lat = 52.52 + 0.01 * v, lon = 13.40 + 0.01 * s->night, tlat, tlon;
    int64_t start = T0 + s->night * DAY_MS + v * 1000, ts = start, tow_ms = 0, moved = 0;
    unsigned multipath = 0;
    hc_sim_offset(lat, lon, s->tow_m, 1.0, &tlat, &tlon);
    struct hc_report r = report(s->vid, ts, lat, lon, 1, s->maker);
    fleet_add(f, &r);
    for (unsigned k = 1; k <= s->fixes; k++) {
        ts += k == s->gap_at ? GAP_MS : EVERY_MS;
        int there = s->tow_at && k >= s->tow_at;
        if (there && !moved) {
            moved = ts;
            tow_ms = ts - 60000;
        }
        double la, lo;
        if (is_stray(s, k)) {
            hc_sim_offset(lat, lon, 300, 1.7 * k, &la, &lo);
            multipath++;
        } else {
            hc_sim_offset(there ? tlat : lat, there ? tlon : lon, 0.4 * (k % 4), k, &la, &lo);
        }
        r = report(s->vid, ts, la, lo, 0, s->maker);
        fleet_add(f, &r);
    }
    f->tlen += (size_t)snprintf(f->truth + f->tlen, sizeof(f->truth) - f->tlen,
                                "%s,%s,%u,%lld,%lld,%u,%g,%lld,%lld,%u,%u\n", s->vid, s->maker,
                                s->night, (long long)start, (long long)ts, s->fixes,
                                s->tow_at ? s->tow_m : 0, (long long)tow_ms, (long long)moved,
                                s->tow_at ? s->fixes - s->tow_at + 1 : 0, multipath);
    cr_assert_lt(f->tlen, sizeof(f->truth));
}

/* The standard fleet: acme (threshold 10 m) and bolt (40 m).  What the
 * seed rule (W 16, N1 10, N2 15) does with each session:
 *   A1/0  tow 50 m at fix 13: alarm on fix 14, delay 2
 *   A1/1  parked, nothing
 *   A2/0  strays at 11 and 13: 12 + 11 pairs > 15, a false alarm on fix 13
 *   A2/1  strays at 11 and 12 (false alarm on fix 12), tow 80 m at 16: masked
 *   A3/0  tow 6 m: under the threshold, missed, not in the 2x bucket
 *   A3/1  tow 50 m at 13 after a 3 h gap: alarm on fix 14, delay 2
 *   A4/0  tow 50 m at fix 5: 4 x 6 = 24 pairs once N1 = 10 fixes: delay 6
 *   A4/1  tow 50 m at the last fix, after a gap: 15 pairs, missed
 *   B1/0  tow 60 m at 13 (bolt: 40 m, not 2x): delay 2
 *   B1/1  tow 100 m at 13 (2x): delay 2
 *   B2/0  tow 25 m: under bolt's threshold, missed
 *   B2/1  parked, nothing */
static const struct spec standard[] = {
    { "A1", "acme", 0, 20, 13, 0, 50, { 0 } },
    { "A1", "acme", 1, 20, 0, 0, 0, { 0 } },
    { "A2", "acme", 0, 20, 0, 0, 0, { 11, 13 } },
    { "A2", "acme", 1, 24, 16, 0, 80, { 11, 12 } },
    { "A3", "acme", 0, 20, 13, 0, 6, { 0 } },
    { "A3", "acme", 1, 20, 13, 13, 50, { 0 } },
    { "A4", "acme", 0, 20, 5, 0, 50, { 0 } },
    { "A4", "acme", 1, 20, 20, 20, 50, { 0 } },
    { "B1", "bolt", 0, 20, 13, 0, 60, { 0 } },
    { "B1", "bolt", 1, 20, 13, 0, 100, { 0 } },
    { "B2", "bolt", 0, 20, 13, 0, 25, { 0 } },
    { "B2", "bolt", 1, 20, 0, 0, 0, { 0 } },
};
#define N_STANDARD (sizeof(standard) / sizeof(standard[0]))

static int cmp_ts(const void *a, const void *b)
{
    const struct hc_report *x = a, *y = b;
    return (x->ts > y->ts) - (x->ts < y->ts);
}

/* The reports in time order as frames: a single report map, then arrays
 * of 1 to 4, in turn.  Returns the file's size. */
static size_t write_stream(struct fleet *f, const char *path)
{
    qsort(f->rep, f->n, sizeof(f->rep[0]), cmp_ts);
    FILE *out = fopen(path, "wb");
    cr_assert_not_null(out);
    msgpack_sbuffer body;
    msgpack_packer pk;
    msgpack_sbuffer_init(&body);
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    size_t size = 0, frame = 0;
    for (size_t i = 0; i < f->n; frame++) {
        size_t k = frame % 2 ? 1 + frame % 4 : 1;
        if (k > f->n - i)
            k = f->n - i;
        msgpack_sbuffer_clear(&body);
        if (frame % 2)
            msgpack_pack_array(&pk, (uint32_t)k);
        for (size_t j = 0; j < k; j++)
            cr_assert_eq(hc_wire_pack(&pk, &f->rep[i + j]), 0);
        uint8_t hdr[4];
        hc_wire_frame_header(hdr, (uint32_t)body.size);
        cr_assert_eq(fwrite(hdr, 1, 4, out), 4);
        cr_assert_eq(fwrite(body.data, 1, body.size, out), body.size);
        size += 4 + body.size;
        i += k;
    }
    msgpack_sbuffer_destroy(&body);
    cr_assert_eq(fclose(out), 0);
    return size;
}


static const char header[] =
    "vid,maker,night,start_ms,end_ms,fixes,tow_m,tow_ms,moved_ms,after_fixes,multipath_fixes\n";

/* Sessions as s.msgpack and t.csv (comments, header, lines). */
static size_t write_fleet(const struct spec *s, size_t n)
{
    static struct fleet f;
    char text[20000];
    memset(&f, 0, sizeof(f));
    for (size_t i = 0; i < n; i++)
        park(&f, (unsigned)(s[i].vid[1] - '0') + (s[i].vid[0] == 'B' ? 10 : 0), &s[i]);
    snprintf(text, sizeof(text), "# built by test_eval\n# seed rule outcomes known\n%s%s",
             header, f.truth);
    write_text_file(path_in("t.csv"), text);
    return write_stream(&f, path_in("s.msgpack"));
}

/* ---- running the tool --------------------------------------------------------- */

/* The program the environment variable env names, with args
 * (NULL-terminated), its output captured. */
static struct prog_run run_bin(const char *env, const char *const *args)
{
    return prog_run(env, args, NULL, dir);
}

#define RUN(...) run_bin("HUBCAP_EVAL", (const char *const[]){ __VA_ARGS__, NULL })
#define RUN_BIN(env, ...) run_bin(env, (const char *const[]){ __VA_ARGS__, NULL })


static json_t *run_of(json_t *j, size_t i)
{
    json_t *r = json_array_get(json_object_get(j, "runs"), i);
    cr_assert_not_null(r, "no runs[%zu]", i);
    return r;
}

static json_t *maker_of(json_t *run, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(run, "makers"), i, m)
        if (!strcmp(json_string_value(json_object_get(m, "maker")), name))
            return m;
    cr_assert_fail("no maker %s", name);
    return NULL;
}

static json_int_t num(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_integer(v), "%s is not an integer", key);
    return json_integer_value(v);
}

static double real(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_real(v), "%s is not a real", key);
    return json_real_value(v);
}

/* Every figure of one block, exactly. */
struct want {
    json_int_t sessions, tows, detected, tows2x, detected2x, masked, false_alarms;
    double recall, recall2x, per10k;
    json_int_t delay_med, delay_p95;
};

static void check_figures(json_t *f, const char *what, const struct want *w)
{
    cr_assert_eq(num(f, "sessions"), w->sessions, "%s sessions", what);
    cr_assert_eq(num(f, "tows"), w->tows, "%s tows", what);
    cr_assert_eq(num(f, "detected"), w->detected, "%s detected", what);
    cr_assert_eq(num(f, "tows_2x"), w->tows2x, "%s tows_2x", what);
    cr_assert_eq(num(f, "detected_2x"), w->detected2x, "%s detected_2x", what);
    cr_assert_eq(num(f, "masked"), w->masked, "%s masked", what);
    cr_assert_eq(num(f, "false_alarms"), w->false_alarms, "%s false_alarms", what);
    cr_assert_float_eq(real(f, "recall"), w->recall, 1e-12, "%s recall", what);
    cr_assert_float_eq(real(f, "recall_2x"), w->recall2x, 1e-12, "%s recall_2x", what);
    cr_assert_float_eq(real(f, "false_alarms_per_10k"), w->per10k, 1e-9, "%s per 10k: %.17g",
                       what, real(f, "false_alarms_per_10k"));
    cr_assert_eq(num(f, "delay_median"), w->delay_med, "%s delay_median", what);
    cr_assert_eq(num(f, "delay_p95"), w->delay_p95, "%s delay_p95", what);
}

static const struct want want_acme = { 8, 6, 3, 5, 3, 1, 2, 0.5, 0.6, 2500, 2, 6 };
static const struct want want_bolt = { 4, 3, 2, 1, 1, 0, 0, 2.0 / 3, 1, 0, 2, 2 };
static const struct want want_all = { 12, 9, 5, 6, 4, 1, 2, 5.0 / 9, 4.0 / 6,
                                      2 * 10000.0 / 12, 2, 6 };

static void check_standard_seed(json_t *run)
{
    cr_assert_str_eq(json_string_value(json_object_get(run, "rule")), "seed");
    cr_assert_eq(num(run, "alarms"), 7, "A1/0, A2/0, A2/1, A3/1, A4/0, B1/0, B1/1");
    cr_assert_eq(num(run, "stale") + num(run, "rejected"), 0);
    check_figures(json_object_get(run, "overall"), "all", &want_all);
    check_figures(maker_of(run, "acme"), "acme", &want_acme);
    check_figures(maker_of(run, "bolt"), "bolt", &want_bolt);
}

/* The standard thresholds, the seed rule, --json. */
static struct prog_run run_standard_json(void)
{
    return RUN("--json", "--rule", "seed", "--threshold", "acme=10", "--threshold", "bolt=40",
               path_in("s.msgpack"), path_in("t.csv"));
}

/* ---- figures -------------------------------------------------------------------- */

Test(eval, seed_figures_are_the_known_outcomes)
{
    write_fleet(standard, N_STANDARD);
    struct prog_run o = run_standard_json();
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    cr_assert_eq(json_array_size(json_object_get(o.json, "runs")), 1);
    json_t *run = run_of(o.json, 0);
    cr_assert_str_eq(json_string_value(json_object_get(run, "engine")), "core");
    check_standard_seed(run);
    cr_assert(real(run, "ns_per_report") > 0);
    cr_assert_eq(num(o.json, "sessions"), 12);
    cr_assert_eq(num(o.json, "vehicles"), 6);
    cr_assert_eq(num(o.json, "window"), 16);
    cr_assert_eq(num(o.json, "n1"), 10);
    cr_assert_eq(num(o.json, "n2"), 15);
    cr_assert_eq(num(o.json, "rejected_reports"), 0);
    prog_run_free(&o);
}

Test(eval, failures_name_each_missed_tow_and_false_alarm)
{
    write_fleet(standard, N_STANDARD);
    struct prog_run o = RUN("--json", "--rule", "seed", "--failures", "10", "--threshold",
                           "acme=10", "--threshold", "bolt=40", path_in("s.msgpack"),
                           path_in("t.csv"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    json_t *f = json_object_get(run_of(o.json, 0), "failures");
    cr_assert_eq(num(f, "missed_total"), 4, "A2/1, A3/0, A4/1, B2/0");
    cr_assert_eq(num(f, "false_alarms_total"), 2);
    json_t *missed = json_object_get(f, "missed");
    cr_assert_eq(json_array_size(missed), 4);
    json_t *masked = json_array_get(missed, 0), *short_tow = json_array_get(missed, 1);
    json_t *last = json_array_get(missed, 2), *bolt = json_array_get(missed, 3);
    cr_assert_str_eq(json_string_value(json_object_get(masked, "vid")), "A2");
    cr_assert_eq(num(masked, "night"), 1);
    cr_assert(json_is_string(json_object_get(masked, "masked_by")));
    cr_assert_eq(num(masked, "fixes_before"), 15);
    cr_assert_eq(num(masked, "fixes_after"), 9);
    cr_assert_eq(num(masked, "seen_at_new_spot"), 9);
    cr_assert_str_eq(json_string_value(json_object_get(short_tow, "vid")), "A3");
    cr_assert(json_is_null(json_object_get(short_tow, "masked_by")));
    cr_assert(json_is_false(json_object_get(short_tow, "in_gap")));
    cr_assert_eq(num(short_tow, "gap_ms"), EVERY_MS);
    cr_assert_float_eq(real(short_tow, "tow_m"), 6, 1e-9);
    cr_assert_float_eq(real(short_tow, "threshold_m"), 10, 1e-9);
    cr_assert_str_eq(json_string_value(json_object_get(last, "vid")), "A4");
    cr_assert(json_is_true(json_object_get(last, "in_gap")), "the tow at the last fix");
    cr_assert_eq(num(last, "gap_ms"), GAP_MS);
    cr_assert_eq(num(last, "seen_at_new_spot"), 1);
    cr_assert_eq(num(last, "fixes_before"), 19);
    cr_assert_str_eq(json_string_value(json_object_get(bolt, "vid")), "B2");
    cr_assert_float_eq(real(bolt, "threshold_m"), 40, 1e-9);

    json_t *fa = json_object_get(f, "false_alarms");
    cr_assert_eq(json_array_size(fa), 2);
    json_t *a = json_array_get(fa, 0), *b = json_array_get(fa, 1);
    cr_assert_str_eq(json_string_value(json_object_get(a, "vid")), "A2");
    cr_assert_eq(num(a, "night"), 0);
    cr_assert_eq(num(a, "multipath_fixes"), 2);
    cr_assert_eq(num(a, "fixes_so_far"), 13, "raised by the second stray, fix 13");
    cr_assert(json_is_false(json_object_get(a, "towed")));
    cr_assert_eq(num(b, "night"), 1);
    cr_assert_eq(num(b, "fixes_so_far"), 12);
    cr_assert(json_is_true(json_object_get(b, "towed")));
    prog_run_free(&o);

    struct prog_run few = RUN("--json", "--rule", "seed", "--failures", "1", "--threshold",
                             "acme=10", "--threshold", "bolt=40", path_in("s.msgpack"),
                             path_in("t.csv"));
    f = json_object_get(run_of(few.json, 0), "failures");
    cr_assert_eq(json_array_size(json_object_get(f, "missed")), 1);
    cr_assert_eq(num(f, "missed_total"), 4);
    prog_run_free(&few);
}

Test(eval, both_rules_are_replayed_side_by_side)
{
    write_fleet(standard, N_STANDARD);
    struct prog_run o = RUN("--json", "--threshold", "acme=10", "--threshold", "bolt=40",
                           path_in("s.msgpack"), path_in("t.csv"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    cr_assert_str_eq(json_string_value(json_object_get(o.json, "rule")), "both");
    cr_assert_eq(json_array_size(json_object_get(o.json, "runs")), 2);
    check_standard_seed(run_of(o.json, 0));
    json_t *robust = run_of(o.json, 1);
    cr_assert_str_eq(json_string_value(json_object_get(robust, "rule")), "robust");
    cr_assert_eq(num(json_object_get(robust, "overall"), "sessions"), 12);
    cr_assert_eq(num(json_object_get(robust, "overall"), "tows"), 9);
    prog_run_free(&o);

    struct prog_run t = RUN("--failures", "2", "--threshold", "acme=10", "--threshold", "bolt=40",
                           path_in("s.msgpack"), path_in("t.csv"));
    cr_assert_eq(t.status, 0, "stderr: %s", t.err);
    cr_assert(strstr(t.out, "core seed") && strstr(t.out, "core robust"), "%s", t.out);
    cr_assert(strstr(t.out, "acme (threshold 10.00 m)"), "%s", t.out);
    cr_assert(strstr(t.out, "core seed: missed tows (4; up to 2 shown)"), "%s", t.out);
    cr_assert(strstr(t.out, "core seed: false alarms (2; up to 2 shown)"), "%s", t.out);
    prog_run_free(&t);
}

Test(eval, thresholds_come_from_calibrate_json_options_and_the_default)
{
    write_fleet(standard, N_STANDARD);
    write_text_file(path_in("thr.json"), "{\"makers\":[{\"maker\":\"acme\",\"threshold_m\":10.0},"
               "{\"maker\":\"bolt\",\"threshold_m\":3.0},{\"maker\":\"solo\",\"threshold_m\":0}],"
               "\"pick\":\"max\"}");
    struct prog_run o = RUN("--json", "--rule", "seed", "--thresholds", path_in("thr.json"),
                           "--threshold", "bolt=40", path_in("s.msgpack"), path_in("t.csv"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    check_standard_seed(run_of(o.json, 0));
    json_t *thr = json_object_get(o.json, "thresholds");
    cr_assert_eq(json_array_size(thr), 2, "solo is neither in the stream nor the truth");
    for (size_t i = 0; i < 2; i++) {
        json_t *t = json_array_get(thr, i);
        const char *m = json_string_value(json_object_get(t, "maker"));
        cr_assert_str_eq(json_string_value(json_object_get(t, "source")),
                         !strcmp(m, "acme") ? "file" : "option");
    }
    prog_run_free(&o);

    struct prog_run def = RUN("--json", "--rule", "seed", "--threshold", "acme=10",
                             "--default-threshold", "40", path_in("s.msgpack"), path_in("t.csv"));
    cr_assert_eq(def.status, 0, "stderr: %s", def.err);
    check_standard_seed(run_of(def.json, 0));
    cr_assert_float_eq(real(def.json, "default_threshold_m"), 40, 1e-9);
    prog_run_free(&def);
}

Test(eval, a_longer_window_changes_the_decision)
{
    /* With N1 = 16 nothing is decided before the 16th fix.  A1/0 and A3/1
     * (tow at fix 13) alarm on fix 16: delay 4; A4/0 (tow at fix 5): delay
     * 12; A2/1's strays and its tow at fix 16 now raise one alarm on the
     * first fix at the new spot: detected, delay 1, no false alarm; A2/0's
     * strays still raise one, on fix 16. */
    write_fleet(standard, N_STANDARD);
    struct prog_run o = RUN("--json", "--rule", "seed", "--n1", "16", "--threshold", "acme=10",
                           "--threshold", "bolt=40", path_in("s.msgpack"), path_in("t.csv"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    cr_assert_eq(num(o.json, "n1"), 16);
    json_t *acme = maker_of(run_of(o.json, 0), "acme");
    cr_assert_eq(num(acme, "detected"), 4);
    cr_assert_eq(num(acme, "masked"), 0);
    cr_assert_eq(num(acme, "false_alarms"), 1);
    cr_assert_eq(num(acme, "delay_median"), 4, "delays 1, 4, 4, 12");
    cr_assert_eq(num(acme, "delay_p95"), 12);
    prog_run_free(&o);
}

Test(eval, a_bad_report_in_a_good_frame_is_skipped_and_counted)
{
    write_fleet(standard, N_STANDARD);
    FILE *f = fopen(path_in("s.msgpack"), "ab");
    struct hc_report bad[2] = { report("A1", T0 + 9 * DAY_MS, 91, 13.4, 0, "acme"),
                                report("A9", T0 + 9 * DAY_MS, 52.5, 13.4, 1, "acme") };
    uint8_t buf[1024];
    size_t len = frame_reports(bad, 2, buf, sizeof(buf));
    cr_assert_eq(fwrite(buf, 1, len, f), len);
    fclose(f);
    struct prog_run o = run_standard_json();
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    cr_assert_eq(num(o.json, "rejected_reports"), 1, "latitude 91");
    cr_assert_eq(num(o.json, "vehicles"), 7, "A9's ignition-on report counts");
    check_standard_seed(run_of(o.json, 0));
    prog_run_free(&o);
}

/* ---- bad input ---------------------------------------------------------------------- */

static void expect_error(struct prog_run o, const char *text)
{
    cr_assert_eq(o.status, 1, "status %d, stderr: %s", o.status, o.err);
    cr_assert(strstr(o.err, text), "no '%s' in: %s", text, o.err);
    cr_assert_null(o.json, "no JSON on a failure");
    prog_run_free(&o);
}

Test(eval, a_wrong_truth_header_is_named_with_its_line)
{
    write_fleet(standard, N_STANDARD);
    write_text_file(path_in("t.csv"), "# comment\nvid,maker,night,start,end\n");
    char where[160];
    snprintf(where, sizeof(where), "%s:2: want the header", path_in("t.csv"));
    expect_error(run_standard_json(), where);
}

Test(eval, a_malformed_truth_line_is_named_with_its_line)
{
    write_fleet(standard, N_STANDARD);
    char text[512], where[160];
    snprintf(text, sizeof(text), "%sA1,acme,0,12x,2,3,0,0,0,0,0\n", header);
    write_text_file(path_in("t.csv"), text);
    snprintf(where, sizeof(where), "%s:2: start_ms wants a whole number", path_in("t.csv"));
    expect_error(run_standard_json(), where);

    snprintf(text, sizeof(text), "%sA1,acme,0,1,2\n", header);
    write_text_file(path_in("t.csv"), text);
    expect_error(run_standard_json(), ":2: 5 fields, want 11");

    snprintf(text, sizeof(text), "%sA1,acme,0,1,2,3,0,0,5,0,0\n", header);
    write_text_file(path_in("t.csv"), text);
    expect_error(run_standard_json(), ":2: a session without a tow (tow_m 0) has tow_ms");

    snprintf(text, sizeof(text), "%sA1,acme,0,100,200,3,0,0,0,0,0\nA1,acme,1,150,300,3,0,0,0,0,0\n",
             header);
    write_text_file(path_in("t.csv"), text);
    expect_error(run_standard_json(), ":3: this session of its vid overlaps the one on line 2");
}

Test(eval, a_truncated_stream_is_named_with_its_byte_offset)
{
    size_t size = write_fleet(standard, N_STANDARD);
    cr_assert_eq(truncate(path_in("s.msgpack"), (off_t)(size - 7)), 0);
    char where[160];
    snprintf(where, sizeof(where), "%s: byte ", path_in("s.msgpack"));
    struct prog_run o = run_standard_json();
    cr_assert(strstr(o.err, "truncated stream"), "%s", o.err);
    expect_error(o, where);

    /* A frame that is not msgpack, at a known offset. */
    size = write_fleet(standard, N_STANDARD);
    FILE *f = fopen(path_in("s.msgpack"), "ab");
    static const uint8_t junk[] = { 0, 0, 0, 4, 0xc1, 0xc1, 0xc1, 0xc1 };
    fwrite(junk, 1, sizeof(junk), f);
    fclose(f);
    snprintf(where, sizeof(where), "%s: byte %zu: a frame of 4 bytes", path_in("s.msgpack"), size);
    expect_error(run_standard_json(), where);
}

Test(eval, an_alarm_outside_every_session_is_an_error)
{
    write_fleet(standard, N_STANDARD);
    /* The truth without A1's first night, whose tow raises an alarm. */
    char *text = slurp_file(path_in("t.csv"), NULL), *line = strstr(text, "\nA1,acme,0,") + 1;
    char *next = strchr(line, '\n') + 1;
    memmove(line, next, strlen(next) + 1);
    write_text_file(path_in("t.csv"), text);
    free(text);
    expect_error(run_standard_json(), "core's seed alarm for A1 at ");
    struct prog_run o = run_standard_json();
    cr_assert(strstr(o.err, "lies in no session of"), "%s", o.err);
    prog_run_free(&o);
}

Test(eval, a_maker_without_a_threshold_is_an_error)
{
    write_fleet(standard, N_STANDARD);
    expect_error(RUN("--rule", "seed", "--threshold", "acme=10", path_in("s.msgpack"),
                     path_in("t.csv")), "no threshold for 1 maker (bolt)");
    write_text_file(path_in("thr.json"), "{\"vehicles\":3}");
    expect_error(RUN("--thresholds", path_in("thr.json"), path_in("s.msgpack"), path_in("t.csv")),
                 "no \"makers\" array");
    expect_error(RUN("--threshold", "acme=10", "--threshold", "bolt=40", path_in("nope.msgpack"),
                     path_in("t.csv")), "nope.msgpack: No such file or directory");
}

Test(eval, usage_errors_exit_2)
{
    write_fleet(standard, N_STANDARD);
    const char *s = path_in("s.msgpack"), *t = path_in("t.csv");
    struct prog_run o[] = {
        RUN("--rule", "nope", s, t), RUN(s), RUN(s, t, t), RUN("--threshold", "acme", s, t),
        RUN("--threshold", "acme=-1", s, t), RUN("--default-threshold", "0", s, t),
        RUN("--window", "8", s, t), RUN("--n2", "200", s, t), RUN("--socket", "/x", s, t),
        RUN("--hubcapd", dir, s, t), RUN("--hubcapd", dir, "--rule", "both", s, t),
        RUN("--failures", "-1", s, t), RUN("--nope", s, t),
    };
    for (size_t i = 0; i < sizeof(o) / sizeof(o[0]); i++) {
        cr_assert_eq(o[i].status, 2, "case %zu: status %d, stderr %s", i, o[i].status, o[i].err);
        cr_assert(strstr(o[i].err, "--help"), "case %zu: %s", i, o[i].err);
        prog_run_free(&o[i]);
    }
    struct prog_run h = RUN("--help");
    cr_assert_eq(h.status, 0);
    cr_assert(strstr(h.out, "usage: hubcap-eval") && strstr(h.out, "recall_2x"), "%s", h.out);
    prog_run_free(&h);
}

/* ---- --hubcapd ---------------------------------------------------------------------- */

/* The core's and hubcapd's runs of one rule agree figure for figure. */
static void check_daemon_equals_core(json_t *j)
{
    json_t *core = run_of(j, 0), *daemon = run_of(j, 1);
    cr_assert_str_eq(json_string_value(json_object_get(core, "engine")), "core");
    cr_assert_str_eq(json_string_value(json_object_get(daemon, "engine")), "hubcapd");
    cr_assert(json_equal(json_object_get(core, "overall"), json_object_get(daemon, "overall")));
    cr_assert(json_equal(json_object_get(core, "makers"), json_object_get(daemon, "makers")));
    cr_assert_eq(num(core, "alarms"), num(daemon, "alarms"));
    json_t *h = json_object_get(j, "hubcapd");
    cr_assert(json_is_true(json_object_get(h, "same_alarms")));
    cr_assert_eq(num(h, "only_hubcapd") + num(h, "only_core"), 0);
}

Test(eval, hubcapd_scores_equal_the_core_and_its_alarms_are_the_same)
{
    write_fleet(standard, N_STANDARD);
    daemon_start(&d, NULL);
    struct prog_run o = RUN("--json", "--rule", "seed", "--hubcapd", d.dir, "--threshold",
                           "acme=10", "--threshold", "bolt=40", path_in("s.msgpack"),
                           path_in("t.csv"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    check_standard_seed(run_of(o.json, 0));
    check_daemon_equals_core(o.json);
    prog_run_free(&o);
    json_t *a = daemon_control(&d, "{\"cmd\":\"threshold.get\",\"maker\":\"bolt\"}\n");
    cr_assert_float_eq(real(a, "meters"), 40, 1e-9, "thresholds were set live");
    json_decref(a);

    /* The same daemon again: it knows these vehicles now, so it is refused. */
    struct prog_run again = RUN("--rule", "seed", "--hubcapd", d.dir, "--threshold", "acme=10",
                               "--threshold", "bolt=40", path_in("s.msgpack"), path_in("t.csv"));
    cr_assert_eq(again.status, 1, "stderr: %s", again.err);
    cr_assert(strstr(again.err, "already tracks 6 vehicles"), "%s", again.err);
    prog_run_free(&again);
    cr_assert_eq(daemon_stop(&d), 0);
}

Test(eval, hubcapd_with_the_robust_rule_equals_the_core)
{
    write_fleet(standard, N_STANDARD);
    daemon_start(&d, NULL);
    struct prog_run o = RUN("--json", "--rule", "robust", "--hubcapd", d.dir, "--threshold",
                           "acme=10", "--threshold", "bolt=40", path_in("s.msgpack"),
                           path_in("t.csv"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    cr_assert_str_eq(json_string_value(json_object_get(run_of(o.json, 0), "rule")), "robust");
    cr_assert_str_eq(json_string_value(json_object_get(run_of(o.json, 1), "rule")), "robust");
    check_daemon_equals_core(o.json);
    cr_assert_gt(num(run_of(o.json, 1), "alarms"), 0);
    prog_run_free(&o);
    json_t *a = daemon_control(&d, "{\"cmd\":\"rule.get\",\"maker\":\"acme\"}\n");
    cr_assert_str_eq(json_string_value(json_object_get(a, "rule")), "robust");
    cr_assert_str_eq(json_string_value(json_object_get(a, "source")), "live");
    json_decref(a);
    cr_assert_eq(daemon_stop(&d), 0);
}

Test(eval, hubcapd_table_says_whether_the_alarms_are_the_cores)
{
    write_fleet(standard, N_STANDARD);
    daemon_start(&d, NULL);
    struct prog_run o = RUN("--rule", "seed", "--hubcapd", d.dir, "--threshold", "acme=10",
                           "--threshold", "bolt=40", path_in("s.msgpack"), path_in("t.csv"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    cr_assert(strstr(o.out, "core seed") && strstr(o.out, "hubcapd seed"), "%s", o.out);
    cr_assert(strstr(o.out, "hubcapd's alarms are exactly the core's: yes (7 alarms)"), "%s",
              o.out);
    prog_run_free(&o);
    cr_assert_eq(daemon_stop(&d), 0);
}

Test(eval, hubcapd_with_another_window_is_refused)
{
    static const char *const sets[] = { "detect.window=20", NULL };
    write_fleet(standard, N_STANDARD);
    daemon_start(&d, sets);
    struct prog_run o = RUN("--rule", "seed", "--hubcapd", d.dir, "--threshold", "acme=10",
                           "--threshold", "bolt=40", path_in("s.msgpack"), path_in("t.csv"));
    cr_assert_eq(o.status, 1, "stderr: %s", o.err);
    cr_assert(strstr(o.err, "hubcapd runs with detect.window 20 (this run: 16), detect.n2 19"
                            " (this run: 15)"), "%s", o.err);
    cr_assert(strstr(o.err, "--set detect.window=16 --set detect.n2=15"), "%s", o.err);
    prog_run_free(&o);
    cr_assert_eq(daemon_stop(&d), 0);
}

Test(eval, no_hubcapd_exits_3)
{
    write_fleet(standard, N_STANDARD);
    char empty[80];
    snprintf(empty, sizeof(empty), "%s/no-daemon", dir);
    cr_assert_eq(mkdir(empty, 0700), 0);
    struct prog_run o = RUN("--rule", "seed", "--hubcapd", empty, "--threshold", "acme=10",
                           "--threshold", "bolt=40", path_in("s.msgpack"), path_in("t.csv"));
    cr_assert_eq(o.status, 3, "stderr: %s", o.err);
    cr_assert(strstr(o.err, "is hubcapd running with --data-dir"), "%s", o.err);
    prog_run_free(&o);
}

/* The committed standard scenario, measured as an operator would: thresholds
 * from hubcap-calibrate --pick trimmed on the scenario's own calibration
 * set, then both rules replayed.  These are the robust rule's floors
 * (docs/DETECTION.md); the seed rule's figures are checked to be worse,
 * which is why robust is the default. */
Test(eval, the_standard_scenario_meets_the_robust_floors, .timeout = 550)
{
    char scn[4200];
    const char *root = getenv("HUBCAP_SOURCE_ROOT");
    cr_assert_not_null(root, "set HUBCAP_SOURCE_ROOT");
    snprintf(scn, sizeof(scn), "%s/bench/scenarios/standard.ini", root);

    struct prog_run o = RUN_BIN("HUBCAP_SIM", "--scenario", scn, "--calibration", "--stream",
                               path_in("cal.msgpack"), "-q");
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    prog_run_free(&o);
    o = RUN_BIN("HUBCAP_CALIBRATE", "--json", "--pick", "trimmed", "-q", path_in("cal.msgpack"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    write_text_file(path_in("thr.json"), o.out);
    prog_run_free(&o);
    o = RUN_BIN("HUBCAP_SIM", "--scenario", scn, "--stream", path_in("std.msgpack"), "--truth",
                path_in("std.csv"), "-q");
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    prog_run_free(&o);

    o = RUN("--json", "--thresholds", path_in("thr.json"), path_in("std.msgpack"),
            path_in("std.csv"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    json_t *seed = json_object_get(run_of(o.json, 0), "overall");
    json_t *robust = json_object_get(run_of(o.json, 1), "overall");
    cr_assert_str_eq(json_string_value(json_object_get(run_of(o.json, 1), "rule")), "robust");
    cr_assert_geq(num(robust, "sessions"), 10000, "at least 10,000 vehicle-nights");
    double tow_rate = (double)num(robust, "tows") / (double)num(robust, "sessions");
    cr_assert(tow_rate > 0.025 && tow_rate < 0.035, "about 3 %% tows: %g", tow_rate);

    cr_assert_geq(real(robust, "recall_2x"), 0.995);
    cr_assert_leq(real(robust, "false_alarms_per_10k"), 1.0);
    cr_assert_leq(num(robust, "delay_median"), 2);

    cr_assert_lt(real(robust, "false_alarms_per_10k"), real(seed, "false_alarms_per_10k"));
    cr_assert_geq(real(robust, "recall_2x"), real(seed, "recall_2x"));
    prog_run_free(&o);
}
