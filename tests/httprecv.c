/*
 * httprecv.c — see httprecv.h.
 *
 * One thread per server polls an eventfd (commands from the API), the
 * listening socket and up to HR_MAX_CONN client connections.  Each
 * connection has its own http_parser; a completed message is recorded and
 * answered at once from inside on_message_complete, so by the time a client
 * sees an answer its request is visible to hr_count/hr_get.  Answers are
 * queued on the connection and flushed after each read (pipelined requests
 * are answered in order).  A parse error closes that connection only; a
 * request without keep-alive pauses the parser and the connection closes
 * once its answer is out.
 *
 * Locking: s->mu guards the records, the script, the default status, the
 * listening flag and the command slot.  Sockets and connections belong to
 * the thread alone; hr_stop/hr_restart/hr_free post a command and wait for
 * the thread to carry it out (s->ctl serialises those callers).
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "httprecv.h"
#include "hubcap/webhook.h"

#define HR_MAX_CONN 64
#define HR_BODY_MAX (16u << 20)  /* larger bodies are a parse error */
#define HR_OUT_MAX (1u << 20)    /* unread answers queued before we give up */

enum hr_cmd { CMD_NONE, CMD_STOP, CMD_LISTEN, CMD_QUIT };

struct script {
    struct script *next;
    int status;
    unsigned left;
    char *extra;  /* header line without CRLF, or NULL */
};

struct conn {
    int fd;  /* -1: slot free */
    unsigned no;  /* connection number */
    struct hr_server *s;
    http_parser p;
    struct hr_request req;  /* message being parsed; owns req.body */
    size_t body_cap, path_len;
    /* Header being parsed: its name, and where its value goes (NULL when
     * not watched).  hstate says which callback came last (0 none, 1 field,
     * 2 value): a field after a value starts a new header. */
    int hstate;
    char name[32];
    size_t name_len;
    int name_long;
    char *val;
    size_t val_cap, val_len;
    char expect[32];
    /* Answers not yet sent. */
    char *out;
    size_t out_len, out_off, out_cap;
    int draining;  /* read no more; close once out is sent */
    int failed;    /* a callback ran out of memory */
};

struct hr_server {
    uint16_t port;
    int wake_fd;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t ctl;
    pthread_mutex_t mu;
    pthread_cond_t arrived;   /* CLOCK_MONOTONIC */
    pthread_cond_t cmd_done;
    /* Guarded by mu. */
    enum hr_cmd cmd;
    int cmd_fd;
    int listening;
    struct hr_request *reqs;
    unsigned kept, cap, count;
    struct script *head, *tail;
    int default_status;
    /* The thread's own. */
    int listen_fd;
    unsigned nconn, conn_seq;
    struct conn conns[HR_MAX_CONN];
    char rbuf[65536];
};

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Append n bytes to a fixed NUL-terminated field of capacity cap holding
 * *len bytes, dropping what does not fit. */
static void field_append(char *dst, size_t cap, size_t *len, const char *src, size_t n)
{
    if (*len + 1 < cap) {
        size_t k = cap - 1 - *len < n ? cap - 1 - *len : n;
        memcpy(dst + *len, src, k);
        *len += k;
    }
    dst[*len < cap ? *len : cap - 1] = '\0';
}

/* Queue bytes for the client.  Returns 0, or -1 when the client has let
 * too much pile up or memory ran out. */
static int out_append(struct conn *c, const char *src, size_t n)
{
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len - c->out_off + n > HR_OUT_MAX)
        return -1;
    if (c->out_len + n > c->out_cap) {
        if (c->out_off) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        size_t cap = c->out_cap ? c->out_cap : 512;
        while (cap < c->out_len + n)
            cap *= 2;
        if (cap != c->out_cap) {
            char *p = realloc(c->out, cap);
            if (!p)
                return -1;
            c->out = p;
            c->out_cap = cap;
        }
    }
    memcpy(c->out + c->out_len, src, n);
    c->out_len += n;
    return 0;
}

static const char *reason(int status)
{
    const char *r = http_status_str((enum http_status)status);
    return r[0] == '<' ? "Unknown" : r;  /* "<unknown>" */
}

/* ---- http_parser callbacks (p->data is the connection) ---- */

static int on_message_begin(http_parser *p)
{
    struct conn *c = p->data;
    free(c->req.body);
    memset(&c->req, 0, sizeof(c->req));
    c->body_cap = c->path_len = 0;
    c->hstate = 0;
    c->val = NULL;
    c->expect[0] = '\0';
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    field_append(c->req.path, sizeof(c->req.path), &c->path_len, at, n);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    if (c->hstate != 1) {
        c->name_len = 0;
        c->name_long = 0;
        c->hstate = 1;
    }
    if (c->name_len + n >= sizeof(c->name))
        c->name_long = 1;  /* longer than any name we watch */
    else
        field_append(c->name, sizeof(c->name), &c->name_len, at, n);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    if (c->hstate != 2) {
        /* First piece of this value: pick its destination.  A repeated
         * header replaces the earlier one. */
        static const struct {
            const char *name;
            size_t off, cap;
        } watched[] = {
            { "webhook-id", offsetof(struct hr_request, id), sizeof(c->req.id) },
            { "webhook-timestamp", offsetof(struct hr_request, timestamp),
              sizeof(c->req.timestamp) },
            { "webhook-signature", offsetof(struct hr_request, signature),
              sizeof(c->req.signature) },
            { "content-type", offsetof(struct hr_request, content_type),
              sizeof(c->req.content_type) },
        };
        c->hstate = 2;
        c->val = NULL;
        c->name[c->name_len] = '\0';
        if (!c->name_long) {
            for (size_t i = 0; i < sizeof(watched) / sizeof(watched[0]); i++) {
                if (strcasecmp(c->name, watched[i].name) == 0) {
                    c->val = (char *)&c->req + watched[i].off;
                    c->val_cap = watched[i].cap;
                }
            }
            if (strcasecmp(c->name, "expect") == 0) {
                c->val = c->expect;
                c->val_cap = sizeof(c->expect);
            }
        }
        c->val_len = 0;
        if (c->val)
            c->val[0] = '\0';
    }
    if (c->val)
        field_append(c->val, c->val_cap, &c->val_len, at, n);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    /* curl holds back bodies over 1 KiB until told to go on (or a second
     * passes); answer like a real server so tests do not stall. */
    struct conn *c = p->data;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (strcasecmp(c->expect, "100-continue") == 0 && p->http_major == 1 &&
        p->http_minor >= 1 && out_append(c, cont, sizeof(cont) - 1) < 0) {
        c->failed = 1;
        return -1;  /* not 1 or 2: those mean "skip body" */
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    size_t need = c->req.body_len + n + 1;
    if (need > HR_BODY_MAX + 1)
        return -1;
    if (need > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 4096;
        while (cap < need)
            cap *= 2;
        char *b = realloc(c->req.body, cap);
        if (!b) {
            c->failed = 1;
            return -1;
        }
        c->req.body = b;
        c->body_cap = cap;
    }
    memcpy(c->req.body + c->req.body_len, at, n);
    c->req.body_len += n;
    return 0;
}

/* Keep r (taking its body) if every earlier request was kept; else free
 * its body.  Called with s->mu held. */
static void record(struct hr_server *s, struct hr_request *r)
{
    if (s->kept == s->count && s->kept < HR_MAX_REQ) {
        if (s->kept == s->cap) {
            unsigned cap = s->cap ? s->cap * 2 : 64;
            struct hr_request *a = realloc(s->reqs, cap * sizeof(*a));
            if (a) {
                s->reqs = a;
                s->cap = cap;
            }
        }
        if (s->kept < s->cap) {
            s->reqs[s->kept++] = *r;
            r->body = NULL;
        }
    }
    free(r->body);
    r->body = NULL;
    s->count++;
    pthread_cond_broadcast(&s->arrived);
}

/* Record the request, answer it from the script, and pause the parser when
 * the connection is to close after this answer. */
static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    struct hr_server *s = c->s;
    struct hr_request *r = &c->req;
    int keep = http_should_keep_alive(p);
    snprintf(r->method, sizeof(r->method), "%s", http_method_str((enum http_method)p->method));
    if (!r->body && !(r->body = malloc(1))) {
        c->failed = 1;
        return -1;
    }
    r->body[r->body_len] = '\0';
    r->at_ns = now_ns();
    r->conn = c->no;

    char head[128];
    pthread_mutex_lock(&s->mu);
    struct script *sc = s->head;
    r->status = sc ? sc->status : s->default_status;
    int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Length: 0\r\n", r->status,
                     reason(r->status));
    int rc = out_append(c, head, (size_t)n);
    if (rc == 0 && sc && sc->extra) {
        rc = out_append(c, sc->extra, strlen(sc->extra));
        if (rc == 0)
            rc = out_append(c, "\r\n", 2);
    }
    if (rc == 0 && !keep)
        rc = out_append(c, "Connection: close\r\n", 19);
    if (rc == 0)
        rc = out_append(c, "\r\n", 2);
    if (sc && --sc->left == 0) {
        s->head = sc->next;
        if (!s->head)
            s->tail = NULL;
        free(sc->extra);
        free(sc);
    }
    record(s, r);
    pthread_mutex_unlock(&s->mu);
    c->body_cap = 0;  /* the body went with the record */
    if (rc < 0) {
        c->failed = 1;
        return -1;
    }
    if (!keep)
        http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- connections (server thread only) ---- */

static void conn_close(struct hr_server *s, struct conn *c)
{
    assert(c->fd >= 0);
    close(c->fd);
    c->fd = -1;
    free(c->req.body);
    c->req.body = NULL;
    free(c->out);
    c->out = NULL;
    c->out_cap = c->out_len = c->out_off = 0;
    s->nconn--;
}

static void close_all(struct hr_server *s)
{
    for (int i = 0; i < HR_MAX_CONN; i++)
        if (s->conns[i].fd >= 0)
            conn_close(s, &s->conns[i]);
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
    }
}

/* Send what is queued; closes the connection on a send error, or once all
 * is sent when it is draining.  c may be closed on return. */
static void conn_flush(struct hr_server *s, struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_close(s, c);
            return;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    if (c->draining)
        conn_close(s, c);
}

/* Read what the client sent and feed it to the parser.  Answers to any
 * completed requests are flushed; c may be closed on return. */
static void conn_read(struct hr_server *s, struct conn *c)
{
    ssize_t n = recv(c->fd, s->rbuf, sizeof(s->rbuf), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n < 0) {
        conn_close(s, c);
        return;
    }
    if (n == 0) {  /* the client is done: send what is left, then close */
        c->draining = 1;
        conn_flush(s, c);
        return;
    }
    http_parser_execute(&c->p, &settings, s->rbuf, (size_t)n);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->p);
    if (e == HPE_PAUSED) {
        c->draining = 1;  /* answered "Connection: close"; ignore the rest */
    } else if (e != HPE_OK || c->p.upgrade || c->failed) {
        /* Bad request (or one we cannot hold): answers already queued get
         * one try, then the connection goes. */
        c->draining = 1;
        conn_flush(s, c);
        if (c->fd >= 0)
            conn_close(s, c);
        return;
    }
    conn_flush(s, c);
}

static void conn_open(struct hr_server *s, int fd)
{
    for (int i = 0; i < HR_MAX_CONN; i++) {
        struct conn *c = &s->conns[i];
        if (c->fd >= 0)
            continue;
        memset(c, 0, sizeof(*c));
        c->fd = fd;
        c->s = s;
        c->no = ++s->conn_seq;
        http_parser_init(&c->p, HTTP_REQUEST);
        c->p.data = c;
        s->nconn++;
        return;
    }
    close(fd);  /* not reached: the listener is not polled when full */
}

static void accept_all(struct hr_server *s)
{
    while (s->nconn < HR_MAX_CONN) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                /* EMFILE and friends: back off rather than spin. */
                fprintf(stderr, "httprecv: accept: %s\n", strerror(errno));
                nanosleep(&(struct timespec){ .tv_nsec = 10000000L }, NULL);
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn_open(s, fd);
    }
}

/* Carry out the command posted by the API.  Returns 1 to quit. */
static int do_command(struct hr_server *s)
{
    uint64_t v;
    ssize_t rd = read(s->wake_fd, &v, sizeof(v));
    (void)rd;
    int quit = 0;
    pthread_mutex_lock(&s->mu);
    switch (s->cmd) {
    case CMD_NONE:
        break;
    case CMD_LISTEN:
        assert(s->listen_fd < 0);
        s->listen_fd = s->cmd_fd;
        s->listening = 1;
        break;
    case CMD_QUIT:
        quit = 1;
        close_all(s);
        s->listening = 0;
        break;
    case CMD_STOP:
        close_all(s);
        s->listening = 0;
        break;
    }
    s->cmd = CMD_NONE;
    pthread_cond_broadcast(&s->cmd_done);
    pthread_mutex_unlock(&s->mu);
    return quit;
}

static void *run(void *arg)
{
    struct hr_server *s = arg;
    struct pollfd pf[2 + HR_MAX_CONN];
    int slot[2 + HR_MAX_CONN];
    for (;;) {
        nfds_t n = 0, first;
        int lidx = -1;
        pf[n++] = (struct pollfd){ .fd = s->wake_fd, .events = POLLIN };
        if (s->listen_fd >= 0 && s->nconn < HR_MAX_CONN) {
            lidx = (int)n;
            pf[n++] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
        }
        first = n;
        for (int i = 0; i < HR_MAX_CONN; i++) {
            struct conn *c = &s->conns[i];
            if (c->fd < 0)
                continue;
            short ev = c->draining ? 0 : POLLIN;
            if (c->out_off < c->out_len)
                ev |= POLLOUT;
            slot[n] = i;
            pf[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
        }
        if (poll(pf, n, -1) < 0) {
            if (errno != EINTR) {
                fprintf(stderr, "httprecv: poll: %s\n", strerror(errno));
                nanosleep(&(struct timespec){ .tv_nsec = 10000000L }, NULL);
            }
            continue;
        }
        if (pf[0].revents) {
            if (do_command(s))
                return NULL;
            continue;  /* sockets may have changed: poll afresh */
        }
        for (nfds_t k = first; k < n; k++) {
            struct conn *c = &s->conns[slot[k]];
            short re = pf[k].revents;
            if (!re || c->fd != pf[k].fd)
                continue;
            if (!c->draining && (re & (POLLIN | POLLHUP | POLLERR)))
                conn_read(s, c);
            else if (re & (POLLHUP | POLLERR | POLLNVAL))
                conn_close(s, c);
            if (c->fd >= 0 && (re & POLLOUT))
                conn_flush(s, c);
        }
        if (lidx >= 0 && pf[lidx].revents)
            accept_all(s);
    }
}

/* A listening socket on 127.0.0.1:port (SO_REUSEADDR so a restart can
 * take the port back at once); the port bound into *bound if not NULL.
 * Returns the fd or a negative errno, with a message on stderr. */
static int listen_on(uint16_t port, uint16_t *bound)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    int one = 1, rc = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        rc = -errno;
    if (rc < 0) {
        fprintf(stderr, "httprecv: listen on 127.0.0.1:%u: %s\n", (unsigned)port, strerror(-rc));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    if (bound)
        *bound = ntohs(sa.sin_port);
    return fd;
}

/* Post a command to the thread and wait until it is done.  Caller holds
 * s->ctl. */
static void command(struct hr_server *s, enum hr_cmd cmd, int fd)
{
    uint64_t one = 1;
    pthread_mutex_lock(&s->mu);
    s->cmd = cmd;
    s->cmd_fd = fd;
    ssize_t w = write(s->wake_fd, &one, sizeof(one));
    (void)w;  /* cannot fail short of 2^64 - 1 pending wake-ups */
    while (s->cmd != CMD_NONE)
        pthread_cond_wait(&s->cmd_done, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

/* ---- API ---- */

struct hr_server *hr_start(uint16_t port)
{
    struct hr_server *s = calloc(1, sizeof(*s));
    if (!s) {
        fprintf(stderr, "httprecv: out of memory\n");
        return NULL;
    }
    s->wake_fd = s->listen_fd = -1;
    s->default_status = 200;
    for (int i = 0; i < HR_MAX_CONN; i++)
        s->conns[i].fd = -1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->arrived, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&s->cmd_done, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->ctl, NULL);

    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->wake_fd < 0) {
        fprintf(stderr, "httprecv: eventfd: %s\n", strerror(errno));
        goto fail;
    }
    s->listen_fd = listen_on(port, &s->port);
    if (s->listen_fd < 0)
        goto fail;
    s->listening = 1;
    int rc = pthread_create(&s->thread, NULL, run, s);
    if (rc != 0) {
        fprintf(stderr, "httprecv: pthread_create: %s\n", strerror(rc));
        goto fail;
    }
    s->thread_started = 1;
    return s;
fail:
    hr_free(s);
    return NULL;
}

uint16_t hr_port(const struct hr_server *s)
{
    return s->port;
}

void hr_url(const struct hr_server *s, const char *path, char *buf, size_t cap)
{
    if (cap)
        snprintf(buf, cap, "http://127.0.0.1:%u%s", (unsigned)s->port, path ? path : "");
}

void hr_script(struct hr_server *s, int status, unsigned n, const char *extra_header)
{
    assert(status >= 100 && status <= 999);
    if (n == 0)
        return;
    struct script *sc = calloc(1, sizeof(*sc));
    if (sc && extra_header) {
        size_t len = strcspn(extra_header, "\r\n");  /* one line; we add the CRLF */
        sc->extra = strndup(extra_header, len);
    }
    if (!sc || (extra_header && !sc->extra)) {
        fprintf(stderr, "httprecv: out of memory for the script\n");
        abort();  /* the test could mean nothing without its script */
    }
    sc->status = status;
    sc->left = n;
    pthread_mutex_lock(&s->mu);
    if (s->tail)
        s->tail->next = sc;
    else
        s->head = sc;
    s->tail = sc;
    pthread_mutex_unlock(&s->mu);
}

void hr_default(struct hr_server *s, int status)
{
    assert(status >= 100 && status <= 999);
    pthread_mutex_lock(&s->mu);
    s->default_status = status;
    pthread_mutex_unlock(&s->mu);
}

unsigned hr_count(struct hr_server *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned n = s->count;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int hr_get(struct hr_server *s, unsigned i, struct hr_request *out)
{
    int rc = -1;
    pthread_mutex_lock(&s->mu);
    if (i < s->kept) {
        const struct hr_request *r = &s->reqs[i];
        char *body = malloc(r->body_len + 1);
        if (body) {
            memcpy(body, r->body, r->body_len + 1);
            *out = *r;
            out->body = body;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int hr_signed_by(const struct hr_request *r, const char *secret)
{
    struct hc_webhook_secret s;
    if (hc_webhook_secret_parse(secret, &s) != 0)
        return 0;
    return hc_webhook_verify(&s, r->id, strtoll(r->timestamp, NULL, 10), r->body, r->body_len,
                             r->signature, time(NULL), 300) == 1;
}

void hr_request_free(struct hr_request *r)
{
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
}

unsigned hr_wait(struct hr_server *s, unsigned n, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    if (timeout_ms > 0) {
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&s->mu);
    while (s->count < n) {
        if (timeout_ms < 0)
            pthread_cond_wait(&s->arrived, &s->mu);
        else if (pthread_cond_timedwait(&s->arrived, &s->mu, &dl) == ETIMEDOUT)
            break;
    }
    unsigned got = s->count;
    pthread_mutex_unlock(&s->mu);
    return got;
}

void hr_stop(struct hr_server *s)
{
    pthread_mutex_lock(&s->ctl);
    command(s, CMD_STOP, -1);
    pthread_mutex_unlock(&s->ctl);
}

int hr_restart(struct hr_server *s)
{
    int rc = 0;
    pthread_mutex_lock(&s->ctl);
    pthread_mutex_lock(&s->mu);
    int listening = s->listening;
    pthread_mutex_unlock(&s->mu);
    if (!listening) {
        int fd = listen_on(s->port, NULL);
        if (fd < 0)
            rc = fd;
        else
            command(s, CMD_LISTEN, fd);
    }
    pthread_mutex_unlock(&s->ctl);
    return rc;
}

void hr_free(struct hr_server *s)
{
    if (!s)
        return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->ctl);
        command(s, CMD_QUIT, -1);
        pthread_mutex_unlock(&s->ctl);
        pthread_join(s->thread, NULL);
    } else if (s->listen_fd >= 0) {
        close(s->listen_fd);
    }
    for (unsigned i = 0; i < s->kept; i++)
        free(s->reqs[i].body);
    free(s->reqs);
    while (s->head) {
        struct script *next = s->head->next;
        free(s->head->extra);
        free(s->head);
        s->head = next;
    }
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    pthread_cond_destroy(&s->arrived);
    pthread_cond_destroy(&s->cmd_done);
    pthread_mutex_destroy(&s->ctl);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
