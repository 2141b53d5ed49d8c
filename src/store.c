/*
 * store.c — a shard's LMDB environment (see store.h for the contract).
 *
 * Every write of the open batch is first appended to a replay log (one
 * arena, reused from batch to batch, so a put costs no malloc in steady
 * state) and then applied to the live write transaction.  LMDB kills a
 * transaction that hits MDB_MAP_FULL, and a failed commit frees it, so
 * s->txn may be NULL while a batch is open: the next write or commit then
 * begins a new transaction and replays the log (growing the map first when
 * that was the trouble).  Invariant while a batch is open and not yet
 * committed: the log holds exactly the batch's successful writes, and
 * s->txn, when not NULL, holds exactly those writes too.
 *
 * The map is only resized with no transaction of ours open, which LMDB
 * requires: writes are refused while an each_* callback runs.
 *
 * Vehicle records are not kept in a B-tree keyed by vehicle id: a random
 * update there copies and rewrites a whole 4 KiB leaf page for a record of
 * a few hundred bytes, and reads that page through the map first.  They
 * are appended (MDB_APPEND, so pages fill completely and only the right
 * edge of the tree is touched) under an increasing 8-byte sequence number
 * to one of two journal databases: generation g writes to journal<g % 2>.
 * A trim drops the other database whole (mdb_drop frees its pages without
 * reading its leaves) and starts generation g + 1 in it; the generation is
 * kept in meta "journal_gen" by the same transaction.  A journal value is
 * the vid length (1 byte), the vid, then the record.
 */
#include <assert.h>
#include <errno.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>

#include "hubcap/error.h"
#include "hubcap/store.h"
#include "hubcap/timefmt.h"

#define DEFAULT_MAP_SIZE ((size_t)256 << 20)
#define LOG_KEEP ((size_t)16 << 20)     /* larger replay arenas are freed after a batch */
#define VID_MAX 64

/* "vehicles" is the id-keyed table of earlier versions: read at start,
 * emptied by the first trim, never written. */
enum { DB_VEHICLES, DB_ALARMS, DB_META, DB_J0, DB_J1, DB_N };
static const char *const db_names[DB_N] = { "vehicles", "alarms", "meta", "journal0",
                                            "journal1" };

enum { OP_PUT, OP_TRIM };

/* meta key of the journal generation being written */
static const MDB_val gen_key = { sizeof("journal_gen") - 1, (void *)"journal_gen" };

/* One replay log entry; key and value bytes follow, padded to 8. */
struct op {
    uint8_t kind;
    uint8_t db;
    uint16_t klen;
    uint32_t vlen;
};

struct hc_store {
    MDB_env *env;
    MDB_dbi dbi[DB_N];
    MDB_txn *txn;           /* the open batch's transaction, or NULL */
    bool in_batch;
    bool committed;         /* batch written, only its fsync is pending */
    bool sync_every;        /* sync_interval_ms == 0 */
    void *map_lo;           /* the map, as found by find_map */
    size_t map_len, map_for;
    bool touched;           /* map pages may be resident since the last release */
    uint64_t released_ns;   /* when, CLOCK_MONOTONIC */
    unsigned reading;       /* each_* calls in progress */
    size_t map_size;
    uint64_t last_alarm, last_alarm_committed;
    uint64_t commits, map_grows;
    char *log;              /* replay arena */
    size_t log_len, log_cap;
    uint64_t jseq, jseq_committed;      /* key of the next journal record */
    uint64_t gen, gen_committed;        /* the journal generation written to */
    char err[256];
};

static const struct op *op_at(const char *p) { return (const struct op *)(const void *)p; }

static size_t op_size(size_t klen, size_t vlen)
{
    return (sizeof(struct op) + klen + vlen + 7) & ~(size_t)7;
}

int hc_store_mdb_error(int rc)
{
    if (rc == 0)
        return 0;
    if (rc > 0)
        return -rc;         /* LMDB passes errno values through */
    if (rc == MDB_NOTFOUND)
        return -ENOENT;
    if (rc == MDB_MAP_FULL)
        return -ENOSPC;
    return HC_ESTORE;
}

/* Record LMDB's text for rc and turn rc into hubcap's convention. */
static int fail(struct hc_store *s, int rc, const char *what)
{
    snprintf(s->err, sizeof(s->err), "%s: %s", what, mdb_strerror(rc));
    return hc_store_mdb_error(rc);
}

int hc_mkdir_p(const char *dir)
{
    size_t n = strlen(dir);
    char *p = malloc(n + 1);
    int rc = 0;
    if (!p)
        return -ENOMEM;
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n && rc == 0; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
            rc = -errno;
        p[i] = c;
    }
    struct stat st;
    if (rc == 0 && (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)))
        rc = errno ? -errno : -ENOTDIR;
    free(p);
    return rc;
}

/* Begin a transaction, adopting a map another process has grown. */
static int txn_begin(struct hc_store *s, unsigned flags, MDB_txn **txn)
{
    int rc = mdb_txn_begin(s->env, NULL, flags, txn);
    if (rc == MDB_MAP_RESIZED) {
        rc = mdb_env_set_mapsize(s->env, 0);
        if (rc == 0)
            rc = mdb_txn_begin(s->env, NULL, flags, txn);
        MDB_envinfo info;
        mdb_env_info(s->env, &info);
        s->map_size = info.me_mapsize;
    }
    return rc;
}

/* Double the map.  No transaction of ours may be open. */
static int grow(struct hc_store *s)
{
    assert(s->txn == NULL);
    if (s->reading)
        return EBUSY;
    size_t want = s->map_size * 2;
    if (want < s->map_size)
        return MDB_MAP_FULL;
    int rc = mdb_env_set_mapsize(s->env, want);
    if (rc == 0) {
        s->map_size = want;
        s->map_grows++;
    }
    return rc;
}

static void txn_drop(struct hc_store *s)
{
    if (s->txn) {
        mdb_txn_abort(s->txn);
        s->txn = NULL;
    }
}

static void be64_put(unsigned char b[8], uint64_t x)
{
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(x >> (56 - 8 * i));
}

static uint64_t be64_get(const void *p)
{
    const unsigned char *b = p;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | b[i];
    return x;
}

/* End generation `mark`'s predecessor: empty the journal database it was
 * written to (and the legacy table); generation mark + 1 will use it. */
static int trim_apply(struct hc_store *s, uint64_t mark)
{
    int rc = mdb_drop(s->txn, s->dbi[DB_J0 + (mark + 1) % 2], 0);
    if (rc == 0)
        rc = mdb_drop(s->txn, s->dbi[DB_VEHICLES], 0);
    unsigned char gen[8];
    be64_put(gen, mark + 1);
    MDB_val k = gen_key, v = { sizeof(gen), gen };
    if (rc == 0)
        rc = mdb_put(s->txn, s->dbi[DB_META], &k, &v, 0);
    return rc;
}

/* Apply one logged op to the live transaction; LMDB's return code. */
static int apply(struct hc_store *s, const struct op *op)
{
    const char *b = (const char *)(op + 1);
    MDB_val k = { op->klen, (void *)b };
    if (op->kind == OP_TRIM)
        return trim_apply(s, be64_get(b));
    MDB_val v = { op->vlen, (void *)(b + op->klen) };
    return mdb_put(s->txn, s->dbi[op->db], &k, &v, op->db >= DB_J0 ? MDB_APPEND : 0);
}

/* Give the batch a live transaction holding the first upto bytes of the
 * log, growing the map as often as the replay needs.  LMDB's code. */
static int revive(struct hc_store *s, size_t upto)
{
    if (s->txn)
        return 0;
    for (;;) {
        int rc = txn_begin(s, 0, &s->txn);
        if (rc != 0) {
            s->txn = NULL;
            return rc;
        }
        for (size_t off = 0; off < upto && rc == 0;) {
            const struct op *op = op_at(s->log + off);
            rc = apply(s, op);
            off += op_size(op->klen, op->vlen);
        }
        if (rc == 0)
            return 0;
        txn_drop(s);
        if (rc != MDB_MAP_FULL)
            return rc;
        rc = grow(s);
        if (rc != 0)
            return rc;
    }
}

/* Append an op to the log, its value gathered from nval pieces; NULL if
 * out of memory. */
static struct op *log_append(struct hc_store *s, int kind, int db, const void *key,
                             size_t klen, const struct iovec *val, int nval)
{
    size_t vlen = 0;
    for (int i = 0; i < nval; i++)
        vlen += val[i].iov_len;
    size_t need = op_size(klen, vlen);
    if (s->log_cap - s->log_len < need) {
        size_t cap = s->log_cap ? s->log_cap : 64 * 1024;
        while (cap - s->log_len < need)
            cap *= 2;
        char *p = realloc(s->log, cap);
        if (!p)
            return NULL;
        s->log = p;
        s->log_cap = cap;
    }
    struct op *op = (struct op *)(void *)(s->log + s->log_len);
    op->kind = (uint8_t)kind;
    op->db = (uint8_t)db;
    op->klen = (uint16_t)klen;
    op->vlen = (uint32_t)vlen;
    char *b = (char *)(op + 1);
    memcpy(b, key, klen);
    b += klen;
    for (int i = 0; i < nval; i++) {
        memcpy(b, val[i].iov_base, val[i].iov_len);
        b += val[i].iov_len;
    }
    s->log_len += need;
    return op;
}

/* One write of the batch: log it, apply it (reviving or growing as
 * needed); on failure neither the log nor the transaction keeps it. */
static int batch_op(struct hc_store *s, int kind, int db, const void *key, size_t klen,
                    const struct iovec *val, int nval, const char *what)
{
    if (!s->in_batch || s->committed)
        return -EINVAL;
    if (s->reading)
        return -EBUSY;
    size_t mark = s->log_len;
    const struct op *op = log_append(s, kind, db, key, klen, val, nval);
    if (!op)
        return -ENOMEM;
    int rc;
    for (;;) {
        rc = revive(s, mark);
        if (rc != 0)
            break;
        rc = apply(s, op_at(s->log + mark));
        if (rc != MDB_MAP_FULL)
            break;
        txn_drop(s);
        rc = grow(s);
        if (rc != 0)
            break;
    }
    if (rc != 0) {
        txn_drop(s);
        s->log_len = mark;
        return fail(s, rc, what);
    }
    return 0;
}

static void batch_end(struct hc_store *s)
{
    s->in_batch = false;
    s->committed = false;
    s->log_len = 0;
    s->jseq = s->jseq_committed;
    s->gen = s->gen_committed;
    if (s->log_cap > LOG_KEEP) {
        free(s->log);
        s->log = NULL;
        s->log_cap = 0;
    }
}

int hc_store_open(struct hc_store **out, const char *dir, const struct hc_store_options *o)
{
    *out = NULL;
    if (!dir || !*dir)
        return -EINVAL;
    struct hc_store *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    size_t map = o && o->map_size ? o->map_size : DEFAULT_MAP_SIZE;
    s->sync_every = o && o->sync_interval_ms == 0;
    int rc = hc_mkdir_p(dir);
    if (rc < 0)
        goto fail_alloc;
    rc = mdb_env_create(&s->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(s->env, DB_N);
    if (rc == 0)
        rc = mdb_env_set_mapsize(s->env, map);
    if (rc == 0)
        rc = mdb_env_open(s->env, dir, MDB_NOSYNC | MDB_NOTLS, 0600);
    if (rc != 0)
        goto fail_env;
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    s->map_size = info.me_mapsize;   /* at least what the file already holds */
    int dead;
    mdb_reader_check(s->env, &dead);  /* slots of killed readers pin old pages */

    MDB_txn *txn;
    rc = txn_begin(s, 0, &txn);
    if (rc != 0)
        goto fail_env;
    for (int i = 0; i < DB_N && rc == 0; i++)
        rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &s->dbi[i]);
    MDB_cursor *c = NULL;
    MDB_val k, v;
    if (rc == 0)
        rc = mdb_cursor_open(txn, s->dbi[DB_ALARMS], &c);
    if (rc == 0) {
        rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
        if (rc == 0 && k.mv_size == 8) {
            s->last_alarm = be64_get(k.mv_data);
        } else if (rc == 0) {
            rc = MDB_CORRUPTED;
        } else if (rc == MDB_NOTFOUND) {
            rc = 0;
        }
        mdb_cursor_close(c);
    }
    for (int j = DB_J0; rc == 0 && j <= DB_J1; j++) {
        rc = mdb_cursor_open(txn, s->dbi[j], &c);
        if (rc == 0) {
            rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
            if (rc == 0 && k.mv_size == 8 && be64_get(k.mv_data) >= s->jseq)
                s->jseq = be64_get(k.mv_data) + 1;
            else if (rc == 0 && k.mv_size != 8)
                rc = MDB_CORRUPTED;
            else if (rc == MDB_NOTFOUND)
                rc = 0;
            mdb_cursor_close(c);
        }
    }
    k = gen_key;
    if (rc == 0) {
        rc = mdb_get(txn, s->dbi[DB_META], &k, &v);
        if (rc == 0 && v.mv_size == 8)
            s->gen = be64_get(v.mv_data);
        else if (rc == 0)
            rc = MDB_CORRUPTED;
        else if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc != 0)
        goto fail_env;
    s->last_alarm_committed = s->last_alarm;
    s->jseq_committed = s->jseq;
    s->gen_committed = s->gen;
    *out = s;
    return 0;

fail_env:
    rc = rc > 0 ? -rc : HC_ESTORE;
    if (s->env)
        mdb_env_close(s->env);
fail_alloc:
    free(s);
    return rc;
}

void hc_store_close(struct hc_store *s)
{
    if (!s)
        return;
    hc_store_abort(s);
    mdb_env_sync(s->env, 1);
    mdb_env_close(s->env);
    free(s->log);
    free(s);
}

const char *hc_store_error(const struct hc_store *s)
{
    return s ? s->err : "no store";
}

int hc_store_begin(struct hc_store *s)
{
    if (s->in_batch)
        return -EBUSY;
    if (s->reading)
        return -EBUSY;
    assert(s->txn == NULL && s->log_len == 0);
    int rc = txn_begin(s, 0, &s->txn);
    if (rc != 0) {
        s->txn = NULL;
        return fail(s, rc, "begin");
    }
    s->in_batch = true;
    return 0;
}

int hc_store_put_vehicle(struct hc_store *s, const void *vid, size_t vid_len,
                         const void *rec, size_t len)
{
    if (vid_len == 0 || vid_len > VID_MAX || len > UINT32_MAX - 1 - VID_MAX)
        return -EINVAL;
    unsigned char key[8], vl = (unsigned char)vid_len;
    be64_put(key, s->jseq);
    struct iovec val[3] = { { &vl, 1 }, { (void *)vid, vid_len }, { (void *)rec, len } };
    int rc = batch_op(s, OP_PUT, DB_J0 + (int)(s->gen % 2), key, sizeof(key), val, 3,
                      "put vehicle");
    if (rc == 0)
        s->jseq++;
    return rc;
}

uint64_t hc_store_journal_mark(const struct hc_store *s)
{
    return s->gen;
}

int hc_store_journal_trim(struct hc_store *s, uint64_t mark)
{
    if (mark != s->gen)
        return -EINVAL;
    unsigned char key[8];
    be64_put(key, mark);
    int rc = batch_op(s, OP_TRIM, DB_J0, key, sizeof(key), NULL, 0, "journal trim");
    if (rc == 0)
        s->gen = mark + 1;
    return rc;
}

int hc_store_put_alarm(struct hc_store *s, uint64_t id, const void *val, size_t len)
{
    if (len > UINT32_MAX)
        return -EINVAL;
    unsigned char key[8];
    be64_put(key, id);
    struct iovec v = { (void *)val, len };
    int rc = batch_op(s, OP_PUT, DB_ALARMS, key, sizeof(key), &v, 1, "put alarm");
    if (rc == 0 && id > s->last_alarm)
        s->last_alarm = id;
    return rc;
}

int hc_store_put_meta(struct hc_store *s, const char *key, const void *val, size_t len)
{
    size_t klen = strlen(key);
    if (klen == 0 || klen > HC_STORE_META_KEY_MAX || len > UINT32_MAX)
        return -EINVAL;
    struct iovec v = { (void *)val, len };
    return batch_op(s, OP_PUT, DB_META, key, klen, &v, 1, "put meta");
}

int hc_store_commit(struct hc_store *s, bool durable)
{
    if (!s->in_batch)
        return -EINVAL;
    if (s->reading)
        return -EBUSY;
    int rc;
    while (!s->committed) {
        rc = revive(s, s->log_len);
        if (rc == 0) {
            rc = mdb_txn_commit(s->txn);  /* frees the txn, also on failure */
            s->txn = NULL;
        }
        if (rc == MDB_MAP_FULL)
            rc = grow(s);   /* then replay into the larger map */
        else if (rc == 0) {
            s->committed = true;
            s->commits++;
            s->last_alarm_committed = s->last_alarm;
            s->jseq_committed = s->jseq;
            s->gen_committed = s->gen;
        }
        if (rc != 0)
            return fail(s, rc, "commit");
    }
    if (durable || s->sync_every) {
        rc = mdb_env_sync(s->env, 1);
        if (rc != 0)
            return fail(s, rc, "sync after commit");
    }
    s->touched = true;
    hc_store_release(s, HC_STORE_RELEASE_MS);
    batch_end(s);
    return 0;
}

void hc_store_abort(struct hc_store *s)
{
    if (!s->in_batch)
        return;
    txn_drop(s);
    s->last_alarm = s->last_alarm_committed;
    batch_end(s);
}

int hc_store_sync(struct hc_store *s)
{
    int rc = mdb_env_sync(s->env, 1);
    return rc ? fail(s, rc, "sync") : 0;
}

int hc_store_get_meta(struct hc_store *s, const char *key, void *buf, size_t cap, size_t *len)
{
    size_t klen = strlen(key);
    if (klen == 0 || klen > HC_STORE_META_KEY_MAX)
        return -EINVAL;
    MDB_txn *txn;
    int rc = txn_begin(s, MDB_RDONLY, &txn);
    if (rc != 0)
        return fail(s, rc, "read meta");
    MDB_val k = { klen, (void *)key }, v;
    rc = mdb_get(txn, s->dbi[DB_META], &k, &v);
    if (rc == 0) {
        *len = v.mv_size;
        if (cap)
            memcpy(buf, v.mv_data, v.mv_size < cap ? v.mv_size : cap);
    }
    mdb_txn_abort(txn);
    if (rc == MDB_NOTFOUND)
        return -ENOENT;
    if (rc != 0)
        return fail(s, rc, "read meta");
    return *len > cap ? -ENOBUFS : 0;
}

/* Walk db from key `from` (NULL: the start) calling each(); the cursor
 * loop both each_* functions share.  Returns each()'s first non-zero
 * value, 0, or an error. */
static int walk(struct hc_store *s, int db, const MDB_val *from,
                int (*each)(void *arg, const MDB_val *k, const MDB_val *v), void *arg)
{
    MDB_txn *txn;
    MDB_cursor *c;
    int rc = txn_begin(s, MDB_RDONLY, &txn);
    if (rc != 0)
        return fail(s, rc, "read");
    rc = mdb_cursor_open(txn, s->dbi[db], &c);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return fail(s, rc, "read");
    }
    s->reading++;
    MDB_val k = from ? *from : (MDB_val){ 0, NULL }, v;
    int ret = 0;
    rc = mdb_cursor_get(c, &k, &v, from ? MDB_SET_RANGE : MDB_FIRST);
    while (rc == 0 && ret == 0) {
        ret = each(arg, &k, &v);
        if (ret == 0)
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    s->reading--;
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    if (ret != 0)
        return ret;
    return rc == MDB_NOTFOUND ? 0 : fail(s, rc, "read");
}

struct vehicle_walk {
    int (*fn)(void *ctx, const void *vid, size_t vid_len, const void *rec, size_t len);
    void *ctx;
};

static int each_legacy(void *arg, const MDB_val *k, const MDB_val *v)
{
    const struct vehicle_walk *w = arg;
    return w->fn(w->ctx, k->mv_data, k->mv_size, v->mv_data, v->mv_size);
}

static int each_record(void *arg, const MDB_val *k, const MDB_val *v)
{
    const struct vehicle_walk *w = arg;
    const char *p = v->mv_data;
    size_t vl = v->mv_size ? (unsigned char)p[0] : 0;
    (void)k;
    if (vl == 0 || v->mv_size < 1 + vl)
        return HC_ESTORE;     /* not a record this module wrote */
    return w->fn(w->ctx, p + 1, vl, p + 1 + vl, v->mv_size - 1 - vl);
}

/* Where the map is: LMDB does not say (MDB_envinfo's address is only the
 * MDB_FIXEDMAP one), so find the shared mapping of the data file's inode.
 * Found again whenever the map size changed (a resize maps it anew). */
static void find_map(struct hc_store *s)
{
    int fd;
    struct stat st;
    s->map_lo = NULL;
    s->map_len = 0;
    s->map_for = s->map_size;
    if (mdb_env_get_fd(s->env, &fd) != 0 || fstat(fd, &st) != 0)
        return;
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi, off, ino;
        unsigned maj, min;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &lo, &hi, perms, &off, &maj, &min,
                   &ino) == 7 && ino == (unsigned long)st.st_ino &&
            makedev(maj, min) == st.st_dev && perms[3] == 's' && off == 0) {
            s->map_lo = (void *)lo;
            s->map_len = hi - lo;
            break;
        }
    }
    fclose(f);
}

void hc_store_release(struct hc_store *s, unsigned max_age_ms)
{
    uint64_t now = hc_time_mono_ns();
    if (!s->touched || now - s->released_ns < (uint64_t)max_age_ms * 1000000ull)
        return;
    if (s->map_len == 0 || s->map_for != s->map_size)
        find_map(s);
    /* Only the part of the map the file uses can have pages mapped. */
    MDB_envinfo info;
    MDB_stat es;
    size_t len = s->map_len;
    if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &es) == 0 &&
        (info.me_last_pgno + 1) * es.ms_psize < len)
        len = (info.me_last_pgno + 1) * es.ms_psize;
    if (s->map_len)
        madvise(s->map_lo, len, MADV_DONTNEED);
    s->touched = false;
    s->released_ns = now;
}

int hc_store_each_vehicle(struct hc_store *s,
                          int (*fn)(void *ctx, const void *vid, size_t vid_len,
                                    const void *rec, size_t len),
                          void *ctx)
{
    struct vehicle_walk w = { fn, ctx };
    int rc = walk(s, DB_VEHICLES, NULL, each_legacy, &w);
    if (rc == 0)        /* the previous generation, then the current one */
        rc = walk(s, DB_J0 + (int)((s->gen_committed + 1) % 2), NULL, each_record, &w);
    if (rc == 0)
        rc = walk(s, DB_J0 + (int)(s->gen_committed % 2), NULL, each_record, &w);
    s->touched = true;
    hc_store_release(s, 0);
    return rc;
}

struct alarm_walk {
    int (*fn)(void *ctx, uint64_t id, const void *val, size_t len);
    void *ctx;
};

static int each_alarm(void *arg, const MDB_val *k, const MDB_val *v)
{
    const struct alarm_walk *w = arg;
    if (k->mv_size != 8)
        return HC_ESTORE;   /* not a key this module wrote */
    return w->fn(w->ctx, be64_get(k->mv_data), v->mv_data, v->mv_size);
}

int hc_store_each_alarm(struct hc_store *s, uint64_t from_id,
                        int (*fn)(void *ctx, uint64_t id, const void *val, size_t len),
                        void *ctx)
{
    unsigned char key[8];
    be64_put(key, from_id);
    MDB_val from = { sizeof(key), key };
    struct alarm_walk w = { fn, ctx };
    return walk(s, DB_ALARMS, &from, each_alarm, &w);
}

uint64_t hc_store_last_alarm_id(struct hc_store *s)
{
    return s->last_alarm;
}

int hc_store_stats(struct hc_store *s, struct hc_store_stats *st)
{
    MDB_txn *txn;
    int rc = txn_begin(s, MDB_RDONLY, &txn);
    if (rc != 0)
        return fail(s, rc, "stats");
    MDB_stat vs, vs1, as, es;
    MDB_envinfo info;
    rc = mdb_stat(txn, s->dbi[DB_J0], &vs);
    if (rc == 0)
        rc = mdb_stat(txn, s->dbi[DB_J1], &vs1);
    if (rc == 0)
        rc = mdb_stat(txn, s->dbi[DB_ALARMS], &as);
    if (rc == 0)
        rc = mdb_env_stat(s->env, &es);
    if (rc == 0)
        rc = mdb_env_info(s->env, &info);
    mdb_txn_abort(txn);
    if (rc != 0)
        return fail(s, rc, "stats");
    st->journal_entries = vs.ms_entries + vs1.ms_entries;
    st->journal_bytes = (vs.ms_branch_pages + vs.ms_leaf_pages + vs.ms_overflow_pages +
                         vs1.ms_branch_pages + vs1.ms_leaf_pages + vs1.ms_overflow_pages) *
                        (uint64_t)vs.ms_psize;
    st->alarms = as.ms_entries;
    st->map_size = info.me_mapsize;
    st->used_bytes = ((uint64_t)info.me_last_pgno + 1) * es.ms_psize;
    st->commits = s->commits;
    st->map_grows = s->map_grows;
    return 0;
}
