/*
 * front.c — the io_uring front thread (see front.h).
 *
 * Event loop (liburing style): submit-and-wait, walk the completion batch,
 * dispatch on the typed user_data (kind, connection slot, generation),
 * advance.  Then retry connections whose reports wait for ring room, re-arm
 * receives that stopped for lack of buffers, and ring the doorbell of every
 * worker that got records in this round.
 *
 * A connection's input is a queue of buffer slices (provided-buffer id,
 * offset, length).  A slice is consumed by the framer; a frame lying wholly
 * inside one slice is decoded in place, otherwise it is copied into the
 * connection's reassembly buffer (at most max_payload bytes).  Decoding
 * runs to the end of the frame at once; reports that find their ring full
 * are copied to the connection's stalled list, in order, and everything
 * after them on that connection waits until they are delivered.  So the
 * order of a vehicle's reports is the order they arrived on a connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hubcap/error.h"
#include "hubcap/front.h"
#include "hubcap/hash.h"
#include "hubcap/log.h"
#include "hubcap/thread.h"
#include "hubcap/timefmt.h"

#define TBUF_SIZE (64 * 1024)       /* TCP receive buffers */
#define TBUF_COUNT 256
#define UBUF_SIZE (65536 + 256)     /* a whole datagram plus recvmsg header */
#define UBUF_COUNT 128
#define TCP_GROUP 0
#define UDP_GROUP 1

enum ud_kind { UD_ACCEPT = 1, UD_RECV, UD_UDP, UD_STOP, UD_CANCEL };

static inline uint64_t ud_make(enum ud_kind kind, uint32_t slot, uint32_t gen)
{
    return (uint64_t)kind << 56 | (uint64_t)(gen & 0xffffff) << 32 | slot;
}
static inline enum ud_kind ud_kind(uint64_t ud) { return (enum ud_kind)(ud >> 56); }
static inline uint32_t ud_slot(uint64_t ud) { return (uint32_t)ud; }
static inline uint32_t ud_gen(uint64_t ud) { return (uint32_t)(ud >> 32) & 0xffffff; }

struct slice {
    uint16_t bid;
    uint32_t off, len;
};

struct hc_conn {
    int fd;
    uint32_t gen;
    uint8_t open;
    uint8_t armed;          /* a multishot recv is outstanding */
    uint8_t eof;            /* the peer closed its side */
    uint8_t waiting;        /* counted in n_waiting */
    uint8_t hdr[4];
    uint8_t hdr_have;
    uint32_t need, have;    /* current frame: payload length, bytes copied */
    uint8_t *buf;           /* reassembly buffer */
    uint32_t buf_cap;
    struct slice *pend;     /* received, not yet consumed */
    uint32_t pend_head, pend_n, pend_cap;
    struct hc_report *stalled;
    uint32_t stalled_off, n_stalled, stalled_cap;
    uint8_t proto;          /* 0: native msgpack; else a device protocol, HC_FRONT_* + 1 */
    void *pstate;           /* the protocol's per-connection state */
    uint8_t *pbuf;          /* device bytes received, not yet a whole frame */
    uint32_t plen, pcap;
    uint64_t last_ok_ms;    /* last frame decoded (device protocols) */
    uint8_t *reply;         /* a device's reply held until its frame's reports are queued */
    uint32_t reply_len;
    char peer[64];
};

#define STAT_ADD(f, field, n) \
    __atomic_store_n(&(f)->stats.field, (f)->stats.field + (n), __ATOMIC_RELAXED)

void hc_front_read_stats(const struct hc_front *f, struct hc_front_stats *out)
{
    const uint64_t *src = (const uint64_t *)&f->stats;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

static struct io_uring_sqe *sqe_get(struct hc_front *f)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&f->ring);
    if (!sqe) {
        io_uring_submit(&f->ring);
        sqe = io_uring_get_sqe(&f->ring);
    }
    return sqe;     /* non-NULL after a submit: the SQ was just emptied */
}

/* ---- buffers ------------------------------------------------------------ */

static struct io_uring_buf_ring *buf_ring_setup(struct hc_front *f, unsigned count, int gid,
                                                unsigned char **bufs, size_t size)
{
    size_t rsz = count * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, rsz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED)
        return NULL;
    struct io_uring_buf_ring *br = mem;
    io_uring_buf_ring_init(br);
    struct io_uring_buf_reg reg = { .ring_addr = (unsigned long)br, .ring_entries = count,
                                    .bgid = (uint16_t)gid };
    int rc = io_uring_register_buf_ring(&f->ring, &reg, 0);
    if (rc < 0) {
        munmap(mem, rsz);
        errno = -rc;
        return NULL;
    }
    *bufs = malloc(count * size);
    if (!*bufs)
        return NULL;
    for (unsigned i = 0; i < count; i++)
        io_uring_buf_ring_add(br, *bufs + i * size, (unsigned)size, (unsigned short)i,
                              io_uring_buf_ring_mask(count), (int)i);
    io_uring_buf_ring_advance(br, (int)count);
    return br;
}

static void tbuf_recycle(struct hc_front *f, uint16_t bid)
{
    io_uring_buf_ring_add(f->tbr, f->tbufs + (size_t)bid * TBUF_SIZE, TBUF_SIZE, bid,
                          io_uring_buf_ring_mask(TBUF_COUNT), 0);
    io_uring_buf_ring_advance(f->tbr, 1);
}

static void ubuf_recycle(struct hc_front *f, uint16_t bid)
{
    io_uring_buf_ring_add(f->ubr, f->ubufs + (size_t)bid * UBUF_SIZE, UBUF_SIZE, bid,
                          io_uring_buf_ring_mask(UBUF_COUNT), 0);
    io_uring_buf_ring_advance(f->ubr, 1);
}

const struct hc_proto_ops *const hc_front_proto_ops[HC_FRONT_PROTOS] = {
    [HC_FRONT_JT808] = &hc_proto_jt808,
    [HC_FRONT_TELTONIKA] = &hc_proto_teltonika,
};

/* ---- routing ------------------------------------------------------------ */

static inline unsigned owner(const struct hc_front *f, const struct hc_report *r)
{
    return (unsigned)(hc_hash(r->vid, r->vid_len) % f->nworkers);
}

static inline int route(struct hc_front *f, const struct hc_report *r)
{
    unsigned w = owner(f, r);
    if (!hc_ring_push(f->rings[w], r))
        return 0;
    f->kick[w] = 1;
    return 1;
}

/* ---- connections ------------------------------------------------------- */

static void arm_recv(struct hc_front *f, struct hc_conn *c, uint32_t slot)
{
    struct io_uring_sqe *sqe = sqe_get(f);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = TCP_GROUP;
    io_uring_sqe_set_data64(sqe, ud_make(UD_RECV, slot, c->gen));
    c->armed = 1;
}

static void disarm_recv(struct hc_front *f, struct hc_conn *c, uint32_t slot)
{
    struct io_uring_sqe *sqe = sqe_get(f);
    io_uring_prep_cancel64(sqe, ud_make(UD_RECV, slot, c->gen), 0);
    io_uring_sqe_set_data64(sqe, ud_make(UD_CANCEL, slot, c->gen));
}

static void set_waiting(struct hc_front *f, struct hc_conn *c, int on)
{
    if (on && !c->waiting)
        f->n_waiting++;
    else if (!on && c->waiting)
        f->n_waiting--;
    c->waiting = (uint8_t)on;
}

static void conn_close(struct hc_front *f, uint32_t slot, const char *why, int level)
{
    struct hc_conn *c = &f->conns[slot];
    if (!c->open)
        return;
    if (why)
        hc_log(level, "front", "closing %s: %s", c->peer, why);
    /* Shut the socket so an outstanding recv completes; its CQE (stale
     * generation) only returns its buffer. */
    shutdown(c->fd, SHUT_RDWR);
    close(c->fd);
    for (uint32_t i = 0; i < c->pend_n; i++)
        tbuf_recycle(f, c->pend[(c->pend_head + i) % c->pend_cap].bid);
    if (c->n_stalled > c->stalled_off)
        STAT_ADD(f, lost, c->n_stalled - c->stalled_off);
    set_waiting(f, c, 0);
    free(c->buf);
    free(c->pend);
    free(c->stalled);
    free(c->pstate);
    free(c->pbuf);
    free(c->reply);
    if (c->proto)
        f->n_proto_conns--;
    uint32_t gen = (c->gen + 1) & 0xffffff;    /* user_data keeps 24 bits */
    memset(c, 0, sizeof(*c));
    c->gen = gen;
    c->fd = -1;
    f->free_conns[f->n_free++] = slot;
    STAT_ADD(f, closed, 1);
}

static int stall(struct hc_conn *c, const struct hc_report *r)
{
    if (c->n_stalled == c->stalled_cap) {
        uint32_t cap = c->stalled_cap ? c->stalled_cap * 2 : 256;
        struct hc_report *s = realloc(c->stalled, cap * sizeof(*s));
        if (!s)
            return -ENOMEM;
        c->stalled = s;
        c->stalled_cap = cap;
    }
    c->stalled[c->n_stalled++] = *r;
    return 0;
}

/* Deliver stalled reports in order; 1 when none are left. */
static int flush_stalled(struct hc_front *f, struct hc_conn *c)
{
    while (c->stalled_off < c->n_stalled) {
        if (!route(f, &c->stalled[c->stalled_off]))
            return 0;
        c->stalled_off++;
    }
    c->stalled_off = c->n_stalled = 0;
    if (c->stalled_cap > 4096) {    /* a burst is over: give the memory back */
        free(c->stalled);
        c->stalled = NULL;
        c->stalled_cap = 0;
    }
    return 1;
}

enum { FEED_OK, FEED_STALL, FEED_ERROR };

/* Decode one whole payload; reports that do not fit stall on c. */
static int decode_frame(struct hc_front *f, struct hc_conn *c, const uint8_t *p, uint32_t n)
{
    struct hc_report r;
    int rc = hc_wire_open(&f->wire, p, n);
    if (rc < 0)
        return FEED_ERROR;
    STAT_ADD(f, frames, 1);
    uint64_t ok = 0, bad = 0;
    while ((rc = hc_wire_next(&f->wire, &r)) != 0) {
        if (rc < 0) {
            bad++;
            continue;
        }
        ok++;
        if (c->n_stalled || !route(f, &r))
            if (stall(c, &r) < 0)
                return FEED_ERROR;
    }
    STAT_ADD(f, reports, ok);
    if (bad)
        STAT_ADD(f, rejected, bad);
    return c->n_stalled ? FEED_STALL : FEED_OK;
}

/* Feed bytes to c's framer.  Stops after a frame whose reports stalled.
 * *used: bytes consumed.  On FEED_ERROR, *why says what was wrong. */
static int feed(struct hc_front *f, struct hc_conn *c, const uint8_t *p, uint32_t len,
                uint32_t *used, const char **why)
{
    uint32_t at = 0;
    int rc = FEED_OK;
    while (at < len && rc == FEED_OK) {
        if (c->hdr_have < 4) {
            while (c->hdr_have < 4 && at < len)
                c->hdr[c->hdr_have++] = p[at++];
            if (c->hdr_have < 4)
                break;
            c->need = hc_wire_frame_length(c->hdr);
            c->have = 0;
            if (c->need > f->cfg->max_payload) {
                STAT_ADD(f, oversized, 1);
                *why = "frame larger than msgpack.max_payload";
                return FEED_ERROR;
            }
            if (c->need == 0) {
                STAT_ADD(f, malformed, 1);
                *why = "empty frame";
                return FEED_ERROR;
            }
            continue;
        }
        uint32_t left = len - at;
        if (c->have == 0 && left >= c->need) {          /* whole frame here */
            rc = decode_frame(f, c, p + at, c->need);
            at += c->need;
        } else {
            if (c->buf_cap < c->need) {
                uint8_t *b = realloc(c->buf, c->need);
                if (!b) {
                    *why = "out of memory for a frame";
                    return FEED_ERROR;
                }
                c->buf = b;
                c->buf_cap = c->need;
            }
            uint32_t take = c->need - c->have < left ? c->need - c->have : left;
            memcpy(c->buf + c->have, p + at, take);
            c->have += take;
            at += take;
            if (c->have < c->need)
                break;
            rc = decode_frame(f, c, c->buf, c->need);
            if (c->buf_cap > TBUF_SIZE) {   /* keep only small buffers around */
                free(c->buf);
                c->buf = NULL;
                c->buf_cap = 0;
            }
        }
        if (rc == FEED_ERROR) {
            STAT_ADD(f, malformed, 1);
            *why = "malformed msgpack payload";
            return FEED_ERROR;
        }
        c->hdr_have = 0;
    }
    *used = at;
    return rc;
}

/* Send a device the reply its frame asked for.  Replies are a few bytes
 * and the socket's buffer is empty unless the device stopped reading:
 * a send that does not go through at once closes the connection. */
static int send_reply(struct hc_conn *c, const uint8_t *p, size_t n)
{
    ssize_t w = send(c->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    return w == (ssize_t)n ? 0 : -1;
}

/* Feed device bytes to c's protocol: frames are cut by the protocol's
 * frame() from c->pbuf (at most max_frame bytes), decoded, answered, and
 * their reports routed like msgpack ones.  Stops after a frame whose
 * reports stalled.  *used: bytes of p consumed. */
static int feed_proto(struct hc_front *f, struct hc_conn *c, const uint8_t *p, uint32_t len,
                      uint32_t *used, const char **why)
{
    unsigned k = c->proto - 1u;
    const struct hc_proto_ops *ops = f->protos[k];
    struct hc_proto_out *out = f->pout;
    uint32_t at = 0;
    int rc = FEED_OK;
    for (;;) {
        uint32_t take = len - at;
        if (take > ops->max_frame - c->plen)
            take = (uint32_t)ops->max_frame - c->plen;
        if (c->plen + take > c->pcap) {     /* grows to max_frame at most */
            uint32_t cap = c->pcap ? c->pcap : 2048;
            while (cap < c->plen + take)
                cap *= 2;
            if (cap > ops->max_frame)
                cap = (uint32_t)ops->max_frame;
            uint8_t *b = realloc(c->pbuf, cap);
            if (!b) {
                *why = "out of memory for a frame";
                return FEED_ERROR;
            }
            c->pbuf = b;
            c->pcap = cap;
        }
        if (take)
            memcpy(c->pbuf + c->plen, p + at, take);
        c->plen += take;
        at += take;
        uint32_t off = 0;
        while (off < c->plen && rc == FEED_OK) {
            long n = ops->frame(c->pstate, c->pbuf + off, c->plen - off);
            if (n == 0)
                break;
            if (n < 0) {
                off += (uint32_t)-n;
                STAT_ADD(f, proto[k].garbage, (uint64_t)-n);
                continue;
            }
            out->n_reports = out->reply_len = 0;
            out->skipped = 0;
            out->resync = 0;
            int d = ops->decode(c->pstate, c->pbuf + off, (size_t)n, out);
            off += (uint32_t)n - (out->resync && n > 1 ? 1u : 0u);
            if (d != HC_PROTO_OK && out->reply_len &&
                send_reply(c, out->reply, out->reply_len) < 0) {
                *why = "the device does not read its replies";
                return FEED_ERROR;
            }
            if (d == HC_PROTO_CLOSE) {
                STAT_ADD(f, proto[k].closed_protocol, 1);
                *why = "the device broke the protocol";
                return FEED_ERROR;
            }
            if (d == HC_PROTO_BAD_CHECKSUM)
                STAT_ADD(f, proto[k].bad_checksum, 1);
            else if (d == HC_PROTO_BAD_LENGTH)
                STAT_ADD(f, proto[k].bad_length, 1);
            else if (d == HC_PROTO_UNSUPPORTED)
                STAT_ADD(f, proto[k].unsupported, 1);
            if (d != HC_PROTO_OK)
                continue;
            c->last_ok_ms = hc_time_mono_ns() / 1000000;
            STAT_ADD(f, proto[k].frames, 1);
            if (out->skipped)
                STAT_ADD(f, proto[k].skipped, out->skipped);
            size_t mlen = f->proto_maker_len[k];
            for (size_t i = 0; mlen && i < out->n_reports; i++) {
                struct hc_report *r = &out->reports[i];
                if (!r->maker_len && mlen) {
                    memcpy(r->maker, f->proto_maker[k], mlen);
                    r->maker_len = (uint8_t)mlen;
                }
            }
            for (size_t i = 0; i < out->n_reports; i++)
                if (c->n_stalled || !route(f, &out->reports[i]))
                    if (stall(c, &out->reports[i]) < 0) {
                        *why = "out of memory";
                        return FEED_ERROR;
                    }
            STAT_ADD(f, proto[k].reports, out->n_reports);
            STAT_ADD(f, reports, out->n_reports);
            if (c->n_stalled) {
                /* The device hears back only once the frame's reports are
                 * queued (pump sends it then): an ack means taken. */
                if (out->reply_len) {
                    if (!c->reply && !(c->reply = malloc(HC_PROTO_MAX_REPLY))) {
                        *why = "out of memory";
                        return FEED_ERROR;
                    }
                    memcpy(c->reply, out->reply, out->reply_len);
                    c->reply_len = (uint32_t)out->reply_len;
                }
                rc = FEED_STALL;
            } else if (out->reply_len && send_reply(c, out->reply, out->reply_len) < 0) {
                *why = "the device does not read its replies";
                return FEED_ERROR;
            }
        }
        memmove(c->pbuf, c->pbuf + off, c->plen - off);
        c->plen -= off;
        if (c->plen == 0 && c->pcap > 4096) {   /* a big frame is over: give it back */
            free(c->pbuf);
            c->pbuf = NULL;
            c->pcap = 0;
        }
        if (rc != FEED_OK || at == len)
            break;
        if (c->plen == ops->max_frame) {    /* frame() broke its promise */
            *why = "a frame longer than the protocol allows";
            return FEED_ERROR;
        }
    }
    *used = at;
    return rc;
}

/* Close device connections that sent nothing decodable for their
 * protocol's idle_timeout; runs about once a second. */
static void sweep_idle(struct hc_front *f)
{
    uint64_t now = hc_time_mono_ns() / 1000000;
    if (!f->n_proto_conns || now < f->next_sweep_ms)
        return;
    f->next_sweep_ms = now + 1000;
    for (uint32_t s = 0; s < f->max_conns; s++) {
        struct hc_conn *c = &f->conns[s];
        if (!c->open || !c->proto)
            continue;
        if (c->waiting || c->n_stalled) {   /* we paused it: not the device's silence */
            c->last_ok_ms = now;
            continue;
        }
        if (now - c->last_ok_ms < f->proto_idle_ms[c->proto - 1])
            continue;
        STAT_ADD(f, proto[c->proto - 1].closed_idle, 1);
        conn_close(f, s, "nothing decodable within its idle_timeout", HC_LOG_INFO);
    }
}

/* Make progress on c's input; pauses or resumes its recv as needed. */
static void pump(struct hc_front *f, uint32_t slot)
{
    struct hc_conn *c = &f->conns[slot];
    const char *why = NULL;
    int stalled = c->n_stalled && !flush_stalled(f, c);
    if (!stalled && c->reply_len) {     /* its frame's reports are queued now */
        if (send_reply(c, c->reply, c->reply_len) < 0) {
            conn_close(f, slot, "the device does not read its replies", HC_LOG_WARN);
            return;
        }
        c->reply_len = 0;
    }
    if (!stalled && c->plen) {          /* whole frames that waited behind the stall */
        uint32_t used;
        int rc = feed_proto(f, c, NULL, 0, &used, &why);
        if (rc == FEED_ERROR) {
            conn_close(f, slot, why, HC_LOG_WARN);
            return;
        }
        stalled = rc == FEED_STALL;
    }
    while (!stalled && c->pend_n) {
        struct slice *s = &c->pend[c->pend_head];
        uint32_t used = 0;
        const uint8_t *p = f->tbufs + (size_t)s->bid * TBUF_SIZE + s->off;
        int rc = c->proto ? feed_proto(f, c, p, s->len, &used, &why)
                          : feed(f, c, p, s->len, &used, &why);
        if (rc == FEED_ERROR) {
            conn_close(f, slot, why, HC_LOG_WARN);
            return;
        }
        s->off += used;
        s->len -= used;
        if (s->len == 0) {
            tbuf_recycle(f, s->bid);
            c->pend_head = (c->pend_head + 1) % c->pend_cap;
            c->pend_n--;
        }
        stalled = rc == FEED_STALL;
    }
    if (stalled) {
        if (!c->waiting)
            STAT_ADD(f, paused, 1);
        set_waiting(f, c, 1);
        if (c->armed)
            disarm_recv(f, c, slot);    /* TCP flow control takes over */
        return;
    }
    set_waiting(f, c, 0);
    if (c->eof) {
        if (c->hdr_have)
            hc_debug("front", "%s closed in the middle of a frame", c->peer);
        conn_close(f, slot, NULL, HC_LOG_DEBUG);
    } else if (!c->armed && !f->stopping) {
        arm_recv(f, c, slot);
    }
}

static int pend_push(struct hc_conn *c, uint16_t bid, uint32_t len)
{
    if (c->pend_n == c->pend_cap) {
        uint32_t cap = c->pend_cap ? c->pend_cap * 2 : 8;
        struct slice *p = malloc(cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        for (uint32_t i = 0; i < c->pend_n; i++)
            p[i] = c->pend[(c->pend_head + i) % c->pend_cap];
        free(c->pend);
        c->pend = p;
        c->pend_head = 0;
        c->pend_cap = cap;
    }
    c->pend[(c->pend_head + c->pend_n) % c->pend_cap] = (struct slice){ bid, 0, len };
    c->pend_n++;
    return 0;
}

static void on_recv(struct hc_front *f, struct io_uring_cqe *cqe)
{
    uint32_t slot = ud_slot(cqe->user_data);
    struct hc_conn *c = slot < f->max_conns ? &f->conns[slot] : NULL;
    int has_buf = cqe->flags & IORING_CQE_F_BUFFER;
    uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);

    if (!c || !c->open || c->gen != ud_gen(cqe->user_data)) {  /* stale */
        if (has_buf)
            tbuf_recycle(f, bid);
        return;
    }
    if (!(cqe->flags & IORING_CQE_F_MORE))
        c->armed = 0;
    if (cqe->res > 0 && has_buf) {
        STAT_ADD(f, bytes, (uint64_t)cqe->res);
        if (pend_push(c, bid, (uint32_t)cqe->res) < 0) {
            tbuf_recycle(f, bid);
            conn_close(f, slot, "out of memory", HC_LOG_ERROR);
            return;
        }
    } else if (cqe->res == 0) {
        c->eof = 1;
    } else if (cqe->res == -ENOBUFS) {
        f->starved = 1;     /* re-armed once buffers come back */
        return;
    } else if (cqe->res == -ECANCELED) {
        /* We paused it; if the reports it waited for went out meanwhile,
         * pump() below re-arms it. */
    } else if (cqe->res < 0) {
        conn_close(f, slot, strerror(-cqe->res), HC_LOG_DEBUG);
        return;
    }
    if (!c->waiting)
        pump(f, slot);
}

/* Listener l: 0 the msgpack one, 1 + HC_FRONT_* a device protocol's. */
static int listener_fd(const struct hc_front *f, uint32_t l)
{
    return l == 0 ? f->tcp_fd : l <= HC_FRONT_PROTOS ? f->proto_fd[l - 1] : -1;
}

static void arm_accept(struct hc_front *f, uint32_t l)
{
    f->accept_armed[l] = 1;
    struct io_uring_sqe *sqe = sqe_get(f);
    io_uring_prep_multishot_accept(sqe, listener_fd(f, l), NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ud_make(UD_ACCEPT, l, 0));
}

static void arm_accepts(struct hc_front *f)
{
    for (uint32_t l = 0; l <= HC_FRONT_PROTOS; l++)
        if (listener_fd(f, l) >= 0 && !f->accept_armed[l])
            arm_accept(f, l);
}

static void on_accept(struct hc_front *f, struct io_uring_cqe *cqe)
{
    uint32_t l = ud_slot(cqe->user_data);
    if (l > HC_FRONT_PROTOS)
        return;
    if (!(cqe->flags & IORING_CQE_F_MORE))
        f->accept_armed[l] = 0;     /* this listener's multishot accept ended */
    if (cqe->res == -EMFILE || cqe->res == -ENFILE || cqe->res == -ENOMEM) {
        /* Out of descriptors: the connection stays queued, so accepting
         * again at once would fail again at once.  Retry in 100 ms. */
        if (!(cqe->flags & IORING_CQE_F_MORE))
            f->accept_retry_ns = hc_time_mono_ns() + 100000000ull;
        if (f->stats.accept_errors++ % 1000 == 0)
            hc_warn("front", "accept: %s (raise the open-file limit or lower"
                    " msgpack.max_connections); retrying", strerror(-cqe->res));
        return;
    }
    if (!(cqe->flags & IORING_CQE_F_MORE) && listener_fd(f, l) >= 0)
        arm_accept(f, l);
    if (cqe->res < 0) {
        if (cqe->res != -ECANCELED)
            hc_warn("front", "accept: %s", strerror(-cqe->res));
        return;
    }
    int fd = cqe->res;
    if (f->n_free == 0) {
        close(fd);
        STAT_ADD(f, refused, 1);
        hc_warn("front", "refused a connection: msgpack.max_connections (%u) reached",
                f->max_conns);
        return;
    }
    uint32_t slot = f->free_conns[--f->n_free];
    struct hc_conn *c = &f->conns[slot];
    c->fd = fd;
    c->open = 1;
    struct sockaddr_in sa = { 0 };
    socklen_t sl = sizeof(sa);
    char ip[INET_ADDRSTRLEN] = "?";
    if (getpeername(fd, (struct sockaddr *)&sa, &sl) == 0)
        inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip));
    snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, ntohs(sa.sin_port));
    STAT_ADD(f, accepted, 1);
    if (l > 0) {                    /* a device protocol's listener */
        const struct hc_proto_ops *ops = f->protos[l - 1];
        c->pstate = calloc(1, ops->conn_size);
        if (!c->pstate) {
            conn_close(f, slot, "out of memory", HC_LOG_ERROR);
            return;
        }
        ops->conn_init(c->pstate, &f->pcfg);
        c->proto = (uint8_t)l;
        c->last_ok_ms = hc_time_mono_ns() / 1000000;
        f->n_proto_conns++;
        STAT_ADD(f, proto[l - 1].accepted, 1);
    }
    arm_recv(f, c, slot);
}

/* ---- UDP ---------------------------------------------------------------- */

static void arm_udp(struct hc_front *f)
{
    struct io_uring_sqe *sqe = sqe_get(f);
    io_uring_prep_recvmsg_multishot(sqe, f->udp_fd, &f->udp_msg, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = UDP_GROUP;
    io_uring_sqe_set_data64(sqe, ud_make(UD_UDP, 0, 0));
}

static void on_udp(struct hc_front *f, struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE) && f->udp_fd >= 0 && cqe->res != -ENOBUFS)
        arm_udp(f);
    if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
        if (cqe->res == -ENOBUFS)
            f->starved = 1;
        else if (cqe->res < 0 && cqe->res != -ECANCELED)
            hc_warn("front", "udp receive: %s", strerror(-cqe->res));
        return;
    }
    uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    unsigned char *buf = f->ubufs + (size_t)bid * UBUF_SIZE;
    STAT_ADD(f, udp_datagrams, 1);
    struct io_uring_recvmsg_out *o = io_uring_recvmsg_validate(buf, cqe->res, &f->udp_msg);
    if (!o || (o->flags & MSG_TRUNC)) {
        STAT_ADD(f, udp_malformed, 1);
        ubuf_recycle(f, bid);
        return;
    }
    const void *payload = io_uring_recvmsg_payload(o, &f->udp_msg);
    unsigned plen = io_uring_recvmsg_payload_length(o, cqe->res, &f->udp_msg);
    int rc = plen <= f->cfg->max_payload ? hc_wire_open(&f->wire, payload, plen) : HC_EWIRE;
    if (rc < 0) {
        STAT_ADD(f, udp_malformed, 1);
        ubuf_recycle(f, bid);
        return;
    }
    /* Decode the whole datagram, then queue all of it or none of it. */
    unsigned n = 0, bad = 0;
    memset(f->count, 0, f->nworkers * sizeof(*f->count));
    while ((rc = hc_wire_next(&f->wire, &f->staging[n])) != 0) {
        if (rc < 0) {
            bad++;
            continue;
        }
        f->staging_worker[n] = owner(f, &f->staging[n]);
        f->count[f->staging_worker[n]]++;
        n++;
    }
    ubuf_recycle(f, bid);
    if (bad)
        STAT_ADD(f, rejected, bad);
    if (n == 1) {               /* the common case: one report, one push */
        if (!route(f, &f->staging[0])) {
            STAT_ADD(f, udp_dropped, 1);
            return;
        }
        STAT_ADD(f, reports, 1);
        return;
    }
    for (unsigned w = 0; w < f->nworkers; w++)
        if (f->count[w] > hc_ring_room(f->rings[w])) {
            STAT_ADD(f, udp_dropped, 1);
            return;
        }
    for (unsigned i = 0; i < n; i++) {
        hc_ring_push(f->rings[f->staging_worker[i]], &f->staging[i]);
        f->kick[f->staging_worker[i]] = 1;
    }
    STAT_ADD(f, reports, n);
}

/* ---- set-up ------------------------------------------------------------- */

static int bind_socket(int type, const char *addr, unsigned port, int *fd_out, uint16_t *bound)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (type == SOCK_DGRAM) {
        /* Room for bursts: 32 MiB, past net.core.rmem_max when we may
         * (root or CAP_NET_ADMIN), else as much as the system allows. */
        int rcvbuf = HC_FRONT_UDP_RCVBUF;
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        (type == SOCK_STREAM && listen(fd, 1024) < 0)) {
        int e = -errno;
        close(fd);
        return e;
    }
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *bound = ntohs(sa.sin_port);
    *fd_out = fd;
    return 0;
}

int hc_front_open(struct hc_front *f, const struct hc_config *cfg, struct hc_ring **rings,
                  struct hc_wake **wakes, unsigned nworkers, int *done)
{
    int rc;
    memset(f, 0, sizeof(*f));
    f->cfg = cfg;
    f->rings = rings;
    f->wakes = wakes;
    f->nworkers = nworkers;
    f->done = done;
    f->cpu = -1;
    f->tcp_fd = f->udp_fd = -1;
    f->stop.fd = -1;
    for (int k = 0; k < HC_FRONT_PROTOS; k++)
        f->proto_fd[k] = -1;
    const struct { bool on; const char *bind; unsigned port; unsigned idle_ms; }
        dev[HC_FRONT_PROTOS] = {
        [HC_FRONT_JT808] = { cfg->jt808_enabled, cfg->jt808_bind, cfg->jt808_port,
                             cfg->jt808_idle_ms },
        [HC_FRONT_TELTONIKA] = { cfg->teltonika_enabled, cfg->teltonika_bind,
                                 cfg->teltonika_port, cfg->teltonika_idle_ms },
    };
    hc_config_tz_minutes(cfg->jt808_timezone, &f->pcfg.tz_offset_min);  /* checked by finish */
    snprintf(f->pcfg.auth_code, sizeof(f->pcfg.auth_code), "%s", cfg->jt808_auth_code);
    for (int k = 0; k < HC_FRONT_PROTOS; k++) {
        if (!dev[k].on)
            continue;
        rc = bind_socket(SOCK_STREAM, dev[k].bind, dev[k].port, &f->proto_fd[k],
                         &f->proto_port[k]);
        if (rc < 0) {
            const char *name = hc_front_proto_ops[k]->name;
            hc_error("front", "cannot listen for %s on tcp %s:%u: %s (set %s.port, or"
                     " %s.enabled = false)", name, dev[k].bind, dev[k].port, strerror(-rc),
                     name, name);
            return rc;
        }
        f->protos[k] = hc_front_proto_ops[k];
        f->proto_idle_ms[k] = dev[k].idle_ms;
        if (k == HC_FRONT_TELTONIKA)
            snprintf(f->proto_maker[k], sizeof(f->proto_maker[k]), "%s", cfg->teltonika_maker);
        f->proto_maker_len[k] = (uint8_t)strlen(f->proto_maker[k]);
        hc_info("front", "listening for %s on tcp %s:%u", f->protos[k]->name, dev[k].bind,
                f->proto_port[k]);
    }

    if (cfg->msgpack_tcp) {
        rc = bind_socket(SOCK_STREAM, cfg->msgpack_bind, cfg->msgpack_port, &f->tcp_fd,
                         &f->tcp_port);
        if (rc < 0) {
            hc_error("front", "cannot listen on tcp %s:%u: %s", cfg->msgpack_bind,
                     cfg->msgpack_port, strerror(-rc));
            return rc;
        }
    }
    if (cfg->msgpack_udp) {
        /* With port 0, UDP takes the port TCP was given when it can. */
        unsigned port = cfg->msgpack_port ? cfg->msgpack_port : f->tcp_port;
        rc = bind_socket(SOCK_DGRAM, cfg->msgpack_bind, port, &f->udp_fd, &f->udp_port);
        if (rc == -EADDRINUSE && cfg->msgpack_port == 0)
            rc = bind_socket(SOCK_DGRAM, cfg->msgpack_bind, 0, &f->udp_fd, &f->udp_port);
        if (rc < 0) {
            hc_error("front", "cannot bind udp %s:%u: %s", cfg->msgpack_bind, port,
                     strerror(-rc));
            return rc;
        }
    }

    /* Single issuer: only the front thread submits.  The ring is created
     * disabled here and enabled by that thread, which then owns it. */
    struct io_uring_params p = { .flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                                          IORING_SETUP_R_DISABLED };
    rc = io_uring_queue_init_params(4096, &f->ring, &p);
    if (rc == -EINVAL) {
        memset(&p, 0, sizeof(p));
        rc = io_uring_queue_init_params(4096, &f->ring, &p);
    }
    if (rc < 0) {
        hc_error("front", "io_uring_queue_init: %s", strerror(-rc));
        return rc;
    }
    f->tbr = buf_ring_setup(f, TBUF_COUNT, TCP_GROUP, &f->tbufs, TBUF_SIZE);
    f->ubr = buf_ring_setup(f, UBUF_COUNT, UDP_GROUP, &f->ubufs, UBUF_SIZE);
    if (!f->tbr || !f->ubr) {
        hc_error("front", "cannot register provided buffers: %s", strerror(errno));
        return -errno ? -errno : -ENOMEM;
    }
    f->udp_msg.msg_namelen = 0;     /* the sender address is not needed */

    f->max_conns = cfg->max_connections;
    f->conns = calloc(f->max_conns, sizeof(*f->conns));
    f->free_conns = malloc(f->max_conns * sizeof(*f->free_conns));
    unsigned max_reports = 65536 / 8;   /* a report map takes > 8 bytes */
    f->staging = malloc(max_reports * sizeof(*f->staging));
    f->staging_worker = malloc(max_reports * sizeof(*f->staging_worker));
    f->count = calloc(nworkers, sizeof(*f->count));
    f->kick = calloc(nworkers, 1);
    f->pout = malloc(sizeof(*f->pout));
    if (!f->conns || !f->free_conns || !f->staging || !f->staging_worker || !f->count ||
        !f->kick || !f->pout)
        return -ENOMEM;
    for (unsigned i = 0; i < f->max_conns; i++) {
        f->conns[i].fd = -1;
        f->free_conns[f->n_free++] = f->max_conns - 1 - i;
    }
    hc_wire_init(&f->wire);
    rc = hc_wake_init(&f->stop);
    if (rc < 0)
        return rc;
    if (f->tcp_fd >= 0)
        hc_info("front", "listening for msgpack on tcp %s:%u", cfg->msgpack_bind, f->tcp_port);
    if (f->udp_fd >= 0)
        hc_info("front", "listening for msgpack on udp %s:%u", cfg->msgpack_bind, f->udp_port);
    return 0;
}

/* ---- the loop ------------------------------------------------------------ */

/* Ring the doorbell of each worker that has new records, if it sleeps.
 * Unless `now`, a worker is only woken once KICK_BATCH records wait for it
 * or the front is about to block: a worker woken for every few datagrams
 * spends more on waking (a poll and a context switch, microseconds) than
 * on the reports.  Records never wait longer than the front is busy. */
#define KICK_BATCH 256

static void kick_workers(struct hc_front *f, int now)
{
    for (unsigned w = 0; w < f->nworkers; w++)
        if (f->kick[w] && (now || hc_ring_count(f->rings[w]) >= KICK_BATCH)) {
            f->kick[w] = 0;
            hc_wake_kick(f->wakes[w]);
        }
}

/* Handle every completion that is ready; 1 if one asked us to stop. */
static int dispatch(struct hc_front *f)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    int stop = 0;
    io_uring_for_each_cqe(&f->ring, head, cqe) {
        n++;
        switch (ud_kind(cqe->user_data)) {
        case UD_RECV: on_recv(f, cqe); break;
        case UD_ACCEPT: on_accept(f, cqe); break;
        case UD_UDP: on_udp(f, cqe); break;
        case UD_STOP: stop = 1; break;
        case UD_CANCEL: break;
        }
    }
    io_uring_cq_advance(&f->ring, n);
    return stop;
}

static void arm_stop(struct hc_front *f)
{
    struct io_uring_sqe *sqe = sqe_get(f);
    io_uring_prep_read(sqe, f->stop.fd, &f->stop_buf, sizeof(f->stop_buf), 0);
    io_uring_sqe_set_data64(sqe, ud_make(UD_STOP, 0, 0));
}

/* Stop: no more accepting or reading from sockets; decode what was already
 * received and give it up to a second to find ring room, then count what
 * is left as lost. */
static void shut_down(struct hc_front *f)
{
    f->stopping = 1;
    /* Data that completed before the stop request still counts. */
    io_uring_submit(&f->ring);
    dispatch(f);
    if (f->tcp_fd >= 0) {
        shutdown(f->tcp_fd, SHUT_RDWR);
        close(f->tcp_fd);
        f->tcp_fd = -1;
    }
    if (f->udp_fd >= 0) {
        close(f->udp_fd);
        f->udp_fd = -1;
    }
    for (int k = 0; k < HC_FRONT_PROTOS; k++)
        if (f->proto_fd[k] >= 0) {
            shutdown(f->proto_fd[k], SHUT_RDWR);
            close(f->proto_fd[k]);
            f->proto_fd[k] = -1;
        }
    uint64_t deadline = hc_time_mono_ns() + 1000000000ull;
    for (;;) {
        int left = 0;
        for (uint32_t s = 0; s < f->max_conns; s++) {
            struct hc_conn *c = &f->conns[s];
            if (!c->open || (!c->n_stalled && !c->pend_n && !c->plen))
                continue;
            pump(f, s);
            if (c->open && (c->n_stalled || c->pend_n))
                left = 1;
        }
        kick_workers(f, 1);
        if (!left || hc_time_mono_ns() > deadline)
            break;
        usleep(1000);
    }
    for (uint32_t s = 0; s < f->max_conns; s++) {
        struct hc_conn *c = &f->conns[s];
        if (c->open && c->pend_n)
            hc_warn("front", "%s: received data not decoded at shutdown", c->peer);
    }
    for (uint32_t s = 0; s < f->max_conns; s++)
        conn_close(f, s, NULL, HC_LOG_DEBUG);
    if (f->stats.lost)
        hc_warn("front", "%llu reports were still waiting for a full worker ring at shutdown",
                (unsigned long long)f->stats.lost);
}

static void *front_main(void *arg)
{
    struct hc_front *f = arg;
    pthread_setname_np(pthread_self(), "hubcap-front");
    if (f->ring.flags & IORING_SETUP_R_DISABLED) {
        /* io_uring_enable_rings() is declared by liburing 2.3 but not
         * exported by Debian's build: register directly. */
        if (syscall(__NR_io_uring_register, f->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS,
                    NULL, 0) < 0)
            hc_error("front", "enabling the io_uring: %s", strerror(errno));
    }
    arm_accepts(f);
    if (f->udp_fd >= 0)
        arm_udp(f);
    arm_stop(f);

    int stopping = 0;
    while (!stopping) {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 1000000 };
        if (f->accept_retry_ns && hc_time_mono_ns() >= f->accept_retry_ns) {
            f->accept_retry_ns = 0;
            arm_accepts(f);
        }
        struct __kernel_timespec sweep = { .tv_sec = 1, .tv_nsec = 0 };
        int rc = io_uring_submit_and_wait_timeout(
            &f->ring, &cqe, 1, f->n_waiting || f->starved || f->accept_retry_ns ? &ts
                               : f->n_proto_conns ? &sweep : NULL, NULL);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            hc_error("front", "io_uring wait: %s; stopping hubcapd", strerror(-rc));
            f->failed = 1;
            break;
        }
        stopping = dispatch(f);

        if (f->n_waiting)
            for (uint32_t s = 0; s < f->max_conns && f->n_waiting; s++)
                if (f->conns[s].waiting)
                    pump(f, s);
        if (f->starved) {       /* buffers came back: re-arm what stopped */
            f->starved = 0;
            if (f->udp_fd >= 0)
                arm_udp(f);
            for (uint32_t s = 0; s < f->max_conns; s++) {
                struct hc_conn *c = &f->conns[s];
                if (c->open && !c->armed && !c->waiting && !c->eof)
                    arm_recv(f, c, s);
            }
        }
        sweep_idle(f);
        kick_workers(f, io_uring_cq_ready(&f->ring) == 0);
    }
    shut_down(f);
    __atomic_store_n(f->done, 1, __ATOMIC_RELEASE);
    for (unsigned w = 0; w < f->nworkers; w++)
        hc_wake_signal(f->wakes[w]);
    if (f->failed)          /* main waits for signals: tell it to stop too */
        kill(getpid(), SIGTERM);
    return NULL;
}

int hc_front_start(struct hc_front *f)
{
    return hc_thread_start(&f->thread, front_main, f, f->cpu, "front");
}

void hc_front_stop(struct hc_front *f)
{
    hc_wake_signal(&f->stop);
}

void hc_front_join(struct hc_front *f)
{
    pthread_join(f->thread, NULL);
}

void hc_front_close(struct hc_front *f)
{
    if (!f)
        return;
    if (f->tcp_fd >= 0)
        close(f->tcp_fd);
    if (f->udp_fd >= 0)
        close(f->udp_fd);
    for (int k = 0; k < HC_FRONT_PROTOS; k++)
        if (f->proto_fd[k] >= 0)
            close(f->proto_fd[k]);
    if (f->ring.ring_fd > 0)
        io_uring_queue_exit(&f->ring);
    if (f->conns)
        for (uint32_t s = 0; s < f->max_conns; s++) {
            free(f->conns[s].buf);
            free(f->conns[s].pend);
            free(f->conns[s].stalled);
            free(f->conns[s].pstate);
            free(f->conns[s].pbuf);
        }
    free(f->pout);
    free(f->conns);
    free(f->free_conns);
    free(f->tbufs);
    free(f->ubufs);
    if (f->tbr)
        munmap(f->tbr, TBUF_COUNT * sizeof(struct io_uring_buf));
    if (f->ubr)
        munmap(f->ubr, UBUF_COUNT * sizeof(struct io_uring_buf));
    free(f->staging);
    free(f->staging_worker);
    free(f->count);
    free(f->kick);
    hc_wire_free(&f->wire);
    hc_wake_free(&f->stop);
}
