/*
 * window.h — a vehicle's sliding window of parked positions, with the
 * number of position pairs farther apart than a limit kept up to date
 * incrementally.
 *
 * Positions are unit vectors stored as three component arrays (structure of
 * arrays) in a ring of cap slots, so a kernel can compare a new point with
 * the whole window in a few vector steps.  Invariant: `pairs` equals the
 * number of unordered pairs of occupied slots whose squared chord exceeds
 * the limit last passed to push/recount.  Each push costs two kernel calls
 * (the leaving point's row, the entering point's row): O(W), never O(W^2).
 *
 * A window belongs to the thread that owns its vehicle; no locking.
 */
#ifndef HUBCAP_WINDOW_H
#define HUBCAP_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "hubcap/kernel.h"

#define HC_WINDOW_MAX HC_KERNEL_MAX_BLOCK

struct hc_window {
    uint8_t cap;     /* W: slots in the ring, 2..HC_WINDOW_MAX */
    uint8_t len;     /* occupied slots */
    uint8_t head;    /* slot of the oldest position */
    uint8_t pad_;
    uint32_t pairs;  /* pairs farther apart than the limit */
    double v[];      /* x[cap], then y[cap], then z[cap] */
};

/* Bytes needed for a window of cap slots (header plus positions). */
static inline size_t hc_window_size(unsigned cap)
{
    return sizeof(struct hc_window) + 3 * (size_t)cap * sizeof(double);
}

static inline const double *hc_window_x(const struct hc_window *w) { return w->v; }
static inline const double *hc_window_y(const struct hc_window *w) { return w->v + w->cap; }
static inline const double *hc_window_z(const struct hc_window *w) { return w->v + 2 * w->cap; }

/* Slot of the i-th oldest position (i = 0 is the oldest, len-1 the newest). */
static inline unsigned hc_window_slot(const struct hc_window *w, unsigned i)
{
    unsigned s = w->head + i;
    return s >= w->cap ? s - w->cap : s;
}

/* Unit vector stored in a slot. */
static inline void hc_window_get(const struct hc_window *w, unsigned slot, double p[3])
{
    p[0] = w->v[slot];
    p[1] = w->v[w->cap + slot];
    p[2] = w->v[2 * w->cap + slot];
}

/* Prepare memory of hc_window_size(cap) bytes as an empty window.
 * cap must be in 2..HC_WINDOW_MAX. */
void hc_window_init(struct hc_window *w, unsigned cap);

/* Forget every position (the parking session ended). */
void hc_window_clear(struct hc_window *w);

/* Add unit vector p as the newest position, dropping the oldest if the
 * window is full, and update `pairs` for limit (a squared chord).  The limit
 * must be the one the current count was made with; after a limit change
 * call hc_window_recount() first.  Returns p's own row: how many of the
 * positions it now shares the window with are farther than limit from it. */
unsigned hc_window_push(struct hc_window *w, const struct hc_kernel *k,
                        const double p[3], double limit);

/* The window's exceed matrix in time order: bit j of rows[i] is set when
 * the i-th and j-th oldest positions are farther apart than limit (never
 * bit i of rows[i]).  Fills w->len rows; O(W^2), one kernel pass a row. */
void hc_window_rows(const struct hc_window *w, const struct hc_kernel *k,
                    double limit, uint64_t rows[]);

/* Recount `pairs` from scratch for limit (O(W^2)); returns the count. */
uint32_t hc_window_recount(struct hc_window *w, const struct hc_kernel *k,
                           double limit);

/* Largest squared chord between any two positions in the window (0 when
 * fewer than two). */
double hc_window_max_chord2(const struct hc_window *w, const struct hc_kernel *k);

#endif
