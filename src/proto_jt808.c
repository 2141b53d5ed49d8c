/*
 * proto_jt808.c — JT/T 808 terminals (2011/2013 and 2019 headers) behind
 * struct hc_proto_ops: framing, unescaping, checksum, the messages a
 * position feed needs (register, authenticate, heartbeat, location, batch
 * location) and the platform replies the terminals wait for.
 *
 * Framing.  A frame is 0x7e, the escaped message, 0x7e; inside it 0x7e is
 * sent as 7d 02 and 0x7d as 7d 01.  The message is a header (12 bytes in
 * the 2013 layout, 17 in the 2019 one, 4 more for a split packet), a body
 * of at most 1023 bytes (the 10-bit length in the header's properties) and
 * an XOR checksum over header and body.  The longest legal frame is thus
 * 2 + 2 * (21 + 1023 + 1) = 2092 bytes (JT808_FRAME_MAX): every byte
 * escaped, plus both flags.  frame() never asks for more; bytes from a
 * 0x7e that finds no closing flag within that many bytes are skipped up
 * to the next 0x7e (or all of them), so garbage cannot grow the buffer.
 * Bytes before a 0x7e are garbage.  Two flags with fewer than 13 bytes
 * between them (the shortest header plus checksum; "7e 7e" is the empty
 * frame) cannot be a message: the first flag ended something we did not
 * see, so the bytes up to the second flag are skipped and the second may
 * open the next frame.  A longer run of garbage that ends in a flag is
 * cut as a frame that fails (bad checksum or length); decode() then sets
 * out->resync, so the front keeps that last flag, which opens the real
 * frame behind the garbage.
 *
 * Results.  A frame whose checksum fails is HC_PROTO_BAD_CHECKSUM.  One
 * whose bytes do not make a message is HC_PROTO_BAD_LENGTH: an escape byte
 * followed by anything but 01/02, shorter than a header, a body length
 * that disagrees with the properties, or a body too short for its message
 * (those last, where the header could be read, are also answered 0x8001
 * "message error", result 2, so the terminal does not resend it forever).
 * Message ids we do not handle, and encrypted bodies, are answered 0x8001
 * result 3 and return HC_PROTO_UNSUPPORTED.  A position without a fix
 * (status bit 1 clear), with an impossible BCD time, or outside the ranges
 * of hc_report_check() is counted in out->skipped and the frame is still
 * acknowledged.
 *
 * Split packets (properties bit 13) are not reassembled: a split message
 * of one packet (total 1, index 1) decodes as usual; a piece of a longer
 * one is acknowledged (0x8001 result 0, so the terminal moves on) and
 * dropped as HC_PROTO_UNSUPPORTED.  Reassembly would need up to 64 KiB of
 * pieces per connection for a message type (0x0801 multimedia) that
 * carries no positions; terminals send batches of positions as separate
 * 0x0704 frames.
 *
 * Registration.  0x0100 takes the manufacturer id (5 bytes in 2011/2013,
 * 11 in 2019), trimmed of NULs and spaces, as the maker of every later
 * report from the same phone number on this connection; an empty or not
 * printable ASCII id registers the terminal without a maker.  The reply
 * 0x8100 issues cfg->auth_code, or "HC" and the phone number when that is
 * empty.  0x0102 authentication is checked against the code issued on this
 * connection to that phone (result 1 on a mismatch, which makes a terminal
 * register again); with none issued here (the terminal registered on an
 * earlier connection) any code is accepted.  Authentication does not gate
 * positions: JT/T 808 runs in clear text, so the code is no secret, and a
 * report is worth keeping either way.  0x0003 logout forgets the
 * registration.
 *
 * Identity.  The vehicle id is the header's phone number as digits, leading
 * zeros stripped (at least one digit kept), so a terminal keeps its id when
 * it moves from the 6-byte to the 10-byte layout.  A nibble that is not a
 * decimal digit is written as a hex letter A-F rather than refusing the
 * frame.  Times are BCD local time in cfg->tz_offset_min, years 2000-2099.
 *
 * State per connection is struct conn (fixed size, no pointers).  Replies
 * use the terminal's own header layout and phone bytes and a platform
 * serial that counts up per connection.  Runs on the front thread.
 */
#include <assert.h>
#include <string.h>

#include "hubcap/proto.h"

#define FLAG 0x7e
#define ESC  0x7d

#define HDR_2013      12
#define HDR_2019      17
#define HDR_SPLIT     4
#define HDR_MAX       (HDR_2019 + HDR_SPLIT)
#define BODY_MAX      1023
#define CONTENT_MAX   (HDR_MAX + BODY_MAX + 1)      /* unescaped, with checksum */
#define JT808_FRAME_MAX (2 + 2 * CONTENT_MAX)       /* 2092 */

/* Message body properties. */
#define PROP_LEN   0x03ffu
#define PROP_ENC   0x1c00u
#define PROP_SPLIT 0x2000u
#define PROP_2019  0x4000u

/* Message ids. */
#define MSG_TERMINAL_ACK 0x0001
#define MSG_HEARTBEAT    0x0002
#define MSG_LOGOUT       0x0003
#define MSG_REGISTER     0x0100
#define MSG_AUTH         0x0102
#define MSG_LOCATION     0x0200
#define MSG_BATCH        0x0704
#define MSG_PLATFORM_ACK 0x8001
#define MSG_REGISTER_ACK 0x8100

/* 0x8001 results. */
#define RES_OK          0
#define RES_FAIL        1
#define RES_BAD         2
#define RES_UNSUPPORTED 3

#define LOCATION_LEN 28        /* the fixed part of a 0x0200 body */
#define CODE_MAX     63        /* auth code bytes (hc_proto_config.auth_code) */
#define PHONE_MAX    20        /* digits in a 2019 phone number */

/* 2000-01-01T00:00:00Z, where two-digit BCD years start. */
#define EPOCH_2000 946684800LL

/* The longest reply: a 2019 header, 0x8100 with the longest code, the
 * checksum, every byte escaped, two flags. */
static_assert(2 + 2 * (HDR_2019 + 3 + CODE_MAX + 1) <= HC_PROTO_MAX_REPLY,
              "a 0x8100 reply must fit HC_PROTO_MAX_REPLY");
/* A batch body holds at most (1023 - 3) / (2 + 28) = 34 items. */
static_assert((BODY_MAX - 3) / (2 + LOCATION_LEN) <= HC_PROTO_MAX_REPORTS,
              "a 0x0704 batch must fit HC_PROTO_MAX_REPORTS");

/* Per-connection state. */
struct conn {
    int32_t tz_offset_min;
    uint16_t serial;            /* platform serial of the next reply */
    uint8_t cfg_code_len;
    uint8_t issued_len;         /* 0: no code issued on this connection */
    uint8_t maker_len;          /* 0: no maker */
    uint8_t reg_vid_len;        /* 0: not registered on this connection */
    char cfg_code[CODE_MAX];
    char issued[CODE_MAX];
    char maker[HC_MAKER_MAX];
    char reg_vid[PHONE_MAX];    /* the phone that registered */
};

/* One message's header, pointing into the unescaped content. */
struct header {
    uint16_t id, props, serial;
    uint16_t total, index;      /* split packets, else 0 */
    uint8_t v2019;
    uint8_t version;            /* 2019 protocol version byte */
    uint8_t vid_len;
    const uint8_t *phone;       /* BCD, 6 or 10 bytes */
    char vid[PHONE_MAX];
};

static inline uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* XOR of n bytes, eight at a time. */
static uint8_t xor_bytes(const uint8_t *p, size_t n)
{
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        acc ^= w;
    }
    acc ^= acc >> 32;
    acc ^= acc >> 16;
    acc ^= acc >> 8;
    uint8_t x = (uint8_t)acc;
    for (; i < n; i++)
        x ^= p[i];
    return x;
}

/*
 * Unescape the n bytes between the flags into out (CONTENT_MAX bytes).
 * Returns the unescaped length, or -1 for an escape byte not followed by
 * 01 or 02 or a result longer than any legal message.
 */
static long unescape(const uint8_t *p, size_t n, uint8_t *out)
{
    const uint8_t *end = p + n;
    size_t o = 0;
    while (p < end) {
        const uint8_t *e = memchr(p, ESC, (size_t)(end - p));
        size_t run = (size_t)((e ? e : end) - p);
        if (run > CONTENT_MAX - o)
            return -1;
        memcpy(out + o, p, run);
        o += run;
        if (!e)
            break;
        if (end - e < 2 || (e[1] != 0x01 && e[1] != 0x02) || o == CONTENT_MAX)
            return -1;
        out[o++] = e[1] == 0x01 ? ESC : FLAG;
        p = e + 2;
    }
    return (long)o;
}

/* The phone number's digits, leading zeros stripped, into h->vid. */
static void phone_digits(struct header *h, unsigned bytes)
{
    static const char hex[] = "0123456789ABCDEF";
    char d[PHONE_MAX];
    for (unsigned i = 0; i < bytes; i++) {
        d[2 * i] = hex[h->phone[i] >> 4];
        d[2 * i + 1] = hex[h->phone[i] & 15];
    }
    unsigned n = 2 * bytes, z = 0;
    while (z + 1 < n && d[z] == '0')
        z++;
    h->vid_len = (uint8_t)(n - z);
    memcpy(h->vid, d + z, n - z);
}

/*
 * Read the header of the n-byte message at c (checksum included).  Returns
 * the offset of the body, or -1 if n cannot hold the header and checksum.
 */
static long parse_header(const uint8_t *c, size_t n, struct header *h)
{
    size_t off;
    if (n < HDR_2013 + 1)
        return -1;
    h->id = be16(c);
    h->props = be16(c + 2);
    h->v2019 = (h->props & PROP_2019) != 0;
    if (h->v2019) {
        if (n < HDR_2019 + 1)
            return -1;
        h->version = c[4];
        h->phone = c + 5;
        h->serial = be16(c + 15);
        off = HDR_2019;
    } else {
        h->version = 0;
        h->phone = c + 4;
        h->serial = be16(c + 10);
        off = HDR_2013;
    }
    h->total = h->index = 0;
    if (h->props & PROP_SPLIT) {
        if (n < off + HDR_SPLIT + 1)
            return -1;
        h->total = be16(c + off);
        h->index = be16(c + off + 2);
        off += HDR_SPLIT;
    }
    phone_digits(h, h->v2019 ? 10 : 6);
    return (long)off;
}

/*
 * Build a platform message to the terminal of h (its header layout and
 * phone) into out->reply: header, body, checksum, escaped, with flags.
 */
static void reply(struct conn *c, const struct header *h, uint16_t id,
                  const uint8_t *body, size_t blen, struct hc_proto_out *out)
{
    uint8_t raw[HDR_2019 + 3 + CODE_MAX + 1];
    size_t n;
    assert(blen <= 3 + CODE_MAX);
    put16(raw, id);
    put16(raw + 2, (uint16_t)(blen | (h->v2019 ? PROP_2019 : 0)));
    if (h->v2019) {
        raw[4] = h->version;
        memcpy(raw + 5, h->phone, 10);
        n = 15;
    } else {
        memcpy(raw + 4, h->phone, 6);
        n = 10;
    }
    put16(raw + n, c->serial++);
    n += 2;
    memcpy(raw + n, body, blen);
    n += blen;
    raw[n] = xor_bytes(raw, n);
    n++;

    uint8_t *o = out->reply;
    *o++ = FLAG;
    for (size_t i = 0; i < n; i++) {
        if (raw[i] == FLAG || raw[i] == ESC) {
            *o++ = ESC;
            *o++ = raw[i] == FLAG ? 0x02 : 0x01;
        } else {
            *o++ = raw[i];
        }
    }
    *o++ = FLAG;
    out->reply_len = (size_t)(o - out->reply);
}

/* 0x8001: the terminal's serial and message id, and result. */
static void general_reply(struct conn *c, const struct header *h, uint8_t result,
                          struct hc_proto_out *out)
{
    uint8_t b[5];
    put16(b, h->serial);
    put16(b + 2, h->id);
    b[4] = result;
    reply(c, h, MSG_PLATFORM_ACK, b, sizeof(b), out);
}

static inline int bcd2(uint8_t b)
{
    unsigned hi = b >> 4, lo = b & 15u;
    return hi > 9 || lo > 9 ? -1 : (int)(hi * 10 + lo);
}

/*
 * BCD YYMMDDhhmmss (years 2000-2099) as seconds since the epoch, as if
 * the time were UTC.  Returns 0, or -1 for a nibble that is no digit or a
 * date or time that does not exist.
 */
static int bcd_time(const uint8_t *t, int64_t *secs)
{
    static const uint8_t mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    static const uint16_t before[12] = { 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334 };
    int yy = bcd2(t[0]), mo = bcd2(t[1]), dd = bcd2(t[2]);
    int hh = bcd2(t[3]), mi = bcd2(t[4]), ss = bcd2(t[5]);
    if ((yy | mo | dd | hh | mi | ss) < 0)
        return -1;
    if (mo < 1 || mo > 12 || dd < 1 || hh > 23 || mi > 59 || ss > 59)
        return -1;
    int leap = yy % 4 == 0;     /* 2000 is a leap year, 2100 out of range */
    if (dd > mdays[mo - 1] + (mo == 2 && leap))
        return -1;
    /* Leap days in 2000 .. 2000+yy-1: the years divisible by four. */
    int64_t days = 365LL * yy + (yy + 3) / 4 + before[mo - 1] + (mo > 2 && leap) + dd - 1;
    *secs = EPOCH_2000 + days * 86400 + hh * 3600 + mi * 60 + ss;
    return 0;
}

/*
 * The 28-byte fixed part of a location body at b as a report for h's
 * vehicle.  Returns 0 with *r fully set (unused bytes zero), or -1 when the
 * position is not one to keep: no fix, an impossible time, out of range.
 */
static int location(const struct conn *c, const struct header *h, const uint8_t *b,
                    struct hc_report *r)
{
    uint32_t status = be32(b + 4);
    int64_t secs;
    if (!(status & 0x2) || bcd_time(b + 22, &secs) < 0)
        return -1;
    memset(r, 0, sizeof(*r));
    r->ts = (secs - (int64_t)c->tz_offset_min * 60) * 1000;
    r->lat = be32(b + 8) / 1e6;
    r->lon = be32(b + 12) / 1e6;
    if (status & 0x4)
        r->lat = -r->lat;
    if (status & 0x8)
        r->lon = -r->lon;
    r->acc = status & 0x1;
    r->vid_len = h->vid_len;
    memcpy(r->vid, h->vid, h->vid_len);
    if (c->maker_len && c->reg_vid_len == h->vid_len &&
        memcmp(c->reg_vid, h->vid, h->vid_len) == 0) {
        r->maker_len = c->maker_len;
        memcpy(r->maker, c->maker, c->maker_len);
    }
    return hc_report_check(r) == 0 ? 0 : -1;
}

/* Add the location at b to out, or count it as skipped. */
static void add_location(const struct conn *c, const struct header *h, const uint8_t *b,
                         struct hc_proto_out *out)
{
    if (out->n_reports < HC_PROTO_MAX_REPORTS &&
        location(c, h, b, &out->reports[out->n_reports]) == 0)
        out->n_reports++;
    else
        out->skipped++;
}

/* 0x0704: count(2) type(1), then count items of length(2) + location. */
static int batch(const struct conn *c, const struct header *h, const uint8_t *b,
                 size_t blen, struct hc_proto_out *out)
{
    if (blen < 3)
        return -1;
    unsigned count = be16(b);
    const uint8_t *p = b + 3, *end = b + blen;
    for (unsigned i = 0; i < count; i++) {
        if (end - p < 2)
            return -1;
        size_t ilen = be16(p);
        if (ilen < LOCATION_LEN || ilen > (size_t)(end - p - 2))
            return -1;
        p += 2 + ilen;
    }
    if (p != end)
        return -1;
    for (p = b + 3; p < end; p += 2 + be16(p))
        add_location(c, h, p + 2, out);
    return 0;
}

/* Strip NULs and spaces around s[0..n); 1 if what is left is a printable
 * ASCII name, with *start and *len set. */
static int printable_name(const uint8_t *s, size_t n, size_t *start, size_t *len)
{
    size_t a = 0;
    while (n > 0 && (s[n - 1] == 0 || s[n - 1] == ' '))
        n--;
    while (a < n && (s[a] == 0 || s[a] == ' '))
        a++;
    for (size_t i = a; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return 0;
    *start = a;
    *len = n - a;
    return n > a;
}

/* 0x0100: remember the phone and maker, answer 0x8100 with a code. */
static int do_register(struct conn *c, const struct header *h, const uint8_t *b,
                       size_t blen, struct hc_proto_out *out)
{
    size_t mlen = h->v2019 ? 11 : 5, ms = 0, ml = 0;
    if (blen < 4 + mlen)
        return -1;
    c->maker_len = 0;
    memset(c->maker, 0, sizeof(c->maker));
    if (printable_name(b + 4, mlen, &ms, &ml)) {
        memcpy(c->maker, b + 4 + ms, ml);
        c->maker_len = (uint8_t)ml;
    }
    c->reg_vid_len = h->vid_len;
    memcpy(c->reg_vid, h->vid, h->vid_len);
    if (c->cfg_code_len) {
        memcpy(c->issued, c->cfg_code, c->cfg_code_len);
        c->issued_len = c->cfg_code_len;
    } else {
        c->issued[0] = 'H';
        c->issued[1] = 'C';
        memcpy(c->issued + 2, h->vid, h->vid_len);
        c->issued_len = (uint8_t)(2 + h->vid_len);
    }

    uint8_t body[3 + CODE_MAX];
    put16(body, h->serial);
    body[2] = RES_OK;
    memcpy(body + 3, c->issued, c->issued_len);
    reply(c, h, MSG_REGISTER_ACK, body, 3 + (size_t)c->issued_len, out);
    return 0;
}

/* 0x0102: the result for the code presented, or -1 if the body is
 * malformed (2019: a code length beyond the body). */
static int do_auth(const struct conn *c, const struct header *h, const uint8_t *b,
                   size_t blen)
{
    const uint8_t *code = b;
    size_t clen = blen;
    if (h->v2019) {
        if (blen < 1 || (size_t)b[0] + 1 > blen)
            return -1;
        code = b + 1;
        clen = b[0];
    }
    while (clen > 0 && code[clen - 1] == 0)     /* a terminated STRING */
        clen--;
    int ours = c->issued_len && c->reg_vid_len == h->vid_len &&
               memcmp(c->reg_vid, h->vid, h->vid_len) == 0;
    if (ours && (clen != c->issued_len || memcmp(code, c->issued, clen) != 0))
        return RES_FAIL;
    return RES_OK;
}

static void jt808_conn_init(void *conn, const struct hc_proto_config *cfg)
{
    struct conn *c = conn;
    memset(c, 0, sizeof(*c));
    c->tz_offset_min = 480;
    if (cfg) {
        c->tz_offset_min = cfg->tz_offset_min;
        size_t n = strnlen(cfg->auth_code, sizeof(cfg->auth_code));
        if (n > CODE_MAX)
            n = CODE_MAX;
        memcpy(c->cfg_code, cfg->auth_code, n);
        c->cfg_code_len = (uint8_t)n;
    }
}

static long jt808_frame(const void *conn, const uint8_t *buf, size_t len)
{
    (void)conn;
    if (len == 0)
        return 0;
    if (buf[0] != FLAG) {
        const uint8_t *f = memchr(buf, FLAG, len);
        return -(long)(f ? (size_t)(f - buf) : len);
    }
    size_t lim = len < JT808_FRAME_MAX ? len : JT808_FRAME_MAX;
    const uint8_t *e = memchr(buf + 1, FLAG, lim - 1);
    if (e) {
        /* Too few bytes between the flags for a header and checksum: the
         * first flag closed something we missed, the second may open. */
        if (e - buf - 1 < HDR_2013 + 1)
            return -(long)(e - buf);
        return (long)(e - buf) + 1;
    }
    if (len < JT808_FRAME_MAX)
        return 0;
    /* No closing flag where one must be: drop up to the next flag. */
    e = len > JT808_FRAME_MAX ? memchr(buf + JT808_FRAME_MAX, FLAG, len - JT808_FRAME_MAX)
                              : NULL;
    return -(long)(e ? (size_t)(e - buf) : len);
}

/* A frame that is no message at all: the front keeps its closing flag,
 * which may be the opening flag of a real frame behind garbage. */
static int resync(struct hc_proto_out *out, int rc)
{
    out->resync = 1;
    return rc;
}

static int jt808_decode(void *conn, const uint8_t *frame, size_t len, struct hc_proto_out *out)
{
    struct conn *c = conn;
    uint8_t buf[CONTENT_MAX];
    const uint8_t *m;
    size_t n;

    if (len < 2 || frame[0] != FLAG || frame[len - 1] != FLAG)
        return resync(out, HC_PROTO_BAD_LENGTH);
    if (memchr(frame + 1, ESC, len - 2)) {
        long k = unescape(frame + 1, len - 2, buf);
        if (k < 0)
            return resync(out, HC_PROTO_BAD_LENGTH);
        m = buf;
        n = (size_t)k;
    } else {
        m = frame + 1;
        n = len - 2;
        if (n > CONTENT_MAX)
            return resync(out, HC_PROTO_BAD_LENGTH);
    }

    struct header h;
    long off = parse_header(m, n, &h);
    if (off < 0)
        return resync(out, HC_PROTO_BAD_LENGTH);
    if (xor_bytes(m, n) != 0)   /* the checksum byte cancels the rest */
        return resync(out, HC_PROTO_BAD_CHECKSUM);
    const uint8_t *b = m + off;
    size_t blen = n - 1 - (size_t)off;
    if (blen != (h.props & PROP_LEN))
        return resync(out, HC_PROTO_BAD_LENGTH);

    if (h.id == MSG_TERMINAL_ACK)
        return HC_PROTO_OK;     /* an answer to us: nothing to answer */
    if (h.props & PROP_ENC) {
        general_reply(c, &h, RES_UNSUPPORTED, out);
        return HC_PROTO_UNSUPPORTED;
    }
    if ((h.props & PROP_SPLIT) && !(h.total == 1 && h.index == 1)) {
        general_reply(c, &h, RES_OK, out);      /* not reassembled */
        return HC_PROTO_UNSUPPORTED;
    }

    int rc = 0;
    switch (h.id) {
    case MSG_LOCATION:
        if (blen < LOCATION_LEN) {
            rc = -1;
            break;
        }
        add_location(c, &h, b, out);
        general_reply(c, &h, RES_OK, out);
        break;
    case MSG_BATCH:
        rc = batch(c, &h, b, blen, out);
        if (rc == 0)
            general_reply(c, &h, RES_OK, out);
        break;
    case MSG_HEARTBEAT:
        general_reply(c, &h, RES_OK, out);
        break;
    case MSG_REGISTER:
        rc = do_register(c, &h, b, blen, out);
        break;
    case MSG_AUTH:
        rc = do_auth(c, &h, b, blen);
        if (rc >= 0) {
            general_reply(c, &h, (uint8_t)rc, out);
            rc = 0;
        }
        break;
    case MSG_LOGOUT:
        c->issued_len = c->maker_len = c->reg_vid_len = 0;
        general_reply(c, &h, RES_OK, out);
        break;
    default:
        general_reply(c, &h, RES_UNSUPPORTED, out);
        return HC_PROTO_UNSUPPORTED;
    }
    if (rc < 0) {               /* the body does not hold its message */
        general_reply(c, &h, RES_BAD, out);
        return HC_PROTO_BAD_LENGTH;
    }
    return HC_PROTO_OK;
}

const struct hc_proto_ops hc_proto_jt808 = {
    .name = "jt808",
    .default_port = 5015,
    .conn_size = sizeof(struct conn),
    .max_frame = JT808_FRAME_MAX,
    .conn_init = jt808_conn_init,
    .frame = jt808_frame,
    .decode = jt808_decode,
};
