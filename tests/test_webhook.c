/*
 * test_webhook.c — Standard Webhooks signatures: the spec's test vector,
 * rotation with two secrets, what verification must refuse, strict secret
 * parsing and message ids.  Expected signatures other than the spec's were
 * computed independently with Python's hmac and base64 modules.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "hubcap/webhook.h"

/* The test vector of spec/standard-webhooks.md. */
#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TS 1614265330
#define SPEC_BODY "{\"test\": 2432232314}"
#define SPEC_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

/* A second secret, bytes 100..131, and its signature of the spec message. */
#define OTHER_SECRET "whsec_ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM="
#define OTHER_SIG "v1,nreglw9HPgFb2Lfl1Wu4xzLPBPNc6RIasyTtCP2K77o="

static struct hc_webhook_secret secret(const char *text)
{
    struct hc_webhook_secret s;
    int rc = hc_webhook_secret_parse(text, &s);
    cr_assert_eq(rc, 0, "parse %s: %d", text, rc);
    return s;
}

/* Verify the spec message (body bytes given) with no time window. */
static int verify(const struct hc_webhook_secret *s, const char *id, int64_t ts,
                  const char *body, const char *header)
{
    return hc_webhook_verify(s, id, ts, body, strlen(body), header, ts, 0);
}

Test(webhook, spec_test_vector)
{
    struct hc_webhook_secret s = secret(SPEC_SECRET);
    char out[HC_WEBHOOK_SIG_LEN];
    int n = hc_webhook_sign(&s, 1, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), out, sizeof out);
    cr_assert_str_eq(out, SPEC_SIG);
    cr_assert_eq(n, (int)strlen(SPEC_SIG));
    cr_assert_eq(verify(&s, SPEC_ID, SPEC_TS, SPEC_BODY, SPEC_SIG), 1);
}

Test(webhook, rotation_signs_with_both_secrets)
{
    struct hc_webhook_secret s[2] = { secret(SPEC_SECRET), secret(OTHER_SECRET) };
    char one[HC_WEBHOOK_SIG_LEN], two[HC_WEBHOOK_SIG_LEN];
    int n1 = hc_webhook_sign(s, 1, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), one, sizeof one);
    int n2 = hc_webhook_sign(s, 2, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), two, sizeof two);
    cr_assert_str_eq(two, SPEC_SIG " " OTHER_SIG);
    cr_assert_eq(n2, (int)strlen(two));
    /* The first entry alone is the one-secret header. */
    cr_assert_eq(n1, 47);
    cr_assert_eq(two[n1], ' ');
    cr_assert_eq(memcmp(two, one, (size_t)n1), 0);
    /* Each receiver, holding one of the secrets, accepts the header. */
    cr_assert_eq(verify(&s[0], SPEC_ID, SPEC_TS, SPEC_BODY, two), 1);
    cr_assert_eq(verify(&s[1], SPEC_ID, SPEC_TS, SPEC_BODY, two), 1);
    cr_assert_eq(verify(&s[1], SPEC_ID, SPEC_TS, SPEC_BODY, OTHER_SIG), 1);
    cr_assert_eq(verify(&s[1], SPEC_ID, SPEC_TS, SPEC_BODY, one), 0);
}

Test(webhook, sign_rejects_bad_counts)
{
    struct hc_webhook_secret s[3] = { secret(SPEC_SECRET), secret(SPEC_SECRET),
                                      secret(SPEC_SECRET) };
    char out[HC_WEBHOOK_SIG_LEN * 2];
    cr_assert_eq(hc_webhook_sign(s, 0, SPEC_ID, SPEC_TS, "", 0, out, sizeof out), -EINVAL);
    cr_assert_eq(hc_webhook_sign(s, 3, SPEC_ID, SPEC_TS, "", 0, out, sizeof out), -EINVAL);
}

Test(webhook, sign_never_writes_past_cap)
{
    struct hc_webhook_secret s[2] = { secret(SPEC_SECRET), secret(OTHER_SECRET) };
    char out[HC_WEBHOOK_SIG_LEN];
    /* One entry needs 47 bytes and the NUL: 47 is one short. */
    memset(out, '#', sizeof out);
    cr_assert_eq(hc_webhook_sign(s, 1, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), out, 47),
                 -ENOSPC);
    cr_assert_eq(out[47], '#');
    /* Two need 96. */
    memset(out, '#', sizeof out);
    cr_assert_eq(hc_webhook_sign(s, 2, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), out, 95),
                 -ENOSPC);
    cr_assert_eq(out[95], '#');
    /* Exactly enough works and still leaves the byte after alone. */
    memset(out, '#', sizeof out);
    cr_assert_eq(hc_webhook_sign(s, 2, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), out, 96), 95);
    cr_assert_eq(out[95], '\0');
    cr_assert_eq(out[96], '#');
    cr_assert_eq(hc_webhook_sign(s, 1, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), out, 0),
                 -ENOSPC);
    cr_assert_eq(out[0], 'v');
}

Test(webhook, verify_rejects_any_change)
{
    struct hc_webhook_secret s = secret(SPEC_SECRET), wrong = secret(OTHER_SECRET);
    cr_assert_eq(verify(&s, SPEC_ID, SPEC_TS, "{\"test\": 2432232315}", SPEC_SIG), 0);
    cr_assert_eq(verify(&s, SPEC_ID, SPEC_TS, "{\"test\": 2432232314} ", SPEC_SIG), 0);
    cr_assert_eq(verify(&s, "msg_p5jXN8AQM9LWM0D4loKWxJeK", SPEC_TS, SPEC_BODY, SPEC_SIG), 0);
    cr_assert_eq(verify(&s, SPEC_ID, SPEC_TS + 1, SPEC_BODY, SPEC_SIG), 0);
    cr_assert_eq(verify(&wrong, SPEC_ID, SPEC_TS, SPEC_BODY, SPEC_SIG), 0);
    /* A signature with one character changed, and one cut short. */
    cr_assert_eq(verify(&s, SPEC_ID, SPEC_TS, SPEC_BODY,
                        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF="), 0);
    cr_assert_eq(verify(&s, SPEC_ID, SPEC_TS, SPEC_BODY,
                        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE"), 0);
    /* The right signature under another version does not count. */
    cr_assert_eq(verify(&s, SPEC_ID, SPEC_TS, SPEC_BODY,
                        "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="), 0);
}

Test(webhook, verify_skips_other_versions)
{
    struct hc_webhook_secret s = secret(SPEC_SECRET);
    cr_assert_eq(verify(&s, SPEC_ID, SPEC_TS, SPEC_BODY, "v1a,c2lnbmF0dXJl " SPEC_SIG), 1);
    cr_assert_eq(verify(&s, SPEC_ID, SPEC_TS, SPEC_BODY, "v2,abc " SPEC_SIG " v1,abc"), 1);
    cr_assert_eq(verify(&s, SPEC_ID, SPEC_TS, SPEC_BODY, "v1a,c2lnbmF0dXJl v2,abc"), 0);
}

Test(webhook, verify_rejects_malformed_headers)
{
    struct hc_webhook_secret s = secret(SPEC_SECRET);
    const char *bad[] = {
        "",
        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", /* no version */
        ",g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v1 g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        SPEC_SIG " ",                                  /* empty last entry */
        " " SPEC_SIG,
        SPEC_SIG "  " OTHER_SIG,                       /* empty middle entry */
        SPEC_SIG " garbage",                           /* even after a match */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(verify(&s, SPEC_ID, SPEC_TS, SPEC_BODY, bad[i]), -EINVAL, "\"%s\"", bad[i]);
}

Test(webhook, verify_tolerance_window)
{
    struct hc_webhook_secret s = secret(SPEC_SECRET);
    const void *b = SPEC_BODY;
    size_t n = strlen(SPEC_BODY);
    int64_t ts = SPEC_TS;
    cr_assert_eq(hc_webhook_verify(&s, SPEC_ID, ts, b, n, SPEC_SIG, ts + 300, 300), 1);
    cr_assert_eq(hc_webhook_verify(&s, SPEC_ID, ts, b, n, SPEC_SIG, ts - 300, 300), 1);
    cr_assert_eq(hc_webhook_verify(&s, SPEC_ID, ts, b, n, SPEC_SIG, ts + 301, 300), 0);
    cr_assert_eq(hc_webhook_verify(&s, SPEC_ID, ts, b, n, SPEC_SIG, ts - 301, 300), 0);
    /* tolerance 0 turns the check off. */
    cr_assert_eq(hc_webhook_verify(&s, SPEC_ID, ts, b, n, SPEC_SIG, ts + 1000000, 0), 1);
    /* The extremes of int64 do not overflow into a pass. */
    cr_assert_eq(hc_webhook_verify(&s, SPEC_ID, ts, b, n, SPEC_SIG, INT64_MIN, INT64_MAX), 0);
    cr_assert_eq(hc_webhook_verify(&s, SPEC_ID, ts, b, n, SPEC_SIG, INT64_MIN, 300), 0);
}

Test(webhook, secret_parse_accepts_spec_and_bounds)
{
    struct hc_webhook_secret s = secret(SPEC_SECRET);
    cr_assert_eq(s.len, 24);
    cr_assert_eq(s.key[0], 0x31);
    cr_assert_eq(s.key[23], 0xb0);
    /* 25 bytes 1..25 (padded with "=="), 64 bytes 1..64. */
    s = secret("whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGQ==");
    cr_assert_eq(s.len, 25);
    cr_assert_eq(s.key[24], 25);
    s = secret("whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5"
               "Ojs8PT4/QA==");
    cr_assert_eq(s.len, 64);
    cr_assert_eq(s.key[63], 64);
}

Test(webhook, secret_parse_rejects)
{
    const char *bad[] = {
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",            /* no prefix */
        "whsek_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec",
        "whsec_",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!",      /* bad character */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w",      /* base64url is not base64 */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ",     /* whitespace */
        " whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_ MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",       /* length not a multiple of 4 */
        "whsec_MfKQ9r8GKYqrTwjU=D8ILPZIo2LaLaSw",      /* '=' inside */
        "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGQ",    /* padding missing */
        "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGR==",  /* non-zero bits after the last byte */
        "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhc=",      /* 23 bytes */
        "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5"
        "Ojs8PT4/QEE=",                                /* 65 bytes */
        "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5"
        "Ojs8PT4/QEFC",                                /* 66 bytes */
        "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5"
        "Ojs8PT4/QEFCQ0RF",                            /* 69 bytes */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct hc_webhook_secret s;
        cr_assert_eq(hc_webhook_secret_parse(bad[i], &s), -EINVAL, "\"%s\"", bad[i]);
    }
}

static int is_alnum(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

Test(webhook, id_new_is_msg_and_27_alphanumerics)
{
    char a[HC_WEBHOOK_ID_LEN], b[HC_WEBHOOK_ID_LEN];
    memset(a, '#', sizeof a);
    cr_assert_eq(hc_webhook_id_new(a), 0);
    cr_assert_eq(hc_webhook_id_new(b), 0);
    cr_assert_eq(strncmp(a, "msg_", 4), 0, "%s", a);
    cr_assert_eq(strnlen(a, sizeof a), 31);
    cr_assert_eq(HC_WEBHOOK_ID_LEN, 4 + 27 + 1);
    for (size_t i = 4; i < 31; i++)
        cr_assert(is_alnum(a[i]), "%s", a);
    cr_assert_str_neq(a, b);
}

Test(webhook, id_new_uses_every_character_evenly)
{
    /* 54000 draws from 62 characters.  A character that can occur is
     * missing with probability about 62 * (61/62)^54000, i.e. never. */
    int seen[256] = { 0 };
    for (int k = 0; k < 2000; k++) {
        char id[HC_WEBHOOK_ID_LEN];
        cr_assert_eq(hc_webhook_id_new(id), 0);
        for (size_t i = 4; i < 31; i++)
            seen[(unsigned char)id[i]]++;
    }
    int kinds = 0;
    for (int c = 0; c < 256; c++)
        if (seen[c]) {
            cr_assert(is_alnum((char)c), "character %d", c);
            kinds++;
        }
    cr_assert_eq(kinds, 62);
    /* Taking a random byte mod 62 without rejection gives "A".."H" 40/256
     * of the draws (8437 expected) instead of 8/62 (6968, sd 78); the
     * midpoint between them is more than 9 sd from either. */
    int first8 = 0;
    for (char c = 'A'; c <= 'H'; c++)
        first8 += seen[(unsigned char)c];
    cr_assert_lt(first8, 7700, "%d of 54000 draws were A..H", first8);
}
