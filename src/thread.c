/*
 * thread.c — thread start-up with core pinning (see thread.h).
 */
#include <sched.h>
#include <string.h>

#include "hubcap/log.h"
#include "hubcap/thread.h"

int hc_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, int cpu, const char *who)
{
    int rc = pthread_create(t, NULL, fn, arg);
    if (rc)
        return -rc;
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        rc = pthread_setaffinity_np(*t, sizeof(set), &set);
        if (rc)
            hc_warn(who, "cannot pin to core %d: %s", cpu, strerror(rc));
    }
    return 0;
}
