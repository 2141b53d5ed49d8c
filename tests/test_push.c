/*
 * test_push.c — the outbox and pusher against real HTTP receivers on
 * loopback (tests/httprecv.c, parsed with http-parser), with real LMDB
 * files in a temporary directory.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "httprecv.h"
#include "hubcap/push.h"
#include "hubcap/store.h"
#include "hubcap/timefmt.h"
#include "hubcap/webhook.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SECRET2 "whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24h"

static char dir[64];
static struct hr_server *rx;
static struct hc_push *push;
static struct hc_push_endpoint ep;
static struct hc_push_options opt;
static uint32_t fast[] = { 50, 100, 150 };

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/hubcap-push-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    rx = hr_start(0);
    cr_assert_not_null(rx);
    memset(&ep, 0, sizeof(ep));
    snprintf(ep.name, sizeof(ep.name), "sms");
    hr_url(rx, "/hook", ep.url, sizeof(ep.url));
    cr_assert_eq(hc_webhook_secret_parse(SECRET, &ep.secrets[0]), 0);
    ep.n_secrets = 1;
    memset(&opt, 0, sizeof(opt));
    opt.dir = dir;
    opt.endpoints = &ep;
    opt.n_endpoints = 1;
    opt.retry_ms = fast;
    opt.n_retry = 3;
    opt.jitter = 0;
    push = NULL;
}

static void teardown(void)
{
    hc_push_close(push);
    hr_free(rx);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static void open_push(void)
{
    cr_assert_eq(hc_push_open(&push, &opt), 0);
    cr_assert_eq(hc_push_start(push), 0);
}

static struct hc_push_msg submit(const char *body)
{
    struct hc_push_msg m = { "vehicle.moved", "sms", body, strlen(body), "", 0 };
    cr_assert_eq(hc_push_submit(push, &m, 1), 0);
    return m;
}

static struct hc_push_stats stats(void)
{
    struct hc_push_stats st;
    cr_assert_eq(hc_push_stats(push, &st), 0);
    return st;
}

/* Wait until the outbox has `pending` messages and `dead` dead letters. */
static void wait_outbox(uint64_t pending, uint64_t dead, int timeout_ms)
{
    struct hc_push_stats st;
    for (int t = 0; t < timeout_ms; t += 10) {
        st = stats();
        if (st.pending == pending && st.dead_now == dead)
            return;
        usleep(10000);
    }
    st = stats();
    cr_assert_fail("outbox: %llu pending, %llu dead; expected %llu and %llu",
                   (unsigned long long)st.pending, (unsigned long long)st.dead_now,
                   (unsigned long long)pending, (unsigned long long)dead);
}

static struct hr_request request(unsigned i)
{
    struct hr_request r;
    cr_assert_eq(hr_get(rx, i, &r), 0, "request %u was received", i);
    return r;
}

struct seen {
    unsigned n;
    char id[HC_WEBHOOK_ID_LEN];
    char error[HC_PUSH_ERROR_MAX];
    uint64_t seq;
    unsigned attempts;
};

static int collect(void *ctx, const struct hc_push_entry *e)
{
    struct seen *s = ctx;
    s->n++;
    snprintf(s->id, sizeof(s->id), "%s", e->id);
    snprintf(s->error, sizeof(s->error), "%s", e->last_error);
    s->seq = e->seq;
    s->attempts = e->attempts;
    return 0;
}

TestSuite(push, .init = setup, .fini = teardown, .timeout = 60);

Test(push, delivers_a_signed_verifiable_request)
{
    open_push();
    const char *body = "{\"type\":\"vehicle.moved\",\"data\":{\"vid\":\"CAR-1\"}}";
    struct hc_push_msg m = submit(body);
    cr_assert_eq(strncmp(m.id, "msg_", 4), 0);
    cr_assert_eq(hr_wait(rx, 1, 5000), 1);
    struct hr_request r = request(0);
    cr_assert_str_eq(r.method, "POST");
    cr_assert_str_eq(r.path, "/hook");
    cr_assert_str_eq(r.id, m.id);
    cr_assert_str_eq(r.content_type, "application/json");
    cr_assert_eq(r.body_len, strlen(body));
    cr_assert_eq(memcmp(r.body, body, r.body_len), 0);
    int64_t ts = strtoll(r.timestamp, NULL, 10);
    int64_t now = hc_time_now_ms() / 1000;
    cr_assert_eq(hc_webhook_verify(&ep.secrets[0], r.id, ts, r.body, r.body_len, r.signature,
                                   now, 60), 1, "signature '%s' verifies", r.signature);
    struct hc_webhook_secret other;
    cr_assert_eq(hc_webhook_secret_parse(SECRET2, &other), 0);
    cr_assert_eq(hc_webhook_verify(&other, r.id, ts, r.body, r.body_len, r.signature, now, 60),
                 0, "another secret does not verify it");
    hr_request_free(&r);
    wait_outbox(0, 0, 5000);
    cr_assert_eq(stats().delivered, 1);
}

Test(push, two_secrets_sign_at_once_during_a_rotation)
{
    cr_assert_eq(hc_webhook_secret_parse(SECRET2, &ep.secrets[1]), 0);
    ep.n_secrets = 2;
    open_push();
    submit("{\"rotating\":true}");
    cr_assert_eq(hr_wait(rx, 1, 5000), 1);
    struct hr_request r = request(0);
    int64_t ts = strtoll(r.timestamp, NULL, 10), now = hc_time_now_ms() / 1000;
    cr_assert_not_null(strchr(r.signature, ' '), "two signatures: '%s'", r.signature);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(hc_webhook_verify(&ep.secrets[i], r.id, ts, r.body, r.body_len,
                                       r.signature, now, 60), 1, "secret %d verifies", i);
    hr_request_free(&r);
}

Test(push, server_errors_are_retried_under_the_same_id)
{
    hr_script(rx, 500, 2, NULL);
    open_push();
    struct hc_push_msg m = submit("{\"n\":1}");
    cr_assert_eq(hr_wait(rx, 3, 5000), 3);
    for (unsigned i = 0; i < 3; i++) {
        struct hr_request r = request(i);
        cr_assert_str_eq(r.id, m.id, "attempt %u keeps the webhook-id", i + 1);
        cr_assert_eq(r.status, i < 2 ? 500 : 200);
        hr_request_free(&r);
    }
    wait_outbox(0, 0, 5000);
    struct hc_push_stats st = stats();
    cr_assert_eq(st.delivered, 1);
    cr_assert_eq(st.retries, 2);
    cr_assert_eq(st.attempts, 3);
    usleep(300000);
    cr_assert_eq(hr_count(rx), 3, "nothing is sent after the 200");
}

Test(push, an_endpoint_that_is_down_gets_it_when_it_comes_back)
{
    uint32_t slow[] = { 100, 100, 100, 100, 100, 100, 100, 100, 100, 100 };
    opt.retry_ms = slow;
    opt.n_retry = 10;
    hr_stop(rx);
    open_push();
    struct hc_push_msg m = submit("{\"down\":true}");
    usleep(350000);
    struct hc_push_stats st = stats();
    cr_assert_geq(st.retries, 2, "connection refused is retried (%llu retries)",
                  (unsigned long long)st.retries);
    cr_assert_eq(st.pending, 1);
    struct seen s = { 0 };
    cr_assert_eq(hc_push_list(push, false, collect, &s), 0);
    cr_assert_eq(s.n, 1);
    cr_assert_neq(s.error[0], '\0', "the outbox keeps the last error");
    cr_assert_eq(hr_restart(rx), 0);
    cr_assert_eq(hr_wait(rx, 1, 5000), 1);
    struct hr_request r = request(0);
    cr_assert_str_eq(r.id, m.id);
    hr_request_free(&r);
    wait_outbox(0, 0, 5000);
}

Test(push, gone_disables_the_endpoint_and_keeps_its_messages_as_dead_letters)
{
    hr_default(rx, 410);
    open_push();
    struct hc_push_msg m = submit("{\"gone\":1}");
    wait_outbox(0, 1, 5000);
    cr_assert(hc_push_endpoint_disabled(push, "sms"));
    cr_assert_eq(stats().disabled, 1);
    struct seen s = { 0 };
    cr_assert_eq(hc_push_list(push, true, collect, &s), 0);
    cr_assert_eq(s.n, 1);
    cr_assert_str_eq(s.id, m.id);
    cr_assert_not_null(strstr(s.error, "410"), "error says why: '%s'", s.error);

    /* Later messages go straight to the dead letters: nothing is sent. */
    submit("{\"gone\":2}");
    wait_outbox(0, 2, 5000);
    usleep(200000);
    cr_assert_eq(hr_count(rx), 1);

    /* Disabled survives a restart; enabling and replaying delivers both,
     * under their own ids. */
    hc_push_close(push);
    push = NULL;
    open_push();
    cr_assert(hc_push_endpoint_disabled(push, "sms"));
    hr_default(rx, 200);
    cr_assert_eq(hc_push_endpoint_enable(push, "sms"), 0);
    cr_assert_not(hc_push_endpoint_disabled(push, "sms"));
    cr_assert_eq(hc_push_replay(push, 0), 2);
    cr_assert_eq(hr_wait(rx, 3, 5000), 3);
    wait_outbox(0, 0, 5000);
    int found = 0;
    for (unsigned i = 1; i < 3; i++) {
        struct hr_request r = request(i);
        found += strcmp(r.id, m.id) == 0;
        hr_request_free(&r);
    }
    cr_assert_eq(found, 1, "the replayed message keeps its webhook-id");
    cr_assert_eq(stats().replayed, 2);
}

Test(push, an_exhausted_schedule_ends_in_the_dead_letters_and_replay_delivers)
{
    hr_default(rx, 503);
    open_push();
    struct hc_push_msg m = submit("{\"tired\":1}");
    wait_outbox(0, 1, 5000);
    cr_assert_eq(hr_count(rx), 4, "one attempt and three retries");
    struct seen s = { 0 };
    cr_assert_eq(hc_push_list(push, true, collect, &s), 0);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.attempts, 4);
    cr_assert_not_null(strstr(s.error, "gave up after 4 attempts: HTTP 503"), "'%s'", s.error);
    cr_assert_eq(hc_push_replay(push, s.seq + 1000), -ENOENT);
    hr_default(rx, 200);
    cr_assert_eq(hc_push_replay(push, s.seq), 1);
    cr_assert_eq(hr_wait(rx, 5, 5000), 5);
    struct hr_request r = request(4);
    cr_assert_str_eq(r.id, m.id);
    cr_assert_eq(r.status, 200);
    hr_request_free(&r);
    wait_outbox(0, 0, 5000);
}

Test(push, other_client_errors_are_not_retried)
{
    hr_default(rx, 400);
    open_push();
    submit("{\"bad\":1}");
    wait_outbox(0, 1, 5000);
    usleep(300000);
    cr_assert_eq(hr_count(rx), 1);
    struct seen s = { 0 };
    cr_assert_eq(hc_push_list(push, true, collect, &s), 0);
    cr_assert_str_eq(s.error, "HTTP 400");
}

Test(push, retry_after_is_honoured)
{
    hr_script(rx, 429, 1, "Retry-After: 1");
    open_push();
    submit("{\"later\":1}");
    cr_assert_eq(hr_wait(rx, 2, 5000), 2);
    struct hr_request a = request(0), b = request(1);
    double gap = (double)(b.at_ns - a.at_ns) / 1e9;
    cr_assert_geq(gap, 0.9, "second attempt %.3f s after the 429 (schedule says 0.05 s)", gap);
    cr_assert_eq(b.status, 200);
    hr_request_free(&a);
    hr_request_free(&b);
}

Test(push, a_retry_schedule_survives_a_restart)
{
    uint32_t slow[] = { 60000 };
    opt.retry_ms = slow;
    opt.n_retry = 1;
    hr_stop(rx);
    open_push();
    submit("{\"a\":1}");
    for (int t = 0; t < 500 && stats().retries == 0; t++)
        usleep(10000);
    cr_assert_eq(stats().retries, 1, "the refused attempt is retried in a minute");
    hc_push_close(push);
    push = NULL;

    /* Back up, reopened: the retry is still a minute away. */
    cr_assert_eq(hr_restart(rx), 0);
    open_push();
    usleep(400000);
    cr_assert_eq(hr_count(rx), 0, "nothing before the stored retry time");
    struct seen s = { 0 };
    cr_assert_eq(hc_push_list(push, false, collect, &s), 0);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.attempts, 1);
}

Test(push, every_message_in_the_outbox_at_open_is_delivered_with_its_id)
{
    hr_stop(rx);
    cr_assert_eq(hc_push_open(&push, &opt), 0);     /* not started: nothing is sent */
    struct hc_push_msg m[3] = {
        { "vehicle.moved", "sms", "{\"a\":1}", 7, "", 0 },
        { "vehicle.moved", "sms", "{\"b\":2}", 7, "", 0 },
        { "vehicle.moved", "sms", "{\"c\":3}", 7, "", 0 },
    };
    cr_assert_eq(hc_push_submit(push, m, 3), 0);
    hc_push_close(push);
    push = NULL;
    cr_assert_eq(hr_restart(rx), 0);
    open_push();
    cr_assert_eq(hr_wait(rx, 3, 5000), 3);
    wait_outbox(0, 0, 5000);
    for (unsigned i = 0; i < 3; i++) {
        struct hr_request r = request(i);
        int match = 0;
        for (int j = 0; j < 3; j++)
            match += strcmp(r.id, m[j].id) == 0 && r.body_len == 7 &&
                     memcmp(r.body, m[j].body, 7) == 0;
        cr_assert_eq(match, 1, "request %u is one of the submitted messages, same id", i);
        hr_request_free(&r);
    }
}

Test(push, one_connection_is_kept_alive)
{
    opt.max_inflight_endpoint = 1;
    open_push();
    for (int i = 0; i < 5; i++) {
        submit("{\"k\":1}");
        cr_assert_eq(hr_wait(rx, (unsigned)i + 1, 5000), (unsigned)i + 1);
    }
    for (unsigned i = 0; i < 5; i++) {
        struct hr_request r = request(i);
        cr_assert_eq(r.conn, 1, "request %u on connection %u", i, r.conn);
        hr_request_free(&r);
    }
}

Test(push, unknown_endpoints_and_bad_topics_are_refused_whole)
{
    open_push();
    struct hc_push_msg m[2] = {
        { "vehicle.moved", "sms", "{}", 2, "", 0 },
        { "vehicle.moved", "pager", "{}", 2, "", 0 },
    };
    cr_assert_eq(hc_push_submit(push, m, 2), -ENOENT);
    m[1].endpoint = "sms";
    m[1].topic = "";
    cr_assert_eq(hc_push_submit(push, m, 2), -EINVAL);
    struct hc_push_stats st = stats();
    cr_assert_eq(st.pending + st.dead_now + st.submitted, 0, "nothing was written");
    usleep(100000);
    cr_assert_eq(hr_count(rx), 0);
}

Test(push, sequence_numbers_are_never_used_twice_even_after_the_outbox_empties)
{
    open_push();
    struct hc_push_msg a = submit("{\"n\":1}");
    cr_assert_eq(hr_wait(rx, 1, 5000), 1);
    wait_outbox(0, 0, 5000);
    hc_push_close(push);
    push = NULL;
    open_push();
    struct hc_push_msg b = submit("{\"n\":2}");
    cr_assert_gt(b.seq, a.seq, "seq %llu after %llu", (unsigned long long)b.seq,
                 (unsigned long long)a.seq);
}

struct cancel_ctx {
    struct hc_push *p;
    uint64_t seq;
    int rc;
    const char *key;
    MDB_dbi dbi;
};

/* A hook that withdraws one message and writes a key of its own. */
static int withdraw_and_note(void *ctx, MDB_txn *txn)
{
    struct cancel_ctx *c = ctx;
    c->rc = hc_push_cancel(c->p, txn, c->seq);
    MDB_val k = { strlen(c->key), (void *)c->key }, v = { 1, (void *)"x" };
    return c->rc < 0 ? c->rc : hc_store_mdb_error(mdb_put(txn, c->dbi, &k, &v, 0));
}

static int has_key(void *ctx, MDB_txn *txn)
{
    struct cancel_ctx *c = ctx;
    MDB_val k = { strlen(c->key), (void *)c->key }, v;
    return mdb_get(txn, c->dbi, &k, &v) == 0 ? 1 : 0;
}

static int failing_hook(void *ctx, MDB_txn *txn)
{
    withdraw_and_note(ctx, txn);
    return -EIO;
}

Test(push, a_hook_commits_with_the_messages_and_withdraws_waiting_ones)
{
    hr_default(rx, 503);            /* everything waits for its retry */
    opt.retry_ms = (uint32_t[]){ 60000 };
    opt.n_retry = 1;
    open_push();
    struct cancel_ctx c = { push, 0, 0, "mine", 0 };
    cr_assert_eq(hc_push_db(push, "mine", &c.dbi), 0);
    struct hc_push_msg a = submit("{\"n\":1}");
    cr_assert_eq(hr_wait(rx, 1, 5000), 1);
    wait_outbox(1, 0, 5000);

    /* A failing hook: nothing of the transaction stays, the message neither. */
    c.seq = a.seq;
    struct hc_push_msg b = { "vehicle.moved", "sms", "{\"n\":2}", 7, "", 0 };
    cr_assert_eq(hc_push_submit_with(push, &b, 1, failing_hook, &c), -EIO);
    cr_assert_eq(hc_push_read(push, has_key, &c), 0, "the hook's write was rolled back");
    wait_outbox(1, 0, 1000);
    cr_assert_eq(stats().cancelled, 0);

    /* A good one: b is queued, a withdrawn, the key written, all at once. */
    cr_assert_eq(hc_push_submit_with(push, &b, 1, withdraw_and_note, &c), 0);
    cr_assert_eq(c.rc, 1, "a was still waiting");
    cr_assert_eq(hc_push_read(push, has_key, &c), 1);
    cr_assert_eq(hr_wait(rx, 2, 5000), 2);
    struct hr_request r = request(1);
    cr_assert_str_eq(r.id, b.id);
    hr_request_free(&r);
    wait_outbox(1, 0, 5000);
    struct seen s = { 0 };
    cr_assert_eq(hc_push_list(push, false, collect, &s), 0);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.seq, b.seq, "only b is left");
    cr_assert_eq(stats().cancelled, 1);
    /* Withdrawing what is gone says so. */
    cr_assert_eq(hc_push_submit_with(push, NULL, 0, withdraw_and_note, &c), 0);
    cr_assert_eq(c.rc, 0);
}
