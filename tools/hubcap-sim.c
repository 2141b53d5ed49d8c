/*
 * hubcap-sim — the detection core on a simulated fleet, end to end.
 *
 * 1. Calibrates each maker's drift threshold the seed way: the sample size
 *    for the chosen confidence and margin, that many vehicles' parked
 *    positions from a clean history, threshold = largest pairwise drift.
 * 2. Replays a live stream (parking sessions with GPS jitter, stray fixes
 *    and tows) through hc_detect_step, printing every alarm as it is raised.
 * 3. Scores the alarms against the simulator's ground truth.
 *
 * With --scenario FILE it does something else: it writes a scenario's
 * stream (scenario.h) as hubcap's native msgpack frames, and the ground
 * truth of every parking session as CSV, for scoring a detector offline.
 * That mode has its own options and state (struct scn_run).
 *
 * Single-threaded; all state lives in struct run or struct scn_run.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hubcap/calib.h"
#include "hubcap/cli.h"
#include "hubcap/detect.h"
#include "hubcap/error.h"
#include "hubcap/scenario.h"
#include "hubcap/sim.h"
#include "hubcap/timefmt.h"
#include "hubcap/wire.h"

#define BATCH 4096
#define SCN_BATCH_MAX 10000         /* ~1 MB frames: the daemon's default limit */

struct score {
    uint64_t reports, rejected, sessions, towed, caught, false_alarms;
    uint64_t alarms;
    double shortest_missed_m, longest_missed_m;
    uint64_t missed_masked;     /* tows after a false alarm in the same session */
    uint64_t delay_hist[64];    /* post-tow fixes until the alarm */
};

struct run {
    struct hc_sim_config sim;
    struct hc_detect_config det;
    int confidence;
    double margin;
    int json, quiet, tty;
    int calibrate_only;
    const char *write_thresholds;   /* INI file for hubcapd --config */
    struct hc_detector d;
    unsigned char *vehicles;    /* sim.vehicles records of hc_vehicle_size */
    uint32_t *after;            /* post-tow fixes seen in the current session */
    uint8_t *alarmed;           /* current session's alarm: 0 none, 1 true, 2 false */
    float *tow_m;               /* current session's tow distance, 0: none */
    struct score s;
};

static void usage(FILE *f)
{
    fprintf(f,
"usage: hubcap-sim [OPTIONS]\n"
"       hubcap-sim --scenario FILE --stream OUT [--truth OUT.csv] [OPTIONS]\n"
"\n"
"Simulate a parked fleet, calibrate each maker's drift threshold from a clean\n"
"history (the seed method), replay live reports with GPS strays and tows\n"
"through hubcap's detection core, print every alarm and score them against\n"
"the simulator's ground truth.\n"
"\n"
"Fleet:\n"
"  -n, --vehicles N       vehicles in the fleet (default 1000)\n"
"  -s, --sessions N       parking sessions per vehicle (default 3)\n"
"  -r, --reports N        parked fixes per session, 5 min apart (default 48)\n"
"      --tow-rate F       fraction of sessions with a tow (default 0.03)\n"
"      --stray-rate F     fraction of fixes that are GPS strays (default 0.003)\n"
"      --seed N           random seed; same seed, same fleet (default 1)\n"
"Detection:\n"
"      --rule R           robust (the default, as in hubcapd) or seed\n"
"      --window W         positions in the sliding window (default 16)\n"
"      --n1 N             seed rule: positions needed before deciding (default 10)\n"
"      --n2 N             seed rule: moved when more than N pairs exceed (default W-1)\n"
"Calibration:\n"
"      --confidence C     90, 95 or 99 percent (default 95)\n"
"      --margin E         margin of error, e.g. 0.03 (default 0.03)\n"
"Output:\n"
"  -q, --quiet            no line per alarm, only the tables and summary\n"
"      --calibrate-only   stop after calibration\n"
"      --write-thresholds FILE\n"
"                         write the calibrated thresholds as an INI file for\n"
"                         hubcapd --config FILE ([thresholds] section)\n"
"      --json             JSON lines: one per alarm, then the summary\n"
"  -h, --help             this text\n"
"\n"
"Exit status: 0 when the run completed (whatever it detected), 2 on a usage\n"
"error, 3 when the run could not complete (out of memory).\n"
"\n"
"Scenario mode: write a scenario's reports (an INI file such as\n"
"bench/scenarios/standard.ini; its first lines explain every key) and the\n"
"ground truth of every parking session, to score a detector with.  The same\n"
"file and seed give byte-identical output.\n"
"      --scenario FILE    the scenario\n"
"      --stream OUT       the reports, in time order, as hubcap's native stream:\n"
"                         frames of a 4-byte big-endian length and a msgpack\n"
"                         array of report maps ('-': standard output)\n"
"      --truth OUT        one CSV line per parking session, in order of its\n"
"                         last report, after '#' lines naming the scenario,\n"
"                         file, seed and set, with the header\n"
"                         vid,maker,night,start_ms,end_ms,fixes,tow_m,tow_ms,\n"
"                         moved_ms,after_fixes,multipath_fixes\n"
"      --calibration      the scenario's calibration set instead: its\n"
"                         calibration_seed, _vehicles and _nights, no tows,\n"
"                         ids CAL0000000 on\n"
"      --seed N           replace the file's seed (or calibration_seed)\n"
"  -n, --vehicles N       replace the file's vehicles (or calibration_vehicles)\n"
"      --batch N          reports per frame, 1 to %u (default 256)\n"
"      --json             the summary as one JSON object\n"
"  -q, --quiet            no progress line\n"
"The summary goes to standard output, or to standard error when the stream\n"
"does.  Exit status: 0 done, 1 bad scenario file or output that cannot be\n"
"written, 2 usage error.\n", SCN_BATCH_MAX);
}

static void parse(struct run *r, int argc, char **argv)
{
    enum { O_TOW = 256, O_STRAY, O_SEED, O_WINDOW, O_N1, O_N2, O_CONF, O_MARGIN, O_JSON, O_CAL_ONLY, O_WRITE,
           O_RULE };
    static const struct option opts[] = {
        { "vehicles", required_argument, 0, 'n' },
        { "sessions", required_argument, 0, 's' },
        { "reports", required_argument, 0, 'r' },
        { "tow-rate", required_argument, 0, O_TOW },
        { "stray-rate", required_argument, 0, O_STRAY },
        { "seed", required_argument, 0, O_SEED },
        { "window", required_argument, 0, O_WINDOW },
        { "n1", required_argument, 0, O_N1 },
        { "n2", required_argument, 0, O_N2 },
        { "rule", required_argument, 0, O_RULE },
        { "confidence", required_argument, 0, O_CONF },
        { "margin", required_argument, 0, O_MARGIN },
        { "quiet", no_argument, 0, 'q' },
        { "json", no_argument, 0, O_JSON },
        { "calibrate-only", no_argument, 0, O_CAL_ONLY },
        { "write-thresholds", required_argument, 0, O_WRITE },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    int n2_set = 0, c;
    hc_sim_config_default(&r->sim);
    hc_detect_config_default(&r->det);
    r->confidence = 95;
    r->margin = 0.03;
    while ((c = getopt_long(argc, argv, "n:s:r:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'n': r->sim.vehicles = (uint32_t)hc_cli_uint("--vehicles", optarg, 1, 10000000); break;
        case 's': r->sim.sessions = (uint32_t)hc_cli_uint("--sessions", optarg, 1, 1000); break;
        case 'r': r->sim.reports_per_session = (uint32_t)hc_cli_uint("--reports", optarg, 1, 10000); break;
        case O_TOW: r->sim.tow_rate = hc_cli_double("--tow-rate", optarg, 0, 1); break;
        case O_STRAY: r->sim.stray_rate = hc_cli_double("--stray-rate", optarg, 0, 1); break;
        case O_SEED: r->sim.seed = hc_cli_uint("--seed", optarg, 0, UINT64_MAX); break;
        case O_WINDOW: r->det.window = (unsigned)hc_cli_uint("--window", optarg, 2, HC_WINDOW_MAX); break;
        case O_N1: r->det.n1 = (unsigned)hc_cli_uint("--n1", optarg, 2, HC_WINDOW_MAX); break;
        case O_N2: r->det.n2 = (unsigned)hc_cli_uint("--n2", optarg, 0, 2016); n2_set = 1; break;
        case O_RULE:
            if (hc_rule_parse(optarg, strlen(optarg), &r->det.rule) < 0)
                hc_cli_usage_error("--rule must be robust or seed, not '%s'", optarg);
            break;
        case O_CONF:
            r->confidence = (int)hc_cli_uint("--confidence", optarg, 90, 99);
            if (hc_calib_z(r->confidence) == 0)
                hc_cli_usage_error("--confidence must be 90, 95 or 99, not '%s'", optarg);
            break;
        case O_MARGIN: r->margin = hc_cli_double("--margin", optarg, 0.001, 0.5); break;
        case 'q': r->quiet = 1; break;
        case O_JSON: r->json = 1; break;
        case O_CAL_ONLY: r->calibrate_only = 1; break;
        case O_WRITE: r->write_thresholds = optarg; break;
        case 'h': usage(stdout); exit(0);
        default: fprintf(stderr, "Try 'hubcap-sim --help'.\n"); exit(2);
        }
    }
    if (optind < argc)
        hc_cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (!n2_set)
        r->det.n2 = r->det.window - 1;
    int rc = hc_detect_config_check(&r->det);
    if (rc < 0)
        hc_cli_usage_error("%s", hc_strerror(rc));
    r->tty = isatty(STDERR_FILENO);
}

/* Calibrate one maker from `sample` clean vehicles; sets its threshold. */
static int calibrate_maker(struct run *r, const struct hc_sim_maker *mk,
                           unsigned idx, long sample, json_t *jcal)
{
    struct hc_sim_config c = r->sim;
    c.vehicles = (uint32_t)sample;
    c.sessions = 1;
    c.tow_rate = 0;
    c.stray_rate = 0;
    c.makers = mk;
    c.n_makers = 1;
    c.seed = r->sim.seed * 7919 + idx + 1;  /* a history apart from the live run */
    struct hc_sim *s;
    struct hc_drift h;
    int rc = hc_sim_new(&c, &s);
    if (rc < 0)
        return rc;
    uint32_t n = c.reports_per_session;
    double *lat = malloc((size_t)sample * n * sizeof(double));
    double *lon = malloc((size_t)sample * n * sizeof(double));
    if (!lat || !lon || hc_drift_init(&h) < 0) {
        free(lat);
        free(lon);
        hc_sim_free(s);
        return -ENOMEM;
    }
    struct hc_report rep;
    struct hc_sim_truth t;
    uint32_t *fill = calloc((size_t)sample, sizeof(uint32_t));
    while (fill && hc_sim_next(s, &rep, &t))
        if (!rep.acc) {
            size_t at = (size_t)t.vehicle * n + fill[t.vehicle]++;
            lat[at] = rep.lat;
            lon[at] = rep.lon;
        }
    for (long v = 0; fill && v < sample && rc == 0; v++)
        rc = hc_drift_add(&h, r->d.kernel, lat + v * n, lon + v * n, fill[v]);
    if (!fill)
        rc = -ENOMEM;

    double thr = ceil(hc_drift_max_m(&h) * 10) / 10;   /* to 0.1 m, upwards */
    if (rc == 0)
        rc = hc_detector_set_threshold(&r->d, mk->name, strlen(mk->name), thr);
    if (rc >= 0) {
        rc = 0;
        double p99 = hc_drift_quantile_m(&h, 0.99), p999 = hc_drift_quantile_m(&h, 0.999);
        if (r->json)
            json_array_append_new(jcal, json_pack("{s:s, s:I, s:I, s:I, s:f, s:f, s:f}",
                "maker", mk->name, "vehicles", (json_int_t)h.vehicles,
                "fixes", (json_int_t)h.fixes, "pairs", (json_int_t)h.pairs,
                "max_drift_m", hc_drift_max_m(&h), "p99_m", p99, "p999_m", p999));
        else
            printf("  %-10s %8llu %9llu %12.1f m %8.1f m %8.1f m %9.1f m\n", mk->name,
                   (unsigned long long)h.vehicles, (unsigned long long)h.fixes,
                   hc_drift_max_m(&h), p99, p999, thr);
    }
    free(fill);
    free(lat);
    free(lon);
    hc_drift_free(&h);
    hc_sim_free(s);
    return rc;
}

static int calibrate(struct run *r, json_t *out)
{
    double z = hc_calib_z(r->confidence);
    long sample = hc_calib_sample_size(z, 0.5, r->margin);
    unsigned n_makers;
    const struct hc_sim_maker *mk = hc_sim_default_makers(&n_makers);
    json_t *jcal = json_array();
    if (r->json) {
        json_object_set_new(out, "sample_size", json_integer(sample));
        json_object_set_new(out, "calibration", jcal);
    } else {
        printf("Calibrating drift thresholds: %d %% confidence, %.1f %% margin -> "
               "n = %.2f^2 x 0.25 / %.3f^2 = %ld vehicles per maker\n",
               r->confidence, r->margin * 100, z, r->margin, sample);
        printf("  %-10s %8s %9s %14s %10s %10s %11s\n", "maker", "vehicles", "fixes",
               "max drift", "p99", "p99.9", "threshold");
    }
    for (unsigned i = 0; i < n_makers; i++) {
        int rc = calibrate_maker(r, &mk[i], i, sample, jcal);
        if (rc < 0)
            return rc;
    }
    if (!r->json) {
        printf("  threshold = largest pairwise drift in the sample, rounded up to 0.1 m;"
               " unknown makers use %.0f m\n\n", r->det.default_threshold_m);
    }
    return 0;
}

/* The calibrated thresholds as a hubcapd configuration file. */
static int write_thresholds(struct run *r)
{
    FILE *f = fopen(r->write_thresholds, "w");
    if (!f) {
        fprintf(stderr, "hubcap-sim: cannot write %s: %s\n", r->write_thresholds, strerror(errno));
        return -errno;
    }
    fprintf(f, "; drift thresholds calibrated by hubcap-sim (%d %% confidence, %.1f %% margin)\n"
               "[thresholds]\n", r->confidence, r->margin * 100);
    for (unsigned i = 1; i < r->d.n_makers; i++) {
        const struct hc_maker *m = hc_detector_maker_at(&r->d, i);
        if (m->own)
            fprintf(f, "%s = %.1f\n", m->name, m->threshold_m);
    }
    return fclose(f) == 0 ? 0 : -errno;
}

static struct hc_vehicle *vehicle(struct run *r, uint32_t i)
{
    return (struct hc_vehicle *)(r->vehicles + (size_t)i * hc_vehicle_size(&r->d));
}

static void print_alarm(struct run *r, const struct hc_alarm *a,
                        const struct hc_sim_truth *t, const char *verdict)
{
    char parked[HC_TIME_LEN], latest[HC_TIME_LEN];
    hc_time_format(a->parked_ts, 0, parked);
    hc_time_format(a->latest_ts, 0, latest);
    if (r->json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:f, s:i, s:f, s:{s:f, s:f, s:s}, "
                              "s:{s:f, s:f, s:s}, s:s, s:f}",
            "type", "vehicle.moved", "vid", a->vid, "maker", a->maker,
            "threshold_m", a->threshold_m, "exceeding_pairs", (int)a->exceeding_pairs,
            "max_distance_m", a->max_distance_m,
            "parked", "lat", a->parked_lat, "lon", a->parked_lon, "ts", parked,
            "latest", "lat", a->latest_lat, "lon", a->latest_lon, "ts", latest,
            "truth", verdict, "tow_m", t->tow_m);
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(12));
        puts(s);
        free(s);
        json_decref(j);
    } else if (!r->quiet) {
        printf("ALARM %s %s %-8s moved %7.1f m (%2u pairs > %.1f m) parked %.5f,%.5f "
               "since %s  [%s]\n",
               latest, a->vid, a->maker, a->max_distance_m, a->exceeding_pairs,
               a->threshold_m, a->parked_lat, a->parked_lon, parked + 11, verdict);
    }
}

/* A vehicle's session is over: a tow without an alarm was missed. */
static void settle(struct run *r, uint32_t v)
{
    double m = r->tow_m[v];
    if (m > 0 && r->alarmed[v] == 2) {
        r->s.missed_masked++;
    } else if (m > 0 && !r->alarmed[v]) {
        if (r->s.shortest_missed_m == 0 || m < r->s.shortest_missed_m)
            r->s.shortest_missed_m = m;
        if (m > r->s.longest_missed_m)
            r->s.longest_missed_m = m;
    }
    r->tow_m[v] = 0;
}

/* Score one report's outcome against the truth. */
static void score(struct run *r, const struct hc_report *rep, const struct hc_sim_truth *t,
                  int rc, const struct hc_alarm *a)
{
    struct score *s = &r->s;
    uint32_t v = t->vehicle;
    if (rep->acc) {             /* a session starts: settle the last one */
        settle(r, v);
        s->sessions++;
        s->towed += t->towed;
        r->after[v] = 0;
        r->alarmed[v] = 0;
        r->tow_m[v] = (float)t->tow_m;
        return;
    }
    if (t->after_tow)
        r->after[v]++;
    if (rc < 0) {
        s->rejected++;
        return;
    }
    if (rc != HC_DETECT_ALARM)
        return;
    s->alarms++;
    char verdict[64];
    if (t->after_tow) {
        s->caught++;
        uint32_t d = r->after[v] < 64 ? r->after[v] : 63;
        s->delay_hist[d]++;
        snprintf(verdict, sizeof(verdict), "tow of %.0f m, caught", t->tow_m);
    } else {
        s->false_alarms++;
        snprintf(verdict, sizeof(verdict), "FALSE ALARM");
    }
    r->alarmed[v] = t->after_tow ? 1 : 2;
    print_alarm(r, a, t, verdict);
}

static double delay_quantile(const struct score *s, double q)
{
    uint64_t want = (uint64_t)ceil(q * (double)s->caught), seen = 0;
    for (int i = 0; i < 64; i++) {
        seen += s->delay_hist[i];
        if (seen >= want && want)
            return i;
    }
    return NAN;
}

static int replay(struct run *r, double *secs)
{
    struct hc_sim *sim;
    int rc = hc_sim_new(&r->sim, &sim);
    if (rc < 0)
        return rc;
    size_t vs = hc_vehicle_size(&r->d);
    r->vehicles = malloc((size_t)r->sim.vehicles * vs);
    r->after = calloc(r->sim.vehicles, sizeof(*r->after));
    r->alarmed = calloc(r->sim.vehicles, 1);
    r->tow_m = calloc(r->sim.vehicles, sizeof(*r->tow_m));
    struct hc_report *batch = malloc(BATCH * sizeof(*batch));
    struct hc_sim_truth *truth = malloc(BATCH * sizeof(*truth));
    int *rcs = malloc(BATCH * sizeof(int));
    struct hc_alarm *alarms = malloc(BATCH * sizeof(*alarms));
    if (!r->vehicles || !r->after || !r->alarmed || !r->tow_m || !batch || !truth || !rcs || !alarms) {
        rc = -ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < r->sim.vehicles; i++)
        hc_vehicle_init(&r->d, vehicle(r, i));

    uint64_t total = hc_sim_total(sim), done = 0, ns = 0, next_progress = 0;
    if (!r->json)
        printf("Replaying %llu reports from %u vehicles (%u sessions of %u fixes, "
               "%.1f %% towed, %.1f %% strays) through the %s kernel\n",
               (unsigned long long)total, r->sim.vehicles, r->sim.sessions,
               r->sim.reports_per_session, r->sim.tow_rate * 100,
               r->sim.stray_rate * 100, r->d.kernel->name);
    for (;;) {
        size_t n = 0;
        while (n < BATCH && hc_sim_next(sim, &batch[n], &truth[n]))
            n++;
        if (n == 0)
            break;
        /* Only the detection steps are timed, not the simulation. */
        uint64_t t0 = hc_time_mono_ns();
        for (size_t i = 0; i < n; i++)
            rcs[i] = hc_detect_step(&r->d, vehicle(r, truth[i].vehicle), &batch[i], &alarms[i]);
        ns += hc_time_mono_ns() - t0;
        for (size_t i = 0; i < n; i++)
            score(r, &batch[i], &truth[i], rcs[i], &alarms[i]);
        done += n;
        if (r->tty && !r->json && done >= next_progress) {
            fprintf(stderr, "\r  %5.1f %%  %llu / %llu reports", 100.0 * (double)done / (double)total,
                    (unsigned long long)done, (unsigned long long)total);
            next_progress = done + total / 50 + 1;
        }
    }
    for (uint32_t v = 0; v < r->sim.vehicles; v++)
        settle(r, v);
    if (r->tty && !r->json)
        fprintf(stderr, "\r%60s\r", "");
    r->s.reports = done;
    *secs = (double)ns / 1e9;
out:
    free(batch);
    free(truth);
    free(rcs);
    free(alarms);
    hc_sim_free(sim);
    return rc;
}

static void summary(struct run *r, double secs, json_t *out)
{
    const struct score *s = &r->s;
    uint64_t missed = s->towed - s->caught;
    double rate = secs > 0 ? (double)s->reports / secs : 0;
    double p50 = delay_quantile(s, 0.5), p95 = delay_quantile(s, 0.95);
    if (r->json) {
        json_object_set_new(out, "type", json_string("summary"));
        json_object_set_new(out, "reports", json_integer((json_int_t)s->reports));
        json_object_set_new(out, "rejected", json_integer((json_int_t)s->rejected));
        json_object_set_new(out, "sessions", json_integer((json_int_t)s->sessions));
        json_object_set_new(out, "tows", json_integer((json_int_t)s->towed));
        json_object_set_new(out, "tows_caught", json_integer((json_int_t)s->caught));
        json_object_set_new(out, "tows_missed", json_integer((json_int_t)missed));
        json_object_set_new(out, "false_alarms", json_integer((json_int_t)s->false_alarms));
        json_object_set_new(out, "delay_reports_p50", json_real(p50));
        json_object_set_new(out, "delay_reports_p95", json_real(p95));
        json_object_set_new(out, "detect_seconds", json_real(secs));
        json_object_set_new(out, "reports_per_second", json_real(rate));
        json_object_set_new(out, "kernel", json_string(r->d.kernel->name));
        char *str = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(12));
        puts(str);
        free(str);
        return;
    }
    printf("\nSummary\n");
    printf("  reports      %llu in %.3f s of detection: %.2f M reports/s on one core (%s)\n",
           (unsigned long long)s->reports, secs, rate / 1e6, r->d.kernel->name);
    printf("  sessions     %llu parking sessions, %llu with a tow\n",
           (unsigned long long)s->sessions, (unsigned long long)s->towed);
    printf("  alarms       %llu: %llu tows caught, %llu false alarms\n",
           (unsigned long long)s->alarms, (unsigned long long)s->caught,
           (unsigned long long)s->false_alarms);
    printf("  missed tows  %llu\n", (unsigned long long)missed);
    if (missed > s->missed_masked)
        printf("               %llu of %.0f to %.0f m: not far enough beyond threshold plus drift\n",
               (unsigned long long)(missed - s->missed_masked), s->shortest_missed_m,
               s->longest_missed_m);
    if (s->missed_masked)
        printf("               %llu after a false alarm in the same session (one alarm per session)\n",
               (unsigned long long)s->missed_masked);
    if (s->caught)
        printf("  delay        median %.0f, p95 %.0f fixes after the move\n", p50, p95);
    if (s->false_alarms && r->det.rule == HC_RULE_SEED)
        printf("  (false alarms come from two or more strays in one window: the seed"
               " rule's known weakness; --rule robust leaves strays out)\n");
}

/* ---- scenario mode ---------------------------------------------------------- */

/* Tow distance bands of the summary, metres. */
static const double tow_band_edge[] = { 0, 100, 200, 500, 2000, INFINITY };
#define N_TOW_BANDS (sizeof(tow_band_edge) / sizeof(tow_band_edge[0]) - 1)

struct scn_run {
    const char *file, *stream_path, *truth_path;
    bool calibration;
    int json, quiet, tty;
    const char *seed_arg, *vehicles_arg;
    unsigned batch;
    struct hc_scn s;
    FILE *stream, *truth, *summary;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint64_t frames, bytes, truth_lines;
    uint64_t tow_band[N_TOW_BANDS];
    uint64_t t0, t_shown;
    int progress_len;
};

static void scn_parse(struct scn_run *r, int argc, char **argv)
{
    enum { O_SCENARIO = 256, O_STREAM, O_TRUTH, O_CALIBRATION, O_SEED, O_BATCH, O_JSON };
    static const struct option opts[] = {
        { "scenario", required_argument, 0, O_SCENARIO },
        { "stream", required_argument, 0, O_STREAM },
        { "truth", required_argument, 0, O_TRUTH },
        { "calibration", no_argument, 0, O_CALIBRATION },
        { "seed", required_argument, 0, O_SEED },
        { "vehicles", required_argument, 0, 'n' },
        { "batch", required_argument, 0, O_BATCH },
        { "json", no_argument, 0, O_JSON },
        { "quiet", no_argument, 0, 'q' },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    int c;
    r->batch = 256;
    while ((c = getopt_long(argc, argv, "n:qh", opts, NULL)) != -1) {
        switch (c) {
        case O_SCENARIO: r->file = optarg; break;
        case O_STREAM: r->stream_path = optarg; break;
        case O_TRUTH: r->truth_path = optarg; break;
        case O_CALIBRATION: r->calibration = true; break;
        case O_SEED: hc_cli_uint("--seed", r->seed_arg = optarg, 0, UINT64_MAX); break;
        case 'n': hc_cli_uint("--vehicles", r->vehicles_arg = optarg, 1, HC_SCN_VEHICLES_MAX); break;
        case O_BATCH: r->batch = (unsigned)hc_cli_uint("--batch", optarg, 1, SCN_BATCH_MAX); break;
        case O_JSON: r->json = 1; break;
        case 'q': r->quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        default:
            fprintf(stderr, "Try 'hubcap-sim --help' (scenario mode takes only the options of "
                            "its own section).\n");
            exit(2);
        }
    }
    if (optind < argc)
        hc_cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (!r->stream_path)
        hc_cli_usage_error("--scenario needs --stream OUT (a file, or - for standard output)");
    if (!strcmp(r->stream_path, "-") && isatty(STDOUT_FILENO))
        hc_cli_usage_error("the stream is binary: redirect standard output or give "
                           "--stream FILE");
    if (r->truth_path && !strcmp(r->truth_path, "-"))
        hc_cli_usage_error("--truth wants a file name (only the stream can go to standard "
                           "output)");
    r->tty = isatty(STDERR_FILENO) && !r->quiet;
}

/* The file's scenario with the command line's replacements. */
static int scn_load(struct scn_run *r)
{
    char err[600];
    if (hc_scn_load(r->file, &r->s, err, sizeof(err)) < 0) {
        fprintf(stderr, "hubcap-sim: %s\n", err);
        return -1;
    }
    if (r->seed_arg)
        *(r->calibration ? &r->s.calibration_seed : &r->s.seed) =
            hc_cli_uint("--seed", r->seed_arg, 0, UINT64_MAX);
    if (r->vehicles_arg)
        *(r->calibration ? &r->s.calibration_vehicles : &r->s.vehicles) =
            (uint32_t)hc_cli_uint("--vehicles", r->vehicles_arg, 1, HC_SCN_VEHICLES_MAX);
    return 0;
}

static FILE *scn_open(const char *path)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "wb") : stdout;
    if (!f)
        fprintf(stderr, "hubcap-sim: cannot write %s: %s; check the directory exists and is "
                        "writable\n", path, strerror(errno));
    else
        setvbuf(f, NULL, _IOFBF, 1 << 20);
    return f;
}

static uint64_t scn_seed(const struct scn_run *r)
{
    return r->calibration ? r->s.calibration_seed : r->s.seed;
}

static void scn_truth_header(struct scn_run *r)
{
    fprintf(r->truth, "# hubcap-sim scenario ground truth, one line per parking session\n"
                      "# scenario: %s\n# file: %s\n# seed: %llu\n# calibration: %s\n"
                      "vid,maker,night,start_ms,end_ms,fixes,tow_m,tow_ms,moved_ms,"
                      "after_fixes,multipath_fixes\n",
            r->s.name, r->file, (unsigned long long)scn_seed(r), r->calibration ? "yes" : "no");
}

/* A session is complete: count its tow, write its truth line. */
static void scn_session(struct scn_run *r, const struct hc_scn_session *t)
{
    if (t->tow_ms) {
        size_t b = 0;
        while (b + 1 < N_TOW_BANDS && t->tow_m >= tow_band_edge[b + 1])
            b++;
        r->tow_band[b]++;
    }
    if (!r->truth)
        return;
    char vid[16];
    hc_scn_vid(t->vehicle, r->calibration, vid);
    fprintf(r->truth, "%s,%s,%u,%lld,%lld,%u,%.2f,%lld,%lld,%u,%u\n", vid,
            r->s.makers[t->maker].name, t->night, (long long)t->start_ms,
            (long long)t->end_ms, t->fixes, t->tow_m, (long long)t->tow_ms,
            (long long)t->moved_ms, t->after_fixes, t->multipath_fixes);
    r->truth_lines++;
}

/* n reports as one frame: length, then an array of report maps. */
static int scn_frame(struct scn_run *r, const struct hc_report *rep, size_t n)
{
    uint8_t hdr[4];
    msgpack_sbuffer_clear(&r->sb);
    if (msgpack_pack_array(&r->pk, n) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (hc_wire_pack(&r->pk, &rep[i]) < 0)
            return -ENOMEM;
    hc_wire_frame_header(hdr, (uint32_t)r->sb.size);
    fwrite(hdr, 1, sizeof(hdr), r->stream);
    fwrite(r->sb.data, 1, r->sb.size, r->stream);
    r->frames++;
    r->bytes += sizeof(hdr) + r->sb.size;
    return 0;
}

static void scn_progress_clear(struct scn_run *r)
{
    if (r->progress_len)
        fprintf(stderr, "\r%*s\r", r->progress_len, "");
    r->progress_len = 0;
}

/* At most ten times a second, on a terminal only.  The bar follows the
 * simulated clock (ts, the latest report), which advances steadily, where
 * sessions complete only in the mornings. */
static void scn_progress(struct scn_run *r, const struct hc_scn_stats *st, int64_t ts)
{
    uint64_t now = hc_time_mono_ns();
    if (!r->tty || now - r->t_shown < 100000000u)
        return;
    r->t_shown = now;
    uint32_t nights = r->calibration ? r->s.calibration_nights : r->s.nights;
    double span = (nights - 1) * 86400e3 + (r->s.arrive_spread_h + r->s.session_max_h) * 3600e3;
    double done = fmin(1.0, (double)(ts - r->s.start_ms) / span);
    char bar[25], when[HC_TIME_LEN];
    for (int i = 0; i < 24; i++)
        bar[i] = i < (int)(done * 24 + 0.5) ? '#' : '.';
    bar[24] = '\0';
    int n = fprintf(stderr, "\r  [%s] %5.1f %%  at %s, %llu reports, %llu sessions done   ",
                    bar, 100.0 * done, hc_time_format(ts, 0, when),
                    (unsigned long long)st->reports, (unsigned long long)st->sessions);
    if (n > r->progress_len)
        r->progress_len = n;
}

static int scn_generate(struct scn_run *r, struct hc_scn_gen *g)
{
    struct hc_report *batch = malloc(r->batch * sizeof(*batch));
    size_t n = 0;
    int rc = batch ? 0 : -ENOMEM;
    msgpack_sbuffer_init(&r->sb);
    msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
    while (rc == 0 && hc_scn_gen_next(g, &batch[n], NULL)) {
        const struct hc_scn_session *t = hc_scn_gen_session(g);
        if (t)
            scn_session(r, t);
        if (++n == r->batch) {
            rc = scn_frame(r, batch, n);
            n = 0;
            scn_progress(r, hc_scn_gen_stats(g), batch[r->batch - 1].ts);
        }
    }
    if (rc == 0 && n)
        rc = scn_frame(r, batch, n);
    scn_progress_clear(r);
    msgpack_sbuffer_destroy(&r->sb);
    free(batch);
    return rc;
}

/* Close an output, saying why if what was written did not all get there. */
static int scn_close(FILE *f, const char *path)
{
    int bad = ferror(f), err = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (!bad)
        return 0;
    fprintf(stderr, "hubcap-sim: writing %s failed: %s\n", path, strerror(err ? err : EIO));
    return -1;
}

static json_t *json_u64(uint64_t v)
{
    return v <= INT64_MAX ? json_integer((json_int_t)v) : json_real((double)v);
}

static double pct(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static void scn_summary_json(const struct scn_run *r, const struct hc_scn_stats *st, double secs)
{
    json_t *bands = json_array(), *makers = json_array();
    for (size_t b = 0; b < N_TOW_BANDS; b++)
        json_array_append_new(bands, json_pack("{s:f, s:o, s:I}", "min_m", tow_band_edge[b],
            "max_m", isinf(tow_band_edge[b + 1]) ? json_null() : json_real(tow_band_edge[b + 1]),
            "tows", (json_int_t)r->tow_band[b]));
    for (unsigned m = 0; m < r->s.n_makers; m++)
        json_array_append_new(makers, json_pack("{s:s, s:I, s:I, s:I, s:I}",
            "maker", r->s.makers[m].name, "vehicles", (json_int_t)st->maker[m].vehicles,
            "fixes", (json_int_t)st->maker[m].fixes,
            "multipath_fixes", (json_int_t)st->maker[m].multipath,
            "lost_fixes", (json_int_t)st->maker[m].lost));
    json_t *j = json_pack("{s:s, s:s, s:s, s:o, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:f,"
                          " s:I, s:f, s:I, s:f, s:I, s:o, s:o, s:s, s:I, s:I, s:s?, s:I, s:f}",
        "type", "scenario", "scenario", r->s.name, "file", r->file,
        "seed", json_u64(scn_seed(r)), "calibration", r->calibration,
        "vehicles", (json_int_t)(r->calibration ? r->s.calibration_vehicles : r->s.vehicles),
        "nights", (json_int_t)(r->calibration ? r->s.calibration_nights : r->s.nights),
        "vehicle_nights", (json_int_t)st->sessions,
        "reports", (json_int_t)st->reports, "parked_fixes", (json_int_t)st->fixes,
        "multipath_fixes", (json_int_t)st->multipath, "multipath_pct", pct(st->multipath, st->fixes),
        "lost_fixes", (json_int_t)st->lost, "lost_pct", pct(st->lost, st->lost + st->fixes),
        "tows", (json_int_t)st->tows, "tows_pct", pct(st->tows, st->sessions),
        "tows_in_gap", (json_int_t)st->tows_in_gap, "tow_bands", bands, "makers", makers,
        "stream", r->stream_path, "frames", (json_int_t)r->frames, "bytes", (json_int_t)r->bytes,
        "truth", r->truth_path, "truth_lines", (json_int_t)r->truth_lines, "seconds", secs);
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(12));
    fprintf(r->summary, "%s\n", s);
    free(s);
    json_decref(j);
}

static void scn_summary(const struct scn_run *r, const struct hc_scn_stats *st, double secs)
{
    if (r->json) {
        scn_summary_json(r, st, secs);
        return;
    }
    FILE *f = r->summary;
    fprintf(f, "hubcap-sim: scenario %s (%s), %s set, seed %llu\n", r->s.name, r->file,
            r->calibration ? "calibration" : "evaluation", (unsigned long long)scn_seed(r));
    fprintf(f, "  vehicle-nights  %llu\n", (unsigned long long)st->sessions);
    fprintf(f, "  reports         %llu: %llu ignition-on, %llu parked fixes\n",
            (unsigned long long)st->reports, (unsigned long long)(st->reports - st->fixes),
            (unsigned long long)st->fixes);
    fprintf(f, "  multipath       %llu fixes (%.2f %% of parked fixes)\n",
            (unsigned long long)st->multipath, pct(st->multipath, st->fixes));
    fprintf(f, "  lost            %llu fixes (%.2f %% of report slots)\n",
            (unsigned long long)st->lost, pct(st->lost, st->lost + st->fixes));
    fprintf(f, "  tows            %llu (%.2f %% of sessions), %llu inside a reporting gap\n",
            (unsigned long long)st->tows, pct(st->tows, st->sessions),
            (unsigned long long)st->tows_in_gap);
    for (size_t b = 0; b < N_TOW_BANDS; b++) {
        char band[32];
        if (!r->tow_band[b] && (b == 0 || b + 1 == N_TOW_BANDS))
            continue;           /* outside the usual 100-2000 m, shown only when used */
        if (isinf(tow_band_edge[b + 1]))
            snprintf(band, sizeof(band), "%.0f m and more", tow_band_edge[b]);
        else
            snprintf(band, sizeof(band), "%.0f-%.0f m", tow_band_edge[b], tow_band_edge[b + 1]);
        fprintf(f, "    %-14s%llu\n", band, (unsigned long long)r->tow_band[b]);
    }
    fprintf(f, "  %-14s  %9s %10s %10s %10s\n", "maker", "vehicles", "fixes", "multipath", "lost");
    for (unsigned m = 0; m < r->s.n_makers; m++)
        fprintf(f, "  %-14s  %9llu %10llu %10llu %10llu\n", r->s.makers[m].name,
                (unsigned long long)st->maker[m].vehicles, (unsigned long long)st->maker[m].fixes,
                (unsigned long long)st->maker[m].multipath, (unsigned long long)st->maker[m].lost);
    fprintf(f, "  written         %llu bytes in %llu frames to %s", (unsigned long long)r->bytes,
            (unsigned long long)r->frames, r->stream_path);
    if (r->truth_path)
        fprintf(f, "; %llu sessions to %s", (unsigned long long)r->truth_lines, r->truth_path);
    fprintf(f, "\n  time            %.2f s\n", secs);
}

static int scenario_main(int argc, char **argv)
{
    struct scn_run r;
    struct hc_scn_gen *g = NULL;
    memset(&r, 0, sizeof(r));
    scn_parse(&r, argc, argv);
    if (scn_load(&r) < 0)
        return 1;
    int rc = hc_scn_gen_new(&r.s, r.calibration, &g);
    if (rc < 0) {
        fprintf(stderr, "hubcap-sim: %s\n", hc_strerror(rc));
        return 1;
    }
    r.summary = strcmp(r.stream_path, "-") ? stdout : stderr;
    r.t0 = hc_time_mono_ns();
    r.stream = scn_open(r.stream_path);
    if (r.stream && r.truth_path && (r.truth = scn_open(r.truth_path)) != NULL)
        scn_truth_header(&r);
    rc = !r.stream || (r.truth_path && !r.truth) ? -1 : scn_generate(&r, g);
    if (rc < -1)
        fprintf(stderr, "hubcap-sim: %s\n", hc_strerror(rc));
    if (r.stream && scn_close(r.stream, r.stream_path) < 0)
        rc = -1;
    if (r.truth && scn_close(r.truth, r.truth_path) < 0)
        rc = -1;
    if (rc == 0)
        scn_summary(&r, hc_scn_gen_stats(g), (double)(hc_time_mono_ns() - r.t0) / 1e9);
    hc_scn_gen_free(g);
    return rc == 0 ? 0 : 1;
}

/* Whether the command line asks for scenario mode: --scenario, or any
 * abbreviation getopt would take for it. */
static bool scenario_mode(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        size_t n = strcspn(argv[i], "=");
        if (n >= 4 && !strncmp(argv[i], "--scenario", n))
            return true;
    }
    return false;
}

int main(int argc, char **argv)
{
    struct run r;
    memset(&r, 0, sizeof(r));
    hc_cli_init(argv[0]);
    if (scenario_mode(argc, argv))
        return scenario_main(argc, argv);
    parse(&r, argc, argv);

    int rc = hc_detector_init(&r.d, &r.det);
    if (rc < 0) {
        fprintf(stderr, "hubcap-sim: %s\n", hc_strerror(rc));
        return 2;
    }
    json_t *out = json_object();
    double secs = 0;
    if (!r.json)
        printf("hubcap-sim: %u vehicles, seed %llu; W %u, N1 %u, N2 %u\n\n", r.sim.vehicles,
               (unsigned long long)r.sim.seed, r.det.window, r.det.n1, r.det.n2);
    rc = calibrate(&r, out);
    if (rc == 0 && r.write_thresholds)
        rc = write_thresholds(&r);
    if (rc == 0 && r.calibrate_only) {
        json_decref(out);
        hc_detector_free(&r.d);
        return 0;
    }
    if (rc == 0)
        rc = replay(&r, &secs);
    if (rc < 0) {
        fprintf(stderr, "hubcap-sim: %s\n", hc_strerror(rc));
    } else {
        summary(&r, secs, out);
    }
    json_decref(out);
    free(r.vehicles);
    free(r.after);
    free(r.alarmed);
    free(r.tow_m);
    hc_detector_free(&r.d);
    return rc < 0 ? 3 : 0;
}
