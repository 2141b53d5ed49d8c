/*
 * thread.h — starting hubcap's long-lived threads, pinned to a core.
 */
#ifndef HUBCAP_THREAD_H
#define HUBCAP_THREAD_H

#include <pthread.h>

/* Start fn(arg) in *t and, when cpu >= 0, pin it to that core (a failure
 * to pin is logged under `who`, not fatal).  0 or a negative errno. */
int hc_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, int cpu, const char *who);

#endif
