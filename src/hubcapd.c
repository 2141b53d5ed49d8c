/*
 * hubcapd — the daemon: configuration, then one front thread and N pinned
 * worker threads joined by lock-free rings, plus the main thread, which
 * serves the control socket and waits for SIGTERM/SIGINT.
 *
 * Start-up: load the configuration (defaults < --config file < --set and
 * --data-dir in command-line order), lock the data directory, open every
 * shard (restoring its vehicles), bind the sockets, start the threads,
 * then write <data_dir>/hubcapd.json (pid, ports, control socket) for
 * scripts and tests.  Shutdown on SIGTERM/SIGINT: the front stops accepting
 * and reading and hands over what it holds, the workers drain their rings
 * and commit, and hubcapd exits 0.
 */
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <inttypes.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hubcap/alarmjson.h"
#include "hubcap/config.h"
#include "hubcap/ctl.h"
#include "hubcap/hash.h"
#include "hubcap/error.h"
#include "hubcap/front.h"
#include "hubcap/log.h"
#include "hubcap/notify.h"
#include "hubcap/push.h"
#include "hubcap/settings.h"
#include "hubcap/store.h"
#include "hubcap/timefmt.h"
#include "hubcap/worker.h"

#define VERSION "0.1.0"

struct daemon {
    struct hc_config cfg;           /* in force: live changes land here (main thread) */
    struct hc_config run_cfg;       /* the copy the threads read; never written once
                                       they run */
    unsigned nworkers;
    struct hc_ring *rings;
    struct hc_ring **ring_ptrs;
    struct hc_wake **wake_ptrs;
    struct hc_worker *workers;
    struct hc_front front;
    int front_done;
    int alarm_fd, lock_fd;
    struct hc_push *push;
    struct hc_notify *notify;
    struct hc_settings *settings;   /* live changes, kept across restarts */
    struct hc_ctl ctl;
    char ctl_error[512];            /* the last refusal's text (main thread) */
    uint64_t started_ms;
    char ready_path[4200];
    uint64_t rate_reports, rate_ms; /* the last second's sample */
    double reports_per_s;
};

static void usage(FILE *f)
{
    fprintf(f,
"usage: hubcapd [--config FILE] [--data-dir DIR] [--set SECTION.KEY=VALUE]...\n"
"\n"
"Ingest vehicle position reports (msgpack over TCP and UDP), detect parked\n"
"vehicles that are moved or towed, keep state in LMDB under the data\n"
"directory, and write every alarm to <data_dir>/alarms.log.\n"
"\n"
"  -c, --config FILE      read settings from an INI file\n"
"  -d, --data-dir DIR     same as --set core.data_dir=DIR\n"
"  -s, --set KEY=VALUE    override one setting (repeatable, applied in order\n"
"                         after the file), e.g. --set msgpack.port=0\n"
"  -h, --help             this text and every setting\n"
"  -V, --version          print the version\n"
"      --config-reference print docs/CONFIG.md (the settings reference)\n"
"\n"
"Stop with SIGTERM or Ctrl-C: hubcapd stops accepting, drains its queues,\n"
"commits and exits 0.  Once running it writes <data_dir>/hubcapd.json with\n"
"its pid, bound ports and control socket.\n"
"\n"
"Settings (section.key, default: meaning) — full reference: docs/CONFIG.md\n");
    hc_config_help(f);
}

static int parse_args(struct daemon *d, int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, 0, 'c' },
        { "data-dir", required_argument, 0, 'd' },
        { "set", required_argument, 0, 's' },
        { "help", no_argument, 0, 'h' },
        { "version", no_argument, 0, 'V' },
        { "config-reference", no_argument, 0, 'R' },
        { 0, 0, 0, 0 },
    };
    char err[512];
    const char *file = NULL;
    int c;
    hc_config_defaults(&d->cfg);
    /* First pass: the file; second: --data-dir and --set in order. */
    while ((c = getopt_long(argc, argv, "c:d:s:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': file = optarg; break;
        case 'd': case 's': break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("hubcapd " VERSION "\n"); exit(0);
        case 'R': hc_config_markdown(stdout); exit(0);
        default: fprintf(stderr, "Try 'hubcapd --help'.\n"); exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hubcapd: unexpected argument '%s'\nTry 'hubcapd --help'.\n", argv[optind]);
        exit(2);
    }
    if (file && hc_config_load(&d->cfg, file, err, sizeof(err)) < 0) {
        fprintf(stderr, "hubcapd: %s\n", err);
        exit(2);
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:d:s:hV", opts, NULL)) != -1) {
        char buf[4200];
        const char *set = NULL;
        if (c == 'd') {
            snprintf(buf, sizeof(buf), "core.data_dir=%s", optarg);
            set = buf;
        } else if (c == 's') {
            set = optarg;
        }
        if (set && hc_config_set(&d->cfg, set, err, sizeof(err)) < 0) {
            fprintf(stderr, "hubcapd: --set %s: %s\n", set, err);
            exit(2);
        }
    }
    if (hc_config_finish(&d->cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "hubcapd: %s\n", err);
        exit(2);
    }
    return 0;
}

static int mkdirs(const char *path)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0700) < 0 && errno != EEXIST)
                return -errno;
            *s = '/';
        }
    if (mkdir(p, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* ---- control ------------------------------------------------------------ */

static json_t *stats_json(struct daemon *d)
{
    struct hc_front_stats fs;
    hc_front_read_stats(&d->front, &fs);
    json_t *workers = json_array();
    uint64_t reports = 0, alarms = 0, vehicles = 0, persisted = 0, stale = 0, rejected = 0;
    for (unsigned i = 0; i < d->nworkers; i++) {
        struct hc_worker_stats ws;
        hc_worker_read_stats(&d->workers[i], &ws);
        reports += ws.reports;
        alarms += ws.alarms;
        vehicles += ws.vehicles;
        persisted += ws.persisted;
        stale += ws.stale;
        rejected += ws.rejected;
        json_array_append_new(workers, json_pack(
            "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
            "reports", (json_int_t)ws.reports, "alarms", (json_int_t)ws.alarms,
            "vehicles", (json_int_t)ws.vehicles, "persisted", (json_int_t)ws.persisted,
            "commits", (json_int_t)ws.commits, "commit_errors", (json_int_t)ws.commit_errors,
            "stale", (json_int_t)ws.stale, "rejected", (json_int_t)ws.rejected,
            "ring_fill", (json_int_t)hc_ring_count(&d->rings[i]),
            "ring_size", (json_int_t)d->run_cfg.ring_size,
            "dirty", (json_int_t)ws.dirty, "passes", (json_int_t)ws.passes,
            "rolled", (json_int_t)ws.rolled));
    }
    json_t *front = json_object();
#define F(name) json_object_set_new(front, #name, json_integer((json_int_t)fs.name))
    F(accepted); F(refused); F(closed); F(malformed); F(oversized); F(frames); F(reports);
    F(rejected); F(bytes); F(paused); F(udp_datagrams); F(udp_dropped); F(udp_malformed);
    F(lost);
#undef F
    for (int k = 0; k < HC_FRONT_PROTOS; k++) {
        const struct hc_front_proto_stats *p = &fs.proto[k];
        json_object_set_new(front, hc_front_proto_ops[k]->name, json_pack(
            "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
            "accepted", (json_int_t)p->accepted, "frames", (json_int_t)p->frames,
            "reports", (json_int_t)p->reports, "skipped", (json_int_t)p->skipped,
            "bad_checksum", (json_int_t)p->bad_checksum, "bad_length",
            (json_int_t)p->bad_length, "unsupported", (json_int_t)p->unsupported,
            "garbage_bytes", (json_int_t)p->garbage, "closed_idle", (json_int_t)p->closed_idle,
            "closed_protocol", (json_int_t)p->closed_protocol));
    }
    struct hc_notify_stats ns;
    struct hc_push_stats ps;
    hc_notify_stats(d->notify, &ns);
    if (hc_push_stats(d->push, &ps) < 0)
        memset(&ps, 0, sizeof(ps));
    json_t *notify = json_object(), *push = json_object();
#define N(name) json_object_set_new(notify, #name, json_integer((json_int_t)ns.name))
    N(raised); N(rounds); N(messages); N(acks); N(firing); N(processing); N(done); N(errors);
#undef N
#define P(name) json_object_set_new(push, #name, json_integer((json_int_t)ps.name))
    P(submitted); P(delivered); P(attempts); P(retries); P(dead); P(replayed); P(cancelled);
    P(pending); P(dead_now); P(inflight); P(disabled);
#undef P
    json_object_set_new(push, "latency_p50_ms", json_real(ps.latency_p50_ms));
    json_object_set_new(push, "latency_p99_ms", json_real(ps.latency_p99_ms));
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o}",
                     "reports", (json_int_t)reports, "alarms", (json_int_t)alarms,
                     "vehicles", (json_int_t)vehicles, "persisted", (json_int_t)persisted,
                     "stale", (json_int_t)stale, "rejected", (json_int_t)(rejected + fs.rejected),
                     "front", front, "workers", workers, "notify", notify, "push", push);
}

static json_t *alarm_json(const struct hc_notify_alarm *a)
{
    char raised[HC_TIME_LEN], updated[HC_TIME_LEN], next[HC_TIME_LEN];
    json_t *body = json_loadb(a->body, a->len, 0, NULL);
    json_t *data = json_object_get(body, "data");
    json_t *j = json_pack("{s:s, s:s, s:i, s:i, s:s, s:s, s:s?}", "id", a->id,
                          "state", hc_alarm_state_name(a->state), "round", (int)a->round,
                          "sent", (int)a->sent, "raised", hc_time_format(a->raised_ms, 1, raised),
                          "updated", hc_time_format(a->updated_ms, 1, updated),
                          "next", a->next_ms ? hc_time_format(a->next_ms, 1, next) : NULL);
    if (j && json_is_object(data)) {        /* what it is about, as raised */
        json_object_set(j, "vid", json_object_get(data, "vid"));
        json_object_set(j, "maker", json_object_get(data, "maker"));
        json_object_set(j, "alarm", body);
    }
    json_decref(body);
    return j;
}

struct alarm_list {
    json_t *arr;
    int state;                      /* -1: any */
};

static int list_one(void *ctx, const struct hc_notify_alarm *a)
{
    struct alarm_list *l = ctx;
    if (l->state < 0 || l->state == a->state)
        json_array_append_new(l->arr, alarm_json(a));
    return 0;
}

static int show_one(void *ctx, const struct hc_notify_alarm *a)
{
    *(json_t **)ctx = alarm_json(a);
    return 0;
}

/* "alarm.list" [state], "alarm.show" id, "alarm.ack" id state. */
static json_t *alarm_command(struct daemon *d, const char *cmd, json_t *req, const char **error)
{
    const char *id = json_string_value(json_object_get(req, "id"));
    const char *st = json_string_value(json_object_get(req, "state"));
    int state = st ? hc_alarm_state_parse(st) : -1;
    if (st && state < 0) {
        *error = "state must be firing, processing or done";
        return NULL;
    }
    if (strcmp(cmd, "alarm.list") == 0) {
        struct alarm_list l = { json_array(), state };
        if (hc_notify_list(d->notify, list_one, &l) < 0) {
            json_decref(l.arr);
            *error = "cannot read the alarms (see the daemon's log)";
            return NULL;
        }
        return json_pack("{s:o}", "alarms", l.arr);
    }
    if (!id) {
        *error = "missing \"id\": the alarm id, e.g. \"0-17\"";
        return NULL;
    }
    if (strcmp(cmd, "alarm.show") == 0) {
        json_t *a = NULL;
        if (hc_notify_get(d->notify, id, show_one, &a) < 0) {
            snprintf(d->ctl_error, sizeof(d->ctl_error), "no alarm %.40s", id);
            *error = d->ctl_error;
            return NULL;
        }
        return json_pack("{s:o}", "alarm", a);
    }
    if (state != HC_ALARM_PROCESSING && state != HC_ALARM_DONE) {
        *error = "\"state\" must be processing or done";
        return NULL;
    }
    if (hc_notify_ack(d->notify, id, state, d->ctl_error, sizeof(d->ctl_error)) < 0) {
        *error = d->ctl_error;
        return NULL;
    }
    return json_pack("{s:s}", "message", d->ctl_error);
}

/* Assignments a control request makes: "<prefix>.<key>=<value>" for each
 * of keys the request has, kept as text for the settings store. */
struct assigns {
    char text[8][700];
    const char *v[8];
    size_t n;
};

/* Apply to c each member of req named in keys (a string, or a whole number
 * written out), through the configuration's own parser.  0, or -1 with the
 * parser's message in d->ctl_error. */
static int assign_from(struct daemon *d, struct hc_config *c, json_t *req, const char *prefix,
                       const char *const *keys, size_t n_keys, struct assigns *a)
{
    a->n = 0;
    for (size_t i = 0; i < n_keys && a->n < 8; i++) {
        json_t *x = json_object_get(req, keys[i]);
        char num[32];
        if (!x)
            continue;
        if (json_is_integer(x))
            snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(x));
        snprintf(a->text[a->n], sizeof(a->text[0]), "%s.%s=%s", prefix, keys[i],
                 json_is_string(x) ? json_string_value(x)
                 : json_is_integer(x) ? num : "(not a string or a number)");
        a->v[a->n] = a->text[a->n];
        if (hc_config_set(c, a->v[a->n++], d->ctl_error, sizeof(d->ctl_error)) < 0)
            return -1;
    }
    return 0;
}

/* "alarm.settings" [repeat_interval] [snooze]: durations as in the
 * configuration ("10m", "1h30m"), checked by the same code. */
static json_t *alarm_settings(struct daemon *d, json_t *req, const char **error)
{
    static const char *const keys[2] = { "repeat_interval", "snooze" };
    struct hc_config *c = malloc(sizeof(*c));
    uint32_t v[2] = { 0, 0 };
    if (!c) {
        *error = "out of memory";
        return NULL;
    }
    memcpy(c, &d->cfg, sizeof(*c));
    struct assigns a;
    if (assign_from(d, c, req, "alarm", keys, 2, &a) < 0) {
        free(c);
        *error = d->ctl_error;
        return NULL;
    }
    if (a.n && hc_settings_save(d->settings, a.v, a.n) < 0) {
        free(c);
        *error = "cannot keep the settings (see the daemon's log); nothing changed";
        return NULL;
    }
    if (json_object_get(req, keys[0]))
        v[0] = c->repeat_interval_ms;
    if (json_object_get(req, keys[1]))
        v[1] = c->snooze_ms;
    memcpy(&d->cfg, c, sizeof(*c));
    free(c);
    if ((v[0] || v[1]) &&
        hc_notify_settings(d->notify, v[0], v[1], d->ctl_error, sizeof(d->ctl_error)) < 0) {
        *error = d->ctl_error;
        return NULL;
    }
    hc_notify_get_settings(d->notify, &v[0], &v[1]);
    return json_pack("{s:I, s:I}", "repeat_interval_ms", (json_int_t)v[0], "snooze_ms",
                     (json_int_t)v[1]);
}

/* The configured channels as push endpoints and notifier channels. */
static void channels_of(const struct hc_config *c, struct hc_push_endpoint *eps,
                        struct hc_notify_channel *chans)
{
    memset(eps, 0, HC_CONFIG_CHANNELS_MAX * sizeof(*eps));
    for (unsigned i = 0; i < c->n_channels; i++) {
        const struct hc_config_channel *ch = &c->channels[i];
        snprintf(eps[i].name, sizeof(eps[i].name), "%s", ch->name);
        snprintf(eps[i].url, sizeof(eps[i].url), "%s", ch->url);
        /* The configuration checked both secrets already. */
        eps[i].n_secrets = hc_webhook_secret_parse(ch->secret, &eps[i].secrets[0]) == 0;
        if (ch->secret_next[0] &&
            hc_webhook_secret_parse(ch->secret_next, &eps[i].secrets[eps[i].n_secrets]) == 0)
            eps[i].n_secrets++;
        chans[i] = (struct hc_notify_channel){ eps[i].name, ch->delay_ms };
    }
}

/* The channels as the control socket shows them: never their secrets. */
static json_t *channel_list(struct daemon *d)
{
    json_t *arr = json_array();
    for (unsigned i = 0; i < d->cfg.n_channels; i++) {
        const struct hc_config_channel *ch = &d->cfg.channels[i];
        json_array_append_new(arr, json_pack(
            "{s:s, s:s, s:i, s:I, s:b, s:b}", "name", ch->name, "url", ch->url,
            "priority", (int)ch->priority, "delay_ms", (json_int_t)ch->delay_ms,
            "rotating", ch->secret_next[0] != 0,
            "disabled", hc_push_endpoint_disabled(d->push, ch->name)));
    }
    return json_pack("{s:o}", "channels", arr);
}

/* "channel.add" {name, url, secret, [secret_next, delay, priority]}: a new
 * channel; "channel.set" {name, ...}: change some keys of one;
 * "channel.remove" {name}.  Checked by
 * the configuration's own code on a copy (a new channel needs url and
 * secret), kept in the settings store, then applied: push endpoints before
 * the notifier's list on the way in, after it on the way out. */
static json_t *channel_command(struct daemon *d, const char *cmd, json_t *req,
                               const char **error)
{
    static const char *const keys[] = { "url", "secret", "secret_next", "delay", "priority" };
    const char *name = json_string_value(json_object_get(req, "name"));
    struct hc_config *c = malloc(sizeof(*c));
    char prefix[64];
    struct assigns a = { .n = 0 };
    int removing = strcmp(cmd, "channel.remove") == 0, rc = 0;
    int adding = strcmp(cmd, "channel.add") == 0, exists = 0;
    *error = NULL;
    for (unsigned i = 0; name && i < d->cfg.n_channels; i++)
        exists |= strcmp(d->cfg.channels[i].name, name) == 0;
    if (!c) {
        *error = "out of memory";
        return NULL;
    }
    memcpy(c, &d->cfg, sizeof(*c));
    if (!name) {
        *error = "missing \"name\": the channel's name";
    } else if (removing) {
        if (hc_config_remove_channel(c, name) < 0) {
            snprintf(d->ctl_error, sizeof(d->ctl_error), "no channel %.40s", name);
            *error = d->ctl_error;
        }
    } else if (!exists && !adding) {
        snprintf(d->ctl_error, sizeof(d->ctl_error), "no channel %.40s (channel.add makes a new"
                 " one)", name);
        *error = d->ctl_error;
    } else if (exists && adding) {
        snprintf(d->ctl_error, sizeof(d->ctl_error), "channel %.40s exists (channel.set changes"
                 " it)", name);
        *error = d->ctl_error;
    } else {
        snprintf(prefix, sizeof(prefix), "channel.%.40s", name);
        if (assign_from(d, c, req, prefix, keys, sizeof(keys) / sizeof(keys[0]), &a) < 0)
            *error = d->ctl_error;
        else if (a.n == 0)
            *error = "nothing to set: give url, secret, secret_next, delay or priority";
    }
    if (!*error && hc_config_finish(c, d->ctl_error, sizeof(d->ctl_error)) < 0)
        *error = d->ctl_error;
    struct hc_push_endpoint eps[HC_CONFIG_CHANNELS_MAX];
    struct hc_notify_channel chans[HC_CONFIG_CHANNELS_MAX];
    if (!*error)
        channels_of(c, eps, chans);
    /* A new name may find no endpoint slot left: find out before anything
     * is kept, so a refusal changes nothing. */
    for (unsigned i = 0; !*error && adding && i < c->n_channels; i++)
        if (strcmp(eps[i].name, name) == 0 && (rc = hc_push_endpoint_set(d->push, &eps[i])) < 0) {
            if (rc == -ENOSPC)
                snprintf(d->ctl_error, sizeof(d->ctl_error), "at most %d channel names in"
                         " one run (removed ones count until a restart); nothing changed",
                         HC_CONFIG_CHANNELS_MAX);
            else
                snprintf(d->ctl_error, sizeof(d->ctl_error), "%s; nothing changed",
                         hc_strerror(rc));
            *error = d->ctl_error;
        }
    if (!*error) {
        rc = removing ? hc_settings_remove_channel(d->settings, name)
                      : hc_settings_save(d->settings, a.v, a.n);
        if (rc < 0) {
            *error = "cannot keep the change (see the daemon's log); nothing changed";
            if (adding)
                hc_push_endpoint_remove(d->push, name);
        }
    }
    if (!*error) {
        for (unsigned i = 0; rc == 0 && !removing && !adding && i < c->n_channels; i++)
            if (strcmp(eps[i].name, name) == 0)
                rc = hc_push_endpoint_set(d->push, &eps[i]);
        if (rc == 0)
            rc = hc_notify_channels(d->notify, chans, c->n_channels, d->ctl_error,
                                    sizeof(d->ctl_error));
        if (rc == 0 && removing)
            rc = hc_push_endpoint_remove(d->push, name);
        if (rc < 0) {
            *error = d->ctl_error;
            hc_error("main", "channel %s: %s (kept for the next start)", name, d->ctl_error);
        }
        memcpy(&d->cfg, c, sizeof(*c));
    }
    OPENSSL_cleanse(eps, sizeof(eps));
    OPENSSL_cleanse(&a, sizeof(a));     /* they may hold a secret */
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
    if (*error)
        return NULL;
    hc_info("main", "channel %s %s", name, removing ? "removed" : "set");
    return channel_list(d);
}

static int dead_one(void *ctx, const struct hc_push_entry *e)
{
    char created[HC_TIME_LEN];
    json_t *body = json_loadb(e->body, e->len, 0, NULL);
    json_array_append_new(ctx, json_pack(
        "{s:I, s:s, s:s, s:s, s:i, s:s, s:s, s:o}", "seq", (json_int_t)e->seq, "id", e->id,
        "topic", e->topic, "channel", e->endpoint, "attempts", (int)e->attempts,
        "created", hc_time_format(e->created_ms, 1, created), "last_error", e->last_error,
        "body", body ? body : json_stringn(e->body, e->len)));
    return 0;
}

/* "deadletter.list"; "deadletter.replay" [seq] (none: all of them). */
static json_t *deadletter_command(struct daemon *d, const char *cmd, json_t *req,
                                  const char **error)
{
    if (strcmp(cmd, "deadletter.list") == 0) {
        json_t *arr = json_array();
        if (hc_push_list(d->push, true, dead_one, arr) < 0) {
            json_decref(arr);
            *error = "cannot read the dead letters (see the daemon's log)";
            return NULL;
        }
        return json_pack("{s:o}", "deadletters", arr);
    }
    json_t *seq = json_object_get(req, "seq");
    if (seq && (!json_is_integer(seq) || json_integer_value(seq) < 1)) {
        *error = "\"seq\" must be a dead letter's number (deadletter.list shows them)";
        return NULL;
    }
    int n = hc_push_replay(d->push, seq ? (uint64_t)json_integer_value(seq) : 0);
    if (n < 0) {
        *error = n == -ENOENT ? "no such dead letter (deadletter.list shows them)"
                              : "cannot replay (see the daemon's log)";
        return NULL;
    }
    return json_pack("{s:i}", "replayed", n);
}

/* ---- thresholds and vehicles --------------------------------------------- */

#define WORKER_TIMEOUT_MS 5000

/* Ask worker i what proto asks; 0 with *out the answered request (free it
 * with hc_wreq_free), or -1 with the reason in d->ctl_error. */
static int ask_worker(struct daemon *d, unsigned i, const struct hc_wreq *proto,
                      struct hc_wreq **out)
{
    struct hc_wreq *r = hc_wreq_new(proto->kind, proto->key);
    *out = NULL;
    if (!r) {
        snprintf(d->ctl_error, sizeof(d->ctl_error), "out of memory");
        return -1;
    }
    /* The whole question, field for field (a field copied by name is a
     * field a new request kind can forget). */
    memcpy(r, proto, offsetof(struct hc_wreq, rc));
    int c = hc_worker_call(&d->workers[i], r, WORKER_TIMEOUT_MS);
    if (c == -ETIMEDOUT) {          /* not carried out; the worker frees it */
        snprintf(d->ctl_error, sizeof(d->ctl_error), "worker %u did not take the request"
                 " within %d s; it may be stuck committing (see the daemon's log)", i,
                 WORKER_TIMEOUT_MS / 1000);
        return -1;
    }
    if (c < 0) {
        hc_wreq_free(r);
        snprintf(d->ctl_error, sizeof(d->ctl_error), "worker %u is busy with other control"
                 " requests; try again", i);
        return -1;
    }
    *out = r;
    if (r->rc < 0 && r->rc != -ENOENT) {
        snprintf(d->ctl_error, sizeof(d->ctl_error), "worker %u: %s", i, hc_strerror(r->rc));
        return -1;
    }
    return 0;
}

/* Ask every worker (all == 1) or the owner of proto->key; 0, or -1 with
 * the reason in d->ctl_error (at the first worker that fails).  The
 * answered requests go to out[] (NULL when not asked); free them with
 * free_answers. */
static int ask_workers(struct daemon *d, const struct hc_wreq *proto, int all,
                       struct hc_wreq **out)
{
    unsigned first = 0, last = d->nworkers;
    int rc = 0;
    if (!all) {
        first = (unsigned)(hc_hash(proto->key, strlen(proto->key)) % d->nworkers);
        last = first + 1;
    }
    for (unsigned i = 0; i < d->nworkers; i++)
        out[i] = NULL;
    for (unsigned i = first; i < last && rc == 0; i++)
        rc = ask_worker(d, i, proto, &out[i]);
    return rc;
}

static void free_answers(struct daemon *d, struct hc_wreq **out)
{
    for (unsigned i = 0; i < d->nworkers; i++)
        hc_wreq_free(out[i]);
}

/* ---- per-maker settings: thresholds and rules ------------------------- */

/* What differs between the two per-maker tables; everything else (request
 * shapes, checking on a copy, all-or-nothing across workers, keeping the
 * change, unset markers) is shared. */
struct per_maker {
    const char *noun;           /* "threshold" */
    const char *section;        /* "thresholds": config section, map key */
    const char *value_key;      /* "meters": the value in a one-maker request */
    int wreq_set, wreq_unset;
    int (*remove)(struct hc_config *c, const char *maker);
};

static const struct per_maker thresholds_pm = {
    "threshold", "thresholds", "meters", HC_WREQ_THRESHOLD_SET, HC_WREQ_THRESHOLD_UNSET,
    hc_config_remove_threshold,
};
static const struct per_maker rules_pm = {
    "rule", "rules", "rule", HC_WREQ_RULE_SET, HC_WREQ_RULE_UNSET, hc_config_remove_rule,
};

static const struct hc_config_threshold *own_threshold(const struct hc_config *c,
                                                       const char *maker)
{
    for (unsigned i = 0; i < c->n_thresholds; i++)
        if (strcmp(c->thresholds[i].maker, maker) == 0)
            return &c->thresholds[i];
    return NULL;
}

static const struct hc_config_rule *own_rule(const struct hc_config *c, const char *maker)
{
    for (unsigned i = 0; i < c->n_rules; i++)
        if (strcmp(c->rules[i].maker, maker) == 0)
            return &c->rules[i];
    return NULL;
}

/* Whether maker has its own entry in c; if so, and req is not NULL, the
 * worker request that applies it. */
static int own_entry(const struct per_maker *pm, const struct hc_config *c, const char *maker,
                     struct hc_wreq *req)
{
    const struct hc_config_threshold *t = pm == &thresholds_pm ? own_threshold(c, maker) : NULL;
    const struct hc_config_rule *r = pm == &rules_pm ? own_rule(c, maker) : NULL;
    if (req && t)
        req->meters = t->meters;
    if (req && r)
        req->rule = (int)r->rule;
    return t || r;
}

/* "live" when kept in the settings store, else "config". */
static const char *entry_source(struct daemon *d, const struct per_maker *pm, const char *maker)
{
    char key[64], val[32];
    snprintf(key, sizeof(key), "%s.%s", pm->section, maker);
    return hc_settings_get(d->settings, key, val, sizeof(val)) == 0 && strcmp(val, "removed")
           ? "live" : "config";
}

static json_t *entry_json(struct daemon *d, const struct per_maker *pm, const char *maker)
{
    const char *source = own_entry(pm, &d->cfg, maker, NULL) ? entry_source(d, pm, maker)
                                                                : "default";
    if (pm == &rules_pm) {
        const struct hc_config_rule *r = own_rule(&d->cfg, maker);
        return json_pack("{s:s, s:s, s:s}", "maker", maker, "rule",
                         hc_rule_name((enum hc_rule)(r ? r->rule : d->cfg.rule)), "source",
                         source);
    }
    const struct hc_config_threshold *t = own_threshold(&d->cfg, maker);
    return json_pack("{s:s, s:f, s:s}", "maker", maker, "meters",
                     t ? t->meters : d->cfg.default_threshold_m, "source", source);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static json_t *entry_list(struct daemon *d, const struct per_maker *pm)
{
    const char *names[HC_CONFIG_THRESHOLDS_MAX];
    unsigned n = pm == &rules_pm ? d->cfg.n_rules : d->cfg.n_thresholds;
    for (unsigned i = 0; i < n; i++)
        names[i] = pm == &rules_pm ? d->cfg.rules[i].maker : d->cfg.thresholds[i].maker;
    qsort(names, n, sizeof(names[0]), by_name);
    json_t *arr = json_array();
    for (unsigned i = 0; i < n; i++)
        json_array_append_new(arr, entry_json(d, pm, names[i]));
    if (pm == &rules_pm)
        return json_pack("{s:s, s:o}", "default", hc_rule_name((enum hc_rule)d->cfg.rule),
                         "rules", arr);
    return json_pack("{s:f, s:o}", "default_m", d->cfg.default_threshold_m, "thresholds", arr);
}

/* Give maker in every worker its entry of c, or the default when c has
 * none.  0, or -1 with d->ctl_error. */
static int workers_entry(struct daemon *d, const struct per_maker *pm, const char *maker,
                         const struct hc_config *c)
{
    struct hc_wreq proto = { 0 }, *out[HC_CONFIG_WORKERS_MAX];
    proto.kind = own_entry(pm, c, maker, &proto) ? pm->wreq_set : pm->wreq_unset;
    snprintf(proto.key, sizeof(proto.key), "%s", maker);
    int rc = ask_workers(d, &proto, 1, out);
    free_answers(d, out);
    return rc;
}

/* Put makers[0..n) back in every worker as in d->cfg (still the old
 * configuration), after a change failed part way. */
static void workers_restore(struct daemon *d, const struct per_maker *pm,
                            const char *const *makers, size_t n)
{
    char keep[sizeof(d->ctl_error)];
    memcpy(keep, d->ctl_error, sizeof(keep));   /* the first failure is the one to tell */
    for (size_t i = 0; i < n; i++)
        if (workers_entry(d, pm, makers[i], &d->cfg) < 0)
            hc_error("main", "%s %s: could not be put back in every worker (%s); a"
                     " restart restores it", pm->noun, makers[i], d->ctl_error);
    memcpy(d->ctl_error, keep, sizeof(keep));
}

/* A maker name as the configuration keeps it: 1 to 32 bytes, no control
 * characters, no '=', no space at either end (hc_config_set trims). */
static int maker_name_ok(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > HC_MAKER_MAX || m[0] == ' ' || m[n - 1] == ' ' || strchr(m, '='))
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)m[i] < 0x20 || m[i] == 0x7f)
            return 0;
    return 1;
}

/* "threshold.set" {maker, meters} or {thresholds: {maker: meters, ...}},
 * and "rule.set" {maker, rule} or {rules: {maker: rule, ...}}: checked by
 * the configuration's parser on a copy; applied by every worker; then
 * kept.  All of it or nothing: a worker that fails puts the makers
 * already changed back. */
static json_t *entry_set(struct daemon *d, const struct per_maker *pm, json_t *req,
                         const char **error)
{
    json_t *many = json_object_get(req, pm->section), *one = NULL;
    const char *maker = json_string_value(json_object_get(req, "maker"));
    if (!many && maker) {
        json_t *v = json_object_get(req, pm->value_key);
        one = json_object();
        json_object_set(one, maker, v ? v : json_null());
        many = one;
    }
    if (!json_is_object(many) || json_object_size(many) == 0 ||
        json_object_size(many) > HC_CONFIG_THRESHOLDS_MAX) {
        json_decref(one);
        snprintf(d->ctl_error, sizeof(d->ctl_error), "give \"maker\" and \"%s\", or \"%s\":"
                 " {maker: %s, ...}", pm->value_key, pm->section, pm->value_key);
        *error = d->ctl_error;
        return NULL;
    }
    size_t n = json_object_size(many);
    struct hc_config *c = malloc(sizeof(*c));
    char (*text)[96] = calloc(n, sizeof(*text));
    const char **v = calloc(n, sizeof(*v)), **names = calloc(n, sizeof(*names));
    const char *key;
    json_t *val;
    size_t k = 0, applied = 0;
    *error = NULL;
    if (!c || !text || !v || !names)
        *error = "out of memory";
    else
        memcpy(c, &d->cfg, sizeof(*c));
    json_object_foreach(many, key, val) {
        if (*error)
            break;
        char value[48];
        const char *str = json_string_value(val);
        if (json_is_number(val))
            snprintf(value, sizeof(value), "%.17g", json_number_value(val));
        else
            snprintf(value, sizeof(value), "%s", str && strlen(str) < sizeof(value) ? str
                     : pm == &rules_pm ? "(not a rule)" : "(not a number)");
        if (!maker_name_ok(key)) {
            snprintf(d->ctl_error, sizeof(d->ctl_error), "maker name '%.40s' must be 1 to %d"
                     " bytes, without control characters, '=' or spaces at either end", key,
                     HC_MAKER_MAX);
            *error = d->ctl_error;
            break;
        }
        snprintf(text[k], sizeof(text[k]), "%s.%s=%s", pm->section, key, value);
        v[k] = text[k];
        names[k] = key;
        if (hc_config_set(c, v[k++], d->ctl_error, sizeof(d->ctl_error)) < 0)
            *error = d->ctl_error;
    }
    if (!*error && hc_config_finish(c, d->ctl_error, sizeof(d->ctl_error)) < 0)
        *error = d->ctl_error;
    for (; !*error && applied < k; applied++) {
        int own = own_entry(pm, c, names[applied], NULL);
        if (!own || workers_entry(d, pm, names[applied], c) < 0) {
            if (!own)
                snprintf(d->ctl_error, sizeof(d->ctl_error), "%s %.40s: not taken", pm->noun,
                         names[applied]);
            *error = d->ctl_error;
            workers_restore(d, pm, names, applied + 1);
        }
    }
    if (!*error && hc_settings_save(d->settings, v, k) < 0) {
        snprintf(d->ctl_error, sizeof(d->ctl_error), "cannot keep the %s (see the daemon's"
                 " log); nothing changed", pm->section);
        *error = d->ctl_error;
        workers_restore(d, pm, names, k);
    }
    json_t *arr = NULL;
    if (!*error) {
        memcpy(&d->cfg, c, sizeof(*c));
        arr = json_array();
        for (size_t i = 0; i < k; i++) {
            hc_info("main", "%s of %s set to %s", pm->noun, names[i], strchr(v[i], '=') + 1);
            json_array_append_new(arr, entry_json(d, pm, names[i]));
        }
    }
    free(c);
    free(text);
    free(v);
    free(names);
    json_decref(one);
    return arr ? json_pack("{s:o}", pm->section, arr) : NULL;
}

/* threshold.list|get|set|unset and rule.list|get|set|unset. */
static json_t *entry_command(struct daemon *d, const struct per_maker *pm, const char *verb,
                             json_t *req, const char **error)
{
    if (strcmp(verb, "list") == 0)
        return entry_list(d, pm);
    if (strcmp(verb, "set") == 0)
        return entry_set(d, pm, req, error);
    const char *maker = json_string_value(json_object_get(req, "maker"));
    if (!maker || !*maker || strlen(maker) > HC_MAKER_MAX) {
        *error = "missing \"maker\": a maker name of 1 to 32 bytes";
        return NULL;
    }
    if (strcmp(verb, "get") == 0)
        return entry_json(d, pm, maker);
    if (!own_entry(pm, &d->cfg, maker, NULL)) {
        char dflt[32];
        if (pm == &rules_pm)
            snprintf(dflt, sizeof(dflt), "%s", hc_rule_name((enum hc_rule)d->cfg.rule));
        else
            snprintf(dflt, sizeof(dflt), "%g m", d->cfg.default_threshold_m);
        snprintf(d->ctl_error, sizeof(d->ctl_error), "%.40s has no %s of its own; it uses the"
                 " default, %s", maker, pm->noun, dflt);
        *error = d->ctl_error;
        return NULL;
    }
    struct hc_config *c = malloc(sizeof(*c));
    if (!c) {
        *error = "out of memory";
        return NULL;
    }
    memcpy(c, &d->cfg, sizeof(*c));
    pm->remove(c, maker);
    int rc = workers_entry(d, pm, maker, c);
    free(c);
    if (rc < 0) {
        *error = d->ctl_error;
        workers_restore(d, pm, &maker, 1);
        return NULL;
    }
    if (hc_settings_remove_maker(d->settings, pm->section, maker) < 0) {
        *error = "cannot keep the change (see the daemon's log); nothing changed";
        workers_restore(d, pm, &maker, 1);
        return NULL;
    }
    pm->remove(&d->cfg, maker);
    hc_info("main", "%s of %s unset: the default applies", pm->noun, maker);
    return entry_json(d, pm, maker);
}

static json_t *vehicle_json(struct daemon *d, const struct hc_vehicle_info *v, int full)
{
    char last[HC_TIME_LEN], parked[HC_TIME_LEN];
    unsigned shard = (unsigned)(hc_hash(v->vid, strlen(v->vid)) % d->nworkers);
    json_t *j = json_pack("{s:o, s:o, s:i, s:s, s:b, s:o}", "vid", hc_json_vid(v->vid),
                          "maker", hc_json_maker(v->maker), "shard", (int)shard,
                          "alarm", v->alarm_on ? "on" : "off", "alarmed", v->alarmed,
                          "last_ts", v->last_ts < 0 ? json_null()
                                     : json_string(hc_time_format(v->last_ts, 1, last)));
    if (!j || !full)
        return j ? j : json_object();
    json_object_set_new(j, "parked", v->parked_ts < 0 ? json_null() : json_pack(
        "{s:f, s:f, s:s}", "lat", v->parked_lat, "lon", v->parked_lon, "ts",
        hc_time_format(v->parked_ts, 1, parked)));
    json_object_set_new(j, "window", json_pack("{s:i, s:i, s:i, s:f}", "len",
                        (int)v->window_len, "size", (int)v->window_size, "exceeding_pairs",
                        (int)v->pairs, "max_distance_m", v->max_distance_m));
    json_object_set_new(j, "threshold_m", json_real(v->threshold_m));
    return j;
}

/* "vehicle.show" {vid}, "vehicle.alarm" {vid, on}, "vehicle.list"
 * [alarming] [alarm_off] [limit]: asked of the owning worker(s). */
static json_t *vehicle_command(struct daemon *d, const char *cmd, json_t *req,
                               const char **error)
{
    struct hc_wreq proto = { .limit = 1000 };
    struct hc_wreq *out[HC_CONFIG_WORKERS_MAX];
    int list = strcmp(cmd, "vehicle.list") == 0;
    if (list) {
        json_t *lim = json_object_get(req, "limit");
        if (lim && (!json_is_integer(lim) || json_integer_value(lim) < 1 ||
                    json_integer_value(lim) > 100000)) {
            *error = "\"limit\" must be a whole number from 1 to 100000";
            return NULL;
        }
        proto.kind = HC_WREQ_VEHICLE_LIST;
        proto.limit = lim ? (size_t)json_integer_value(lim) : 1000;
        proto.alarming = json_is_true(json_object_get(req, "alarming"));
        proto.alarm_off = json_is_true(json_object_get(req, "alarm_off"));
    } else {
        const char *vid = json_string_value(json_object_get(req, "vid"));
        if (!vid || !*vid || strlen(vid) > HC_VID_MAX) {
            *error = "missing \"vid\": a vehicle id of 1 to 64 bytes";
            return NULL;
        }
        snprintf(proto.key, sizeof(proto.key), "%s", vid);
        proto.kind = HC_WREQ_VEHICLE_SHOW;
        if (strcmp(cmd, "vehicle.alarm") == 0) {
            json_t *on = json_object_get(req, "on");
            if (!json_is_boolean(on)) {
                *error = "\"on\" must be true or false";
                return NULL;
            }
            proto.kind = HC_WREQ_VEHICLE_ALARM;
            proto.on = json_is_true(on);
        }
    }
    json_t *ans = NULL;
    if (list) {
        /* One worker after another, each asked only for what is still
         * wanted (at the end 0: whether it has any more at all), so the
         * answer and the memory behind it stay within the limit. */
        json_t *arr = json_array();
        size_t limit = proto.limit;
        int truncated = 0;
        for (unsigned i = 0; i < d->nworkers && !truncated; i++) {
            struct hc_wreq *r;
            proto.limit = limit - json_array_size(arr);
            if (ask_worker(d, i, &proto, &r) < 0) {
                hc_wreq_free(r);
                json_decref(arr);
                *error = d->ctl_error;
                return NULL;
            }
            for (size_t k = 0; k < r->n_list; k++)
                json_array_append_new(arr, vehicle_json(d, &r->list[k], 0));
            truncated = r->truncated;
            hc_wreq_free(r);
        }
        return json_pack("{s:o, s:b}", "vehicles", arr, "truncated", truncated);
    }
    if (ask_workers(d, &proto, 0, out) < 0) {
        free_answers(d, out);
        *error = d->ctl_error;
        return NULL;
    }
    struct hc_wreq *r = out[hc_hash(proto.key, strlen(proto.key)) % d->nworkers];
    if (r->rc == -ENOENT) {
        snprintf(d->ctl_error, sizeof(d->ctl_error), "no vehicle %.64s: it has not"
                 " reported since this data dir was created", proto.key);
        *error = d->ctl_error;
    } else if (proto.kind == HC_WREQ_VEHICLE_ALARM) {
        hc_info("main", "vehicle %s: alarm switched %s", proto.key, proto.on ? "on" : "off");
        ans = json_pack("{s:o, s:s, s:b}", "vid", hc_json_vid(proto.key), "alarm",
                        proto.on ? "on" : "off", "created", r->created);
    } else {
        ans = json_pack("{s:o}", "vehicle", vehicle_json(d, &r->info, 1));
    }
    free_answers(d, out);
    return ans;
}

/* The configuration in force as an INI file, secrets left out. */
static json_t *config_show(struct daemon *d, const char **error)
{
    char *text = NULL, *line = NULL;
    size_t len = 0, cap = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        *error = "out of memory";
        return NULL;
    }
    hc_config_write(&d->cfg, f);
    fclose(f);
    json_t *ans = NULL;
    FILE *in = fmemopen(text, len, "r");
    FILE *out = open_memstream(&line, &cap);
    char buf[1024];
    while (in && out && fgets(buf, sizeof(buf), in)) {
        if (strncmp(buf, "secret =", 8) == 0 || strncmp(buf, "secret_next =", 13) == 0) {
            char *eq = strchr(buf, '=');
            int set = eq[1] == ' ' && eq[2] && eq[2] != '\n';
            fprintf(out, "%.*s= %s\n", (int)(eq - buf), buf, set ? "(set)" : "");
        } else {
            fputs(buf, out);
        }
    }
    if (in)
        fclose(in);
    if (out) {
        fclose(out);
        ans = json_pack("{s:s}", "ini", line);
    }
    OPENSSL_cleanse(text, len);
    free(text);
    free(line);
    if (!ans)
        *error = "out of memory";
    return ans;
}

/* Bytes on disk of dir/data.mdb, or -1. */
static json_int_t mdb_bytes(const char *dir)
{
    char path[HC_CONFIG_PATH_MAX + 64];
    struct stat st;
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    return stat(path, &st) == 0 ? (json_int_t)st.st_blocks * 512 : -1;
}

static json_t *lmdb_json(struct daemon *d)
{
    char dir[HC_CONFIG_PATH_MAX + 32];
    json_t *shards = json_array();
    for (unsigned i = 0; i < d->nworkers; i++) {
        snprintf(dir, sizeof(dir), "%s/shard-%u", d->cfg.data_dir, i);
        json_array_append_new(shards, json_pack("{s:s, s:I}", "path", dir, "bytes",
                                                mdb_bytes(dir)));
    }
    snprintf(dir, sizeof(dir), "%s/outbox", d->cfg.data_dir);
    json_int_t outbox = mdb_bytes(dir);
    snprintf(dir, sizeof(dir), "%s/settings", d->cfg.data_dir);
    return json_pack("{s:o, s:I, s:I}", "shards", shards, "outbox_bytes", outbox,
                     "settings_bytes", mdb_bytes(dir));
}

static json_t *on_command(void *ctx, const char *cmd, json_t *req, const char **error)
{
    struct daemon *d = ctx;
    static const struct per_maker *const tables[] = { &thresholds_pm, &rules_pm };
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(tables[i]->noun);
        const char *verb = cmd + n + 1;
        if (strncmp(cmd, tables[i]->noun, n) == 0 && cmd[n] == '.' &&
            (strcmp(verb, "list") == 0 || strcmp(verb, "get") == 0 ||
             strcmp(verb, "set") == 0 || strcmp(verb, "unset") == 0))
            return entry_command(d, tables[i], verb, req, error);
    }
    if (strcmp(cmd, "vehicle.show") == 0 || strcmp(cmd, "vehicle.alarm") == 0 ||
        strcmp(cmd, "vehicle.list") == 0)
        return vehicle_command(d, cmd, req, error);
    if (strcmp(cmd, "config.show") == 0)
        return config_show(d, error);
    if (strcmp(cmd, "deadletter.list") == 0 || strcmp(cmd, "deadletter.replay") == 0)
        return deadletter_command(d, cmd, req, error);
    if (strcmp(cmd, "alarm.settings") == 0)
        return alarm_settings(d, req, error);
    if (strcmp(cmd, "channel.list") == 0)
        return channel_list(d);
    if (strcmp(cmd, "channel.add") == 0 || strcmp(cmd, "channel.set") == 0 ||
        strcmp(cmd, "channel.remove") == 0)
        return channel_command(d, cmd, req, error);
    if (strcmp(cmd, "alarm.list") == 0 || strcmp(cmd, "alarm.show") == 0 ||
        strcmp(cmd, "alarm.ack") == 0)
        return alarm_command(d, cmd, req, error);
    if (strcmp(cmd, "stats") == 0) {
        json_t *st = stats_json(d);
        json_object_set_new(st, "reports_per_s", json_real(d->reports_per_s));
        json_object_set_new(st, "lmdb", lmdb_json(d));
        return json_pack("{s:o}", "stats", st);
    }
    if (strcmp(cmd, "status") == 0)
        return json_pack("{s:s, s:i, s:I, s:i, s:i, s:i, s:i, s:i, s:s, s:s}", "version",
                         VERSION, "pid", (int)getpid(),
                         "uptime_ms", (json_int_t)(hc_time_now_ms() - (int64_t)d->started_ms),
                         "workers", (int)d->nworkers, "msgpack_tcp", (int)d->front.tcp_port,
                         "msgpack_udp", (int)d->front.udp_port,
                         "jt808", (int)d->front.proto_port[HC_FRONT_JT808],
                         "teltonika", (int)d->front.proto_port[HC_FRONT_TELTONIKA],
                         "data_dir", d->cfg.data_dir, "control", d->ctl.path);
    snprintf(d->ctl_error, sizeof(d->ctl_error), "unknown command '%.40s' (try: status, stats,"
             " threshold.list|get|set|unset, rule.list|get|set|unset, vehicle.show|alarm|list, alarm.list|show|ack|"
             "settings, channel.list|add|set|remove, deadletter.list|replay, config.show; see"
             " docs/CONTROL.md)", cmd);
    *error = d->ctl_error;
    return NULL;
}

static int write_ready(struct daemon *d)
{
    char tmp[4300];
    snprintf(d->ready_path, sizeof(d->ready_path), "%s/hubcapd.json", d->cfg.data_dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", d->ready_path);
    json_t *j = json_pack("{s:i, s:i, s:i, s:i, s:i, s:s, s:s}", "pid", (int)getpid(),
                          "msgpack_tcp", (int)d->front.tcp_port,
                          "msgpack_udp", (int)d->front.udp_port,
                          "jt808", (int)d->front.proto_port[HC_FRONT_JT808],
                          "teltonika", (int)d->front.proto_port[HC_FRONT_TELTONIKA],
                          "control", d->ctl.path, "alarms_log", "alarms.log");
    int rc = json_dump_file(j, tmp, JSON_COMPACT);
    json_decref(j);
    if (rc == 0 && rename(tmp, d->ready_path) == 0)
        return 0;
    return -errno;
}

/* ---- main --------------------------------------------------------------- */

/* Every connection is a descriptor: lift the soft limit to the hard one
 * and say so if that is still short of msgpack.max_connections. */
static void raise_fd_limit(const struct hc_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)cfg->max_connections + 64)
        hc_warn("main", "open-file limit %llu is below msgpack.max_connections (%u) plus"
                " hubcapd's own files; raise it (ulimit -n) or lower max_connections",
                (unsigned long long)rl.rlim_cur, cfg->max_connections);
}

/* The outbox, its pusher and the notifier, with the channels of the
 * configuration; then every alarm a shard committed that the notifier has
 * not taken in yet (a crash between the two) is handed over, in order. */
static int open_delivery(struct daemon *d)
{
    const struct hc_config *c = &d->cfg;
    struct hc_push_endpoint eps[HC_CONFIG_CHANNELS_MAX];
    struct hc_notify_channel chans[HC_CONFIG_CHANNELS_MAX];
    char dir[HC_CONFIG_PATH_MAX + 16];
    channels_of(c, eps, chans);
    snprintf(dir, sizeof(dir), "%s/outbox", c->data_dir);
    struct hc_push_options po = {
        .dir = dir, .endpoints = eps, .n_endpoints = c->n_channels,
        .retry_ms = c->retry_ms, .n_retry = c->n_retry,
        .jitter = c->jitter_percent / 100.0,
        .connect_timeout_ms = c->connect_timeout_ms, .timeout_ms = c->timeout_ms,
        .ca_file = c->ca_file[0] ? c->ca_file : NULL,
    };
    int rc = hc_push_open(&d->push, &po);
    if (rc < 0)
        return rc;
    struct hc_notify_options no = {
        .push = d->push, .channels = chans, .n_channels = c->n_channels,
        .repeat_ms = c->repeat_interval_ms, .snooze_ms = c->snooze_ms, .shards = d->nworkers,
    };
    rc = hc_notify_open(&d->notify, &no);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < d->nworkers; i++) {
        struct hc_worker *w = &d->workers[i];
        /* After a kill -9 the shard's last commits may be in the page
         * cache only: make them durable before the notifier's mark moves
         * past them, or a power loss could reuse their ids. */
        rc = hc_store_sync(w->store);
        if (rc < 0) {
            hc_error("main", "syncing shard %u: %s", i, hc_strerror(rc));
            return rc;
        }
        w->handed_id = hc_notify_mark(d->notify, i);
        rc = hc_notify_raise_from(d->notify, i, w->store, &w->handed_id);
        if (rc < 0) {
            hc_error("main", "handing shard %u's alarms to the notifier: %s", i,
                     hc_strerror(rc));
            return rc;
        }
        if (rc > 0)
            hc_info("main", "shard %u: %d alarms committed before the last stop handed to"
                    " the notifier", i, rc);
        w->notify = d->notify;
    }
    if (c->n_channels == 0)
        hc_warn("main", "no alarm channels configured: alarms are kept, listed and"
                " acknowledged, and written to alarms.log, but sent nowhere (add a"
                " [channel.NAME] section, see docs/CONFIG.md)");
    else
        for (unsigned i = 0; i < c->n_channels; i++)
            hc_info("main", "alarm channel %u: %s -> %s (after %.1f s)", i + 1,
                    c->channels[i].name, c->channels[i].url,
                    (double)c->channels[i].delay_ms / 1000.0);
    return 0;
}

/* A vehicle lives in shard hc_hash(vid) % workers, so a data dir must be
 * opened with the worker count it was written with; <data_dir>/shards
 * records it.  (Resharding is not supported yet.) */
static int check_shards(struct daemon *d)
{
    char path[4200];
    unsigned have = 0;
    snprintf(path, sizeof(path), "%s/shards", d->cfg.data_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        int n = fscanf(f, "%u", &have);
        fclose(f);
        if (n != 1 || have == 0) {
            hc_error("main", "%s is damaged: it should hold the worker count", path);
            return -EINVAL;
        }
        if (have != d->nworkers) {
            hc_error("main", "%s was written by %u workers, but core.workers is %u: start with"
                     " --set core.workers=%u (moving vehicles between shards is not supported)",
                     d->cfg.data_dir, have, d->nworkers, have);
            return -EINVAL;
        }
        return 0;
    }
    f = fopen(path, "w");
    if (!f || fprintf(f, "%u\n", d->nworkers) < 0 || fclose(f) != 0) {
        hc_error("main", "cannot write %s: %s", path, strerror(errno));
        return -errno;
    }
    return 0;
}

static int start(struct daemon *d)
{
    char path[4200];
    int rc;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    rc = mkdirs(d->cfg.data_dir);
    if (rc < 0) {
        hc_error("main", "cannot create data dir %s: %s", d->cfg.data_dir, strerror(-rc));
        return rc;
    }
    snprintf(path, sizeof(path), "%s/hubcapd.lock", d->cfg.data_dir);
    d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (d->lock_fd < 0 || flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        hc_error("main", "%s is in use by another hubcapd (lock %s); stop it or pick another"
                 " --data-dir", d->cfg.data_dir, path);
        return -EBUSY;
    }
    /* Settings changed live in an earlier run win over file and --set. */
    rc = hc_settings_open(&d->settings, d->cfg.data_dir);
    if (rc < 0)
        return rc;
    char err[512];
    int kept = hc_settings_apply(d->settings, &d->cfg, err, sizeof(err));
    if (kept < 0 || hc_config_finish(&d->cfg, err, sizeof(err)) < 0) {
        hc_error("main", "a setting changed live in an earlier run is refused now: %s"
                 " (delete %s/settings to drop every live change)", err, d->cfg.data_dir);
        return -EINVAL;
    }
    if (kept > 0)
        hc_info("main", "%d settings changed live in earlier runs applied (they win over the"
                " configuration)", kept);
    memcpy(&d->run_cfg, &d->cfg, sizeof(d->run_cfg));
    snprintf(path, sizeof(path), "%s/alarms.log", d->cfg.data_dir);
    d->alarm_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (d->alarm_fd < 0) {
        hc_error("main", "cannot open %s: %s", path, strerror(errno));
        return -errno;
    }

    d->nworkers = d->cfg.workers;
    rc = check_shards(d);
    if (rc < 0)
        return rc;
    d->rings = calloc(d->nworkers, sizeof(*d->rings));
    d->ring_ptrs = calloc(d->nworkers, sizeof(*d->ring_ptrs));
    d->wake_ptrs = calloc(d->nworkers, sizeof(*d->wake_ptrs));
    d->workers = calloc(d->nworkers, sizeof(*d->workers));
    if (!d->rings || !d->ring_ptrs || !d->wake_ptrs || !d->workers)
        return -ENOMEM;
    uint64_t t0 = hc_time_mono_ns();
    for (unsigned i = 0; i < d->nworkers; i++) {
        rc = hc_ring_init(&d->rings[i], d->cfg.ring_size);
        if (rc == 0)
            rc = hc_worker_open(&d->workers[i], i, &d->run_cfg, &d->rings[i], d->alarm_fd,
                                &d->front_done);
        if (rc < 0)
            return rc;
        d->workers[i].cpu = ncpu > 1 ? (int)((1 + i) % (unsigned)ncpu) : -1;
        d->ring_ptrs[i] = &d->rings[i];
        d->wake_ptrs[i] = &d->workers[i].wake;
    }
    uint64_t restored = 0;
    for (unsigned i = 0; i < d->nworkers; i++)
        restored += d->workers[i].restored;
    rc = open_delivery(d);
    if (rc < 0)
        return rc;
    rc = hc_front_open(&d->front, &d->run_cfg, d->ring_ptrs, d->wake_ptrs, d->nworkers,
                       &d->front_done);
    if (rc < 0)
        return rc;
    d->front.cpu = ncpu > 1 ? 0 : -1;

    long group = -1;
    if (d->cfg.control_group[0]) {
        struct group *g = getgrnam(d->cfg.control_group);
        if (!g) {
            hc_error("main", "control.group: no group named '%s' on this system (getent group"
                     " lists them)", d->cfg.control_group);
            return -EINVAL;
        }
        group = (long)g->gr_gid;
    }
    if (d->cfg.control_socket[0])
        snprintf(path, sizeof(path), "%s", d->cfg.control_socket);
    else
        snprintf(path, sizeof(path), "%s/hubcapd.sock", d->cfg.data_dir);
    rc = hc_ctl_open(&d->ctl, path, group, on_command, d);
    if (rc < 0) {
        hc_error("main", "cannot open control socket %s: %s", path, strerror(-rc));
        return rc;
    }
    rc = hc_push_start(d->push);
    if (rc == 0)
        rc = hc_notify_start(d->notify);
    for (unsigned i = 0; i < d->nworkers && rc == 0; i++)
        rc = hc_worker_start(&d->workers[i]);
    if (rc == 0)
        rc = hc_front_start(&d->front);
    if (rc < 0)
        return rc;
    d->started_ms = (uint64_t)hc_time_now_ms();
    rc = write_ready(d);
    if (rc < 0)
        hc_warn("main", "cannot write %s: %s", d->ready_path, strerror(-rc));
    hc_info("main", "ready in %.3f s: %u workers, %llu vehicles restored, window %u, "
            "control socket %s", (double)(hc_time_mono_ns() - t0) / 1e9, d->nworkers,
            (unsigned long long)restored, d->cfg.window, d->ctl.path);
    return 0;
}

static void stop(struct daemon *d)
{
    hc_front_stop(&d->front);
    hc_front_join(&d->front);
    for (unsigned i = 0; i < d->nworkers; i++)
        hc_worker_join(&d->workers[i]);
    /* Alarms the notifier had not taken in are still in their shards, and
     * messages not yet delivered are in the outbox: both go on at the next
     * start. */
    hc_notify_stop(d->notify);
    hc_push_stop(d->push);
}

/* The counters the periodic log line reports, summed over threads. */
struct totals {
    uint64_t reports, alarms, vehicles, rejected, stale, udp_dropped, malformed, oversized;
};

static void read_totals(struct daemon *d, struct totals *t)
{
    struct hc_front_stats fs;
    memset(t, 0, sizeof(*t));
    hc_front_read_stats(&d->front, &fs);
    for (unsigned i = 0; i < d->nworkers; i++) {
        struct hc_worker_stats ws;
        hc_worker_read_stats(&d->workers[i], &ws);
        t->reports += ws.reports;
        t->alarms += ws.alarms;
        t->vehicles += ws.vehicles;
        t->rejected += ws.rejected;
        t->stale += ws.stale;
    }
    t->rejected += fs.rejected;
    t->udp_dropped = fs.udp_dropped;
    t->malformed = fs.malformed;
    t->oversized = fs.oversized;
}

/* One info line: what happened since the last one. */
static void log_interval(struct daemon *d, struct totals *last, unsigned secs)
{
    struct totals t;
    read_totals(d, &t);
    hc_info("main", "last %us: %.0f reports/s, %llu alarms, %llu vehicles, %llu rejected,"
            " %llu stale, %llu UDP datagrams dropped, %llu connections closed for bad frames",
            secs, (double)(t.reports - last->reports) / (secs ? secs : 1),
            (unsigned long long)(t.alarms - last->alarms), (unsigned long long)t.vehicles,
            (unsigned long long)(t.rejected - last->rejected),
            (unsigned long long)(t.stale - last->stale),
            (unsigned long long)(t.udp_dropped - last->udp_dropped),
            (unsigned long long)(t.malformed + t.oversized - last->malformed - last->oversized));
    *last = t;
}

static void report_totals(struct daemon *d)
{
    json_t *s = stats_json(d);
    char *txt = json_dumps(s, JSON_COMPACT);
    hc_info("main", "stopped cleanly: %s", txt ? txt : "");
    free(txt);
    json_decref(s);
}

int main(int argc, char **argv)
{
    static struct daemon d;
    int rc;
    d.alarm_fd = d.lock_fd = -1;
    d.ctl.fd = -1;
    parse_args(&d, argc, argv);
    hc_log_set_level(d.cfg.log_level);

    /* Signals arrive on a signalfd in the main loop; every thread started
     * from here inherits the blocked mask. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0) {
        hc_error("main", "signalfd: %s", strerror(errno));
        return 1;
    }
    raise_fd_limit(&d.cfg);

    rc = start(&d);
    if (rc < 0) {
        hc_error("main", "not started: %s", hc_strerror(rc));
        return 1;
    }
    struct totals last;
    read_totals(&d, &last);
    uint64_t interval_ms = (uint64_t)d.cfg.stats_interval_s * 1000;
    uint64_t next_stats = hc_time_mono_ns() / 1000000 + interval_ms;
    for (;;) {
        struct pollfd pfd[1 + 1 + HC_CTL_MAX_CLIENTS];
        pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
        int n = 1 + hc_ctl_pollfds(&d.ctl, pfd + 1);
        uint64_t now = hc_time_mono_ns() / 1000000;
        if (now >= d.rate_ms + 1000) {      /* reports/s over the last second */
            struct totals t;
            read_totals(&d, &t);
            if (d.rate_ms)
                d.reports_per_s = (double)(t.reports - d.rate_reports) * 1000.0 /
                                  (double)(now - d.rate_ms);
            d.rate_reports = t.reports;
            d.rate_ms = now;
        }
        uint64_t due = interval_ms && next_stats < d.rate_ms + 1000 ? next_stats
                                                                   : d.rate_ms + 1000;
        int timeout = now >= due ? 0 : (int)(due - now);
        if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR)
            break;
        if (interval_ms && hc_time_mono_ns() / 1000000 >= next_stats) {
            log_interval(&d, &last, d.cfg.stats_interval_s);
            next_stats += interval_ms;
        }
        if (pfd[0].revents) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == sizeof(si))
                hc_info("main", "%s: stopping (draining queues, final commit)",
                        si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
            break;
        }
        hc_ctl_serve(&d.ctl, pfd + 1, n - 1);
    }
    stop(&d);
    report_totals(&d);
    if (d.front.failed)
        hc_error("main", "stopped after a front failure (see above); exit status 1");
    unlink(d.ready_path);
    hc_ctl_close(&d.ctl);
    hc_front_close(&d.front);
    hc_notify_close(d.notify);
    hc_push_close(d.push);
    hc_settings_close(d.settings);
    for (unsigned i = 0; i < d.nworkers; i++) {
        hc_worker_close(&d.workers[i]);
        hc_ring_free(&d.rings[i]);
    }
    int failed = d.front.failed;
    free(d.workers);
    free(d.rings);
    free(d.ring_ptrs);
    free(d.wake_ptrs);
    close(d.alarm_fd);
    close(d.lock_fd);
    close(sfd);
    return failed ? 1 : 0;
}
