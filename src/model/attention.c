/* attention.c - plain-C attention kernels over the F16 KV cache and the
 * run-time choice between them and their AVX2 twins. */
#include <math.h>
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
    al_fp32_to_fp16_row(src, dst, n);
}

/* One head at a time, exactly as the forward pass always did. Shared with
 * the AVX2 twin for shapes it does not handle. */
void al_attend_f16_ref(const float *q, uint32_t nh, const uint16_t *k, const uint16_t *v, size_t stride, int32_t n_pos,
                       uint32_t hd, float scale, float *scores, float *out)
{
    for (uint32_t h = 0; h < nh; h++) {
        const float *qh = q + (size_t)h * hd;
        float *oh = out + (size_t)h * hd;
        float mx = -INFINITY;
        for (int32_t p = 0; p < n_pos; p++) {
            float s = dot_f16(qh, k + (size_t)p * stride, hd) * scale;
            scores[p] = s;
            if (s > mx)
                mx = s;
        }
        float sum = 0.0f;
        for (int32_t p = 0; p < n_pos; p++) {
            scores[p] = expf(scores[p] - mx);
            sum += scores[p];
        }
        const float inv = 1.0f / sum;
        for (uint32_t i = 0; i < hd; i++)
            oh[i] = 0.0f;
        for (int32_t p = 0; p < n_pos; p++)
            axpy_f16(oh, scores[p] * inv, v + (size_t)p * stride, hd);
    }
}

/* Token by token, head by head: the scores of the visible positions
 * (scaled, then capped), their softmax with the head's sink logit in the
 * denominator, the weighted V rows. scratch: pos0+n_tok floats. */
void al_attend_tile_f16_ref(const al_attn_tile *t, float *scratch)
{
    const uint32_t hd = t->hd;
    for (uint32_t j = 0; j < t->n_tok; j++) {
        const int32_t p1 = t->pos0 + (int32_t)j;
        const int32_t lo = t->window && p1 >= (int32_t)t->window ? p1 - (int32_t)t->window + 1 : 0;
        for (uint32_t h = 0; h < t->nh; h++) {
            const float *q = t->q + (size_t)j * t->ldq + (size_t)h * hd;
            float *o = t->out + (size_t)j * t->ldo + (size_t)h * hd;
            float mx = t->sinks ? t->sinks[h] : -INFINITY;
            for (int32_t p = lo; p <= p1; p++) {
                float s = dot_f16(q, t->k + (size_t)(p - t->kv_p0) * t->stride, hd) * t->scale;
                if (t->softcap > 0.0f)
                    s = t->softcap * tanhf(s / t->softcap);
                scratch[p - lo] = s;
                mx = s > mx ? s : mx;
            }
            float sum = t->sinks ? expf(t->sinks[h] - mx) : 0.0f;
            for (int32_t p = lo; p <= p1; p++) {
                scratch[p - lo] = expf(scratch[p - lo] - mx);
                sum += scratch[p - lo];
            }
            for (uint32_t i = 0; i < hd; i++)
                o[i] = 0.0f;
            for (int32_t p = lo; p <= p1; p++)
                axpy_f16(o, scratch[p - lo] / sum, t->v + (size_t)(p - t->kv_p0) * t->stride, hd);
        }
    }
}

void al_attn_part_init(float *part, uint32_t nr, uint32_t hd)
{
    for (size_t i = 0; i < (size_t)nr * hd; i++)
        part[i] = 0.0f;
    for (uint32_t r = 0; r < nr; r++) {
        part[(size_t)nr * hd + r] = -INFINITY;
        part[(size_t)nr * hd + nr + r] = 0.0f;
    }
}

static float *total_row(const al_attn_tile *t, uint32_t r)
{
    return t->out + (size_t)(r / t->nh) * t->ldo + (size_t)(r % t->nh) * t->hd;
}

void al_attn_total_init(const al_attn_tile *t, float *max, float *sum)
{
    const uint32_t nr = t->nh * t->n_tok;
    for (uint32_t r = 0; r < nr; r++) {
        float *o = total_row(t, r);
        for (uint32_t i = 0; i < t->hd; i++)
            o[i] = 0.0f;
        max[r] = t->sinks ? t->sinks[r % t->nh] : -INFINITY;
        sum[r] = t->sinks ? 1.0f : 0.0f;
    }
}

/* Plain C, and the one copy every kernel set and the decode split use, so
 * that a fold gives the same bits wherever it runs. */
void al_attn_total_fold(const al_attn_tile *t, const float *part, float *max, float *sum)
{
    const uint32_t nr = t->nh * t->n_tok, hd = t->hd;
    const float *pm = part + (size_t)nr * hd, *ps = pm + nr;
    for (uint32_t r = 0; r < nr; r++) {
        if (ps[r] == 0.0f) /* at least e^0 = 1 once the row saw a position */
            continue;
        const float m = pm[r] > max[r] ? pm[r] : max[r];
        const float ca = expf(max[r] - m), cb = expf(pm[r] - m); /* e^(-inf) = 0: no total yet */
        float *o = total_row(t, r);
        const float *po = part + (size_t)r * hd;
        for (uint32_t i = 0; i < hd; i++)
            o[i] = o[i] * ca + po[i] * cb;
        sum[r] = sum[r] * ca + ps[r] * cb;
        max[r] = m;
    }
}

void al_attn_total_end(const al_attn_tile *t, const float *sum)
{
    const uint32_t nr = t->nh * t->n_tok;
    for (uint32_t r = 0; r < nr; r++) {
        float *o = total_row(t, r);
        const float inv = 1.0f / sum[r];
        for (uint32_t i = 0; i < t->hd; i++)
            o[i] *= inv;
    }
}

void al_attn_tile_by_segments(const al_attn_tile *t, float *scratch,
                              void (*run)(const al_attn_tile *, int32_t, int32_t, float *, float *))
{
    if (!al_attn_tile_fast(t->nh, t->n_tok, t->hd)) {
        al_attend_tile_f16_ref(t, scratch);
        return;
    }
    const uint32_t nr = t->nh * t->n_tok;
    /* after run's own scratch: the segment's part, then the totals */
    float *part = scratch + (size_t)AL_ATTN_TILE_BLOCK * t->hd + (size_t)nr * (AL_ATTN_TILE_BLOCK + 1);
    float *max = part + al_attn_part_floats(nr, t->hd), *sum = max + nr;
    al_attn_total_init(t, max, sum);
    const int32_t n_end = t->pos0 + (int32_t)t->n_tok;
    for (int32_t s0 = t->kv_p0 / AL_ATTN_SEG * AL_ATTN_SEG; s0 < n_end; s0 += AL_ATTN_SEG) {
        al_attn_part_init(part, nr, t->hd);
        run(t, s0, s0 + AL_ATTN_SEG, part, scratch);
        al_attn_total_fold(t, part, max, sum);
    }
    al_attn_total_end(t, sum);
}

size_t al_attn_tile_scratch_floats(uint32_t nh, uint32_t n_tok, uint32_t hd, uint32_t n_pos_max)
{
    const size_t ref = (size_t)nh * n_pos_max;
    const size_t rows = (size_t)nh * n_tok;
    if (!al_attn_tile_fast(nh, n_tok, hd))
        return ref;
    /* one block of K or V rows as floats, the block's scores, per row the
     * rescale factor; then a segment's part and the totals' max and sum */
    const size_t fast = (size_t)AL_ATTN_TILE_BLOCK * hd + rows * (AL_ATTN_TILE_BLOCK + 1) +
                        al_attn_part_floats((uint32_t)rows, hd) + 2 * rows;
    return ref > fast ? ref : fast;
}

static const al_attn_kernels k_ref = {to_f16, al_attend_f16_ref, al_attend_tile_f16_ref, NULL};

const al_attn_kernels *al_attn_kernels_ref(void)
{
    return &k_ref;
}

static const al_attn_kernels *g_chosen = &k_ref;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
    /* al_cpu_has_avx2 checks CPUID and the OS's YMM state (XGETBV); the
     * matmul kernel choice also honours AIRLOCK_NO_AVX2 and
     * AIRLOCK_NO_AVX512, and takes AVX-512 only after its own checks. */
    const al_kernels *mk = al_kernels_get();
    if (mk == al_kernels_avx512() && al_cpu_has_avx512_vnni() && al_attn_kernels_avx512())
        g_chosen = al_attn_kernels_avx512();
    else if (al_cpu_has_avx2() && mk != al_kernels_ref() && al_attn_kernels_avx2())
        g_chosen = al_attn_kernels_avx2();
}

const al_attn_kernels *al_attn_kernels_get(void)
{
    pthread_once(&g_once, choose);
    return g_chosen;
}
