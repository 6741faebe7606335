/* attention.c - plain-C attention kernels over the F16 KV cache, the half
 * conversions, and the run-time choice of kernels. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "model/attention.h"

/* IEEE half <-> single, round to nearest even. */
float al_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t al_float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u)
        return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow */
        return (uint16_t)(sign | 0x7c00);
    if (ax < 0x38800000u) { /* subnormal half or zero */
        if (ax < 0x33000000u)
            return (uint16_t)sign;
        /* |f| = m * 2^(e-150); the half subnormal unit is 2^-24 */
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        uint32_t sh = 126 - e;
        uint32_t q = m >> sh, rem = m & ((1u << sh) - 1), halfway = 1u << (sh - 1);
        if (rem > halfway || (rem == halfway && (q & 1)))
            q++;
        return (uint16_t)(sign | q);
    }
    uint32_t e = (ax >> 23) - 127 + 15, m = ax & 0x7fffff;
    uint32_t h = (e << 10) | (m >> 13), rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
}

static float dot_f16(const float *q, const uint16_t *k, uint32_t n)
{
    float s = 0.0f;
    for (uint32_t i = 0; i < n; i++)
        s += q[i] * al_half_to_float(k[i]);
    return s;
}

static void axpy_f16(float *acc, float a, const uint16_t *v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        acc[i] += a * al_half_to_float(v[i]);
}

static void to_f16(const float *src, uint16_t *dst, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        dst[i] = al_float_to_half(src[i]);
}

static const al_attn_kernels k_ref = {dot_f16, axpy_f16, to_f16};

const al_attn_kernels *al_attn_kernels_ref(void)
{
    return &k_ref;
}

static const al_attn_kernels *g_chosen = &k_ref;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
    const char *no = getenv("AIRLOCK_NO_AVX2");
    if (no && *no && strcmp(no, "0"))
        return;
    __builtin_cpu_init();
    /* libgcc checks CPUID and the OS's XSAVE state (XGETBV) for AVX. */
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        g_chosen = al_attn_kernels_avx2();
}

const al_attn_kernels *al_attn_kernels_get(void)
{
    pthread_once(&g_once, choose);
    return g_chosen;
}
