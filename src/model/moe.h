/*
 * moe.h - the mixture-of-experts feed-forward: hyper-parameters and tensors
 * read at load (with their checks), and the forward pass of one layer.
 *
 * A router (ffn_gate_inp, optional bias) scores the experts of each token;
 * the top k are chosen from softmax, sigmoid or raw scores, their weights
 * optionally renormalised (or softmaxed over the k: gpt-oss) and scaled.
 * Experts are 3-D tensors ffn_{gate,up,down}_exps [cols, rows, n_expert]
 * read as n_expert 2-D weights in place in the map (never packed: the
 * panel kernels pack on the fly from 8 tokens, so resident memory stays
 * the mapped file). A shared expert (qwen2moe) runs on every token, times
 * sigmoid(ffn_gate_inp_shexp . x).
 *
 * Routing is per token: a token's experts and weights depend only on its
 * own hidden state, never on the other tokens of its batch.
 */
#ifndef AL_MODEL_MOE_H
#define AL_MODEL_MOE_H

#include <stdbool.h>
#include <stdint.h>

#include "airlock.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "tensor/matmul.h"
#include "tensor/matmul_grouped.h"

#define AL_MOE_MAX_EXPERTS 512

/* How router scores become expert weights; the values of the GGUF key
 * <arch>.expert_gating_func. */
typedef enum al_moe_gating {
    AL_MOE_GATING_SOFTMAX = 1,      /* softmax over all experts, then top-k */
    AL_MOE_GATING_SIGMOID = 2,      /* sigmoid of each score, then top-k */
    AL_MOE_GATING_SOFTMAX_TOPK = 3, /* top-k of the raw scores, softmax over the k (gpt-oss) */
} al_moe_gating;

typedef enum al_moe_act {
    AL_MOE_ACT_SILU,       /* silu(gate) * up */
    AL_MOE_ACT_SWIGLU_OAI, /* gpt-oss: g = min(gate, 7), u = clamp(up, -7, 7), g * sigmoid(1.702 g) * (u + 1) */
} al_moe_act;

typedef struct al_moe_hparams {
    uint32_t n_expert;      /* expert_count, 1..AL_MOE_MAX_EXPERTS */
    uint32_t n_expert_used; /* expert_used_count: k, 1..n_expert */
    uint32_t n_ff_exp;      /* expert_feed_forward_length */
    uint32_t n_ff_shexp;    /* expert_shared_feed_forward_length; 0: no shared expert */
    bool norm_topk;         /* the k weights divided by their sum */
    float weights_scale;    /* expert_weights_scale: the k weights multiplied by it (1: none) */
    al_moe_gating gating;
    al_moe_act act;
    bool prefetch;          /* the file is larger than 3/4 of memory (RAM or the cgroup limit):
                             * each layer asks the kernel to read its chosen experts' rows
                             * (madvise WILLNEED) before it computes */
} al_moe_hparams;

/* A 3-D expert tensor: n_expert matrices of rows x cols, expert_bytes apart. */
typedef struct al_experts {
    uint32_t type;
    const uint8_t *data;
    int64_t rows;
    int64_t cols;
    size_t row_bytes;
    size_t expert_bytes;
    al_lazy_panels *lazy;   /* (n_expert) panels packed on first use, or NULL */
} al_experts;

typedef struct al_moe_layer {
    al_weight router;       /* ffn_gate_inp (n_expert, n_embd) */
    float *router_b;        /* (n_expert) ffn_gate_inp.bias, or NULL */
    al_experts gate;        /* ffn_gate_exps (n_ff_exp, n_embd) per expert */
    al_experts up;          /* ffn_up_exps (n_ff_exp, n_embd) */
    al_experts down;        /* ffn_down_exps (n_embd, n_ff_exp) */
    float *gate_b, *up_b;   /* (n_expert, n_ff_exp) expert biases, or NULL */
    float *down_b;          /* (n_expert, n_embd), or NULL */
    al_weight shexp_inp;    /* ffn_gate_inp_shexp (1, n_embd): the shared expert's gate, or rows 0 */
    al_weight shexp_gate;   /* (n_ff_shexp, n_embd), present when n_ff_shexp > 0 */
    al_weight shexp_up;     /* (n_ff_shexp, n_embd) */
    al_weight shexp_down;   /* (n_embd, n_ff_shexp) */
} al_moe_layer;

/* Reads the expert keys of <arch> from g over the defaults already in *hp
 * (gating, act, norm_topk, weights_scale: the architecture's own; keys in
 * the file override them). n_ff is the file's feed_forward_length (the
 * expert sizes default to it when their keys are absent, as llama.cpp
 * does). Refuses, naming path and key: no expert_count, a count of 0 or
 * above AL_MOE_MAX_EXPERTS, k of 0 or above the count, an unknown gating
 * function, a scale that is not finite and positive. */
al_status al_moe_load_hparams(const al_gguf *g, const char *path, const char *arch, uint32_t n_ff,
                              al_moe_hparams *hp, al_error *err);

/* Binds the tensors of layer il (blk.<il>.ffn_*): router, experts (every
 * dimension checked, the third against expert_count), biases where the
 * file has them (all-or-none per kind), the shared expert when
 * hp->n_ff_shexp > 0. Errors name path and tensor. Vectors are copied to
 * F32 (free with al_moe_layer_free); matrices stay in the map. */
al_status al_moe_bind_layer(const al_gguf *g, const char *path, uint32_t il, const al_moe_hparams *hp,
                            int64_t n_embd, al_moe_layer *ly, al_error *err);
void al_moe_layer_free(al_moe_layer *ly);

/* Elements of the n_expert - k experts a token does not use in one layer:
 * total parameters minus this over the layers = active parameters. */
uint64_t al_moe_inactive_params(const al_moe_hparams *hp, const al_moe_layer *ly);

/* Bytes of the experts (and expert biases) a token does not use in one layer. */
uint64_t al_moe_inactive_bytes(const al_moe_hparams *hp, const al_moe_layer *ly);

/* Lazy packing of every layer's experts (al_lazy_panels): address space
 * for their panels is reserved here and filled as passes first use them,
 * at most budget_bytes in all (the rest is packed on the stack at each
 * use, with the same results). Fills the layers' al_experts.lazy. Returns
 * NULL when no expert type has panels on this CPU or the reservation
 * fails: the experts then stay as they are. */
typedef struct al_moe_packing al_moe_packing;
al_moe_packing *al_moe_packing_new(al_moe_layer *const *layers, uint32_t n_layer, uint32_t n_expert,
                                   int64_t budget_bytes);
void al_moe_packing_free(al_moe_packing *p);
/* Bytes packed so far (for tests and info). */
int64_t al_moe_packing_bytes(const al_moe_packing *p);

/* Expert e of x as a 2-D weight (no panels). */
static inline al_weight al_expert(const al_experts *x, uint32_t e)
{
    al_weight w = {x->type, x->data + (size_t)e * x->expert_bytes, x->rows, x->cols, x->row_bytes, NULL, false};
    return w;
}

/* Scratch of the MoE forward pass for batches of up to n_batch tokens:
 * made with the context, owned by it, used by one thread at a time. */
typedef struct al_moe_scratch al_moe_scratch;

/* For a pool of n_threads; exact: the plain-C path. Returns NULL when out
 * of memory. Large buffers are not touched here: their pages are mapped
 * as the forward pass first writes them. */
al_moe_scratch *al_moe_scratch_new(const al_moe_hparams *hp, int64_t n_embd, uint32_t n_batch, int n_threads,
                                   bool exact);
void al_moe_scratch_free(al_moe_scratch *s);

/* out (n_tok, n_embd) = the MoE feed-forward of x (n_tok, n_embd, the
 * normed input), n_tok <= n_batch. exact: the plain-C path (F32
 * activations). Fails only when the router gives a token a NaN or
 * infinite score (err names the layer and the token). */
al_status al_moe_forward(al_moe_scratch *s, al_threadpool *tp, bool exact, const al_moe_hparams *hp,
                         const al_moe_layer *ly, uint32_t il, int64_t n_embd, const float *x, int64_t n_tok,
                         float *out, al_error *err);

/* The routing of one token (exposed for tests): from the router scores
 * (n_expert, bias already added) the k experts in order of choice and
 * their weights. Returns false if a score is NaN or infinite. */
bool al_moe_route(const al_moe_hparams *hp, const float *scores, int32_t *experts, float *weights);

#endif
