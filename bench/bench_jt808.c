/*
 * bench_jt808 — JT/T 808 frames decoded per second on one core: hubcap's
 * decoder (frame() + decode() of src/proto_jt808.c, as the front thread
 * drives them) against a naive decoder written here the way a first
 * version often is (scan for flags byte by byte, unescape into a freshly
 * malloc'd buffer, read every field with a generic big-endian loop, the
 * phone and time with a per-nibble BCD loop and timegm(), build the reply
 * in another malloc'd buffer).  Same input, same run.
 *
 * Input: C connections, each a register followed by position traffic: a
 * 0x0200 location with the usual extra items (mileage, signal,
 * satellites), every 20th frame a 0x0704 batch of 10 instead; about 10 %
 * of frames carry an escaped byte.  Before timing, both decoders run the
 * whole input frame by frame and must give byte-identical reports and
 * replies, or the benchmark fails.
 *
 * Output: "BENCH <name> <value> <unit>" lines, medians of 3 rounds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"
#include "hubcap/detect.h"
#include "hubcap/proto.h"
#include "hubcap/rng.h"
#include "hubcap/timefmt.h"
#include "../tests/devref.h"

#define P (&hc_proto_jt808)
#define TZ 480

/* ---- building the input ---- */

struct buf {
    uint8_t *p;
    size_t n, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->cap + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static size_t be(uint8_t *p, uint32_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
    return (size_t)n;
}

static uint8_t to_bcd(unsigned v)
{
    return (uint8_t)((v / 10) << 4 | v % 10);
}


/* A 2013-layout message with a checksum, escaped, into f. */
static size_t message(uint16_t id, const uint8_t phone[6], uint16_t serial, const uint8_t *body,
                      size_t blen, uint8_t *f)
{
    uint8_t raw[1100];
    size_t n = be(raw, id, 2);
    n += be(raw + n, (uint32_t)blen, 2);
    memcpy(raw + n, phone, 6);
    n += 6;
    n += be(raw + n, serial, 2);
    memcpy(raw + n, body, blen);
    n += blen;
    return devref_jt808_seal(raw, n, f);
}

/* A location with extras; t in seconds (local time). */
static size_t location(uint8_t *b, struct hc_rng *rng, int64_t t)
{
    uint32_t status = 0x2 | (hc_rng_next(rng) & 1);     /* fixed; ACC either way */
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    size_t n = be(b, 0, 4);
    n += be(b + n, status, 4);
    n += be(b + n, 22400000 + (uint32_t)hc_rng_below(rng, 400000), 4);
    n += be(b + n, 113800000 + (uint32_t)hc_rng_below(rng, 600000), 4);
    n += be(b + n, 20 + (uint32_t)hc_rng_below(rng, 200), 2);
    n += be(b + n, (uint32_t)hc_rng_below(rng, 1200), 2);
    n += be(b + n, (uint32_t)hc_rng_below(rng, 360), 2);
    b[n++] = to_bcd((unsigned)tm.tm_year % 100);
    b[n++] = to_bcd((unsigned)tm.tm_mon + 1);
    b[n++] = to_bcd((unsigned)tm.tm_mday);
    b[n++] = to_bcd((unsigned)tm.tm_hour);
    b[n++] = to_bcd((unsigned)tm.tm_min);
    b[n++] = to_bcd((unsigned)tm.tm_sec);
    static const uint8_t extra[] = { 0x01, 4, 0, 0x01, 0x86, 0xa0, 0x30, 1, 0x1a, 0x31, 1, 12 };
    memcpy(b + n, extra, sizeof(extra));
    return n + sizeof(extra);
}

static int has_escape(const uint8_t *f, size_t n)
{
    return memchr(f + 1, 0x7d, n - 2) != NULL;
}

/* Connection c's stream: a register, then frames frames of positions. */
static void build_conn(struct buf *s, unsigned c, unsigned frames, struct hc_rng *rng,
                       size_t *n_frames, size_t *n_escaped)
{
    uint8_t phone[6], body[1100], f[2200];
    char digits[13];
    snprintf(digits, sizeof(digits), "0139%08u", c);
    for (int i = 0; i < 6; i++)
        phone[i] = (uint8_t)((digits[2 * i] - '0') << 4 | (digits[2 * i + 1] - '0'));

    size_t n = be(body, 44, 2);
    n += be(body + n, 300, 2);
    memcpy(body + n, c % 3 ? "ACME\0" : "ZETA\0", 5);
    n += 5;
    memset(body + n, 0, 20 + 7);
    n += 27;
    body[n++] = 2;
    memcpy(body + n, "B12345", 6);
    n += 6;
    put(s, f, message(0x0100, phone, 0, body, n, f));
    (*n_frames)++;

    int64_t t = 1795000000 + c;
    for (unsigned k = 1; k <= frames; k++) {
        int want_escape = hc_rng_below(rng, 10) == 0;
        /* A 0x7e in the serial's low byte makes an escaped frame, as
         * counters do; otherwise the fields are drawn again until the
         * frame needs no escape. */
        uint16_t serial = (uint16_t)k;
        if (want_escape)
            serial = (uint16_t)((serial & 0xff00) | 0x7e);
        else if ((serial & 0xff) == 0x7d || (serial & 0xff) == 0x7e)
            serial = (uint16_t)(serial + 2);
        size_t len;
        for (;;) {
            if (k % 20 == 0) {
                n = be(body, 10, 2);
                body[n++] = 0;
                for (int i = 0; i < 10; i++) {
                    size_t m = location(body + n + 2, rng, t + i * 30);
                    n += be(body + n, (uint32_t)m, 2) + m;
                }
                len = message(0x0704, phone, serial, body, n, f);
            } else {
                n = location(body, rng, t);
                len = message(0x0200, phone, serial, body, n, f);
            }
            if (want_escape == has_escape(f, len))
                break;
        }
        t += k % 20 == 0 ? 300 : 30;
        put(s, f, len);
        (*n_frames)++;
        *n_escaped += has_escape(f, len);
    }
}

/* ---- the naive decoder ---- */

struct naive_conn {
    int tz;
    uint16_t serial;
    int maker_len, reg_len;
    char maker[HC_MAKER_MAX];
    char reg_vid[21];
};

static uint32_t get_uint(const uint8_t *p, int n)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++)
        v = v * 256 + p[i];
    return v;
}

static int get_bit(uint32_t v, int k)
{
    return (int)((v >> k) & 1);
}

/* n BCD bytes as digits into s (2n + 1); -1 on a nibble past 9. */
static int bcd_string(const uint8_t *p, int n, char *s)
{
    for (int i = 0; i < 2 * n; i++) {
        int nib = i % 2 ? p[i / 2] & 15 : p[i / 2] >> 4;
        if (nib > 9)
            return -1;
        s[i] = (char)('0' + nib);
    }
    s[2 * n] = 0;
    return 0;
}

static void naive_reply(struct naive_conn *c, const uint8_t *hdr, uint16_t id,
                        const uint8_t *body, int blen, struct hc_proto_out *out)
{
    uint8_t *raw = malloc(12 + (size_t)blen + 1);
    int n = 0;
    raw[n++] = (uint8_t)(id >> 8);
    raw[n++] = (uint8_t)id;
    raw[n++] = (uint8_t)(blen >> 8);
    raw[n++] = (uint8_t)blen;
    for (int i = 0; i < 6; i++)
        raw[n++] = hdr[4 + i];
    raw[n++] = (uint8_t)(c->serial >> 8);
    raw[n++] = (uint8_t)c->serial;
    c->serial++;
    for (int i = 0; i < blen; i++)
        raw[n++] = body[i];
    uint8_t x = 0;
    for (int i = 0; i < n; i++)
        x ^= raw[i];
    raw[n++] = x;
    out->reply_len = devref_jt808_escape(raw, (size_t)n, out->reply);
    free(raw);
}

/* One frame (flags included) of the 2013 layout; registers and positions. */
static int naive_decode(struct naive_conn *c, const uint8_t *f, size_t len,
                        struct hc_proto_out *out)
{
    uint8_t *m = malloc(len);
    int n = 0, rc = HC_PROTO_OK;
    for (size_t i = 1; i + 1 < len; i++) {
        if (f[i] == 0x7d) {
            i++;
            if (f[i] == 1)
                m[n++] = 0x7d;
            else if (f[i] == 2)
                m[n++] = 0x7e;
            else
                rc = HC_PROTO_BAD_LENGTH;
        } else {
            m[n++] = f[i];
        }
    }
    uint8_t x = 0;
    for (int i = 0; i < n; i++)
        x = x ^ m[i];
    if (rc == HC_PROTO_OK && (n < 13 || x != 0))
        rc = HC_PROTO_BAD_CHECKSUM;
    if (rc != HC_PROTO_OK) {
        free(m);
        return rc;
    }
    uint16_t id = (uint16_t)get_uint(m, 2), serial = (uint16_t)get_uint(m + 10, 2);
    int blen = (int)(get_uint(m + 2, 2) & 0x3ff);
    char phone[13], vid[13];
    bcd_string(m + 4, 6, phone);
    int z = 0;
    while (phone[z] == '0' && phone[z + 1])
        z++;
    strcpy(vid, phone + z);
    const uint8_t *b = m + 12;
    uint8_t ack[5] = { (uint8_t)(serial >> 8), (uint8_t)serial, (uint8_t)(id >> 8),
                       (uint8_t)id, 0 };

    if (id == 0x0100) {
        int ml = 5;
        while (ml > 0 && (b[4 + ml - 1] == 0 || b[4 + ml - 1] == ' '))
            ml--;
        memset(c->maker, 0, sizeof(c->maker));
        memcpy(c->maker, b + 4, (size_t)ml);
        c->maker_len = ml;
        c->reg_len = (int)strlen(vid);
        strcpy(c->reg_vid, vid);
        uint8_t body[3 + 2 + 12];
        body[0] = (uint8_t)(serial >> 8);
        body[1] = (uint8_t)serial;
        body[2] = 0;
        body[3] = 'H';
        body[4] = 'C';
        memcpy(body + 5, vid, strlen(vid));
        naive_reply(c, m, 0x8100, body, 5 + (int)strlen(vid), out);
    } else if (id == 0x0200 || id == 0x0704) {
        int count = 1, pos = 0;
        if (id == 0x0704) {
            count = (int)get_uint(b, 2);
            pos = 3;
        }
        for (int k = 0; k < count; k++) {
            int ilen = blen;
            if (id == 0x0704) {
                ilen = (int)get_uint(b + pos, 2);
                pos += 2;
            }
            const uint8_t *l = b + pos;
            pos += ilen;
            uint32_t status = get_uint(l + 4, 4);
            char t[13];
            if (!get_bit(status, 1) || bcd_string(l + 22, 6, t) < 0) {
                out->skipped++;
                continue;
            }
            int v[6];
            for (int i = 0; i < 6; i++)
                v[i] = (t[2 * i] - '0') * 10 + (t[2 * i + 1] - '0');
            struct tm tm = { .tm_year = 100 + v[0], .tm_mon = v[1] - 1, .tm_mday = v[2],
                             .tm_hour = v[3], .tm_min = v[4], .tm_sec = v[5] };
            struct hc_report *r = &out->reports[out->n_reports];
            memset(r, 0, sizeof(*r));
            r->ts = ((int64_t)timegm(&tm) - c->tz * 60) * 1000;
            r->lat = get_uint(l + 8, 4) / 1e6;
            r->lon = get_uint(l + 12, 4) / 1e6;
            if (get_bit(status, 2))
                r->lat = -r->lat;
            if (get_bit(status, 3))
                r->lon = -r->lon;
            r->acc = (uint8_t)get_bit(status, 0);
            r->vid_len = (uint8_t)strlen(vid);
            memcpy(r->vid, vid, r->vid_len);
            if (c->maker_len && strcmp(vid, c->reg_vid) == 0) {
                r->maker_len = (uint8_t)c->maker_len;
                memcpy(r->maker, c->maker, (size_t)c->maker_len);
            }
            if (hc_report_check(r) == 0)
                out->n_reports++;
            else
                out->skipped++;
        }
        naive_reply(c, m, 0x8001, ack, 5, out);
    } else {
        ack[4] = 3;
        naive_reply(c, m, 0x8001, ack, 5, out);
        rc = HC_PROTO_UNSUPPORTED;
    }
    free(m);
    return rc;
}

/* The naive framing: the next frame's [start, end) by a byte scan. */
static int naive_frame(const uint8_t *s, size_t n, size_t *start, size_t *end)
{
    size_t i = *start;
    while (i < n && s[i] != 0x7e)
        i++;
    size_t j = i + 1;
    while (j < n && s[j] != 0x7e)
        j++;
    if (j >= n)
        return 0;
    *start = i;
    *end = j + 1;
    return 1;
}

/* ---- running ---- */

struct input {
    struct buf *conn;           /* one stream per connection */
    unsigned n_conn;
    size_t frames, escaped, bytes;
};

static struct hc_proto_out out;

static void reset_out(void)
{
    out.n_reports = 0;
    out.reply_len = 0;
    out.skipped = 0;
}

/* Both decoders over the whole input, frame by frame: identical output. */
static int agree(const struct input *in, size_t *reports)
{
    static struct hc_proto_out mine;
    struct hc_proto_config cfg = { .tz_offset_min = TZ };
    void *conn = calloc(1, P->conn_size);
    *reports = 0;
    for (unsigned c = 0; c < in->n_conn; c++) {
        const struct buf *s = &in->conn[c];
        struct naive_conn nc = { .tz = TZ };
        memset(conn, 0, P->conn_size);
        P->conn_init(conn, &cfg);
        size_t off = 0, a = 0, e = 0;
        while (off < s->n) {
            long r = P->frame(conn, s->p + off, s->n - off);
            if (r <= 0 || !naive_frame(s->p, s->n, &a, &e) || a != off || e != off + (size_t)r)
                return -1;
            reset_out();
            int rc1 = P->decode(conn, s->p + off, (size_t)r, &out);
            mine = out;
            reset_out();
            int rc2 = naive_decode(&nc, s->p + off, (size_t)r, &out);
            if (rc1 != rc2 || rc1 != HC_PROTO_OK || mine.n_reports != out.n_reports ||
                mine.skipped != out.skipped || mine.reply_len != out.reply_len ||
                memcmp(mine.reply, out.reply, out.reply_len) != 0 ||
                memcmp(mine.reports, out.reports, out.n_reports * sizeof(out.reports[0])) != 0) {
                fprintf(stderr, "bench_jt808: decoders disagree on connection %u at byte %zu\n",
                        c, off);
                return -1;
            }
            *reports += out.n_reports;
            off += (size_t)r;
            a = e;
        }
    }
    free(conn);
    return 0;
}

/* hubcap's decoder over the input, passes times; seconds taken. */
static double run_hubcap(const struct input *in, unsigned passes, size_t *reports)
{
    struct hc_proto_config cfg = { .tz_offset_min = TZ };
    void *conn = malloc(P->conn_size);
    size_t got = 0;
    uint64_t t0 = hc_time_mono_ns();
    for (unsigned p = 0; p < passes; p++) {
        for (unsigned c = 0; c < in->n_conn; c++) {
            const struct buf *s = &in->conn[c];
            memset(conn, 0, P->conn_size);
            P->conn_init(conn, &cfg);
            size_t off = 0;
            while (off < s->n) {
                long r = P->frame(conn, s->p + off, s->n - off);
                if (r > 0) {
                    reset_out();
                    P->decode(conn, s->p + off, (size_t)r, &out);
                    got += out.n_reports;
                    off += (size_t)r;
                } else if (r < 0) {
                    off += (size_t)-r;
                } else {
                    break;
                }
            }
        }
    }
    double secs = (double)(hc_time_mono_ns() - t0) / 1e9;
    free(conn);
    *reports = got;
    return secs;
}

static double run_naive(const struct input *in, unsigned passes, size_t *reports)
{
    size_t got = 0;
    uint64_t t0 = hc_time_mono_ns();
    for (unsigned p = 0; p < passes; p++) {
        for (unsigned c = 0; c < in->n_conn; c++) {
            const struct buf *s = &in->conn[c];
            struct naive_conn nc = { .tz = TZ };
            size_t a = 0, e = 0;
            while (naive_frame(s->p, s->n, &a, &e)) {
                reset_out();
                naive_decode(&nc, s->p + a, e - a, &out);
                got += out.n_reports;
                a = e;
            }
        }
    }
    *reports = got;
    return (double)(hc_time_mono_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
    unsigned n_conn = 200, per_conn = 2000, passes = 5, rounds = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            n_conn = 20;
            per_conn = 500;
            passes = 1;
        } else {
            printf("usage: bench_jt808 [--quick]\n\n"
                   "JT/T 808 frames decoded per second on one core by hubcap's decoder\n"
                   "(frame() + decode()), against a naive decoder on the same input; both\n"
                   "must give identical reports and replies.  --quick: small input.\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }

    struct input in = { .n_conn = n_conn };
    struct hc_rng rng;
    hc_rng_seed(&rng, 808);
    in.conn = calloc(n_conn, sizeof(*in.conn));
    for (unsigned c = 0; c < n_conn; c++) {
        build_conn(&in.conn[c], c, per_conn, &rng, &in.frames, &in.escaped);
        in.bytes += in.conn[c].n;
    }
    size_t reports;
    if (agree(&in, &reports) < 0) {
        fprintf(stderr, "bench_jt808: the two decoders do not agree\n");
        return 1;
    }

    printf("# command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n# input: %u connections, %zu frames (%zu bytes, %.1f %% with escapes; a register"
           " per connection, 0x0200 locations with extras, every 20th frame a 0x0704 batch of"
           " 10), %zu reports; %u passes per round, %u rounds, median; one core; both decoders"
           " agree on every report and reply\n", n_conn, in.frames, in.bytes,
           100.0 * (double)in.escaped / (double)in.frames, reports, passes, rounds);

    double fps[3], rps[3], nfps[3];
    for (unsigned r = 0; r < rounds; r++) {
        size_t got1, got2;
        double t1 = run_hubcap(&in, passes, &got1);
        double t2 = run_naive(&in, passes, &got2);
        if (got1 != reports * passes || got2 != got1) {
            fprintf(stderr, "bench_jt808: round %u: %zu and %zu reports, want %zu\n", r + 1,
                    got1, got2, reports * passes);
            return 1;
        }
        fps[r] = (double)(in.frames * passes) / t1;
        rps[r] = (double)(reports * passes) / t1;
        nfps[r] = (double)(in.frames * passes) / t2;
        printf("# round %u: hubcap %.0f frames/s (%.1f ns/frame), naive %.0f frames/s"
               " (%.1f ns/frame)\n", r + 1, fps[r], 1e9 / fps[r], nfps[r], 1e9 / nfps[r]);
    }
    double f = bench_median(fps, (int)rounds), nf = bench_median(nfps, (int)rounds);
    printf("BENCH jt808_frames_per_s %.0f frames/s\n", f);
    printf("BENCH jt808_reports_per_s %.0f reports/s\n", bench_median(rps, (int)rounds));
    printf("BENCH jt808_ns_per_frame %.1f ns\n", 1e9 / f);
    printf("BENCH naive_jt808_frames_per_s %.0f frames/s\n", nf);
    printf("BENCH jt808_vs_naive_ratio %.1f x\n", f / nf);

    for (unsigned c = 0; c < n_conn; c++)
        free(in.conn[c].p);
    free(in.conn);
    return 0;
}
