/*
 * alarmjson.h — the alarm as the JSON body of DESIGN.md ("Alarm webhook"):
 *
 *   {"type":"vehicle.moved","timestamp":"...","data":{"alarm_id":"0-7",
 *    "vid":"...","maker":"...","state":"firing","threshold_m":35.0,
 *    "exceeding_pairs":28,"max_distance_m":412.7,
 *    "parked":{"lat":..,"lon":..,"ts":".."},"latest":{...}}}
 *
 * The same body goes to alarms.log and, with channel and attempt added, to
 * webhooks.  Pure functions; any thread.
 */
#ifndef HUBCAP_ALARMJSON_H
#define HUBCAP_ALARMJSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "hubcap/detect.h"

/* Alarm id text for (shard, sequence): "3-42". */
#define HC_ALARM_ID_LEN 32
void hc_alarm_id_format(unsigned shard, uint64_t seq, char buf[HC_ALARM_ID_LEN]);

/* The body as a compact JSON string (malloc'd, caller frees) with no
 * trailing newline; NULL if out of memory.  now_ms is the event time. */
/* A vehicle id or a maker as a JSON string (new reference): bytes that are
 * not UTF-8 become "hex:" and the id's bytes in hex, or "" for a maker. */
json_t *hc_json_vid(const char *vid);
json_t *hc_json_maker(const char *maker);

char *hc_alarm_json(const struct hc_alarm *a, const char *alarm_id, const char *state,
                    int64_t now_ms);

#endif
