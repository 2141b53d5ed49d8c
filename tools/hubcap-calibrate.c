/*
 * hubcap-calibrate — each maker's drift threshold from historical parked
 * positions (the seed method, docs/DETECTION.md "Calibration"), read from
 * CSV files or native msgpack streams, and optionally applied to a running
 * hubcapd through its control socket in one all-or-nothing request.
 *
 * Reading streams each file through one fixed-size buffer (a msgpack frame
 * larger than it grows it, up to FRAME_MAX) and groups the fixes per
 * vehicle in memory: a hash map from vid to the vehicle's growable
 * ts/lat/lon/acc arrays (25 bytes a fix).  Then, one maker at a time, each
 * vehicle's fixes are put in time order, cut into parking sessions at
 * ignition-on fixes, and every session of two fixes or more goes through
 * hc_drift_add: pairs are only ever formed within one vehicle's session,
 * never across a maker.  A session of three fixes or more also has its
 * multipath outliers cut by hc_calib_trim, and the pairs of the fixes left
 * go into a second accumulator: the trimmed figures.
 * Only one maker's histograms exist at a time, and a vehicle's fixes are
 * freed as soon as they are counted.
 *
 * Single-threaded; all state lives in struct run.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hubcap/calib.h"
#include "hubcap/cli.h"
#include "hubcap/ctl.h"
#include "hubcap/detect.h"
#include "hubcap/error.h"
#include "hubcap/hash.h"
#include "hubcap/timefmt.h"
#include "hubcap/wire.h"

#define READ_BUF (1u << 20)         /* the read buffer, and the longest CSV line */
#define FRAME_MAX (64u << 20)       /* largest msgpack frame accepted */
#define SHOW_BAD 5                  /* bad rows printed; the rest are counted */
#define FIX_BYTES 25                /* ts, lat, lon (8 each) and acc (1) */
#define MAX_FIELDS 64               /* CSV fields kept per line (more are counted) */
#define CTL_TIMEOUT_MS 10000
#define TRIM_DEFAULT 6.0            /* --trim: why 6, see usage() */

enum format { FMT_AUTO, FMT_CSV, FMT_MSGPACK };
enum pick { PICK_MAX, PICK_P99, PICK_P999, PICK_TRIMMED };
static const char *const pick_name[] = { "max", "p99", "p99.9", "trimmed" };
static const char *const format_name[] = { "auto", "csv", "msgpack" };

struct opts {
    int confidence;
    double z, margin, proportion, trim;
    enum pick pick;
    enum format format;
    int apply, force, json, quiet, strict, tty;
    const char *data_dir, *socket;
    const struct hc_kernel *kernel;
    char **files;
    int n_files;
};

/* The first members of a vehicle and a maker: what struct index compares. */
struct key {
    uint64_t hash;
    uint32_t off;               /* name bytes at run.names + off */
    uint8_t len;
};

struct vehicle {
    struct key k;
    uint8_t changed;            /* its rows named more than one maker */
    uint32_t maker;             /* the last one seen */
    uint32_t n, cap;
    unsigned char *fix;         /* cap ts, cap lat, cap lon, cap acc */
};

struct result {
    uint64_t vehicles, sessions, fixes, pairs;
    double max_m, p99_m, p999_m, threshold_m;
    /* Sessions of >= 3 fixes: their fixes, those cut, the pairs left. */
    uint64_t trim_fixes, trimmed_fixes, trimmed_pairs;
    double trimmed_max_m, trimmed_p99_m, trimmed_p999_m;
    long required;
    int ok;
};

struct maker {
    struct key k;
    uint32_t n_vehicles;        /* vehicles whose last maker this is */
    struct result res;
};

struct index {                  /* open addressing: entry + 1, 0 = empty */
    uint32_t *slot;
    size_t mask, used;
};

struct file_stat {
    const char *path;
    enum format format;
    uint64_t bytes, rows, skipped;
    char *damage;               /* why reading stopped early, or NULL */
};

struct input {                  /* one file being read */
    struct file_stat *fs;
    int fd;
    unsigned char *buf;         /* cap + 1 bytes: room for a terminating NUL */
    size_t cap, pos, end;       /* unread bytes: buf[pos, end) */
    uint64_t base;              /* file offset of buf[0] */
    uint64_t line;
    int eof;
};

struct order {
    int64_t ts;
    uint32_t i;
};

struct run {
    struct opts o;
    char *names;
    size_t names_len, names_cap;
    struct vehicle *veh;
    uint32_t n_veh, cap_veh;
    uint32_t last;              /* the previous row's vehicle + 1, 0 none */
    struct index vix;
    struct maker *mk;
    uint32_t n_mk, cap_mk;
    uint32_t n_listed;          /* makers with a vehicle: the output's rows */
    struct index mix;
    struct file_stat *files;
    uint64_t rows, skipped, shown, damaged, maker_changes;
    /* progress */
    uint64_t t0, t_shown, bytes_total, bytes_done;
    int progress_len;
    /* per-vehicle scratch while computing */
    struct order *ord;
    double *slat, *slon;
    uint8_t *keep;
    size_t scratch_cap;
};

/* One maker's accumulators while computing. */
struct drifts {
    struct hc_drift all;        /* every pair of every session */
    struct hc_drift kept;       /* pairs among the fixes trimming keeps */
    uint64_t judged, cut;       /* fixes in sessions of >= 3, and those cut */
};

/* ---- options ------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
"usage: hubcap-calibrate [OPTIONS] FILE...\n"
"\n"
"Calibrate each maker's drift threshold from historical parked positions\n"
"(the seed method): the largest distance between two parked positions of one\n"
"vehicle in one parking session, over all of the maker's vehicles, and\n"
"whether there are as many vehicles as the confidence and margin ask for.\n"
"Optionally apply the thresholds to a running hubcapd.\n"
"\n"
"Input (FILE '-' is standard input; the format is detected per file):\n"
"  CSV      vid,maker,ts,lat,lon[,acc].  An optional header (a first line\n"
"           with a field named 'vid') may put the columns in another order\n"
"           and add others, which are ignored.  ts: integer milliseconds since the\n"
"           epoch, or ISO 8601 UTC such as 2026-11-22T03:04:05Z (a fraction\n"
"           is allowed); acc: true, false, 1 or 0.  Fields may be quoted.\n"
"  msgpack  hubcap's native stream: frames of a 4-byte big-endian length and\n"
"           a payload (a report map or an array of them), back to back.\n"
"A fix with acc true (ignition on) ends a parking session and is not itself\n"
"a parked position; without an acc column, a vehicle's fixes are one session.\n"
"Input need not be sorted: every fix is held in memory, grouped per vehicle\n"
"(25 B a fix, up to twice that while a vehicle's arrays grow, and about\n"
"100 B a vehicle: 200,000 vehicles of 16 fixes take 95 MB), then put in time\n"
"order.  A session's pairs grow with the square of its fixes.\n"
"\n"
"Calibration:\n"
"      --confidence C     90, 95 or 99 percent (default 95)\n"
"      --margin E         margin of error, 0 < E < 1 (default 0.03)\n"
"      --proportion P     expected proportion, 0 < P < 1 (default 0.5);\n"
"                         n = round(z^2 P (1-P) / E^2) vehicles per maker\n"
"      --pick WHICH       the figure that becomes the threshold: max (the seed\n"
"                         method), p99 or p99.9 of all pairs, or trimmed: the\n"
"                         largest pair once outliers are cut (see Trimming)\n"
"                         (default max)\n"
"      --trim K           cut a fix farther from its session's centre than K\n"
"                         times the session's median distance (and than K x\n"
"                         1 m); 1 to 1000 (default %g)\n"
"      --kernel NAME      scalar, avx2 or avx512 (default: the fastest this CPU\n"
"                         runs, or $HUBCAP_KERNEL)\n"
"Input:\n"
"      --format F         csv or msgpack for every FILE (default: detect)\n"
"      --strict           the first bad row or damaged file is an error\n"
"Applying:\n"
"      --apply            send the thresholds to the running hubcapd in one\n"
"                         request (it applies all of them or none): every maker\n"
"                         whose sample is large enough and whose threshold is\n"
"                         above 0\n"
"      --force            with --apply: also makers whose sample is too small\n"
"  -D, --data-dir DIR     the daemon's data dir; its control socket is\n"
"                         DIR/hubcapd.sock (default ./var/hubcap)\n"
"      --socket PATH      the control socket itself\n"
"Output:\n"
"      --json             one JSON object on stdout instead of the table\n"
"  -q, --quiet            no progress line and no line per bad row\n"
"  -h, --help             this text\n", TRIM_DEFAULT);
    /* Two strings: C99 promises only 4095 bytes of one literal. */
    fprintf(f,
"\n"
"Columns: vehicles (those with a session of 2 parked fixes or more), sessions\n"
"(such sessions), fixes (in them), pairs, needed (n), sample (yes when\n"
"vehicles >= n), threshold (the picked figure rounded up to the centimetre:\n"
"what --apply sends), max, p99, p99.9 (quantiles of all the maker's pairs\n"
"from a histogram: rounded up, within 0.3 %%), trim max (the largest pair\n"
"left after trimming), cut (fixes trimmed) and cut %% (of the fixes in\n"
"sessions of 3 or more, the only ones judged).  --json also has the trimmed\n"
"p99 and p99.9 and the count of pairs left.\n"
"\n"
"Trimming: multipath puts about 1 %% of real fixes tens to hundreds of metres\n"
"off, sometimes 2 or 3 in a row.  One such fix sets max for its whole maker,\n"
"and because it pairs with every other fix of its session, about 2 %% of all\n"
"pairs involve a stray, so p99 lands among them too.  Trimming measures the\n"
"drift of the real position instead.  In each session of 3 parked fixes or\n"
"more, the centre is the component-wise median of the fixes as unit vectors\n"
"(sound across the antimeridian and near the poles), M is the median distance\n"
"of the fixes from it, and a fix farther than K x max(M, 1 m) is cut; pairs\n"
"are then formed among the fixes left.  Why K = 6: with Gaussian jitter the\n"
"distance from the centre is Rayleigh-distributed, and P(r > 6 M) =\n"
"exp(-36 ln 2), about 1.5e-11, so a genuine fix is practically never cut,\n"
"while the cut lies near 7 times the jitter's sigma per axis (28 m for 4 m)\n"
"and multipath fixes beyond it are.  The median holds only while the strays\n"
"are fewer than half of a session's fixes.  Sessions of 2 fixes have no\n"
"majority to judge by: they count in max, p99 and p99.9 but not in the\n"
"trimmed figures.\n"
"\n"
"A bad row (wrong column count, bad number, position out of range, empty or\n"
"too long vid or maker) is skipped and counted; the first %d are shown as\n"
"FILE:LINE: what.  A truncated or malformed msgpack frame ends the reading of\n"
"its file (FILE: byte OFFSET: what); that file is counted as damaged.\n"
"\n"
"Exit status: 0 done; 1 input error (unreadable file, or anything bad with\n"
"--strict) or hubcapd refused the thresholds; 2 usage error; 3 hubcapd could\n"
"not be reached.\n", SHOW_BAD);
}

static void parse(struct opts *o, int argc, char **argv)
{
    enum { O_CONF = 256, O_MARGIN, O_PROP, O_PICK, O_KERNEL, O_FORMAT, O_STRICT, O_APPLY,
           O_FORCE, O_SOCKET, O_JSON, O_TRIM };
    static const struct option lo[] = {
        { "confidence", required_argument, 0, O_CONF }, { "margin", required_argument, 0, O_MARGIN },
        { "proportion", required_argument, 0, O_PROP }, { "pick", required_argument, 0, O_PICK },
        { "kernel", required_argument, 0, O_KERNEL }, { "format", required_argument, 0, O_FORMAT },
        { "strict", no_argument, 0, O_STRICT }, { "apply", no_argument, 0, O_APPLY },
        { "force", no_argument, 0, O_FORCE }, { "data-dir", required_argument, 0, 'D' },
        { "socket", required_argument, 0, O_SOCKET }, { "json", no_argument, 0, O_JSON },
        { "trim", required_argument, 0, O_TRIM }, { "quiet", no_argument, 0, 'q' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    int c, stdin_seen = 0;
    o->confidence = 95;
    o->margin = 0.03;
    o->proportion = 0.5;
    o->trim = TRIM_DEFAULT;
    o->data_dir = "./var/hubcap";
    o->kernel = hc_kernel_best();
    while ((c = getopt_long(argc, argv, "D:qh", lo, NULL)) != -1) {
        switch (c) {
        case O_CONF:
            o->confidence = (int)hc_cli_uint("--confidence", optarg, 1, 99);
            if (hc_calib_z(o->confidence) == 0)
                hc_cli_usage_error("--confidence must be 90, 95 or 99, not '%s'", optarg);
            break;
        case O_MARGIN:
            o->margin = hc_cli_double("--margin", optarg, 0, 1);
            if (o->margin <= 0 || o->margin >= 1)
                hc_cli_usage_error("--margin wants a number between 0 and 1 (both excluded),"
                                   " not '%s'", optarg);
            break;
        case O_PROP:
            o->proportion = hc_cli_double("--proportion", optarg, 0, 1);
            if (o->proportion <= 0 || o->proportion >= 1)
                hc_cli_usage_error("--proportion wants a number between 0 and 1 (both"
                                   " excluded), not '%s'", optarg);
            break;
        case O_PICK:
            if (!strcmp(optarg, "max"))
                o->pick = PICK_MAX;
            else if (!strcmp(optarg, "p99"))
                o->pick = PICK_P99;
            else if (!strcmp(optarg, "p99.9"))
                o->pick = PICK_P999;
            else if (!strcmp(optarg, "trimmed"))
                o->pick = PICK_TRIMMED;
            else
                hc_cli_usage_error("--pick must be max, p99, p99.9 or trimmed, not '%s'",
                                   optarg);
            break;
        case O_TRIM:
            o->trim = hc_cli_double("--trim", optarg, 1, 1000);
            break;
        case O_KERNEL:
            o->kernel = hc_kernel_by_name(optarg);
            if (!o->kernel)
                hc_cli_usage_error("--kernel '%s' is not a kernel this CPU runs (scalar, avx2,"
                                   " avx512)", optarg);
            break;
        case O_FORMAT:
            if (!strcmp(optarg, "csv"))
                o->format = FMT_CSV;
            else if (!strcmp(optarg, "msgpack"))
                o->format = FMT_MSGPACK;
            else
                hc_cli_usage_error("--format must be csv or msgpack, not '%s'", optarg);
            break;
        case O_STRICT: o->strict = 1; break;
        case O_APPLY: o->apply = 1; break;
        case O_FORCE: o->force = 1; break;
        case 'D': o->data_dir = optarg; break;
        case O_SOCKET: o->socket = optarg; break;
        case O_JSON: o->json = 1; break;
        case 'q': o->quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        default: fprintf(stderr, "Try '%s --help'.\n", hc_cli_prog); exit(2);
        }
    }
    if (optind == argc)
        hc_cli_usage_error("no input FILE (use '-' for standard input)");
    if (o->force && !o->apply)
        hc_cli_usage_error("--force only changes what --apply sends");
    for (int i = optind; i < argc; i++)
        if (!strcmp(argv[i], "-") && stdin_seen++)
            hc_cli_usage_error("standard input ('-') can be read only once");
    o->files = argv + optind;
    o->n_files = argc - optind;
    o->z = hc_calib_z(o->confidence);
    o->tty = isatty(STDERR_FILENO) && !o->quiet;
}

/* ---- messages and progress ------------------------------------------------ */

static void progress_clear(struct run *r)
{
    if (r->progress_len) {
        fprintf(stderr, "\r%*s\r", r->progress_len, "");
        r->progress_len = 0;
    }
}

/* At most ten times a second, on a terminal only: reading (a bar when the
 * input's size is known, rows, rows/s), then computing (a bar of vehicles). */
static void progress(struct run *r, int reading, double done, double total)
{
    uint64_t now = hc_time_mono_ns();
    if (!r->o.tty || now - r->t_shown < 100000000u)
        return;
    r->t_shown = now;
    double s = (double)(now - r->t0) / 1e9;
    char bar[48] = "";
    if (total > 0) {
        int w = (int)(done / total * 24 + 0.5);
        bar[0] = '[';
        for (int i = 0; i < 24; i++)
            bar[1 + i] = i < w ? '#' : '.';
        snprintf(bar + 25, sizeof(bar) - 25, "] %5.1f %%  ", 100.0 * done / total);
    }
    int n = reading ? fprintf(stderr, "\r  reading %s%llu rows, %.0f rows/s   ", bar,
                              (unsigned long long)r->rows, s > 0 ? (double)r->rows / s : 0.0)
                    : fprintf(stderr, "\r  computing %sof %u vehicles   ", bar, r->n_veh);
    if (n > r->progress_len)
        r->progress_len = n;
}

/* One bad row: counted; shown (the first SHOW_BAD, unless quiet); with
 * --strict, the end of the run. */
static void __attribute__((format(printf, 3, 4)))
bad_row(struct run *r, struct file_stat *fs, const char *fmt, ...)
{
    va_list ap;
    r->skipped++;
    fs->skipped++;
    r->shown++;
    if (!r->o.strict && (r->o.quiet || r->shown > SHOW_BAD + 1))
        return;
    progress_clear(r);
    if (!r->o.strict && r->shown == SHOW_BAD + 1) {
        fprintf(stderr, "%s: more bad rows; they are counted, not shown\n", hc_cli_prog);
        return;
    }
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (r->o.strict) {
        fprintf(stderr, "%s: stopped at the first bad row (--strict)\n", hc_cli_prog);
        exit(1);
    }
}

/* The file cannot be read further: say why (where: a CSV line, or a
 * stream's byte offset), count it; the caller stops reading it. */
static void __attribute__((format(printf, 4, 5)))
damaged(struct run *r, struct input *in, uint64_t offset, const char *fmt, ...)
{
    char why[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    progress_clear(r);
    if (in->fs->format == FMT_CSV)
        fprintf(stderr, "%s:%llu: %s; the rest of the file is not read\n", in->fs->path,
                (unsigned long long)in->line, why);
    else
        fprintf(stderr, "%s: byte %llu: %s; the rest of the file is not read\n", in->fs->path,
                (unsigned long long)offset, why);
    r->damaged++;
    free(in->fs->damage);
    in->fs->damage = strdup(why);
    if (r->o.strict) {
        fprintf(stderr, "%s: stopped at the first damaged file (--strict)\n", hc_cli_prog);
        exit(1);
    }
}

static void __attribute__((noreturn)) out_of_memory(void)
{
    fprintf(stderr, "%s: out of memory\n", hc_cli_prog);
    exit(1);
}

/* ---- the fleet: vehicles and makers by name -------------------------------- */

/* The slot for (s, len): holds its entry + 1, or 0 where it would go. */
static uint32_t *index_probe(const struct index *ix, const char *names, const void *entries,
                             size_t stride, uint64_t h, const char *s, size_t len)
{
    for (size_t i = h & ix->mask;; i = (i + 1) & ix->mask) {
        uint32_t *sl = &ix->slot[i];
        if (!*sl)
            return sl;
        const struct key *k = (const void *)((const char *)entries + (*sl - 1) * stride);
        if (k->hash == h && k->len == len && memcmp(names + k->off, s, len) == 0)
            return sl;
    }
}

/* Keep the load at most one half: double the slots and re-insert. */
static void index_grow(struct index *ix, const void *entries, size_t stride, uint32_t n)
{
    if ((ix->used + 1) * 2 <= ix->mask + 1)
        return;
    size_t size = ix->mask ? (ix->mask + 1) * 2 : 1024;
    uint32_t *slot = calloc(size, sizeof(*slot));
    if (!slot)
        out_of_memory();
    for (uint32_t e = 0; e < n; e++) {
        const struct key *k = (const void *)((const char *)entries + e * stride);
        size_t i = k->hash & (size - 1);
        while (slot[i])
            i = (i + 1) & (size - 1);
        slot[i] = e + 1;
    }
    free(ix->slot);
    ix->slot = slot;
    ix->mask = size - 1;
}

static uint32_t name_add(struct run *r, const char *s, size_t len)
{
    if (r->names_len + len > r->names_cap) {
        size_t cap = r->names_cap ? r->names_cap * 2 : 1 << 16;
        while (cap < r->names_len + len)
            cap *= 2;
        if (cap > UINT32_MAX || !(r->names = realloc(r->names, cap)))
            out_of_memory();
        r->names_cap = cap;
    }
    memcpy(r->names + r->names_len, s, len);
    r->names_len += len;
    return (uint32_t)(r->names_len - len);
}

/* The index of maker s, added when new; -1 (nothing added) when s is not
 * UTF-8: a maker's name goes into JSON, the output's and the daemon's. */
static int64_t maker_of(struct run *r, const char *s, size_t len)
{
    uint64_t h = hc_hash(s, len);
    uint32_t *sl = r->mix.slot ? index_probe(&r->mix, r->names, r->mk, sizeof(*r->mk), h, s, len)
                               : NULL;
    if (sl && *sl)
        return *sl - 1;
    json_t *utf8 = json_stringn(s, len);
    if (!utf8)
        return -1;
    json_decref(utf8);
    if (r->n_mk == r->cap_mk) {
        r->cap_mk = r->cap_mk ? r->cap_mk * 2 : 16;
        if (!(r->mk = realloc(r->mk, r->cap_mk * sizeof(*r->mk))))
            out_of_memory();
    }
    struct maker *m = &r->mk[r->n_mk];
    memset(m, 0, sizeof(*m));
    m->k = (struct key){ h, name_add(r, s, len), (uint8_t)len };
    r->n_mk++;
    r->mix.used++;
    index_grow(&r->mix, r->mk, sizeof(*r->mk), r->n_mk - 1);
    sl = index_probe(&r->mix, r->names, r->mk, sizeof(*r->mk), h, s, len);
    *sl = r->n_mk;
    return r->n_mk - 1;
}

static inline int64_t *fix_ts(const struct vehicle *v)
{
    return (int64_t *)(void *)v->fix;
}
static inline double *fix_lat(const struct vehicle *v)
{
    return (double *)(void *)(v->fix + 8 * (size_t)v->cap);
}
static inline double *fix_lon(const struct vehicle *v)
{
    return (double *)(void *)(v->fix + 16 * (size_t)v->cap);
}
static inline uint8_t *fix_acc(const struct vehicle *v)
{
    return v->fix + 24 * (size_t)v->cap;
}

/* The vehicle called vid (hash h), or NULL. */
static struct vehicle *vehicle_find(const struct run *r, const char *vid, size_t vlen,
                                    uint64_t h)
{
    if (!r->vix.slot)
        return NULL;
    uint32_t *sl = index_probe(&r->vix, r->names, r->veh, sizeof(*r->veh), h, vid, vlen);
    return *sl ? &r->veh[*sl - 1] : NULL;
}

static struct vehicle *vehicle_new(struct run *r, const char *vid, size_t vlen, uint64_t h,
                                   uint32_t maker)
{
    if (r->n_veh == UINT32_MAX - 1)
        out_of_memory();
    if (r->n_veh == r->cap_veh) {
        r->cap_veh = r->cap_veh ? r->cap_veh * 2 : 1024;
        if (!(r->veh = realloc(r->veh, (size_t)r->cap_veh * sizeof(*r->veh))))
            out_of_memory();
    }
    struct vehicle *v = &r->veh[r->n_veh];
    memset(v, 0, sizeof(*v));
    v->k = (struct key){ h, name_add(r, vid, vlen), (uint8_t)vlen };
    v->maker = maker;
    r->n_veh++;
    r->vix.used++;
    index_grow(&r->vix, r->veh, sizeof(*r->veh), r->n_veh - 1);
    *index_probe(&r->vix, r->names, r->veh, sizeof(*r->veh), h, vid, vlen) = r->n_veh;
    return v;
}

/* One valid row into its vehicle's arrays; 0, or -1 (nothing added) when
 * the maker's name is not UTF-8.  Exports often list a vehicle's rows
 * together, so the previous row's vehicle is tried first. */
static int add_fix(struct run *r, const char *vid, size_t vlen, const char *maker, size_t mlen,
                   int64_t ts, double lat, double lon, int acc)
{
    struct vehicle *v = r->last ? &r->veh[r->last - 1] : NULL;
    uint64_t h = 0;
    if (!v || v->k.len != vlen || memcmp(r->names + v->k.off, vid, vlen) != 0)
        v = vehicle_find(r, vid, vlen, h = hc_hash(vid, vlen));
    const struct key *mk = v ? &r->mk[v->maker].k : NULL;
    if (!mk || mk->len != mlen || memcmp(r->names + mk->off, maker, mlen) != 0) {
        int64_t m = maker_of(r, maker, mlen);
        if (m < 0)
            return -1;
        if (!v) {
            v = vehicle_new(r, vid, vlen, h, (uint32_t)m);
        } else {
            v->maker = (uint32_t)m;
            v->changed = 1;
        }
    }
    r->last = (uint32_t)(v - r->veh) + 1;
    if (v->n == v->cap) {
        if (v->cap >= UINT32_MAX / 2)
            out_of_memory();
        struct vehicle grown = *v;
        grown.cap = v->cap ? v->cap * 2 : 8;
        if (!(grown.fix = malloc((size_t)grown.cap * FIX_BYTES)))
            out_of_memory();
        if (v->n) {
            memcpy(fix_ts(&grown), fix_ts(v), v->n * sizeof(int64_t));
            memcpy(fix_lat(&grown), fix_lat(v), v->n * sizeof(double));
            memcpy(fix_lon(&grown), fix_lon(v), v->n * sizeof(double));
            memcpy(fix_acc(&grown), fix_acc(v), v->n);
        }
        free(v->fix);
        *v = grown;
    }
    fix_ts(v)[v->n] = ts;
    fix_lat(v)[v->n] = lat;
    fix_lon(v)[v->n] = lon;
    fix_acc(v)[v->n] = (uint8_t)acc;
    v->n++;
    return 0;
}

/* ---- reading -------------------------------------------------------------- */

/* Make at least want unread bytes available in one piece (fewer only at the
 * end of the file), growing the buffer for a large frame.  Returns how many
 * are available; a read error ends the run. */
static size_t input_fill(struct run *r, struct input *in, size_t want)
{
    while (in->end - in->pos < want && !in->eof) {
        if (in->pos > 0) {
            memmove(in->buf, in->buf + in->pos, in->end - in->pos);
            in->base += in->pos;
            in->end -= in->pos;
            in->pos = 0;
        }
        if (want > in->cap) {
            unsigned char *b = realloc(in->buf, want + 1);
            if (!b)
                out_of_memory();
            in->buf = b;
            in->cap = want;
        }
        ssize_t n = read(in->fd, in->buf + in->end, in->cap - in->end);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            progress_clear(r);
            fprintf(stderr, "%s: %s: cannot read: %s\n", hc_cli_prog, in->fs->path,
                    strerror(errno));
            exit(1);
        }
        if (n == 0)
            in->eof = 1;
        in->end += (size_t)n;
        in->fs->bytes += (uint64_t)n;
        r->bytes_done += (uint64_t)n;
        progress(r, 1, (double)r->bytes_done, (double)r->bytes_total);
    }
    return in->end - in->pos;
}

/* Split a CSV line in place into NUL-terminated fields (double quotes with
 * "" inside allowed; blanks around a field dropped).  Keeps the first max in
 * f; returns how many fields the line has, or -1 for a stray quote. */
static int csv_split(char *p, char **f, int max)
{
    int n = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        char *start = p, *w;
        if (*p == '"') {
            start = w = ++p;
            for (;;) {
                if (*p == '\0')
                    return -1;
                if (*p == '"' && p[1] != '"')
                    break;
                if (*p == '"')
                    p++;
                *w++ = *p++;
            }
            p++;
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p != ',' && *p != '\0')
                return -1;
        } else {
            while (*p != ',' && *p != '\0') {
                if (*p == '"')
                    return -1;
                p++;
            }
            w = p;
            while (w > start && (w[-1] == ' ' || w[-1] == '\t'))
                w--;
        }
        char at = *p;
        *w = '\0';
        if (n < max)
            f[n] = start;
        n++;
        if (at == '\0')
            return n;
        p++;
    }
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* ts as integer milliseconds, or ISO 8601 UTC "YYYY-MM-DDTHH:MM:SS[.f]Z".
 * 0, or -1 if s is neither (the range is checked by the caller). */
static int parse_ts(const char *s, int64_t *out)
{
    const char *p = s + (*s == '-');
    if (*p >= '0' && *p <= '9' && p[strspn(p, "0123456789")] == '\0') {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno)
            return -1;
        *out = v;
        return 0;
    }
    static const int width[6] = { 4, 2, 2, 2, 2, 2 };
    static const char sep[6] = "--T::";
    int v[6];
    p = s;
    for (int i = 0; i < 6; i++) {
        v[i] = 0;
        for (int k = 0; k < width[i]; k++, p++) {
            if (*p < '0' || *p > '9')
                return -1;
            v[i] = v[i] * 10 + (*p - '0');
        }
        if (i < 5 && *p++ != sep[i] && !(i == 2 && p[-1] == 't'))
            return -1;
    }
    int ms = 0, digits = 0;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
        if (digits == 0)
            return -1;
        for (int k = digits; k < 3; k++)
            ms *= 10;
    }
    if ((*p != 'Z' && *p != 'z') || p[1] != '\0')
        return -1;
    static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int leap = (v[0] % 4 == 0 && v[0] % 100 != 0) || v[0] % 400 == 0;
    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > mdays[v[1] - 1] ||
        (v[1] == 2 && v[2] == 29 && !leap) || v[3] > 23 || v[4] > 59 || v[5] > 59)
        return -1;
    int64_t days = days_from_civil(v[0], v[1], v[2]);
    *out = ((days * 24 + v[3]) * 60 + v[4]) * 60 * 1000 + (int64_t)v[5] * 1000 + ms;
    return 0;
}

/* A decimal of at most 15 digits such as -52.5200081 (what GPS exports
 * hold) is an integer over a power of ten, both exact doubles, so one
 * division rounds it correctly, exactly as strtod would; anything else
 * goes to strtod.  0, or -1 if s is not a number. */
static int parse_number(const char *s, double *out)
{
    static const double pow10[16] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8,
                                      1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15 };
    const char *p = s + (*s == '-' || *s == '+');
    uint64_t mant = 0;
    int digits = 0, frac = -1;
    for (;; p++) {
        if (*p >= '0' && *p <= '9') {
            mant = mant * 10 + (uint64_t)(*p - '0');
            digits++;
            frac += frac >= 0;
        } else if (*p == '.' && frac < 0) {
            frac = 0;
        } else {
            break;
        }
        if (digits > 15)
            break;
    }
    if (*p == '\0' && digits > 0) {
        double v = (double)mant / pow10[frac > 0 ? frac : 0];
        *out = *s == '-' ? -v : v;
        return 0;
    }
    char *end;
    if (*s == '\0')
        return -1;
    errno = 0;
    *out = strtod(s, &end);
    return *end == '\0' && errno != ERANGE ? 0 : -1;
}

enum { C_VID, C_MAKER, C_TS, C_LAT, C_LON, C_ACC, C_N };
static const char *const col_name[C_N] = { "vid", "maker", "ts", "lat", "lon", "acc" };

struct columns {
    int at[C_N];                /* field index of each column; acc -1 if none */
    int n;                      /* fields a row has (header); 0: 5 or 6 */
};

/* The header line's column order; 0, or -1 after reporting the damage. */
static int csv_header(struct run *r, struct input *in, char **f, int nf, struct columns *c)
{
    for (int k = 0; k < C_N; k++)
        c->at[k] = -1;
    c->n = nf;
    for (int i = 0; i < nf && i < MAX_FIELDS; i++)
        for (int k = 0; k < C_N; k++)
            if (!strcmp(f[i], col_name[k])) {
                if (c->at[k] >= 0) {
                    damaged(r, in, 0, "the header names column '%s' twice", col_name[k]);
                    return -1;
                }
                c->at[k] = i;
            }
    if (nf > MAX_FIELDS) {
        damaged(r, in, 0, "the header has %d columns, more than %d", nf, MAX_FIELDS);
        return -1;
    }
    for (int k = 0; k < C_ACC; k++)
        if (c->at[k] < 0) {
            damaged(r, in, 0, "the header has no column '%s' (it needs vid, maker, ts, lat"
                    " and lon)", col_name[k]);
            return -1;
        }
    return 0;
}

/* One data line: a fix, or a bad row. */
static void csv_row(struct run *r, struct input *in, char **f, int nf, const struct columns *c)
{
    struct file_stat *fs = in->fs;
    const char *path = fs->path;
    unsigned long long line = (unsigned long long)in->line;
    int at[C_N];
    memcpy(at, c->at, sizeof(at));
    if (nf < 0) {
        bad_row(r, fs, "%s:%llu: a double quote out of place", path, line);
        return;
    }
    if (c->n && nf != c->n) {
        bad_row(r, fs, "%s:%llu: %d columns, the header has %d", path, line, nf, c->n);
        return;
    }
    if (!c->n && nf != 5 && nf != 6) {
        bad_row(r, fs, "%s:%llu: %d columns, expected 5 or 6 (vid,maker,ts,lat,lon[,acc])", path,
                line, nf);
        return;
    }
    if (!c->n)
        at[C_ACC] = nf == 6 ? 5 : -1;
    const char *vid = f[at[C_VID]], *maker = f[at[C_MAKER]];
    size_t vlen = strlen(vid), mlen = strlen(maker);
    struct hc_report rep = { .vid_len = 1, .maker_len = 1 };   /* both checked here */
    int acc = 0;
    if (vlen == 0 || vlen > HC_VID_MAX) {
        bad_row(r, fs, "%s:%llu: vid must be 1 to %d bytes, not %zu", path, line, HC_VID_MAX, vlen);
        return;
    }
    if (mlen == 0 || mlen > HC_MAKER_MAX) {
        bad_row(r, fs, "%s:%llu: maker must be 1 to %d bytes, not %zu", path, line, HC_MAKER_MAX,
                mlen);
        return;
    }
    if (parse_ts(f[at[C_TS]], &rep.ts) < 0) {
        bad_row(r, fs, "%s:%llu: ts '%.40s' is neither integer milliseconds nor ISO 8601 UTC"
                " (2026-11-22T03:04:05Z)", path, line, f[at[C_TS]]);
        return;
    }
    for (int k = C_LAT; k <= C_LON; k++)
        if (parse_number(f[at[k]], k == C_LAT ? &rep.lat : &rep.lon) < 0) {
            bad_row(r, fs, "%s:%llu: %s '%.40s' is not a number", path, line, col_name[k],
                    f[at[k]]);
            return;
        }
    if (at[C_ACC] >= 0) {
        const char *a = f[at[C_ACC]];
        if (!strcasecmp(a, "true") || !strcmp(a, "1"))
            acc = 1;
        else if (strcasecmp(a, "false") && strcmp(a, "0")) {
            bad_row(r, fs, "%s:%llu: acc '%.40s' is not true, false, 1 or 0", path, line, a);
            return;
        }
    }
    int rc = hc_report_check(&rep);
    if (rc < 0) {
        int k = rc == HC_ERANGE_LAT ? C_LAT : rc == HC_ERANGE_LON ? C_LON : C_TS;
        bad_row(r, fs, "%s:%llu: %s '%.40s': %s", path, line, col_name[k], f[at[k]],
                hc_strerror(rc));
        return;
    }
    if (add_fix(r, vid, vlen, maker, mlen, rep.ts, rep.lat, rep.lon, acc) < 0)
        bad_row(r, fs, "%s:%llu: maker '%.40s' is not UTF-8", path, line, maker);
}

static void read_csv(struct run *r, struct input *in)
{
    struct columns c = { .at = { 0, 1, 2, 3, 4, -1 }, .n = 0 };
    int first = 1, skipping = 0;
    char *f[MAX_FIELDS];
    for (;;) {
        size_t avail = in->end - in->pos;
        char *s = (char *)in->buf + in->pos;
        char *nl = memchr(s, '\n', avail);
        if (skipping) {             /* the rest of an over-long line */
            in->pos = nl ? (size_t)(nl + 1 - (char *)in->buf) : in->end;
            skipping = !nl;
            if (!nl && in->eof)
                break;
            if (!nl)
                input_fill(r, in, 1);
            continue;
        }
        if (!nl && !in->eof) {
            if (in->pos == 0 && in->end == in->cap) {
                in->line++;
                r->rows++;
                in->fs->rows++;
                bad_row(r, in->fs, "%s:%llu: line longer than %u bytes", in->fs->path,
                        (unsigned long long)in->line, READ_BUF);
                in->pos = in->end;
                skipping = 1;
            } else {
                input_fill(r, in, avail + 1);
            }
            continue;
        }
        if (!nl && avail == 0)
            break;
        size_t len = nl ? (size_t)(nl - s) : avail;
        in->pos += len + (nl != NULL);
        in->line++;
        s[len] = '\0';              /* the '\n', or the spare byte past the end */
        if (len && s[len - 1] == '\r')
            s[--len] = '\0';
        if (in->line == 1 && len >= 3 && !memcmp(s, "\xef\xbb\xbf", 3))
            s += 3, len -= 3;       /* a UTF-8 byte order mark */
        if (len == 0)
            continue;
        int nf = csv_split(s, f, MAX_FIELDS);
        if (first) {
            first = 0;
            int header = 0;
            for (int i = 0; i < nf && i < MAX_FIELDS && !header; i++)
                header = !strcmp(f[i], "vid");
            if (header) {
                if (csv_header(r, in, f, nf, &c) < 0)
                    return;
                continue;
            }
        }
        r->rows++;
        in->fs->rows++;
        csv_row(r, in, f, nf, &c);
    }
}

static void read_msgpack(struct run *r, struct input *in)
{
    struct hc_wire w;
    struct hc_report rep;
    hc_wire_init(&w);
    for (;;) {
        size_t avail = input_fill(r, in, 4);
        uint64_t off = in->base + in->pos;
        if (avail == 0)
            break;
        if (avail < 4) {
            damaged(r, in, off, "truncated frame header (%zu of 4 bytes)", avail);
            break;
        }
        uint32_t len = hc_wire_frame_length(in->buf + in->pos);
        if (len > FRAME_MAX) {
            damaged(r, in, off, "frame length %u is over the %u MiB limit (not a hubcap msgpack"
                    " stream?)", len, FRAME_MAX >> 20);
            break;
        }
        avail = input_fill(r, in, 4 + (size_t)len);
        if (avail < 4 + (size_t)len) {
            damaged(r, in, off, "frame of %u bytes cut off after %zu (truncated stream)", len,
                    avail - 4);
            break;
        }
        int rc = hc_wire_open(&w, in->buf + in->pos + 4, len);
        if (rc < 0) {
            damaged(r, in, off, "frame of %u bytes: %s", len, hc_strerror(rc));
            break;
        }
        for (unsigned k = 1; (rc = hc_wire_next(&w, &rep)) != 0; k++) {
            r->rows++;
            in->fs->rows++;
            if (rc < 0)
                bad_row(r, in->fs, "%s: byte %llu: report %u of the frame: %s", in->fs->path,
                        (unsigned long long)off, k, hc_strerror(rc));
            else if (rep.maker_len == 0)
                bad_row(r, in->fs, "%s: byte %llu: report %u of the frame names no maker",
                        in->fs->path, (unsigned long long)off, k);
            else if (add_fix(r, rep.vid, rep.vid_len, rep.maker, rep.maker_len, rep.ts, rep.lat,
                             rep.lon, rep.acc) < 0)
                bad_row(r, in->fs, "%s: byte %llu: report %u of the frame: maker is not UTF-8",
                        in->fs->path, (unsigned long long)off, k);
        }
        in->pos += 4 + (size_t)len;
    }
    hc_wire_free(&w);
}

/* A text file never starts with a control byte; a frame's length does. */
static enum format sniff(const unsigned char *b, size_t n)
{
    return n > 0 && b[0] < 0x20 && b[0] != '\t' && b[0] != '\n' && b[0] != '\r' ? FMT_MSGPACK
                                                                                  : FMT_CSV;
}

static void read_file(struct run *r, struct file_stat *fs)
{
    struct input in = { .fs = fs, .cap = READ_BUF };
    int is_stdin = !strcmp(fs->path, "-");
    in.fd = is_stdin ? STDIN_FILENO : open(fs->path, O_RDONLY | O_CLOEXEC);
    if (in.fd < 0) {
        progress_clear(r);
        fprintf(stderr, "%s: %s: %s\n", hc_cli_prog, fs->path, strerror(errno));
        exit(1);
    }
    if (!(in.buf = malloc(in.cap + 1)))
        out_of_memory();
    if (is_stdin)
        fs->path = "stdin";
    size_t n = input_fill(r, &in, 5);
    fs->format = r->o.format != FMT_AUTO ? r->o.format : sniff(in.buf, n);
    if (fs->format == FMT_MSGPACK)
        read_msgpack(r, &in);
    else
        read_csv(r, &in);
    free(in.buf);
    if (!is_stdin)
        close(in.fd);
}

/* ---- computing -------------------------------------------------------------- */

static int cmp_order(const void *a, const void *b)
{
    const struct order *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* One session of m >= 2 parked fixes, in r->slat and r->slon: every pair
 * into d->all; then, from 3 fixes on, its outliers cut (the arrays are
 * compacted in place) and the pairs of the fixes left into d->kept. */
static void session_drift(struct run *r, struct drifts *d, size_t m)
{
    /* Positions were checked when read and --trim by parse: only memory
     * can fail here. */
    if (hc_drift_add(&d->all, r->o.kernel, r->slat, r->slon, m) < 0)
        out_of_memory();
    if (m < 3)
        return;
    if (hc_calib_trim(r->slat, r->slon, m, r->o.trim, r->keep) < 0)
        out_of_memory();
    size_t kept = 0;
    for (size_t i = 0; i < m; i++)
        if (r->keep[i]) {
            r->slat[kept] = r->slat[i];
            r->slon[kept++] = r->slon[i];
        }
    d->judged += m;
    d->cut += m - kept;
    if (hc_drift_add(&d->kept, r->o.kernel, r->slat, r->slon, kept) < 0)
        out_of_memory();
}

/* One vehicle: its fixes in time order (ties in input order), cut at
 * ignition-on fixes; every session of >= 2 parked fixes into d.  Returns
 * whether any session was added. */
static int vehicle_drift(struct run *r, const struct vehicle *v, struct drifts *d)
{
    const int64_t *ts = fix_ts(v);
    const double *lat = fix_lat(v), *lon = fix_lon(v);
    const uint8_t *acc = fix_acc(v);
    if (v->n > r->scratch_cap) {
        r->scratch_cap = v->n;
        free(r->ord);
        free(r->slat);
        free(r->slon);
        free(r->keep);
        r->ord = malloc(v->n * sizeof(*r->ord));
        r->slat = malloc(v->n * sizeof(double));
        r->slon = malloc(v->n * sizeof(double));
        r->keep = malloc(v->n);
        if (!r->ord || !r->slat || !r->slon || !r->keep)
            out_of_memory();
    }
    int sorted = 1;
    for (uint32_t i = 1; i < v->n && sorted; i++)
        sorted = ts[i] >= ts[i - 1];
    if (!sorted) {
        for (uint32_t i = 0; i < v->n; i++)
            r->ord[i] = (struct order){ ts[i], i };
        qsort(r->ord, v->n, sizeof(*r->ord), cmp_order);
    }
    size_t m = 0;
    int added = 0;
    for (uint32_t k = 0; k <= v->n; k++) {
        uint32_t i = k == v->n ? 0 : sorted ? k : r->ord[k].i;
        if (k < v->n && !acc[i]) {
            r->slat[m] = lat[i];
            r->slon[m++] = lon[i];
            continue;
        }
        if (m >= 2) {               /* the session ends: ignition on, or no more fixes */
            session_drift(r, d, m);
            added = 1;
        }
        m = 0;
    }
    return added;
}

static int cmp_maker(const void *a, const void *b, void *ctx)
{
    const struct run *r = ctx;
    const struct key *x = &r->mk[*(const uint32_t *)a].k, *y = &r->mk[*(const uint32_t *)b].k;
    int c = memcmp(r->names + x->off, r->names + y->off, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* A maker's figures from its accumulators (res->vehicles is already
 * counted). */
static void figures(const struct opts *o, const struct drifts *d, struct result *res)
{
    res->sessions = d->all.vehicles;
    res->fixes = d->all.fixes;
    res->pairs = d->all.pairs;
    res->max_m = hc_drift_max_m(&d->all);
    res->p99_m = hc_drift_quantile_m(&d->all, 0.99);
    res->p999_m = hc_drift_quantile_m(&d->all, 0.999);
    res->trim_fixes = d->judged;
    res->trimmed_fixes = d->cut;
    res->trimmed_pairs = d->kept.pairs;
    res->trimmed_max_m = hc_drift_max_m(&d->kept);
    res->trimmed_p99_m = hc_drift_quantile_m(&d->kept, 0.99);
    res->trimmed_p999_m = hc_drift_quantile_m(&d->kept, 0.999);
    const double picked[] = { res->max_m, res->p99_m, res->p999_m, res->trimmed_max_m };
    res->threshold_m = ceil(picked[o->pick] * 100) / 100;
    res->required = hc_calib_sample_size(o->z, o->proportion, o->margin);
    res->ok = res->vehicles >= (uint64_t)res->required;
}

/* Every maker's result; returns the makers' indices sorted by name. */
static uint32_t *compute(struct run *r)
{
    uint32_t *by_name = malloc((r->n_mk + 1) * sizeof(uint32_t));
    uint32_t *first = calloc(r->n_mk + 1, sizeof(uint32_t));
    uint32_t *group = malloc(((size_t)r->n_veh + 1) * sizeof(uint32_t));
    if (!by_name || !first || !group)
        out_of_memory();
    /* Vehicles grouped by maker (a counting sort). */
    for (uint32_t i = 0; i < r->n_veh; i++) {
        r->mk[r->veh[i].maker].n_vehicles++;
        r->maker_changes += r->veh[i].changed;
    }
    for (uint32_t m = 0; m < r->n_mk; m++)
        first[m + 1] = first[m] + r->mk[m].n_vehicles;
    for (uint32_t i = 0; i < r->n_veh; i++)
        group[first[r->veh[i].maker]++] = i;
    /* A maker all of whose vehicles changed to another has none left. */
    for (uint32_t m = 0; m < r->n_mk; m++) {
        first[m] -= r->mk[m].n_vehicles;
        if (r->mk[m].n_vehicles)
            by_name[r->n_listed++] = m;
    }
    qsort_r(by_name, r->n_listed, sizeof(uint32_t), cmp_maker, r);

    struct drifts d;
    uint64_t done = 0;
    for (uint32_t m = 0; m < r->n_mk; m++) {
        struct maker *mk = &r->mk[m];
        struct result *res = &mk->res;
        if (!mk->n_vehicles)
            continue;
        memset(&d, 0, sizeof(d));
        if (hc_drift_init(&d.all) < 0 || hc_drift_init(&d.kept) < 0)
            out_of_memory();
        for (uint32_t g = first[m]; g < first[m] + mk->n_vehicles; g++) {
            struct vehicle *v = &r->veh[group[g]];
            res->vehicles += (uint64_t)vehicle_drift(r, v, &d);
            free(v->fix);
            v->fix = NULL;
            if ((++done & 1023) == 0)
                progress(r, 0, (double)done, (double)r->n_veh);
        }
        figures(&r->o, &d, res);
        hc_drift_free(&d.all);
        hc_drift_free(&d.kept);
    }
    free(first);
    free(group);
    return by_name;
}

/* ---- applying --------------------------------------------------------------- */

/* The fewest fixes a session needs to count in the picked figure: trimming
 * judges sessions of 3 or more only. */
static int fewest_fixes(const struct opts *o)
{
    return o->pick == PICK_TRIMMED ? 3 : 2;
}

/* The pairs behind the picked figure. */
static uint64_t picked_pairs(const struct opts *o, const struct result *res)
{
    return o->pick == PICK_TRIMMED ? res->trimmed_pairs : res->pairs;
}

/* Why a maker's threshold is not sent, or NULL when it is. */
static const char *not_applied(const struct run *r, const struct result *res, char *buf,
                               size_t cap)
{
    if (picked_pairs(&r->o, res) == 0) {
        snprintf(buf, cap, "no session of %d parked fixes, so no threshold (it must be above"
                 " 0)", fewest_fixes(&r->o));
        return buf;
    }
    if (res->threshold_m <= 0)
        return "every pair is 0 m apart, so no threshold (it must be above 0)";
    if (res->threshold_m > HC_THRESHOLD_MAX_M) {
        snprintf(buf, cap, "threshold %.2f m is above the daemon's limit of %.0f m",
                 res->threshold_m, HC_THRESHOLD_MAX_M);
        return buf;
    }
    if (!res->ok && !r->o.force) {
        snprintf(buf, cap, "sample too small: %llu vehicles, %ld needed (--force applies it"
                 " anyway)", (unsigned long long)res->vehicles, res->required);
        return buf;
    }
    return NULL;
}

/* Why hubcapd could not be reached and what to do, in hubcapctl's words. */
static const char *unreachable_why(const struct opts *o, int err, char *buf, size_t cap,
                                   const char *path)
{
    return hc_ctl_unreachable(buf, cap, err, path, o->data_dir, o->socket != NULL,
                              CTL_TIMEOUT_MS / 1000.0, NULL);
}

/* Send every maker that qualifies in one threshold.set.  Fills out's
 * "applied" and "not_applied"; returns the exit status (0, 1 refused, 3
 * unreachable). */
static int apply(struct run *r, const uint32_t *by_name, json_t *out)
{
    char why[200], path[4200], msg[10000];
    json_t *set = json_object(), *applied = json_array(), *skipped = json_array();
    json_object_set_new(out, "applied", applied);
    json_object_set_new(out, "not_applied", skipped);
    for (uint32_t i = 0; i < r->n_listed; i++) {
        const struct maker *mk = &r->mk[by_name[i]];
        char name[HC_MAKER_MAX + 1];
        snprintf(name, sizeof(name), "%.*s", mk->k.len, r->names + mk->k.off);
        const char *no = not_applied(r, &mk->res, why, sizeof(why));
        if (no && !r->o.json)   /* the notes below the table said why */
            printf("%s %s", json_array_size(skipped) ? "," : "\nNot sent to hubcapd:", name);
        if (no)
            json_array_append_new(skipped, json_pack("{s:s, s:s}", "maker", name, "reason", no));
        else
            json_object_set_new(set, name, json_real(mk->res.threshold_m));
    }
    if (!r->o.json && json_array_size(skipped))
        printf(" (see above)\n");
    if (json_object_size(set) == 0) {
        json_decref(set);
        if (!r->o.json)
            printf("Nothing to apply: no maker qualifies, so nothing was sent.\n");
        return 0;
    }
    if (r->o.socket)
        snprintf(path, sizeof(path), "%s", r->o.socket);
    else
        snprintf(path, sizeof(path), "%s/hubcapd.sock", r->o.data_dir);
    json_t *req = json_pack("{s:s, s:o}", "cmd", "threshold.set", "thresholds", set);
    char *line = json_dumps(req, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(req);
    size_t len = line ? strlen(line) : 0;
    char *sent = line ? realloc(line, len + 2) : NULL;
    if (!sent)
        out_of_memory();
    memcpy(sent + len, "\n", 2);
    json_t *ans = hc_ctl_call(path, sent, CTL_TIMEOUT_MS);
    int err = errno, status = 0;
    free(sent);
    if (!ans) {
        unreachable_why(&r->o, err, msg, sizeof(msg), path);
        fprintf(stderr, "%s: %s\n", hc_cli_prog, msg);
        json_object_set_new(out, "apply_error", json_string(msg));
        return 3;
    }
    json_t *list = json_object_get(ans, "thresholds");
    if (!json_is_true(json_object_get(ans, "ok")) || !json_is_array(list)) {
        const char *e = json_string_value(json_object_get(ans, "error"));
        snprintf(msg, sizeof(msg), "hubcapd refused the thresholds, nothing changed: %s",
                 e ? e : "(an answer without ok:true and thresholds)");
        fprintf(stderr, "%s: %s\n", hc_cli_prog, msg);
        json_object_set_new(out, "apply_error", json_string(msg));
        status = 1;
    } else {
        if (!r->o.json)
            printf("\nApplied to hubcapd (%s):\n", path);
        size_t i;
        json_t *t;
        json_array_foreach(list, i, t) {
            const char *name = json_string_value(json_object_get(t, "maker"));
            json_array_append_new(applied, json_string(name ? name : ""));
            const char *src = json_string_value(json_object_get(t, "source"));
            if (!r->o.json)
                printf("  %-32s %12.2f m  (%s)\n", name ? name : "?",
                       json_number_value(json_object_get(t, "meters")), src ? src : "?");
        }
    }
    json_decref(ans);
    return status;
}

/* ---- output ----------------------------------------------------------------- */

/* Percentage of the judged fixes (sessions of >= 3) that trimming cut. */
static double cut_pct(const struct result *s)
{
    return s->trim_fixes ? 100.0 * (double)s->trimmed_fixes / (double)s->trim_fixes : 0.0;
}

/* Below the table: why a maker's threshold is not applied, one line each. */
static int print_notes(const struct run *r, const uint32_t *by_name)
{
    const struct opts *o = &r->o;
    int notes = 0;
    for (uint32_t i = 0; i < r->n_listed; i++) {
        const struct maker *mk = &r->mk[by_name[i]];
        const struct result *s = &mk->res;
        if (!notes && (!s->ok || s->threshold_m <= 0 || s->threshold_m > HC_THRESHOLD_MAX_M))
            notes = printf("\n");
        if (s->threshold_m <= 0 && picked_pairs(o, s))
            printf("maker %.*s: every pair is 0 m apart, so no threshold; it is never"
                   " applied\n", mk->k.len, r->names + mk->k.off);
        else if (s->threshold_m <= 0)
            printf("maker %.*s: no session with %d parked fixes, so no threshold; it is never"
                   " applied\n", mk->k.len, r->names + mk->k.off, fewest_fixes(o));
        else if (s->threshold_m > HC_THRESHOLD_MAX_M)
            printf("maker %.*s: its threshold is above hubcapd's limit of %.0f m; it is never"
                   " applied\n", mk->k.len, r->names + mk->k.off, HC_THRESHOLD_MAX_M);
        else if (!s->ok)
            printf("maker %.*s: %llu vehicle%s, %ld needed for %d %% confidence and a %g %%"
                   " margin; %s\n", mk->k.len, r->names + mk->k.off,
                   (unsigned long long)s->vehicles, s->vehicles == 1 ? "" : "s", s->required,
                   o->confidence, o->margin * 100,
                   o->force ? "it is applied anyway (--force)"
                            : "its threshold is shown but not applied without --force");
    }
    return notes;
}

static void print_table(const struct run *r, const uint32_t *by_name, double secs)
{
    static const char *const pick_what[] = { "max", "p99", "p99.9", "trimmed max" };
    const struct opts *o = &r->o;
    uint64_t tv = 0, ts = 0, tf = 0, tp = 0;
    printf("%-20s %9s %9s %11s %13s %7s %6s %12s %11s %11s %11s %11s %8s %6s\n", "maker",
           "vehicles", "sessions", "fixes", "pairs", "needed", "sample", "threshold", "max",
           "p99", "p99.9", "trim max", "cut", "cut %");
    for (uint32_t i = 0; i < r->n_listed; i++) {
        const struct maker *mk = &r->mk[by_name[i]];
        const struct result *s = &mk->res;
        printf("%-20.*s %9llu %9llu %11llu %13llu %7ld %6s %10.2f m %9.2f m %9.2f m %9.2f m"
               " %9.2f m %8llu %5.1f%%\n",
               mk->k.len, r->names + mk->k.off, (unsigned long long)s->vehicles,
               (unsigned long long)s->sessions, (unsigned long long)s->fixes,
               (unsigned long long)s->pairs, s->required, s->ok ? "yes" : "NO", s->threshold_m,
               s->max_m, s->p99_m, s->p999_m, s->trimmed_max_m,
               (unsigned long long)s->trimmed_fixes, cut_pct(s));
        tv += s->vehicles;
        ts += s->sessions;
        tf += s->fixes;
        tp += s->pairs;
    }
    printf("%-20s %9llu %9llu %11llu %13llu\n", "total", (unsigned long long)tv,
           (unsigned long long)ts, (unsigned long long)tf, (unsigned long long)tp);
    printf("\n%u maker%s, %u vehicle%s; %llu rows read, %llu skipped; %.3f s, %.0f rows/s\n",
           r->n_listed, r->n_listed == 1 ? "" : "s", r->n_veh, r->n_veh == 1 ? "" : "s",
           (unsigned long long)r->rows, (unsigned long long)r->skipped, secs,
           secs > 0 ? (double)r->rows / secs : 0.0);
    printf("threshold = %s of the maker's pairwise drift, rounded up to the centimetre;"
           " %d %% confidence (z %.2f), %g %% margin, proportion %g; kernel %s\n",
           pick_what[o->pick], o->confidence, o->z, o->margin * 100, o->proportion,
           o->kernel->name);
    printf("cut: in each session of 3 fixes or more, the fixes farther from its centre than"
           " %g x its median distance (and than %g m); trim max: the largest pair of the rest\n",
           o->trim, o->trim * HC_CALIB_TRIM_FLOOR_M);
    int notes = print_notes(r, by_name);
    if (r->maker_changes)
        printf("%s%llu vehicle%s changed maker in the input; each is counted under the last"
               " maker its rows named\n", notes ? "" : "\n", (unsigned long long)r->maker_changes,
               r->maker_changes == 1 ? "" : "s");
    if (r->damaged)
        printf("%llu file%s could not be read to the end (see the messages above)\n",
               (unsigned long long)r->damaged, r->damaged == 1 ? "" : "s");
}

static json_t *json_summary(const struct run *r, const uint32_t *by_name, double secs)
{
    const struct opts *o = &r->o;
    json_t *makers = json_array(), *files = json_array();
    for (uint32_t i = 0; i < r->n_listed; i++) {
        const struct maker *mk = &r->mk[by_name[i]];
        const struct result *s = &mk->res;
        json_array_append_new(makers, json_pack(
            "{s:s#, s:I, s:I, s:I, s:I, s:I, s:b, s:f, s:f, s:f, s:f,"
            " s:I, s:I, s:f, s:I, s:f, s:f, s:f}",
            "maker", r->names + mk->k.off, (int)mk->k.len, "vehicles", (json_int_t)s->vehicles,
            "sessions", (json_int_t)s->sessions, "fixes", (json_int_t)s->fixes,
            "pairs", (json_int_t)s->pairs, "required_sample", (json_int_t)s->required,
            "sample_ok", s->ok, "threshold_m", s->threshold_m, "max_m", s->max_m,
            "p99_m", s->p99_m, "p999_m", s->p999_m,
            "trim_fixes", (json_int_t)s->trim_fixes,
            "trimmed_fixes", (json_int_t)s->trimmed_fixes, "trimmed_pct", cut_pct(s),
            "trimmed_pairs", (json_int_t)s->trimmed_pairs, "trimmed_max_m", s->trimmed_max_m,
            "trimmed_p99_m", s->trimmed_p99_m, "trimmed_p999_m", s->trimmed_p999_m));
    }
    for (int i = 0; i < o->n_files; i++) {
        const struct file_stat *fs = &r->files[i];
        json_t *f = json_pack("{s:s, s:s, s:I, s:I, s:I}", "path", fs->path,
                              "format", format_name[fs->format], "bytes", (json_int_t)fs->bytes,
                              "rows", (json_int_t)fs->rows, "skipped", (json_int_t)fs->skipped);
        if (fs->damage)
            json_object_set_new(f, "damaged", json_string(fs->damage));
        json_array_append_new(files, f);
    }
    return json_pack("{s:i, s:f, s:f, s:f, s:s, s:f, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:o,"
                     " s:f, s:f}",
                     "confidence", o->confidence, "margin", o->margin, "proportion",
                     o->proportion, "z", o->z, "pick", pick_name[o->pick], "trim", o->trim,
                     "kernel",
                     o->kernel->name, "makers", makers, "vehicles", (json_int_t)r->n_veh,
                     "rows", (json_int_t)r->rows, "skipped", (json_int_t)r->skipped,
                     "damaged_files", (json_int_t)r->damaged,
                     "maker_changes", (json_int_t)r->maker_changes, "files", files,
                     "seconds", secs, "rows_per_s", secs > 0 ? (double)r->rows / secs : 0.0);
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct run r;
    memset(&r, 0, sizeof(r));
    hc_cli_init(argv[0]);
    parse(&r.o, argc, argv);
    r.t0 = hc_time_mono_ns();

    /* Every file must be there before any is read; their sizes, when
     * known, give the progress line its percentage. */
    if (!(r.files = calloc((size_t)r.o.n_files, sizeof(*r.files))))
        out_of_memory();
    int sizes_known = 1;
    for (int i = 0; i < r.o.n_files; i++) {
        struct stat st;
        const char *p = r.o.files[i];
        r.files[i].path = p;
        int rc = strcmp(p, "-") ? stat(p, &st) : fstat(STDIN_FILENO, &st);
        if (rc < 0 || (strcmp(p, "-") && access(p, R_OK) < 0) || S_ISDIR(st.st_mode)) {
            fprintf(stderr, "%s: %s: %s\n", hc_cli_prog, p,
                    rc < 0 || !S_ISDIR(st.st_mode) ? strerror(errno) : "is a directory");
            free(r.files);
            return 1;
        }
        if (S_ISREG(st.st_mode))
            r.bytes_total += (uint64_t)st.st_size;
        else
            sizes_known = 0;
    }
    if (!sizes_known)
        r.bytes_total = 0;
    for (int i = 0; i < r.o.n_files; i++)
        read_file(&r, &r.files[i]);

    uint32_t *by_name = compute(&r);
    progress_clear(&r);
    double secs = (double)(hc_time_mono_ns() - r.t0) / 1e9;
    json_t *out = json_summary(&r, by_name, secs);
    if (!r.o.json)
        print_table(&r, by_name, secs);
    int status = r.o.apply ? apply(&r, by_name, out) : 0;
    if (r.o.json) {
        char *s = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(15));
        if (!s)
            out_of_memory();
        puts(s);
        free(s);
    }
    json_decref(out);
    fflush(stdout);

    for (uint32_t i = 0; i < r.n_veh; i++)
        free(r.veh[i].fix);
    for (int i = 0; i < r.o.n_files; i++)
        free(r.files[i].damage);
    free(r.files);
    free(by_name);
    free(r.veh);
    free(r.mk);
    free(r.vix.slot);
    free(r.mix.slot);
    free(r.names);
    free(r.ord);
    free(r.slat);
    free(r.slon);
    free(r.keep);
    return status;
}
