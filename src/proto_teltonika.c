/*
 * proto_teltonika.c — Teltonika Codec 8 and Codec 8 Extended (8E) over TCP,
 * default port 5027 (see proto.h for the operations table).
 *
 * A connection opens with the device's login: a 2-byte big-endian length
 * and that many ASCII digits, its IMEI.  We accept 8 to 17 digits (an IMEI
 * is 15, an IMEISV 16; shorter ids come from test rigs and some OEM
 * builds) and answer one byte, 0x01.  Anything else before a login, AVL
 * data included, is a broken login: we answer 0x00 and close.  After the
 * login every frame is an AVL packet:
 *
 *   00 00 00 00 | data length (4, BE) | codec, N1, records, N2 | CRC (4, BE)
 *
 * where the CRC is CRC-16/IBM (ARC) of the data field in the low two bytes.
 * A packet that decodes is answered with the number of records it held (4
 * bytes, BE); the device then deletes them.  Records without a GPS fix are
 * counted in out->skipped but still acknowledged: they were delivered, we
 * just have no position to report.  A packet that does not decode (bad CRC,
 * inconsistent lengths, a codec other than 8/8E) gets no answer, so the
 * device sends it again; a connection stays open through such packets.
 * (A device configured for Codec 16, or one whose packets we cannot read,
 * therefore never gets past them: the front's per-result counters show
 * it, rather than records being acknowledged and lost.)
 *
 * Decisions the protocol leaves to the server:
 *   - Ignition is IO 239 (value != 0), accepted in any width group, the
 *     8E variable-length group included.  Devices often send 239 only when
 *     it changes, so a record without it inherits the last ignition seen on
 *     this connection (off on a fresh connection): a car that switched its
 *     ignition on and drives away must not look parked until 239 repeats.
 *   - Reports leave a packet in timestamp order (stable), whatever order
 *     the device sent them in (the "newest first" sorting setting), since
 *     the detector refuses a report older than the vehicle's last; the
 *     ignition is carried forward in that same order.
 *   - max_frame is 64 KiB.  The documented packets are around 1 KiB, but
 *     8E's variable-length IO (beacons, CAN data) has no documented bound.
 *   - Resynchronisation: a frame must start with four zero bytes and give a
 *     data length of 3 .. 64 KiB - 12.  Otherwise frame() skips one byte
 *     (a bad length) or to the next run of zero bytes (a bad preamble).
 *   - The IO total count is not checked against the group counts: the
 *     group counts alone decide the layout, the CRC guards the bytes, and
 *     the records must fill the data field exactly.
 *
 * Runs on the front thread that owns the connection; no allocation, no
 * system calls.
 */
#include <stdint.h>
#include <string.h>

#include "hubcap/detect.h"
#include "hubcap/proto.h"

#define IMEI_MIN 8
#define IMEI_MAX 17
#define HEAD 8                  /* preamble + data field length */
#define TAIL 4                  /* CRC field */
#define MAX_FRAME 65536u
#define MAX_DATA (MAX_FRAME - HEAD - TAIL)
#define MIN_DATA 3              /* codec id, N1, N2: a packet of no records */
#define GPS_HEAD 24             /* timestamp 8, priority 1, GPS element 15 */
#define IO_IGNITION 239
#define CODEC_8 0x08
#define CODEC_8E 0x8E

struct telt_conn {
    uint8_t logged_in;
    uint8_t ignition;           /* last IO 239 seen on this connection */
    uint8_t imei_len;
    char imei[IMEI_MAX];
};

/* One record as read, before it becomes a report. */
struct rec {
    uint64_t ts;                /* ms UTC, as sent */
    int32_t lat, lon;           /* 1e-7 degrees */
    uint8_t sats;
    int8_t ign;                 /* IO 239: 0 or 1; -1 when the record has none */
};

static inline uint32_t be16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/*
 * CRC-16/IBM (ARC): reflected polynomial 0xA001, initial value 0, no final
 * xor.  It dominates the cost of a packet, so it runs eight bytes at a time
 * ("slicing by 8"): crc_tab[k][x] is the CRC of byte x followed by k zero
 * bytes.  The compiler works the tables out from the polynomial: the CRC is
 * linear, so entry x is the xor of K(k, i) over the bits i set in x, where
 * K(k, i), the CRC of the byte 1 << i followed by k zero bytes, is the
 * register shifted eight times per byte (CRC_BYTE) from K(k - 1, i).
 */
#define CRC_BIT(c) (((c) >> 1) ^ (0xA001u & (0u - ((c) & 1u))))
#define CRC_BYTE(c) CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT(c))))))))
#define K_ROW(k, from) K##k##_0 = CRC_BYTE(from(0)), K##k##_1 = CRC_BYTE(from(1)), \
    K##k##_2 = CRC_BYTE(from(2)), K##k##_3 = CRC_BYTE(from(3)), \
    K##k##_4 = CRC_BYTE(from(4)), K##k##_5 = CRC_BYTE(from(5)), \
    K##k##_6 = CRC_BYTE(from(6)), K##k##_7 = CRC_BYTE(from(7))
#define K_BIT(i) (1u << (i))
#define K_0(i) K0_##i
#define K_1(i) K1_##i
#define K_2(i) K2_##i
#define K_3(i) K3_##i
#define K_4(i) K4_##i
#define K_5(i) K5_##i
#define K_6(i) K6_##i
enum {
    K_ROW(0, K_BIT), K_ROW(1, K_0), K_ROW(2, K_1), K_ROW(3, K_2),
    K_ROW(4, K_3), K_ROW(5, K_4), K_ROW(6, K_5), K_ROW(7, K_6)
};
#define K_SEL(k, x, i) ((x) & (1u << (i)) ? (unsigned)K##k##_##i : 0u)
#define CRC_ENTRY(k, x) (uint16_t)(K_SEL(k, x, 0) ^ K_SEL(k, x, 1) ^ K_SEL(k, x, 2) ^ \
    K_SEL(k, x, 3) ^ K_SEL(k, x, 4) ^ K_SEL(k, x, 5) ^ K_SEL(k, x, 6) ^ K_SEL(k, x, 7))
#define CRC_4(k, x) CRC_ENTRY(k, x), CRC_ENTRY(k, (x) + 1u), CRC_ENTRY(k, (x) + 2u), \
    CRC_ENTRY(k, (x) + 3u)
#define CRC_16(k, x) CRC_4(k, x), CRC_4(k, (x) + 4u), CRC_4(k, (x) + 8u), CRC_4(k, (x) + 12u)
#define CRC_64(k, x) CRC_16(k, x), CRC_16(k, (x) + 16u), CRC_16(k, (x) + 32u), \
    CRC_16(k, (x) + 48u)
#define CRC_256(k) { CRC_64(k, 0u), CRC_64(k, 64u), CRC_64(k, 128u), CRC_64(k, 192u) }

static const uint16_t crc_tab[8][256] = {
    CRC_256(0), CRC_256(1), CRC_256(2), CRC_256(3),
    CRC_256(4), CRC_256(5), CRC_256(6), CRC_256(7),
};

/* The CRC-16/IBM of p[0..n). */
static uint32_t crc16_ibm(const uint8_t *p, size_t n)
{
    uint32_t crc = 0;
    for (; n >= 8; n -= 8, p += 8) {
        /* The register meets the first two bytes; each byte is then
         * carried through the zero bytes that follow it in the block. */
        uint32_t a = crc ^ (p[0] | (uint32_t)p[1] << 8);
        crc = crc_tab[7][a & 0xff] ^ crc_tab[6][a >> 8] ^ crc_tab[5][p[2]] ^
              crc_tab[4][p[3]] ^ crc_tab[3][p[4]] ^ crc_tab[2][p[5]] ^
              crc_tab[1][p[6]] ^ crc_tab[0][p[7]];
    }
    for (; n > 0; n--, p++)
        crc = (crc >> 8) ^ crc_tab[0][(crc ^ *p) & 0xff];
    return crc;
}

/* 1 if any of the w bytes at p is not zero. */
static inline int8_t nonzero(const uint8_t *p, size_t w)
{
    for (size_t i = 0; i < w; i++)
        if (p[i])
            return 1;
    return 0;
}

/*
 * The IO element of one Codec 8 record at p, ending no later than end.
 * Returns the byte after it, or NULL if it runs past end; sets *ign from
 * IO 239 where that appears.  Layout: event IO id (1), total count (1),
 * then for values of 1, 2, 4 and 8 bytes: a count (1) and that many
 * (id 1, value).
 */
static const uint8_t *io_codec8(const uint8_t *p, const uint8_t *end, int8_t *ign)
{
    if (end - p < 2)
        return NULL;
    p += 2;
    for (size_t w = 1; w <= 8; w <<= 1) {
        if (p == end)
            return NULL;
        size_t n = *p++, step = 1 + w;
        if ((size_t)(end - p) < n * step)
            return NULL;
        for (size_t i = 0; i < n; i++, p += step)
            if (p[0] == IO_IGNITION)
                *ign = nonzero(p + 1, w);
    }
    return p;
}

/*
 * The same for Codec 8E: ids and counts are 2 bytes, and a fifth group
 * follows of (id 2, length 2, value of that length).
 */
static const uint8_t *io_codec8e(const uint8_t *p, const uint8_t *end, int8_t *ign)
{
    if (end - p < 4)
        return NULL;
    p += 4;
    for (size_t w = 1; w <= 8; w <<= 1) {
        if (end - p < 2)
            return NULL;
        size_t n = be16(p), step = 2 + w;
        p += 2;
        if ((size_t)(end - p) < n * step)
            return NULL;
        for (size_t i = 0; i < n; i++, p += step)
            if (be16(p) == IO_IGNITION)
                *ign = nonzero(p + 2, w);
    }
    if (end - p < 2)
        return NULL;
    size_t n = be16(p);
    p += 2;
    for (size_t i = 0; i < n; i++) {
        if (end - p < 4)
            return NULL;
        uint32_t id = be16(p);
        size_t w = be16(p + 2);
        p += 4;
        if ((size_t)(end - p) < w)
            return NULL;
        if (id == IO_IGNITION)
            *ign = nonzero(p, w);
        p += w;
    }
    return p;
}

/* Stable insertion sort by timestamp: linear when already in order, which
 * is how devices send by default. */
static void sort_by_time(struct rec *r, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        if (r[i].ts >= r[i - 1].ts)
            continue;
        struct rec x = r[i];
        size_t j = i;
        while (j > 0 && r[j - 1].ts > x.ts) {
            r[j] = r[j - 1];
            j--;
        }
        r[j] = x;
    }
}

static void telt_conn_init(void *conn, const struct hc_proto_config *cfg)
{
    (void)cfg;
    memset(conn, 0, sizeof(struct telt_conn));
}

/*
 * Where the first frame in buf[0..len) ends: before the login, the login
 * frame (a length over IMEI_MAX gives just the 2-byte length, for decode to
 * refuse); after it, an AVL packet, or how much garbage to skip.  Never
 * more than len, never more than MAX_FRAME.
 */
static long telt_frame(const void *conn, const uint8_t *buf, size_t len)
{
    const struct telt_conn *c = conn;
    if (!c->logged_in) {
        if (len < 2)
            return 0;
        size_t n = be16(buf);
        if (n > IMEI_MAX)
            return 2;
        return len < 2 + n ? 0 : (long)(2 + n);
    }

    size_t head = len < 4 ? len : 4;
    for (size_t i = 0; i < head; i++) {
        if (buf[i] == 0)
            continue;
        /* Not a preamble: skip to the next run of four zero bytes, or to
         * the zero bytes at the end that may begin one. */
        size_t run = 0;
        for (size_t j = i + 1; j < len; j++) {
            run = buf[j] ? 0 : run + 1;
            if (run == 4)
                return -(long)(j - 3);
        }
        return -(long)(len - run);
    }
    if (len < HEAD)
        return 0;
    uint32_t dlen = be32(buf + 4);
    if (dlen < MIN_DATA || dlen > MAX_DATA)
        return -1;
    size_t total = HEAD + (size_t)dlen + TAIL;
    return len < total ? 0 : (long)total;
}

/* The first frame of a connection: an IMEI of IMEI_MIN..IMEI_MAX digits
 * logs the connection in (reply 0x01, HC_PROTO_OK); anything else is
 * refused (reply 0x00, HC_PROTO_CLOSE) and changes nothing. */
static int login(struct telt_conn *c, const uint8_t *f, size_t len, struct hc_proto_out *out)
{
    size_t n = len >= 2 ? be16(f) : 0;
    int ok = len >= 2 && n == len - 2 && n >= IMEI_MIN && n <= IMEI_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = f[2 + i] >= '0' && f[2 + i] <= '9';
    out->reply[0] = ok ? 0x01 : 0x00;
    out->reply_len = 1;
    if (!ok)
        return HC_PROTO_CLOSE;
    c->logged_in = 1;
    c->imei_len = (uint8_t)n;
    memcpy(c->imei, f + 2, n);
    return HC_PROTO_OK;
}

/* Turn the parsed records into reports (see the file comment for the
 * order, the ignition carried forward and the records skipped). */
static void emit(struct telt_conn *c, struct rec *recs, size_t n, struct hc_proto_out *out)
{
    sort_by_time(recs, n);
    uint8_t ign = c->ignition;
    for (size_t i = 0; i < n; i++) {
        const struct rec *r = &recs[i];
        if (r->ign >= 0)
            ign = (uint8_t)r->ign;
        if (r->sats == 0 || (r->lat == 0 && r->lon == 0) || r->ts >= (uint64_t)HC_TS_MAX) {
            out->skipped++;
            continue;
        }
        struct hc_report *o = &out->reports[out->n_reports];
        memset(o, 0, sizeof(*o));
        o->ts = (int64_t)r->ts;
        o->lat = r->lat / 1e7;
        o->lon = r->lon / 1e7;
        o->acc = ign;
        o->vid_len = c->imei_len;
        memcpy(o->vid, c->imei, c->imei_len);
        if (hc_report_check(o) != 0)
            out->skipped++;
        else
            out->n_reports++;
    }
    c->ignition = ign;
}

/* One AVL packet on a logged-in connection.  HC_PROTO_OK with the reports,
 * the skipped count and the 4-byte acknowledgement; otherwise the packet is
 * dropped whole (no reports, no reply, the connection's ignition as it
 * was): BAD_LENGTH when the lengths, counts and records disagree,
 * BAD_CHECKSUM, or UNSUPPORTED for a codec other than 8 and 8E. */
static int avl(struct telt_conn *c, const uint8_t *f, size_t len, struct hc_proto_out *out)
{
    if (len < HEAD + MIN_DATA + TAIL || be32(f) != 0)
        return HC_PROTO_BAD_LENGTH;
    size_t dlen = be32(f + 4);
    if (dlen != len - HEAD - TAIL)
        return HC_PROTO_BAD_LENGTH;
    const uint8_t *data = f + HEAD;
    if (crc16_ibm(data, dlen) != be32(data + dlen))
        return HC_PROTO_BAD_CHECKSUM;
    uint8_t codec = data[0];
    if (codec != CODEC_8 && codec != CODEC_8E)
        return HC_PROTO_UNSUPPORTED;
    size_t n = data[1];
    if (data[dlen - 1] != n)
        return HC_PROTO_BAD_LENGTH;

    struct rec recs[HC_PROTO_MAX_REPORTS];
    const uint8_t *p = data + 2, *end = data + dlen - 1;
    for (size_t i = 0; i < n; i++) {
        if (end - p < GPS_HEAD)
            return HC_PROTO_BAD_LENGTH;
        struct rec *r = &recs[i];
        r->ts = be64(p);
        r->lon = (int32_t)be32(p + 9);
        r->lat = (int32_t)be32(p + 13);
        r->sats = p[21];
        r->ign = -1;
        p += GPS_HEAD;
        p = codec == CODEC_8 ? io_codec8(p, end, &r->ign) : io_codec8e(p, end, &r->ign);
        if (!p)
            return HC_PROTO_BAD_LENGTH;
    }
    if (p != end)
        return HC_PROTO_BAD_LENGTH;

    emit(c, recs, n, out);
    out->reply[0] = 0;
    out->reply[1] = 0;
    out->reply[2] = 0;
    out->reply[3] = (uint8_t)n;
    out->reply_len = 4;
    return HC_PROTO_OK;
}

/* One frame as telt_frame() delimited it (or any bytes at all: every
 * length and field is checked again here). */
static int telt_decode(void *conn, const uint8_t *frame, size_t len, struct hc_proto_out *out)
{
    struct telt_conn *c = conn;
    out->n_reports = 0;
    out->reply_len = 0;
    out->skipped = 0;
    if (!c->logged_in)
        return login(c, frame, len, out);
    return avl(c, frame, len, out);
}

const struct hc_proto_ops hc_proto_teltonika = {
    .name = "teltonika",
    .default_port = 5027,
    .conn_size = sizeof(struct telt_conn),
    .max_frame = MAX_FRAME,
    .conn_init = telt_conn_init,
    .frame = telt_frame,
    .decode = telt_decode,
};
