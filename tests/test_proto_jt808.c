/*
 * test_proto_jt808.c — the JT/T 808 decoder (src/proto_jt808.c) against
 * frames this file builds from the specification: both header layouts,
 * escaping, checksums, the messages hubcap handles, the replies it sends
 * (parsed back here by an independent reader), framing of a byte stream
 * however it is cut, and what happens to broken frames.  A few frames
 * published as device examples pin the encoder and reader themselves.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hubcap/detect.h"
#include "hubcap/proto.h"
#include "devref.h"

#define P (&hc_proto_jt808)

static struct hc_proto_out out;
static struct hc_proto_config cfg;
static uint8_t *conn;

static void setup(void)
{
    memset(&cfg, 0, sizeof(cfg));
    cfg.tz_offset_min = 480;
    conn = calloc(1, P->conn_size);
    cr_assert(conn);
    P->conn_init(conn, &cfg);
}

static void teardown(void)
{
    free(conn);
}

TestSuite(jt808, .init = setup, .fini = teardown);

/* A fresh connection with the current cfg. */
static void reconnect(void)
{
    memset(conn, 0, P->conn_size);
    P->conn_init(conn, &cfg);
}

/* ---- building frames ---- */

struct msg {
    uint16_t id;
    int v2019;
    uint8_t version;            /* 2019 protocol version byte */
    const char *phone;          /* digits, right-aligned in 12 or 20 */
    const uint8_t *phone_raw;   /* or these 6 / 10 bytes as they are */
    uint16_t serial;
    int split;
    uint16_t total, index;
    uint16_t enc;               /* encryption bits (10..12) */
    const uint8_t *body;
    size_t blen;
    int len_delta;              /* added to the length in the properties */
    uint8_t sum_xor;            /* spoils the checksum when not 0 */
};

static size_t put_bcd_digits(uint8_t *o, const char *digits, unsigned nbytes)
{
    char d[41];
    size_t n = strlen(digits);
    cr_assert(n <= 2 * nbytes);
    memset(d, '0', 2 * nbytes);
    memcpy(d + 2 * nbytes - n, digits, n);
    for (unsigned i = 0; i < nbytes; i++)
        o[i] = (uint8_t)((d[2 * i] - '0') << 4 | (d[2 * i + 1] - '0'));
    return nbytes;
}

/* The unescaped message (header, body, checksum) into raw; its length. */
static size_t encode_raw(const struct msg *m, uint8_t *raw)
{
    size_t n = 0;
    unsigned props = (unsigned)((int)m->blen + m->len_delta) & 0x3ff;
    props |= (unsigned)m->enc << 10;
    if (m->split)
        props |= 0x2000;
    if (m->v2019)
        props |= 0x4000;
    raw[n++] = (uint8_t)(m->id >> 8);
    raw[n++] = (uint8_t)m->id;
    raw[n++] = (uint8_t)(props >> 8);
    raw[n++] = (uint8_t)props;
    if (m->v2019)
        raw[n++] = m->version;
    unsigned pb = m->v2019 ? 10 : 6;
    if (m->phone_raw) {
        memcpy(raw + n, m->phone_raw, pb);
        n += pb;
    } else {
        n += put_bcd_digits(raw + n, m->phone ? m->phone : "13800138000", pb);
    }
    raw[n++] = (uint8_t)(m->serial >> 8);
    raw[n++] = (uint8_t)m->serial;
    if (m->split) {
        raw[n++] = (uint8_t)(m->total >> 8);
        raw[n++] = (uint8_t)m->total;
        raw[n++] = (uint8_t)(m->index >> 8);
        raw[n++] = (uint8_t)m->index;
    }
    if (m->blen)
        memcpy(raw + n, m->body, m->blen);
    n += m->blen;
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++)
        x ^= raw[i];
    raw[n++] = x ^ m->sum_xor;
    return n;
}


/* A whole frame for m into f (room for 2 * 1100 bytes); its length. */
static size_t encode(const struct msg *m, uint8_t *f)
{
    uint8_t raw[1100];
    return devref_jt808_escape(raw, encode_raw(m, raw), f);
}

static void be16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#define ST_ACC   0x1u
#define ST_FIX   0x2u
#define ST_SOUTH 0x4u
#define ST_WEST  0x8u

/* The 28-byte fixed part of a location: time as "YYMMDDhhmmss". */
static size_t location_body(uint8_t *b, uint32_t status, uint32_t lat_e6, uint32_t lon_e6,
                            const char *when)
{
    be32(b, 0);                 /* alarm flags */
    be32(b + 4, status);
    be32(b + 8, lat_e6);
    be32(b + 12, lon_e6);
    be16(b + 16, 45);           /* altitude m */
    be16(b + 18, 523);          /* speed 0.1 km/h */
    be16(b + 20, 270);          /* direction */
    put_bcd_digits(b + 22, when, 6);
    return 28;
}

/* Expected ms UTC of local time "YYMMDDhhmmss" at tz minutes east. */
static int64_t expect_ts(const char *when, int tz)
{
    int v[6];
    for (int i = 0; i < 6; i++)
        v[i] = (when[2 * i] - '0') * 10 + (when[2 * i + 1] - '0');
    struct tm tm = { .tm_year = 100 + v[0], .tm_mon = v[1] - 1, .tm_mday = v[2],
                     .tm_hour = v[3], .tm_min = v[4], .tm_sec = v[5] };
    return ((int64_t)timegm(&tm) - (int64_t)tz * 60) * 1000;
}

/* ---- reading replies (and frames) independently ---- */

struct parsed {
    uint16_t id, props, serial, total, index;
    int v2019;
    uint8_t version;
    char phone[21];             /* every BCD digit, leading zeros kept */
    uint8_t body[1100];
    size_t blen;
};

/* Parse one whole frame, asserting it is well formed: flags at both ends
 * and nowhere else, valid escapes, checksum, body length. */
static void parse(const uint8_t *f, size_t len, struct parsed *p)
{
    uint8_t raw[1100];
    long got = devref_jt808_unescape(f, len, raw, sizeof(raw));
    cr_assert_neq(got, -1, "frame not flagged, a bare flag or a bad escape");
    cr_assert_neq(got, -2, "checksum");
    size_t n = (size_t)got;
    memset(p, 0, sizeof(*p));
    cr_assert(n >= 13);
    p->id = (uint16_t)(raw[0] << 8 | raw[1]);
    p->props = (uint16_t)(raw[2] << 8 | raw[3]);
    p->v2019 = (p->props & 0x4000) != 0;
    size_t off = 4, pb = 6;
    if (p->v2019) {
        p->version = raw[off++];
        pb = 10;
    }
    for (size_t i = 0; i < pb; i++) {
        p->phone[2 * i] = (char)('0' + (raw[off + i] >> 4));
        p->phone[2 * i + 1] = (char)('0' + (raw[off + i] & 15));
    }
    off += pb;
    p->serial = (uint16_t)(raw[off] << 8 | raw[off + 1]);
    off += 2;
    if (p->props & 0x2000) {
        p->total = (uint16_t)(raw[off] << 8 | raw[off + 1]);
        p->index = (uint16_t)(raw[off + 2] << 8 | raw[off + 3]);
        off += 4;
    }
    cr_assert(n >= off + 1);
    p->blen = n - off - 1;
    cr_assert_eq(p->blen, p->props & 0x3ffu, "body length %zu, properties say %u", p->blen,
                 p->props & 0x3ffu);
    memcpy(p->body, raw + off, p->blen);
}

/* The reply of the last decode as a 0x8001: asserts its fields. */
static struct parsed ack_of(uint16_t serial, uint16_t id, uint8_t result)
{
    struct parsed p;
    cr_assert_gt(out.reply_len, 0, "no reply");
    parse(out.reply, out.reply_len, &p);
    cr_assert_eq(p.id, 0x8001, "reply id %04x", p.id);
    cr_assert_eq(p.blen, 5);
    cr_assert_eq(p.body[0] << 8 | p.body[1], serial, "reply serial");
    cr_assert_eq(p.body[2] << 8 | p.body[3], id, "reply id %04x", p.body[2] << 8 | p.body[3]);
    cr_assert_eq(p.body[4], result, "result %u, want %u", p.body[4], result);
    return p;
}

/* ---- driving the decoder ---- */

static int decode(const uint8_t *f, size_t len)
{
    out.n_reports = 0;
    out.reply_len = 0;
    out.skipped = 0;
    cr_assert_eq(P->frame(conn, f, len), (long)len, "frame() must take the whole frame");
    return P->decode(conn, f, len, &out);
}

static int send_msg(const struct msg *m)
{
    uint8_t f[2300];
    return decode(f, encode(m, f));
}

static int send_location(const char *phone, uint16_t serial, uint32_t status, uint32_t lat,
                         uint32_t lon, const char *when)
{
    uint8_t b[28];
    struct msg m = { .id = 0x0200, .phone = phone, .serial = serial, .body = b,
                     .blen = location_body(b, status, lat, lon, when) };
    return send_msg(&m);
}

static void assert_str(const char *what, const char *got, size_t len, const char *want)
{
    cr_assert(len == strlen(want) && memcmp(got, want, len) == 0, "%s '%.*s', want '%s'", what,
              (int)len, got, want);
}

/* Every report passes hc_report_check and has zeros past its strings. */
static void check_reports(void)
{
    for (size_t k = 0; k < out.n_reports; k++) {
        const struct hc_report *r = &out.reports[k];
        cr_assert_eq(hc_report_check(r), 0);
        for (size_t i = r->vid_len; i < HC_VID_MAX; i++)
            cr_assert_eq(r->vid[i], 0, "vid byte %zu", i);
        for (size_t i = r->maker_len; i < HC_MAKER_MAX; i++)
            cr_assert_eq(r->maker[i], 0, "maker byte %zu", i);
    }
}

static size_t register_body(uint8_t *b, int v2019, const char *maker)
{
    size_t mlen = v2019 ? 11 : 5, model = v2019 ? 30 : 20, tid = v2019 ? 30 : 7;
    size_t n = 0;
    be16(b, 44);                /* province */
    be16(b + 2, 300);           /* city */
    n = 4;
    memset(b + n, 0, mlen);
    memcpy(b + n, maker, strlen(maker));
    n += mlen;
    memset(b + n, 0, model);
    memcpy(b + n, "TRK-9", 5);
    n += model;
    memset(b + n, 0, tid);
    memcpy(b + n, "T001234", 7);
    n += tid;
    b[n++] = 2;                 /* plate colour */
    memcpy(b + n, "B12345", 6);
    return n + 6;
}

/* Register phone with maker; returns the code the 0x8100 reply issued. */
static void do_register(const char *phone, int v2019, const char *maker, uint16_t serial,
                        char *code)
{
    uint8_t b[200];
    struct msg m = { .id = 0x0100, .v2019 = v2019, .version = 1, .phone = phone,
                     .serial = serial, .body = b, .blen = register_body(b, v2019, maker) };
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 0);
    struct parsed p;
    parse(out.reply, out.reply_len, &p);
    cr_assert_eq(p.id, 0x8100);
    cr_assert_eq(p.body[0] << 8 | p.body[1], serial, "0x8100 answers the register's serial");
    cr_assert_eq(p.body[2], 0, "registered");
    memcpy(code, p.body + 3, p.blen - 3);
    code[p.blen - 3] = 0;
}

/* ---- published examples pin the encoder and the reader ---- */

static size_t hex(const char *s, uint8_t *o)
{
    size_t n = 0;
    unsigned v;
    int k;
    while (sscanf(s, " %2x%n", &v, &k) == 1) {
        o[n++] = (uint8_t)v;
        s += k;
    }
    return n;
}

Test(jt808, published_location_example_decodes)
{
    uint8_t f[200];
    size_t n = hex("7E 02 00 00 52 00 20 02 60 43 23 00 A4 00 02 00 00 00 0C 00 02 01 58 B9 1B"
                   " 06 CB 70 61 00 46 00 00 00 59 21 09 22 16 37 58 01 04 00 00 00 01 03 02 00"
                   " 00 25 04 00 00 00 01 30 01 11 31 01 10 E3 01 00 D5 1B 02 20 02 60 43 23 27"
                   " 95 93 78 61 60 00 12 20 00 00 12 34 27 95 93 78 61 58 00 12 86 7E", f);
    cr_assert_eq(decode(f, n), HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 1);
    const struct hc_report *r = &out.reports[0];
    assert_str("vid", r->vid, r->vid_len, "2002604323");
    cr_assert_eq(r->lat, 22.591771);
    cr_assert_eq(r->lon, 113.995873);
    cr_assert_eq(r->acc, 0);
    cr_assert_eq(r->ts, 1632299878000LL, "2021-09-22 16:37:58 +08:00");
    check_reports();
    struct parsed p = ack_of(0x00a4, 0x0200, 0);
    cr_assert_str_eq(p.phone, "002002604323");

    /* The same frame rebuilt by this file's encoder is byte-identical. */
    uint8_t g[200];
    struct msg m = { .id = 0x0200, .phone = "2002604323", .serial = 0xa4, .body = f + 13,
                     .blen = 82 };
    cr_assert_eq(encode(&m, g), n);
    cr_assert(memcmp(f, g, n) == 0);
}

Test(jt808, published_auth_and_ack_examples_parse)
{
    uint8_t f[64];
    size_t n = hex("7E 01 02 00 0D 00 20 02 60 43 25 00 01 38 33 30 30 32 30 30 32 36 30 34 33"
                   " 32 13 7E", f);
    cr_assert_eq(decode(f, n), HC_PROTO_OK);
    ack_of(1, 0x0102, 0);       /* no code was issued here: accepted */

    struct parsed p;
    n = hex("7E 80 01 00 05 00 20 02 60 43 23 00 09 00 EE 02 00 00 43 7E", f);
    parse(f, n, &p);
    cr_assert_eq(p.id, 0x8001);
    cr_assert_eq(p.serial, 9);
    cr_assert_eq(p.blen, 5);
    cr_assert(memcmp(p.body, "\x00\xee\x02\x00\x00", 5) == 0);
}

/* ---- the operations table ---- */

Test(jt808, table_names_port_and_largest_frame)
{
    cr_assert_str_eq(P->name, "jt808");
    cr_assert_eq(P->default_port, 5015);
    /* 2019 header with split fields (21) + 1023 body + checksum, all escaped, + flags */
    cr_assert_eq(P->max_frame, 2 + 2 * (21 + 1023 + 1));
    cr_assert_leq(P->conn_size, 512, "per-connection state stays small");
}

/* ---- registration and authentication ---- */

Test(jt808, register_replies_code_and_names_maker_of_later_reports)
{
    char code[80];
    cr_assert_eq(send_location("13800138000", 1, ST_FIX, 22543000, 114058000, "260115080000"),
                 HC_PROTO_OK);
    cr_assert_eq(out.reports[0].maker_len, 0, "no maker before a register");

    do_register("13800138000", 0, "ACME ", 0x1234, code);
    cr_assert_str_eq(code, "HC13800138000", "derived from the phone");

    cr_assert_eq(send_location("13800138000", 2, ST_FIX, 22543000, 114058000, "260115080100"),
                 HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 1);
    assert_str("maker", out.reports[0].maker, out.reports[0].maker_len, "ACME");
    check_reports();

    /* Another phone on the same connection never registered: no maker. */
    cr_assert_eq(send_location("13900000001", 3, ST_FIX, 22543000, 114058000, "260115080200"),
                 HC_PROTO_OK);
    cr_assert_eq(out.reports[0].maker_len, 0);
    check_reports();
}

Test(jt808, register_issues_configured_code)
{
    char code[80];
    strcpy(cfg.auth_code, "s3cr3t~}");     /* ~ is 0x7e, } is 0x7d: escaped on the wire */
    reconnect();
    do_register("13800138000", 0, "ACME", 7, code);
    cr_assert_str_eq(code, "s3cr3t~}");
}

Test(jt808, register_with_unprintable_manufacturer_registers_without_maker)
{
    char code[80];
    do_register("13800138000", 0, "\x01\x02\xff", 7, code);
    cr_assert_str_eq(code, "HC13800138000");
    send_location("13800138000", 8, ST_FIX, 1000000, 2000000, "260115080000");
    cr_assert_eq(out.reports[0].maker_len, 0);
    do_register("13800138000", 0, "", 9, code);
    send_location("13800138000", 10, ST_FIX, 1000000, 2000000, "260115080001");
    cr_assert_eq(out.reports[0].maker_len, 0, "all-NUL id: no maker");
}

Test(jt808, register_body_too_short_is_bad_length_with_error_reply)
{
    uint8_t b[8] = { 0, 44, 1, 44, 'A', 'C' };
    struct msg m = { .id = 0x0100, .serial = 3, .body = b, .blen = 6 };
    cr_assert_eq(send_msg(&m), HC_PROTO_BAD_LENGTH);
    ack_of(3, 0x0100, 2);
}

Test(jt808, auth_checks_the_code_issued_on_this_connection)
{
    char code[80];
    uint8_t b[80];
    do_register("13800138000", 0, "ACME", 5, code);

    struct msg m = { .id = 0x0102, .serial = 6, .body = (const uint8_t *)code,
                     .blen = strlen(code) };
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    ack_of(6, 0x0102, 0);

    memcpy(b, code, strlen(code) + 1);  /* NUL-terminated STRING form */
    m = (struct msg){ .id = 0x0102, .serial = 7, .body = b, .blen = strlen(code) + 1 };
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    ack_of(7, 0x0102, 0);

    m = (struct msg){ .id = 0x0102, .serial = 8, .body = (const uint8_t *)"WRONG", .blen = 5 };
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    ack_of(8, 0x0102, 1);

    /* A fresh connection issued nothing: the terminal's old code is taken. */
    reconnect();
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    ack_of(8, 0x0102, 0);
}

Test(jt808, auth_2019_layout_has_length_imei_and_version)
{
    char code[80];
    uint8_t b[120];
    do_register("013912345678", 1, "MAKER-2019", 1, code);
    cr_assert_str_eq(code, "HC13912345678");
    size_t n = 0;
    b[n++] = (uint8_t)strlen(code);
    memcpy(b + n, code, strlen(code));
    n += strlen(code);
    memcpy(b + n, "860000000000001", 15);
    n += 15;
    memset(b + n, 0, 20);
    memcpy(b + n, "V1.2.3", 6);
    n += 20;
    struct msg m = { .id = 0x0102, .v2019 = 1, .version = 1, .phone = "013912345678",
                     .serial = 2, .body = b, .blen = n };
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    struct parsed p = ack_of(2, 0x0102, 0);
    cr_assert(p.v2019);
    cr_assert_eq(p.version, 1);
    cr_assert_str_eq(p.phone, "00000000013912345678");

    b[0] = 3;                   /* "HC1" */
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    ack_of(2, 0x0102, 1);

    b[0] = (uint8_t)n;          /* beyond the body */
    cr_assert_eq(send_msg(&m), HC_PROTO_BAD_LENGTH);
    ack_of(2, 0x0102, 2);
}

Test(jt808, logout_forgets_the_registration)
{
    char code[80];
    do_register("13800138000", 0, "ACME", 1, code);
    struct msg m = { .id = 0x0003, .serial = 2 };
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    ack_of(2, 0x0003, 0);
    send_location("13800138000", 3, ST_FIX, 1000000, 2000000, "260115080000");
    cr_assert_eq(out.reports[0].maker_len, 0);
}

/* ---- heartbeat, replies ---- */

Test(jt808, heartbeat_gets_general_reply_and_no_reports)
{
    struct msg m = { .id = 0x0002, .phone = "13800138000", .serial = 0x0102 };
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 0);
    cr_assert_eq(out.skipped, 0);
    struct parsed p = ack_of(0x0102, 0x0002, 0);
    cr_assert(!p.v2019);
    cr_assert_str_eq(p.phone, "013800138000", "reply to the terminal's own phone");
    cr_assert_eq(p.props & 0xfc00u, 0, "no split, no encryption, 2013 layout");
}

Test(jt808, platform_serial_counts_up_per_connection)
{
    struct msg m = { .id = 0x0002, .serial = 9 };
    for (unsigned i = 0; i < 5; i++) {
        send_msg(&m);
        struct parsed p = ack_of(9, 0x0002, 0);
        cr_assert_eq(p.serial, i);
    }
    reconnect();
    send_msg(&m);
    cr_assert_eq(ack_of(9, 0x0002, 0).serial, 0, "a new connection counts from 0");
}

Test(jt808, terminal_general_reply_is_not_answered)
{
    uint8_t b[5] = { 0, 1, 0x81, 0x03, 0 };
    struct msg m = { .id = 0x0001, .serial = 4, .body = b, .blen = 5 };
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    cr_assert_eq(out.reply_len, 0);
}

Test(jt808, unknown_message_is_unsupported_with_result_3)
{
    uint8_t b[4] = { 1, 2, 3, 4 };
    struct msg m = { .id = 0x0900, .serial = 77, .body = b, .blen = 4 };
    cr_assert_eq(send_msg(&m), HC_PROTO_UNSUPPORTED);
    cr_assert_eq(out.n_reports, 0);
    ack_of(77, 0x0900, 3);
}

Test(jt808, encrypted_body_is_unsupported)
{
    uint8_t b[28];
    struct msg m = { .id = 0x0200, .serial = 5, .enc = 1, .body = b,
                     .blen = location_body(b, ST_FIX, 1, 1, "260101000000") };
    cr_assert_eq(send_msg(&m), HC_PROTO_UNSUPPORTED);
    cr_assert_eq(out.n_reports, 0);
    ack_of(5, 0x0200, 3);
}

/* ---- locations ---- */

Test(jt808, location_fields_and_hemisphere_bits)
{
    static const struct { uint32_t status; double lat, lon; uint8_t acc; } c[] = {
        { ST_FIX, 22.543096, 114.057865, 0 },
        { ST_FIX | ST_ACC, 22.543096, 114.057865, 1 },
        { ST_FIX | ST_SOUTH, -22.543096, 114.057865, 0 },
        { ST_FIX | ST_WEST, 22.543096, -114.057865, 0 },
        { ST_FIX | ST_SOUTH | ST_WEST | ST_ACC, -22.543096, -114.057865, 1 },
        { ST_FIX | 0xfff00000u, 22.543096, 114.057865, 0 },     /* other bits ignored */
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        cr_assert_eq(send_location("013800138000", (uint16_t)i, c[i].status, 22543096,
                                   114057865, "260115083000"), HC_PROTO_OK);
        cr_assert_eq(out.n_reports, 1);
        const struct hc_report *r = &out.reports[0];
        assert_str("vid", r->vid, r->vid_len, "13800138000");
        cr_assert_eq(r->lat, c[i].lat, "case %zu lat %.9f", i, r->lat);
        cr_assert_eq(r->lon, c[i].lon, "case %zu lon %.9f", i, r->lon);
        cr_assert_eq(r->acc, c[i].acc, "case %zu acc", i);
        cr_assert_eq(r->ts, expect_ts("260115083000", 480));
        check_reports();
        ack_of((uint16_t)i, 0x0200, 0);
    }
}

Test(jt808, location_time_zone_and_day_rollover)
{
    static const struct { int tz; const char *when; } c[] = {
        { 480, "260101030000" },    /* 2025-12-31T19:00Z: back over a year */
        { 480, "240301050000" },    /* back into a leap day */
        { 480, "250301050000" },    /* back into Feb 28 */
        { 0, "261231235959" },
        { -300, "261231210000" },   /* UTC-5: forward into the next year */
        { 345, "000101000000" },    /* the first representable time, UTC+5:45 */
        { 480, "991231235959" },
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        cfg.tz_offset_min = c[i].tz;
        reconnect();
        cr_assert_eq(send_location("1", 1, ST_FIX, 1000000, 1000000, c[i].when), HC_PROTO_OK);
        cr_assert_eq(out.n_reports, 1, "case %zu", i);
        cr_assert_eq(out.reports[0].ts, expect_ts(c[i].when, c[i].tz), "case %zu (%s)", i,
                     c[i].when);
    }
    cr_assert_eq(expect_ts("260101030000", 480), 1767207600000LL, "2025-12-31T19:00:00Z");
}

Test(jt808, location_without_fix_or_with_bad_time_is_skipped_but_acknowledged)
{
    static const struct { uint32_t status; uint32_t lat; const char *when; } c[] = {
        { 0, 22000000, "260115083000" },                /* no fix */
        { ST_ACC, 22000000, "260115083000" },
        { ST_FIX, 22000000, "261315083000" },           /* month 13 */
        { ST_FIX, 22000000, "250229083000" },           /* 2025 is no leap year */
        { ST_FIX, 22000000, "260115243000" },           /* hour 24 */
        { ST_FIX, 22000000, "260100083000" },           /* day 0 */
        { ST_FIX, 91000000, "260115083000" },           /* latitude 91 */
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        cr_assert_eq(send_location("1", 40, c[i].status, c[i].lat, 1000000, c[i].when),
                     HC_PROTO_OK);
        cr_assert_eq(out.n_reports, 0, "case %zu", i);
        cr_assert_eq(out.skipped, 1, "case %zu", i);
        ack_of(40, 0x0200, 0);
    }
    /* A nibble that is no digit. */
    uint8_t b[28];
    location_body(b, ST_FIX, 1, 1, "260115083000");
    b[27] = 0x5a;
    struct msg m = { .id = 0x0200, .body = b, .blen = 28 };
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    cr_assert_eq(out.skipped, 1);
}

Test(jt808, location_extra_items_are_ignored)
{
    uint8_t b[60];
    size_t n = location_body(b, ST_FIX, 30000000, 120000000, "260115083000");
    static const uint8_t extra[] = { 0x01, 4, 0, 0, 0x12, 0x34, 0x30, 1, 0x1f, 0x31, 1, 9 };
    memcpy(b + n, extra, sizeof(extra));
    struct msg m = { .id = 0x0200, .body = b, .blen = n + sizeof(extra) };
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 1);
    cr_assert_eq(out.reports[0].lat, 30.0);
}

Test(jt808, location_body_too_short_is_bad_length)
{
    uint8_t b[28];
    location_body(b, ST_FIX, 1, 1, "260115083000");
    struct msg m = { .id = 0x0200, .serial = 12, .body = b, .blen = 27 };
    cr_assert_eq(send_msg(&m), HC_PROTO_BAD_LENGTH);
    cr_assert_eq(out.n_reports, 0);
    ack_of(12, 0x0200, 2);
}

Test(jt808, header_2019_with_ten_byte_phone)
{
    uint8_t b[28];
    struct msg m = { .id = 0x0200, .v2019 = 1, .version = 1, .phone = "12345678901234567890",
                     .serial = 0x55, .body = b,
                     .blen = location_body(b, ST_FIX | ST_ACC, 39904200, 116407400,
                                           "260115083000") };
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 1);
    assert_str("vid", out.reports[0].vid, out.reports[0].vid_len, "12345678901234567890");
    cr_assert_eq(out.reports[0].acc, 1);
    struct parsed p = ack_of(0x55, 0x0200, 0);
    cr_assert(p.v2019);
    cr_assert_eq(p.version, 1);
    cr_assert_str_eq(p.phone, "12345678901234567890");

    /* The same terminal in either layout is the same vehicle. */
    m.phone = "00000000013800138000";
    send_msg(&m);
    assert_str("vid", out.reports[0].vid, out.reports[0].vid_len, "13800138000");
    send_location("013800138000", 1, ST_FIX, 1, 1, "260115083000");
    assert_str("vid", out.reports[0].vid, out.reports[0].vid_len, "13800138000");
    m.phone = "0";
    send_msg(&m);
    assert_str("vid", out.reports[0].vid, out.reports[0].vid_len, "0");
}

Test(jt808, register_2019_takes_the_eleven_byte_manufacturer)
{
    char code[80];
    do_register("99912345678", 1, "ABCDEFGHIJK", 1, code);
    uint8_t b[28];
    struct msg m = { .id = 0x0200, .v2019 = 1, .version = 1, .phone = "99912345678",
                     .body = b, .blen = location_body(b, ST_FIX, 1, 1, "260115083000") };
    send_msg(&m);
    assert_str("maker", out.reports[0].maker, out.reports[0].maker_len, "ABCDEFGHIJK");
    check_reports();
}

/* ---- batches ---- */

static size_t batch_body(uint8_t *b, unsigned count, const uint32_t *status, size_t extra)
{
    size_t n = 3;
    be16(b, count);
    b[2] = 1;                   /* blind-area re-upload */
    for (unsigned i = 0; i < count; i++) {
        char when[24];
        snprintf(when, sizeof(when), "2601150830%02u", i % 60);
        be16(b + n, (unsigned)(28 + extra));
        location_body(b + n + 2, status[i], 22000000 + i, 114000000 + i, when);
        memset(b + n + 30, 0x7e, extra);
        n += 30 + extra;
    }
    return n;
}

Test(jt808, batch_yields_one_report_per_item)
{
    uint32_t st[10];
    for (unsigned i = 0; i < 10; i++)
        st[i] = ST_FIX | (i & 1 ? ST_ACC : 0);
    st[4] = 0;                  /* no fix: skipped */
    uint8_t b[1024];
    struct msg m = { .id = 0x0704, .serial = 300, .body = b,
                     .blen = batch_body(b, 10, st, 4) };
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 9);
    cr_assert_eq(out.skipped, 1);
    for (size_t k = 0, i = 0; i < 10; i++) {
        if (i == 4)
            continue;
        char when[24];
        snprintf(when, sizeof(when), "2601150830%02zu", i % 60);
        cr_assert_eq(out.reports[k].lat, (22000000 + i) / 1e6);
        cr_assert_eq(out.reports[k].acc, i & 1);
        cr_assert_eq(out.reports[k].ts, expect_ts(when, 480));
        k++;
    }
    check_reports();
    ack_of(300, 0x0704, 0);
}

Test(jt808, batch_of_most_items_fits_one_frame)
{
    uint32_t st[34];
    for (unsigned i = 0; i < 34; i++)
        st[i] = ST_FIX;
    uint8_t b[1024];
    struct msg m = { .id = 0x0704, .body = b, .blen = batch_body(b, 34, st, 0) };
    cr_assert_eq(m.blen, 3 + 34 * 30);
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 34);
}

Test(jt808, batch_with_bad_item_lengths_is_dropped_whole)
{
    uint32_t st[3] = { ST_FIX, ST_FIX, ST_FIX };
    uint8_t b[200];
    size_t n = batch_body(b, 3, st, 0);
    struct msg m = { .id = 0x0704, .serial = 9, .body = b, .blen = n };

    be16(b, 4);                 /* one item more than there is */
    cr_assert_eq(send_msg(&m), HC_PROTO_BAD_LENGTH);
    cr_assert_eq(out.n_reports, 0);
    ack_of(9, 0x0704, 2);

    be16(b, 2);                 /* bytes left over */
    cr_assert_eq(send_msg(&m), HC_PROTO_BAD_LENGTH);

    be16(b, 3);
    be16(b + 3 + 30, 27);       /* item shorter than a location */
    cr_assert_eq(send_msg(&m), HC_PROTO_BAD_LENGTH);

    be16(b + 3 + 30, 29 + 30 + 2);  /* item running past the body */
    cr_assert_eq(send_msg(&m), HC_PROTO_BAD_LENGTH);

    be16(b + 3 + 30, 28);
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 3);

    m.blen = 2;                 /* not even the count and type */
    cr_assert_eq(send_msg(&m), HC_PROTO_BAD_LENGTH);
}

/* ---- split packets ---- */

Test(jt808, split_pieces_are_acknowledged_not_reassembled)
{
    uint8_t b[28];
    struct msg m = { .id = 0x0200, .serial = 20, .split = 1, .total = 2, .index = 1, .body = b,
                     .blen = location_body(b, ST_FIX, 1000000, 1000000, "260115083000") };
    cr_assert_eq(send_msg(&m), HC_PROTO_UNSUPPORTED);
    cr_assert_eq(out.n_reports, 0);
    ack_of(20, 0x0200, 0);

    m.total = 1;                /* one packet of one: an ordinary message */
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 1);
    ack_of(20, 0x0200, 0);

    m.v2019 = 1;
    cr_assert_eq(send_msg(&m), HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 1);
}

/* ---- escaping ---- */

/* Tweak the last extra byte of a location until the checksum is want. */
static size_t location_with_checksum(struct msg *m, uint8_t *b, uint8_t want)
{
    for (unsigned v = 0; v < 256; v++) {
        b[m->blen - 1] = (uint8_t)v;
        uint8_t raw[1100];
        size_t n = encode_raw(m, raw);
        if (raw[n - 1] == want)
            return n;
    }
    cr_assert_fail("no byte gives checksum %02x", want);
    return 0;
}

Test(jt808, escapes_in_every_field_decode)
{
    /* serial 7e7d, body length 0x7e (126: a location with 98 bytes of
     * extras), latitude bytes 7d 7e 7d 7e, and the checksum 7e then 7d. */
    uint8_t b[126];
    location_body(b, ST_FIX, 0x017d7e7d, 0x067e7d7e, "260115083000");
    memset(b + 28, 0x7d, 98);
    struct msg m = { .id = 0x0200, .serial = 0x7e7d, .body = b, .blen = 126 };
    for (int want = 0x7d; want <= 0x7e; want++) {
        location_with_checksum(&m, b, (uint8_t)want);
        uint8_t f[600];
        size_t n = encode(&m, f);
        cr_assert_eq(f[n - 3], 0x7d, "checksum escaped");
        cr_assert_eq(f[n - 2], want == 0x7e ? 2 : 1);
        cr_assert_eq(decode(f, n), HC_PROTO_OK);
        cr_assert_eq(out.n_reports, 1);
        cr_assert_eq(out.reports[0].lat, 0x017d7e7d / 1e6);
        cr_assert_eq(out.reports[0].lon, 0x067e7d7e / 1e6);
        ack_of(0x7e7d, 0x0200, 0);  /* the reply escapes the echoed serial */
    }

    /* Message id and protocol version bytes: an unknown 0x7e7d message in
     * the 2019 layout with version 0x7e is answered in kind. */
    struct msg u = { .id = 0x7e7d, .v2019 = 1, .version = 0x7e, .phone = "1", .serial = 1 };
    cr_assert_eq(send_msg(&u), HC_PROTO_UNSUPPORTED);
    struct parsed p = ack_of(1, 0x7e7d, 3);
    cr_assert_eq(p.version, 0x7e);

    /* Phone bytes are BCD and cannot be 7e/7d, but bytes that are get a
     * vid (nibbles past 9 as letters) and an escaped reply. */
    static const uint8_t phone[6] = { 0x00, 0x00, 0x7e, 0x7d, 0x12, 0x34 };
    struct msg q = { .id = 0x0200, .phone_raw = phone, .serial = 2, .body = b, .blen = 28 };
    location_body(b, ST_FIX, 1, 1, "260115083000");
    cr_assert_eq(send_msg(&q), HC_PROTO_OK);
    assert_str("vid", out.reports[0].vid, out.reports[0].vid_len, "7E7D1234");
    uint8_t raw[1100];
    size_t k = 0;
    for (size_t i = 1; i + 1 < out.reply_len; i++, k++)
        raw[k] = out.reply[i] == 0x7d ? (out.reply[++i] == 1 ? 0x7d : 0x7e) : out.reply[i];
    cr_assert(memcmp(raw + 4, phone, 6) == 0, "reply to the same phone bytes");

    /* Properties bytes: body length 0x17e has 7e in its low byte. */
    uint8_t big[0x17e];
    memset(big, 0, sizeof(big));
    struct msg h = { .id = 0x0002, .body = big, .blen = 0x17e };
    cr_assert_eq(send_msg(&h), HC_PROTO_OK);
    ack_of(0, 0x0002, 0);
}

Test(jt808, bad_escape_is_bad_length)
{
    uint8_t f[100];
    struct msg m = { .id = 0x0002, .serial = 1 };
    size_t n = encode(&m, f);
    /* 7d 03 inside the serial (and a 7d right before the closing flag):
     * neither is an escape. */
    uint8_t g[100];
    memcpy(g, f, n);
    memmove(g + 13, g + 12, n - 12);
    g[11] = 0x7d;
    g[12] = 0x03;
    cr_assert_eq(decode(g, n + 1), HC_PROTO_BAD_LENGTH);
    cr_assert_eq(out.reply_len, 0);
    memcpy(g, f, n);
    g[n - 1] = 0x7d;
    g[n] = 0x7e;
    cr_assert_eq(decode(g, n + 1), HC_PROTO_BAD_LENGTH);
}

/* ---- broken frames ---- */

Test(jt808, wrong_checksum_is_dropped_and_next_frame_decodes)
{
    uint8_t b[28], f[200];
    struct msg m = { .id = 0x0200, .serial = 1, .sum_xor = 0x40, .body = b,
                     .blen = location_body(b, ST_FIX, 1000000, 1000000, "260115083000") };
    size_t n = encode(&m, f);
    m.sum_xor = 0;
    m.serial = 2;
    size_t n2 = encode(&m, f + n);
    cr_assert_eq(decode(f, n), HC_PROTO_BAD_CHECKSUM);
    cr_assert_eq(out.n_reports, 0);
    cr_assert_eq(out.reply_len, 0);
    cr_assert_eq(decode(f + n, n2), HC_PROTO_OK);
    cr_assert_eq(out.n_reports, 1);
    ack_of(2, 0x0200, 0);

    /* A flipped body byte, checksum unchanged. */
    n = encode(&m, f);
    f[20] ^= 0x01;
    cr_assert_eq(decode(f, n), HC_PROTO_BAD_CHECKSUM);
}

Test(jt808, body_length_mismatch_is_bad_length)
{
    uint8_t b[28];
    location_body(b, ST_FIX, 1, 1, "260115083000");
    for (int d = -2; d <= 2; d++) {
        if (d == 0)
            continue;
        struct msg m = { .id = 0x0200, .body = b, .blen = 28, .len_delta = d };
        cr_assert_eq(send_msg(&m), HC_PROTO_BAD_LENGTH, "delta %d", d);
        cr_assert_eq(out.n_reports, 0);
        cr_assert_eq(out.reply_len, 0, "a header we cannot trust gets no reply");
    }
}

Test(jt808, too_short_for_a_header_is_bad_length)
{
    uint8_t f[40];
    for (size_t n = 0; n < 12; n++) {
        uint8_t raw[16] = { 0x00, 0x02 };
        uint8_t x = 0;
        for (size_t i = 0; i < n; i++)
            x ^= raw[i];
        raw[n] = x;
        size_t len = devref_jt808_escape(raw, n + 1, f);
        out.reply_len = 0;
        cr_assert_eq(P->decode(conn, f, len, &out), HC_PROTO_BAD_LENGTH, "%zu bytes", n);
    }
    /* 2019 flag set but only a 2013-sized header there. */
    struct msg m = { .id = 0x0002 };
    uint8_t raw[40];
    size_t n = encode_raw(&m, raw);
    raw[2] |= 0x40;
    raw[n - 1] ^= 0x40;
    cr_assert_eq(decode(f, devref_jt808_escape(raw, n, f)), HC_PROTO_BAD_LENGTH);
}

/* ---- framing a byte stream ---- */

Test(jt808, frame_skips_garbage_and_empty_frames)
{
    uint8_t s[200];
    size_t n = hex("01 02 03", s);
    struct msg m = { .id = 0x0002 };
    size_t f = encode(&m, s + n);
    cr_assert_eq(P->frame(conn, s, n + f), -3);
    cr_assert_eq(P->frame(conn, s + 3, f), (long)f);
    cr_assert_eq(P->frame(conn, s, 3), -3, "all garbage");
    cr_assert_eq(P->frame(conn, s, 0), 0);

    s[0] = 0x7e;
    s[1] = 0x7e;
    cr_assert_eq(P->frame(conn, s, 2), -1, "empty frame: skip one flag");
    cr_assert_eq(P->frame(conn, s, 1), 0, "a lone flag waits");
    cr_assert_eq(P->frame(conn, s + 3, f - 1), 0, "no closing flag yet");

    /* Flags around fewer bytes than a header and checksum: the first
     * closed a frame we did not see; skip to the second. */
    s[1] = 0x01;
    s[2] = 0x7e;
    cr_assert_eq(P->frame(conn, s, n + f), -2);
    memset(s + 1, 0x33, 12);
    s[13] = 0x7e;
    cr_assert_eq(P->frame(conn, s, 14), -13, "12 bytes between flags");
    s[13] = 0x33;
    s[14] = 0x7e;
    cr_assert_eq(P->frame(conn, s, 15), 15, "13 bytes: a frame to decode");
}

Test(jt808, frame_without_closing_flag_is_skipped_within_max_frame)
{
    size_t max = P->max_frame;
    uint8_t *s = calloc(1, 2 * max + 10);
    memset(s, 0x11, 2 * max + 10);
    s[0] = 0x7e;
    for (size_t len = 1; len < max; len += 97)
        cr_assert_eq(P->frame(conn, s, len), 0);
    cr_assert_eq(P->frame(conn, s, max), -(long)max);
    s[max + 5] = 0x7e;
    cr_assert_eq(P->frame(conn, s, max + 20), -(long)(max + 5), "up to the next flag");
    s[max - 1] = 0x7e;
    cr_assert_eq(P->frame(conn, s, max), (long)max, "a closing flag at max_frame - 1 counts");
    free(s);
}

Test(jt808, largest_frame_is_within_max_frame)
{
    static uint8_t body[1023], f[2200];
    memset(body, 0x7e, sizeof(body));
    struct msg m = { .id = 0x0002, .v2019 = 1, .version = 0x7d, .split = 1, .total = 1,
                     .index = 1, .serial = 0x7e7e, .body = body, .blen = sizeof(body) };
    size_t n = encode(&m, f);
    cr_assert_leq(n, P->max_frame);
    cr_assert_eq(decode(f, n), HC_PROTO_OK);
    ack_of(0x7e7e, 0x0002, 0);
}

/* What a front collects from a stream. */
struct collected {
    struct hc_report r[64];
    size_t n;
    uint8_t replies[4096];
    size_t rlen;
    int rc[8];                  /* count per result + 1 */
};

/* Feed s[0..n) as if it arrived in pieces ending at cuts[] (ascending,
 * last == n), through frame() and decode() on a fresh connection. */
static void run_stream(const uint8_t *s, size_t n, const size_t *cuts, size_t ncuts,
                       struct collected *c)
{
    uint8_t buf[4096];
    size_t have = 0, fed = 0;
    memset(c, 0, sizeof(*c));
    reconnect();
    for (size_t k = 0; k < ncuts; k++) {
        memcpy(buf + have, s + fed, cuts[k] - fed);
        have += cuts[k] - fed;
        fed = cuts[k];
        for (;;) {
            long r = P->frame(conn, buf, have);
            cr_assert_leq(r, (long)have);
            if (r == 0) {
                cr_assert_lt(have, P->max_frame, "asked for more than max_frame");
                break;
            }
            size_t used = r > 0 ? (size_t)r : (size_t)-r;
            if (r > 0) {
                out.n_reports = out.reply_len = 0;
                out.skipped = 0;
                out.resync = 0;
                int rc = P->decode(conn, buf, (size_t)r, &out);
                if (out.resync)
                    used--;             /* as the front does: keep the closing flag */
                c->rc[rc + 1]++;
                for (size_t i = 0; i < out.n_reports; i++)
                    c->r[c->n++] = out.reports[i];
                memcpy(c->replies + c->rlen, out.reply, out.reply_len);
                c->rlen += out.reply_len;
            }
            memmove(buf, buf + used, have - used);
            have -= used;
        }
    }
}

static size_t build_stream(uint8_t *s)
{
    size_t n = 0;
    uint8_t b[1024];
    uint32_t st[4] = { ST_FIX, ST_FIX | ST_ACC, ST_FIX | ST_SOUTH, ST_FIX | ST_WEST };
    n += hex("00 11 22", s + n);                    /* garbage first */
    struct msg reg = { .id = 0x0100, .serial = 1, .body = b,
                       .blen = register_body(b, 0, "ACME") };
    n += encode(&reg, s + n);
    struct msg loc = { .id = 0x0200, .serial = 0x7e02, .body = b,
                       .blen = location_body(b, ST_FIX, 0x017e7d7e, 0x7d7e, "260115083000") };
    n += encode(&loc, s + n);
    s[n++] = 0x7e;                                  /* an empty frame */
    s[n++] = 0x7e;
    n += hex("7d 7d 01", s + n);                    /* garbage between frames */
    uint8_t bb[200];
    struct msg bat = { .id = 0x0704, .serial = 3, .body = bb, .blen = batch_body(bb, 4, st, 2) };
    n += encode(&bat, s + n);
    loc.sum_xor = 1;                                /* a bad one */
    n += encode(&loc, s + n);
    loc.sum_xor = 0;
    struct msg hb = { .id = 0x0002, .serial = 4 };
    n += encode(&hb, s + n);
    loc.serial = 5;
    loc.v2019 = 1;
    n += encode(&loc, s + n);
    return n;
}

static void assert_same(const struct collected *a, const struct collected *b, const char *how)
{
    cr_assert_eq(a->n, b->n, "%s: %zu reports, want %zu", how, a->n, b->n);
    cr_assert(memcmp(a->r, b->r, a->n * sizeof(a->r[0])) == 0, "%s: reports differ", how);
    cr_assert_eq(a->rlen, b->rlen, "%s: reply bytes", how);
    cr_assert(memcmp(a->replies, b->replies, a->rlen) == 0, "%s: replies differ", how);
    cr_assert(memcmp(a->rc, b->rc, sizeof(a->rc)) == 0, "%s: results differ", how);
}

Test(jt808, stream_cut_anywhere_gives_the_same_reports)
{
    static uint8_t s[4096];
    static struct collected whole, cut;
    size_t n = build_stream(s);
    run_stream(s, n, &n, 1, &whole);
    cr_assert_eq(whole.n, 1 + 4 + 1, "location, batch of 4, 2019 location: %zu", whole.n);
    cr_assert_eq(whole.rc[HC_PROTO_OK + 1], 5);
    cr_assert_eq(whole.rc[HC_PROTO_BAD_CHECKSUM + 1], 1);
    assert_str("maker", whole.r[0].maker, whole.r[0].maker_len, "ACME");

    /* Byte by byte: frame() sees every growing prefix. */
    static size_t cuts[sizeof(s)];
    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    run_stream(s, n, cuts, n, &cut);
    assert_same(&cut, &whole, "one byte at a time");
    /* Two pieces, cut at every position. */
    for (size_t k = 1; k < n; k++) {
        size_t two[2] = { k, n };
        run_stream(s, n, two, 2, &cut);
        char how[32];
        snprintf(how, sizeof(how), "cut at %zu", k);
        assert_same(&cut, &whole, how);
    }
}

Test(jt808, truncated_frame_never_decodes)
{
    uint8_t b[28], f[200];
    struct msg m = { .id = 0x0200, .serial = 0x7d7e, .body = b,
                     .blen = location_body(b, ST_FIX, 0x7e7e7e7e, 1, "260115083000") };
    size_t n = encode(&m, f);
    for (size_t k = 0; k < n; k++)
        cr_assert_eq(P->frame(conn, f, k), 0, "prefix of %zu bytes", k);
    /* Cut anywhere and closed early: never a report. */
    for (size_t k = 1; k + 1 < n; k++) {
        uint8_t g[200];
        memcpy(g, f, k);
        g[k] = 0x7e;
        out.n_reports = out.reply_len = 0;
        out.skipped = 0;
        int rc = P->decode(conn, g, k + 1, &out);
        cr_assert_neq(rc, HC_PROTO_OK, "cut at %zu decoded", k);
        cr_assert_eq(out.n_reports, 0);
    }
}

Test(jt808, a_stray_flag_in_garbage_does_not_cost_the_next_frame)
{
    static uint8_t s[4096];
    static struct collected c;
    uint8_t b[64];
    size_t n = hex("00 7e 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12", s);
    struct msg loc = { .id = 0x0200, .serial = 9, .body = b,
                       .blen = location_body(b, ST_FIX, 31000000, 121000000, "260115083000") };
    n += encode(&loc, s + n);
    size_t cut = n;
    run_stream(s, n, &cut, 1, &c);
    cr_assert_eq(c.n, 1, "the location behind the garbage is decoded");
    cr_assert_float_eq(c.r[0].lat, 31.0, 1e-9);
    cr_assert_eq(c.rc[HC_PROTO_OK + 1], 1);
}
