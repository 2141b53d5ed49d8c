/*
 * config.c — hubcapd's settings (see config.h).
 *
 * One table, opts[], describes every key: section, name, type, default as
 * text, where it lives in struct hc_config, its range and its help.
 * Defaults are made by parsing the default text through the same code a
 * file value goes through, so the documented default and the real one can
 * never disagree.  [thresholds] is one row whose key is "any maker name".
 *
 * inih gives its handler no line number in the Debian build
 * (INI_HANDLER_LINENO 0), so the file is fed through our own line reader,
 * which counts lines exactly as inih does (one reader call per line) and
 * refuses a line too long for inih's buffer instead of letting inih split
 * it.  The handler stops at the first bad value; inih's return (the first
 * line it found wrong) tells a syntax error from a value error.
 *
 * Values are checked so that hc_config_write output always loads back: no
 * control characters, and no ';' that INI would read as a comment.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "hubcap/config.h"
#include "hubcap/detect.h"
#include "hubcap/error.h"

enum opt_type {
    OPT_STRING,     /* char[size]: 1..size-1 bytes */
    OPT_IPV4,       /* char[size]: an IPv4 address literal */
    OPT_UINT,       /* unsigned in [min, max] */
    OPT_BOOL,       /* bool */
    OPT_METERS,     /* double: finite, > 0, <= HC_THRESHOLD_MAX_M */
    OPT_LOG_LEVEL,  /* int: HC_LOG_ERROR .. HC_LOG_DEBUG, written by name */
    OPT_THRESHOLD,  /* [thresholds]: key = maker, value = meters */
};

#define OPT_POW2 0x1u   /* OPT_UINT: must also be a power of two */

struct opt {
    const char *section;
    const char *key;            /* NULL: any key (the maker, in [thresholds]) */
    enum opt_type type;
    const char *def;            /* default, as written in a file; NULL: none */
    size_t off, size;           /* the field in struct hc_config */
    unsigned long long min, max;
    unsigned flags;
    const char *help;           /* plain text: both --help and markdown */
};

#define FIELD(m) offsetof(struct hc_config, m), sizeof(((struct hc_config *)0)->m)

static const struct opt opts[] = {
    {"core", "data_dir", OPT_STRING, "./var/hubcap", FIELD(data_dir),
     1, HC_CONFIG_PATH_MAX - 1, 0,
     "Directory that holds hubcapd's state: the LMDB environment of each "
     "shard, alarms.log and the control socket hubcapd.sock. --data-dir DIR "
     "sets the same thing."},
    {"core", "workers", OPT_UINT, "0", FIELD(workers),
     0, HC_CONFIG_WORKERS_MAX, 0,
     "Worker threads. Each is pinned to a core and owns one shard: its "
     "vehicles and its LMDB environment. 0 means the number of online cores "
     "minus 1 (at least 1), which leaves a core for the front and notifier "
     "threads. A data dir keeps the count it was first started with "
     "(<data_dir>/shards): vehicles are sharded by it."},
    {"core", "log_level", OPT_LOG_LEVEL, "info", FIELD(log_level),
     HC_LOG_ERROR, HC_LOG_DEBUG, 0,
     "Least severe log records written to stderr: error, warn, info or "
     "debug. debug is verbose and meant for troubleshooting."},
    {"core", "stats_interval_s", OPT_UINT, "60", FIELD(stats_interval_s),
     0, 86400, 0,
     "Seconds between the info log lines that summarise traffic since the "
     "previous one (reports/s, alarms, vehicles, drops). 0 turns them off; "
     "the control socket's stats command answers at any time."},

    {"msgpack", "bind", OPT_IPV4, "0.0.0.0", FIELD(msgpack_bind),
     0, 0, 0,
     "IPv4 address the native msgpack listeners bind to. 0.0.0.0 listens on "
     "every interface, 127.0.0.1 on loopback only."},
    {"msgpack", "port", OPT_UINT, "5170", FIELD(msgpack_port),
     0, 65535, 0,
     "Port of the native msgpack listeners, TCP and UDP alike. 0 lets the "
     "system pick a free port; hubcapd logs the port it bound."},
    {"msgpack", "tcp", OPT_BOOL, "true", FIELD(msgpack_tcp),
     0, 1, 0,
     "Accept msgpack payloads over TCP, each preceded by its length as a "
     "4-byte big-endian number."},
    {"msgpack", "udp", OPT_BOOL, "true", FIELD(msgpack_udp),
     0, 1, 0,
     "Accept msgpack payloads over UDP, one payload per datagram. Datagrams "
     "that cannot be queued are dropped and counted."},
    {"msgpack", "max_payload", OPT_UINT, "1048576", FIELD(max_payload),
     64, 67108864, 0,
     "Largest payload in bytes. A TCP frame announcing more is answered by "
     "closing that connection only, with a logged reason and a counter."},
    {"msgpack", "max_connections", OPT_UINT, "4096", FIELD(max_connections),
     1, 1000000, 0,
     "Most TCP connections open at once. A connection beyond that is closed "
     "as soon as it is accepted, logged and counted (front.refused)."},

    {"detect", "window", OPT_UINT, "16", FIELD(window),
     2, HC_WINDOW_MAX, 0,
     "W: how many of the latest positions of a parking session are compared "
     "pairwise."},
    {"detect", "n1", OPT_UINT, "10", FIELD(n1),
     2, HC_WINDOW_MAX, 0,
     "N1: positions the window must hold before hubcap decides; a session "
     "with fewer never raises an alarm. At most detect.window."},
    {"detect", "n2", OPT_UINT, "0", FIELD(n2),
     0, HC_WINDOW_MAX * (HC_WINDOW_MAX - 1) / 2 - 1, 0,
     "N2: the vehicle has moved when strictly more than N2 pairs in the "
     "window are farther apart than its maker's threshold. 0 means "
     "window - 1 (15 with the defaults), so one stray fix never raises an "
     "alarm and two fixes after a real move do. Must be less than the number "
     "of pairs in a full window, window x (window - 1) / 2."},
    {"detect", "default_threshold_m", OPT_METERS, "100", FIELD(default_threshold_m),
     0, 0, 0,
     "Drift threshold in meters for makers without one of their own in "
     "[thresholds]. A pair counts when its distance is strictly greater."},

    {"store", "commit_interval_ms", OPT_UINT, "10", FIELD(commit_interval_ms),
     1, 60000, 0,
     "Vehicle state is written in one LMDB transaction per interval per "
     "shard: a process crash (kill -9) loses at most this much vehicle "
     "state. Alarms are always committed and synced before they leave."},
    {"store", "sync_interval_ms", OPT_UINT, "1000", FIELD(sync_interval_ms),
     0, 3600000, 0,
     "How often the OS is told to flush the shards to disk: an OS crash or "
     "power loss loses at most this much vehicle state. 0 syncs every "
     "commit, the safest and slowest choice."},
    {"store", "map_size_mb", OPT_UINT, "4096", FIELD(map_size_mb),
     16, 1048576, 0,
     "Initial LMDB map size per shard in MiB; it grows automatically when "
     "full."},

    {"ring", "size", OPT_UINT, "65536", FIELD(ring_size),
     1024, 16777216, OPT_POW2,
     "Records per front-to-worker ring. When a worker's ring is full the "
     "front stops reading that TCP connection, so the sender is pushed back, "
     "and drops UDP datagrams, which are counted."},

    {"thresholds", NULL, OPT_THRESHOLD, NULL, FIELD(thresholds),
     0, 0, 0,
     "Drift threshold in meters of the maker named by the key, as devices "
     "report it (1 to 32 bytes, case-sensitive), e.g. acme = 35. Setting a "
     "maker again replaces its threshold; at most 256 makers. Makers not "
     "listed use detect.default_threshold_m."},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

struct section {
    const char *name;
    const char *doc;
    const char *link;           /* a page in docs/ for the details, or NULL */
};

static const struct section sections[] = {
    {"core", "Process-wide settings.", NULL},
    {"msgpack", "The native msgpack listeners (TCP and UDP, default port 5170).", NULL},
    {"detect", "Moved-vehicle detection: the parameters of the pairwise rule.",
     "DETECTION.md"},
    {"store", "Durability of vehicle state in the per-shard LMDB environments.", NULL},
    {"ring", "Queues between the front threads and the workers.", NULL},
    {"thresholds", "Per-maker drift thresholds: each key is a maker name, "
     "each value meters.", NULL},
};

#define N_SECTIONS (sizeof(sections) / sizeof(sections[0]))

static const char *const level_names[] = {"error", "warn", "info", "debug"};

const char *hc_log_level_name(int level)
{
    if (level < HC_LOG_ERROR || level > HC_LOG_DEBUG)
        return "unknown";
    return level_names[level];
}

/* ---- errors ----------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A value as quoted in a message: at most 60 bytes, control bytes as '?'. */
static const char *show(const char *v, char *buf, size_t n)
{
    size_t len = strlen(v), keep = len > 60 ? 57 : len, i;
    assert(n > 61);
    for (i = 0; i < keep; i++)
        buf[i] = iscntrl((unsigned char)v[i]) ? '?' : v[i];
    if (keep < len)
        memcpy(buf + i, "...", 3), i += 3;
    buf[i] = '\0';
    return buf;
}

/* What a value of o must be, completing "section.key must be ...". */
static void opt_want(const struct opt *o, char *buf, size_t n)
{
    switch (o->type) {
    case OPT_STRING:
        snprintf(buf, n, "%llu to %llu bytes, with no control characters and "
                 "no ';' at the start or after a space (INI reads a comment)",
                 o->min, o->max);
        break;
    case OPT_IPV4:
        snprintf(buf, n, "an IPv4 address such as 0.0.0.0 or 127.0.0.1");
        break;
    case OPT_UINT:
        snprintf(buf, n, "a %s from %llu to %llu",
                 o->flags & OPT_POW2 ? "power of two" : "whole number", o->min, o->max);
        break;
    case OPT_BOOL:
        snprintf(buf, n, "true or false (or yes/no, on/off, 1/0)");
        break;
    case OPT_METERS:
    case OPT_THRESHOLD:
        snprintf(buf, n, "a number of meters greater than 0 and at most %.0f",
                 HC_THRESHOLD_MAX_M);
        break;
    case OPT_LOG_LEVEL:
        snprintf(buf, n, "one of error, warn, info, debug");
        break;
    }
}

/* The range column of --help and the docs: short, same facts as opt_want. */
static void opt_range(const struct opt *o, char *buf, size_t n)
{
    switch (o->type) {
    case OPT_STRING:
        snprintf(buf, n, "path, %llu to %llu bytes", o->min, o->max);
        break;
    case OPT_IPV4:
        snprintf(buf, n, "IPv4 address");
        break;
    case OPT_UINT:
        snprintf(buf, n, "%s%llu to %llu",
                 o->flags & OPT_POW2 ? "power of two, " : "", o->min, o->max);
        break;
    case OPT_BOOL:
        snprintf(buf, n, "true or false");
        break;
    case OPT_METERS:
    case OPT_THRESHOLD:
        snprintf(buf, n, "meters, > 0, up to %.0f", HC_THRESHOLD_MAX_M);
        break;
    case OPT_LOG_LEVEL:
        snprintf(buf, n, "error, warn, info or debug");
        break;
    }
}

static int bad_value(const struct opt *o, const char *key, const char *val,
                     char *err, size_t errlen)
{
    char want[200], shown[64];
    opt_want(o, want, sizeof(want));
    set_err(err, errlen, "%s.%s must be %s, not '%s'", o->section, key, want,
            show(val, shown, sizeof(shown)));
    return -1;
}

/* ---- parsing one value ------------------------------------------------ */

/* True when s can stand in an INI file as a value (or key) and read back the
 * same: no control bytes, no ';' that starts a comment. */
static bool ini_safe(const char *s)
{
    for (size_t i = 0; s[i]; i++) {
        if (iscntrl((unsigned char)s[i]))
            return false;
        if (s[i] == ';' && (i == 0 || isspace((unsigned char)s[i - 1])))
            return false;
    }
    return true;
}

static bool parse_ull(const char *s, unsigned long long *v)
{
    char *end;
    if (!isdigit((unsigned char)s[0]))
        return false;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return errno == 0 && *end == '\0';
}

static bool parse_meters(const char *s, double *v)
{
    char *end;
    if (*s == '\0' || isspace((unsigned char)*s))
        return false;
    errno = 0;
    *v = strtod(s, &end);
    return *end == '\0' && isfinite(*v) && *v > 0.0 && *v <= HC_THRESHOLD_MAX_M;
}

static bool parse_bool(const char *s, bool *v)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *v = true, true;
        if (strcasecmp(s, no[i]) == 0)
            return *v = false, true;
    }
    return false;
}

static bool uint_ok(const struct opt *o, unsigned long long v)
{
    if (v < o->min || v > o->max)
        return false;
    return !(o->flags & OPT_POW2) || (v & (v - 1)) == 0;
}

/* Store a string, zero-filling the rest of the field (for memcmp). */
static void put_string(char *dst, size_t size, const char *s)
{
    size_t len = strlen(s);
    assert(len < size);
    memset(dst, 0, size);
    memcpy(dst, s, len);
}

/* A maker name that hc_config_write can put before '=' and load reads back. */
static bool maker_ok(const char *m)
{
    size_t len = strlen(m);
    if (len == 0 || len > HC_MAKER_MAX || !ini_safe(m))
        return false;
    if (m[0] == '[' || m[0] == '#' || isspace((unsigned char)m[0]) ||
        isspace((unsigned char)m[len - 1]))
        return false;
    return strpbrk(m, "=:") == NULL;
}

static int set_threshold(struct hc_config *c, const struct opt *o, const char *maker,
                         const char *val, char *err, size_t errlen)
{
    char shown[64];
    double m;
    if (!maker_ok(maker)) {
        set_err(err, errlen, "thresholds: maker name '%s' must be 1 to %d bytes, "
                "without '=', ':', control characters or a comment",
                show(maker, shown, sizeof(shown)), HC_MAKER_MAX);
        return -1;
    }
    if (!parse_meters(val, &m))
        return bad_value(o, maker, val, err, errlen);
    unsigned i;
    for (i = 0; i < c->n_thresholds; i++)
        if (strcmp(c->thresholds[i].maker, maker) == 0)
            break;
    if (i == HC_CONFIG_THRESHOLDS_MAX) {
        set_err(err, errlen, "thresholds.%s: at most %d makers can have their "
                "own threshold", show(maker, shown, sizeof(shown)),
                HC_CONFIG_THRESHOLDS_MAX);
        return -1;
    }
    if (i == c->n_thresholds) {
        c->n_thresholds++;
        put_string(c->thresholds[i].maker, sizeof(c->thresholds[i].maker), maker);
    }
    c->thresholds[i].meters = m;
    return 0;
}

/* Parse val for o (key is the key as given) and store it in c; on error
 * return -1 with err and c unchanged. */
static int opt_apply(const struct opt *o, struct hc_config *c, const char *key,
                     const char *val, char *err, size_t errlen)
{
    char *field = (char *)c + o->off;
    unsigned long long u;
    struct in_addr a;
    double d;
    bool b;
    size_t len = strlen(val);

    switch (o->type) {
    case OPT_STRING:
        if (len < o->min || len > o->max || !ini_safe(val))
            return bad_value(o, key, val, err, errlen);
        put_string(field, o->size, val);
        return 0;
    case OPT_IPV4:
        if (len >= o->size || inet_pton(AF_INET, val, &a) != 1)
            return bad_value(o, key, val, err, errlen);
        put_string(field, o->size, val);
        return 0;
    case OPT_UINT:
        if (!parse_ull(val, &u) || !uint_ok(o, u))
            return bad_value(o, key, val, err, errlen);
        *(unsigned *)(void *)field = (unsigned)u;
        return 0;
    case OPT_BOOL:
        if (!parse_bool(val, &b))
            return bad_value(o, key, val, err, errlen);
        *(bool *)(void *)field = b;
        return 0;
    case OPT_METERS:
        if (!parse_meters(val, &d))
            return bad_value(o, key, val, err, errlen);
        *(double *)(void *)field = d;
        return 0;
    case OPT_LOG_LEVEL:
        for (int l = HC_LOG_ERROR; l <= HC_LOG_DEBUG; l++) {
            if (strcasecmp(val, level_names[l]) == 0) {
                *(int *)(void *)field = l;
                return 0;
            }
        }
        return bad_value(o, key, val, err, errlen);
    case OPT_THRESHOLD:
        return set_threshold(c, o, key, val, err, errlen);
    }
    assert(!"unknown option type");
    return -1;
}

static const struct opt *opt_find(const char *section, const char *key)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        if (strcmp(o->section, section) == 0 && (!o->key || strcmp(o->key, key) == 0))
            return o;
    }
    return NULL;
}

/* Find section.key and apply val: the one path every value takes. */
static int apply(struct hc_config *c, const char *section, const char *key,
                 const char *val, char *err, size_t errlen)
{
    char s1[64], s2[64];
    const struct opt *o = opt_find(section, key);
    if (o)
        return opt_apply(o, c, key, val, err, errlen);
    if (*section == '\0')
        set_err(err, errlen, "key '%s' is outside any [section] (see hubcapd --help)",
                show(key, s1, sizeof(s1)));
    else
        set_err(err, errlen, "unknown key '%s.%s' (see hubcapd --help)",
                show(section, s1, sizeof(s1)), show(key, s2, sizeof(s2)));
    return -1;
}

void hc_config_defaults(struct hc_config *c)
{
    char err[256];
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        /* The table's field sizes must match the types it claims. */
        assert(o->type != OPT_UINT || o->size == sizeof(unsigned));
        assert(o->type != OPT_BOOL || o->size == sizeof(bool));
        assert(o->type != OPT_METERS || o->size == sizeof(double));
        assert(o->type != OPT_LOG_LEVEL || o->size == sizeof(int));
        if (o->def) {
            int rc = opt_apply(o, c, o->key, o->def, err, sizeof(err));
            assert(rc == 0);
            (void)rc;
        }
    }
}

/* ---- files ------------------------------------------------------------ */

struct load {
    struct hc_config *c;        /* the copy being filled */
    FILE *f;
    char *line;                 /* getline buffer */
    size_t cap;
    int lineno;                 /* lines handed to inih so far */
    int err_line;               /* line of our own first error, 0: none */
    int read_errno;             /* errno of a failed read, 0: none */
    char msg[512];
};

/* fgets-style reader for ini_parse_stream: whole lines only, counted. */
static char *load_read(char *str, int num, void *stream)
{
    struct load *x = stream;
    if (x->err_line)
        return NULL;            /* stop at the first bad value */
    errno = 0;
    ssize_t n = getline(&x->line, &x->cap, x->f);
    if (n < 0) {
        x->read_errno = ferror(x->f) ? errno : 0;
        return NULL;
    }
    x->lineno++;
    if (memchr(x->line, '\0', (size_t)n)) {
        x->err_line = x->lineno;
        snprintf(x->msg, sizeof(x->msg), "line contains a NUL byte");
        return NULL;
    }
    /* Indentation means nothing here; to inih it would make a continuation
     * of the previous value, so an indented key would silently become part
     * of the value above it. */
    const char *p = x->line;
    while (*p == ' ' || *p == '\t')
        p++;
    n -= p - x->line;
    if (n > num - 1) {
        x->err_line = x->lineno;
        snprintf(x->msg, sizeof(x->msg), "line is longer than %d bytes", num - 2);
        return NULL;
    }
    memcpy(str, p, (size_t)n + 1);
    return str;
}

static int load_handler(void *user, const char *section, const char *name,
                        const char *value)
{
    struct load *x = user;
    if (x->err_line)
        return 0;
    if (apply(x->c, section, name, value, x->msg, sizeof(x->msg)) == 0)
        return 1;
    x->err_line = x->lineno;
    return 0;
}

int hc_config_load(struct hc_config *c, const char *path, char *err, size_t errlen)
{
    struct load x = {.lineno = 0};
    int rc = -1;

    x.f = fopen(path, "r");
    if (!x.f) {
        set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    x.c = malloc(sizeof(*x.c));
    if (!x.c) {
        set_err(err, errlen, "cannot load %s: %s", path, strerror(ENOMEM));
        goto fail;
    }
    memcpy(x.c, c, sizeof(*c));

    int line = ini_parse_stream(load_read, &x, load_handler, &x);
    if (ferror(x.f))
        set_err(err, errlen, "cannot read %s: %s", path,
                strerror(x.read_errno ? x.read_errno : EIO));
    else if (line > 0 && (x.err_line == 0 || line < x.err_line))
        set_err(err, errlen, "%s:%d: expected '[section]' or 'key = value'", path, line);
    else if (x.err_line)
        set_err(err, errlen, "%s:%d: %s", path, x.err_line, x.msg);
    else if (line < 0)
        set_err(err, errlen, "cannot parse %s (inih error %d)", path, line);
    else {
        memcpy(c, x.c, sizeof(*c));
        rc = 0;
    }
fail:
    free(x.c);
    free(x.line);
    fclose(x.f);
    return rc;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int hc_config_set(struct hc_config *c, const char *assignment, char *err, size_t errlen)
{
    char shown[64];
    char *copy = strdup(assignment);
    int rc = -1;

    if (!copy) {
        set_err(err, errlen, "%s", strerror(ENOMEM));
        return -1;
    }
    char *eq = strchr(copy, '=');
    char *dot = eq ? memchr(copy, '.', (size_t)(eq - copy)) : NULL;
    if (!dot) {
        set_err(err, errlen, "expected section.key=value, not '%s'",
                show(assignment, shown, sizeof(shown)));
        goto out;
    }
    *eq = '\0';
    *dot = '\0';
    rc = apply(c, trim(copy), trim(dot + 1), trim(eq + 1), err, errlen);
out:
    free(copy);
    return rc;
}

/* ---- finish ----------------------------------------------------------- */

static int online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 4096 ? 4096 : (int)n;
}

int hc_config_finish(struct hc_config *c, char *err, size_t errlen)
{
    char value[32];

    /* Every range again: a caller may have written a field directly. */
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        const char *field = (const char *)c + o->off;
        if (o->type == OPT_UINT) {
            unsigned v = *(const unsigned *)(const void *)field;
            if (!uint_ok(o, v)) {
                snprintf(value, sizeof(value), "%u", v);
                return bad_value(o, o->key, value, err, errlen);
            }
        } else if (o->type == OPT_LOG_LEVEL) {
            int v = *(const int *)(const void *)field;
            if (v < HC_LOG_ERROR || v > HC_LOG_DEBUG) {
                snprintf(value, sizeof(value), "%d", v);
                return bad_value(o, o->key, value, err, errlen);
            }
        }
    }

    unsigned workers = c->workers;
    if (workers == 0) {
        int n = online_cores() - 1;
        workers = n < 1 ? 1 : n > HC_CONFIG_WORKERS_MAX ? HC_CONFIG_WORKERS_MAX : (unsigned)n;
    }
    struct hc_detect_config d = {
        .window = c->window,
        .n1 = c->n1,
        .n2 = c->n2 ? c->n2 : c->window - 1,
        .default_threshold_m = c->default_threshold_m,
    };
    int rc = hc_detect_config_check(&d);
    if (rc == HC_ETHRESHOLD) {
        snprintf(value, sizeof(value), "%g", d.default_threshold_m);
        return bad_value(opt_find("detect", "default_threshold_m"),
                         "default_threshold_m", value, err, errlen);
    }
    if (rc < 0 && d.n1 > d.window) {
        set_err(err, errlen, "detect.n1 (%u) must not be greater than detect.window (%u)",
                d.n1, d.window);
        return -1;
    }
    if (rc < 0) {
        set_err(err, errlen, "detect.n2 (%u%s) must be less than %u, the number of "
                "pairs in a full window of %u", d.n2, c->n2 ? "" : ", from window - 1",
                d.window * (d.window - 1) / 2, d.window);
        return -1;
    }
    for (unsigned i = 0; i < c->n_thresholds; i++) {
        double m = c->thresholds[i].meters;
        if (!(isfinite(m) && m > 0.0 && m <= HC_THRESHOLD_MAX_M)) {
            set_err(err, errlen, "thresholds.%s must be a number of meters greater "
                    "than 0 and at most %.0f", c->thresholds[i].maker, HC_THRESHOLD_MAX_M);
            return -1;
        }
    }
    c->workers = workers;
    c->n2 = d.n2;
    return 0;
}

/* ---- output ----------------------------------------------------------- */

/* Shortest decimal that reads back as exactly m. */
static void fmt_double(double m, char *buf, size_t n)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, m);
        if (strtod(buf, NULL) == m)
            return;
    }
}

/* The value of o in c as a file would spell it (not for OPT_THRESHOLD). */
static void opt_format(const struct opt *o, const struct hc_config *c, char *buf, size_t n)
{
    const char *field = (const char *)c + o->off;
    switch (o->type) {
    case OPT_STRING:
    case OPT_IPV4:
        snprintf(buf, n, "%s", field);
        break;
    case OPT_UINT:
        snprintf(buf, n, "%u", *(const unsigned *)(const void *)field);
        break;
    case OPT_BOOL:
        snprintf(buf, n, "%s", *(const bool *)(const void *)field ? "true" : "false");
        break;
    case OPT_METERS:
        fmt_double(*(const double *)(const void *)field, buf, n);
        break;
    case OPT_LOG_LEVEL:
        snprintf(buf, n, "%s", hc_log_level_name(*(const int *)(const void *)field));
        break;
    case OPT_THRESHOLD:
        assert(!"thresholds have no single value");
        buf[0] = '\0';
        break;
    }
}

void hc_config_write(const struct hc_config *c, FILE *f)
{
    char buf[HC_CONFIG_PATH_MAX];
    fprintf(f, "; hubcapd configuration (see docs/CONFIG.md)\n");
    for (size_t s = 0; s < N_SECTIONS; s++) {
        fprintf(f, "\n[%s]\n", sections[s].name);
        for (size_t i = 0; i < N_OPTS; i++) {
            const struct opt *o = &opts[i];
            if (strcmp(o->section, sections[s].name) != 0)
                continue;
            if (o->type == OPT_THRESHOLD) {
                for (unsigned t = 0; t < c->n_thresholds; t++) {
                    fmt_double(c->thresholds[t].meters, buf, sizeof(buf));
                    fprintf(f, "%s = %s\n", c->thresholds[t].maker, buf);
                }
                continue;
            }
            opt_format(o, c, buf, sizeof(buf));
            fprintf(f, "%s = %s\n", o->key, buf);
        }
    }
}

/* Print text word-wrapped to width columns, each line indented by indent. */
static void wrap(FILE *f, const char *text, int indent, int width)
{
    const char *p = text;
    while (*p) {
        int col = indent;
        fprintf(f, "%*s", indent, "");
        bool first = true;
        while (*p) {
            size_t w = strcspn(p, " ");
            if (!first && col + 1 + (int)w > width)
                break;
            fprintf(f, "%s%.*s", first ? "" : " ", (int)w, p);
            col += (first ? 0 : 1) + (int)w;
            first = false;
            p += w;
            while (*p == ' ')
                p++;
        }
        fputc('\n', f);
    }
}

static void opt_name(const struct opt *o, char *buf, size_t n)
{
    snprintf(buf, n, "%s.%s", o->section, o->key ? o->key : "MAKER");
}

void hc_config_help(FILE *f)
{
    char name[64], range[128];
    fprintf(f, "Configuration keys. In a --config FILE, write 'key = value' lines under a\n"
               "[section] line; on the command line, --set section.key=value (repeatable,\n"
               "applied after the file). Precedence: defaults < file < --set.\n");
    for (size_t s = 0; s < N_SECTIONS; s++) {
        const struct section *sec = &sections[s];
        char doc[256];
        snprintf(doc, sizeof(doc), "%s%s%s%s", sec->doc, sec->link ? " See docs/" : "",
                 sec->link ? sec->link : "", sec->link ? "." : "");
        fprintf(f, "\n[%s]\n", sec->name);
        wrap(f, doc, 2, 79);
        for (size_t i = 0; i < N_OPTS; i++) {
            const struct opt *o = &opts[i];
            if (strcmp(o->section, sec->name) != 0)
                continue;
            opt_name(o, name, sizeof(name));
            opt_range(o, range, sizeof(range));
            if (o->def)
                fprintf(f, "  %s (default %s; %s)\n", name, o->def, range);
            else
                fprintf(f, "  %s (no default; %s)\n", name, range);
            wrap(f, o->help, 6, 79);
        }
    }
}

/* Text for a markdown table cell: '|' and '*' escaped. */
static void md_cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|' || *s == '*')
            fputc('\\', f);
        fputc(*s, f);
    }
}

static const char example_ini[] =
    "; /etc/hubcap/hubcap.ini -- keys left out keep their defaults\n"
    "[core]\n"
    "data_dir = /var/lib/hubcap\n"
    "workers = 0\n"
    "log_level = info\n"
    "\n"
    "[msgpack]\n"
    "bind = 0.0.0.0\n"
    "port = 5170\n"
    "udp = off\n"
    "max_payload = 1048576\n"
    "\n"
    "[detect]\n"
    "window = 16\n"
    "n1 = 10\n"
    "n2 = 0\n"
    "default_threshold_m = 100\n"
    "\n"
    "[store]\n"
    "commit_interval_ms = 10\n"
    "sync_interval_ms = 1000\n"
    "\n"
    "[thresholds]\n"
    "acme = 35\n"
    "globex = 62.5\n";

void hc_config_markdown(FILE *f)
{
    char range[128];
    fprintf(f,
        "# Configuration\n"
        "\n"
        "<!-- Generated by hc_config_markdown() in src/config.c. Edit the table\n"
        "     there and regenerate; test config/markdown_matches_docs fails when\n"
        "     this file and the code differ. -->\n"
        "\n"
        "hubcapd takes its settings from three places. Each overrides the one\n"
        "before it: defaults < file < `--set`.\n"
        "\n"
        "1. The defaults listed below.\n"
        "2. An INI file: `hubcapd --config FILE`.\n"
        "3. `--set section.key=value`, for example `--set msgpack.port=0` or\n"
        "   `--set thresholds.acme=35`. It may be repeated; the assignments are\n"
        "   applied after the file, in order.\n"
        "\n"
        "`--data-dir DIR` is the same as `--set core.data_dir=DIR`.\n"
        "`hubcapd --help` lists every key with its default and range.\n"
        "\n"
        "A bad key or value stops hubcapd before it starts, changes nothing, and\n"
        "says where the problem is:\n"
        "\n"
        "```text\n"
        "hubcap.ini:7: detect.window must be a whole number from 2 to 64, not 'abc'\n"
        "hubcap.ini:12: unknown key 'detect.windw' (see hubcapd --help)\n"
        "```\n"
        "\n"
        "## File format\n"
        "\n"
        "- A `[section]` line starts a section. The keys below it are written\n"
        "  without the section prefix: `window = 16` under `[detect]` is\n"
        "  `--set detect.window=16` on the command line.\n"
        "- Indentation and spaces around keys and values are ignored; there are\n"
        "  no continuation lines. A line starting with `;` or `#` is a comment,\n"
        "  and so is the rest of a line from a `;` that follows a space.\n"
        "- Whole numbers are decimal digits only. Meters may have a fraction or\n"
        "  an exponent (`62.5`, `1e3`). Booleans are `true`/`false`, `yes`/`no`,\n"
        "  `on`/`off` or `1`/`0`. Log levels and booleans ignore case; keys and\n"
        "  maker names do not.\n"
        "- A key given twice keeps its last value. In `[thresholds]`, setting a\n"
        "  maker again replaces its threshold.\n"
        "- A line holds at most %d bytes (the limit of the inih parser). Give a\n"
        "  longer `data_dir` with `--data-dir` or `--set`.\n"
        "\n"
        "## Example\n"
        "\n"
        "```ini\n"
        "%s"
        "```\n",
        INI_MAX_LINE - 2, example_ini);

    for (size_t s = 0; s < N_SECTIONS; s++) {
        const struct section *sec = &sections[s];
        fprintf(f, "\n## [%s]\n\n", sec->name);
        md_cell(f, sec->doc);
        if (sec->link)
            fprintf(f, " See [%s](%s).", sec->link, sec->link);
        fprintf(f, "\n\n| Key | Default | Range | Meaning |\n| --- | --- | --- | --- |\n");
        for (size_t i = 0; i < N_OPTS; i++) {
            const struct opt *o = &opts[i];
            if (strcmp(o->section, sec->name) != 0)
                continue;
            opt_range(o, range, sizeof(range));
            if (o->key)
                fprintf(f, "| `%s` | `%s` | ", o->key, o->def);
            else
                fprintf(f, "| *maker name* | none | ");
            md_cell(f, range);
            fprintf(f, " | ");
            md_cell(f, o->help);
            fprintf(f, " |\n");
        }
    }
}
