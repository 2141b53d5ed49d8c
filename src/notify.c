/*
 * notify.c — the alarm lifecycle and its notifier thread (see notify.h).
 *
 * The thread loops: take commands off the ring (alarms handed over,
 * acknowledgements), commit the new alarms, step every alarm whose timer
 * is due, commit those steps with the messages they send, then sleep on
 * its doorbell until the next timer or a command.
 *
 * Every change goes through one batch: each touched alarm's record is
 * saved first, the change is made in memory, and the batch's messages and
 * records are written in one outbox transaction (hc_push_submit_with).  If
 * that fails the saved records are put back and the step is tried again a
 * second later, so memory never runs ahead of the disk.
 *
 * A stored alarm is struct arec, then the body; LMDB values need not be
 * aligned, so the header is copied out.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ck_ring.h>

#include "hubcap/alarmjson.h"
#include "hubcap/error.h"
#include "hubcap/log.h"
#include "hubcap/notify.h"
#include "hubcap/ring.h"
#include "hubcap/store.h"
#include "hubcap/thread.h"
#include "hubcap/timefmt.h"

#define AREC_MAGIC 0x314e4348u      /* "HCN1" */
#define RING_SIZE 4096              /* commands waiting at most */
#define RETRY_MS 1000               /* after a failed transaction */
#define IDLE_MS 60000

struct arec {
    uint32_t magic;
    uint8_t state, step, pad_[2];
    uint32_t round, sent;
    uint32_t shard, body_len;
    uint64_t store_id;
    int64_t raised_ms, round_ms, next_ms, updated_ms;
    uint64_t out[HC_NOTIFY_CHANNELS_MAX];   /* last outbox seq per channel, 0: none */
};

struct alarm {
    struct arec r;
    char id[HC_NOTIFY_ID_MAX + 1];
    char *body;
    size_t hi;                      /* index in the heap */
    uint64_t batch;                 /* the batch that last touched it */
};

enum cmd_kind { CMD_RAISE, CMD_ACK, CMD_SETTINGS, CMD_CHANNELS };

struct chan {
    char name[HC_PUSH_NAME_MAX + 1];
    int64_t at_ms;                  /* after the round starts */
};

struct cmd {
    enum cmd_kind kind;
    char id[HC_NOTIFY_ID_MAX + 1];
    unsigned shard;                 /* raise */
    uint64_t store_id;
    char *body;
    size_t len;
    int taken;                      /* raise: its alarm was made (take_in) */
    int state;                      /* ack: in */
    uint32_t repeat_ms, snooze_ms;  /* settings: in (0: keep) */
    struct chan ch[HC_NOTIFY_CHANNELS_MAX];     /* channels: in */
    unsigned n_ch;
    int rc;                         /* ack: out */
    char msg[160];
    sem_t done;
};

/* One transaction's worth of changes. */
struct touched {
    struct alarm *a;
    struct arec saved;              /* its record before the change */
};

struct sent {
    struct alarm *a;                /* the alarm a message is for */
    unsigned ch;                    /* and its channel */
};

struct batch {
    struct touched *t;
    size_t n, cap;
    struct hc_push_msg *msgs;       /* what hc_push_submit_with takes */
    struct sent *sent;              /* ... and, beside each, whose it is */
    size_t n_msgs, cap_msgs, cap_sent;
    uint64_t *cancel;               /* outbox seqs to withdraw */
    size_t n_cancel, cap_cancel;
    int marks;                      /* write the shard marks too */
    uint64_t serial;                /* this batch's number, from 1 */
};

struct hc_notify {
    struct hc_push *push;
    MDB_dbi alarms_db, meta_db;
    struct chan ch[HC_NOTIFY_CHANNELS_MAX];
    unsigned n_ch;
    int64_t repeat_ms, snooze_ms;   /* atomic: hc_notify_settings reads them */
    uint64_t *marks;                /* [shards]: last store id taken in */
    uint64_t *marks_saved;          /* ... before the transaction under way */
    uint8_t *gap;                   /* [shards]: a raise was dropped, see drop_raise */
    unsigned shards;

    struct ck_ring ring;
    struct ck_ring_buffer *rbuf;
    struct hc_wake wake;
    pthread_t thread;
    int started, stop;              /* stop: atomic */
    struct cmd **early;             /* raised before start */
    size_t n_early, cap_early;
    struct cmd **retry;             /* raises whose transaction failed */
    size_t n_retry, cap_retry;
    int64_t retry_at;

    struct alarm **heap;
    size_t n_heap, cap_heap;
    struct batch b;

    pthread_mutex_t mu;             /* guards st */
    struct hc_notify_stats st;
};

static const char *const state_names[] = {"firing", "processing", "done"};

const char *hc_alarm_state_name(int state)
{
    return state >= 0 && state <= HC_ALARM_DONE ? state_names[state] : NULL;
}

int hc_alarm_state_parse(const char *s)
{
    for (int i = 0; i <= HC_ALARM_DONE; i++)
        if (s && strcmp(s, state_names[i]) == 0)
            return i;
    return -1;
}

/* ---- small helpers ------------------------------------------------------ */

static int grow(void *arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    void *p = realloc(*(void **)arr, c * elem);
    if (!p)
        return -ENOMEM;
    *(void **)arr = p;
    *cap = c;
    return 0;
}

static void mark_key(unsigned shard, char *buf, size_t n)
{
    snprintf(buf, n, "mark.%u", shard);
}

/* ---- the timer heap (open alarms by next_ms) ------------------------------ */

static int before(const struct alarm *x, const struct alarm *y)
{
    return x->r.next_ms < y->r.next_ms;
}

static void heap_set(struct hc_notify *n, size_t i, struct alarm *a)
{
    n->heap[i] = a;
    a->hi = i;
}

static void heap_up(struct hc_notify *n, size_t i)
{
    struct alarm *a = n->heap[i];
    while (i > 0 && before(a, n->heap[(i - 1) / 2])) {
        heap_set(n, i, n->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(n, i, a);
}

static void heap_down(struct hc_notify *n, size_t i)
{
    struct alarm *a = n->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n->n_heap)
            break;
        if (c + 1 < n->n_heap && before(n->heap[c + 1], n->heap[c]))
            c++;
        if (!before(n->heap[c], a))
            break;
        heap_set(n, i, n->heap[c]);
        i = c;
    }
    heap_set(n, i, a);
}

static int heap_add(struct hc_notify *n, struct alarm *a)
{
    if (grow(&n->heap, &n->cap_heap, n->n_heap, sizeof(*n->heap)) < 0)
        return -ENOMEM;
    heap_set(n, n->n_heap++, a);
    heap_up(n, a->hi);
    return 0;
}

static void heap_fix(struct hc_notify *n, struct alarm *a)
{
    heap_up(n, a->hi);
    heap_down(n, a->hi);
}

/* Restore the heap order after many keys changed at once. */
static void heap_rebuild(struct hc_notify *n)
{
    for (size_t i = n->n_heap / 2; i-- > 0;)
        heap_down(n, i);
}

static void heap_del(struct hc_notify *n, struct alarm *a)
{
    size_t i = a->hi;
    struct alarm *last = n->heap[--n->n_heap];
    if (i < n->n_heap) {
        heap_set(n, i, last);
        heap_fix(n, last);
    }
}

static struct alarm *find_open(struct hc_notify *n, const char *id)
{
    for (size_t i = 0; i < n->n_heap; i++)      /* acks are rare: a scan will do */
        if (strcmp(n->heap[i]->id, id) == 0)
            return n->heap[i];
    return NULL;
}

static void alarm_free(struct alarm *a)
{
    if (a) {
        free(a->body);
        free(a);
    }
}

/* ---- records -------------------------------------------------------------- */

static int put_alarm(struct hc_notify *n, MDB_txn *txn, const struct alarm *a)
{
    MDB_val k = { strlen(a->id), (void *)a->id }, v = { sizeof(a->r) + a->r.body_len, NULL };
    int m = mdb_put(txn, n->alarms_db, &k, &v, MDB_RESERVE);
    if (m == 0) {
        memcpy(v.mv_data, &a->r, sizeof(a->r));
        memcpy((char *)v.mv_data + sizeof(a->r), a->body, a->r.body_len);
    }
    return hc_store_mdb_error(m);
}

/* The record in v, or -1 if it is not one of ours. */
static int arec_of(const MDB_val *v, struct arec *r)
{
    if (v->mv_size < sizeof(*r))
        return -1;
    memcpy(r, v->mv_data, sizeof(*r));
    if (r->magic != AREC_MAGIC || r->state > HC_ALARM_DONE ||
        v->mv_size != sizeof(*r) + r->body_len)
        return -1;
    return 0;
}

/* ---- batches -------------------------------------------------------------- */

/* Note that a is about to change (once per batch). */
static int touch(struct hc_notify *n, struct alarm *a)
{
    struct batch *b = &n->b;
    if (a->batch == b->serial)
        return 0;
    if (grow(&b->t, &b->cap, b->n, sizeof(*b->t)) < 0)
        return -ENOMEM;
    b->t[b->n++] = (struct touched){ a, a->r };
    a->batch = b->serial;
    return 0;
}

static int withdraw(struct hc_notify *n, uint64_t seq)
{
    struct batch *b = &n->b;
    if (seq == 0)
        return 0;
    if (grow(&b->cancel, &b->cap_cancel, b->n_cancel, sizeof(*b->cancel)) < 0)
        return -ENOMEM;
    b->cancel[b->n_cancel++] = seq;
    return 0;
}

/* The message body for a's channel ch: its webhook body with state,
 * channel and attempt set.  A body that does not parse goes out as it is. */
static char *message_body(const struct hc_notify *n, const struct alarm *a, unsigned ch,
                          size_t *len)
{
    json_t *j = json_loadb(a->body, a->r.body_len, 0, NULL);
    json_t *d = json_object_get(j, "data");
    char *s = NULL;
    if (json_is_object(d)) {
        json_object_set_new(d, "state", json_string("firing"));
        json_object_set_new(d, "channel", json_string(n->ch[ch].name));
        json_object_set_new(d, "attempt", json_integer(a->r.round));
        s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    } else {
        hc_warn("notify", "alarm %s: its body is not a webhook body; sent as it is", a->id);
        s = malloc(a->r.body_len + 1);
        if (s) {
            memcpy(s, a->body, a->r.body_len);
            s[a->r.body_len] = '\0';
        }
    }
    json_decref(j);
    *len = s ? strlen(s) : 0;
    return s;
}

/* Queue a's message to channel ch, withdrawing its previous one there. */
static int send_to(struct hc_notify *n, struct alarm *a, unsigned ch)
{
    struct batch *b = &n->b;
    size_t len;
    if (grow(&b->msgs, &b->cap_msgs, b->n_msgs, sizeof(*b->msgs)) < 0 ||
        grow(&b->sent, &b->cap_sent, b->n_msgs, sizeof(*b->sent)) < 0)
        return -ENOMEM;
    char *body = message_body(n, a, ch, &len);
    if (!body || withdraw(n, a->r.out[ch]) < 0) {
        free(body);
        return -ENOMEM;
    }
    b->msgs[b->n_msgs] = (struct hc_push_msg){ .topic = "vehicle.moved",
                                               .endpoint = n->ch[ch].name,
                                               .body = body, .len = len };
    b->sent[b->n_msgs++] = (struct sent){ a, ch };
    return 0;
}

/* Inside the transaction, after the messages: record where they went,
 * withdraw what they replace, write every touched alarm and the marks. */
static int batch_write(void *ctx, MDB_txn *txn)
{
    struct hc_notify *n = ctx;
    struct batch *b = &n->b;
    int rc = 0;
    for (size_t i = 0; i < b->n_msgs; i++) {
        b->sent[i].a->r.out[b->sent[i].ch] = b->msgs[i].seq;
        b->sent[i].a->r.sent++;
    }
    for (size_t i = 0; rc >= 0 && i < b->n_cancel; i++)
        rc = hc_push_cancel(n->push, txn, b->cancel[i]);
    for (size_t i = 0; rc >= 0 && i < b->n; i++)
        rc = put_alarm(n, txn, b->t[i].a);
    for (unsigned s = 0; rc >= 0 && b->marks && s < n->shards; s++) {
        char key[32];
        mark_key(s, key, sizeof(key));
        MDB_val k = { strlen(key), key }, v = { sizeof(n->marks[s]), &n->marks[s] };
        rc = hc_store_mdb_error(mdb_put(txn, n->meta_db, &k, &v, 0));
    }
    return rc < 0 ? rc : 0;
}

static void batch_clear(struct hc_notify *n)
{
    struct batch *b = &n->b;
    for (size_t i = 0; i < b->n_msgs; i++)
        free((void *)b->msgs[i].body);
    b->n = b->n_msgs = b->n_cancel = 0;
    b->marks = 0;
    b->serial++;
}

/* Give every touched alarm its saved record back and drop the batch. */
static void batch_abort(struct hc_notify *n)
{
    for (size_t i = 0; i < n->b.n; i++)
        n->b.t[i].a->r = n->b.t[i].saved;
    batch_clear(n);
}

/* Commit the batch.  On failure every touched alarm gets its saved record
 * back and the error is returned; the caller decides what to retry. */
static int batch_commit(struct hc_notify *n)
{
    struct batch *b = &n->b;
    if (b->n == 0 && b->n_msgs == 0 && !b->marks)
        return 0;
    int rc = hc_push_submit_with(n->push, b->msgs, b->n_msgs, batch_write, n);
    pthread_mutex_lock(&n->mu);
    if (rc < 0) {
        n->st.errors++;
    } else {
        n->st.messages += b->n_msgs;
        for (size_t i = 0; i < b->n; i++) {
            const struct arec *was = &b->t[i].saved, *is = &b->t[i].a->r;
            n->st.rounds += is->round - was->round;
            if (was->state == is->state)
                continue;
            if (was->state == HC_ALARM_FIRING)
                n->st.firing--;
            else if (was->state == HC_ALARM_PROCESSING)
                n->st.processing--;
            if (is->state == HC_ALARM_FIRING)
                n->st.firing++;
            else if (is->state == HC_ALARM_PROCESSING)
                n->st.processing++;
            else
                n->st.done++;
        }
    }
    pthread_mutex_unlock(&n->mu);
    if (rc < 0) {
        hc_error("notify", "writing %zu alarm changes and %zu messages: %s; trying again in"
                 " %d ms", b->n, b->n_msgs, hc_strerror(rc), RETRY_MS);
        batch_abort(n);
    } else {
        batch_clear(n);
    }
    return rc;
}

/* ---- the lifecycle -------------------------------------------------------- */

static void new_round(struct alarm *a, int64_t now)
{
    a->r.round++;
    a->r.round_ms = now;
    a->r.step = 0;
}

/* When firing alarm a is next due: its next channel's turn, if that
 * comes before the next round, else the next round. */
static int64_t firing_due(const struct hc_notify *n, const struct alarm *a)
{
    int64_t round_end = a->r.round_ms + n->repeat_ms;
    if (a->r.step < n->n_ch && a->r.round_ms + n->ch[a->r.step].at_ms < round_end)
        return a->r.round_ms + n->ch[a->r.step].at_ms;
    return round_end;
}

/* a's timer is due: send every step whose time has come and set the next
 * one.  Changes go into the batch. */
static int step(struct hc_notify *n, struct alarm *a, int64_t now)
{
    int rc = touch(n, a);
    if (rc < 0)
        return rc;
    if (a->r.state == HC_ALARM_PROCESSING) {     /* the snooze is over */
        a->r.state = HC_ALARM_FIRING;
        a->r.updated_ms = now;
        new_round(a, now);
    }
    for (;;) {
        if (a->r.round == 0 || now >= a->r.round_ms + n->repeat_ms)
            new_round(a, now);
        int64_t at = firing_due(n, a);
        if (at > now) {
            a->r.next_ms = at;
            return 0;
        }
        rc = send_to(n, a, a->r.step);  /* due and before the round's end: a channel */
        if (rc < 0)
            return rc;
        a->r.step++;
    }
}

/* Take in the alarms handed over, in one transaction.  0, or < 0 with
 * nothing changed: the caller keeps the commands and tries again. */
static int take_in(struct hc_notify *n, struct cmd **cmds, size_t k, int64_t now)
{
    struct alarm **fresh = malloc(k * sizeof(*fresh));
    size_t nf = 0;
    int rc = fresh ? 0 : -ENOMEM;
    if (rc == 0 && n->cap_heap < n->n_heap + k) {   /* adding them later cannot fail */
        struct alarm **h = realloc(n->heap, (n->n_heap + k) * sizeof(*h));
        if (h) {
            n->heap = h;
            n->cap_heap = n->n_heap + k;
        } else {
            rc = -ENOMEM;
        }
    }
    memcpy(n->marks_saved, n->marks, n->shards * sizeof(*n->marks));
    for (size_t i = 0; rc == 0 && i < k; i++) {
        struct cmd *c = cmds[i];
        if (c->shard >= n->shards || c->store_id <= n->marks[c->shard] || n->gap[c->shard])
            continue;           /* taken in already, or after a gap (drop_raise) */
        struct alarm *a = calloc(1, sizeof(*a));
        if (!a) {
            rc = -ENOMEM;
            break;
        }
        fresh[nf++] = a;
        c->taken = 1;
        snprintf(a->id, sizeof(a->id), "%s", c->id);
        a->body = c->body;      /* owned by c until the commit */
        a->r = (struct arec){ .magic = AREC_MAGIC, .state = HC_ALARM_FIRING,
                              .shard = c->shard, .body_len = (uint32_t)c->len,
                              .store_id = c->store_id, .raised_ms = now, .next_ms = now,
                              .updated_ms = now };
        n->marks[c->shard] = c->store_id;
        n->b.marks = 1;
        rc = touch(n, a);
    }
    if (rc == 0)
        rc = batch_commit(n);
    else
        batch_clear(n);
    if (rc < 0) {
        memcpy(n->marks, n->marks_saved, n->shards * sizeof(*n->marks));
        for (size_t i = 0; i < k; i++)
            cmds[i]->taken = 0;
        for (size_t i = 0; i < nf; i++)
            free(fresh[i]);     /* not the body: the command keeps it */
        free(fresh);
        return rc;
    }
    for (size_t i = 0; i < k; i++)
        if (cmds[i]->taken)
            cmds[i]->body = NULL;   /* the alarm owns it now */
    for (size_t i = 0; i < nf; i++) {
        heap_add(n, fresh[i]);
        hc_info("notify", "alarm %s raised", fresh[i]->id);
    }
    pthread_mutex_lock(&n->mu);
    n->st.raised += nf;
    n->st.firing += nf;
    pthread_mutex_unlock(&n->mu);
    free(fresh);
    return 0;
}

static void answer(struct cmd *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void answer(struct cmd *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
    va_end(ap);
    c->rc = rc;
    sem_post(&c->done);
}

static int stored_state(void *ctx, MDB_txn *txn);

struct lookup {
    struct hc_notify *n;
    const char *id;
    int state;                      /* out: -1 not found */
};

/* An acknowledgement: one transaction of its own. */
static void ack(struct hc_notify *n, struct cmd *c, int64_t now)
{
    if (c->state != HC_ALARM_PROCESSING && c->state != HC_ALARM_DONE) {
        answer(c, -EINVAL, "an alarm is acknowledged as processing or done");
        return;
    }
    struct alarm *a = find_open(n, c->id);
    if (!a) {
        struct lookup l = { n, c->id, -1 };
        hc_push_read(n->push, stored_state, &l);
        if (l.state == HC_ALARM_DONE)
            answer(c, -EALREADY, "alarm %s is already done", c->id);
        else
            answer(c, -ENOENT, "no alarm %s (hubcapctl alarm list shows them)", c->id);
        return;
    }
    int rc = touch(n, a);
    for (unsigned i = 0; rc >= 0 && i < n->n_ch; i++)
        rc = withdraw(n, a->r.out[i]);
    if (rc < 0) {
        batch_clear(n);
        answer(c, rc, "out of memory acknowledging alarm %s", c->id);
        return;
    }
    a->r.state = (uint8_t)c->state;
    a->r.updated_ms = now;
    a->r.next_ms = c->state == HC_ALARM_DONE ? 0 : now + n->snooze_ms;
    rc = batch_commit(n);
    if (rc < 0) {
        answer(c, rc, "could not record the acknowledgement of alarm %s; nothing changed",
               c->id);
        return;
    }
    pthread_mutex_lock(&n->mu);
    n->st.acks++;
    pthread_mutex_unlock(&n->mu);
    if (c->state == HC_ALARM_DONE) {
        heap_del(n, a);
        alarm_free(a);
        hc_info("notify", "alarm %s done", c->id);
        answer(c, 0, "alarm %s done: no more notifications", c->id);
    } else {
        heap_fix(n, a);
        hc_info("notify", "alarm %s processing: snoozed for %.0f s", c->id,
                (double)n->snooze_ms / 1000.0);
        answer(c, 0, "alarm %s processing: notifications resume after the snooze", c->id);
    }
}

/* Reschedule every firing alarm after the settings or channels changed. */
static void reschedule(struct hc_notify *n)
{
    for (size_t i = 0; i < n->n_heap; i++)
        if (n->heap[i]->r.state == HC_ALARM_FIRING && n->heap[i]->r.round)
            n->heap[i]->r.next_ms = firing_due(n, n->heap[i]);
    heap_rebuild(n);
}

/* New repeat interval and snooze, at once: firing alarms are rescheduled;
 * a snooze under way keeps its end.  (hubcapd keeps them across restarts,
 * settings.h.) */
static void settings(struct hc_notify *n, struct cmd *c)
{
    if (c->repeat_ms)
        __atomic_store_n(&n->repeat_ms, (int64_t)c->repeat_ms, __ATOMIC_RELAXED);
    if (c->snooze_ms)
        __atomic_store_n(&n->snooze_ms, (int64_t)c->snooze_ms, __ATOMIC_RELAXED);
    reschedule(n);
    hc_info("notify", "settings changed: repeat interval %.1f s, snooze %.1f s",
            (double)n->repeat_ms / 1000.0, (double)n->snooze_ms / 1000.0);
    answer(c, 0, "repeat interval %.1f s, snooze %.1f s", (double)n->repeat_ms / 1000.0,
           (double)n->snooze_ms / 1000.0);
}

/* A new channel list, at once.  Each open alarm's last message per channel
 * follows its channel by name; what it still has waiting for a channel
 * that is gone is withdrawn.  One transaction. */
static void channels(struct hc_notify *n, struct cmd *c)
{
    int map[HC_NOTIFY_CHANNELS_MAX];    /* old index -> new, -1: gone */
    for (unsigned i = 0; i < n->n_ch; i++) {
        map[i] = -1;
        for (unsigned j = 0; j < c->n_ch; j++)
            if (strcmp(n->ch[i].name, c->ch[j].name) == 0)
                map[i] = (int)j;
    }
    int rc = 0;
    for (size_t a = 0; rc == 0 && a < n->n_heap; a++) {
        struct alarm *al = n->heap[a];
        uint64_t out[HC_NOTIFY_CHANNELS_MAX] = { 0 };
        rc = touch(n, al);
        for (unsigned i = 0; rc == 0 && i < n->n_ch; i++) {
            if (map[i] >= 0)
                out[map[i]] = al->r.out[i];
            else
                rc = withdraw(n, al->r.out[i]);
        }
        memcpy(al->r.out, out, sizeof(out));
        if (al->r.step > c->n_ch)
            al->r.step = (uint8_t)c->n_ch;
    }
    if (rc == 0)
        rc = batch_commit(n);   /* on failure it puts the records back */
    else
        batch_abort(n);
    if (rc < 0) {
        answer(c, rc, "could not apply the new channels (%s); nothing changed",
               hc_strerror(rc));
        return;
    }
    memcpy(n->ch, c->ch, sizeof(n->ch));
    n->n_ch = c->n_ch;
    reschedule(n);
    answer(c, 0, "%u channels", n->n_ch);
}

/* Step every alarm that is due, in one transaction. */
static void run_due(struct hc_notify *n, int64_t now)
{
    size_t k = 0;
    while (n->n_heap && n->heap[0]->r.next_ms <= now) {
        struct alarm *a = n->heap[0];
        if (step(n, a, now) < 0) {
            hc_error("notify", "out of memory stepping alarm %s; trying again in %d ms", a->id,
                     RETRY_MS);
            a->r.next_ms = now + RETRY_MS;
        }
        heap_fix(n, a);
        k++;
    }
    if (k == 0)
        return;
    struct batch *b = &n->b;
    size_t touched = b->n;
    struct alarm **again = touched ? malloc(touched * sizeof(*again)) : NULL;
    if (again)
        for (size_t i = 0; i < touched; i++)
            again[i] = b->t[i].a;
    if (batch_commit(n) < 0) {
        for (size_t i = 0; again && i < touched; i++)
            again[i]->r.next_ms = now + RETRY_MS;   /* records were put back */
        heap_rebuild(n);
    }
    free(again);
}

/* ---- the thread ----------------------------------------------------------- */

static int push_cmd(struct cmd ***arr, size_t *n, size_t *cap, struct cmd *c)
{
    if (grow(arr, cap, *n, sizeof(**arr)) < 0)
        return -ENOMEM;
    (*arr)[(*n)++] = c;
    return 0;
}

static void cmd_free(struct cmd *c)
{
    free(c->body);
    free(c);
}

/* A raise that cannot even be queued (out of memory).  Its shard takes
 * nothing more until the next start, so the shard's mark stays before it
 * and the start-up hand-over brings it, and the rest, in order. */
static void drop_raise(struct hc_notify *n, struct cmd *c)
{
    if (c->shard < n->shards && !n->gap[c->shard])
        hc_error("notify", "out of memory taking in alarm %s; shard %u's alarms from it on"
                 " are taken in at the next start", c->id, c->shard);
    if (c->shard < n->shards)
        n->gap[c->shard] = 1;
    cmd_free(c);
}

static void raise_batch(struct hc_notify *n, struct cmd **raises, size_t k, int64_t now)
{
    if (k == 0)
        return;
    if (take_in(n, raises, k, now) < 0) {
        for (size_t i = 0; i < k; i++)
            if (push_cmd(&n->retry, &n->n_retry, &n->cap_retry, raises[i]) < 0)
                drop_raise(n, raises[i]);
        n->retry_at = now + RETRY_MS;
        return;
    }
    for (size_t i = 0; i < k; i++)
        cmd_free(raises[i]);
}

/* Queue a raise to take in now (or behind the ones waiting to be retried,
 * which keeps each shard's alarms in order). */
static void add_raise(struct hc_notify *n, struct cmd ***raises, size_t *k, size_t *cap,
                      struct cmd *c)
{
    int rc = n->n_retry ? push_cmd(&n->retry, &n->n_retry, &n->cap_retry, c)
                        : push_cmd(raises, k, cap, c);
    if (rc < 0)
        drop_raise(n, c);
}

static void *notifier_main(void *arg)
{
    struct hc_notify *n = arg;
    struct cmd **raises = NULL, **early = NULL;
    size_t k = 0, cap = 0;
    pthread_setname_np(pthread_self(), "hubcap-notify");
    for (;;) {
        int64_t now = hc_time_now_ms();
        struct cmd *c;
        if (n->n_retry && now >= n->retry_at) {
            early = n->retry;   /* their turn again, ahead of anything newer */
            size_t ne = n->n_retry;
            n->retry = NULL;
            n->n_retry = n->cap_retry = 0;
            for (size_t i = 0; i < ne; i++)
                add_raise(n, &raises, &k, &cap, early[i]);
            free(early);
        }
        for (size_t i = 0; i < n->n_early; i++)
            add_raise(n, &raises, &k, &cap, n->early[i]);
        n->n_early = 0;
        while (ck_ring_dequeue_mpsc(&n->ring, n->rbuf, &c)) {
            if (c->kind == CMD_RAISE) {
                add_raise(n, &raises, &k, &cap, c);
                continue;
            }
            raise_batch(n, raises, k, now);     /* in order: what came before it */
            k = 0;
            if (c->kind == CMD_ACK)
                ack(n, c, now);
            else if (c->kind == CMD_SETTINGS)
                settings(n, c);
            else
                channels(n, c);
        }
        raise_batch(n, raises, k, now);
        k = 0;
        run_due(n, now);

        if (__atomic_load_n(&n->stop, __ATOMIC_ACQUIRE))
            break;
        hc_wake_prepare(&n->wake);
        if (!ck_ring_size(&n->ring)) {
            int64_t wait = IDLE_MS, t = hc_time_now_ms();
            if (n->n_heap)
                wait = n->heap[0]->r.next_ms - t;
            if (n->n_retry && n->retry_at - t < wait)
                wait = n->retry_at - t;
            if (wait > IDLE_MS)
                wait = IDLE_MS;
            if (wait > 0)
                hc_wake_wait(&n->wake, (int)wait);
        }
        hc_wake_cancel(&n->wake);
    }
    free(raises);
    return NULL;
}

/* ---- loading -------------------------------------------------------------- */

static int stored_state(void *ctx, MDB_txn *txn)
{
    struct lookup *l = ctx;
    MDB_val k = { strlen(l->id), (void *)l->id }, v;
    struct arec r;
    if (mdb_get(txn, l->n->alarms_db, &k, &v) == 0 && arec_of(&v, &r) == 0)
        l->state = r.state;
    return 0;
}

/* Read the marks and every open alarm (at open). */
static int load(void *ctx, MDB_txn *txn)
{
    struct hc_notify *n = ctx;
    for (unsigned s = 0; s < n->shards; s++) {
        char key[32];
        mark_key(s, key, sizeof(key));
        MDB_val k = { strlen(key), key }, v;
        if (mdb_get(txn, n->meta_db, &k, &v) == 0 && v.mv_size == sizeof(uint64_t))
            memcpy(&n->marks[s], v.mv_data, sizeof(uint64_t));
    }
    MDB_cursor *cur;
    MDB_val k, v;
    int m = mdb_cursor_open(txn, n->alarms_db, &cur);
    if (m != 0)
        return hc_store_mdb_error(m);
    int rc = 0;
    for (m = mdb_cursor_get(cur, &k, &v, MDB_FIRST); m == 0 && rc == 0;
         m = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct arec r;
        if (arec_of(&v, &r) < 0 || k.mv_size > HC_NOTIFY_ID_MAX) {
            hc_warn("notify", "a damaged alarm record (%.*s) is skipped",
                    (int)(k.mv_size > 40 ? 40 : k.mv_size), (const char *)k.mv_data);
            continue;
        }
        if (r.state == HC_ALARM_DONE)
            continue;
        struct alarm *a = calloc(1, sizeof(*a));
        char *body = malloc(r.body_len ? r.body_len : 1);
        if (!a || !body) {
            free(a);
            free(body);
            rc = -ENOMEM;
            break;
        }
        memcpy(a->id, k.mv_data, k.mv_size);
        a->r = r;
        if (a->r.step > n->n_ch)
            a->r.step = (uint8_t)n->n_ch;   /* fewer channels than before */
        if (r.state == HC_ALARM_FIRING && r.round)   /* the settings may differ now */
            a->r.next_ms = firing_due(n, a);
        memcpy(body, (const char *)v.mv_data + sizeof(r), r.body_len);
        a->body = body;
        if (heap_add(n, a) < 0) {   /* keyed by next_ms: only now that it is set */
            alarm_free(a);
            rc = -ENOMEM;
            break;
        }
        if (r.state == HC_ALARM_FIRING)
            n->st.firing++;
        else
            n->st.processing++;
    }
    mdb_cursor_close(cur);
    if (rc == 0 && m != MDB_NOTFOUND)
        rc = hc_store_mdb_error(m);
    return rc;
}

/* ---- the public side ------------------------------------------------------ */

/* The channels as the notifier keeps them: each one's time into a round. */
static int chans_of(const struct hc_notify_channel *c, unsigned k, struct chan *out)
{
    int64_t at = 0;
    if (k > HC_NOTIFY_CHANNELS_MAX)
        return -EINVAL;
    for (unsigned i = 0; i < k; i++) {
        if (strlen(c[i].name) == 0 || strlen(c[i].name) > HC_PUSH_NAME_MAX)
            return -EINVAL;
        snprintf(out[i].name, sizeof(out[i].name), "%s", c[i].name);
        at += i ? c[i].delay_ms : 0;
        out[i].at_ms = at;
    }
    return 0;
}

int hc_notify_open(struct hc_notify **out, const struct hc_notify_options *o)
{
    *out = NULL;
    if (o->n_channels > HC_NOTIFY_CHANNELS_MAX || o->shards == 0)
        return -EINVAL;
    struct hc_notify *n = calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
    pthread_mutex_init(&n->mu, NULL);
    n->wake.fd = -1;
    n->b.serial = 1;                /* alarms start untouched (batch 0) */
    n->push = o->push;
    n->repeat_ms = o->repeat_ms ? o->repeat_ms : 600000;
    n->snooze_ms = o->snooze_ms ? o->snooze_ms : 7200000;
    n->shards = o->shards;
    if (chans_of(o->channels, o->n_channels, n->ch) < 0) {
        hc_notify_close(n);
        return -EINVAL;
    }
    n->n_ch = o->n_channels;
    if (n->n_ch && n->ch[n->n_ch - 1].at_ms >= n->repeat_ms)
        hc_warn("notify", "the escalation to channel %s (%.0f s into a round) comes after the"
                " next round starts (repeat interval %.0f s): channels that late are never"
                " reached", n->ch[n->n_ch - 1].name, (double)n->ch[n->n_ch - 1].at_ms / 1000.0,
                (double)n->repeat_ms / 1000.0);
    n->marks = calloc(n->shards, sizeof(*n->marks));
    n->marks_saved = calloc(n->shards, sizeof(*n->marks));
    n->gap = calloc(n->shards, sizeof(*n->gap));
    n->rbuf = calloc(RING_SIZE, sizeof(*n->rbuf));
    int rc = n->marks && n->marks_saved && n->gap && n->rbuf ? hc_wake_init(&n->wake)
                                                              : -ENOMEM;
    if (rc == 0)
        rc = hc_push_db(n->push, "alarms", &n->alarms_db);
    if (rc == 0)
        rc = hc_push_db(n->push, "notify", &n->meta_db);
    if (rc == 0)
        rc = hc_push_read(n->push, load, n);
    if (rc < 0) {
        hc_error("notify", "cannot load the alarms: %s", hc_strerror(rc));
        hc_notify_close(n);
        return rc;
    }
    ck_ring_init(&n->ring, RING_SIZE);
    if (n->n_heap)
        hc_info("notify", "%zu open alarms restored (%" PRIu64 " firing, %" PRIu64
                " processing)", n->n_heap, n->st.firing, n->st.processing);
    *out = n;
    return 0;
}

uint64_t hc_notify_mark(const struct hc_notify *n, unsigned shard)
{
    return shard < n->shards ? n->marks[shard] : 0;
}

static struct cmd *cmd_new(enum cmd_kind kind, const char *id)
{
    if (strlen(id) > HC_NOTIFY_ID_MAX)
        return NULL;
    struct cmd *c = calloc(1, sizeof(*c));
    if (c) {
        c->kind = kind;
        snprintf(c->id, sizeof(c->id), "%s", id);
    }
    return c;
}

static void enqueue(struct hc_notify *n, struct cmd *c)
{
    while (!ck_ring_enqueue_mpsc(&n->ring, n->rbuf, c)) {
        hc_wake_signal(&n->wake);       /* full: let it drain, then try again */
        sched_yield();
    }
    hc_wake_kick(&n->wake);
}

int hc_notify_raise(struct hc_notify *n, unsigned shard, uint64_t store_id, const char *id,
                    const char *body, size_t len)
{
    struct cmd *c = cmd_new(CMD_RAISE, id);
    if (!c)
        return strlen(id) > HC_NOTIFY_ID_MAX ? -EINVAL : -ENOMEM;
    c->shard = shard;
    c->store_id = store_id;
    c->len = len;
    c->body = malloc(len ? len : 1);
    if (!c->body) {
        free(c);
        return -ENOMEM;
    }
    memcpy(c->body, body, len);
    if (!n->started) {
        if (push_cmd(&n->early, &n->n_early, &n->cap_early, c) < 0) {
            cmd_free(c);
            return -ENOMEM;
        }
        return 0;
    }
    enqueue(n, c);
    return 0;
}

struct raise_from {
    struct hc_notify *n;
    unsigned shard;
    uint64_t *after;
    int count;
};

static int raise_stored(void *ctx, uint64_t id, const void *val, size_t len)
{
    struct raise_from *r = ctx;
    char text[HC_ALARM_ID_LEN];
    hc_alarm_id_format(r->shard, id & ((1ull << 48) - 1), text);
    int rc = hc_notify_raise(r->n, r->shard, id, text, val, len);
    if (rc == 0) {
        *r->after = id;
        r->count++;
    }
    return rc;
}

int hc_notify_raise_from(struct hc_notify *n, unsigned shard, struct hc_store *s,
                         uint64_t *after)
{
    struct raise_from r = { n, shard, after, 0 };
    int rc = hc_store_each_alarm(s, *after + 1, raise_stored, &r);
    return rc < 0 ? rc : r.count;
}

int hc_notify_start(struct hc_notify *n)
{
    int rc = hc_thread_start(&n->thread, notifier_main, n, -1, "notify");
    if (rc == 0)
        n->started = 1;
    return rc;
}

/* Send a command that wants an answer and wait for it. */
static int call(struct hc_notify *n, struct cmd *c, char *msg, size_t msglen)
{
    sem_init(&c->done, 0, 0);
    enqueue(n, c);
    while (sem_wait(&c->done) < 0 && errno == EINTR)
        ;
    int rc = c->rc;
    if (msglen)
        snprintf(msg, msglen, "%s", c->msg);
    sem_destroy(&c->done);
    free(c);
    return rc;
}

static int running(struct hc_notify *n, char *msg, size_t msglen)
{
    if (n->started && !__atomic_load_n(&n->stop, __ATOMIC_ACQUIRE))
        return 0;
    if (msglen)
        snprintf(msg, msglen, "the notifier is not running");
    return -EAGAIN;
}

int hc_notify_ack(struct hc_notify *n, const char *id, int state, char *msg, size_t msglen)
{
    struct cmd *c = NULL;
    int rc = running(n, msg, msglen);
    if (rc < 0)
        return rc;
    if (strlen(id) > HC_NOTIFY_ID_MAX || !(c = cmd_new(CMD_ACK, id))) {
        if (msglen)
            snprintf(msg, msglen, "no alarm %.40s", id);
        return strlen(id) > HC_NOTIFY_ID_MAX ? -ENOENT : -ENOMEM;
    }
    c->state = state;
    return call(n, c, msg, msglen);
}

int hc_notify_settings(struct hc_notify *n, uint32_t repeat_ms, uint32_t snooze_ms, char *msg,
                       size_t msglen)
{
    int rc = running(n, msg, msglen);
    if (rc < 0)
        return rc;
    struct cmd *c = cmd_new(CMD_SETTINGS, "");
    if (!c)
        return -ENOMEM;
    c->repeat_ms = repeat_ms;
    c->snooze_ms = snooze_ms;
    return call(n, c, msg, msglen);
}

int hc_notify_channels(struct hc_notify *n, const struct hc_notify_channel *chans, unsigned k,
                       char *msg, size_t msglen)
{
    int rc = running(n, msg, msglen);
    if (rc < 0)
        return rc;
    struct cmd *c = cmd_new(CMD_CHANNELS, "");
    if (!c)
        return -ENOMEM;
    if (chans_of(chans, k, c->ch) < 0) {
        free(c);
        if (msglen)
            snprintf(msg, msglen, "at most %d channels, each named", HC_NOTIFY_CHANNELS_MAX);
        return -EINVAL;
    }
    c->n_ch = k;
    return call(n, c, msg, msglen);
}

void hc_notify_get_settings(struct hc_notify *n, uint32_t *repeat_ms, uint32_t *snooze_ms)
{
    *repeat_ms = (uint32_t)__atomic_load_n(&n->repeat_ms, __ATOMIC_RELAXED);
    *snooze_ms = (uint32_t)__atomic_load_n(&n->snooze_ms, __ATOMIC_RELAXED);
}

struct walk {
    struct hc_notify *n;
    const char *id;                 /* NULL: all */
    int (*fn)(void *ctx, const struct hc_notify_alarm *a);
    void *ctx;
    int found;
};

static int walk_one(struct walk *w, const MDB_val *k, const MDB_val *v)
{
    struct arec r;
    char id[HC_NOTIFY_ID_MAX + 1];
    if (arec_of(v, &r) < 0 || k->mv_size > HC_NOTIFY_ID_MAX)
        return 0;
    memcpy(id, k->mv_data, k->mv_size);
    id[k->mv_size] = '\0';
    struct hc_notify_alarm a = { id, r.state, r.round, r.sent, r.raised_ms, r.updated_ms,
                                 r.state == HC_ALARM_DONE ? 0 : r.next_ms,
                                 (const char *)v->mv_data + sizeof(r), r.body_len };
    w->found = 1;
    return w->fn(w->ctx, &a);
}

static int walk_txn(void *ctx, MDB_txn *txn)
{
    struct walk *w = ctx;
    MDB_val k, v;
    if (w->id) {
        k = (MDB_val){ strlen(w->id), (void *)w->id };
        int m = mdb_get(txn, w->n->alarms_db, &k, &v);
        return m == 0 ? walk_one(w, &k, &v) : hc_store_mdb_error(m);
    }
    MDB_cursor *cur;
    int m = mdb_cursor_open(txn, w->n->alarms_db, &cur), rc = 0;
    if (m != 0)
        return hc_store_mdb_error(m);
    for (m = mdb_cursor_get(cur, &k, &v, MDB_FIRST); m == 0 && rc == 0;
         m = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        rc = walk_one(w, &k, &v);
    mdb_cursor_close(cur);
    return rc ? rc : m == MDB_NOTFOUND ? 0 : hc_store_mdb_error(m);
}

int hc_notify_list(struct hc_notify *n,
                   int (*fn)(void *ctx, const struct hc_notify_alarm *a), void *ctx)
{
    struct walk w = { n, NULL, fn, ctx, 0 };
    return hc_push_read(n->push, walk_txn, &w);
}

int hc_notify_get(struct hc_notify *n, const char *id,
                  int (*fn)(void *ctx, const struct hc_notify_alarm *a), void *ctx)
{
    struct walk w = { n, id, fn, ctx, 0 };
    int rc = hc_push_read(n->push, walk_txn, &w);
    return rc == 0 && !w.found ? -ENOENT : rc;
}

void hc_notify_stats(struct hc_notify *n, struct hc_notify_stats *st)
{
    pthread_mutex_lock(&n->mu);
    *st = n->st;
    pthread_mutex_unlock(&n->mu);
}

void hc_notify_stop(struct hc_notify *n)
{
    if (!n || !n->started)
        return;
    __atomic_store_n(&n->stop, 1, __ATOMIC_RELEASE);
    hc_wake_signal(&n->wake);
    pthread_join(n->thread, NULL);
    n->started = 0;
}

void hc_notify_close(struct hc_notify *n)
{
    if (!n)
        return;
    hc_notify_stop(n);
    struct cmd *c;
    while (n->rbuf && ck_ring_dequeue_mpsc(&n->ring, n->rbuf, &c))
        cmd_free(c);            /* raises: still in their shards */
    for (size_t i = 0; i < n->n_early; i++)
        cmd_free(n->early[i]);
    for (size_t i = 0; i < n->n_retry; i++)
        cmd_free(n->retry[i]);
    for (size_t i = 0; i < n->n_heap; i++)
        alarm_free(n->heap[i]);
    batch_clear(n);
    free(n->b.t);
    free(n->b.msgs);
    free(n->b.sent);
    free(n->b.cancel);
    free(n->early);
    free(n->retry);
    free(n->heap);
    free(n->marks);
    free(n->marks_saved);
    free(n->gap);
    free(n->rbuf);
    hc_wake_free(&n->wake);
    pthread_mutex_destroy(&n->mu);
    free(n);
}
