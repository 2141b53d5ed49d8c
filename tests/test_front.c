/*
 * test_front.c — the front thread alone, with this test as its worker: a
 * real io_uring front on loopback, a ring the test drains by hand, so
 * backpressure can be held as long as a test needs.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devref.h"
#include "hubcap/config.h"
#include "hubcap/front.h"
#include "hubcap/log.h"
#include "hubcap/ring.h"

static struct hc_config cfg;
static struct hc_ring ring;
static struct hc_wake wake;
static struct hc_front *front;
static int done;

static void setup_with(const char *extra)
{
    char err[256];
    const char *const sets[] = { "msgpack.port=0", "jt808.port=0", "teltonika.port=0",
                                 "core.log_level=warn", extra, NULL };
    hc_config_defaults(&cfg);
    for (int i = 0; sets[i]; i++)
        cr_assert_eq(hc_config_set(&cfg, sets[i], err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(hc_config_finish(&cfg, err, sizeof(err)), 0, "%s", err);
    hc_log_set_level(cfg.log_level);
    cr_assert_eq(hc_ring_init(&ring, 16), 0);
    cr_assert_eq(hc_wake_init(&wake), 0);
    static struct hc_ring *rings[1];
    static struct hc_wake *wakes[1];
    rings[0] = &ring;
    wakes[0] = &wake;
    front = calloc(1, sizeof(*front));
    cr_assert_eq(hc_front_open(front, &cfg, rings, wakes, 1, &done), 0);
    cr_assert_eq(hc_front_start(front), 0);
}

static void setup(void)
{
    setup_with(NULL);
}

static void setup_short_idle(void)
{
    setup_with("teltonika.idle_timeout=1s");
}

static void teardown(void)
{
    hc_front_stop(front);
    hc_front_join(front);
    hc_front_close(front);
    free(front);
    hc_ring_free(&ring);
    hc_wake_free(&wake);
}

/* Each test names its own .init: Criterion runs a suite's .init and a
 * test's one both. */
TestSuite(front, .fini = teardown, .timeout = 60);

static int connect_to(unsigned port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* n bytes within timeout_ms, or fewer: how many arrived. */
static size_t read_some(int fd, uint8_t *buf, size_t n, int timeout_ms)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, timeout_ms) != 1)
            break;
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

static void put(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

/* A Codec 8 AVL packet of n records from ts on, one a second, parked at
 * (54.68, 25.28) with the ignition off. */
static size_t packet(int n, int64_t ts, uint8_t *out)
{
    uint8_t *d = out + 8;
    size_t k = 0;
    d[k++] = 0x08;
    d[k++] = (uint8_t)n;
    for (int i = 0; i < n; i++) {
        put(d + k, (uint64_t)(ts + i * 1000), 8);
        k += 8;
        d[k++] = 0;
        put(d + k, (uint32_t)252800000, 4);
        k += 4;
        put(d + k, (uint32_t)546800000, 4);
        k += 4;
        put(d + k, 0, 4);                   /* altitude, angle */
        k += 4;
        d[k++] = 8;                         /* satellites */
        put(d + k, 0, 2);                   /* speed */
        k += 2;
        static const uint8_t io[] = { 239, 1, 1, 239, 0, 0, 0, 0 };
        memcpy(d + k, io, sizeof(io));
        k += sizeof(io);
    }
    d[k++] = (uint8_t)n;
    put(out, 0, 4);
    put(out + 4, k, 4);
    put(out + 8 + k, devref_crc16_ibm(d, k), 4);
    return 8 + k + 4;
}

/* A Teltonika connection logged in as imei. */
static int login(const char *imei)
{
    int fd = connect_to(front->proto_port[HC_FRONT_TELTONIKA]);
    uint8_t b[32], ack;
    b[0] = 0;
    b[1] = (uint8_t)strlen(imei);
    memcpy(b + 2, imei, b[1]);
    cr_assert_eq(send(fd, b, 2u + b[1], 0), 2 + b[1]);
    cr_assert_eq(read_some(fd, &ack, 1, 5000), 1);
    cr_assert_eq(ack, 1, "logged in");
    return fd;
}

Test(front, a_stalled_device_hears_back_only_once_its_reports_are_queued, .init = setup)
{
    int fd = login("356307042441013");
    uint8_t buf[16384], ack[8];

    /* Two packets in one write; the ring holds 15 reports. */
    int64_t ts = 1700000000000;
    size_t a = packet(100, ts, buf);
    size_t b = packet(7, ts + 100000, buf + a);
    cr_assert_eq(send(fd, buf, a + b, 0), (ssize_t)(a + b));
    cr_assert_eq(read_some(fd, ack, 4, 300), 0,
                 "no acknowledgement while the first packet's reports wait for room");

    /* Be the worker: drain until all 107 reports came, in order. */
    struct hc_report r;
    int64_t last = 0;
    size_t got = 0;
    for (int spins = 0; got < 107 && spins < 5000; spins++) {
        while (hc_ring_pop(&ring, &r)) {
            cr_assert_gt(r.ts, last, "in order");
            last = r.ts;
            got++;
        }
        usleep(1000);
    }
    cr_assert_eq(got, 107, "every report of both packets, the second one too");
    cr_assert_eq(read_some(fd, ack, 8, 5000), 8, "both packets acknowledged");
    cr_assert_eq(ack[3], 100);
    cr_assert_eq(ack[7], 7);
    close(fd);
}

Test(front, a_device_we_paused_is_not_closed_as_idle, .init = setup_short_idle)
{
    int fd = login("356307042441014");
    uint8_t buf[8192], ack[4];
    size_t a = packet(60, 1700000000000, buf);
    cr_assert_eq(send(fd, buf, a, 0), (ssize_t)a);
    /* Hold the ring full well past the 1 s idle timeout. */
    usleep(2500000);
    struct hc_report r;
    size_t got = 0;
    for (int spins = 0; got < 60 && spins < 5000; spins++) {
        while (hc_ring_pop(&ring, &r))
            got++;
        usleep(1000);
    }
    cr_assert_eq(got, 60, "nothing lost: the paused connection stayed open");
    cr_assert_eq(read_some(fd, ack, 4, 5000), 4);
    cr_assert_eq(ack[3], 60);
    close(fd);
}
