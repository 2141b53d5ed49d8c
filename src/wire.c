/*
 * wire.c — the native msgpack wire format (see wire.h for the contract).
 *
 * Decoding is msgpack-c's msgpack_unpack() into a zone this decoder owns,
 * followed by a walk over each report map.  One guard comes first:
 * msgpack-c allocates an array's or map's element storage from the count
 * in its header, before reading any element, so a 5-byte payload
 * "dd ff ff ff ff" would ask for ~100 GB (and "dd 10 00 00 00" succeeds in
 * mapping 8 GB).  hc_wire_open() therefore first walks the object headers
 * (sizes only, no values) and refuses any container whose count exceeds
 * the bytes left, since every object takes at least one byte, and any
 * nesting msgpack-c would refuse.  The same walk yields the exact zone size
 * msgpack-c will need, which lets the zone be sized once and then reused
 * without further allocation.
 *
 * Runs on whichever thread owns the struct hc_wire (normally the front
 * thread).
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "hubcap/error.h"
#include "hubcap/wire.h"

#define ZONE_MIN (16u << 10)    /* first zone: a payload of ~50 reports */

void hc_wire_init(struct hc_wire *w)
{
    memset(w, 0, sizeof(*w));
}

void hc_wire_free(struct hc_wire *w)
{
    if (!w)
        return;
    if (w->zone_ready)
        msgpack_zone_destroy(&w->zone);
    memset(w, 0, sizeof(*w));
}

static uint32_t load_be(const uint8_t *p, unsigned k)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < k; i++)
        v = v << 8 | p[i];
    return v;
}

/* msgpack-c 4.0 parses with a fixed stack of MSGPACK_EMBED_STACK_SIZE (32)
 * open containers and refuses a container opened below that, even an empty
 * one.  The library's compiled value is what counts, so it is restated
 * here; test_wire pins the boundary. */
#define DEPTH_MAX 32

/*
 * Walk the headers of the one msgpack object that must fill p[0..len).
 * Returns 0 with *zone_bytes set to what msgpack-c will take from its zone
 * for container storage, or -1 if the bytes are not exactly one object
 * (truncated, trailing bytes, the reserved byte 0xc1, nesting msgpack-c
 * refuses) or declare more elements than the remaining bytes could hold.
 * Values are not decoded: msgpack-c does that.  Invariant: `need` objects
 * are still to come (the sum of rem[]), and need <= bytes left, so the
 * counts of all containers together are at most len.
 */
static int scan(const uint8_t *p, size_t len, size_t *zone_bytes)
{
    const uint8_t *end = p + len;
    uint64_t rem[DEPTH_MAX];    /* objects still to come in each open container */
    unsigned top = 0;
    uint64_t need = 1;
    size_t zb = 0;

    do {
        if (p == end)
            return -1;
        unsigned b = *p++;
        size_t left = (size_t)(end - p);
        uint64_t skip = 0;      /* bytes after the type byte */
        uint64_t n = 0;         /* container elements (map: pairs) */
        unsigned k = 0;         /* width of a big-endian length field */
        int container = 0, map = 0;
        need--;

        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool: the type byte is all */
        } else if (b <= 0x9f) {
            n = b & 0x0f;                           /* fixmap, fixarray */
            container = 1;
            map = b <= 0x8f;
        } else if (b <= 0xbf) {
            skip = b & 0x1f;                        /* fixstr */
        } else if (b == 0xc1) {
            return -1;                              /* never used */
        } else if (b <= 0xc6) {
            k = 1u << (b - 0xc4);                   /* bin 8/16/32 */
        } else if (b <= 0xc9) {
            k = 1u << (b - 0xc7);                   /* ext 8/16/32 */
            skip = 1;                               /* + the ext type */
        } else if (b <= 0xcb) {
            skip = b == 0xca ? 4 : 8;               /* float 32/64 */
        } else if (b <= 0xcf) {
            skip = 1u << (b - 0xcc);                /* uint 8..64 */
        } else if (b <= 0xd3) {
            skip = 1u << (b - 0xd0);                /* int 8..64 */
        } else if (b <= 0xd8) {
            skip = 1 + (1u << (b - 0xd4));          /* fixext 1..16 */
        } else if (b <= 0xdb) {
            k = 1u << (b - 0xd9);                   /* str 8/16/32 */
        } else {
            skip = b & 1 ? 4 : 2;                   /* array/map 16/32 */
            if (left < skip)
                return -1;
            n = load_be(p, (unsigned)skip);
            container = 1;
            map = b >= 0xde;
        }
        if (k) {
            if (left < k)
                return -1;
            skip += k + (uint64_t)load_be(p, k);
        }
        if (skip > left)
            return -1;
        p += skip;
        left -= (size_t)skip;
        if (need > left)                        /* each takes a byte or more */
            return -1;

        if (container) {
            if (top >= DEPTH_MAX)
                return -1;
            uint64_t kids = map ? 2 * n : n;
            if (kids > left - need)
                return -1;
            zb += (size_t)n * (map ? sizeof(msgpack_object_kv) : sizeof(msgpack_object));
            if (kids > 0) {
                rem[top++] = kids;
                need += kids;
                continue;
            }
        }
        /* A whole value: it may complete its container, and so on up. */
        while (top > 0 && --rem[top - 1] == 0)
            top--;
    } while (need > 0);

    if (p != end)
        return -1;
    *zone_bytes = zb;
    return 0;
}

/* Make the zone empty and at least `want` bytes in its kept chunk (up to
 * HC_WIRE_ZONE_KEEP).  0 or -ENOMEM. */
static int zone_prepare(struct hc_wire *w, size_t want)
{
    size_t size = ZONE_MIN;
    while (size < want && size < HC_WIRE_ZONE_KEEP)
        size *= 2;
    if (w->zone_ready && w->zone.chunk_size >= size) {
        /* Frees every chunk but the first, which is chunk_size bytes. */
        msgpack_zone_clear(&w->zone);
        return 0;
    }
    if (w->zone_ready)
        msgpack_zone_destroy(&w->zone);
    w->zone_ready = msgpack_zone_init(&w->zone, size);
    return w->zone_ready ? 0 : -ENOMEM;
}

int hc_wire_open(struct hc_wire *w, const void *buf, size_t len)
{
    size_t zb = 0;
    size_t off = 0;

    w->items = NULL;
    w->n_items = 0;
    w->next = 0;
    if (len == 0)
        return HC_EWIRE;
    unsigned b = *(const uint8_t *)buf;  /* map or array, else not worth parsing */
    if (!((b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf)))
        return HC_EWIRE;
    if (scan(buf, len, &zb) < 0)
        return HC_EWIRE;
    int rc = zone_prepare(w, zb);
    if (rc < 0)
        return rc;

    /* scan() refused what msgpack-c would, nesting included, so NOMEM here
     * is a failed allocation (a zone chunk beyond HC_WIRE_ZONE_KEEP). */
    msgpack_object root;
    msgpack_unpack_return ur = msgpack_unpack(buf, len, &off, &w->zone, &root);
    if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
        return -ENOMEM;
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len)
        return HC_EWIRE;

    if (root.type == MSGPACK_OBJECT_MAP) {
        w->root = root;
        w->items = &w->root;
        w->n_items = 1;
    } else if (root.type == MSGPACK_OBJECT_ARRAY) {
        w->items = root.via.array.ptr;
        w->n_items = root.via.array.size;
    } else {
        return HC_EWIRE;
    }
    return 0;
}

/* The fields of one report map, as msgpack objects; NULL when absent. */
struct fields {
    const msgpack_object *vid, *ts, *lat, *lon, *acc, *maker;
};

static void collect(const msgpack_object_map *m, struct fields *f)
{
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *key = &m->ptr[i].key;
        const msgpack_object *val = &m->ptr[i].val;
        if (key->type != MSGPACK_OBJECT_STR)
            continue;
        const char *s = key->via.str.ptr;
        switch (key->via.str.size) {
        case 2:
            if (memcmp(s, "ts", 2) == 0)
                f->ts = val;
            break;
        case 3:
            if (memcmp(s, "vid", 3) == 0)
                f->vid = val;
            else if (memcmp(s, "lat", 3) == 0)
                f->lat = val;
            else if (memcmp(s, "lon", 3) == 0)
                f->lon = val;
            else if (memcmp(s, "acc", 3) == 0)
                f->acc = val;
            break;
        case 5:
            if (memcmp(s, "maker", 5) == 0)
                f->maker = val;
            break;
        default:
            break;
        }
    }
}

/* A coordinate: float or integer.  0 or HC_ETYPE. */
static int get_degrees(const msgpack_object *o, double *out)
{
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *out = o->via.f64;
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *out = (double)o->via.u64;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *out = (double)o->via.i64;
        return 0;
    default:
        return HC_ETYPE;
    }
}

/* Write the decimal digits of v to out (room for 20); returns the count. */
static unsigned format_u64(uint64_t v, char *out)
{
    char tmp[20];
    unsigned n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (unsigned i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static int decode(const msgpack_object *o, struct hc_report *r)
{
    struct fields f = { 0 };

    if (o->type != MSGPACK_OBJECT_MAP)
        return HC_ETYPE;
    collect(&o->via.map, &f);
    if (!f.vid || !f.ts || !f.lat || !f.lon || !f.acc)
        return HC_EMISSING;

    if (f.vid->type == MSGPACK_OBJECT_STR) {
        uint32_t len = f.vid->via.str.size;
        if (len == 0 || len > HC_VID_MAX)
            return HC_EVID;
        memcpy(r->vid, f.vid->via.str.ptr, len);
        r->vid_len = (uint8_t)len;
    } else if (f.vid->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        r->vid_len = (uint8_t)format_u64(f.vid->via.u64, r->vid);
    } else {
        return HC_ETYPE;
    }

    if (f.ts->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (f.ts->via.u64 >= (uint64_t)HC_TS_MAX)
            return HC_ERANGE_TS;    /* also keeps the cast below exact */
        r->ts = (int64_t)f.ts->via.u64;
    } else if (f.ts->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        r->ts = f.ts->via.i64;
    } else {
        return HC_ETYPE;
    }

    if (get_degrees(f.lat, &r->lat) < 0 || get_degrees(f.lon, &r->lon) < 0)
        return HC_ETYPE;

    if (f.acc->type != MSGPACK_OBJECT_BOOLEAN)
        return HC_ETYPE;
    r->acc = f.acc->via.boolean ? 1 : 0;

    if (f.maker && f.maker->type == MSGPACK_OBJECT_STR) {
        uint32_t len = f.maker->via.str.size;
        if (len > HC_MAKER_MAX)
            return HC_EMAKER;
        memcpy(r->maker, f.maker->via.str.ptr, len);
        r->maker_len = (uint8_t)len;
    } else if (f.maker && f.maker->type != MSGPACK_OBJECT_NIL) {
        return HC_ETYPE;
    }

    return hc_report_check(r);
}

int hc_wire_next(struct hc_wire *w, struct hc_report *out)
{
    if (w->next >= w->n_items)
        return 0;
    memset(out, 0, sizeof(*out));
    int rc = decode(&w->items[w->next++], out);
    return rc < 0 ? rc : 1;
}

static int pack_key(msgpack_packer *pk, const char *key, size_t len)
{
    if (msgpack_pack_str(pk, len) < 0)
        return -1;
    return msgpack_pack_str_body(pk, key, len);
}

int hc_wire_pack(msgpack_packer *pk, const struct hc_report *r)
{
    assert(r->vid_len <= HC_VID_MAX);
    assert(r->maker_len <= HC_MAKER_MAX);
    int fail = 0;

    fail |= msgpack_pack_map(pk, r->maker_len > 0 ? 6 : 5);
    fail |= pack_key(pk, "vid", 3);
    fail |= msgpack_pack_str(pk, r->vid_len);
    fail |= msgpack_pack_str_body(pk, r->vid, r->vid_len);
    fail |= pack_key(pk, "ts", 2);
    fail |= msgpack_pack_int64(pk, r->ts);
    fail |= pack_key(pk, "lat", 3);
    fail |= msgpack_pack_double(pk, r->lat);
    fail |= pack_key(pk, "lon", 3);
    fail |= msgpack_pack_double(pk, r->lon);
    fail |= pack_key(pk, "acc", 3);
    fail |= r->acc ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    if (r->maker_len > 0) {
        fail |= pack_key(pk, "maker", 5);
        fail |= msgpack_pack_str(pk, r->maker_len);
        fail |= msgpack_pack_str_body(pk, r->maker, r->maker_len);
    }
    return fail ? -ENOMEM : 0;
}
