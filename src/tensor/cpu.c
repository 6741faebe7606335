/* cpu.c - run-time ISA detection (CPUID + XGETBV) and the kernel choice. */
#include <pthread.h>
#include <stdlib.h>

#include "tensor/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

bool al_cpu_has_avx2(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return false;
    const unsigned fma = 1u << 12, osxsave = 1u << 27, avx = 1u << 28, f16c = 1u << 29;
    if ((c & (fma | osxsave | avx | f16c)) != (fma | osxsave | avx | f16c))
        return false;
    if ((xgetbv0() & 6) != 6) /* OS saves XMM and YMM state */
        return false;
    if (__get_cpuid_max(0, NULL) < 7)
        return false;
    __cpuid_count(7, 0, a, b, c, d);
    return (b & (1u << 5)) != 0; /* AVX2 */
}
#else
bool al_cpu_has_avx2(void)
{
    return false;
}
#endif

static const al_kernels *g_kernels;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
    const char *env = getenv("AIRLOCK_NO_AVX2");
    bool disabled = env && env[0] && !(env[0] == '0' && env[1] == 0);
    g_kernels = al_kernels_ref();
    if (!disabled && al_cpu_has_avx2() && al_kernels_avx2())
        g_kernels = al_kernels_avx2();
}

const al_kernels *al_kernels_get(void)
{
    pthread_once(&g_once, choose);
    return g_kernels;
}
