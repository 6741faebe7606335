/* attention.h - the F16 KV-cache vector kernels of attention: a plain-C
 * reference and an AVX2/F16C twin (attention_avx2.c), chosen once at run
 * time by al_attn_kernels(). */
#ifndef AL_MODEL_ATTENTION_H
#define AL_MODEL_ATTENTION_H

#include <stdint.h>

typedef struct al_attn_kernels {
    /* dst[i] = half(src[i]) with round-to-nearest-even */
    void (*to_f16)(const float *src, uint16_t *dst, uint32_t n);
    /* Attention of nh query heads that share one KV head, over n_pos
     * positions: out[h*hd + i] = sum_p softmax_p(scale * q_h . k_p) v_p[i],
     * q_h = q + h*hd, k_p = k + p*stride, v_p = v + p*stride (halves).
     * scores: nh*n_pos floats of scratch. n_pos >= 1. */
    void (*attend_f16)(const float *q, uint32_t nh, const uint16_t *k, const uint16_t *v, size_t stride,
                       int32_t n_pos, uint32_t hd, float scale, float *scores, float *out);
} al_attn_kernels;

/* The plain-C attend_f16 (the AVX2 one falls back to it for head sizes
 * that are not a multiple of 32). */
void al_attend_f16_ref(const float *q, uint32_t nh, const uint16_t *k, const uint16_t *v, size_t stride, int32_t n_pos,
                       uint32_t hd, float scale, float *scores, float *out);

/* The kernels for this CPU (AVX2+FMA+F16C when the CPU and OS support them
 * and AIRLOCK_NO_AVX2 is unset). Thread-safe; the choice is made once. */
const al_attn_kernels *al_attn_kernels_get(void);
/* The plain-C reference kernels (tests hold the fast ones to these). */
const al_attn_kernels *al_attn_kernels_ref(void);
/* The AVX2 kernels, or NULL when not compiled in. */
const al_attn_kernels *al_attn_kernels_avx2(void);

#endif
