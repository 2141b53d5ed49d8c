/*
 * worker.c — a shard's worker thread (see worker.h).
 *
 * Loop: take up to BATCH reports off the ring; hash their ids and prefetch
 * the index slots; resolve each to its record (adding new vehicles) and
 * prefetch the records; step them through the detector; mark the changed
 * ones dirty.  Between batches, when the commit interval has passed, write
 * the dirty set and any new alarms in one LMDB transaction (synced if it
 * holds an alarm), then append the alarms to alarms.log.  With nothing to
 * do, sleep on the doorbell until the next commit is due.
 *
 * A stored vehicle is `struct stored` (format tag, window size, maker name)
 * followed by the struct hc_vehicle record.  The maker travels by name
 * because maker indexes are only meaningful inside one detector's table.
 *
 * The store journals vehicle records (store.h), so the worker keeps the
 * journal bounded with a rolling pass: transactions also rewrite the next
 * vehicles of the table in index order, keeping pace with the records
 * written (roll()).  The pass skips vehicles that are dirty (written in
 * this round anyway) and those already written since it began
 * (hc_vrec.pass, set once their transaction has committed).  When it has
 * covered the whole table, the last transaction of that round trims every
 * record older than the pass's start, and a new pass begins.  Every
 * vehicle is then in the journal at least once, a generation holds about
 * ROLL_PACE records per vehicle, and when most vehicles report the pass
 * writes next to nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hubcap/alarmjson.h"
#include "hubcap/notify.h"
#include "hubcap/error.h"
#include "hubcap/geo.h"
#include "hubcap/hash.h"
#include "hubcap/log.h"
#include "hubcap/thread.h"
#include "hubcap/timefmt.h"
#include "hubcap/worker.h"

#define BATCH 64
/* Most dirty vehicles written in one transaction.  LMDB keeps a
 * transaction's dirty pages in memory, and keeps freed page buffers for
 * reuse, so an unbounded transaction (a million vehicles changed at once)
 * would leave hundreds of megabytes behind; bounded, a shard holds a few
 * megabytes.  The rolling pass adds at most as many again. */
#define TXN_VEHICLES 4096
#define ROLL_PACE 2     /* journal records per vehicle a rolling pass may take */
/* Most vehicles the pass writes in one transaction: its pace needs at most
 * n + 1 beside n dirty ones; a deficit (after a restart) is paid off over
 * several transactions. */
#define ROLLED_MAX (TXN_VEHICLES + 1)
#define STORED_MAGIC 0x31564348u    /* "HCV1" */

struct stored {
    uint32_t magic;
    uint16_t window;
    uint8_t maker_len;
    uint8_t pad_;
    char maker[HC_MAKER_MAX];
};

struct hc_pending_alarm {
    uint64_t id;                    /* shard << 48 | seq: the LMDB key */
    char *json;                     /* the body, malloc'd */
    uint32_t vehicle;               /* its record, written in the same transaction */
};

static uint64_t mono_ms(void)
{
    return hc_time_mono_ns() / 1000000u;
}

#define STAT_ADD(w, field, n) \
    __atomic_store_n(&(w)->stats.field, (w)->stats.field + (n), __ATOMIC_RELAXED)
#define STAT_SET(w, field, v) __atomic_store_n(&(w)->stats.field, (v), __ATOMIC_RELAXED)

void hc_worker_read_stats(const struct hc_worker *w, struct hc_worker_stats *out)
{
    const uint64_t *src = (const uint64_t *)&w->stats;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

static void vehicle_init(void *ctx, struct hc_vehicle *v)
{
    hc_vehicle_init(ctx, v);
}

/* ---- restore ------------------------------------------------------------ */

/* Rebuild a window stored with another W: replay its positions, oldest
 * first, keeping the newest of them. */
static void convert_window(struct hc_worker *w, struct hc_vehicle *v,
                           const struct hc_window *old)
{
    struct hc_window *nw = hc_vehicle_window(v);
    double limit = hc_detector_maker_at(&w->det, v->maker)->limit;
    hc_window_init(nw, w->det.cfg.window);
    for (unsigned i = 0; i < old->len; i++) {
        double p[3];
        hc_window_get(old, hc_window_slot(old, i), p);
        hc_window_push(nw, w->det.kernel, p, limit);
    }
}

static int restore_one(void *ctx, const void *vid, size_t vid_len, const void *rec, size_t len)
{
    struct hc_worker *w = ctx;
    struct stored st;
    if (len < sizeof(st) + sizeof(struct hc_vehicle) || vid_len == 0 || vid_len > HC_VID_MAX)
        return 0;                   /* not ours: skip */
    memcpy(&st, rec, sizeof(st));
    const unsigned char *body = (const unsigned char *)rec + sizeof(st);
    size_t body_len = len - sizeof(st);
    if (st.magic != STORED_MAGIC || st.window < 2 || st.window > HC_WINDOW_MAX ||
        body_len != sizeof(struct hc_vehicle) + hc_window_size(st.window) ||
        st.maker_len > HC_MAKER_MAX)
        return 0;

    bool created;
    int64_t i = hc_vtable_upsert(&w->vt, vid, vid_len, hc_hash(vid, vid_len), vehicle_init,
                                 &w->det, &created);
    if (i < 0)
        return (int)i;
    struct hc_vehicle *v = hc_vrec_vehicle(hc_vtable_rec(&w->vt, (uint32_t)i));
    int maker = hc_detector_maker(&w->det, st.maker, st.maker_len);
    if (st.window == w->det.cfg.window) {
        memcpy(v, body, body_len);
    } else {
        struct hc_vehicle head;
        memcpy(&head, body, sizeof(head));
        *v = head;
        /* The old window, copied out so it is suitably aligned. */
        size_t wsize = hc_window_size(st.window);
        struct hc_window *old = malloc(wsize);
        if (!old)
            return -ENOMEM;
        memcpy(old, body + sizeof(head), wsize);
        v->maker = (uint16_t)(maker < 0 ? 0 : maker);
        convert_window(w, v, old);
        free(old);
    }
    v->maker = (uint16_t)(maker < 0 ? 0 : maker);
    v->gen = w->det.gen - 1;        /* thresholds may differ now: recount */
    if (created)
        w->restored++;              /* a later record of it replaces this one */
    return 0;
}

static int append_alarm_line(struct hc_worker *w, const char *json, size_t len)
{
    /* One write per line: O_APPEND makes concurrent appends whole lines. */
    char *line = malloc(len + 1);
    if (!line)
        return -ENOMEM;
    memcpy(line, json, len);
    line[len] = '\n';
    ssize_t n = write(w->alarm_log_fd, line, len + 1);
    int err = errno;
    free(line);
    if (n == (ssize_t)(len + 1))
        return 0;
    return n < 0 ? -err : -EIO;     /* a torn line is a failure too */
}

static int relog_one(void *ctx, uint64_t id, const void *val, size_t len)
{
    struct hc_worker *w = ctx;
    int rc = append_alarm_line(w, val, len);
    if (rc == 0)
        w->logged_id = id;
    return rc;
}

int hc_worker_open(struct hc_worker *w, unsigned id, const struct hc_config *cfg,
                   struct hc_ring *in, int alarm_log_fd, const int *front_done)
{
    char dir[4200], who[32];
    struct hc_detect_config dc;
    int rc;

    memset(w, 0, sizeof(*w));
    w->id = id;
    w->cpu = -1;
    w->cfg = cfg;
    w->in = in;
    w->alarm_log_fd = alarm_log_fd;
    w->front_done = front_done;
    w->wake.fd = -1;
    ck_ring_init(&w->ctl, sizeof(w->ctl_buf) / sizeof(w->ctl_buf[0]));
    snprintf(who, sizeof(who), "worker %u", id);

    hc_config_detect(cfg, &dc);
    rc = hc_detector_init(&w->det, &dc);
    for (unsigned i = 0; rc >= 0 && i < cfg->n_thresholds; i++)
        rc = hc_detector_set_threshold(&w->det, cfg->thresholds[i].maker,
                                       strlen(cfg->thresholds[i].maker),
                                       cfg->thresholds[i].meters);
    for (unsigned i = 0; rc >= 0 && i < cfg->n_rules; i++)
        rc = hc_detector_set_rule(&w->det, cfg->rules[i].maker, strlen(cfg->rules[i].maker),
                                  (enum hc_rule)cfg->rules[i].rule);
    if (rc >= 0)
        rc = hc_vtable_init(&w->vt, hc_vehicle_size(&w->det), 1024);
    if (rc >= 0)
        rc = hc_wake_init(&w->wake);
    w->scratch = malloc(sizeof(struct stored) + hc_vehicle_size(&w->det));
    w->rolled = malloc(ROLLED_MAX * sizeof(*w->rolled));
    if (rc >= 0 && (!w->scratch || !w->rolled))
        rc = -ENOMEM;
    if (rc < 0) {
        hc_error(who, "cannot start: %s", hc_strerror(rc));
        return rc;
    }

    snprintf(dir, sizeof(dir), "%s/shard-%u", cfg->data_dir, id);
    struct hc_store_options so = {
        .map_size = (size_t)cfg->map_size_mb << 20,
        .sync_interval_ms = cfg->sync_interval_ms,
    };
    rc = hc_store_open(&w->store, dir, &so);
    if (rc < 0) {
        hc_error(who, "cannot open %s: %s", dir, hc_strerror(rc));
        return rc;
    }

    uint64_t t0 = hc_time_mono_ns();
    rc = hc_store_each_vehicle(w->store, restore_one, w);
    if (rc < 0) {
        hc_error(who, "restoring vehicles from %s: %s", dir, hc_strerror(rc));
        return rc;
    }
    w->pass_mark = hc_store_journal_mark(w->store);   /* restored ones are older */
    w->pass_next = 0;
    w->pass_no = 1;                 /* restored records have pass 0 */
    struct hc_store_stats sst;      /* what is already in the journal counts */
    w->pass_written = hc_store_stats(w->store, &sst) == 0 ? sst.journal_entries : 0;
    w->alarm_seq = hc_store_last_alarm_id(w->store) & ((1ull << 48) - 1);
    size_t got = 0;
    if (hc_store_get_meta(w->store, "logged_alarm_id", &w->logged_id, sizeof(w->logged_id),
                          &got) < 0 || got != sizeof(w->logged_id))
        w->logged_id = 0;
    w->logged_id_stored = w->logged_id;
    /* Alarms committed before a crash but not yet in alarms.log. */
    uint64_t before = w->logged_id;
    rc = hc_store_each_alarm(w->store, w->logged_id + 1, relog_one, w);
    if (rc < 0) {
        hc_warn(who, "re-logging committed alarms: %s (retried at every commit)",
                hc_strerror(rc));
        w->relog = 1;
    }
    if (w->logged_id != before)
        hc_info(who, "re-logged alarms committed before the last stop (up to %" PRIu64 ")",
                (uint64_t)(w->logged_id & ((1ull << 48) - 1)));
    STAT_SET(w, vehicles, w->vt.count);
    hc_info(who, "shard %s: %" PRIu64 " vehicles restored in %.3f s", dir, w->restored,
            (double)(hc_time_mono_ns() - t0) / 1e9);
    return 0;
}

/* ---- commit ------------------------------------------------------------- */

static void serialize(struct hc_worker *w, const struct hc_vehicle *v, size_t *len)
{
    const struct hc_maker *m = hc_detector_maker_at(&w->det, v->maker);
    struct stored st = { .magic = STORED_MAGIC, .window = (uint16_t)w->det.cfg.window,
                         .maker_len = m->len };
    memcpy(st.maker, m->name, m->len);
    memcpy(w->scratch, &st, sizeof(st));
    memcpy(w->scratch + sizeof(st), v, w->vt.vsize);
    *len = sizeof(st) + w->vt.vsize;
}

/* Hand the notifier every alarm that is durable now and that it has not
 * had, in id order, from the store.  Independent of alarms.log: a full
 * disk under the audit log must not hold back a notification.  What it
 * cannot take (out of memory) is tried again at the next sync, and at the
 * next start hubcapd hands over whatever the notifier never took in. */
static void hand_over(struct hc_worker *w, const char *who)
{
    if (!w->notify)
        return;
    int rc = hc_notify_raise_from(w->notify, w->id, w->store, &w->handed_id);
    if (rc < 0 && !w->rehand)
        hc_error(who, "handing alarms to the notifier: %s; trying again", hc_strerror(rc));
    w->rehand = rc < 0;             /* then every commit interval tries again */
}

/* Append alarms committed to the store but not yet to alarms.log, in id
 * order, from the store itself.  Stops at the first failed append and
 * leaves w->relog set, so the next commit tries again from there: an
 * alarm is never skipped in alarms.log, only delayed. */
static void relog_from_store(struct hc_worker *w, const char *who)
{
    int rc = hc_store_each_alarm(w->store, w->logged_id + 1, relog_one, w);
    if (rc < 0) {
        if (!w->relog)
            hc_error(who, "appending to alarms.log: %s; the alarms are safe in the store and"
                     " are appended as soon as that works again", hc_strerror(rc));
        w->relog = 1;
    } else {
        w->relog = 0;
    }
}

/* The pending alarms are durable now: hand them on to alarms.log. */
static void log_alarms(struct hc_worker *w, const char *who)
{
    for (size_t i = 0; i < w->n_alarms; i++) {
        if (!w->relog) {
            const char *json = w->alarms[i].json;
            int rc = append_alarm_line(w, json, strlen(json));
            if (rc == 0) {
                w->logged_id = w->alarms[i].id;
            } else {
                hc_error(who, "appending to alarms.log: %s; the alarms are safe in the store"
                         " and are appended as soon as that works again", hc_strerror(rc));
                w->relog = 1;   /* the rest follow from the store, in order */
            }
        }
        free(w->alarms[i].json);
    }
    w->n_alarms = 0;
    if (w->relog)
        relog_from_store(w, who);
}

static int put_vehicle(struct hc_worker *w, uint32_t idx)
{
    struct hc_vrec *r = hc_vtable_rec(&w->vt, idx);
    size_t len;
    serialize(w, hc_vrec_vehicle(r), &len);
    return hc_store_put_vehicle(w->store, hc_vtable_vid(&w->vt, r), r->vid_len, w->scratch, len);
}

/* The rolling pass's share of a transaction that wrote n dirty vehicles:
 * the indexes it wrote go to w->rolled; *trim is set when this transaction
 * completes the pass.
 *
 * The pass keeps pace with the journal: once E records have been written
 * since it began, it has reached table index E / ROLL_PACE, so it is
 * complete before a generation holds ROLL_PACE records per vehicle.
 * Vehicles the dirty set has already written in this pass cost only a
 * look, so when most of the fleet reports the pass writes almost nothing,
 * and when few vehicles report it writes about one for each of theirs. */
static int roll(struct hc_worker *w, size_t n, int last_chunk, int *trim)
{
    uint64_t written = w->pass_written + n;
    uint16_t pass = (uint16_t)w->pass_no;
    int rc = 0;
    w->n_rolled = 0;
    while (rc == 0 && w->pass_next < w->vt.count && w->n_rolled < ROLLED_MAX) {
        if ((uint64_t)w->pass_next * ROLL_PACE >= written + w->n_rolled)
            break;
        const struct hc_vrec *r = hc_vtable_rec(&w->vt, w->pass_next);
        if (!r->dirty && r->pass != pass) {
            rc = put_vehicle(w, w->pass_next);
            w->rolled[w->n_rolled++] = w->pass_next;
        }
        w->pass_next++;
    }
    *trim = rc == 0 && last_chunk && w->pass_next >= w->vt.count;
    if (*trim)
        rc = hc_store_journal_trim(w->store, w->pass_mark);
    return rc;
}

/* One transaction: the last n vehicles of the dirty list, the rolling
 * pass's share, plus, when with_alarms, every pending alarm (then synced
 * before returning). */
static int commit_chunk(struct hc_worker *w, size_t n, int with_alarms)
{
    size_t from = w->n_dirty - n;
    uint32_t pass_next = w->pass_next;
    int trim = 0;
    int rc = hc_store_begin(w->store);
    for (size_t i = from; rc == 0 && i < w->n_dirty; i++)
        rc = put_vehicle(w, w->dirty[i]);
    if (rc == 0)
        rc = roll(w, n, from == 0, &trim);
    for (size_t i = 0; with_alarms && rc == 0 && i < w->n_alarms; i++) {
        /* The vehicle that raised it goes in the same transaction, so a
         * crash can never keep the alarm but lose the vehicle's "alarmed"
         * state (which would raise it again under a new id). */
        rc = put_vehicle(w, w->alarms[i].vehicle);
        if (rc == 0)
            rc = hc_store_put_alarm(w->store, w->alarms[i].id, w->alarms[i].json,
                                    strlen(w->alarms[i].json));
    }
    if (with_alarms && rc == 0 && w->logged_id != w->logged_id_stored)
        rc = hc_store_put_meta(w->store, "logged_alarm_id", &w->logged_id, sizeof(w->logged_id));
    if (rc == 0)
        rc = hc_store_commit(w->store, w->cfg->sync_interval_ms == 0);
    if (rc < 0) {
        hc_store_abort(w->store);
        w->pass_next = pass_next;
        return rc;
    }
    uint16_t pass = (uint16_t)w->pass_no;
    for (size_t i = 0; i < w->n_rolled; i++)
        hc_vtable_rec(&w->vt, w->rolled[i])->pass = pass;
    for (size_t i = from; i < w->n_dirty; i++) {
        struct hc_vrec *r = hc_vtable_rec(&w->vt, w->dirty[i]);
        r->dirty = 0;
        r->pass = pass;
    }
    w->pass_written += n + w->n_rolled;
    if (trim) {     /* every vehicle now has pass == pass_no; none has pass_no + 1 */
        w->pass_mark = hc_store_journal_mark(w->store);
        w->pass_next = 0;
        w->pass_written = 0;
        w->pass_no++;
        STAT_ADD(w, passes, 1);
    }
    w->n_dirty = from;
    STAT_ADD(w, persisted, n);
    STAT_ADD(w, rolled, w->n_rolled);
    STAT_ADD(w, commits, 1);
    return 0;
}

/* What is not yet where it is going: dirty vehicles, alarms not committed,
 * and committed alarms not yet synced and in alarms.log (counted as one). */
static uint64_t pending(const struct hc_worker *w)
{
    return w->n_dirty + w->n_alarms + (w->unsynced ? 1 : 0);
}

/* Alarms become durable (one fsync for all of them) at most this long
 * after their commit, and only then go to alarms.log.  One fsync per alarm
 * commit would flush the whole shard's dirty pages every 10 ms while tows
 * come in. */
#define ALARM_SYNC_MS 50

/* Sync the store once committed alarms have waited ALARM_SYNC_MS (or now,
 * with force), then append everything committed but not yet in alarms.log,
 * from the store, in order.  Also retries appends that failed. */
static void flush_alarms(struct hc_worker *w, int force)
{
    char who[32];
    if (!w->unsynced && !w->relog && !w->rehand)
        return;
    if (w->unsynced && !force && mono_ms() < w->alarm_sync_due)
        return;
    snprintf(who, sizeof(who), "worker %u", w->id);
    if (w->unsynced) {
        int rc = hc_store_sync(w->store);
        if (rc < 0) {
            hc_error(who, "syncing committed alarms: %s; retrying", hc_strerror(rc));
            w->alarm_sync_due = mono_ms() + ALARM_SYNC_MS;
            return;
        }
        w->unsynced = 0;
        hand_over(w, who);
    } else if (w->rehand) {
        hand_over(w, who);
    }
    relog_from_store(w, who);
    STAT_SET(w, dirty, pending(w));
}

/* Write the dirty set and pending alarms, TXN_VEHICLES at a time; the
 * alarms (the urgent part) go with the first transaction.  On failure what
 * was not written stays pending and the next interval tries again. */
static int commit(struct hc_worker *w, const char *why)
{
    char who[32];
    int alarms = w->n_alarms > 0 || w->logged_id != w->logged_id_stored;
    snprintf(who, sizeof(who), "worker %u", w->id);
    if (w->n_dirty == 0 && !alarms)
        return 0;
    do {
        size_t n = w->n_dirty < TXN_VEHICLES ? w->n_dirty : TXN_VEHICLES;
        int rc = commit_chunk(w, n, alarms);
        if (rc < 0) {
            STAT_ADD(w, commit_errors, 1);
            if (w->stats.commit_errors < 10 || w->stats.commit_errors % 1000 == 0)
                hc_error(who, "commit of %zu vehicles and %zu alarms failed (%s): %s; will retry",
                         n, alarms ? w->n_alarms : 0, why, hc_store_error(w->store));
            STAT_SET(w, dirty, pending(w));
            return rc;
        }
        if (alarms) {
            /* Committed; alarms.log gets them once a sync has made them
             * durable (flush_alarms), which groups the fsyncs. */
            w->logged_id_stored = w->logged_id;
            if (w->n_alarms && !w->unsynced)
                w->alarm_sync_due = mono_ms() + ALARM_SYNC_MS;
            if (w->n_alarms)
                w->unsynced = 1;
            for (size_t i = 0; i < w->n_alarms; i++)
                free(w->alarms[i].json);
            w->n_alarms = 0;
            alarms = 0;
        }
    } while (w->n_dirty > 0);
    STAT_SET(w, dirty, pending(w));
    return 0;
}

/* ---- the loop ------------------------------------------------------------ */

static int push_dirty(struct hc_worker *w, uint32_t idx)
{
    if (w->n_dirty == w->cap_dirty) {
        size_t cap = w->cap_dirty ? w->cap_dirty * 2 : 4096;
        uint32_t *d = realloc(w->dirty, cap * sizeof(*d));
        if (!d)
            return -ENOMEM;
        w->dirty = d;
        w->cap_dirty = cap;
    }
    w->dirty[w->n_dirty++] = idx;
    return 0;
}

static void raise_alarm(struct hc_worker *w, const struct hc_alarm *a, uint32_t vehicle)
{
    char id[HC_ALARM_ID_LEN];
    if (w->n_alarms == w->cap_alarms) {
        size_t cap = w->cap_alarms ? w->cap_alarms * 2 : 64;
        struct hc_pending_alarm *p = realloc(w->alarms, cap * sizeof(*p));
        if (!p) {
            hc_error("worker", "out of memory queueing an alarm for %s", a->vid);
            return;
        }
        w->alarms = p;
        w->cap_alarms = cap;
    }
    uint64_t seq = ++w->alarm_seq;
    hc_alarm_id_format(w->id, seq, id);
    char *json = hc_alarm_json(a, id, "firing", hc_time_now_ms());
    if (!json) {
        hc_error("worker", "out of memory building alarm %s for %s", id, a->vid);
        return;
    }
    w->alarms[w->n_alarms].id = ((uint64_t)w->id << 48) | seq;
    w->alarms[w->n_alarms].json = json;
    w->alarms[w->n_alarms].vehicle = vehicle;
    w->n_alarms++;
    STAT_ADD(w, alarms, 1);
}

static void process(struct hc_worker *w, struct hc_report *batch, size_t n)
{
    uint64_t hash[BATCH];
    int64_t idx[BATCH];
    struct hc_alarm alarm;
    uint64_t rejected = 0, stale = 0;

    for (size_t i = 0; i < n; i++) {
        hash[i] = hc_hash(batch[i].vid, batch[i].vid_len);
        hc_vtable_prefetch(&w->vt, hash[i]);
    }
    for (size_t i = 0; i < n; i++) {
        bool created;
        idx[i] = hc_vtable_upsert(&w->vt, batch[i].vid, batch[i].vid_len, hash[i], vehicle_init,
                                  &w->det, &created);
        if (idx[i] >= 0)
            hc_vehicle_prefetch(&w->det, hc_vrec_vehicle(hc_vtable_rec(&w->vt, (uint32_t)idx[i])));
    }
    for (size_t i = 0; i < n; i++) {
        if (idx[i] < 0) {
            rejected++;
            continue;
        }
        struct hc_vrec *r = hc_vtable_rec(&w->vt, (uint32_t)idx[i]);
        int rc = hc_detect_step(&w->det, hc_vrec_vehicle(r), &batch[i], &alarm);
        if (rc < 0) {
            if (rc == HC_ESTALE)
                stale++;
            else
                rejected++;
            continue;
        }
        if (!r->dirty && push_dirty(w, (uint32_t)idx[i]) == 0)
            r->dirty = 1;
        if (rc == HC_DETECT_ALARM)
            raise_alarm(w, &alarm, (uint32_t)idx[i]);
    }
    STAT_ADD(w, reports, n);
    if (rejected)
        STAT_ADD(w, rejected, rejected);
    if (stale)
        STAT_ADD(w, stale, stale);
    STAT_SET(w, vehicles, w->vt.count);
    STAT_SET(w, dirty, pending(w));
}

static size_t take(struct hc_worker *w, struct hc_report *batch)
{
    size_t n = 0;
    while (n < BATCH && hc_ring_pop(w->in, &batch[n]))
        n++;
    return n;
}

/* ---- control requests ---------------------------------------------------- */

/* A request is QUEUED until the worker takes it (RUNNING) or its caller
 * gives up (ABANDONED): exactly one of the two compare-and-swaps from
 * QUEUED wins, so a request the caller gave up on is never carried out,
 * and one the worker has begun is always answered. */
enum { WREQ_QUEUED, WREQ_RUNNING, WREQ_ANSWERED, WREQ_ABANDONED };

struct hc_wreq *hc_wreq_new(int kind, const char *key)
{
    if (strlen(key) > HC_VID_MAX)
        return NULL;
    struct hc_wreq *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (sem_init(&r->done, 0, 0) < 0) {
        free(r);
        return NULL;
    }
    r->kind = kind;
    r->limit = 1000;
    snprintf(r->key, sizeof(r->key), "%s", key);
    return r;
}

void hc_wreq_free(struct hc_wreq *r)
{
    if (!r)
        return;
    sem_destroy(&r->done);
    free(r->list);
    free(r);
}

int hc_worker_call(struct hc_worker *w, struct hc_wreq *r, int timeout_ms)
{
    r->state = WREQ_QUEUED;
    if (!ck_ring_enqueue_spsc(&w->ctl, w->ctl_buf, r))
        return -EAGAIN;
    hc_wake_kick(&w->wake);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (sem_timedwait(&r->done, &until) < 0) {
        if (errno == EINTR)
            continue;
        int expect = WREQ_QUEUED;
        if (__atomic_compare_exchange_n(&r->state, &expect, WREQ_ABANDONED, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return -ETIMEDOUT;      /* never carried out; the worker frees it */
        while (sem_wait(&r->done) < 0 && errno == EINTR)
            ;                       /* begun: its answer is on the way */
        break;
    }
    return 0;
}

/* Take a request to carry it out: 0 if its caller gave up (then it is
 * freed here). */
static int take_request(struct hc_wreq *r)
{
    int expect = WREQ_QUEUED;
    if (__atomic_compare_exchange_n(&r->state, &expect, WREQ_RUNNING, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
        return 1;
    hc_wreq_free(r);
    return 0;
}

static void answer(struct hc_wreq *r)
{
    __atomic_store_n(&r->state, WREQ_ANSWERED, __ATOMIC_RELEASE);
    sem_post(&r->done);
}

/* The vehicle as the control socket shows it; the window's largest
 * distance (O(W^2)) only when full. */
static void vehicle_info(struct hc_worker *w, struct hc_vrec *r, struct hc_vehicle_info *out,
                         int full)
{
    struct hc_vehicle *v = hc_vrec_vehicle(r);
    struct hc_window *win = hc_vehicle_window(v);
    const struct hc_maker *m = hc_detector_maker_at(&w->det, v->maker);
    memset(out, 0, sizeof(*out));
    memcpy(out->vid, hc_vtable_vid(&w->vt, r), r->vid_len);
    memcpy(out->maker, m->name, m->len);
    if (v->gen != w->det.gen) {     /* what the next report would count */
        hc_window_recount(win, w->det.kernel, m->limit);
        v->gen = w->det.gen;
    }
    out->alarm_on = !(v->flags & HC_VF_ALARM_OFF);
    out->alarmed = !!(v->flags & HC_VF_ALARMED);
    out->last_ts = v->last_ts;
    out->parked_ts = win->len ? v->parked_ts : -1;
    out->parked_lat = v->parked_lat;
    out->parked_lon = v->parked_lon;
    out->window_len = win->len;
    out->window_size = win->cap;
    out->pairs = win->pairs;
    out->max_distance_m = full && win->len > 1
                          ? hc_geo_chord2_to_m(hc_window_max_chord2(win, w->det.kernel)) : 0;
    out->threshold_m = m->threshold_m;
}

static int64_t find_vehicle(struct hc_worker *w, const char *vid)
{
    size_t len = strlen(vid);
    return hc_vtable_find(&w->vt, vid, len, hc_hash(vid, len));
}

/* Switch a vehicle's alarm on or off (creating it if it never reported)
 * and write it in a transaction of its own, synced: the answer means it is
 * kept.  If that fails, the vehicle is put back as it was. */
static void vehicle_alarm(struct hc_worker *w, struct hc_wreq *r)
{
    size_t len = strlen(r->key);
    bool created = false;
    int64_t i = hc_vtable_upsert(&w->vt, r->key, len, hc_hash(r->key, len), vehicle_init,
                                 &w->det, &created);
    void *before = i < 0 ? NULL : malloc(w->vt.vsize);
    if (!before) {
        r->rc = i < 0 ? (int)i : -ENOMEM;
        return;
    }
    struct hc_vrec *rec = hc_vtable_rec(&w->vt, (uint32_t)i);
    struct hc_vehicle *v = hc_vrec_vehicle(rec);
    memcpy(before, v, w->vt.vsize);
    hc_vehicle_set_alarm(v, r->on);
    r->rc = hc_store_begin(w->store);
    if (r->rc == 0)
        r->rc = put_vehicle(w, (uint32_t)i);
    if (r->rc == 0)
        r->rc = hc_store_commit(w->store, true);
    if (r->rc < 0) {
        hc_store_abort(w->store);
        memcpy(v, before, w->vt.vsize);
    }
    free(before);
    r->created = created;
    STAT_SET(w, vehicles, w->vt.count);
    vehicle_info(w, rec, &r->info, 1);
}

static void vehicle_list(struct hc_worker *w, struct hc_wreq *r)
{
    size_t cap = 0;
    for (uint32_t i = 0; i < w->vt.count; i++) {
        struct hc_vrec *rec = hc_vtable_rec(&w->vt, i);
        uint8_t f = hc_vrec_vehicle(rec)->flags;
        if ((r->alarming && !(f & HC_VF_ALARMED)) || (r->alarm_off && !(f & HC_VF_ALARM_OFF)))
            continue;
        if (r->n_list == r->limit) {
            r->truncated = 1;
            break;
        }
        if (r->n_list == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct hc_vehicle_info *l = realloc(r->list, ncap * sizeof(*l));
            if (!l) {
                r->rc = -ENOMEM;
                return;
            }
            r->list = l;
            cap = ncap;
        }
        vehicle_info(w, rec, &r->list[r->n_list++], 0);
    }
}

static void serve_control(struct hc_worker *w)
{
    void *p;
    while (ck_ring_dequeue_spsc(&w->ctl, w->ctl_buf, &p)) {
        struct hc_wreq *r = p;
        int64_t i;
        if (!take_request(r))
            continue;
        r->rc = 0;
        switch (r->kind) {
        case HC_WREQ_THRESHOLD_SET:
            r->rc = hc_detector_set_threshold(&w->det, r->key, strlen(r->key), r->meters);
            if (r->rc > 0)
                r->rc = 0;
            break;
        case HC_WREQ_THRESHOLD_UNSET:
            /* -ENOENT: this worker never met the maker; nothing to undo */
            if (hc_detector_unset_threshold(&w->det, r->key, strlen(r->key)) == -ENOENT)
                r->rc = 0;
            break;
        case HC_WREQ_RULE_SET:
            r->rc = hc_detector_set_rule(&w->det, r->key, strlen(r->key),
                                         (enum hc_rule)r->rule);
            if (r->rc > 0)
                r->rc = 0;
            break;
        case HC_WREQ_RULE_UNSET:
            if (hc_detector_unset_rule(&w->det, r->key, strlen(r->key)) == -ENOENT)
                r->rc = 0;
            break;
        case HC_WREQ_VEHICLE_SHOW:
            i = find_vehicle(w, r->key);
            if (i < 0)
                r->rc = -ENOENT;
            else
                vehicle_info(w, hc_vtable_rec(&w->vt, (uint32_t)i), &r->info, 1);
            break;
        case HC_WREQ_VEHICLE_ALARM:
            vehicle_alarm(w, r);
            break;
        case HC_WREQ_VEHICLE_LIST:
            vehicle_list(w, r);
            break;
        default:
            r->rc = -EINVAL;
        }
        answer(r);
    }
}

static void *worker_main(void *arg)
{
    struct hc_worker *w = arg;
    struct hc_report batch[BATCH];
    char name[16];
    snprintf(name, sizeof(name), "hubcap-w%u", w->id);
    pthread_setname_np(pthread_self(), name);

    uint64_t now = mono_ms();
    w->next_commit_ms = now + w->cfg->commit_interval_ms;
    w->next_sync_ms = now + w->cfg->sync_interval_ms;
    for (;;) {
        if (ck_ring_size(&w->ctl))
            serve_control(w);
        size_t n = take(w, batch);
        if (n)
            process(w, batch, n);
        now = mono_ms();
        if (now >= w->next_commit_ms) {
            commit(w, "interval");
            w->next_commit_ms = now + w->cfg->commit_interval_ms;
            STAT_SET(w, ring_fill, hc_ring_count(w->in));
        }
        flush_alarms(w, 0);
        if (w->cfg->sync_interval_ms && now >= w->next_sync_ms) {
            hc_store_sync(w->store);
            w->next_sync_ms = now + w->cfg->sync_interval_ms;
        }
        if (n)
            continue;
        /* Idle.  Stop once the front is done and the ring is empty. */
        if (__atomic_load_n(w->front_done, __ATOMIC_ACQUIRE) && hc_ring_count(w->in) == 0)
            break;
        hc_wake_prepare(&w->wake);
        if (hc_ring_count(w->in) || ck_ring_size(&w->ctl) ||
            __atomic_load_n(w->front_done, __ATOMIC_ACQUIRE)) {
            hc_wake_cancel(&w->wake);
            continue;
        }
        /* Sleep until woken, or until the next commit is due, or at most
         * one commit interval (a doorbell held back for batching is never
         * waited on for longer). */
        uint64_t due = w->next_commit_ms;
        if (w->unsynced && w->alarm_sync_due < due)
            due = w->alarm_sync_due;
        int idle = (int)w->cfg->commit_interval_ms;
        if (!hc_wake_wait(&w->wake, (w->n_dirty || w->n_alarms || w->unsynced) && due > now &&
                                        due - now < (uint64_t)idle
                                        ? (int)(due - now) : idle) && !w->n_dirty)
            hc_store_release(w->store, 0);  /* quiet: hand back what commits mapped */
    }
    commit(w, "shutdown");
    flush_alarms(w, 1);
    commit(w, "shutdown");          /* records how far alarms.log got */
    if (w->n_alarms) {
        /* The store refused them: alarms.log is all that is left. */
        char who[32];
        snprintf(who, sizeof(who), "worker %u", w->id);
        hc_error(who, "%zu alarms could not be committed at shutdown (%s); writing them to"
                 " alarms.log only", w->n_alarms, hc_store_error(w->store));
        w->relog = 0;
        log_alarms(w, who);
    }
    hc_store_sync(w->store);
    hc_store_release(w->store, 0);
    STAT_SET(w, ring_fill, 0);
    return NULL;
}

int hc_worker_start(struct hc_worker *w)
{
    char who[32];
    snprintf(who, sizeof(who), "worker %u", w->id);
    return hc_thread_start(&w->thread, worker_main, w, w->cpu, who);
}

void hc_worker_join(struct hc_worker *w)
{
    pthread_join(w->thread, NULL);
}

void hc_worker_close(struct hc_worker *w)
{
    if (!w)
        return;
    void *p;
    while (ck_ring_dequeue_spsc(&w->ctl, w->ctl_buf, &p)) {
        if (take_request(p)) {      /* else given up on, and freed */
            ((struct hc_wreq *)p)->rc = -ESHUTDOWN;
            answer(p);
        }
    }
    for (size_t i = 0; i < w->n_alarms; i++)
        free(w->alarms[i].json);
    free(w->alarms);
    free(w->dirty);
    free(w->rolled);
    free(w->scratch);
    hc_store_close(w->store);
    hc_vtable_free(&w->vt);
    hc_detector_free(&w->det);
    hc_wake_free(&w->wake);
    w->store = NULL;
}
