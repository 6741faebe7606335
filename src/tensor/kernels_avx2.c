/* kernels_avx2.c - AVX2/FMA/F16C dot products. Compiled with -mavx2 -mfma
 * -mf16c only; used only after al_cpu_has_avx2(). Types without an AVX2
 * kernel here use the reference kernel. */
#include "tensor/kernels.h"

#include <immintrin.h>
#include <pthread.h>
#include <string.h>

static al_kernels k_avx2;
static pthread_once_t k_once = PTHREAD_ONCE_INIT;

static void init(void)
{
    k_avx2 = *al_kernels_ref();
    k_avx2.name = "avx2";
}

const al_kernels *al_kernels_avx2(void)
{
    pthread_once(&k_once, init);
    return &k_avx2;
}
