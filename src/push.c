/*
 * push.c — the outbox and its pusher (see push.h for the contract).
 *
 * In memory the pusher keeps, per endpoint, a min-heap of the messages
 * waiting for it, ordered by the time of their next attempt; bodies stay in
 * LMDB and are read when an attempt starts.  One loop owns the curl multi
 * handle: take what hc_push_submit and hc_push_replay queued (the inbox, a
 * mutex-guarded array), start every due attempt an endpoint has room for,
 * let curl work, turn finished requests into outbox writes (one write
 * transaction per round), then sleep in curl_multi_poll until a socket is
 * ready, the next attempt is due, or curl_multi_wakeup says new work came.
 *
 * A stored record is struct rec, then the topic, the endpoint name and the
 * body.  LMDB values need not be aligned, so headers are copied out.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubcap/error.h"
#include "hubcap/log.h"
#include "hubcap/push.h"
#include "hubcap/store.h"
#include "hubcap/thread.h"
#include "hubcap/timefmt.h"

#define REC_MAGIC 0x31504348u       /* "HCP1" */
#define LATENCY_KEEP 8192           /* recent deliveries the percentiles use */
#define IDLE_POLL_MS 1000
#define NEXT_SEQ_KEY "next_seq"

static const uint32_t default_retry_ms[] = {
    5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000,
};

struct rec {
    uint32_t magic;
    uint32_t attempts;
    int64_t created_ms, next_ms;
    uint32_t body_len;
    uint8_t topic_len, endpoint_len;
    uint16_t pad_;
    char id[HC_WEBHOOK_ID_LEN];
    char err[HC_PUSH_ERROR_MAX];
};

/* A message waiting for its next attempt. */
struct qitem {
    int64_t next_ms;
    uint64_t seq;
    uint64_t submit_ns;     /* CLOCK_MONOTONIC at submit; 0 if restored */
    uint32_t attempts;
    uint32_t ep;
};

struct ep {
    struct hc_push_endpoint cfg;    /* the name never changes once the slot is
                                       published (n_eps); url and secrets may,
                                       under p->mu */
    int disabled;           /* atomic: 410 seen, until enabled */
    int removed;            /* atomic: hc_push_endpoint_remove, until set again */
    unsigned inflight;
    struct qitem *heap;
    size_t n, cap;
};

struct flight {
    struct flight *prev, *next;     /* p->flights: every request in flight */
    CURL *e;
    struct curl_slist *hdrs;
    char *body;
    size_t len;
    struct qitem q;
    char err[CURL_ERROR_SIZE];
};

enum op_kind { OP_DELETE, OP_RETRY, OP_DEAD, OP_DISABLE };

struct op {
    enum op_kind kind;
    uint64_t seq;
    uint32_t attempts;
    uint32_t ep;
    int64_t next_ms;
    char err[HC_PUSH_ERROR_MAX];
};

struct hc_push {
    MDB_env *env;
    MDB_dbi outbox, dead, endpoints, meta;
    struct ep eps[HC_PUSH_ENDPOINTS_MAX];
    unsigned n_eps;         /* atomic: slots only ever get added */
    uint32_t retry_ms[HC_PUSH_RETRIES_MAX];
    unsigned n_retry;
    double jitter;
    unsigned connect_timeout_ms, timeout_ms, max_inflight, max_inflight_ep;
    char *ca_file;

    CURLM *multi;
    pthread_t thread;
    int started, stop;      /* stop: atomic */
    unsigned inflight;      /* atomic (stats read it) */
    struct flight *flights;
    struct op *ops;
    size_t n_ops, cap_ops;

    pthread_mutex_t mu;     /* guards everything below */
    struct qitem *inbox;
    size_t inbox_n, inbox_cap;
    uint64_t next_seq;
    uint64_t cancelling;    /* withdrawn in the write transaction under way */
    struct hc_push_stats st;
    double *lat;            /* ring of LATENCY_KEEP */
    uint64_t lat_n;
};

/* ---- small helpers ------------------------------------------------------ */

static int mdb_rc(int rc, const char *what)
{
    if (rc == 0)
        return 0;
    hc_error("push", "outbox %s: %s", what, mdb_strerror(rc));
    return hc_store_mdb_error(rc);
}

static void key_of(uint64_t seq, unsigned char k[8])
{
    for (int i = 7; i >= 0; i--, seq >>= 8)
        k[i] = (unsigned char)seq;
}

static uint64_t seq_of(const MDB_val *k)
{
    const unsigned char *b = k->mv_data;
    uint64_t x = 0;
    for (size_t i = 0; i < 8 && i < k->mv_size; i++)
        x = x << 8 | b[i];
    return x;
}

/* Make room for element n of *arr (elem bytes each), doubling its
 * capacity *cap when full.  0 or -ENOMEM (then *arr is unchanged). */
static int room_for(void *arr, size_t *cap, size_t n, size_t elem)
{
    void **a = arr;
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 64;
    void *b = realloc(*a, c * elem);
    if (!b)
        return -ENOMEM;
    *a = b;
    *cap = c;
    return 0;
}

static int find_ep(const struct hc_push *p, const char *name, size_t len)
{
    unsigned n = __atomic_load_n(&p->n_eps, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++)
        if (strlen(p->eps[i].cfg.name) == len && memcmp(p->eps[i].cfg.name, name, len) == 0)
            return (int)i;
    return -1;
}

static int ep_disabled(const struct ep *e)
{
    return __atomic_load_n(&e->disabled, __ATOMIC_ACQUIRE);
}

static int ep_removed(const struct ep *e)
{
    return __atomic_load_n(&e->removed, __ATOMIC_ACQUIRE);
}

/* A uniform double in [-1, 1] (jitter needs spread, not secrecy). */
static double unit_noise(void)
{
    uint32_t r;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        r = (uint32_t)hc_time_mono_ns();
    return (double)r / 2147483647.5 - 1.0;
}

/* A parsed stored record: header copied out, strings pointing into v. */
struct view {
    struct rec h;
    const char *topic, *endpoint;
    const void *body;
};

static int view_of(const MDB_val *v, struct view *out)
{
    if (v->mv_size < sizeof(struct rec))
        return -EINVAL;
    memcpy(&out->h, v->mv_data, sizeof(out->h));
    const char *p = (const char *)v->mv_data + sizeof(struct rec);
    if (out->h.magic != REC_MAGIC ||
        v->mv_size != sizeof(struct rec) + out->h.topic_len + out->h.endpoint_len +
                          (size_t)out->h.body_len)
        return -EINVAL;
    out->topic = p;
    out->endpoint = p + out->h.topic_len;
    out->body = p + out->h.topic_len + out->h.endpoint_len;
    out->h.id[HC_WEBHOOK_ID_LEN - 1] = '\0';
    out->h.err[HC_PUSH_ERROR_MAX - 1] = '\0';
    return 0;
}

/* Rewrite record v with a new header into a fresh buffer; caller frees. */
static void *rec_with(const MDB_val *v, const struct rec *h)
{
    void *b = malloc(v->mv_size);
    if (b) {
        memcpy(b, v->mv_data, v->mv_size);
        memcpy(b, h, sizeof(*h));
    }
    return b;
}

/* ---- the per-endpoint heaps --------------------------------------------- */

static int q_before(const struct qitem *a, const struct qitem *b)
{
    return a->next_ms < b->next_ms || (a->next_ms == b->next_ms && a->seq < b->seq);
}

static int heap_push(struct ep *e, const struct qitem *q)
{
    if (room_for(&e->heap, &e->cap, e->n, sizeof(*e->heap)) < 0)
        return -ENOMEM;
    size_t i = e->n++;
    while (i > 0 && q_before(q, &e->heap[(i - 1) / 2])) {
        e->heap[i] = e->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->heap[i] = *q;
    return 0;
}

static struct qitem heap_pop(struct ep *e)
{
    struct qitem top = e->heap[0], last = e->heap[--e->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= e->n)
            break;
        if (c + 1 < e->n && q_before(&e->heap[c + 1], &e->heap[c]))
            c++;
        if (!q_before(&e->heap[c], &last))
            break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (e->n)
        e->heap[i] = last;
    return top;
}

/* ---- outbox writes from the pusher --------------------------------------- */

static struct op *op_add(struct hc_push *p, enum op_kind kind, const struct qitem *q)
{
    if (room_for(&p->ops, &p->cap_ops, p->n_ops, sizeof(*p->ops)) < 0)
        return NULL;
    struct op *o = &p->ops[p->n_ops++];
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    if (q) {
        o->seq = q->seq;
        o->attempts = q->attempts;
        o->ep = q->ep;
        o->next_ms = q->next_ms;
    }
    return o;
}

static int apply_op(struct hc_push *p, MDB_txn *txn, const struct op *o)
{
    unsigned char k[8];
    MDB_val key = { 8, k }, v;
    key_of(o->seq, k);
    if (o->kind == OP_DISABLE) {
        const char *name = p->eps[o->ep].cfg.name;
        MDB_val nk = { strlen(name), (void *)name }, one = { 1, (void *)"\1" };
        return mdb_put(txn, p->endpoints, &nk, &one, 0);
    }
    int rc = mdb_get(txn, p->outbox, &key, &v);
    if (rc == MDB_NOTFOUND)
        return 0;           /* already gone (replayed twice, say) */
    if (rc != 0)
        return rc;
    if (o->kind == OP_DELETE)
        return mdb_del(txn, p->outbox, &key, NULL);
    struct view vw;
    if (view_of(&v, &vw) < 0)
        return mdb_del(txn, p->outbox, &key, NULL);
    vw.h.attempts = o->attempts;
    vw.h.next_ms = o->next_ms;
    snprintf(vw.h.err, sizeof(vw.h.err), "%s", o->err);
    void *b = rec_with(&v, &vw.h);
    if (!b)
        return ENOMEM;
    MDB_val nv = { v.mv_size, b };
    if (o->kind == OP_RETRY) {
        rc = mdb_put(txn, p->outbox, &key, &nv, 0);
    } else {
        rc = mdb_put(txn, p->dead, &key, &nv, 0);
        if (rc == 0)
            rc = mdb_del(txn, p->outbox, &key, NULL);
    }
    free(b);
    return rc;
}

/* Write this round's outcomes in one transaction.  If that fails the
 * outbox keeps the older state: a delivered message may be sent again
 * after a restart (same webhook-id), nothing is lost. */
static void flush_ops(struct hc_push *p)
{
    if (p->n_ops == 0)
        return;
    MDB_txn *txn;
    int rc = mdb_txn_begin(p->env, NULL, 0, &txn);
    for (size_t i = 0; rc == 0 && i < p->n_ops; i++)
        rc = apply_op(p, txn, &p->ops[i]);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc != 0)
        hc_error("push", "recording %zu delivery outcomes: %s; they will be retried after a"
                 " restart", p->n_ops, mdb_strerror(rc));
    p->n_ops = 0;
}

/* ---- attempts ------------------------------------------------------------ */

static size_t discard(char *ptr, size_t size, size_t n, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * n;
}

static void to_dead(struct hc_push *p, const struct qitem *q, const char *why)
{
    struct op *o = op_add(p, OP_DEAD, q);
    if (o)
        snprintf(o->err, sizeof(o->err), "%s", why);
    pthread_mutex_lock(&p->mu);
    p->st.dead++;
    pthread_mutex_unlock(&p->mu);
    hc_warn("push", "message %" PRIu64 " to %s: %s; moved to the dead-letter table", q->seq,
            p->eps[q->ep].cfg.name, why);
}

/* Start one attempt; 0, or < 0 if it could not start (then q is handled). */
static int launch(struct hc_push *p, const struct qitem *q)
{
    struct ep *e = &p->eps[q->ep];
    unsigned char k[8];
    MDB_val key = { 8, k }, v;
    MDB_txn *txn;
    struct view vw;
    int damaged = 0;
    struct flight *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    key_of(q->seq, k);
    int rc = mdb_txn_begin(p->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = mdb_get(txn, p->outbox, &key, &v);
        damaged = rc == 0 && view_of(&v, &vw) < 0;
        if (rc == 0 && !damaged) {
            f->len = vw.h.body_len;
            f->body = malloc(f->len ? f->len : 1);
            if (f->body)
                memcpy(f->body, vw.body, f->len);
        }
        mdb_txn_abort(txn);
    }
    if (rc != 0 || !f->body) {
        free(f->body);
        free(f);
        if (rc == MDB_NOTFOUND)
            return 0;       /* gone meanwhile (a replay moved it) */
        if (damaged) {
            to_dead(p, q, "damaged record in the outbox");
            return 0;
        }
        hc_error("push", "reading message %" PRIu64 ": %s; trying again", q->seq,
                 rc ? mdb_strerror(rc) : "out of memory");
        return -EIO;
    }

    char h[HC_WEBHOOK_SIG_LEN + 64], sig[HC_WEBHOOK_SIG_LEN];
    int64_t ts = hc_time_now_ms() / 1000;
    struct hc_push_endpoint cfg;
    pthread_mutex_lock(&p->mu);         /* url and secrets may change live */
    cfg = e->cfg;
    pthread_mutex_unlock(&p->mu);
    if (hc_webhook_sign(cfg.secrets, cfg.n_secrets, vw.h.id, ts, f->body, f->len, sig,
                        sizeof(sig)) < 0)
        sig[0] = '\0';
    struct curl_slist *l = NULL;
    l = curl_slist_append(l, "Content-Type: application/json");
    l = curl_slist_append(l, "User-Agent: hubcap/0.1.0");
    l = curl_slist_append(l, "Expect:");
    snprintf(h, sizeof(h), "webhook-id: %s", vw.h.id);
    l = curl_slist_append(l, h);
    snprintf(h, sizeof(h), "webhook-timestamp: %" PRId64, ts);
    l = curl_slist_append(l, h);
    snprintf(h, sizeof(h), "webhook-signature: %s", sig);
    l = curl_slist_append(l, h);
    f->hdrs = l;
    f->q = *q;
    f->e = curl_easy_init();
    if (!f->e || !l) {
        curl_slist_free_all(l);
        if (f->e)
            curl_easy_cleanup(f->e);
        free(f->body);
        free(f);
        return -ENOMEM;
    }
    CURL *c = f->e;
    curl_easy_setopt(c, CURLOPT_URL, cfg.url);     /* curl keeps a copy */
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, f->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, f->hdrs);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)p->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)p->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, f->err);
    curl_easy_setopt(c, CURLOPT_PRIVATE, f);
    if (p->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, p->ca_file);
    if (curl_multi_add_handle(p->multi, c) != CURLM_OK) {
        curl_easy_cleanup(c);
        curl_slist_free_all(f->hdrs);
        free(f->body);
        free(f);
        return -ENOMEM;
    }
    f->next = p->flights;
    if (f->next)
        f->next->prev = f;
    p->flights = f;
    e->inflight++;
    __atomic_add_fetch(&p->inflight, 1, __ATOMIC_RELAXED);
    return 0;
}

static void flight_free(struct hc_push *p, struct flight *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        p->flights = f->next;
    if (f->next)
        f->next->prev = f->prev;
    curl_multi_remove_handle(p->multi, f->e);
    curl_easy_cleanup(f->e);
    curl_slist_free_all(f->hdrs);
    free(f->body);
    free(f);
}

static void record_latency(struct hc_push *p, uint64_t submit_ns)
{
    if (!submit_ns)         /* restored at open: no submit time */
        return;
    double ms = (double)(hc_time_mono_ns() - submit_ns) / 1e6;
    p->lat[p->lat_n % LATENCY_KEEP] = ms;
    p->lat_n++;
}

/* A finished attempt: delivered, retried later, or a dead letter. */
static void finish(struct hc_push *p, struct flight *f, CURLcode res)
{
    struct ep *e = &p->eps[f->q.ep];
    struct qitem q = f->q;
    long code = 0;
    curl_off_t retry_after = 0;
    curl_easy_getinfo(f->e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(f->e, CURLINFO_RETRY_AFTER, &retry_after);
    e->inflight--;
    __atomic_sub_fetch(&p->inflight, 1, __ATOMIC_RELAXED);
    q.attempts++;

    char why[HC_PUSH_ERROR_MAX];
    if (res != CURLE_OK)
        snprintf(why, sizeof(why), "%.*s", (int)sizeof(why) - 1,
                 f->err[0] ? f->err : curl_easy_strerror(res));
    else
        snprintf(why, sizeof(why), "HTTP %ld", code);

    pthread_mutex_lock(&p->mu);
    p->st.attempts++;
    if (res == CURLE_OK && code >= 200 && code < 300) {
        p->st.delivered++;
        record_latency(p, q.submit_ns);
    }
    pthread_mutex_unlock(&p->mu);

    if (res == CURLE_OK && code >= 200 && code < 300) {
        op_add(p, OP_DELETE, &q);
    } else if (res == CURLE_OK && code == 410) {
        if (!ep_disabled(e)) {
            __atomic_store_n(&e->disabled, 1, __ATOMIC_RELEASE);
            op_add(p, OP_DISABLE, &q);
            pthread_mutex_lock(&p->mu);
            p->st.disabled++;
            pthread_mutex_unlock(&p->mu);
            hc_error("push", "endpoint %s answered 410 Gone: disabled; its messages go to"
                     " the dead-letter table until it is enabled again", e->cfg.name);
        }
        to_dead(p, &q, "410 Gone: endpoint disabled");
        size_t queued = e->n;
        while (e->n) {          /* what waits for it is dead now too */
            struct qitem w = heap_pop(e);
            struct op *o = op_add(p, OP_DEAD, &w);
            if (o)
                snprintf(o->err, sizeof(o->err), "endpoint disabled (it answered 410 Gone)");
        }
        if (queued) {
            pthread_mutex_lock(&p->mu);
            p->st.dead += queued;
            pthread_mutex_unlock(&p->mu);
            hc_warn("push", "%zu more messages to %s moved to the dead-letter table", queued,
                    e->cfg.name);
        }
    } else if (res != CURLE_OK || code >= 500 || code == 408 || code == 429) {
        if (q.attempts > p->n_retry) {
            char gave[HC_PUSH_ERROR_MAX];
            snprintf(gave, sizeof(gave), "gave up after %u attempts: %.60s", q.attempts, why);
            to_dead(p, &q, gave);
        } else {
            double d = p->retry_ms[q.attempts - 1] * (1.0 + p->jitter * unit_noise());
            if (retry_after > 0 && d < (double)retry_after * 1000.0)
                d = (double)retry_after * 1000.0;
            q.next_ms = hc_time_now_ms() + (int64_t)d;
            struct op *o = op_add(p, OP_RETRY, &q);
            if (o)
                snprintf(o->err, sizeof(o->err), "%s", why);
            if (heap_push(e, &q) < 0)
                hc_error("push", "out of memory queueing a retry of message %" PRIu64
                         "; it is sent again after a restart", q.seq);
            pthread_mutex_lock(&p->mu);
            p->st.retries++;
            pthread_mutex_unlock(&p->mu);
            hc_debug("push", "message %" PRIu64 " to %s: %s; attempt %u in %.1f s", q.seq,
                     e->cfg.name, why, q.attempts + 1, d / 1000.0);
        }
    } else {
        to_dead(p, &q, why);
    }
    flight_free(p, f);
}

/* ---- the pusher thread --------------------------------------------------- */

static void take_inbox(struct hc_push *p)
{
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->inbox_n; i++)
        if (heap_push(&p->eps[p->inbox[i].ep], &p->inbox[i]) < 0)
            hc_error("push", "out of memory queueing message %" PRIu64
                     "; it is sent after a restart", p->inbox[i].seq);
    p->inbox_n = 0;
    pthread_mutex_unlock(&p->mu);
}

/* Start every due attempt an endpoint has room for. */
static void start_due(struct hc_push *p)
{
    int64_t now = hc_time_now_ms();
    unsigned n_eps = __atomic_load_n(&p->n_eps, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n_eps; i++) {
        struct ep *e = &p->eps[i];
        while (e->n && e->heap[0].next_ms <= now && e->inflight < p->max_inflight_ep &&
               p->inflight < p->max_inflight) {
            struct qitem q = heap_pop(e);
            if (ep_disabled(e))
                to_dead(p, &q, "endpoint disabled (it answered 410 Gone)");
            else if (ep_removed(e))
                to_dead(p, &q, "channel removed");
            else if (launch(p, &q) < 0) {
                q.next_ms = now + IDLE_POLL_MS;     /* try again a little later */
                heap_push(e, &q);
            }
        }
    }
}

/* Milliseconds until an endpoint with room has an attempt due (capped). */
static long next_due(const struct hc_push *p)
{
    int64_t now = hc_time_now_ms();
    long wait = IDLE_POLL_MS;
    unsigned n_eps = __atomic_load_n(&p->n_eps, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n_eps; i++) {
        const struct ep *e = &p->eps[i];
        if (e->n && e->inflight < p->max_inflight_ep && p->inflight < p->max_inflight) {
            int64_t d = e->heap[0].next_ms - now;
            if (d < wait)
                wait = d < 0 ? 0 : (long)d;
        }
    }
    return wait;
}

static void *pusher_main(void *arg)
{
    struct hc_push *p = arg;
    pthread_setname_np(pthread_self(), "hubcap-push");
    while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
        take_inbox(p);
        start_due(p);
        int running = 0;
        curl_multi_perform(p->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(p->multi, &left)))
            if (m->msg == CURLMSG_DONE) {
                struct flight *f = NULL;
                curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&f);
                finish(p, f, m->data.result);
            }
        flush_ops(p);
        long wait = next_due(p), ct = -1;
        curl_multi_timeout(p->multi, &ct);
        if (ct >= 0 && ct < wait)
            wait = ct;
        if (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
            curl_multi_poll(p->multi, NULL, 0, (int)wait, NULL);
    }
    return NULL;
}

/* ---- the public side ------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int queue(struct hc_push *p, const struct qitem *q)
{
    if (room_for(&p->inbox, &p->inbox_cap, p->inbox_n, sizeof(*p->inbox)) < 0)
        return -ENOMEM;
    p->inbox[p->inbox_n++] = *q;
    return 0;
}

/* Schedule every message of the outbox (at open). */
static int load_outbox(struct hc_push *p, MDB_txn *txn)
{
    MDB_cursor *c;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, p->outbox, &c);
    if (rc != 0)
        return rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        struct view vw;
        uint64_t seq = seq_of(&k);
        if (seq >= p->next_seq)
            p->next_seq = seq + 1;
        if (view_of(&v, &vw) < 0) {
            hc_warn("push", "outbox record %" PRIu64 " is damaged; skipped", seq);
            continue;
        }
        int ep = find_ep(p, vw.endpoint, vw.h.endpoint_len);
        struct qitem q = { vw.h.next_ms, seq, 0, vw.h.attempts, ep < 0 ? 0 : (uint32_t)ep };
        if (ep < 0) {
            hc_warn("push", "message %" PRIu64 " is for endpoint '%.*s', which is no longer"
                    " configured; it stays in the outbox", seq, (int)vw.h.endpoint_len,
                    vw.endpoint);
            continue;
        }
        if (heap_push(&p->eps[ep], &q) < 0) {
            mdb_cursor_close(c);
            return ENOMEM;
        }
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
        return rc;
    rc = mdb_cursor_open(txn, p->dead, &c);
    if (rc == 0 && mdb_cursor_get(c, &k, &v, MDB_LAST) == 0 && seq_of(&k) >= p->next_seq)
        p->next_seq = seq_of(&k) + 1;
    if (rc == 0)
        mdb_cursor_close(c);
    return rc;
}

int hc_push_open(struct hc_push **out, const struct hc_push_options *o)
{
    *out = NULL;
    if (o->n_endpoints > HC_PUSH_ENDPOINTS_MAX || o->n_retry > HC_PUSH_RETRIES_MAX)
        return -EINVAL;
    pthread_once(&curl_once, curl_init_once);
    struct hc_push *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    p->next_seq = 1;
    p->n_eps = o->n_endpoints;
    for (unsigned i = 0; i < o->n_endpoints; i++)
        p->eps[i].cfg = o->endpoints[i];
    if (o->retry_ms) {
        memcpy(p->retry_ms, o->retry_ms, o->n_retry * sizeof(*p->retry_ms));
        p->n_retry = o->n_retry;
    } else {
        p->n_retry = sizeof(default_retry_ms) / sizeof(default_retry_ms[0]);
        memcpy(p->retry_ms, default_retry_ms, sizeof(default_retry_ms));
    }
    p->jitter = o->jitter < 0 ? 0.2 : o->jitter > 1 ? 1 : o->jitter;
    p->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 5000;
    p->timeout_ms = o->timeout_ms ? o->timeout_ms : 15000;
    p->max_inflight = o->max_inflight ? o->max_inflight : 64;
    p->max_inflight_ep = o->max_inflight_endpoint ? o->max_inflight_endpoint : 16;
    p->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
    p->lat = malloc(LATENCY_KEEP * sizeof(*p->lat));
    p->multi = curl_multi_init();

    int rc = p->lat && p->multi && (!o->ca_file || p->ca_file) ? hc_mkdir_p(o->dir) : -ENOMEM;
    if (rc < 0) {
        hc_error("push", "cannot create %s: %s", o->dir, hc_strerror(rc));
        hc_push_close(p);
        return rc;
    }
    MDB_txn *txn = NULL;
    int m = mdb_env_create(&p->env);
    if (m == 0)
        m = mdb_env_set_maxdbs(p->env, 16);    /* ours, and hc_push_db's */
    if (m == 0)
        m = mdb_env_set_mapsize(p->env, o->map_size ? o->map_size : (size_t)1 << 30);
    if (m == 0)
        m = mdb_env_open(p->env, o->dir, MDB_NOSYNC | MDB_NOTLS, 0600);
    if (m == 0)
        m = mdb_txn_begin(p->env, NULL, 0, &txn);
    if (m == 0)
        m = mdb_dbi_open(txn, "outbox", MDB_CREATE, &p->outbox);
    if (m == 0)
        m = mdb_dbi_open(txn, "dead", MDB_CREATE, &p->dead);
    if (m == 0)
        m = mdb_dbi_open(txn, "endpoints", MDB_CREATE, &p->endpoints);
    if (m == 0)
        m = mdb_dbi_open(txn, "meta", MDB_CREATE, &p->meta);
    for (unsigned i = 0; m == 0 && i < p->n_eps; i++) {
        MDB_val k = { strlen(p->eps[i].cfg.name), p->eps[i].cfg.name }, v;
        if (mdb_get(txn, p->endpoints, &k, &v) == 0 && v.mv_size >= 1 &&
            *(const char *)v.mv_data == 1) {
            p->eps[i].disabled = 1;
            p->st.disabled++;
            hc_warn("push", "endpoint %s is disabled (it answered 410 Gone); enable it to"
                    " deliver to it again", p->eps[i].cfg.name);
        }
    }
    if (m == 0)
        m = load_outbox(p, txn);
    if (m == 0) {       /* never reuse a number: others keep them (notify.c) */
        MDB_val k = { sizeof(NEXT_SEQ_KEY) - 1, (void *)NEXT_SEQ_KEY }, v;
        uint64_t stored;
        if (mdb_get(txn, p->meta, &k, &v) == 0 && v.mv_size == sizeof(stored)) {
            memcpy(&stored, v.mv_data, sizeof(stored));
            if (stored > p->next_seq)
                p->next_seq = stored;
        }
    }
    if (m == 0) {
        m = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort(txn);
    if (m != 0) {
        rc = mdb_rc(m, "open");
        hc_error("push", "cannot open the outbox in %s", o->dir);
        hc_push_close(p);
        return rc;
    }
    *out = p;
    return 0;
}

int hc_push_start(struct hc_push *p)
{
    int rc = hc_thread_start(&p->thread, pusher_main, p, -1, "push");
    if (rc == 0)
        p->started = 1;
    return rc;
}

static void wake(struct hc_push *p)
{
    if (p->multi)
        curl_multi_wakeup(p->multi);
}

int hc_push_submit(struct hc_push *p, struct hc_push_msg *msgs, size_t n)
{
    return hc_push_submit_with(p, msgs, n, NULL, NULL);
}

int hc_push_submit_with(struct hc_push *p, struct hc_push_msg *msgs, size_t n,
                        hc_push_txn_fn fn, void *ctx)
{
    int eps[64];
    int *epv = n <= 64 ? eps : malloc(n * sizeof(*epv));
    if (!epv)
        return -ENOMEM;
    int rc = 0;
    uint64_t t = hc_time_mono_ns();     /* latency counts the durable commit too */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t tl = msgs[i].topic ? strlen(msgs[i].topic) : 0;
        epv[i] = find_ep(p, msgs[i].endpoint, strlen(msgs[i].endpoint));
        if (epv[i] < 0 || ep_removed(&p->eps[epv[i]]))
            rc = -ENOENT;
        else if (tl == 0 || tl > HC_PUSH_NAME_MAX || msgs[i].len > UINT32_MAX)
            rc = -EINVAL;
    }
    MDB_txn *txn = NULL;
    int m = rc == 0 ? mdb_txn_begin(p->env, NULL, 0, &txn) : 0;
    uint64_t first = 0;
    int64_t now = hc_time_now_ms();
    if (rc == 0 && m == 0) {
        pthread_mutex_lock(&p->mu);     /* seqs in commit order: we hold the writer lock */
        first = p->next_seq;
        p->next_seq += n;
        pthread_mutex_unlock(&p->mu);
    }
    if (rc == 0 && m == 0 && n) {
        uint64_t next = first + n;
        MDB_val k = { sizeof(NEXT_SEQ_KEY) - 1, (void *)NEXT_SEQ_KEY }, v = { sizeof(next), &next };
        m = mdb_put(txn, p->meta, &k, &v, 0);
    }
    for (size_t i = 0; rc == 0 && m == 0 && i < n; i++) {
        struct hc_push_msg *g = &msgs[i];
        struct ep *e = &p->eps[epv[i]];
        struct rec h = { .magic = REC_MAGIC, .created_ms = now, .next_ms = now,
                         .body_len = (uint32_t)g->len, .topic_len = (uint8_t)strlen(g->topic),
                         .endpoint_len = (uint8_t)strlen(e->cfg.name) };
        rc = hc_webhook_id_new(g->id);
        memcpy(h.id, g->id, sizeof(h.id));
        g->seq = first + i;
        size_t len = sizeof(h) + h.topic_len + h.endpoint_len + g->len;
        unsigned char k[8];
        MDB_val key = { 8, k }, v = { len, NULL };
        key_of(g->seq, k);
        int dead = ep_disabled(e);
        if (dead)
            snprintf(h.err, sizeof(h.err), "endpoint disabled (it answered 410 Gone)");
        if (rc == 0)
            m = mdb_put(txn, dead ? p->dead : p->outbox, &key, &v, MDB_RESERVE);
        if (rc == 0 && m == 0) {
            char *d = v.mv_data;
            memcpy(d, &h, sizeof(h));
            memcpy(d + sizeof(h), g->topic, h.topic_len);
            memcpy(d + sizeof(h) + h.topic_len, e->cfg.name, h.endpoint_len);
            if (g->len)
                memcpy(d + sizeof(h) + h.topic_len + h.endpoint_len, g->body, g->len);
        }
    }
    if (txn && rc == 0 && m == 0 && fn) {
        p->cancelling = 0;
        rc = fn(ctx, txn);
    }
    if (txn && (rc != 0 || m != 0)) {
        mdb_txn_abort(txn);
        txn = NULL;
    }
    if (txn) {
        m = mdb_txn_commit(txn);
        int y = m == 0 ? mdb_env_sync(p->env, 1) : 0;
        if (y != 0)     /* committed: queue them, but say what is at risk */
            hc_error("push", "fsync of the outbox failed (%s): %zu messages are queued but"
                     " would not survive a power loss", mdb_strerror(y), n);
    }
    if (rc == 0 && m != 0)
        rc = mdb_rc(m, "submit");
    if (rc == 0) {
        unsigned dead = 0;
        pthread_mutex_lock(&p->mu);
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (ep_disabled(&p->eps[epv[i]])) {
                dead++;
                continue;
            }
            struct qitem q = { now, msgs[i].seq, t, 0, (uint32_t)epv[i] };
            rc = queue(p, &q);
        }
        p->st.submitted += n;
        p->st.dead += dead;
        p->st.cancelled += fn ? p->cancelling : 0;
        pthread_mutex_unlock(&p->mu);
        if (rc < 0)     /* committed: the next open sends it */
            hc_error("push", "out of memory queueing messages; they are sent after a restart");
        rc = 0;
        wake(p);
    }
    if (epv != eps)
        free(epv);
    return rc;
}

int hc_push_db(struct hc_push *p, const char *name, MDB_dbi *dbi)
{
    MDB_txn *txn;
    int m = mdb_txn_begin(p->env, NULL, 0, &txn);
    if (m == 0)
        m = mdb_dbi_open(txn, name, MDB_CREATE, dbi);
    if (m == 0)
        m = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    return m ? mdb_rc(m, "open a database") : 0;
}

int hc_push_cancel(struct hc_push *p, MDB_txn *txn, uint64_t seq)
{
    unsigned char k[8];
    MDB_val key = { 8, k };
    key_of(seq, k);
    int m = mdb_del(txn, p->outbox, &key, NULL);
    if (m == MDB_NOTFOUND)
        return 0;
    if (m != 0)
        return mdb_rc(m, "cancel");
    p->cancelling++;        /* counted once the transaction commits */
    return 1;
}

int hc_push_read(struct hc_push *p, hc_push_txn_fn fn, void *ctx)
{
    MDB_txn *txn;
    int m = mdb_txn_begin(p->env, NULL, MDB_RDONLY, &txn);
    if (m != 0)
        return mdb_rc(m, "read");
    int rc = fn(ctx, txn);
    mdb_txn_abort(txn);
    return rc;
}

int hc_push_list(struct hc_push *p, bool dead,
                 int (*fn)(void *ctx, const struct hc_push_entry *e), void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *c = NULL;
    MDB_val k, v;
    int m = mdb_txn_begin(p->env, NULL, MDB_RDONLY, &txn);
    if (m != 0)
        return mdb_rc(m, "list");
    m = mdb_cursor_open(txn, dead ? p->dead : p->outbox, &c);
    if (m == 0)
        m = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    int rc = 0;
    for (; m == 0 && rc == 0; m = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        struct view vw;
        if (view_of(&v, &vw) < 0)
            continue;
        char topic[HC_PUSH_NAME_MAX + 1], endpoint[HC_PUSH_NAME_MAX + 1];
        snprintf(topic, sizeof(topic), "%.*s", (int)vw.h.topic_len, vw.topic);
        snprintf(endpoint, sizeof(endpoint), "%.*s", (int)vw.h.endpoint_len, vw.endpoint);
        struct hc_push_entry e = { seq_of(&k), vw.h.id, topic, endpoint, vw.body, vw.h.body_len,
                                   vw.h.attempts, vw.h.created_ms, vw.h.next_ms, vw.h.err };
        rc = fn(ctx, &e);
    }
    if (c)
        mdb_cursor_close(c);    /* a read-only transaction does not close it */
    mdb_txn_abort(txn);
    if (rc == 0 && m != MDB_NOTFOUND)
        rc = mdb_rc(m, "list");
    return rc;
}

int hc_push_replay(struct hc_push *p, uint64_t seq)
{
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val k, v;
    unsigned char kb[8];
    struct qitem *moved = NULL;
    size_t n = 0, cap = 0;
    int64_t now = hc_time_now_ms();
    int m = mdb_txn_begin(p->env, NULL, 0, &txn);
    if (m != 0)
        return mdb_rc(m, "replay");
    m = mdb_cursor_open(txn, p->dead, &c);
    if (m != 0) {
        mdb_txn_abort(txn);
        return mdb_rc(m, "replay");
    }
    key_of(seq, kb);
    k = (MDB_val){ 8, kb };
    m = seq ? mdb_cursor_get(c, &k, &v, MDB_SET_KEY) : mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (m == 0) {
        struct view vw;
        int ep = view_of(&v, &vw) == 0 ? find_ep(p, vw.endpoint, vw.h.endpoint_len) : -1;
        if (ep >= 0) {
            vw.h.attempts = 0;
            vw.h.next_ms = now;
            vw.h.err[0] = '\0';
            void *b = rec_with(&v, &vw.h);
            MDB_val nv = { v.mv_size, b };
            m = b ? mdb_put(txn, p->outbox, &k, &nv, 0) : ENOMEM;
            free(b);
            if (m == 0)
                m = mdb_cursor_del(c, 0);
            if (m == 0 && room_for(&moved, &cap, n, sizeof(*moved)) < 0)
                m = ENOMEM;
            if (m == 0)
                moved[n++] = (struct qitem){ now, seq_of(&k), hc_time_mono_ns(), 0,
                                             (uint32_t)ep };
            if (m != 0 || seq)
                break;
            m = mdb_cursor_get(c, &k, &v, MDB_NEXT);   /* after a delete: the next one */
            continue;
        }
        if (seq)
            break;
        m = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (m == MDB_NOTFOUND)
        m = 0;
    if (m == 0) {
        m = mdb_txn_commit(txn);
        if (m == 0)
            m = mdb_env_sync(p->env, 1);
    } else {
        mdb_txn_abort(txn);
    }
    if (m != 0) {
        free(moved);
        return mdb_rc(m, "replay");
    }
    if (seq && n == 0) {
        free(moved);
        return -ENOENT;
    }
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < n; i++)
        if (queue(p, &moved[i]) < 0)
            hc_error("push", "out of memory queueing a replayed message; it is sent after a"
                     " restart");
    p->st.replayed += n;
    pthread_mutex_unlock(&p->mu);
    free(moved);
    wake(p);
    return (int)n;
}

int hc_push_endpoint_set(struct hc_push *p, const struct hc_push_endpoint *ep)
{
    size_t len = strnlen(ep->name, sizeof(ep->name));
    if (len == 0 || len > HC_PUSH_NAME_MAX || ep->n_secrets < 1 || ep->n_secrets > 2)
        return -EINVAL;
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    int i = find_ep(p, ep->name, len);
    if (i >= 0) {               /* the name stays: readers compare it unlocked */
        struct ep *e = &p->eps[i];
        memcpy(e->cfg.url, ep->url, sizeof(e->cfg.url));
        memcpy(e->cfg.secrets, ep->secrets, sizeof(e->cfg.secrets));
        e->cfg.n_secrets = ep->n_secrets;
        __atomic_store_n(&e->removed, 0, __ATOMIC_RELEASE);
    } else if (p->n_eps < HC_PUSH_ENDPOINTS_MAX) {
        p->eps[p->n_eps].cfg = *ep;
        __atomic_store_n(&p->n_eps, p->n_eps + 1, __ATOMIC_RELEASE);
    } else {
        rc = -ENOSPC;
    }
    pthread_mutex_unlock(&p->mu);
    if (rc == 0)
        hc_info("push", "endpoint %s %s: %s", ep->name, i >= 0 ? "changed" : "added", ep->url);
    wake(p);
    return rc;
}

int hc_push_endpoint_remove(struct hc_push *p, const char *name)
{
    int i = find_ep(p, name, strlen(name));
    if (i < 0 || ep_removed(&p->eps[i]))
        return -ENOENT;
    __atomic_store_n(&p->eps[i].removed, 1, __ATOMIC_RELEASE);
    hc_info("push", "endpoint %s removed: what still waits for it goes to the dead-letter"
            " table as it comes due", name);
    wake(p);
    return 0;
}

int hc_push_endpoint_enable(struct hc_push *p, const char *name)
{
    int ep = find_ep(p, name, strlen(name));
    if (ep < 0)
        return -ENOENT;
    MDB_txn *txn;
    MDB_val k = { strlen(name), (void *)name };
    int m = mdb_txn_begin(p->env, NULL, 0, &txn);
    if (m == 0) {
        m = mdb_del(txn, p->endpoints, &k, NULL);
        if (m == MDB_NOTFOUND)
            m = 0;
        if (m == 0)
            m = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (m == 0)
        m = mdb_env_sync(p->env, 1);
    if (m != 0)
        return mdb_rc(m, "enable endpoint");
    if (__atomic_exchange_n(&p->eps[ep].disabled, 0, __ATOMIC_ACQ_REL)) {
        pthread_mutex_lock(&p->mu);
        p->st.disabled--;
        pthread_mutex_unlock(&p->mu);
        hc_info("push", "endpoint %s enabled", name);
    }
    wake(p);
    return 0;
}

bool hc_push_endpoint_disabled(struct hc_push *p, const char *name)
{
    int ep = find_ep(p, name, strlen(name));
    return ep >= 0 && ep_disabled(&p->eps[ep]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int hc_push_stats(struct hc_push *p, struct hc_push_stats *st)
{
    MDB_txn *txn;
    MDB_stat o, d;
    int m = mdb_txn_begin(p->env, NULL, MDB_RDONLY, &txn);
    if (m == 0) {
        m = mdb_stat(txn, p->outbox, &o);
        if (m == 0)
            m = mdb_stat(txn, p->dead, &d);
        mdb_txn_abort(txn);
    }
    if (m != 0)
        return mdb_rc(m, "stats");
    double *s = malloc(LATENCY_KEEP * sizeof(*s));
    pthread_mutex_lock(&p->mu);
    *st = p->st;
    size_t n = p->lat_n < LATENCY_KEEP ? (size_t)p->lat_n : LATENCY_KEEP;
    if (s)
        memcpy(s, p->lat, n * sizeof(*s));
    st->latency_samples = p->lat_n;
    pthread_mutex_unlock(&p->mu);
    st->inflight = __atomic_load_n(&p->inflight, __ATOMIC_RELAXED);
    st->pending = o.ms_entries;
    st->dead_now = d.ms_entries;
    st->latency_p50_ms = st->latency_p99_ms = 0;
    if (s && n) {
        qsort(s, n, sizeof(*s), cmp_double);
        st->latency_p50_ms = s[(n - 1) / 2];
        st->latency_p99_ms = s[(n - 1) * 99 / 100];
    }
    free(s);
    return 0;
}

void hc_push_stop(struct hc_push *p)
{
    if (!p || !p->started)
        return;
    __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
    wake(p);
    pthread_join(p->thread, NULL);
    p->started = 0;
}

void hc_push_close(struct hc_push *p)
{
    if (!p)
        return;
    hc_push_stop(p);
    while (p->flights)          /* abandoned: they stay in the outbox */
        flight_free(p, p->flights);
    if (p->multi)
        curl_multi_cleanup(p->multi);
    if (p->env)
        mdb_env_close(p->env);
    for (unsigned i = 0; i < p->n_eps; i++)
        free(p->eps[i].heap);
    free(p->ops);
    free(p->inbox);
    free(p->lat);
    free(p->ca_file);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
