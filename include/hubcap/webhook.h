/*
 * webhook.h — Standard Webhooks signatures (standardwebhooks.com) for the
 * alarm webhooks hubcap sends:
 *
 *   webhook-id:        msg_p5jXN8AQM9LWM0D4loKWxJek
 *   webhook-timestamp: 1614265330
 *   webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
 *
 * The signature is base64(HMAC-SHA256(key, id "." ts "." body)) over the
 * exact body bytes; the key is the base64 part of a "whsec_..." secret.  A
 * header may carry several space-separated signatures so that a secret can
 * be rotated: sign with old and new at once, receivers accept either.
 * HMAC, base64 and randomness all come from OpenSSL libcrypto.  No state;
 * any thread.
 */
#ifndef HUBCAP_WEBHOOK_H
#define HUBCAP_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

/* Longest key, in bytes after base64 decoding; the shortest is 24. */
#define HC_WEBHOOK_SECRET_MAX 64
/* A message id: "msg_", 27 random characters and the NUL, exactly. */
#define HC_WEBHOOK_ID_LEN 32
/* A signature header: one "v1,<44 base64 chars>" entry is 47 bytes; two
 * with their separating space and the NUL take 96. */
#define HC_WEBHOOK_SIG_LEN 128

struct hc_webhook_secret {
    unsigned char key[HC_WEBHOOK_SECRET_MAX];
    size_t len;
};

/* Parse "whsec_<base64>" (the prefix is required) into its key bytes.  The
 * base64 must be standard and canonical (alphabet A-Za-z0-9+/, '=' padding
 * to a multiple of 4, no whitespace) and decode to 24..64 bytes.  Returns 0,
 * or -EINVAL for a missing prefix, bad base64 or a key too short or too
 * long; out is then unspecified.  Never reads past text's NUL. */
int hc_webhook_secret_parse(const char *text, struct hc_webhook_secret *out);

/* Write the webhook-signature header value for message id, Unix time ts
 * (seconds) and the body bytes to out (cap bytes, NUL-terminated): one
 * "v1,<base64 of HMAC-SHA256>" per secret, n of them (1, or 2 during a
 * rotation), separated by one space.  HC_WEBHOOK_SIG_LEN is always enough.
 * Returns the length written without the NUL; -EINVAL if n is 0 or > 2;
 * -ENOSPC if cap is too small (then nothing but out[0] = NUL, if cap > 0,
 * is written); -EIO if libcrypto fails. */
int hc_webhook_sign(const struct hc_webhook_secret *secrets, size_t n, const char *id, int64_t ts,
                    const void *body, size_t len, char *out, size_t cap);

/* Check a received webhook-signature header against one secret.  The
 * header is entries "<version>,<signature>" separated by single spaces,
 * version being 'v' and one or more letters or digits; only "v1" entries
 * are checked (constant-time), others such as "v1a" are ignored.  Returns 1
 * if a v1 entry matches, 0 if none does or if tolerance_s > 0 and ts is
 * more than tolerance_s seconds away from now (the caller's clock, passed
 * in so the check is deterministic), -EINVAL if the header is malformed
 * (empty, an empty entry, or an entry without a version), -EIO if
 * libcrypto fails. */
int hc_webhook_verify(const struct hc_webhook_secret *secret, const char *id, int64_t ts,
                      const void *body, size_t len, const char *header,
                      int64_t now, int64_t tolerance_s);

/* A new message id: "msg_" and 27 characters of [A-Za-z0-9], each uniform
 * (RAND_bytes with rejection sampling), like Svix ids.  Returns 0, or -EIO
 * if RAND_bytes fails (out is then unspecified). */
int hc_webhook_id_new(char out[HC_WEBHOOK_ID_LEN]);

#endif
