/*
 * ring.c — ring storage and the eventfd doorbell (see ring.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hubcap/ring.h"

int hc_ring_init(struct hc_ring *r, unsigned size)
{
    memset(r, 0, sizeof(*r));
    if (size < 4 || (size & (size - 1)))
        return -EINVAL;
    r->buf = aligned_alloc(64, (size_t)size * sizeof(struct hc_report));
    if (!r->buf)
        return -ENOMEM;
    ck_ring_init(&r->ring, size);
    return 0;
}

void hc_ring_free(struct hc_ring *r)
{
    if (!r)
        return;
    free(r->buf);
    r->buf = NULL;
}

int hc_wake_init(struct hc_wake *w)
{
    w->sleeping = 0;
    w->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return w->fd < 0 ? -errno : 0;
}

void hc_wake_free(struct hc_wake *w)
{
    if (w && w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
}

void hc_wake_signal(struct hc_wake *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->fd, &one, sizeof(one));
    (void)n;    /* EAGAIN: the counter is already non-zero, a wake is pending */
}

int hc_wake_wait(struct hc_wake *w, int timeout_ms)
{
    struct pollfd p = { .fd = w->fd, .events = POLLIN };
    int n = poll(&p, 1, timeout_ms);
    uint64_t v;
    if (n > 0) {
        ssize_t r = read(w->fd, &v, sizeof(v));
        (void)r;
    }
    hc_wake_cancel(w);
    return n > 0;
}
