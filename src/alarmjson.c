/*
 * alarmjson.c — alarm bodies as JSON (see alarmjson.h), built with jansson
 * so vehicle ids and maker names are escaped correctly whatever bytes a
 * device sent.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "hubcap/alarmjson.h"
#include "hubcap/timefmt.h"

void hc_alarm_id_format(unsigned shard, uint64_t seq, char buf[HC_ALARM_ID_LEN])
{
    snprintf(buf, HC_ALARM_ID_LEN, "%u-%" PRIu64, shard, seq);
}

static json_t *position(double lat, double lon, int64_t ts)
{
    char t[HC_TIME_LEN];
    return json_pack("{s:f, s:f, s:s}", "lat", lat, "lon", lon, "ts",
                     hc_time_format(ts, 1, t));
}

/* Ids and makers are arbitrary bytes from devices.  JSON strings must be
 * UTF-8: an id that is not becomes "hex:" and its bytes in hex (lossless);
 * a maker that is not becomes "". */
json_t *hc_json_vid(const char *vid)
{
    json_t *j = json_stringn(vid, strlen(vid));
    if (!j) {
        char hex[2 * HC_VID_MAX + 5] = "hex:";
        for (size_t i = 0; vid[i] && i < HC_VID_MAX; i++)
            snprintf(hex + 4 + 2 * i, 3, "%02x", (unsigned char)vid[i]);
        j = json_string(hex);
    }
    return j;
}

json_t *hc_json_maker(const char *maker)
{
    json_t *j = json_stringn(maker, strlen(maker));
    return j ? j : json_string("");
}

char *hc_alarm_json(const struct hc_alarm *a, const char *alarm_id, const char *state,
                    int64_t now_ms)
{
    char now[HC_TIME_LEN];
    json_t *vid = hc_json_vid(a->vid);
    json_t *maker = hc_json_maker(a->maker);
    json_t *data = json_pack("{s:s, s:o, s:o, s:s, s:f, s:i, s:f, s:o, s:o}",
                             "alarm_id", alarm_id, "vid", vid, "maker", maker, "state", state,
                             "threshold_m", a->threshold_m,
                             "exceeding_pairs", (int)a->exceeding_pairs,
                             "max_distance_m", a->max_distance_m,
                             "parked", position(a->parked_lat, a->parked_lon, a->parked_ts),
                             "latest", position(a->latest_lat, a->latest_lon, a->latest_ts));
    json_t *body = json_pack("{s:s, s:s, s:o}", "type", "vehicle.moved", "timestamp",
                             hc_time_format(now_ms, 0, now), "data", data);
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                          JSON_REAL_PRECISION(12)) : NULL;
    json_decref(body);
    return s;
}
