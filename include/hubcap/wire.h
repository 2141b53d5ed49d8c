/*
 * wire.h — hubcap's native wire format (DESIGN.md, "Native wire format
 * (msgpack)"): decoding payloads into struct hc_report, encoding reports for
 * tools and tests, and the TCP length framing.
 *
 * A payload is exactly one msgpack object: a report map, or an array of
 * report maps.  hc_wire_open() checks and parses a whole payload with
 * msgpack-c; hc_wire_next() then hands out its reports one at a time.  A
 * payload that is not that one object (bad msgpack, truncated, trailing
 * bytes, another top-level type) is refused whole with HC_EWIRE; a single
 * bad report inside a good payload is refused alone, and the rest of the
 * payload still decodes.
 *
 * Memory: a decoder owns one msgpack zone that is cleared, not freed,
 * between payloads, and grows to the largest payload seen (up to
 * HC_WIRE_ZONE_KEEP bytes, beyond which the excess is released at the next
 * open).  Nothing is allocated per report, and nothing per payload once the
 * zone is warm.  The decoded objects point into the caller's payload bytes
 * (msgpack-c does not copy strings), so the buffer must outlive iteration.
 *
 * Threading: a struct hc_wire belongs to one thread (the front thread keeps
 * one per thread, or per connection); nothing here locks.
 */
#ifndef HUBCAP_WIRE_H
#define HUBCAP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "hubcap/detect.h"

/* Largest payload a listener accepts unless configured otherwise. */
#define HC_WIRE_MAX_PAYLOAD_DEFAULT (1u << 20)

/* Zone bytes a decoder keeps between payloads (its high-water mark is
 * rounded up to a power of two and capped here).  msgpack-c takes 24 bytes
 * per object, ~4.6 times a typical report's size on the wire, so a full
 * 1 MiB payload fits; bigger ones still decode, but their extra zone
 * chunks are freed at the next hc_wire_open(). */
#define HC_WIRE_ZONE_KEEP (8u << 20)

/* Decoder state.  Fields are private to wire.c. */
struct hc_wire {
    msgpack_zone zone;              /* valid when zone_ready */
    int zone_ready;
    const msgpack_object *items;    /* the payload's elements */
    uint32_t n_items;
    uint32_t next;                  /* index of the next element to yield */
    msgpack_object root;            /* items points here for a single map */
};

/* Prepare w for use (allocates nothing; the zone is made at the first
 * hc_wire_open()).  Release with hc_wire_free(). */
void hc_wire_init(struct hc_wire *w);

/* Release w's memory.  Accepts NULL, a zeroed struct, or one already freed;
 * afterwards w is as hc_wire_init() leaves it. */
void hc_wire_free(struct hc_wire *w);

/* Parse the payload of exactly len bytes at buf: one msgpack object that is
 * a report map or an array of report maps (an empty array is a valid
 * payload of no reports).  Returns 0, after which hc_wire_next() yields the
 * payload's elements in order; HC_EWIRE if buf is not such an object (not
 * msgpack, truncated, trailing bytes, another top-level type, containers
 * nested deeper than msgpack-c's 32 levels, or element counts the bytes
 * cannot hold); or -ENOMEM.  Any earlier payload of w is forgotten.
 *
 * Lifetime: the parsed strings point into buf, so buf must stay valid and
 * unchanged until hc_wire_next() has returned 0 or the next hc_wire_open()
 * / hc_wire_free() on w. */
int hc_wire_open(struct hc_wire *w, const void *buf, size_t len);

/* Decode the payload's next element into *out.  Returns 1 with *out fully
 * set (bytes past vid_len / maker_len and padding zeroed); 0 when the
 * payload has no more elements (also before any successful open); or a
 * negative HC_E* when this element is not a valid report, in which case
 * the element is consumed, *out is unspecified, and the caller counts the
 * rejection and calls again:
 *   HC_ETYPE     element not a map, or vid/ts/lat/lon/acc/maker of the
 *                wrong type (vid: str or unsigned int, ts: int, lat/lon:
 *                float or int, acc: bool, maker: str or nil)
 *   HC_EMISSING  vid, ts, lat, lon or acc absent (checked before types)
 *   HC_EVID, HC_EMAKER, HC_ERANGE_TS, HC_ERANGE_LAT, HC_ERANGE_LON
 *                as hc_report_check() decides.
 * Keys are compared as exact bytes; non-string keys and unknown keys are
 * ignored whatever their value; when a key repeats, the last one counts. */
int hc_wire_next(struct hc_wire *w, struct hc_report *out);

/* Append r to pk as one map: vid (str), ts (int), lat, lon (float64), acc
 * (bool), and maker (str) only when r->maker_len > 0.  r must satisfy
 * vid_len <= HC_VID_MAX and maker_len <= HC_MAKER_MAX (asserted); other
 * values are written as they are, valid or not.  Returns 0, or -ENOMEM
 * when pk's writer fails (msgpack_sbuffer fails only on allocation). */
int hc_wire_pack(msgpack_packer *pk, const struct hc_report *r);

/* TCP framing: each payload is preceded by its length, 4 bytes big-endian
 * unsigned.  Listeners refuse lengths above their configured maximum. */
static inline void hc_wire_frame_header(uint8_t hdr[4], uint32_t len)
{
    hdr[0] = (uint8_t)(len >> 24);
    hdr[1] = (uint8_t)(len >> 16);
    hdr[2] = (uint8_t)(len >> 8);
    hdr[3] = (uint8_t)len;
}

static inline uint32_t hc_wire_frame_length(const uint8_t hdr[4])
{
    return (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
           (uint32_t)hdr[2] << 8 | (uint32_t)hdr[3];
}

#endif
