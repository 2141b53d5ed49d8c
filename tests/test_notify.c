/*
 * test_notify.c — the alarm lifecycle (repeat, escalation, snooze, done,
 * restart) against a real HTTP receiver on loopback, through the real
 * outbox and pusher, with durations of a fraction of a second.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "httprecv.h"
#include "hubcap/notify.h"
#include "hubcap/push.h"
#include "hubcap/timefmt.h"
#include "hubcap/webhook.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define REPEAT_MS 1500
#define SNOOZE_MS 1000
#define STEP_MS 300                 /* escalation delay between channels */
#define EARLY_NS 20000000ull        /* clock and scheduling slack: 20 ms */

static char dir[64];
static struct hr_server *rx;
static struct hc_push *push;
static struct hc_notify *notify;
static struct hc_push_endpoint eps[3];
static struct hc_notify_channel chans[3];
static unsigned n_chans;
static uint32_t retry_ms[] = { 60000 };     /* a failed message waits a minute */
static const char *const names[] = { "app", "sms", "voice" };

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/hubcap-notify-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    rx = hr_start(0);
    cr_assert_not_null(rx);
    memset(eps, 0, sizeof(eps));
    for (unsigned i = 0; i < 3; i++) {
        char path[16];
        snprintf(eps[i].name, sizeof(eps[i].name), "%s", names[i]);
        snprintf(path, sizeof(path), "/%s", names[i]);
        hr_url(rx, path, eps[i].url, sizeof(eps[i].url));
        cr_assert_eq(hc_webhook_secret_parse(SECRET, &eps[i].secrets[0]), 0);
        eps[i].n_secrets = 1;
        chans[i] = (struct hc_notify_channel){ names[i], i ? STEP_MS : 0 };
    }
    n_chans = 3;
    push = NULL;
    notify = NULL;
}

static void teardown(void)
{
    hc_notify_close(notify);
    hc_push_close(push);
    hr_free(rx);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static void open_all(void)
{
    struct hc_push_options po = { .dir = dir, .endpoints = eps, .n_endpoints = 3,
                                  .retry_ms = retry_ms, .n_retry = 1, .jitter = 0 };
    cr_assert_eq(hc_push_open(&push, &po), 0);
    struct hc_notify_options no = { .push = push, .channels = chans, .n_channels = n_chans,
                                    .repeat_ms = REPEAT_MS, .snooze_ms = SNOOZE_MS,
                                    .shards = 2 };
    cr_assert_eq(hc_notify_open(&notify, &no), 0);  /* its databases before threads */
    cr_assert_eq(hc_push_start(push), 0);
    cr_assert_eq(hc_notify_start(notify), 0);
}

static void close_all(void)
{
    hc_notify_close(notify);
    hc_push_close(push);
    notify = NULL;
    push = NULL;
}

static void raise_alarm(unsigned shard, uint64_t store_id, const char *id)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"type\":\"vehicle.moved\",\"timestamp\":\"2026-11-22T03:04:05Z\","
             "\"data\":{\"alarm_id\":\"%s\",\"vid\":\"car-%s\",\"state\":\"firing\"}}", id, id);
    cr_assert_eq(hc_notify_raise(notify, shard, store_id, id, body, strlen(body)), 0);
}

/* Request i, checked: signed by SECRET, a webhook body for alarm id with
 * data.channel naming the path it came to and data.attempt == attempt. */
static struct hr_request request(unsigned i, const char *id, const char *channel,
                                 int attempt)
{
    struct hr_request r;
    cr_assert_eq(hr_get(rx, i, &r), 0, "request %u was received", i);
    cr_assert(hr_signed_by(&r, SECRET), "request %u carries a valid signature: id %s,"
              " timestamp %s, signature %s, body %s", i, r.id, r.timestamp, r.signature, r.body);
    char path[16];
    snprintf(path, sizeof(path), "/%s", channel);
    cr_assert_str_eq(r.path, path, "request %u went to %s", i, path);
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    json_t *d = json_object_get(j, "data");
    cr_assert(json_is_object(d), "request %u has a data object: %s", i, r.body);
    cr_assert_str_eq(json_string_value(json_object_get(d, "alarm_id")), id);
    cr_assert_str_eq(json_string_value(json_object_get(d, "channel")), channel);
    cr_assert_str_eq(json_string_value(json_object_get(d, "state")), "firing");
    cr_assert_eq(json_integer_value(json_object_get(d, "attempt")), attempt,
                 "request %u is attempt %d: %s", i, attempt, r.body);
    json_decref(j);
    return r;
}

static uint64_t ms_ns(uint64_t ms)
{
    return ms * 1000000ull;
}

struct found {
    int state;
    unsigned round, sent;
    int64_t next_ms;
};

static int keep(void *ctx, const struct hc_notify_alarm *a)
{
    struct found *f = ctx;
    f->state = a->state;
    f->round = a->round;
    f->sent = a->sent;
    f->next_ms = a->next_ms;
    return 0;
}

static struct found stored(const char *id)
{
    struct found f = { -1, 0, 0, 0 };
    cr_assert_eq(hc_notify_get(notify, id, keep, &f), 0, "alarm %s is stored", id);
    return f;
}

static void ack_ok(const char *id, int state)
{
    char msg[200];
    int rc = hc_notify_ack(notify, id, state, msg, sizeof(msg));
    cr_assert_eq(rc, 0, "ack %s %s: %s", id, hc_alarm_state_name(state), msg);
}

TestSuite(notify, .init = setup, .fini = teardown, .timeout = 60);

Test(notify, a_round_escalates_in_order_after_each_delay_then_repeats)
{
    open_all();
    uint64_t t0 = hc_time_mono_ns();
    raise_alarm(0, 1, "0-1");
    cr_assert_eq(hr_wait(rx, 4, 10000), 4, "three channels, then the next round");
    struct hr_request a = request(0, "0-1", "app", 1);
    struct hr_request b = request(1, "0-1", "sms", 1);
    struct hr_request c = request(2, "0-1", "voice", 1);
    struct hr_request d = request(3, "0-1", "app", 2);
    cr_assert_lt(a.at_ns - t0, ms_ns(500), "the first channel is notified at once");
    /* Delays count from the round's start (the raise), not from when the
     * previous channel's request happened to arrive: measured from t0, a
     * slow delivery of one channel cannot make the next look early. */
    cr_assert_geq(b.at_ns - t0, ms_ns(STEP_MS) - EARLY_NS, "sms waits its delay");
    cr_assert_lt(b.at_ns - t0, ms_ns(STEP_MS + 500));
    cr_assert_geq(c.at_ns - t0, ms_ns(2 * STEP_MS) - EARLY_NS, "voice waits its delay");
    cr_assert_geq(d.at_ns - t0, ms_ns(REPEAT_MS) - EARLY_NS, "the round repeats");
    cr_assert_lt(d.at_ns - t0, ms_ns(REPEAT_MS + 500));
    cr_assert_str_neq(a.id, d.id, "each notification is its own message");
    struct found f = stored("0-1");
    cr_assert_eq(f.state, HC_ALARM_FIRING);
    cr_assert_geq(f.round, 2);
    struct hc_notify_stats st;
    hc_notify_stats(notify, &st);
    cr_assert_eq(st.raised, 1);
    cr_assert_eq(st.firing, 1);
    cr_assert_geq(st.messages, 4);
    hr_request_free(&a);
    hr_request_free(&b);
    hr_request_free(&c);
    hr_request_free(&d);
}

Test(notify, processing_holds_every_send_for_the_snooze_then_rounds_resume)
{
    open_all();
    raise_alarm(0, 1, "0-1");
    cr_assert_eq(hr_wait(rx, 1, 5000), 1);
    uint64_t t_ack = hc_time_mono_ns();
    ack_ok("0-1", HC_ALARM_PROCESSING);
    cr_assert_eq(stored("0-1").state, HC_ALARM_PROCESSING);
    /* The escalation to sms (due 300 ms into the round) is called off. */
    cr_assert_eq(hr_wait(rx, 2, SNOOZE_MS - 100), 1, "nothing is sent while snoozed");
    cr_assert_eq(hr_wait(rx, 2, 5000), 2, "rounds resume after the snooze");
    struct hr_request r = request(1, "0-1", "app", 2);
    cr_assert_geq(r.at_ns - t_ack, ms_ns(SNOOZE_MS) - EARLY_NS);
    cr_assert_lt(r.at_ns - t_ack, ms_ns(SNOOZE_MS + 700));
    cr_assert_eq(stored("0-1").state, HC_ALARM_FIRING);
    hr_request_free(&r);
}

Test(notify, done_stops_every_send_for_good)
{
    open_all();
    raise_alarm(1, 7, "1-7");
    cr_assert_eq(hr_wait(rx, 1, 5000), 1);
    ack_ok("1-7", HC_ALARM_DONE);
    cr_assert_eq(hr_wait(rx, 2, 2 * REPEAT_MS), 1, "nothing after done");
    struct found f = stored("1-7");
    cr_assert_eq(f.state, HC_ALARM_DONE);
    cr_assert_eq(f.next_ms, 0);
    char msg[200];
    cr_assert_eq(hc_notify_ack(notify, "1-7", HC_ALARM_DONE, msg, sizeof(msg)), -EALREADY);
    cr_assert(strstr(msg, "already done"), "%s", msg);
    cr_assert_eq(hc_notify_ack(notify, "1-7", HC_ALARM_PROCESSING, msg, sizeof(msg)),
                 -EALREADY);
    struct hc_notify_stats st;
    hc_notify_stats(notify, &st);
    cr_assert_eq(st.firing + st.processing, 0);
    cr_assert_eq(st.done, 1);
}

Test(notify, bad_acknowledgements_are_refused_and_change_nothing)
{
    open_all();
    raise_alarm(0, 1, "0-1");
    cr_assert_eq(hr_wait(rx, 1, 5000), 1);
    char msg[200];
    cr_assert_eq(hc_notify_ack(notify, "0-99", HC_ALARM_DONE, msg, sizeof(msg)), -ENOENT);
    cr_assert(strstr(msg, "no alarm 0-99"), "%s", msg);
    cr_assert_eq(hc_notify_ack(notify, "0-1", HC_ALARM_FIRING, msg, sizeof(msg)), -EINVAL);
    cr_assert_eq(hc_notify_ack(notify, "0-1", 7, msg, sizeof(msg)), -EINVAL);
    cr_assert_eq(stored("0-1").state, HC_ALARM_FIRING);
    cr_assert_eq(hr_wait(rx, 2, 3000), 2, "the escalation goes on");
    struct hr_request r = request(1, "0-1", "sms", 1);
    hr_request_free(&r);
}

Test(notify, a_restart_keeps_each_alarm_in_its_state_with_its_timers)
{
    open_all();
    raise_alarm(0, 1, "0-1");
    raise_alarm(0, 2, "0-2");
    raise_alarm(1, 1, "1-1");
    cr_assert_geq(hr_wait(rx, 3, 5000), 3);
    uint64_t t_ack = hc_time_mono_ns();
    ack_ok("0-1", HC_ALARM_PROCESSING);
    ack_ok("0-2", HC_ALARM_DONE);
    close_all();
    unsigned before = hr_count(rx);
    n_chans = 1;                    /* and the channels changed meanwhile */
    open_all();
    cr_assert_eq(hc_notify_mark(notify, 0), 2);
    cr_assert_eq(hc_notify_mark(notify, 1), 1);
    struct hc_notify_stats st;
    hc_notify_stats(notify, &st);
    cr_assert_eq(st.processing, 1, "0-1 is still snoozed");
    cr_assert_eq(st.firing, 1, "1-1 still fires");
    cr_assert_eq(stored("0-2").state, HC_ALARM_DONE);
    /* 0-1 stays quiet until its snooze, counted from the ack, is over. */
    uint64_t deadline = t_ack + ms_ns(SNOOZE_MS) - EARLY_NS;
    for (;;) {
        unsigned n = hr_count(rx);
        uint64_t now = hc_time_mono_ns();
        for (unsigned i = before; i < n; i++) {
            struct hr_request r;
            cr_assert_eq(hr_get(rx, i, &r), 0);
            if (strstr(r.body, "\"0-1\""))
                cr_assert_geq(r.at_ns, deadline, "0-1 was sent during its snooze");
            cr_assert_null(strstr(r.body, "\"0-2\""), "0-2 is done");
            hr_request_free(&r);
        }
        if (now > t_ack + ms_ns(SNOOZE_MS + 1500))
            break;
        usleep(50000);
    }
    int resumed = 0;
    for (unsigned i = 0; getenv("DBG") && i < hr_count(rx); i++) {
        struct hr_request r;
        hr_get(rx, i, &r);
        fprintf(stderr, "%u (before %u) at %.3f: %s %s\n", i, before, (double)(r.at_ns - t_ack) / 1e9, r.path, r.body);
        hr_request_free(&r);
    }
    for (unsigned i = before; i < hr_count(rx); i++) {
        struct hr_request r;
        cr_assert_eq(hr_get(rx, i, &r), 0);
        if (strstr(r.body, "\"0-1\"")) {
            hr_request_free(&r);
            r = request(i, "0-1", "app", 2);
            hr_request_free(&r);
            resumed = 1;
            break;
        }
        hr_request_free(&r);
    }
    cr_assert(resumed, "0-1 resumed after its snooze");
}

Test(notify, alarms_are_taken_in_once_and_the_marks_persist)
{
    open_all();
    raise_alarm(0, 5, "0-5");
    raise_alarm(0, 5, "0-5");
    raise_alarm(0, 3, "0-3");       /* older than the mark: taken already */
    cr_assert_eq(hr_wait(rx, 1, 5000), 1);
    cr_assert_eq(hr_wait(rx, 2, 200), 1, "one alarm, one message");
    struct hc_notify_stats st;
    hc_notify_stats(notify, &st);
    cr_assert_eq(st.raised, 1);
    struct found f = { -1, 0, 0, 0 };
    cr_assert_eq(hc_notify_get(notify, "0-3", keep, &f), -ENOENT);
    close_all();
    open_all();
    cr_assert_eq(hc_notify_mark(notify, 0), 5);
    cr_assert_eq(hc_notify_mark(notify, 1), 0);
}

Test(notify, a_new_round_withdraws_the_message_still_waiting_for_the_same_channel)
{
    n_chans = 1;
    hr_default(rx, 503);            /* app is down: its message waits a minute */
    open_all();
    raise_alarm(0, 1, "0-1");
    cr_assert_eq(hr_wait(rx, 2, 5000), 2, "round 1 failed, round 2 was tried");
    struct hr_request a, b;
    cr_assert_eq(hr_get(rx, 0, &a), 0);
    cr_assert_eq(hr_get(rx, 1, &b), 0);
    cr_assert_str_neq(a.id, b.id);
    cr_assert(strstr(b.body, "\"attempt\":2"), "%s", b.body);
    hr_request_free(&a);
    hr_request_free(&b);
    struct hc_push_stats ps;
    for (int t = 0; t < 100; t++) {     /* the outcome is written just after */
        cr_assert_eq(hc_push_stats(push, &ps), 0);
        if (ps.cancelled >= 1 && ps.pending == 1)
            break;
        usleep(10000);
    }
    cr_assert_eq(ps.cancelled, 1, "round 1's message was withdrawn");
    cr_assert_eq(ps.pending, 1, "only round 2's message waits");
    ack_ok("0-1", HC_ALARM_DONE);
    cr_assert_eq(hc_push_stats(push, &ps), 0);
    cr_assert_eq(ps.pending, 0, "done withdraws what still waits");
    cr_assert_eq(ps.cancelled, 2);
    hr_default(rx, 200);
    cr_assert_eq(hr_wait(rx, 3, 2 * REPEAT_MS), 2, "nothing more is sent");
}

Test(notify, settings_change_live_and_reschedule_at_once)
{
    n_chans = 1;
    open_all();
    uint64_t t0 = hc_time_mono_ns();
    raise_alarm(0, 1, "0-1");
    cr_assert_eq(hr_wait(rx, 1, 5000), 1);
    char msg[200];
    cr_assert_eq(hc_notify_settings(notify, 400, 0, msg, sizeof(msg)), 0, "%s", msg);
    uint32_t rep, snz;
    hc_notify_get_settings(notify, &rep, &snz);
    cr_assert_eq(rep, 400);
    cr_assert_eq(snz, SNOOZE_MS, "0 keeps the snooze");
    cr_assert_eq(hr_wait(rx, 2, REPEAT_MS - 300), 2, "the shorter interval applies at once");
    struct hr_request a, b;
    cr_assert_eq(hr_get(rx, 0, &a), 0);
    cr_assert_eq(hr_get(rx, 1, &b), 0);
    cr_assert_geq(b.at_ns - t0, ms_ns(400) - EARLY_NS, "the next round counts from the raise");
    cr_assert_lt(a.at_ns, b.at_ns);
    hr_request_free(&a);
    hr_request_free(&b);
}

Test(notify, a_new_channel_list_applies_at_once_and_withdraws_what_waits_for_a_gone_channel)
{
    n_chans = 2;                    /* app, then sms 300 ms later */
    hr_script(rx, 200, 1, NULL);    /* app takes the first; sms is down */
    hr_default(rx, 503);
    open_all();
    raise_alarm(0, 1, "0-1");
    cr_assert_eq(hr_wait(rx, 2, 5000), 2, "app, then sms (refused)");
    struct hc_push_stats ps;
    cr_assert_eq(hc_push_stats(push, &ps), 0);
    cr_assert_eq(ps.pending, 1, "sms's message waits for its retry");
    hr_default(rx, 200);
    /* sms goes; voice comes first now, app second. */
    struct hc_notify_channel next[2] = { { "voice", 0 }, { "app", 200 } };
    char msg[200];
    cr_assert_eq(hc_notify_channels(notify, next, 2, msg, sizeof(msg)), 0, "%s", msg);
    cr_assert_eq(hc_push_stats(push, &ps), 0);
    cr_assert_eq(ps.pending, 0, "the message for sms was withdrawn");
    cr_assert_eq(ps.cancelled, 1);
    cr_assert_eq(hr_wait(rx, 4, 5000), 4, "the next round uses the new list");
    struct hr_request a = request(2, "0-1", "voice", 2), b = request(3, "0-1", "app", 2);
    cr_assert_geq(b.at_ns - a.at_ns, ms_ns(200) - EARLY_NS);
    hr_request_free(&a);
    hr_request_free(&b);
}

Test(notify, after_a_restart_every_open_alarm_keeps_its_own_timer)
{
    chans[1].delay_ms = 600;        /* sms 600 ms into the round */
    open_all();
    uint64_t t_raise = hc_time_mono_ns();
    raise_alarm(0, 1, "0-1");
    raise_alarm(0, 2, "0-2");
    cr_assert_eq(hr_wait(rx, 2, 5000), 2);
    ack_ok("0-2", HC_ALARM_PROCESSING);     /* quiet until ~1000 ms */
    close_all();
    unsigned before = hr_count(rx);
    cr_assert_eq(before, 2, "the restart came before 0-2's escalation");
    open_all();                     /* 0-2, loaded last, is due after 0-1 */
    cr_assert_geq(hr_wait(rx, 3, 5000), 3);
    struct hr_request r = request(2, "0-1", "sms", 1);
    cr_assert_lt(r.at_ns - t_raise, ms_ns(900), "0-1 escalated on its own time, not 0-2's");
    hr_request_free(&r);
}
