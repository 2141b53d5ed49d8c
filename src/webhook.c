/*
 * webhook.c — Standard Webhooks signing and checking (see webhook.h).  HMAC
 * is streamed through EVP_MAC so the body is never copied to put the id and
 * timestamp in front of it.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "hubcap/webhook.h"

#define PREFIX "whsec_"
#define MAC_LEN 32                         /* SHA-256 */
#define MAC_B64 (4 * ((MAC_LEN + 2) / 3))  /* 44 */
#define ENTRY_LEN (3 + MAC_B64)            /* "v1," and the base64 */
/* Base64 text of the longest key; more text is a longer key. */
#define SECRET_B64_MAX (4 * ((HC_WEBHOOK_SECRET_MAX + 2) / 3))

/* base64(HMAC-SHA256(key, id "." ts "." body)) into b64, NUL-terminated.
 * Returns 0 or -EIO. */
static int signature(const struct hc_webhook_secret *s, const char *id, int64_t ts,
                     const void *body, size_t len, char b64[MAC_B64 + 1])
{
    assert(s->len <= HC_WEBHOOK_SECRET_MAX);
    char mid[32];
    int midlen = snprintf(mid, sizeof mid, ".%" PRId64 ".", ts);
    unsigned char md[MAC_LEN];
    size_t mdlen = 0;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    int ok = ctx && EVP_MAC_init(ctx, s->key, s->len, params) &&
             EVP_MAC_update(ctx, (const unsigned char *)id, strlen(id)) &&
             EVP_MAC_update(ctx, (const unsigned char *)mid, (size_t)midlen) &&
             (len == 0 || EVP_MAC_update(ctx, body, len)) &&
             EVP_MAC_final(ctx, md, &mdlen, sizeof md) && mdlen == MAC_LEN;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    if (!ok)
        return -EIO;
    EVP_EncodeBlock((unsigned char *)b64, md, MAC_LEN);
    return 0;
}

int hc_webhook_secret_parse(const char *text, struct hc_webhook_secret *out)
{
    if (strncmp(text, PREFIX, strlen(PREFIX)) != 0)
        return -EINVAL;
    const char *b64 = text + strlen(PREFIX);
    size_t n = strnlen(b64, SECRET_B64_MAX + 1);
    if (n == 0 || n > SECRET_B64_MAX)
        return -EINVAL;
    /* EVP_DecodeBlock is lenient (it skips surrounding whitespace, takes
     * '=' anywhere and keeps padding as zero bytes), so decode, drop the
     * padding, and accept only text that is exactly what encoding the key
     * gives back: that rules out every non-canonical form at once. */
    unsigned char key[3 * SECRET_B64_MAX / 4];
    int k = EVP_DecodeBlock(key, (const unsigned char *)b64, (int)n);
    if (k < 0)
        return -EINVAL;
    k -= (b64[n - 1] == '=') + (n >= 2 && b64[n - 2] == '=');
    char again[SECRET_B64_MAX + 1];
    int rc = 0;
    if (k < 24 || k > HC_WEBHOOK_SECRET_MAX ||
        EVP_EncodeBlock((unsigned char *)again, key, k) != (int)n || memcmp(again, b64, n) != 0)
        rc = -EINVAL;
    if (rc == 0) {
        memcpy(out->key, key, (size_t)k);
        out->len = (size_t)k;
    }
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(again, sizeof again);
    return rc;
}

int hc_webhook_sign(const struct hc_webhook_secret *secrets, size_t n, const char *id, int64_t ts,
                    const void *body, size_t len, char *out, size_t cap)
{
    if (n == 0 || n > 2)
        return -EINVAL;
    size_t need = n * ENTRY_LEN + (n - 1);
    if (cap < need + 1) {
        if (cap > 0)
            out[0] = '\0';
        return -ENOSPC;
    }
    char *p = out;
    for (size_t i = 0; i < n; i++) {
        char b64[MAC_B64 + 1];
        int rc = signature(&secrets[i], id, ts, body, len, b64);
        if (rc < 0) {
            out[0] = '\0';
            return rc;
        }
        p += sprintf(p, "%sv1,%s", i ? " " : "", b64);
    }
    assert((size_t)(p - out) == need);
    return (int)need;
}

int hc_webhook_verify(const struct hc_webhook_secret *secret, const char *id, int64_t ts,
                      const void *body, size_t len, const char *header,
                      int64_t now, int64_t tolerance_s)
{
    if (*header == '\0')
        return -EINVAL;
    char want[MAC_B64 + 1];
    int rc = signature(secret, id, ts, body, len, want);
    if (rc < 0)
        return rc;
    /* Every entry is checked for form even after a match, so a malformed
     * header is -EINVAL whatever else it holds. */
    int match = 0;
    for (const char *e = header;; e++) {
        const char *v = e + 1;
        if (*e != 'v')
            return -EINVAL;
        while ((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') || (*v >= '0' && *v <= '9'))
            v++;
        if (v == e + 1 || *v != ',')
            return -EINVAL;
        const char *sig = v + 1, *end = strchrnul(sig, ' ');
        if (v - e == 2 && e[1] == '1' && end - sig == MAC_B64 &&
            CRYPTO_memcmp(sig, want, MAC_B64) == 0)
            match = 1;
        if (*end == '\0')
            break;
        e = end;
    }
    if (tolerance_s > 0) {
        /* |now - ts| without signed overflow. */
        uint64_t d = now >= ts ? (uint64_t)now - (uint64_t)ts : (uint64_t)ts - (uint64_t)now;
        if (d > (uint64_t)tolerance_s)
            return 0;
    }
    return match;
}

int hc_webhook_id_new(char out[HC_WEBHOOK_ID_LEN])
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[32];
    size_t used = sizeof r;
    memcpy(out, "msg_", 4);
    for (size_t i = 4; i < HC_WEBHOOK_ID_LEN - 1;) {
        if (used == sizeof r) {
            if (RAND_bytes(r, sizeof r) != 1)
                return -EIO;
            used = 0;
        }
        /* 248 = 4 * 62: bytes from 248 up would favour the first 8
         * characters, so they are dropped. */
        unsigned char b = r[used++];
        if (b < 248)
            out[i++] = alnum[b % 62];
    }
    out[HC_WEBHOOK_ID_LEN - 1] = '\0';
    return 0;
}
