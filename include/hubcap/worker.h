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

#include <ck_ring.h>
#include <pthread.h>
#include <semaphore.h>
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

/* ---- control requests ---------------------------------------------------
 *
 * The control socket's thread asks a worker about its vehicles and changes
 * its thresholds through a small SPSC ring of requests (one producer: the
 * main thread).  The worker looks at that ring once per loop, a load and a
 * compare; nothing on the report path takes a lock.  A request is answered
 * before the worker takes its next batch, so a threshold applies to the next
 * report of that maker. */

enum hc_wreq_kind {
    HC_WREQ_THRESHOLD_SET,      /* key: maker; meters */
    HC_WREQ_THRESHOLD_UNSET,    /* key: maker (back to the default) */
    HC_WREQ_RULE_SET,           /* key: maker; rule */
    HC_WREQ_RULE_UNSET,         /* key: maker (back to the default rule) */
    HC_WREQ_VEHICLE_SHOW,       /* key: vid -> info */
    HC_WREQ_VEHICLE_ALARM,      /* key: vid; on -> info, created; synced */
    HC_WREQ_VEHICLE_LIST,       /* alarming, alarm_off, limit -> list */
};

/* A vehicle as the control socket shows it. */
struct hc_vehicle_info {
    char vid[HC_VID_MAX + 1];
    char maker[HC_MAKER_MAX + 1];
    int alarm_on;               /* not switched off by an operator */
    int alarmed;                /* raised in the current parking session */
    int64_t last_ts;            /* newest report (ms), -1 before any */
    int64_t parked_ts;          /* first position of the session; -1: not parked */
    double parked_lat, parked_lon;
    unsigned window_len, window_size, pairs;
    double max_distance_m, threshold_m;
};

struct hc_wreq {
    /* the question: everything before rc (copied as one block) */
    int kind;                   /* enum hc_wreq_kind */
    char key[HC_VID_MAX + 1];   /* vid or maker, NUL-terminated */
    double meters;              /* THRESHOLD_SET */
    int rule;                   /* RULE_SET: enum hc_rule */
    int on;
    int alarming, alarm_off;    /* list filters */
    size_t limit;
    /* the answer */
    int rc;                     /* 0, -ENOENT (no such vehicle), or an error */
    int created;
    struct hc_vehicle_info info;
    struct hc_vehicle_info *list;   /* malloc'd by the worker; hc_wreq_free frees */
    size_t n_list;
    int truncated;
    /* hand-off between the two threads */
    sem_t done;
    int state;                  /* WREQ_* in worker.c */
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

    struct ck_ring ctl;             /* struct hc_wreq * from the main thread */
    struct ck_ring_buffer ctl_buf[16];
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

/* A new request of kind k for key (a vid or a maker, at most HC_VID_MAX
 * bytes), or NULL (out of memory). */
struct hc_wreq *hc_wreq_new(int kind, const char *key);

/* Ask worker w (from the main thread, the only caller): queue req, wake
 * the worker and wait up to timeout_ms for its answer.  0: answered (see
 * req->rc), then free req with hc_wreq_free.  -ETIMEDOUT: no answer in
 * time; the request now belongs to the worker, which frees it once it gets
 * to it; do not touch it.  -EAGAIN: the worker's queue is full, free it. */
int hc_worker_call(struct hc_worker *w, struct hc_wreq *req, int timeout_ms);
void hc_wreq_free(struct hc_wreq *req);

/* A consistent-enough copy of the counters, from any thread. */
void hc_worker_read_stats(const struct hc_worker *w, struct hc_worker_stats *out);

#endif
