/*
 * config.h — hubcapd's settings: built-in defaults, then an INI file
 * (--config FILE), then --set section.key=value options, then derived
 * values and cross-checks (hc_config_finish).
 *
 * Every key is one row of a declarative table in config.c (section, key,
 * type, default text, offsetof, range, help); that one row drives the
 * defaults, parsing, validation, --help, docs/CONFIG.md and
 * hc_config_write, so no key is handled in two places.  Invariants: after
 * any successful call every field is within its documented range; a failed
 * load or set leaves the struct exactly as it was; strings are NUL-terminated
 * and zero-filled to the end of their array, so two configs built by the
 * same steps compare equal with memcmp; no message ever quotes a webhook
 * secret (messages end up in logs).
 *
 * Threading: the main thread fills a struct hc_config at start-up, before
 * other threads exist, and hands copies (or parts) to them.  Nothing here
 * keeps state between calls: separate structs may be used from separate
 * threads.
 */
#ifndef HUBCAP_CONFIG_H
#define HUBCAP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "hubcap/detect.h"
#include "hubcap/log.h"

#define HC_CONFIG_PATH_MAX       4096   /* bytes in data_dir, with the NUL */
#define HC_CONFIG_THRESHOLDS_MAX 256    /* makers with their own threshold */
#define HC_CONFIG_WORKERS_MAX    64
#define HC_CONFIG_CHANNELS_MAX   16     /* [channel.NAME] sections */
#define HC_CONFIG_RETRIES_MAX    16     /* entries of push.retry_schedule */
#define HC_CONFIG_CHANNEL_NAME_MAX 32   /* bytes of a channel name */

/* One [thresholds] entry: a maker's own drift threshold. */
struct hc_config_threshold {
    char maker[HC_MAKER_MAX + 1];       /* 1..32 bytes, NUL-terminated */
    double meters;                      /* finite, > 0, <= 20000000 */
};

/* One [rules] entry: the decision rule of a maker's vehicles. */
struct hc_config_rule {
    char maker[HC_MAKER_MAX + 1];       /* 1..32 bytes, NUL-terminated */
    unsigned rule;                      /* enum hc_rule */
};

/* One [channel.NAME]: an endpoint that receives alarms as Standard
 * Webhooks signed POSTs.  Keys written with --set channel.NAME.key=value. */
struct hc_config_channel {
    char name[HC_CONFIG_CHANNEL_NAME_MAX + 1]; /* 1..32 bytes of [A-Za-z0-9_-] */
    char url[513];                      /* http:// or https://, 1..512 bytes */
    char secret[128];                   /* whsec_...; finish requires it */
    char secret_next[128];              /* "" or whsec_...: a second signing
                                           secret during a rotation */
    unsigned delay_ms;                  /* escalation delay after the previous
                                           channel of a round, 0..30 days */
    unsigned priority;                  /* 1..1000: lower is notified first */
};

struct hc_config {
    /* [core] */
    char data_dir[HC_CONFIG_PATH_MAX];  /* LMDB shards, alarms.log, control socket */
    unsigned workers;                   /* 0: online cores - 1 (finish resolves) */
    int log_level;                      /* HC_LOG_ERROR .. HC_LOG_DEBUG */
    unsigned stats_interval_s;          /* 0: no periodic stats log line */
    /* [msgpack] */
    char msgpack_bind[64];              /* IPv4 address literal */
    unsigned msgpack_port;              /* 0: any free port */
    bool msgpack_tcp;
    bool msgpack_udp;
    unsigned max_payload;               /* bytes */
    unsigned max_connections;
    /* [jt808] */
    bool jt808_enabled;
    char jt808_bind[64];
    unsigned jt808_port;
    char jt808_timezone[16];            /* "+08:00": BCD times' offset from UTC */
    char jt808_auth_code[48];           /* "": derived from the terminal's phone */
    unsigned jt808_idle_ms;
    /* [teltonika] */
    bool teltonika_enabled;
    char teltonika_bind[64];
    unsigned teltonika_port;
    unsigned teltonika_idle_ms;
    char teltonika_maker[33];           /* the maker of reports from these devices */
    /* [detect] */
    unsigned window;                    /* W */
    unsigned n1;                        /* N1 */
    unsigned n2;                        /* N2; 0: window - 1 (finish resolves) */
    double default_threshold_m;
    unsigned rule;                      /* enum hc_rule of makers without their own */
    unsigned robust_after;
    unsigned robust_before;
    unsigned robust_share_pct;          /* 1..100 */
    unsigned robust_tight_pct;          /* 1..100 */
    unsigned robust_far_pct;            /* 100..10000 */
    /* [store] */
    unsigned commit_interval_ms;
    unsigned sync_interval_ms;          /* 0: fsync every commit */
    unsigned map_size_mb;
    /* [ring] */
    unsigned ring_size;                 /* power of two */
    /* [alarm] */
    unsigned repeat_interval_ms;        /* a new notification round, 100 ms..30 d */
    unsigned snooze_ms;                 /* "processing" holds notifications */
    /* [push] */
    unsigned retry_ms[HC_CONFIG_RETRIES_MAX]; /* delay before retry k+1; the
                                           first n_retry are used, the rest 0 */
    unsigned n_retry;                   /* 0: no retries ("none") */
    unsigned jitter_percent;            /* 0..100 */
    unsigned connect_timeout_ms;
    unsigned timeout_ms;                /* the whole request */
    char ca_file[HC_CONFIG_PATH_MAX];   /* "": the system's trust store */
    /* [control] */
    char control_socket[108];           /* "": <data_dir>/hubcapd.sock */
    char control_group[64];             /* "": the daemon's user and root only */
    /* [thresholds] */
    unsigned n_thresholds;
    struct hc_config_threshold thresholds[HC_CONFIG_THRESHOLDS_MAX];
    /* [rules] */
    unsigned n_rules;
    struct hc_config_rule rules[HC_CONFIG_THRESHOLDS_MAX];
    /* [channel.NAME], in the order first named until finish sorts them by
     * priority (stable: ties keep that order) */
    unsigned n_channels;
    struct hc_config_channel channels[HC_CONFIG_CHANNELS_MAX];
};

/* Fill c with the defaults of every key (docs/CONFIG.md), no per-maker
 * thresholds and no channels.  The whole struct, padding included, is zeroed first. */
void hc_config_defaults(struct hc_config *c);

/* Apply the INI file at path on top of *c.  Keys are written without their
 * section prefix inside [section] blocks; a key given twice keeps the last
 * value.  A [channel.NAME] block adds channel NAME (at most 16) or, if it
 * is already named, sets more of its keys.  Returns 0, or -1 with a one-line message in err (always
 * NUL-terminated when errlen > 0) such as
 *   "hubcap.ini:12: unknown key 'detect.windw' (see hubcapd --help)"
 *   "hubcap.ini:7: detect.window must be a whole number from 2 to 64, not 'abc'"
 *   "cannot open hubcap.ini: No such file or directory"
 * and *c unchanged.  Lines are limited to 198 bytes by inih. */
int hc_config_load(struct hc_config *c, const char *path, char *err, size_t errlen);

/* Apply one "section.key=value" (the --set option), e.g. "msgpack.port=0",
 * "thresholds.acme=35" or "channel.sms.url=https://..." (key url of
 * [channel.sms]); spaces around key and value are ignored.  Same
 * validation and messages as a file, without "file:line: ".  Returns 0, or
 * -1 with err and *c unchanged. */
int hc_config_set(struct hc_config *c, const char *assignment, char *err, size_t errlen);

/* Remove maker's own threshold (a live "threshold unset"): 0, or -ENOENT. */
int hc_config_remove_threshold(struct hc_config *c, const char *maker);

/* Remove maker's own rule (a live "rule unset"): 0, or -ENOENT. */
int hc_config_remove_rule(struct hc_config *c, const char *maker);

/* The detection parameters of c ([detect]; thresholds and rules are
 * applied per maker by the caller). */
void hc_config_detect(const struct hc_config *c, struct hc_detect_config *d);

/* Remove channel name (a live "channel remove"): 0, or -ENOENT. */
int hc_config_remove_channel(struct hc_config *c, const char *name);

/* Call once after all loads and sets.  Resolves derived values (workers 0
 * -> online cores - 1, at least 1, at most 64; detect.n2 0 -> window - 1),
 * then cross-checks the keys that depend on each other (window, n1, n2 and
 * the default threshold through hc_detect_config_check; ring.size a power
 * of two; every channel has a url and a secret) and every numeric range
 * again, in case a caller wrote a field directly.  Last, sorts the
 * channels by priority, stable: ties keep the order they were first named.
 * Returns 0, or -1 with err and *c unchanged. */
int hc_config_finish(struct hc_config *c, char *err, size_t errlen);

/* Print every key — name, default, range, meaning — for hubcapd --help. */
void hc_config_help(FILE *f);

/* Print the full text of docs/CONFIG.md (tests check the committed file is
 * exactly this output). */
void hc_config_markdown(FILE *f);

/* Print *c as an INI file that hc_config_load reads back to the same
 * values: every key, in table order, doubles with enough digits to round
 * trip, durations in canonical form (1h30m), then one [channel.NAME]
 * block per channel (a url or secret not set yet is left out).  A path or
 * url longer than fits on an inih line (about 185 bytes) makes a file that
 * load refuses with "line is longer than ...". */
void hc_config_write(const struct hc_config *c, FILE *f);

/* Minutes east of UTC in tz ("+08:00", "-05:30", "UTC+8", "+0"); 0 or -1
 * when it is not such an offset. */
int hc_config_tz_minutes(const char *tz, int *minutes);

/* "error", "warn", "info" or "debug"; "unknown" for any other level.
 * Never NULL; the string is static. */
const char *hc_log_level_name(int level);

#endif
