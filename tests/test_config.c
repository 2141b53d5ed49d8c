/*
 * test_config.c — hubcapd's configuration: defaults, INI files, --set,
 * derived values, the messages a user sees, and docs/CONFIG.md staying
 * byte-for-byte what the code generates.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hubcap/config.h"

static char path[64];

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
    cr_assert_eq(memcmp(&c, &back, sizeof(c)), 0, "write/load changed the config");
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
    free(md);
}

static const char *const every_key[] = {
    "core.data_dir", "core.workers", "core.log_level",
    "msgpack.bind", "msgpack.port", "msgpack.tcp", "msgpack.udp",
    "msgpack.max_payload", "msgpack.max_connections",
    "detect.window", "detect.n1", "detect.n2", "detect.default_threshold_m",
    "store.commit_interval_ms", "store.sync_interval_ms", "store.map_size_mb",
    "ring.size", "thresholds.MAKER",
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
        "8", "4", "6", "5.5", "2", "3", "32", "2048", "20",
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
