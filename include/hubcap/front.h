/*
 * front.h — the front thread: one io_uring that accepts TCP connections
 * and receives UDP datagrams in hubcap's native msgpack format, decodes
 * them into struct hc_report and routes each to the ring of the worker
 * that owns its vehicle (hc_hash(vid) % workers).
 *
 * TCP: multishot accept; multishot recv into a provided buffer ring; a
 * framer per connection reassembles length-prefixed payloads (several in
 * one read, or one across many).  A malformed or oversized frame closes
 * that connection only.  When a worker's ring is full the reports that did
 * not fit wait on their connection, its multishot recv is cancelled, and
 * the kernel's socket buffer and TCP flow control push back on the sender;
 * reading resumes once they have been delivered.
 *
 * Memory: a stalled connection holds at most one frame's reports, as
 * 128-byte records (up to max_payload / 8 of them).
 *
 * UDP: multishot recvmsg into a second buffer ring, one payload per
 * datagram.  A datagram is queued whole or dropped whole (and counted)
 * when a ring lacks room: memory stays bounded under any load.
 *
 * All state belongs to the front thread; `stats` is written only by it.
 */
#ifndef HUBCAP_FRONT_H
#define HUBCAP_FRONT_H

#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>

#include "hubcap/config.h"
#include "hubcap/proto.h"
#include "hubcap/ring.h"
#include "hubcap/wire.h"

/* UDP receive buffer hubcapd asks for (bytes). */
#define HC_FRONT_UDP_RCVBUF (32 << 20)

/* Device protocols the front serves, each on its own TCP listener. */
enum { HC_FRONT_JT808, HC_FRONT_TELTONIKA, HC_FRONT_PROTOS };
extern const struct hc_proto_ops *const hc_front_proto_ops[HC_FRONT_PROTOS];

struct hc_front_proto_stats {
    uint64_t accepted;      /* connections */
    uint64_t frames;        /* frames decoded */
    uint64_t reports;       /* reports queued for the workers */
    uint64_t skipped;       /* records not turned into reports (no fix, out of range) */
    uint64_t bad_checksum;  /* frames dropped: checksum or CRC wrong */
    uint64_t bad_length;    /* frames dropped: lengths disagree */
    uint64_t unsupported;   /* frames of messages hubcap does not handle */
    uint64_t garbage;       /* bytes skipped between frames */
    uint64_t closed_idle;   /* connections closed: nothing decodable for idle_timeout */
    uint64_t closed_protocol; /* connections closed: the device broke the protocol */
};

struct hc_front_stats {
    uint64_t accepted;      /* TCP connections accepted */
    uint64_t refused;       /* ... closed at once: max_connections reached */
    uint64_t closed;        /* connections closed, for any reason */
    uint64_t malformed;     /* connections closed for a malformed frame */
    uint64_t oversized;     /* connections closed for a frame over max_payload */
    uint64_t frames;        /* TCP payloads decoded */
    uint64_t reports;       /* reports decoded and queued (TCP and UDP) */
    uint64_t rejected;      /* invalid reports skipped inside good payloads */
    uint64_t bytes;         /* TCP bytes received */
    uint64_t paused;        /* times a connection waited for a full ring */
    uint64_t udp_datagrams; /* datagrams received */
    uint64_t udp_dropped;   /* ... dropped whole: a ring had no room */
    uint64_t udp_malformed; /* ... dropped whole: not a valid payload */
    uint64_t lost;          /* reports still waiting at shutdown, dropped */
    uint64_t accept_errors; /* accepts that failed for want of descriptors */
    struct hc_front_proto_stats proto[HC_FRONT_PROTOS];
};

struct hc_conn;

struct hc_front {
    const struct hc_config *cfg;
    unsigned nworkers;
    struct hc_ring **rings;         /* [nworkers] */
    struct hc_wake **wakes;         /* [nworkers] */
    int *done;                      /* set (release) when the front stopped */
    int cpu;

    struct io_uring ring;
    int tcp_fd, udp_fd;
    uint16_t tcp_port, udp_port;
    struct hc_wake stop;
    uint64_t stop_buf;

    struct io_uring_buf_ring *tbr, *ubr;
    unsigned char *tbufs, *ubufs;
    struct msghdr udp_msg;

    struct hc_conn *conns;
    unsigned n_conns, max_conns;
    uint32_t *free_conns;
    unsigned n_free;
    unsigned n_waiting;             /* connections with stalled input */
    int starved;                    /* some recv ended with -ENOBUFS */
    int stopping;                   /* shutting down: no more recv */
    int failed;                     /* stopped on an error, not on request */
    uint64_t accept_retry_ns;       /* re-arm accept then (after EMFILE) */
    uint8_t accept_armed[1 + HC_FRONT_PROTOS]; /* a multishot accept is outstanding */

    /* device protocols: listener, port, operations (NULL: off) */
    int proto_fd[HC_FRONT_PROTOS];
    uint16_t proto_port[HC_FRONT_PROTOS];
    const struct hc_proto_ops *protos[HC_FRONT_PROTOS];
    uint64_t proto_idle_ms[HC_FRONT_PROTOS];
    char proto_maker[HC_FRONT_PROTOS][HC_MAKER_MAX + 1]; /* for reports naming none */
    uint8_t proto_maker_len[HC_FRONT_PROTOS];
    struct hc_proto_config pcfg;
    struct hc_proto_out *pout;      /* one frame's decoded reports and reply */
    unsigned n_proto_conns;
    uint64_t next_sweep_ms;         /* idle device connections are closed then */

    struct hc_wire wire;
    struct hc_report *staging;      /* one UDP datagram's reports */
    uint32_t *staging_worker;
    unsigned *count;                /* [nworkers], per datagram */
    unsigned char *kick;            /* [nworkers] */

    pthread_t thread;
    struct hc_front_stats stats;
};

/* Create the sockets (bound and listening, ports resolved when 0 was asked)
 * and the io_uring.  0 or a negative errno with a logged reason. */
int hc_front_open(struct hc_front *f, const struct hc_config *cfg, struct hc_ring **rings,
                  struct hc_wake **wakes, unsigned nworkers, int *done);
int hc_front_start(struct hc_front *f);
/* Ask the front to stop: it stops accepting and reading, hands over what
 * it holds, sets *done and wakes every worker. */
void hc_front_stop(struct hc_front *f);
void hc_front_join(struct hc_front *f);
void hc_front_close(struct hc_front *f);
void hc_front_read_stats(const struct hc_front *f, struct hc_front_stats *out);

#endif
