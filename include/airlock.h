/*
 * airlock.h - the engine's public API.
 *
 * Everything the CLI and the server use of the engine is declared here:
 * errors, models, vocabularies (tokenizers), inference contexts, samplers,
 * generation sessions and chat templates. Objects are opaque handles; every
 * function that returns a pointer says who frees it; every *_free(NULL) is
 * a no-op.
 *
 * Thread safety: a loaded al_model (and its al_vocab) is read-only and may
 * be shared by any number of threads. An al_context, al_sampler, al_gen or
 * al_detok belongs to one thread at a time.
 */
#ifndef AIRLOCK_H
#define AIRLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ errors */

/* Status codes. This enum only ever grows. */
typedef enum al_status {
    AL_OK = 0,
    AL_ERR_IO,          /* a file could not be opened, read or written */
    AL_ERR_FORMAT,      /* input is malformed (file, request, JSON) */
    AL_ERR_UNSUPPORTED, /* input is valid but not supported (type, arch) */
    AL_ERR_NOMEM,       /* an allocation failed */
    AL_ERR_ARG,         /* the caller passed a bad argument */
    AL_ERR_LIMIT,       /* a limit was exceeded (context, steps, size) */
    AL_ERR_TEMPLATE,    /* a chat template failed to parse or render */
    AL_ERR_CANCELLED,   /* the operation was cancelled */
    AL_ERR_NOT_FOUND,   /* a named thing does not exist */
    AL_ERR_CRYPTO,      /* a signature or digest did not verify */
    AL_ERR_DB,          /* the catalogue database failed */
    AL_ERR_STATE,       /* the operation is not allowed in this state */
    AL_ERR_PERMISSION,  /* refused by policy or the sandbox */
} al_status;

/* A status and a message a person can act on. Library functions that can
 * fail take an al_error * (may be NULL) and fill it on failure. */
typedef struct al_error {
    al_status status;
    char msg[1024];
} al_error;

/* A short constant name of a status ("format error", ...). */
const char *al_status_str(al_status s);

/* ------------------------------------------------------------------ models */

typedef struct al_model al_model;
typedef struct al_vocab al_vocab;

typedef struct al_model_params {
    bool check_tensors; /* also validate tensor data (NaN/Inf scan); slower */
    bool pack_weights;  /* rearrange the weights for the fast kernels at load
                           (default true; false for inspecting a file) */
    int n_threads;      /* threads that pack them; 0 (default): one per physical
                           core (a server loading beside running streams leaves
                           them a core) */
    bool pack_background; /* with pack_weights: al_model_load returns before
                           the weights are packed, a thread of the model's
                           packs them, and passes use each matrix's rows until
                           its panels are ready (the same panel kernels, so
                           the results do not depend on when); a server is
                           then ready at once (default false) */
} al_model_params;

al_model_params al_model_default_params(void);

/* Loads (memory-maps) a GGUF model. On success *out owns the mapping and
 * must be freed with al_model_free. On failure *out is NULL and err names
 * the file, the field and what was wrong. */
al_status al_model_load(const char *path, const al_model_params *params,
                        al_model **out, al_error *err);
void al_model_free(al_model *model);
/* True while a model loaded with pack_background is still being packed. */
bool al_model_packing(const al_model *model);

/* How a sequence's hidden states become one vector (the values of GGUF's
 * {arch}.pooling_type). */
typedef enum al_pooling {
    AL_POOLING_UNSPECIFIED = -1, /* context: the model's; model: the file names none */
    AL_POOLING_NONE = 0,         /* per-token states only (al_get_embedding) */
    AL_POOLING_MEAN = 1,         /* the mean of the sequence's tokens */
    AL_POOLING_CLS = 2,          /* the first token (BERT's [CLS]) */
    AL_POOLING_LAST = 3,         /* the last token (Qwen3-Embedding: EOS appended) */
    AL_POOLING_RANK = 4,         /* the first token (an encoder's; a decoder's last) through
                                    the classifier head (cls, cls.output): n_cls_out scores;
                                    a decoder's (Qwen3-Reranker's yes/no rows) softmaxed */
} al_pooling;

/* The short name of a pooling ("none", "mean", "cls", "last", "rank",
 * "unspecified"). Static storage. */
const char *al_pooling_name(al_pooling p);

typedef struct al_model_info {
    char arch[32];          /* general.architecture: one of al_model_architectures() */
    char name[128];         /* general.name, or "" */
    uint64_t n_params;      /* total elements of all tensors */
    uint64_t n_params_active; /* those one token reads (a mixture of experts: only the used experts) */
    uint64_t decode_bytes;  /* weight bytes one generated token reads: every tensor, but one row of the
                               token (and position) embedding unless the output head is tied to it,
                               and of a mixture's expert tensors only the used experts' share */
    uint32_t n_expert;      /* experts per layer, 0 without */
    uint32_t n_expert_used; /* experts chosen per token */
    uint64_t file_bytes;
    uint32_t n_ctx_train;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim;
    uint32_t n_ff;
    uint32_t n_vocab;
    float rope_base;
    float norm_eps;
    bool tied_output;
    bool has_chat_template;
    char vocab_type[24];    /* "spm", "bpe", "wpm", "ugm", "bpe (gemma4)", "bpe (whitespace)" */
    char type_mix[256];     /* e.g. "Q4_K:113 Q6_K:29 F32:57" */
    al_pooling pooling;     /* the file's pooling_type, AL_POOLING_UNSPECIFIED when absent */
    bool causal;            /* false: bidirectional attention (an encoder) */
    bool can_generate;      /* has an output head (decoders); false: embeds / ranks only */
    uint32_t n_cls_out;     /* outputs of the rank head (cls.output), 0: none */
} al_model_info;

/* The pooling a context of this model uses by default: the file's, or for a
 * model that names none, MEAN (decoder chat models: the mean of the final
 * hidden states). */
al_pooling al_model_pooling(const al_model *model);

void al_model_get_info(const al_model *model, al_model_info *out);

/* What a GGUF model file can do, from its metadata alone (no weights are
 * read): fills arch, pooling, causal, can_generate and n_cls_out of out
 * (the rest zero). For listings that must not load every model. */
al_status al_model_peek(const char *path, al_model_info *out, al_error *err);

/* The chat template (tokenizer.chat_template) of a GGUF file and the text
 * of its BOS and EOS tokens, from the metadata alone: no weights are read,
 * no tokenizer is built and any tensor type is accepted (for rendering a
 * template without loading the model). Each of tmpl, bos, eos may be NULL
 * (not wanted); each result is a malloc'd NUL-terminated string (caller
 * frees) or NULL when the file has none. */
al_status al_model_peek_template(const char *path, char **tmpl, char **bos, char **eos, al_error *err);

/* The architectures (general.architecture values) the engine runs, as
 * "llama, qwen2, ...". Static storage. */
const char *al_model_architectures(void);

/* The model's tokenizer. Owned by the model. */
const al_vocab *al_model_vocab(const al_model *model);

/* The chat template from tokenizer.chat_template (NUL-terminated), or NULL.
 * Owned by the model. */
const char *al_model_chat_template(const al_model *model);

/* The rank prompt of a decoder reranker (tokenizer.chat_template.rerank,
 * Qwen3-Reranker: plain text with {query}, {document} and optionally
 * {instruction} to replace), or NULL. Owned by the model. */
const char *al_model_rerank_template(const al_model *model);

/* NULL when the model's chat template parses (or it has none); otherwise
 * the parse error, naming the template line. The model still loads: a
 * caller may override the template. Owned by the model. */
const char *al_model_template_error(const al_model *model);

/* Bytes a context of n_ctx positions and n_seq sequences needs for its KV
 * cache (F16 by default, the default n_batch). Sliding-window layers keep
 * about 2 x window + n_batch positions per sequence, not n_ctx. */
uint64_t al_model_kv_bytes(const al_model *model, uint32_t n_ctx, uint32_t n_seq);

/* -------------------------------------------------------------- tokenizer */

/* Loads only the tokenizer of a GGUF file (vocab-only files work). */
al_status al_vocab_load(const char *path, al_vocab **out, al_error *err);
void al_vocab_free(al_vocab *vocab); /* only for vocabularies from al_vocab_load */

int32_t al_vocab_n_tokens(const al_vocab *vocab);
int32_t al_vocab_bos(const al_vocab *vocab); /* -1 when none */
int32_t al_vocab_eos(const al_vocab *vocab); /* -1 when none */
int32_t al_vocab_eot(const al_vocab *vocab); /* -1 when none */
bool al_vocab_is_eog(const al_vocab *vocab, int32_t token); /* end of generation */
bool al_vocab_is_control(const al_vocab *vocab, int32_t token);
/* The longest token's text in bytes: a text of len bytes needs at least
 * about len / this many tokens (a cheap bound before tokenizing). */
size_t al_vocab_max_token_bytes(const al_vocab *vocab);
/* The id of a token given its exact stored text (SentencePiece/byte-level
 * form, as in tokenizer.ggml.tokens), or -1. */
int32_t al_vocab_find(const al_vocab *vocab, const char *text, size_t len);
/* The tokenizer family: "spm", "bpe", "wpm", "ugm", ... (static storage). */
const char *al_vocab_type_name(const al_vocab *vocab);
/* BPE: the tokenizer.ggml.pre name in effect ("default" when absent);
 * NULL for other families. Static storage. */
const char *al_vocab_pre_name(const al_vocab *vocab);

/* Tokenizes text[0..len). add_special: add BOS/EOS as the vocab asks.
 * parse_special: recognise special tokens (<|im_start|>, ...) in the text.
 * Writes at most cap ids to out; *n_out receives the number of tokens the
 * text needs (which may exceed cap: then AL_ERR_LIMIT is returned). */
al_status al_tokenize(const al_vocab *vocab, const char *text, size_t len,
                      bool add_special, bool parse_special,
                      int32_t *out, size_t cap, size_t *n_out, al_error *err);

/* The bytes a token stands for (byte tokens decoded, SentencePiece's
 * U+2581 turned into a space, byte-level BPE unmapped). Control tokens give
 * their text only when render_special. Returns the number of bytes of the
 * piece; writes at most cap bytes (no NUL). Returns -1 for an invalid id. */
int32_t al_token_to_piece(const al_vocab *vocab, int32_t token,
                          char *buf, size_t cap, bool render_special);

/* Streaming detokenizer: holds back the bytes of a UTF-8 character that is
 * split across tokens, so that what it emits is always whole characters.
 * al_detok_new allocates what any token needs (NULL when out of memory), so
 * pushing and flushing never allocate and never lose text. */
typedef struct al_detok al_detok;
al_detok *al_detok_new(const al_vocab *vocab, bool render_special);
void al_detok_free(al_detok *d);
/* Feeds a token; returns a pointer to the bytes now complete (valid until
 * the next call) and their length in *n. */
const char *al_detok_push(al_detok *d, int32_t token, size_t *n);
/* Flushes whatever is held back (invalid bytes become U+FFFD). */
const char *al_detok_flush(al_detok *d, size_t *n);

/* --------------------------------------------------------------- inference */

typedef struct al_context al_context;

typedef enum al_kv_type { AL_KV_F16 = 0, AL_KV_F32 = 1, AL_KV_Q8_0 = 2 } al_kv_type;

typedef struct al_context_params {
    uint32_t n_ctx;      /* positions per sequence; 0: min(model's, 4096) */
    uint32_t n_batch;    /* tokens per forward pass at most */
    uint32_t n_seq;      /* sequences (slots) that can run at once */
    int n_threads;       /* 0: number of physical cores */
    bool exact;          /* plain-C reference path: F32 activations and KV */
    al_kv_type kv_type;  /* ignored (F32) when exact */
    bool embeddings;     /* keep final hidden states for al_get_embedding and pool
                            them for al_get_embedding_seq */
    al_pooling pooling;  /* AL_POOLING_UNSPECIFIED (default): al_model_pooling() */
} al_context_params;

al_context_params al_context_default_params(void);

al_status al_context_new(const al_model *model, const al_context_params *params,
                         al_context **out, al_error *err);
void al_context_free(al_context *ctx);
uint32_t al_context_n_ctx(const al_context *ctx);

/* One forward pass over n_tokens tokens, each at position pos[i] of
 * sequence seq[i]. Positions of a sequence must follow what its cache
 * holds. logits[i] true asks for the logits of token i. */
typedef struct al_batch {
    int32_t n_tokens;
    const int32_t *tokens;
    const int32_t *pos;
    const int32_t *seq;
    const bool *logits;
} al_batch;

al_status al_decode(al_context *ctx, const al_batch *batch, al_error *err);

/* Logits of the i-th token of the last batch (n_vocab floats; owned by the
 * context, valid until the next al_decode), or NULL if not asked for. */
const float *al_get_logits(const al_context *ctx, int32_t i);
/* Final hidden state (after the output norm) of token i, n_embd floats;
 * needs params.embeddings. NULL otherwise. */
const float *al_get_embedding(const al_context *ctx, int32_t i);

/* The pooled vector of sequence seq over its tokens in the last batch (the
 * context's pooling; not normalised): n_embd floats, or n_cls_out scores
 * for AL_POOLING_RANK; *n (may be NULL) receives the count. NULL when the
 * context has no embeddings, the pooling is NONE, or seq had no token in
 * the last batch. Owned by the context, valid until the next al_decode.
 *
 * A model whose attention is not causal (an encoder) sees each sequence
 * whole: every sequence of a batch must start at position 0, its tokens
 * must be contiguous and in order, and the batch must fit n_batch; its KV
 * holds nothing between batches. A causal model's pooled vector covers only
 * the tokens of the sequence in this batch. */
const float *al_get_embedding_seq(const al_context *ctx, int32_t seq, int32_t *n);

/* Tokenizes a (query, document) pair for a rank model, in the layout
 * cross-encoders are trained on: query with the vocab's specials
 * ([CLS] q [SEP], or <s> q </s>), a separator when the vocab ends texts
 * with EOS and has one (XLM-R: </s>), then the document with its closing
 * special but no second BOS ([CLS] q [SEP] d [SEP]; <s> q </s></s> d </s>).
 * Special tokens in the texts are not parsed. Same contract as al_tokenize. */
al_status al_tokenize_pair(const al_vocab *vocab, const char *a, size_t a_len, const char *b, size_t b_len,
                           int32_t *out, size_t cap, size_t *n_out, al_error *err);

/* The tokens a rank model scores for (query, document): with a rerank
 * template (al_model_rerank_template) the template with {query},
 * {document} and {instruction} (a default retrieval instruction) replaced,
 * tokenized with the vocab's specials and special tokens parsed; else
 * al_tokenize_pair. *out is malloc'd (caller frees), *n_out its length. */
al_status al_rank_tokens(const al_model *model, const char *query, size_t q_len, const char *doc, size_t d_len,
                         int32_t **out, size_t *n_out, al_error *err);

/* Divides v by its L2 norm (a zero vector stays zero). */
void al_l2_normalize(float *v, size_t n);

/* Cosine similarity of two vectors (0 when either is zero). */
float al_cosine(const float *a, const float *b, size_t n);

/* Forgets positions >= p0 of a sequence (p0 = 0: the whole sequence).
 * With sliding-window layers, whose cache keeps only the last window and
 * n_batch positions, going back more than n_batch positions from the
 * highest one written forgets the whole sequence: check al_kv_seq_len. */
void al_kv_seq_truncate(al_context *ctx, int32_t seq, int32_t p0);
/* Copies positions [0, n) of sequence src into sequence dst (prefix reuse;
 * with sliding-window layers, nothing when src went more than n_batch
 * positions past n: dst is then empty). */
void al_kv_seq_copy(al_context *ctx, int32_t src, int32_t dst, int32_t n);
/* Number of positions a sequence holds. */
int32_t al_kv_seq_len(const al_context *ctx, int32_t seq);
/* Zeroes every KV buffer (data hygiene between requests). */
void al_kv_clear(al_context *ctx);
/* Zeroes and forgets one sequence's KV (data hygiene when a request ends). */
void al_kv_seq_zero(al_context *ctx, int32_t seq);
/* Bytes of the whole K and V caches (every sequence, every layer) that are
 * not zero: lets a test read what a finished request left behind. (An
 * encoder's cache holds only the last pass's rows, shared by its inputs.) */
size_t al_kv_nonzero_bytes(const al_context *ctx);

/* ---------------------------------------------------------------- sampling */

typedef struct al_sampler al_sampler;

typedef struct al_sampler_params {
    float temperature;       /* <= 0: greedy */
    int32_t top_k;           /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float repeat_penalty;    /* 1: off */
    int32_t repeat_last_n;   /* window for the penalties */
    float presence_penalty;  /* 0: off */
    float frequency_penalty; /* 0: off */
    uint64_t seed;           /* same seed, same output; AL_SEED_RANDOM: a fresh one */
} al_sampler_params;

/* al_sampler_params.seed value that asks for a random seed (the default). */
#define AL_SEED_RANDOM UINT64_MAX

al_sampler_params al_sampler_default_params(void);
/* Returns NULL on allocation failure. Free with al_sampler_free. */
al_sampler *al_sampler_new(const al_sampler_params *params, int32_t n_vocab);
void al_sampler_free(al_sampler *s);
/* Picks the next token from logits (n_vocab floats, not modified). */
int32_t al_sampler_sample(al_sampler *s, const float *logits);
/* Records a token (prompt or generated) for the penalties. */
void al_sampler_accept(al_sampler *s, int32_t token);
/* Log-probability (natural log, after temperature 1 softmax) of token. */
float al_logprob(const float *logits, int32_t n_vocab, int32_t token);

/* Stop strings: feed generated text; it tells how many bytes are safe to
 * emit (cannot be the start of a stop string) and whether a stop matched. */
typedef struct al_stop al_stop;
al_stop *al_stop_new(const char *const *stops, size_t n_stops);
void al_stop_free(al_stop *st);
/* Appends text. Returns true once a stop string has matched; *emit and
 * *n_emit give the text that may be emitted now (excluding the stop). */
bool al_stop_feed(al_stop *st, const char *text, size_t n,
                  const char **emit, size_t *n_emit);
/* At the end of generation: the held-back text to emit. */
const char *al_stop_flush(al_stop *st, size_t *n);

/* ------------------------------------------------------ generation session */

/* Grammars, vocabulary tries and mask caches (compiled and built with
 * src/sampling/grammar.h); opaque here. */
typedef struct al_grammar al_grammar;
typedef struct al_token_trie al_token_trie;
typedef struct al_grammar_cache al_grammar_cache;

#define AL_MAX_TOP_LOGPROBS 20

/* A sampled token's log-probabilities: natural logs of the softmax of the
 * model's raw logits (before bias, grammar, penalties and temperature). */
typedef struct al_token_logprobs {
    int32_t token;
    float logprob;
    int32_t n_top;                       /* entries of top_id / top_lp */
    int32_t top_id[AL_MAX_TOP_LOGPROBS]; /* most likely first; ties: the lower id first */
    float top_lp[AL_MAX_TOP_LOGPROBS];
} al_token_logprobs;

/* Fills lp for token from logits (n_vocab floats) with the k most likely
 * tokens (k clamped to 0..AL_MAX_TOP_LOGPROBS and n_vocab). One pass. */
void al_logprobs_fill(const float *logits, int32_t n_vocab, int32_t token, int32_t k, al_token_logprobs *lp);

/* One generation: the loop that turns a model's logits into tokens and
 * text, shared by `airlock run` and the server. Each al_gen_sample adds the
 * logit bias, masks what the grammar does not allow, samples (penalties,
 * top-k/p, min-p, temperature), records the token's logprobs, advances the
 * grammar, and streams the token's text through the detokenizer (whole
 * UTF-8 characters) and the stop strings (text that may be the start of a
 * stop string is held back until it cannot be). */
typedef struct al_gen al_gen;

typedef struct al_gen_params {
    al_sampler_params sampler;
    int32_t max_tokens;          /* tokens sampled at most (the last ends the generation with
                                    AL_GEN_END_LENGTH); <= 0: no limit */
    const char *const *stops;    /* n_stops stop strings (copied); empty ones are ignored */
    size_t n_stops;
    bool render_special;         /* control tokens' text goes into the output */
    const int32_t *bias_tok;     /* logit bias (copied): bias_val[i] is added to token bias_tok[i]'s
                                    logit (-INFINITY bans it); ids outside the vocabulary are ignored */
    const float *bias_val;
    size_t n_bias;
    const al_grammar *grammar;   /* borrowed, may be NULL: the output stays a prefix of its language
                                    and end-of-generation is allowed only once it is a sentence */
    const al_token_trie *trie;   /* borrowed trie of the vocabulary for the grammar's matcher (shared
                                    by sessions); NULL: the session builds its own, with the control
                                    tokens grammar_special[0..n_grammar_special) (copied) in it */
    const int32_t *grammar_special;
    size_t n_grammar_special;
    al_grammar_cache *cache;     /* borrowed mask cache of the trie, shared by sessions used on one
                                    thread; NULL: the matcher's own */
    bool logprobs;               /* fill al_gen_token.lp */
    int32_t top_logprobs;        /* 0..AL_MAX_TOP_LOGPROBS */
} al_gen_params;

al_gen_params al_gen_default_params(void);

/* Why a generation ended (al_gen_token.end). */
typedef enum al_gen_end {
    AL_GEN_CONTINUE = 0, /* not ended: decode the token, then sample again */
    AL_GEN_END_EOG,      /* the model's end-of-generation token (not text) */
    AL_GEN_END_STOP,     /* a stop string matched: the text ends before it */
    AL_GEN_END_GRAMMAR,  /* the output is a sentence of the grammar and nothing can follow */
    AL_GEN_END_LENGTH,   /* max_tokens were sampled */
} al_gen_end;

typedef struct al_gen_token {
    int32_t token;
    al_gen_end end;
    const char *text;     /* bytes to emit now (owned by the session, valid until its next
                             call); when the generation ends, also everything held back */
    size_t n_text;
    al_token_logprobs lp; /* with params.logprobs */
} al_gen_token;

/* A session for a model (borrowed: must outlive it). NULL on failure, with
 * err saying why (bad parameters, out of memory). Free with al_gen_free.
 * One thread at a time. */
al_gen *al_gen_new(const al_model *model, const al_gen_params *params, al_error *err);
void al_gen_free(al_gen *g);
/* Records prompt tokens for the repetition penalties' window. */
void al_gen_accept_prompt(al_gen *g, const int32_t *tokens, size_t n);
/* Samples the next token from logits (the model's n_vocab floats, not
 * modified) and fills out. Errors (the session is then ended):
 * AL_ERR_NOMEM for the grammar's mask, AL_ERR_STATE when the grammar (with
 * the bias) allows no token or the generation has already ended. */
al_status al_gen_sample(al_gen *g, const float *logits, al_gen_token *out, al_error *err);
/* Ends the generation early (the caller's context is full, say): returns
 * the held-back text that may still be emitted (up to a stop string in it),
 * owned by the session, valid until its next call; *n its length. After an
 * end, nothing (n = 0). */
const char *al_gen_finish(al_gen *g, size_t *n);
/* Tokens sampled so far (an end-of-generation token included). */
int32_t al_gen_n_sampled(const al_gen *g);

/* ---------------------------------------------------------- chat templates */

typedef struct al_template al_template;

/* Parses a Jinja2 chat template. The template is untrusted code: parsing
 * and rendering run inside limits and touch no file, network or clock
 * (but strftime_now). */
al_status al_template_parse(const char *src, size_t len, al_template **out,
                            al_error *err);
void al_template_free(al_template *t);

typedef struct al_template_inputs {
    const char *messages_json;  /* JSON array of messages */
    const char *tools_json;     /* JSON array, or NULL */
    const char *extra_json;     /* JSON object of more variables, or NULL */
    bool add_generation_prompt;
    const char *bos_token;      /* NULL: "" */
    const char *eos_token;      /* NULL: "" */
    const char *now;            /* "YYYY-MM-DD" for strftime_now; NULL: today */
} al_template_inputs;

/* Renders; on success *out is a NUL-terminated malloc'd string (free with
 * free()) of *out_len bytes. */
al_status al_template_render(const al_template *t, const al_template_inputs *in,
                             char **out, size_t *out_len, al_error *err);

/* The source of a built-in format ("chatml", "llama2", "llama3", "mistral",
 * "gemma", "phi3"), or NULL for an unknown name. Static storage. */
const char *al_template_builtin(const char *name);

/* ------------------------------------------------------------------- misc */

/* SHA-256 of a file's bytes as 64 lowercase hex digits + NUL. Streams the
 * file in constant memory. */
al_status al_sha256_file(const char *path, char hex[65], al_error *err);

/* Number of physical CPU cores (the default thread count). */
int al_physical_cores_count(void);

/* The kernels the matmuls of this process use: "avx512vnni", "avx2" or
 * "generic" (chosen once from CPUID/XGETBV and env AIRLOCK_NO_AVX512 /
 * AIRLOCK_NO_AVX2). A static string; thread-safe. */
const char *al_kernel_isa(void);

/* Engine version string. */
const char *al_version(void);

#ifdef __cplusplus
}
#endif
#endif /* AIRLOCK_H */
