/*
 * ctl.c — the control socket server (see ctl.h).
 *
 * Clients are non-blocking; a request is complete at its newline.  A
 * request larger than HC_CTL_MAX_REQUEST, or one that is not a JSON object
 * with a string "cmd", is answered with an error and changes nothing.
 * An answer is sent without blocking; what the client does not take at
 * once is kept and sent as it reads (POLLOUT), and its next request waits
 * until then.  The main thread never waits on a client.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "hubcap/ctl.h"
#include "hubcap/log.h"

int hc_ctl_open(struct hc_ctl *c, const char *path, long group, hc_ctl_handler h, void *ctx)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    for (int i = 0; i < HC_CTL_MAX_CLIENTS; i++)
        c->clients[i].fd = -1;
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    snprintf(c->path, sizeof(c->path), "%s", path);
    strcpy(sa.sun_path, path);
    c->handler = h;
    c->ctx = ctx;
    c->group = group;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    unlink(path);
    /* Created 0600 (our user), or 0660 and then handed to the group; lchown
     * does not follow a symlink swapped in for the socket. */
    mode_t old = umask(group >= 0 ? 0117 : 0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc == 0 && group >= 0 && lchown(path, (uid_t)-1, (gid_t)group) < 0)
        rc = -1;
    if (rc < 0 || listen(fd, 16) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    c->fd = fd;
    return 0;
}

static void client_drop(struct hc_ctl_client *cl)
{
    if (cl->fd >= 0)
        close(cl->fd);
    free(cl->buf);
    free(cl->out);
    cl->fd = -1;
    cl->buf = cl->out = NULL;
    cl->len = cl->out_len = cl->out_off = 0;
}

void hc_ctl_close(struct hc_ctl *c)
{
    if (!c || c->fd < 0)
        return;
    for (int i = 0; i < HC_CTL_MAX_CLIENTS; i++)
        client_drop(&c->clients[i]);
    close(c->fd);
    unlink(c->path);
    c->fd = -1;
}

int hc_ctl_pollfds(const struct hc_ctl *c, struct pollfd *pfd)
{
    int n = 0;
    pfd[n++] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
    for (int i = 0; i < HC_CTL_MAX_CLIENTS; i++)
        if (c->clients[i].fd >= 0)
            pfd[n++] = (struct pollfd){ .fd = c->clients[i].fd,
                                        .events = c->clients[i].out ? POLLOUT : POLLIN };
    return n;
}

/* One answer line, serialized; NULL when out of memory. */
static char *answer_line(json_t *ans, size_t *len)
{
    char *s = json_dumps(ans, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(ans);
    if (s) {
        *len = strlen(s);
        s[(*len)++] = '\n';    /* json_dumps leaves room for the NUL we replace */
    }
    return s;
}

/* Send what the client has waiting, without blocking.  0 (all sent or the
 * rest kept for POLLOUT) or -1 (the client is gone: drop it). */
static int flush_out(struct hc_ctl_client *cl)
{
    while (cl->out_off < cl->out_len) {
        ssize_t w = send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno == EAGAIN ? 0 : -1;
        cl->out_off += (size_t)w;
    }
    free(cl->out);
    cl->out = NULL;
    cl->out_len = cl->out_off = 0;
    return 0;
}

static int reply(struct hc_ctl_client *cl, json_t *ans)
{
    size_t len;
    char *s = answer_line(ans, &len);
    if (!s)
        return -1;
    cl->out = s;
    cl->out_len = len;
    cl->out_off = 0;
    return flush_out(cl);
}

/* A refusal to a connection we do not keep: best effort, one try. */
static void reply_once(int fd, json_t *ans)
{
    size_t len;
    char *s = answer_line(ans, &len);
    if (s && send(fd, s, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        hc_debug("ctl", "refusal not sent: %s", strerror(errno));
    free(s);
}

static json_t *refuse(const char *msg)
{
    return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

static int handle(struct hc_ctl *c, struct hc_ctl_client *cl, const char *line)
{
    json_error_t jerr;
    json_t *req = json_loads(line, 0, &jerr);
    const char *cmd = req ? json_string_value(json_object_get(req, "cmd")) : NULL;
    if (!req || !json_is_object(req) || !cmd) {
        json_decref(req);
        return reply(cl, refuse("a request is one JSON object with a string \"cmd\", on one line"));
    }
    const char *error = NULL;
    json_t *ans = c->handler(c->ctx, cmd, req, &error);
    int rc;
    if (error) {
        json_decref(ans);
        rc = reply(cl, refuse(error));
    } else {
        if (!ans)
            ans = json_object();
        json_object_set_new(ans, "ok", json_true());
        rc = reply(cl, ans);
    }
    json_decref(req);
    return rc;
}

/* The peer runs as our user, as root, or with the configured group among
 * its groups (primary or supplementary). */
static int peer_allowed(const struct hc_ctl *c, int fd)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
        return 0;
    if (cr.uid == 0 || cr.uid == geteuid())
        return 1;
    if (c->group < 0)
        return 0;
    if (cr.gid == (gid_t)c->group)
        return 1;
    gid_t few[64], *groups = few;
    len = sizeof(few);
    int rc = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len);
    if (rc < 0 && errno == ERANGE && (groups = malloc(len)) != NULL)
        rc = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len);   /* len: the size needed */
    int found = 0;
    for (size_t i = 0; rc == 0 && i < len / sizeof(gid_t); i++)
        found |= groups[i] == (gid_t)c->group;
    if (groups != few)
        free(groups);
    return found;
}

static void accept_clients(struct hc_ctl *c)
{
    for (;;) {
        int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        if (!peer_allowed(c, fd)) {
            reply_once(fd, refuse(c->group < 0
                             ? "permission denied: connect as the daemon's user or root"
                             : "permission denied: connect as the daemon's user, root or a"
                               " member of control.group"));
            close(fd);
            continue;
        }
        int slot = -1;
        for (int i = 0; i < HC_CTL_MAX_CLIENTS && slot < 0; i++)
            if (c->clients[i].fd < 0)
                slot = i;
        if (slot < 0) {
            reply_once(fd, refuse("too many control connections; try again"));
            close(fd);
            continue;
        }
        c->clients[slot].fd = fd;
    }
}

/* Handle the complete requests received, one at a time: a request waits
 * while the answer before it is still being sent. */
static void handle_lines(struct hc_ctl *c, struct hc_ctl_client *cl)
{
    char *nl;
    while (cl->fd >= 0 && !cl->out && (nl = memchr(cl->buf, '\n', cl->len))) {
        *nl = '\0';
        if (handle(c, cl, cl->buf) < 0) {
            client_drop(cl);        /* gone, or out of memory */
            return;
        }
        size_t rest = cl->len - (size_t)(nl + 1 - cl->buf);
        memmove(cl->buf, nl + 1, rest);
        cl->len = rest;
        cl->buf[cl->len] = '\0';
    }
}

static void read_client(struct hc_ctl *c, struct hc_ctl_client *cl)
{
    char tmp[4096];
    ssize_t n = recv(cl->fd, tmp, sizeof(tmp), 0);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            client_drop(cl);
        return;
    }
    if (cl->len + (size_t)n > HC_CTL_MAX_REQUEST) {
        reply_once(cl->fd, refuse("request too large (at most 65536 bytes)"));
        client_drop(cl);
        return;
    }
    char *b = realloc(cl->buf, cl->len + (size_t)n + 1);
    if (!b) {
        client_drop(cl);
        return;
    }
    cl->buf = b;
    memcpy(cl->buf + cl->len, tmp, (size_t)n);
    cl->len += (size_t)n;
    cl->buf[cl->len] = '\0';
    handle_lines(c, cl);
}

static void serve_client(struct hc_ctl *c, struct hc_ctl_client *cl, short revents)
{
    if (cl->out) {
        if ((revents & (POLLOUT | POLLERR | POLLHUP)) && flush_out(cl) < 0) {
            client_drop(cl);
            return;
        }
        if (!cl->out)
            handle_lines(c, cl);    /* requests that waited for this answer */
        return;
    }
    read_client(c, cl);
}

void hc_ctl_serve(struct hc_ctl *c, const struct pollfd *pfd, int n)
{
    for (int i = 0; i < n; i++) {
        if (!pfd[i].revents)
            continue;
        if (pfd[i].fd == c->fd) {
            accept_clients(c);
            continue;
        }
        for (int k = 0; k < HC_CTL_MAX_CLIENTS; k++)
            if (c->clients[k].fd == pfd[i].fd) {
                serve_client(c, &c->clients[k], pfd[i].revents);
                break;
            }
    }
}

json_t *hc_ctl_call(const char *path, const char *request, int timeout_ms)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    size_t len = 0, cap = 1 << 16, want = strlen(request);
    char *buf = malloc(cap);
    json_t *answer = NULL;
    int err = ENOMEM;
    ssize_t sent = 0;
    int send_err = 0;
    if (buf && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        err = errno;
    } else if (buf && (sent = send(fd, request, want, MSG_NOSIGNAL)) != (ssize_t)want &&
               sent < 0 && errno != EPIPE && errno != ECONNRESET) {
        err = errno == EAGAIN ? ETIMEDOUT : errno;
    } else if (buf) {
        /* Read even when the send was cut short or found the connection
         * closed: the server answers a peer it refuses at accept, and a
         * request too large once it has read too much, then closes; that
         * answer is waiting here. */
        if (sent != (ssize_t)want)
            send_err = sent < 0 ? errno : EPIPE;
        err = EPROTO;                   /* closed before a whole line */
        while (!memchr(buf, '\n', len)) {
            if (len + 1 == cap) {
                char *nb = realloc(buf, cap *= 2);
                if (!nb) {
                    err = ENOMEM;
                    break;
                }
                buf = nb;
            }
            ssize_t n = read(fd, buf + len, cap - 1 - len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                if (n < 0)
                    err = errno == EAGAIN ? ETIMEDOUT : errno;
                break;
            }
            len += (size_t)n;
        }
        answer = json_loadb(buf, len, JSON_DISABLE_EOF_CHECK, NULL);
        if (!answer && send_err)
            err = send_err;
    }
    free(buf);
    close(fd);
    if (!answer)
        errno = err;
    return answer;
}

json_t *hc_json_path(json_t *root, const char *dotted)
{
    char key[128];
    snprintf(key, sizeof(key), "%s", dotted);
    json_t *v = root;
    for (char *k = key, *dot; v && k; k = dot ? dot + 1 : NULL) {
        dot = strchr(k, '.');
        if (dot)
            *dot = '\0';
        char *end;
        unsigned long i = strtoul(k, &end, 10);
        v = json_is_array(v) && *k && !*end ? json_array_get(v, i) : json_object_get(v, k);
    }
    return v;
}

const char *hc_ctl_unreachable(char *buf, size_t cap, int err, const char *path,
                               const char *data_dir, int socket_given, double timeout_s,
                               const char *timeout_hint)
{
    switch (err) {
    case ENOENT:
        if (socket_given)
            snprintf(buf, cap, "cannot reach hubcapd at %s: no such file (is hubcapd running,"
                     " with control.socket = %s?)", path, path);
        else
            snprintf(buf, cap, "cannot reach hubcapd at %s: no such file (is hubcapd running"
                     " with --data-dir %s?)", path, data_dir);
        break;
    case ECONNREFUSED:
        snprintf(buf, cap, "cannot reach hubcapd at %s: nothing is listening (hubcapd is not"
                 " running: start it with --data-dir %s; a socket file is left behind when"
                 " it is killed)", path, data_dir);
        break;
    case EACCES:
    case EPERM:
        snprintf(buf, cap, "cannot reach hubcapd at %s: permission denied: run as the daemon's"
                 " user or root, or a member of control.group", path);
        break;
    case ETIMEDOUT:
    case EAGAIN:
        snprintf(buf, cap, "hubcapd at %s did not answer within %g s (busy or stuck? see its"
                 " log%s%s); nothing is known to have changed", path, timeout_s,
                 timeout_hint ? "; " : "", timeout_hint ? timeout_hint : "");
        break;
    case EPROTO:
        snprintf(buf, cap, "hubcapd at %s closed the connection without a valid answer (see"
                 " its log)", path);
        break;
    case EPIPE:
    case ECONNRESET:
        snprintf(buf, cap, "hubcapd at %s closed the connection before taking the request"
                 " (too many control connections, or this user may not use it; see its log)",
                 path);
        break;
    case ENAMETOOLONG:
        snprintf(buf, cap, "cannot reach hubcapd at %s: the path is too long for a Unix socket"
                 " (at most 107 bytes); use a shorter --data-dir or --socket", path);
        break;
    default:
        snprintf(buf, cap, "cannot reach hubcapd at %s: %s", path, strerror(err));
    }
    return buf;
}
