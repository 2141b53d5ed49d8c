/*
 * notify.h — the alarm lifecycle: the notifier thread turns each alarm into
 * rounds of signed webhooks over the operator's ordered channels until
 * someone acknowledges it.
 *
 *   firing      a round starts when the alarm arrives and every repeat_ms
 *               after that: the first channel at once, each next channel
 *               its delay after the one before (an escalation policy).  A
 *               channel whose turn would come after the next round starts
 *               is not reached in that round.
 *   processing  "someone is on it" (ack processing): nothing is sent until
 *               snooze_ms after the acknowledgement; then a new round
 *               starts.  Acknowledging processing again snoozes from then.
 *   done        (ack done) nothing more is sent, ever.
 *
 * Messages go through the outbox (push.h): body = the alarm's webhook body
 * with data.state "firing", data.channel (the channel's name) and
 * data.attempt (the round, from 1).  Two rules keep an outage from piling
 * up stale notifications: a new message to a channel withdraws the
 * alarm's previous one to that channel if it is still waiting in the
 * outbox, and an acknowledgement withdraws all of the alarm's waiting
 * messages.
 *
 * Persistence: the alarms live in the outbox's LMDB environment (database
 * "alarms": alarm id -> state, round, timers, outbox sequence numbers,
 * body), written in the same transaction as the messages each step sends,
 * so after a crash an alarm and its messages always agree.  Database
 * "notify" keeps, per shard, the last alarm id taken in: at start-up
 * hubcapd hands over whatever each shard committed beyond it
 * (hc_notify_mark), so an alarm synced in a shard always reaches the
 * notifier, even if the process died in between.
 *
 * Threading: the notifier thread owns the timers (a binary min-heap of the
 * open alarms, by next due time) and the in-memory alarms.  Workers hand
 * alarms over and the control socket acknowledges them through its
 * command ring (ck_ring, multi-producer single-consumer); hc_notify_ack
 * waits for the notifier's answer.  hc_notify_list, hc_notify_get and
 * hc_notify_stats may be called from any thread.
 */
#ifndef HUBCAP_NOTIFY_H
#define HUBCAP_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "hubcap/push.h"

#define HC_NOTIFY_CHANNELS_MAX HC_PUSH_ENDPOINTS_MAX
#define HC_NOTIFY_ID_MAX 31         /* bytes of an alarm id ("<shard>-<seq>") */

enum hc_alarm_state { HC_ALARM_FIRING = 0, HC_ALARM_PROCESSING = 1, HC_ALARM_DONE = 2 };

/* "firing", "processing", "done"; NULL for anything else. */
const char *hc_alarm_state_name(int state);
/* The state named s, or -1. */
int hc_alarm_state_parse(const char *s);

struct hc_notify_channel {
    const char *name;               /* a push endpoint of the same name */
    uint32_t delay_ms;              /* after the previous channel; the first
                                       channel's is ignored: it goes at once */
};

struct hc_notify_options {
    struct hc_push *push;           /* opened; its environment holds our state */
    const struct hc_notify_channel *channels;   /* in the order they are notified */
    unsigned n_channels;
    uint32_t repeat_ms;             /* 0: 10 min */
    uint32_t snooze_ms;             /* 0: 2 h */
    unsigned shards;                /* how many shards hand alarms over */
};

/* One alarm as stored, for hc_notify_list and hc_notify_get.  Pointers are
 * valid during the callback only. */
struct hc_notify_alarm {
    const char *id;
    int state;                      /* enum hc_alarm_state */
    unsigned round;                 /* rounds started so far */
    unsigned sent;                  /* messages submitted for it */
    int64_t raised_ms;              /* when the notifier took it in (unix ms) */
    int64_t updated_ms;             /* last state change */
    int64_t next_ms;                /* next step (firing) or end of snooze
                                       (processing); 0 when done */
    const char *body;               /* the webhook body as raised */
    size_t len;
};

struct hc_notify_stats {
    uint64_t raised;                /* alarms taken in */
    uint64_t rounds;                /* notification rounds started */
    uint64_t messages;              /* messages submitted to the outbox */
    uint64_t acks;                  /* acknowledgements applied */
    uint64_t firing, processing;    /* open alarms now */
    uint64_t done;                  /* alarms closed since start */
    uint64_t errors;                /* failed transactions (retried) */
};

struct hc_notify;

/* Open the notifier's databases in o->push's environment and load the open
 * alarms and their timers.  0 or a negative error (logged). */
int hc_notify_open(struct hc_notify **out, const struct hc_notify_options *o);

/* The last alarm id (as hc_store numbers them) of shard taken in; alarms
 * after it must be handed over with hc_notify_raise. */
uint64_t hc_notify_mark(const struct hc_notify *n, unsigned shard);

/* Hand over an alarm that is durable in its shard: shard, its store id,
 * its id text and its webhook body (copied).  Before hc_notify_start the
 * alarm is queued directly (start-up catch-up, one thread); after it, it
 * goes through the command ring, waiting for room if the ring is full.
 * Alarms of one shard must be handed over in id order.  An alarm already
 * taken in is ignored.  0, -ENOMEM, or -EINVAL for an id longer than
 * HC_NOTIFY_ID_MAX. */
int hc_notify_raise(struct hc_notify *n, unsigned shard, uint64_t store_id, const char *id,
                    const char *body, size_t len);

struct hc_store;

/* Hand over, with hc_notify_raise, every alarm of shard's store whose id is
 * greater than *after, in id order; *after follows the last one handed
 * over.  How many, or a negative error (those before it were handed). */
int hc_notify_raise_from(struct hc_notify *n, unsigned shard, struct hc_store *s,
                         uint64_t *after);

int hc_notify_start(struct hc_notify *n);

/* Acknowledge alarm id with HC_ALARM_PROCESSING or HC_ALARM_DONE; waits for
 * the notifier, which persists the change before answering.  0, or
 * -ENOENT (no such alarm), -EALREADY (it is done), -EINVAL (bad state),
 * -EAGAIN (the notifier is not running) or a store error; msg (if msglen)
 * gets a one-line explanation either way. */
int hc_notify_ack(struct hc_notify *n, const char *id, int state, char *msg, size_t msglen);

/* Change the repeat interval and the snooze live (0: keep that one); waits
 * for the notifier, which reschedules the firing alarms at once; a snooze
 * under way keeps its end.  (Keeping them across restarts is hubcapd's
 * job: settings.h.)  0 or a negative error, with msg. */
int hc_notify_settings(struct hc_notify *n, uint32_t repeat_ms, uint32_t snooze_ms, char *msg,
                       size_t msglen);
/* Replace the channel list live (the push endpoints must exist already);
 * waits for the notifier.  Rounds under way go on with the new list; an
 * open alarm's messages still waiting for a channel that is gone are
 * withdrawn.  0 or a negative error, with msg. */
int hc_notify_channels(struct hc_notify *n, const struct hc_notify_channel *chans, unsigned k,
                       char *msg, size_t msglen);

/* The settings in force. */
void hc_notify_get_settings(struct hc_notify *n, uint32_t *repeat_ms, uint32_t *snooze_ms);

/* Call fn for every stored alarm (open or done), in the byte order of
 * their ids ("0-10" before "0-9"); fn returning non-zero stops the walk
 * and is returned. */
int hc_notify_list(struct hc_notify *n,
                   int (*fn)(void *ctx, const struct hc_notify_alarm *a), void *ctx);

/* Call fn for alarm id: 0, -ENOENT, or a store error. */
int hc_notify_get(struct hc_notify *n, const char *id,
                  int (*fn)(void *ctx, const struct hc_notify_alarm *a), void *ctx);

void hc_notify_stats(struct hc_notify *n, struct hc_notify_stats *st);

/* Stop the thread (timers and queued commands stay persisted or in the
 * shards) and free everything. */
void hc_notify_stop(struct hc_notify *n);
void hc_notify_close(struct hc_notify *n);

#endif
