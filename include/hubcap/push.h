/*
 * push.h — the outbox and its pusher: generic, durable, signed webhook
 * delivery.  A message is (topic, endpoint name, body).
 *
 *   hc_push_submit   commits messages to an LMDB outbox and fsyncs before
 *                    returning, so a message accepted is never lost, then
 *                    hands them to the pusher thread.
 *   pusher thread    POSTs each one with libcurl's multi interface
 *                    (keep-alive, connect timeout 5 s, total 15 s, TLS
 *                    verification on), signed the Standard Webhooks way:
 *                    webhook-id (stable across retries), webhook-timestamp
 *                    (of the attempt) and webhook-signature (one "v1,..."
 *                    per secret: two while a secret is being rotated).
 *   outcomes         2xx: delivered, removed from the outbox.
 *                    network error, 5xx, 408, 429: retried after the next
 *                    delay of the schedule (default 5 s, 5 min, 30 min, 2 h,
 *                    5 h, 10 h, 10 h), scaled by 1 ± jitter, and never
 *                    sooner than the endpoint's Retry-After.
 *                    410 Gone: the endpoint is disabled (persisted, logged)
 *                    and its messages go to the dead-letter table.
 *                    any other status, or the schedule used up: the
 *                    message goes to the dead-letter table, with its last
 *                    error; hc_push_replay puts it back, same webhook-id.
 *
 * The environment (<data_dir>/outbox) holds "outbox" and "dead" (8-byte
 * big-endian sequence number -> record), "endpoints" (name -> disabled
 * state) and "meta" (the next sequence number: a number is never used
 * twice, so others may keep it to refer to a message).  A restart (even after kill -9) sends everything still in the
 * outbox again on its schedule, under the same webhook-id: delivery is at
 * least once, and receivers deduplicate by webhook-id as the spec says.
 *
 * Threading: hc_push_submit, hc_push_list, hc_push_replay,
 * hc_push_endpoint_enable and hc_push_stats may be called from any thread
 * (LMDB serialises writers; the hand-off to the pusher takes a mutex, once
 * per batch, off every hot path).  Open, start, stop and close belong to
 * one owner thread.
 */
#ifndef HUBCAP_PUSH_H
#define HUBCAP_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "hubcap/webhook.h"

#define HC_PUSH_ENDPOINTS_MAX 16
#define HC_PUSH_NAME_MAX 32         /* bytes of an endpoint name or topic */
#define HC_PUSH_URL_MAX 512
#define HC_PUSH_RETRIES_MAX 16
#define HC_PUSH_ERROR_MAX 96        /* last error kept with a message */

struct hc_push_endpoint {
    char name[HC_PUSH_NAME_MAX + 1];
    char url[HC_PUSH_URL_MAX + 1];
    struct hc_webhook_secret secrets[2];
    unsigned n_secrets;             /* 1, or 2 while rotating */
};

struct hc_push_options {
    const char *dir;                /* the outbox environment, created if missing */
    const struct hc_push_endpoint *endpoints;
    unsigned n_endpoints;
    const uint32_t *retry_ms;       /* delay before retry k = 1..n_retry; NULL: default */
    unsigned n_retry;
    double jitter;                  /* 0..1; < 0: the default 0.2 */
    unsigned connect_timeout_ms;    /* 0: 5000 */
    unsigned timeout_ms;            /* 0: 15000, the whole request */
    unsigned max_inflight;          /* 0: 64 requests at once */
    unsigned max_inflight_endpoint; /* 0: 16 of them to one endpoint */
    const char *ca_file;            /* NULL: the system's trust store */
    size_t map_size;                /* 0: 1 GiB (sparse) */
};

/* One message to submit; id and seq are filled in by hc_push_submit. */
struct hc_push_msg {
    const char *topic;              /* e.g. "vehicle.moved" */
    const char *endpoint;           /* an endpoint name */
    const void *body;
    size_t len;
    char id[HC_WEBHOOK_ID_LEN];     /* out: the webhook-id */
    uint64_t seq;                   /* out: its key in the outbox */
};

/* A stored message, as hc_push_list shows it. */
struct hc_push_entry {
    uint64_t seq;
    const char *id, *topic, *endpoint;
    const void *body;
    size_t len;
    unsigned attempts;              /* attempts made */
    int64_t created_ms, next_ms;    /* unix ms; next_ms: next attempt (outbox) */
    const char *last_error;         /* "" before any attempt */
};

struct hc_push_stats {
    uint64_t submitted, delivered, attempts, retries, dead, replayed;
    uint64_t cancelled;             /* withdrawn before delivery (hc_push_cancel) */
    uint64_t pending;               /* in the outbox now */
    uint64_t dead_now;              /* in the dead-letter table now */
    unsigned inflight;
    unsigned disabled;              /* endpoints disabled by 410 */
    double latency_p50_ms, latency_p99_ms;  /* submit to 2xx, recent deliveries */
    uint64_t latency_samples;
};

struct hc_push;

/* Open (create) the outbox at o->dir.  Messages already in it are
 * scheduled again.  0 or a negative code; the error is logged. */
int hc_push_open(struct hc_push **out, const struct hc_push_options *o);

/* Start the pusher thread. */
int hc_push_start(struct hc_push *p);

/* Commit n messages in one durable transaction, then queue them.  Fills
 * each id and seq.  A message for a disabled endpoint goes straight to the
 * dead-letter table.  -ENOENT (nothing written) if an endpoint name is not
 * configured; -EINVAL for an empty or too long topic; a store error
 * (-ENOSPC, -EIO, HC_ESTORE) leaves nothing written either. */
int hc_push_submit(struct hc_push *p, struct hc_push_msg *msgs, size_t n);

/* Writes of the caller's own that must commit with the messages, in the
 * same transaction (a module's state and the messages it decided to send
 * can then never disagree after a crash).  fn returns 0 or a negative
 * error (hc_store_mdb_error turns an LMDB code into one), which aborts the
 * transaction and is returned. */
typedef int (*hc_push_txn_fn)(void *ctx, MDB_txn *txn);

/* hc_push_submit, with fn (if not NULL) called inside the transaction
 * after the messages are written.  n may be 0: then it is just a durable
 * transaction of the caller's writes. */
int hc_push_submit_with(struct hc_push *p, struct hc_push_msg *msgs, size_t n,
                        hc_push_txn_fn fn, void *ctx);

/* Open (create) a database of the caller's in the outbox environment, for
 * state written through hc_push_submit_with.  Call before other threads
 * use p.  0 or a negative error. */
int hc_push_db(struct hc_push *p, const char *name, MDB_dbi *dbi);

/* Inside an hc_push_submit_with callback: withdraw message seq if it is
 * still waiting in the outbox.  1 if it was (it will not be sent again;
 * an attempt already in flight finishes but is not retried), 0 if it is
 * gone (delivered, dead or withdrawn), or a negative error. */
int hc_push_cancel(struct hc_push *p, MDB_txn *txn, uint64_t seq);

/* Run fn in a read-only transaction of the outbox environment. */
int hc_push_read(struct hc_push *p, hc_push_txn_fn fn, void *ctx);

/* Call fn for each message in the outbox (dead = false) or the dead-letter
 * table (dead = true), in sequence order; fn returning non-zero stops the
 * walk and is returned.  The entry's pointers are valid during the call. */
int hc_push_list(struct hc_push *p, bool dead,
                 int (*fn)(void *ctx, const struct hc_push_entry *e), void *ctx);

/* Move dead letter seq (0: all of them) back to the outbox with a fresh
 * schedule and the same webhook-id.  Returns how many moved, or -ENOENT
 * when seq is not a dead letter. */
int hc_push_replay(struct hc_push *p, uint64_t seq);

/* Add an endpoint, or change the url and secrets of one (by name), live;
 * a removed endpoint comes back.  Attempts from then on use the new
 * settings.  0, -EINVAL, or -ENOSPC when HC_PUSH_ENDPOINTS_MAX names have
 * been used since open (removed ones count until a restart). */
int hc_push_endpoint_set(struct hc_push *p, const struct hc_push_endpoint *ep);

/* Remove an endpoint live: submits to it are refused (-ENOENT) and what
 * still waits for it goes to the dead-letter table as it comes due, unless
 * it is set again first.  0 or -ENOENT. */
int hc_push_endpoint_remove(struct hc_push *p, const char *name);

/* Enable an endpoint a 410 disabled (its dead letters stay dead until
 * replayed).  0, or -ENOENT for an unknown name. */
int hc_push_endpoint_enable(struct hc_push *p, const char *name);
bool hc_push_endpoint_disabled(struct hc_push *p, const char *name);

int hc_push_stats(struct hc_push *p, struct hc_push_stats *st);

/* Stop the pusher: requests in flight are abandoned and stay in the
 * outbox, to be sent again after the next open. */
void hc_push_stop(struct hc_push *p);
void hc_push_close(struct hc_push *p);

#endif
