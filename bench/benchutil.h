/*
 * benchutil.h — what every benchmark program shares: medians.
 */
#ifndef HUBCAP_BENCHUTIL_H
#define HUBCAP_BENCHUTIL_H

#include <stdlib.h>

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n), n > 0; sorts v, so v[0] and v[n-1] are then the
 * extremes. */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif
