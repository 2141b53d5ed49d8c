/*
 * hubcap-loadgen — a simulated fleet sent to a running hubcapd over TCP
 * (length-prefixed msgpack frames, several connections) or UDP (one
 * payload per datagram), as fast as possible or at a fixed rate.
 *
 * The whole stream is generated and encoded before sending starts, so the
 * figures measure the daemon, not the generator.  Each vehicle always uses
 * the same connection, so its reports arrive in order.  Given the daemon's
 * data directory (--data-dir) it finds the port and control socket in
 * hubcapd.json, follows alarms.log while sending (printing each alarm with
 * the simulator's verdict), and at the end waits until the daemon has
 * checked and committed everything it accepted, for an end-to-end rate
 * counted by the daemon itself.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hubcap/cli.h"
#include "hubcap/ctl.h"
#include "hubcap/sim.h"
#include "hubcap/timefmt.h"
#include "hubcap/wire.h"

struct opts {
    struct hc_sim_config sim;
    char host[64];
    unsigned port;
    const char *data_dir;
    int udp;
    unsigned conns;
    unsigned batch;
    double rate;            /* reports/s in all; 0 = as fast as possible */
    int json, quiet, tty;
    double wait_s;          /* how long to wait for the daemon at the end */
};

struct lane {               /* one connection's share of the stream */
    msgpack_sbuffer buf;    /* TCP: frames back to back; UDP: datagrams */
    size_t *dgram_end;      /* UDP: end offset of each datagram */
    size_t n_dgrams, cap_dgrams;
    uint64_t reports;
    uint64_t sent_reports;  /* progress, written by the sender thread */
    uint64_t *frame_reports; /* reports in each frame (TCP) or datagram */
    size_t n_frames, cap_frames;
    int fd;
    int error;
    const struct opts *o;
    double rate;            /* this lane's share */
    pthread_t thread;
};

struct truth {              /* per vehicle and session */
    int64_t first_ts, last_ts, tow_ts;  /* tow_ts 0: no tow */
    uint8_t alarmed;
};

/* ---- options ------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
"usage: hubcap-loadgen [OPTIONS]\n"
"\n"
"Send a simulated fleet to hubcapd: parked vehicles of several makers with\n"
"their own GPS drift, some stray fixes, some tows.\n"
"\n"
"Target:\n"
"  -D, --data-dir DIR     the daemon's data dir: read the port and control\n"
"                         socket from DIR/hubcapd.json, follow alarms.log and\n"
"                         report what the daemon counted (recommended)\n"
"  -H, --host ADDR        IPv4 address (default 127.0.0.1)\n"
"  -p, --port N           port (default 5170, or from --data-dir)\n"
"  -u, --udp              send UDP datagrams instead of TCP frames\n"
"  -c, --connections N    TCP connections / UDP sockets (default 4)\n"
"  -b, --batch N          reports per frame or datagram (default 256 TCP, 64 UDP)\n"
"  -r, --rate N           reports per second in all (default 0: as fast as possible)\n"
"Fleet (see hubcap-sim --help):\n"
"  -n, --vehicles N       (default 10000)\n"
"  -s, --sessions N       parking sessions per vehicle (default 3)\n"
"      --reports N        parked fixes per session (default 48)\n"
"      --tow-rate F       (default 0.03)\n"
"      --stray-rate F     (default 0.003)\n"
"      --seed N           (default 1)\n"
"Output:\n"
"  -q, --quiet            no line per alarm\n"
"      --json             one JSON summary at the end\n"
"      --wait S           seconds to wait for the daemon to finish (default 60)\n"
"  -h, --help             this text\n"
"\n"
"Exit status: 0 when everything was sent (and, with --data-dir, processed by\n"
"the daemon), 1 on a send or daemon error, 2 on a usage error.\n");
}

static void parse(struct opts *o, int argc, char **argv)
{
    enum { O_REPORTS = 256, O_TOW, O_STRAY, O_SEED, O_JSON, O_WAIT };
    static const struct option lo[] = {
        { "data-dir", required_argument, 0, 'D' }, { "host", required_argument, 0, 'H' },
        { "port", required_argument, 0, 'p' }, { "udp", no_argument, 0, 'u' },
        { "connections", required_argument, 0, 'c' }, { "batch", required_argument, 0, 'b' },
        { "rate", required_argument, 0, 'r' }, { "vehicles", required_argument, 0, 'n' },
        { "sessions", required_argument, 0, 's' }, { "reports", required_argument, 0, O_REPORTS },
        { "tow-rate", required_argument, 0, O_TOW }, { "stray-rate", required_argument, 0, O_STRAY },
        { "seed", required_argument, 0, O_SEED }, { "quiet", no_argument, 0, 'q' },
        { "json", no_argument, 0, O_JSON }, { "wait", required_argument, 0, O_WAIT },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    int c, batch_set = 0;
    hc_sim_config_default(&o->sim);
    o->sim.vehicles = 10000;
    snprintf(o->host, sizeof(o->host), "127.0.0.1");
    o->port = 5170;
    o->conns = 4;
    o->batch = 256;
    o->wait_s = 60;
    /* Timestamps from now on, so a second run against the same daemon is
     * new data, not stale repeats of the first. */
    o->sim.start_ms = hc_time_now_ms();
    while ((c = getopt_long(argc, argv, "D:H:p:uc:b:r:n:s:qh", lo, NULL)) != -1) {
        switch (c) {
        case 'D': o->data_dir = optarg; break;
        case 'H': snprintf(o->host, sizeof(o->host), "%s", optarg); break;
        case 'p': o->port = (unsigned)hc_cli_uint("--port", optarg, 1, 65535); break;
        case 'u': o->udp = 1; break;
        case 'c': o->conns = (unsigned)hc_cli_uint("--connections", optarg, 1, 1024); break;
        case 'b': o->batch = (unsigned)hc_cli_uint("--batch", optarg, 1, 100000); batch_set = 1; break;
        case 'r': o->rate = hc_cli_double("--rate", optarg, 0, 1e9); break;
        case 'n': o->sim.vehicles = (uint32_t)hc_cli_uint("--vehicles", optarg, 1, 100000000); break;
        case 's': o->sim.sessions = (uint32_t)hc_cli_uint("--sessions", optarg, 1, 1000); break;
        case O_REPORTS: o->sim.reports_per_session = (uint32_t)hc_cli_uint("--reports", optarg, 1, 10000); break;
        case O_TOW: o->sim.tow_rate = hc_cli_double("--tow-rate", optarg, 0, 1); break;
        case O_STRAY: o->sim.stray_rate = hc_cli_double("--stray-rate", optarg, 0, 1); break;
        case O_SEED: o->sim.seed = hc_cli_uint("--seed", optarg, 0, UINT64_MAX); break;
        case 'q': o->quiet = 1; break;
        case O_JSON: o->json = 1; break;
        case O_WAIT: o->wait_s = hc_cli_double("--wait", optarg, 0, 86400); break;
        case 'h': usage(stdout); exit(0);
        default: fprintf(stderr, "Try 'hubcap-loadgen --help'.\n"); exit(2);
        }
    }
    if (optind < argc)
        hc_cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (o->udp && !batch_set)
        o->batch = 64;
    o->tty = isatty(STDERR_FILENO);
}

/* ---- the daemon's files ---------------------------------------------------- */

struct daemon_info {
    unsigned tcp, udp;
    char control[4200];
    char alarms[4200];
};

static int read_daemon_info(const char *dir, struct daemon_info *di)
{
    char path[4200];
    json_error_t err;
    snprintf(path, sizeof(path), "%s/hubcapd.json", dir);
    json_t *j = json_load_file(path, 0, &err);
    if (!j)
        return -1;
    di->tcp = (unsigned)json_integer_value(json_object_get(j, "msgpack_tcp"));
    di->udp = (unsigned)json_integer_value(json_object_get(j, "msgpack_udp"));
    const char *ctl = json_string_value(json_object_get(j, "control"));
    snprintf(di->control, sizeof(di->control), "%s", ctl ? ctl : "");
    snprintf(di->alarms, sizeof(di->alarms), "%s/alarms.log", dir);
    json_decref(j);
    return 0;
}

struct counts {
    uint64_t reports, stale, rejected, commits, alarms, udp_dropped, front_reports, dirty;
};

static int daemon_counts(const char *ctl, struct counts *c)
{
    json_t *a = hc_ctl_call(ctl, "{\"cmd\":\"stats\"}\n", 10000);
    json_t *s = json_object_get(a, "stats");
    if (!s) {
        json_decref(a);
        return -1;
    }
    memset(c, 0, sizeof(*c));
    c->reports = (uint64_t)json_integer_value(json_object_get(s, "reports"));
    c->alarms = (uint64_t)json_integer_value(json_object_get(s, "alarms"));
    json_t *front = json_object_get(s, "front");
    c->udp_dropped = (uint64_t)json_integer_value(json_object_get(front, "udp_dropped"));
    c->front_reports = (uint64_t)json_integer_value(json_object_get(front, "reports"));
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(s, "workers"), i, w)
    {
        c->commits += (uint64_t)json_integer_value(json_object_get(w, "commits"));
        c->dirty += (uint64_t)json_integer_value(json_object_get(w, "dirty"))
                  + (uint64_t)json_integer_value(json_object_get(w, "ring_fill"));
    }
    json_decref(a);
    return 0;
}

/* ---- building the stream ------------------------------------------------- */

static int lane_frame(struct lane *l, const struct opts *o, msgpack_sbuffer *body,
                      uint64_t n)
{
    if (l->n_frames == l->cap_frames) {
        l->cap_frames = l->cap_frames ? l->cap_frames * 2 : 1024;
        l->frame_reports = realloc(l->frame_reports, l->cap_frames * sizeof(uint64_t));
        l->dgram_end = realloc(l->dgram_end, l->cap_frames * sizeof(size_t));
        if (!l->frame_reports || !l->dgram_end)
            return -ENOMEM;
    }
    if (!o->udp) {
        uint8_t hdr[4];
        hc_wire_frame_header(hdr, (uint32_t)body->size);
        msgpack_sbuffer_write(&l->buf, (const char *)hdr, 4);
    }
    msgpack_sbuffer_write(&l->buf, body->data, body->size);
    l->dgram_end[l->n_frames] = l->buf.size;
    l->frame_reports[l->n_frames++] = n;
    l->reports += n;
    return 0;
}

/* Pack a lane's pending reports as one payload (an array) and queue it. */
static int flush(struct lane *l, const struct opts *o, msgpack_packer *pk,
                 msgpack_sbuffer *body, const struct hc_report *pend, unsigned *n)
{
    msgpack_sbuffer_clear(body);
    msgpack_pack_array(pk, *n);
    for (unsigned i = 0; i < *n; i++)
        hc_wire_pack(pk, &pend[i]);
    int rc = lane_frame(l, o, body, *n);
    *n = 0;
    return rc;
}

static int build(const struct opts *o, struct lane *lanes, struct truth *truth, uint64_t *total)
{
    struct hc_sim *sim;
    int rc = hc_sim_new(&o->sim, &sim);
    if (rc < 0)
        return rc;
    /* Per lane: the reports of the frame being filled, packed as an array. */
    struct hc_report **pend = calloc(o->conns, sizeof(*pend));
    unsigned *n_pend = calloc(o->conns, sizeof(*n_pend));
    for (unsigned i = 0; pend && i < o->conns; i++)
        pend[i] = malloc(o->batch * sizeof(struct hc_report));
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);

    uint64_t all = hc_sim_total(sim), done = 0;
    struct hc_report r;
    struct hc_sim_truth t;
    while (hc_sim_next(sim, &r, &t)) {
        struct truth *tr = &truth[(size_t)t.vehicle * o->sim.sessions + t.session];
        if (!tr->first_ts)
            tr->first_ts = r.ts;
        tr->last_ts = r.ts;
        if (t.after_tow && !tr->tow_ts)
            tr->tow_ts = r.ts;
        unsigned k = t.vehicle % o->conns;
        pend[k][n_pend[k]++] = r;
        if (n_pend[k] == o->batch && flush(&lanes[k], o, &pk, &body, pend[k], &n_pend[k]) < 0)
            return -ENOMEM;
        if (o->tty && !o->json && (++done & 0xffff) == 0)
            fprintf(stderr, "\r  preparing %5.1f %%", 100.0 * (double)done / (double)all);
    }
    for (unsigned k = 0; k < o->conns; k++)
        if (n_pend[k] && flush(&lanes[k], o, &pk, &body, pend[k], &n_pend[k]) < 0)
            return -ENOMEM;
    if (o->tty && !o->json)
        fprintf(stderr, "\r%40s\r", "");
    for (unsigned i = 0; i < o->conns; i++)
        free(pend[i]);
    free(pend);
    free(n_pend);
    msgpack_sbuffer_destroy(&body);
    *total = all;
    hc_sim_free(sim);
    return 0;
}

/* ---- sending -------------------------------------------------------------- */

static void pace(struct lane *l, uint64_t t0, uint64_t sent)
{
    if (l->rate <= 0)
        return;
    double due = (double)sent / l->rate * 1e9;
    double now = (double)(hc_time_mono_ns() - t0);
    if (due > now)
        nanosleep(&(struct timespec){ .tv_sec = (time_t)((due - now) / 1e9),
                                      .tv_nsec = (long)fmod(due - now, 1e9) }, NULL);
}

/* UDP: up to 64 datagrams per sendmmsg(2), so the sender costs little
 * next to the receiver it measures. */
static void *send_udp(struct lane *l, uint64_t t0)
{
    enum { VLEN = 64 };
    struct mmsghdr mm[VLEN];
    struct iovec iov[VLEN];
    uint64_t sent = 0;
    size_t f = 0, off = 0;
    while (f < l->n_frames) {
        pace(l, t0, sent);
        unsigned n = 0;
        size_t at = off;
        for (size_t g = f; g < l->n_frames && n < VLEN; g++, n++) {
            iov[n].iov_base = l->buf.data + at;
            iov[n].iov_len = l->dgram_end[g] - at;
            memset(&mm[n], 0, sizeof(mm[n]));
            mm[n].msg_hdr.msg_iov = &iov[n];
            mm[n].msg_hdr.msg_iovlen = 1;
            at = l->dgram_end[g];
        }
        int k = sendmmsg(l->fd, mm, n, 0);
        if (k < 0) {
            if (errno == EINTR || errno == ECONNREFUSED)
                continue;
            l->error = errno;
            return NULL;
        }
        for (int i = 0; i < k; i++, f++) {
            sent += l->frame_reports[f];
            off = l->dgram_end[f];
        }
        __atomic_store_n(&l->sent_reports, sent, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void *sender(void *arg)
{
    struct lane *l = arg;
    uint64_t t0 = hc_time_mono_ns(), sent = 0;
    size_t off = 0;
    if (l->o->udp)
        return send_udp(l, t0);
    for (size_t f = 0; f < l->n_frames; f++) {
        pace(l, t0, sent);
        size_t end = l->dgram_end[f];
        {
            while (off < end) {
                ssize_t n = write(l->fd, l->buf.data + off, end - off);
                if (n < 0) {
                    if (errno == EINTR)
                        continue;
                    l->error = errno;
                    return NULL;
                }
                off += (size_t)n;
            }
        }
        off = end;
        sent += l->frame_reports[f];
        __atomic_store_n(&l->sent_reports, sent, __ATOMIC_RELAXED);
    }
    return NULL;
}

static int connect_lane(const struct opts *o, struct lane *l)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o->port) };
    if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1)
        return -EINVAL;
    l->fd = socket(AF_INET, (o->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    if (l->fd < 0)
        return -errno;
    if (o->udp) {
        int sndbuf = 4 << 20;
        setsockopt(l->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    }
    if (connect(l->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -errno;
    return 0;
}

/* ---- alarms ---------------------------------------------------------------- */

static int64_t parse_iso_ms(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int ms = 0;
    if (sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &ms) < 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

struct follow {
    FILE *f;
    char line[8192];
    size_t len;
    uint64_t alarms, caught, false_alarms, foreign;
};

/* Print and score every complete line appended to alarms.log since last. */
static void follow_alarms(struct follow *fo, const struct opts *o, struct truth *truth)
{
    int c;
    if (!fo->f)
        return;
    clearerr(fo->f);
    while ((c = fgetc(fo->f)) != EOF) {
        if (c != '\n') {
            if (fo->len < sizeof(fo->line) - 1)
                fo->line[fo->len++] = (char)c;
            continue;
        }
        fo->line[fo->len] = '\0';
        fo->len = 0;
        json_t *j = json_loads(fo->line, 0, NULL);
        json_t *d = json_object_get(j, "data");
        const char *vid = json_string_value(json_object_get(d, "vid"));
        const char *ts = json_string_value(json_object_get(json_object_get(d, "latest"), "ts"));
        unsigned v;
        const char *verdict = "not from this run";
        if (vid && ts && sscanf(vid, "SIM%u", &v) == 1 && v < o->sim.vehicles) {
            int64_t t = parse_iso_ms(ts);
            verdict = "FALSE ALARM";
            for (uint32_t s = 0; s < o->sim.sessions; s++) {
                struct truth *tr = &truth[(size_t)v * o->sim.sessions + s];
                if (t >= tr->first_ts && t <= tr->last_ts) {
                    if (tr->tow_ts && t >= tr->tow_ts) {
                        verdict = "tow, caught";
                        tr->alarmed = 1;
                    }
                    break;
                }
            }
            fo->alarms++;
            if (verdict[0] == 't')
                fo->caught++;
            else
                fo->false_alarms++;
        } else {
            fo->foreign++;
        }
        if (!o->quiet && !o->json && d)
            printf("ALARM %s %s %-8s moved %7.1f m (%lld pairs > %.1f m)  [%s]\n", ts ? ts : "?",
                   vid ? vid : "?", json_string_value(json_object_get(d, "maker")),
                   json_real_value(json_object_get(d, "max_distance_m")),
                   (long long)json_integer_value(json_object_get(d, "exceeding_pairs")),
                   json_real_value(json_object_get(d, "threshold_m")), verdict);
        json_decref(j);
    }
    fflush(stdout);
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct opts o;
    memset(&o, 0, sizeof(o));
    hc_cli_init(argv[0]);
    parse(&o, argc, argv);

    struct daemon_info di;
    memset(&di, 0, sizeof(di));
    if (o.data_dir) {
        if (read_daemon_info(o.data_dir, &di) < 0) {
            fprintf(stderr, "hubcap-loadgen: no running hubcapd found: cannot read %s/hubcapd.json"
                    " (start hubcapd --data-dir %s first)\n", o.data_dir, o.data_dir);
            return 1;
        }
        o.port = o.udp ? di.udp : di.tcp;
    }

    struct lane *lanes = calloc(o.conns, sizeof(*lanes));
    struct truth *truth = calloc((size_t)o.sim.vehicles * o.sim.sessions, sizeof(*truth));
    if (!lanes || !truth) {
        fprintf(stderr, "hubcap-loadgen: out of memory\n");
        return 1;
    }
    for (unsigned i = 0; i < o.conns; i++) {
        msgpack_sbuffer_init(&lanes[i].buf);
        lanes[i].o = &o;
        lanes[i].fd = -1;
        lanes[i].rate = o.rate / o.conns;
    }
    uint64_t total = 0;
    if (build(&o, lanes, truth, &total) < 0) {
        fprintf(stderr, "hubcap-loadgen: out of memory building the stream\n");
        return 1;
    }
    for (unsigned i = 0; i < o.conns; i++) {
        int rc = connect_lane(&o, &lanes[i]);
        if (rc < 0) {
            fprintf(stderr, "hubcap-loadgen: cannot connect to %s:%u: %s\n", o.host, o.port,
                    strerror(-rc));
            return 1;
        }
    }

    struct follow fo;
    memset(&fo, 0, sizeof(fo));
    struct counts before, after;
    memset(&before, 0, sizeof(before));
    int have_daemon = o.data_dir && daemon_counts(di.control, &before) == 0;
    if (o.data_dir) {
        fo.f = fopen(di.alarms, "r");
        if (fo.f)
            fseek(fo.f, 0, SEEK_END);
    }
    if (!o.json)
        printf("hubcap-loadgen: %llu reports from %u vehicles over %u %s %s to %s:%u, %s\n",
               (unsigned long long)total, o.sim.vehicles, o.conns, o.udp ? "UDP" : "TCP",
               o.conns > 1 ? "connections" : "connection", o.host, o.port,
               o.rate > 0 ? "paced" : "as fast as possible");
    fflush(stdout);

    uint64_t t0 = hc_time_mono_ns();
    for (unsigned i = 0; i < o.conns; i++)
        pthread_create(&lanes[i].thread, NULL, sender, &lanes[i]);
    for (;;) {          /* progress until every sender is done */
        uint64_t sent = 0, planned = 0;
        for (unsigned i = 0; i < o.conns; i++) {
            sent += __atomic_load_n(&lanes[i].sent_reports, __ATOMIC_RELAXED);
            planned += lanes[i].reports;
        }
        follow_alarms(&fo, &o, truth);
        if (o.tty && !o.json) {
            double s = (double)(hc_time_mono_ns() - t0) / 1e9;
            fprintf(stderr, "\r  sent %llu / %llu reports, %.0f reports/s   ",
                    (unsigned long long)sent, (unsigned long long)planned, s > 0 ? sent / s : 0);
        }
        int errors = 0;
        for (unsigned i = 0; i < o.conns; i++)
            errors += lanes[i].error != 0;
        if (sent == planned || errors)
            break;
        usleep(100000);
    }
    int failed = 0;
    for (unsigned i = 0; i < o.conns; i++) {
        pthread_join(lanes[i].thread, NULL);
        if (lanes[i].error) {
            fprintf(stderr, "\nhubcap-loadgen: connection %u: %s\n", i, strerror(lanes[i].error));
            failed = 1;
        }
    }
    uint64_t t_sent = hc_time_mono_ns();
    if (o.tty && !o.json)
        fprintf(stderr, "\r%70s\r", "");

    /* Wait for the daemon to have taken everything off its rings and
     * committed once more after that. */
    double daemon_s = 0;
    uint64_t processed = 0, dropped = 0;
    int complete = 0;
    if (have_daemon && !failed) {
        uint64_t deadline = t_sent + (uint64_t)(o.wait_s * 1e9), last_change = hc_time_mono_ns();
        uint64_t seen = 0, done_at = 0;
        while (hc_time_mono_ns() < deadline) {
            if (daemon_counts(di.control, &after) < 0)
                break;
            processed = after.reports - before.reports;
            dropped = after.udp_dropped - before.udp_dropped;
            if (processed != seen) {
                seen = processed;
                last_change = hc_time_mono_ns();
            }
            /* Done: every report taken off the rings (for UDP, the count
             * stopped moving) and nothing left uncommitted. */
            int all_in = processed >= total ||
                         (o.udp && hc_time_mono_ns() - last_change > 500000000ull);
            if (all_in && after.dirty == 0) {
                done_at = hc_time_mono_ns();
                daemon_s = (double)(done_at - t0) / 1e9;
                complete = 1;
                break;
            }
            follow_alarms(&fo, &o, truth);
            usleep(1000);
        }
        follow_alarms(&fo, &o, truth);
        if (!complete) {
            fprintf(stderr, "hubcap-loadgen: the daemon processed %llu of %llu reports within"
                    " %.0f s\n", (unsigned long long)processed, (unsigned long long)total, o.wait_s);
            failed = 1;
        }
    }
    usleep(200000);     /* alarms of the final commit */
    follow_alarms(&fo, &o, truth);

    double send_s = (double)(t_sent - t0) / 1e9;
    uint64_t tows = 0, missed = 0;
    for (size_t i = 0; i < (size_t)o.sim.vehicles * o.sim.sessions; i++)
        if (truth[i].tow_ts) {
            tows++;
            missed += !truth[i].alarmed;
        }
    if (o.json) {
        json_t *j = json_pack("{s:I, s:f, s:f, s:b}", "reports", (json_int_t)total,
                              "send_seconds", send_s, "sent_per_second", total / send_s,
                              "udp", o.udp);
        if (have_daemon) {
            json_object_set_new(j, "daemon_processed", json_integer((json_int_t)processed));
            json_object_set_new(j, "daemon_seconds", json_real(daemon_s));
            json_object_set_new(j, "daemon_per_second",
                                json_real(daemon_s > 0 ? processed / daemon_s : 0));
            json_object_set_new(j, "udp_dropped_datagrams", json_integer((json_int_t)dropped));
            json_object_set_new(j, "alarms", json_integer((json_int_t)fo.alarms));
            json_object_set_new(j, "tows", json_integer((json_int_t)tows));
            json_object_set_new(j, "tows_caught", json_integer((json_int_t)fo.caught));
            json_object_set_new(j, "false_alarms", json_integer((json_int_t)fo.false_alarms));
        }
        char *s = json_dumps(j, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(j);
    } else {
        printf("\nSummary\n  sent         %llu reports in %.3f s: %.0f reports/s\n",
               (unsigned long long)total, send_s, total / send_s);
        if (have_daemon && complete)
            printf("  daemon       %llu reports checked and committed in %.3f s: %.0f reports/s%s\n",
                   (unsigned long long)processed, daemon_s, processed / daemon_s,
                   o.udp ? "" : " (end to end)");
        if (o.udp && have_daemon)
            printf("  udp          %llu datagrams dropped by the daemon (rings full)\n",
                   (unsigned long long)dropped);
        if (have_daemon)
            printf("  alarms       %llu: %llu tows caught of %llu, %llu false alarms\n",
                   (unsigned long long)fo.alarms, (unsigned long long)fo.caught,
                   (unsigned long long)tows, (unsigned long long)fo.false_alarms);
    }
    for (unsigned i = 0; i < o.conns; i++) {
        close(lanes[i].fd);
        msgpack_sbuffer_destroy(&lanes[i].buf);
        free(lanes[i].frame_reports);
        free(lanes[i].dgram_end);
    }
    if (fo.f)
        fclose(fo.f);
    free(lanes);
    free(truth);
    return failed;
}
