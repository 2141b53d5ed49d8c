/*
 * ring.h — the lock-free single-producer single-consumer ring that carries
 * reports from the front thread to one worker (Concurrency Kit ck_ring,
 * records stored by value), and the wake-up a producer gives a consumer
 * that went to sleep on an empty ring.
 *
 * Exactly one producer thread and one consumer thread per ring.  A full
 * ring makes push fail: the producer must hold the record and retry later
 * (backpressure), never drop it silently.
 */
#ifndef HUBCAP_RING_H
#define HUBCAP_RING_H

#include <ck_pr.h>
#include <ck_ring.h>
#include <stdbool.h>

#include "hubcap/detect.h"

CK_RING_PROTOTYPE(report, hc_report)

struct hc_ring {
    struct ck_ring ring;
    struct hc_report *buf;
};

/* size: a power of two >= 4 (capacity is size - 1).  0 or -ENOMEM. */
int hc_ring_init(struct hc_ring *r, unsigned size);
void hc_ring_free(struct hc_ring *r);

static inline bool hc_ring_push(struct hc_ring *r, const struct hc_report *rep)
{
    return ck_ring_enqueue_spsc_report(&r->ring, r->buf, (struct hc_report *)rep);
}

static inline bool hc_ring_pop(struct hc_ring *r, struct hc_report *out)
{
    return ck_ring_dequeue_spsc_report(&r->ring, r->buf, out);
}

/* Records that can still be pushed (a lower bound, from the producer). */
static inline unsigned hc_ring_room(const struct hc_ring *r)
{
    return ck_ring_capacity(&r->ring) - 1 - ck_ring_size(&r->ring);
}

static inline unsigned hc_ring_count(const struct hc_ring *r)
{
    return ck_ring_size(&r->ring);
}

/* A sleeping consumer's doorbell: an eventfd plus a flag saying whether
 * the consumer is (about to be) asleep, so producers only pay for a
 * write(2) when it matters. */
struct hc_wake {
    int fd;
    int sleeping;
};

int hc_wake_init(struct hc_wake *w);
void hc_wake_free(struct hc_wake *w);

/* Unconditional wake-up (also used to tell a thread to stop). */
void hc_wake_signal(struct hc_wake *w);

/* Producer side, after pushing: wake the consumer if it sleeps. */
static inline void hc_wake_kick(struct hc_wake *w)
{
    ck_pr_fence_memory();   /* the pushes above are visible before we look */
    if (ck_pr_load_int(&w->sleeping))
        hc_wake_signal(w);
}

/* Consumer side: announce sleep, then re-check the rings, then wait.
 * hc_wake_wait waits at most timeout_ms (-1: forever) and clears the
 * flag; returns 1 if woken, 0 on timeout. */
static inline void hc_wake_prepare(struct hc_wake *w)
{
    ck_pr_store_int(&w->sleeping, 1);
    ck_pr_fence_memory();
}

static inline void hc_wake_cancel(struct hc_wake *w)
{
    ck_pr_store_int(&w->sleeping, 0);
}

int hc_wake_wait(struct hc_wake *w, int timeout_ms);

#endif
