/*
 * kernel.c — the scalar kernel and run-time kernel selection.
 *
 * The scalar loops are the specification the vector kernels must match bit
 * for bit; keep their arithmetic identical to hc_geo_chord2().
 */
#include <stdlib.h>
#include <string.h>

#include "hubcap/geo.h"
#include "hubcap/kernel.h"

static uint64_t scalar_exceed(const double *x, const double *y, const double *z,
                              size_t n, const double p[3], double limit)
{
    uint64_t mask = 0;
    for (size_t i = 0; i < n; i++) {
        double q[3] = { x[i], y[i], z[i] };
        if (hc_geo_chord2(q, p) > limit)
            mask |= (uint64_t)1 << i;
    }
    return mask;
}

static unsigned scalar_exceed_count(const double *x, const double *y,
                                    const double *z, size_t n,
                                    const double p[3], double limit, uint64_t skip)
{
    return (unsigned)__builtin_popcountll(scalar_exceed(x, y, z, n, p, limit) & ~skip);
}

static void scalar_exceed_count2(const double *x, const double *y,
                                 const double *z, size_t n, const double out[3],
                                 const double in[3], double limit, uint64_t skip,
                                 unsigned *n_out, unsigned *n_in)
{
    *n_out = scalar_exceed_count(x, y, z, n, out, limit, skip);
    *n_in = scalar_exceed_count(x, y, z, n, in, limit, skip);
}

static void scalar_chord2(const double *x, const double *y, const double *z,
                          size_t n, const double p[3], double *out)
{
    for (size_t i = 0; i < n; i++) {
        double q[3] = { x[i], y[i], z[i] };
        out[i] = hc_geo_chord2(q, p);
    }
}

const struct hc_kernel hc_kernel_scalar = {
    .name = "scalar",
    .exceed = scalar_exceed,
    .exceed_count = scalar_exceed_count,
    .exceed_count2 = scalar_exceed_count2,
    .chord2 = scalar_chord2,
};

static int cpu_has(const struct hc_kernel *k)
{
    __builtin_cpu_init();
    if (k == &hc_kernel_avx512)
        return __builtin_cpu_supports("avx512f");
    if (k == &hc_kernel_avx2)
        return __builtin_cpu_supports("avx2");
    return 1;
}

/* Fastest first. */
static const struct hc_kernel *const all_kernels[] = {
    &hc_kernel_avx512, &hc_kernel_avx2, &hc_kernel_scalar,
};
#define N_KERNELS (sizeof(all_kernels) / sizeof(all_kernels[0]))

const struct hc_kernel *hc_kernel_by_name(const char *name)
{
    for (size_t i = 0; i < N_KERNELS; i++)
        if (strcmp(all_kernels[i]->name, name) == 0)
            return cpu_has(all_kernels[i]) ? all_kernels[i] : NULL;
    return NULL;
}

const struct hc_kernel *hc_kernel_best(void)
{
    const char *want = getenv("HUBCAP_KERNEL");
    if (want && *want) {
        const struct hc_kernel *k = hc_kernel_by_name(want);
        if (k)
            return k;
    }
    for (size_t i = 0; i < N_KERNELS; i++)
        if (cpu_has(all_kernels[i]))
            return all_kernels[i];
    return &hc_kernel_scalar;
}

size_t hc_kernel_list(const struct hc_kernel **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = N_KERNELS; i-- > 0 && n < cap;)
        if (cpu_has(all_kernels[i]))
            out[n++] = all_kernels[i];
    return n;
}
