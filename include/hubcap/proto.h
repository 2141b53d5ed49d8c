/*
 * proto.h — device protocols behind one operations table.
 *
 * Each protocol (JT/T 808, Teltonika Codec 8/8E, ...) is one file
 * (src/proto_<name>.c) exporting one `const struct hc_proto_ops`.  The
 * front thread owns the sockets and the bytes; a protocol only looks at
 * bytes it is given:
 *
 *   1. frame(): where the next frame in the received bytes ends (or that
 *      more bytes are needed, or how many bytes of garbage to skip);
 *   2. decode(): one whole frame -> zero or more struct hc_report (the
 *      same fixed-size record the msgpack decoder makes) and the reply
 *      bytes the device expects, plus whether the frame was dropped.
 *
 * Per-connection state is the protocol's own fixed-size struct (conn_size
 * bytes, zeroed then conn_init), so memory per connection is bounded and
 * no protocol allocates.  Decoders never block and never call the kernel.
 * The worker never learns where a report came from.
 *
 * Threading: a connection's state is used by one thread (the front).
 */
#ifndef HUBCAP_PROTO_H
#define HUBCAP_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "hubcap/detect.h"

/* Most reports one frame can carry (JT/T 808 0x0704 batches, Teltonika
 * AVL packets: the count is one byte in both). */
#define HC_PROTO_MAX_REPORTS 255

/* Most reply bytes one frame can ask for (escaped JT/T 808 replies are
 * the largest: 0x8100 with an authentication code). */
#define HC_PROTO_MAX_REPLY 512

/* Settings every protocol may read (from [jt808], [teltonika]). */
struct hc_proto_config {
    int tz_offset_min;          /* JT/T 808 BCD times: minutes east of UTC (480: UTC+8) */
    char auth_code[64];         /* JT/T 808 0x8100 answer; "": derived from the phone */
};

/* What decode() hands back for one frame. */
struct hc_proto_out {
    struct hc_report reports[HC_PROTO_MAX_REPORTS];
    size_t n_reports;
    uint8_t reply[HC_PROTO_MAX_REPLY];
    size_t reply_len;           /* 0: nothing to send back */
    uint32_t skipped;           /* records in the frame not turned into reports
                                   (out of range, no fix, unsupported type) */
    uint8_t resync;             /* consume all but the frame's last byte: a frame
                                   that failed may have ended on the flag that
                                   opens the next one (JT/T 808) */
};

/* decode() results. */
enum {
    HC_PROTO_OK = 0,            /* decoded (maybe no reports: a heartbeat) */
    HC_PROTO_BAD_CHECKSUM = 1,  /* dropped and counted; the connection stays */
    HC_PROTO_BAD_LENGTH = 2,    /* body length disagrees with the header: dropped */
    HC_PROTO_UNSUPPORTED = 3,   /* well-formed but not a message we handle: dropped
                                   (a reply may still be set, e.g. 0x8001 "not
                                   supported") */
    HC_PROTO_CLOSE = -1,        /* the device broke the protocol (say a Teltonika
                                   login that is not an IMEI): close the connection */
};

struct hc_proto_ops {
    const char *name;           /* "jt808", "teltonika": config section, logs, stats */
    unsigned default_port;      /* 5015, 5027 */
    size_t conn_size;           /* bytes of per-connection state */
    size_t max_frame;           /* longest frame frame() ever asks for */

    /* Fresh state for a new connection (conn: conn_size bytes, zeroed). */
    void (*conn_init)(void *conn, const struct hc_proto_config *cfg);

    /* Look at the len bytes received and not yet consumed:
     *   > 0  a whole frame of that many bytes starts at buf;
     *   0    not enough bytes yet (the caller reads more; it never holds
     *        more than max_frame bytes for one frame);
     *   < 0  -n: skip n bytes of garbage, then ask again.
     * Must not change conn. */
    long (*frame)(const void *conn, const uint8_t *buf, size_t len);

    /* Decode one whole frame as frame() delimited it into *out (n_reports
     * and reply_len start at 0).  Returns an HC_PROTO_* value. */
    int (*decode)(void *conn, const uint8_t *frame, size_t len, struct hc_proto_out *out);
};

extern const struct hc_proto_ops hc_proto_jt808;
extern const struct hc_proto_ops hc_proto_teltonika;

#endif
