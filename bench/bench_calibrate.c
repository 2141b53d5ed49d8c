/*
 * bench_calibrate — hubcap-calibrate end to end, and its drift computation.
 *
 * 1. A generated history (N vehicles of 3 makers, one parking session of F
 *    fixes each, rows in time order across the fleet as an export would
 *    give them) is written to a temporary CSV file; hubcap-calibrate is run
 *    on it as an operator would, three times: rows per second from start
 *    to exit, and its peak resident memory per fix.
 * 2. In process, the same sessions: hc_drift_add per session with the
 *    project's chord kernel (histogram included) against the naive method,
 *    hc_geo_haversine_m over every pair of each session tracking the
 *    maximum; the two maxima must agree within 1 cm (DETECTION.md).
 *
 * Output: "# " lines for the command lines, the input and each run, then
 * "BENCH <name> <value> <unit>" lines.  Exit status 1 if a run fails or
 * the figures disagree.  The program is $HUBCAP_CALIBRATE, else
 * ../tools/hubcap-calibrate beside this binary.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "benchutil.h"
#include "hubcap/calib.h"
#include "hubcap/cli.h"
#include "hubcap/geo.h"
#include "hubcap/rng.h"
#include "hubcap/sim.h"
#include "hubcap/timefmt.h"

#define ROUNDS 3
#define N_MAKERS 3
#define T0 1795000000000LL

static const char *const maker_names[N_MAKERS] = { "acme", "bolt", "zeta" };
static const double maker_sigma[N_MAKERS] = { 3.0, 8.0, 1.5 };

struct history {
    unsigned vehicles, fixes;       /* fixes per vehicle: one session */
    double *lat, *lon;              /* vehicle v's fix k at v * fixes + k */
};

static void generate(struct history *h)
{
    struct hc_rng r;
    hc_rng_seed(&r, 42);
    size_t n = (size_t)h->vehicles * h->fixes;
    h->lat = malloc(n * sizeof(double));
    h->lon = malloc(n * sizeof(double));
    if (!h->lat || !h->lon) {
        fprintf(stderr, "bench_calibrate: out of memory\n");
        exit(1);
    }
    for (unsigned v = 0; v < h->vehicles; v++) {
        double clat = hc_rng_range(&r, -60, 70), clon = hc_rng_range(&r, -180, 180);
        for (unsigned k = 0; k < h->fixes; k++) {
            size_t i = (size_t)v * h->fixes + k;
            hc_sim_offset(clat, clon, fabs(hc_rng_normal(&r)) * maker_sigma[v % N_MAKERS],
                          hc_rng_range(&r, 0, 6.283185307179586), &h->lat[i], &h->lon[i]);
            /* To 1e-7 degrees (about 1 cm), as devices and exports give them;
             * "%.7f" then writes exactly this value. */
            h->lat[i] = round(h->lat[i] * 1e7) / 1e7;
            h->lon[i] = round(h->lon[i] * 1e7) / 1e7;
        }
    }
}

/* The CSV an export would give: fix k of every vehicle, then fix k + 1. */
static int write_csv(const struct history *h, const char *path, uint64_t *bytes)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    fprintf(f, "vid,maker,ts,lat,lon,acc\n");
    for (unsigned k = 0; k < h->fixes; k++)
        for (unsigned v = 0; v < h->vehicles; v++) {
            size_t i = (size_t)v * h->fixes + k;
            fprintf(f, "CAR-%07u,%s,%lld,%.7f,%.7f,0\n", v, maker_names[v % N_MAKERS],
                    (long long)(T0 + (int64_t)k * 300000 + v), h->lat[i], h->lon[i]);
        }
    long size = ftell(f);
    *bytes = size > 0 ? (uint64_t)size : 0;
    return fclose(f) == 0 && size > 0 ? 0 : -1;
}

/* The tool, end to end: wall seconds and peak RSS (KiB), its JSON in
 * *out.  0, or -1 after saying why. */
static int run_tool(const char *tool, const char *csv, const char *out_path, double *secs,
                    long *rss_kib, json_t **out)
{
    const char *argv[] = { tool, "--json", "-q", csv, NULL };
    fflush(stdout);
    uint64_t t0 = hc_time_mono_ns();
    pid_t parent = getpid(), pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent || fd < 0 ||
            dup2(fd, STDOUT_FILENO) < 0)
            _exit(127);
        execv(tool, (char *const *)argv);
        _exit(127);
    }
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) != pid)
        return -1;
    *secs = (double)(hc_time_mono_ns() - t0) / 1e9;
    *rss_kib = ru.ru_maxrss;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench_calibrate: %s exited with status %d\n", tool,
                WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        return -1;
    }
    *out = json_load_file(out_path, 0, NULL);
    if (!*out) {
        fprintf(stderr, "bench_calibrate: %s printed no JSON\n", tool);
        return -1;
    }
    return 0;
}

/* hc_drift_add per session, one accumulator per maker: seconds, maxima. */
static double drift_kernel(const struct history *h, double max_m[N_MAKERS])
{
    struct hc_drift d[N_MAKERS];
    const struct hc_kernel *k = hc_kernel_best();
    for (int m = 0; m < N_MAKERS; m++)
        if (hc_drift_init(&d[m]) < 0)
            return -1;
    uint64_t t0 = hc_time_mono_ns();
    for (unsigned v = 0; v < h->vehicles; v++) {
        size_t at = (size_t)v * h->fixes;
        if (hc_drift_add(&d[v % N_MAKERS], k, h->lat + at, h->lon + at, h->fixes) < 0)
            return -1;
    }
    double s = (double)(hc_time_mono_ns() - t0) / 1e9;
    for (int m = 0; m < N_MAKERS; m++) {
        max_m[m] = hc_drift_max_m(&d[m]);
        hc_drift_free(&d[m]);
    }
    return s;
}

/* The naive method: haversine over every pair of each session. */
static double drift_naive(const struct history *h, double max_m[N_MAKERS])
{
    for (int m = 0; m < N_MAKERS; m++)
        max_m[m] = 0;
    uint64_t t0 = hc_time_mono_ns();
    for (unsigned v = 0; v < h->vehicles; v++) {
        const double *lat = h->lat + (size_t)v * h->fixes, *lon = h->lon + (size_t)v * h->fixes;
        double mx = max_m[v % N_MAKERS];
        for (unsigned i = 0; i < h->fixes; i++)
            for (unsigned j = i + 1; j < h->fixes; j++) {
                double dist = hc_geo_haversine_m(lat[i], lon[i], lat[j], lon[j]);
                if (dist > mx)
                    mx = dist;
            }
        max_m[v % N_MAKERS] = mx;
    }
    return (double)(hc_time_mono_ns() - t0) / 1e9;
}

static void locate(char *tool, size_t cap)
{
    const char *env = getenv("HUBCAP_CALIBRATE");
    char self[PATH_MAX], real[PATH_MAX];
    if (env && *env) {
        snprintf(tool, cap, "%s", env);
    } else {
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        self[n > 0 ? n : 0] = '\0';
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        snprintf(tool, cap, "%.*s/../tools/hubcap-calibrate", PATH_MAX - 40, self);
    }
    if (realpath(tool, real))
        snprintf(tool, cap, "%s", real);
}

int main(int argc, char **argv)
{
    struct history h = { .vehicles = 200000, .fixes = 16 };
    hc_cli_init(argv[0]);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            h.vehicles = 3000;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: bench_calibrate [--quick]\n\n"
                   "Rows per second through hubcap-calibrate on a generated CSV history\n"
                   "(200,000 vehicles x 16 fixes, 3 makers; median of 3 runs) and its peak\n"
                   "memory per fix; in process, drift pairs per second with the chord kernel\n"
                   "against haversine over every pair.  The program is $HUBCAP_CALIBRATE,\n"
                   "else ../tools/hubcap-calibrate beside this binary.  --quick: small\n"
                   "sizes, for the test suite (figures not meaningful).\n");
            return 0;
        } else {
            hc_cli_usage_error("unknown argument '%s'", argv[i]);
        }
    }
    char tool[PATH_MAX], work[] = "/tmp/hubcap-bench-calibrate-XXXXXX", csv[64], out[64];
    locate(tool, sizeof(tool));
    if (access(tool, X_OK) < 0) {
        fprintf(stderr, "bench_calibrate: %s: %s (build it, or set HUBCAP_CALIBRATE)\n", tool,
                strerror(errno));
        return 1;
    }
    if (!mkdtemp(work)) {
        perror("bench_calibrate: mkdtemp");
        return 1;
    }
    snprintf(csv, sizeof(csv), "%s/history.csv", work);
    snprintf(out, sizeof(out), "%s/out.json", work);
    generate(&h);
    uint64_t rows = (uint64_t)h.vehicles * h.fixes, bytes = 0;
    uint64_t pairs = (uint64_t)h.vehicles * h.fixes * (h.fixes - 1) / 2;
    int rc = write_csv(&h, csv, &bytes);
    if (rc < 0)
        fprintf(stderr, "bench_calibrate: cannot write %s\n", csv);

    printf("# command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n# input: %u vehicles x %u fixes (one parking session each, %d makers with 1.5 to"
           " 8 m of drift), %llu rows in time order across the fleet, positions to 7 decimals,"
           " CSV of %.1f MB\n",
           h.vehicles, h.fixes, N_MAKERS, (unsigned long long)rows, (double)bytes / 1e6);
    printf("# tool: %s --json -q %s; %d runs, median; rows/s = rows / seconds from fork to"
           " exit\n", tool, csv, ROUNDS);

    double rate[ROUNDS], per_fix[ROUNDS], tool_max[N_MAKERS] = { 0 };
    for (int i = 0; i < ROUNDS && rc == 0; i++) {
        double s;
        long rss;
        json_t *j = NULL;
        rc = run_tool(tool, csv, out, &s, &rss, &j);
        if (rc < 0)
            break;
        uint64_t got = (uint64_t)json_integer_value(json_object_get(j, "rows"));
        json_t *mk = json_object_get(j, "makers");
        for (int m = 0; m < N_MAKERS; m++)
            tool_max[m] = json_number_value(json_object_get(json_array_get(mk, (size_t)m),
                                                            "max_m"));
        json_decref(j);
        if (got != rows) {
            fprintf(stderr, "bench_calibrate: the tool read %llu rows of %llu\n",
                    (unsigned long long)got, (unsigned long long)rows);
            rc = -1;
            break;
        }
        rate[i] = (double)rows / s;
        per_fix[i] = (double)rss * 1024.0 / (double)rows;
        printf("# run %d: %.3f s, %.0f rows/s, peak RSS %.1f MB (%.1f B a fix)\n", i + 1, s,
               rate[i], (double)rss / 1024.0, per_fix[i]);
    }

    double tk[ROUNDS], tn[ROUNDS], kmax[N_MAKERS], nmax[N_MAKERS];
    if (rc == 0)
        printf("# drift: %u sessions of %u fixes, %llu pairs; kernel %s (hc_drift_add per"
               " session, histogram included) vs naive (hc_geo_haversine_m over every pair,"
               " maximum only); %d rounds, median\n", h.vehicles, h.fixes,
               (unsigned long long)pairs, hc_kernel_best()->name, ROUNDS);
    for (int i = 0; i < ROUNDS && rc == 0; i++) {
        tk[i] = drift_kernel(&h, kmax);
        tn[i] = drift_naive(&h, nmax);
        if (tk[i] < 0) {
            fprintf(stderr, "bench_calibrate: hc_drift_add failed\n");
            rc = -1;
        }
        printf("# round %d: kernel %.3f s, naive %.3f s\n", i + 1, tk[i], tn[i]);
    }
    for (int m = 0; m < N_MAKERS && rc == 0; m++) {
        printf("# %s: max drift %.4f m (kernel), %.4f m (naive), %.4f m (tool)\n",
               maker_names[m], kmax[m], nmax[m], tool_max[m]);
        if (fabs(kmax[m] - nmax[m]) > 0.01 || fabs(tool_max[m] - kmax[m]) > 1e-6) {
            fprintf(stderr, "bench_calibrate: %s: the maxima disagree\n", maker_names[m]);
            rc = -1;
        }
    }
    if (rc == 0) {
        double k = bench_median(tk, ROUNDS), n = bench_median(tn, ROUNDS);
        printf("BENCH calibrate_rows_per_s %.0f rows/s\n", bench_median(rate, ROUNDS));
        printf("BENCH calibrate_peak_bytes_per_fix %.1f B\n", bench_median(per_fix, ROUNDS));
        printf("BENCH calibrate_drift_pairs_per_s %.0f pairs/s\n", (double)pairs / k);
        printf("BENCH naive_drift_pairs_per_s %.0f pairs/s\n", (double)pairs / n);
        printf("BENCH calibrate_drift_vs_naive_ratio %.1f x\n", n / k);
    }
    unlink(csv);
    unlink(out);
    rmdir(work);
    free(h.lat);
    free(h.lon);
    return rc == 0 ? 0 : 1;
}
