/*
 * bench_teltonika.c — Teltonika AVL packets decoded per second on one
 * core by hubcap's decoder (src/proto_teltonika.c, driven through frame()
 * and decode() as the front drives it), against a naive decoder written
 * here the way a first attempt reads the specification: the CRC bit by
 * bit, every field through a bounds-checked generic reader, every IO
 * element collected into a list that is then searched for the ignition.
 *
 * The input is one connection's byte stream in memory: the login, then
 * Codec 8E packets of 1 to 20 records with about 10 IO elements each (the
 * four fixed-width groups, sometimes a variable-length one), a few records
 * without a fix.  Only decoding is timed.  Both decoders must produce
 * byte-identical reports and the same acknowledgements, or the benchmark
 * fails.
 *
 * Output: one "BENCH <name> <value> <unit>" line per figure, medians of
 * the rounds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "hubcap/detect.h"
#include "hubcap/proto.h"
#include "hubcap/rng.h"
#include "hubcap/timefmt.h"
#include "../tests/devref.h"

#define IMEI "356307042441013"
#define TS0 1795000000000ULL

/* ---- the input ---- */

struct out_buf {
    uint8_t *p;
    size_t n, cap;
};

static void put(struct out_buf *o, uint64_t v, unsigned bytes)
{
    if (o->n + bytes > o->cap) {
        o->cap = o->cap ? 2 * o->cap : 1 << 20;
        o->p = realloc(o->p, o->cap);
        if (!o->p)
            abort();
    }
    for (unsigned i = bytes; i-- > 0;)
        o->p[o->n++] = (uint8_t)(v >> (8 * i));
}


/* One Codec 8E record of a vehicle moving about Vilnius: 4 one-byte IO
 * (ignition, movement, GSM signal, sleep mode), 3 two-byte (external and
 * battery voltage, speed), 2 four-byte (odometer, trip), 1 eight-byte
 * (iButton), and one in eight records a variable-length one (a beacon). */
static void put_record(struct out_buf *o, struct hc_rng *rng, uint64_t ts, double *lat,
                       double *lon)
{
    *lat += (hc_rng_unit(rng) - 0.5) * 1e-3;
    *lon += (hc_rng_unit(rng) - 0.5) * 1e-3;
    int fix = hc_rng_next(rng) % 50 != 0;
    int nx = hc_rng_next(rng) % 8 == 0;
    put(o, ts, 8);
    put(o, hc_rng_next(rng) % 2, 1);
    put(o, fix ? (uint32_t)(int32_t)(*lon * 1e7) : 0, 4);
    put(o, fix ? (uint32_t)(int32_t)(*lat * 1e7) : 0, 4);
    put(o, 100 + hc_rng_next(rng) % 50, 2);
    put(o, hc_rng_next(rng) % 360, 2);
    put(o, fix ? 5 + hc_rng_next(rng) % 10 : 0, 1);
    put(o, hc_rng_next(rng) % 90, 2);
    put(o, 0, 2);                               /* event IO */
    put(o, 10 + (unsigned)nx, 2);
    put(o, 4, 2);
    put(o, 239, 2); put(o, hc_rng_next(rng) % 4 != 0, 1);
    put(o, 240, 2); put(o, hc_rng_next(rng) % 2, 1);
    put(o, 21, 2);  put(o, hc_rng_next(rng) % 6, 1);
    put(o, 200, 2); put(o, 0, 1);
    put(o, 3, 2);
    put(o, 66, 2);  put(o, 12000 + hc_rng_next(rng) % 2000, 2);
    put(o, 67, 2);  put(o, 4000 + hc_rng_next(rng) % 200, 2);
    put(o, 24, 2);  put(o, hc_rng_next(rng) % 90, 2);
    put(o, 2, 2);
    put(o, 16, 2);  put(o, hc_rng_next(rng) % 10000000, 4);
    put(o, 199, 2); put(o, hc_rng_next(rng) % 100000, 4);
    put(o, 1, 2);
    put(o, 78, 2);  put(o, hc_rng_next(rng), 8);
    put(o, (unsigned)nx, 2);
    if (nx) {
        put(o, 385, 2);
        put(o, 22, 2);
        for (int i = 0; i < 22; i++)
            put(o, hc_rng_next(rng), 1);
    }
}

/* The login, then n_packets packets; *n_records counts their records. */
static struct out_buf make_stream(unsigned n_packets, size_t *n_records)
{
    struct out_buf o = { 0 };
    struct hc_rng rng;
    hc_rng_seed(&rng, 5027);
    put(&o, strlen(IMEI), 2);
    for (const char *c = IMEI; *c; c++)
        put(&o, (uint8_t)*c, 1);
    double lat = 54.6872, lon = 25.2797;
    uint64_t ts = TS0;
    *n_records = 0;
    for (unsigned p = 0; p < n_packets; p++) {
        unsigned n = 1 + (unsigned)(hc_rng_next(&rng) % 20);
        size_t start = o.n;
        put(&o, 0, 4);
        put(&o, 0, 4);
        put(&o, 0x8E, 1);
        put(&o, n, 1);
        for (unsigned i = 0; i < n; i++) {
            ts += 1000 + hc_rng_next(&rng) % 60000;
            put_record(&o, &rng, ts, &lat, &lon);
        }
        put(&o, n, 1);
        size_t dlen = o.n - start - 8;
        put(&o, devref_crc16_ibm(o.p + start + 8, dlen), 4);
        for (int i = 0; i < 4; i++)
            o.p[start + 4 + (size_t)i] = (uint8_t)(dlen >> (24 - 8 * i));
        *n_records += n;
    }
    return o;
}

/* What a decoder hands on: reports in order, and the acknowledgements. */
struct result {
    struct hc_report *rep;
    size_t n_rep, cap;
    uint64_t acked, packets;
};

/* ---- hubcap's decoder, driven as the front drives it ---- */

static int run_hubcap(const uint8_t *s, size_t len, struct result *res)
{
    static struct hc_proto_out out;
    const struct hc_proto_ops *P = &hc_proto_teltonika;
    _Alignas(16) uint8_t conn[64];
    if (P->conn_size > sizeof(conn))
        return -1;
    memset(conn, 0, sizeof(conn));
    P->conn_init(conn, &(struct hc_proto_config){ 0 });
    size_t off = 0;
    while (off < len) {
        size_t have = len - off < P->max_frame ? len - off : P->max_frame;
        long f = P->frame(conn, s + off, have);
        if (f == 0)
            break;
        if (f < 0) {
            off += (size_t)-f;
            continue;
        }
        out.n_reports = out.reply_len = 0;
        int rc = P->decode(conn, s + off, (size_t)f, &out);
        if (rc != HC_PROTO_OK)
            return -1;
        if (res->n_rep + out.n_reports > res->cap)
            return -1;
        memcpy(res->rep + res->n_rep, out.reports, out.n_reports * sizeof(out.reports[0]));
        res->n_rep += out.n_reports;
        if (out.reply_len == 4) {
            res->acked += out.reply[3];
            res->packets++;
        }
        off += (size_t)f;
    }
    return 0;
}

/* ---- the naive decoder ---- */

struct reader {
    const uint8_t *p;
    size_t len, pos;
    int err;
};

static uint64_t rd(struct reader *r, unsigned bytes)
{
    if (r->err || r->len - r->pos < bytes) {
        r->err = 1;
        return 0;
    }
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v = v << 8 | r->p[r->pos++];
    return v;
}

struct io_elem {
    uint32_t id;
    uint64_t value;             /* fixed width: the value; variable: any byte set */
};

struct naive_rec {
    uint64_t ts;
    int32_t lat, lon;
    uint8_t sats;
    int ign;
};

static int run_naive(const uint8_t *s, size_t len, struct result *res)
{
    static struct naive_rec recs[256];
    static struct io_elem ios[65536 * 5];
    char imei[32];
    size_t imei_len;
    int acc = 0;
    struct reader r = { s, len, 0, 0 };

    imei_len = (size_t)rd(&r, 2);
    if (imei_len > 17 || r.len - r.pos < imei_len)
        return -1;
    for (size_t i = 0; i < imei_len; i++)
        imei[i] = (char)rd(&r, 1);

    while (r.pos < r.len) {
        if (rd(&r, 4) != 0)
            return -1;
        uint64_t dlen = rd(&r, 4);
        if (r.err || dlen < 3 || r.len - r.pos < dlen + 4)
            return -1;
        size_t data = r.pos;
        if (devref_crc16_ibm(s + data, dlen) != s[data + dlen + 2] * 256 + s[data + dlen + 3])
            return -1;
        struct reader d = { s + data, dlen - 1, 0, 0 };
        unsigned codec = (unsigned)rd(&d, 1), n = (unsigned)rd(&d, 1);
        if (codec != 0x8E && codec != 0x08)
            return -1;
        unsigned idw = codec == 0x08 ? 1 : 2;
        for (unsigned k = 0; k < n; k++) {
            struct naive_rec *x = &recs[k];
            x->ts = rd(&d, 8);
            rd(&d, 1);
            x->lon = (int32_t)(uint32_t)rd(&d, 4);
            x->lat = (int32_t)(uint32_t)rd(&d, 4);
            rd(&d, 2);
            rd(&d, 2);
            x->sats = (uint8_t)rd(&d, 1);
            rd(&d, 2);
            rd(&d, idw);
            rd(&d, idw);
            size_t n_io = 0;
            for (unsigned w = 1; w <= 8; w *= 2) {
                uint64_t c = rd(&d, idw);
                for (uint64_t i = 0; i < c && !d.err; i++) {
                    ios[n_io].id = (uint32_t)rd(&d, idw);
                    ios[n_io++].value = rd(&d, w);
                }
            }
            if (codec == 0x8E) {
                uint64_t c = rd(&d, 2);
                for (uint64_t i = 0; i < c && !d.err; i++) {
                    ios[n_io].id = (uint32_t)rd(&d, 2);
                    uint64_t l = rd(&d, 2), any = 0;
                    for (uint64_t b = 0; b < l; b++)
                        any |= rd(&d, 1);
                    ios[n_io++].value = any;
                }
            }
            x->ign = -1;
            for (size_t i = 0; i < n_io; i++)
                if (ios[i].id == 239)
                    x->ign = ios[i].value != 0;
        }
        if (d.err || d.pos != d.len || s[data + dlen - 1] != n)
            return -1;
        /* Time order, stable: a bubble sort. */
        for (unsigned i = 0; i + 1 < n; i++)
            for (unsigned j = 0; j + 1 < n - i; j++)
                if (recs[j].ts > recs[j + 1].ts) {
                    struct naive_rec t = recs[j];
                    recs[j] = recs[j + 1];
                    recs[j + 1] = t;
                }
        for (unsigned k = 0; k < n; k++) {
            struct naive_rec *x = &recs[k];
            if (x->ign >= 0)
                acc = x->ign;
            if (x->sats == 0 || (x->lat == 0 && x->lon == 0) || x->ts >= (uint64_t)HC_TS_MAX)
                continue;
            if (res->n_rep == res->cap)
                return -1;
            struct hc_report *o = &res->rep[res->n_rep];
            memset(o, 0, sizeof(*o));
            o->ts = (int64_t)x->ts;
            o->lat = x->lat / 1e7;
            o->lon = x->lon / 1e7;
            o->acc = (uint8_t)acc;
            o->vid_len = (uint8_t)imei_len;
            memcpy(o->vid, imei, imei_len);
            if (hc_report_check(o) == 0)
                res->n_rep++;
        }
        res->acked += n;
        res->packets++;
        r.pos = data + dlen + 4;
    }
    return 0;
}

/* ---- the measurement ---- */

typedef int (*decoder_fn)(const uint8_t *, size_t, struct result *);

static double timed(decoder_fn fn, const struct out_buf *in, struct result *res)
{
    res->n_rep = 0;
    res->acked = res->packets = 0;
    uint64_t t0 = hc_time_mono_ns();
    if (fn(in->p, in->n, res) < 0)
        return -1;
    return (double)(hc_time_mono_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
    unsigned packets = 100000, rounds = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            packets = 2000;
            rounds = 1;
        } else {
            printf("usage: bench_teltonika [--quick]\n\n"
                   "Teltonika Codec 8E packets (1-20 records, ~10 IO elements each) decoded\n"
                   "per second on one core by hubcap's decoder and by a naive one; both must\n"
                   "give identical reports.  --quick: a small stream, one round.\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }
    printf("# command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");

    size_t n_records;
    struct out_buf in = make_stream(packets, &n_records);
    struct result a = { 0 }, b = { 0 };
    a.cap = b.cap = n_records;
    a.rep = malloc(n_records * sizeof(*a.rep));
    b.rep = malloc(n_records * sizeof(*b.rep));
    if (!a.rep || !b.rep)
        return 1;
    /* Fault the pages in untimed (not zeros: malloc + memset 0 becomes calloc). */
    memset(a.rep, 0xff, n_records * sizeof(*a.rep));
    memset(b.rep, 0xff, n_records * sizeof(*b.rep));
    printf("# input: one connection, login + %u Codec 8E packets, %zu records (1-20 per"
           " packet, 10-11 IO elements each, 2 %% without a fix), %.1f MB in memory; one"
           " thread; one warm-up pass, then %u rounds, median; naive: bitwise CRC, a bounds-checked reader per"
           " field, IO elements listed then searched\n",
           packets, n_records, in.n / 1e6, rounds);

    /* One untimed pass of each first: the first touch of 200 MB is slow. */
    if (timed(run_hubcap, &in, &a) < 0 || timed(run_naive, &in, &b) < 0) {
        fprintf(stderr, "bench_teltonika: a decoder refused the stream\n");
        return 1;
    }
    double fast[8], slow[8];
    for (unsigned r = 0; r < rounds; r++) {
        fast[r] = timed(run_hubcap, &in, &a);
        slow[r] = timed(run_naive, &in, &b);
        if (fast[r] < 0 || slow[r] < 0) {
            fprintf(stderr, "bench_teltonika: a decoder refused the stream (%s)\n",
                    fast[r] < 0 ? "hubcap" : "naive");
            return 1;
        }
        if (a.n_rep != b.n_rep || a.acked != b.acked || a.packets != b.packets ||
            a.packets != packets || a.acked != n_records ||
            memcmp(a.rep, b.rep, a.n_rep * sizeof(*a.rep)) != 0) {
            fprintf(stderr, "bench_teltonika: the decoders disagree (%zu/%zu reports,"
                    " %llu/%llu acknowledged)\n", a.n_rep, b.n_rep,
                    (unsigned long long)a.acked, (unsigned long long)b.acked);
            return 1;
        }
        printf("# round %u: hubcap %.0f packets/s, naive %.0f packets/s; %zu reports"
               " identical\n", r + 1, packets / fast[r], packets / slow[r], a.n_rep);
    }
    double tf = bench_median(fast, (int)rounds), ts = bench_median(slow, (int)rounds);
    printf("BENCH teltonika_packets_per_s %.0f packets/s\n", packets / tf);
    printf("BENCH teltonika_records_per_s %.0f records/s\n", n_records / tf);
    printf("BENCH teltonika_mb_per_s %.0f MB/s\n", in.n / 1e6 / tf);
    printf("BENCH naive_packets_per_s %.0f packets/s\n", packets / ts);
    printf("BENCH naive_records_per_s %.0f records/s\n", n_records / ts);
    printf("BENCH teltonika_vs_naive_ratio %.1f x\n", ts / tf);
    printf("BENCH teltonika_reports %zu reports (identical in both decoders)\n", a.n_rep);
    free(a.rep);
    free(b.rep);
    free(in.p);
    return 0;
}
