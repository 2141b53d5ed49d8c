/*
 * detect.h — moved-vehicle detection: the rules of DESIGN.md, "Detection
 * rules", for one vehicle at a time.
 *
 * A detector holds the parameters (window W, minimum fill N1, pair count N2,
 * default threshold) and the per-maker threshold table.  A vehicle is a
 * fixed-size record (hc_vehicle_size()) the caller stores wherever it likes;
 * hc_detect_step() feeds it one report:
 *
 *   - acc (ignition) on ends the parking session: the window is cleared and
 *     nothing is raised;
 *   - acc off appends the position to the session's window (last W
 *     positions) and updates the count of pairs farther apart than the
 *     vehicle's maker threshold;
 *   - the vehicle's maker decides by one of two rules (docs/DETECTION.md):
 *     seed: once the window holds >= N1 positions and more than N2 pairs
 *     exceed the threshold, the vehicle has moved;
 *     robust: leaving out positions with no neighbour within the threshold
 *     (strays), the window splits in time into a before of at least
 *     robust_before positions and an after at the new spot, each after
 *     position farther than the threshold from at least robust_share of
 *     the before ones; 2 after positions within robust_tight x the
 *     threshold of each other and farther than robust_far x it from that
 *     share, or 3 within robust_tight x it, or robust_after (>= 4) within
 *     the threshold (see docs/DETECTION.md);
 *   - a move raises one alarm for the session (unless the vehicle's alarm
 *     switch is off).
 *
 * Threading: a detector and the vehicles it steps belong to one thread (a
 * worker owns its shard); nothing here locks.
 */
#ifndef HUBCAP_DETECT_H
#define HUBCAP_DETECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hubcap/kernel.h"
#include "hubcap/window.h"

#define HC_VID_MAX    64     /* bytes in a vehicle id */
#define HC_MAKER_MAX  32     /* bytes in a maker name */
#define HC_MAKERS_MAX 4096   /* distinct makers a detector tracks */
#define HC_THRESHOLD_MAX_M 20000000.0
#define HC_TS_MAX 253402300800000LL  /* 10000-01-01T00:00:00Z in ms */

/* One position report, as every decoder produces it.  Fixed size, no
 * pointers, so it can travel through rings by value. */
struct hc_report {
    int64_t ts;                 /* ms since the Unix epoch, UTC */
    double lat, lon;            /* WGS84 degrees */
    uint8_t acc;                /* ignition on */
    uint8_t vid_len;
    uint8_t maker_len;          /* 0: report names no maker */
    char vid[HC_VID_MAX];       /* not NUL-terminated */
    char maker[HC_MAKER_MAX];   /* not NUL-terminated */
};

/* Checks the ranges DESIGN.md sets for a report; 0 or HC_E*. */
int hc_report_check(const struct hc_report *r);

/* What an alarm carries: everything the webhook body needs. */
struct hc_alarm {
    char vid[HC_VID_MAX + 1];       /* NUL-terminated */
    char maker[HC_MAKER_MAX + 1];   /* "" when unknown */
    double threshold_m;
    uint32_t exceeding_pairs;
    uint32_t window_len;
    double max_distance_m;          /* largest pairwise distance in window */
    double parked_lat, parked_lon;  /* first position of the session */
    int64_t parked_ts;
    double latest_lat, latest_lon;  /* the report that raised the alarm */
    int64_t latest_ts;
};

/* The decision rules.  Both keep the same incremental pair count, so a
 * maker can change rule at any report without a recount. */
enum hc_rule { HC_RULE_SEED = 0, HC_RULE_ROBUST = 1 };
#define HC_RULES 2

/* "seed" or "robust". */
const char *hc_rule_name(enum hc_rule r);

/* The rule named by the len bytes at s; 0, or HC_ECONFIG if none is. */
int hc_rule_parse(const char *s, size_t len, enum hc_rule *out);

struct hc_detect_config {
    unsigned window;            /* W, 2..64 (default 16) */
    unsigned n1;                /* seed: minimum positions before deciding (10) */
    unsigned n2;                /* seed: moved when exceeding pairs > n2 (W-1) */
    double default_threshold_m; /* for makers without one (100 m) */
    enum hc_rule rule;          /* for makers without one of their own */
    unsigned robust_after;      /* robust: most positions a move waits for (4, >= 4) */
    unsigned robust_before;     /* robust: positions before the move (3) */
    double robust_share;        /* robust: share of the before positions each
                                 * after position must be far from (0.8) */
    double robust_tight;        /* robust: "as close as parked fixes", a
                                 * fraction of the threshold (0.25) */
    double robust_far;          /* robust: "far beyond", a multiple of the
                                 * threshold (4) */
};

/* Fill c with the defaults: DESIGN.md's W 16, N1 10, N2 15, 100 m, and the
 * robust rule's 4 after, 3 before, share 0.8, tight 0.25, far 4; the
 * default rule is the one docs/DETECTION.md's evaluation found better. */
void hc_detect_config_default(struct hc_detect_config *c);

/* 0 if c is usable, else HC_ECONFIG or HC_ETHRESHOLD.  The robust rule's
 * positions must fit the window only when it is the default rule; a maker
 * given the robust rule later is checked then (hc_detector_set_rule). */
int hc_detect_config_check(const struct hc_detect_config *c);

/* Whether the window holds the robust rule's robust_after + robust_before
 * positions. */
bool hc_detect_robust_fits(const struct hc_detect_config *c);

struct hc_maker {
    char name[HC_MAKER_MAX + 1];
    uint8_t len;
    bool own;                   /* has its own threshold (else default) */
    bool own_rule;              /* has its own rule (else the default) */
    uint8_t rule;               /* effective enum hc_rule */
    double threshold_m;         /* effective threshold */
    double limit;               /* effective squared-chord limit */
};

struct hc_detector {
    struct hc_detect_config cfg;
    const struct hc_kernel *kernel;
    uint32_t gen;               /* bumped on every threshold change */
    uint32_t n_makers;          /* entry 0 is the unknown maker "" */
    struct hc_maker *makers;    /* HC_MAKERS_MAX entries */
    uint16_t *index;            /* open addressing: entry + 1, 0 = empty */
    uint64_t makers_overflow;   /* reports whose new maker found no room */
};

/* Set up d with cfg (validated) and the fastest kernel.  Returns 0,
 * HC_ECONFIG / HC_ETHRESHOLD, or -ENOMEM.  Free with hc_detector_free(). */
int hc_detector_init(struct hc_detector *d, const struct hc_detect_config *cfg);
void hc_detector_free(struct hc_detector *d);

/* Index of maker name (len bytes), adding it with the default threshold if
 * new; the empty name is the unknown maker, index 0.  Returns the index, or
 * HC_EMAKER (too long) or HC_EFULL (table full). */
int hc_detector_maker(struct hc_detector *d, const char *name, size_t len);

/* Give maker its own threshold.  Applies from the next report of each of
 * its vehicles.  Returns the maker index, or HC_ETHRESHOLD / HC_EMAKER /
 * HC_EFULL with nothing changed. */
int hc_detector_set_threshold(struct hc_detector *d, const char *name,
                              size_t len, double meters);

/* Return maker to the default threshold; 0, or -ENOENT if unknown. */
int hc_detector_unset_threshold(struct hc_detector *d, const char *name, size_t len);

/* Change the default threshold (makers without their own follow it). */
int hc_detector_set_default(struct hc_detector *d, double meters);

/* Give maker its own rule (len 0: change the default rule, which makers
 * without their own follow).  Applies from the next report of each of its
 * vehicles.  Returns the maker index (0 for the default), or HC_ECONFIG
 * (no such rule, or the robust rule with a window too small for it) /
 * HC_EMAKER / HC_EFULL with nothing changed. */
int hc_detector_set_rule(struct hc_detector *d, const char *name, size_t len,
                         enum hc_rule rule);

/* Return maker to the default rule; 0, or -ENOENT if unknown. */
int hc_detector_unset_rule(struct hc_detector *d, const char *name, size_t len);

/* The robust rule on a window's exceed matrices (hc_window_rows: n rows
 * in time order, the newest last, at the threshold, at robust_tight x it
 * and at robust_far x it): true when the newest position ends a move as
 * the rule defines it, with the parameters of c.  Exposed for tests;
 * hc_detect_step calls it. */
struct hc_robust_rows {
    uint64_t near[HC_WINDOW_MAX];   /* farther apart than the threshold */
    uint64_t tight[HC_WINDOW_MAX];  /* than robust_tight x the threshold */
    uint64_t far[HC_WINDOW_MAX];    /* than robust_far x the threshold */
    /* Fills tight and far when first needed (then set to NULL); NULL when
     * they are filled already. */
    void (*more)(struct hc_robust_rows *x, const void *ctx);
    const void *ctx;
};
bool hc_robust_moved(struct hc_robust_rows *x, unsigned n, const struct hc_detect_config *c);

static inline const struct hc_maker *hc_detector_maker_at(const struct hc_detector *d,
                                                           unsigned i)
{
    return &d->makers[i];
}

#define HC_VF_ALARM_OFF 0x01    /* operator switched this vehicle's alarm off */
#define HC_VF_ALARMED   0x02    /* this parking session has raised its alarm */

/* A vehicle's detection state.  Its window follows it in memory, so the
 * whole record is hc_vehicle_size() bytes and needs no pointers. */
struct hc_vehicle {
    int64_t last_ts;            /* newest accepted report; -1 before any */
    int64_t parked_ts;          /* first position of the session */
    double parked_lat, parked_lon;
    uint32_t gen;               /* detector gen the pair count is valid for */
    uint16_t maker;             /* index into the detector's makers */
    uint8_t flags;              /* HC_VF_* */
    uint8_t pad_;
};

static inline size_t hc_vehicle_size(const struct hc_detector *d)
{
    return sizeof(struct hc_vehicle) + hc_window_size(d->cfg.window);
}

static inline struct hc_window *hc_vehicle_window(struct hc_vehicle *v)
{
    return (struct hc_window *)(v + 1);
}

static inline const struct hc_window *hc_vehicle_window_c(const struct hc_vehicle *v)
{
    return (const struct hc_window *)(v + 1);
}

/* Start loading v's record into cache ahead of hc_detect_step: a worker
 * stepping a batch prefetches a few reports ahead, which hides most of the
 * memory latency of a large fleet (see docs/PERFORMANCE.md). */
static inline void hc_vehicle_prefetch(const struct hc_detector *d, const struct hc_vehicle *v)
{
    const char *p = (const char *)v;
    size_t n = hc_vehicle_size(d);
    for (size_t o = 0; o < n; o += 64)
        __builtin_prefetch(p + o, 1);
}

/* Prepare hc_vehicle_size(d) bytes at v as a vehicle with no session. */
void hc_vehicle_init(const struct hc_detector *d, struct hc_vehicle *v);

/* Switch the vehicle's alarm on or off.  Switching it back on also starts a
 * fresh window, so a move made while it was off (staff moving the car) is
 * never reported when it comes back on. */
void hc_vehicle_set_alarm(struct hc_vehicle *v, bool on);

#define HC_DETECT_ALARM 1

/* Feed one report to its vehicle.  Returns HC_DETECT_ALARM with *out filled
 * when this report makes the vehicle moved, 0 when it was taken without an
 * alarm, or a negative HC_E* when it was rejected (invalid, or not newer
 * than the vehicle's last report: HC_ESTALE); a rejected report changes
 * nothing. */
int hc_detect_step(struct hc_detector *d, struct hc_vehicle *v,
                   const struct hc_report *r, struct hc_alarm *out);

#endif
