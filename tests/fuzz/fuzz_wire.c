/*
 * fuzz_wire.c — libFuzzer target for the native msgpack wire format.
 *
 * Each input is used twice: as one payload (a UDP datagram), and as a TCP
 * byte stream cut into frames by 4-byte big-endian length headers (lengths
 * above HC_WIRE_MAX_PAYLOAD_DEFAULT end the stream, as a listener would
 * close the connection).  Every payload is opened and iterated to the end
 * with one decoder that lives across inputs, as the front thread's does.
 * abort() on any broken invariant: a report that hc_wire_next() accepts
 * must pass hc_report_check(), have its lengths in range and zeros beyond
 * them, and survive a pack/decode round trip unchanged; and a payload
 * hc_wire_open() refuses must be one msgpack-c refuses too, or one that is
 * not a map or array (wire.c checks sizes before msgpack-c sees them; this
 * catches that check refusing good payloads).
 *
 * Build and run with tools/fuzz.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hubcap/detect.h"
#include "hubcap/error.h"
#include "hubcap/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct hc_wire dec;      /* reused across inputs: zone reuse is fuzzed too */
static struct hc_wire echo;
static msgpack_sbuffer sb;
static msgpack_packer pk;
static int ready;

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static int known_rejection(int rc)
{
    return rc == HC_EMISSING || rc == HC_ETYPE || rc == HC_EVID ||
           rc == HC_EMAKER || rc == HC_ERANGE_TS || rc == HC_ERANGE_LAT ||
           rc == HC_ERANGE_LON;
}

static void check_report(const struct hc_report *r)
{
    CHECK(hc_report_check(r) == 0);
    CHECK(r->vid_len >= 1 && r->vid_len <= HC_VID_MAX);
    CHECK(r->maker_len <= HC_MAKER_MAX);
    CHECK(r->acc == 0 || r->acc == 1);
    for (size_t i = r->vid_len; i < HC_VID_MAX; i++)
        CHECK(r->vid[i] == 0);
    for (size_t i = r->maker_len; i < HC_MAKER_MAX; i++)
        CHECK(r->maker[i] == 0);

    /* What we decoded, we can encode, and decoding that gives it back. */
    struct hc_report again;
    msgpack_sbuffer_clear(&sb);
    CHECK(hc_wire_pack(&pk, r) == 0);
    CHECK(hc_wire_open(&echo, sb.data, sb.size) == 0);
    CHECK(hc_wire_next(&echo, &again) == 1);
    CHECK(memcmp(r, &again, sizeof(again)) == 0);
    CHECK(hc_wire_next(&echo, &again) == 0);
}

/* hc_wire_open() refused p: msgpack-c alone must not find one whole map
 * or array there.  Asked only when p holds no array 32 / map 32 header
 * byte (0xdd, 0xdf): those are what make msgpack-c allocate gigabytes, and
 * without them it needs at most 32 * 65535 * 48 bytes. */
static void check_refusal(const uint8_t *p, size_t len)
{
    if (len == 0 || memchr(p, 0xdd, len) || memchr(p, 0xdf, len))
        return;
    msgpack_zone z;
    msgpack_object o;
    size_t off = 0;
    CHECK(msgpack_zone_init(&z, 4096));
    msgpack_unpack_return ur = msgpack_unpack((const char *)p, len, &off, &z, &o);
    CHECK(!(ur == MSGPACK_UNPACK_SUCCESS && off == len &&
            (o.type == MSGPACK_OBJECT_MAP || o.type == MSGPACK_OBJECT_ARRAY)));
    msgpack_zone_destroy(&z);
}

static void payload(const uint8_t *p, size_t len)
{
    struct hc_report r;
    int rc = hc_wire_open(&dec, p, len);
    if (rc != 0) {
        CHECK(rc == HC_EWIRE);
        CHECK(hc_wire_next(&dec, &r) == 0);
        check_refusal(p, len);
        return;
    }
    /* Each element is at least one byte, so a payload cannot yield more. */
    size_t n = 0;
    while ((rc = hc_wire_next(&dec, &r)) != 0) {
        CHECK(++n <= len);
        if (rc == 1)
            check_report(&r);
        else
            CHECK(known_rejection(rc));
    }
    CHECK(hc_wire_next(&dec, &r) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        hc_wire_init(&dec);
        hc_wire_init(&echo);
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        ready = 1;
    }

    /* The input as one datagram.  Copied so ASan sees its exact end. */
    uint8_t *copy = malloc(size ? size : 1);
    CHECK(copy);
    memcpy(copy, data, size);
    payload(copy, size);
    free(copy);

    /* The input as a TCP stream of frames. */
    size_t off = 0;
    while (size - off >= 4) {
        uint32_t len = hc_wire_frame_length(data + off);
        off += 4;
        if (len > HC_WIRE_MAX_PAYLOAD_DEFAULT || len > size - off)
            break;
        payload(data + off, len);
        off += len;
    }
    return 0;
}
