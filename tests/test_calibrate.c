/*
 * test_calibrate.c — hubcap-calibrate end to end: a generated history of
 * parked vehicles (three makers with their own drift, short sessions,
 * ignition-on fixes, rows out of order) written as CSV in two column orders
 * and as a native msgpack stream; the tool run as a program and its figures
 * checked against a brute force over every pair of every session with the
 * haversine reference.  A second history with multipath strays checks the
 * trimmed figures.  Then bad rows, damaged streams, usage errors, and
 * --apply against a real hubcapd.
 *
 * The tool is $HUBCAP_CALIBRATE, the daemon $HUBCAPD.
 */
#include <criterion/criterion.h>
#include <errno.h>
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
#include "hubcap/calib.h"
#include "hubcap/geo.h"
#include "hubcap/rng.h"
#include "hubcap/sim.h"
#include "hubcap/timefmt.h"
#include "hubcap/wire.h"

#define T0 1795000000000LL
#define N_MAKERS 4

/* Three makers with their own GPS drift, and one whose sessions are all a
 * single fix (no pair, so no threshold). */
static const struct {
    const char *name;
    unsigned vehicles;
    double sigma_m;
} makers[N_MAKERS] = {
    { "acme", 150, 3.0 }, { "bolt", 100, 8.0 }, { "solo", 5, 2.0 }, { "zeta", 50, 1.5 },
};

struct row {
    char vid[16];
    const char *maker;
    int64_t ts;
    double lat, lon;
    int acc;
    int stray;              /* a multipath fix (generate_strays) */
};

struct data {
    struct row *rows;       /* per vehicle, in time order */
    size_t n, cap;
    size_t *shuffled;       /* the order the files hold them in */
};

struct expect {
    uint64_t vehicles, sessions, fixes, pairs;
    double max, *dist;      /* every pair's distance, sorted */
    size_t cap;
};

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
    test_dir_make(dir, sizeof(dir), "calibrate");
}

TestSuite(calibrate, .init = setup, .fini = cleanup, .timeout = 120);

static const char *path_in(const char *name)
{
    return path_in_dir(dir, name);
}

/* ---- the history ------------------------------------------------------------ */

static void add(struct data *g, const char *vid, const char *maker, int64_t ts, double lat,
                double lon, int acc)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 4096;
        g->rows = realloc(g->rows, g->cap * sizeof(*g->rows));
        cr_assert_not_null(g->rows);
    }
    struct row *r = &g->rows[g->n++];
    snprintf(r->vid, sizeof(r->vid), "%s", vid);
    r->maker = maker;
    r->ts = ts;
    r->lat = lat;
    r->lon = lon;
    r->acc = acc;
    r->stray = 0;
}

/* The order the files hold the rows in: shuffled across the whole fleet. */
static void shuffle(struct data *g, struct hc_rng *r)
{
    g->shuffled = malloc(g->n * sizeof(size_t));
    for (size_t i = 0; i < g->n; i++)
        g->shuffled[i] = i;
    for (size_t i = g->n - 1; i > 0; i--) {
        size_t j = hc_rng_below(r, i + 1), t = g->shuffled[i];
        g->shuffled[i] = g->shuffled[j];
        g->shuffled[j] = t;
    }
}

/* Every vehicle: 1 to 4 parking sessions around spots 1 km or more apart,
 * ignition-on fixes between them (sometimes two, sometimes one first or
 * last); a session has 1, 2 or 3 to 20 fixes.  Then the rows are shuffled
 * across the whole fleet. */
static void generate(struct data *g, uint64_t seed)
{
    struct hc_rng r;
    hc_rng_seed(&r, seed);
    memset(g, 0, sizeof(*g));
    unsigned v = 0;
    for (int m = 0; m < N_MAKERS; m++)
        for (unsigned i = 0; i < makers[m].vehicles; i++, v++) {
            char vid[16];
            snprintf(vid, sizeof(vid), "V%04u", v);
            int64_t ts = T0 + (int64_t)v * 7919;
            double clat = hc_rng_range(&r, -60, 70), clon = hc_rng_range(&r, -180, 180);
            unsigned sessions = 1 + (unsigned)hc_rng_below(&r, 4);
            if (hc_rng_below(&r, 8) == 0)
                add(g, vid, makers[m].name, ts += 60000, clat, clon, 1);
            for (unsigned s = 0; s < sessions; s++) {
                unsigned u = (unsigned)hc_rng_below(&r, 10);
                unsigned n = u == 0 ? 1 : u == 1 ? 2 : 3 + (unsigned)hc_rng_below(&r, 18);
                if (!strcmp(makers[m].name, "solo"))
                    n = 1;
                for (unsigned k = 0; k < n; k++) {
                    double la, lo;
                    hc_sim_offset(clat, clon, fabs(hc_rng_normal(&r)) * makers[m].sigma_m,
                                  hc_rng_range(&r, 0, 6.283185307179586), &la, &lo);
                    add(g, vid, makers[m].name, ts += 60000 + (int64_t)hc_rng_below(&r, 999),
                        la, lo, 0);
                }
                if (s + 1 < sessions || hc_rng_below(&r, 4) == 0) {
                    unsigned drives = 1 + (unsigned)hc_rng_below(&r, 2);
                    for (unsigned k = 0; k < drives; k++) {
                        hc_sim_offset(clat, clon, 1000 + 500 * k, 1.0, &clat, &clon);
                        add(g, vid, makers[m].name, ts += 60000, clat, clon, 1);
                    }
                }
            }
        }
    shuffle(g, &r);
}

/* A history with multipath.  Maker "mpth": 120 vehicles, 1 to 3 sessions
 * of 10 to 30 parked fixes each, jitter drawn as generate() draws it with
 * sigma 4 m, and in a third of the sessions a stray event: one fix, or 2
 * or 3 in a row, 30 to 400 m from the spot (log-uniform, so that many lie
 * close to 30 m).  Maker "duo": 20 vehicles whose sessions are exactly 2
 * clean fixes, which trimming never judges. */
#define STRAY_SIGMA_M 4.0

static void generate_strays(struct data *g, uint64_t seed)
{
    struct hc_rng r;
    hc_rng_seed(&r, seed);
    memset(g, 0, sizeof(*g));
    for (unsigned v = 0; v < 140; v++) {
        const char *maker = v < 120 ? "mpth" : "duo";
        char vid[16];
        snprintf(vid, sizeof(vid), "S%04u", v);
        int64_t ts = T0 + (int64_t)v * 7919;
        double clat = hc_rng_range(&r, -60, 70), clon = hc_rng_range(&r, -180, 180);
        unsigned sessions = 1 + (unsigned)hc_rng_below(&r, 3);
        for (unsigned s = 0; s < sessions; s++) {
            unsigned n = v < 120 ? 10 + (unsigned)hc_rng_below(&r, 21) : 2;
            unsigned burst = v < 120 && hc_rng_below(&r, 3) == 0
                                 ? 1 + (unsigned)hc_rng_below(&r, 3) : 0;
            unsigned at = (unsigned)hc_rng_below(&r, n - burst + 1);
            for (unsigned k = 0; k < n; k++) {
                int stray = k >= at && k < at + burst;
                double off = stray ? 30 * pow(400.0 / 30, hc_rng_unit(&r))
                                   : fabs(hc_rng_normal(&r)) * STRAY_SIGMA_M;
                double la, lo;
                hc_sim_offset(clat, clon, off, hc_rng_range(&r, 0, 6.283185307179586), &la, &lo);
                add(g, vid, maker, ts += 60000, la, lo, 0);
                g->rows[g->n - 1].stray = stray;
            }
            hc_sim_offset(clat, clon, 1000, 1.0, &clat, &clon);
            add(g, vid, maker, ts += 60000, clat, clon, 1);
        }
    }
    shuffle(g, &r);
}

static void data_free(struct data *g)
{
    free(g->rows);
    free(g->shuffled);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Calls fn for every parking session of 2 fixes or more of maker's
 * vehicles (rows are per vehicle in time order; an ignition-on fix ends a
 * session).  Returns how many vehicles had one. */
static uint64_t sessions_of(const struct data *g, const char *maker,
                            void (*fn)(const struct row *s, size_t m, void *ctx), void *ctx)
{
    uint64_t vehicles = 0;
    for (size_t i = 0; i < g->n;) {
        size_t end = i;
        while (end < g->n && !strcmp(g->rows[end].vid, g->rows[i].vid))
            end++;
        int contributed = 0;
        for (size_t k = i, start = i; k <= end && !strcmp(g->rows[i].maker, maker); k++) {
            if (k < end && !g->rows[k].acc)
                continue;
            if (k - start >= 2) {
                fn(&g->rows[start], k - start, ctx);
                contributed = 1;
            }
            start = k + 1;
        }
        vehicles += (uint64_t)contributed;
        i = end;
    }
    return vehicles;
}

static void push(struct expect *e, double meters)
{
    if (e->pairs == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 1024;
        e->dist = realloc(e->dist, e->cap * sizeof(double));
        cr_assert_not_null(e->dist);
    }
    e->dist[e->pairs++] = meters;
}

static void sort_pairs(struct expect *e)
{
    if (e->pairs == 0)          /* no pair, and dist may be NULL */
        return;
    qsort(e->dist, e->pairs, sizeof(double), cmp_double);
    e->max = e->dist[e->pairs - 1];
}

static void all_pairs(const struct row *s, size_t m, void *ctx)
{
    struct expect *e = ctx;
    e->sessions++;
    e->fixes += m;
    for (size_t a = 0; a < m; a++)
        for (size_t b = a + 1; b < m; b++)
            push(e, hc_geo_haversine_m(s[a].lat, s[a].lon, s[b].lat, s[b].lon));
}

/* The brute force: every pair of every session of >= 2 fixes. */
static void brute_force(const struct data *g, const char *maker, struct expect *e)
{
    memset(e, 0, sizeof(*e));
    e->vehicles = sessions_of(g, maker, all_pairs, e);
    sort_pairs(e);
}

/* What trimming with k makes of one maker's sessions of 3 fixes or more:
 * the keep flags from hc_calib_trim (test_calib checks them against brute
 * force), every distance by haversine. */
struct trim_expect {
    double k;
    uint64_t judged, cut;           /* fixes in sessions of >= 3, and those cut */
    uint64_t strays, strays_kept, genuine_cut;
    double clean_max;               /* largest pair of two non-stray fixes */
    struct expect kept;             /* every pair of two kept fixes */
};

static void trimmed_pairs(const struct row *s, size_t m, void *ctx)
{
    enum { MAXN = 64 };
    struct trim_expect *t = ctx;
    double lat[MAXN], lon[MAXN];
    uint8_t keep[MAXN];
    if (m < 3)
        return;
    cr_assert_leq(m, MAXN);
    for (size_t i = 0; i < m; i++) {
        lat[i] = s[i].lat;
        lon[i] = s[i].lon;
    }
    long kept = hc_calib_trim(lat, lon, m, t->k, keep);
    cr_assert_geq(kept, 2);
    t->judged += m;
    t->cut += m - (size_t)kept;
    for (size_t a = 0; a < m; a++) {
        t->strays += (uint64_t)s[a].stray;
        t->strays_kept += (uint64_t)(s[a].stray && keep[a]);
        t->genuine_cut += (uint64_t)(!s[a].stray && !keep[a]);
        for (size_t b = a + 1; b < m; b++) {
            double m_ab = hc_geo_haversine_m(s[a].lat, s[a].lon, s[b].lat, s[b].lon);
            if (keep[a] && keep[b])
                push(&t->kept, m_ab);
            if (!s[a].stray && !s[b].stray && m_ab > t->clean_max)
                t->clean_max = m_ab;
        }
    }
}

static void trim_brute_force(const struct data *g, const char *maker, double k,
                             struct trim_expect *t)
{
    memset(t, 0, sizeof(*t));
    t->k = k;
    sessions_of(g, maker, trimmed_pairs, t);
    sort_pairs(&t->kept);
}

/* The exact quantile hc_drift_quantile_m approximates: the pair at rank
 * ceil(q * pairs) (src/calib.c). */
static double exact_quantile(const struct expect *e, double q)
{
    if (e->pairs == 0)
        return 0;
    size_t rank = (size_t)ceil(q * (double)e->pairs);
    return e->dist[(rank ? rank : 1) - 1];
}

/* ---- the files ---------------------------------------------------------------- */

/* Rows [from, to) of the shuffled order as CSV.  With a header: columns in
 * another order, an extra column, ISO 8601 timestamps, acc true/false;
 * without: vid,maker,ts,lat,lon,acc with integer ms and acc 1/0. */
static void write_csv(const struct data *g, size_t from, size_t to, const char *path, int header)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    if (header)
        fprintf(f, "lat,acc,vid,note,ts,lon,maker\r\n");
    for (size_t i = from; i < to; i++) {
        const struct row *r = &g->rows[g->shuffled[i]];
        char ts[HC_TIME_LEN];
        if (header)
            fprintf(f, "%.17g,%s,%s,x,%s,%.17g,%s\r\n", r->lat, r->acc ? "true" : "false",
                    r->vid, hc_time_format(r->ts, 1, ts), r->lon, r->maker);
        else
            fprintf(f, "%s,%s,%lld,%.17g,%.17g,%d\n", r->vid, r->maker, (long long)r->ts,
                    r->lat, r->lon, r->acc);
    }
    cr_assert_eq(fclose(f), 0);
}

static struct hc_report to_report(const struct row *r)
{
    struct hc_report rep;
    memset(&rep, 0, sizeof(rep));
    rep.ts = r->ts;
    rep.lat = r->lat;
    rep.lon = r->lon;
    rep.acc = (uint8_t)r->acc;
    rep.vid_len = (uint8_t)strlen(r->vid);
    memcpy(rep.vid, r->vid, rep.vid_len);
    rep.maker_len = (uint8_t)strlen(r->maker);
    memcpy(rep.maker, r->maker, rep.maker_len);
    return rep;
}

/* All rows in the shuffled order as a native stream: frames of 1 to 40
 * reports, back to back.  Returns the file's size. */
static size_t write_msgpack(const struct data *g, const char *path)
{
    struct hc_rng r;
    hc_rng_seed(&r, 99);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    msgpack_sbuffer body;
    msgpack_packer pk;
    msgpack_sbuffer_init(&body);
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    size_t size = 0;
    for (size_t i = 0; i < g->n;) {
        size_t k = 1 + hc_rng_below(&r, 40);
        if (k > g->n - i)
            k = g->n - i;
        msgpack_sbuffer_clear(&body);
        msgpack_pack_array(&pk, (uint32_t)k);
        for (size_t j = 0; j < k; j++) {
            struct hc_report rep = to_report(&g->rows[g->shuffled[i + j]]);
            cr_assert_eq(hc_wire_pack(&pk, &rep), 0);
        }
        uint8_t hdr[4];
        hc_wire_frame_header(hdr, (uint32_t)body.size);
        cr_assert_eq(fwrite(hdr, 1, 4, f), 4);
        cr_assert_eq(fwrite(body.data, 1, body.size, f), body.size);
        size += 4 + body.size;
        i += k;
    }
    msgpack_sbuffer_destroy(&body);
    cr_assert_eq(fclose(f), 0);
    return size;
}


/* ---- running the tool --------------------------------------------------------- */

/* Run the tool with args (NULL-terminated), stdin from stdin_path (NULL:
 * /dev/null), capturing stdout and stderr. */
static struct prog_run run_tool(const char *stdin_path, const char *const *args)
{
    return prog_run("HUBCAP_CALIBRATE", args, stdin_path, dir);
}

#define RUN(stdin_path, ...) run_tool(stdin_path, (const char *const[]){ __VA_ARGS__, NULL })


static json_t *maker_entry(json_t *j, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(j, "makers"), i, m)
        if (!strcmp(json_string_value(json_object_get(m, "maker")), name))
            return m;
    return NULL;
}

static uint64_t num(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_integer(v), "%s is not an integer", key);
    return (uint64_t)json_integer_value(v);
}

static double real(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_number(v), "%s is not a number", key);
    return json_number_value(v);
}

/* The seed formula, computed here rather than by the library. */
static long sample_size(double z, double p, double e)
{
    return lround(z * z * p * (1 - p) / (e * e));
}

/* Every figure of every maker against the brute force. */
static void check_against_brute_force(const struct data *g, json_t *j, long required)
{
    cr_assert_not_null(j, "the tool printed no JSON");
    cr_assert_eq(json_array_size(json_object_get(j, "makers")), N_MAKERS);
    for (int m = 0; m < N_MAKERS; m++) {
        const char *name = makers[m].name;
        struct expect e;
        brute_force(g, name, &e);
        json_t *mk = json_array_get(json_object_get(j, "makers"), (size_t)m);
        cr_assert_str_eq(json_string_value(json_object_get(mk, "maker")), name,
                         "makers sorted by name");
        cr_assert_eq(num(mk, "vehicles"), e.vehicles, "%s vehicles", name);
        cr_assert_eq(num(mk, "sessions"), e.sessions, "%s sessions", name);
        cr_assert_eq(num(mk, "fixes"), e.fixes, "%s fixes", name);
        cr_assert_eq(num(mk, "pairs"), e.pairs, "%s pairs", name);
        cr_assert_eq((long)num(mk, "required_sample"), required);
        cr_assert_eq(json_is_true(json_object_get(mk, "sample_ok")),
                     e.vehicles >= (uint64_t)required, "%s sample_ok", name);
        /* The chord's distance agrees with haversine far inside the 1 cm
         * band DETECTION.md documents for the kernels' decisions. */
        double max = real(mk, "max_m"), thr = real(mk, "threshold_m");
        cr_assert(fabs(max - e.max) <= 0.01, "%s max %.6f, brute force %.6f", name, max, e.max);
        cr_assert(thr >= e.max - 0.01 && thr <= e.max + 0.01 + 1e-6,
                  "%s threshold %.6f, brute-force max %.6f", name, thr, e.max);
        cr_assert_float_eq(thr, ceil(max * 100) / 100, 1e-9, "threshold: max to the cm, up");
        /* Quantiles: the histogram bin's upper edge, at most 0.3 % above. */
        static const char *const qkey[] = { "p99_m", "p999_m" };
        static const double q[] = { 0.99, 0.999 };
        for (int k = 0; k < 2; k++) {
            double exact = exact_quantile(&e, q[k]), got = real(mk, qkey[k]);
            cr_assert(got >= exact - 1e-6 && got <= exact * 1.003 + 1e-6,
                      "%s %s: %.6f, exact %.6f", name, qkey[k], got, exact);
        }
        if (!strcmp(name, "solo"))
            cr_assert(e.pairs == 0 && thr == 0 && e.vehicles == 0);
        else
            cr_assert(e.pairs > 1000 && e.vehicles > 0, "%s has pairs to check", name);
        free(e.dist);
    }
}

/* A history as two CSV files and one msgpack stream. */
static void write_all(struct data *g)
{
    generate(g, 7);
    write_csv(g, 0, g->n / 2, path_in("a.csv"), 1);
    write_csv(g, g->n / 2, g->n, path_in("b.csv"), 0);
    write_msgpack(g, path_in("all.msgpack"));
}

/* ---- figures -------------------------------------------------------------------- */

Test(calibrate, csv_figures_equal_brute_force)
{
    struct data g;
    write_all(&g);
    struct prog_run o = RUN(NULL, "--json", path_in("a.csv"), path_in("b.csv"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    check_against_brute_force(&g, o.json, sample_size(1.96, 0.5, 0.03));
    cr_assert_eq(sample_size(1.96, 0.5, 0.03), 1067);
    cr_assert_eq(num(o.json, "rows"), g.n);
    cr_assert_eq(num(o.json, "skipped"), 0);
    cr_assert_eq(num(o.json, "confidence"), 95);
    cr_assert_float_eq(real(o.json, "z"), 1.96, 1e-12);
    cr_assert_float_eq(real(o.json, "margin"), 0.03, 1e-12);
    cr_assert_float_eq(real(o.json, "proportion"), 0.5, 1e-12);
    cr_assert_str_eq(json_string_value(json_object_get(o.json, "pick")), "max");
    cr_assert_eq(json_array_size(json_object_get(o.json, "files")), 2);
    cr_assert_geq(real(o.json, "seconds"), 0);
    prog_run_free(&o);
    data_free(&g);
}

Test(calibrate, msgpack_stream_gives_the_same_figures_as_csv)
{
    struct data g;
    write_all(&g);
    struct prog_run c = RUN(NULL, "--json", path_in("a.csv"), path_in("b.csv"));
    struct prog_run m = RUN(NULL, "--json", path_in("all.msgpack"));
    cr_assert_eq(m.status, 0, "stderr: %s", m.err);
    check_against_brute_force(&g, m.json, 1067);
    cr_assert(json_equal(json_object_get(c.json, "makers"), json_object_get(m.json, "makers")),
              "CSV and msgpack figures differ");
    json_t *f = json_array_get(json_object_get(m.json, "files"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(f, "format")), "msgpack");
    cr_assert_eq(num(m.json, "rows"), g.n);
    /* --format forces the decoder: the stream read as CSV is all bad rows. */
    struct prog_run forced = RUN(NULL, "--json", "-q", "--format", "msgpack", path_in("all.msgpack"));
    cr_assert(json_equal(json_object_get(forced.json, "makers"), json_object_get(m.json, "makers")));
    prog_run_free(&c);
    prog_run_free(&m);
    prog_run_free(&forced);
    data_free(&g);
}

Test(calibrate, standard_input_reads_like_a_file)
{
    struct data g;
    write_all(&g);
    struct prog_run f = RUN(NULL, "--json", path_in("b.csv"));
    struct prog_run s = RUN(path_in("b.csv"), "--json", "-");
    cr_assert_eq(s.status, 0, "stderr: %s", s.err);
    cr_assert(json_equal(json_object_get(f.json, "makers"), json_object_get(s.json, "makers")));
    cr_assert_gt(json_array_size(json_object_get(s.json, "makers")), 0);
    prog_run_free(&f);
    prog_run_free(&s);
    data_free(&g);
}

Test(calibrate, sample_size_follows_confidence_margin_and_proportion)
{
    struct data g;
    write_all(&g);
    struct prog_run a = RUN(NULL, "--json", "--confidence", "90", "--margin", "0.1",
                           path_in("all.msgpack"));
    cr_assert_eq(a.status, 0);
    cr_assert_eq(sample_size(1.64, 0.5, 0.1), 67);
    check_against_brute_force(&g, a.json, 67);
    /* acme (150 vehicles) and bolt (100) have enough; zeta (50) does not. */
    cr_assert(json_is_true(json_object_get(maker_entry(a.json, "acme"), "sample_ok")));
    cr_assert(json_is_false(json_object_get(maker_entry(a.json, "zeta"), "sample_ok")));
    struct prog_run b = RUN(NULL, "--json", "--confidence", "99", "--margin", "0.05",
                           "--proportion", "0.3", path_in("all.msgpack"));
    cr_assert_eq(b.status, 0);
    check_against_brute_force(&g, b.json, sample_size(2.58, 0.3, 0.05));
    cr_assert_eq(num(maker_entry(b.json, "acme"), "required_sample"), 559);
    prog_run_free(&a);
    prog_run_free(&b);
    data_free(&g);
}

Test(calibrate, pick_makes_a_quantile_the_threshold)
{
    struct data g;
    write_all(&g);
    struct prog_run o = RUN(NULL, "--json", "--pick", "p99", path_in("all.msgpack"));
    struct prog_run o9 = RUN(NULL, "--json", "--pick", "p99.9", path_in("all.msgpack"));
    cr_assert_eq(o.status, 0);
    cr_assert_str_eq(json_string_value(json_object_get(o.json, "pick")), "p99");
    json_t *a = maker_entry(o.json, "acme"), *a9 = maker_entry(o9.json, "acme");
    cr_assert_float_eq(real(a, "threshold_m"), ceil(real(a, "p99_m") * 100) / 100, 1e-9);
    cr_assert_float_eq(real(a9, "threshold_m"), ceil(real(a9, "p999_m") * 100) / 100, 1e-9);
    cr_assert_lt(real(a, "threshold_m"), real(a, "max_m"));
    prog_run_free(&o);
    prog_run_free(&o9);
    data_free(&g);
}

Test(calibrate, every_kernel_gives_identical_figures)
{
    struct data g;
    write_all(&g);
    struct prog_run best = RUN(NULL, "--json", path_in("all.msgpack"));
    struct prog_run scalar = RUN(NULL, "--json", "--kernel", "scalar", path_in("all.msgpack"));
    cr_assert_eq(scalar.status, 0);
    cr_assert_str_eq(json_string_value(json_object_get(scalar.json, "kernel")), "scalar");
    cr_assert(json_equal(json_object_get(best.json, "makers"),
                         json_object_get(scalar.json, "makers")));
    prog_run_free(&best);
    prog_run_free(&scalar);
    data_free(&g);
}

Test(calibrate, a_vehicle_that_changes_maker_counts_under_the_last_one)
{
    write_text_file(path_in("m.csv"),
               "vid,maker,ts,lat,lon\n"
               "X,acme,1000,10,10\n"
               "X,acme,2000,10.001,10\n"
               "X,zeta,3000,10,10.001\n"
               "Y,acme,1000,20,20\n"
               "Y,acme,2000,20.0001,20\n"
               "Z,gone,1000,30,30\n"
               "Z,zeta,2000,30.0001,30\n");
    struct prog_run o = RUN(NULL, "--json", path_in("m.csv"));
    cr_assert_eq(o.status, 0);
    cr_assert_eq(num(o.json, "maker_changes"), 2);
    cr_assert_eq(json_array_size(json_object_get(o.json, "makers")), 2, "no row for 'gone'");
    json_t *z = maker_entry(o.json, "zeta"), *a = maker_entry(o.json, "acme");
    cr_assert_eq(num(z, "vehicles"), 2);
    cr_assert_eq(num(z, "pairs"), 4);     /* X's three fixes (one session), Z's two */
    cr_assert_eq(num(a, "vehicles"), 1);  /* Y only */
    cr_assert_float_eq(real(z, "max_m"), hc_geo_haversine_m(10.001, 10, 10, 10.001), 1e-6);
    prog_run_free(&o);
    struct prog_run h = RUN(NULL, path_in("m.csv"));
    cr_assert(strstr(h.out, "2 vehicles changed maker"), "%s", h.out);
    prog_run_free(&h);
}

Test(calibrate, human_table_explains_a_small_sample)
{
    struct data g;
    write_all(&g);
    struct expect e;
    brute_force(&g, "zeta", &e);
    struct prog_run o = RUN(NULL, path_in("all.msgpack"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    cr_assert(strstr(o.out, "maker ") && strstr(o.out, "threshold") && strstr(o.out, "p99.9"));
    char line[256];
    snprintf(line, sizeof(line), "maker zeta: %llu vehicles, 1067 needed for 95 %% confidence and"
             " a 3 %% margin; its threshold is shown but not applied without --force",
             (unsigned long long)e.vehicles);
    cr_assert(strstr(o.out, line), "missing '%s' in:\n%s", line, o.out);
    cr_assert(strstr(o.out, "maker solo: no session with 2 parked fixes"), "%s", o.out);
    char rows[64];
    snprintf(rows, sizeof(rows), "%zu rows read, 0 skipped", g.n);
    cr_assert(strstr(o.out, rows), "%s", o.out);
    cr_assert_eq(strlen(o.err), 0, "nothing on stderr off a terminal: %s", o.err);
    free(e.dist);
    prog_run_free(&o);
    data_free(&g);
}

/* ---- trimming ------------------------------------------------------------------ */

/* The trimmed figures of one maker against trim_brute_force. */
static void check_trimmed(json_t *mk, const struct trim_expect *t)
{
    cr_assert_eq(num(mk, "trim_fixes"), t->judged);
    cr_assert_eq(num(mk, "trimmed_fixes"), t->cut);
    cr_assert_float_eq(real(mk, "trimmed_pct"), t->judged ? 100.0 * (double)t->cut /
                       (double)t->judged : 0.0, 1e-9);
    cr_assert_eq(num(mk, "trimmed_pairs"), t->kept.pairs);
    /* Exactly the largest pair of the fixes kept, to chord rounding. */
    cr_assert_float_eq(real(mk, "trimmed_max_m"), t->kept.max, 1e-6, "trimmed max %.9f, kept"
                       " fixes' max %.9f", real(mk, "trimmed_max_m"), t->kept.max);
    static const char *const qkey[] = { "trimmed_p99_m", "trimmed_p999_m" };
    static const double q[] = { 0.99, 0.999 };
    for (int k = 0; k < 2; k++) {
        double exact = exact_quantile(&t->kept, q[k]), got = real(mk, qkey[k]);
        cr_assert(got >= exact - 1e-6 && got <= exact * 1.003 + 1e-6, "%s: %.6f, exact %.6f",
                  qkey[k], got, exact);
    }
}

Test(calibrate, trimmed_pick_measures_the_jitter_and_not_the_strays)
{
    struct data g;
    generate_strays(&g, 21);
    write_msgpack(&g, path_in("strays.msgpack"));
    struct prog_run o = RUN(NULL, "--json", "--pick", "trimmed", path_in("strays.msgpack"));
    struct prog_run m = RUN(NULL, "--json", path_in("strays.msgpack"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    cr_assert_str_eq(json_string_value(json_object_get(o.json, "pick")), "trimmed");
    cr_assert_float_eq(real(o.json, "trim"), 6, 1e-12);
    struct trim_expect t;
    trim_brute_force(&g, "mpth", 6, &t);
    json_t *a = maker_entry(o.json, "mpth"), *am = maker_entry(m.json, "mpth");
    check_trimmed(a, &t);

    /* Every stray is cut: with this jitter the median distance from the
     * centre is near 2.7 m, so the cut sits near 16 m and a stray 30 m out
     * is almost twice beyond it.  Hardly a genuine fix is cut. */
    cr_assert_gt(t.strays, 100, "the history has strays to cut: %llu",
                 (unsigned long long)t.strays);
    cr_assert_eq(t.strays_kept, 0, "%llu of %llu strays kept", (unsigned long long)t.strays_kept,
                 (unsigned long long)t.strays);
    cr_assert_leq(t.genuine_cut * 100, t.judged, "%llu genuine fixes of %llu cut",
                  (unsigned long long)t.genuine_cut, (unsigned long long)t.judged);
    cr_assert_eq(t.cut, t.strays + t.genuine_cut);

    /* So the threshold lies within the jitter's range: at most the largest
     * pair of clean fixes, and that very pair unless a genuine fix of it
     * was cut. */
    double trimmed = real(a, "trimmed_max_m");
    cr_assert_float_eq(real(a, "threshold_m"), ceil(trimmed * 100) / 100, 1e-9);
    cr_assert_leq(trimmed, t.clean_max + 1e-6);
    if (t.genuine_cut == 0)
        cr_assert_float_eq(trimmed, t.clean_max, 1e-6);
    cr_assert_lt(trimmed, 10 * STRAY_SIGMA_M);

    /* The seed method, still the default and unchanged, is inflated by
     * the strays; so is p99, since a stray pairs with its whole session. */
    struct expect e;
    brute_force(&g, "mpth", &e);
    cr_assert_str_eq(json_string_value(json_object_get(m.json, "pick")), "max");
    cr_assert_float_eq(real(am, "max_m"), e.max, 1e-6);
    cr_assert_float_eq(real(am, "threshold_m"), ceil(real(am, "max_m") * 100) / 100, 1e-9);
    cr_assert_gt(real(am, "max_m"), 5 * trimmed, "max %.2f m, trimmed %.2f m",
                 real(am, "max_m"), trimmed);
    cr_assert_gt(real(am, "p99_m"), t.clean_max);
    /* The pick changes the threshold only: every figure is the same. */
    json_object_del(a, "threshold_m");
    json_object_del(am, "threshold_m");
    cr_assert(json_equal(a, am), "figures depend on --pick");

    /* Sessions of 2 fixes are never judged: no trimmed figure for duo. */
    json_t *d2 = maker_entry(o.json, "duo");
    cr_assert_gt(num(d2, "pairs"), 0);
    cr_assert_eq(num(d2, "trim_fixes"), 0);
    cr_assert_eq(num(d2, "trimmed_pairs"), 0);
    cr_assert_eq(real(d2, "trimmed_max_m"), 0.0);
    cr_assert_eq(real(d2, "threshold_m"), 0.0);
    free(e.dist);
    free(t.kept.dist);
    prog_run_free(&o);
    prog_run_free(&m);
    data_free(&g);
}

Test(calibrate, trim_sets_how_far_out_a_fix_is_cut)
{
    struct data g;
    generate_strays(&g, 22);
    write_csv(&g, 0, g.n, path_in("strays.csv"), 1);
    struct prog_run o = RUN(NULL, "--json", "--trim", "2.5", path_in("strays.csv"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    cr_assert_float_eq(real(o.json, "trim"), 2.5, 1e-12);
    struct trim_expect t, t6;
    trim_brute_force(&g, "mpth", 2.5, &t);
    trim_brute_force(&g, "mpth", 6, &t6);
    check_trimmed(maker_entry(o.json, "mpth"), &t);
    cr_assert_gt(t.cut, t6.cut, "a tighter cut takes more fixes");
    free(t.kept.dist);
    free(t6.kept.dist);
    prog_run_free(&o);
    data_free(&g);
}

Test(calibrate, human_table_shows_the_trimmed_figures)
{
    struct data g;
    generate_strays(&g, 21);
    write_msgpack(&g, path_in("strays.msgpack"));
    struct trim_expect t;
    trim_brute_force(&g, "mpth", 6, &t);
    struct prog_run o = RUN(NULL, "--pick", "trimmed", path_in("strays.msgpack"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    cr_assert(strstr(o.out, "trim max") && strstr(o.out, "cut %"), "%s", o.out);
    cr_assert(strstr(o.out, "threshold = trimmed max of the maker's pairwise drift"), "%s", o.out);
    char cell[64];
    snprintf(cell, sizeof(cell), " %8llu %5.1f%%\n", (unsigned long long)t.cut,
             100.0 * (double)t.cut / (double)t.judged);
    cr_assert(strstr(o.out, cell), "no '%s' in:\n%s", cell, o.out);
    cr_assert(strstr(o.out, "maker duo: no session with 3 parked fixes, so no threshold"), "%s",
              o.out);
    free(t.kept.dist);
    prog_run_free(&o);
    data_free(&g);
}

/* ---- bad input ----------------------------------------------------------------- */

static const char bad_csv[] =
    "V1,acme,1000,52.5,13.4,0\n"
    "V1,acme,2000,52.50001,13.4\n"                  /* 2: 5 columns is fine */
    "V1,acme,3000,52.5,13.4,0,extra\n"              /* 3: 7 columns */
    "V1,acme,4000,52.5x,13.4,0\n"                   /* 4: bad number */
    "V1,acme,5000,91,13.4,0\n"                      /* 5: latitude out of range */
    ",acme,6000,52.5,13.4,0\n"                      /* 6: empty vid */
    "V1,acme,7000,52.5,180.5,0\n"                   /* 7: longitude out of range */
    "V1,acme,2026-13-01T00:00:00Z,52.5,13.4,0\n"   /* 8: no month 13 */
    "V1,,9000,52.5,13.4,0\n"                        /* 9: empty maker */
    "V1,acme,10000,52.50002,13.4,maybe\n"           /* 10: acc */
    "V1,acme,11000,52.50002,13.4,false\n";

Test(calibrate, bad_rows_are_skipped_counted_and_the_first_five_shown)
{
    char vid65[80], maker33[40], text[2048];
    memset(vid65, 'v', 65);
    vid65[65] = '\0';
    memset(maker33, 'm', 33);
    maker33[33] = '\0';
    snprintf(text, sizeof(text), "%s%s,acme,12000,1,1,0\nV1,%s,13000,1,1,0\n", bad_csv, vid65,
             maker33);
    write_text_file(path_in("bad.csv"), text);
    struct prog_run o = RUN(NULL, "--json", path_in("bad.csv"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    cr_assert_eq(num(o.json, "rows"), 13);
    cr_assert_eq(num(o.json, "skipped"), 10);
    cr_assert_eq(num(maker_entry(o.json, "acme"), "fixes"), 3);
    static const int shown[] = { 3, 4, 5, 6, 7 };
    for (int i = 0; i < 5; i++) {
        char where[160];
        snprintf(where, sizeof(where), "%s:%d: ", path_in("bad.csv"), shown[i]);
        cr_assert(strstr(o.err, where), "no '%s' in:\n%s", where, o.err);
    }
    char sixth[160];
    snprintf(sixth, sizeof(sixth), "%s:8: ", path_in("bad.csv"));
    cr_assert_null(strstr(o.err, sixth), "only the first five are shown:\n%s", o.err);
    cr_assert(strstr(o.err, "counted, not shown"), "%s", o.err);
    cr_assert(strstr(o.err, "7 columns"), "%s", o.err);
    prog_run_free(&o);

    struct prog_run h = RUN(NULL, path_in("bad.csv"));
    cr_assert(strstr(h.out, "13 rows read, 10 skipped"), "%s", h.out);
    prog_run_free(&h);
}

Test(calibrate, an_overlong_line_is_one_bad_row_and_lines_still_count)
{
    FILE *f = fopen(path_in("long.csv"), "w");
    cr_assert_not_null(f);
    fprintf(f, "V1,acme,1000,10,10\nV1,acme,2000,");
    for (int i = 0; i < 3 << 19; i++)     /* 1.5 MiB: more than the read buffer */
        fputc('7', f);
    fprintf(f, ",10\nV1,acme,3000,10.0001,10\nV1,acme,4000,99,10\n");
    cr_assert_eq(fclose(f), 0);
    struct prog_run o = RUN(NULL, "--json", path_in("long.csv"));
    cr_assert_eq(o.status, 0, "%s", o.err);
    cr_assert_eq(num(o.json, "rows"), 4);
    cr_assert_eq(num(o.json, "skipped"), 2);
    cr_assert_eq(num(maker_entry(o.json, "acme"), "pairs"), 1);
    char where[160];
    snprintf(where, sizeof(where), "%s:2: line longer than", path_in("long.csv"));
    cr_assert(strstr(o.err, where), "%s", o.err);
    snprintf(where, sizeof(where), "%s:4: lat '99'", path_in("long.csv"));
    cr_assert(strstr(o.err, where), "%s", o.err);
    prog_run_free(&o);
}

Test(calibrate, a_maker_that_is_not_utf8_is_a_bad_row)
{
    /* Its name could be neither printed as JSON nor sent to the daemon. */
    write_text_file(path_in("u.csv"), "V1,acme,1000,10,10\nV1,acme,2000,10.0001,10\n"
                                 "V2,ac\xffme,1000,10,10\nV1,\xc3\xa9lan,3000,10,10.0001\n");
    struct prog_run o = RUN(NULL, "--json", path_in("u.csv"));
    cr_assert_eq(o.status, 0, "%s", o.err);
    cr_assert_not_null(o.json, "the output is valid JSON: %s", o.out);
    cr_assert_eq(num(o.json, "skipped"), 1);
    cr_assert_eq(num(o.json, "vehicles"), 1);
    cr_assert_eq(num(maker_entry(o.json, "\xc3\xa9lan"), "pairs"), 3);
    char where[160];
    snprintf(where, sizeof(where), "%s:3: maker ", path_in("u.csv"));
    cr_assert(strstr(o.err, where) && strstr(o.err, "is not UTF-8"), "%s", o.err);
    prog_run_free(&o);
}

Test(calibrate, strict_stops_at_the_first_bad_row)
{
    write_text_file(path_in("bad.csv"), bad_csv);
    struct prog_run o = RUN(NULL, "--json", "--strict", path_in("bad.csv"));
    cr_assert_eq(o.status, 1);
    char where[160];
    snprintf(where, sizeof(where), "%s:3: ", path_in("bad.csv"));
    cr_assert(strstr(o.err, where), "%s", o.err);
    cr_assert_null(o.json, "no summary after a strict failure");
    prog_run_free(&o);
}

Test(calibrate, header_names_its_columns_and_a_missing_one_is_reported)
{
    write_text_file(path_in("h.csv"), "maker,lon,extra,vid,lat,ts,acc\n"
                                 "acme,13.4,x,V1,52.5,2026-11-22T03:04:05Z,false\n"
                                 "acme,13.4,y,V1,52.50001,2026-11-22T03:04:06.25Z,0\n");
    struct prog_run o = RUN(NULL, "--json", path_in("h.csv"));
    cr_assert_eq(o.status, 0, "%s", o.err);
    json_t *a = maker_entry(o.json, "acme");
    cr_assert_eq(num(a, "pairs"), 1);
    cr_assert_float_eq(real(a, "max_m"), hc_geo_haversine_m(52.5, 13.4, 52.50001, 13.4), 1e-6);
    prog_run_free(&o);

    write_text_file(path_in("nolat.csv"), "vid,maker,ts,lon\nV1,acme,1,2\n");
    struct prog_run n = RUN(NULL, "--json", path_in("nolat.csv"));
    cr_assert_eq(n.status, 0);
    cr_assert(strstr(n.err, "no column 'lat'"), "%s", n.err);
    cr_assert_eq(num(n.json, "damaged_files"), 1);
    prog_run_free(&n);
}

Test(calibrate, truncated_stream_is_reported_at_its_offset_and_the_rest_is_kept)
{
    struct data g;
    generate(&g, 3);
    size_t size = write_msgpack(&g, path_in("t.msgpack"));
    cr_assert_eq(truncate(path_in("t.msgpack"), (off_t)(size - 10)), 0);
    struct prog_run o = RUN(NULL, "--json", path_in("t.msgpack"));
    cr_assert_eq(o.status, 0, "%s", o.err);
    cr_assert(strstr(o.err, "truncated stream"), "%s", o.err);
    cr_assert(strstr(o.err, ": byte "), "%s", o.err);
    cr_assert_eq(num(o.json, "damaged_files"), 1);
    uint64_t rows = num(o.json, "rows");
    cr_assert(rows > 0 && rows < g.n, "rows %llu of %zu", (unsigned long long)rows, g.n);
    prog_run_free(&o);
    struct prog_run s = RUN(NULL, "--json", "--strict", path_in("t.msgpack"));
    cr_assert_eq(s.status, 1);
    prog_run_free(&s);
    data_free(&g);
}

Test(calibrate, malformed_frame_names_its_byte_offset)
{
    struct data g;
    generate(&g, 3);
    size_t size = write_msgpack(&g, path_in("j.msgpack"));
    FILE *f = fopen(path_in("j.msgpack"), "ab");
    static const uint8_t junk[] = { 0, 0, 0, 4, 0xc1, 0xc1, 0xc1, 0xc1 };
    fwrite(junk, 1, sizeof(junk), f);
    fclose(f);
    struct prog_run o = RUN(NULL, "--json", path_in("j.msgpack"));
    cr_assert_eq(o.status, 0);
    char where[200];
    snprintf(where, sizeof(where), "%s: byte %zu: frame of 4 bytes", path_in("j.msgpack"), size);
    cr_assert(strstr(o.err, where), "no '%s' in:\n%s", where, o.err);
    cr_assert_eq(num(o.json, "rows"), g.n);
    prog_run_free(&o);
    data_free(&g);
}

Test(calibrate, missing_file_is_an_error)
{
    struct prog_run o = RUN(NULL, "--json", path_in("nope.csv"));
    cr_assert_eq(o.status, 1);
    cr_assert(strstr(o.err, "nope.csv: No such file or directory"), "%s", o.err);
    prog_run_free(&o);
}

Test(calibrate, usage_errors_exit_2)
{
    write_text_file(path_in("x.csv"), "V1,acme,1,1,1\n");
    const char *x = path_in("x.csv");
    struct prog_run o[] = {
        RUN(NULL, "--nope", x), RUN(NULL, "--margin", "0", x), RUN(NULL, "--margin", "1", x),
        RUN(NULL, "--confidence", "80", x), RUN(NULL, "--pick", "p50", x),
        RUN(NULL, "--proportion", "1.5", x), RUN(NULL, "--kernel", "mmx", x),
        RUN(NULL, "--json"), RUN(NULL, "--force", x), RUN(NULL, "--trim", "0.5", x),
        RUN(NULL, "--trim", "six", x),
    };
    for (size_t i = 0; i < sizeof(o) / sizeof(o[0]); i++) {
        cr_assert_eq(o[i].status, 2, "case %zu: status %d, stderr %s", i, o[i].status, o[i].err);
        cr_assert(strstr(o[i].err, "--help"), "case %zu: %s", i, o[i].err);
        prog_run_free(&o[i]);
    }
    struct prog_run h = RUN(NULL, "--help");
    cr_assert_eq(h.status, 0);
    cr_assert(strstr(h.out, "usage: hubcap-calibrate"));
    prog_run_free(&h);
}

/* ---- --apply ---------------------------------------------------------------------- */

/* Needs the daemon's threshold.set (with "thresholds") and threshold.get. */
Test(calibrate, apply_sets_live_thresholds_in_the_running_daemon)
{
    static const char *const sets[] = { "msgpack.port=0", NULL };
    struct data g;
    write_all(&g);
    daemon_start(&d, sets);
    struct prog_run o = RUN(NULL, "--json", "--apply", "--force", "--data-dir", d.dir,
                           path_in("all.msgpack"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    json_t *applied = json_object_get(o.json, "applied");
    cr_assert_eq(json_array_size(applied), 3, "acme, bolt, zeta: %s", o.out);
    json_t *not = json_object_get(o.json, "not_applied");
    cr_assert_eq(json_array_size(not), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(not, 0), "maker")), "solo");
    cr_assert_not_null(json_string_value(json_object_get(json_array_get(not, 0), "reason")));

    double want = real(maker_entry(o.json, "acme"), "threshold_m");
    json_t *a = daemon_control(&d, "{\"cmd\":\"threshold.get\",\"maker\":\"acme\"}\n");
    cr_assert(json_is_true(json_object_get(a, "ok")), "threshold.get refused");
    cr_assert(fabs(real(a, "meters") - want) <= 1e-9 * want, "daemon %.9f, tool %.9f",
              real(a, "meters"), want);
    cr_assert_str_eq(json_string_value(json_object_get(a, "source")), "live");
    json_decref(a);
    json_t *s = daemon_control(&d, "{\"cmd\":\"threshold.get\",\"maker\":\"solo\"}\n");
    cr_assert_str_eq(json_string_value(json_object_get(s, "source")), "default");
    json_decref(s);
    prog_run_free(&o);
    cr_assert_eq(daemon_stop(&d), 0);
    data_free(&g);
}

Test(calibrate, apply_sends_the_trimmed_threshold)
{
    static const char *const sets[] = { "msgpack.port=0", NULL };
    struct data g;
    generate_strays(&g, 21);
    write_msgpack(&g, path_in("strays.msgpack"));
    daemon_start(&d, sets);
    struct prog_run o = RUN(NULL, "--json", "--apply", "--force", "--pick", "trimmed",
                           "--data-dir", d.dir, path_in("strays.msgpack"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    json_t *applied = json_object_get(o.json, "applied");
    cr_assert_eq(json_array_size(applied), 1, "%s", o.out);
    cr_assert_str_eq(json_string_value(json_array_get(applied, 0)), "mpth");
    json_t *not = json_array_get(json_object_get(o.json, "not_applied"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(not, "maker")), "duo");
    cr_assert(strstr(json_string_value(json_object_get(not, "reason")), "3 parked fixes"));
    double want = real(maker_entry(o.json, "mpth"), "threshold_m");
    cr_assert_lt(want, real(maker_entry(o.json, "mpth"), "max_m"));
    json_t *a = daemon_control(&d, "{\"cmd\":\"threshold.get\",\"maker\":\"mpth\"}\n");
    cr_assert(json_is_true(json_object_get(a, "ok")), "threshold.get refused");
    cr_assert(fabs(real(a, "meters") - want) <= 1e-9 * want, "daemon %.9f, tool %.9f",
              real(a, "meters"), want);
    json_decref(a);
    prog_run_free(&o);
    cr_assert_eq(daemon_stop(&d), 0);
    data_free(&g);
}

Test(calibrate, apply_without_a_daemon_exits_3)
{
    struct data g;
    write_all(&g);
    char empty[80];
    snprintf(empty, sizeof(empty), "%s/no-daemon", dir);
    cr_assert_eq(mkdir(empty, 0700), 0);
    struct prog_run o = RUN(NULL, "--json", "--apply", "--force", "--data-dir", empty,
                           path_in("all.msgpack"));
    cr_assert_eq(o.status, 3, "stderr: %s", o.err);
    cr_assert(strstr(o.err, "is hubcapd running with --data-dir"), "%s", o.err);
    cr_assert_not_null(json_string_value(json_object_get(o.json, "apply_error")));
    prog_run_free(&o);
    data_free(&g);
}

Test(calibrate, apply_sends_nothing_when_no_maker_qualifies)
{
    struct data g;
    write_all(&g);
    char empty[80];
    snprintf(empty, sizeof(empty), "%s/no-daemon", dir);
    cr_assert_eq(mkdir(empty, 0700), 0);
    /* 1067 vehicles needed, none has them; no --force: nothing is sent, so
     * the missing daemon does not matter. */
    struct prog_run o = RUN(NULL, "--json", "--apply", "--data-dir", empty, path_in("all.msgpack"));
    cr_assert_eq(o.status, 0, "stderr: %s", o.err);
    cr_assert_eq(json_array_size(json_object_get(o.json, "applied")), 0);
    cr_assert_eq(json_array_size(json_object_get(o.json, "not_applied")), N_MAKERS);
    prog_run_free(&o);
    data_free(&g);
}
