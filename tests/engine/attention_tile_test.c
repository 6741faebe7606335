/* attention_tile_test.c - the fast attention tile kernels (AVX2, AVX-512)
 * against the plain-C oracle on random inputs: lengths on and off the
 * block boundaries, head sizes, GQA groups, sliding windows (with the K/V
 * rows starting at the window or before it), score caps and attention
 * sinks. And the rule that lets a prompt in one batch equal the same
 * prompt token by token: a token's output is the same bits whatever tile
 * it is in (alone, as decode runs it, or cut at any point), and when
 * decode runs its segments in pieces and folds them (the split of decode
 * over positions).
 *
 * Exits 77 (skipped) on a host with neither ISA. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/attention.h"
#include "tensor/kernels.h"
#include "tensor/quant.h"

static uint64_t g_rng = 0x2545f4914f6cdd1dull;
static int g_failures;

static float frand(float lo, float hi)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return lo + (hi - lo) * (float)((g_rng >> 11) * (1.0 / 9007199254740992.0));
}

#define FAIL(...)                                                                                                      \
    do {                                                                                                               \
        if (g_failures++ < 20) {                                                                                       \
            fprintf(stderr, "FAIL: ");                                                                                 \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fprintf(stderr, "\n");                                                                                     \
        }                                                                                                              \
    } while (0)

typedef struct tcase {
    uint32_t hd, nh, n_tok, window;
    int32_t pos0;
    float softcap;
    bool sinks;
    bool kv_from_0; /* K/V rows from position 0 even with a window */
    float amp;      /* query/key amplitude: 8 gives scores far apart */
} tcase;

static int32_t first_seen(const tcase *c, int32_t p)
{
    return c->window && p >= (int32_t)c->window ? p - (int32_t)c->window + 1 : 0;
}

/* Tokens j0..j0+n-1 of tile t as a tile of their own, as decode or a cut
 * prompt runs them: outputs into out (rows ld apart, the group's heads one
 * head in, as t's), K/V rows from the first position the first one sees. */
static al_attn_tile sub_tile(al_attn_tile t, const tcase *c, uint32_t j0, uint32_t n, const float *q, float *out,
                             const uint16_t *k, const uint16_t *v, size_t ld, size_t stride)
{
    t.n_tok = n;
    t.pos0 = c->pos0 + (int32_t)j0;
    t.kv_p0 = first_seen(c, t.pos0);
    t.q = q + (size_t)j0 * ld + c->hd;
    t.out = out + (size_t)j0 * ld + c->hd;
    t.k = k + c->hd + (size_t)t.kv_p0 * stride;
    t.v = v + c->hd + (size_t)t.kv_p0 * stride;
    return t;
}

/* One case on one fast kernel set: the whole tile against the oracle, then
 * each token alone and the tile cut in two against the whole tile, bit for
 * bit. Returns the number of outputs compared. */
static long run_case(const al_attn_kernels *fast, const char *isa, const tcase *c)
{
    const uint32_t hd = c->hd, nh = c->nh, n_tok = c->n_tok, n_kv = 2;
    const int32_t n_pos = c->pos0 + (int32_t)n_tok;
    const size_t stride = (size_t)n_kv * hd, ld = (size_t)(nh + 1) * hd + 8;
    const size_t n_q = (size_t)n_tok * ld;
    const size_t n_scr = al_attn_tile_scratch_floats(nh, n_tok, hd, (uint32_t)n_pos) + 64;
    float *q = malloc(n_q * 4), *o_ref = malloc(n_q * 4), *o_fast = malloc(n_q * 4), *o_cut = malloc(n_q * 4);
    float *scr = malloc(n_scr * 4), sinks[64];
    uint16_t *k = malloc((size_t)n_pos * stride * 2), *v = malloc((size_t)n_pos * stride * 2);
    if (!q || !o_ref || !o_fast || !o_cut || !scr || !k || !v) {
        FAIL("out of memory");
        exit(1);
    }
    for (size_t i = 0; i < n_q; i++)
        q[i] = frand(-c->amp, c->amp);
    for (size_t i = 0; i < (size_t)n_pos * stride; i++) {
        k[i] = al_fp32_to_fp16(frand(-c->amp, c->amp));
        v[i] = al_fp32_to_fp16(frand(-2, 2));
    }
    for (uint32_t h = 0; h < nh; h++)
        sinks[h] = frand(-3, 6);
    const int32_t kv_p0 = c->kv_from_0 ? 0 : first_seen(c, c->pos0);
    /* the group's heads start one head into each row; K/V of the second KV head */
    al_attn_tile t = {q + hd, ld, o_ref + hd, ld, k + hd + (size_t)kv_p0 * stride, v + hd + (size_t)kv_p0 * stride,
                      stride, nh, n_tok, hd, c->pos0, 1.0f / sqrtf((float)hd), kv_p0, c->window, c->softcap,
                      c->sinks ? sinks : NULL};
    al_attend_tile_f16_ref(&t, scr);
    t.out = o_fast + hd;
    fast->attend_tile_f16(&t, scr);
    long n_cmp = 0;
    /* the oracle sums in another order and uses libm's exp and tanh */
    const float tol = c->softcap > 0.0f ? 2e-4f : 1e-4f;
    for (uint32_t j = 0; j < n_tok; j++)
        for (size_t i = hd; i < (size_t)(nh + 1) * hd; i++) {
            const float a = o_ref[(size_t)j * ld + i], b = o_fast[(size_t)j * ld + i];
            n_cmp++;
            if (!(fabsf(a - b) <= tol + tol * fabsf(a)))
                FAIL("%s hd %u nh %u n_tok %u pos0 %d window %u cap %g sinks %d kv_from_0 %d: token %u [%zu] %.7g "
                     "vs ref %.7g", isa, hd, nh, n_tok, c->pos0, c->window, (double)c->softcap, c->sinks,
                     c->kv_from_0, j, i, (double)b, (double)a);
        }
    /* token by token, as decode calls it: K/V from the token's first position */
    for (uint32_t j = 0; j < n_tok; j++) {
        const al_attn_tile one = sub_tile(t, c, j, 1, q, o_cut, k, v, ld, stride);
        fast->attend_tile_f16(&one, scr);
    }
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t j = 0; j < n_tok; j++)
            for (size_t i = hd; i < (size_t)(nh + 1) * hd; i++)
                if (o_cut[(size_t)j * ld + i] != o_fast[(size_t)j * ld + i]) {
                    FAIL("%s hd %u nh %u n_tok %u pos0 %d window %u cap %g sinks %d: token %u [%zu] %s %.9g, in the "
                         "tile %.9g", isa, hd, nh, n_tok, c->pos0, c->window, (double)c->softcap, c->sinks, j, i,
                         pass ? "in a cut tile" : "alone", (double)o_cut[(size_t)j * ld + i],
                         (double)o_fast[(size_t)j * ld + i]);
                    j = n_tok;
                    break;
                }
        if (pass == 1 || n_tok < 2)
            break;
        /* the tile cut in two at about a third */
        const uint32_t n1 = n_tok / 3 + 1;
        for (int part = 0; part < 2; part++) {
            const al_attn_tile sub =
                sub_tile(t, c, part ? n1 : 0, part ? n_tok - n1 : n1, q, o_cut, k, v, ld, stride);
            fast->attend_tile_f16(&sub, scr);
        }
    }
    /* as the decode split runs a token: its segments in pieces of one
     * block (all but the first from an empty part), folded in order */
    if (fast->attend_run_f16 && al_attn_tile_fast(nh, 1, hd)) {
        float *part = malloc(al_attn_part_floats(nh, hd) * 4), mx[64], sum[64];
        if (!part) {
            FAIL("out of memory");
            exit(1);
        }
        for (uint32_t j = 0; j < n_tok; j++) {
            const al_attn_tile one = sub_tile(t, c, j, 1, q, o_cut, k, v, ld, stride);
            al_attn_total_init(&one, mx, sum);
            for (int32_t s0 = one.kv_p0 / AL_ATTN_SEG * AL_ATTN_SEG; s0 <= one.pos0; s0 += AL_ATTN_SEG) {
                al_attn_part_init(part, nh, hd);
                for (int32_t b0 = s0; b0 < s0 + AL_ATTN_SEG; b0 += AL_ATTN_TILE_BLOCK)
                    fast->attend_run_f16(&one, b0, b0 + AL_ATTN_TILE_BLOCK, part, scr);
                al_attn_total_fold(&one, part, mx, sum);
            }
            al_attn_total_end(&one, sum);
            for (size_t i = hd; i < (size_t)(nh + 1) * hd; i++)
                if (o_cut[(size_t)j * ld + i] != o_fast[(size_t)j * ld + i]) {
                    FAIL("%s hd %u nh %u n_tok %u pos0 %d window %u cap %g sinks %d: token %u [%zu] by segments "
                         "%.9g, in the tile %.9g", isa, hd, nh, n_tok, c->pos0, c->window, (double)c->softcap,
                         c->sinks, j, i, (double)o_cut[(size_t)j * ld + i], (double)o_fast[(size_t)j * ld + i]);
                    break;
                }
        }
        free(part);
    }
    free(q), free(o_ref), free(o_fast), free(o_cut), free(scr), free(k), free(v);
    return n_cmp;
}

static void run_isa(const al_attn_kernels *fast, const char *isa)
{
    const uint32_t hds[] = {128, 64, 256, 48, 40};
    const uint32_t ntoks[] = {1, 2, 5, 16, 33};
    const int32_t pos0s[] = {0, 7, 31, 32, 95, 300, 777}; /* segments: AL_ATTN_SEG = 256 */
    const uint32_t windows[] = {0, 0, 9, 40};
    long n_cmp = 0;
    int n_cases = 0;
    for (size_t hi = 0; hi < sizeof(hds) / sizeof(hds[0]); hi++)
        for (uint32_t nh = 1; nh <= 8; nh = nh < 4 ? nh + 1 : nh * 2)
            for (size_t ti = 0; ti < sizeof(ntoks) / sizeof(ntoks[0]); ti++)
                for (size_t pi = 0; pi < sizeof(pos0s) / sizeof(pos0s[0]); pi++)
                    for (size_t wi = 0; wi < sizeof(windows) / sizeof(windows[0]); wi++) {
                        /* the extras cycle over the cases rather than multiply them */
                        const int var = (int)(hi + nh + ti + pi + wi) % 4;
                        const tcase c = {hds[hi], nh, ntoks[ti], windows[wi], pos0s[pi],
                                         var == 1 || var == 3 ? 30.0f : 0.0f, var >= 2, wi == 1 ? false : var == 3,
                                         (pi + wi) % 3 == 0 ? 8.0f : 1.0f};
                        if ((hi >= 2 && pi % 2) || nh * c.n_tok > AL_ATTN_TILE_MAX_ROWS) /* fewer slow shapes; tiles within the row limit */
                            continue;
                        n_cmp += run_case(fast, isa, &c);
                        n_cases++;
                    }
    printf("%s: %d tiles, %ld outputs against the oracle; every token alone and in cut tiles the same bits\n", isa,
           n_cases, n_cmp);
}

int main(void)
{
    int n_isa = 0;
    if (al_cpu_has_avx2() && al_attn_kernels_avx2()) {
        run_isa(al_attn_kernels_avx2(), "avx2");
        n_isa++;
    } else {
        printf("avx2: not on this host or not built: skipped\n");
    }
    if (al_cpu_has_avx512_vnni() && al_attn_kernels_avx512()) {
        run_isa(al_attn_kernels_avx512(), "avx512");
        n_isa++;
    } else {
        printf("avx512: not on this host or not built: skipped\n");
    }
    if (g_failures) {
        fprintf(stderr, "%d failures\n", g_failures);
        return 1;
    }
    return n_isa ? 0 : 77;
}
