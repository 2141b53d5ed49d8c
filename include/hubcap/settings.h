/*
 * settings.h — settings changed live through the control socket, kept in
 * the LMDB environment <data_dir>/settings so that they outlive a restart.
 *
 * Each is kept as the configuration assignment that made it
 * ("alarm.snooze" -> "90m", "channel.sms.url" -> "https://..."), a
 * channel removed live as a marker ("channel.sms" -> "removed"), and a
 * threshold or rule unset live as "thresholds.MAKER" / "rules.MAKER" ->
 * "removed".  At
 * start-up hubcapd applies them after the file and --set, through the
 * configuration's own parser (hc_settings_apply): a live change is checked
 * exactly as a configured one, and wins over it.
 *
 * Threading: the main thread only.
 */
#ifndef HUBCAP_SETTINGS_H
#define HUBCAP_SETTINGS_H

#include <stddef.h>

#include "hubcap/config.h"

struct hc_settings;

/* Open (create) <data_dir>/settings.  0 or a negative error (logged). */
int hc_settings_open(struct hc_settings **out, const char *data_dir);

/* Apply every kept setting to c: the assignments (hc_config_set), then the
 * removals.  How many were applied, or -1 with err (a kept value the
 * configuration no longer accepts, say after an upgrade) and c as far as
 * it got. */
int hc_settings_apply(struct hc_settings *s, struct hc_config *c, char *err, size_t errlen);

/* Keep n assignments "section.key=value" in one durable transaction; one
 * for channel.NAME.* also forgets NAME's removal.  0 or a negative error. */
int hc_settings_save(struct hc_settings *s, const char *const *assign, size_t n);

/* Forget every kept channel.NAME.* and keep NAME's removal.  0 or a
 * negative error. */
int hc_settings_remove_channel(struct hc_settings *s, const char *name);

/* Keep the removal of maker's own entry in section "thresholds" or
 * "rules" ("thresholds.MAKER" -> "removed"): applied after the file, so the
 * maker keeps the default even if the file names it; a later save of
 * thresholds.MAKER replaces it.  0 or a negative error. */
int hc_settings_remove_maker(struct hc_settings *s, const char *section, const char *maker);

/* The kept value of key ("alarm.snooze", "thresholds.acme"; "removed" for
 * a removal) into buf (truncated to cap).  0, -ENOENT, or an error. */
int hc_settings_get(struct hc_settings *s, const char *key, char *buf, size_t cap);

void hc_settings_close(struct hc_settings *s);

#endif
