/*
 * httprecv.h — a real HTTP/1.1 webhook receiver on 127.0.0.1 for end-to-end
 * tests of the outgoing-webhook sender.  Requests are parsed by http-parser
 * (-lhttp_parser), recorded (method, path, the Standard Webhooks headers, body,
 * the status answered, when, on which connection) and answered from a script
 * of statuses.  Keep-alive and pipelining work; hr_stop/hr_restart take the
 * endpoint down and bring it back on the same port.
 *
 * Each server owns one background thread that does all socket I/O; the
 * functions below may be called from any thread.  No global state: several
 * servers may run at once.
 */
#ifndef HUBCAP_TEST_HTTPRECV_H
#define HUBCAP_TEST_HTTPRECV_H

#include <stddef.h>
#include <stdint.h>

#define HR_MAX_REQ 4096 /* requests kept */

struct hr_request {
    char method[8];
    char path[256];       /* request target as sent, query included */
    char id[64];          /* webhook-id header ("" if absent) */
    char timestamp[32];   /* webhook-timestamp header */
    char signature[256];  /* webhook-signature header */
    char content_type[64];
    char *body;           /* malloc'd, NUL-terminated copy */
    size_t body_len;
    int status;           /* what the receiver answered */
    uint64_t at_ns;       /* CLOCK_MONOTONIC when the request completed */
    unsigned conn;        /* connection number (1, 2, ...): shows keep-alive reuse */
};

struct hr_server; /* opaque */

/* Start a receiver thread listening on 127.0.0.1:port (0 = pick a free
 * port); returns NULL on failure (with a message on stderr). */
struct hr_server *hr_start(uint16_t port);
/* The port listened on (the one picked when started with 0). */
uint16_t hr_port(const struct hr_server *s);
/* "http://127.0.0.1:PORT" + path into buf (truncated to cap). */
void hr_url(const struct hr_server *s, const char *path, char *buf, size_t cap);

/* Script of answers: the next n requests get status (with an optional
 * extra header line such as "Retry-After: 2", or NULL); once the script is
 * used up every request gets the default status (initially 200).  Calls
 * append to the script (FIFO); the header is copied.  Thread-safe. */
void hr_script(struct hr_server *s, int status, unsigned n, const char *extra_header);
void hr_default(struct hr_server *s, int status);

/* Number of requests received so far (past HR_MAX_REQ they are answered
 * and counted but not kept).  Thread-safe. */
unsigned hr_count(struct hr_server *s);
/* Copy request i (0-based) into *out; out->body is a fresh malloc'd copy
 * the caller frees with hr_request_free.  Returns 0, or -1 if i is out of
 * range (or not kept).  Thread-safe. */
int hr_get(struct hr_server *s, unsigned i, struct hr_request *out);
/* 1 if r's webhook-signature verifies (Standard Webhooks) under secret, a
 * whsec_ string, with its timestamp within 5 minutes of now; else 0. */
int hr_signed_by(const struct hr_request *r, const char *secret);
/* Free r->body (NULL-safe). */
void hr_request_free(struct hr_request *r);

/* Wait until at least n requests have been received, up to timeout_ms
 * (negative: no limit); returns the count reached. */
unsigned hr_wait(struct hr_server *s, unsigned n, int timeout_ms);

/* Stop listening and close every connection (an endpoint going down:
 * clients then get ECONNREFUSED).  Recorded requests stay.  Returns when
 * the sockets are closed. */
void hr_stop(struct hr_server *s);
/* Listen again on the same port (a no-op when listening).  Returns 0 or a
 * negative errno (message on stderr). */
int hr_restart(struct hr_server *s);

/* Stop and free everything, recorded bodies included.  NULL-safe. */
void hr_free(struct hr_server *s);

#endif
