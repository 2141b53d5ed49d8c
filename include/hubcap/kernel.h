/*
 * kernel.h — the vectorized pairwise-distance kernels.
 *
 * A kernel compares one point against a block of points stored as three
 * arrays (x, y, z) of unit-vector components.  Implementations: scalar
 * (portable C), AVX2 (4 doubles per step) and AVX-512F (8 per step),
 * picked once at start-up from what the CPU supports, or forced by name
 * (the HUBCAP_KERNEL environment variable, e.g. HUBCAP_KERNEL=scalar).
 *
 * Every implementation computes the squared chord with the same operations
 * in the same order (dx*dx + dy*dy, then + dz*dz, no fused multiply-add),
 * so all of them return bit-identical results.  The tables are immutable;
 * any thread may use them.
 */
#ifndef HUBCAP_KERNEL_H
#define HUBCAP_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#define HC_KERNEL_MAX_BLOCK 64   /* largest n accepted by exceed() */

struct hc_kernel {
    const char *name;
    /* Bit i of the result is set when the squared chord between point i of
     * (x, y, z) and p exceeds limit.  n <= HC_KERNEL_MAX_BLOCK; the arrays
     * must hold n readable values (padding past the caller's interest is
     * fine; mask it off). */
    uint64_t (*exceed)(const double *x, const double *y, const double *z,
                       size_t n, const double p[3], double limit);
    /* Number of set bits of exceed(...) & ~skip: a window's row count.
     * (Vector kernels also have a popcount instruction; the baseline
     * x86-64 does not.) */
    unsigned (*exceed_count)(const double *x, const double *y, const double *z,
                             size_t n, const double p[3], double limit,
                             uint64_t skip);
    /* One pass for a full window whose point `out` is replaced by `in`:
     * *n_out = set bits of exceed(.., out, ..) & ~skip and *n_in the same
     * for in, reading the window once instead of twice. */
    void (*exceed_count2)(const double *x, const double *y, const double *z,
                          size_t n, const double out[3], const double in[3],
                          double limit, uint64_t skip, unsigned *n_out,
                          unsigned *n_in);
    /* out[i] = squared chord between point i and p, for i < n (any n). */
    void (*chord2)(const double *x, const double *y, const double *z,
                   size_t n, const double p[3], double *out);
};

/* The fastest kernel this CPU runs, unless HUBCAP_KERNEL names another
 * supported one.  Never NULL. */
const struct hc_kernel *hc_kernel_best(void);

/* The kernel called name ("scalar", "avx2", "avx512") if the CPU supports
 * it, else NULL. */
const struct hc_kernel *hc_kernel_by_name(const char *name);

/* All kernels this CPU supports, scalar first; returns how many were put in
 * out (at most cap). */
size_t hc_kernel_list(const struct hc_kernel **out, size_t cap);

/* Implementations (kernel_*.c); use the functions above to choose. */
extern const struct hc_kernel hc_kernel_scalar;
extern const struct hc_kernel hc_kernel_avx2;
extern const struct hc_kernel hc_kernel_avx512;

#endif
