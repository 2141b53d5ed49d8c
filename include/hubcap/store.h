/*
 * store.h — one worker shard's persistent state: an LMDB environment in
 * <data_dir>/shard-<i> with the named databases "journal0" and "journal1"
 * (vehicle records in the order they were put, under increasing 8-byte
 * keys), "alarms" (id as 8 bytes big-endian -> alarm, so keys sort by id)
 * and "meta" (short string key -> bytes).
 *
 * Vehicle records are journaled, not kept one per vehicle id: a commit
 * appends the batch's records to full pages at the end of a tree instead
 * of rewriting a 4 KiB B-tree leaf for every vehicle that changed, and the
 * process does not read them back while it runs.  The journal holds a
 * vehicle several times; the newest record is its state.  It is kept in
 * generations: the owner takes the current generation as a mark, puts
 * every vehicle it still tracks again at its own pace (unchanged ones
 * too), then trims, which drops every record of the generations before the
 * mark and starts the next one.
 *
 * Writes go in batches: hc_store_begin, any number of puts and deletes,
 * hc_store_commit (one LMDB write transaction).  The environment is opened
 * MDB_NOSYNC, so a plain commit survives a crash of the process (its pages
 * are in the OS page cache) but not of the machine until the next
 * hc_store_sync; a durable commit (or every commit when sync_interval_ms is
 * 0) is fsynced before it returns, and is what an alarm needs before it is
 * sent.  Invariants: a batch is all or nothing; the store keeps a replay
 * log of the open batch, so a full map is grown (doubled) and the batch
 * replayed without the caller noticing, and a failed commit leaves the
 * batch pending for another hc_store_commit.
 *
 * Threading: a store belongs to one thread, the worker that owns the shard;
 * nothing here locks.  Reads run in their own read transaction and see the
 * last committed state, also while a batch is open.  Another process may
 * open the same directory read-only while the owner runs.
 *
 * Errors: 0 or a negative errno (-EINVAL, -ENOENT, -ENOMEM, -ENOSPC, -EIO,
 * ...); LMDB conditions without an errno (corrupt file, version mismatch,
 * panic) are HC_ESTORE.  LMDB's own message for the last failure is kept
 * in hc_store_error(s).
 */
#ifndef HUBCAP_STORE_H
#define HUBCAP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HC_STORE_META_KEY_MAX 511   /* LMDB's default maximum key size */

struct hc_store;

struct hc_store_options {
    size_t map_size;           /* initial map size in bytes (0: 256 MiB);
                                * doubles on demand, never shrinks */
    unsigned sync_interval_ms; /* the owner's hc_store_sync period, for
                                * reference; 0 makes every commit durable */
};

/* mkdir -p with mode 0700 for the directories it creates (the outbox uses
 * it too).  0 or a negative errno; -ENOTDIR if dir exists as a file. */
int hc_mkdir_p(const char *dir);

/* Open (creating if needed) the environment in dir, creating dir and its
 * parents with mode 0700.  o may be NULL for the defaults.  A map smaller
 * than the data already in dir is raised to fit it.  On success *out owns
 * the store (free with hc_store_close); on failure *out is NULL and the
 * return says why (there is no store to ask for LMDB's text). */
int hc_store_open(struct hc_store **out, const char *dir, const struct hc_store_options *o);

/* Drop any open batch, fsync, close and free.  Accepts NULL. */
void hc_store_close(struct hc_store *s);

/* An LMDB return code in hubcap's convention (0, a negative errno, or
 * HC_ESTORE); MDB_MAP_FULL is -ENOSPC.  For modules with their own LMDB
 * environment (push, notify). */
int hc_store_mdb_error(int rc);

/* LMDB's message for the last failure ("" if none).  Never NULL, also for
 * s == NULL; valid until the next call on s. */
const char *hc_store_error(const struct hc_store *s);

/* Open a batch and its write transaction.  -EBUSY if a batch is already
 * open; HC_ESTORE / negative errno if LMDB cannot start one (no batch is
 * open then). */
int hc_store_begin(struct hc_store *s);

/* Store rec (len bytes, copied) under vehicle id vid (1..64 bytes) in the
 * open batch, replacing any previous record.  -EINVAL for a bad id, a
 * record over 4 GiB or no open batch.  On failure the put is not part of
 * the batch; the batch's earlier writes still are. */
int hc_store_put_vehicle(struct hc_store *s, const void *vid, size_t vid_len,
                         const void *rec, size_t len);

/* The journal generation being written: every vehicle put from here on
 * (and some put before) is kept by hc_store_journal_trim(s, mark). */
uint64_t hc_store_journal_mark(const struct hc_store *s);

/* In the open batch, drop every vehicle record of the generations before
 * mark (and the id-keyed table of earlier versions), and start generation
 * mark + 1.  -EINVAL unless mark is the current generation.  Only safe once
 * every vehicle that is to survive has been put since the mark was taken.
 * An abort undoes it. */
int hc_store_journal_trim(struct hc_store *s, uint64_t mark);

/* Store alarm id (key: 8 bytes big-endian) in the open batch, replacing any
 * alarm with that id.  hc_store_last_alarm_id follows at once. */
int hc_store_put_alarm(struct hc_store *s, uint64_t id, const void *val, size_t len);

/* Store val under the NUL-terminated key (1..HC_STORE_META_KEY_MAX bytes)
 * in the open batch. */
int hc_store_put_meta(struct hc_store *s, const char *key, const void *val, size_t len);

/* Commit the open batch; with durable (or sync_interval_ms 0) also fsync
 * before returning.  0: the batch is closed and its writes are visible
 * (and durable if asked).  On failure (-ENOSPC, -EIO, -EFBIG, -ENOMEM,
 * HC_ESTORE, ...) the batch stays open and pending: call hc_store_commit
 * again to retry whatever did not complete — the whole write, or only the
 * fsync if the write had taken effect — or hc_store_abort to give up.
 * -EINVAL if no batch is open. */
int hc_store_commit(struct hc_store *s, bool durable);

/* Close the open batch without writing it (no-op if none).  If only the
 * fsync of a commit had failed, its writes stay (committed, not durable). */
void hc_store_abort(struct hc_store *s);

/* fsync the environment now: every commit so far becomes durable. */
int hc_store_sync(struct hc_store *s);

/* Stop counting the data file's pages as this process's resident memory
 * (they stay in the page cache).  A write transaction reads the B-tree
 * pages it copies through LMDB's map, and the kernel maps the whole large
 * folio around each one: megabytes of journal data that will not be read
 * again.  Releasing is an madvise plus a TLB flush on every core the
 * process runs on, so it is done at most every max_age_ms (0: now, if
 * anything was committed or read since the last time).  Commits call it
 * with HC_STORE_RELEASE_MS; an owner going idle calls it with 0. */
#define HC_STORE_RELEASE_MS 100
void hc_store_release(struct hc_store *s, unsigned max_age_ms);

/* Copy meta key's value into buf (up to cap bytes; buf may be NULL when cap
 * is 0) and its full length into *len.  -ENOENT if absent, -ENOBUFS if it
 * did not fit (*len says how much is needed). */
int hc_store_get_meta(struct hc_store *s, const char *key, void *buf, size_t cap, size_t *len);

/* Call fn for every committed vehicle record, oldest first: a vehicle put
 * several times is seen several times and its last record is its state.
 * The pointers are valid only during the call.  fn must not write to the
 * store.  Stops at, and returns, fn's first non-zero value; else 0 or an
 * error (HC_ESTORE for an entry this module did not write).  The map pages
 * the walk read are then released (they stay in the OS page cache). */
int hc_store_each_vehicle(struct hc_store *s,
                          int (*fn)(void *ctx, const void *vid, size_t vid_len,
                                    const void *rec, size_t len),
                          void *ctx);

/* Call fn for every committed alarm with id >= from_id, in id order; same
 * rules as hc_store_each_vehicle. */
int hc_store_each_alarm(struct hc_store *s, uint64_t from_id,
                        int (*fn)(void *ctx, uint64_t id, const void *val, size_t len),
                        void *ctx);

/* Largest alarm id stored, 0 if none: committed ones (read at open) and
 * those put in the open batch (forgotten again by hc_store_abort). */
uint64_t hc_store_last_alarm_id(struct hc_store *s);

struct hc_store_stats {
    uint64_t journal_entries;     /* committed vehicle records (not vehicles) */
    uint64_t journal_bytes;       /* pages they take */
    uint64_t alarms;              /* committed alarms */
    uint64_t map_size, used_bytes;
    uint64_t commits, map_grows;  /* since open */
};

int hc_store_stats(struct hc_store *s, struct hc_store_stats *st);

#endif
