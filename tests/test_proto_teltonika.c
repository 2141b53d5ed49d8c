/*
 * test_proto_teltonika.c — Teltonika Codec 8 / 8E over TCP: the login, AVL
 * packets of both codecs built here from the specification (IO elements of
 * every width, 8E's variable-length group, the CRC), what is reported and
 * answered, what is dropped and how the connection carries on, how frame()
 * cuts a byte stream, and the example packets of Teltonika's own
 * documentation.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubcap/detect.h"
#include "hubcap/proto.h"
#include "hubcap/rng.h"
#include "devref.h"

#define P (&hc_proto_teltonika)
#define IMEI "356307042441013"
#define TS0 1795000000000ULL
#define PKT_MAX 70000

/* ---- the encoder: packets from the specification ---- */

/* One IO element: w = 1, 2, 4 or 8 bytes of value v; w = 0 is the 8E
 * variable-length group, xlen bytes ending in v's big-endian bytes. */
struct tio {
    uint16_t id;
    uint8_t w;
    uint16_t xlen;
    uint64_t v;
};

struct trec {
    uint64_t ts;
    int32_t lat, lon;           /* 1e-7 degrees */
    uint8_t sats;
    size_t n_io;
    struct tio io[24];
};

struct wbuf {
    uint8_t *p;
    size_t n;
};

static void put(struct wbuf *w, uint64_t v, unsigned bytes)
{
    for (unsigned i = bytes; i-- > 0;)
        w->p[w->n++] = (uint8_t)(v >> (8 * i));
}


static void put_record(struct wbuf *w, uint8_t codec, const struct trec *r)
{
    unsigned idw = codec == 0x08 ? 1 : 2;
    put(w, r->ts, 8);
    put(w, 1, 1);                       /* priority */
    put(w, (uint32_t)r->lon, 4);
    put(w, (uint32_t)r->lat, 4);
    put(w, 123, 2);                     /* altitude */
    put(w, 270, 2);                     /* angle */
    put(w, r->sats, 1);
    put(w, 42, 2);                      /* speed */
    put(w, 0, idw);                     /* event IO id */
    put(w, r->n_io, idw);
    for (unsigned width = 1; width <= 8; width <<= 1) {
        size_t k = 0;
        for (size_t i = 0; i < r->n_io; i++)
            k += r->io[i].w == width;
        put(w, k, idw);
        for (size_t i = 0; i < r->n_io; i++)
            if (r->io[i].w == width) {
                put(w, r->io[i].id, idw);
                put(w, r->io[i].v, width);
            }
    }
    if (codec == 0x08) {
        for (size_t i = 0; i < r->n_io; i++)
            cr_assert_neq(r->io[i].w, 0, "Codec 8 has no variable-length group");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < r->n_io; i++)
        k += r->io[i].w == 0;
    put(w, k, 2);
    for (size_t i = 0; i < r->n_io; i++) {
        const struct tio *io = &r->io[i];
        if (io->w != 0)
            continue;
        put(w, io->id, 2);
        put(w, io->xlen, 2);
        for (unsigned b = io->xlen; b-- > 0;)
            put(w, b < 8 ? (uint8_t)(io->v >> (8 * b)) : 0, 1);
    }
}

/* Recompute the CRC of a packet whose data field was edited. */
static void fix_crc(uint8_t *pkt, size_t len)
{
    uint16_t c = devref_crc16_ibm(pkt + 8, len - 12);
    struct wbuf w = { pkt + len - 4, 0 };
    put(&w, c, 4);
}

/* A whole AVL packet of n records (N1 = N2 = n) into out; its length. */
static size_t encode(uint8_t *out, uint8_t codec, const struct trec *r, size_t n)
{
    struct wbuf w = { out, 0 };
    put(&w, 0, 4);
    put(&w, 0, 4);                      /* data length, filled in below */
    put(&w, codec, 1);
    put(&w, n, 1);
    for (size_t i = 0; i < n; i++)
        put_record(&w, codec, &r[i]);
    put(&w, n, 1);
    put(&w, 0, 4);                      /* CRC */
    struct wbuf l = { out + 4, 0 };
    put(&l, w.n - 12, 4);
    fix_crc(out, w.n);
    return w.n;
}

static size_t login_frame(uint8_t *out, const char *imei)
{
    size_t n = strlen(imei);
    out[0] = (uint8_t)(n >> 8);
    out[1] = (uint8_t)n;
    memcpy(out + 2, imei, n);
    return n + 2;
}

static struct trec rec(uint64_t ts, double lat, double lon)
{
    struct trec r = { .ts = ts, .lat = (int32_t)(lat * 1e7 + (lat < 0 ? -0.5 : 0.5)),
                      .lon = (int32_t)(lon * 1e7 + (lon < 0 ? -0.5 : 0.5)), .sats = 9 };
    return r;
}

static void io(struct trec *r, uint16_t id, uint8_t w, uint64_t v)
{
    cr_assert_lt(r->n_io, 24);
    r->io[r->n_io++] = (struct tio){ .id = id, .w = w, .v = v };
}

static void io_x(struct trec *r, uint16_t id, uint16_t xlen, uint64_t v)
{
    cr_assert_lt(r->n_io, 24);
    r->io[r->n_io++] = (struct tio){ .id = id, .w = 0, .xlen = xlen, .v = v };
}

/* Some IO elements that are not the ignition, in every group. */
static void io_filler(struct trec *r, uint8_t codec)
{
    io(r, 21, 1, 4);                    /* GSM signal */
    io(r, 66, 2, 12850);                /* external voltage */
    io(r, 16, 4, 123456);               /* odometer */
    io(r, 78, 8, 0x0102030405060708ULL);
    if (codec == 0x8E) {
        io(r, 385, 1, 1);
        io_x(r, 10385, 20, 0xdeadbeef);
    }
}

static size_t hex(uint8_t *out, const char *s)
{
    size_t n = 0;
    for (; s[0] && s[1]; s += 2) {
        unsigned v;
        cr_assert_eq(sscanf(s, "%2x", &v), 1);
        out[n++] = (uint8_t)v;
    }
    return n;
}

/* ---- a connection and a front in miniature ---- */

static struct hc_proto_out out;

struct conn {
    _Alignas(16) uint8_t state[64];
};

static void conn_new(struct conn *c)
{
    cr_assert_leq(P->conn_size, sizeof(c->state));
    memset(c->state, 0, sizeof(c->state));
    P->conn_init(c->state, &(struct hc_proto_config){ 0 });
}

static int decode(struct conn *c, const uint8_t *f, size_t len)
{
    memset(&out, 0xa5, sizeof(out));
    out.n_reports = 0;
    out.reply_len = 0;
    out.skipped = 0;
    int rc = P->decode(c->state, f, len, &out);
    cr_assert_leq(out.n_reports, HC_PROTO_MAX_REPORTS);
    cr_assert_leq(out.reply_len, HC_PROTO_MAX_REPLY);
    for (size_t i = 0; i < out.n_reports; i++)
        cr_assert_eq(hc_report_check(&out.reports[i]), 0);
    return rc;
}

static void conn_login(struct conn *c)
{
    uint8_t f[32];
    size_t n = login_frame(f, IMEI);
    conn_new(c);
    cr_assert_eq(P->frame(c->state, f, n), (long)n);
    cr_assert_eq(decode(c, f, n), HC_PROTO_OK);
    cr_assert_eq(out.reply_len, 1);
    cr_assert_eq(out.reply[0], 0x01);
}

static uint32_t reply32(void)
{
    cr_assert_eq(out.reply_len, 4);
    return (uint32_t)out.reply[0] << 24 | (uint32_t)out.reply[1] << 16 |
           (uint32_t)out.reply[2] << 8 | out.reply[3];
}

/* Everything a front sees come out of one byte stream. */
struct run {
    struct conn c;
    uint8_t *buf;
    size_t have;
    struct hc_report rep[4096];
    size_t n_rep;
    uint8_t reply[4096];
    size_t n_reply;
    int rc[256];
    size_t n_rc;
    uint64_t skipped, skipped_bytes;
    int closed;
};

static struct run *run_new(void)
{
    struct run *r = calloc(1, sizeof(*r));
    cr_assert(r);
    r->buf = malloc(P->max_frame);
    cr_assert(r->buf);
    conn_new(&r->c);
    return r;
}

static void run_free(struct run *r)
{
    free(r->buf);
    free(r);
}

/* Feed n bytes as a front would: buffer at most max_frame, frame, decode,
 * skip garbage, stop at a close. */
static void run_feed(struct run *r, const uint8_t *p, size_t n)
{
    while (n > 0 && !r->closed) {
        size_t k = P->max_frame - r->have;
        k = k < n ? k : n;
        memcpy(r->buf + r->have, p, k);
        r->have += k;
        p += k;
        n -= k;
        for (;;) {
            long f = P->frame(r->c.state, r->buf, r->have);
            if (f == 0) {
                cr_assert_lt(r->have, P->max_frame, "frame() wants more than max_frame");
                break;
            }
            size_t used;
            if (f < 0) {
                used = (size_t)-f;
                cr_assert_leq(used, r->have);
                r->skipped_bytes += used;
            } else {
                used = (size_t)f;
                cr_assert_leq(used, r->have);
                cr_assert_leq(used, P->max_frame);
                int rc = decode(&r->c, r->buf, used);
                cr_assert_lt(r->n_rc, 256);
                r->rc[r->n_rc++] = rc;
                cr_assert_leq(r->n_rep + out.n_reports, 4096);
                memcpy(r->rep + r->n_rep, out.reports, out.n_reports * sizeof(out.reports[0]));
                r->n_rep += out.n_reports;
                cr_assert_leq(r->n_reply + out.reply_len, sizeof(r->reply));
                memcpy(r->reply + r->n_reply, out.reply, out.reply_len);
                r->n_reply += out.reply_len;
                r->skipped += out.skipped;
            }
            memmove(r->buf, r->buf + used, r->have - used);
            r->have -= used;
            if (f > 0 && r->rc[r->n_rc - 1] == HC_PROTO_CLOSE) {
                r->closed = 1;
                return;
            }
        }
    }
}

static void assert_same_run(const struct run *a, const struct run *b)
{
    cr_assert_eq(a->n_rep, b->n_rep);
    cr_assert(memcmp(a->rep, b->rep, a->n_rep * sizeof(a->rep[0])) == 0);
    cr_assert_eq(a->n_reply, b->n_reply);
    cr_assert(memcmp(a->reply, b->reply, a->n_reply) == 0);
    cr_assert_eq(a->n_rc, b->n_rc);
    cr_assert(memcmp(a->rc, b->rc, a->n_rc * sizeof(a->rc[0])) == 0);
    cr_assert_eq(a->skipped, b->skipped);
    cr_assert_eq(a->have, b->have);
}

static void assert_report(const struct hc_report *x, uint64_t ts, int32_t lat, int32_t lon,
                          int acc)
{
    cr_assert_eq(x->ts, (int64_t)ts, "ts %lld, want %llu", (long long)x->ts,
                 (unsigned long long)ts);
    cr_assert_eq(x->lat, lat / 1e7, "lat %.7f, want %.7f", x->lat, lat / 1e7);
    cr_assert_eq(x->lon, lon / 1e7, "lon %.7f, want %.7f", x->lon, lon / 1e7);
    cr_assert_eq(x->acc, acc, "acc %u, want %d (ts %lld)", x->acc, acc, (long long)x->ts);
    cr_assert_eq(x->vid_len, strlen(IMEI));
    cr_assert(memcmp(x->vid, IMEI, strlen(IMEI)) == 0);
    for (size_t i = x->vid_len; i < HC_VID_MAX; i++)
        cr_assert_eq(x->vid[i], 0, "vid byte %zu not zeroed", i);
    cr_assert_eq(x->maker_len, 0);
    for (size_t i = 0; i < HC_MAKER_MAX; i++)
        cr_assert_eq(x->maker[i], 0, "maker byte %zu not zeroed", i);
}

static uint8_t pkt[PKT_MAX], pkt2[PKT_MAX];

/* ---- the table ---- */

Test(proto_teltonika, operations_table)
{
    cr_assert_str_eq(P->name, "teltonika");
    cr_assert_eq(P->default_port, 5027);
    cr_assert_eq(P->max_frame, 65536);
    cr_assert_leq(P->conn_size, 64);
}

Test(proto_teltonika, reference_crc_is_crc16_ibm)
{
    /* The catalogued check value of CRC-16/ARC. */
    cr_assert_eq(devref_crc16_ibm((const uint8_t *)"123456789", 9), 0xBB3D);
}

/* ---- login ---- */

Test(proto_teltonika, login_accepts_an_imei_and_answers_01)
{
    struct conn c;
    uint8_t f[32];
    conn_new(&c);
    size_t n = login_frame(f, IMEI);
    cr_assert_eq(n, 17);
    cr_assert_eq(P->frame(c.state, f, n), 17);
    cr_assert_eq(decode(&c, f, n), HC_PROTO_OK);
    cr_assert_eq(out.reply_len, 1);
    cr_assert_eq(out.reply[0], 0x01);
    cr_assert_eq(out.n_reports, 0);
}

Test(proto_teltonika, login_accepts_8_to_17_digits)
{
    const char *ok[] = { "12345678", "1234567890123456", "12345678901234567" };
    for (size_t i = 0; i < 3; i++) {
        struct conn c;
        uint8_t f[32];
        conn_new(&c);
        size_t n = login_frame(f, ok[i]);
        cr_assert_eq(P->frame(c.state, f, n), (long)n);
        cr_assert_eq(decode(&c, f, n), HC_PROTO_OK, "%s", ok[i]);
        cr_assert_eq(out.reply[0], 0x01);
    }
}

Test(proto_teltonika, login_refuses_bad_imeis_with_00_and_close)
{
    const char *bad[] = { "1234567", "123456789012345678", "35630704244101A", "356307 42441013",
                          "" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct conn c;
        uint8_t f[32];
        conn_new(&c);
        size_t n = login_frame(f, bad[i]);
        long fl = P->frame(c.state, f, n);
        cr_assert(fl > 0 && (size_t)fl <= n, "'%s': frame %ld", bad[i], fl);
        cr_assert_eq(decode(&c, f, (size_t)fl), HC_PROTO_CLOSE, "'%s'", bad[i]);
        cr_assert_eq(out.reply_len, 1);
        cr_assert_eq(out.reply[0], 0x00);
    }
}

Test(proto_teltonika, login_length_disagreeing_with_frame_is_refused)
{
    struct conn c;
    uint8_t f[32];
    conn_new(&c);
    size_t n = login_frame(f, IMEI);
    cr_assert_eq(decode(&c, f, n - 1), HC_PROTO_CLOSE);
    cr_assert_eq(out.reply[0], 0x00);
    cr_assert_eq(decode(&c, f, 1), HC_PROTO_CLOSE);
    cr_assert_eq(decode(&c, f, 0), HC_PROTO_CLOSE);
}

Test(proto_teltonika, overlong_login_length_is_framed_short_and_refused)
{
    struct conn c;
    uint8_t f[4] = { 0x12, 0x34, '1', '2' };
    conn_new(&c);
    cr_assert_eq(P->frame(c.state, f, 1), 0);
    cr_assert_eq(P->frame(c.state, f, 4), 2);
    cr_assert_eq(decode(&c, f, 2), HC_PROTO_CLOSE);
    cr_assert_eq(out.reply_len, 1);
    cr_assert_eq(out.reply[0], 0x00);
    /* One digit too many is not waited for either. */
    uint8_t g[2] = { 0x00, 18 };
    cr_assert_eq(P->frame(c.state, g, 2), 2);
    g[1] = 17;
    cr_assert_eq(P->frame(c.state, g, 2), 0);
}

Test(proto_teltonika, avl_data_before_login_closes)
{
    struct trec r = rec(TS0, 54.6, 25.2);
    size_t n = encode(pkt, 0x08, &r, 1);
    struct run *x = run_new();
    run_feed(x, pkt, n);
    cr_assert(x->closed);
    cr_assert_eq(x->n_rc, 1);
    cr_assert_eq(x->rc[0], HC_PROTO_CLOSE);
    cr_assert_eq(x->n_rep, 0);
    /* And the whole packet handed to decode directly. */
    struct conn c;
    conn_new(&c);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_CLOSE);
    cr_assert_eq(out.n_reports, 0);
    run_free(x);
}

/* ---- AVL packets ---- */

Test(proto_teltonika, codec8_records_become_reports_with_ts_lat_lon_acc)
{
    struct conn c;
    conn_login(&c);
    struct trec r[4] = {
        rec(TS0, 54.6676016, 25.2562916),
        rec(TS0 + 1000, -33.8688197, 151.2092955),   /* south */
        rec(TS0 + 2000, 40.7127753, -74.0059728),    /* west */
        rec(TS0 + 3000, -22.9068467, -43.1728965),   /* south and west */
    };
    for (int i = 0; i < 4; i++) {
        io_filler(&r[i], 0x08);
        io(&r[i], 239, 1, (uint64_t)(i & 1));
    }
    size_t n = encode(pkt, 0x08, r, 4);
    cr_assert_eq(P->frame(c.state, pkt, n), (long)n);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK);
    cr_assert_eq(reply32(), 4);
    cr_assert_eq(out.n_reports, 4);
    cr_assert_eq(out.skipped, 0);
    for (int i = 0; i < 4; i++)
        assert_report(&out.reports[i], r[i].ts, r[i].lat, r[i].lon, i & 1);
    cr_assert_lt(out.reports[1].lat, 0);
    cr_assert_lt(out.reports[2].lon, 0);
}

Test(proto_teltonika, codec8e_records_become_reports)
{
    struct conn c;
    conn_login(&c);
    struct trec r[3] = {
        rec(TS0, -1.2920659, 36.8219462),
        rec(TS0 + 60000, 35.6761919, 139.6503106),
        rec(TS0 + 120000, -34.6036844, -58.3815591),
    };
    for (int i = 0; i < 3; i++) {
        io_filler(&r[i], 0x8E);
        io(&r[i], 239, 1, i != 1);
    }
    size_t n = encode(pkt, 0x8E, r, 3);
    cr_assert_eq(P->frame(c.state, pkt, n), (long)n);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK);
    cr_assert_eq(reply32(), 3);
    cr_assert_eq(out.n_reports, 3);
    for (int i = 0; i < 3; i++)
        assert_report(&out.reports[i], r[i].ts, r[i].lat, r[i].lon, i != 1);
}

/* IO 239 is a 1-byte value, but it is read from whichever group holds it. */
Test(proto_teltonika, ignition_is_read_from_every_width_group)
{
    static const struct { uint8_t codec, w; uint16_t xlen; uint64_t v; int acc; } cases[] = {
        { 0x08, 1, 0, 1, 1 }, { 0x08, 1, 0, 0, 0 }, { 0x08, 2, 0, 0x0100, 1 },
        { 0x08, 2, 0, 0, 0 }, { 0x08, 4, 0, 1, 1 }, { 0x08, 8, 0, 1ULL << 63, 1 },
        { 0x08, 8, 0, 0, 0 }, { 0x8E, 1, 0, 1, 1 }, { 0x8E, 1, 0, 0, 0 },
        { 0x8E, 2, 0, 1, 1 }, { 0x8E, 4, 0, 0x80000000u, 1 }, { 0x8E, 8, 0, 1, 1 },
        { 0x8E, 8, 0, 0, 0 }, { 0x8E, 0, 1, 1, 1 }, { 0x8E, 0, 3, 0, 0 },
        { 0x8E, 0, 12, 1, 1 }, { 0x8E, 0, 0, 0, 0 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct conn c;
        conn_login(&c);
        struct trec r = rec(TS0, 51.5, -0.12);
        io_filler(&r, cases[i].codec);
        if (cases[i].w)
            io(&r, 239, cases[i].w, cases[i].v);
        else
            io_x(&r, 239, cases[i].xlen, cases[i].v);
        /* After a record with ignition on, so that "off" must be read. */
        struct trec before = rec(TS0 - 1000, 51.5, -0.12);
        io(&before, 239, 1, 1);
        struct trec both[2] = { before, r };
        size_t n = encode(pkt, cases[i].codec, both, 2);
        cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK, "case %zu", i);
        cr_assert_eq(out.n_reports, 2);
        cr_assert_eq(out.reports[1].acc, cases[i].acc, "case %zu", i);
    }
}

/* Records without IO 239 keep the last ignition seen on the connection;
 * a new connection starts with the ignition off. */
Test(proto_teltonika, missing_ignition_carries_the_last_one_of_the_connection)
{
    struct conn c;
    conn_login(&c);
    struct trec r[5];
    for (int i = 0; i < 5; i++)
        r[i] = rec(TS0 + (uint64_t)i * 1000, 48.85, 2.35);
    io(&r[1], 239, 1, 1);
    io(&r[3], 239, 1, 0);
    size_t n = encode(pkt, 0x8E, r, 5);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK);
    int want[5] = { 0, 1, 1, 0, 0 };
    for (int i = 0; i < 5; i++)
        cr_assert_eq(out.reports[i].acc, want[i], "record %d", i);

    struct trec on = rec(TS0 + 10000, 48.85, 2.35), plain = rec(TS0 + 20000, 48.85, 2.35);
    io(&on, 239, 1, 1);
    n = encode(pkt, 0x08, &on, 1);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK);
    n = encode(pkt, 0x08, &plain, 1);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK);
    cr_assert_eq(out.reports[0].acc, 1, "carried from the previous packet");

    struct conn fresh;
    conn_login(&fresh);
    cr_assert_eq(decode(&fresh, pkt, n), HC_PROTO_OK);
    cr_assert_eq(out.reports[0].acc, 0, "a new connection starts parked");
}

/* A record without a fix still tells the ignition. */
Test(proto_teltonika, no_fix_record_still_sets_the_ignition)
{
    struct conn c;
    conn_login(&c);
    struct trec r[2] = { rec(TS0, 0, 0), rec(TS0 + 1000, 10, 10) };
    r[0].sats = 0;
    io(&r[0], 239, 1, 1);
    size_t n = encode(pkt, 0x08, r, 2);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 1);
    cr_assert_eq(out.skipped, 1);
    cr_assert_eq(out.reports[0].acc, 1);
}

Test(proto_teltonika, no_fix_records_are_skipped_but_acknowledged)
{
    struct conn c;
    conn_login(&c);
    struct trec r[4] = { rec(TS0, 52.1, 21.0), rec(TS0 + 1, 52.1, 21.0), rec(TS0 + 2, 0, 0),
                         rec(TS0 + 3, 52.2, 21.1) };
    r[1].sats = 0;                      /* a position but no satellites */
    r[2].sats = 7;                      /* satellites but 0, 0 */
    size_t n = encode(pkt, 0x8E, r, 4);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK);
    cr_assert_eq(reply32(), 4, "every record was delivered");
    cr_assert_eq(out.n_reports, 2);
    cr_assert_eq(out.skipped, 2);
    assert_report(&out.reports[0], r[0].ts, r[0].lat, r[0].lon, 0);
    assert_report(&out.reports[1], r[3].ts, r[3].lat, r[3].lon, 0);
}

Test(proto_teltonika, out_of_range_records_are_skipped)
{
    struct conn c;
    conn_login(&c);
    struct trec r[4] = { rec(TS0, 95.0, 10), rec(TS0, 10, -181.0), rec(HC_TS_MAX, 10, 10),
                         rec(UINT64_MAX, 10, 10) };
    size_t n = encode(pkt, 0x08, r, 4);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK);
    cr_assert_eq(reply32(), 4);
    cr_assert_eq(out.n_reports, 0);
    cr_assert_eq(out.skipped, 4);
    r[0].lat = 900000000;                /* 90 and 180 are in range */
    r[1].lon = -1800000000;
    r[2].ts = HC_TS_MAX - 1;
    n = encode(pkt, 0x08, r, 3);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 3);
}

Test(proto_teltonika, reports_come_out_in_time_order)
{
    struct conn c;
    conn_login(&c);
    struct trec r[4] = { rec(TS0 + 3000, 1, 1), rec(TS0 + 2000, 2, 2), rec(TS0 + 2000, 3, 3),
                         rec(TS0 + 1000, 4, 4) };
    io(&r[0], 239, 1, 0);               /* newest: off */
    io(&r[3], 239, 1, 1);               /* oldest: on */
    size_t n = encode(pkt, 0x08, r, 4);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 4);
    assert_report(&out.reports[0], r[3].ts, r[3].lat, r[3].lon, 1);
    assert_report(&out.reports[1], r[1].ts, r[1].lat, r[1].lon, 1);   /* stable */
    assert_report(&out.reports[2], r[2].ts, r[2].lat, r[2].lon, 1);
    assert_report(&out.reports[3], r[0].ts, r[0].lat, r[0].lon, 0);
}

Test(proto_teltonika, packet_of_no_records_is_acknowledged_with_zero)
{
    struct conn c;
    conn_login(&c);
    size_t n = encode(pkt, 0x8E, NULL, 0);
    cr_assert_eq(n, 15);
    cr_assert_eq(P->frame(c.state, pkt, n), 15);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK);
    cr_assert_eq(reply32(), 0);
    cr_assert_eq(out.n_reports, 0);
}

Test(proto_teltonika, full_packet_of_255_records)
{
    static struct trec r[255];
    struct conn c;
    conn_login(&c);
    for (int i = 0; i < 255; i++) {
        r[i] = rec(TS0 + (uint64_t)i, -45 + i * 0.1, 170 - i * 0.5);
        io_filler(&r[i], 0x8E);
    }
    size_t n = encode(pkt, 0x8E, r, 255);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK);
    cr_assert_eq(reply32(), 255);
    cr_assert_eq(out.n_reports, 255);
    assert_report(&out.reports[254], r[254].ts, r[254].lat, r[254].lon, 0);
}

/* ---- packets that are dropped ---- */

Test(proto_teltonika, bad_crc_is_dropped_without_answer_and_the_next_packet_decodes)
{
    struct trec r[2] = { rec(TS0, 59.33, 18.06), rec(TS0 + 1000, 59.34, 18.07) };
    uint8_t f[32];
    size_t nl = login_frame(f, IMEI);
    size_t n = encode(pkt, 0x08, r, 2);
    memcpy(pkt2, pkt, n);
    pkt2[8 + 2 + 15] ^= 0x40;           /* a bit of the first latitude */
    struct run *x = run_new();
    run_feed(x, f, nl);
    run_feed(x, pkt2, n);
    run_feed(x, pkt, n);
    cr_assert_eq(x->n_rc, 3);
    cr_assert_eq(x->rc[1], HC_PROTO_BAD_CHECKSUM);
    cr_assert_eq(x->rc[2], HC_PROTO_OK);
    cr_assert_eq(x->n_reply, 1 + 4, "no answer to the bad packet");
    cr_assert_eq(x->reply[4], 2);
    cr_assert_eq(x->n_rep, 2);
    assert_report(&x->rep[0], r[0].ts, r[0].lat, r[0].lon, 0);
    run_free(x);

    /* The CRC field's upper two bytes must be zero. */
    struct conn c;
    conn_login(&c);
    memcpy(pkt2, pkt, n);
    pkt2[n - 4] = 0x01;
    cr_assert_eq(decode(&c, pkt2, n), HC_PROTO_BAD_CHECKSUM);
    cr_assert_eq(out.reply_len, 0);
    cr_assert_eq(out.n_reports, 0);
}

Test(proto_teltonika, n1_not_equal_n2_is_bad_length)
{
    struct conn c;
    conn_login(&c);
    struct trec r[2] = { rec(TS0, 1, 1), rec(TS0 + 1, 2, 2) };
    size_t n = encode(pkt, 0x8E, r, 2);
    pkt[n - 5] = 3;                     /* N2 */
    fix_crc(pkt, n);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_BAD_LENGTH);
    cr_assert_eq(out.reply_len, 0);
    cr_assert_eq(out.n_reports, 0);
    pkt[n - 5] = 2;
    pkt[9] = 3;                         /* N1 too, now more than there are */
    fix_crc(pkt, n);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_BAD_LENGTH);
    pkt[9] = pkt[n - 5] = 1;            /* fewer than there are */
    fix_crc(pkt, n);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_BAD_LENGTH);
    cr_assert_eq(out.n_reports, 0, "nothing of a dropped packet is reported");
}

Test(proto_teltonika, records_must_fill_the_data_field_exactly)
{
    struct conn c;
    conn_login(&c);
    struct trec r = rec(TS0, 1, 1);
    io_filler(&r, 0x8E);
    size_t n = encode(pkt, 0x8E, &r, 1);
    /* One spare byte before N2, the length field and CRC agreeing. */
    memcpy(pkt2, pkt, n - 5);
    pkt2[n - 5] = 0;
    memcpy(pkt2 + n - 4, pkt + n - 5, 5);
    pkt2[7]++;
    fix_crc(pkt2, n + 1);
    cr_assert_eq(P->frame(c.state, pkt2, n + 1), (long)(n + 1));
    cr_assert_eq(decode(&c, pkt2, n + 1), HC_PROTO_BAD_LENGTH);
    /* An IO count that runs past the data field. */
    memcpy(pkt2, pkt, n);
    pkt2[8 + 2 + 24 + 4 + 1] = 0x40;    /* N1 group count, low byte */
    fix_crc(pkt2, n);
    cr_assert_eq(decode(&c, pkt2, n), HC_PROTO_BAD_LENGTH);
    /* A variable-length value longer than what is left. */
    memcpy(pkt2, pkt, n);
    size_t xl = n - 5 - 20 - 2;         /* length of the last NX element */
    pkt2[xl] = 0x01;
    fix_crc(pkt2, n);
    cr_assert_eq(decode(&c, pkt2, n), HC_PROTO_BAD_LENGTH);
    /* Lengths that disagree with the frame handed over. */
    cr_assert_eq(decode(&c, pkt, n - 1), HC_PROTO_BAD_LENGTH);
    cr_assert_eq(decode(&c, pkt, 11), HC_PROTO_BAD_LENGTH);
    cr_assert_eq(decode(&c, pkt, 0), HC_PROTO_BAD_LENGTH);
    /* And the original still decodes. */
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 1);
}

Test(proto_teltonika, unknown_codec_is_unsupported_without_answer)
{
    struct conn c;
    conn_login(&c);
    struct trec r = rec(TS0, 1, 1);
    uint8_t codecs[] = { 0x0C, 0x0D, 0x0E, 0x10, 0x00, 0xFF };
    for (size_t i = 0; i < sizeof(codecs); i++) {
        size_t n = encode(pkt, 0x08, &r, 1);
        pkt[8] = codecs[i];
        fix_crc(pkt, n);
        cr_assert_eq(P->frame(c.state, pkt, n), (long)n);
        cr_assert_eq(decode(&c, pkt, n), HC_PROTO_UNSUPPORTED, "codec 0x%02x", codecs[i]);
        cr_assert_eq(out.reply_len, 0);
        cr_assert_eq(out.n_reports, 0);
    }
    size_t n = encode(pkt, 0x08, &r, 1);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK, "the connection carries on");
    cr_assert_eq(out.n_reports, 1);
}

/* ---- framing a byte stream ---- */

Test(proto_teltonika, no_proper_prefix_is_a_frame)
{
    struct conn c;
    uint8_t f[32];
    conn_new(&c);
    size_t nl = login_frame(f, IMEI);
    for (size_t k = 0; k < nl; k++)
        cr_assert_eq(P->frame(c.state, f, k), 0, "login prefix %zu", k);
    conn_login(&c);
    struct trec r[3] = { rec(TS0, 1, 1), rec(TS0 + 1, 2, 2), rec(TS0 + 2, 3, 3) };
    for (int i = 0; i < 3; i++)
        io_filler(&r[i], 0x8E);
    size_t n = encode(pkt, 0x8E, r, 3);
    for (size_t k = 0; k < n; k++)
        cr_assert_eq(P->frame(c.state, pkt, k), 0, "packet prefix %zu of %zu", k, n);
    cr_assert_eq(P->frame(c.state, pkt, n), (long)n);
    /* With more bytes behind it, the frame is still just the packet. */
    memcpy(pkt2, pkt, n);
    memcpy(pkt2 + n, pkt, n);
    cr_assert_eq(P->frame(c.state, pkt2, 2 * n), (long)n);
}

/* A stream: the login and packets of both codecs. */
static size_t some_stream(uint8_t *s)
{
    size_t n = login_frame(s, IMEI);
    for (int p = 0; p < 4; p++) {
        struct trec r[6];
        uint8_t codec = p & 1 ? 0x8E : 0x08;
        for (int i = 0; i < 6; i++) {
            r[i] = rec(TS0 + (uint64_t)(p * 6 + i) * 30000, 45.0 - p - i * 0.01, -3.0 + i * 0.01);
            io_filler(&r[i], codec);
            if (i % 3 == 0)
                io(&r[i], 239, 1, (uint64_t)((p + i) & 1));
        }
        n += encode(s + n, codec, r, (size_t)(1 + p + 2 * (p == 3)));
    }
    return n;
}

Test(proto_teltonika, stream_cut_anywhere_gives_the_same_reports)
{
    size_t n = some_stream(pkt);
    struct run *whole = run_new();
    run_feed(whole, pkt, n);
    cr_assert_eq(whole->n_rc, 5);
    cr_assert_eq(whole->n_rep, 1 + 2 + 3 + 6);
    cr_assert_eq(whole->n_reply, 1 + 4 * 4);
    cr_assert_eq(whole->have, 0);
    for (size_t cut = 0; cut <= n; cut++) {
        struct run *x = run_new();
        run_feed(x, pkt, cut);
        run_feed(x, pkt + cut, n - cut);
        assert_same_run(whole, x);
        run_free(x);
    }
    struct run *bytes = run_new();
    for (size_t i = 0; i < n; i++)
        run_feed(bytes, pkt + i, 1);
    assert_same_run(whole, bytes);
    run_free(bytes);
    run_free(whole);
}

Test(proto_teltonika, garbage_before_a_packet_is_skipped)
{
    uint8_t f[32];
    size_t nl = login_frame(f, IMEI);
    struct trec r[2] = { rec(TS0, 60.17, 24.94), rec(TS0 + 1000, 60.18, 24.95) };
    io(&r[0], 239, 1, 1);
    size_t n = encode(pkt, 0x8E, r, 2);
    struct run *clean = run_new();
    run_feed(clean, f, nl);
    run_feed(clean, pkt, n);
    cr_assert_eq(clean->n_rep, 2);

    static const struct { const char *hex; } junk[] = {
        { "DEADBEEF" },
        { "AB" },
        { "AB0000" },                   /* ends in zeros the preamble continues */
        { "0000000000" },               /* a zero run longer than a preamble */
        { "00000000FFFFFFFF" },         /* a preamble with an impossible length */
        { "000F333536333037303432343431303133" },   /* a second login */
        { "01000000000000" },
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        uint8_t g[64];
        size_t ng = hex(g, junk[i].hex);
        struct run *x = run_new();
        run_feed(x, f, nl);
        run_feed(x, g, ng);
        run_feed(x, pkt, n);
        cr_assert_eq(x->skipped_bytes, ng, "junk %zu: skipped %llu of %zu", i,
                     (unsigned long long)x->skipped_bytes, ng);
        assert_same_run(clean, x);
        run_free(x);
    }
    run_free(clean);
}

Test(proto_teltonika, largest_packet_decodes_and_one_byte_more_is_skipped)
{
    struct conn c;
    conn_login(&c);
    /* One 8E record whose NX elements make the frame exactly max_frame. */
    struct trec r = rec(TS0, 12.5, 99.9);
    size_t base = encode(pkt, 0x8E, &r, 1);     /* no IO: 15 + 24 + 10 */
    size_t left = P->max_frame - base;
    size_t k = 0;
    while (left > 0) {
        size_t x = left - 4 > 65535 ? 65535 : left - 4;
        io_x(&r, (uint16_t)(1000 + k++), (uint16_t)x, 7);
        left -= x + 4;
    }
    size_t n = encode(pkt, 0x8E, &r, 1);
    cr_assert_eq(n, P->max_frame);
    cr_assert_eq(P->frame(c.state, pkt, n - 1), 0);
    cr_assert_eq(P->frame(c.state, pkt, n), (long)n);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 1);

    pkt[7]++;                           /* data length one more than fits */
    cr_assert_eq(P->frame(c.state, pkt, 8), -1);
    cr_assert_eq(P->frame(c.state, pkt, n), -1);
}

/* ---- Teltonika's documented examples ----
 *
 * From "Teltonika Data Sending Protocols", sections Codec 8 (first, second
 * and third example) and Codec 8 Extended (example), on the Teltonika
 * Telematics wiki: https://wiki.teltonika-gps.com/view/Teltonika_Data_Sending_Protocols
 * Each gives the packet, its CRC, the server's answer and the records'
 * fields.  Their GPS elements are all zero (no fix), so they are
 * acknowledged and skipped; with a fix written into them (and the CRC
 * recomputed) they give the documented timestamps.
 */
static const struct {
    const char *hex;
    unsigned records;
    uint64_t ts[2];
} wiki[] = {
    { "000000000000003608010000016B40D8EA30010000000000000000000000000000000105021503010101425E"
      "0F01F10000601A014E0000000000000000010000C7CF", 1, { 1560161086000ULL } },
    { "000000000000002808010000016B40D9AD80010000000000000000000000000000000103021503010101425E"
      "100000010000F22A", 1, { 1560161136000ULL } },
    { "000000000000004308020000016B40D57B480100000000000000000000000000000001010101000000000000"
      "016B40D5C198010000000000000000000000000000000101010101000000020000252C", 2,
      { 1560160861000ULL, 1560160879000ULL } },
    { "000000000000004A8E010000016B412CEE00010000000000000000000000000000000001000500010001010001"
      "0011001D00010010015E2C880002000B000000003544C87A000E000000001DD7E06A00000100002994", 1,
      { 1560166592000ULL } },
};

Test(proto_teltonika, documented_examples_decode_and_are_acknowledged)
{
    for (size_t i = 0; i < sizeof(wiki) / sizeof(wiki[0]); i++) {
        struct conn c;
        conn_login(&c);
        size_t n = hex(pkt, wiki[i].hex);
        cr_assert_eq(devref_crc16_ibm(pkt + 8, n - 12), (pkt[n - 2] << 8 | pkt[n - 1]), "example %zu", i);
        cr_assert_eq(P->frame(c.state, pkt, n), (long)n, "example %zu", i);
        cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK, "example %zu", i);
        cr_assert_eq(reply32(), wiki[i].records, "example %zu", i);
        cr_assert_eq(out.n_reports, 0, "no fix in the examples");
        cr_assert_eq(out.skipped, wiki[i].records);
    }
}

Test(proto_teltonika, documented_examples_with_a_fix_give_the_documented_timestamps)
{
    for (size_t i = 0; i < sizeof(wiki) / sizeof(wiki[0]); i++) {
        struct conn c;
        conn_login(&c);
        size_t n = hex(pkt, wiki[i].hex);
        /* Record offsets: the examples' records are equally long. */
        size_t rl = (n - 15) / wiki[i].records;
        for (unsigned k = 0; k < wiki[i].records; k++) {
            uint8_t *g = pkt + 10 + k * rl + 9;
            struct wbuf w = { g, 0 };
            put(&w, (uint32_t)252562916, 4);            /* 25.2562916 E */
            put(&w, (uint32_t)-546676016, 4);           /* 54.6676016 S */
            g[12] = 6;                                  /* satellites */
        }
        fix_crc(pkt, n);
        cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK, "example %zu", i);
        cr_assert_eq(out.n_reports, wiki[i].records);
        for (unsigned k = 0; k < wiki[i].records; k++)
            assert_report(&out.reports[k], wiki[i].ts[k], -546676016, 252562916, 0);
    }
}

/* In the Codec 8E example, IO 1 (digital input 1) is 1: renamed 239 it
 * is the ignition. */
Test(proto_teltonika, documented_8e_example_with_io_239_gives_ignition_on)
{
    struct conn c;
    conn_login(&c);
    size_t n = hex(pkt, wiki[3].hex);
    size_t id = 8 + 2 + 24 + 4 + 2;     /* first id of the 1-byte group */
    cr_assert_eq(pkt[id], 0x00);
    cr_assert_eq(pkt[id + 1], 0x01);
    pkt[id + 1] = 239;
    pkt[8 + 2 + 21] = 6;
    pkt[8 + 2 + 16] = 1;                /* latitude 0.0000001 */
    fix_crc(pkt, n);
    cr_assert_eq(decode(&c, pkt, n), HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 1);
    cr_assert_eq(out.reports[0].acc, 1);
}

/* ---- everything at once, at random ---- */

Test(proto_teltonika, random_packets_match_the_model)
{
    static struct trec r[64];
    static struct hc_report want[64];
    struct hc_rng rng;
    hc_rng_seed(&rng, 8008);
    struct conn c;
    conn_login(&c);
    int ign = 0;
    for (int p = 0; p < 300; p++) {
        uint8_t codec = hc_rng_next(&rng) & 1 ? 0x8E : 0x08;
        size_t n = hc_rng_next(&rng) % 40;
        for (size_t i = 0; i < n; i++) {
            double lat = hc_rng_unit(&rng) * 180 - 90, lon = hc_rng_unit(&rng) * 360 - 180;
            r[i] = rec(TS0 + hc_rng_next(&rng) % 100000000, lat, lon);
            if (hc_rng_next(&rng) % 8 == 0)
                r[i].sats = 0;
            for (int k = (int)(hc_rng_next(&rng) % 12); k > 0; k--) {
                uint8_t ws[] = { 1, 2, 4, 8, 0 };
                uint8_t w = ws[hc_rng_next(&rng) % (codec == 0x08 ? 4 : 5)];
                uint16_t id = hc_rng_next(&rng) % 6 == 0
                              ? 239 : (uint16_t)(hc_rng_next(&rng) % (codec == 0x08 ? 256 : 2000));
                uint64_t v = hc_rng_next(&rng) % 3 ? hc_rng_next(&rng) : 0;
                if (w == 1 || w == 2 || w == 4)
                    v &= (1ULL << (8 * w)) - 1;
                if (w)
                    io(&r[i], id, w, v);
                else
                    io_x(&r[i], id, (uint16_t)(hc_rng_next(&rng) % 40), v);
            }
        }
        /* The model: time order (stable), ignition carried, no fix skipped. */
        size_t order[64];
        for (size_t i = 0; i < n; i++) {
            size_t j = i;
            while (j > 0 && r[order[j - 1]].ts > r[i].ts) {
                order[j] = order[j - 1];
                j--;
            }
            order[j] = i;
        }
        size_t nw = 0, skipped = 0;
        for (size_t k = 0; k < n; k++) {
            const struct trec *x = &r[order[k]];
            /* In wire order (grouped by width): the last 239 counts. */
            static const uint8_t wire_order[] = { 1, 2, 4, 8, 0 };
            for (size_t g = 0; g < 5; g++)
                for (size_t j = 0; j < x->n_io; j++) {
                    const struct tio *t = &x->io[j];
                    if (t->id != 239 || t->w != wire_order[g])
                        continue;
                    if (t->w)
                        ign = t->v != 0;
                    else
                        ign = t->xlen >= 8 ? t->v != 0
                              : (t->v & ((1ULL << (8 * t->xlen)) - 1)) != 0;
                }
            if (x->sats == 0 || (x->lat == 0 && x->lon == 0)) {
                skipped++;
                continue;
            }
            struct hc_report *o = &want[nw++];
            memset(o, 0, sizeof(*o));
            o->ts = (int64_t)x->ts;
            o->lat = x->lat / 1e7;
            o->lon = x->lon / 1e7;
            o->acc = (uint8_t)ign;
            o->vid_len = (uint8_t)strlen(IMEI);
            memcpy(o->vid, IMEI, o->vid_len);
        }
        size_t len = encode(pkt, codec, r, n);
        cr_assert_eq(P->frame(c.state, pkt, len), (long)len);
        cr_assert_eq(decode(&c, pkt, len), HC_PROTO_OK, "packet %d", p);
        cr_assert_eq(reply32(), n);
        cr_assert_eq(out.n_reports, nw, "packet %d", p);
        cr_assert_eq(out.skipped, skipped);
        for (size_t k = 0; k < nw; k++)
            cr_assert(memcmp(&out.reports[k], &want[k], sizeof(want[k])) == 0,
                      "packet %d report %zu", p, k);
    }
}
