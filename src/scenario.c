/*
 * scenario.c — scenario files and the scenario generator (see scenario.h
 * for the model).
 *
 * Loading: inih parses the file; a reader of our own hands it one whole
 * line at a time, counting lines (the Debian build of inih tells its
 * handler no line number) and registering each section as it passes, so
 * an empty [maker NAME] still makes a maker and a repeated section is
 * caught.  Every key lives in one of two declarative tables (type, offset,
 * range) that parse the text, check the range and, in hc_scn_check, check
 * a scenario built in code the same way.
 *
 * Generating: one record per vehicle holds its generators, its current
 * session and that session's truth; a binary min-heap orders vehicles by
 * their next report.  Handing out a report never allocates.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ini.h>

#include "hubcap/error.h"
#include "hubcap/inifile.h"
#include "hubcap/rng.h"
#include "hubcap/scenario.h"
#include "hubcap/sim.h"
#include "hubcap/timefmt.h"

#define DAY_MS 86400000LL
#define HOUR_MS 3600000.0
#define TWO_PI 6.283185307179586
#define NONE UINT32_MAX
#define TIME_MAX_MS 7258118399000.0     /* 2199-12-31T23:59:59Z */
#define MULTIPATH_RUN_MAX 3

/* ---- the keys ------------------------------------------------------------- */

enum kind { K_U32, K_U64, K_DOUBLE, K_TIME, K_NAME };

struct key {
    const char *name;
    enum kind kind;
    size_t off;                 /* in struct hc_scn or struct hc_scn_maker */
    double min, max;            /* K_U64 takes any value */
};

#define S_KEY(n, k, lo, hi) { #n, k, offsetof(struct hc_scn, n), lo, hi }
#define M_KEY(n, k, lo, hi) { #n, k, offsetof(struct hc_scn_maker, n), lo, hi }

static const struct key scn_keys[] = {
    S_KEY(name, K_NAME, 1, HC_SCN_NAME_MAX),
    S_KEY(seed, K_U64, 0, 0),
    S_KEY(vehicles, K_U32, 1, HC_SCN_VEHICLES_MAX),
    S_KEY(nights, K_U32, 1, 1000),
    { "start", K_TIME, offsetof(struct hc_scn, start_ms), 0, TIME_MAX_MS },
    S_KEY(arrive_spread_h, K_DOUBLE, 0, 23),
    S_KEY(session_min_h, K_DOUBLE, 0.01, 23.99),
    S_KEY(session_max_h, K_DOUBLE, 0.01, 23.99),
    S_KEY(tow_rate, K_DOUBLE, 0, 1),
    S_KEY(tow_min_m, K_DOUBLE, 1, 100000),
    S_KEY(tow_max_m, K_DOUBLE, 1, 100000),
    S_KEY(tow_in_gap, K_DOUBLE, 0, 1),
    S_KEY(gap_rate, K_DOUBLE, 0, 1),
    S_KEY(gap_min, K_U32, 1, 10000),
    S_KEY(gap_max, K_U32, 1, 10000),
    S_KEY(calibration_seed, K_U64, 0, 0),
    S_KEY(calibration_vehicles, K_U32, 1, HC_SCN_VEHICLES_MAX),
    S_KEY(calibration_nights, K_U32, 1, 1000),
};

static const struct key maker_keys[] = {
    M_KEY(share, K_DOUBLE, 0, 1e6),
    M_KEY(sigma_m, K_DOUBLE, 0, 1000),
    M_KEY(drift_m, K_DOUBLE, 0, 100),
    M_KEY(interval_s, K_U32, 1, 86400),
    M_KEY(interval_jitter_s, K_U32, 0, 86399),
    M_KEY(missing, K_DOUBLE, 0, 1),
    M_KEY(multipath, K_DOUBLE, 0, 1),
    M_KEY(multipath_min_m, K_DOUBLE, 0.1, 100000),
    M_KEY(multipath_max_m, K_DOUBLE, 0.1, 100000),
    M_KEY(multipath_burst, K_DOUBLE, 0, 1),
};

#define N_SCN_KEYS (sizeof(scn_keys) / sizeof(scn_keys[0]))
#define N_MAKER_KEYS (sizeof(maker_keys) / sizeof(maker_keys[0]))

void hc_scn_default(struct hc_scn *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "standard");
    s->seed = 1;
    s->vehicles = 2500;
    s->nights = 4;
    s->start_ms = 1793635200000LL;      /* 2026-11-02T16:00:00Z */
    s->arrive_spread_h = 4;
    s->session_min_h = 8;
    s->session_max_h = 14;
    s->tow_rate = 0.03;
    s->tow_min_m = 100;
    s->tow_max_m = 2000;
    s->tow_in_gap = 0.25;
    s->gap_rate = 0.004;
    s->gap_min = 3;
    s->gap_max = 12;
    s->calibration_seed = 2;
    s->calibration_vehicles = 4000;
    s->calibration_nights = 1;
}

void hc_scn_maker_default(struct hc_scn_maker *m, const char *name)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->name, sizeof(m->name), "%s", name);
    m->share = 1;
    m->sigma_m = 4;
    m->drift_m = 0.3;
    m->interval_s = 300;
    m->interval_jitter_s = 20;
    m->missing = 0.02;
    m->multipath = 0.01;
    m->multipath_min_m = 30;
    m->multipath_max_m = 400;
    m->multipath_burst = 0.3;
}

size_t hc_scn_vid(uint32_t i, bool calibration, char *buf)
{
    size_t n = hc_sim_vid(i, buf);
    if (calibration)
        memcpy(buf, "CAL", 3);  /* the same digits, another prefix */
    return n;
}

uint64_t hc_scn_vehicle_nights(const struct hc_scn *s, bool calibration)
{
    return calibration ? (uint64_t)s->calibration_vehicles * s->calibration_nights
                       : (uint64_t)s->vehicles * s->nights;
}

/* ---- values --------------------------------------------------------------- */

/* Where an error is reported: "PATH:LINE: ", "PATH: " or nothing. */
struct where {
    const char *path;           /* NULL: a scenario built in code */
    char *err;
    size_t errlen;
};

static int __attribute__((format(printf, 3, 4)))
fail(const struct where *w, unsigned line, const char *fmt, ...)
{
    if (!w->err || !w->errlen)
        return HC_ECONFIG;
    int n = 0;
    if (w->path && line)
        n = snprintf(w->err, w->errlen, "%s:%u: ", w->path, line);
    else if (w->path)
        n = snprintf(w->err, w->errlen, "%s: ", w->path);
    if (n < 0 || (size_t)n >= w->errlen)
        return HC_ECONFIG;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err + n, w->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return HC_ECONFIG;
}

/* What a key accepts, for messages: "a number from 0 to 1". */
static const char *accepts(const struct key *k, char *buf, size_t len)
{
    char lo[HC_TIME_LEN], hi[HC_TIME_LEN];
    switch (k->kind) {
    case K_U32:
        snprintf(buf, len, "a whole number from %.0f to %.0f", k->min, k->max);
        break;
    case K_U64:
        snprintf(buf, len, "a whole number from 0 to %llu", (unsigned long long)UINT64_MAX);
        break;
    case K_DOUBLE:
        snprintf(buf, len, "a number from %g to %g", k->min, k->max);
        break;
    case K_TIME:
        snprintf(buf, len, "a UTC time such as 2026-11-02T16:00:00Z, from %s to %s",
                 hc_time_format((int64_t)k->min, 0, lo), hc_time_format((int64_t)k->max, 0, hi));
        break;
    case K_NAME:
        snprintf(buf, len, "%.0f to %.0f printable ASCII characters", k->min, k->max);
        break;
    }
    return buf;
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e)
            return false;
    return true;
}

/* The value of a key as a number, for its range check. */
static double value_of(const struct key *k, const void *base)
{
    const char *p = (const char *)base + k->off;
    switch (k->kind) {
    case K_U32: return *(const uint32_t *)(const void *)p;
    case K_DOUBLE: return *(const double *)(const void *)p;
    case K_TIME: return (double)*(const int64_t *)(const void *)p;
    case K_NAME: return printable(p) ? (double)strlen(p) : -1;
    case K_U64: break;
    }
    return 0;
}

static bool in_range(const struct key *k, double v)
{
    return k->kind == K_U64 || (isfinite(v) && v >= k->min && v <= k->max);
}

/* "2026-11-02T16:00:00Z" and nothing else: strptime alone would take
 * "2026-11-2T16:0:0Z" or 31 November, but only the canonical form of a
 * real time formats back to the same text. */
static int parse_time(const char *s, int64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || strcmp(end, "Z") != 0)
        return -1;
    *ms = (int64_t)timegm(&tm) * 1000;
    char back[HC_TIME_LEN];
    return strcmp(hc_time_format(*ms, 0, back), s) == 0 ? 0 : -1;
}

static int parse_uint(const char *s, uint64_t *v)
{
    if (*s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return *end == '\0' && errno == 0 ? 0 : -1;
}

/* Parse text into the key's field at base: 0, or -1 when it does not
 * parse or is out of range (nothing stored then). */
static int set_value(const struct key *k, void *base, const char *text)
{
    char *p = (char *)base + k->off;
    uint64_t u = 0;
    double d = 0;
    int64_t t = 0;
    char *end;
    switch (k->kind) {
    case K_U32:
    case K_U64:
        if (parse_uint(text, &u) < 0 || !in_range(k, (double)u))
            return -1;
        if (k->kind == K_U32)
            *(uint32_t *)(void *)p = (uint32_t)u;
        else
            *(uint64_t *)(void *)p = u;
        return 0;
    case K_DOUBLE:
        errno = 0;
        d = strtod(text, &end);
        if (*text == '\0' || *end != '\0' || errno || !in_range(k, d))
            return -1;
        *(double *)(void *)p = d;
        return 0;
    case K_TIME:
        if (parse_time(text, &t) < 0 || !in_range(k, (double)t))
            return -1;
        *(int64_t *)(void *)p = t;
        return 0;
    case K_NAME:
        if (!printable(text) || !in_range(k, (double)strlen(text)))
            return -1;
        memcpy(p, text, strlen(text) + 1);
        return 0;
    }
    return -1;
}

static const struct key *find_key(const struct key *keys, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(keys[i].name, name))
            return &keys[i];
    return NULL;
}

static void key_list(const struct key *keys, size_t n, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? ", " : "", keys[i].name);
}

/* ---- consistency ---------------------------------------------------------- */

/* Lines each key was set on (0: its default), when checking a file. */
struct lines {
    unsigned scn[N_SCN_KEYS];
    unsigned maker[HC_SCN_MAKERS_MAX][N_MAKER_KEYS];
    unsigned section[HC_SCN_MAKERS_MAX];    /* each [maker NAME] */
};

static unsigned later(unsigned a, unsigned b)
{
    return a > b ? a : b;
}

static unsigned scn_line(const struct lines *l, const char *key)
{
    return l ? l->scn[find_key(scn_keys, N_SCN_KEYS, key) - scn_keys] : 0;
}

static unsigned maker_line(const struct lines *l, unsigned m, const char *key)
{
    return l ? later(l->section[m], l->maker[m][find_key(maker_keys, N_MAKER_KEYS, key) -
                                                 maker_keys]) : 0;
}

/* 0 if name can be a maker's (it goes into reports and a CSV column
 * unquoted), else HC_ECONFIG and why. */
static int check_maker_name(const struct where *w, unsigned line, const char *name)
{
    size_t n = strlen(name);
    if (n >= 1 && n <= HC_MAKER_MAX && strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                    "abcdefghijklmnopqrstuvwxyz"
                                                    "0123456789._-") == n)
        return 0;
    return fail(w, line, "maker name '%s' wants 1 to %d letters, digits, '.', '_' or '-'",
                name, HC_MAKER_MAX);
}

static int check_ranges(const struct key *keys, size_t n, const void *base,
                        const char *section, const struct where *w)
{
    char buf[128];
    for (size_t i = 0; i < n; i++)
        if (!in_range(&keys[i], value_of(&keys[i], base)))
            return fail(w, 0, "%s%s wants %s", section, keys[i].name,
                        accepts(&keys[i], buf, sizeof(buf)));
    return 0;
}

static int check_maker(const struct hc_scn *s, unsigned i, const struct lines *l,
                       const struct where *w)
{
    const struct hc_scn_maker *m = &s->makers[i];
    if (check_maker_name(w, l ? l->section[i] : 0, m->name) < 0)
        return HC_ECONFIG;
    for (unsigned j = 0; j < i; j++)
        if (!strcmp(s->makers[j].name, m->name))
            return fail(w, l ? l->section[i] : 0, "maker '%s' is given twice", m->name);
    char sect[HC_MAKER_MAX + 12];
    snprintf(sect, sizeof(sect), "[maker %s] ", m->name);
    int rc = check_ranges(maker_keys, N_MAKER_KEYS, m, sect, w);
    if (rc == 0 && m->interval_jitter_s >= m->interval_s)
        rc = fail(w, later(maker_line(l, i, "interval_s"), maker_line(l, i, "interval_jitter_s")),
                  "%sinterval_jitter_s (%u) must be less than interval_s (%u)", sect,
                  m->interval_jitter_s, m->interval_s);
    if (rc == 0 && m->multipath_min_m > m->multipath_max_m)
        rc = fail(w, later(maker_line(l, i, "multipath_min_m"), maker_line(l, i, "multipath_max_m")),
                  "%smultipath_min_m (%g) must not exceed multipath_max_m (%g)", sect,
                  m->multipath_min_m, m->multipath_max_m);
    return rc;
}

static int check_order(const struct where *w, const struct lines *l, const char *lo_key,
                       double lo, const char *hi_key, double hi)
{
    if (lo <= hi)
        return 0;
    return fail(w, later(scn_line(l, lo_key), scn_line(l, hi_key)),
                "%s (%g) must not exceed %s (%g)", lo_key, lo, hi_key, hi);
}

/* Everything hc_scn_check promises; l gives the lines of a file's keys. */
static int check_all(const struct hc_scn *s, const struct lines *l, const struct where *w)
{
    int rc = check_ranges(scn_keys, N_SCN_KEYS, s, "", w);
    if (rc == 0)
        rc = check_order(w, l, "session_min_h", s->session_min_h, "session_max_h", s->session_max_h);
    if (rc == 0)
        rc = check_order(w, l, "tow_min_m", s->tow_min_m, "tow_max_m", s->tow_max_m);
    if (rc == 0)
        rc = check_order(w, l, "gap_min", s->gap_min, "gap_max", s->gap_max);
    if (rc == 0 && !(s->arrive_spread_h + s->session_max_h < 24))
        rc = fail(w, later(scn_line(l, "arrive_spread_h"), scn_line(l, "session_max_h")),
                  "arrive_spread_h + session_max_h (%g + %g) must be less than 24, so that "
                  "every session ends before the next night's arrival",
                  s->arrive_spread_h, s->session_max_h);
    if (rc == 0 && (s->n_makers < 1 || s->n_makers > HC_SCN_MAKERS_MAX))
        rc = fail(w, 0, "%u makers: give 1 to %d [maker NAME] sections", s->n_makers,
                  HC_SCN_MAKERS_MAX);
    double share = 0;
    for (unsigned i = 0; rc == 0 && i < s->n_makers; i++) {
        rc = check_maker(s, i, l, w);
        share += s->makers[i].share;
    }
    if (rc == 0 && !(share > 0))
        rc = fail(w, 0, "every maker has share 0: give at least one a share above 0");
    return rc;
}

int hc_scn_check(const struct hc_scn *s, char *err, size_t errlen)
{
    struct where w = { NULL, err, errlen };
    return check_all(s, NULL, &w);
}

/* ---- files ---------------------------------------------------------------- */

struct load {
    struct hc_ini_lines rd;     /* first: the stream ini_parse_stream reads */
    struct hc_scn *s;
    struct where w;
    unsigned scenario_line;     /* the [scenario] section */
    struct lines lines;
};

static int maker_index(const struct hc_scn *s, const char *name)
{
    for (unsigned i = 0; i < s->n_makers; i++)
        if (!strcmp(s->makers[i].name, name))
            return (int)i;
    return -1;
}

/* The maker name of a section "maker NAME", or NULL if it is not one. */
static const char *maker_section(const char *section)
{
    if (strncmp(section, "maker", 5) != 0 || (section[5] != ' ' && section[5] != '\0'))
        return NULL;
    section += 5;
    while (*section == ' ')
        section++;
    return section;
}

/* Register section name, met on line at: 0, or HC_ECONFIG (said). */
static int add_section(struct load *x, const char *name, unsigned at)
{
    const char *mk = maker_section(name);
    if (!strcmp(name, "scenario")) {
        if (x->scenario_line)
            return fail(&x->w, at, "[scenario] appears twice (first on line %u)",
                        x->scenario_line);
        x->scenario_line = at;
        return 0;
    }
    if (!mk)
        return fail(&x->w, at, "unknown section [%s]: the sections are [scenario] and "
                    "[maker NAME]", name);
    if (check_maker_name(&x->w, at, mk) < 0)
        return HC_ECONFIG;
    int i = maker_index(x->s, mk);
    if (i >= 0)
        return fail(&x->w, at, "[maker %s] appears twice (first on line %u)", mk,
                    x->lines.section[i]);
    if (x->s->n_makers == HC_SCN_MAKERS_MAX)
        return fail(&x->w, at, "too many makers: at most %d", HC_SCN_MAKERS_MAX);
    x->lines.section[x->s->n_makers] = at;
    hc_scn_maker_default(&x->s->makers[x->s->n_makers++], mk);
    return 0;
}

/* A section header on the current line (p at its '['): register it.  A
 * header without its ']' is left to inih, which reports it. */
static void see_section(struct hc_ini_lines *r, const char *p)
{
    struct load *x = (struct load *)r;  /* rd is its first member */
    const char *close = strchr(p, ']');
    char name[256];
    if (!close || (size_t)(close - p - 1) >= sizeof(name))
        return;
    memcpy(name, p + 1, (size_t)(close - p - 1));
    name[close - p - 1] = '\0';
    if (add_section(x, name, r->lineno) < 0)
        r->err_line = r->lineno;
}

/* Where a key of section goes: its table, the struct it fills and the
 * lines its keys were set on.  0, or -1 (the error said) if section is not
 * one of ours. */
struct target {
    const struct key *keys;
    size_t n;
    void *base;
    unsigned *lines;
};

static int target_of(struct load *x, const char *section, const char *name, struct target *t)
{
    const char *mk = maker_section(section);
    if (!*section) {
        fail(&x->w, x->rd.lineno, "'%s' is outside any section: put it under [scenario] or "
             "[maker NAME]", name);
        return -1;
    }
    if (!mk) {
        *t = (struct target){ scn_keys, N_SCN_KEYS, x->s, x->lines.scn };
        return 0;
    }
    int i = maker_index(x->s, mk);
    if (i < 0) {                /* see_section made every maker it passed */
        fail(&x->w, x->rd.lineno, "[%s] was not read as a section", section);
        return -1;
    }
    *t = (struct target){ maker_keys, N_MAKER_KEYS, &x->s->makers[i], x->lines.maker[i] };
    return 0;
}

/* One key = value: 1 when taken, 0 (with err_line set) when not. */
static int load_handler(void *user, const char *section, const char *name, const char *value)
{
    struct load *x = user;
    struct target t;
    char text[512];
    if (x->rd.err_line)
        return 0;
    x->rd.err_line = x->rd.lineno;
    if (target_of(x, section, name, &t) < 0)
        return 0;
    const struct key *k = find_key(t.keys, t.n, name);
    unsigned *line = k ? &t.lines[k - t.keys] : NULL;
    if (!k) {
        key_list(t.keys, t.n, text, sizeof(text));
        fail(&x->w, x->rd.lineno, "unknown key '%s' in [%s]; the keys are: %s", name, section, text);
    } else if (*line) {
        fail(&x->w, x->rd.lineno, "%s is given twice in [%s] (first on line %u)", name, section,
             *line);
    } else if (set_value(k, t.base, value) < 0) {
        fail(&x->w, x->rd.lineno, "%s wants %s, not '%s'", name, accepts(k, text, sizeof(text)),
             value);
    } else {
        *line = x->rd.lineno;
        x->rd.err_line = 0;
        return 1;
    }
    return 0;
}

int hc_scn_load(const char *path, struct hc_scn *s, char *err, size_t errlen)
{
    struct load *x = calloc(1, sizeof(*x));
    if (!x) {
        snprintf(err, errlen, "cannot load %s: %s", path, strerror(ENOMEM));
        return -ENOMEM;
    }
    int rc = 0;
    hc_scn_default(s);
    x->s = s;
    x->w = (struct where){ path, err, errlen };
    x->rd.f = fopen(path, "r");
    x->rd.section = see_section;
    if (!x->rd.f) {
        rc = -errno;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        free(x);
        return rc;
    }
    int line = ini_parse_stream(hc_ini_read, &x->rd, load_handler, x);
    if (ferror(x->rd.f)) {
        rc = -(x->rd.read_errno ? x->rd.read_errno : EIO);
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(-rc));
    } else if (line > 0 && (x->rd.err_line == 0 || (unsigned)line < x->rd.err_line)) {
        rc = fail(&x->w, (unsigned)line, "expected '[section]' or 'key = value'");
    } else if (x->rd.err_line) {
        rc = x->rd.msg[0] ? fail(&x->w, x->rd.err_line, "%s", x->rd.msg)
                          : HC_ECONFIG;  /* the handler's message is in err already */
    } else if (line < 0) {
        rc = -ENOMEM;
        snprintf(err, errlen, "cannot parse %s: %s", path, strerror(ENOMEM));
    } else if (s->n_makers == 0) {
        rc = fail(&x->w, 0, "no makers: give 1 to %d [maker NAME] sections", HC_SCN_MAKERS_MAX);
    } else {
        rc = check_all(s, &x->lines, &x->w);
    }
    hc_ini_lines_free(&x->rd);
    fclose(x->rd.f);
    free(x);
    return rc;
}

/* ---- the generator -------------------------------------------------------- */

/* Cities the fleet lives in; homes spread within 20 km of one. */
static const double cities[][2] = {
    { 22.543, 114.058 },    /* Shenzhen */
    { 52.520, 13.405 },     /* Berlin */
    { -23.550, -46.633 },   /* Sao Paulo */
    { 39.739, -104.990 },   /* Denver */
    { 69.649, 18.956 },     /* Tromso, above the Arctic circle */
    { -16.830, 179.990 },   /* Taveuni, Fiji: homes on both sides of the antimeridian */
};

enum { V_IGNITION, V_PARKED, V_DONE };

struct sent {                   /* a sent slot: its index and time */
    uint32_t slot;
    int64_t t;
};

struct veh {
    struct hc_rng rng;          /* everything but the slot plan */
    struct hc_rng plan;         /* this session's slots: times and losses */
    uint64_t plan_seed;         /* replays the plan */
    double home_lat, home_lon;
    double lat, lon;            /* this session's spot */
    double tow_lat, tow_lon;    /* the spot after the tow */
    double drift_n, drift_e;    /* metres */
    int64_t next_ts;            /* the next report: the heap key */
    int64_t t;                  /* time of the last slot planned */
    int64_t end;                /* no slot later than this */
    int64_t gap_before;         /* time of the slot before the forced gap */
    uint32_t night;
    uint32_t slot;              /* slots planned so far this session */
    uint32_t slots;             /* slots in the session */
    uint32_t last_slot;         /* the last sent slot, NONE: nothing sent */
    uint32_t gap_left;          /* slots still lost in a gap */
    uint32_t gap_at, gap_len;   /* the gap forced around a tow; len 0: none */
    uint8_t maker, state, mp_run, mp_more;
    struct hc_scn_session truth;
};

struct hc_scn_gen {
    struct hc_scn s;
    bool calibration;
    uint32_t vehicles, nights;
    struct veh *v;
    uint32_t *heap;             /* vehicle numbers, earliest next report first */
    uint32_t n_heap;
    char maker_len[HC_SCN_MAKERS_MAX];
    bool completed;             /* the last report completed a session: */
    struct hc_scn_session done; /* its truth */
    struct hc_scn_stats stats;
};

/* ---- one session's slots ---- */

static void restart_plan(struct veh *v)
{
    hc_rng_seed(&v->plan, v->plan_seed);
    v->t = v->truth.start_ms;
    v->slot = 0;
    v->gap_left = 0;
}

/* Plan the next slot: its time in v->t and 1 with *lost set, or 0 when the
 * session has no more slots.  Both passes over a session call this in the
 * same order, so they see the same slots. */
static int plan_slot(const struct hc_scn *s, const struct hc_scn_maker *m, struct veh *v,
                     bool *lost)
{
    uint64_t j = (uint64_t)m->interval_jitter_s * 1000;
    v->t += (int64_t)((uint64_t)m->interval_s * 1000 - j + hc_rng_below(&v->plan, 2 * j + 1));
    if (v->t > v->end)
        return 0;
    v->slot++;
    if (v->gap_left) {
        v->gap_left--;
        *lost = true;
    } else if (hc_rng_unit(&v->plan) < s->gap_rate) {
        v->gap_left = s->gap_min + (uint32_t)hc_rng_below(&v->plan, s->gap_max - s->gap_min + 1) - 1;
        *lost = true;
    } else {
        *lost = hc_rng_unit(&v->plan) < m->missing;
    }
    return 1;
}

/* The first pass: how many slots are sent, the 3rd sent and the last 4
 * (sent slot k is kept in last4[k % 4]).  Counts the session's slots. */
static uint32_t survey(const struct hc_scn *s, const struct hc_scn_maker *m, struct veh *v,
                       struct sent *third, struct sent last4[4])
{
    uint32_t n = 0;
    bool lost;
    restart_plan(v);
    while (plan_slot(s, m, v, &lost)) {
        if (lost)
            continue;
        struct sent at = { v->slot - 1, v->t };
        if (++n == 3)
            *third = at;
        last4[n % 4] = at;
    }
    v->slots = v->slot;
    return n;
}

/* Maybe a tow (the session's sent slots are known: n of them). */
static void plan_tow(const struct hc_scn *s, struct veh *v, uint32_t n,
                     const struct sent *third, const struct sent last4[4])
{
    double meters = hc_rng_range(&v->rng, s->tow_min_m, s->tow_max_m);
    double bearing = hc_rng_range(&v->rng, 0, TWO_PI);
    bool in_gap = hc_rng_unit(&v->rng) < s->tow_in_gap;
    uint32_t len = s->gap_min + (uint32_t)hc_rng_below(&v->rng, s->gap_max - s->gap_min + 1);
    if (n < 7)
        return;                 /* no room for 3 fixes before and 4 after */
    const struct sent *after = &last4[(n - 3) % 4];   /* the 4th sent from the end */
    if (in_gap) {
        /* The gap's first slot a: after the 3rd sent, and the gap over by
         * the 4th sent from the end.  The moment is drawn in next_sent. */
        if (after->slot < third->slot + 1 + len)
            return;
        uint32_t lo = third->slot + 1, hi = after->slot - len;
        v->gap_at = lo + (uint32_t)hc_rng_below(&v->rng, hi - lo + 1);
        v->gap_len = len;
        v->truth.tow_in_gap = true;
    } else {
        v->truth.tow_ms = third->t + 1 +
                          (int64_t)hc_rng_below(&v->rng, (uint64_t)(after->t - third->t - 1));
    }
    v->truth.tow_m = meters;
    hc_sim_offset(v->lat, v->lon, meters, bearing, &v->tow_lat, &v->tow_lon);
}

/* Set up night v->night (or finish the vehicle): arrival, spot, length,
 * the first pass over its slots, the tow. */
static void begin_night(struct hc_scn_gen *g, struct veh *v, uint32_t vehicle)
{
    const struct hc_scn *s = &g->s;
    const struct hc_scn_maker *m = &s->makers[v->maker];
    if (v->night == g->nights) {
        v->state = V_DONE;
        return;
    }
    int64_t arrive = s->start_ms + (int64_t)v->night * DAY_MS +
                     (int64_t)(hc_rng_unit(&v->rng) * s->arrive_spread_h * HOUR_MS);
    double d = hc_rng_range(&v->rng, 0, 2000), b = hc_rng_range(&v->rng, 0, TWO_PI);
    hc_sim_offset(v->home_lat, v->home_lon, d, b, &v->lat, &v->lon);
    v->end = arrive + (int64_t)(hc_rng_range(&v->rng, s->session_min_h, s->session_max_h) * HOUR_MS);
    v->plan_seed = hc_rng_next(&v->rng);
    memset(&v->truth, 0, sizeof(v->truth));
    v->truth.vehicle = vehicle;
    v->truth.night = v->night;
    v->truth.maker = v->maker;
    v->truth.start_ms = v->truth.end_ms = arrive;
    v->drift_n = v->drift_e = 0;
    v->mp_run = v->mp_more = 0;
    v->gap_len = 0;

    struct sent third = { 0, 0 }, last4[4];
    memset(last4, 0, sizeof(last4));
    uint32_t n = survey(s, m, v, &third, last4);
    v->last_slot = n ? last4[n % 4].slot : NONE;
    if (!g->calibration && hc_rng_unit(&v->rng) < s->tow_rate)
        plan_tow(s, v, n, &third, last4);
    v->state = V_IGNITION;
    v->next_ts = arrive;
}

static void drift_step(const struct hc_scn_maker *m, struct veh *v)
{
    if (m->drift_m > 0) {
        v->drift_n += m->drift_m * hc_rng_normal(&v->rng);
        v->drift_e += m->drift_m * hc_rng_normal(&v->rng);
    }
}

/* The second pass: plan slots until one is sent (1, v->next_ts set) or
 * the session has no more (0).  Lays the forced gap over the plan and
 * draws the moment of a tow inside it once the gap's far end is known. */
static int next_sent(struct hc_scn_gen *g, struct veh *v)
{
    const struct hc_scn_maker *m = &g->s.makers[v->maker];
    bool lost;
    while (plan_slot(&g->s, m, v, &lost)) {
        uint32_t k = v->slot - 1;
        drift_step(m, v);
        if (v->gap_len) {
            if (k + 1 == v->gap_at)
                v->gap_before = v->t;
            if (k >= v->gap_at && k - v->gap_at < v->gap_len)
                lost = true;
            if (k - v->gap_at == v->gap_len)
                v->truth.tow_ms = v->gap_before + 1 +
                    (int64_t)hc_rng_below(&v->rng, (uint64_t)(v->t - v->gap_before - 1));
        }
        /* No report is ever at the tow moment, so "before" and "after"
         * need no tie rule: a moment on a slot's time moves 1 ms earlier
         * (slots are 1 s apart or more, so it stays after the one before). */
        if (v->t == v->truth.tow_ms)
            v->truth.tow_ms--;
        if (!lost) {
            v->next_ts = v->t;
            return 1;
        }
    }
    return 0;
}

/* Whether this sent fix is an outlier (see the model in scenario.h). */
static bool multipath(const struct hc_scn_maker *m, struct veh *v)
{
    bool mp = v->mp_more;
    if (!mp) {
        v->mp_run = 0;
        mp = hc_rng_unit(&v->rng) < m->multipath;
    }
    if (mp) {
        v->mp_run++;
        v->mp_more = v->mp_run < MULTIPATH_RUN_MAX && hc_rng_unit(&v->rng) < m->multipath_burst;
    }
    return mp;
}

/* A parked fix's reported position around the true spot (lat, lon). */
static void position(const struct hc_scn_maker *m, struct veh *v, bool mp, double lat,
                     double lon, struct hc_report *r)
{
    double n = v->drift_n, e = v->drift_e;
    if (mp) {
        double size = m->multipath_min_m *
                      exp(hc_rng_unit(&v->rng) * log(m->multipath_max_m / m->multipath_min_m));
        double b = hc_rng_range(&v->rng, 0, TWO_PI);
        n += size * cos(b);
        e += size * sin(b);
    } else {
        n += m->sigma_m * hc_rng_normal(&v->rng);
        e += m->sigma_m * hc_rng_normal(&v->rng);
    }
    hc_sim_offset(lat, lon, sqrt(n * n + e * e), atan2(e, n), &r->lat, &r->lon);
}

/* Fill r (and fix) with vehicle i's next report. */
static void emit(struct hc_scn_gen *g, uint32_t i, struct hc_report *r, struct hc_scn_fix *fix)
{
    struct veh *v = &g->v[i];
    const struct hc_scn_maker *m = &g->s.makers[v->maker];
    struct hc_scn_session *t = &v->truth;
    bool mp = false, moved = false;
    memset(r, 0, sizeof(*r));
    r->vid_len = (uint8_t)hc_scn_vid(i, g->calibration, r->vid);
    r->maker_len = (uint8_t)g->maker_len[v->maker];
    memcpy(r->maker, m->name, r->maker_len);
    r->ts = v->next_ts;
    if (v->state == V_IGNITION) {
        r->acc = 1;
        r->lat = v->lat;
        r->lon = v->lon;
    } else {
        moved = t->tow_ms && r->ts > t->tow_ms;
        if (moved && !t->moved_ms)
            t->moved_ms = r->ts;
        mp = multipath(m, v);
        position(m, v, mp, moved ? v->tow_lat : v->lat, moved ? v->tow_lon : v->lon, r);
        t->fixes++;
        t->after_fixes += moved;
        t->multipath_fixes += mp;
        t->end_ms = r->ts;
        g->stats.fixes++;
        g->stats.multipath += mp;
        g->stats.maker[v->maker].fixes++;
        g->stats.maker[v->maker].multipath += mp;
    }
    g->stats.reports++;
    if (fix) {
        fix->vehicle = i;
        fix->night = v->night;
        fix->maker = v->maker;
        fix->multipath = mp;
        fix->moved = moved;
        fix->true_lat = moved ? v->tow_lat : v->lat;
        fix->true_lon = moved ? v->tow_lon : v->lon;
    }
}

/* The session of vehicle i is over: hand out its truth, begin the next. */
static void complete(struct hc_scn_gen *g, uint32_t i)
{
    struct veh *v = &g->v[i];
    struct hc_scn_stats *st = &g->stats;
    st->sessions++;
    st->tows += v->truth.tow_ms != 0;
    st->tows_in_gap += v->truth.tow_in_gap;
    st->lost += v->slots - v->truth.fixes;
    st->maker[v->maker].lost += v->slots - v->truth.fixes;
    g->completed = true;
    g->done = v->truth;
    v->night++;
    begin_night(g, v, i);
}

/* After vehicle i's report went out: find its next one. */
static void advance(struct hc_scn_gen *g, uint32_t i)
{
    struct veh *v = &g->v[i];
    if (v->state == V_IGNITION) {
        restart_plan(v);
        if (v->last_slot == NONE) {
            complete(g, i);
            return;
        }
        v->state = V_PARKED;
    } else if (v->slot - 1 == v->last_slot) {
        complete(g, i);
        return;
    }
    int more = next_sent(g, v);
    (void)more;
    assert(more);               /* the last sent slot is still ahead */
}

/* ---- the heap ---- */

static bool earlier(const struct hc_scn_gen *g, uint32_t a, uint32_t b)
{
    int64_t ta = g->v[a].next_ts, tb = g->v[b].next_ts;
    return ta < tb || (ta == tb && a < b);
}

static void sift_down(struct hc_scn_gen *g, uint32_t at)
{
    uint32_t *h = g->heap, n = g->n_heap;
    for (;;) {
        uint32_t c = 2 * at + 1;
        if (c >= n)
            return;
        if (c + 1 < n && earlier(g, h[c + 1], h[c]))
            c++;
        if (!earlier(g, h[c], h[at]))
            return;
        uint32_t tmp = h[c];
        h[c] = h[at];
        h[at] = tmp;
        at = c;
    }
}

/* ---- the public side ---- */

static void init_vehicle(struct hc_scn_gen *g, uint32_t i, double share_total)
{
    struct veh *v = &g->v[i];
    uint64_t key = (uint64_t)i << 1 | g->calibration;
    hc_rng_seed(&v->rng, (g->calibration ? g->s.calibration_seed : g->s.seed) ^
                         hc_rng_splitmix(&key));
    const double *city = cities[hc_rng_below(&v->rng, sizeof(cities) / sizeof(cities[0]))];
    double d = hc_rng_range(&v->rng, 0, 20000), b = hc_rng_range(&v->rng, 0, TWO_PI);
    hc_sim_offset(city[0], city[1], d, b, &v->home_lat, &v->home_lon);
    double u = hc_rng_unit(&v->rng) * share_total, acc = 0;
    unsigned k = 0;
    for (; k + 1 < g->s.n_makers; k++) {
        acc += g->s.makers[k].share;
        if (u < acc)
            break;
    }
    v->maker = (uint8_t)k;
    g->stats.maker[k].vehicles++;
    v->night = 0;
    begin_night(g, v, i);
}

int hc_scn_gen_new(const struct hc_scn *s, bool calibration, struct hc_scn_gen **out)
{
    if (hc_scn_check(s, NULL, 0) < 0)
        return -EINVAL;
    struct hc_scn_gen *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->s = *s;
    g->calibration = calibration;
    g->vehicles = calibration ? s->calibration_vehicles : s->vehicles;
    g->nights = calibration ? s->calibration_nights : s->nights;
    g->v = calloc(g->vehicles, sizeof(*g->v));
    g->heap = calloc(g->vehicles, sizeof(*g->heap));
    if (!g->v || !g->heap) {
        hc_scn_gen_free(g);
        return -ENOMEM;
    }
    double share = 0;
    for (unsigned k = 0; k < s->n_makers; k++) {
        share += s->makers[k].share;
        g->maker_len[k] = (char)strlen(s->makers[k].name);
    }
    for (uint32_t i = 0; i < g->vehicles; i++) {
        init_vehicle(g, i, share);
        g->heap[i] = i;
    }
    g->n_heap = g->vehicles;
    for (uint32_t i = g->n_heap / 2; i-- > 0;)
        sift_down(g, i);
    *out = g;
    return 0;
}

void hc_scn_gen_free(struct hc_scn_gen *g)
{
    if (!g)
        return;
    free(g->v);
    free(g->heap);
    free(g);
}

int hc_scn_gen_next(struct hc_scn_gen *g, struct hc_report *r, struct hc_scn_fix *fix)
{
    g->completed = false;
    if (g->n_heap == 0)
        return 0;
    uint32_t i = g->heap[0];
    emit(g, i, r, fix);
    advance(g, i);
    if (g->v[i].state == V_DONE)
        g->heap[0] = g->heap[--g->n_heap];
    sift_down(g, 0);
    return 1;
}

const struct hc_scn_session *hc_scn_gen_session(const struct hc_scn_gen *g)
{
    return g->completed ? &g->done : NULL;
}

const struct hc_scn_stats *hc_scn_gen_stats(const struct hc_scn_gen *g)
{
    return &g->stats;
}
