/*
 * model.h - a loaded model: hyper-parameters and weights carved out of the
 * GGUF map once, at load. Read-only after al_model_load; shared by every
 * context (and thread) that runs it.
 */
#ifndef AL_MODEL_MODEL_H
#define AL_MODEL_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "airlock.h"
#include "gguf/gguf.h"

typedef enum al_arch { AL_ARCH_LLAMA, AL_ARCH_QWEN2, AL_ARCH_QWEN3 } al_arch;

/* A 2-D weight matrix in the map: rows (outputs) x cols (inputs), stored
 * row-major in its GGUF type; GGUF's ne[0] is cols, ne[1] is rows. */
typedef struct al_weight {
    uint32_t type;
    const void *data;
    int64_t rows;
    int64_t cols;
    size_t row_bytes;
    void *packed;       /* panels (al_matmul_pack, in the model's
                           packed_map) replacing data's rows for the fast
                           path, or NULL */
} al_weight;

typedef struct al_layer {
    float *attn_norm;   /* (n_embd) */
    al_weight wq;       /* (n_head*head_dim, n_embd) */
    al_weight wk;       /* (n_head_kv*head_dim, n_embd) */
    al_weight wv;       /* (n_head_kv*head_dim, n_embd) */
    al_weight wo;       /* (n_embd, n_head*head_dim) */
    float *bq, *bk, *bv; /* qwen2 biases, else NULL */
    float *q_norm;      /* qwen3 per-head RMSNorm (head_dim), else NULL */
    float *k_norm;      /* qwen3 (head_dim), else NULL */
    float *ffn_norm;    /* (n_embd) */
    al_weight w_gate;   /* (n_ff, n_embd) */
    al_weight w_up;     /* (n_ff, n_embd) */
    al_weight w_down;   /* (n_embd, n_ff) */
} al_layer;

typedef struct al_hparams {
    al_arch arch;
    uint32_t n_vocab;
    uint32_t n_ctx_train;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim;
    uint32_t n_ff;
    uint32_t n_rot;        /* rotary dims per head (<= head_dim) */
    float rope_base;
    float rope_scale;      /* linear scaling: positions are divided by it */
    bool rope_neox;        /* NEOX halves (qwen) vs adjacent pairs (llama) */
    float norm_eps;
} al_hparams;

struct al_model {
    al_gguf *gguf;         /* owns the map */
    al_hparams hp;
    al_weight tok_embd;    /* (n_vocab, n_embd) */
    al_weight output;      /* (n_vocab, n_embd): tok_embd when tied */
    bool tied_output;
    float *output_norm;    /* (n_embd) */
    float *rope_freqs;     /* (n_rot/2) Llama 3 frequency factors, or NULL */
    float *rope_inv_freq;  /* (n_rot/2) angle per position of each rotary pair:
                              base^(-2i/n_rot) / rope_scale / rope_freqs[i] */
    al_layer *layers;      /* (n_layer) */
    void *packed_map;      /* anonymous mapping holding every weight's panels */
    size_t packed_map_bytes;
    al_vocab *vocab;
    char *chat_template;   /* NUL-terminated copy, or NULL */
    char *template_error;  /* why chat_template does not parse, or NULL */
    uint64_t n_params;
    char type_mix[256];
};

#endif
