/*
 * test_alarms.c — alarms end to end: a real hubcapd, a tow reported over
 * TCP, and a real HTTP receiver on loopback standing in for the operator's
 * channels (tests/httprecv.c).  Signed delivery, the lifecycle through the
 * control socket, escalation, kill -9 with messages undelivered, and the
 * hand-over of alarms the notifier never took in.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "httprecv.h"
#include "hubcap/config.h"
#include "hubcap/sim.h"
#include "hubcap/timefmt.h"

#define LAT 52.52
#define LON 13.405
#define T0 1795000000000LL
#define STEP 300000
#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SECRET2 "whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24h"
#define EARLY_NS 20000000ull

static struct daemon d;
static struct hr_server *rx;
static char sets[16][600];
static const char *setv[17];
static int nsets;

static void init(void)
{
    memset(&d, 0, sizeof(d));
    rx = hr_start(0);
    cr_assert_not_null(rx);
    nsets = 0;
    setv[0] = NULL;
}

static void fini(void)
{
    daemon_cleanup(&d);
    hr_free(rx);
}

TestSuite(alarms, .init = init, .fini = fini, .timeout = 120);

static void set(const char *fmt, const char *arg)
{
    cr_assert_lt(nsets, 16);
    snprintf(sets[nsets], sizeof(sets[nsets]), fmt, arg);
    setv[nsets] = sets[nsets];
    setv[++nsets] = NULL;
}

/* Channel name at path /name of the receiver, signed with secret. */
static void channel(const char *name, const char *secret)
{
    char url[256], s[64];
    snprintf(s, sizeof(s), "/%s", name);
    hr_url(rx, s, url, sizeof(url));
    snprintf(sets[nsets], sizeof(sets[nsets]), "channel.%s.url=%s", name, url);
    setv[nsets] = sets[nsets];
    setv[++nsets] = NULL;
    snprintf(sets[nsets], sizeof(sets[nsets]), "channel.%s.secret=%s", name, secret);
    setv[nsets] = sets[nsets];
    setv[++nsets] = NULL;
}

/* Send a tow of vid over TCP and wait until the daemon processed it. */
static void send_tow(const char *vid)
{
    struct hc_report r[18];
    for (int i = 0; i < 18; i++) {
        double la, lo;
        hc_sim_offset(LAT, LON, i < 16 ? 2.0 + (i % 3) : 300, i < 16 ? i * 2.1 : 0, &la, &lo);
        r[i] = report(vid, T0 + (int64_t)i * STEP, la, lo, 0, "acme");
    }
    uint64_t before = daemon_stat(&d, "reports");
    int fd = tcp_connect(d.tcp);
    send_reports_tcp(fd, r, 18);
    daemon_wait_processed(&d, before + 18);
    close(fd);
}

/* Request i: signed by secret (and verifiable), to /channel, a webhook body
 * about vid with data.channel and data.attempt as given.  Returns the
 * alarm id it carries (static buffer). */
static const char *check_request(unsigned i, const char *secret, const char *channel_,
                                 const char *vid, int attempt, struct hr_request *out)
{
    static char alarm_id[64];
    struct hr_request r;
    cr_assert_eq(hr_get(rx, i, &r), 0, "request %u arrived", i);
    cr_assert(hr_signed_by(&r, secret), "request %u verifies: %s %s %s", i, r.id, r.timestamp,
              r.signature);
    char path[40];
    snprintf(path, sizeof(path), "/%s", channel_);
    cr_assert_str_eq(r.path, path);
    cr_assert_str_eq(r.content_type, "application/json");
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    json_t *data = json_object_get(j, "data");
    cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "vehicle.moved");
    cr_assert_str_eq(json_string_value(json_object_get(data, "vid")), vid);
    cr_assert_str_eq(json_string_value(json_object_get(data, "maker")), "acme");
    cr_assert_str_eq(json_string_value(json_object_get(data, "channel")), channel_);
    cr_assert_eq(json_integer_value(json_object_get(data, "attempt")), attempt, "%s", r.body);
    snprintf(alarm_id, sizeof(alarm_id), "%s",
             json_string_value(json_object_get(data, "alarm_id")));
    json_decref(j);
    if (out)
        *out = r;
    else
        hr_request_free(&r);
    return alarm_id;
}

/* A control request built from fmt with one string argument; the answer. */
static json_t *control(const char *fmt, const char *arg)
{
    char req[512];
    snprintf(req, sizeof(req), fmt, arg);
    strcat(req, "\n");
    return daemon_control(&d, req);
}

/* The request is refused with an error that contains why. */
static void refused(const char *fmt, const char *arg, const char *why)
{
    json_t *a = control(fmt, arg);
    const char *e = json_string_value(json_object_get(a, "error"));
    cr_assert(json_is_false(json_object_get(a, "ok")), "refused: %s", fmt);
    cr_assert(e && strstr(e, why), "'%s' says %s", e ? e : "", why);
    json_decref(a);
}

static void ack(const char *id, const char *state)
{
    char req[256];
    snprintf(req, sizeof(req), "{\"cmd\":\"alarm.ack\",\"id\":\"%s\",\"state\":\"%s\"}\n",
             id, state);
    json_t *a = daemon_control(&d, req);
    cr_assert(json_is_true(json_object_get(a, "ok")), "ack %s %s: %s", id, state,
              json_string_value(json_object_get(a, "error")));
    json_decref(a);
}

static const char *alarm_state(const char *id)
{
    static char state[32];
    json_t *a = control("{\"cmd\":\"alarm.show\",\"id\":\"%s\"}", id);
    json_t *al = json_object_get(a, "alarm");
    cr_assert(json_is_object(al), "alarm.show %s answered", id);
    snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(al, "state")));
    json_decref(a);
    return state;
}

/* Wait until stats path reaches want (10 s at most). */
static void wait_stat(const char *path, uint64_t want)
{
    for (int t = 0; t < 1000; t++) {
        if (daemon_stat(&d, path) >= want)
            return;
        usleep(10000);
    }
    cr_assert_fail("%s stayed at %llu, below %llu", path,
                   (unsigned long long)daemon_stat(&d, path), (unsigned long long)want);
}

Test(alarms, a_tow_over_tcp_reaches_the_channel_signed_and_verifiable)
{
    set("%s", "thresholds.acme=35");
    channel("app", SECRET);
    set("channel.app.secret_next=%s", SECRET2);      /* a rotation under way */
    daemon_start(&d, setv);
    send_tow("CAR-1");
    cr_assert_eq(hr_wait(rx, 1, 10000), 1);
    struct hr_request r;
    const char *id = check_request(0, SECRET, "app", "CAR-1", 1, &r);
    cr_assert(hr_signed_by(&r, SECRET2), "the next secret verifies it too");
    hr_request_free(&r);
    /* The same alarm as the audit log's. */
    json_t *log = daemon_alarms(&d);
    cr_assert_eq(json_array_size(log), 1);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(log, 0), "data"), "alarm_id")), id);
    json_decref(log);
    wait_stat("push.delivered", 1);
    cr_assert_eq(daemon_stat(&d, "notify.raised"), 1);
    cr_assert_eq(daemon_stat(&d, "notify.firing"), 1);
    cr_assert_eq(strcmp(alarm_state(id), "firing"), 0);
    cr_assert_eq(daemon_stop(&d), 0);
}

Test(alarms, processing_snoozes_done_stops_and_bad_acks_change_nothing)
{
    set("%s", "thresholds.acme=35");
    set("%s", "alarm.repeat_interval=1s");
    set("%s", "alarm.snooze=1500ms");
    channel("app", SECRET);
    daemon_start(&d, setv);
    send_tow("CAR-2");
    cr_assert_eq(hr_wait(rx, 1, 10000), 1);
    char id[64];
    snprintf(id, sizeof(id), "%s", check_request(0, SECRET, "app", "CAR-2", 1, NULL));

    /* Refusals: each says why, and the alarm goes on firing. */
    refused("{\"cmd\":\"alarm.ack\",\"id\":\"%s\",\"state\":\"firing\"}", id,
            "processing or done");
    refused("{\"cmd\":\"alarm.ack\",\"id\":\"%s\",\"state\":\"done\"}", "9-999",
            "no alarm 9-999");
    refused("{\"cmd\":\"alarm.ack\",\"state\":\"%s\"}", "done", "");
    json_t *a;
    cr_assert_str_eq(alarm_state(id), "firing");
    cr_assert_eq(hr_wait(rx, 2, 5000), 2, "it repeats after the interval");
    check_request(1, SECRET, "app", "CAR-2", 2, NULL);

    uint64_t t_ack = hc_time_mono_ns();
    ack(id, "processing");
    cr_assert_str_eq(alarm_state(id), "processing");
    cr_assert_eq(hr_wait(rx, 3, 1300), 2, "nothing during the snooze");
    cr_assert_eq(hr_wait(rx, 3, 5000), 3, "repeats resume after the snooze");
    struct hr_request r;
    check_request(2, SECRET, "app", "CAR-2", 3, &r);
    cr_assert_geq(r.at_ns - t_ack, 1500000000ull - EARLY_NS);
    hr_request_free(&r);

    ack(id, "done");
    cr_assert_str_eq(alarm_state(id), "done");
    cr_assert_eq(hr_wait(rx, 4, 2500), 3, "nothing after done");
    refused("{\"cmd\":\"alarm.ack\",\"id\":\"%s\",\"state\":\"done\"}", id, "already done");
    a = control("{\"cmd\":\"alarm.list\",\"state\":\"%s\"}", "done");
    cr_assert_eq(json_array_size(json_object_get(a, "alarms")), 1);
    json_decref(a);
    cr_assert_eq(daemon_stat(&d, "notify.done"), 1);
    cr_assert_eq(daemon_stat(&d, "notify.acks"), 2);

    /* Settings: a bad value is refused with the configuration's message and
     * changes nothing; a good one is answered with what is now in force. */
    refused("{\"cmd\":\"alarm.settings\",\"repeat_interval\":\"%s\"}", "10", "add a unit");
    a = control("{\"cmd\":\"alarm.settings\",\"snooze\":\"%s\"}", "90m");
    cr_assert(json_is_true(json_object_get(a, "ok")));
    cr_assert_eq(json_integer_value(json_object_get(a, "repeat_interval_ms")), 1000);
    cr_assert_eq(json_integer_value(json_object_get(a, "snooze_ms")), 5400000);
    json_decref(a);
}

Test(alarms, escalation_follows_priority_and_delay)
{
    set("%s", "thresholds.acme=35");
    channel("sms", SECRET);
    set("%s", "channel.sms.priority=2");
    set("%s", "channel.sms.delay=400ms");
    channel("app", SECRET);
    set("%s", "channel.app.priority=1");
    daemon_start(&d, setv);
    /* The sms channel's delay runs from the round's start, which is after
     * the tow is sent; the app's request may take a while to arrive (a
     * slow first connection under the sanitizers), so the gap between the
     * two arrivals is no measure of it. */
    uint64_t t_sent = hc_time_mono_ns();
    send_tow("CAR-3");
    cr_assert_eq(hr_wait(rx, 2, 10000), 2);
    struct hr_request a, b;
    check_request(0, SECRET, "app", "CAR-3", 1, &a);
    check_request(1, SECRET, "sms", "CAR-3", 1, &b);
    cr_assert_geq(b.at_ns - t_sent, 400000000ull - EARLY_NS);
    cr_assert_lt(b.at_ns - a.at_ns, 1500000000ull);
    hr_request_free(&a);
    hr_request_free(&b);
}

Test(alarms, kill_9_with_a_message_undelivered_delivers_it_after_restart_under_its_id)
{
    set("%s", "thresholds.acme=35");
    set("%s", "push.retry_schedule=300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms");
    set("%s", "push.jitter_percent=0");
    channel("app", SECRET);
    hr_default(rx, 503);
    daemon_start(&d, setv);
    send_tow("CAR-4");
    cr_assert_geq(hr_wait(rx, 2, 10000), 2, "tried and retried");
    struct hr_request first;
    const char *id = check_request(0, SECRET, "app", "CAR-4", 1, &first);
    char alarm_id[64];
    snprintf(alarm_id, sizeof(alarm_id), "%s", id);
    daemon_kill(&d);
    unsigned before = hr_count(rx);
    hr_default(rx, 200);
    daemon_start(&d, setv);
    cr_assert_geq(hr_wait(rx, before + 1, 10000), before + 1, "delivered after the restart");
    struct hr_request r;
    check_request(before, SECRET, "app", "CAR-4", 1, &r);
    cr_assert_str_eq(r.id, first.id, "the same webhook-id");
    cr_assert_eq(r.status, 200);
    hr_request_free(&r);
    hr_request_free(&first);
    wait_stat("push.delivered", 1);
    cr_assert_eq(daemon_stat(&d, "notify.raised"), 0, "the alarm is not raised again");
    cr_assert_str_eq(alarm_state(alarm_id), "firing");
    cr_assert_eq(daemon_alarm_count(&d), 1);
}

Test(alarms, alarms_the_notifier_never_took_in_are_handed_over_at_start)
{
    set("%s", "thresholds.acme=35");
    daemon_start(&d, setv);             /* no channel: kept, sent nowhere */
    send_tow("CAR-5");
    wait_stat("notify.raised", 1);
    cr_assert_eq(daemon_stop(&d), 0);
    /* As if the process had died between the shard's commit and the
     * notifier's: the notifier's state is gone, the shard still has it. */
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s/outbox'", d.dir);
    cr_assert_eq(system(cmd), 0);
    channel("app", SECRET);
    daemon_start(&d, setv);
    cr_assert_eq(hr_wait(rx, 1, 10000), 1);
    check_request(0, SECRET, "app", "CAR-5", 1, NULL);
    cr_assert_eq(daemon_stat(&d, "notify.raised"), 1);
    cr_assert_eq(daemon_alarm_count(&d), 1, "alarms.log is not written twice");
}

Test(alarms, gone_disables_the_channel_and_says_so)
{
    set("%s", "thresholds.acme=35");
    channel("app", SECRET);
    hr_default(rx, 410);
    daemon_start(&d, setv);
    send_tow("CAR-6");
    cr_assert_eq(hr_wait(rx, 1, 10000), 1);
    wait_stat("push.disabled", 1);
    wait_stat("push.dead_now", 1);
    send_tow("CAR-7");
    wait_stat("notify.raised", 2);
    wait_stat("push.dead_now", 2);
    cr_assert_eq(hr_wait(rx, 2, 500), 1, "nothing more goes to a disabled channel");
}

/* The names of channel.list's answer, in order, comma-separated. */
static void channel_names(char *out, size_t cap)
{
    json_t *a = control("{\"cmd\":\"channel.list\"%s}", "");
    json_t *arr = json_object_get(a, "channels");
    char *txt = json_dumps(a, 0);
    cr_assert_null(strstr(txt, "whsec_"), "no secret is ever shown: %s", txt);
    free(txt);
    out[0] = '\0';
    for (size_t i = 0; i < json_array_size(arr); i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? "," : "",
                 json_string_value(json_object_get(json_array_get(arr, i), "name")));
    json_decref(a);
}

Test(alarms, channels_and_settings_change_live_and_outlive_a_restart)
{
    char names[128], url[256], req[600];
    set("%s", "thresholds.acme=35");
    channel("app", SECRET);
    set("%s", "channel.app.delay=300ms");   /* so the order shows */
    daemon_start(&d, setv);

    /* A new channel needs a secret: refused, nothing changed. */
    hr_url(rx, "/sms", url, sizeof(url));
    refused("{\"cmd\":\"channel.add\",\"name\":\"sms\",\"url\":\"%s\"}", url, "secret");
    refused("{\"cmd\":\"channel.add\",\"name\":\"sms\",\"priority\":\"%s\"}", "0", "");
    json_t *a;
    channel_names(names, sizeof(names));
    cr_assert_str_eq(names, "app");

    /* Added ahead of app. */
    snprintf(req, sizeof(req), "{\"cmd\":\"channel.add\",\"name\":\"sms\",\"url\":\"%s\","
             "\"secret\":\"%s\",\"priority\":1,\"delay\":\"0s\"}\n", url, SECRET);
    a = daemon_control(&d, req);
    cr_assert(json_is_true(json_object_get(a, "ok")), "%s",
              json_string_value(json_object_get(a, "error")));
    json_decref(a);
    channel_names(names, sizeof(names));
    cr_assert_str_eq(names, "sms,app");
    send_tow("CAR-8");
    cr_assert_eq(hr_wait(rx, 2, 10000), 2);
    check_request(0, SECRET, "sms", "CAR-8", 1, NULL);
    check_request(1, SECRET, "app", "CAR-8", 1, NULL);

    /* app goes; the snooze changes. */
    a = control("{\"cmd\":\"channel.remove\",\"name\":\"%s\"}", "app");
    cr_assert(json_is_true(json_object_get(a, "ok")));
    json_decref(a);
    refused("{\"cmd\":\"channel.remove\",\"name\":\"%s\"}", "app", "");
    a = control("{\"cmd\":\"alarm.settings\",\"snooze\":\"%s\"}", "45m");
    cr_assert(json_is_true(json_object_get(a, "ok")));
    json_decref(a);

    /* The same configuration again: the live changes win. */
    cr_assert_eq(daemon_stop(&d), 0);
    daemon_start(&d, setv);
    channel_names(names, sizeof(names));
    cr_assert_str_eq(names, "sms", "app stays removed, sms stays added");
    a = control("{\"cmd\":\"alarm.settings\"%s}", "");
    cr_assert_eq(json_integer_value(json_object_get(a, "snooze_ms")), 45 * 60000);
    json_decref(a);
    send_tow("CAR-9");
    cr_assert_eq(hr_wait(rx, 3, 10000), 3);
    check_request(2, SECRET, "sms", "CAR-9", 1, NULL);
    cr_assert_eq(hr_wait(rx, 4, 500), 3, "nothing for app");
}

Test(alarms, a_refused_message_is_a_dead_letter_that_can_be_listed_and_replayed)
{
    set("%s", "thresholds.acme=35");
    channel("app", SECRET);
    hr_default(rx, 400);            /* not retried: straight to the dead letters */
    daemon_start(&d, setv);
    send_tow("CAR-10");
    cr_assert_eq(hr_wait(rx, 1, 10000), 1);
    wait_stat("push.dead_now", 1);
    json_t *a = control("{\"cmd\":\"deadletter.list\"%s}", "");
    json_t *dl = json_array_get(json_object_get(a, "deadletters"), 0);
    cr_assert(json_is_object(dl), "one dead letter");
    cr_assert_str_eq(json_string_value(json_object_get(dl, "last_error")), "HTTP 400");
    cr_assert_str_eq(json_string_value(json_object_get(dl, "channel")), "app");
    char seq[32], id[64];
    snprintf(seq, sizeof(seq), "%lld", (long long)json_integer_value(json_object_get(dl, "seq")));
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(dl, "id")));
    json_decref(a);
    refused("{\"cmd\":\"deadletter.replay\",\"seq\":%s}", "999999", "");
    hr_default(rx, 200);
    a = control("{\"cmd\":\"deadletter.replay\",\"seq\":%s}", seq);
    cr_assert_eq(json_integer_value(json_object_get(a, "replayed")), 1);
    json_decref(a);
    cr_assert_eq(hr_wait(rx, 2, 10000), 2);
    struct hr_request r;
    check_request(1, SECRET, "app", "CAR-10", 1, &r);
    cr_assert_str_eq(r.id, id, "replayed under the same webhook-id");
    hr_request_free(&r);
    wait_stat("push.delivered", 1);
    cr_assert_eq(daemon_stat(&d, "push.dead_now"), 0);
}

static size_t channel_count(void)
{
    json_t *a = daemon_control(&d, "{\"cmd\":\"channel.list\"}\n");
    size_t n = json_array_size(json_object_get(a, "channels"));
    json_decref(a);
    return n;
}

Test(alarms, a_channel_refused_for_want_of_endpoint_slots_is_not_kept)
{
    char req[400];
    daemon_start(&d, NULL);
    for (int i = 0; i < HC_CONFIG_CHANNELS_MAX; i++) {
        snprintf(req, sizeof(req), "{\"cmd\":\"channel.add\",\"name\":\"c%d\",\"url\":"
                 "\"http://127.0.0.1:9/c%d\",\"secret\":\"%s\"}\n", i, i, SECRET);
        json_t *a = daemon_control(&d, req);
        cr_assert(json_is_true(json_object_get(a, "ok")), "%s",
                  json_string_value(json_object_get(a, "error")));
        json_decref(a);
    }
    json_t *a = control("{\"cmd\":\"channel.remove\",\"name\":\"%s\"}", "c0");
    cr_assert(json_is_true(json_object_get(a, "ok")));
    json_decref(a);
    /* 15 channels, but all 16 endpoint slots of this run are taken. */
    snprintf(req, sizeof(req), "{\"cmd\":\"channel.add\",\"name\":\"late\",\"url\":"
             "\"http://127.0.0.1:9/late\",\"secret\":\"%s\"}", SECRET);
    refused("%s", req, "nothing changed");
    cr_assert_eq(channel_count(), HC_CONFIG_CHANNELS_MAX - 1);
    cr_assert_eq(daemon_stop(&d), 0);
    daemon_start(&d, NULL);
    cr_assert_eq(channel_count(), HC_CONFIG_CHANNELS_MAX - 1, "the refused channel was not kept");
}
