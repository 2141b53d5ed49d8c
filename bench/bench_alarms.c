/*
 * bench_alarms.c — alarms delivered per second through the notifier and
 * the pusher (the alarm's round committed with its message in one durable
 * outbox transaction, then a signed POST over a kept-alive connection) to
 * a loopback HTTP receiver, and the latency from the alarm being raised
 * (handed to the notifier, as a worker does once the alarm is durable in
 * its shard) to the receiver taking the webhook.  Against the naive method
 * in the same run: per alarm, fsync a record, then one blocking request on
 * a fresh handle.
 */
#include <curl/curl.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tests/httprecv.h"
#include "benchutil.h"
#include "hubcap/log.h"
#include "hubcap/notify.h"
#include "hubcap/push.h"
#include "hubcap/timefmt.h"
#include "hubcap/webhook.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static void body_of(unsigned i, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "{\"type\":\"vehicle.moved\",\"timestamp\":\"2026-11-22T03:04:05Z\",\"data\":"
             "{\"alarm_id\":\"0-%u\",\"vid\":\"CAR-%06u\",\"maker\":\"acme\",\"state\":"
             "\"firing\",\"threshold_m\":35.0,\"exceeding_pairs\":28,\"max_distance_m\":412.7,"
             "\"parked\":{\"lat\":52.52,\"lon\":13.405,\"ts\":\"2026-11-22T01:00:00.000Z\"},"
             "\"latest\":{\"lat\":52.5227,\"lon\":13.405,\"ts\":\"2026-11-22T03:04:00.000Z\"}}}",
             i, i);
}

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

/* Per alarm: a durable record, then a blocking POST on a fresh handle. */
static double naive(const char *url, unsigned n)
{
    char path[] = "/tmp/hubcap-bench-alarms-naive-XXXXXX", body[600];
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    uint64_t t0 = hc_time_mono_ns();
    for (unsigned i = 0; i < n; i++) {
        body_of(i + 1, body, sizeof(body));
        if (write(fd, body, strlen(body)) < 0 || fdatasync(fd) < 0)
            break;
        CURL *c = curl_easy_init();
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_perform(c);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
    }
    double rate = n / ((double)(hc_time_mono_ns() - t0) / 1e9);
    close(fd);
    unlink(path);
    return rate;
}

/* The channel: a fresh receiver (it keeps HR_MAX_REQ requests). */
static struct hr_server *receiver(struct hc_push_endpoint *ep)
{
    struct hr_server *rx = hr_start(0);
    *ep = (struct hc_push_endpoint){ .name = "app", .n_secrets = 1 };
    if (rx)
        hr_url(rx, "/hook", ep->url, sizeof(ep->url));
    hc_webhook_secret_parse(SECRET, &ep->secrets[0]);
    return rx;
}

/* One fresh receiver, outbox and notifier: n alarms raised pace_us apart
 * (0: all at once).  Fills alarms delivered per second and
 * raised-to-received latencies (ms), p50 and p99. */
static int run(unsigned n, unsigned pace_us, double *rate, double *p50, double *p99)
{
    char dir[] = "/tmp/hubcap-bench-alarms-XXXXXX", body[600], id[32];
    struct hc_push_endpoint ep_, *ep = &ep_;
    struct hr_server *rx = receiver(ep);
    if (!rx || n > HR_MAX_REQ || !mkdtemp(dir))
        return -1;
    struct hc_push_options po = { .dir = dir, .endpoints = ep, .n_endpoints = 1,
                                  .jitter = -1 };
    struct hc_notify_channel ch = { ep->name, 0 };
    struct hc_notify_options no = { .channels = &ch, .n_channels = 1, .shards = 1 };
    struct hc_push *p;
    struct hc_notify *nt;
    if (hc_push_open(&p, &po) < 0)
        return -1;
    no.push = p;
    if (hc_notify_open(&nt, &no) < 0 || hc_push_start(p) < 0 || hc_notify_start(nt) < 0)
        return -1;
    uint64_t *raised = calloc(n + 1, sizeof(*raised));
    double *lat = calloc(n, sizeof(*lat));
    unsigned base = hr_count(rx);
    uint64_t t0 = hc_time_mono_ns();
    for (unsigned i = 1; i <= n; i++) {
        body_of(i, body, sizeof(body));
        snprintf(id, sizeof(id), "0-%u", i);
        raised[i] = hc_time_mono_ns();
        if (hc_notify_raise(nt, 0, i, id, body, strlen(body)) < 0)
            return -1;
        if (pace_us)
            usleep(pace_us);
    }
    if (hr_wait(rx, base + n, 120000) < base + n) {
        fprintf(stderr, "bench_alarms: only %u of %u alarms arrived\n", hr_count(rx) - base, n);
        return -1;
    }
    uint64_t t1 = hc_time_mono_ns();
    unsigned k = 0;
    for (unsigned i = base; i < base + n; i++) {
        struct hr_request r;
        if (hr_get(rx, i, &r) < 0)
            continue;
        const char *a = strstr(r.body, "\"alarm_id\":\"0-");
        unsigned long x = a ? strtoul(a + 14, NULL, 10) : 0;
        if (x >= 1 && x <= n)
            lat[k++] = (double)(r.at_ns - raised[x]) / 1e6;
        hr_request_free(&r);
    }
    *rate = n / ((double)(t1 - t0) / 1e9);
    *p50 = k ? bench_median(lat, (int)k) : 0;
    *p99 = k ? lat[(size_t)(0.99 * (k - 1))] : 0;  /* sorted by the median */
    hc_notify_close(nt);
    hc_push_close(p);
    hr_free(rx);
    free(raised);
    free(lat);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 && k == n ? 0 : -1;
}

int main(int argc, char **argv)
{
    unsigned n = 4000, rounds = 3, paced = 1000, naive_n = 400;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            n = 400;
            paced = 100;
            naive_n = 50;
            rounds = 1;
        } else {
            printf("usage: bench_alarms [--quick]\n\n"
                   "Alarms delivered per second through hubcap's notifier and pusher to a\n"
                   "loopback receiver, against a durable record plus one blocking request\n"
                   "per alarm; raised-to-received latency p50/p99 for a burst and at 200\n"
                   "alarms/s.  --quick: small sizes.\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }
    hc_log_set_level(HC_LOG_WARN);     /* not a line per alarm raised */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct hc_push_endpoint ep;
    struct hr_server *rx = receiver(&ep);
    if (!rx)
        return 1;

    printf("# command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n# burst: %u alarms raised at once (a storm of tows), one channel, a"
           " single-threaded loopback receiver (tests/httprecv.c); paced: %u alarms 5 ms"
           " apart; %u rounds, median; latency = alarm handed to the notifier -> webhook"
           " taken by the receiver; naive: %u alarms, each an fdatasync'd record and a"
           " blocking request on a fresh handle\n", n, paced, rounds, naive_n);
    double rate[8], p50[8], p99[8], base[8], prate[8], pp50[8], pp99[8];
    for (unsigned r = 0; r < rounds; r++) {
        if (run(n, 0, &rate[r], &p50[r], &p99[r]) < 0 ||
            run(paced, 5000, &prate[r], &pp50[r], &pp99[r]) < 0) {
            fprintf(stderr, "bench_alarms: round %u failed\n", r + 1);
            return 1;
        }
        base[r] = naive(ep.url, naive_n);
        printf("# round %u: burst %.0f alarms/s (p50 %.1f ms, p99 %.1f ms); paced p50 %.2f ms,"
               " p99 %.2f ms; naive %.0f alarms/s\n", r + 1, rate[r], p50[r], p99[r], pp50[r],
               pp99[r], base[r]);
    }
    double mr = bench_median(rate, (int)rounds), mb = bench_median(base, (int)rounds);
    printf("BENCH alarms_delivered_per_s %.0f alarms/s\n", mr);
    printf("BENCH alarms_burst_latency_p50_ms %.1f ms\n", bench_median(p50, (int)rounds));
    printf("BENCH alarms_burst_latency_p99_ms %.1f ms\n", bench_median(p99, (int)rounds));
    printf("BENCH alarms_paced_latency_p50_ms %.2f ms\n", bench_median(pp50, (int)rounds));
    printf("BENCH alarms_paced_latency_p99_ms %.2f ms\n", bench_median(pp99, (int)rounds));
    printf("BENCH naive_alarms_per_s %.0f alarms/s\n", mb);
    printf("BENCH alarms_vs_naive_ratio %.1f x\n", mr / mb);
    hr_free(rx);
    curl_global_cleanup();
    return 0;
}
