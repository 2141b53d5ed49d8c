/*
 * fuzz_jt808.c — libFuzzer target for the JT/T 808 decoder.
 *
 * Each input is a TCP byte stream on one connection, run through frame()
 * and decode() as the front thread does: bytes arrive in chunks (sizes
 * cycling through a fixed pattern, so a frame is seen cut at many places),
 * the buffer never holds more than max_frame bytes, a negative frame()
 * skips, a positive one is decoded and consumed.  The input is also handed
 * whole to decode() when it is flagged at both ends and no longer than
 * max_frame, so decode() meets interior flags that frame() would not let
 * through.  abort() on any broken invariant:
 *
 *   - frame() never returns more than it was given, more than max_frame,
 *     0 while holding max_frame bytes, and never changes the connection;
 *   - decode() returns an HC_PROTO_* value jt808 uses (never CLOSE), at
 *     most HC_PROTO_MAX_REPORTS reports and HC_PROTO_MAX_REPLY reply bytes,
 *     no reports from a frame it drops for its checksum;
 *   - every report passes hc_report_check() and has zeros past vid/maker;
 *   - every reply is one well-formed frame: flags, valid escapes, checksum,
 *     a body length that matches its properties, and frame() takes it
 *     whole.
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

#define P (&hc_proto_jt808)
#define CONN_MAX 1024
#define BUF_MAX 4096

static struct hc_proto_out out;
static uint8_t conn[CONN_MAX], conn_copy[CONN_MAX];
static uint8_t buf[BUF_MAX];

static void check_reply(void)
{
    uint8_t raw[HC_PROTO_MAX_REPLY];
    const uint8_t *f = out.reply;
    size_t len = out.reply_len;
    if (len == 0)
        return;
    long got = devref_jt808_unescape(f, len, raw, sizeof(raw));
    CHECK(got >= 0);
    size_t n = (size_t)got;
    CHECK(n >= 13);
    unsigned props = (unsigned)raw[2] << 8 | raw[3];
    size_t hdr = props & 0x4000 ? 17 : 12;
    CHECK(!(props & 0x3c00));                   /* no split, no encryption */
    CHECK(n == hdr + (props & 0x3ff) + 1);
    unsigned id = (unsigned)raw[0] << 8 | raw[1];
    CHECK(id == 0x8001 || id == 0x8100);
    CHECK(P->frame(conn, f, len) == (long)len);
}

static void check_out(int rc)
{
    CHECK(rc == HC_PROTO_OK || rc == HC_PROTO_BAD_CHECKSUM || rc == HC_PROTO_BAD_LENGTH ||
          rc == HC_PROTO_UNSUPPORTED);
    CHECK(out.n_reports <= HC_PROTO_MAX_REPORTS);
    CHECK(out.reply_len <= HC_PROTO_MAX_REPLY);
    if (rc != HC_PROTO_OK)
        CHECK(out.n_reports == 0);
    if (rc == HC_PROTO_BAD_CHECKSUM)
        CHECK(out.reply_len == 0);
    for (size_t k = 0; k < out.n_reports; k++) {
        const struct hc_report *r = &out.reports[k];
        CHECK(hc_report_check(r) == 0);
        CHECK(r->vid_len >= 1 && r->vid_len <= 20);
        CHECK(r->acc == 0 || r->acc == 1);
        for (size_t i = r->vid_len; i < HC_VID_MAX; i++)
            CHECK(r->vid[i] == 0);
        for (size_t i = r->maker_len; i < HC_MAKER_MAX; i++)
            CHECK(r->maker[i] == 0);
    }
    check_reply();
}

/* Decode one frame and check what came out; 1 when decode() asks to keep
 * the frame's closing flag (out.resync). */
static int decode(const uint8_t *f, size_t len)
{
    out.n_reports = 0;
    out.reply_len = 0;
    out.skipped = 0;
    out.resync = 0;
    int rc = P->decode(conn, f, len, &out);
    check_out(rc);
    CHECK(!out.resync || len > 1);
    return out.resync;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t chunks[] = { 1, 5, 64, 3, 700, 2, 4096, 13 };
    const size_t max = P->max_frame;
    CHECK(P->conn_size <= CONN_MAX && max <= BUF_MAX);

    struct hc_proto_config cfg = { .tz_offset_min = 480 };
    if (size > 0 && (data[0] & 1))             /* the other configuration too */
        memcpy(cfg.auth_code, "code~}", 7);
    if (size > 0 && (data[0] & 2))
        cfg.tz_offset_min = -720;
    memset(conn, 0, sizeof(conn));
    P->conn_init(conn, &cfg);

    size_t off = 0, have = 0, k = 0;
    for (;;) {
        size_t take = chunks[k++ % (sizeof(chunks) / sizeof(chunks[0]))];
        if (take > size - off)
            take = size - off;
        if (take > max - have)
            take = max - have;
        memcpy(buf + have, data + off, take);
        have += take;
        off += take;
        for (;;) {
            memcpy(conn_copy, conn, P->conn_size);
            long r = P->frame(conn, buf, have);
            CHECK(memcmp(conn_copy, conn, P->conn_size) == 0);
            CHECK(r <= (long)have && r <= (long)max && r >= -(long)have);
            if (r == 0) {
                CHECK(have < max);
                break;
            }
            size_t used = r > 0 ? (size_t)r : (size_t)-r;
            if (r > 0) {
                CHECK(buf[0] == 0x7e && buf[used - 1] == 0x7e);
                if (decode(buf, used))
                    used--;             /* resync: the front keeps the closing flag */
                CHECK(used > 0);
            }
            memmove(buf, buf + used, have - used);
            have -= used;
        }
        if (off == size)
            break;
    }

    /* The whole input as one frame, interior flags and all. */
    if (size >= 2 && size <= max && data[0] == 0x7e && data[size - 1] == 0x7e) {
        uint8_t *copy = malloc(size);
        CHECK(copy);
        memcpy(copy, data, size);
        decode(copy, size);
        free(copy);
    }
    return 0;
}
