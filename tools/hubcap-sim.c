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
 * Single-threaded; all state lives in struct run.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hubcap/calib.h"
#include "hubcap/cli.h"
#include "hubcap/detect.h"
#include "hubcap/error.h"
#include "hubcap/sim.h"
#include "hubcap/timefmt.h"

#define BATCH 4096

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
"      --window W         positions in the sliding window (default 16)\n"
"      --n1 N             positions needed before deciding (default 10)\n"
"      --n2 N             moved when more than N pairs exceed (default W-1)\n"
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
"error, 3 when the run could not complete (out of memory).\n");
}

static void parse(struct run *r, int argc, char **argv)
{
    enum { O_TOW = 256, O_STRAY, O_SEED, O_WINDOW, O_N1, O_N2, O_CONF, O_MARGIN, O_JSON, O_CAL_ONLY, O_WRITE };
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
    if (s->false_alarms)
        printf("  (false alarms come from two or more strays in one window: the seed"
               " rule's known weakness)\n");
}

int main(int argc, char **argv)
{
    struct run r;
    memset(&r, 0, sizeof(r));
    hc_cli_init(argv[0]);
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
