/*
 * settings.c — live settings kept across restarts (see settings.h).
 *
 * One LMDB database, "assign": key "section.key" -> value text, and key
 * "channel.NAME" -> "removed" for a channel removed live.  Every write is
 * one transaction synced before it returns: an operator who was told "done"
 * keeps the change through a power loss.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubcap/error.h"
#include "hubcap/log.h"
#include "hubcap/settings.h"
#include "hubcap/store.h"

#define REMOVED "removed"
#define KEY_MAX 128

struct hc_settings {
    MDB_env *env;
    MDB_dbi db;
};

int hc_settings_open(struct hc_settings **out, const char *data_dir)
{
    char dir[HC_CONFIG_PATH_MAX + 16];
    MDB_txn *txn = NULL;
    *out = NULL;
    snprintf(dir, sizeof(dir), "%s/settings", data_dir);
    struct hc_settings *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    int rc = hc_mkdir_p(dir);
    int m = rc < 0 ? 0 : mdb_env_create(&s->env);
    if (rc == 0 && m == 0)
        m = mdb_env_set_mapsize(s->env, (size_t)16 << 20);
    if (rc == 0 && m == 0)
        m = mdb_env_set_maxdbs(s->env, 2);
    if (rc == 0 && m == 0)
        m = mdb_env_open(s->env, dir, MDB_NOTLS, 0600);
    if (rc == 0 && m == 0)
        m = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc == 0 && m == 0)
        m = mdb_dbi_open(txn, "assign", MDB_CREATE, &s->db);
    if (rc == 0 && m == 0) {
        m = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort(txn);
    if (rc == 0 && m != 0)
        rc = hc_store_mdb_error(m);
    if (rc < 0) {
        hc_error("settings", "cannot open %s: %s", dir, m ? mdb_strerror(m) : hc_strerror(rc));
        hc_settings_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* The channel name in "channel.NAME..." (up to the next dot), or NULL. */
static const char *channel_of(const char *key, size_t len, char *name, size_t cap)
{
    if (len <= 8 || strncmp(key, "channel.", 8) != 0)
        return NULL;
    const char *dot = memchr(key + 8, '.', len - 8);
    size_t n = (dot ? (size_t)(dot - key) : len) - 8;
    if (n == 0 || n >= cap)
        return NULL;
    memcpy(name, key + 8, n);
    name[n] = '\0';
    return name;
}

#define THRESHOLDS "thresholds."
#define RULES "rules."

static int has_prefix(const MDB_val *k, const char *prefix)
{
    size_t n = strlen(prefix);
    return k->mv_size > n && memcmp(k->mv_data, prefix, n) == 0;
}

/* "thresholds.MAKER" or "rules.MAKER" -> "removed": the maker's own entry
 * was unset live.  Returns the remover, or NULL. */
static int (*per_maker_removal(const MDB_val *k, const MDB_val *v))(struct hc_config *,
                                                                    const char *)
{
    if (v->mv_size != strlen(REMOVED) || memcmp(v->mv_data, REMOVED, strlen(REMOVED)) != 0)
        return NULL;
    return has_prefix(k, THRESHOLDS) ? hc_config_remove_threshold
         : has_prefix(k, RULES) ? hc_config_remove_rule : NULL;
}

int hc_settings_apply(struct hc_settings *s, struct hc_config *c, char *err, size_t errlen)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    char removed[HC_CONFIG_CHANNELS_MAX * 2][HC_CONFIG_CHANNEL_NAME_MAX + 1];
    unsigned n_removed = 0;
    int applied = 0, rc = 0;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0 ||
        mdb_cursor_open(txn, s->db, &cur) != 0) {
        snprintf(err, errlen, "cannot read the live settings");
        return -1;
    }
    for (int m = mdb_cursor_get(cur, &k, &v, MDB_FIRST); m == 0 && rc == 0;
         m = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        char name[HC_CONFIG_CHANNEL_NAME_MAX + 1], *a = malloc(k.mv_size + v.mv_size + 2);
        const char *ch = channel_of(k.mv_data, k.mv_size, name, sizeof(name));
        int marker = ch && !memchr((const char *)k.mv_data + 8, '.', k.mv_size - 8);
        if (!a) {
            rc = -1;
            snprintf(err, errlen, "out of memory");
            break;
        }
        snprintf(a, k.mv_size + v.mv_size + 2, "%.*s=%.*s", (int)k.mv_size,
                 (const char *)k.mv_data, (int)v.mv_size, (const char *)v.mv_data);
        int (*remove)(struct hc_config *, const char *) = per_maker_removal(&k, &v);
        if (remove) {
            a[k.mv_size] = '\0';           /* "thresholds.MAKER" */
            if (remove(c, strchr(a, '.') + 1) == 0)
                applied++;
        } else if (marker && n_removed < sizeof(removed) / sizeof(removed[0]))
            snprintf(removed[n_removed++], sizeof(removed[0]), "%s", name);
        else if (!marker && hc_config_set(c, a, err, errlen) < 0)
            rc = -1;
        else if (!marker)
            applied++;
        free(a);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    for (unsigned i = 0; rc == 0 && i < n_removed; i++)
        if (hc_config_remove_channel(c, removed[i]) == 0)
            applied++;
    return rc < 0 ? -1 : applied;
}

/* Delete every key that starts with prefix (seeking afresh after each
 * delete: a deleted cursor's position is not worth reasoning about). */
static int delete_prefix(struct hc_settings *s, MDB_txn *txn, const char *prefix)
{
    MDB_cursor *cur;
    size_t len = strlen(prefix);
    int m = mdb_cursor_open(txn, s->db, &cur);
    if (m != 0)
        return m;
    while (m == 0) {
        MDB_val k = { len, (void *)prefix }, v;
        m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (m != 0 || k.mv_size < len || memcmp(k.mv_data, prefix, len) != 0)
            break;
        m = mdb_cursor_del(cur, 0);
    }
    mdb_cursor_close(cur);
    return m == MDB_NOTFOUND ? 0 : m;
}

/* Run one write transaction of writes(s, txn, ctx), committed and synced. */
static int write_txn(struct hc_settings *s, int (*writes)(struct hc_settings *, MDB_txn *,
                                                           const void *), const void *ctx)
{
    MDB_txn *txn;
    int m = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (m == 0) {
        m = writes(s, txn, ctx);
        if (m == 0)
            m = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (m != 0)
        hc_error("settings", "cannot keep a live setting: %s", mdb_strerror(m));
    return hc_store_mdb_error(m);
}

struct assigns {
    const char *const *a;
    size_t n;
};

static int put_assigns(struct hc_settings *s, MDB_txn *txn, const void *ctx)
{
    const struct assigns *x = ctx;
    int m = 0;
    for (size_t i = 0; m == 0 && i < x->n; i++) {
        const char *eq = strchr(x->a[i], '=');
        char name[HC_CONFIG_CHANNEL_NAME_MAX + 1], marker[KEY_MAX];
        if (!eq || eq == x->a[i] || (size_t)(eq - x->a[i]) >= KEY_MAX)
            return EINVAL;
        if (channel_of(x->a[i], (size_t)(eq - x->a[i]), name, sizeof(name))) {
            snprintf(marker, sizeof(marker), "channel.%s", name);
            MDB_val mk = { strlen(marker), marker };
            m = mdb_del(txn, s->db, &mk, NULL);
            if (m == MDB_NOTFOUND)
                m = 0;
        }
        MDB_val k = { (size_t)(eq - x->a[i]), (void *)x->a[i] },
                v = { strlen(eq + 1), (void *)(eq + 1) };
        if (m == 0)
            m = mdb_put(txn, s->db, &k, &v, 0);
    }
    return m;
}

int hc_settings_save(struct hc_settings *s, const char *const *assign, size_t n)
{
    struct assigns x = { assign, n };
    return write_txn(s, put_assigns, &x);
}

static int put_removal(struct hc_settings *s, MDB_txn *txn, const void *ctx)
{
    char prefix[KEY_MAX];
    snprintf(prefix, sizeof(prefix), "channel.%s.", (const char *)ctx);
    int m = delete_prefix(s, txn, prefix);
    prefix[strlen(prefix) - 1] = '\0';
    MDB_val k = { strlen(prefix), prefix }, v = { strlen(REMOVED), (void *)REMOVED };
    return m ? m : mdb_put(txn, s->db, &k, &v, 0);
}

int hc_settings_remove_channel(struct hc_settings *s, const char *name)
{
    if (strlen(name) > HC_CONFIG_CHANNEL_NAME_MAX)
        return -EINVAL;
    return write_txn(s, put_removal, name);
}

static int put_maker_removal(struct hc_settings *s, MDB_txn *txn, const void *ctx)
{
    const char *key = ctx;
    MDB_val k = { strlen(key), (void *)key }, v = { strlen(REMOVED), (void *)REMOVED };
    return mdb_put(txn, s->db, &k, &v, 0);
}

int hc_settings_remove_maker(struct hc_settings *s, const char *section, const char *maker)
{
    char key[KEY_MAX];
    if (strcmp(section, "thresholds") != 0 && strcmp(section, "rules") != 0)
        return -EINVAL;
    if ((size_t)snprintf(key, sizeof(key), "%s.%s", section, maker) >= sizeof(key))
        return -EINVAL;
    return write_txn(s, put_maker_removal, key);
}

int hc_settings_get(struct hc_settings *s, const char *key, char *buf, size_t cap)
{
    MDB_txn *txn;
    MDB_val k = { strlen(key), (void *)key }, v;
    if (cap == 0 || mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
        return -EIO;
    int m = mdb_get(txn, s->db, &k, &v);
    if (m == 0)
        snprintf(buf, cap, "%.*s", (int)v.mv_size, (const char *)v.mv_data);
    mdb_txn_abort(txn);
    return m == 0 ? 0 : m == MDB_NOTFOUND ? -ENOENT : hc_store_mdb_error(m);
}

void hc_settings_close(struct hc_settings *s)
{
    if (!s)
        return;
    if (s->env)
        mdb_env_close(s->env);
    free(s);
}
