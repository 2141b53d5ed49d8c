/*
 * test_store.c — the shard store: batches are atomic and survive a reopen,
 * the vehicle journal keeps the newest record of each vehicle and a trim
 * drops exactly what was not put again since its mark, alarms come back in
 * id order, a 1 MiB map grows under tens of MB, a
 * failed commit stays pending and can be retried, and another process sees
 * committed data.  Each test gets its own directory under /tmp.
 *
 * store.bulk_inserts_updates_and_restore_agree takes its sizes from
 * HC_STORE_BENCH_PUTS / HC_STORE_BENCH_RESTORE (default 20000) for runs at
 * full size by hand; throughput is measured in bench/, not here.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hubcap/error.h"
#include "hubcap/store.h"

#define REC 450

static char root[64];
static char dir[128];

static void setup(void)
{
    strcpy(root, "/tmp/hc-store-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    snprintf(dir, sizeof(dir), "%s/data/shard-0", root);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void teardown(void)
{
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(store, .init = setup, .fini = teardown);

/* Deterministic record content for vehicle i, version ver. */
static void fill(unsigned char *rec, size_t len, unsigned i, unsigned ver)
{
    uint32_t x = i * 2654435761u ^ ver * 40503u ^ 0x9e3779b9u;
    for (size_t j = 0; j < len; j++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        rec[j] = (unsigned char)x;
    }
}

static size_t vid(char *buf, unsigned i)
{
    return (size_t)sprintf(buf, "V%07u", i);
}

static struct hc_store *open_store(size_t map, unsigned sync_ms)
{
    struct hc_store_options o = { .map_size = map, .sync_interval_ms = sync_ms };
    struct hc_store *s = NULL;
    int rc = hc_store_open(&s, dir, &o);
    cr_assert_eq(rc, 0, "open: %s", hc_strerror(rc));
    cr_assert_not_null(s);
    return s;
}

static void put(struct hc_store *s, unsigned i, unsigned ver, size_t len)
{
    unsigned char rec[2048];
    char k[16];
    cr_assert_leq(len, sizeof(rec));
    fill(rec, len, i, ver);
    int rc = hc_store_put_vehicle(s, k, vid(k, i), rec, len);
    if (rc != 0)    /* Criterion reports every passing assertion: keep loops quiet */
        cr_assert_fail("put %u: %s (%s)", i, hc_strerror(rc), hc_store_error(s));
}

/* each_vehicle collector: the last record of each id wins, as for the
 * worker; marks seen ids and whether their last record has version ver[]. */
struct seen {
    unsigned n, max;
    const unsigned *ver;    /* expected version per id */
    size_t len;
    unsigned char *hit, *ok;
    int bad;
};

static int collect(void *ctx, const void *k, size_t klen, const void *rec, size_t len)
{
    struct seen *w = ctx;
    char key[16];
    unsigned i;
    unsigned char want[2048];
    if (klen != 8 || len != w->len)
        return w->bad = 1, 0;   /* no cr_assert here: see put() */
    memcpy(key, k, 8);
    key[8] = '\0';
    if (sscanf(key, "V%7u", &i) != 1 || i >= w->max)
        return w->bad = 1, 0;
    fill(want, len, i, w->ver ? w->ver[i] : 0);
    w->ok[i] = memcmp(want, rec, len) == 0;
    w->hit[i] = 1;
    return 0;
}

static struct seen scan(struct hc_store *s, unsigned max, const unsigned *ver, size_t len)
{
    struct seen w = { .max = max, .ver = ver, .len = len, .hit = calloc(max, 1),
                      .ok = calloc(max, 1) };
    int rc = hc_store_each_vehicle(s, collect, &w);
    cr_assert_eq(rc, 0, "each_vehicle: %s", hc_strerror(rc));
    cr_assert_eq(w.bad, 0, "a record came back wrong");
    for (unsigned i = 0; i < max; i++) {
        w.n += w.hit[i];
        if (w.hit[i] && !w.ok[i])
            cr_assert_fail("vehicle %u: its newest record is not the last put", i);
    }
    free(w.ok);
    return w;
}

Test(store, open_creates_parent_dirs_private)
{
    struct hc_store *s = open_store(1 << 20, 1000);
    struct stat st;
    cr_assert_eq(stat(dir, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(st.st_mode & 077, 0, "mode %o", st.st_mode & 0777);
    hc_store_close(s);
}

Test(store, put_round_trips_through_reopen)
{
    struct hc_store *s = open_store(1 << 20, 1000);
    cr_assert_eq(hc_store_begin(s), 0);
    for (unsigned i = 0; i < 100; i++)
        put(s, i, 0, REC);
    cr_assert_eq(hc_store_commit(s, false), 0);
    hc_store_close(s);

    s = open_store(1 << 20, 1000);
    struct seen w = scan(s, 100, NULL, REC);
    cr_assert_eq(w.n, 100);
    free(w.hit);
    hc_store_close(s);
}

Test(store, abort_leaves_nothing)
{
    struct hc_store *s = open_store(1 << 20, 1000);
    cr_assert_eq(hc_store_begin(s), 0);
    for (unsigned i = 0; i < 50; i++)
        put(s, i, 0, REC);
    cr_assert_eq(hc_store_put_alarm(s, 7, "a", 1), 0);
    cr_assert_eq(hc_store_put_meta(s, "epoch", "1", 1), 0);
    cr_assert_eq(hc_store_last_alarm_id(s), 7);
    hc_store_abort(s);

    cr_assert_eq(hc_store_last_alarm_id(s), 0);
    struct hc_store_stats st;
    cr_assert_eq(hc_store_stats(s, &st), 0);
    cr_assert_eq(st.journal_entries, 0);
    cr_assert_eq(st.alarms, 0);
    cr_assert_eq(st.commits, 0);
    size_t len;
    cr_assert_eq(hc_store_get_meta(s, "epoch", NULL, 0, &len), -ENOENT);
    /* the store takes a new batch after an abort */
    cr_assert_eq(hc_store_begin(s), 0);
    put(s, 1, 0, REC);
    cr_assert_eq(hc_store_commit(s, false), 0);
    hc_store_close(s);

    s = open_store(1 << 20, 1000);
    struct seen w = scan(s, 50, NULL, REC);
    cr_assert_eq(w.n, 1);
    cr_assert(w.hit[1]);
    free(w.hit);
    hc_store_close(s);
}

Test(store, each_vehicle_ends_on_the_newest_committed_records)
{
    unsigned ver[300] = { 0 };
    struct hc_store *s = open_store(1 << 20, 1000);
    cr_assert_eq(hc_store_begin(s), 0);
    for (unsigned i = 0; i < 200; i++)
        put(s, i, 0, REC);
    cr_assert_eq(hc_store_commit(s, false), 0);

    /* a second batch: overwrite 0..49 (twice), add 200..299 */
    cr_assert_eq(hc_store_begin(s), 0);
    for (unsigned i = 0; i < 50; i++)
        put(s, i, 7, REC);
    for (unsigned i = 0; i < 50; i++)
        put(s, i, ver[i] = 1, REC);
    for (unsigned i = 200; i < 300; i++)
        put(s, i, 0, REC);

    /* while the batch is open a read sees the first batch only */
    unsigned ver0[300] = { 0 };
    struct seen w = scan(s, 300, ver0, REC);
    cr_assert_eq(w.n, 200);
    for (unsigned i = 0; i < 200; i++)
        cr_assert(w.hit[i]);
    free(w.hit);

    cr_assert_eq(hc_store_commit(s, false), 0);
    w = scan(s, 300, ver, REC);
    cr_assert_eq(w.n, 300);
    free(w.hit);
    hc_store_close(s);

    s = open_store(1 << 20, 1000);      /* the same after a reopen */
    w = scan(s, 300, ver, REC);
    cr_assert_eq(w.n, 300);
    free(w.hit);
    hc_store_close(s);
}

Test(store, trim_drops_what_was_not_put_since_the_mark)
{
    unsigned ver[300] = { 0 };
    struct hc_store *s = open_store(1 << 20, 1000);
    cr_assert_eq(hc_store_begin(s), 0);
    for (unsigned i = 0; i < 300; i++)
        put(s, i, 0, REC);
    cr_assert_eq(hc_store_commit(s, false), 0);
    /* The worker's first pass: all 300 are in the current generation. */
    uint64_t mark = hc_store_journal_mark(s);
    cr_assert_eq(hc_store_begin(s), 0);
    cr_assert_eq(hc_store_journal_trim(s, mark + 1), -EINVAL, "not the current generation");
    cr_assert_eq(hc_store_journal_trim(s, mark), 0);
    cr_assert_eq(hc_store_commit(s, false), 0);
    cr_assert_eq(hc_store_journal_mark(s), mark + 1);
    mark = hc_store_journal_mark(s);

    /* 0..99 and 200..299 are put again, in two batches; 100..199 are not */
    cr_assert_eq(hc_store_begin(s), 0);
    for (unsigned i = 0; i < 100; i++)
        put(s, i, ver[i] = 1, REC);
    cr_assert_eq(hc_store_commit(s, false), 0);
    cr_assert_eq(hc_store_begin(s), 0);
    for (unsigned i = 200; i < 300; i++)
        put(s, i, 7, REC);
    cr_assert_eq(hc_store_journal_trim(s, mark), 0);

    /* an aborted trim trims nothing: 0..99 are at version 1, the rest 0 */
    hc_store_abort(s);
    cr_assert_eq(hc_store_journal_mark(s), mark);
    unsigned before[300] = { 0 };
    for (unsigned i = 0; i < 100; i++)
        before[i] = 1;
    struct seen w = scan(s, 300, before, REC);
    cr_assert_eq(w.n, 300);
    free(w.hit);
    struct hc_store_stats st;
    cr_assert_eq(hc_store_stats(s, &st), 0);
    cr_assert_eq(st.journal_entries, 400);

    cr_assert_eq(hc_store_begin(s), 0);
    for (unsigned i = 200; i < 300; i++)
        put(s, i, ver[i] = 2, REC);
    cr_assert_eq(hc_store_journal_trim(s, mark), 0);
    put(s, 300 - 1, ver[299] = 3, REC);     /* after the trim, in the new generation */
    cr_assert_eq(hc_store_commit(s, false), 0);
    cr_assert_eq(hc_store_stats(s, &st), 0);
    cr_assert_eq(st.journal_entries, 201, "the first 300 records went");
    hc_store_close(s);

    s = open_store(1 << 20, 1000);
    cr_assert_eq(hc_store_journal_mark(s), mark + 1, "the generation survives a reopen");
    w = scan(s, 300, ver, REC);
    cr_assert_eq(w.n, 200);
    for (unsigned i = 0; i < 300; i++)
        cr_assert_eq(w.hit[i], i < 100 || i >= 200, "vehicle %u", i);
    free(w.hit);
    hc_store_close(s);
}

static int stop_at_three(void *ctx, const void *k, size_t klen, const void *rec, size_t len)
{
    struct hc_store *s = *(struct hc_store **)ctx;
    cr_assert_eq(hc_store_begin(s), -EBUSY, "no writes from inside a walk");
    static int n;
    return ++n == 3 ? 42 : 0;
}

Test(store, each_vehicle_stops_with_the_callbacks_value)
{
    struct hc_store *s = open_store(1 << 20, 1000);
    cr_assert_eq(hc_store_begin(s), 0);
    for (unsigned i = 0; i < 10; i++)
        put(s, i, 0, 16);
    cr_assert_eq(hc_store_commit(s, false), 0);
    cr_assert_eq(hc_store_each_vehicle(s, stop_at_three, &s), 42);
    cr_assert_eq(hc_store_begin(s), 0, "the walk released the store");
    hc_store_abort(s);
    hc_store_close(s);
}

struct alarms_seen {
    unsigned n;
    uint64_t ids[16];
    char vals[16][8];
};

static int collect_alarm(void *ctx, uint64_t id, const void *val, size_t len)
{
    struct alarms_seen *a = ctx;
    cr_assert_lt(a->n, 16);
    cr_assert_lt(len, 8);
    a->ids[a->n] = id;
    memcpy(a->vals[a->n], val, len);
    a->vals[a->n][len] = '\0';
    a->n++;
    return 0;
}

Test(store, alarms_come_back_in_id_order_and_last_id_survives_reopen)
{
    /* out of order, and ids whose little-endian bytes sort differently */
    static const uint64_t put_ids[] = { 256, 1, 65536, 2, 0x0100000000000000ull, 255 };
    static const uint64_t sorted[] = { 1, 2, 255, 256, 65536, 0x0100000000000000ull };
    struct hc_store *s = open_store(1 << 20, 1000);
    cr_assert_eq(hc_store_last_alarm_id(s), 0);
    cr_assert_eq(hc_store_begin(s), 0);
    for (unsigned i = 0; i < 6; i++) {
        char v[8];
        int n = snprintf(v, sizeof(v), "a%u", i);
        cr_assert_eq(hc_store_put_alarm(s, put_ids[i], v, (size_t)n), 0);
    }
    cr_assert_eq(hc_store_commit(s, true), 0);
    hc_store_close(s);

    s = open_store(1 << 20, 1000);
    cr_assert_eq(hc_store_last_alarm_id(s), 0x0100000000000000ull);
    struct alarms_seen a = { 0 };
    cr_assert_eq(hc_store_each_alarm(s, 0, collect_alarm, &a), 0);
    cr_assert_eq(a.n, 6);
    for (unsigned i = 0; i < 6; i++)
        cr_assert_eq(a.ids[i], sorted[i], "position %u", i);
    cr_assert_str_eq(a.vals[3], "a0");  /* id 256 */

    struct alarms_seen b = { 0 };
    cr_assert_eq(hc_store_each_alarm(s, 3, collect_alarm, &b), 0);
    cr_assert_eq(b.n, 4);
    cr_assert_eq(b.ids[0], 255);

    /* a smaller id does not lower the last id */
    cr_assert_eq(hc_store_begin(s), 0);
    cr_assert_eq(hc_store_put_alarm(s, 3, "x", 1), 0);
    cr_assert_eq(hc_store_commit(s, false), 0);
    cr_assert_eq(hc_store_last_alarm_id(s), 0x0100000000000000ull);
    hc_store_close(s);
}

Test(store, map_grows_from_one_mib_transparently)
{
    enum { N = 40000, LEN = 1000, BATCH = 4000 };
    struct hc_store *s = open_store(1 << 20, 1000);
    for (unsigned b = 0; b < N / BATCH; b++) {
        cr_assert_eq(hc_store_begin(s), 0);
        for (unsigned i = b * BATCH; i < (b + 1) * BATCH; i++)
            put(s, (i * 7919u) % N, 0, LEN);    /* scattered keys */
        int rc = hc_store_commit(s, false);
        cr_assert_eq(rc, 0, "commit %u: %s (%s)", b, hc_strerror(rc), hc_store_error(s));
    }
    struct hc_store_stats st;
    cr_assert_eq(hc_store_stats(s, &st), 0);
    cr_assert_geq(st.journal_bytes, (uint64_t)N * LEN);
    cr_assert_geq(st.used_bytes, st.journal_bytes);
    cr_assert_geq(st.map_size, st.used_bytes);
    cr_assert_geq(st.map_grows, 5, "grows %llu", (unsigned long long)st.map_grows);
    cr_assert_eq(st.commits, N / BATCH);
    hc_store_close(s);

    /* a reopen asking for 1 MiB gets a map that holds the file, and grows on */
    s = open_store(1 << 20, 1000);
    cr_assert_eq(hc_store_begin(s), 0);
    for (unsigned i = N; i < N + BATCH; i++)
        put(s, i, 0, LEN);
    cr_assert_eq(hc_store_commit(s, false), 0);
    struct seen w = scan(s, N + BATCH, NULL, LEN);
    cr_assert_eq(w.n, N + BATCH);
    free(w.hit);
    hc_store_close(s);
}

Test(store, meta_round_trips)
{
    struct hc_store *s = open_store(1 << 20, 1000);
    char buf[32];
    size_t len = 0;
    cr_assert_eq(hc_store_get_meta(s, "schema", buf, sizeof(buf), &len), -ENOENT);
    cr_assert_eq(hc_store_begin(s), 0);
    cr_assert_eq(hc_store_put_meta(s, "schema", "v1", 2), 0);
    cr_assert_eq(hc_store_put_meta(s, "", "v1", 2), -EINVAL);
    cr_assert_eq(hc_store_commit(s, false), 0);
    cr_assert_eq(hc_store_get_meta(s, "schema", buf, sizeof(buf), &len), 0);
    cr_assert_eq(len, 2);
    cr_assert_eq(memcmp(buf, "v1", 2), 0);

    cr_assert_eq(hc_store_begin(s), 0);
    cr_assert_eq(hc_store_put_meta(s, "schema", "version-twelve", 14), 0);
    cr_assert_eq(hc_store_commit(s, false), 0);
    cr_assert_eq(hc_store_get_meta(s, "schema", buf, 4, &len), -ENOBUFS);
    cr_assert_eq(len, 14);
    cr_assert_eq(memcmp(buf, "vers", 4), 0);
    cr_assert_eq(hc_store_get_meta(s, "schema", NULL, 0, &len), -ENOBUFS);
    hc_store_close(s);

    s = open_store(1 << 20, 1000);
    cr_assert_eq(hc_store_get_meta(s, "schema", buf, sizeof(buf), &len), 0);
    cr_assert_eq(len, 14);
    cr_assert_eq(memcmp(buf, "version-twelve", 14), 0);
    hc_store_close(s);
}

Test(store, durable_commit_persists)
{
    /* sync_interval_ms 0: every commit is durable, so also the plain one */
    struct hc_store *s = open_store(1 << 20, 0);
    cr_assert_eq(hc_store_begin(s), 0);
    put(s, 1, 0, REC);
    cr_assert_eq(hc_store_put_alarm(s, 1, "alarm", 5), 0);
    cr_assert_eq(hc_store_commit(s, true), 0);
    cr_assert_eq(hc_store_begin(s), 0);
    put(s, 2, 0, REC);
    cr_assert_eq(hc_store_commit(s, false), 0);
    cr_assert_eq(hc_store_sync(s), 0);
    cr_assert_str_eq(hc_store_error(s), "");
    hc_store_close(s);

    s = open_store(1 << 20, 1000);
    struct hc_store_stats st;
    cr_assert_eq(hc_store_stats(s, &st), 0);
    cr_assert_eq(st.journal_entries, 2);
    cr_assert_eq(st.alarms, 1);
    cr_assert_eq(hc_store_last_alarm_id(s), 1);
    hc_store_close(s);
}

Test(store, close_and_error_accept_null)
{
    hc_store_close(NULL);
    cr_assert_not_null(hc_store_error(NULL));
}

Test(store, misuse_is_refused)
{
    struct hc_store *s = open_store(1 << 20, 1000);
    char big[65];
    memset(big, 'x', sizeof(big));
    cr_assert_eq(hc_store_put_vehicle(s, "V1", 2, "r", 1), -EINVAL, "no batch open");
    cr_assert_eq(hc_store_commit(s, false), -EINVAL);
    hc_store_abort(s);  /* no-op without a batch */
    cr_assert_eq(hc_store_begin(s), 0);
    cr_assert_eq(hc_store_begin(s), -EBUSY);
    cr_assert_eq(hc_store_put_vehicle(s, "", 0, "r", 1), -EINVAL);
    cr_assert_eq(hc_store_put_vehicle(s, big, 65, "r", 1), -EINVAL);
    cr_assert_eq(hc_store_put_vehicle(s, big, 64, "r", 1), 0);
    cr_assert_eq(hc_store_commit(s, false), 0);
    hc_store_close(s);
}

Test(store, stats_count_entries_and_commits)
{
    struct hc_store *s = open_store(1 << 20, 1000);
    cr_assert_eq(hc_store_begin(s), 0);
    for (unsigned i = 0; i < 10; i++)
        put(s, i, 0, REC);
    cr_assert_eq(hc_store_put_alarm(s, 1, "a", 1), 0);
    cr_assert_eq(hc_store_commit(s, false), 0);
    cr_assert_eq(hc_store_begin(s), 0);
    put(s, 3, 1, REC);
    cr_assert_eq(hc_store_put_alarm(s, 2, "b", 1), 0);
    cr_assert_eq(hc_store_put_alarm(s, 3, "c", 1), 0);
    cr_assert_eq(hc_store_commit(s, false), 0);
    struct hc_store_stats st;
    cr_assert_eq(hc_store_stats(s, &st), 0);
    cr_assert_eq(st.journal_entries, 11, "one per put");
    cr_assert_geq(st.journal_bytes, 11 * REC);
    cr_assert_eq(st.alarms, 3);
    cr_assert_eq(st.commits, 2);
    cr_assert_eq(st.map_grows, 0);
    cr_assert_eq(st.map_size, 1 << 20);
    cr_assert_gt(st.used_bytes, 10 * REC);
    cr_assert_leq(st.used_bytes, st.map_size);
    hc_store_close(s);
}

Test(store, failed_commit_stays_pending_and_retries)
{
    enum { N = 3000 };
    struct hc_store *s = open_store(1 << 20, 1000);
    cr_assert_eq(hc_store_begin(s), 0);
    put(s, 0, 0, REC);
    cr_assert_eq(hc_store_commit(s, true), 0);

    /* the data file may not grow: LMDB's page writes fail with EFBIG/EIO */
    char path[192];
    struct stat st;
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    cr_assert_eq(stat(path, &st), 0);
    struct rlimit old, lim;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)st.st_size + 8192;
    signal(SIGXFSZ, SIG_IGN);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);

    cr_assert_eq(hc_store_begin(s), 0);
    for (unsigned i = 1; i <= N; i++)
        put(s, i, 0, REC);
    cr_assert_eq(hc_store_put_alarm(s, 9, "alarm", 5), 0);
    int rc = hc_store_commit(s, true);
    cr_assert(rc == -EFBIG || rc == -EIO, "commit: %d %s", rc, hc_strerror(rc));
    cr_assert_neq(strlen(hc_store_error(s)), 0, "LMDB's text is kept");
    cr_assert_eq(hc_store_begin(s), -EBUSY, "the batch is still pending");
    struct hc_store_stats sst;
    cr_assert_eq(hc_store_stats(s, &sst), 0);
    cr_assert_eq(sst.journal_entries, 1, "nothing of the failed batch is visible");

    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    rc = hc_store_commit(s, true);
    cr_assert_eq(rc, 0, "retry: %s (%s)", hc_strerror(rc), hc_store_error(s));
    hc_store_close(s);

    s = open_store(1 << 20, 1000);
    struct seen w = scan(s, N + 1, NULL, REC);
    cr_assert_eq(w.n, N + 1);
    free(w.hit);
    cr_assert_eq(hc_store_last_alarm_id(s), 9);
    hc_store_close(s);
}

/* Count the journal records with plain LMDB, read-only, in a fresh process. */
static int child_count(void)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_stat st;
    if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 8)
        || mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600))
        return 255;
    int n = 254;
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
        n = 0;
        for (const char *db = "journal0"; db; db = db[7] == '0' ? "journal1" : NULL)
            if (mdb_dbi_open(txn, db, 0, &dbi) == 0 && mdb_stat(txn, dbi, &st) == 0)
                n += (int)st.ms_entries;
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return n;
}

Test(store, another_process_reads_committed_data)
{
    struct hc_store *s = open_store(1 << 20, 1000);
    for (unsigned b = 0; b < 37; b++) {
        cr_assert_eq(hc_store_begin(s), 0);
        put(s, b, 0, REC);
        cr_assert_eq(hc_store_commit(s, false), 0);   /* not fsynced: page cache */
    }
    cr_assert_eq(hc_store_begin(s), 0);
    for (unsigned i = 100; i < 110; i++)
        put(s, i, 0, REC);                         /* open, uncommitted */

    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(child_count());
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status));
    cr_assert_eq(WEXITSTATUS(status), 37);
    cr_assert_eq(hc_store_commit(s, false), 0);
    hc_store_close(s);
}

static unsigned env_count(const char *name, unsigned dflt)
{
    const char *v = getenv(name);
    return v && *v ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

static int count_one(void *ctx, const void *k, size_t klen, const void *rec, size_t len)
{
    ++*(unsigned *)ctx;
    return 0;
}

/* Random-key puts of 450 B in batches of 10k, then a full restore walk:
 * every put comes back, in order. */
Test(store, bulk_inserts_updates_and_restore_agree)
{
    unsigned n = env_count("HC_STORE_BENCH_PUTS", 20000);
    unsigned m = env_count("HC_STORE_BENCH_RESTORE", 20000);
    unsigned total = n > m ? n : m;
    unsigned *perm = malloc(total * sizeof(*perm));
    cr_assert_not_null(perm);
    for (unsigned i = 0; i < total; i++)
        perm[i] = i;
    srand(12345);
    for (unsigned i = total - 1; i > 0; i--) {
        unsigned j = (unsigned)(((uint64_t)rand() << 16 ^ (uint64_t)rand()) % (i + 1));
        unsigned t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    struct hc_store *s = open_store(64 << 20, 1000);
    unsigned char rec[REC];
    char k[16];
    fill(rec, REC, 1, 1);
    for (int pass = 0; pass < 2; pass++) {     /* inserts, then updates */
        for (unsigned b = 0; b < n; b += 10000) {
            cr_assert_eq(hc_store_begin(s), 0);
            int bad = 0;
            for (unsigned i = b; i < n && i < b + 10000; i++)
                bad |= hc_store_put_vehicle(s, k, vid(k, perm[(i + pass * 7) % n]), rec, REC);
            cr_assert_eq(bad, 0);
            cr_assert_eq(hc_store_commit(s, false), 0);
        }
    }
    cr_assert_eq(hc_store_begin(s), 0);
    int bad = 0;
    for (unsigned i = n; i < m; i++)
        bad |= hc_store_put_vehicle(s, k, vid(k, perm[i]), rec, REC);
    cr_assert_eq(bad, 0);
    cr_assert_eq(hc_store_commit(s, false), 0);
    hc_store_close(s);

    s = open_store(64 << 20, 1000);
    unsigned seen = 0;
    cr_assert_eq(hc_store_each_vehicle(s, count_one, &seen), 0);
    cr_assert_eq(seen, 2 * n + (m > n ? m - n : 0), "every record put");
    hc_store_close(s);
    free(perm);
}
