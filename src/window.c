/*
 * window.c — sliding window with incremental pair counting (see window.h).
 */
#include <assert.h>
#include <string.h>

#include "hubcap/window.h"

void hc_window_init(struct hc_window *w, unsigned cap)
{
    assert(cap >= 2 && cap <= HC_WINDOW_MAX);
    memset(w, 0, hc_window_size(cap));
    w->cap = (uint8_t)cap;
}

void hc_window_clear(struct hc_window *w)
{
    w->len = 0;
    w->head = 0;
    w->pairs = 0;
}

static void put(struct hc_window *w, unsigned slot, const double p[3])
{
    w->v[slot] = p[0];
    w->v[w->cap + slot] = p[1];
    w->v[2 * w->cap + slot] = p[2];
}

unsigned hc_window_push(struct hc_window *w, const struct hc_kernel *k,
                        const double p[3], double limit)
{
    if (w->len == w->cap) {
        /* Full: the oldest leaves, p takes its slot.  Neither row counts
         * the slot itself (old with itself, or p with the point it
         * replaces); both rows come from one pass over the window. */
        double old[3];
        unsigned slot = w->head, n_old, n_new;
        hc_window_get(w, slot, old);
        k->exceed_count2(hc_window_x(w), hc_window_y(w), hc_window_z(w), w->len,
                         old, p, limit, (uint64_t)1 << slot, &n_old, &n_new);
        w->pairs = w->pairs - n_old + n_new;
        w->head = (uint8_t)(slot + 1 == w->cap ? 0 : slot + 1);
        put(w, slot, p);
        return n_new;
    }
    /* Until the ring first fills, head stays 0 and slots fill in order;
     * p is compared with the len occupied slots before joining them. */
    unsigned n_new = k->exceed_count(hc_window_x(w), hc_window_y(w), hc_window_z(w),
                                     w->len, p, limit, 0);
    w->pairs += n_new;
    put(w, w->len++, p);
    return n_new;
}

uint32_t hc_window_recount(struct hc_window *w, const struct hc_kernel *k,
                           double limit)
{
    uint32_t pairs = 0;
    for (unsigned s = 0; s < w->len; s++) {
        double p[3];
        hc_window_get(w, s, p);
        /* Only slots below s, so each unordered pair is counted once. */
        pairs += k->exceed_count(hc_window_x(w), hc_window_y(w), hc_window_z(w),
                                 s, p, limit, 0);
    }
    w->pairs = pairs;
    return pairs;
}

void hc_window_rows(const struct hc_window *w, const struct hc_kernel *k,
                    double limit, uint64_t rows[])
{
    unsigned n = w->len, h = w->head;
    for (unsigned t = 0; t < n; t++) {
        double p[3];
        hc_window_get(w, hc_window_slot(w, t), p);
        uint64_t m = k->exceed(hc_window_x(w), hc_window_y(w), hc_window_z(w), n, p, limit);
        /* Slot s holds the (s - head) mod cap-th oldest position: rotate
         * the slot-order mask right by head.  head is 0 until the ring is
         * full, and then n == cap. */
        if (h)
            m = (m >> h | m << (n - h)) & (n == 64 ? ~(uint64_t)0 : ((uint64_t)1 << n) - 1);
        rows[t] = m;
    }
}

double hc_window_max_chord2(const struct hc_window *w, const struct hc_kernel *k)
{
    double out[HC_WINDOW_MAX], best = 0.0;
    for (unsigned s = 1; s < w->len; s++) {
        double p[3];
        hc_window_get(w, s, p);
        k->chord2(hc_window_x(w), hc_window_y(w), hc_window_z(w), s, p, out);
        for (unsigned i = 0; i < s; i++)
            if (out[i] > best)
                best = out[i];
    }
    return best;
}
