/* kernels.h - internal to src/tensor: the dot-product kernel tables (plain-C
 * reference in kernels_ref.c, AVX2/FMA/F16C in kernels_avx2.c), the CPU
 * feature check and helpers shared by the kernels. Not a public API. */
#ifndef AL_TENSOR_KERNELS_H
#define AL_TENSOR_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/quant.h"
#include "tensor/types.h"

#define AL_DOT_MAX_NT 4 /* tokens per dot call */

/* out[t] = sum_i w[i] * a_t[i] for t < nt (1..AL_DOT_MAX_NT), where w is one
 * weight row of k elements and a_t = (const char *)a + t*a_stride is an
 * activation row of k elements in the weight type's activation type. */
typedef void (*al_dot_fn)(int64_t k, const void *w, const void *a, size_t a_stride, int nt, float *out);

#define AL_PANEL_ROWS 8           /* weight rows interleaved in a panel */
#define AL_PANEL_NT 4             /* tokens per panel gemm call at most (unless max_nt) */
#define AL_PANEL_NT_MAX 8         /* the largest max_nt */
#define AL_PANEL_MAX_BYTES (128 << 10) /* larger panels: dot kernels instead */

/* Panel kernels (prompt batches): `pack` rearranges AL_PANEL_ROWS weight
 * rows (row i at w + i*row_bytes, k elements) into `panel` (bytes(k) bytes,
 * 32-byte aligned); `gemm` computes out[t*ldo + r] for the panel's rows
 * r < AL_PANEL_ROWS and tokens t < nt (1..max_nt, or AL_PANEL_NT when
 * max_nt is 0), token t's
 * activation row at (const char *)a + t*as in the weight type's activation
 * type. When needs_asum, asum + t*ss holds token t's sums of the int8
 * activations over each group of 32 elements (k/32 of them). */
typedef struct al_panel_kernel {
    size_t (*bytes)(int64_t k);
    void (*pack)(int64_t k, const uint8_t *w, size_t row_bytes, void *panel);
    void (*gemm)(int64_t k, const void *panel, const void *a, size_t as, const int16_t *asum, size_t ss, int nt,
                 float *out, int64_t ldo);
    bool needs_asum;
    bool compact; /* panels about the size of the rows: worth keeping (al_matmul_pack) */
    int max_nt;   /* tokens per gemm call at most (<= AL_PANEL_NT_MAX); 0: AL_PANEL_NT */
    /* One token against n_panels panels (pstride bytes apart), or NULL:
     * xq is the token's activation row (the weight type's activation
     * type), xe its int8 values expanded by al_act_expand (64-byte
     * aligned), asum its per-32 sums when needs_asum; out[8p + r] gets
     * panel p's row r. The same bits as gemm with nt = 1. */
    void (*gemv)(int64_t k, const void *panel, int64_t n_panels, size_t pstride, const void *xq, const uint8_t *xe,
                 const int16_t *asum, float *out);
} al_panel_kernel;

/* How a matmul's rows are cut into chunks for the thread pool (matmul.c,
 * matmul_grouped.c): about `want` chunks over all its rows, each at most
 * `cap` bytes of weights (unless 16 rows are more). Batches take 16 chunks
 * a thread of at most 256 KiB, so that a preempted thread holds the others
 * back little. A step of at most AL_MM_FEW_TOK tokens (decoding, one
 * sequence or a batch of them) mostly streams the weights, and there every
 * chunk costs: a claim on the pool's shared counter, and a new stream for
 * the prefetchers (prefetching a chunk's first bytes did not help). 2
 * chunks a thread of at most 4 MiB,
 * against 16 of 256 KiB, tg128 on a quiet avx512vnni host, 2 threads,
 * runs interleaved (t/s, AVX-512 kernels / AVX2 kernels): qwen3-0.6b
 * q4_k_m 60.7 -> 63.9 / 53.1 -> 60.9, q8_0 45.9 -> 46.3 / 38.2 -> 43.6,
 * llama-3.2-1b q4_k_m 31.2 -> 31.6 / 30.8 -> 31.6; 4 chunks a thread and
 * a 256 KiB or 1 MiB cap were in between. Batched decoding (bench --seqs,
 * AVX-512, 3 interleaved runs): with the rule up to 4 tokens, 8 sequences
 * 224.9-231.2 t/s, 16 253.1-256.1; up to 16 tokens 239.2-241.0 and
 * 262.0-271.8. Prompts in passes of 32 or 64 tokens showed no difference
 * between a rule up to 4, 16 or 64 tokens. */
#define AL_MM_FEW_TOK 16
typedef struct al_mm_chunking {
    int64_t want;
    size_t cap;
} al_mm_chunking;

static inline al_mm_chunking al_mm_chunking_for(int nth, int64_t max_tok)
{
    al_mm_chunking c = {(int64_t)nth * 16, 256 << 10};
    if (max_tok <= AL_MM_FEW_TOK) {
        c.want = (int64_t)nth * 2;
        c.cap = 4 << 20;
    }
    if (nth <= 1)
        c.want = 1;
    return c;
}

/* The expanded activation row of the gemv kernels: the int8 values of an
 * activation row (Q8_K or Q8_0, k elements) in order, each group of 4
 * bytes repeated 8 times (8k bytes, AL_EXPAND_BYTES). */
#define AL_EXPAND_BYTES(k) ((size_t)(k) * 8)
void al_act_expand(uint32_t atype, const void *row, int64_t k, uint8_t *xe);

/* The panels of F16 and BF16 weights take their activations as F32 rows
 * holding the F16 / BF16 values (rounded once per matmul by the driver),
 * not as al_act_type rows. */
static inline bool al_panel_f32_acts(uint32_t wtype)
{
    return wtype == AL_TYPE_F16 || wtype == AL_TYPE_BF16;
}
/* The drivers' activation type ids of those F32 rows. */
#define AL_ACT_F32_F16 (AL_TYPE_COUNT + 1)
#define AL_ACT_F32_BF16 (AL_TYPE_COUNT + 2)
/* One F16 / BF16 weight row of k elements . an F32 row, plain C (the rows
 * past the last panel of such a matrix). */
float al_dot_f32_acts(uint32_t wtype, int64_t k, const uint8_t *w, const float *x);

typedef struct al_kernels {
    const char *name;               /* "generic", "avx2", "avx512vnni" */
    al_dot_fn dot[AL_TYPE_COUNT];   /* NULL: type not supported */
    al_panel_kernel panel[AL_TYPE_COUNT]; /* gemm NULL: use dot */
    /* activation quantizers, bit-identical to al_quantize_row_q8_0/_K for
     * finite inputs */
    void (*quant_q8_0)(const float *x, al_block_q8_0 *y, int64_t n);
    void (*quant_q8_K)(const float *x, al_block_q8_K *y, int64_t n);
    /* fp32 -> fp16 rows, bit-identical to al_fp32_to_fp16 (RNE, NaN kept
     * quiet); round_f16: the same values back in F32 (x -> F16 -> F32) */
    void (*to_f16)(const float *x, al_half *y, int64_t n);
    void (*round_f16)(const float *x, float *y, int64_t n);
} al_kernels;

const al_kernels *al_kernels_ref(void);
/* NULL when the library was built without AVX2 code. Call only when
 * al_cpu_has_avx2() is true. */
const al_kernels *al_kernels_avx2(void);
/* The AVX2 table with the AVX-512-VNNI panel kernels (gemm_avx512.c) in
 * place of AVX2's, same panel layout; NULL when the library was built
 * without that code. Call only when al_cpu_has_avx512_vnni() is true. */
const al_kernels *al_kernels_avx512(void);
/* The kernels al_matmul uses: AVX-512-VNNI when the CPU and OS support it,
 * else AVX2 when they support that, else the plain-C reference. Env
 * AIRLOCK_NO_AVX512 (set to a non-empty value other than "0") stops at
 * AVX2, AIRLOCK_NO_AVX2 at the reference. Decided once per process,
 * thread-safe. */
const al_kernels *al_kernels_get(void);

/* Fills ks->panel with the AVX2 panel kernels (gemm_avx2.c). */
void al_panel_kernels_avx2(al_kernels *ks);
/* Replaces the gemm of the Q4_0, Q8_0, Q4_K, Q5_K, Q6_K and IQ4_XS panels
 * in ks (AVX2's, whose packing it keeps) with AVX-512-VNNI ones (gemm_avx512.c);
 * no-op in a build without that code. */
void al_panel_kernels_avx512(al_kernels *ks);
/* Sets the AVX2 dot and panel kernels of IQ4_NL, IQ4_XS, MXFP4, TQ1_0 and
 * TQ2_0 (kernels_iq4_avx2.c). */
void al_kernels_iq4_avx2(al_kernels *ks);

/* CPUID: AVX2 + FMA + F16C and the OS saves YMM state (XGETBV). */
bool al_cpu_has_avx2(void);
/* CPUID: the above and AVX-512 F, BW, VL and VNNI, and the OS saves the
 * opmask and ZMM state (XGETBV). */
bool al_cpu_has_avx512_vnni(void);

/* The type activations are converted to for a weight type (ggml's
 * vec_dot_type): F32, F16, BF16, Q8_0, Q8_1 or Q8_K; AL_TYPE_COUNT if none. */
uint32_t al_act_type(uint32_t wtype);

/* The little-endian uint32 at p (the qh bits of Q5_0/Q5_1 blocks). */
static inline uint32_t al_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The 16 signed scales (already minus 32) of a Q3_K block. */
void al_q3_K_scales(const uint8_t s[12], int8_t out[16]);
/* Scale and min j (0..7) of the 12 packed bytes of a Q4_K/Q5_K block. */
void al_q4_K_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m);

/* al_matmul with an explicit kernel table (tests compare tables). */
struct al_threadpool;
void al_matmul_with(const al_kernels *ks, struct al_threadpool *tp, uint32_t wtype, const void *W, int64_t n_rows,
                    int64_t k, size_t row_bytes, const float *X, int64_t n_tok, float *Y, int64_t ldy, void *scratch);

#endif
