/*
 * bench_push.c — webhook deliveries per second through the outbox and
 * pusher (durable submit in batches, signed POSTs over kept-alive
 * connections, up to 16 in flight) to a loopback HTTP receiver, against
 * the naive method in the same run: one blocking libcurl request per
 * message on a fresh handle, one at a time.  Also the latency from submit
 * to the receiver's 2xx, p50 and p99, over the recent deliveries.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tests/httprecv.h"
#include "benchutil.h"
#include "hubcap/push.h"
#include "hubcap/timefmt.h"
#include "hubcap/webhook.h"

#define BODY "{\"type\":\"vehicle.moved\",\"timestamp\":\"2026-11-22T03:04:05Z\",\"data\":" \
             "{\"alarm_id\":\"0-17\",\"vid\":\"CAR-000017\",\"maker\":\"acme\",\"state\":" \
             "\"firing\",\"threshold_m\":35.0,\"exceeding_pairs\":28,\"max_distance_m\":" \
             "412.7,\"channel\":\"sms\",\"attempt\":1}}"

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

static double naive(const char *url, unsigned n)
{
    uint64_t t0 = hc_time_mono_ns();
    for (unsigned i = 0; i < n; i++) {
        CURL *c = curl_easy_init();
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, BODY);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_perform(c);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
    }
    return n / ((double)(hc_time_mono_ns() - t0) / 1e9);
}

/* One fresh outbox: n messages, batch per submit, pace_us between
 * submits (0: as fast as possible).  Fills deliveries/s and latencies. */
static int run(const struct hc_push_endpoint *ep, unsigned n, unsigned batch, unsigned pace_us,
               double *rate, double *p50, double *p99)
{
    char dir[] = "/tmp/hubcap-bench-push-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    struct hc_push_options o = { .dir = dir, .endpoints = ep, .n_endpoints = 1, .jitter = -1 };
    struct hc_push *p;
    if (hc_push_open(&p, &o) < 0 || hc_push_start(p) < 0)
        return -1;
    struct hc_push_msg *m = calloc(batch, sizeof(*m));
    uint64_t t0 = hc_time_mono_ns();
    for (unsigned s = 0; s < n; s += batch) {
        for (unsigned i = 0; i < batch; i++)
            m[i] = (struct hc_push_msg){ "vehicle.moved", "sms", BODY, strlen(BODY), "", 0 };
        if (hc_push_submit(p, m, batch) < 0)
            return -1;
        if (pace_us)
            usleep(pace_us);
    }
    struct hc_push_stats st;
    do {
        usleep(1000);
        hc_push_stats(p, &st);
    } while (st.delivered < n);
    *rate = n / ((double)(hc_time_mono_ns() - t0) / 1e9);
    *p50 = st.latency_p50_ms;
    *p99 = st.latency_p99_ms;
    hc_push_close(p);
    free(m);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    unsigned n = 20000, batch = 100, rounds = 3, paced = 2000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            n = 2000;
            paced = 200;
            rounds = 1;
        } else {
            printf("usage: bench_push [--quick]\n\n"
                   "Webhook deliveries/s through hubcap's outbox and pusher to a loopback\n"
                   "receiver, against one blocking request per message; submit-to-2xx\n"
                   "latency p50/p99 when flooded and at 1,000 messages/s.  --quick: small\n"
                   "sizes.\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct hr_server *rx = hr_start(0);
    if (!rx)
        return 1;
    struct hc_push_endpoint ep = { .name = "sms", .n_secrets = 1 };
    hr_url(rx, "/hook", ep.url, sizeof(ep.url));
    hc_webhook_secret_parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &ep.secrets[0]);

    printf("# command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n# flood: %u messages of %zu bytes a round, submitted %u per durable transaction"
           " as fast as possible, to a single-threaded loopback receiver (tests/httprecv.c);"
           " paced: %u messages one per durable transaction, 1 ms apart; %u rounds, median;"
           " naive: %u blocking requests on fresh handles, one at a time\n", n, strlen(BODY),
           batch, paced, rounds, n / 10);
    double rate[8], p50[8], p99[8], base[8], prate[8], pp50[8], pp99[8];
    for (unsigned r = 0; r < rounds; r++) {
        if (run(&ep, n, batch, 0, &rate[r], &p50[r], &p99[r]) < 0 ||
            run(&ep, paced, 1, 1000, &prate[r], &pp50[r], &pp99[r]) < 0)
            return 1;
        base[r] = naive(ep.url, n / 10);
        printf("# round %u: flood %.0f deliveries/s (p50 %.1f ms, p99 %.1f ms); paced p50 %.2f ms,"
               " p99 %.2f ms; naive %.0f/s\n", r + 1, rate[r], p50[r], p99[r], pp50[r], pp99[r],
               base[r]);
    }
    double mr = bench_median(rate, (int)rounds), mb = bench_median(base, (int)rounds);
    printf("BENCH push_deliveries_per_s %.0f deliveries/s\n", mr);
    printf("BENCH push_flood_latency_p50_ms %.1f ms\n", bench_median(p50, (int)rounds));
    printf("BENCH push_flood_latency_p99_ms %.1f ms\n", bench_median(p99, (int)rounds));
    printf("BENCH push_paced_latency_p50_ms %.2f ms\n", bench_median(pp50, (int)rounds));
    printf("BENCH push_paced_latency_p99_ms %.2f ms\n", bench_median(pp99, (int)rounds));
    printf("BENCH naive_deliveries_per_s %.0f deliveries/s\n", mb);
    printf("BENCH push_vs_naive_ratio %.1f x\n", mr / mb);
    hr_free(rx);
    curl_global_cleanup();
    return 0;
}
