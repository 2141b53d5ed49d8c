/*
 * test_config.c — hubcapd's configuration: defaults, INI files, --set,
 * derived values, the messages a user sees, and docs/CONFIG.md staying
 * byte-for-byte what the code generates.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hubcap/config.h"

static char path[64];

/* Valid Standard Webhooks secrets: 32 and 64 random bytes. */
#define SECRET_A "whsec_Nrk/eyhrTmMZTaMFYAkQhS6Kk9kmZk1blQ85k2KprQY="
#define SECRET_B "whsec_gqd8Fwl0FuCEA53ORjM2C9RgiucwzsW2MqqaQZudFcxH2s8D0d7H6dd0Okn12WgOGygD" \
                 "+ttJr9yeON/BopU1qQ=="

/* Write text to a fresh file under /tmp; its name is left in path. */
static void write_file(const char *text)
{
    strcpy(path, "/tmp/hubcap-config-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fputs(text, f) >= 0, 1);
    cr_assert_eq(fclose(f), 0);
}

static void teardown(void)
{
    if (path[0])
        unlink(path);
    path[0] = '\0';
}

TestSuite(config, .fini = teardown);

/* Load text as a file; returns hc_config_load's result, message in err. */
static int load_text(struct hc_config *c, const char *text, char *err, size_t errlen)
{
    write_file(text);
    return hc_config_load(c, path, err, errlen);
}

/* Loading text must fail with "PATH:LINE: msg" and leave c as it was. */
static void expect_load_error(const char *text, int line, const char *msg)
{
    struct hc_config c, before;
    char err[512], want[600];
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "thresholds.acme=35", err, sizeof(err)), 0);
    memcpy(&before, &c, sizeof(c));
    cr_assert_eq(load_text(&c, text, err, sizeof(err)), -1, "loaded: %s", text);
    snprintf(want, sizeof(want), "%s:%d: %s", path, line, msg);
    cr_assert_str_eq(err, want);
    cr_assert_eq(memcmp(&c, &before, sizeof(c)), 0, "a bad file changed the config");
    teardown();
}

/* --set must fail with exactly msg and leave c as it was. */
static void expect_set_error(const char *assignment, const char *msg)
{
    struct hc_config c, before;
    char err[512];
    hc_config_defaults(&c);
    memcpy(&before, &c, sizeof(c));
    cr_assert_eq(hc_config_set(&c, assignment, err, sizeof(err)), -1, "set: %s", assignment);
    cr_assert_str_eq(err, msg);
    cr_assert_eq(memcmp(&c, &before, sizeof(c)), 0, "a bad --set changed the config");
}

Test(config, defaults_match_the_documented_values)
{
    struct hc_config c;
    hc_config_defaults(&c);
    cr_assert_str_eq(c.data_dir, "./var/hubcap");
    cr_assert_eq(c.workers, 0);
    cr_assert_eq(c.log_level, HC_LOG_INFO);
    cr_assert_str_eq(c.msgpack_bind, "0.0.0.0");
    cr_assert_eq(c.msgpack_port, 5170);
    cr_assert_eq(c.msgpack_tcp, true);
    cr_assert_eq(c.msgpack_udp, true);
    cr_assert_eq(c.max_payload, 1048576);
    cr_assert_eq(c.max_connections, 4096);
    cr_assert_eq(c.window, 16);
    cr_assert_eq(c.n1, 10);
    cr_assert_eq(c.n2, 0);
    cr_assert_eq(c.default_threshold_m, 100.0);
    cr_assert_eq(c.commit_interval_ms, 10);
    cr_assert_eq(c.sync_interval_ms, 1000);
    cr_assert_eq(c.map_size_mb, 4096);
    cr_assert_eq(c.ring_size, 65536);
    cr_assert_eq(c.n_thresholds, 0);
}

Test(config, new_keys_default_to_the_documented_values)
{
    static const unsigned retry[] = {5000, 300000, 1800000, 7200000, 18000000, 36000000,
                                     36000000};
    struct hc_config c;
    hc_config_defaults(&c);
    cr_assert_eq(c.repeat_interval_ms, 600000);
    cr_assert_eq(c.snooze_ms, 7200000);
    cr_assert_eq(c.n_retry, 7);
    for (unsigned i = 0; i < HC_CONFIG_RETRIES_MAX; i++)
        cr_assert_eq(c.retry_ms[i], i < 7 ? retry[i] : 0, "retry_ms[%u] = %u", i, c.retry_ms[i]);
    cr_assert_eq(c.jitter_percent, 20);
    cr_assert_eq(c.connect_timeout_ms, 5000);
    cr_assert_eq(c.timeout_ms, 15000);
    cr_assert_str_eq(c.ca_file, "");
    cr_assert_eq(c.n_channels, 0);
}

Test(config, defaults_agree_with_the_detector)
{
    struct hc_config c;
    struct hc_detect_config d;
    char err[256];
    hc_config_defaults(&c);
    hc_detect_config_default(&d);
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.window, d.window);
    cr_assert_eq(c.n1, d.n1);
    cr_assert_eq(c.n2, d.n2);
    cr_assert_eq(c.default_threshold_m, d.default_threshold_m);
}

Test(config, file_sets_every_section)
{
    struct hc_config c;
    char err[512];
    hc_config_defaults(&c);
    int rc = load_text(&c,
        "; a comment\n"
        "# another\n"
        "[core]\n"
        "data_dir = /srv/hubcap data\n"
        "workers=3\n"
        "log_level = DEBUG\n"
        "\n"
        "[msgpack]\n"
        "bind = 127.0.0.1\n"
        "port = 0\n"
        "tcp = yes\n"
        "udp = off ; inline comment\n"
        "max_payload = 65536\n"
        "max_connections = 10\n"
        "[detect]\n"
        "window = 32\n"
        "n1 = 12\n"
        "n2 = 40\n"
        "default_threshold_m = 87.5\n"
        "[store]\n"
        "commit_interval_ms = 25\n"
        "sync_interval_ms = 0\n"
        "map_size_mb = 64\n"
        "[ring]\n"
        "size = 1024\n"
        "[thresholds]\n"
        "acme = 35\n"
        "Globex Motors = 1e3\n"
        "acme = 36\n",
        err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_str_eq(c.data_dir, "/srv/hubcap data");
    cr_assert_eq(c.workers, 3);
    cr_assert_eq(c.log_level, HC_LOG_DEBUG);
    cr_assert_str_eq(c.msgpack_bind, "127.0.0.1");
    cr_assert_eq(c.msgpack_port, 0);
    cr_assert_eq(c.msgpack_tcp, true);
    cr_assert_eq(c.msgpack_udp, false);
    cr_assert_eq(c.max_payload, 65536);
    cr_assert_eq(c.max_connections, 10);
    cr_assert_eq(c.window, 32);
    cr_assert_eq(c.n1, 12);
    cr_assert_eq(c.n2, 40);
    cr_assert_eq(c.default_threshold_m, 87.5);
    cr_assert_eq(c.commit_interval_ms, 25);
    cr_assert_eq(c.sync_interval_ms, 0);
    cr_assert_eq(c.map_size_mb, 64);
    cr_assert_eq(c.ring_size, 1024);
    cr_assert_eq(c.n_thresholds, 2);
    cr_assert_str_eq(c.thresholds[0].maker, "acme");
    cr_assert_eq(c.thresholds[0].meters, 36.0);
    cr_assert_str_eq(c.thresholds[1].maker, "Globex Motors");
    cr_assert_eq(c.thresholds[1].meters, 1000.0);
}

Test(config, file_keeps_keys_it_does_not_mention)
{
    struct hc_config c;
    char err[512];
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "msgpack.port=9000", err, sizeof(err)), 0);
    cr_assert_eq(load_text(&c, "[detect]\nwindow = 20\n", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.window, 20);
    cr_assert_eq(c.msgpack_port, 9000);
    cr_assert_eq(c.n1, 10);
}

Test(config, unknown_key_names_file_line_and_changes_nothing)
{
    expect_load_error("[detect]\nwindow = 20\n\n\n\n\n\n\n\n\n\nwindw = 16\n", 12,
                      "unknown key 'detect.windw' (see hubcapd --help)");
    expect_load_error("[core]\nworkers = 2\n[nosuch]\nx = 1\n", 4,
                      "unknown key 'nosuch.x' (see hubcapd --help)");
    expect_load_error("window = 16\n", 1,
                      "key 'window' is outside any [section] (see hubcapd --help)");
}

Test(config, bad_values_name_file_line_and_change_nothing)
{
    expect_load_error("[core]\nworkers = 2\n[detect]\n\n\n\nwindow = abc\n", 7,
                      "detect.window must be a whole number from 2 to 64, not 'abc'");
    expect_load_error("[detect]\nwindow = 65\n", 2,
                      "detect.window must be a whole number from 2 to 64, not '65'");
    expect_load_error("[detect]\nwindow = -3\n", 2,
                      "detect.window must be a whole number from 2 to 64, not '-3'");
    expect_load_error("[detect]\nwindow =\n", 2,
                      "detect.window must be a whole number from 2 to 64, not ''");
    expect_load_error("[msgpack]\nport = 65536\n", 2,
                      "msgpack.port must be a whole number from 0 to 65535, not '65536'");
    expect_load_error("[msgpack]\nport = 99999999999999999999999\n", 2,
                      "msgpack.port must be a whole number from 0 to 65535, "
                      "not '99999999999999999999999'");
    expect_load_error("[msgpack]\nport = 0x10\n", 2,
                      "msgpack.port must be a whole number from 0 to 65535, not '0x10'");
    expect_load_error("[msgpack]\ntcp = maybe\n", 2,
                      "msgpack.tcp must be true or false (or yes/no, on/off, 1/0), not 'maybe'");
    expect_load_error("[msgpack]\nbind = localhost\n", 2,
                      "msgpack.bind must be an IPv4 address such as 0.0.0.0 or 127.0.0.1, "
                      "not 'localhost'");
    expect_load_error("[core]\nlog_level = loud\n", 2,
                      "core.log_level must be one of error, warn, info, debug, not 'loud'");
    expect_load_error("[detect]\ndefault_threshold_m = 0\n", 2,
                      "detect.default_threshold_m must be a number of meters greater than 0 "
                      "and at most 20000000, not '0'");
    expect_load_error("[detect]\ndefault_threshold_m = nan\n", 2,
                      "detect.default_threshold_m must be a number of meters greater than 0 "
                      "and at most 20000000, not 'nan'");
    expect_load_error("[ring]\nsize = 1000\n", 2,
                      "ring.size must be a power of two from 1024 to 16777216, not '1000'");
    expect_load_error("[thresholds]\nacme = 12m\n", 2,
                      "thresholds.acme must be a number of meters greater than 0 "
                      "and at most 20000000, not '12m'");
    expect_load_error("[thresholds]\nabcdefghijklmnopqrstuvwxyz0123456 = 5\n", 2,
                      "thresholds: maker name 'abcdefghijklmnopqrstuvwxyz0123456' must be "
                      "1 to 32 bytes, without '=', ':', control characters or a comment");
}

Test(config, first_error_wins_and_later_lines_do_not_apply)
{
    struct hc_config c;
    char err[512], want[600];
    hc_config_defaults(&c);
    cr_assert_eq(load_text(&c, "[detect]\nwindow = 20\nn1 = x\nn1 = y\n", err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:3: detect.n1 must be a whole number from 2 to 64, not 'x'",
             path);
    cr_assert_str_eq(err, want);
    cr_assert_eq(c.window, 16);
}

Test(config, syntax_errors_name_their_line)
{
    expect_load_error("[core]\nworkers = 2\n[detect\nwindow = 3\n", 3,
                      "expected '[section]' or 'key = value'");
    expect_load_error("[core]\nworkers\n", 2, "expected '[section]' or 'key = value'");
    /* A syntax error before a bad value is the one reported. */
    expect_load_error("[core]\nworkers\n[detect]\nwindow = 1\n", 2,
                      "expected '[section]' or 'key = value'");
}

Test(config, over_long_line_is_refused_not_split)
{
    char text[512];
    snprintf(text, sizeof(text), "[core]\ndata_dir = /%0300d\n", 0);
    expect_load_error(text, 2, "line is longer than 198 bytes");
}

Test(config, longest_line_inih_holds_loads)
{
    struct hc_config c;
    char text[512], err[512], dir[200];
    memset(dir, 'd', 187);
    dir[0] = '/';
    dir[187] = '\0';
    snprintf(text, sizeof(text), "[core]\ndata_dir = %s\n", dir);  /* 198 bytes + newline */
    hc_config_defaults(&c);
    cr_assert_eq(load_text(&c, text, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(c.data_dir, dir);
    teardown();
    snprintf(text, sizeof(text), "[core]\ndata_dir = %sd\n", dir);
    expect_load_error(text, 2, "line is longer than 198 bytes");
}

Test(config, indented_keys_are_keys_not_continuations)
{
    struct hc_config c;
    char err[512];
    hc_config_defaults(&c);
    cr_assert_eq(load_text(&c, "[detect]\n  window = 20\n\tn1 = 5\n  [store]\n"
                           "    map_size_mb = 32\n", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.window, 20);
    cr_assert_eq(c.n1, 5);
    cr_assert_eq(c.map_size_mb, 32);
}

Test(config, directory_is_not_a_file)
{
    struct hc_config c;
    char err[256];
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_load(&c, "/tmp", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "cannot read /tmp: Is a directory");
}

Test(config, missing_file_says_cannot_open)
{
    struct hc_config c, before;
    char err[256];
    hc_config_defaults(&c);
    memcpy(&before, &c, sizeof(c));
    cr_assert_eq(hc_config_load(&c, "/nonexistent/hubcap.ini", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "cannot open /nonexistent/hubcap.ini: No such file or directory");
    cr_assert_eq(memcmp(&c, &before, sizeof(c)), 0);
}

Test(config, set_applies_each_type)
{
    struct hc_config c;
    char err[256];
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "msgpack.port=0", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.msgpack_port, 0);
    cr_assert_eq(hc_config_set(&c, " detect.window = 24 ", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.window, 24);
    cr_assert_eq(hc_config_set(&c, "msgpack.udp=No", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.msgpack_udp, false);
    cr_assert_eq(hc_config_set(&c, "msgpack.tcp=0", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.msgpack_tcp, false);
    cr_assert_eq(hc_config_set(&c, "msgpack.tcp=ON", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.msgpack_tcp, true);
    cr_assert_eq(hc_config_set(&c, "core.data_dir=/tmp/a=b", err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(c.data_dir, "/tmp/a=b");
    cr_assert_eq(hc_config_set(&c, "msgpack.bind=10.1.2.3", err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(c.msgpack_bind, "10.1.2.3");
    cr_assert_eq(hc_config_set(&c, "detect.default_threshold_m=42.25", err, sizeof(err)), 0);
    cr_assert_eq(c.default_threshold_m, 42.25);
    cr_assert_eq(hc_config_set(&c, "core.log_level=warn", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.log_level, HC_LOG_WARN);
    cr_assert_eq(hc_config_set(&c, "thresholds.acme.de=35", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.n_thresholds, 1);
    cr_assert_str_eq(c.thresholds[0].maker, "acme.de");
    cr_assert_eq(c.thresholds[0].meters, 35.0);
}

Test(config, set_errors_are_the_file_messages_without_a_place)
{
    expect_set_error("detect.window=abc",
                     "detect.window must be a whole number from 2 to 64, not 'abc'");
    expect_set_error("detect.windw=16", "unknown key 'detect.windw' (see hubcapd --help)");
    expect_set_error("window=16", "expected section.key=value, not 'window=16'");
    expect_set_error("detect.window", "expected section.key=value, not 'detect.window'");
    expect_set_error("store.map_size_mb=8",
                     "store.map_size_mb must be a whole number from 16 to 1048576, not '8'");
    expect_set_error("core.data_dir=", "core.data_dir must be 1 to 4095 bytes, with no control "
                     "characters and no ';' at the start or after a space (INI reads a comment), "
                     "not ''");
    expect_set_error("core.data_dir=/a ;b", "core.data_dir must be 1 to 4095 bytes, with no "
                     "control characters and no ';' at the start or after a space (INI reads a "
                     "comment), not '/a ;b'");
    expect_set_error("core.data_dir=/a\nb", "core.data_dir must be 1 to 4095 bytes, with no "
                     "control characters and no ';' at the start or after a space (INI reads a "
                     "comment), not '/a?b'");
    expect_set_error("thresholds.=5", "thresholds: maker name '' must be 1 to 32 bytes, "
                     "without '=', ':', control characters or a comment");
    expect_set_error("thresholds.a:b=5", "thresholds: maker name 'a:b' must be 1 to 32 bytes, "
                     "without '=', ':', control characters or a comment");
    expect_set_error("thresholds.acme=inf", "thresholds.acme must be a number of meters greater "
                     "than 0 and at most 20000000, not 'inf'");
    expect_set_error("thresholds.acme=20000001", "thresholds.acme must be a number of meters "
                     "greater than 0 and at most 20000000, not '20000001'");
}

Test(config, long_values_are_shortened_in_messages)
{
    char a[200], err[512];
    struct hc_config c;
    hc_config_defaults(&c);
    snprintf(a, sizeof(a), "detect.window=%0100d", 99);
    cr_assert_eq(hc_config_set(&c, a, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "detect.window must be a whole number from 2 to 64, not "
                     "'000000000000000000000000000000000000000000000000000000000...'");
}

Test(config, thresholds_add_replace_and_stop_at_the_limit)
{
    struct hc_config c, before;
    char a[64], err[256];
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "thresholds.acme=35", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_set(&c, "thresholds.globex=50", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_set(&c, "thresholds.acme=40", err, sizeof(err)), 0);
    cr_assert_eq(c.n_thresholds, 2);
    cr_assert_str_eq(c.thresholds[0].maker, "acme");
    cr_assert_eq(c.thresholds[0].meters, 40.0);
    cr_assert_eq(c.thresholds[1].meters, 50.0);

    for (int i = 2; i < HC_CONFIG_THRESHOLDS_MAX; i++) {
        snprintf(a, sizeof(a), "thresholds.maker%d=%d", i, i);
        cr_assert_eq(hc_config_set(&c, a, err, sizeof(err)), 0, "%s", err);
    }
    cr_assert_eq(c.n_thresholds, HC_CONFIG_THRESHOLDS_MAX);
    memcpy(&before, &c, sizeof(c));
    cr_assert_eq(hc_config_set(&c, "thresholds.onemore=10", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "thresholds.onemore: at most 256 makers can have their own threshold");
    cr_assert_eq(memcmp(&c, &before, sizeof(c)), 0);
    /* Replacing still works when the table is full. */
    cr_assert_eq(hc_config_set(&c, "thresholds.maker255=1.5", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.thresholds[255].meters, 1.5);
}

Test(config, finish_resolves_n2_and_workers)
{
    struct hc_config c;
    char err[256];
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "detect.window=20", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.n2, 19);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long want = cores - 1 < 1 ? 1 : cores - 1 > 64 ? 64 : cores - 1;
    cr_assert_eq(c.workers, (unsigned)want);
}

Test(config, finish_keeps_explicit_values)
{
    struct hc_config c;
    char err[256];
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "core.workers=5", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_set(&c, "detect.n2=30", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.workers, 5);
    cr_assert_eq(c.n2, 30);
}

Test(config, finish_rejects_n1_greater_than_window)
{
    struct hc_config c, before;
    char err[256];
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "detect.window=8", err, sizeof(err)), 0);
    memcpy(&before, &c, sizeof(c));
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "detect.n1 (10) must not be greater than detect.window (8)");
    cr_assert_eq(memcmp(&c, &before, sizeof(c)), 0);
}

Test(config, finish_rejects_n2_with_too_few_pairs)
{
    struct hc_config c;
    char err[256];
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "detect.n2=120", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "detect.n2 (120) must be less than 120, the number of pairs in a "
                     "full window of 16");
}

Test(config, finish_rechecks_fields_written_directly)
{
    struct hc_config c;
    char err[256];
    hc_config_defaults(&c);
    c.ring_size = 3000;
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "ring.size must be a power of two from 1024 to 16777216, not '3000'");
    hc_config_defaults(&c);
    c.default_threshold_m = -1;
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "detect.default_threshold_m must be a number of meters greater than 0 "
                     "and at most 20000000, not '-1'");
}

/* ---- durations ---------------------------------------------------------- */

/* Set key to val and return the unsigned field read through get. */
static unsigned set_ms(const char *key, const char *val, const unsigned *field,
                       struct hc_config *c)
{
    char a[128], err[512];
    snprintf(a, sizeof(a), "%s=%s", key, val);
    cr_assert_eq(hc_config_set(c, a, err, sizeof(err)), 0, "%s: %s", a, err);
    return *field;
}

Test(config, durations_parse_every_unit_and_compound)
{
    struct hc_config c;
    hc_config_defaults(&c);
    cr_assert_eq(set_ms("alarm.snooze", "1h30m", &c.snooze_ms, &c), 5400000);
    cr_assert_eq(set_ms("alarm.snooze", "500ms", &c.snooze_ms, &c), 500);
    cr_assert_eq(set_ms("alarm.snooze", "100ms", &c.snooze_ms, &c), 100);
    cr_assert_eq(set_ms("alarm.snooze", "10m", &c.snooze_ms, &c), 600000);
    cr_assert_eq(set_ms("alarm.snooze", "2h", &c.snooze_ms, &c), 7200000);
    cr_assert_eq(set_ms("alarm.snooze", "45s", &c.snooze_ms, &c), 45000);
    cr_assert_eq(set_ms("alarm.snooze", "30d", &c.snooze_ms, &c), 2592000000u);
    cr_assert_eq(set_ms("alarm.snooze", "1d2h3m4s5ms", &c.snooze_ms, &c), 93784005);
    cr_assert_eq(set_ms("alarm.snooze", "1s500ms", &c.snooze_ms, &c), 1500);
    cr_assert_eq(set_ms("alarm.snooze", "90m", &c.snooze_ms, &c), 5400000);
    cr_assert_eq(set_ms("alarm.snooze", "0001s", &c.snooze_ms, &c), 1000);
    cr_assert_eq(set_ms("channel.a.delay", "0s", &c.channels[0].delay_ms, &c), 0);
    cr_assert_eq(set_ms("channel.a.delay", "0ms", &c.channels[0].delay_ms, &c), 0);
    cr_assert_eq(set_ms("channel.a.delay", "7m", &c.channels[0].delay_ms, &c), 420000);
}

#define SNOOZE_WANT "alarm.snooze must be a duration from 100ms to 30d such as 10m, 1h30m " \
                    "or 500ms, not "

Test(config, durations_reject_bad_text_and_out_of_range)
{
    expect_set_error("alarm.snooze=10",
                     SNOOZE_WANT "'10': add a unit (ms, s, m, h or d)");
    expect_set_error("alarm.snooze=1h30",
                     SNOOZE_WANT "'1h30': add a unit (ms, s, m, h or d)");
    expect_set_error("alarm.snooze=5x", SNOOZE_WANT "'5x'");
    expect_set_error("alarm.snooze=-1s", SNOOZE_WANT "'-1s'");
    expect_set_error("alarm.snooze=", SNOOZE_WANT "''");
    expect_set_error("alarm.snooze=50d", SNOOZE_WANT "'50d'");
    expect_set_error("alarm.snooze=99ms", SNOOZE_WANT "'99ms'");
    expect_set_error("alarm.snooze=0s", SNOOZE_WANT "'0s'");
    expect_set_error("alarm.snooze=49711d", SNOOZE_WANT "'49711d'");     /* > 2^32 ms */
    expect_set_error("alarm.snooze=4294967296ms", SNOOZE_WANT "'4294967296ms'");
    expect_set_error("alarm.snooze=99999999999999999999999s",
                     SNOOZE_WANT "'99999999999999999999999s'");
    expect_set_error("alarm.snooze=1m1m", SNOOZE_WANT "'1m1m'");
    expect_set_error("alarm.snooze=30m1h", SNOOZE_WANT "'30m1h'");
    expect_set_error("alarm.snooze=1h 30m", SNOOZE_WANT "'1h 30m'");
    expect_set_error("alarm.snooze=1.5h", SNOOZE_WANT "'1.5h'");
    expect_set_error("alarm.snooze=10M", SNOOZE_WANT "'10M'");
    expect_set_error("alarm.snooze=s", SNOOZE_WANT "'s'");
    expect_set_error("push.connect_timeout=6m", "push.connect_timeout must be a duration from "
                     "100ms to 5m such as 10m, 1h30m or 500ms, not '6m'");
    expect_load_error("[alarm]\nrepeat_interval = 600\n", 2,
                      "alarm.repeat_interval must be a duration from 100ms to 30d such as 10m, "
                      "1h30m or 500ms, not '600': add a unit (ms, s, m, h or d)");
}

#define RETRY_WANT "push.retry_schedule must be none or a comma-separated list of 1 to 16 " \
                   "durations, each from 1ms to 30d, such as 5s,5m,1h30m, not "

Test(config, retry_schedule_parses_lists_and_none)
{
    struct hc_config c;
    char err[512], a[512];
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "push.retry_schedule= 1s ,2m,\t3h , 1ms", err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(c.n_retry, 4);
    cr_assert_eq(c.retry_ms[0], 1000);
    cr_assert_eq(c.retry_ms[1], 120000);
    cr_assert_eq(c.retry_ms[2], 10800000);
    cr_assert_eq(c.retry_ms[3], 1);
    for (unsigned i = 4; i < HC_CONFIG_RETRIES_MAX; i++)
        cr_assert_eq(c.retry_ms[i], 0, "slot %u not cleared", i);

    cr_assert_eq(hc_config_set(&c, "push.retry_schedule=none", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.n_retry, 0);
    for (unsigned i = 0; i < HC_CONFIG_RETRIES_MAX; i++)
        cr_assert_eq(c.retry_ms[i], 0);

    /* 16 entries are the most. */
    strcpy(a, "push.retry_schedule=1s");
    for (int i = 2; i <= 16; i++)
        snprintf(a + strlen(a), sizeof(a) - strlen(a), ",%ds", i);
    cr_assert_eq(hc_config_set(&c, a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.n_retry, 16);
    cr_assert_eq(c.retry_ms[15], 16000);
    strcat(a, ",17s");
    cr_assert_eq(hc_config_set(&c, a, err, sizeof(err)), -1);
    cr_assert_eq(c.n_retry, 16);
}

Test(config, retry_schedule_refuses_bad_entries_and_changes_nothing)
{
    expect_set_error("push.retry_schedule=5s,1m,17s,x",
                     RETRY_WANT "'5s,1m,17s,x'");
    expect_set_error("push.retry_schedule=5s,10,1m",
                     RETRY_WANT "'5s,10,1m': add a unit (ms, s, m, h or d)");
    expect_set_error("push.retry_schedule=5s,,1m", RETRY_WANT "'5s,,1m'");
    expect_set_error("push.retry_schedule=5s,", RETRY_WANT "'5s,'");
    expect_set_error("push.retry_schedule=", RETRY_WANT "''");
    expect_set_error("push.retry_schedule=0s", RETRY_WANT "'0s'");
    expect_set_error("push.retry_schedule=31d", RETRY_WANT "'31d'");
    expect_set_error("push.retry_schedule=none,5s", RETRY_WANT "'none,5s'");
    expect_set_error("push.retry_schedule=1s,2s,3s,4s,5s,6s,7s,8s,9s,10s,11s,12s,13s,14s,15s,"
                     "16s,17s", RETRY_WANT "'1s,2s,3s,4s,5s,6s,7s,8s,9s,10s,11s,12s,13s,14s,"
                     "15s,16s,17s'");
}

Test(config, other_new_keys_are_checked)
{
    expect_set_error("push.jitter_percent=101",
                     "push.jitter_percent must be a whole number from 0 to 100, not '101'");
    expect_set_error("push.ca_file=/a ;b", "push.ca_file must be 0 to 4095 bytes, with no "
                     "control characters and no ';' at the start or after a space (INI reads a "
                     "comment), not '/a ;b'");
    struct hc_config c;
    char err[256];
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "push.ca_file=/etc/ca.pem", err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(c.ca_file, "/etc/ca.pem");
    cr_assert_eq(hc_config_set(&c, "push.ca_file=", err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(c.ca_file, "");
    hc_config_defaults(&c);
    struct hc_config fresh;
    hc_config_defaults(&fresh);
    cr_assert_eq(memcmp(&c, &fresh, sizeof(c)), 0, "ca_file is not zero-filled again");
}

/* ---- channels ----------------------------------------------------------- */

Test(config, channel_from_a_file_equals_channel_from_set)
{
    struct hc_config a, b;
    char err[512];
    hc_config_defaults(&a);
    int rc = load_text(&a,
        "[channel.sms]\n"
        "url = https://sms.example.com/hook?to=1:2\n"
        "secret = " SECRET_A "\n"
        "secret_next = " SECRET_B "\n"
        "delay = 30s\n"
        "[channel.app-1]\n"
        "url = http://localhost:9000/x\n"
        "secret = " SECRET_B "\n"
        "[channel.sms]\n"
        "priority = 1\n",
        err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(a.n_channels, 2);
    cr_assert_str_eq(a.channels[0].name, "sms");
    cr_assert_str_eq(a.channels[0].url, "https://sms.example.com/hook?to=1:2");
    cr_assert_str_eq(a.channels[0].secret, SECRET_A);
    cr_assert_str_eq(a.channels[0].secret_next, SECRET_B);
    cr_assert_eq(a.channels[0].delay_ms, 30000);
    cr_assert_eq(a.channels[0].priority, 1);
    cr_assert_str_eq(a.channels[1].name, "app-1");
    cr_assert_str_eq(a.channels[1].secret_next, "");
    cr_assert_eq(a.channels[1].delay_ms, 0);
    cr_assert_eq(a.channels[1].priority, 100);

    const char *sets[] = {
        "channel.sms.url=https://sms.example.com/hook?to=1:2", "channel.sms.secret=" SECRET_A,
        "channel.sms.secret_next=" SECRET_B, " channel.sms.delay = 30s ",
        "channel.app-1.url=http://localhost:9000/x", "channel.app-1.secret=" SECRET_B,
        "channel.sms.priority=1",
    };
    hc_config_defaults(&b);
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
        cr_assert_eq(hc_config_set(&b, sets[i], err, sizeof(err)), 0, "%s: %s", sets[i], err);
    cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0, "file and --set built different configs");
}

Test(config, channel_missing_a_required_key_fails_finish_naming_it)
{
    struct hc_config c, before;
    char err[256];
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "channel.sms.url=https://x.example/", err, sizeof(err)), 0);
    memcpy(&before, &c, sizeof(c));
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "channel.sms has no secret (set channel.sms.secret)");
    cr_assert_eq(memcmp(&c, &before, sizeof(c)), 0);

    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "channel.voice.secret=" SECRET_A, err, sizeof(err)), 0);
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "channel.voice has no url (set channel.voice.url)");
}

Test(config, bad_secret_is_refused_without_showing_it)
{
    static const char *const bad[] = {
        "whsec_avVtbGL9ki1Pgxopxur0Vw==",               /* 16 bytes: too short */
        "Nrk/eyhrTmMZTaMFYAkQhS6Kk9kmZk1blQ85k2KprQY=", /* no whsec_ prefix */
        "whsec_Nrk/eyhrTmMZTaMFYAkQhS6Kk9kmZk1blQ85k2KprQY",  /* padding missing */
        "whsec_Nrk/eyhrTmMZTaMFYAkQhS6Kk9kmZk1blQ85k2Kp rQY=", /* a space */
        "hunter2hunter2hunter2hunter2hunter2",
    };
    const char *want = "channel.sms.secret must be a Standard Webhooks secret: whsec_ "
                       "followed by base64 of 24 to 64 random bytes";
    char a[256], err[512];
    struct hc_config c;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(a, sizeof(a), "channel.sms.secret=%s", bad[i]);
        expect_set_error(a, want);
        hc_config_defaults(&c);
        cr_assert_eq(hc_config_set(&c, a, err, sizeof(err)), -1);
        cr_assert_null(strstr(err, bad[i] + 6), "the message shows the secret: %s", err);
    }
    expect_set_error("channel.sms.secret=", want);
    expect_set_error("channel.sms.secret_next=whsec_avVtbGL9ki1Pgxopxur0Vw==",
                     "channel.sms.secret_next must be empty or a Standard Webhooks secret: "
                     "whsec_ followed by base64 of 24 to 64 random bytes");

    /* Nor from a file. */
    hc_config_defaults(&c);
    cr_assert_eq(load_text(&c, "[channel.sms]\nsecret = hunter2hunter2\n", err, sizeof(err)),
                 -1);
    cr_assert_null(strstr(err, "hunter2"), "%s", err);
    cr_assert_not_null(strstr(err, ":2: channel.sms.secret must be"), "%s", err);
}

Test(config, channel_names_urls_and_keys_are_checked)
{
    expect_set_error("channel.x y.url=http://a",
                     "channel name 'x y' must be 1 to 32 of A-Z a-z 0-9 _ -");
    expect_set_error("channel..url=http://a",
                     "channel name '' must be 1 to 32 of A-Z a-z 0-9 _ -");
    expect_set_error("channel.abcdefghijklmnopqrstuvwxyz0123456.url=http://a",
                     "channel name 'abcdefghijklmnopqrstuvwxyz0123456' must be 1 to 32 of "
                     "A-Z a-z 0-9 _ -");
    expect_set_error("channel.sms.urll=http://a",
                     "unknown key 'channel.sms.urll' (see hubcapd --help)");
    expect_set_error("channel.sms=1", "unknown key 'channel.sms' (see hubcapd --help)");
    expect_set_error("channel.sms.url=ftp://a", "channel.sms.url must be an http:// or "
                     "https:// URL of at most 512 bytes, with no spaces or control "
                     "characters, not 'ftp://a'");
    expect_set_error("channel.sms.url=https://", "channel.sms.url must be an http:// or "
                     "https:// URL of at most 512 bytes, with no spaces or control "
                     "characters, not 'https://'");
    expect_set_error("channel.sms.url=https://a b", "channel.sms.url must be an http:// or "
                     "https:// URL of at most 512 bytes, with no spaces or control "
                     "characters, not 'https://a b'");
    expect_set_error("channel.sms.priority=0",
                     "channel.sms.priority must be a whole number from 1 to 1000, not '0'");
    expect_set_error("channel.sms.delay=5", "channel.sms.delay must be a duration from 0s to "
                     "30d such as 10m, 1h30m or 500ms, not '5': add a unit (ms, s, m, h or d)");
    expect_load_error("[channel.a.b]\nurl = http://a\n", 2,
                      "channel name 'a.b' must be 1 to 32 of A-Z a-z 0-9 _ -");
    expect_load_error("[channel]\nurl = http://a\n", 2,
                      "unknown key 'channel.url' (see hubcapd --help)");

    /* 512 bytes of URL fit, 513 do not. */
    char a[700], err[256];
    struct hc_config c;
    hc_config_defaults(&c);
    int n = snprintf(a, sizeof(a), "channel.sms.url=https://");
    memset(a + n, 'u', 512 - 8);
    a[n + 504] = '\0';
    cr_assert_eq(hc_config_set(&c, a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(strlen(c.channels[0].url), 512);
    strcat(a, "u");
    cr_assert_eq(hc_config_set(&c, a, err, sizeof(err)), -1);
}

Test(config, at_most_16_channels)
{
    struct hc_config c, before;
    char a[128], err[256];
    hc_config_defaults(&c);
    for (int i = 0; i < HC_CONFIG_CHANNELS_MAX; i++) {
        snprintf(a, sizeof(a), "channel.c%d.url=https://c%d.example/", i, i);
        cr_assert_eq(hc_config_set(&c, a, err, sizeof(err)), 0, "%s", err);
    }
    cr_assert_eq(c.n_channels, 16);
    memcpy(&before, &c, sizeof(c));
    cr_assert_eq(hc_config_set(&c, "channel.c16.url=https://c16.example/", err, sizeof(err)),
                 -1);
    cr_assert_str_eq(err, "channel.c16: at most 16 channels can be named");
    cr_assert_eq(memcmp(&c, &before, sizeof(c)), 0);
    /* The named ones can still be changed. */
    cr_assert_eq(hc_config_set(&c, "channel.c15.priority=3", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.channels[15].priority, 3);
}

Test(config, a_failed_channel_key_adds_no_channel)
{
    expect_set_error("channel.new.priority=x",
                     "channel.new.priority must be a whole number from 1 to 1000, not 'x'");
}

Test(config, finish_sorts_channels_by_priority_stably)
{
    static const char *const order[][2] = {
        {"d", "50"}, {"a", "100"}, {"e", "50"}, {"b", "100"}, {"f", "1"}, {"c", "100"},
    };
    static const char *const want[] = {"f", "d", "e", "a", "b", "c"};
    struct hc_config c;
    char a[256], err[256];
    hc_config_defaults(&c);
    for (size_t i = 0; i < 6; i++) {
        const char *name = order[i][0];
        snprintf(a, sizeof(a), "channel.%s.url=https://%s.example/", name, name);
        cr_assert_eq(hc_config_set(&c, a, err, sizeof(err)), 0, "%s", err);
        snprintf(a, sizeof(a), "channel.%s.secret=" SECRET_A, name);
        cr_assert_eq(hc_config_set(&c, a, err, sizeof(err)), 0, "%s", err);
    }
    /* Priorities set after naming: the order first named still breaks ties. */
    for (size_t i = 6; i-- > 0;) {
        snprintf(a, sizeof(a), "channel.%s.priority=%s", order[i][0], order[i][1]);
        cr_assert_eq(hc_config_set(&c, a, err, sizeof(err)), 0, "%s", err);
    }
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), 0, "%s", err);
    for (size_t i = 0; i < 6; i++) {
        cr_assert_str_eq(c.channels[i].name, want[i]);
        snprintf(a, sizeof(a), "https://%s.example/", want[i]);
        cr_assert_str_eq(c.channels[i].url, a, "the fields moved with the name");
    }
}

Test(config, finish_rechecks_new_fields_written_directly)
{
    struct hc_config c;
    char err[512];
    hc_config_defaults(&c);
    c.repeat_interval_ms = 50;
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "alarm.repeat_interval must be a duration from 100ms to 30d such as "
                     "10m, 1h30m or 500ms, not '50ms'");
    hc_config_defaults(&c);
    c.retry_ms[1] = 0;
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), -1);
    cr_assert_str_eq(err, RETRY_WANT "'5s,0s,30m,2h,5h,10h,10h'");
    hc_config_defaults(&c);
    c.n_retry = 17;
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), -1);
    cr_assert_str_eq(err, RETRY_WANT "'17 entries'");
    hc_config_defaults(&c);
    c.jitter_percent = 200;
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "push.jitter_percent must be a whole number from 0 to 100, not '200'");
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "channel.sms.url=https://x/", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_set(&c, "channel.sms.secret=" SECRET_A, err, sizeof(err)), 0);
    c.channels[0].priority = 0;
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "channel.sms.priority must be a whole number from 1 to 1000, not '0'");
    c.channels[0].priority = 1;
    c.channels[0].delay_ms = 31u * 86400000u;
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "channel.sms.delay must be a duration from 0s to 30d such as 10m, "
                     "1h30m or 500ms, not '31d'");
    c.channels[0].delay_ms = 0;
    c.n_channels = 17;
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "17 channels: at most 16 can be named");
}

Test(config, write_loads_back_identically)
{
    struct hc_config c, back;
    char err[512];
    hc_config_defaults(&c);
    const char *sets[] = {
        "core.data_dir=/var/lib/hub cap", "core.workers=7", "core.log_level=error",
        "msgpack.bind=192.168.0.1", "msgpack.port=1", "msgpack.tcp=false",
        "msgpack.max_payload=64", "msgpack.max_connections=1000000",
        "detect.window=64", "detect.n1=64", "detect.n2=2015",
        "detect.default_threshold_m=0.1", "store.commit_interval_ms=60000",
        "store.sync_interval_ms=3600000", "store.map_size_mb=1048576",
        "ring.size=16777216", "thresholds.acme=35", "thresholds.globex=0.30000000000000004",
        "thresholds.Initech GmbH=19999999.999999996", "thresholds.x.y=1e-300",
        "alarm.repeat_interval=1h30m", "alarm.snooze=1s500ms",
        "push.retry_schedule=1ms, 30d,2d23h59m59s999ms", "push.jitter_percent=0",
        "push.connect_timeout=100ms", "push.timeout=1h", "push.ca_file=/etc/ssl/x.pem",
        "channel.voice.url=https://voice.example/a?b=c&d=e%20f", "channel.voice.secret=" SECRET_B,
        "channel.voice.priority=1000", "channel.voice.delay=30d",
        "channel.app.secret=" SECRET_A, "channel.app.url=http://10.0.0.1:8080/",
        "channel.app.secret_next=" SECRET_B, "channel.app.priority=1",
        "detect.rule=seed", "detect.robust_after=9", "detect.robust_before=2",
        "detect.robust_share_percent=1", "detect.robust_tight_percent=100",
        "detect.robust_far_percent=10000", "rules.acme=robust", "rules.Initech GmbH=seed",
    };
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
        cr_assert_eq(hc_config_set(&c, sets[i], err, sizeof(err)), 0, "%s: %s", sets[i], err);

    write_file("");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    hc_config_write(&c, f);
    cr_assert_eq(fclose(f), 0);
    hc_config_defaults(&back);
    cr_assert_eq(hc_config_load(&back, path, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(back.n_channels, 2);
    cr_assert_eq(back.n_retry, 3);
    cr_assert_eq(back.retry_ms[2], 3 * 86400000u - 1);
    cr_assert_eq(memcmp(&c, &back, sizeof(c)), 0, "write/load changed the config");

    /* The same after finish has sorted the channels. */
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), 0, "%s", err);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    hc_config_write(&c, f);
    cr_assert_eq(fclose(f), 0);
    hc_config_defaults(&back);
    cr_assert_eq(hc_config_load(&back, path, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(hc_config_finish(&back, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(back.channels[0].name, "app");
    cr_assert_eq(memcmp(&c, &back, sizeof(c)), 0, "write/load changed the finished config");
}

Test(config, write_spells_durations_and_lists_canonically)
{
    struct hc_config c;
    char err[256], *buf = NULL;
    size_t len;
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "alarm.repeat_interval=90m", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(hc_config_set(&c, "alarm.snooze=1500ms", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(hc_config_set(&c, "push.retry_schedule= 60s , 1d ", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_set(&c, "channel.x.priority=5", err, sizeof(err)), 0, "%s", err);
    FILE *m = open_memstream(&buf, &len);
    cr_assert_not_null(m);
    hc_config_write(&c, m);
    cr_assert_eq(fclose(m), 0);
    cr_assert_not_null(strstr(buf, "\nrepeat_interval = 1h30m\n"), "%s", buf);
    cr_assert_not_null(strstr(buf, "\nsnooze = 1s500ms\n"), "%s", buf);
    cr_assert_not_null(strstr(buf, "\nretry_schedule = 1m,1d\n"), "%s", buf);
    cr_assert_not_null(strstr(buf, "\nconnect_timeout = 5s\n"), "%s", buf);
    cr_assert_not_null(strstr(buf, "\nca_file = \n"), "%s", buf);
    /* A channel without url or secret yet: those keys are left out, so the
     * file still loads (and finish then says what is missing). */
    cr_assert_not_null(strstr(buf, "\n[channel.x]\nsecret_next = \ndelay = 0s\npriority = 5\n"),
                       "%s", buf);
    free(buf);
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "push.retry_schedule=none", err, sizeof(err)), 0, "%s", err);
    m = open_memstream(&buf, &len);
    cr_assert_not_null(m);
    hc_config_write(&c, m);
    cr_assert_eq(fclose(m), 0);
    cr_assert_not_null(strstr(buf, "\nretry_schedule = none\n"), "%s", buf);
    cr_assert_null(strstr(buf, "[channel."), "%s", buf);
    free(buf);
}

Test(config, write_of_defaults_loads_back_identically)
{
    struct hc_config c, back;
    char err[512];
    hc_config_defaults(&c);
    write_file("");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    hc_config_write(&c, f);
    cr_assert_eq(fclose(f), 0);
    hc_config_defaults(&back);
    cr_assert_eq(hc_config_set(&back, "msgpack.port=1", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_load(&back, path, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(memcmp(&c, &back, sizeof(c)), 0);
}

static char *read_all(FILE *f, size_t *len)
{
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (cap - n < 4096)
            buf = realloc(buf, cap = cap * 2 + 4096);
        cr_assert_not_null(buf);
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
    } while (got > 0);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static char *markdown(size_t *len)
{
    char *buf = NULL;
    FILE *m = open_memstream(&buf, len);
    cr_assert_not_null(m);
    hc_config_markdown(m);
    cr_assert_eq(fclose(m), 0);
    return buf;
}

Test(config, markdown_matches_docs)
{
    const char *root = getenv("HUBCAP_SOURCE_ROOT");
    char file[4096];
    snprintf(file, sizeof(file), "%s%sdocs/CONFIG.md", root ? root : "", root ? "/" : "");
    FILE *f = fopen(file, "r");
    cr_assert_not_null(f, "cannot open %s", file);
    size_t doc_len, gen_len;
    char *doc = read_all(f, &doc_len);
    fclose(f);
    char *gen = markdown(&gen_len);
    cr_assert_eq(doc_len, gen_len, "%s is stale: regenerate it with build/src/hubcapd --config-reference > docs/CONFIG.md", file);
    cr_assert_eq(memcmp(doc, gen, gen_len), 0,
                 "%s is stale: regenerate it with build/src/hubcapd --config-reference > docs/CONFIG.md", file);
    free(doc);
    free(gen);
}

Test(config, markdown_example_loads)
{
    size_t len;
    char *md = markdown(&len);
    char *start = strstr(md, "```ini\n");
    cr_assert_not_null(start);
    start += strlen("```ini\n");
    char *end = strstr(start, "```");
    cr_assert_not_null(end);
    *end = '\0';

    struct hc_config c;
    char err[512];
    hc_config_defaults(&c);
    cr_assert_eq(load_text(&c, start, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.n_thresholds, 2);
    cr_assert_eq(c.n_channels, 2);
    cr_assert_str_eq(c.channels[0].name, "app");
    cr_assert_eq(c.channels[1].delay_ms, 300000);
    free(md);
}

static const char *const every_key[] = {
    "core.data_dir", "core.workers", "core.log_level",
    "msgpack.bind", "msgpack.port", "msgpack.tcp", "msgpack.udp",
    "msgpack.max_payload", "msgpack.max_connections",
    "detect.window", "detect.n1", "detect.n2", "detect.default_threshold_m",
    "store.commit_interval_ms", "store.sync_interval_ms", "store.map_size_mb",
    "ring.size", "alarm.repeat_interval", "alarm.snooze", "push.retry_schedule",
    "push.jitter_percent", "push.connect_timeout", "push.timeout", "push.ca_file",
    "thresholds.MAKER", "channel.NAME.url", "channel.NAME.secret", "channel.NAME.secret_next",
    "channel.NAME.delay", "channel.NAME.priority",
};

Test(config, help_mentions_every_key_with_its_default)
{
    char *buf = NULL;
    size_t len;
    FILE *m = open_memstream(&buf, &len);
    cr_assert_not_null(m);
    hc_config_help(m);
    cr_assert_eq(fclose(m), 0);
    for (size_t i = 0; i < sizeof(every_key) / sizeof(every_key[0]); i++)
        cr_assert_not_null(strstr(buf, every_key[i]), "--help lacks %s", every_key[i]);
    cr_assert_not_null(strstr(buf, "  msgpack.port (default 5170; 0 to 65535)\n"));
    cr_assert_not_null(strstr(buf, "  ring.size (default 65536; power of two, 1024 to 16777216)\n"));
    cr_assert_not_null(strstr(buf, "  alarm.repeat_interval (default 10m; 100ms to 30d)\n"));
    cr_assert_not_null(strstr(buf, "  push.ca_file (default empty; path or empty, up to 4095 "
                              "bytes)\n"));
    cr_assert_not_null(strstr(buf, "  channel.NAME.url (no default; http:// or https:// URL, "
                              "up to 512 bytes)\n"));
    cr_assert_not_null(strstr(buf, "docs/DETECTION.md"));
    /* Wrapped to fit a terminal. */
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
        cr_assert_leq(strlen(line), 79, "long help line: %s", line);
    free(buf);
}

Test(config, every_key_can_be_set_with_its_help_name)
{
    /* The names --help shows are the names --set takes. */
    static const char *const values[] = {
        "/d", "2", "warn", "1.2.3.4", "1", "no", "yes", "128", "2",
        "8", "4", "6", "5.5", "2", "3", "32", "2048", "1h", "5m", "1s,2s", "10", "3s",
        "1m", "/ca.pem", "20", "https://h/", SECRET_A, SECRET_B, "1s", "7",
    };
    struct hc_config c;
    char err[256], a[128];
    cr_assert_eq(sizeof(values), sizeof(every_key));
    hc_config_defaults(&c);
    for (size_t i = 0; i < sizeof(every_key) / sizeof(every_key[0]); i++) {
        snprintf(a, sizeof(a), "%s=%s", every_key[i], values[i]);
        cr_assert_eq(hc_config_set(&c, a, err, sizeof(err)), 0, "%s: %s", a, err);
    }
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(c.thresholds[0].maker, "MAKER");
    cr_assert_str_eq(c.channels[0].name, "NAME");
}

Test(config, log_level_names)
{
    cr_assert_str_eq(hc_log_level_name(HC_LOG_ERROR), "error");
    cr_assert_str_eq(hc_log_level_name(HC_LOG_WARN), "warn");
    cr_assert_str_eq(hc_log_level_name(HC_LOG_INFO), "info");
    cr_assert_str_eq(hc_log_level_name(HC_LOG_DEBUG), "debug");
    cr_assert_str_eq(hc_log_level_name(4), "unknown");
    cr_assert_str_eq(hc_log_level_name(-1), "unknown");
}

Test(config, rules_and_robust_keys_are_checked)
{
    struct hc_config c;
    char err[512];
    hc_config_defaults(&c);
    cr_assert_eq(c.rule, HC_RULE_ROBUST);
    cr_assert_eq(c.robust_after, 4);
    cr_assert_eq(c.robust_before, 3);
    cr_assert_eq(c.robust_share_pct, 80);
    cr_assert_eq(c.robust_tight_pct, 25);
    cr_assert_eq(c.robust_far_pct, 400);

    cr_assert_eq(hc_config_set(&c, "detect.rule=fuzzy", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "detect.rule must be seed or robust, not 'fuzzy'");
    cr_assert_eq(hc_config_set(&c, "rules.acme=Seed", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "rules.acme must be seed or robust, not 'Seed'");
    cr_assert_eq(hc_config_set(&c, "rules.a=b=seed", err, sizeof(err)), -1);
    cr_assert_eq(hc_config_set(&c, "detect.robust_after=3", err, sizeof(err)), -1);
    cr_assert(strstr(err, "4 to 62"), "%s", err);
    cr_assert_eq(c.n_rules, 0, "nothing kept from refused keys");

    cr_assert_eq(hc_config_set(&c, "rules.acme=seed", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(hc_config_set(&c, "rules.acme=robust", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.n_rules, 1, "setting a maker again replaces its rule");
    cr_assert_eq(c.rules[0].rule, HC_RULE_ROBUST);
    cr_assert_eq(hc_config_remove_rule(&c, "acme"), 0);
    cr_assert_eq(hc_config_remove_rule(&c, "acme"), -ENOENT);
    char a[64];
    for (int i = 0; i < HC_CONFIG_THRESHOLDS_MAX; i++) {
        snprintf(a, sizeof(a), "rules.m%d=seed", i);
        cr_assert_eq(hc_config_set(&c, a, err, sizeof(err)), 0, "%s", err);
    }
    cr_assert_eq(hc_config_set(&c, "rules.onemore=seed", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "rules.onemore: at most 256 makers can have their own rule");
}

Test(config, the_robust_rule_must_fit_the_window_only_where_it_is_used)
{
    struct hc_config c;
    char err[512];
    /* A window of 5 is fine for the seed rule ... */
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "detect.window=5", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_set(&c, "detect.n1=5", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_set(&c, "detect.rule=seed", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), 0, "%s", err);
    /* ... not for a maker that uses the robust rule (4 + 3 positions) ... */
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "detect.window=5", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_set(&c, "detect.n1=5", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_set(&c, "detect.rule=seed", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_set(&c, "rules.acme=robust", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "detect.robust_after (4) + detect.robust_before (3) must not be "
                     "greater than detect.window (5) while a maker uses the robust rule "
                     "(rules.acme)");
    /* ... nor as the default. */
    hc_config_defaults(&c);
    cr_assert_eq(hc_config_set(&c, "detect.window=6", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_set(&c, "detect.n1=6", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), -1);
    cr_assert(strstr(err, "(detect.rule)"), "%s", err);
    cr_assert_eq(hc_config_set(&c, "detect.robust_before=2", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), 0, "%s", err);
}

Test(config, a_byte_order_mark_and_indentation_are_ignored)
{
    struct hc_config c;
    char err[512];
    hc_config_defaults(&c);
    cr_assert_eq(load_text(&c, "\xef\xbb\xbf[detect]\n   window = 20\n\t[rules]\n  acme = seed\n",
                           err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.window, 20);
    cr_assert_eq(c.n_rules, 1);
    cr_assert_eq(c.rules[0].rule, HC_RULE_SEED);
}
