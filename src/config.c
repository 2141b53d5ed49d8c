/*
 * config.c — hubcapd's settings (see config.h).
 *
 * One table, opts[], describes every key: section, name, type, default as
 * text, where it lives in struct hc_config, its range and its help.
 * Defaults are made by parsing the default text through the same code a
 * file value goes through, so the documented default and the real one can
 * never disagree.  [thresholds] and [rules] are one row each whose key is
 * "any maker name".
 * The keys of a [channel.NAME] section are rows too, flagged OPT_CHANNEL,
 * whose offsets are into struct hc_config_channel: the functions that
 * parse, check and print one value take the struct the field lives in.
 *
 * inih gives its handler no line number in the Debian build
 * (INI_HANDLER_LINENO 0), so the file is fed through our own line reader,
 * which counts lines exactly as inih does (one reader call per line) and
 * refuses a line too long for inih's buffer instead of letting inih split
 * it.  The handler stops at the first bad value; inih's return (the first
 * line it found wrong) tells a syntax error from a value error.
 *
 * Values are checked so that hc_config_write output always loads back: no
 * control characters, and no ';' that INI would read as a comment.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "hubcap/config.h"
#include "hubcap/detect.h"
#include "hubcap/error.h"
#include "hubcap/inifile.h"
#include "hubcap/webhook.h"

enum opt_type {
    OPT_STRING,     /* char[size]: a path of min..max bytes (max < size) */
    OPT_URL,        /* char[size]: http:// or https://, min..max bytes */
    OPT_SECRET,     /* char[size]: a whsec_ secret, or "" when min is 0 */
    OPT_IPV4,       /* char[size]: an IPv4 address literal */
    OPT_UINT,       /* unsigned in [min, max] */
    OPT_DURATION,   /* unsigned milliseconds in [min, max], written 1h30m */
    OPT_DURATIONS,  /* unsigned[HC_CONFIG_RETRIES_MAX], each in [min, max],
                       then the unsigned count right after the array */
    OPT_BOOL,       /* bool */
    OPT_METERS,     /* double: finite, > 0, <= HC_THRESHOLD_MAX_M */
    OPT_LOG_LEVEL,  /* int: HC_LOG_ERROR .. HC_LOG_DEBUG, written by name */
    OPT_THRESHOLD,  /* [thresholds]: key = maker, value = meters */
    OPT_RULE,       /* unsigned enum hc_rule, written by name */
    OPT_MAKER_RULE, /* [rules]: key = maker, value = a rule's name */
};

#define OPT_POW2    0x1u    /* OPT_UINT: must also be a power of two */
#define OPT_NAME    0x4u    /* OPT_STRING: a name, not a path */
#define OPT_CHANNEL 0x2u    /* a key of every [channel.NAME]: off is into
                               struct hc_config_channel, and a row without
                               a default is a key the channel must have */

struct opt {
    const char *section;
    const char *key;            /* NULL: any key (the maker, in [thresholds]
                                 * and [rules]) */
    enum opt_type type;
    const char *def;            /* default, as written in a file; NULL: none */
    size_t off, size;           /* the field in struct hc_config (or channel) */
    unsigned long long min, max;
    unsigned flags;
    const char *help;           /* plain text: both --help and markdown */
};

#define FIELD(m) offsetof(struct hc_config, m), sizeof(((struct hc_config *)0)->m)
#define CHANNEL_FIELD(m) offsetof(struct hc_config_channel, m), \
    sizeof(((struct hc_config_channel *)0)->m)

/* The section the OPT_CHANNEL rows are listed under; a file says
 * [channel.sms] and --set says channel.sms.url=... */
#define CHANNEL_SECTION "channel.NAME"

#define SECOND_MS 1000ull
#define MINUTE_MS (60 * SECOND_MS)
#define HOUR_MS   (60 * MINUTE_MS)
#define DAY_MS    (24 * HOUR_MS)

/* OPT_DURATIONS keeps its count right after the array. */
_Static_assert(offsetof(struct hc_config, n_retry) ==
               offsetof(struct hc_config, retry_ms) + sizeof(((struct hc_config *)0)->retry_ms),
               "n_retry must follow retry_ms");

static const struct opt opts[] = {
    {"core", "data_dir", OPT_STRING, "./var/hubcap", FIELD(data_dir),
     1, HC_CONFIG_PATH_MAX - 1, 0,
     "Directory that holds hubcapd's state: the LMDB environment of each "
     "shard, alarms.log and the control socket hubcapd.sock. --data-dir DIR "
     "sets the same thing."},
    {"core", "workers", OPT_UINT, "0", FIELD(workers),
     0, HC_CONFIG_WORKERS_MAX, 0,
     "Worker threads. Each is pinned to a core and owns one shard: its "
     "vehicles and its LMDB environment. 0 means the number of online cores "
     "minus 1 (at least 1), which leaves a core for the front and notifier "
     "threads. A data dir keeps the count it was first started with "
     "(<data_dir>/shards): vehicles are sharded by it."},
    {"core", "log_level", OPT_LOG_LEVEL, "info", FIELD(log_level),
     HC_LOG_ERROR, HC_LOG_DEBUG, 0,
     "Least severe log records written to stderr: error, warn, info or "
     "debug. debug is verbose and meant for troubleshooting."},
    {"core", "stats_interval_s", OPT_UINT, "60", FIELD(stats_interval_s),
     0, 86400, 0,
     "Seconds between the info log lines that summarise traffic since the "
     "previous one (reports/s, alarms, vehicles, drops). 0 turns them off; "
     "the control socket's stats command answers at any time."},

    {"msgpack", "bind", OPT_IPV4, "0.0.0.0", FIELD(msgpack_bind),
     0, 0, 0,
     "IPv4 address the native msgpack listeners bind to. 0.0.0.0 listens on "
     "every interface, 127.0.0.1 on loopback only."},
    {"msgpack", "port", OPT_UINT, "5170", FIELD(msgpack_port),
     0, 65535, 0,
     "Port of the native msgpack listeners, TCP and UDP alike. 0 lets the "
     "system pick a free port; hubcapd logs the port it bound."},
    {"msgpack", "tcp", OPT_BOOL, "true", FIELD(msgpack_tcp),
     0, 1, 0,
     "Accept msgpack payloads over TCP, each preceded by its length as a "
     "4-byte big-endian number."},
    {"msgpack", "udp", OPT_BOOL, "true", FIELD(msgpack_udp),
     0, 1, 0,
     "Accept msgpack payloads over UDP, one payload per datagram. Datagrams "
     "that cannot be queued are dropped and counted."},
    {"msgpack", "max_payload", OPT_UINT, "1048576", FIELD(max_payload),
     64, 67108864, 0,
     "Largest payload in bytes. A TCP frame announcing more is answered by "
     "closing that connection only, with a logged reason and a counter."},
    {"msgpack", "max_connections", OPT_UINT, "4096", FIELD(max_connections),
     1, 1000000, 0,
     "Most TCP connections open at once. A connection beyond that is closed "
     "as soon as it is accepted, logged and counted (front.refused)."},

    {"jt808", "enabled", OPT_BOOL, "true", FIELD(jt808_enabled),
     0, 1, 0,
     "Accept JT/T 808 terminals (the Chinese road-transport standard, 2011, "
     "2013 and 2019 editions) over TCP: registration, authentication, "
     "heartbeats, locations and batch uploads, each answered as the "
     "standard asks. The vehicle id is the terminal's phone number; the "
     "maker is the manufacturer id it registered with."},
    {"jt808", "bind", OPT_IPV4, "0.0.0.0", FIELD(jt808_bind),
     0, 0, 0,
     "IPv4 address the JT/T 808 listener binds to."},
    {"jt808", "port", OPT_UINT, "5015", FIELD(jt808_port),
     0, 65535, 0,
     "TCP port of the JT/T 808 listener. 0 lets the system pick one; "
     "hubcapd logs it and writes it to hubcapd.json."},
    {"jt808", "timezone", OPT_STRING, "+08:00", FIELD(jt808_timezone),
     1, 15, OPT_NAME,
     "Offset from UTC of the local time in terminals' location reports "
     "(BCD YYMMDDhhmmss), written +HH:MM or -HH:MM; the standard's default "
     "is China Standard Time, +08:00."},
    {"jt808", "auth_code", OPT_STRING, "", FIELD(jt808_auth_code),
     0, 47, OPT_NAME,
     "Authentication code answered to a terminal's registration (0x8100) "
     "and expected in its authentication (0x0102). Empty: one derived from "
     "the terminal's phone number."},
    {"jt808", "idle_timeout", OPT_DURATION, "10m", FIELD(jt808_idle_ms),
     1000, DAY_MS, 0,
     "A JT/T 808 connection that sends nothing decodable for this long is "
     "closed (terminals send heartbeats far more often)."},

    {"teltonika", "enabled", OPT_BOOL, "true", FIELD(teltonika_enabled),
     0, 1, 0,
     "Accept Teltonika trackers (Codec 8 and Codec 8 Extended) over TCP: "
     "IMEI login, AVL data packets with their CRC checked, each answered "
     "with the number of records accepted. The vehicle id is the IMEI; IO "
     "element 239 is the ignition."},
    {"teltonika", "bind", OPT_IPV4, "0.0.0.0", FIELD(teltonika_bind),
     0, 0, 0,
     "IPv4 address the Teltonika listener binds to."},
    {"teltonika", "port", OPT_UINT, "5027", FIELD(teltonika_port),
     0, 65535, 0,
     "TCP port of the Teltonika listener. 0 lets the system pick one; "
     "hubcapd logs it and writes it to hubcapd.json."},
    {"teltonika", "maker", OPT_STRING, "teltonika", FIELD(teltonika_maker),
     0, 32, OPT_NAME,
     "Maker given to every report of a Teltonika device, which names none: "
     "the name its drift threshold is found under in [thresholds]. Empty: "
     "reports carry no maker (vehicles keep the one they had)."},
    {"teltonika", "idle_timeout", OPT_DURATION, "10m", FIELD(teltonika_idle_ms),
     1000, DAY_MS, 0,
     "A Teltonika connection that sends nothing decodable for this long is "
     "closed."},

    {"detect", "window", OPT_UINT, "16", FIELD(window),
     2, HC_WINDOW_MAX, 0,
     "W: how many of the latest positions of a parking session are compared "
     "pairwise."},
    {"detect", "n1", OPT_UINT, "10", FIELD(n1),
     2, HC_WINDOW_MAX, 0,
     "Seed rule: positions the window must hold before it decides (N1); a "
     "session with fewer never raises an alarm. At most detect.window. The "
     "robust rule has robust_before and robust_after instead."},
    {"detect", "n2", OPT_UINT, "0", FIELD(n2),
     0, HC_WINDOW_MAX * (HC_WINDOW_MAX - 1) / 2 - 1, 0,
     "Seed rule: the vehicle has moved when strictly more than N2 pairs in "
     "the window are farther apart than its maker's threshold. 0 means "
     "window - 1 (15 with the defaults), so one stray fix never raises an "
     "alarm and two fixes after a real move do (two strays do too: the "
     "robust rule's reason to be). Must be less than the number of pairs in "
     "a full window, window x (window - 1) / 2."},
    {"detect", "default_threshold_m", OPT_METERS, "100", FIELD(default_threshold_m),
     0, 0, 0,
     "Drift threshold in meters for makers without one of their own in "
     "[thresholds]. A pair counts when its distance is strictly greater."},
    {"detect", "rule", OPT_RULE, "robust", FIELD(rule),
     0, HC_RULES - 1, 0,
     "Decision rule for makers without one of their own in [rules]: robust "
     "(strays are left out, and the window must split in time into a before "
     "and an after the move) or seed (more than N2 pairs farther apart than "
     "the threshold). docs/DETECTION.md compares them on the standard "
     "scenario."},
    {"detect", "robust_after", OPT_UINT, "4", FIELD(robust_after),
     4, HC_WINDOW_MAX - 2, 0,
     "Robust rule: the most fixes at the new spot a move waits for. Two "
     "fixes report it when they lie within robust_tight_percent of the "
     "threshold of each other and farther than robust_far_percent of it "
     "from the old spot; three, when they lie that close and farther than "
     "the threshold; robust_after of them, when they lie within the "
     "threshold of each other. When any maker uses the robust rule, "
     "robust_after + robust_before must not exceed detect.window."},
    {"detect", "robust_before", OPT_UINT, "3", FIELD(robust_before),
     2, HC_WINDOW_MAX - 2, 0,
     "Robust rule: positions from before the move the window must still "
     "hold, strays not counted."},
    {"detect", "robust_share_percent", OPT_UINT, "80", FIELD(robust_share_pct),
     1, 100, 0,
     "Robust rule: each fix at the new spot must be that far from at least "
     "this share of the positions before the move, so a stray among them "
     "does not hide a move and slow drift does not make one."},
    {"detect", "robust_tight_percent", OPT_UINT, "25", FIELD(robust_tight_pct),
     1, 100, 0,
     "Robust rule: how close, as a share of the threshold, fixes at the new "
     "spot must lie to each other to report a move on the second or third "
     "fix. Parked fixes of one receiver lie that close; two or three "
     "multipath strays seldom do."},
    {"detect", "robust_far_percent", OPT_UINT, "400", FIELD(robust_far_pct),
     100, 10000, 0,
     "Robust rule: how far, as a share of the threshold, two fixes at the "
     "new spot must be from the old spot (robust_share_percent of its "
     "positions) to report a move on the second fix. Nearer moves wait for "
     "a third."},

    {"store", "commit_interval_ms", OPT_UINT, "10", FIELD(commit_interval_ms),
     1, 60000, 0,
     "Vehicle state is written in one LMDB transaction per interval per "
     "shard: a process crash (kill -9) loses at most this much vehicle "
     "state. Alarms are always committed and synced before they leave."},
    {"store", "sync_interval_ms", OPT_UINT, "1000", FIELD(sync_interval_ms),
     0, 3600000, 0,
     "How often the OS is told to flush the shards to disk: an OS crash or "
     "power loss loses at most this much vehicle state. 0 syncs every "
     "commit, the safest and slowest choice."},
    {"store", "map_size_mb", OPT_UINT, "4096", FIELD(map_size_mb),
     16, 1048576, 0,
     "Initial LMDB map size per shard in MiB; it grows automatically when "
     "full."},

    {"ring", "size", OPT_UINT, "65536", FIELD(ring_size),
     1024, 16777216, OPT_POW2,
     "Records per front-to-worker ring. When a worker's ring is full the "
     "front stops reading that TCP connection, so the sender is pushed back, "
     "and drops UDP datagrams, which are counted."},

    {"alarm", "repeat_interval", OPT_DURATION, "10m", FIELD(repeat_interval_ms),
     100, 30 * DAY_MS, 0,
     "How often an alarm that is firing and not acknowledged starts a new "
     "notification round. Each round notifies the channels in priority "
     "order, each its channel.NAME.delay after the one before; a channel "
     "whose turn would come after the next round has started is not reached "
     "in that round."},
    {"alarm", "snooze", OPT_DURATION, "2h", FIELD(snooze_ms),
     100, 30 * DAY_MS, 0,
     "How long the feedback \"processing\" (alarm ack ID processing) holds "
     "an alarm's notifications; after that its rounds resume. The feedback "
     "\"done\" (alarm ack ID done) stops them for good."},

    {"push", "retry_schedule", OPT_DURATIONS, "5s,5m,30m,2h,5h,10h,10h", FIELD(retry_ms),
     1, 30 * DAY_MS, 0,
     "Delays before retry 1, 2, ... of a webhook that failed with a network "
     "error (timeouts included) or an HTTP 5xx, 408 or 429 answer. Each "
     "delay is scaled by a random factor within 1 +/- push.jitter_percent and "
     "is never shorter than the endpoint's Retry-After. When the last retry "
     "fails too, the message goes to the dead-letter table; so does a "
     "message answered with any other status outside 2xx, at once (410 also "
     "disables the channel). none: no retries."},
    {"push", "jitter_percent", OPT_UINT, "20", FIELD(jitter_percent),
     0, 100, 0,
     "Random spread of each retry delay in percent: 20 makes each delay "
     "between 0.8 and 1.2 times its push.retry_schedule entry, so that "
     "messages that failed together are not all retried at the same moment. "
     "0: exact delays."},
    {"push", "connect_timeout", OPT_DURATION, "5s", FIELD(connect_timeout_ms),
     100, 5 * MINUTE_MS, 0,
     "Longest time to set up a connection to a channel's endpoint: name "
     "lookup, TCP connect and TLS handshake. Running out counts as a network "
     "error."},
    {"push", "timeout", OPT_DURATION, "15s", FIELD(timeout_ms),
     100, HOUR_MS, 0,
     "Longest time one whole request may take, from connecting to the end "
     "of the answer. Running out counts as a network error."},
    {"push", "ca_file", OPT_STRING, "", FIELD(ca_file),
     0, HC_CONFIG_PATH_MAX - 1, 0,
     "PEM bundle of CA certificates used to verify HTTPS endpoints instead "
     "of the system's trust store; empty means the system's trust store. "
     "TLS verification is always on."},

    {"control", "socket", OPT_STRING, "", FIELD(control_socket),
     0, 107, 0,
     "Path of the control socket (hubcapctl, docs/CONTROL.md); empty means "
     "<data_dir>/hubcapd.sock. At most 107 bytes, the limit of a Unix "
     "socket address."},
    {"control", "group", OPT_STRING, "", FIELD(control_group),
     0, 63, OPT_NAME,
     "Name of a group whose members may use the control socket besides "
     "hubcapd's own user and root; the socket is then mode 0660 and owned "
     "by that group. Empty: mode 0600, the daemon's user and root only. "
     "Every connection's credentials are checked either way."},

    {"thresholds", NULL, OPT_THRESHOLD, NULL, FIELD(thresholds),
     0, 0, 0,
     "Drift threshold in meters of the maker named by the key, as devices "
     "report it (1 to 32 bytes, case-sensitive), e.g. acme = 35. Setting a "
     "maker again replaces its threshold; at most 256 makers. Makers not "
     "listed use detect.default_threshold_m."},

    {"rules", NULL, OPT_MAKER_RULE, NULL, FIELD(rules),
     0, 0, 0,
     "Decision rule of the maker named by the key, seed or robust, e.g. "
     "acme = seed. At most 256 makers. Makers not listed use detect.rule."},

    {CHANNEL_SECTION, "url", OPT_URL, NULL, CHANNEL_FIELD(url),
     1, 512, OPT_CHANNEL,
     "Where the channel's alarms are POSTed: an https:// URL (http:// for a "
     "receiver on a trusted network only). Required."},
    {CHANNEL_SECTION, "secret", OPT_SECRET, NULL, CHANNEL_FIELD(secret),
     1, 127, OPT_CHANNEL,
     "Signing secret shared with the receiver: whsec_ followed by the "
     "base64 of 24 to 64 random bytes (openssl rand -base64 32 makes that "
     "part). Required. Never shown in messages or logs."},
    {CHANNEL_SECTION, "secret_next", OPT_SECRET, "", CHANNEL_FIELD(secret_next),
     0, 127, OPT_CHANNEL,
     "A second signing secret for a rotation: while it is set, every "
     "request carries a signature made with each secret, so the receiver "
     "can switch to the new one before it replaces secret. Empty: sign with "
     "secret only."},
    {CHANNEL_SECTION, "delay", OPT_DURATION, "0s", CHANNEL_FIELD(delay_ms),
     0, 30 * DAY_MS, OPT_CHANNEL,
     "Escalation delay: how long after the previous channel of a round "
     "this one is notified. The first channel is notified as soon as the "
     "round starts."},
    {CHANNEL_SECTION, "priority", OPT_UINT, "100", CHANNEL_FIELD(priority),
     1, 1000, OPT_CHANNEL,
     "Place in the order of a round: lower is notified first; channels of "
     "equal priority keep the order they were first named in."},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

struct section {
    const char *name;
    const char *doc;
    const char *link;           /* a page in docs/ for the details, or NULL */
};

static const struct section sections[] = {
    {"core", "Process-wide settings.", NULL},
    {"msgpack", "The native msgpack listeners (TCP and UDP, default port 5170).", NULL},
    {"jt808", "JT/T 808 terminals over TCP (default port 5015).", NULL},
    {"teltonika", "Teltonika Codec 8 / 8E trackers over TCP (default port 5027).", NULL},
    {"detect", "Moved-vehicle detection: the parameters of the pairwise rule.",
     "DETECTION.md"},
    {"store", "Durability of vehicle state in the per-shard LMDB environments.", NULL},
    {"ring", "Queues between the front threads and the workers.", NULL},
    {"alarm", "Notification rounds of a firing alarm until someone "
     "acknowledges it.", NULL},
    {"push", "Delivery of the channels' webhooks: retries, timeouts and TLS.", NULL},
    {"control", "The control socket that hubcapctl and scripts use.", "CONTROL.md"},
    {"thresholds", "Per-maker drift thresholds: each key is a maker name, "
     "each value meters.", NULL},
    {"rules", "Per-maker decision rules: each key is a maker name, each "
     "value seed or robust.", "DETECTION.md"},
    {CHANNEL_SECTION, "Alarm channels, one section each, e.g. [channel.sms]; "
     "NAME is 1 to 32 of A-Z a-z 0-9 _ -, at most 16 channels. Each channel is "
     "an HTTPS endpoint (an SMS gateway, a voice gateway, an app-push "
     "service) that receives alarms as Standard Webhooks signed POSTs. While "
     "an alarm is unacknowledged, every round notifies the channels in "
     "priority order: the first at once, each next one its delay after the "
     "previous one. On the command line: --set channel.NAME.url=...", NULL},
};

#define N_SECTIONS (sizeof(sections) / sizeof(sections[0]))

static const char *const level_names[] = {"error", "warn", "info", "debug"};

const char *hc_log_level_name(int level)
{
    if (level < HC_LOG_ERROR || level > HC_LOG_DEBUG)
        return "unknown";
    return level_names[level];
}

/* ---- errors ----------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A value as quoted in a message: at most 60 bytes, control bytes as '?'. */
static const char *show(const char *v, char *buf, size_t n)
{
    size_t len = strlen(v), keep = len > 60 ? 57 : len, i;
    assert(n > 61);
    for (i = 0; i < keep; i++)
        buf[i] = iscntrl((unsigned char)v[i]) ? '?' : v[i];
    if (keep < len)
        memcpy(buf + i, "...", 3), i += 3;
    buf[i] = '\0';
    return buf;
}

/* Duration units, largest first: what parse_duration reads and
 * fmt_duration writes. */
static const struct {
    const char *name;
    unsigned long long ms;
} units[] = {
    {"d", DAY_MS}, {"h", HOUR_MS}, {"m", MINUTE_MS}, {"s", SECOND_MS}, {"ms", 1},
};

#define N_UNITS (sizeof(units) / sizeof(units[0]))

/* ms as a file spells it: "1h30m", "1s500ms", "0s" (loads back the same). */
static void fmt_duration(unsigned long long ms, char *buf, size_t n)
{
    size_t len = 0;
    snprintf(buf, n, "0s");
    for (size_t i = 0; i < N_UNITS && ms > 0; i++) {
        if (ms < units[i].ms)
            continue;
        int w = snprintf(buf + len, n - len, "%llu%s", ms / units[i].ms, units[i].name);
        assert(w > 0 && (size_t)w < n - len);
        len += (size_t)w;
        ms %= units[i].ms;
    }
}

/* What a value of o must be, completing "section.key must be ...". */
static void opt_want(const struct opt *o, char *buf, size_t n)
{
    char lo[32], hi[32];
    fmt_duration(o->min, lo, sizeof(lo));
    fmt_duration(o->max, hi, sizeof(hi));
    switch (o->type) {
    case OPT_STRING:
        snprintf(buf, n, "%llu to %llu bytes, with no control characters and "
                 "no ';' at the start or after a space (INI reads a comment)",
                 o->min, o->max);
        break;
    case OPT_URL:
        snprintf(buf, n, "an http:// or https:// URL of at most %llu bytes, with no "
                 "spaces or control characters", o->max);
        break;
    case OPT_SECRET:
        snprintf(buf, n, "%sa Standard Webhooks secret: whsec_ followed by base64 of "
                 "24 to %d random bytes", o->min ? "" : "empty or ", HC_WEBHOOK_SECRET_MAX);
        break;
    case OPT_IPV4:
        snprintf(buf, n, "an IPv4 address such as 0.0.0.0 or 127.0.0.1");
        break;
    case OPT_UINT:
        snprintf(buf, n, "a %s from %llu to %llu",
                 o->flags & OPT_POW2 ? "power of two" : "whole number", o->min, o->max);
        break;
    case OPT_DURATION:
        snprintf(buf, n, "a duration from %s to %s such as 10m, 1h30m or 500ms", lo, hi);
        break;
    case OPT_DURATIONS:
        snprintf(buf, n, "none or a comma-separated list of 1 to %d durations, each "
                 "from %s to %s, such as 5s,5m,1h30m", HC_CONFIG_RETRIES_MAX, lo, hi);
        break;
    case OPT_BOOL:
        snprintf(buf, n, "true or false (or yes/no, on/off, 1/0)");
        break;
    case OPT_METERS:
    case OPT_THRESHOLD:
        snprintf(buf, n, "a number of meters greater than 0 and at most %.0f",
                 HC_THRESHOLD_MAX_M);
        break;
    case OPT_LOG_LEVEL:
        snprintf(buf, n, "one of error, warn, info, debug");
        break;
    case OPT_RULE:
    case OPT_MAKER_RULE:
        snprintf(buf, n, "seed or robust");
        break;
    }
}

/* The range column of --help and the docs: short, same facts as opt_want. */
static void opt_range(const struct opt *o, char *buf, size_t n)
{
    char lo[32], hi[32];
    fmt_duration(o->min, lo, sizeof(lo));
    fmt_duration(o->max, hi, sizeof(hi));
    switch (o->type) {
    case OPT_STRING:
        if (o->min == 0)
            snprintf(buf, n, "%s or empty, up to %llu bytes",
                     o->flags & OPT_NAME ? "text" : "path", o->max);
        else
            snprintf(buf, n, "%s, %llu to %llu bytes", o->flags & OPT_NAME ? "text" : "path",
                     o->min, o->max);
        break;
    case OPT_URL:
        snprintf(buf, n, "http:// or https:// URL, up to %llu bytes", o->max);
        break;
    case OPT_SECRET:
        snprintf(buf, n, "%swhsec_ secret", o->min ? "" : "empty or ");
        break;
    case OPT_IPV4:
        snprintf(buf, n, "IPv4 address");
        break;
    case OPT_UINT:
        snprintf(buf, n, "%s%llu to %llu",
                 o->flags & OPT_POW2 ? "power of two, " : "", o->min, o->max);
        break;
    case OPT_DURATION:
        snprintf(buf, n, "%s to %s", lo, hi);
        break;
    case OPT_DURATIONS:
        snprintf(buf, n, "none or 1 to %d of %s to %s", HC_CONFIG_RETRIES_MAX, lo, hi);
        break;
    case OPT_BOOL:
        snprintf(buf, n, "true or false");
        break;
    case OPT_METERS:
    case OPT_THRESHOLD:
        snprintf(buf, n, "meters, > 0, up to %.0f", HC_THRESHOLD_MAX_M);
        break;
    case OPT_LOG_LEVEL:
        snprintf(buf, n, "error, warn, info or debug");
        break;
    case OPT_RULE:
    case OPT_MAKER_RULE:
        snprintf(buf, n, "seed or robust");
        break;
    }
}

/* "section.key must be <want>, not '<val>'<why>"; a secret is never quoted. */
static int bad_value_why(const struct opt *o, const char *section, const char *key,
                         const char *val, const char *why, char *err, size_t errlen)
{
    char want[256], shown[64];
    opt_want(o, want, sizeof(want));
    if (o->type == OPT_SECRET)
        set_err(err, errlen, "%s.%s must be %s", section, key, want);
    else
        set_err(err, errlen, "%s.%s must be %s, not '%s'%s", section, key, want,
                show(val, shown, sizeof(shown)), why ? why : "");
    return -1;
}

static int bad_value(const struct opt *o, const char *section, const char *key,
                     const char *val, char *err, size_t errlen)
{
    return bad_value_why(o, section, key, val, NULL, err, errlen);
}

/* ---- parsing one value ------------------------------------------------ */

/* True when s can stand in an INI file as a value (or key) and read back the
 * same: no control bytes, no ';' that starts a comment. */
static bool ini_safe(const char *s)
{
    for (size_t i = 0; s[i]; i++) {
        if (iscntrl((unsigned char)s[i]))
            return false;
        if (s[i] == ';' && (i == 0 || isspace((unsigned char)s[i - 1])))
            return false;
    }
    return true;
}

static bool parse_ull(const char *s, unsigned long long *v)
{
    char *end;
    if (!isdigit((unsigned char)s[0]))
        return false;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return errno == 0 && *end == '\0';
}

static bool parse_meters(const char *s, double *v)
{
    char *end;
    if (*s == '\0' || isspace((unsigned char)*s))
        return false;
    errno = 0;
    *v = strtod(s, &end);
    return *end == '\0' && isfinite(*v) && *v > 0.0 && *v <= HC_THRESHOLD_MAX_M;
}

static bool parse_bool(const char *s, bool *v)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *v = true, true;
        if (strcasecmp(s, no[i]) == 0)
            return *v = false, true;
    }
    return false;
}

enum dur_rc { DUR_OK, DUR_BAD, DUR_NO_UNIT };

/* The unit at p (rest bytes left), longest match so "ms" is not "m";
 * its index in units[], or -1. */
static int unit_at(const char *p, size_t rest, size_t *len)
{
    int best = -1;
    *len = 0;
    for (size_t i = 0; i < N_UNITS; i++) {
        size_t l = strlen(units[i].name);
        if (l <= rest && l > *len && memcmp(p, units[i].name, l) == 0)
            best = (int)i, *len = l;
    }
    return best;
}

/* The len bytes at s as milliseconds: "<digits><unit>" groups, largest
 * unit first and each at most once, so a typo like 1m1m is not summed.
 * More than UINT_MAX is DUR_BAD; a group without a unit is DUR_NO_UNIT. */
static enum dur_rc parse_duration(const char *s, size_t len, unsigned long long *ms)
{
    const char *p = s, *end = s + len;
    unsigned long long total = 0;
    int last = -1;
    if (p == end)
        return DUR_BAD;
    while (p < end) {
        unsigned long long v = 0;
        if (!isdigit((unsigned char)*p))
            return DUR_BAD;
        for (; p < end && isdigit((unsigned char)*p); p++)
            if ((v = v * 10 + (unsigned)(*p - '0')) > UINT_MAX)
                return DUR_BAD;
        size_t ulen;
        int u = unit_at(p, (size_t)(end - p), &ulen);
        if (u < 0)
            return p == end ? DUR_NO_UNIT : DUR_BAD;
        if (u <= last)
            return DUR_BAD;
        total += v * units[u].ms;       /* < 2^32 * 2^27: no overflow */
        if (total > UINT_MAX)
            return DUR_BAD;
        last = u;
        p += ulen;
    }
    *ms = total;
    return DUR_OK;
}

static bool uint_ok(const struct opt *o, unsigned long long v)
{
    if (v < o->min || v > o->max)
        return false;
    return !(o->flags & OPT_POW2) || (v & (v - 1)) == 0;
}

/* "none", or 1..HC_CONFIG_RETRIES_MAX durations in o's range separated by
 * commas, with spaces around them allowed, into v[] and *n. */
static enum dur_rc parse_durations(const struct opt *o, const char *s, unsigned *v, unsigned *n)
{
    *n = 0;
    if (strcmp(s, "none") == 0)
        return DUR_OK;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        for (; len > 0 && isblank((unsigned char)*s); len--)
            s++;
        while (len > 0 && isblank((unsigned char)s[len - 1]))
            len--;
        unsigned long long ms;
        enum dur_rc rc = parse_duration(s, len, &ms);
        if (rc != DUR_OK)
            return rc;
        if (*n == HC_CONFIG_RETRIES_MAX || !uint_ok(o, ms))
            return DUR_BAD;
        v[(*n)++] = (unsigned)ms;
        if (!comma)
            return DUR_OK;
        s = comma + 1;
    }
}

/* An http:// or https:// URL with a host part, no spaces or control bytes
 * (so no INI comment either). */
static bool url_ok(const struct opt *o, const char *v)
{
    size_t len = strlen(v);
    size_t scheme = strncmp(v, "https://", 8) == 0 ? 8 : strncmp(v, "http://", 7) == 0 ? 7 : 0;
    if (scheme == 0 || len == scheme || len < o->min || len > o->max)
        return false;
    for (size_t i = 0; i < len; i++)
        if (isspace((unsigned char)v[i]) || iscntrl((unsigned char)v[i]))
            return false;
    return true;
}

/* A secret hc_webhook_secret_parse accepts ("" too when o->min is 0). */
static bool secret_ok(const struct opt *o, const char *v)
{
    size_t len = strlen(v);
    if (len == 0 || len > o->max)
        return len == 0 && o->min == 0;
    struct hc_webhook_secret k;
    int rc = hc_webhook_secret_parse(v, &k);
    OPENSSL_cleanse(&k, sizeof(k));     /* key bytes do not linger on the stack */
    return rc == 0;
}

/* Store a string, zero-filling the rest of the field (for memcmp). */
static void put_string(char *dst, size_t size, const char *s)
{
    size_t len = strlen(s);
    assert(len < size);
    memset(dst, 0, size);
    memcpy(dst, s, len);
}

/* A maker name that hc_config_write can put before '=' and load reads back. */
static bool maker_ok(const char *m)
{
    size_t len = strlen(m);
    if (len == 0 || len > HC_MAKER_MAX || !ini_safe(m))
        return false;
    if (m[0] == '[' || m[0] == '#' || isspace((unsigned char)m[0]) ||
        isspace((unsigned char)m[len - 1]))
        return false;
    return strpbrk(m, "=:") == NULL;
}

/* The entry of maker in a per-maker table of [section] (n entries of size
 * bytes, each starting with the maker's name), added if new; -1 with err
 * set when the name is unusable or the table is full. */
static int maker_entry(void *table, unsigned *n, size_t size, const char *section,
                       const char *what, const char *maker, char *err, size_t errlen)
{
    char shown[64], *t = table;
    if (!maker_ok(maker)) {
        set_err(err, errlen, "%s: maker name '%s' must be 1 to %d bytes, "
                "without '=', ':', control characters or a comment", section,
                show(maker, shown, sizeof(shown)), HC_MAKER_MAX);
        return -1;
    }
    unsigned i;
    for (i = 0; i < *n; i++)
        if (strcmp(t + i * size, maker) == 0)
            return (int)i;
    if (i == HC_CONFIG_THRESHOLDS_MAX) {
        set_err(err, errlen, "%s.%s: at most %d makers can have their own %s",
                section, show(maker, shown, sizeof(shown)), HC_CONFIG_THRESHOLDS_MAX, what);
        return -1;
    }
    (*n)++;
    put_string(t + i * size, HC_MAKER_MAX + 1, maker);
    return (int)i;
}

static int set_threshold(struct hc_config *c, const struct opt *o, const char *maker,
                         const char *val, char *err, size_t errlen)
{
    double m;
    if (!maker_ok(maker))       /* the name's message first */
        return maker_entry(NULL, &c->n_thresholds, 0, o->section, "threshold", maker, err, errlen);
    if (!parse_meters(val, &m))
        return bad_value(o, o->section, maker, val, err, errlen);
    _Static_assert(offsetof(struct hc_config_threshold, maker) == 0, "name first");
    int i = maker_entry(c->thresholds, &c->n_thresholds, sizeof(c->thresholds[0]),
                        o->section, "threshold", maker, err, errlen);
    if (i < 0)
        return -1;
    c->thresholds[i].meters = m;
    return 0;
}

static bool parse_rule(const char *val, unsigned *r)
{
    enum hc_rule rule;
    if (hc_rule_parse(val, strlen(val), &rule) < 0)
        return false;
    *r = (unsigned)rule;
    return true;
}

static int set_rule(struct hc_config *c, const struct opt *o, const char *maker,
                    const char *val, char *err, size_t errlen)
{
    unsigned r;
    if (!maker_ok(maker))
        return maker_entry(NULL, &c->n_rules, 0, o->section, "rule", maker, err, errlen);
    if (!parse_rule(val, &r))
        return bad_value(o, o->section, maker, val, err, errlen);
    _Static_assert(offsetof(struct hc_config_rule, maker) == 0, "name first");
    int i = maker_entry(c->rules, &c->n_rules, sizeof(c->rules[0]), o->section,
                        "rule", maker, err, errlen);
    if (i < 0)
        return -1;
    c->rules[i].rule = r;
    return 0;
}

/* Parse val for o and store it in the struct at base (struct hc_config,
 * or struct hc_config_channel for an OPT_CHANNEL row); section and key are
 * the names messages use.  On error return -1 with err and base unchanged. */
static int opt_apply(const struct opt *o, void *base, const char *section, const char *key,
                     const char *val, char *err, size_t errlen)
{
    char *field = (char *)base + o->off;
    unsigned long long u;
    unsigned list[HC_CONFIG_RETRIES_MAX] = {0}, count, u32;
    enum dur_rc dr = DUR_BAD;
    struct in_addr a;
    double d;
    bool b;
    size_t len = strlen(val);

    switch (o->type) {
    case OPT_STRING:
        if (len < o->min || len > o->max || !ini_safe(val))
            return bad_value(o, section, key, val, err, errlen);
        put_string(field, o->size, val);
        return 0;
    case OPT_URL:
        if (!url_ok(o, val))
            return bad_value(o, section, key, val, err, errlen);
        put_string(field, o->size, val);
        return 0;
    case OPT_SECRET:
        if (!secret_ok(o, val))
            return bad_value(o, section, key, val, err, errlen);
        put_string(field, o->size, val);
        return 0;
    case OPT_IPV4:
        if (len >= o->size || inet_pton(AF_INET, val, &a) != 1)
            return bad_value(o, section, key, val, err, errlen);
        put_string(field, o->size, val);
        return 0;
    case OPT_UINT:
        if (!parse_ull(val, &u) || !uint_ok(o, u))
            return bad_value(o, section, key, val, err, errlen);
        *(unsigned *)(void *)field = (unsigned)u;
        return 0;
    case OPT_DURATION:
        dr = parse_duration(val, len, &u);
        if (dr != DUR_OK || !uint_ok(o, u))
            break;
        *(unsigned *)(void *)field = (unsigned)u;
        return 0;
    case OPT_DURATIONS:
        dr = parse_durations(o, val, list, &count);
        if (dr != DUR_OK)
            break;
        memcpy(field, list, sizeof(list));
        memcpy(field + sizeof(list), &count, sizeof(count));
        return 0;
    case OPT_BOOL:
        if (!parse_bool(val, &b))
            return bad_value(o, section, key, val, err, errlen);
        *(bool *)(void *)field = b;
        return 0;
    case OPT_METERS:
        if (!parse_meters(val, &d))
            return bad_value(o, section, key, val, err, errlen);
        *(double *)(void *)field = d;
        return 0;
    case OPT_LOG_LEVEL:
        for (int l = HC_LOG_ERROR; l <= HC_LOG_DEBUG; l++) {
            if (strcasecmp(val, level_names[l]) == 0) {
                *(int *)(void *)field = l;
                return 0;
            }
        }
        return bad_value(o, section, key, val, err, errlen);
    case OPT_THRESHOLD:
        return set_threshold(base, o, key, val, err, errlen);
    case OPT_RULE:
        if (!parse_rule(val, &u32))
            return bad_value(o, section, key, val, err, errlen);
        *(unsigned *)(void *)field = u32;
        return 0;
    case OPT_MAKER_RULE:
        return set_rule(base, o, key, val, err, errlen);
    }
    /* A bad duration; a bare number most likely means seconds or minutes. */
    return bad_value_why(o, section, key, val,
                         dr == DUR_NO_UNIT ? ": add a unit (ms, s, m, h or d)" : NULL,
                         err, errlen);
}

static const struct opt *opt_find(const char *section, const char *key)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        if (strcmp(o->section, section) == 0 && (!o->key || strcmp(o->key, key) == 0))
            return o;
    }
    return NULL;
}

static int unknown_key(const char *section, const char *key, char *err, size_t errlen)
{
    char s1[64], s2[64];
    if (*section == '\0')
        set_err(err, errlen, "key '%s' is outside any [section] (see hubcapd --help)",
                show(key, s1, sizeof(s1)));
    else
        set_err(err, errlen, "unknown key '%s.%s' (see hubcapd --help)",
                show(section, s1, sizeof(s1)), show(key, s2, sizeof(s2)));
    return -1;
}

/* Give the fields of the rows of one struct (the OPT_CHANNEL rows, or the
 * others) their defaults. */
static void opt_defaults(void *base, bool channel)
{
    char err[256];
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        /* The table's field sizes must match the types it claims. */
        assert(o->type != OPT_UINT || o->size == sizeof(unsigned));
        assert(o->type != OPT_DURATION || o->size == sizeof(unsigned));
        assert(o->type != OPT_DURATION || o->max <= UINT_MAX);
        assert(o->type != OPT_DURATIONS ||
               o->size == HC_CONFIG_RETRIES_MAX * sizeof(unsigned));
        assert(o->type != OPT_BOOL || o->size == sizeof(bool));
        assert(o->type != OPT_METERS || o->size == sizeof(double));
        assert(o->type != OPT_LOG_LEVEL || o->size == sizeof(int));
        assert((o->type != OPT_STRING && o->type != OPT_URL && o->type != OPT_SECRET) ||
               o->max < o->size);
        bool of_channel = o->flags & OPT_CHANNEL;
        if (!o->def || of_channel != channel)
            continue;
        int rc = opt_apply(o, base, o->section, o->key, o->def, err, sizeof(err));
        assert(rc == 0);
        (void)rc;
    }
}

void hc_config_defaults(struct hc_config *c)
{
    memset(c, 0, sizeof(*c));
    opt_defaults(c, false);
}

/* A channel name: what hc_config_write can put in "[channel.NAME]" and
 * --set can tell from the key after it. */
static bool channel_name_ok(const char *name)
{
    size_t len = strlen(name);
    return len >= 1 && len <= HC_CONFIG_CHANNEL_NAME_MAX &&
           strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                        "0123456789_-") == len;
}

/* Apply key = val to channel name, adding the channel (with the defaults
 * of the channel rows) if it is new; the one path of a file's
 * [channel.NAME] and of --set channel.NAME.key. */
static int set_channel(struct hc_config *c, const char *name, const char *key,
                       const char *val, char *err, size_t errlen)
{
    char shown[64], section[64];
    struct hc_config_channel ch;

    if (!channel_name_ok(name)) {
        set_err(err, errlen, "channel name '%s' must be 1 to %d of A-Z a-z 0-9 _ -",
                show(name, shown, sizeof(shown)), HC_CONFIG_CHANNEL_NAME_MAX);
        return -1;
    }
    snprintf(section, sizeof(section), "channel.%s", name);
    const struct opt *o = opt_find(CHANNEL_SECTION, key);
    if (!o)
        return unknown_key(section, key, err, errlen);
    unsigned i;
    for (i = 0; i < c->n_channels; i++)
        if (strcmp(c->channels[i].name, name) == 0)
            break;
    if (i == HC_CONFIG_CHANNELS_MAX) {
        set_err(err, errlen, "%s: at most %d channels can be named", section,
                HC_CONFIG_CHANNELS_MAX);
        return -1;
    }
    if (i < c->n_channels) {
        memcpy(&ch, &c->channels[i], sizeof(ch));
    } else {
        memset(&ch, 0, sizeof(ch));
        put_string(ch.name, sizeof(ch.name), name);
        opt_defaults(&ch, true);
    }
    int rc = opt_apply(o, &ch, section, key, val, err, errlen);
    if (rc == 0) {
        memcpy(&c->channels[i], &ch, sizeof(ch));
        c->n_channels += i == c->n_channels;
    }
    OPENSSL_cleanse(&ch, sizeof(ch));   /* it may hold a secret */
    return rc;
}

/* Find section.key and apply val: the one path every value takes.  A
 * file's [channel.sms] url = ... arrives as section "channel.sms", key
 * "url"; --set channel.sms.url=... as section "channel", key "sms.url". */
static int apply(struct hc_config *c, const char *section, const char *key,
                 const char *val, char *err, size_t errlen)
{
    if (strncmp(section, "channel.", 8) == 0)
        return set_channel(c, section + 8, key, val, err, errlen);
    const char *dot = strchr(key, '.');
    if (strcmp(section, "channel") == 0 && dot) {
        char *name = strndup(key, (size_t)(dot - key));
        if (!name) {
            set_err(err, errlen, "%s", strerror(ENOMEM));
            return -1;
        }
        int rc = set_channel(c, name, dot + 1, val, err, errlen);
        free(name);
        return rc;
    }
    const struct opt *o = opt_find(section, key);
    if (o)
        return opt_apply(o, c, section, key, val, err, errlen);
    return unknown_key(section, key, err, errlen);
}

/* ---- files ------------------------------------------------------------ */

struct load {
    struct hc_ini_lines rd;     /* first: the stream ini_parse_stream reads */
    struct hc_config *c;        /* the copy being filled */
    char msg[512];              /* the handler's error */
};

static int load_handler(void *user, const char *section, const char *name,
                        const char *value)
{
    struct load *x = user;
    if (x->rd.err_line)
        return 0;
    if (apply(x->c, section, name, value, x->msg, sizeof(x->msg)) == 0)
        return 1;
    x->rd.err_line = x->rd.lineno;
    return 0;
}

int hc_config_load(struct hc_config *c, const char *path, char *err, size_t errlen)
{
    struct load x = {.msg = ""};
    int rc = -1;

    x.rd.f = fopen(path, "r");
    if (!x.rd.f) {
        set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    x.c = malloc(sizeof(*x.c));
    if (!x.c) {
        set_err(err, errlen, "cannot load %s: %s", path, strerror(ENOMEM));
        goto fail;
    }
    memcpy(x.c, c, sizeof(*c));

    int line = ini_parse_stream(hc_ini_read, &x.rd, load_handler, &x);
    if (ferror(x.rd.f))
        set_err(err, errlen, "cannot read %s: %s", path,
                strerror(x.rd.read_errno ? x.rd.read_errno : EIO));
    else if (line > 0 && (x.rd.err_line == 0 || (unsigned)line < x.rd.err_line))
        set_err(err, errlen, "%s:%d: expected '[section]' or 'key = value'", path, line);
    else if (x.rd.err_line)
        set_err(err, errlen, "%s:%u: %s", path, x.rd.err_line, x.rd.msg[0] ? x.rd.msg : x.msg);
    else if (line < 0)
        set_err(err, errlen, "cannot parse %s (inih error %d)", path, line);
    else {
        memcpy(c, x.c, sizeof(*c));
        rc = 0;
    }
fail:
    free(x.c);
    hc_ini_lines_free(&x.rd);
    fclose(x.rd.f);
    return rc;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int hc_config_set(struct hc_config *c, const char *assignment, char *err, size_t errlen)
{
    char shown[64];
    char *copy = strdup(assignment);
    int rc = -1;

    if (!copy) {
        set_err(err, errlen, "%s", strerror(ENOMEM));
        return -1;
    }
    char *eq = strchr(copy, '=');
    char *dot = eq ? memchr(copy, '.', (size_t)(eq - copy)) : NULL;
    if (!dot) {
        set_err(err, errlen, "expected section.key=value, not '%s'",
                show(assignment, shown, sizeof(shown)));
        goto out;
    }
    *eq = '\0';
    *dot = '\0';
    rc = apply(c, trim(copy), trim(dot + 1), trim(eq + 1), err, errlen);
out:
    free(copy);
    return rc;
}

/* ---- one value as text ------------------------------------------------ */

/* Shortest decimal that reads back as exactly m. */
static void fmt_double(double m, char *buf, size_t n)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, m);
        if (strtod(buf, NULL) == m)
            return;
    }
}

/* The value of o in the struct at base as a file would spell it (not for
 * OPT_THRESHOLD).  n must hold any value of o: HC_CONFIG_PATH_MAX does. */
static void opt_format(const struct opt *o, const void *base, char *buf, size_t n)
{
    const char *field = (const char *)base + o->off;
    const unsigned *u = (const void *)field;
    switch (o->type) {
    case OPT_STRING:
    case OPT_URL:
    case OPT_SECRET:
    case OPT_IPV4:
        snprintf(buf, n, "%s", field);
        break;
    case OPT_UINT:
        snprintf(buf, n, "%u", *u);
        break;
    case OPT_DURATION:
        fmt_duration(*u, buf, n);
        break;
    case OPT_DURATIONS: {
        unsigned count = u[HC_CONFIG_RETRIES_MAX];
        size_t len = 0;
        snprintf(buf, n, "none");
        for (unsigned k = 0; k < count && k < HC_CONFIG_RETRIES_MAX; k++) {
            if (k > 0)
                buf[len++] = ',';
            assert(n - len > 32);
            fmt_duration(u[k], buf + len, n - len);
            len += strlen(buf + len);
        }
        break;
    }
    case OPT_BOOL:
        snprintf(buf, n, "%s", *(const bool *)(const void *)field ? "true" : "false");
        break;
    case OPT_METERS:
        fmt_double(*(const double *)(const void *)field, buf, n);
        break;
    case OPT_LOG_LEVEL:
        snprintf(buf, n, "%s", hc_log_level_name(*(const int *)(const void *)field));
        break;
    case OPT_RULE:
        snprintf(buf, n, "%s", hc_rule_name((enum hc_rule)*u));
        break;
    case OPT_THRESHOLD:
    case OPT_MAKER_RULE:
        assert(!"per-maker tables have no single value");
        buf[0] = '\0';
        break;
    }
}

/* ---- finish ----------------------------------------------------------- */

static int online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 4096 ? 4096 : (int)n;
}

/* The numeric range of o again in the struct at base, for a field a caller
 * may have written directly; the other types are only ever stored by
 * opt_apply, which checked them. */
static int opt_check(const struct opt *o, const void *base, const char *section,
                     const char *key, char *err, size_t errlen)
{
    const char *field = (const char *)base + o->off;
    const unsigned *u = (const void *)field;
    char value[HC_CONFIG_RETRIES_MAX * 24];
    switch (o->type) {
    case OPT_UINT:
    case OPT_DURATION:
        if (uint_ok(o, *u))
            return 0;
        break;
    case OPT_DURATIONS: {
        unsigned n = u[HC_CONFIG_RETRIES_MAX], k = 0;
        if (n > HC_CONFIG_RETRIES_MAX) {        /* too many to format */
            snprintf(value, sizeof(value), "%u entries", n);
            return bad_value(o, section, key, value, err, errlen);
        }
        while (k < n && uint_ok(o, u[k]))
            k++;
        if (k == n)
            return 0;
        break;
    }
    case OPT_RULE:
        if (*u < HC_RULES)
            return 0;
        snprintf(value, sizeof(value), "%u", *u);
        return bad_value(o, section, key, value, err, errlen);
    case OPT_LOG_LEVEL: {
        int v = *(const int *)(const void *)field;
        if (v >= HC_LOG_ERROR && v <= HC_LOG_DEBUG)
            return 0;
        snprintf(value, sizeof(value), "%d", v);   /* by number: its name is "unknown" */
        return bad_value(o, section, key, value, err, errlen);
    }
    default:
        return 0;
    }
    opt_format(o, base, value, sizeof(value));
    return bad_value(o, section, key, value, err, errlen);
}

/* Remove the entry of a table (n entries of size bytes) whose name, at the
 * start of the entry, is name; the freed last entry is zero-filled again
 * (it may have held a secret; configs still compare with memcmp). */
static int remove_named(void *table, unsigned *n, size_t size, const char *name)
{
    char *t = table;
    for (unsigned i = 0; i < *n; i++) {
        if (strcmp(t + i * size, name) != 0)
            continue;
        memmove(t + i * size, t + (i + 1) * size, (*n - i - 1) * size);
        (*n)--;
        OPENSSL_cleanse(t + *n * size, size);
        return 0;
    }
    return -ENOENT;
}

int hc_config_remove_threshold(struct hc_config *c, const char *maker)
{
    return remove_named(c->thresholds, &c->n_thresholds, sizeof(c->thresholds[0]), maker);
}

int hc_config_remove_rule(struct hc_config *c, const char *maker)
{
    return remove_named(c->rules, &c->n_rules, sizeof(c->rules[0]), maker);
}

void hc_config_detect(const struct hc_config *c, struct hc_detect_config *d)
{
    hc_detect_config_default(d);
    d->window = c->window;
    d->n1 = c->n1;
    d->n2 = c->n2 ? c->n2 : c->window - 1;
    d->default_threshold_m = c->default_threshold_m;
    d->rule = (enum hc_rule)c->rule;
    d->robust_after = c->robust_after;
    d->robust_before = c->robust_before;
    d->robust_share = c->robust_share_pct / 100.0;
    d->robust_tight = c->robust_tight_pct / 100.0;
    d->robust_far = c->robust_far_pct / 100.0;
}

int hc_config_remove_channel(struct hc_config *c, const char *name)
{
    _Static_assert(offsetof(struct hc_config_channel, name) == 0, "name first");
    return remove_named(c->channels, &c->n_channels, sizeof(c->channels[0]), name);
}

/* Every channel's ranges and required keys (the rows without a default). */

static int check_channels(const struct hc_config *c, char *err, size_t errlen)
{
    char section[64];
    if (c->n_channels > HC_CONFIG_CHANNELS_MAX) {
        set_err(err, errlen, "%u channels: at most %d can be named", c->n_channels,
                HC_CONFIG_CHANNELS_MAX);
        return -1;
    }
    for (unsigned i = 0; i < c->n_channels; i++) {
        const struct hc_config_channel *ch = &c->channels[i];
        snprintf(section, sizeof(section), "channel.%.*s", HC_CONFIG_CHANNEL_NAME_MAX,
                 ch->name);
        for (size_t k = 0; k < N_OPTS; k++) {
            const struct opt *o = &opts[k];
            if (!(o->flags & OPT_CHANNEL))
                continue;
            if (opt_check(o, ch, section, o->key, err, errlen) < 0)
                return -1;
            if (!o->def && ((const char *)ch)[o->off] == '\0') {
                set_err(err, errlen, "%s has no %s (set %s.%s)", section, o->key,
                        section, o->key);
                return -1;
            }
        }
    }
    return 0;
}

/* By priority, stable: channels of equal priority keep the order they were
 * first named in (insertion sort; memcpy keeps the padding for memcmp). */
static void sort_channels(struct hc_config *c)
{
    struct hc_config_channel t;
    for (unsigned i = 1; i < c->n_channels; i++) {
        unsigned j = i;
        while (j > 0 && c->channels[j - 1].priority > c->channels[i].priority)
            j--;
        memcpy(&t, &c->channels[i], sizeof(t));
        memmove(&c->channels[j + 1], &c->channels[j], (i - j) * sizeof(t));
        memcpy(&c->channels[j], &t, sizeof(t));
    }
    OPENSSL_cleanse(&t, sizeof(t));
}

int hc_config_tz_minutes(const char *tz, int *minutes)
{
    const char *p = strncmp(tz, "UTC", 3) == 0 ? tz + 3 : tz;
    int sign = *p == '+' ? 1 : *p == '-' ? -1 : 0;
    unsigned h = 0, m = 0, digits = 0;
    if (!sign)
        return -1;
    for (p++; *p >= '0' && *p <= '9' && digits < 2; p++, digits++)
        h = h * 10 + (unsigned)(*p - '0');
    if (digits == 0 || h > 14)
        return -1;
    if (*p == ':') {
        if (p[1] < '0' || p[1] > '5' || p[2] < '0' || p[2] > '9')
            return -1;
        m = (unsigned)(p[1] - '0') * 10 + (unsigned)(p[2] - '0');
        p += 3;
    }
    if (*p)
        return -1;
    *minutes = sign * (int)(h * 60 + m);
    return 0;
}

int hc_config_finish(struct hc_config *c, char *err, size_t errlen)
{
    char value[32];

    /* Every range again: a caller may have written a field directly. */
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        if (!(o->flags & OPT_CHANNEL) && opt_check(o, c, o->section, o->key, err, errlen) < 0)
            return -1;
    }
    if (check_channels(c, err, errlen) < 0)
        return -1;
    if (c->teltonika_maker[0] && !maker_ok(c->teltonika_maker)) {
        set_err(err, errlen, "teltonika.maker '%s' cannot be named in [thresholds]: 1 to %d"
                " bytes, no '=' or ':', not starting with '[' or '#', no spaces at either"
                " end", c->teltonika_maker, HC_MAKER_MAX);
        return -1;
    }
    int tz;
    if (hc_config_tz_minutes(c->jt808_timezone, &tz) < 0) {
        set_err(err, errlen, "jt808.timezone must be an offset from UTC such as +08:00 or"
                " -05:30, not '%s'", c->jt808_timezone);
        return -1;
    }

    unsigned workers = c->workers;
    if (workers == 0) {
        int n = online_cores() - 1;
        workers = n < 1 ? 1 : n > HC_CONFIG_WORKERS_MAX ? HC_CONFIG_WORKERS_MAX : (unsigned)n;
    }
    struct hc_detect_config d;
    hc_config_detect(c, &d);
    /* The robust rule's positions must fit the window of any maker that
     * uses it (the default rule, or one named in [rules]). */
    char user[HC_MAKER_MAX + 16] = "";
    if (d.rule == HC_RULE_ROBUST)
        snprintf(user, sizeof(user), "detect.rule");
    for (unsigned i = 0; !user[0] && i < c->n_rules; i++)
        if (c->rules[i].rule == HC_RULE_ROBUST)
            snprintf(user, sizeof(user), "rules.%s", c->rules[i].maker);
    if (user[0] && !hc_detect_robust_fits(&d)) {
        set_err(err, errlen, "detect.robust_after (%u) + detect.robust_before (%u) must "
                "not be greater than detect.window (%u) while a maker uses the robust rule "
                "(%s)", d.robust_after, d.robust_before, d.window, user);
        return -1;
    }
    int rc = hc_detect_config_check(&d);
    if (rc == HC_ETHRESHOLD) {
        snprintf(value, sizeof(value), "%g", d.default_threshold_m);
        return bad_value(opt_find("detect", "default_threshold_m"), "detect",
                         "default_threshold_m", value, err, errlen);
    }
    if (rc < 0 && d.n1 > d.window) {
        set_err(err, errlen, "detect.n1 (%u) must not be greater than detect.window (%u)",
                d.n1, d.window);
        return -1;
    }
    if (rc < 0) {
        set_err(err, errlen, "detect.n2 (%u%s) must be less than %u, the number of "
                "pairs in a full window of %u", d.n2, c->n2 ? "" : ", from window - 1",
                d.window * (d.window - 1) / 2, d.window);
        return -1;
    }
    for (unsigned i = 0; i < c->n_thresholds; i++) {
        double m = c->thresholds[i].meters;
        if (!(isfinite(m) && m > 0.0 && m <= HC_THRESHOLD_MAX_M)) {
            set_err(err, errlen, "thresholds.%s must be a number of meters greater "
                    "than 0 and at most %.0f", c->thresholds[i].maker, HC_THRESHOLD_MAX_M);
            return -1;
        }
    }
    sort_channels(c);
    c->workers = workers;
    c->n2 = d.n2;
    return 0;
}

/* ---- output ----------------------------------------------------------- */

/* The "key = value" lines of the rows of section, from the struct at base. */
static void write_keys(FILE *f, const char *section, const void *base)
{
    char buf[HC_CONFIG_PATH_MAX];
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        if (strcmp(o->section, section) != 0)
            continue;
        const struct hc_config *c = base;
        if (o->type == OPT_THRESHOLD) {
            for (unsigned t = 0; t < c->n_thresholds; t++) {
                fmt_double(c->thresholds[t].meters, buf, sizeof(buf));
                fprintf(f, "%s = %s\n", c->thresholds[t].maker, buf);
            }
            continue;
        }
        if (o->type == OPT_MAKER_RULE) {
            for (unsigned t = 0; t < c->n_rules; t++)
                fprintf(f, "%s = %s\n", c->rules[t].maker,
                        hc_rule_name((enum hc_rule)c->rules[t].rule));
            continue;
        }
        opt_format(o, base, buf, sizeof(buf));
        /* A required channel key not set yet: "url = " would not load. */
        if (buf[0] == '\0' && o->min > 0)
            continue;
        fprintf(f, "%s = %s\n", o->key, buf);
    }
}

void hc_config_write(const struct hc_config *c, FILE *f)
{
    fprintf(f, "; hubcapd configuration (see docs/CONFIG.md)\n");
    for (size_t s = 0; s < N_SECTIONS; s++) {
        const char *name = sections[s].name;
        if (strcmp(name, CHANNEL_SECTION) != 0) {
            fprintf(f, "\n[%s]\n", name);
            write_keys(f, name, c);
            continue;
        }
        for (unsigned i = 0; i < c->n_channels; i++) {
            fprintf(f, "\n[channel.%s]\n", c->channels[i].name);
            write_keys(f, name, &c->channels[i]);
        }
    }
}

/* Print text word-wrapped to width columns, each line indented by indent. */
static void wrap(FILE *f, const char *text, int indent, int width)
{
    const char *p = text;
    while (*p) {
        int col = indent;
        fprintf(f, "%*s", indent, "");
        bool first = true;
        while (*p) {
            size_t w = strcspn(p, " ");
            if (!first && col + 1 + (int)w > width)
                break;
            fprintf(f, "%s%.*s", first ? "" : " ", (int)w, p);
            col += (first ? 0 : 1) + (int)w;
            first = false;
            p += w;
            while (*p == ' ')
                p++;
        }
        fputc('\n', f);
    }
}

static void opt_name(const struct opt *o, char *buf, size_t n)
{
    snprintf(buf, n, "%s.%s", o->section, o->key ? o->key : "MAKER");
}

void hc_config_help(FILE *f)
{
    char name[64], range[128];
    fprintf(f, "Configuration keys. In a --config FILE, write 'key = value' lines under a\n"
               "[section] line; on the command line, --set section.key=value (repeatable,\n"
               "applied after the file). Precedence: defaults < file < --set.\n"
               "Durations take units: 500ms, 30s, 10m, 1h30m, 2d.\n");
    for (size_t s = 0; s < N_SECTIONS; s++) {
        const struct section *sec = &sections[s];
        char doc[1024];
        snprintf(doc, sizeof(doc), "%s%s%s%s", sec->doc, sec->link ? " See docs/" : "",
                 sec->link ? sec->link : "", sec->link ? "." : "");
        fprintf(f, "\n[%s]\n", sec->name);
        wrap(f, doc, 2, 79);
        for (size_t i = 0; i < N_OPTS; i++) {
            const struct opt *o = &opts[i];
            if (strcmp(o->section, sec->name) != 0)
                continue;
            opt_name(o, name, sizeof(name));
            opt_range(o, range, sizeof(range));
            int w = fprintf(f, "  %s (%s%s;", name,
                            !o->def ? "no default" : *o->def ? "default " : "default empty",
                            o->def ? o->def : "");
            /* A long default pushes the range to a line of its own. */
            fprintf(f, "%s%s)\n", w + 1 + (int)strlen(range) + 1 > 79 ? "\n      " : " ",
                    range);
            wrap(f, o->help, 6, 79);
        }
    }
}

/* Text for a markdown table cell: '|' and '*' escaped. */
static void md_cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|' || *s == '*')
            fputc('\\', f);
        fputc(*s, f);
    }
}

static const char example_ini[] =
    "; /etc/hubcap/hubcap.ini -- keys left out keep their defaults\n"
    "[core]\n"
    "data_dir = /var/lib/hubcap\n"
    "workers = 0\n"
    "log_level = info\n"
    "\n"
    "[msgpack]\n"
    "bind = 0.0.0.0\n"
    "port = 5170\n"
    "udp = off\n"
    "max_payload = 1048576\n"
    "\n"
    "[detect]\n"
    "window = 16\n"
    "n1 = 10\n"
    "n2 = 0\n"
    "default_threshold_m = 100\n"
    "rule = robust\n"
    "\n"
    "[store]\n"
    "commit_interval_ms = 10\n"
    "sync_interval_ms = 1000\n"
    "\n"
    "[alarm]\n"
    "repeat_interval = 10m\n"
    "snooze = 2h\n"
    "\n"
    "[push]\n"
    "retry_schedule = 5s, 5m, 30m, 2h, 5h, 10h, 10h\n"
    "timeout = 15s\n"
    "\n"
    "[thresholds]\n"
    "acme = 35\n"
    "globex = 62.5\n"
    "\n"
    "[rules]\n"
    "globex = seed\n"
    "\n"
    "; Notified in priority order: the app at once, SMS 5 minutes later.\n"
    "; Make your own secrets: echo whsec_$(openssl rand -base64 32)\n"
    "[channel.app]\n"
    "url = https://push.example.com/hooks/hubcap\n"
    "secret = whsec_NThZPAKExXq+1pp335Nh5zm8kZdWLbDD\n"
    "priority = 1\n"
    "delay = 0s\n"
    "\n"
    "[channel.sms]\n"
    "url = https://sms.example.com/hooks/hubcap\n"
    "secret = whsec_ZigqB0D675fT6VKaXdtH9pAGZVs9AaiN\n"
    "priority = 2\n"
    "delay = 5m\n";

void hc_config_markdown(FILE *f)
{
    char range[128];
    fprintf(f,
        "# Configuration\n"
        "\n"
        "<!-- Generated by hc_config_markdown() in src/config.c. Edit the table\n"
        "     there and regenerate; test config/markdown_matches_docs fails when\n"
        "     this file and the code differ. -->\n"
        "\n"
        "hubcapd takes its settings from three places. Each overrides the one\n"
        "before it: defaults < file < `--set`.\n"
        "\n"
        "1. The defaults listed below.\n"
        "2. An INI file: `hubcapd --config FILE`.\n"
        "3. `--set section.key=value`, for example `--set msgpack.port=0`,\n"
        "   `--set thresholds.acme=35` or `--set channel.sms.delay=5m`. It may be\n"
        "   repeated; the assignments are applied after the file, in order.\n"
        "\n"
        "`--data-dir DIR` is the same as `--set core.data_dir=DIR`.\n"
        "`hubcapd --help` lists every key with its default and range.\n"
        "\n"
        "Channels and the `[alarm]` keys can also be changed while hubcapd runs,\n"
        "through the control socket (`channel.set`, `channel.remove`,\n"
        "`alarm.settings`). Such a change is checked like a configured value,\n"
        "kept in `<data_dir>/settings` and applied at every later start after\n"
        "the file and `--set`, so it wins over them. Delete `<data_dir>/settings`\n"
        "to drop every live change.\n"
        "\n"
        "A bad key or value stops hubcapd before it starts, changes nothing, and\n"
        "says where the problem is:\n"
        "\n"
        "```text\n"
        "hubcap.ini:7: detect.window must be a whole number from 2 to 64, not 'abc'\n"
        "hubcap.ini:12: unknown key 'detect.windw' (see hubcapd --help)\n"
        "```\n"
        "\n"
        "## File format\n"
        "\n"
        "- A `[section]` line starts a section. The keys below it are written\n"
        "  without the section prefix: `window = 16` under `[detect]` is\n"
        "  `--set detect.window=16` on the command line. A channel's section\n"
        "  is `[channel.NAME]`: `url = ...` under `[channel.sms]` is\n"
        "  `--set channel.sms.url=...`.\n"
        "- Indentation and spaces around keys and values are ignored; there are\n"
        "  no continuation lines. A line starting with `;` or `#` is a comment,\n"
        "  and so is the rest of a line from a `;` that follows a space.\n"
        "- Whole numbers are decimal digits only. Meters may have a fraction or\n"
        "  an exponent (`62.5`, `1e3`). Booleans are `true`/`false`, `yes`/`no`,\n"
        "  `on`/`off` or `1`/`0`. Log levels and booleans ignore case; keys,\n"
        "  maker names, channel names and duration units do not.\n"
        "- Durations are one or more whole numbers, each with a unit: `ms`, `s`,\n"
        "  `m` (minutes), `h` or `d`, largest unit first and each at most once,\n"
        "  with nothing between them: `500ms`, `30s`, `10m`, `1h30m`, `0s`. A\n"
        "  number without a unit is refused.\n"
        "- A list is its entries separated by commas, with spaces around them\n"
        "  allowed (`5s, 5m, 30m`), or `none` for no entries.\n"
        "- A key given twice keeps its last value. In `[thresholds]` and\n"
        "  `[rules]`, setting a maker again replaces its entry. A `[channel.NAME]` section given\n"
        "  twice, or with `--set`, sets more keys of the same channel.\n"
        "- A line holds at most %d bytes (the limit of the inih parser). Give a\n"
        "  longer `data_dir`, `ca_file` or `url` with `--set` (`--data-dir` for\n"
        "  `data_dir`).\n"
        "\n"
        "## Example\n"
        "\n"
        "```ini\n"
        "%s"
        "```\n",
        INI_MAX_LINE - 2, example_ini);

    for (size_t s = 0; s < N_SECTIONS; s++) {
        const struct section *sec = &sections[s];
        fprintf(f, "\n## [%s]\n\n", sec->name);
        md_cell(f, sec->doc);
        if (sec->link)
            fprintf(f, " See [%s](%s).", sec->link, sec->link);
        fprintf(f, "\n\n| Key | Default | Range | Meaning |\n| --- | --- | --- | --- |\n");
        for (size_t i = 0; i < N_OPTS; i++) {
            const struct opt *o = &opts[i];
            if (strcmp(o->section, sec->name) != 0)
                continue;
            opt_range(o, range, sizeof(range));
            if (o->key)
                fprintf(f, "| `%s` | ", o->key);
            else
                fprintf(f, "| *maker name* | ");
            if (!o->def || !*o->def)
                fprintf(f, "%s | ", o->def ? "empty" : "none");
            else
                fprintf(f, "`%s` | ", o->def);
            md_cell(f, range);
            fprintf(f, " | ");
            md_cell(f, o->help);
            fprintf(f, " |\n");
        }
    }
}
