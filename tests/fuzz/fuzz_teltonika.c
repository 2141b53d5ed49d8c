/*
 * fuzz_teltonika.c — libFuzzer target for the Teltonika Codec 8 / 8E
 * decoder (src/proto_teltonika.c).
 *
 * Each input is a TCP byte stream from one device, run through frame() and
 * decode() exactly as a front runs it: a buffer of at most max_frame bytes,
 * garbage skipped when frame() says so, the connection ended at
 * HC_PROTO_CLOSE.  The stream is run twice, once arriving all at once and
 * once in small pieces of varying size, and both runs must give the same
 * results byte for byte.  The input is also handed to decode() whole, as
 * one frame, on a fresh and on a logged-in connection, and as the data
 * field of a packet given the right length and CRC, so that mutations get
 * past the CRC to the records (and the decoder's CRC is checked against a
 * bitwise one).
 *
 * abort() on any broken invariant: frame() returning more than it was
 * given, more than max_frame, nothing while max_frame bytes wait, or
 * changing the connection; a report that fails hc_report_check() or has
 * stray bytes past its id, or a non-boolean acc; more than
 * HC_PROTO_MAX_REPORTS reports or HC_PROTO_MAX_REPLY reply bytes; an
 * unknown result code; a reply or reports where the result says there
 * are none; an acknowledgement that disagrees with the records reported
 * plus skipped.
 *
 * Build and run with tools/fuzz.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hubcap/detect.h"
#include "hubcap/proto.h"
#include "../devref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)
#define P (&hc_proto_teltonika)
#define CONN_MAX 256
#define LOG_MAX (1u << 20)

/* What a run produced, in order: result codes, replies, reports. */
struct trace {
    uint8_t *bytes;
    size_t len;
};

struct run {
    uint8_t conn[CONN_MAX];
    uint8_t *buf;
    size_t have;
    int closed;
    struct trace log;
};

static struct hc_proto_out out;

static void trace_add(struct trace *t, const void *p, size_t n)
{
    if (t->len + n > LOG_MAX)           /* a long stream: compare the start */
        return;
    memcpy(t->bytes + t->len, p, n);
    t->len += n;
}

static void check_report(const struct hc_report *r, const uint8_t *conn_vid, size_t vid_len)
{
    CHECK(hc_report_check(r) == 0);
    CHECK(r->acc == 0 || r->acc == 1);
    CHECK(r->vid_len >= 8 && r->vid_len <= 17);
    for (size_t i = 0; i < r->vid_len; i++)
        CHECK(r->vid[i] >= '0' && r->vid[i] <= '9');
    for (size_t i = r->vid_len; i < HC_VID_MAX; i++)
        CHECK(r->vid[i] == 0);
    CHECK(r->maker_len == 0);
    for (size_t i = 0; i < HC_MAKER_MAX; i++)
        CHECK(r->maker[i] == 0);
    if (conn_vid) {
        CHECK(r->vid_len == vid_len);
        CHECK(memcmp(r->vid, conn_vid, vid_len) == 0);
    }
}

/* decode() one frame on conn and check what it says; returns its code. */
static int decode_checked(void *conn, const uint8_t *f, size_t len, int logged_in,
                          struct trace *log)
{
    memset(&out, 0xa5, sizeof(out));
    out.n_reports = 0;
    out.reply_len = 0;
    out.skipped = 0;
    int rc = P->decode(conn, f, len, &out);
    CHECK(out.n_reports <= HC_PROTO_MAX_REPORTS);
    CHECK(out.reply_len <= HC_PROTO_MAX_REPLY);
    CHECK(out.skipped <= HC_PROTO_MAX_REPORTS);
    switch (rc) {
    case HC_PROTO_OK:
        if (!logged_in) {               /* a login: 0x01, no reports */
            CHECK(out.reply_len == 1 && out.reply[0] == 0x01);
            CHECK(out.n_reports == 0 && out.skipped == 0);
            break;
        }
        CHECK(out.reply_len == 4);
        CHECK(out.reply[0] == 0 && out.reply[1] == 0 && out.reply[2] == 0);
        CHECK(out.reply[3] == out.n_reports + out.skipped);
        for (size_t i = 0; i < out.n_reports; i++) {
            check_report(&out.reports[i], (const uint8_t *)out.reports[0].vid,
                         out.reports[0].vid_len);
            if (i > 0)
                CHECK(out.reports[i].ts >= out.reports[i - 1].ts);
        }
        break;
    case HC_PROTO_CLOSE:
        CHECK(!logged_in);
        CHECK(out.reply_len == 1 && out.reply[0] == 0x00);
        CHECK(out.n_reports == 0 && out.skipped == 0);
        break;
    case HC_PROTO_BAD_CHECKSUM:
    case HC_PROTO_BAD_LENGTH:
    case HC_PROTO_UNSUPPORTED:
        CHECK(logged_in);
        CHECK(out.reply_len == 0 && out.n_reports == 0 && out.skipped == 0);
        break;
    default:
        abort();
    }
    if (log) {
        trace_add(log, &rc, sizeof(rc));
        trace_add(log, out.reply, out.reply_len);
        trace_add(log, out.reports, out.n_reports * sizeof(out.reports[0]));
        trace_add(log, &out.skipped, sizeof(out.skipped));
    }
    return rc;
}


static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void run_init(struct run *r, struct trace log)
{
    memset(r->conn, 0, sizeof(r->conn));
    P->conn_init(r->conn, &(struct hc_proto_config){ 0 });
    r->have = 0;
    r->closed = 0;
    r->log = log;
    r->log.len = 0;
}

/* Feed n bytes as a front would. */
static void run_feed(struct run *r, const uint8_t *p, size_t n, int *logged_in)
{
    uint8_t before[CONN_MAX];
    while (n > 0 && !r->closed) {
        size_t k = P->max_frame - r->have;
        k = k < n ? k : n;
        memcpy(r->buf + r->have, p, k);
        r->have += k;
        p += k;
        n -= k;
        for (;;) {
            memcpy(before, r->conn, P->conn_size);
            long f = P->frame(r->conn, r->buf, r->have);
            CHECK(memcmp(before, r->conn, P->conn_size) == 0);
            if (f == 0) {
                CHECK(r->have < P->max_frame);
                break;
            }
            size_t used;
            if (f < 0) {
                CHECK(*logged_in);      /* before a login everything is a login */
                used = (size_t)-f;
                CHECK(used <= r->have);
            } else {
                used = (size_t)f;
                CHECK(used <= r->have && used <= P->max_frame);
                int rc = decode_checked(r->conn, r->buf, used, *logged_in, &r->log);
                if (rc == HC_PROTO_CLOSE) {
                    r->closed = 1;
                    return;
                }
                if (rc == HC_PROTO_OK)
                    *logged_in = 1;
            }
            memmove(r->buf, r->buf + used, r->have - used);
            r->have -= used;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct run a, b;
    static uint8_t fresh[CONN_MAX];
    if (!a.buf) {
        CHECK(P->conn_size <= CONN_MAX);
        CHECK(P->max_frame >= 64 && P->max_frame <= (1u << 24));
        a.buf = malloc(P->max_frame);
        b.buf = malloc(P->max_frame);
        a.log.bytes = malloc(LOG_MAX);
        b.log.bytes = malloc(LOG_MAX);
        CHECK(a.buf && b.buf && a.log.bytes && b.log.bytes);
    }

    /* The stream all at once, then in pieces of 1 to 23 bytes. */
    int in_a = 0, in_b = 0;
    run_init(&a, a.log);
    run_feed(&a, data, size, &in_a);
    run_init(&b, b.log);
    for (size_t off = 0, i = 0; off < size; i++) {
        size_t k = 1 + (i * 7 + size) % 23;
        k = k < size - off ? k : size - off;
        run_feed(&b, data + off, k, &in_b);
        off += k;
    }
    CHECK(a.closed == b.closed && in_a == in_b);
    CHECK(a.closed || a.have == b.have);    /* what is left after a close is dropped */
    CHECK(a.log.len == b.log.len && memcmp(a.log.bytes, b.log.bytes, a.log.len) == 0);

    /* The input as one frame, before and after a login.  Copied so ASan
     * sees its exact end. */
    uint8_t *copy = malloc(size ? size : 1);
    CHECK(copy);
    memcpy(copy, data, size);
    memset(fresh, 0, sizeof(fresh));
    P->conn_init(fresh, &(struct hc_proto_config){ 0 });
    decode_checked(fresh, copy, size, 0, NULL);
    static const uint8_t login[] = { 0, 15, '3', '5', '6', '3', '0', '7', '0', '4', '2', '4',
                                     '4', '1', '0', '1', '3' };
    memset(fresh, 0, sizeof(fresh));
    P->conn_init(fresh, &(struct hc_proto_config){ 0 });
    CHECK(decode_checked(fresh, login, sizeof(login), 0, NULL) == HC_PROTO_OK);
    decode_checked(fresh, copy, size, 1, NULL);

    /* The input as the data field of a packet whose length and CRC are
     * right, so that mutations reach the record parser; the decoder's CRC
     * must agree with the bitwise one. */
    if (size >= 3 && size <= P->max_frame - 12) {
        uint8_t *pkt = malloc(size + 12);
        CHECK(pkt);
        memset(pkt, 0, 4);
        put32(pkt + 4, (uint32_t)size);
        memcpy(pkt + 8, data, size);
        put32(pkt + 8 + size, devref_crc16_ibm(data, size));
        CHECK(P->frame(fresh, pkt, size + 12) == (long)(size + 12));
        int rc = decode_checked(fresh, pkt, size + 12, 1, NULL);
        CHECK(rc != HC_PROTO_BAD_CHECKSUM);
        if (data[0] == 0x08 || data[0] == 0x8E)
            CHECK(rc != HC_PROTO_UNSUPPORTED);
        free(pkt);
    }
    free(copy);
    return 0;
}
