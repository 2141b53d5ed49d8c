/*
 * test_settings.c — live settings kept in LMDB and applied over a
 * configuration through its own parser.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubcap/config.h"
#include "hubcap/settings.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/hubcap-settings-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(settings, .init = setup, .fini = teardown);

/* A configuration with channel app, finished. */
static void base(struct hc_config *c)
{
    char err[256];
    hc_config_defaults(c);
    cr_assert_eq(hc_config_set(c, "channel.app.url=http://127.0.0.1:1/app", err, sizeof(err)), 0);
    cr_assert_eq(hc_config_set(c, "channel.app.secret=" SECRET, err, sizeof(err)), 0);
    cr_assert_eq(hc_config_finish(c, err, sizeof(err)), 0, "%s", err);
}

/* Reopen the store and apply it over base(): what a restart sees. */
static int restart(struct hc_config *c)
{
    struct hc_settings *s;
    char err[256];
    base(c);
    cr_assert_eq(hc_settings_open(&s, dir), 0);
    int n = hc_settings_apply(s, c, err, sizeof(err));
    hc_settings_close(s);
    cr_assert_geq(n, 0, "%s", err);
    cr_assert_eq(hc_config_finish(c, err, sizeof(err)), 0, "%s", err);
    return n;
}

Test(settings, kept_assignments_and_removals_win_over_the_configuration_after_a_restart)
{
    static struct hc_config c;
    struct hc_settings *s;
    cr_assert_eq(restart(&c), 0, "nothing kept yet");
    cr_assert_eq(c.n_channels, 1);
    cr_assert_eq(hc_settings_open(&s, dir), 0);
    const char *a[] = { "alarm.snooze=45m", "channel.sms.url=http://127.0.0.1:1/sms",
                        "channel.sms.secret=" SECRET, "channel.sms.priority=1" };
    cr_assert_eq(hc_settings_save(s, a, 4), 0);
    cr_assert_eq(hc_settings_remove_channel(s, "app"), 0);
    hc_settings_close(s);

    cr_assert_eq(restart(&c), 5, "four assignments and one removal");
    cr_assert_eq(c.snooze_ms, 45u * 60000);
    cr_assert_eq(c.n_channels, 1);
    cr_assert_str_eq(c.channels[0].name, "sms");
    cr_assert_eq(c.channels[0].priority, 1);

    /* Setting a removed channel again brings it back (the marker goes). */
    cr_assert_eq(hc_settings_open(&s, dir), 0);
    const char *b[] = { "channel.app.url=http://127.0.0.1:2/app" };
    cr_assert_eq(hc_settings_save(s, b, 1), 0);
    hc_settings_close(s);
    restart(&c);
    cr_assert_eq(c.n_channels, 2);
    cr_assert_str_eq(c.channels[0].name, "sms", "priority 1 first");
    cr_assert_str_eq(c.channels[1].name, "app");
    cr_assert_str_eq(c.channels[1].url, "http://127.0.0.1:2/app", "the kept url wins");
}

Test(settings, removing_a_channel_forgets_its_kept_keys)
{
    static struct hc_config c;
    struct hc_settings *s;
    cr_assert_eq(hc_settings_open(&s, dir), 0);
    const char *a[] = { "channel.sms.url=http://127.0.0.1:1/sms", "channel.sms.secret=" SECRET };
    cr_assert_eq(hc_settings_save(s, a, 2), 0);
    cr_assert_eq(hc_settings_remove_channel(s, "sms"), 0);
    const char *b[] = { "channel.sms.url=http://127.0.0.1:3/sms" };
    cr_assert_eq(hc_settings_save(s, b, 1), 0);     /* back, but without its secret */
    hc_settings_close(s);
    char err[256];
    base(&c);
    cr_assert_eq(hc_settings_open(&s, dir), 0);
    cr_assert_geq(hc_settings_apply(s, &c, err, sizeof(err)), 0);
    hc_settings_close(s);
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), -1, "sms has no secret any more");
    cr_assert(strstr(err, "secret"), "%s", err);
}

Test(settings, threshold_and_rule_unsets_outlive_the_configuration_that_names_them)
{
    static struct hc_config c;
    struct hc_settings *s;
    char err[256];
    cr_assert_eq(hc_settings_open(&s, dir), 0);
    const char *a[] = { "thresholds.acme=40", "rules.acme=seed", "rules.globex=seed" };
    cr_assert_eq(hc_settings_save(s, a, 3), 0);
    cr_assert_eq(hc_settings_remove_maker(s, "rules", "globex"), 0);
    cr_assert_eq(hc_settings_remove_maker(s, "thresholds", "zeta"), 0);
    cr_assert_eq(hc_settings_remove_maker(s, "channels", "app"), -EINVAL, "only per-maker tables");
    hc_settings_close(s);

    /* The file names globex's rule and zeta's threshold; the kept removals win. */
    base(&c);
    cr_assert_eq(hc_config_set(&c, "rules.globex=robust", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(hc_config_set(&c, "thresholds.zeta=50", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(hc_settings_open(&s, dir), 0);
    cr_assert_geq(hc_settings_apply(s, &c, err, sizeof(err)), 0, "%s", err);
    hc_settings_close(s);
    cr_assert_eq(hc_config_finish(&c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.n_rules, 1);
    cr_assert_str_eq(c.rules[0].maker, "acme");
    cr_assert_eq(c.rules[0].rule, HC_RULE_SEED);
    cr_assert_eq(c.n_thresholds, 1);
    cr_assert_str_eq(c.thresholds[0].maker, "acme");
    cr_assert_eq(c.thresholds[0].meters, 40.0);
}
