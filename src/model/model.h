/*
 * model.h - a loaded model: hyper-parameters and weights carved out of the
 * GGUF map once, at load. Read-only after al_model_load; shared by every
 * context (and thread) that runs it.
 */
#ifndef AL_MODEL_MODEL_H
#define AL_MODEL_MODEL_H

#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>

#include "airlock.h"
#include "gguf/gguf.h"

/* ------------------------------------------------ architecture description
 *
 * A decoder family is one entry of a table (model_load.c, k_archs) keyed
 * by general.architecture: what its layers hold and how they are wired.
 * The loader binds the tensors and reads the keys the entry names; the one
 * forward pass (context.c) reads the entry and the resolved al_hparams /
 * al_layer values, never the family's name. */

typedef enum al_norm_kind {
    AL_NORM_RMS,   /* x / rms(x) * w */
    AL_NORM_LAYER, /* (x - mean) / std(x) * w (+ b) */
} al_norm_kind;

/* The FFN of a layer; the forward pass dispatches on it in one place
 * (ffn_forward). */
typedef enum al_ffn_kind {
    AL_FFN_GATED_SILU, /* down(silu(gate x) * up x) */
    AL_FFN_GATED_GELU, /* down(gelu(gate x) * up x) */
    AL_FFN_GELU,       /* down(gelu(up x + b_up)) + b_down: no gate */
    AL_FFN_MOE,        /* a mixture of experts (model/moe.h): the moe_* fields */
} al_ffn_kind;

typedef enum al_qk_norm {
    AL_QK_NORM_NONE,
    AL_QK_NORM_HEAD, /* RMSNorm of each head's q and k (head_dim weights) */
    AL_QK_NORM_FULL, /* RMSNorm over the whole projection (olmo2) */
    AL_QK_NORM_FULL_LN, /* LayerNorm (bias optional) over the whole projection (jina-bert-v2) */
} al_qk_norm;

typedef enum al_need { AL_NEED_NO, AL_NEED_OPTIONAL, AL_NEED_REQUIRED } al_need;

typedef enum al_swa_kind {
    AL_SWA_NONE,     /* every layer global */
    AL_SWA_IGNORED,  /* a sliding_window key is read but not applied (phi3, as the reference) */
    AL_SWA_OPTIONAL, /* windowed layers when sliding_window is present (olmo2 / OLMo-3) */
    AL_SWA_REQUIRED, /* sliding_window is required (gemma2, gemma3, cohere2) */
} al_swa_kind;

typedef enum al_scale_op { AL_SCALE_NONE, AL_SCALE_MUL, AL_SCALE_DIV } al_scale_op;

typedef enum al_embd_scale { AL_EMBD_SCALE_NONE, AL_EMBD_SCALE_SQRT, AL_EMBD_SCALE_KEY } al_embd_scale;

typedef struct al_arch_desc {
    const char *name;       /* general.architecture */
    uint8_t norm;           /* al_norm_kind of every norm of the model */
    uint8_t norm_bias;      /* al_need of the norms' .bias tensors */
    bool pre_norm;          /* attn_norm / ffn_norm before the sublayers (olmo2: none) */
    bool post_norm;         /* post_attention_norm / post_ffw_norm on the sublayers' outputs */
    bool parallel;          /* attention and FFN read the same normed input; both add to the
                               residual (command-r); no ffn_norm */
    uint8_t qk_norm;        /* al_qk_norm */
    uint8_t qk_norm_need;   /* al_need of attn_q_norm / attn_k_norm */
    bool rope_neox;         /* NEOX halves, else adjacent pairs */
    uint8_t qkv_bias;       /* al_need of attn_{q,k,v}.bias */
    uint8_t o_bias;         /* al_need of attn_output.bias */
    uint8_t ffn;            /* al_ffn_kind */
    uint8_t ffn_bias;       /* al_need of the FFN matrices' .bias */
    bool fused_qkv;         /* attn_qkv.weight (q, k, v rows) may stand for attn_q/k/v */
    bool fused_up;          /* without ffn_gate, ffn_up holds gate then up (2 n_ff rows) */
    uint8_t embd_scale;     /* al_embd_scale */
    uint8_t swa;            /* al_swa_kind */
    uint8_t swa_period;     /* default sliding_window_pattern n: layer il is local when
                               il % n < n - 1 (2: even layers local) */
    bool swa_rope_own;      /* local layers: RoPE base rope.freq_base_swa (default the global
                               base), no scaling (gemma3, OLMo-3); else as global layers */
    bool global_nope;       /* with a window, global layers have no RoPE (cohere2) */
    uint8_t nope_step;      /* layer il has no RoPE when (il + 1) % n == 0 (smollm3: 4) */
    uint8_t logit_scale;    /* al_scale_op of logit_scale on the logits */
    bool residual_scale;    /* residual_scale scales both sublayers' outputs (granite) */
    bool attn_temp;         /* queries x 1 + attention.temperature_scale * ln(1 + floor(pos /
                               original context)) (mistral3) */
    uint16_t big_layers;    /* gemma2/3: with this many layers (the 27B) the query scale is
                               1/sqrt(n_embd/n_head), else 1/sqrt(head_dim) */
    bool causal;            /* decoders; encoders (bidirectional) clear it. The file's
                               {arch}.attention.causal overrides it */
    /* Encoders (BERT and its descendants) */
    bool abs_pos;           /* position_embd.weight: a learned row per position is added to
                               the token embeddings (bert); such layers have no RoPE */
    bool embd_norm;         /* token_embd_norm(.bias): LayerNorm of the input embeddings;
                               token_types.weight row 0 ("sentence A") joins them when present */
    bool post_add_norm;     /* post-LN blocks: x = norm(x + attn) by attn_output_norm, then
                               x = norm(x + ffn) by layer_output_norm (both with biases); no
                               output_norm: the last layer's output is the hidden state */
    bool embed_only;        /* no output head: the model embeds (or ranks), it cannot generate */
    bool no_rope;           /* no layer uses RoPE */
    bool alibi;             /* ALiBi: head h adds -slope_h |p_q - p_k| to its scores (slopes from
                               attention.max_alibi_bias, default 8); no RoPE */
    bool attn_norm_2;       /* post_add_norm: attn_norm_2(.bias), when present, norms again after
                               attn_output_norm with the layer's input added once more */
    const char *ffn_norm_name; /* the FFN's input norm tensor, NULL: "ffn_norm" (gpt-oss:
                               "post_attention_norm") */
    bool attn_sinks;        /* attn_sinks.weight: one logit per head joins each softmax (gpt-oss) */
    /* AL_FFN_MOE: defaults that the file's expert_* keys may override */
    uint8_t moe_gating;     /* al_moe_gating */
    bool moe_norm_topk;     /* the k chosen weights renormalised to sum 1 */
    uint8_t moe_act;        /* al_moe_act */
    bool moe_shexp;         /* a shared expert with a sigmoid gate (qwen2moe) */
} al_arch_desc;

/* The supported families, for messages: "llama, qwen2, ...". */
const char *al_arch_names(void);

/* A 2-D weight matrix in the map: rows (outputs) x cols (inputs), stored
 * row-major in its GGUF type; GGUF's ne[0] is cols, ne[1] is rows. A fused
 * tensor (attn_qkv, gate+up) is bound as views of its row ranges. */
typedef struct al_weight {
    uint32_t type;
    const void *data;
    int64_t rows;
    int64_t cols;
    size_t row_bytes;
    void *packed;       /* panels (al_matmul_pack, in the model's
                           packed_map) replacing data's rows for the fast
                           path, or NULL; set once, by the packing thread
                           while passes run (atomic loads and stores) */
    bool panels;        /* packed, or to be packed by that thread: the panel
                           kernels compute it either way */
} al_weight;

/* Gives back the resident pages of w's rows that its panels replace. */
void al_weight_release_rows(const al_weight *w);
/* At the start of each pass of a context (*seen_done its own flag): once
 * a pass has begun after the background packing ended, the next one knows
 * that no pass of the context still reads rows of packed matrices, and the
 * rows they brought back are given back once more (once per model). */
void al_model_pack_settle(const al_model *m, bool *seen_done);
/* Token tok's row of tok_embd into buf (row_bytes) with pread; false
 * (then read the map) when embd_fd is -1 or the read fails. */
bool al_model_read_embd_row(const al_model *m, int32_t tok, uint8_t *buf);

/* RoPE of a group of layers: the angle of pair i at position p is
 * p * inv_freq[i]; cos and sin are multiplied by mscale (YaRN). */
typedef struct al_rope {
    float *inv_freq;       /* (n_rot/2) */
    float mscale;
} al_rope;

#define AL_ROPE_NONE 0xff  /* al_layer.rope: no RoPE in this layer */

typedef struct al_layer {
    uint32_t n_head_kv;  /* this layer's KV heads (head_count_kv may be per layer) */
    uint32_t n_ff;       /* this layer's FFN width */
    uint32_t window;     /* sliding window (keys p0 with p1 - p0 < window), 0: global */
    uint8_t rope;        /* index in al_model.rope, or AL_ROPE_NONE */
    uint8_t ffn;         /* al_ffn_kind of this layer (the family's; a model mixing dense and
                            expert layers would set it per layer) */
    float *attn_norm, *attn_norm_b;   /* (n_embd) or NULL */
    al_weight wq;       /* (n_head*head_dim, n_embd) */
    al_weight wk;       /* (n_head_kv*head_dim, n_embd) */
    al_weight wv;       /* (n_head_kv*head_dim, n_embd) */
    al_weight wo;       /* (n_embd, n_head*head_dim) */
    float *bq, *bk, *bv, *bo; /* biases or NULL */
    float *q_norm;      /* (head_dim) or (n_head*head_dim), else NULL */
    float *k_norm;      /* (head_dim) or (n_head_kv*head_dim), else NULL */
    float *q_norm_b, *k_norm_b; /* AL_QK_NORM_FULL_LN biases, or NULL */
    float *attn_norm2, *attn_norm2_b; /* (n_embd) jina-bert-v2's second attention norm, or NULL */
    float *post_attn_norm, *post_attn_norm_b; /* (n_embd) or NULL; post_add_norm: attn_output_norm */
    float *ffn_norm, *ffn_norm_b;     /* (n_embd) or NULL */
    al_weight w_gate;   /* (n_ff, n_embd); rows 0 when the FFN has no gate */
    al_weight w_up;     /* (n_ff, n_embd) */
    al_weight w_down;   /* (n_embd, n_ff) */
    float *b_gate, *b_up, *b_down;    /* or NULL */
    float *post_ffn_norm, *post_ffn_norm_b; /* (n_embd) or NULL; post_add_norm: layer_output_norm */
    float *attn_sinks;  /* (n_head) or NULL */
    struct al_moe_layer *moe; /* AL_FFN_MOE: router, experts (then w_gate/up/down have rows 0) */
} al_layer;

typedef struct al_hparams {
    const al_arch_desc *desc;
    uint32_t n_vocab;
    uint32_t n_ctx_train;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;    /* the largest of the layers' */
    uint32_t head_dim;
    uint32_t n_ff;         /* the largest of the layers' */
    uint32_t n_rot;        /* rotary dims per head (<= head_dim) */
    float rope_base;
    float rope_scale;      /* linear scaling: positions are divided by it */
    float norm_eps;
    float embd_scale;      /* token embeddings x this (1: none) */
    float attn_scale;      /* q.k x this before the softmax */
    float attn_softcap;    /* scores -> c tanh(scores / c), 0: none */
    float residual_scale;  /* sublayer outputs x this (1: none) */
    float logit_mul;       /* logits x this (1: none) */
    float final_softcap;   /* logits -> c tanh(logits / c), 0: none */
    float attn_temp;       /* mistral3 query temperature scale, 0: none */
    uint32_t attn_temp_floor; /* positions per step of the temperature */
    uint32_t n_rope;       /* al_model.rope entries the layers index (1 or 2) */
    uint32_t rope_long_ctx; /* with LongRoPE factors: a context of more positions
                               per sequence uses rope[2] in place of rope[0] */
    bool causal;           /* attention sees earlier positions only; false: the whole
                              sequence (which must then be in one forward pass) */
    int32_t pooling;       /* {arch}.pooling_type (al_pooling), AL_POOLING_UNSPECIFIED when absent */
    uint32_t n_pos_embd;   /* rows of position_embd (abs_pos), else 0 */
    uint32_t n_cls_out;    /* rank outputs (rows of cls.output.weight), 0: no rank head */
    float *alibi_slope;    /* (n_head) ALiBi families, else NULL */
} al_hparams;

struct al_model {
    al_gguf *gguf;         /* owns the map */
    al_hparams hp;
    al_weight tok_embd;    /* (n_vocab, n_embd) */
    al_weight output;      /* (n_vocab, n_embd): tok_embd when tied */
    bool tied_output;
    float *output_norm;    /* (n_embd); NULL for post_add_norm families */
    float *output_norm_b;  /* (n_embd) or NULL */
    float *rope_freqs;     /* (n_rot/2) Llama 3 frequency factors, or NULL */
    float *rope_long, *rope_short; /* (n_rot/2) LongRoPE factors (phi3), or NULL */
    al_weight pos_embd;    /* (n_pos_embd, n_embd) abs_pos families, else rows 0 */
    float *type_embd0;     /* (n_embd) token_types.weight row 0, or NULL */
    float *embd_norm, *embd_norm_b; /* (n_embd) token_embd_norm, or NULL */
    al_weight cls;         /* (n_embd, n_embd) rank head's dense layer (then tanh), or rows 0 */
    float *cls_b;          /* (n_embd) or NULL */
    al_weight cls_out;     /* (n_cls_out, n_embd) rank head's output, or rows 0 */
    float *cls_out_b;      /* (n_cls_out) or NULL */
    al_rope rope[3];       /* [0] global layers, [1] local layers when they differ,
                              [2] global layers of long contexts (LongRoPE) */
    al_layer *layers;      /* (n_layer) */
    int embd_fd;           /* the file, open when the output is tied and packed
                              (its rows are given back): token rows are read
                              with pread, which maps nothing, or -1 */
    void *packed_map;      /* anonymous mapping holding every weight's panels */
    size_t packed_map_bytes;
    struct pack_job *pack_job; /* background packing (pack_background), or NULL */
    pthread_t pack_thread;
    al_vocab *vocab;
    char *chat_template;   /* NUL-terminated copy, or NULL */
    char *rerank_template; /* tokenizer.chat_template.rerank ({query}, {document}), or NULL */
    char *template_error;  /* why chat_template does not parse, or NULL */
    uint64_t n_params;
    uint64_t n_params_active; /* what one token reads: n_params less the experts it skips */
    uint64_t decode_bytes;    /* weight bytes one generated token reads (al_model_info) */
    struct al_moe_hparams *moe; /* AL_FFN_MOE families, else NULL */
    struct al_moe_packing *moe_packing; /* experts' panels packed on first use, or NULL */
    char type_mix[256];
};

#endif
