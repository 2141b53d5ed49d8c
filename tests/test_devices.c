/*
 * test_devices.c — real device protocols against the real daemon: a
 * simulated JT/T 808 terminal and a simulated Teltonika tracker connect to
 * hubcapd's listeners on loopback, log in the way their standards say,
 * park, are towed, and the alarm in alarms.log names them and their
 * maker.  Frames are built here from the specifications, independently of
 * the decoders under test.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "hubcap/ctl.h"
#include "devref.h"

static struct daemon d;

static void fini(void)
{
    daemon_cleanup(&d);
}

TestSuite(devices, .fini = fini, .timeout = 120);

/* Read exactly n bytes within 5 s. */
static void read_exact(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        cr_assert_eq(poll(&p, 1, 5000), 1, "no answer from hubcapd within 5 s");
        ssize_t r = read(fd, buf + got, n - got);
        cr_assert_gt(r, 0, "hubcapd closed the connection");
        got += (size_t)r;
    }
}

static size_t alarms_for(const char *vid, char *maker, size_t cap)
{
    json_t *all = daemon_alarms(&d), *a;
    size_t i, n = 0;
    json_array_foreach(all, i, a) {
        if (strcmp(json_string_value(hc_json_path(a, "data.vid")), vid) != 0)
            continue;
        n++;
        snprintf(maker, cap, "%s", json_string_value(hc_json_path(a, "data.maker")));
    }
    json_decref(all);
    return n;
}

/* Wait until vid has an alarm (10 s at most); its count. */
static size_t wait_alarm(const char *vid, char *maker, size_t cap)
{
    for (int i = 0; i < 1000; i++) {
        size_t n = alarms_for(vid, maker, cap);
        if (n)
            return n;
        usleep(10000);
    }
    return 0;
}

/* ---- JT/T 808, built from the standard -------------------------------- */

static uint16_t jt_serial;

/* A whole escaped frame for message id with body (2013 header, 6-byte BCD
 * phone "013800138000"). */
static size_t jt_frame(uint16_t id, const uint8_t *body, size_t blen, uint8_t *out)
{
    uint8_t raw[1100];
    size_t n = 0;
    static const uint8_t phone[6] = { 0x01, 0x38, 0x00, 0x13, 0x80, 0x00 };
    raw[n++] = (uint8_t)(id >> 8);
    raw[n++] = (uint8_t)id;
    raw[n++] = (uint8_t)(blen >> 8);        /* no split, no encryption, 2013 */
    raw[n++] = (uint8_t)blen;
    memcpy(raw + n, phone, 6);
    n += 6;
    raw[n++] = (uint8_t)(jt_serial >> 8);
    raw[n++] = (uint8_t)jt_serial;
    jt_serial++;
    memcpy(raw + n, body, blen);
    n += blen;
    return devref_jt808_seal(raw, n, out);
}

/* Read one reply frame; returns its message id, body in body[] (unescaped,
 * checksum verified). */
static uint16_t jt_read(int fd, uint8_t *body, size_t *blen)
{
    uint8_t frame[2300], raw[1100], b;
    size_t got = 0;
    do
        read_exact(fd, &b, 1);
    while (b != 0x7e);
    frame[got++] = b;
    do {
        read_exact(fd, &b, 1);
        cr_assert_lt(got, sizeof(frame));
        frame[got++] = b;
    } while (b != 0x7e);
    long n = devref_jt808_unescape(frame, got, raw, sizeof(raw));
    cr_assert_geq(n, 13, "a well-formed reply (escapes, checksum): %ld", n);
    size_t len = ((size_t)(raw[2] & 0x03) << 8) | raw[3];
    cr_assert_eq(len, (size_t)n - 13, "reply body length");
    memcpy(body, raw + 12, len);
    *blen = len;
    return (uint16_t)(raw[0] << 8 | raw[1]);
}

static uint8_t bcd(int v)
{
    return (uint8_t)((v / 10) << 4 | (v % 10));
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* 0x0200 at (lat, lon) north-east, positioned, ACC off, at UTC time t
 * written in UTC+8 as the terminal's clock shows it. */
static size_t jt_location(double lat, double lon, time_t t, uint8_t *out)
{
    uint8_t b[28] = { 0 };
    put32(b + 4, 0x2);                      /* status: positioned, ACC off */
    put32(b + 8, (uint32_t)(lat * 1e6 + 0.5));
    put32(b + 12, (uint32_t)(lon * 1e6 + 0.5));
    time_t local = t + 8 * 3600;
    struct tm tm;
    gmtime_r(&local, &tm);
    b[22] = bcd(tm.tm_year % 100);
    b[23] = bcd(tm.tm_mon + 1);
    b[24] = bcd(tm.tm_mday);
    b[25] = bcd(tm.tm_hour);
    b[26] = bcd(tm.tm_min);
    b[27] = bcd(tm.tm_sec);
    return jt_frame(0x0200, b, sizeof(b), out);
}

Test(devices, a_jt808_terminal_registers_parks_and_is_towed)
{
    static const char *const sets[] = { "detect.default_threshold_m=100", NULL };
    daemon_start(&d, sets);
    cr_assert_gt(d.jt808, 0, "hubcapd.json names the jt808 port");
    int fd = tcp_connect(d.jt808);
    uint8_t frame[2300], body[1100];
    size_t blen;

    /* Register: manufacturer "ACME1" becomes the maker. */
    uint8_t reg[37 + 7] = { 0 };
    memcpy(reg + 4, "ACME1", 5);
    memcpy(reg + 9, "MODEL-X", 7);
    memcpy(reg + 29, "T000001", 7);
    reg[36] = 1;
    memcpy(reg + 37, "B12345", 6);
    send_all(fd, "garbage!", 8);            /* skipped */
    send_all(fd, frame, jt_frame(0x0100, reg, 43, frame));
    cr_assert_eq(jt_read(fd, body, &blen), 0x8100, "registration answered with 0x8100");
    cr_assert_geq(blen, 4);
    cr_assert_eq(body[2], 0, "registration accepted");
    char code[64];
    snprintf(code, sizeof(code), "%.*s", (int)(blen - 3), (const char *)body + 3);
    cr_assert_gt(strlen(code), 0, "an authentication code");

    /* Authenticate with it. */
    send_all(fd, frame, jt_frame(0x0102, (const uint8_t *)code, strlen(code), frame));
    cr_assert_eq(jt_read(fd, body, &blen), 0x8001);
    cr_assert_eq((body[2] << 8) | body[3], 0x0102, "the reply names 0x0102");
    cr_assert_eq(body[4], 0, "authenticated");

    /* A frame with a wrong checksum is dropped; the connection stays.  One
     * plain byte of its header changes (not a flag, not part of an escape:
     * the checksum byte itself may be escaped, depending on the time and
     * serial number in the frame), so the checksum no longer matches. */
    size_t n = jt_location(31.2304, 121.4737, time(NULL) - 3600, frame);
    for (size_t i = 2; i + 2 < n; i++) {
        uint8_t b = frame[i] ^ 0x01;
        if (frame[i - 1] != 0x7d && frame[i] != 0x7d && frame[i] != 0x7e && b != 0x7d &&
            b != 0x7e) {
            frame[i] = b;
            break;
        }
    }
    send_all(fd, frame, n);

    /* Parked for 12 fixes, then towed 2 km. */
    time_t t0 = time(NULL) - 3000;
    for (int i = 0; i < 12; i++) {
        send_all(fd, frame, jt_location(31.2304 + (i % 3) * 1e-5, 121.4737, t0 + i * 30, frame));
        cr_assert_eq(jt_read(fd, body, &blen), 0x8001);
        cr_assert_eq((body[2] << 8) | body[3], 0x0200);
    }
    char maker[64] = "";
    cr_assert_eq(alarms_for("13800138000", maker, sizeof(maker)), 0, "parked: no alarm");
    for (int i = 0; i < 4; i++) {
        send_all(fd, frame, jt_location(31.2484, 121.4737, t0 + 400 + i * 30, frame));
        cr_assert_eq(jt_read(fd, body, &blen), 0x8001);
    }
    cr_assert_eq(wait_alarm("13800138000", maker, sizeof(maker)), 1, "the tow raised one alarm");
    cr_assert_str_eq(maker, "ACME1", "the maker it registered with");
    cr_assert_geq(daemon_stat(&d, "front.jt808.bad_checksum"), 1);
    cr_assert_geq(daemon_stat(&d, "front.jt808.garbage_bytes"), 8);
    cr_assert(!peer_closed(fd, 100), "a bad frame does not close the connection");
    close(fd);
}

/* ---- Teltonika Codec 8, built from the specification ------------------- */

/* An AVL packet, Codec 8, with n records at (lat, lon), ts ms apart 30 s,
 * ignition (IO 239) off. */
static size_t telt_packet(int n, double lat, double lon, int64_t ts, uint8_t *out)
{
    uint8_t data[2048];
    size_t k = 0;
    data[k++] = 0x08;
    data[k++] = (uint8_t)n;
    for (int i = 0; i < n; i++) {
        uint64_t t = (uint64_t)(ts + i * 30000);
        for (int b = 7; b >= 0; b--)
            data[k++] = (uint8_t)(t >> (8 * b));
        data[k++] = 0;                              /* priority */
        put32(data + k, (uint32_t)(int32_t)(lon * 1e7));
        k += 4;
        put32(data + k, (uint32_t)(int32_t)(lat * 1e7));
        k += 4;
        data[k++] = 0; data[k++] = 20;              /* altitude */
        data[k++] = 0; data[k++] = 90;              /* angle */
        data[k++] = 9;                              /* satellites */
        data[k++] = 0; data[k++] = 0;               /* speed */
        data[k++] = 239;                            /* event IO id */
        data[k++] = 1;                              /* IO count */
        data[k++] = 1;                              /* 1-byte values */
        data[k++] = 239;
        data[k++] = 0;                              /* ignition off */
        data[k++] = 0; data[k++] = 0; data[k++] = 0;  /* no 2, 4, 8-byte values */
    }
    data[k++] = (uint8_t)n;
    size_t o = 0;
    memset(out, 0, 4);
    o += 4;
    put32(out + o, (uint32_t)k);
    o += 4;
    memcpy(out + o, data, k);
    o += k;
    put32(out + o, devref_crc16_ibm(data, k));
    return o + 4;
}

Test(devices, a_teltonika_tracker_logs_in_parks_and_is_towed)
{
    static const char *const sets[] = { "detect.default_threshold_m=100",
                                        "thresholds.teltonika=50", NULL };
    daemon_start(&d, sets);
    cr_assert_gt(d.teltonika, 0, "hubcapd.json names the teltonika port");
    int fd = tcp_connect(d.teltonika);
    static const char imei[] = "356307042441013";
    uint8_t pkt[4096], ack[4];
    pkt[0] = 0;
    pkt[1] = 15;
    memcpy(pkt + 2, imei, 15);
    send_all(fd, pkt, 17);
    read_exact(fd, ack, 1);
    cr_assert_eq(ack[0], 0x01, "IMEI accepted");

    int64_t t0 = ((int64_t)time(NULL) - 3000) * 1000;
    size_t n = telt_packet(6, 54.6872, 25.2797, t0, pkt);
    pkt[n - 1] ^= 0xff;                             /* a wrong CRC: dropped, no answer */
    send_all(fd, pkt, n);
    send_all(fd, pkt, telt_packet(6, 54.6872, 25.2797, t0, pkt));
    read_exact(fd, ack, 4);
    cr_assert_eq(ack[3], 6, "6 records accepted (the bad packet got no answer)");
    send_all(fd, pkt, telt_packet(6, 54.6872, 25.2797, t0 + 180000, pkt));
    read_exact(fd, ack, 4);
    cr_assert_eq(ack[3], 6);
    char maker[64] = "";
    cr_assert_eq(alarms_for(imei, maker, sizeof(maker)), 0, "parked: no alarm");
    /* Towed 2 km north, delivered in two halves of one packet. */
    n = telt_packet(3, 54.7052, 25.2797, t0 + 400000, pkt);
    send_all(fd, pkt, n / 2);
    usleep(50000);
    send_all(fd, pkt + n / 2, n - n / 2);
    read_exact(fd, ack, 4);
    cr_assert_eq(ack[3], 3);
    cr_assert_eq(wait_alarm(imei, maker, sizeof(maker)), 1, "the tow raised one alarm");
    cr_assert_str_eq(maker, "teltonika", "teltonika.maker names the devices' maker");
    cr_assert_geq(daemon_stat(&d, "front.teltonika.bad_checksum"), 1);
    json_t *a = daemon_alarms(&d);
    cr_assert_float_eq(json_number_value(hc_json_path(a, "0.data.threshold_m")), 50.0, 1e-9,
                       "the maker's own threshold applied");
    json_decref(a);
    close(fd);
}

Test(devices, a_device_that_breaks_its_protocol_is_closed_and_others_carry_on)
{
    static const char *const sets[] = { "teltonika.idle_timeout=1s", NULL };
    daemon_start(&d, sets);
    /* Not an IMEI: refused with 0x00 and closed. */
    int bad = tcp_connect(d.teltonika);
    uint8_t pkt[64], ack[1];
    pkt[0] = 0;
    pkt[1] = 5;
    memcpy(pkt + 2, "hello", 5);
    send_all(bad, pkt, 7);
    read_exact(bad, ack, 1);
    cr_assert_eq(ack[0], 0x00, "login refused");
    cr_assert(peer_closed(bad, 2000), "and the connection closed");
    close(bad);
    /* Silent past teltonika.idle_timeout: closed. */
    int idle = tcp_connect(d.teltonika);
    cr_assert(peer_closed(idle, 5000), "an idle device is closed");
    close(idle);
    cr_assert_geq(daemon_stat(&d, "front.teltonika.closed_idle"), 1);
    cr_assert_geq(daemon_stat(&d, "front.teltonika.closed_protocol"), 1);
    /* The msgpack listener is untouched. */
    struct hc_report r = report("OTHER", 1700000000000, 10, 10, 0, "acme");
    int fd = tcp_connect(d.tcp);
    send_reports_tcp(fd, &r, 1);
    daemon_wait_processed(&d, 1);
    close(fd);
}
