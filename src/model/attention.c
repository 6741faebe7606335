/* attention.c - plain-C attention kernels over the F16 KV cache and the
 * run-time choice between them and their AVX2 twins. */
#include <pthread.h>

#include "model/attention.h"
#include "tensor/kernels.h"
#include "tensor/quant.h"

static float dot_f16(const float *q, const uint16_t *k, uint32_t n)
{
    float s = 0.0f;
    for (uint32_t i = 0; i < n; i++)
        s += q[i] * al_fp16_to_fp32(k[i]);
    return s;
}

static void axpy_f16(float *acc, float a, const uint16_t *v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        acc[i] += a * al_fp16_to_fp32(v[i]);
}

static void to_f16(const float *src, uint16_t *dst, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        dst[i] = al_fp32_to_fp16(src[i]);
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
    /* al_cpu_has_avx2 checks CPUID, the OS's YMM state (XGETBV) and
     * AIRLOCK_NO_AVX2. */
    if (al_cpu_has_avx2())
        g_chosen = al_attn_kernels_avx2();
}

const al_attn_kernels *al_attn_kernels_get(void)
{
    pthread_once(&g_once, choose);
    return g_chosen;
}
