/*
 * hubcapctl — the command-line client of hubcapd's control socket
 * (docs/CONTROL.md): one command, one request line, one answer, printed as
 * aligned tables and "key: value" lines, or with --json as the daemon's
 * answer itself.
 *
 * The commands are a declarative table: the words, the positional
 * arguments and options each takes, the request member each fills, the
 * printer of its answer and its line of --help, which is generated from
 * the same table.  Everything that can be judged here is checked before the
 * daemon is contacted (command words, argument counts, numbers, on|off and
 * state words), so a usage error exits 2 having sent nothing.  What only the
 * daemon can judge (ranges, durations, URLs, secrets, names) goes as given,
 * and its refusal exits 1 with its sentence.  Requests are built with
 * jansson, never by pasting text, so any name or secret arrives intact.
 * Printers read answers defensively: a field an older daemon does not send
 * prints as "-".
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubcap/cli.h"
#include "hubcap/ctl.h"

#define DEFAULT_DATA_DIR "./var/hubcap"
#define DEFAULT_TIMEOUT_S 10.0

enum exit_status { EXIT_DONE = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

/* How an argument becomes a request member. */
enum vtype {
    V_STR,      /* a string, as given */
    V_SECRET,   /* a string, or "-": the next line of standard input */
    V_NUM,      /* a finite number (the daemon judges the range) */
    V_UINT,     /* a whole number in [min, max] */
    V_FLAG,     /* an option without a value: true */
    V_ONOFF,    /* "on" or "off": true or false */
    V_ACK,      /* "processing" or "done" */
    V_STATE,    /* "firing", "processing" or "done" */
};

struct param {
    const char *meta;       /* as --help shows it: "METERS", "on|off" */
    const char *key;        /* member of the request; NULL: hubcapctl's own */
    enum vtype type;
    uint64_t min, max;      /* V_UINT */
};

enum {
    O_DATA_DIR, O_SOCKET, O_JSON, O_TIMEOUT, O_HELP,
    O_STATE, O_ALARMING, O_ALARM_OFF, O_LIMIT, O_REPEAT, O_SNOOZE,
    O_URL, O_SECRET, O_SECRET_NEXT, O_PRIORITY, O_DELAY,
    N_OPTIONS
};

#define BIT(o) (1u << (o))
#define GLOBAL_OPTIONS (BIT(O_DATA_DIR) | BIT(O_SOCKET) | BIT(O_JSON) | BIT(O_TIMEOUT) | BIT(O_HELP))
#define CHANNEL_OPTIONS (BIT(O_URL) | BIT(O_SECRET) | BIT(O_SECRET_NEXT) | BIT(O_PRIORITY) | \
                         BIT(O_DELAY))

static const struct option_def {
    const char *name;       /* after "--" */
    struct param p;         /* p.meta NULL: a flag */
} options[N_OPTIONS] = {
    [O_DATA_DIR] = { "data-dir", { "DIR", NULL, V_STR, 0, 0 } },
    [O_SOCKET] = { "socket", { "PATH", NULL, V_STR, 0, 0 } },
    [O_JSON] = { "json", { NULL, NULL, V_FLAG, 0, 0 } },
    [O_TIMEOUT] = { "timeout", { "SECONDS", NULL, V_STR, 0, 0 } },
    [O_HELP] = { "help", { NULL, NULL, V_FLAG, 0, 0 } },
    [O_STATE] = { "state", { "S", "state", V_STATE, 0, 0 } },
    [O_ALARMING] = { "alarming", { NULL, "alarming", V_FLAG, 0, 0 } },
    [O_ALARM_OFF] = { "alarm-off", { NULL, "alarm_off", V_FLAG, 0, 0 } },
    [O_LIMIT] = { "limit", { "N", "limit", V_UINT, 1, 100000 } },
    [O_REPEAT] = { "repeat", { "D", "repeat_interval", V_STR, 0, 0 } },
    [O_SNOOZE] = { "snooze", { "D", "snooze", V_STR, 0, 0 } },
    [O_URL] = { "url", { "U", "url", V_STR, 0, 0 } },
    [O_SECRET] = { "secret", { "S", "secret", V_SECRET, 0, 0 } },
    [O_SECRET_NEXT] = { "secret-next", { "S", "secret_next", V_SECRET, 0, 0 } },
    [O_PRIORITY] = { "priority", { "P", "priority", V_UINT, 1, 1000 } },
    [O_DELAY] = { "delay", { "D", "delay", V_STR, 0, 0 } },
};

struct command {
    const char *words;          /* "threshold set" */
    const char *cmd;            /* "threshold.set" */
    struct param args[2];
    unsigned n_required, n_args;
    unsigned opts, required;    /* BIT(O_...) it takes, and of those, must have */
    void (*print)(json_t *answer);
    const char *help;           /* one line of --help */
};

/* ---- text -------------------------------------------------------------- */

/* Values as text for one output statement: up to POOL at once, each in its
 * own static buffer, control characters (a device's vehicle id may hold
 * any byte) shown as '?' so they cannot break a table or the terminal. */
#define POOL 16
#define TEXT_MAX 4096

static char *pool_next(void)
{
    static char pool[POOL][TEXT_MAX];
    static unsigned next;
    return pool[next++ % POOL];
}

static const char *clean(const char *s)
{
    char *b = pool_next();
    size_t i = 0;
    for (; s[i] && i < TEXT_MAX - 1; i++)
        b[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    b[i] = '\0';
    return b;
}

static const char *printf_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *printf_text(const char *fmt, ...)
{
    char *b = pool_next();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, TEXT_MAX, fmt, ap);
    va_end(ap);
    return b;
}

/* A number without noise: whole numbers in full, others to 3 decimals
 * with trailing zeros dropped ("35", "12.5", "301.234"). */
static const char *num_text(double v)
{
    if (v == floor(v) && fabs(v) < 1e15)
        return printf_text("%.0f", v);
    char *b = (char *)printf_text("%.3f", v);
    char *e = b + strlen(b) - 1;
    while (*e == '0')
        *e-- = '\0';
    if (*e == '.')
        *e = '\0';
    return b;
}

/* Any JSON value as a cell: "-" when absent or null, yes/no for booleans. */
static const char *txt(const json_t *v)
{
    if (!v || json_is_null(v))
        return "-";
    if (json_is_string(v))
        return clean(json_string_value(v));
    if (json_is_integer(v))
        return printf_text("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    if (json_is_real(v))
        return num_text(json_real_value(v));
    if (json_is_boolean(v))
        return json_is_true(v) ? "yes" : "no";
    char *s = json_dumps(v, JSON_COMPACT);
    const char *t = clean(s ? s : "-");
    free(s);
    return t;
}

/* The member at a dotted path ("front.udp_dropped", "workers.0.reports"). */
static const char *at(json_t *root, const char *path)
{
    return txt(hc_json_path(root, path));
}

/* Milliseconds as the configuration spells a duration: "1h30m", "500ms". */
static const char *ms_text(uint64_t ms)
{
    static const struct { const char *name; uint64_t ms; } units[] = {
        { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 },
    };
    char *b = pool_next();
    size_t len = 0;
    snprintf(b, TEXT_MAX, "0s");
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && ms > 0; i++) {
        if (ms < units[i].ms)
            continue;
        len += (size_t)snprintf(b + len, TEXT_MAX - len, "%llu%s",
                                (unsigned long long)(ms / units[i].ms), units[i].name);
        ms %= units[i].ms;
    }
    return b;
}

static const char *duration_text(const json_t *v)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return txt(v);
    return ms_text((uint64_t)json_integer_value(v));
}

static const char *bytes_text(const json_t *v)
{
    static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB" };
    if (!json_is_number(v))
        return "-";
    double b = json_number_value(v);
    if (b < 1024)
        return printf_text("%.0f B", b);
    int u = -1;
    while (b >= 1024 && u < 3) {
        b /= 1024;
        u++;
    }
    return printf_text("%.1f %s", b, unit[u]);
}

/* "1 message", "3 messages", "- messages". */
static const char *plural(const json_t *n, const char *noun)
{
    return printf_text("%s %s%s", txt(n), noun, json_integer_value(n) == 1 ? "" : "s");
}

static const char *meters_text(const json_t *v)
{
    return json_is_number(v) ? printf_text("%s m", num_text(json_number_value(v))) : "-";
}

/* "key:" and its value, values aligned. */
static void kv(const char *key, const char *value)
{
    printf("%-*s %s\n", 13, printf_text("%s:", key), value);
}

/* ---- tables ------------------------------------------------------------- */

struct table {
    unsigned ncol;
    const char *align;      /* per column: 'l' or 'r' */
    char **cells;           /* row-major, the header first */
    size_t rows, cap;
};

static void table_row(struct table *t, const char *const *cells)
{
    if (t->rows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = realloc(t->cells, t->cap * t->ncol * sizeof(char *));
        if (!t->cells) {
            fprintf(stderr, "%s: out of memory\n", hc_cli_prog);
            exit(EXIT_REFUSED);
        }
    }
    for (unsigned c = 0; c < t->ncol; c++)
        t->cells[t->rows * t->ncol + c] = strdup(cells[c] ? cells[c] : "-");
    t->rows++;
}

static struct table table_new(unsigned ncol, const char *align, const char *const *head)
{
    struct table t = { ncol, align, NULL, 0, 0 };
    table_row(&t, head);
    return t;
}

/* Columns of text as a terminal shows it: UTF-8 continuation bytes take
 * no column. */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

/* Print the table (or `none` when it has no rows) and free it. */
static void table_print(struct table *t, const char *none)
{
    size_t w[16] = { 0 };
    for (size_t r = 0; r < t->rows; r++)
        for (unsigned c = 0; c < t->ncol && c < 16; c++) {
            size_t x = width(t->cells[r * t->ncol + c]);
            w[c] = x > w[c] ? x : w[c];
        }
    if (t->rows == 1 && none) {
        printf("%s\n", none);
    } else {
        for (size_t r = 0; r < t->rows; r++)
            for (unsigned c = 0; c < t->ncol; c++) {
                const char *s = t->cells[r * t->ncol + c];
                size_t pad = w[c] - width(s);
                int last = c + 1 == t->ncol;
                if (t->align[c] == 'r')
                    printf("%*s%s%s", (int)pad, "", s, last ? "\n" : "  ");
                else if (last)
                    printf("%s\n", s);
                else
                    printf("%s%*s  ", s, (int)pad, "");
            }
    }
    for (size_t i = 0; i < t->rows * t->ncol; i++)
        free(t->cells[i]);
    free(t->cells);
}

/* ---- printers of answers -------------------------------------------------- */

static void print_status(json_t *a)
{
    json_t *up = json_object_get(a, "uptime_ms");
    kv("version", at(a, "version"));
    kv("pid", at(a, "pid"));
    kv("uptime", json_is_integer(up) && json_integer_value(up) >= 0
                 ? ms_text((uint64_t)json_integer_value(up) / 1000 * 1000) : "-");
    kv("workers", at(a, "workers"));
    static const char *const ports[][2] = { { "msgpack tcp", "msgpack_tcp" },
                                            { "msgpack udp", "msgpack_udp" },
                                            { "jt808", "jt808" },
                                            { "teltonika", "teltonika" } };
    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
        json_t *p = json_object_get(a, ports[i][1]);
        kv(ports[i][0], p && json_integer_value(p) == 0 ? "off" : at(a, ports[i][1]));
    }
    kv("data dir", at(a, "data_dir"));
    kv("control", at(a, "control"));
}

static void print_stats(json_t *a)
{
    json_t *s = json_object_get(a, "stats");
    json_t *rate = json_object_get(s, "reports_per_s");
    kv("reports", printf_text("%s taken, %s per second", at(s, "reports"),
                              json_is_number(rate)
                              ? printf_text("%.0f", json_number_value(rate)) : "-"));
    kv("vehicles", at(s, "vehicles"));
    kv("alarms", at(s, "alarms"));
    kv("persisted", at(s, "persisted"));
    kv("drops", printf_text("%s UDP dropped, %s malformed, %s oversized, %s rejected, %s stale",
                            at(s, "front.udp_dropped"), at(s, "front.malformed"),
                            at(s, "front.oversized"), at(s, "rejected"), at(s, "stale")));
    kv("front", printf_text("%s connections, %s frames, %s UDP datagrams, %s received",
                            at(s, "front.accepted"), at(s, "front.frames"),
                            at(s, "front.udp_datagrams"),
                            bytes_text(hc_json_path(s, "front.bytes"))));
    static const char *const devices[] = { "jt808", "teltonika" };
    for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++) {
        json_t *dv = hc_json_path(s, printf_text("front.%s", devices[i]));
        if (!dv)
            continue;
        kv(devices[i], printf_text("%s connections, %s frames, %s reports; dropped: %s bad"
                                   " checksum, %s bad length, %s unsupported; closed: %s idle,"
                                   " %s protocol", at(dv, "accepted"), at(dv, "frames"),
                                   at(dv, "reports"), at(dv, "bad_checksum"),
                                   at(dv, "bad_length"), at(dv, "unsupported"),
                                   at(dv, "closed_idle"), at(dv, "closed_protocol")));
    }
    kv("notify", printf_text("%s raised (%s firing, %s processing, %s done), %s errors",
                             at(s, "notify.raised"), at(s, "notify.firing"),
                             at(s, "notify.processing"), at(s, "notify.done"),
                             at(s, "notify.errors")));
    kv("push", printf_text("%s messages: %s pending, %s in flight, %s delivered",
                           at(s, "notify.messages"), at(s, "push.pending"),
                           at(s, "push.inflight"), at(s, "push.delivered")));
    kv("failures", printf_text("%s retries, %s dead letters (%s now), %s channels disabled",
                               at(s, "push.retries"), at(s, "push.dead"),
                               at(s, "push.dead_now"), at(s, "push.disabled")));
    kv("latency", printf_text("p50 %s ms, p99 %s ms", at(s, "push.latency_p50_ms"),
                              at(s, "push.latency_p99_ms")));
    json_t *lmdb = json_object_get(s, "lmdb"), *shards = json_object_get(lmdb, "shards"), *sh;
    size_t i;
    if (lmdb) {
        double total = 0;
        json_array_foreach(shards, i, sh)
            total += json_number_value(json_object_get(sh, "bytes"));
        json_t *t = json_real(total);
        kv("lmdb", printf_text("%s in %zu shard%s, outbox %s, settings %s", bytes_text(t),
                               json_array_size(shards), json_array_size(shards) == 1 ? "" : "s",
                               bytes_text(json_object_get(lmdb, "outbox_bytes")),
                               bytes_text(json_object_get(lmdb, "settings_bytes"))));
        json_decref(t);
    } else {
        kv("lmdb", "-");
    }
    static const char *const head[] = { "WORKER", "REPORTS", "VEHICLES", "ALARMS", "RING",
                                        "DIRTY", "COMMITS", "LMDB" };
    struct table t = table_new(8, "rrrrrrrl", head);
    json_array_foreach(json_object_get(s, "workers"), i, sh) {
        const char *row[] = { printf_text("%zu", i), at(sh, "reports"), at(sh, "vehicles"),
                              at(sh, "alarms"),
                              printf_text("%s/%s", at(sh, "ring_fill"), at(sh, "ring_size")),
                              at(sh, "dirty"), at(sh, "commits"),
                              bytes_text(hc_json_path(shards, printf_text("%zu.bytes", i))) };
        table_row(&t, row);
    }
    printf("\n");
    table_print(&t, "no workers");
}

/* threshold.* and rule.*: one table of makers (list_key's array, or the
 * one maker of get and unset), each maker's value_key, the default last. */
static void print_per_maker(json_t *a, const char *list_key, const char *value_key,
                            const char *default_key, const char *const head[3])
{
    struct table t = table_new(3, strcmp(value_key, "meters") ? "lll" : "lrl", head);
    json_t *list = json_object_get(a, list_key), *x;
    size_t i;
    json_array_foreach(list, i, x) {
        const char *row[] = { txt(json_object_get(x, "maker")),
                              txt(json_object_get(x, value_key)), txt(json_object_get(x, "source")) };
        table_row(&t, row);
    }
    if (!list) {
        const char *row[] = { txt(json_object_get(a, "maker")),
                              txt(json_object_get(a, value_key)), txt(json_object_get(a, "source")) };
        table_row(&t, row);
    }
    if (json_object_get(a, default_key)) {
        const char *row[] = { "(default)", txt(json_object_get(a, default_key)), "default" };
        table_row(&t, row);
    }
    table_print(&t, NULL);
}

static void print_thresholds(json_t *a)
{
    static const char *const head[] = { "MAKER", "METERS", "SOURCE" };
    print_per_maker(a, "thresholds", "meters", "default_m", head);
}

static void print_rules(json_t *a)
{
    static const char *const head[] = { "MAKER", "RULE", "SOURCE" };
    print_per_maker(a, "rules", "rule", "default", head);
}

static const char *position_text(json_t *p)
{
    if (!json_is_object(p))
        return txt(p);
    return printf_text("%.6f, %.6f at %s", json_number_value(json_object_get(p, "lat")),
                       json_number_value(json_object_get(p, "lon")),
                       txt(json_object_get(p, "ts")));
}

static void print_vehicle(json_t *a)
{
    json_t *v = json_object_get(a, "vehicle"), *w = json_object_get(v, "window");
    json_t *parked = json_object_get(v, "parked");
    kv("vid", at(v, "vid"));
    kv("maker", at(v, "maker"));
    kv("shard", at(v, "shard"));
    kv("alarm", at(v, "alarm"));
    kv("alarmed", at(v, "alarmed"));
    kv("last report", at(v, "last_ts"));
    kv("parked", json_is_null(parked) ? "no" : position_text(parked));
    kv("window", w ? printf_text("%s of %s positions, %s pairs over the threshold, farthest %s",
                                 at(w, "len"), at(w, "size"), at(w, "exceeding_pairs"),
                                 meters_text(json_object_get(w, "max_distance_m"))) : "-");
    kv("threshold", meters_text(json_object_get(v, "threshold_m")));
}

static void print_vehicle_alarm(json_t *a)
{
    printf("%s: alarm %s%s\n", at(a, "vid"), at(a, "alarm"),
           json_is_true(json_object_get(a, "created"))
           ? " (it has not reported yet: the setting waits for it)" : "");
}

/* A table of the array a.<list>: one row per element, column i its
 * member keys[i] as text. */
static void print_members(json_t *a, const char *list, unsigned ncols, const char *align,
                          const char *const *head, const char *const *keys, const char *none)
{
    struct table t = table_new(ncols, align, head);
    json_t *x;
    size_t i;
    json_array_foreach(json_object_get(a, list), i, x) {
        const char *row[8];
        for (unsigned c = 0; c < ncols && c < 8; c++)
            row[c] = at(x, keys[c]);
        table_row(&t, row);
    }
    table_print(&t, none);
}

static void print_vehicles(json_t *a)
{
    static const char *const head[] = { "VID", "MAKER", "SHARD", "ALARM", "ALARMED",
                                        "LAST REPORT" };
    static const char *const keys[] = { "vid", "maker", "shard", "alarm", "alarmed", "last_ts" };
    print_members(a, "vehicles", 6, "llrlll", head, keys, "no vehicles match");
    if (json_is_true(json_object_get(a, "truncated")))
        printf("(more vehicles match: show more with --limit N, at most 100000)\n");
}

/* Oldest first: by the time raised (ISO 8601 sorts as text), then by id
 * "SHARD-SEQ" as numbers, so 0-9 comes before 0-10. */
static int alarm_order(const void *pa, const void *pb)
{
    json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
    const char *ra = json_string_value(json_object_get(a, "raised"));
    const char *rb = json_string_value(json_object_get(b, "raised"));
    int c = strcmp(ra ? ra : "", rb ? rb : "");
    unsigned long long sa = 0, na = 0, sb = 0, nb = 0;
    const char *ia = json_string_value(json_object_get(a, "id"));
    const char *ib = json_string_value(json_object_get(b, "id"));
    if (c == 0 && ia && ib && sscanf(ia, "%llu-%llu", &sa, &na) == 2 &&
        sscanf(ib, "%llu-%llu", &sb, &nb) == 2)
        c = sa != sb ? (sa < sb ? -1 : 1) : na != nb ? (na < nb ? -1 : 1) : 0;
    return c;
}

static void print_alarms(json_t *a)
{
    static const char *const head[] = { "ID", "STATE", "ROUND", "VID", "MAKER", "RAISED",
                                        "NEXT" };
    struct table t = table_new(7, "llrllll", head);
    json_t *list = json_object_get(a, "alarms");
    size_t n = json_array_size(list);
    json_t **v = malloc((n ? n : 1) * sizeof(*v));
    for (size_t i = 0; v && i < n; i++)
        v[i] = json_array_get(list, i);
    if (v)
        qsort(v, n, sizeof(*v), alarm_order);
    for (size_t i = 0; i < n; i++) {
        json_t *x = v ? v[i] : json_array_get(list, i);
        const char *row[] = { at(x, "id"), at(x, "state"), at(x, "round"), at(x, "vid"),
                              at(x, "maker"), at(x, "raised"), at(x, "next") };
        table_row(&t, row);
    }
    free(v);
    table_print(&t, "no alarms");
}

static void print_alarm(json_t *a)
{
    json_t *x = json_object_get(a, "alarm"), *data = hc_json_path(x, "alarm.data");
    kv("id", at(x, "id"));
    kv("state", at(x, "state"));
    kv("round", printf_text("%s (%s sent)", at(x, "round"),
                            plural(json_object_get(x, "sent"), "message")));
    kv("vid", at(x, "vid"));
    kv("maker", at(x, "maker"));
    kv("raised", at(x, "raised"));
    kv("updated", at(x, "updated"));
    kv("next", at(x, "next"));
    kv("moved", data ? printf_text("%s apart at most, %s pairs over %s",
                                   meters_text(json_object_get(data, "max_distance_m")),
                                   at(data, "exceeding_pairs"),
                                   meters_text(json_object_get(data, "threshold_m"))) : "-");
    kv("parked", position_text(json_object_get(data, "parked")));
    kv("latest", position_text(json_object_get(data, "latest")));
}

static void print_message(json_t *a)
{
    printf("%s\n", at(a, "message"));
}

static void print_alarm_settings(json_t *a)
{
    kv("repeat", printf_text("%s (a firing alarm notifies again after this)",
                             duration_text(json_object_get(a, "repeat_interval_ms"))));
    kv("snooze", printf_text("%s (acknowledged as processing: quiet for this long)",
                             duration_text(json_object_get(a, "snooze_ms"))));
}

static void print_channels(json_t *a)
{
    static const char *const head[] = { "NAME", "PRIORITY", "DELAY", "URL", "FLAGS" };
    struct table t = table_new(5, "lrlll", head);
    json_t *x;
    size_t i;
    json_array_foreach(json_object_get(a, "channels"), i, x) {
        int rot = json_is_true(json_object_get(x, "rotating"));
        int dis = json_is_true(json_object_get(x, "disabled"));
        const char *row[] = { at(x, "name"), at(x, "priority"),
                              duration_text(json_object_get(x, "delay_ms")), at(x, "url"),
                              rot && dis ? "rotating,disabled" : rot ? "rotating"
                              : dis ? "disabled" : "-" };
        table_row(&t, row);
    }
    table_print(&t, "no channels: alarms are kept and listed, but sent nowhere");
}

static void print_deadletters(json_t *a)
{
    static const char *const head[] = { "SEQ", "CHANNEL", "ATTEMPTS", "CREATED", "ID",
                                        "LAST ERROR" };
    static const char *const keys[] = { "seq", "channel", "attempts", "created", "id",
                                        "last_error" };
    print_members(a, "deadletters", 6, "rlrlll", head, keys, "no dead letters");
}

static void print_replayed(json_t *a)
{
    json_t *n = json_object_get(a, "replayed");
    printf("%s back in the queue\n", plural(n, "message"));
}

static void print_config(json_t *a)
{
    const char *ini = json_string_value(json_object_get(a, "ini"));
    if (!ini) {
        printf("-\n");
        return;
    }
    fputs(ini, stdout);
    if (*ini && ini[strlen(ini) - 1] != '\n')
        putchar('\n');
}

/* ---- the commands --------------------------------------------------------- */

#define ARG(meta, key, type) { meta, key, type, 0, 0 }

static const struct command commands[] = {
    { "status", "status", { { 0 } }, 0, 0, 0, 0, print_status,
      "version, pid, uptime, ports and paths" },
    { "stats", "stats", { { 0 } }, 0, 0, 0, 0, print_stats,
      "reports, drops, workers, queues, LMDB sizes" },
    { "threshold list", "threshold.list", { { 0 } }, 0, 0, 0, 0, print_thresholds,
      "makers' own drift thresholds and the default" },
    { "threshold get", "threshold.get", { ARG("MAKER", "maker", V_STR) }, 1, 1, 0, 0,
      print_thresholds, "MAKER's threshold and where it comes from" },
    { "threshold set", "threshold.set",
      { ARG("MAKER", "maker", V_STR), ARG("METERS", "meters", V_NUM) }, 2, 2, 0, 0,
      print_thresholds, "MAKER's threshold in meters, from now on" },
    { "threshold unset", "threshold.unset", { ARG("MAKER", "maker", V_STR) }, 1, 1, 0, 0,
      print_thresholds, "MAKER uses the default threshold again" },
    { "rule list", "rule.list", { { 0 } }, 0, 0, 0, 0, print_rules,
      "makers' own decision rules and the default" },
    { "rule get", "rule.get", { ARG("MAKER", "maker", V_STR) }, 1, 1, 0, 0,
      print_rules, "MAKER's decision rule and where it comes from" },
    { "rule set", "rule.set",
      { ARG("MAKER", "maker", V_STR), ARG("seed|robust", "rule", V_STR) }, 2, 2, 0, 0,
      print_rules, "MAKER's decision rule, from its vehicles' next report" },
    { "rule unset", "rule.unset", { ARG("MAKER", "maker", V_STR) }, 1, 1, 0, 0,
      print_rules, "MAKER uses the default rule again" },
    { "vehicle show", "vehicle.show", { ARG("VID", "vid", V_STR) }, 1, 1, 0, 0, print_vehicle,
      "a vehicle's alarm switch, parking and window" },
    { "vehicle alarm", "vehicle.alarm",
      { ARG("VID", "vid", V_STR), ARG("on|off", "on", V_ONOFF) }, 2, 2, 0, 0,
      print_vehicle_alarm, "switch VID's alarm (off while staff move it)" },
    { "vehicle list", "vehicle.list", { { 0 } }, 0, 0,
      BIT(O_ALARMING) | BIT(O_ALARM_OFF) | BIT(O_LIMIT), 0, print_vehicles,
      "vehicles: all, alarmed, or switched off" },
    { "alarm list", "alarm.list", { { 0 } }, 0, 0, BIT(O_STATE), 0, print_alarms,
      "alarms; S: firing, processing or done" },
    { "alarm show", "alarm.show", { ARG("ID", "id", V_STR) }, 1, 1, 0, 0, print_alarm,
      "one alarm and what it is about" },
    { "alarm ack", "alarm.ack",
      { ARG("ID", "id", V_STR), ARG("processing|done", "state", V_ACK) }, 2, 2, 0, 0,
      print_message, "processing: snooze it; done: end it" },
    { "alarm settings", "alarm.settings", { { 0 } }, 0, 0, BIT(O_REPEAT) | BIT(O_SNOOZE), 0,
      print_alarm_settings, "show or change the repeat interval and snooze" },
    { "channel list", "channel.list", { { 0 } }, 0, 0, 0, 0, print_channels,
      "alarm channels in notification order" },
    { "channel add", "channel.add", { ARG("NAME", "name", V_STR) }, 1, 1, CHANNEL_OPTIONS,
      BIT(O_URL) | BIT(O_SECRET), print_channels, "add a webhook channel" },
    { "channel set", "channel.set", { ARG("NAME", "name", V_STR) }, 1, 1, CHANNEL_OPTIONS, 0,
      print_channels, "change some of a channel's settings" },
    { "channel remove", "channel.remove", { ARG("NAME", "name", V_STR) }, 1, 1, 0, 0,
      print_channels, "remove a channel and withdraw its messages" },
    { "deadletter list", "deadletter.list", { { 0 } }, 0, 0, 0, 0, print_deadletters,
      "messages given up on, with their last error" },
    { "deadletter replay", "deadletter.replay", { { "SEQ", "seq", V_UINT, 1, 1ull << 53 } },
      0, 1, 0, 0, print_replayed, "queue dead letter SEQ (or all) again" },
    { "config show", "config.show", { { 0 } }, 0, 0, 0, 0, print_config,
      "configuration in force as INI, secrets hidden" },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* "threshold set MAKER METERS" or "channel add NAME --url U [--priority P]". */
static const char *synopsis(const struct command *c)
{
    char *b = pool_next();
    size_t len = (size_t)snprintf(b, TEXT_MAX, "%s", c->words);
    for (unsigned i = 0; i < c->n_args; i++)
        len += (size_t)snprintf(b + len, TEXT_MAX - len, i < c->n_required ? " %s" : " [%s]",
                                c->args[i].meta);
    for (unsigned o = 0; o < N_OPTIONS; o++) {
        if (!(c->opts & BIT(o)))
            continue;
        int req = !!(c->required & BIT(o));
        len += (size_t)snprintf(b + len, TEXT_MAX - len, " %s--%s%s%s%s", req ? "" : "[",
                                options[o].name, options[o].p.meta ? " " : "",
                                options[o].p.meta ? options[o].p.meta : "", req ? "" : "]");
    }
    return b;
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: hubcapctl [--data-dir DIR | --socket PATH] [--json] [--timeout SECONDS]\n"
"                 COMMAND [ARGS]\n"
"\n"
"Inspect and tune a running hubcapd through its control socket.  The daemon\n"
"checks every change before anything changes, applies it at once and keeps\n"
"it across restarts.\n"
"\n"
"Commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const char *s = synopsis(&commands[i]);
        size_t len = strlen(s);
        if (len <= 28) {
            fprintf(f, "  %-28s  %s\n", s, commands[i].help);
            continue;
        }
        /* Long ones wrap at a space before column 78, then the meaning. */
        const char *indent = "  ";
        while (len > 78 - strlen(indent)) {
            size_t cut = 78 - strlen(indent);
            while (cut > 0 && s[cut] != ' ')
                cut--;
            fprintf(f, "%s%.*s\n", indent, (int)cut, s);
            s += cut + 1;
            len -= cut + 1;
            indent = "      ";
        }
        fprintf(f, "%s%s\n  %-28s  %s\n", indent, s, "", commands[i].help);
    }
    fprintf(f,
"\n"
"Durations (D) are written as in the configuration: 90s, 10m, 1h30m, 500ms.\n"
"A secret S given as - is read from the next line of standard input, which\n"
"keeps it out of the process list and the shell's history:\n"
"  openssl rand -base64 32 | sed 's/^/whsec_/' | hubcapctl channel set sms --secret -\n"
"\n"
"Options (before or after the command):\n"
"  --data-dir DIR     the daemon's data directory (default " DEFAULT_DATA_DIR ");\n"
"                     the socket is DIR/hubcapd.sock\n"
"  --socket PATH      the control socket itself (control.socket)\n"
"  --json             print the daemon's whole answer as JSON\n"
"  --timeout SECONDS  how long to wait for the answer (default 10)\n"
"  -h, --help         this text\n"
"\n"
"Exit status: 0 done; 1 refused by the daemon (its reason on stderr; with\n"
"--json the answer is printed too); 2 usage error (nothing was sent); 3 the\n"
"daemon cannot be reached (not running, wrong path, no permission, or no\n"
"answer in time).\n"
"\n"
"The protocol and every field of the answers: docs/CONTROL.md.\n");
}

/* ---- the command line ------------------------------------------------------ */

struct invocation {
    const char *opt[N_OPTIONS];     /* each option's value ("" for a flag); NULL: not given */
    const char **pos;               /* command words and arguments, in order */
    int npos;
    const struct command *c;
    int first_arg;                  /* pos index of the command's first argument */
};

/* "-5" and "-0.5" are arguments (a threshold the daemon will judge), not
 * options. */
static int is_number(const char *s)
{
    char *end;
    strtod(s, &end);
    return end != s && *end == '\0';
}

static void parse_options(struct invocation *inv, int argc, char **argv)
{
    inv->pos = calloc((size_t)argc, sizeof(char *));
    if (!inv->pos) {
        fprintf(stderr, "%s: out of memory\n", hc_cli_prog);
        exit(EXIT_REFUSED);
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            while (++i < argc)
                inv->pos[inv->npos++] = argv[i];
            break;
        }
        if (strcmp(a, "-h") == 0) {
            inv->opt[O_HELP] = "";
            continue;
        }
        if (a[0] != '-' || a[1] == '\0' || is_number(a)) {
            inv->pos[inv->npos++] = a;
            continue;
        }
        if (a[1] != '-')
            hc_cli_usage_error("unknown option '%s'", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int o = 0;
        while (o < N_OPTIONS && (strlen(options[o].name) != len ||
                                 strncmp(options[o].name, name, len) != 0))
            o++;
        if (o == N_OPTIONS)
            hc_cli_usage_error("unknown option '--%.*s'", (int)len, name);
        if (inv->opt[o])
            hc_cli_usage_error("--%s given twice", options[o].name);
        if (!options[o].p.meta) {
            if (eq)
                hc_cli_usage_error("--%s takes no value", options[o].name);
            inv->opt[o] = "";
        } else if (eq) {
            inv->opt[o] = eq + 1;
        } else if (i + 1 < argc) {
            inv->opt[o] = argv[++i];
        } else {
            hc_cli_usage_error("--%s wants a value (%s)", options[o].name, options[o].p.meta);
        }
    }
}

/* The subcommands of group word w, "list, get, set, unset". */
static const char *subcommands(const char *w)
{
    char *b = pool_next();
    size_t len = 0, wl = strlen(w);
    b[0] = '\0';
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strncmp(commands[i].words, w, wl) == 0 && commands[i].words[wl] == ' ')
            len += (size_t)snprintf(b + len, TEXT_MAX - len, "%s%s", len ? ", " : "",
                                    commands[i].words + wl + 1);
    return b;
}

static void find_command(struct invocation *inv)
{
    if (inv->npos == 0)
        hc_cli_usage_error("no command given (status, stats, threshold, rule, vehicle,"
                           " alarm, channel, deadletter or config)");
    const char *w0 = inv->pos[0];
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const struct command *c = &commands[i];
        size_t l0 = strcspn(c->words, " ");
        if (strlen(w0) != l0 || strncmp(c->words, w0, l0) != 0)
            continue;
        if (c->words[l0] == '\0') {
            inv->c = c;
            inv->first_arg = 1;
            return;
        }
        if (inv->npos < 2)
            hc_cli_usage_error("'%s' wants one of: %s", w0, subcommands(w0));
        for (size_t k = i; k < N_COMMANDS; k++)
            if (strncmp(commands[k].words, w0, l0) == 0 && commands[k].words[l0] == ' ' &&
                strcmp(commands[k].words + l0 + 1, inv->pos[1]) == 0) {
                inv->c = &commands[k];
                inv->first_arg = 2;
                return;
            }
        hc_cli_usage_error("unknown command '%s %s' ('%s' wants one of: %s)", w0, inv->pos[1],
                           w0, subcommands(w0));
    }
    hc_cli_usage_error("unknown command '%s'", w0);
}

static double finite_number(const char *what, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno || !isfinite(v))
        hc_cli_usage_error("%s wants a number, such as 35 or 12.5, not '%s'", what, s);
    return v;
}

/* The request member p takes from s, checked as far as it can be here;
 * what names the argument in a usage error. */
/* "--secret -": the next line of standard input, so the secret stays out
 * of the process list and the shell's history.  The buffer is wiped. */
static json_t *secret_from_stdin(const char *what)
{
    char line[512];
    if (!fgets(line, sizeof(line), stdin))
        hc_cli_usage_error("%s -: no line on standard input", what);
    line[strcspn(line, "\r\n")] = '\0';
    if (!line[0])
        hc_cli_usage_error("%s -: the line on standard input is empty", what);
    json_t *j = json_string(line);
    explicit_bzero(line, sizeof(line));
    if (!j)
        hc_cli_usage_error("%s is not valid UTF-8 text", what);
    return j;
}

static json_t *value(const struct param *p, const char *what, const char *s)
{
    double v;
    switch (p->type) {
    case V_NUM:     /* whole numbers as integers, as a person would write them */
        v = finite_number(what, s);
        return v == floor(v) && fabs(v) <= 9007199254740992.0 ? json_integer((json_int_t)v)
                                                              : json_real(v);
    case V_UINT:
        return json_integer((json_int_t)hc_cli_uint(what, s, p->min, p->max));
    case V_FLAG:
        return json_true();
    case V_ONOFF:
        if (strcmp(s, "on") != 0 && strcmp(s, "off") != 0)
            hc_cli_usage_error("%s wants on or off, not '%s'", what, s);
        return json_boolean(strcmp(s, "on") == 0);
    case V_ACK:
        if (strcmp(s, "processing") != 0 && strcmp(s, "done") != 0)
            hc_cli_usage_error("%s wants processing or done, not '%s'", what, s);
        return json_string(s);
    case V_STATE:
        if (strcmp(s, "firing") != 0 && strcmp(s, "processing") != 0 && strcmp(s, "done") != 0)
            hc_cli_usage_error("%s wants firing, processing or done, not '%s'", what, s);
        return json_string(s);
    case V_SECRET:
        if (strcmp(s, "-") == 0)
            return secret_from_stdin(what);
        break;
    case V_STR:
        break;
    }
    json_t *j = json_string(s);
    if (!j)
        hc_cli_usage_error("%s is not valid UTF-8 text", what);
    return j;
}

/* The request of the command line, checked; exits 2 on a usage error. */
static json_t *build_request(const struct invocation *inv)
{
    const struct command *c = inv->c;
    int nargs = inv->npos - inv->first_arg;
    if (nargs < (int)c->n_required)
        hc_cli_usage_error("'%s' wants %s%s%s", c->words, c->args[0].meta,
                           c->n_required > 1 ? " " : "", c->n_required > 1 ? c->args[1].meta : "");
    if (nargs > (int)c->n_args)
        hc_cli_usage_error("unexpected argument '%s' after '%s'",
                           inv->pos[inv->first_arg + (int)c->n_args], synopsis(c));
    json_t *req = json_pack("{s:s}", "cmd", c->cmd);
    for (int i = 0; i < nargs; i++) {
        const struct param *p = &c->args[i];
        const char *what = strchr(p->meta, '|') ? printf_text("'%s'", c->words) : p->meta;
        json_object_set_new(req, p->key, value(p, what, inv->pos[inv->first_arg + i]));
    }
    for (unsigned o = 0; o < N_OPTIONS; o++) {
        if (GLOBAL_OPTIONS & BIT(o))
            continue;
        if (inv->opt[o] && !(c->opts & BIT(o)))
            hc_cli_usage_error("'%s' takes no --%s", c->words, options[o].name);
        if (!inv->opt[o] && (c->required & BIT(o)))
            hc_cli_usage_error("'%s' wants --%s %s", c->words, options[o].name,
                               options[o].p.meta);
        if (inv->opt[o])
            json_object_set_new(req, options[o].p.key,
                                value(&options[o].p, printf_text("--%s", options[o].name),
                                      inv->opt[o]));
    }
    return req;
}

/* ---- talking to the daemon ------------------------------------------------ */

/* Why the daemon could not be reached, and what to do; exit status 3. */
static int unreachable(const struct invocation *inv, const char *path, int err, double timeout_s)
{
    char why[1024];
    fprintf(stderr, "%s: %s\n", hc_cli_prog,
            hc_ctl_unreachable(why, sizeof(why), err, path,
                               inv->opt[O_DATA_DIR] ? inv->opt[O_DATA_DIR] : DEFAULT_DATA_DIR,
                               inv->opt[O_SOCKET] != NULL, timeout_s,
                               "--timeout SECONDS waits longer"));
    return EXIT_UNREACHABLE;
}

int main(int argc, char **argv)
{
    struct invocation inv;
    memset(&inv, 0, sizeof(inv));
    hc_cli_init(argv[0]);
    parse_options(&inv, argc, argv);
    if (inv.opt[O_HELP]) {
        usage(stdout);
        free(inv.pos);
        return EXIT_DONE;
    }
    if (inv.opt[O_DATA_DIR] && inv.opt[O_SOCKET])
        hc_cli_usage_error("give --data-dir or --socket, not both");
    double timeout_s = inv.opt[O_TIMEOUT] ? hc_cli_double("--timeout", inv.opt[O_TIMEOUT],
                                                          0.001, 86400) : DEFAULT_TIMEOUT_S;
    find_command(&inv);
    json_t *req = build_request(&inv);

    char path[4200];
    if (inv.opt[O_SOCKET])
        snprintf(path, sizeof(path), "%s", inv.opt[O_SOCKET]);
    else
        snprintf(path, sizeof(path), "%s/hubcapd.sock",
                 inv.opt[O_DATA_DIR] ? inv.opt[O_DATA_DIR] : DEFAULT_DATA_DIR);
    char *line = json_dumps(req, JSON_COMPACT);
    size_t len = line ? strlen(line) : 0;
    char *framed = line ? malloc(len + 2) : NULL;
    if (!framed) {
        fprintf(stderr, "%s: out of memory\n", hc_cli_prog);
        return EXIT_REFUSED;
    }
    memcpy(framed, line, len);
    memcpy(framed + len, "\n", 2);
    /* The request may hold a secret: wipe it once sent. */
    json_t *ans = hc_ctl_call(path, framed, (int)(timeout_s * 1000));
    int err = errno;
    memset(line, 0, len);
    memset(framed, 0, len);
    free(line);
    free(framed);
    json_decref(req);
    free(inv.pos);
    if (!ans)
        return unreachable(&inv, path, err, timeout_s);
    json_t *ok = json_object_get(ans, "ok");
    if (!json_is_boolean(ok)) {
        json_decref(ans);
        return unreachable(&inv, path, EPROTO, timeout_s);
    }
    if (inv.opt[O_JSON]) {
        char *s = json_dumps(ans, JSON_INDENT(2));
        if (s)
            puts(s);
        free(s);
    }
    int rc = EXIT_DONE;
    if (json_is_false(ok)) {
        const char *e = json_string_value(json_object_get(ans, "error"));
        fprintf(stderr, "%s: %s\n", hc_cli_prog, e ? clean(e) : "refused (no reason given)");
        rc = EXIT_REFUSED;
    } else if (!inv.opt[O_JSON]) {
        inv.c->print(ans);
    }
    json_decref(ans);
    if (fflush(stdout) != 0 && rc == EXIT_DONE)
        rc = EXIT_REFUSED;
    return rc;
}
