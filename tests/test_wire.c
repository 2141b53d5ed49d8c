/*
 * test_wire.c — the native msgpack wire format of DESIGN.md: what a payload
 * may hold, which reports are refused with which code, that one bad report
 * does not spoil its payload, and that hc_wire_pack() round-trips.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubcap/detect.h"
#include "hubcap/error.h"
#include "hubcap/rng.h"
#include "hubcap/wire.h"

#define TS0 1795000000000LL

static struct hc_wire w;
static msgpack_sbuffer sb;
static msgpack_packer pk;
static struct hc_report r;

static void setup(void)
{
    hc_wire_init(&w);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    memset(&r, 0xa5, sizeof(r));    /* next must overwrite every byte */
}

static void teardown(void)
{
    msgpack_sbuffer_destroy(&sb);
    hc_wire_free(&w);
}

TestSuite(wire, .init = setup, .fini = teardown);

/* ---- building payloads ---- */

static void str(const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(&pk, n);
    msgpack_pack_str_body(&pk, s, n);
}

static void str_n(char c, size_t n)
{
    char buf[256];
    memset(buf, c, n);
    msgpack_pack_str(&pk, n);
    msgpack_pack_str_body(&pk, buf, n);
}

#define F_VID   0x01
#define F_TS    0x02
#define F_LAT   0x04
#define F_LON   0x08
#define F_ACC   0x10
#define F_MAKER 0x20
#define F_ALL   0x1f

/* A report map holding the fields in mask, with values for car "CAR-01". */
static void report_map(unsigned mask, double lat)
{
    msgpack_pack_map(&pk, (size_t)__builtin_popcount(mask));
    if (mask & F_VID) { str("vid"); str("CAR-01"); }
    if (mask & F_TS) { str("ts"); msgpack_pack_int64(&pk, TS0); }
    if (mask & F_LAT) { str("lat"); msgpack_pack_double(&pk, lat); }
    if (mask & F_LON) { str("lon"); msgpack_pack_double(&pk, 114.058); }
    if (mask & F_ACC) { str("acc"); msgpack_pack_false(&pk); }
    if (mask & F_MAKER) { str("maker"); str("acme"); }
}

/* A full report map whose field `field` holds the next packed value:
 * call, then pack that value. */
static void report_map_but(const char *field)
{
    static const char *const names[] = { "vid", "ts", "lat", "lon", "acc" };
    msgpack_pack_map(&pk, 5);
    for (int i = 0; i < 5; i++) {
        if (strcmp(names[i], field) == 0)
            continue;
        str(names[i]);
        switch (i) {
        case 0: str("CAR-01"); break;
        case 1: msgpack_pack_int64(&pk, TS0); break;
        case 2: msgpack_pack_double(&pk, 22.543); break;
        case 3: msgpack_pack_double(&pk, 114.058); break;
        case 4: msgpack_pack_true(&pk); break;
        }
    }
    str(field);
}

static int open_sb(void)
{
    return hc_wire_open(&w, sb.data, sb.size);
}

static int open_bytes(const char *bytes, size_t len)
{
    return hc_wire_open(&w, bytes, len);
}

static void reset_sb(void)
{
    msgpack_sbuffer_clear(&sb);
}

/* Open sb and decode its only element. */
static int decode_one(void)
{
    cr_assert_eq(open_sb(), 0);
    int rc = hc_wire_next(&w, &r);
    cr_assert_eq(hc_wire_next(&w, &r), 0);
    return rc;
}

static void assert_vid(const struct hc_report *x, const char *vid)
{
    size_t n = strlen(vid);
    cr_assert_eq(x->vid_len, n, "vid_len %u, want %zu", x->vid_len, n);
    cr_assert(memcmp(x->vid, vid, n) == 0, "vid %.*s, want %s", x->vid_len, x->vid, vid);
}

/* ---- shapes of a payload ---- */

Test(wire, single_map_decodes_every_field)
{
    report_map(F_ALL | F_MAKER, 22.543);
    cr_assert_eq(decode_one(), 1);
    assert_vid(&r, "CAR-01");
    cr_assert_eq(r.ts, TS0);
    cr_assert_eq(r.lat, 22.543);
    cr_assert_eq(r.lon, 114.058);
    cr_assert_eq(r.acc, 0);
    cr_assert_eq(r.maker_len, 4);
    cr_assert(memcmp(r.maker, "acme", 4) == 0);
    for (size_t i = r.vid_len; i < HC_VID_MAX; i++)
        cr_assert_eq(r.vid[i], 0, "vid byte %zu not zeroed", i);
    for (size_t i = r.maker_len; i < HC_MAKER_MAX; i++)
        cr_assert_eq(r.maker[i], 0, "maker byte %zu not zeroed", i);
}

Test(wire, array_of_maps_decodes_in_order)
{
    msgpack_pack_array(&pk, 3);
    for (int i = 0; i < 3; i++)
        report_map(F_ALL, 10.0 + i);
    cr_assert_eq(open_sb(), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(hc_wire_next(&w, &r), 1);
        cr_assert_eq(r.lat, 10.0 + i);
        cr_assert_eq(r.maker_len, 0);
    }
    cr_assert_eq(hc_wire_next(&w, &r), 0);
    cr_assert_eq(hc_wire_next(&w, &r), 0, "stays at end");
}

Test(wire, empty_array_is_a_payload_of_no_reports)
{
    msgpack_pack_array(&pk, 0);
    cr_assert_eq(open_sb(), 0);
    cr_assert_eq(hc_wire_next(&w, &r), 0);
}

Test(wire, next_before_any_open_returns_zero)
{
    cr_assert_eq(hc_wire_next(&w, &r), 0);
}

Test(wire, acc_true_sets_ignition)
{
    report_map_but("acc");
    msgpack_pack_true(&pk);
    cr_assert_eq(decode_one(), 1);
    cr_assert_eq(r.acc, 1);
}

/* ---- field forms ---- */

Test(wire, vid_unsigned_int_becomes_its_decimal_string)
{
    static const struct { uint64_t v; const char *s; } cases[] = {
        { 123456789012345ull, "123456789012345" },
        { 0, "0" },
        { 7, "7" },
        { UINT64_MAX, "18446744073709551615" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        reset_sb();
        report_map_but("vid");
        msgpack_pack_uint64(&pk, cases[i].v);
        cr_assert_eq(decode_one(), 1);
        assert_vid(&r, cases[i].s);
    }
}

Test(wire, vid_positive_value_in_signed_msgpack_type_counts_as_unsigned)
{
    static const char bytes[] = {
        (char)0x85,
        (char)0xa3, 'v', 'i', 'd', (char)0xd3, 0, 0, 0, 0, 0, 0, 0x30, 0x39,
        (char)0xa2, 't', 's', 0x05,
        (char)0xa3, 'l', 'a', 't', 0x01,
        (char)0xa3, 'l', 'o', 'n', 0x02,
        (char)0xa3, 'a', 'c', 'c', (char)0xc2,
    };
    cr_assert_eq(open_bytes(bytes, sizeof(bytes)), 0);
    cr_assert_eq(hc_wire_next(&w, &r), 1);
    assert_vid(&r, "12345");
    cr_assert_eq(r.ts, 5);
}

Test(wire, lat_lon_as_integers)
{
    msgpack_pack_map(&pk, 5);
    str("vid"); str("v");
    str("ts"); msgpack_pack_int64(&pk, TS0);
    str("lat"); msgpack_pack_int64(&pk, -45);
    str("lon"); msgpack_pack_uint64(&pk, 180);
    str("acc"); msgpack_pack_false(&pk);
    cr_assert_eq(decode_one(), 1);
    cr_assert_eq(r.lat, -45.0);
    cr_assert_eq(r.lon, 180.0);
}

Test(wire, lat_lon_as_float32)
{
    msgpack_pack_map(&pk, 5);
    str("vid"); str("v");
    str("ts"); msgpack_pack_int64(&pk, TS0);
    str("lat"); msgpack_pack_float(&pk, 22.543f);
    str("lon"); msgpack_pack_float(&pk, -114.058f);
    str("acc"); msgpack_pack_false(&pk);
    cr_assert_eq(decode_one(), 1);
    cr_assert_eq(r.lat, (double)22.543f);
    cr_assert_eq(r.lon, (double)-114.058f);
}

Test(wire, ts_negative_int_type_is_out_of_range)
{
    report_map_but("ts");
    msgpack_pack_int64(&pk, -1);
    cr_assert_eq(decode_one(), HC_ERANGE_TS);
}

Test(wire, range_boundaries_accepted)
{
    msgpack_pack_array(&pk, 2);
    msgpack_pack_map(&pk, 5);
    str("vid"); str("v");
    str("ts"); msgpack_pack_int64(&pk, 0);
    str("lat"); msgpack_pack_double(&pk, 90.0);
    str("lon"); msgpack_pack_double(&pk, -180.0);
    str("acc"); msgpack_pack_false(&pk);
    msgpack_pack_map(&pk, 5);
    str("vid"); str("v");
    str("ts"); msgpack_pack_int64(&pk, HC_TS_MAX - 1);
    str("lat"); msgpack_pack_double(&pk, -90.0);
    str("lon"); msgpack_pack_double(&pk, 180.0);
    str("acc"); msgpack_pack_false(&pk);
    cr_assert_eq(open_sb(), 0);
    cr_assert_eq(hc_wire_next(&w, &r), 1);
    cr_assert_eq(r.ts, 0);
    cr_assert_eq(hc_wire_next(&w, &r), 1);
    cr_assert_eq(r.ts, HC_TS_MAX - 1);
    cr_assert_eq(r.lat, -90.0);
}

Test(wire, unknown_keys_are_ignored_whatever_their_value)
{
    msgpack_pack_map(&pk, 14);
    str("speed"); msgpack_pack_double(&pk, 3.5);
    str("extra"); msgpack_pack_map(&pk, 2);
        str("a"); msgpack_pack_array(&pk, 2);
            msgpack_pack_int(&pk, 1);
            msgpack_pack_map(&pk, 1); str("vid"); str("NESTED");
        msgpack_pack_int(&pk, 9); msgpack_pack_nil(&pk);
    str("list"); msgpack_pack_array(&pk, 3);
        msgpack_pack_nil(&pk); str("lat"); msgpack_pack_true(&pk);
    str("blob"); msgpack_pack_bin(&pk, 3); msgpack_pack_bin_body(&pk, "\0\1\2", 3);
    str("when"); msgpack_pack_ext(&pk, 4, -1); msgpack_pack_ext_body(&pk, "\0\0\0\1", 4);
    str("none"); msgpack_pack_nil(&pk);
    msgpack_pack_int(&pk, 1); str("not-a-string-key");
    msgpack_pack_array(&pk, 0); msgpack_pack_int(&pk, 2);
    str("VID"); str("upper");
    str("vid"); str("CAR-02");
    str("ts"); msgpack_pack_int64(&pk, TS0);
    str("lat"); msgpack_pack_double(&pk, 1.5);
    str("lon"); msgpack_pack_double(&pk, 2.5);
    str("acc"); msgpack_pack_true(&pk);
    cr_assert_eq(decode_one(), 1);
    assert_vid(&r, "CAR-02");
    cr_assert_eq(r.lat, 1.5);
    cr_assert_eq(r.lon, 2.5);
    cr_assert_eq(r.acc, 1);
}

Test(wire, keys_compare_exactly_with_length)
{
    /* "vid\0", "vi", "viD" and "vidx" are not "vid". */
    msgpack_pack_map(&pk, 8);
    str("viD"); str("D");
    msgpack_pack_str(&pk, 4); msgpack_pack_str_body(&pk, "vid\0", 4); str("A");
    str("vi"); str("B");
    str("vidx"); str("C");
    str("ts"); msgpack_pack_int64(&pk, TS0);
    str("lat"); msgpack_pack_double(&pk, 1.0);
    str("lon"); msgpack_pack_double(&pk, 1.0);
    str("acc"); msgpack_pack_true(&pk);
    cr_assert_eq(decode_one(), HC_EMISSING);
}

Test(wire, bin_key_is_not_a_string_key)
{
    msgpack_pack_map(&pk, 5);
    msgpack_pack_bin(&pk, 3); msgpack_pack_bin_body(&pk, "vid", 3); str("A");
    str("ts"); msgpack_pack_int64(&pk, TS0);
    str("lat"); msgpack_pack_double(&pk, 1.0);
    str("lon"); msgpack_pack_double(&pk, 1.0);
    str("acc"); msgpack_pack_true(&pk);
    cr_assert_eq(decode_one(), HC_EMISSING);
}

Test(wire, duplicate_key_last_wins)
{
    msgpack_pack_map(&pk, 8);
    str("vid"); str("FIRST");
    str("ts"); msgpack_pack_int64(&pk, 1);
    str("lat"); msgpack_pack_double(&pk, 1.0);
    str("lon"); msgpack_pack_double(&pk, 1.0);
    str("acc"); msgpack_pack_true(&pk);
    str("vid"); str("LAST");
    str("ts"); msgpack_pack_int64(&pk, 2);
    str("acc"); msgpack_pack_false(&pk);
    cr_assert_eq(decode_one(), 1);
    assert_vid(&r, "LAST");
    cr_assert_eq(r.ts, 2);
    cr_assert_eq(r.acc, 0);
}

Test(wire, duplicate_key_last_wins_even_when_last_is_bad)
{
    msgpack_pack_map(&pk, 6);
    str("vid"); str("GOOD");
    str("ts"); msgpack_pack_int64(&pk, 1);
    str("lat"); msgpack_pack_double(&pk, 1.0);
    str("lon"); msgpack_pack_double(&pk, 1.0);
    str("acc"); msgpack_pack_true(&pk);
    str("lat"); msgpack_pack_double(&pk, 91.0);
    cr_assert_eq(decode_one(), HC_ERANGE_LAT);
}

/* ---- vid and maker lengths ---- */

Test(wire, vid_of_64_bytes_ok_65_rejected)
{
    report_map_but("vid");
    str_n('v', 64);
    cr_assert_eq(decode_one(), 1);
    cr_assert_eq(r.vid_len, 64);
    cr_assert_eq(r.vid[63], 'v');

    reset_sb();
    report_map_but("vid");
    str_n('v', 65);
    cr_assert_eq(decode_one(), HC_EVID);
}

Test(wire, empty_vid_rejected)
{
    report_map_but("vid");
    str("");
    cr_assert_eq(decode_one(), HC_EVID);
}

Test(wire, maker_of_32_bytes_ok_33_rejected)
{
    msgpack_pack_map(&pk, 6);
    str("vid"); str("v"); str("ts"); msgpack_pack_int64(&pk, TS0);
    str("lat"); msgpack_pack_double(&pk, 1.0); str("lon"); msgpack_pack_double(&pk, 1.0);
    str("acc"); msgpack_pack_true(&pk);
    str("maker"); str_n('m', 32);
    cr_assert_eq(decode_one(), 1);
    cr_assert_eq(r.maker_len, 32);
    cr_assert_eq(r.maker[31], 'm');

    reset_sb();
    msgpack_pack_map(&pk, 6);
    str("vid"); str("v"); str("ts"); msgpack_pack_int64(&pk, TS0);
    str("lat"); msgpack_pack_double(&pk, 1.0); str("lon"); msgpack_pack_double(&pk, 1.0);
    str("acc"); msgpack_pack_true(&pk);
    str("maker"); str_n('m', 33);
    cr_assert_eq(decode_one(), HC_EMAKER);
}

Test(wire, maker_nil_or_empty_means_absent)
{
    msgpack_pack_array(&pk, 2);
    for (int i = 0; i < 2; i++) {
        msgpack_pack_map(&pk, 6);
        str("vid"); str("v"); str("ts"); msgpack_pack_int64(&pk, TS0);
        str("lat"); msgpack_pack_double(&pk, 1.0); str("lon"); msgpack_pack_double(&pk, 1.0);
        str("acc"); msgpack_pack_true(&pk);
        str("maker");
        if (i == 0)
            msgpack_pack_nil(&pk);
        else
            str("");
    }
    cr_assert_eq(open_sb(), 0);
    cr_assert_eq(hc_wire_next(&w, &r), 1);
    cr_assert_eq(r.maker_len, 0);
    cr_assert_eq(r.maker[0], 0);
    cr_assert_eq(hc_wire_next(&w, &r), 1);
    cr_assert_eq(r.maker_len, 0);
}

/* ---- rejected reports ---- */

Test(wire, each_missing_field_rejected_and_next_report_still_decoded)
{
    static const unsigned fields[] = { F_VID, F_TS, F_LAT, F_LON, F_ACC };
    for (size_t i = 0; i < 5; i++) {
        reset_sb();
        msgpack_pack_array(&pk, 2);
        report_map((F_ALL & ~fields[i]) | F_MAKER, 1.0);
        report_map(F_ALL, 2.0);
        cr_assert_eq(open_sb(), 0);
        cr_assert_eq(hc_wire_next(&w, &r), HC_EMISSING, "field %zu", i);
        cr_assert_eq(hc_wire_next(&w, &r), 1);
        cr_assert_eq(r.lat, 2.0);
        cr_assert_eq(hc_wire_next(&w, &r), 0);
    }
}

Test(wire, missing_is_reported_before_wrong_type)
{
    msgpack_pack_map(&pk, 2);
    str("vid"); msgpack_pack_double(&pk, 1.0);
    str("ts"); str("soon");
    cr_assert_eq(decode_one(), HC_EMISSING);
}

/* Pack one wrong value for a field. */
typedef void (*packfn)(void);
static void p_float(void) { msgpack_pack_double(&pk, 1.0); }
static void p_neg(void) { msgpack_pack_int64(&pk, -5); }
static void p_str(void) { str("12"); }
static void p_bool(void) { msgpack_pack_true(&pk); }
static void p_int1(void) { msgpack_pack_int(&pk, 1); }
static void p_nil(void) { msgpack_pack_nil(&pk); }
static void p_bin(void) { msgpack_pack_bin(&pk, 2); msgpack_pack_bin_body(&pk, "ab", 2); }
static void p_map(void) { msgpack_pack_map(&pk, 0); }
static void p_array(void) { msgpack_pack_array(&pk, 1); msgpack_pack_int(&pk, 1); }

Test(wire, wrong_field_types_rejected_with_etype)
{
    static const struct { const char *field; packfn pack; } cases[] = {
        { "vid", p_float }, { "vid", p_neg }, { "vid", p_bool }, { "vid", p_nil },
        { "vid", p_bin }, { "vid", p_array },
        { "ts", p_float }, { "ts", p_str }, { "ts", p_bool }, { "ts", p_nil },
        { "lat", p_str }, { "lat", p_bool }, { "lat", p_nil }, { "lat", p_map },
        { "lon", p_str }, { "lon", p_array }, { "lon", p_nil },
        { "acc", p_int1 }, { "acc", p_nil }, { "acc", p_str }, { "acc", p_float },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        reset_sb();
        msgpack_pack_array(&pk, 2);
        report_map_but(cases[i].field);
        cases[i].pack();
        report_map(F_ALL, 3.0);
        cr_assert_eq(open_sb(), 0);
        int rc = hc_wire_next(&w, &r);
        cr_assert_eq(rc, HC_ETYPE, "case %zu (%s): %d", i, cases[i].field, rc);
        cr_assert_eq(hc_wire_next(&w, &r), 1);
        cr_assert_eq(r.lat, 3.0);
    }
}

Test(wire, maker_of_wrong_type_rejected_with_etype)
{
    static const packfn cases[] = { p_int1, p_bool, p_bin, p_map, p_float };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        reset_sb();
        msgpack_pack_map(&pk, 6);
        str("vid"); str("v"); str("ts"); msgpack_pack_int64(&pk, TS0);
        str("lat"); msgpack_pack_double(&pk, 1.0); str("lon"); msgpack_pack_double(&pk, 1.0);
        str("acc"); msgpack_pack_true(&pk);
        str("maker"); cases[i]();
        cr_assert_eq(decode_one(), HC_ETYPE, "case %zu", i);
    }
}

Test(wire, out_of_range_values_rejected)
{
    static const struct { const char *field; double v; int want; } cases[] = {
        { "lat", 90.0001, HC_ERANGE_LAT }, { "lat", -91.0, HC_ERANGE_LAT },
        { "lat", NAN, HC_ERANGE_LAT }, { "lat", INFINITY, HC_ERANGE_LAT },
        { "lon", 180.5, HC_ERANGE_LON }, { "lon", -180.0001, HC_ERANGE_LON },
        { "lon", -INFINITY, HC_ERANGE_LON }, { "lon", NAN, HC_ERANGE_LON },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        reset_sb();
        report_map_but(cases[i].field);
        msgpack_pack_double(&pk, cases[i].v);
        cr_assert_eq(decode_one(), cases[i].want, "case %zu", i);
    }

    reset_sb();
    report_map_but("lat");
    msgpack_pack_int64(&pk, 91);
    cr_assert_eq(decode_one(), HC_ERANGE_LAT);

    static const int64_t bad_ts[] = { -1, INT64_MIN, HC_TS_MAX };
    for (size_t i = 0; i < 3; i++) {
        reset_sb();
        report_map_but("ts");
        msgpack_pack_int64(&pk, bad_ts[i]);
        cr_assert_eq(decode_one(), HC_ERANGE_TS, "ts case %zu", i);
    }
    reset_sb();
    report_map_but("ts");
    msgpack_pack_uint64(&pk, UINT64_MAX);
    cr_assert_eq(decode_one(), HC_ERANGE_TS);
}

Test(wire, non_map_element_rejected_then_iteration_continues)
{
    msgpack_pack_array(&pk, 5);
    msgpack_pack_int(&pk, 1);
    report_map(F_ALL, 1.0);
    str("report");
    msgpack_pack_array(&pk, 0);
    report_map(F_ALL, 2.0);
    cr_assert_eq(open_sb(), 0);
    cr_assert_eq(hc_wire_next(&w, &r), HC_ETYPE);
    cr_assert_eq(hc_wire_next(&w, &r), 1);
    cr_assert_eq(r.lat, 1.0);
    cr_assert_eq(hc_wire_next(&w, &r), HC_ETYPE);
    cr_assert_eq(hc_wire_next(&w, &r), HC_ETYPE);
    cr_assert_eq(hc_wire_next(&w, &r), 1);
    cr_assert_eq(r.lat, 2.0);
    cr_assert_eq(hc_wire_next(&w, &r), 0);
}

/* ---- refused payloads ---- */

Test(wire, malformed_bytes_refused)
{
    cr_assert_eq(open_bytes("\xc1", 1), HC_EWIRE);
    cr_assert_eq(open_bytes("\x91\xc1", 2), HC_EWIRE);
    cr_assert_eq(open_bytes("hello", 5), HC_EWIRE);
    cr_assert_eq(open_bytes("", 0), HC_EWIRE);
    cr_assert_eq(hc_wire_open(&w, NULL, 0), HC_EWIRE);
    cr_assert_eq(hc_wire_next(&w, &r), 0, "a refused payload yields nothing");
}

Test(wire, every_truncation_of_a_payload_refused)
{
    msgpack_pack_array(&pk, 2);
    report_map(F_ALL | F_MAKER, 1.0);
    report_map(F_ALL, 2.0);
    for (size_t n = 0; n < sb.size; n++)
        cr_assert_eq(hc_wire_open(&w, sb.data, n), HC_EWIRE, "prefix of %zu bytes", n);
    cr_assert_eq(open_sb(), 0);
}

Test(wire, trailing_bytes_refused)
{
    report_map(F_ALL, 1.0);
    msgpack_pack_nil(&pk);
    cr_assert_eq(open_sb(), HC_EWIRE);

    reset_sb();
    report_map(F_ALL, 1.0);
    report_map(F_ALL, 2.0);     /* two maps without an array */
    cr_assert_eq(open_sb(), HC_EWIRE);
}

Test(wire, top_level_other_types_refused)
{
    packfn cases[] = { p_int1, p_neg, p_str, p_nil, p_bool, p_float, p_bin };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        reset_sb();
        cases[i]();
        cr_assert_eq(open_sb(), HC_EWIRE, "case %zu", i);
    }
}

Test(wire, container_counts_beyond_the_bytes_refused_without_allocating)
{
    /* msgpack-c would allocate count * 24 or 48 bytes up front. */
    cr_assert_eq(open_bytes("\xdd\xff\xff\xff\xff", 5), HC_EWIRE);
    cr_assert_eq(open_bytes("\xdf\xff\xff\xff\xff", 5), HC_EWIRE);
    cr_assert_eq(open_bytes("\xdd\x10\x00\x00\x00", 5), HC_EWIRE);
    cr_assert_eq(open_bytes("\x91\xde\xff\xff", 4), HC_EWIRE);
    cr_assert_eq(open_bytes("\xdb\xff\xff\xff\xff", 5), HC_EWIRE);
    /* An array of 3 nils is exactly as long as it must be. */
    cr_assert_eq(open_bytes("\xdc\x00\x03\xc0\xc0\xc0", 6), 0);
    cr_assert_eq(hc_wire_next(&w, &r), HC_ETYPE);
}

Test(wire, nesting_beyond_msgpack_c_limit_refused_moderate_nesting_ok)
{
    /* A report with an unknown value nested 20 deep decodes... */
    msgpack_pack_map(&pk, 6);
    str("deep");
    for (int i = 0; i < 20; i++)
        msgpack_pack_array(&pk, 1);
    msgpack_pack_nil(&pk);
    str("vid"); str("v"); str("ts"); msgpack_pack_int64(&pk, TS0);
    str("lat"); msgpack_pack_double(&pk, 1.0); str("lon"); msgpack_pack_double(&pk, 1.0);
    str("acc"); msgpack_pack_true(&pk);
    cr_assert_eq(decode_one(), 1);

    /* ...while msgpack-c opens at most 32 containers, empty ones too. */
    static const struct { int depth, last_empty, want; } cases[] = {
        { 32, 0, 0 }, { 33, 0, HC_EWIRE }, { 40, 0, HC_EWIRE },
        { 32, 1, 0 }, { 33, 1, HC_EWIRE },
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        reset_sb();
        for (int i = 0; i < cases[c].depth; i++)
            msgpack_pack_array(&pk, cases[c].last_empty && i == cases[c].depth - 1 ? 0 : 1);
        if (!cases[c].last_empty)
            msgpack_pack_nil(&pk);
        cr_assert_eq(open_sb(), cases[c].want, "case %zu", c);
        if (cases[c].want == 0)
            cr_assert_eq(hc_wire_next(&w, &r), HC_ETYPE);
    }

    /* The limit counts open containers, not containers in all. */
    reset_sb();
    msgpack_pack_array(&pk, 100);
    for (int i = 0; i < 100; i++) {
        for (int d = 0; d < 20; d++)
            msgpack_pack_array(&pk, 1);
        msgpack_pack_nil(&pk);
    }
    cr_assert_eq(open_sb(), 0);
}

/* ---- encoder and reuse ---- */

static void random_report(struct hc_rng *g, struct hc_report *x)
{
    memset(x, 0, sizeof(*x));
    x->ts = (int64_t)hc_rng_below(g, (uint64_t)HC_TS_MAX);
    x->lat = hc_rng_range(g, -90.0, 90.0);
    x->lon = hc_rng_range(g, -180.0, 180.0);
    x->acc = (uint8_t)hc_rng_below(g, 2);
    x->vid_len = (uint8_t)(1 + hc_rng_below(g, HC_VID_MAX));
    for (unsigned i = 0; i < x->vid_len; i++)
        x->vid[i] = (char)hc_rng_next(g);
    x->maker_len = (uint8_t)hc_rng_below(g, HC_MAKER_MAX + 1);
    for (unsigned i = 0; i < x->maker_len; i++)
        x->maker[i] = (char)hc_rng_next(g);
    switch (hc_rng_below(g, 8)) {   /* edges */
    case 0: x->lat = 90.0; x->lon = -180.0; break;
    case 1: x->ts = 0; break;
    case 2: x->ts = HC_TS_MAX - 1; break;
    default: break;
    }
}

static void assert_same(const struct hc_report *a, const struct hc_report *b, int i)
{
    cr_assert_eq(a->ts, b->ts, "report %d ts", i);
    cr_assert_eq(a->lat, b->lat, "report %d lat", i);
    cr_assert_eq(a->lon, b->lon, "report %d lon", i);
    cr_assert_eq(a->acc, b->acc, "report %d acc", i);
    cr_assert_eq(a->vid_len, b->vid_len, "report %d vid_len", i);
    cr_assert_eq(a->maker_len, b->maker_len, "report %d maker_len", i);
    cr_assert(memcmp(a, b, sizeof(*a)) == 0, "report %d differs", i);
}

Test(wire, pack_then_decode_round_trips_random_reports)
{
    enum { N = 2000 };
    static struct hc_report in[N];
    struct hc_rng g;
    hc_rng_seed(&g, 808);
    msgpack_pack_array(&pk, N);
    for (int i = 0; i < N; i++) {
        random_report(&g, &in[i]);
        cr_assert_eq(hc_wire_pack(&pk, &in[i]), 0);
    }
    cr_assert_eq(open_sb(), 0);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(hc_wire_next(&w, &r), 1, "report %d", i);
        assert_same(&r, &in[i], i);
    }
    cr_assert_eq(hc_wire_next(&w, &r), 0);
}

Test(wire, pack_writes_maker_only_when_present)
{
    struct hc_report x;
    memset(&x, 0, sizeof(x));
    x.vid_len = 1;
    x.vid[0] = 'v';
    cr_assert_eq(hc_wire_pack(&pk, &x), 0);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object o;
    size_t off = 0;
    cr_assert_eq(msgpack_unpack(sb.data, sb.size, &off, &z, &o), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(o.type, MSGPACK_OBJECT_MAP);
    cr_assert_eq(o.via.map.size, 5);

    reset_sb();
    x.maker_len = 2;
    memcpy(x.maker, "mk", 2);
    cr_assert_eq(hc_wire_pack(&pk, &x), 0);
    off = 0;
    cr_assert_eq(msgpack_unpack(sb.data, sb.size, &off, &z, &o), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(o.via.map.size, 6);
    msgpack_zone_destroy(&z);
}

Test(wire, one_decoder_serves_many_payloads)
{
    struct hc_rng g;
    hc_rng_seed(&g, 5170);
    static struct hc_report in[300];
    for (int round = 0; round < 3000; round++) {
        reset_sb();
        int kind = (int)hc_rng_below(&g, 4);
        int n = 1 + (int)hc_rng_below(&g, 300);
        if (kind == 0) {                        /* refused payload */
            msgpack_pack_array(&pk, 2);
            report_map(F_ALL, 1.0);
            cr_assert_eq(hc_wire_open(&w, sb.data, sb.size - 1), HC_EWIRE);
            cr_assert_eq(hc_wire_next(&w, &r), 0);
            continue;
        }
        if (kind == 1)
            n = 1;
        if (n > 1)
            msgpack_pack_array(&pk, (size_t)n);
        for (int i = 0; i < n; i++) {
            random_report(&g, &in[i]);
            cr_assert_eq(hc_wire_pack(&pk, &in[i]), 0);
        }
        cr_assert_eq(open_sb(), 0, "round %d", round);
        for (int i = 0; i < n; i++) {
            cr_assert_eq(hc_wire_next(&w, &r), 1, "round %d report %d", round, i);
            assert_same(&r, &in[i], i);
        }
        cr_assert_eq(hc_wire_next(&w, &r), 0);
    }
}

Test(wire, payload_larger_than_the_kept_zone_decodes_and_smaller_ones_follow)
{
    /* 40000 reports need ~12 MiB of zone, more than HC_WIRE_ZONE_KEEP. */
    enum { N = 40000 };
    struct hc_report x;
    struct hc_rng g;
    hc_rng_seed(&g, 1);
    msgpack_pack_array(&pk, N);
    for (int i = 0; i < N; i++) {
        random_report(&g, &x);
        x.ts = i;
        cr_assert_eq(hc_wire_pack(&pk, &x), 0);
    }
    for (int pass = 0; pass < 2; pass++) {
        cr_assert_eq(open_sb(), 0);
        for (int i = 0; i < N; i++) {
            cr_assert_eq(hc_wire_next(&w, &r), 1);
            cr_assert_eq(r.ts, i);
        }
        cr_assert_eq(hc_wire_next(&w, &r), 0);
    }
    reset_sb();
    report_map(F_ALL, 7.0);
    cr_assert_eq(decode_one(), 1);
    cr_assert_eq(r.lat, 7.0);
}

Test(wire, free_accepts_null_zeroed_and_freed)
{
    struct hc_wire z;
    memset(&z, 0, sizeof(z));
    hc_wire_free(NULL);
    hc_wire_free(&z);
    report_map(F_ALL, 1.0);
    cr_assert_eq(hc_wire_open(&z, sb.data, sb.size), 0);
    cr_assert_eq(hc_wire_next(&z, &r), 1);
    hc_wire_free(&z);
    hc_wire_free(&z);
    cr_assert_eq(hc_wire_next(&z, &r), 0);
}

Test(wire, frame_header_is_big_endian)
{
    uint8_t h[4];
    hc_wire_frame_header(h, 0x00000102);
    cr_assert(h[0] == 0 && h[1] == 0 && h[2] == 1 && h[3] == 2);
    cr_assert_eq(hc_wire_frame_length((const uint8_t[4]){ 0, 0, 1, 2 }), 0x102u);
    hc_wire_frame_header(h, 0xfedcba98);
    cr_assert(h[0] == 0xfe && h[1] == 0xdc && h[2] == 0xba && h[3] == 0x98);
    cr_assert_eq(hc_wire_frame_length(h), 0xfedcba98u);
    cr_assert_eq(HC_WIRE_MAX_PAYLOAD_DEFAULT, 1048576u);
}
