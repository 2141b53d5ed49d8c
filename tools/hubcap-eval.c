/*
 * hubcap-eval — how well hubcap's detection rules do on a simulated fleet:
 * tows caught and missed, false alarms, and how many reports after a tow
 * each alarm took, per maker and per rule, scored against the simulator's
 * ground truth.  The stream is replayed through the detection core and,
 * optionally, through a running hubcapd, whose alarms are read back from
 * its audit log and scored the same way.
 *
 * The stream is read once into memory (decoded reports, plus the index of
 * each report's vehicle) and replayed from there once per rule, through a
 * fresh detector and a fresh vehicle table (the worker's, vtable.h), so
 * the timed loop holds only the vehicle lookup and hc_detect_step.  An
 * alarm is a (vehicle, ts) pair; scoring gives each to the truth session
 * that holds its ts and classifies it, the same way for every replay.
 * Reports are also indexed per vehicle (ts and ignition, sorted), which
 * turns each delay, "fixes so far" and gap into a binary search.
 *
 * Single-threaded; all state lives in struct eval.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hubcap/alarmjson.h"
#include "hubcap/cli.h"
#include "hubcap/ctl.h"
#include "hubcap/detect.h"
#include "hubcap/error.h"
#include "hubcap/hash.h"
#include "hubcap/timefmt.h"
#include "hubcap/vtable.h"
#include "hubcap/wire.h"

#define FRAME_MAX (64u << 20)       /* largest frame read (hubcapd's limit is lower) */
#define CHUNK (1u << 16)            /* reports replayed between progress updates */
#define CTL_TIMEOUT_MS 10000
#define STALL_S 60                  /* hubcapd silent this long: give up */
#define RULE_BOTH (-1)

static const char truth_header[] =
    "vid,maker,night,start_ms,end_ms,fixes,tow_m,tow_ms,moved_ms,after_fixes,multipath_fixes";
enum { F_VID, F_MAKER, F_NIGHT, F_START, F_END, F_FIXES, F_TOW_M, F_TOW_MS, F_MOVED, F_AFTER,
       F_MULTI, N_FIELDS };

/* Where a maker's threshold came from; also marks the makers scored. */
enum { SRC_DEFAULT, SRC_FILE, SRC_OPTION };
static const char *const src_name[] = { "default", "file", "option" };
#define USED_STREAM 1
#define USED_TRUTH 2

struct opts {
    const char *stream, *truth, *thresholds, *hubcapd, *socket;
    int rule;                       /* enum hc_rule, or RULE_BOTH */
    struct hc_detect_config det;    /* window, n1, n2, default threshold */
    double default_m;               /* --default-threshold; 0: none */
    char **thr;                     /* --threshold MAKER=METERS, in order */
    int n_thr;
    uint64_t failures;
    int json, bench, quiet, tty;
};

/* One line of the truth file: a parking session (a vehicle-night). */
struct session {
    uint32_t vid;                   /* index in eval.ids */
    uint32_t maker;                 /* index in eval.names */
    uint64_t line;
    uint32_t night, fixes, after, multipath;
    int64_t start, end, tow_ms, moved;
    double tow_m;
};

/* An alarm: its vehicle and the ts of the report that raised it. */
struct alarm {
    uint32_t vid;
    uint32_t session;               /* set when scored */
    int64_t ts;
    int is_false;
};

struct figures {
    uint64_t sessions, tows, detected, tows2x, detected2x, masked, false_alarms;
    uint64_t delays, delay_med, delay_p95;
};

/* One replay (the core's or hubcapd's) and its score. */
struct result {
    const char *engine;             /* "core" or "hubcapd" */
    enum hc_rule rule;
    double ns_per_report;           /* core only */
    uint64_t stale, rejected;
    struct alarm *al;
    size_t n_al, cap_al;
    int64_t *hit;                   /* per session: first alarm at or after moved_ms, or -1 */
    int64_t *first_false;           /* per session: first false alarm, or -1 */
    struct figures *fig;            /* per maker (eval.names), then all makers */
};

struct eval {
    struct opts o;
    /* the stream */
    struct hc_report *rep;
    uint32_t *rvid;                 /* each report's vehicle */
    size_t n_rep, cap_rep;
    uint64_t frames, decode_rejected, bytes, makerless;
    uint32_t stream_vehicles;
    struct hc_vtable ids;           /* vid -> index (the records carry nothing) */
    struct hc_detector names;       /* makers by name and their thresholds */
    uint8_t src[HC_MAKERS_MAX];     /* SRC_* per maker */
    uint8_t used[HC_MAKERS_MAX];    /* USED_* per maker */
    uint32_t *rfirst;               /* per vehicle: its range in rkey */
    int64_t *rkey;                  /* ts << 1 | acc, sorted per vehicle */
    /* the truth */
    struct session *sess;
    size_t n_sess, cap_sess;
    uint32_t *by_vid;               /* sessions by vehicle, then start */
    uint32_t *sfirst;               /* per vehicle: its range in by_vid */
    /* replays: the core's, then hubcapd's */
    struct result res[HC_RULES + 1];
    int n_res;
    json_t *daemon;                 /* what --hubcapd found, for the output */
    /* progress */
    uint64_t t_shown;
    int progress_len;
};

/* ---- options ------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
"usage: hubcap-eval [OPTIONS] STREAM TRUTH\n"
"\n"
"Score hubcap's moved-vehicle detection on a simulated fleet: replay STREAM\n"
"through the detection core once per rule and compare the alarms with TRUTH,\n"
"the ground truth written beside it (hubcap-sim --scenario FILE --stream\n"
"STREAM --truth TRUTH).  With --hubcapd, also replay STREAM through a running\n"
"hubcapd and score its alarms the same way.\n"
"\n"
"Input:\n"
"  STREAM   hubcap's native msgpack stream: frames of a 4-byte big-endian\n"
"           length and a payload (a report map or an array of them), back to\n"
"           back, in time order.  A truncated or malformed frame is an error;\n"
"           a bad report inside a good frame is skipped and counted, as\n"
"           hubcapd does.  The stream is held in memory, about 140 B a report\n"
"           (1.5 million reports: 210 MB).\n"
"  TRUTH    CSV: comment lines starting with '#', then the header\n"
"             %s\n"
"           then one line per parking session of a vehicle (a vehicle-night):\n"
"           start_ms the ts of its ignition-on report, end_ms of its last\n"
"           parked fix; fixes the parked fixes sent; tow_m the tow distance in\n"
"           meters (0: no tow); tow_ms the moment of the tow; moved_ms the ts\n"
"           of the first fix at the new spot (0: none); after_fixes the fixes\n"
"           sent there; multipath_fixes the stray fixes of the session.  The\n"
"           sessions of one vehicle must not overlap.\n"
"\n"
"Detection:\n"
"      --rule R               seed, robust or both (default both): every maker\n"
"                             is decided by that rule, in a fresh detector\n"
"      --thresholds FILE      each maker's threshold_m from what\n"
"                             hubcap-calibrate --json prints (makers it found no\n"
"                             threshold for are skipped)\n"
"      --threshold MAKER=M    MAKER's threshold in meters; repeatable, and wins\n"
"                             over --thresholds\n"
"      --default-threshold M  the threshold of every maker without one.  Without\n"
"                             it, a maker of STREAM or TRUTH with no threshold is\n"
"                             an error, and so is a report that names no maker\n"
"      --window W             positions compared pairwise (default 16)\n"
"      --n1 N1                positions needed before deciding (default 10)\n"
"      --n2 N2                pairs that must exceed, strictly more (default W-1)\n"
"Through a running hubcapd:\n"
"      --hubcapd DIR          also replay STREAM through the hubcapd whose data\n"
"                             dir is DIR, with one --rule (seed or robust)\n"
"      --socket PATH          its control socket (default: the one named in\n"
"                             DIR/hubcapd.json)\n"
"Output:\n"
"      --failures N           after the figures, up to N missed tows and up to N\n"
"                             false alarms of each replay\n"
"      --json                 one JSON object on stdout instead of the tables\n"
"      --bench                also the overall figures as BENCH lines (the\n"
"                             detection_quality benchmark reads them)\n"
"  -q, --quiet                no progress line\n"
"  -h, --help                 this text\n"
"\n", truth_header);
    fprintf(f,
"Scoring.  An alarm (a vehicle, and the ts of the report that raised it)\n"
"belongs to that vehicle's session in TRUTH whose [start_ms, end_ms] holds\n"
"the ts; an alarm in no session means the files do not belong together, and\n"
"is an error.  An alarm is false when its session has no tow, or when it\n"
"comes before moved_ms.  A tow is detected when its session has an alarm at\n"
"or after moved_ms and no false alarm: a false alarm first masks the tow\n"
"(hubcap raises one alarm per session), which then counts as missed.  A tow\n"
"with no fix at the new spot (moved_ms 0) cannot be detected.\n"
"\n"
"Figures, per maker (the session's maker in TRUTH, with its threshold) and\n"
"for all makers; one column per replay (the rules side by side).  The name in\n"
"--json is in brackets.\n"
"  sessions (vehicle-nights)  lines of TRUTH [sessions]\n"
"  tows                 sessions with tow_m > 0 [tows]\n"
"  detected             tows detected [detected]\n"
"  recall               detected / tows [recall, 0 to 1; null without tows]\n"
"  tows >= 2x threshold tows with tow_m >= 2 x the maker's threshold: tows a\n"
"                       rule should never miss [tows_2x]\n"
"  detected among them  [detected_2x]\n"
"  recall_2x            detected among them / tows >= 2x threshold [recall_2x]\n"
"  missed, masked       missed tows whose session raised a false alarm first\n"
"                       [masked]\n"
"  false alarms         every false alarm, not only a session's first\n"
"                       [false_alarms]\n"
"  false alarms per 10k false alarms x 10,000 / sessions\n"
"                       [false_alarms_per_10k]\n"
"  delay median, p95    over detected tows, the delay of each: the vehicle's\n"
"                       reports with ts from moved_ms to the alarm's ts, both\n"
"                       included (an alarm on the second fix at the new spot:\n"
"                       2); by nearest rank, the ceil(n x p)-th smallest\n"
"                       [delay_median, delay_p95; null without detections]\n"
"Per replay:\n"
"  alarms               alarms raised [alarms]\n"
"  stale / rejected     reports the detector refused: not newer than the\n"
"                       vehicle's last one / invalid [stale, rejected]\n"
"  ns/report            the core's replay loop (vehicle lookup in the\n"
"                       worker's hash table and hc_detect_step, from memory)\n"
"                       per report; reading and scoring not included.  It\n"
"                       varies with the machine and its load [ns_per_report]\n"
"\n");
    fprintf(f,
"--failures N lists, per replay, up to N missed tows, in TRUTH's order: vid\n"
"[vid; line: TRUTH's line], night, tow_m, the maker's threshold\n"
"[threshold_m], fixes sent before and after the tow (fixes - after_fixes,\n"
"after_fixes) [fixes_before, fixes_after], the gap from the last fix before\n"
"the new spot to the first at it, marked \"gap\" when over twice the median\n"
"interval of the session's parked fixes [gap_ms, in_gap; null when it\n"
"cannot be told], the reports the replay saw at the new spot, ts from\n"
"moved_ms to end_ms [seen_at_new_spot], and the time of the false alarm\n"
"that masked it [masked_by]; then up to N false alarms: vid, night, the\n"
"alarm's time [alarm_time, alarm_ts], the session's multipath_fixes, its\n"
"parked fixes up to the alarm [fixes_so_far], and whether the session has\n"
"a tow later [towed].  --json also gives missed_total and\n"
"false_alarms_total.\n"
"\n"
"--hubcapd DIR needs a freshly started hubcapd (one that has seen no vehicle:\n"
"an empty data dir) with the same detect.window, n1 and n2 and the robust\n"
"rule's default parameters, and every report of STREAM must name a maker.\n"
"Over the control socket it sets the threshold (threshold.set) and the rule\n"
"(rule.set) of every maker of STREAM and TRUTH; sends STREAM's frames as they\n"
"are over one TCP connection to the msgpack port named in DIR/hubcapd.json;\n"
"waits until hubcapd's workers have taken every report and alarms.log holds\n"
"every alarm raised (giving up after %d s with no progress); then scores\n"
"the new lines of alarms.log beside the core's replay of the same rule, and\n"
"says whether hubcapd's alarms are exactly the core's (the same vehicles and\n"
"ts) [hubcapd: same_alarms, only_hubcapd, only_core].\n"
"\n"
"Exit status: 0 done; 1 bad input (STREAM, TRUTH, thresholds), or hubcapd\n"
"refused a setting or stopped taking reports; 2 usage error; 3 hubcapd could\n"
"not be reached.\n", STALL_S);
}

static int rule_arg(const char *s)
{
    enum hc_rule r;
    if (!strcmp(s, "both"))
        return RULE_BOTH;
    if (hc_rule_parse(s, strlen(s), &r) < 0)
        hc_cli_usage_error("--rule must be seed, robust or both, not '%s'", s);
    return (int)r;
}

/* MAKER=METERS, checked here so a typo is a usage error. */
static void threshold_arg(const char *s)
{
    const char *eq = strrchr(s, '=');
    if (!eq || eq == s || eq - s > HC_MAKER_MAX)
        hc_cli_usage_error("--threshold wants MAKER=METERS with a maker name of 1 to %d"
                           " bytes, not '%s'", HC_MAKER_MAX, s);
    if (hc_cli_double("--threshold", eq + 1, 0, HC_THRESHOLD_MAX_M) <= 0)
        hc_cli_usage_error("--threshold %.*s wants meters greater than 0", (int)(eq - s), s);
}

static void check_detect(const struct hc_detect_config *c, int rule)
{
    if (c->n1 > c->window)
        hc_cli_usage_error("--n1 (%u) must not be greater than --window (%u)", c->n1, c->window);
    if (c->n2 >= c->window * (c->window - 1) / 2)
        hc_cli_usage_error("--n2 (%u) must be less than %u, the pairs in a full window of %u",
                           c->n2, c->window * (c->window - 1) / 2, c->window);
    if (rule != HC_RULE_SEED && !hc_detect_robust_fits(c))
        hc_cli_usage_error("--window %u is too small for the robust rule, which looks at %u"
                           " positions (%u after a move, %u before)", c->window,
                           c->robust_after + c->robust_before, c->robust_after,
                           c->robust_before);
    if (hc_detect_config_check(c) < 0)
        hc_cli_usage_error("--window %u, --n1 %u, --n2 %u do not make a detector", c->window,
                           c->n1, c->n2);
}

static void parse(struct opts *o, int argc, char **argv)
{
    enum { O_RULE = 256, O_THRS, O_THR, O_DEFAULT, O_WINDOW, O_N1, O_N2, O_HUBCAPD, O_SOCKET,
           O_FAILURES, O_JSON, O_BENCH };
    static const struct option lo[] = {
        { "rule", required_argument, 0, O_RULE }, { "thresholds", required_argument, 0, O_THRS },
        { "threshold", required_argument, 0, O_THR },
        { "default-threshold", required_argument, 0, O_DEFAULT },
        { "window", required_argument, 0, O_WINDOW }, { "n1", required_argument, 0, O_N1 },
        { "n2", required_argument, 0, O_N2 }, { "hubcapd", required_argument, 0, O_HUBCAPD },
        { "socket", required_argument, 0, O_SOCKET },
        { "failures", required_argument, 0, O_FAILURES }, { "json", no_argument, 0, O_JSON },
        { "bench", no_argument, 0, O_BENCH },
        { "quiet", no_argument, 0, 'q' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    int c, rule_given = 0, n2_given = 0;
    o->rule = RULE_BOTH;
    hc_detect_config_default(&o->det);
    if (!(o->thr = calloc((size_t)argc, sizeof(*o->thr)))) {
        fprintf(stderr, "%s: out of memory\n", hc_cli_prog);
        exit(1);
    }
    while ((c = getopt_long(argc, argv, "qh", lo, NULL)) != -1) {
        switch (c) {
        case O_RULE: o->rule = rule_arg(optarg); rule_given = 1; break;
        case O_THRS: o->thresholds = optarg; break;
        case O_THR: threshold_arg(optarg); o->thr[o->n_thr++] = optarg; break;
        case O_DEFAULT:
            o->default_m = hc_cli_double("--default-threshold", optarg, 0, HC_THRESHOLD_MAX_M);
            if (o->default_m <= 0)
                hc_cli_usage_error("--default-threshold wants meters greater than 0");
            break;
        case O_WINDOW:
            o->det.window = (unsigned)hc_cli_uint("--window", optarg, 2, HC_WINDOW_MAX);
            break;
        case O_N1: o->det.n1 = (unsigned)hc_cli_uint("--n1", optarg, 2, HC_WINDOW_MAX); break;
        case O_N2:
            o->det.n2 = (unsigned)hc_cli_uint("--n2", optarg, 0, HC_WINDOW_MAX * HC_WINDOW_MAX);
            n2_given = 1;
            break;
        case O_HUBCAPD: o->hubcapd = optarg; break;
        case O_SOCKET: o->socket = optarg; break;
        case O_FAILURES: o->failures = hc_cli_uint("--failures", optarg, 0, UINT32_MAX); break;
        case O_JSON: o->json = 1; break;
        case O_BENCH: o->bench = 1; break;
        case 'q': o->quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        default: fprintf(stderr, "Try '%s --help'.\n", hc_cli_prog); exit(2);
        }
    }
    if (argc - optind != 2)
        hc_cli_usage_error("want STREAM and TRUTH, got %d file name%s", argc - optind,
                           argc - optind == 1 ? "" : "s");
    o->stream = argv[optind];
    o->truth = argv[optind + 1];
    if (!n2_given)
        o->det.n2 = o->det.window - 1;
    if (o->default_m > 0)
        o->det.default_threshold_m = o->default_m;
    if (o->rule == HC_RULE_SEED)
        o->det.rule = HC_RULE_SEED;
    check_detect(&o->det, o->rule);
    if (o->socket && !o->hubcapd)
        hc_cli_usage_error("--socket only tells --hubcapd where the control socket is");
    if (o->hubcapd && (!rule_given || o->rule == RULE_BOTH))
        hc_cli_usage_error("--hubcapd replays one rule: give --rule seed or --rule robust");
    o->tty = isatty(STDERR_FILENO) && !o->quiet;
}

/* ---- messages and progress ------------------------------------------------ */

static void progress_clear(struct eval *e)
{
    if (e->progress_len) {
        fprintf(stderr, "\r%*s\r", e->progress_len, "");
        e->progress_len = 0;
    }
}

/* At most ten times a second, on a terminal only. */
static void __attribute__((format(printf, 2, 3))) progress(struct eval *e, const char *fmt, ...)
{
    uint64_t now = hc_time_mono_ns();
    if (!e->o.tty || now - e->t_shown < 100000000u)
        return;
    e->t_shown = now;
    va_list ap;
    va_start(ap, fmt);
    fputs("\r  ", stderr);
    int n = vfprintf(stderr, fmt, ap) + 5;
    va_end(ap);
    fputs("   ", stderr);
    if (n > e->progress_len)
        e->progress_len = n;
}

/* Say what went wrong and what to do, and end the run with status. */
static void __attribute__((noreturn, format(printf, 3, 4)))
quit(struct eval *e, int status, const char *fmt, ...)
{
    va_list ap;
    progress_clear(e);
    fprintf(stderr, "%s: ", hc_cli_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(status);
}

static void *grow(struct eval *e, void *p, size_t *cap, size_t size)
{
    size_t n = *cap ? *cap * 2 : 1024;
    void *q = realloc(p, n * size);
    if (!q)
        quit(e, 1, "out of memory");
    *cap = n;
    return q;
}

/* A vehicle's id, NUL-terminated, for messages. */
static const char *vid_text(const struct eval *e, uint32_t v, char buf[HC_VID_MAX + 1])
{
    const struct hc_vrec *r = hc_vtable_rec(&e->ids, v);
    memcpy(buf, hc_vtable_vid(&e->ids, r), r->vid_len);
    buf[r->vid_len] = '\0';
    return buf;
}

/* ---- makers and thresholds ------------------------------------------------- */

static const char *maker_name(const struct eval *e, uint32_t maker)
{
    return hc_detector_maker_at(&e->names, maker)->name;
}

static double threshold_of(const struct eval *e, uint32_t maker)
{
    return hc_detector_maker_at(&e->names, maker)->threshold_m;
}

static uint32_t maker_index(struct eval *e, const char *name, size_t len)
{
    int m = hc_detector_maker(&e->names, name, len);
    if (m < 0)
        quit(e, 1, "more than %d makers: hubcap's detector tracks no more", HC_MAKERS_MAX);
    return (uint32_t)m;
}

static void set_threshold(struct eval *e, const char *name, size_t len, double m, int src)
{
    int i = hc_detector_set_threshold(&e->names, name, len, m);
    if (i < 0)
        quit(e, 1, "%s: threshold %g m of maker '%.*s': %s", src == SRC_FILE ? e->o.thresholds
             : "--threshold", m, (int)len, name, hc_strerror(i));
    e->src[i] = (uint8_t)src;
}

/* The thresholds file (hubcap-calibrate --json), then --threshold options. */
static void load_thresholds(struct eval *e)
{
    const char *path = e->o.thresholds;
    if (path) {
        json_error_t err;
        json_t *j = json_load_file(path, 0, &err), *m;
        if (!j)
            quit(e, 1, "%s:%d: %s (--thresholds wants what hubcap-calibrate --json prints)",
                 path, err.line, err.text);
        json_t *makers = json_object_get(j, "makers");
        if (!json_is_array(makers))
            quit(e, 1, "%s: no \"makers\" array: --thresholds wants what hubcap-calibrate"
                 " --json prints", path);
        size_t i;
        json_array_foreach(makers, i, m) {
            json_t *name = json_object_get(m, "maker"), *t = json_object_get(m, "threshold_m");
            if (!json_is_string(name) || !json_is_number(t))
                quit(e, 1, "%s: makers[%zu] has no \"maker\" string and \"threshold_m\" number",
                     path, i);
            size_t len = json_string_length(name);
            if (len > 0 && json_number_value(t) > 0)    /* 0: calibration found no pair */
                set_threshold(e, json_string_value(name), len, json_number_value(t), SRC_FILE);
        }
        json_decref(j);
    }
    for (int i = 0; i < e->o.n_thr; i++) {
        const char *s = e->o.thr[i], *eq = strrchr(s, '=');
        set_threshold(e, s, (size_t)(eq - s), strtod(eq + 1, NULL), SRC_OPTION);
    }
}

/* Every maker scored or replayed needs a threshold, unless a default is
 * given: hubcap's silent 100 m would make the figures meaningless. */
static void check_thresholds(struct eval *e)
{
    char missing[512] = "";
    size_t len = 0;
    unsigned n = 0;
    if (e->o.default_m > 0)
        return;
    for (unsigned i = 1; i < e->names.n_makers; i++) {
        const struct hc_maker *m = hc_detector_maker_at(&e->names, i);
        if (!e->used[i] || m->own)
            continue;
        if (n++ < 8 && len < sizeof(missing) - 40)
            len += (size_t)snprintf(missing + len, sizeof(missing) - len, "%s%s", n > 1 ? ", " : "",
                                    m->name);
    }
    if (n)
        quit(e, 1, "no threshold for %u maker%s (%s%s): give --thresholds FILE (what"
             " hubcap-calibrate --json prints), --threshold MAKER=METERS, or"
             " --default-threshold METERS", n, n == 1 ? "" : "s", missing, n > 8 ? ", ..." : "");
    if (e->makerless)
        quit(e, 1, "%s: %llu reports name no maker: give --default-threshold METERS for them",
             e->o.stream, (unsigned long long)e->makerless);
    if (e->used[0])
        quit(e, 1, "%s: sessions with an empty maker: give --default-threshold METERS for them",
             e->o.truth);
}

/* ---- the stream ------------------------------------------------------------- */

static void no_state(void *ctx, struct hc_vehicle *v)
{
    (void)ctx;
    (void)v;
}

static uint32_t vid_index(struct eval *e, const char *vid, size_t len)
{
    bool created;
    int64_t i = hc_vtable_upsert(&e->ids, vid, len, hc_hash(vid, len), no_state, NULL, &created);
    if (i < 0)
        quit(e, 1, "out of memory");
    return (uint32_t)i;
}

static void add_report(struct eval *e, const struct hc_report *r)
{
    if (e->n_rep == e->cap_rep) {
        size_t cap = e->cap_rep;
        e->rep = grow(e, e->rep, &cap, sizeof(*e->rep));
        e->rvid = grow(e, e->rvid, &e->cap_rep, sizeof(*e->rvid));
    }
    e->rep[e->n_rep] = *r;
    e->rvid[e->n_rep] = vid_index(e, r->vid, r->vid_len);
    if (r->maker_len)
        e->used[maker_index(e, r->maker, r->maker_len)] |= USED_STREAM;
    else
        e->makerless++;
    e->n_rep++;
}

/* Decode every frame into memory; a damaged frame ends the run. */
static void read_stream(struct eval *e)
{
    const char *path = e->o.stream;
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f || fstat(fileno(f), &st) < 0)
        quit(e, 1, "%s: %s", path, strerror(errno));
    uint64_t total = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    struct hc_wire w;
    struct hc_report r;
    unsigned char hdr[4], *buf = NULL;
    size_t cap = 0;
    hc_wire_init(&w);
    for (;;) {
        size_t got = fread(hdr, 1, 4, f);
        if (got == 0 && !ferror(f))
            break;
        if (got < 4)
            quit(e, 1, "%s: byte %llu: truncated stream: %zu of a frame header's 4 bytes", path,
                 (unsigned long long)e->bytes, got);
        uint32_t len = hc_wire_frame_length(hdr);
        if (len > FRAME_MAX)
            quit(e, 1, "%s: byte %llu: a frame of %u bytes, over the %u MiB this tool reads:"
                 " not a hubcap stream, or damaged", path, (unsigned long long)e->bytes, len,
                 FRAME_MAX >> 20);
        if (len > cap) {
            free(buf);
            cap = len;
            if (!(buf = malloc(cap)))
                quit(e, 1, "out of memory");
        }
        if ((got = fread(buf, 1, len, f)) < len)
            quit(e, 1, "%s: byte %llu: truncated stream: a frame of %u bytes, %zu of them there",
                 path, (unsigned long long)e->bytes, len, got);
        int rc = hc_wire_open(&w, buf, len);
        if (rc < 0)
            quit(e, 1, "%s: byte %llu: a frame of %u bytes that is not a payload of reports: %s",
                 path, (unsigned long long)e->bytes, len, hc_strerror(rc));
        while ((rc = hc_wire_next(&w, &r)) != 0)
            if (rc > 0)
                add_report(e, &r);
            else
                e->decode_rejected++;
        e->frames++;
        e->bytes += 4 + (uint64_t)len;
        if ((e->frames & 1023) == 0)
            progress(e, "reading %s: %.1f %%", path, total ? 100.0 * e->bytes / total : 0.0);
    }
    if (ferror(f))
        quit(e, 1, "%s: cannot read: %s", path, strerror(errno));
    fclose(f);
    free(buf);
    hc_wire_free(&w);
    e->stream_vehicles = e->ids.count;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Each vehicle's reports as ts << 1 | acc, sorted: counting a vehicle's
 * reports in a time range is then two binary searches. */
static void index_reports(struct eval *e)
{
    uint32_t nv = e->ids.count;
    if (!(e->rfirst = calloc((size_t)nv + 1, sizeof(*e->rfirst))) ||
        !(e->rkey = malloc((e->n_rep + 1) * sizeof(*e->rkey))))
        quit(e, 1, "out of memory");
    for (size_t i = 0; i < e->n_rep; i++)
        e->rfirst[e->rvid[i] + 1]++;
    for (uint32_t v = 0; v < nv; v++)
        e->rfirst[v + 1] += e->rfirst[v];
    uint32_t *at = malloc(((size_t)nv + 1) * sizeof(*at));
    if (!at)
        quit(e, 1, "out of memory");
    memcpy(at, e->rfirst, ((size_t)nv + 1) * sizeof(*at));
    for (size_t i = 0; i < e->n_rep; i++)
        e->rkey[at[e->rvid[i]]++] = e->rep[i].ts << 1 | e->rep[i].acc;
    free(at);
    for (uint32_t v = 0; v < nv; v++) {
        int64_t *k = e->rkey + e->rfirst[v];
        size_t n = e->rfirst[v + 1] - e->rfirst[v], i = 1;
        while (i < n && k[i - 1] <= k[i])
            i++;
        if (i < n)
            qsort(k, n, sizeof(*k), cmp_i64);
    }
}

/* Position of the first key >= key in vehicle v's reports. */
static size_t key_bound(const struct eval *e, uint32_t v, int64_t key)
{
    size_t lo = e->rfirst[v], hi = e->rfirst[v + 1];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e->rkey[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Vehicle v's reports with from <= ts <= to (parked ones only if asked). */
static uint64_t reports_between(const struct eval *e, uint32_t v, int64_t from, int64_t to,
                                int parked_only)
{
    size_t a = key_bound(e, v, from << 1), b = key_bound(e, v, (to << 1) + 2);
    if (!parked_only)
        return b > a ? b - a : 0;
    uint64_t n = 0;
    for (size_t i = a; i < b; i++)
        n += (e->rkey[i] & 1) == 0;
    return n;
}

/* ---- the truth -------------------------------------------------------------- */

static int64_t truth_int(struct eval *e, uint64_t line, int field, const char *s, int64_t max)
{
    static const char *const name[N_FIELDS] = { "vid", "maker", "night", "start_ms", "end_ms",
        "fixes", "tow_m", "tow_ms", "moved_ms", "after_fixes", "multipath_fixes" };
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || errno || v > max)
        quit(e, 1, "%s:%llu: %s wants a whole number from 0 to %lld, not '%s'", e->o.truth,
             (unsigned long long)line, name[field], (long long)max, s);
    return v;
}

/* Split at commas in place: N_FIELDS fields, or quit. */
static void truth_split(struct eval *e, uint64_t line, char *p, char **f)
{
    int n = 0;
    for (;;) {
        if (n == N_FIELDS)
            quit(e, 1, "%s:%llu: more than %d fields (quoted fields are not read; a comma"
                 " cannot be part of a vid or maker)", e->o.truth, (unsigned long long)line,
                 N_FIELDS);
        f[n++] = p;
        p = strchr(p, ',');
        if (!p)
            break;
        *p++ = '\0';
    }
    if (n < N_FIELDS)
        quit(e, 1, "%s:%llu: %d field%s, want %d (%s)", e->o.truth, (unsigned long long)line, n,
             n == 1 ? "" : "s", N_FIELDS, truth_header);
}

/* What is inconsistent in s, or NULL. */
static const char *session_wrong(const struct session *s)
{
    if (s->end < s->start)
        return "end_ms is before start_ms";
    if (s->after > s->fixes || s->multipath > s->fixes)
        return "after_fixes and multipath_fixes cannot exceed fixes";
    if (s->tow_m == 0)
        return s->tow_ms || s->moved || s->after
               ? "a session without a tow (tow_m 0) has tow_ms, moved_ms and after_fixes 0"
               : NULL;
    if ((s->moved == 0) != (s->after == 0))
        return "moved_ms is 0 (no fix at the new spot) exactly when after_fixes is 0";
    if (s->tow_ms < s->start)
        return "tow_ms (the moment of the tow) is before start_ms";
    if (s->moved && (s->moved < s->tow_ms || s->moved > s->end))
        return "moved_ms must lie between tow_ms and end_ms";
    return NULL;
}

static void truth_line(struct eval *e, uint64_t line, char *text)
{
    char *f[N_FIELDS], *end;
    truth_split(e, line, text, f);
    size_t vlen = strlen(f[F_VID]), mlen = strlen(f[F_MAKER]);
    if (vlen == 0 || vlen > HC_VID_MAX || mlen > HC_MAKER_MAX)
        quit(e, 1, "%s:%llu: a vid of 1 to %d bytes and a maker of at most %d, please",
             e->o.truth, (unsigned long long)line, HC_VID_MAX, HC_MAKER_MAX);
    if (e->n_sess == e->cap_sess)
        e->sess = grow(e, e->sess, &e->cap_sess, sizeof(*e->sess));
    struct session *s = &e->sess[e->n_sess];
    memset(s, 0, sizeof(*s));
    s->line = line;
    s->night = (uint32_t)truth_int(e, line, F_NIGHT, f[F_NIGHT], UINT32_MAX);
    s->start = truth_int(e, line, F_START, f[F_START], HC_TS_MAX);
    s->end = truth_int(e, line, F_END, f[F_END], HC_TS_MAX);
    s->fixes = (uint32_t)truth_int(e, line, F_FIXES, f[F_FIXES], UINT32_MAX);
    s->tow_ms = truth_int(e, line, F_TOW_MS, f[F_TOW_MS], HC_TS_MAX);
    s->moved = truth_int(e, line, F_MOVED, f[F_MOVED], HC_TS_MAX);
    s->after = (uint32_t)truth_int(e, line, F_AFTER, f[F_AFTER], UINT32_MAX);
    s->multipath = (uint32_t)truth_int(e, line, F_MULTI, f[F_MULTI], UINT32_MAX);
    errno = 0;
    s->tow_m = strtod(f[F_TOW_M], &end);
    if (!*f[F_TOW_M] || *end || errno || !isfinite(s->tow_m) || s->tow_m < 0)
        quit(e, 1, "%s:%llu: tow_m wants meters, 0 or more, not '%s'", e->o.truth,
             (unsigned long long)line, f[F_TOW_M]);
    const char *why = session_wrong(s);
    if (why)
        quit(e, 1, "%s:%llu: %s", e->o.truth, (unsigned long long)line, why);
    s->vid = vid_index(e, f[F_VID], vlen);
    s->maker = maker_index(e, f[F_MAKER], mlen);
    e->used[s->maker] |= USED_TRUTH;
    e->n_sess++;
}

static void read_truth(struct eval *e)
{
    const char *path = e->o.truth;
    FILE *f = fopen(path, "r");
    if (!f)
        quit(e, 1, "%s: %s", path, strerror(errno));
    char *text = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t line = 0;
    int header = 0;
    while ((n = getline(&text, &cap, f)) >= 0) {
        line++;
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
            text[--n] = '\0';
        if (n == 0 || text[0] == '#')
            continue;
        if (!header && strcmp(text, truth_header))
            quit(e, 1, "%s:%llu: want the header '%s' (after '#' comments), not '%.100s'", path,
                 (unsigned long long)line, truth_header, text);
        if (header++)
            truth_line(e, line, text);
    }
    if (ferror(f))
        quit(e, 1, "%s: cannot read: %s", path, strerror(errno));
    if (!header)
        quit(e, 1, "%s: no header line '%s'", path, truth_header);
    free(text);
    fclose(f);
}

struct skey {
    uint32_t vid, idx;
    int64_t start;
};

static int cmp_skey(const void *a, const void *b)
{
    const struct skey *x = a, *y = b;
    if (x->vid != y->vid)
        return x->vid < y->vid ? -1 : 1;
    return (x->start > y->start) - (x->start < y->start);
}

/* Sessions by vehicle and start, each vehicle's range, and no overlaps. */
static void index_sessions(struct eval *e)
{
    uint32_t nv = e->ids.count;
    struct skey *k = malloc((e->n_sess + 1) * sizeof(*k));
    e->by_vid = malloc((e->n_sess + 1) * sizeof(*e->by_vid));
    e->sfirst = calloc((size_t)nv + 1, sizeof(*e->sfirst));
    if (!k || !e->by_vid || !e->sfirst)
        quit(e, 1, "out of memory");
    for (size_t i = 0; i < e->n_sess; i++)
        k[i] = (struct skey){ e->sess[i].vid, (uint32_t)i, e->sess[i].start };
    qsort(k, e->n_sess, sizeof(*k), cmp_skey);
    for (size_t i = 0; i < e->n_sess; i++) {
        e->by_vid[i] = k[i].idx;
        e->sfirst[k[i].vid + 1]++;
        const struct session *s = &e->sess[k[i].idx], *p = i ? &e->sess[k[i - 1].idx] : NULL;
        if (p && p->vid == s->vid && s->start <= p->end)
            quit(e, 1, "%s:%llu: this session of its vid overlaps the one on line %llu",
                 e->o.truth, (unsigned long long)s->line, (unsigned long long)p->line);
    }
    for (uint32_t v = 0; v < nv; v++)
        e->sfirst[v + 1] += e->sfirst[v];
    free(k);
}

/* The session of vehicle v that holds ts, or -1. */
static int64_t session_at(const struct eval *e, uint32_t v, int64_t ts)
{
    size_t lo = e->sfirst[v], hi = e->sfirst[v + 1];
    while (lo < hi) {               /* the last session starting at or before ts */
        size_t mid = lo + (hi - lo) / 2;
        if (e->sess[e->by_vid[mid]].start <= ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == e->sfirst[v] || e->sess[e->by_vid[lo - 1]].end < ts)
        return -1;
    return e->by_vid[lo - 1];
}

/* ---- replay and scoring ------------------------------------------------------ */

static void add_alarm(struct eval *e, struct result *res, uint32_t vid, int64_t ts)
{
    if (res->n_al == res->cap_al)
        res->al = grow(e, res->al, &res->cap_al, sizeof(*res->al));
    res->al[res->n_al++] = (struct alarm){ .vid = vid, .ts = ts };
}

static void vehicle_init(void *ctx, struct hc_vehicle *v)
{
    hc_vehicle_init(ctx, v);
}

/* A fresh detector with res->rule for every maker and each maker's
 * threshold, a fresh vehicle table, and the stream from memory. */
static void replay(struct eval *e, struct result *res)
{
    struct hc_detect_config cfg = e->o.det;
    struct hc_detector d;
    struct hc_vtable vt;
    struct hc_alarm alarm;
    cfg.rule = res->rule;
    if (hc_detector_init(&d, &cfg) < 0 || hc_vtable_init(&vt, hc_vehicle_size(&d),
                                                         e->stream_vehicles) < 0)
        quit(e, 1, "out of memory");
    for (unsigned i = 1; i < e->names.n_makers; i++) {
        const struct hc_maker *m = hc_detector_maker_at(&e->names, i);
        if (m->own && hc_detector_set_threshold(&d, m->name, m->len, m->threshold_m) < 0)
            quit(e, 1, "out of memory");
    }
    uint64_t ns = 0;
    for (size_t at = 0; at < e->n_rep; at += CHUNK) {
        size_t end = e->n_rep - at > CHUNK ? at + CHUNK : e->n_rep;
        uint64_t t = hc_time_mono_ns();
        for (size_t i = at; i < end; i++) {
            const struct hc_report *r = &e->rep[i];
            bool created;
            int64_t k = hc_vtable_upsert(&vt, r->vid, r->vid_len, hc_hash(r->vid, r->vid_len),
                                         vehicle_init, &d, &created);
            if (k < 0)
                quit(e, 1, "out of memory");
            int rc = hc_detect_step(&d, hc_vrec_vehicle(hc_vtable_rec(&vt, (uint32_t)k)), r,
                                    &alarm);
            if (rc == HC_DETECT_ALARM)
                add_alarm(e, res, e->rvid[i], r->ts);
            else if (rc == HC_ESTALE)
                res->stale++;
            else if (rc < 0)
                res->rejected++;
        }
        ns += hc_time_mono_ns() - t;
        progress(e, "replaying %s: %.1f %%", hc_rule_name(res->rule), 100.0 * end / e->n_rep);
    }
    res->ns_per_report = e->n_rep ? (double)ns / (double)e->n_rep : 0;
    hc_vtable_free(&vt);
    hc_detector_free(&d);
}

static int cmp_alarm_session(const void *a, const void *b)
{
    const struct alarm *x = a, *y = b;
    if (x->session != y->session)
        return x->session < y->session ? -1 : 1;
    return (x->ts > y->ts) - (x->ts < y->ts);
}

/* moved_ms, or "never" for a tow with no fix at the new spot. */
static int64_t moved_at(const struct session *s)
{
    return s->moved ? s->moved : INT64_MAX;
}

/* Give each alarm its session and decide whether it is false. */
static void attribute(struct eval *e, struct result *res)
{
    char vid[HC_VID_MAX + 1], t[HC_TIME_LEN];
    size_t ns = e->n_sess;
    if (!(res->hit = malloc((ns + 1) * sizeof(int64_t))) ||
        !(res->first_false = malloc((ns + 1) * sizeof(int64_t))))
        quit(e, 1, "out of memory");
    memset(res->hit, 0xff, (ns + 1) * sizeof(int64_t));
    memset(res->first_false, 0xff, (ns + 1) * sizeof(int64_t));
    for (size_t i = 0; i < res->n_al; i++) {
        struct alarm *a = &res->al[i];
        int64_t s = session_at(e, a->vid, a->ts);
        if (s < 0)
            quit(e, 1, "%s's %s alarm for %s at %s (ts %lld) lies in no session of %s: the"
                 " truth does not describe this stream%s", res->engine, hc_rule_name(res->rule),
                 vid_text(e, a->vid, vid), hc_time_format(a->ts, 1, t), (long long)a->ts,
                 e->o.truth, res->ns_per_report < 0 ? " (or hubcapd was not fresh)" : "");
        a->session = (uint32_t)s;
    }
    qsort(res->al, res->n_al, sizeof(*res->al), cmp_alarm_session);
    for (size_t i = 0; i < res->n_al; i++) {
        struct alarm *a = &res->al[i];
        const struct session *s = &e->sess[a->session];
        a->is_false = s->tow_m == 0 || a->ts < moved_at(s);
        if (a->is_false && res->first_false[a->session] < 0)
            res->first_false[a->session] = a->ts;
        else if (!a->is_false && res->hit[a->session] < 0)
            res->hit[a->session] = a->ts;
    }
}

/* The nearest-rank percentile (p in percent) of n sorted values. */
static uint64_t nearest_rank(const uint64_t *v, size_t n, unsigned p)
{
    size_t rank = (n * p + 99) / 100;
    return v[rank ? rank - 1 : 0];
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void delays_into(struct figures *f, uint64_t *d, size_t n)
{
    qsort(d, n, sizeof(*d), cmp_u64);
    f->delays = n;
    if (n) {
        f->delay_med = nearest_rank(d, n, 50);
        f->delay_p95 = nearest_rank(d, n, 95);
    }
}


/* The figures of every maker and of all of them, from the attributed alarms. */
static void tally(struct eval *e, struct result *res)
{
    unsigned nm = e->names.n_makers;
    uint64_t *delay = malloc((e->n_sess + 1) * sizeof(*delay));
    uint64_t *pick = malloc((e->n_sess + 1) * sizeof(*pick));
    if (!(res->fig = calloc(nm + 1, sizeof(*res->fig))) || !delay || !pick)
        quit(e, 1, "out of memory");
    struct figures *all = &res->fig[nm];
    for (size_t i = 0; i < res->n_al; i++)
        if (res->al[i].is_false) {
            res->fig[e->sess[res->al[i].session].maker].false_alarms++;
            all->false_alarms++;
        }
    for (size_t i = 0; i < e->n_sess; i++) {
        const struct session *s = &e->sess[i];
        int towed = s->tow_m > 0, big = towed && s->tow_m >= 2 * threshold_of(e, s->maker);
        int masked = towed && res->first_false[i] >= 0;
        int hit = towed && !masked && res->hit[i] >= 0;
        struct figures *f[2] = { &res->fig[s->maker], all };
        for (int k = 0; k < 2; k++) {
            f[k]->sessions++;
            f[k]->tows += (uint64_t)towed;
            f[k]->tows2x += (uint64_t)big;
            f[k]->masked += (uint64_t)masked;
            f[k]->detected += (uint64_t)hit;
            f[k]->detected2x += (uint64_t)(hit && big);
        }
        delay[i] = hit ? reports_between(e, s->vid, s->moved, res->hit[i], 0) : UINT64_MAX;
    }
    for (unsigned m = 0; m <= nm; m++) {
        size_t n = 0;
        if (m < nm && res->fig[m].sessions == 0)
            continue;
        for (size_t i = 0; i < e->n_sess; i++)
            if (delay[i] != UINT64_MAX && (m == nm || e->sess[i].maker == m))
                pick[n++] = delay[i];
        delays_into(&res->fig[m], pick, n);
    }
    free(delay);
    free(pick);
}

/* ---- failures -------------------------------------------------------------------- */

/* The time from the last fix before the new spot to the first at it, and
 * whether that is a gap in the reporting: more than twice the median
 * interval between the session's parked fixes.  -1 when it cannot be
 * told (no fix at the new spot or before it, or too few fixes). */
static int tow_gap(const struct eval *e, const struct session *s, int64_t *gap)
{
    size_t a = key_bound(e, s->vid, s->start << 1), b = key_bound(e, s->vid, (s->end << 1) + 2);
    int64_t prev = -1, *iv = malloc((b - a + 1) * sizeof(*iv));
    size_t n = 0;
    int in_gap = -1;
    if (!iv)
        return -1;
    for (size_t i = a; i < b; i++) {
        int64_t ts = e->rkey[i] >> 1;
        if (e->rkey[i] & 1)
            continue;
        if (prev >= 0)
            iv[n++] = ts - prev;
        if (ts < s->moved)
            *gap = s->moved - ts;
        prev = ts;
    }
    if (s->moved && *gap >= 0 && n >= 2) {
        qsort(iv, n, sizeof(*iv), cmp_i64);
        in_gap = *gap > 2 * iv[(n - 1) / 2];
    }
    free(iv);
    return in_gap;
}

static json_t *missed_json(const struct eval *e, const struct result *res, size_t i)
{
    char vid[HC_VID_MAX + 1], t[HC_TIME_LEN];
    const struct session *s = &e->sess[i];
    int64_t gap = -1;
    int in_gap = tow_gap(e, s, &gap);
    json_t *j = json_pack("{s:o, s:I, s:I, s:f, s:f, s:I, s:I, s:o, s:o, s:I}",
                          "vid", hc_json_vid(vid_text(e, s->vid, vid)), "line", (json_int_t)s->line,
                          "night", (json_int_t)s->night, "tow_m", s->tow_m,
                          "threshold_m", threshold_of(e, s->maker),
                          "fixes_before", (json_int_t)(s->fixes - s->after),
                          "fixes_after", (json_int_t)s->after,
                          "gap_ms", gap >= 0 ? json_integer(gap) : json_null(),
                          "in_gap", in_gap < 0 ? json_null() : json_boolean(in_gap),
                          "seen_at_new_spot", (json_int_t)(s->moved ? reports_between(
                              e, s->vid, s->moved, s->end, 0) : 0));
    int64_t f = res->first_false[i];
    json_object_set_new(j, "masked_by", f < 0 ? json_null()
                                              : json_string(hc_time_format(f, 1, t)));
    return j;
}

static json_t *false_json(const struct eval *e, const struct alarm *a)
{
    char vid[HC_VID_MAX + 1], t[HC_TIME_LEN];
    const struct session *s = &e->sess[a->session];
    return json_pack("{s:o, s:I, s:I, s:I, s:s, s:I, s:I, s:b}", "vid",
                     hc_json_vid(vid_text(e, s->vid, vid)), "line", (json_int_t)s->line,
                     "night", (json_int_t)s->night, "alarm_ts", (json_int_t)a->ts,
                     "alarm_time", hc_time_format(a->ts, 1, t),
                     "multipath_fixes", (json_int_t)s->multipath,
                     "fixes_so_far", (json_int_t)reports_between(e, s->vid, s->start, a->ts, 1),
                     "towed", s->tow_m > 0);
}

/* Up to --failures missed tows and false alarms, in the truth's order. */
static json_t *failures_json(const struct eval *e, const struct result *res)
{
    json_t *missed = json_array(), *false_alarms = json_array();
    uint64_t n_missed = 0, n_false = 0;
    for (size_t i = 0; i < e->n_sess; i++)
        if (e->sess[i].tow_m > 0 && (res->first_false[i] >= 0 || res->hit[i] < 0) &&
            n_missed++ < e->o.failures)
            json_array_append_new(missed, missed_json(e, res, i));
    for (size_t i = 0; i < res->n_al; i++)
        if (res->al[i].is_false && n_false++ < e->o.failures)
            json_array_append_new(false_alarms, false_json(e, &res->al[i]));
    return json_pack("{s:I, s:o, s:I, s:o}", "missed_total", (json_int_t)n_missed,
                     "missed", missed, "false_alarms_total", (json_int_t)n_false,
                     "false_alarms", false_alarms);
}

/* ---- output ---------------------------------------------------------------------- */

enum cell { C_COUNT, C_RATIO, C_PER10K, C_DELAY };

/* The figures, in the order the table and the JSON show them. */
static const struct row {
    const char *label, *key;
    enum cell kind;
    size_t a, b;
} rows[] = {
#define OFF(f) offsetof(struct figures, f)
    { "sessions (vehicle-nights)", "sessions", C_COUNT, OFF(sessions), 0 },
    { "tows", "tows", C_COUNT, OFF(tows), 0 },
    { "detected", "detected", C_COUNT, OFF(detected), 0 },
    { "recall", "recall", C_RATIO, OFF(detected), OFF(tows) },
    { "tows >= 2x threshold", "tows_2x", C_COUNT, OFF(tows2x), 0 },
    { "detected among them", "detected_2x", C_COUNT, OFF(detected2x), 0 },
    { "recall_2x", "recall_2x", C_RATIO, OFF(detected2x), OFF(tows2x) },
    { "missed, masked", "masked", C_COUNT, OFF(masked), 0 },
    { "false alarms", "false_alarms", C_COUNT, OFF(false_alarms), 0 },
    { "false alarms per 10k", "false_alarms_per_10k", C_PER10K, OFF(false_alarms), OFF(sessions) },
    { "delay median (reports)", "delay_median", C_DELAY, OFF(delay_med), 0 },
    { "delay p95 (reports)", "delay_p95", C_DELAY, OFF(delay_p95), 0 },
#undef OFF
};

static uint64_t field(const struct figures *f, size_t off)
{
    return *(const uint64_t *)(const void *)((const char *)f + off);
}

/* A figure's value; NAN when it has none (no tows, sessions or delays). */
static double cell_value(const struct row *r, const struct figures *f)
{
    uint64_t a = field(f, r->a), b = r->kind == C_RATIO || r->kind == C_PER10K ? field(f, r->b) : 1;
    switch (r->kind) {
    case C_COUNT: return (double)a;
    case C_RATIO: return b ? (double)a / (double)b : NAN;
    case C_PER10K: return b ? (double)a * 10000.0 / (double)b : NAN;
    case C_DELAY: return f->delays ? (double)a : NAN;
    }
    return NAN;
}

static json_t *figures_json(const struct figures *f)
{
    json_t *j = json_object();
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        double v = cell_value(&rows[i], f);
        json_object_set_new(j, rows[i].key, isnan(v) ? json_null()
                            : rows[i].kind == C_RATIO || rows[i].kind == C_PER10K
                                ? json_real(v) : json_integer((json_int_t)v));
    }
    return j;
}

/* Makers with sessions in the truth, by name. */
static unsigned scored_makers(const struct eval *e, uint32_t *out)
{
    unsigned n = 0;
    for (unsigned i = 0; i < e->names.n_makers; i++)
        if (e->used[i] & USED_TRUTH) {
            unsigned k = n++;
            const char *name = maker_name(e, i);
            while (k > 0 && strcmp(maker_name(e, out[k - 1]), name) > 0) {
                out[k] = out[k - 1];
                k--;
            }
            out[k] = i;
        }
    return n;
}

static json_t *result_json(const struct eval *e, const struct result *res, const uint32_t *mk,
                           unsigned n_mk)
{
    json_t *makers = json_array();
    for (unsigned k = 0; k < n_mk; k++) {
        json_t *m = figures_json(&res->fig[mk[k]]);
        json_object_set_new(m, "maker", hc_json_maker(maker_name(e, mk[k])));
        json_object_set_new(m, "threshold_m", json_real(threshold_of(e, mk[k])));
        json_array_append_new(makers, m);
    }
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:o}", "engine", res->engine,
                          "rule", hc_rule_name(res->rule), "alarms", (json_int_t)res->n_al,
                          "stale", (json_int_t)res->stale, "rejected", (json_int_t)res->rejected,
                          "overall", figures_json(&res->fig[e->names.n_makers]),
                          "makers", makers);
    if (res->ns_per_report >= 0)
        json_object_set_new(j, "ns_per_report", json_real(res->ns_per_report));
    if (e->o.failures)
        json_object_set_new(j, "failures", failures_json(e, res));
    return j;
}

static json_t *summary_json(const struct eval *e, const uint32_t *mk, unsigned n_mk)
{
    json_t *thr = json_array(), *runs = json_array();
    for (unsigned i = 1; i < e->names.n_makers; i++)
        if (e->used[i])
            json_array_append_new(thr, json_pack("{s:o, s:f, s:s}", "maker",
                                                 hc_json_maker(maker_name(e, i)), "threshold_m",
                                                 threshold_of(e, i), "source",
                                                 src_name[e->src[i]]));
    for (int i = 0; i < e->n_res; i++)
        json_array_append_new(runs, result_json(e, &e->res[i], mk, n_mk));
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:i, s:i, s:i, s:o, s:o,"
                          " s:o, s:o}",
                          "stream", e->o.stream, "truth", e->o.truth,
                          "frames", (json_int_t)e->frames, "reports", (json_int_t)e->n_rep,
                          "rejected_reports", (json_int_t)e->decode_rejected,
                          "vehicles", (json_int_t)e->stream_vehicles,
                          "sessions", (json_int_t)e->n_sess,
                          "rule", e->o.rule == RULE_BOTH ? "both" : hc_rule_name(e->o.rule),
                          "window", (int)e->o.det.window, "n1", (int)e->o.det.n1,
                          "n2", (int)e->o.det.n2,
                          "thresholds_file", e->o.thresholds ? json_string(e->o.thresholds)
                                                              : json_null(),
                          "default_threshold_m", e->o.default_m > 0 ? json_real(e->o.default_m)
                                                                    : json_null(),
                          "thresholds", thr, "runs", runs);
    if (e->daemon)
        json_object_set(j, "hubcapd", e->daemon);
    return j;
}

static void print_cell(const struct row *r, const struct figures *f)
{
    double v = cell_value(r, f);
    if (isnan(v))
        printf(" %16s", "-");
    else if (r->kind == C_RATIO)
        printf(" %14.2f %%", 100 * v);
    else if (r->kind == C_PER10K)
        printf(" %16.1f", v);
    else
        printf(" %16llu", (unsigned long long)v);
}

static void print_block(const struct eval *e, const char *title, unsigned m)
{
    printf("\n%s\n", title);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        printf("  %-26s", rows[i].label);
        for (int k = 0; k < e->n_res; k++)
            print_cell(&rows[i], &e->res[k].fig[m]);
        putchar('\n');
    }
}

static void print_failures(const struct eval *e, const struct result *res)
{
    json_t *f = failures_json(e, res), *x;
    size_t i;
    printf("\n%s %s: missed tows (%lld; up to %llu shown)\n", res->engine, hc_rule_name(res->rule),
           json_integer_value(json_object_get(f, "missed_total")),
           (unsigned long long)e->o.failures);
    printf("  %-20s %6s %10s %10s %6s %6s %12s %5s  %s\n", "vid", "night", "tow_m", "threshold",
           "before", "after", "gap", "seen", "masked by a false alarm at");
    json_array_foreach(json_object_get(f, "missed"), i, x) {
        json_t *gap = json_object_get(x, "gap_ms"), *in = json_object_get(x, "in_gap");
        char g[32] = "-";
        if (json_is_integer(gap))
            snprintf(g, sizeof(g), "%.0f s%s", (double)json_integer_value(gap) / 1000,
                     json_is_true(in) ? " gap" : "");
        const char *by = json_string_value(json_object_get(x, "masked_by"));
        printf("  %-20s %6lld %8.1f m %8.2f m %6lld %6lld %12s %5lld  %s\n",
               json_string_value(json_object_get(x, "vid")),
               json_integer_value(json_object_get(x, "night")),
               json_real_value(json_object_get(x, "tow_m")),
               json_real_value(json_object_get(x, "threshold_m")),
               json_integer_value(json_object_get(x, "fixes_before")),
               json_integer_value(json_object_get(x, "fixes_after")), g,
               json_integer_value(json_object_get(x, "seen_at_new_spot")), by ? by : "-");
    }
    printf("\n%s %s: false alarms (%lld; up to %llu shown)\n", res->engine,
           hc_rule_name(res->rule), json_integer_value(json_object_get(f, "false_alarms_total")),
           (unsigned long long)e->o.failures);
    printf("  %-20s %6s %-24s %9s %12s %s\n", "vid", "night", "alarm", "multipath", "fixes so far",
           "towed later");
    json_array_foreach(json_object_get(f, "false_alarms"), i, x)
        printf("  %-20s %6lld %-24s %9lld %12lld %s\n",
               json_string_value(json_object_get(x, "vid")),
               json_integer_value(json_object_get(x, "night")),
               json_string_value(json_object_get(x, "alarm_time")),
               json_integer_value(json_object_get(x, "multipath_fixes")),
               json_integer_value(json_object_get(x, "fixes_so_far")),
               json_is_true(json_object_get(x, "towed")) ? "yes" : "no");
    json_decref(f);
}

/* The overall figures as BENCH lines, for the detection_quality benchmark:
 * each replay's, then the seed rule's against the robust rule's. */
static void print_bench(const struct eval *e)
{
    const struct result *seed = NULL, *robust = NULL;
    for (int k = 0; k < e->n_res; k++) {
        const struct result *r = &e->res[k];
        const struct figures *f = &r->fig[e->names.n_makers];
        char name[64];
        if (e->daemon && !strcmp(r->engine, "core"))
            continue;           /* a daemon run compares with the core below */
        snprintf(name, sizeof(name), "quality_%s_%s", r->engine, hc_rule_name(r->rule));
        printf("BENCH %s_recall %.2f %% (%llu of %llu tows)\n", name,
               f->tows ? 100.0 * (double)f->detected / (double)f->tows : 0.0,
               (unsigned long long)f->detected, (unsigned long long)f->tows);
        printf("BENCH %s_recall_2x %.2f %% (%llu of %llu tows >= 2x threshold)\n", name,
               f->tows2x ? 100.0 * (double)f->detected2x / (double)f->tows2x : 0.0,
               (unsigned long long)f->detected2x, (unsigned long long)f->tows2x);
        printf("BENCH %s_false_alarms %.1f per 10k vehicle-nights (%llu in %llu)\n", name,
               f->sessions ? 1e4 * (double)f->false_alarms / (double)f->sessions : 0.0,
               (unsigned long long)f->false_alarms, (unsigned long long)f->sessions);
        printf("BENCH %s_delay %llu reports median, %llu p95\n", name,
               (unsigned long long)f->delay_med, (unsigned long long)f->delay_p95);
        if (r->ns_per_report >= 0)
            printf("BENCH %s_cost %.1f ns/report\n", name, r->ns_per_report);
        if (!strcmp(r->engine, "core"))
            *(r->rule == HC_RULE_SEED ? &seed : &robust) = r;
    }
    if (e->daemon)
        printf("BENCH quality_hubcapd_same_alarms %s (hubcapd's alarms are exactly the"
               " core's)\n", json_is_true(json_object_get(e->daemon, "same_alarms")) ? "yes"
               : "no");
    if (!seed || !robust)
        return;
    const struct figures *s = &seed->fig[e->names.n_makers], *b = &robust->fig[e->names.n_makers];
    printf("BENCH quality_false_alarms_seed_over_robust %llu / %llu (seed rule / robust rule)\n",
           (unsigned long long)s->false_alarms, (unsigned long long)b->false_alarms);
    printf("BENCH quality_cost_robust_over_seed %.2f x (ns/report)\n",
           robust->ns_per_report / seed->ns_per_report);
}

static void print_table(const struct eval *e, const uint32_t *mk, unsigned n_mk)
{
    char title[128];
    printf("%s: %llu reports (%llu rejected) of %u vehicles in %llu frames\n%s: %zu sessions\n"
           "window %u, n1 %u, n2 %u; thresholds:", e->o.stream, (unsigned long long)e->n_rep,
           (unsigned long long)e->decode_rejected, e->stream_vehicles,
           (unsigned long long)e->frames, e->o.truth, e->n_sess, e->o.det.window, e->o.det.n1,
           e->o.det.n2);
    for (unsigned i = 1; i < e->names.n_makers; i++)
        if (e->used[i])
            printf(" %s %.2f m (%s)", maker_name(e, i),
                   threshold_of(e, i), src_name[e->src[i]]);
    printf("\n\n  %-26s", "");
    for (int k = 0; k < e->n_res; k++) {
        snprintf(title, sizeof(title), "%s %s", e->res[k].engine, hc_rule_name(e->res[k].rule));
        printf(" %16s", title);
    }
    print_block(e, "all makers", e->names.n_makers);
    for (unsigned k = 0; k < n_mk; k++) {
        snprintf(title, sizeof(title), "%s (threshold %.2f m)",
                 maker_name(e, mk[k]), threshold_of(e, mk[k]));
        print_block(e, title, mk[k]);
    }
    printf("\n  %-26s", "alarms");
    for (int k = 0; k < e->n_res; k++)
        printf(" %16zu", e->res[k].n_al);
    printf("\n  %-26s", "stale / rejected reports");
    for (int k = 0; k < e->n_res; k++) {
        snprintf(title, sizeof(title), "%llu / %llu", (unsigned long long)e->res[k].stale,
                 (unsigned long long)e->res[k].rejected);
        printf(" %16s", title);
    }
    printf("\n  %-26s", "ns/report");
    for (int k = 0; k < e->n_res; k++)
        if (e->res[k].ns_per_report >= 0)
            printf(" %16.1f", e->res[k].ns_per_report);
        else
            printf(" %16s", "-");
    putchar('\n');
    if (e->daemon) {
        json_t *d = e->daemon;
        if (json_is_true(json_object_get(d, "same_alarms")))
            printf("\nhubcapd's alarms are exactly the core's: yes (%lld alarms)\n",
                   json_integer_value(json_object_get(d, "alarms")));
        else
            printf("\nhubcapd's alarms are exactly the core's: no, %lld differ (%lld only in"
                   " hubcapd, %lld only in the core)\n",
                   json_integer_value(json_object_get(d, "only_hubcapd")) +
                   json_integer_value(json_object_get(d, "only_core")),
                   json_integer_value(json_object_get(d, "only_hubcapd")),
                   json_integer_value(json_object_get(d, "only_core")));
    }
    for (int k = 0; e->o.failures && k < e->n_res; k++)
        print_failures(e, &e->res[k]);
}

/* ---- through a running hubcapd ------------------------------------------------------ */

struct dstats {
    uint64_t frames, front_reports, front_rejected, closed_bad, reports, alarms, vehicles;
};

/* One control request; the answer when ok, else the run ends (3: not
 * reached, 1: refused).  Takes req. */
static json_t *control(struct eval *e, const char *sock, json_t *req)
{
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    char *line = json_dumps(req, JSON_COMPACT | JSON_REAL_PRECISION(17));
    size_t len = line ? strlen(line) : 0;
    char *sent = line ? realloc(line, len + 2) : NULL;
    if (!sent)
        quit(e, 1, "out of memory");
    memcpy(sent + len, "\n", 2);
    json_t *ans = hc_ctl_call(sock, sent, CTL_TIMEOUT_MS);
    int err = errno;
    free(sent);
    if (!ans) {
        char why[1024];
        quit(e, 3, "%s", hc_ctl_unreachable(why, sizeof(why), err, sock, e->o.hubcapd,
                                            e->o.socket != NULL, CTL_TIMEOUT_MS / 1000.0, NULL));
    }
    if (!json_is_true(json_object_get(ans, "ok"))) {
        const char *why = json_string_value(json_object_get(ans, "error"));
        quit(e, 1, "hubcapd refused %s: %s", cmd, why ? why : "(no reason given)");
    }
    json_decref(req);
    return ans;
}

static uint64_t stat_of(struct eval *e, json_t *stats, const char *path)
{
    json_t *v = hc_json_path(stats, path);
    if (!json_is_integer(v))
        quit(e, 1, "hubcapd's stats have no %s: is it the same version as this tool?", path);
    return (uint64_t)json_integer_value(v);
}

static void dstats_read(struct eval *e, const char *sock, struct dstats *s)
{
    json_t *a = control(e, sock, json_pack("{s:s}", "cmd", "stats"));
    json_t *st = json_object_get(a, "stats");
    s->frames = stat_of(e, st, "front.frames");
    s->front_reports = stat_of(e, st, "front.reports");
    s->front_rejected = stat_of(e, st, "front.rejected");
    s->closed_bad = stat_of(e, st, "front.malformed") + stat_of(e, st, "front.oversized");
    s->reports = stat_of(e, st, "reports");
    s->alarms = stat_of(e, st, "alarms");
    s->vehicles = stat_of(e, st, "vehicles");
    json_decref(a);
}

/* A detect.KEY value from config.show's INI text, or -1. */
static long ini_detect(const char *ini, const char *key)
{
    const char *sec = strstr(ini, "\n[detect]\n");
    size_t klen = strlen(key);
    for (const char *p = sec ? strchr(sec + 1, '\n') : NULL; p && p[1] && p[1] != '[';
         p = strchr(p + 1, '\n'))
        if (!strncmp(p + 1, key, klen) && !strncmp(p + 1 + klen, " = ", 3))
            return strtol(p + 4 + klen, NULL, 10);
    return -1;
}

/* The daemon must decide like the core: the same window, n1, n2 and
 * robust parameters; and it must be fresh, or vehicles it already knows
 * would carry their windows in. */
static void daemon_check(struct eval *e, const char *sock)
{
    const struct hc_detect_config *c = &e->o.det;
    const struct { const char *key; long ours; } p[] = {
        { "window", (long)c->window }, { "n1", (long)c->n1 }, { "n2", (long)c->n2 },
        { "robust_after", (long)c->robust_after }, { "robust_before", (long)c->robust_before },
        { "robust_share_percent", lround(c->robust_share * 100) },
        { "robust_tight_percent", lround(c->robust_tight * 100) },
        { "robust_far_percent", lround(c->robust_far * 100) },
    };
    char diff[600] = "", sets[600] = "";
    size_t dl = 0, sl = 0;
    json_t *a = control(e, sock, json_pack("{s:s}", "cmd", "config.show"));
    const char *ini = json_string_value(json_object_get(a, "ini"));
    long window = ini ? ini_detect(ini, "window") : -1;
    for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
        long theirs = ini ? ini_detect(ini, p[i].key) : -1;
        if (i == 2 && theirs == 0)      /* n2 0 means window - 1 */
            theirs = window - 1;
        if (theirs == p[i].ours)
            continue;
        dl += (size_t)snprintf(diff + dl, sizeof(diff) - dl, "%sdetect.%s %ld (this run: %ld)",
                               dl ? ", " : "", p[i].key, theirs, p[i].ours);
        sl += (size_t)snprintf(sets + sl, sizeof(sets) - sl, " --set detect.%s=%ld", p[i].key,
                               p[i].ours);
    }
    json_decref(a);
    if (dl)
        quit(e, 1, "hubcapd runs with %s: give the same --window/--n1/--n2 (the robust rule's"
             " parameters here are hubcap's defaults), or start hubcapd with%s", diff, sets);
    struct dstats s;
    dstats_read(e, sock, &s);
    if (s.vehicles)
        quit(e, 1, "hubcapd already tracks %llu vehicles: its scores would not be the stream's"
             " alone; start a fresh hubcapd on an empty data dir", (unsigned long long)s.vehicles);
}

/* threshold.set, then rule.set, for every maker of the stream and truth. */
static void daemon_configure(struct eval *e, const char *sock, enum hc_rule rule)
{
    json_t *thr = json_object(), *rules = json_object();
    for (unsigned i = 1; i < e->names.n_makers; i++) {
        if (!e->used[i])
            continue;
        const char *name = maker_name(e, i);
        if (json_object_set_new(thr, name, json_real(threshold_of(e, i))) < 0)
            quit(e, 1, "maker '%s' is not UTF-8: the control socket cannot name it", name);
        json_object_set_new(rules, name, json_string(hc_rule_name(rule)));
    }
    if (json_object_size(thr) == 0) {
        json_decref(thr);
        json_decref(rules);
        return;
    }
    json_decref(control(e, sock, json_pack("{s:s, s:o}", "cmd", "threshold.set",
                                           "thresholds", thr)));
    json_decref(control(e, sock, json_pack("{s:s, s:o}", "cmd", "rule.set", "rules", rules)));
}

static int tcp_open(struct eval *e, unsigned port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    struct timeval tv = { .tv_sec = STALL_S };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        quit(e, 3, "cannot connect to hubcapd's msgpack port 127.0.0.1:%u: %s", port,
             strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

/* STREAM's bytes (frames back to back, all of them checked) as they are. */
static void daemon_send(struct eval *e, unsigned port)
{
    FILE *f = fopen(e->o.stream, "rb");
    if (!f)
        quit(e, 1, "%s: %s", e->o.stream, strerror(errno));
    int fd = tcp_open(e, port);
    static char buf[1 << 16];
    uint64_t sent = 0;
    size_t n;
    while (sent < e->bytes && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
        if (n > e->bytes - sent)
            n = (size_t)(e->bytes - sent);
        for (size_t off = 0; off < n;) {
            ssize_t w = send(fd, buf + off, n - off, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                quit(e, 1, "sending %s to hubcapd (byte %llu): %s", e->o.stream,
                     (unsigned long long)(sent + off), errno == EAGAIN
                     ? "it took nothing for 60 s (see its log)" : strerror(errno));
            off += (size_t)w;
        }
        sent += n;
        progress(e, "sending to hubcapd: %.1f %%", 100.0 * sent / e->bytes);
    }
    if (sent < e->bytes)
        quit(e, 1, "%s: changed while it was being sent to hubcapd", e->o.stream);
    close(fd);
    fclose(f);
}

struct logtail {
    char *path, *buf;
    size_t len, cap, lines;
    uint64_t off;
};

/* Read what alarms.log gained; count its complete lines. */
static void log_read(struct eval *e, struct logtail *t)
{
    FILE *f = fopen(t->path, "r");
    if (!f)
        return;
    if (fseeko(f, (off_t)(t->off + t->len), SEEK_SET) == 0) {
        for (;;) {
            if (t->cap - t->len < 4096)
                t->buf = grow(e, t->buf, &t->cap, 1);
            size_t n = fread(t->buf + t->len, 1, t->cap - t->len, f);
            if (n == 0)
                break;
            for (size_t i = 0; i < n; i++)
                t->lines += t->buf[t->len + i] == '\n';
            t->len += n;
        }
    }
    fclose(f);
}

/* "2026-11-22T03:04:05.123Z" (what hubcapd writes) to ms; -1 if not that. */
static int64_t parse_time(const char *s)
{
    struct tm tm;
    int ms;
    char back[HC_TIME_LEN];
    memset(&tm, 0, sizeof(tm));
    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    int64_t t = (int64_t)timegm(&tm) * 1000 + ms;
    return strcmp(hc_time_format(t, 1, back), s) ? -1 : t;   /* only the exact form */
}

/* A vehicle of the stream by the id alarms.log shows ("hex:..." for ids
 * that are not UTF-8); -1 if the stream has none such. */
static int64_t vid_lookup(const struct eval *e, const char *s)
{
    size_t len = strlen(s);
    char raw[HC_VID_MAX];
    if (len <= HC_VID_MAX && len > 0) {
        int64_t v = hc_vtable_find(&e->ids, s, len, hc_hash(s, len));
        if (v >= 0 || strncmp(s, "hex:", 4))
            return v;
    }
    size_t n = (len - 4) / 2;
    if (len < 4 || (len - 4) % 2 || n == 0 || n > HC_VID_MAX)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned x;
        if (sscanf(s + 4 + 2 * i, "%2x", &x) != 1)
            return -1;
        raw[i] = (char)x;
    }
    return hc_vtable_find(&e->ids, raw, n, hc_hash(raw, n));
}

/* The alarms of the lines alarms.log gained, into res. */
static void log_alarms(struct eval *e, const struct logtail *t, struct result *res)
{
    const char *p = t->buf, *end = t->buf + t->len;
    for (uint64_t line = 1; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, NULL);
        json_t *data = json_object_get(j, "data");
        const char *vid = json_string_value(json_object_get(data, "vid"));
        int64_t ts = parse_time(json_string_value(hc_json_path(data, "latest.ts")));
        int64_t v = vid ? vid_lookup(e, vid) : -1;
        if (!vid || ts < 0)
            quit(e, 1, "%s, byte %llu: not an alarm line (data.vid and data.latest.ts)", t->path,
                 (unsigned long long)(t->off + (uint64_t)(p - t->buf)));
        if (v < 0)
            quit(e, 1, "%s: an alarm for %s, which is not a vehicle of %s: hubcapd got reports"
                 " from elsewhere during the run", t->path, vid, e->o.stream);
        add_alarm(e, res, (uint32_t)v, ts);
        json_decref(j);
        p = nl + 1;
    }
}

/* Wait until the workers took every report sent, and alarms.log holds
 * every alarm they raised; give up after STALL_S seconds without change. */
static void daemon_wait(struct eval *e, const char *sock, const struct dstats *base,
                        struct logtail *t)
{
    uint64_t total = e->n_rep + e->decode_rejected, last_change = hc_time_mono_ns();
    struct dstats s, prev;
    memset(&prev, 0, sizeof(prev));
    size_t prev_lines = 0;
    for (;;) {
        dstats_read(e, sock, &s);
        log_read(e, t);
        uint64_t decoded = s.front_reports - base->front_reports;
        uint64_t taken = s.reports - base->reports, alarms = s.alarms - base->alarms;
        if (s.closed_bad != base->closed_bad)
            quit(e, 1, "hubcapd closed the connection on a frame it refused (over its"
                 " msgpack.max_payload, or malformed): see its log");
        if (s.frames - base->frames == e->frames &&
            decoded + s.front_rejected - base->front_rejected == total && taken == decoded &&
            t->lines >= alarms)
            return;
        uint64_t now = hc_time_mono_ns();
        if (memcmp(&s, &prev, sizeof(s)) || t->lines != prev_lines)
            last_change = now;
        else if (now - last_change > (uint64_t)STALL_S * 1000000000u)
            quit(e, 1, "hubcapd took %llu of %llu reports and wrote %zu of %llu alarms to"
                 " alarms.log, then nothing changed for %d s: see its log",
                 (unsigned long long)taken, (unsigned long long)e->n_rep, t->lines,
                 (unsigned long long)alarms, STALL_S);
        prev = s;
        prev_lines = t->lines;
        progress(e, "waiting for hubcapd: %llu of %llu reports, %zu of %llu alarms logged",
                 (unsigned long long)taken, (unsigned long long)e->n_rep, t->lines,
                 (unsigned long long)alarms);
        nanosleep(&(struct timespec){ .tv_nsec = 20000000 }, NULL);
    }
}

static int cmp_alarm_vid(const void *a, const void *b)
{
    const struct alarm *x = a, *y = b;
    if (x->vid != y->vid)
        return x->vid < y->vid ? -1 : 1;
    return (x->ts > y->ts) - (x->ts < y->ts);
}

/* Alarms in one set and not the other, both ways (by vehicle and ts). */
static void alarm_diff(struct eval *e, const struct result *a, const struct result *b,
                       uint64_t *only_a, uint64_t *only_b)
{
    struct alarm *x = malloc((a->n_al + 1) * sizeof(*x)), *y = malloc((b->n_al + 1) * sizeof(*y));
    if (!x || !y)
        quit(e, 1, "out of memory");
    memcpy(x, a->al, a->n_al * sizeof(*x));
    memcpy(y, b->al, b->n_al * sizeof(*y));
    qsort(x, a->n_al, sizeof(*x), cmp_alarm_vid);
    qsort(y, b->n_al, sizeof(*y), cmp_alarm_vid);
    size_t i = 0, j = 0;
    *only_a = *only_b = 0;
    while (i < a->n_al || j < b->n_al) {
        int c = i == a->n_al ? 1 : j == b->n_al ? -1 : cmp_alarm_vid(&x[i], &y[j]);
        *only_a += c < 0;
        *only_b += c > 0;
        i += c <= 0;
        j += c >= 0;
    }
    free(x);
    free(y);
}

/* The whole --hubcapd run: hubcapd's alarms into res. */
static void daemon_replay(struct eval *e, struct result *res)
{
    const char *dir = e->o.hubcapd;
    char path[4200], sock[4200];
    snprintf(path, sizeof(path), "%s/hubcapd.json", dir);
    json_error_t jerr;
    json_t *ready = json_load_file(path, 0, &jerr);
    if (!ready)
        quit(e, 3, "cannot read %s: %s (is hubcapd running with --data-dir %s?)", path,
             jerr.text, dir);
    unsigned port = (unsigned)json_integer_value(json_object_get(ready, "msgpack_tcp"));
    const char *ctl = json_string_value(json_object_get(ready, "control"));
    snprintf(sock, sizeof(sock), "%s", e->o.socket ? e->o.socket : ctl ? ctl : "");
    if (!e->o.socket && !ctl)
        snprintf(sock, sizeof(sock), "%s/hubcapd.sock", dir);
    json_decref(ready);
    if (port == 0)
        quit(e, 1, "%s: hubcapd's msgpack TCP listener is off (msgpack.port)", path);
    if (e->makerless)
        quit(e, 1, "%s: %llu reports name no maker: hubcapd decides them with its own default"
             " threshold and rule, which cannot be set from here; give every report a maker",
             e->o.stream, (unsigned long long)e->makerless);
    daemon_check(e, sock);
    daemon_configure(e, sock, res->rule);

    struct logtail t = { 0 };
    struct stat st;
    struct dstats base;
    char lp[4300];
    snprintf(lp, sizeof(lp), "%s/alarms.log", dir);
    t.path = lp;
    t.off = stat(lp, &st) == 0 ? (uint64_t)st.st_size : 0;
    dstats_read(e, sock, &base);
    daemon_send(e, port);
    daemon_wait(e, sock, &base, &t);
    log_alarms(e, &t, res);
    free(t.buf);
}

static void run_daemon(struct eval *e)
{
    struct result *core = &e->res[0], *res = &e->res[e->n_res++];
    uint64_t only_d, only_c;
    res->engine = "hubcapd";
    res->rule = core->rule;
    res->ns_per_report = -1;
    daemon_replay(e, res);
    alarm_diff(e, res, core, &only_d, &only_c);
    e->daemon = json_pack("{s:s, s:I, s:b, s:I, s:I}", "data_dir", e->o.hubcapd,
                          "alarms", (json_int_t)res->n_al, "same_alarms", !only_d && !only_c,
                          "only_hubcapd", (json_int_t)only_d, "only_core", (json_int_t)only_c);
}

/* ---- main ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    struct eval *e = calloc(1, sizeof(*e));
    if (!e) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    hc_cli_init(argv[0]);
    parse(&e->o, argc, argv);
    if (hc_detector_init(&e->names, &e->o.det) < 0 || hc_vtable_init(&e->ids, 0, 1024) < 0)
        quit(e, 1, "out of memory");
    load_thresholds(e);
    read_stream(e);
    read_truth(e);
    check_thresholds(e);
    index_reports(e);
    index_sessions(e);

    for (int r = 0; r < HC_RULES; r++) {
        if (e->o.rule != RULE_BOTH && e->o.rule != r)
            continue;
        struct result *res = &e->res[e->n_res++];
        res->engine = "core";
        res->rule = (enum hc_rule)r;
        replay(e, res);
    }
    if (e->o.hubcapd)
        run_daemon(e);
    for (int k = 0; k < e->n_res; k++) {
        attribute(e, &e->res[k]);
        tally(e, &e->res[k]);
    }
    progress_clear(e);

    uint32_t mk[HC_MAKERS_MAX];
    unsigned n_mk = scored_makers(e, mk);
    if (e->o.json) {
        json_t *j = summary_json(e, mk, n_mk);
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));
        if (!s)
            quit(e, 1, "out of memory");
        puts(s);
        free(s);
        json_decref(j);
    } else {
        print_table(e, mk, n_mk);
    }
    if (e->o.bench)
        print_bench(e);
    fflush(stdout);

    for (int k = 0; k < e->n_res; k++) {
        free(e->res[k].al);
        free(e->res[k].hit);
        free(e->res[k].first_false);
        free(e->res[k].fig);
    }
    json_decref(e->daemon);
    free(e->rep);
    free(e->rvid);
    free(e->rfirst);
    free(e->rkey);
    free(e->sess);
    free(e->by_vid);
    free(e->sfirst);
    free(e->o.thr);
    hc_vtable_free(&e->ids);
    hc_detector_free(&e->names);
    free(e);
    return 0;
}
