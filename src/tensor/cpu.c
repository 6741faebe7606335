/* cpu.c - run-time ISA detection (CPUID + XGETBV) and the kernel choice. */
#include <pthread.h>
#include <stdlib.h>

#include "airlock.h"
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

bool al_cpu_has_avx512_vnni(void)
{
    if (!al_cpu_has_avx2())
        return false;
    /* XCR0: XMM, YMM, opmask, upper ZMM0-15 and ZMM16-31 state (the EVEX
     * encoding of 256-bit code still uses k registers and ymm16-31) */
    if ((xgetbv0() & 0xe6) != 0xe6)
        return false;
    unsigned a, b, c, d;
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned f = 1u << 16, bw = 1u << 30, vl = 1u << 31;
    return (b & (f | bw | vl)) == (f | bw | vl) && (c & (1u << 11)) != 0; /* AVX512_VNNI */
}
#else
bool al_cpu_has_avx2(void)
{
    return false;
}

bool al_cpu_has_avx512_vnni(void)
{
    return false;
}
#endif

static bool env_set(const char *name)
{
    const char *env = getenv(name);
    return env && env[0] && !(env[0] == '0' && env[1] == 0);
}

static al_kernels k_avx512;
static pthread_once_t k_avx512_once = PTHREAD_ONCE_INIT;

static void init_avx512(void)
{
    const al_kernels *avx2 = al_kernels_avx2();
    if (!avx2)
        return;
    k_avx512 = *avx2;
    k_avx512.name = "avx512vnni";
    al_panel_kernels_avx512(&k_avx512);
}

const al_kernels *al_kernels_avx512(void)
{
    pthread_once(&k_avx512_once, init_avx512);
    if (!k_avx512.name) /* no AVX2 code in this build */
        return NULL;
    const al_kernels *avx2 = al_kernels_avx2();
    for (int t = 0; t < AL_TYPE_COUNT; t++) /* nor AVX-512 code: the table would be AVX2's */
        if (k_avx512.panel[t].gemm != avx2->panel[t].gemm)
            return &k_avx512;
    return NULL;
}

static const al_kernels *g_kernels;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
    g_kernels = al_kernels_ref();
    if (env_set("AIRLOCK_NO_AVX2") || !al_cpu_has_avx2() || !al_kernels_avx2())
        return;
    g_kernels = al_kernels_avx2();
    if (!env_set("AIRLOCK_NO_AVX512") && al_cpu_has_avx512_vnni() && al_kernels_avx512())
        g_kernels = al_kernels_avx512();
}

const al_kernels *al_kernels_get(void)
{
    pthread_once(&g_once, choose);
    return g_kernels;
}

const char *al_kernel_isa(void)
{
    return al_kernels_get()->name;
}
