/*
 * ctl.h — the control socket: a Unix stream socket (mode 0600) where each
 * request is one JSON object on one line and each answer is one JSON
 * object on one line, so scripts and socat can use it.
 *
 *   -> {"cmd":"stats"}
 *   <- {"ok":true,"stats":{...}}
 *   -> {"cmd":"nope"}
 *   <- {"ok":false,"error":"unknown command 'nope' (try: status, stats)"}
 *
 * Only the daemon's user, root, or (when a group is given) members of that
 * group may connect: the file's mode keeps others out, and every
 * connection's peer credentials are checked too.  Served by the main
 * thread from its poll loop; the handler runs there too.
 */
#ifndef HUBCAP_CTL_H
#define HUBCAP_CTL_H

#include <jansson.h>
#include <poll.h>

#define HC_CTL_MAX_CLIENTS 16
#define HC_CTL_MAX_REQUEST 65536

/* Answer one request: return a new JSON object (the server adds "ok"). Set
 * *error (static string or owned by the handler for the call) to refuse. */
typedef json_t *(*hc_ctl_handler)(void *ctx, const char *cmd, json_t *req, const char **error);

struct hc_ctl_client {
    int fd;
    size_t len;
    char *buf;                  /* received, not yet handled */
    char *out;                  /* an answer the client has not taken yet */
    size_t out_len, out_off;
};

struct hc_ctl {
    int fd;
    char path[4200];
    hc_ctl_handler handler;
    void *ctx;
    long group;                 /* gid allowed besides our uid and root; -1: none */
    struct hc_ctl_client clients[HC_CTL_MAX_CLIENTS];
};

/* Listen on path (an old socket file there is replaced), mode 0600, or
 * 0660 owned by group when group >= 0.  0 or -errno. */
int hc_ctl_open(struct hc_ctl *c, const char *path, long group, hc_ctl_handler h, void *ctx);
void hc_ctl_close(struct hc_ctl *c);

/* Fill pfd with the descriptors to poll; returns how many (<= 1 + max). */
int hc_ctl_pollfds(const struct hc_ctl *c, struct pollfd *pfd);

/* Handle whatever poll reported on those descriptors. */
void hc_ctl_serve(struct hc_ctl *c, const struct pollfd *pfd, int n);

/* Client side, for tools and tests: send one request line (request ends
 * with '\n') to the socket at path and return the parsed answer (caller
 * decrefs), or NULL with errno set: the connect error (ENOENT, ECONNREFUSED,
 * EACCES, ...) when the daemon is unreachable, ETIMEDOUT when it is silent
 * for timeout_ms, EPROTO when it closes or answers something not JSON. */
json_t *hc_ctl_call(const char *path, const char *request, int timeout_ms);

/* Why hc_ctl_call could not reach the daemon at path (errno err), and what
 * to do, as one sentence in buf (returned).  data_dir: the data dir the
 * caller assumed (named in the advice); socket_given: the path came from
 * the user, not from data_dir; timeout_s: how long the call waited;
 * timeout_hint: how to wait longer ("--timeout SECONDS waits longer"), or
 * NULL.  One text for hubcapctl, hubcap-calibrate and hubcap-eval. */
const char *hc_ctl_unreachable(char *buf, size_t cap, int err, const char *path,
                               const char *data_dir, int socket_given, double timeout_s,
                               const char *timeout_hint);

/* The value at a dotted path such as "front.udp_dropped" or
 * "workers.0.passes" (a number indexes an array) under root, or NULL (a
 * borrowed reference, like json_object_get). */
json_t *hc_json_path(json_t *root, const char *dotted);

#endif
