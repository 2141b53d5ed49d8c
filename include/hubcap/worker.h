/*
 * worker.h — a worker thread: owns one shard of the vehicles (every vehicle
 * whose hc_hash(vid) % workers is its id), steps their reports through the
 * detector, and persists them in the shard's LMDB environment.
 *
 * Input arrives on the worker's ring from the front thread.  Vehicle state
 * changes are batched: each changed vehicle joins the dirty list once, and
 * every store.commit_interval_ms the list is written in one transaction.
 * An alarm is committed in LMDB, then synced (one fsync for all alarms of
 * the last 50 ms), and only then handed to the notifier (which sends it)
 * and appended (as one JSON line, the webhook body of DESIGN.md) to
 * alarms.log, the audit log.
 *
 * Everything in struct hc_worker belongs to the worker thread once it runs,
 * except `stats` (read by others, written only by the worker) and `wake`.
 */
#ifndef HUBCAP_WORKER_H
#define HUBCAP_WORKER_H

#include <pthread.h>
#include <stdint.h>

#include "hubcap/config.h"
#include "hubcap/detect.h"
#include "hubcap/ring.h"
#include "hubcap/store.h"
#include "hubcap/vtable.h"

/* Counters: single writer (the worker), any reader; relaxed atomics. */
struct hc_worker_stats {
    uint64_t reports;       /* taken off the ring */
    uint64_t rejected;      /* invalid reports */
    uint64_t stale;         /* not newer than the vehicle's last report */
    uint64_t alarms;        /* raised */
    uint64_t commits;       /* LMDB transactions committed */
    uint64_t commit_errors;
    uint64_t persisted;     /* vehicle records written */
    uint64_t vehicles;      /* tracked */
    uint64_t ring_fill;     /* records waiting on the ring, last seen */
    uint64_t dirty;         /* vehicles and alarms not yet committed (alarms:
                               not yet synced and in alarms.log) */
    uint64_t passes;        /* rolling passes completed (journal trims) */
    uint64_t rolled;        /* records the rolling pass rewrote */
};

struct hc_pending_alarm;
struct hc_notify;

struct hc_worker {
    unsigned id;
    int cpu;                        /* core to pin to, -1: none */
    const struct hc_config *cfg;
    struct hc_ring *in;
    struct hc_wake wake;
    const int *front_done;          /* set once the front has stopped */
    int alarm_log_fd;
    struct hc_notify *notify;       /* durable alarms go there; NULL: none */
    uint64_t handed_id;             /* last alarm id handed to the notifier */
    int rehand;                     /* handing over failed: try again */

    struct hc_detector det;
    struct hc_vtable vt;
    struct hc_store *store;
    unsigned char *scratch;         /* one serialized vehicle */

    uint32_t *dirty;
    size_t n_dirty, cap_dirty;
    struct hc_pending_alarm *alarms;
    size_t n_alarms, cap_alarms;
    uint64_t alarm_seq;             /* last alarm sequence number used */
    uint64_t logged_id;             /* last alarm id appended to alarms.log */
    uint64_t logged_id_stored;      /* ... as recorded in the store */
    int relog;                      /* appends failed: catch up from the store */
    int unsynced;                   /* alarms committed, not yet synced/logged */
    uint64_t alarm_sync_due;        /* when to sync them (monotonic ms) */
    uint64_t next_commit_ms, next_sync_ms;
    uint64_t restored;              /* vehicles read back at open */
    uint64_t pass_mark;             /* journal mark where the rolling pass began */
    uint32_t pass_next;             /* next table index the pass rewrites */
    uint32_t pass_no;               /* the pass (low 16 bits go in hc_vrec.pass) */
    uint64_t pass_written;          /* records committed since the pass began */
    uint32_t *rolled;               /* indexes the pass wrote in this transaction */
    size_t n_rolled;

    pthread_t thread;
    struct hc_worker_stats stats;
};

/* Open shard `id`: its LMDB environment under cfg->data_dir, then restore
 * every vehicle and re-log alarms that were committed but not yet in
 * alarms.log.  0 or a negative error (logged). */
int hc_worker_open(struct hc_worker *w, unsigned id, const struct hc_config *cfg,
                   struct hc_ring *in, int alarm_log_fd, const int *front_done);

/* Start the thread (pinned to w->cpu when >= 0). */
int hc_worker_start(struct hc_worker *w);

/* Wait for the thread: it exits once the front is done and its ring is
 * drained, after a final durable commit. */
void hc_worker_join(struct hc_worker *w);

void hc_worker_close(struct hc_worker *w);

/* A consistent-enough copy of the counters, from any thread. */
void hc_worker_read_stats(const struct hc_worker *w, struct hc_worker_stats *out);

#endif
