/*
 * detect.c — moved-vehicle detection (see detect.h for the rules).
 *
 * The maker table is a fixed array with an open-addressing index over the
 * names; entries are never removed (unset only drops a maker's own
 * threshold), so an index held in a vehicle record stays valid.  Every
 * threshold change bumps d->gen; a vehicle whose pair count was made under
 * an older generation recounts its window (O(W^2), once) before its next
 * position is added.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hubcap/detect.h"
#include "hubcap/error.h"
#include "hubcap/geo.h"
#include "hubcap/hash.h"

#define INDEX_SLOTS (2 * HC_MAKERS_MAX)   /* power of two, load <= 1/2 */

static const char *const rule_names[HC_RULES] = { "seed", "robust" };

const char *hc_rule_name(enum hc_rule r)
{
    return (unsigned)r < HC_RULES ? rule_names[r] : "unknown";
}

int hc_rule_parse(const char *s, size_t len, enum hc_rule *out)
{
    for (unsigned i = 0; i < HC_RULES; i++)
        if (strlen(rule_names[i]) == len && memcmp(rule_names[i], s, len) == 0) {
            *out = (enum hc_rule)i;
            return 0;
        }
    return HC_ECONFIG;
}

void hc_detect_config_default(struct hc_detect_config *c)
{
    c->window = 16;
    c->n1 = 10;
    c->n2 = 15;
    c->default_threshold_m = 100.0;
    c->rule = HC_RULE_ROBUST;
    c->robust_after = 4;
    c->robust_before = 3;
    c->robust_share = 0.8;
    c->robust_tight = 0.25;
    c->robust_far = 4.0;
}

static int threshold_ok(double m)
{
    return isfinite(m) && m > 0.0 && m <= HC_THRESHOLD_MAX_M;
}

int hc_detect_config_check(const struct hc_detect_config *c)
{
    if (c->window < 2 || c->window > HC_WINDOW_MAX)
        return HC_ECONFIG;
    if (c->n1 < 2 || c->n1 > c->window)
        return HC_ECONFIG;
    if (c->n2 >= c->window * (c->window - 1) / 2)
        return HC_ECONFIG;
    if ((unsigned)c->rule >= HC_RULES)
        return HC_ECONFIG;
    if (c->robust_after < 4 || c->robust_after > HC_WINDOW_MAX || c->robust_before < 2 ||
        c->robust_before > HC_WINDOW_MAX)
        return HC_ECONFIG;
    if (c->rule == HC_RULE_ROBUST && !hc_detect_robust_fits(c))
        return HC_ECONFIG;
    if (!(c->robust_share > 0.0 && c->robust_share <= 1.0) ||
        !(c->robust_tight > 0.0 && c->robust_tight <= 1.0) ||
        !(c->robust_far >= 1.0 && c->robust_far <= 100.0))
        return HC_ECONFIG;
    if (!threshold_ok(c->default_threshold_m))
        return HC_ETHRESHOLD;
    return 0;
}

int hc_report_check(const struct hc_report *r)
{
    if (r->vid_len == 0 || r->vid_len > HC_VID_MAX)
        return HC_EVID;
    if (r->maker_len > HC_MAKER_MAX)
        return HC_EMAKER;
    if (r->ts < 0 || r->ts >= HC_TS_MAX)
        return HC_ERANGE_TS;
    if (!hc_geo_valid_lat(r->lat))
        return HC_ERANGE_LAT;
    if (!hc_geo_valid_lon(r->lon))
        return HC_ERANGE_LON;
    return 0;
}

static void maker_threshold(struct hc_maker *m, double meters)
{
    m->threshold_m = meters;
    m->limit = hc_geo_chord2_limit(meters);
}

int hc_detector_init(struct hc_detector *d, const struct hc_detect_config *cfg)
{
    int rc = hc_detect_config_check(cfg);
    if (rc < 0)
        return rc;
    memset(d, 0, sizeof(*d));
    d->cfg = *cfg;
    d->kernel = hc_kernel_best();
    d->makers = calloc(HC_MAKERS_MAX, sizeof(*d->makers));
    d->index = calloc(INDEX_SLOTS, sizeof(*d->index));
    if (!d->makers || !d->index) {
        hc_detector_free(d);
        return -ENOMEM;
    }
    d->n_makers = 1;            /* entry 0: the unknown maker, never indexed */
    maker_threshold(&d->makers[0], cfg->default_threshold_m);
    d->makers[0].rule = (uint8_t)cfg->rule;
    return 0;
}

void hc_detector_free(struct hc_detector *d)
{
    if (!d)
        return;
    free(d->makers);
    free(d->index);
    d->makers = NULL;
    d->index = NULL;
}

/* Index slot where name is, or the empty slot where it would go. */
static size_t index_probe(const struct hc_detector *d, const char *name, size_t len)
{
    size_t i = hc_hash(name, len) & (INDEX_SLOTS - 1);
    for (;;) {
        uint16_t e = d->index[i];
        if (e == 0)
            return i;
        const struct hc_maker *m = &d->makers[e - 1];
        if (m->len == len && memcmp(m->name, name, len) == 0)
            return i;
        i = (i + 1) & (INDEX_SLOTS - 1);
    }
}

int hc_detector_maker(struct hc_detector *d, const char *name, size_t len)
{
    if (len == 0)
        return 0;
    if (len > HC_MAKER_MAX)
        return HC_EMAKER;
    size_t slot = index_probe(d, name, len);
    if (d->index[slot])
        return d->index[slot] - 1;
    if (d->n_makers == HC_MAKERS_MAX)
        return HC_EFULL;
    unsigned e = d->n_makers++;
    struct hc_maker *m = &d->makers[e];
    memcpy(m->name, name, len);
    m->name[len] = '\0';
    m->len = (uint8_t)len;
    maker_threshold(m, d->cfg.default_threshold_m);
    m->rule = (uint8_t)d->cfg.rule;
    d->index[slot] = (uint16_t)(e + 1);
    return (int)e;
}

int hc_detector_set_threshold(struct hc_detector *d, const char *name,
                              size_t len, double meters)
{
    if (!threshold_ok(meters))
        return HC_ETHRESHOLD;
    if (len == 0)
        return hc_detector_set_default(d, meters);
    int e = hc_detector_maker(d, name, len);
    if (e < 0)
        return e;
    d->makers[e].own = true;
    maker_threshold(&d->makers[e], meters);
    d->gen++;
    return e;
}

/* The maker called name, if the detector has seen it. */
static struct hc_maker *maker_known(struct hc_detector *d, const char *name, size_t len)
{
    if (len == 0 || len > HC_MAKER_MAX)
        return NULL;
    size_t slot = index_probe(d, name, len);
    return d->index[slot] ? &d->makers[d->index[slot] - 1] : NULL;
}

int hc_detector_unset_threshold(struct hc_detector *d, const char *name, size_t len)
{
    struct hc_maker *m = maker_known(d, name, len);
    if (!m)
        return -ENOENT;
    m->own = false;
    maker_threshold(m, d->cfg.default_threshold_m);
    d->gen++;
    return 0;
}

int hc_detector_set_default(struct hc_detector *d, double meters)
{
    if (!threshold_ok(meters))
        return HC_ETHRESHOLD;
    d->cfg.default_threshold_m = meters;
    for (unsigned i = 0; i < d->n_makers; i++)
        if (!d->makers[i].own)
            maker_threshold(&d->makers[i], meters);
    d->gen++;
    return 0;
}

bool hc_detect_robust_fits(const struct hc_detect_config *c)
{
    return c->robust_after + c->robust_before <= c->window;
}

int hc_detector_set_rule(struct hc_detector *d, const char *name, size_t len,
                         enum hc_rule rule)
{
    if ((unsigned)rule >= HC_RULES || (rule == HC_RULE_ROBUST && !hc_detect_robust_fits(&d->cfg)))
        return HC_ECONFIG;
    if (len == 0) {
        d->cfg.rule = rule;
        for (unsigned i = 0; i < d->n_makers; i++)
            if (!d->makers[i].own_rule)
                d->makers[i].rule = (uint8_t)rule;
        return 0;
    }
    int e = hc_detector_maker(d, name, len);
    if (e < 0)
        return e;
    d->makers[e].own_rule = true;
    d->makers[e].rule = (uint8_t)rule;
    return e;
}

int hc_detector_unset_rule(struct hc_detector *d, const char *name, size_t len)
{
    struct hc_maker *m = maker_known(d, name, len);
    if (!m)
        return -ENOENT;
    m->own_rule = false;
    m->rule = (uint8_t)d->cfg.rule;
    return 0;
}

/* Smallest count that is at least share of n: what "far from at least
 * share of the n before positions" needs.  The small epsilon keeps 0.8 of
 * 5 at 4 whatever the rounding of 0.8. */
static unsigned share_of(double share, unsigned n)
{
    return (unsigned)ceil(share * n - 1e-9);
}

/* Whether every position of set (time-order bits) is farther, by the
 * matrix rows, than the limit from at least need positions of before. */
static bool each_far_from(const uint64_t *rows, uint64_t set, uint64_t before, unsigned need)
{
    for (; set; set &= set - 1)
        if ((unsigned)__builtin_popcountll(rows[__builtin_ctzll(set)] & before) < need)
            return false;
    return true;
}

/* Whether no two positions of set are farther apart than rows' limit. */
static bool group_within(const uint64_t *rows, uint64_t set)
{
    for (uint64_t t = set; t; t &= t - 1)
        if (rows[__builtin_ctzll(t)] & set)
            return false;
    return true;
}

bool hc_robust_moved(struct hc_robust_rows *x, unsigned n, const struct hc_detect_config *c)
{
    if (n < 2)
        return false;
    uint64_t all = n == 64 ? ~(uint64_t)0 : ((uint64_t)1 << n) - 1;
    /* A position far from every other one is a stray: it takes no part. */
    uint64_t keep = 0;
    for (unsigned i = 0; i < n; i++)
        if ((x->near[i] | (uint64_t)1 << i) != all)
            keep |= (uint64_t)1 << i;
    if (!(keep >> (n - 1) & 1))
        return false;
    unsigned m = (unsigned)__builtin_popcountll(keep);

    /* Try every split of the kept positions into an older "before" and a
     * newer "after" of at most robust_after, growing the after group from
     * the newest backwards (a longer one would let strays that have become
     * the window's oldest positions pose as the old spot). */
    uint64_t after = 0, before = keep;
    for (unsigned a = 1; a <= c->robust_after && a + c->robust_before <= m; a++) {
        unsigned j = 63u - (unsigned)__builtin_clzll(before);
        /* The after group must stay within the threshold of itself; once
         * two of its positions are apart, every larger group is too. */
        if (x->near[j] & after)
            return false;
        after |= (uint64_t)1 << j;
        before &= ~((uint64_t)1 << j);
        /* Every tier needs each after position farther than the threshold
         * from robust_share of the before ones (far beyond it implies it). */
        unsigned need = share_of(c->robust_share, m - a);
        if (a < 2 || !each_far_from(x->near, after, before, need))
            continue;
        /* The evidence a move needs falls as fixes gather at the new spot.
         * robust_after (>= 4) of them, anywhere within the threshold of
         * each other.  Three that sit as close as parked fixes do.  Two
         * such, far beyond where the vehicle was (two strays rarely line
         * up so). */
        if (a == c->robust_after)
            return true;
        if (a > 3)
            continue;
        if (x->more) {
            x->more(x, x->ctx);
            x->more = NULL;
        }
        if (group_within(x->tight, after) &&
            (a == 3 || each_far_from(x->far, after, before, need)))
            return true;
    }
    return false;
}

void hc_vehicle_init(const struct hc_detector *d, struct hc_vehicle *v)
{
    memset(v, 0, sizeof(*v));
    v->last_ts = -1;
    v->gen = d->gen;
    hc_window_init(hc_vehicle_window(v), d->cfg.window);
}

void hc_vehicle_set_alarm(struct hc_vehicle *v, bool on)
{
    if (on && (v->flags & HC_VF_ALARM_OFF)) {
        /* New baseline: positions from while the alarm was off may include
         * a move the operator made on purpose. */
        hc_window_clear(hc_vehicle_window(v));
        v->flags &= (uint8_t)~HC_VF_ALARMED;
    }
    if (on)
        v->flags &= (uint8_t)~HC_VF_ALARM_OFF;
    else
        v->flags |= HC_VF_ALARM_OFF;
}

static void fill_alarm(const struct hc_detector *d, const struct hc_vehicle *v,
                       const struct hc_report *r, struct hc_alarm *a)
{
    const struct hc_window *w = hc_vehicle_window_c(v);
    const struct hc_maker *m = &d->makers[v->maker];

    memcpy(a->vid, r->vid, r->vid_len);
    a->vid[r->vid_len] = '\0';
    memcpy(a->maker, m->name, (size_t)m->len + 1);
    a->threshold_m = m->threshold_m;
    a->exceeding_pairs = w->pairs;
    a->window_len = w->len;
    a->max_distance_m = hc_geo_chord2_to_m(hc_window_max_chord2(w, d->kernel));
    a->parked_lat = v->parked_lat;
    a->parked_lon = v->parked_lon;
    a->parked_ts = v->parked_ts;
    a->latest_lat = r->lat;
    a->latest_lon = r->lon;
    a->latest_ts = r->ts;
}

struct robust_ctx {
    const struct hc_detector *d;
    const struct hc_window *w;
    double threshold_m;
};

/* The tight and far matrices, made only once a split passes the test at
 * the threshold itself (an undetectable short move passes the cheap test
 * below on every report, so this saves two thirds of its cost). */
static void robust_more(struct hc_robust_rows *x, const void *ctx)
{
    const struct robust_ctx *r = ctx;
    const struct hc_detect_config *c = &r->d->cfg;
    double t = r->threshold_m;
    hc_window_rows(r->w, r->d->kernel, hc_geo_chord2_limit(t * c->robust_tight), x->tight);
    hc_window_rows(r->w, r->d->kernel, hc_geo_chord2_limit(t * c->robust_far), x->far);
}

/* Whether the window, with its newest position of row `row`, shows a move
 * under rule.  The robust rule's full check is O(W^2), so it runs only when
 * the newest position could end a move at all: far from at least share of
 * robust_before positions, and not a stray itself (some position within
 * the threshold).  Nearly every parked report fails that test at the cost
 * of two compares. */
static bool moved(const struct hc_detector *d, const struct hc_window *w,
                  const struct hc_maker *m, unsigned row)
{
    const struct hc_detect_config *c = &d->cfg;
    double limit = m->limit;
    if (m->rule == HC_RULE_SEED)
        return w->len >= c->n1 && w->pairs > c->n2;
    if (row < share_of(c->robust_share, c->robust_before) || row + 2 > w->len)
        return false;
    struct robust_ctx ctx = { d, w, m->threshold_m };
    struct hc_robust_rows x = { .more = robust_more, .ctx = &ctx };
    hc_window_rows(w, d->kernel, limit, x.near);
    return hc_robust_moved(&x, w->len, c);
}

int hc_detect_step(struct hc_detector *d, struct hc_vehicle *v,
                   const struct hc_report *r, struct hc_alarm *out)
{
    struct hc_window *w = hc_vehicle_window(v);
    int rc = hc_report_check(r);
    if (rc < 0)
        return rc;
    if (r->ts <= v->last_ts)
        return HC_ESTALE;

    const struct hc_maker *cur = &d->makers[v->maker];
    if (r->maker_len &&
        (cur->len != r->maker_len || memcmp(cur->name, r->maker, r->maker_len) != 0)) {
        int e = hc_detector_maker(d, r->maker, r->maker_len);
        if (e < 0) {            /* table full: keep the vehicle's maker */
            d->makers_overflow++;
        } else if ((unsigned)e != v->maker) {
            v->maker = (uint16_t)e;
            v->gen = d->gen - 1;  /* different threshold: recount below */
        }
    }
    v->last_ts = r->ts;

    if (r->acc) {               /* ignition on: the parking session ends */
        hc_window_clear(w);
        v->flags &= (uint8_t)~HC_VF_ALARMED;
        return 0;
    }

    double limit = d->makers[v->maker].limit;
    if (v->gen != d->gen) {
        hc_window_recount(w, d->kernel, limit);
        v->gen = d->gen;
    }
    if (w->len == 0) {
        v->parked_lat = r->lat;
        v->parked_lon = r->lon;
        v->parked_ts = r->ts;
    }
    double p[3];
    hc_geo_unit(r->lat, r->lon, p);
    unsigned row = hc_window_push(w, d->kernel, p, limit);

    if ((v->flags & (HC_VF_ALARMED | HC_VF_ALARM_OFF)) == 0 &&
        moved(d, w, &d->makers[v->maker], row)) {
        v->flags |= HC_VF_ALARMED;
        if (out)
            fill_alarm(d, v, r, out);
        return HC_DETECT_ALARM;
    }
    return 0;
}
