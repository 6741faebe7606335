/*
 * oom_engine.c - allocation failures in the engine: for every N, the Nth
 * allocation of each operation fails (tests/faults/fault.h), and the
 * operation must return a clean error, crash nowhere and (under ASan) leak
 * nothing. Operations: GGUF + model load of real models from ../shared,
 * vocabulary load + tokenize + detokenize, chat template parse + render,
 * context creation + a forward pass + sampling, JSON-schema grammar compile
 * + constrained matching.
 *
 * Large operations (a 151,936-token vocabulary makes ~10^5 allocations)
 * are sampled with a stride, printed in the summary line; set
 * AIRLOCK_FAULT_STRIDE=1 to run every N.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "airlock.h"
#include "fault.h"
#include "sampling/grammar.h"
#include "util/error.h"

static char g_shared[2048];

static void path_of(char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/%s", g_shared, rel);
}

/* ---------------------------------------------------------- model load */

static al_status op_model_load(void *user, al_error *err)
{
    al_model_params mp = al_model_default_params();
    al_model *m = NULL;
    al_status st = al_model_load((const char *)user, &mp, &m, err);
    if (st == AL_OK && !m)
        return al_err(err, AL_ERR_STATE, "al_model_load gave AL_OK and no model");
    if (st != AL_OK && m)
        return al_err(err, AL_ERR_STATE, "al_model_load failed but returned a model");
    al_model_free(m);
    return st;
}

/* ------------------------------------------------- vocab and tokenizer */

static const char k_text[] = "Hello world! <|im_start|>user\nÇa va? 123 4567 — “quotes” 你好 \xF0\x9F\x98\x80  tabs\tand\n\nnewlines<|im_end|>";

/* What a run produced, compared with the clean run's (a failure that is
 * absorbed must not change the result). */
typedef struct tok_case {
    const char *path;
    int32_t toks[256];
    size_t n_toks;
    char text[1024];
    size_t n_text;
    bool have_ref, wrong;
    int32_t ref_toks[256];
    size_t ref_n_toks;
    char ref_text[1024];
    size_t ref_n_text;
} tok_case;

static al_status op_tokenize(void *user, al_error *err)
{
    tok_case *tc = user;
    al_vocab *v = NULL;
    al_status st = al_vocab_load(tc->path, &v, err);
    if (st)
        return st;
    tc->n_toks = tc->n_text = 0;
    st = al_tokenize(v, k_text, sizeof(k_text) - 1, true, true, tc->toks, 256, &tc->n_toks, err);
    if (st == AL_OK) {
        al_detok *d = al_detok_new(v, true);
        if (!d) {
            st = al_err(err, AL_ERR_NOMEM, "al_detok_new: out of memory");
        } else {
            for (size_t i = 0; i <= tc->n_toks; i++) {
                size_t len = 0;
                const char *p = i < tc->n_toks ? al_detok_push(d, tc->toks[i], &len) : al_detok_flush(d, &len);
                if (p && len && tc->n_text + len <= sizeof(tc->text)) {
                    memcpy(tc->text + tc->n_text, p, len);
                    tc->n_text += len;
                }
            }
            al_detok_free(d);
        }
    }
    al_vocab_free(v);
    if (st == AL_OK && !tc->have_ref) {
        memcpy(tc->ref_toks, tc->toks, sizeof(tc->toks));
        tc->ref_n_toks = tc->n_toks;
        memcpy(tc->ref_text, tc->text, tc->n_text);
        tc->ref_n_text = tc->n_text;
        tc->have_ref = true;
    }
    tc->wrong = st == AL_OK && (tc->n_toks != tc->ref_n_toks || memcmp(tc->toks, tc->ref_toks, tc->n_toks * 4) ||
                                tc->n_text != tc->ref_n_text || memcmp(tc->text, tc->ref_text, tc->n_text));
    return st;
}

static int check_tokenize(void *user, al_status st, char *msg, size_t cap)
{
    tok_case *tc = user;
    if (!tc->wrong)
        return 0;
    snprintf(msg, cap, "succeeded with other tokens or text (%zu tokens, %zu bytes; clean run %zu, %zu)", tc->n_toks,
             tc->n_text, tc->ref_n_toks, tc->ref_n_text);
    return 1;
}

/* ---------------------------------------------------------- templates */

typedef struct tmpl_case {
    char *src;
    size_t n;
    char *ref;   /* the clean run's output */
    bool wrong;
} tmpl_case;

static const char k_messages[] =
    "[{\"role\":\"system\",\"content\":\"You are terse.\"},"
    "{\"role\":\"user\",\"content\":\"What is the weather in Paris?\"},"
    "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"type\":\"function\",\"function\":"
    "{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}}]},"
    "{\"role\":\"tool\",\"content\":\"sunny, 21C\"},"
    "{\"role\":\"user\",\"content\":\"Thanks!\"}]";
static const char k_tools[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"
    "\"required\":[\"city\"]}}}]";

static al_status op_template(void *user, al_error *err)
{
    tmpl_case *tc = user;
    al_template *t = NULL;
    al_status st = al_template_parse(tc->src, tc->n, &t, err);
    if (st)
        return st;
    al_template_inputs in = {.messages_json = k_messages,
                             .tools_json = k_tools,
                             .add_generation_prompt = true,
                             .bos_token = "<s>",
                             .eos_token = "</s>",
                             .now = "2026-01-01"};
    char *out = NULL;
    size_t n = 0;
    st = al_template_render(t, &in, &out, &n, err);
    tc->wrong = false;
    if (st == AL_OK && (!out || strlen(out) != n))
        tc->wrong = true;
    else if (st == AL_OK && !tc->ref)
        tc->ref = strdup(out);
    else if (st == AL_OK)
        tc->wrong = strcmp(out, tc->ref) != 0;
    free(out);
    al_template_free(t);
    return st;
}

static int check_template(void *user, al_status st, char *msg, size_t cap)
{
    const tmpl_case *tc = user;
    if (tc->wrong)
        snprintf(msg, cap, "rendered AL_OK but not the clean run's text");
    return tc->wrong;
}

/* ------------------------------------------------ context and decoding */

typedef struct decode_case {
    const al_model *model;
    int32_t got[3], ref[3];
    bool have_ref, wrong;
} decode_case;

static al_status op_decode(void *user, al_error *err)
{
    decode_case *dc = user;
    const al_model *m = dc->model;
    al_context_params cp = al_context_default_params();
    cp.n_ctx = 64;
    cp.n_batch = 16;
    cp.n_seq = 2;
    cp.n_threads = 1;
    al_context *c = NULL;
    al_status st = al_context_new(m, &cp, &c, err);
    if (st)
        return st;
    int32_t tok[8] = {1, 403, 407, 300, 260, 411, 290, 500}, pos[8], seq[8];
    bool lg[8] = {0};
    for (int i = 0; i < 8; i++) {
        pos[i] = i;
        seq[i] = 0;
    }
    lg[7] = true;
    al_batch b = {.n_tokens = 8, .tokens = tok, .pos = pos, .seq = seq, .logits = lg};
    st = al_decode(c, &b, err);
    al_sampler *s = NULL;
    if (st == AL_OK) {
        al_sampler_params sp = al_sampler_default_params();
        sp.temperature = 0.8f;
        sp.top_k = 40;
        sp.seed = 7;
        s = al_sampler_new(&sp, al_vocab_n_tokens(al_model_vocab(m)));
        if (!s)
            st = al_err(err, AL_ERR_NOMEM, "al_sampler_new: out of memory");
    }
    for (int step = 0; st == AL_OK && step < 3; step++) {
        const float *logits = al_get_logits(c, b.n_tokens - 1);
        int32_t t = al_sampler_sample(s, logits);
        al_sampler_accept(s, t);
        dc->got[step] = t;
        int32_t p1 = 8 + step, s0 = 0;
        bool l1 = true;
        al_batch b1 = {.n_tokens = 1, .tokens = &t, .pos = &p1, .seq = &s0, .logits = &l1};
        b = b1;
        st = al_decode(c, &b, err);
    }
    if (st == AL_OK) {
        al_kv_seq_copy(c, 0, 1, 8);
        al_kv_seq_zero(c, 0);
    }
    al_sampler_free(s);
    al_context_free(c);
    if (st == AL_OK && !dc->have_ref) {
        memcpy(dc->ref, dc->got, sizeof(dc->ref));
        dc->have_ref = true;
    }
    dc->wrong = st == AL_OK && memcmp(dc->got, dc->ref, sizeof(dc->ref)) != 0;
    return st;
}

static int check_decode(void *user, al_status st, char *msg, size_t cap)
{
    const decode_case *dc = user;
    if (dc->wrong)
        snprintf(msg, cap, "sampled %d %d %d, the clean run %d %d %d", dc->got[0], dc->got[1], dc->got[2], dc->ref[0],
                 dc->ref[1], dc->ref[2]);
    return dc->wrong;
}

/* ------------------------------------------------------------ grammar */

typedef struct grammar_case {
    const al_model *model;
} grammar_case;

static const char k_schema[] =
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":8},"
    "\"age\":{\"type\":\"integer\",\"minimum\":0},\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"b\"]}}},"
    "\"required\":[\"name\",\"age\"],\"additionalProperties\":false}";

static al_status op_grammar(void *user, al_error *err)
{
    const grammar_case *gc = user;
    al_grammar *g = NULL;
    al_status st = al_grammar_from_json_schema(k_schema, sizeof(k_schema) - 1, NULL, &g, err);
    if (st)
        return st;
    static const char ok[] = "{\"name\":\"bo\",\"age\":3,\"tags\":[\"a\"]}";
    if (!al_grammar_accepts(g, ok, sizeof(ok) - 1)) {
        /* an allocation failure inside the matcher may read as "no" */
        al_grammar_free(g);
        return al_err(err, AL_ERR_NOMEM, "the grammar refused a valid document (out of memory?)");
    }
    al_token_trie *trie = al_token_trie_new(al_model_vocab(gc->model));
    if (!trie) {
        al_grammar_free(g);
        return al_err(err, AL_ERR_NOMEM, "al_token_trie_new: out of memory");
    }
    al_grammar_matcher *mt = al_grammar_matcher_new(g, trie, NULL);
    if (!mt) {
        st = al_err(err, AL_ERR_NOMEM, "al_grammar_matcher_new: out of memory");
    } else {
        const int32_t nv = al_token_trie_n_vocab(trie);
        float *logits = calloc((size_t)nv, sizeof(float));
        if (!logits)
            st = al_err(err, AL_ERR_NOMEM, "logits: out of memory");
        else
            if ((st = al_grammar_matcher_apply(mt, logits)))
            al_err(err, st, "al_grammar_matcher_apply failed (out of memory?)");
        free(logits);
    }
    al_grammar_matcher_free(mt);
    al_token_trie_free(trie);
    al_grammar_free(g);
    return st;
}

/* ------------------------------------------------------------------ */

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    if (b)
        b[len] = 0;
    *n = (size_t)len;
    fclose(f);
    return b;
}

int main(void)
{
    const char *sh = getenv("AIRLOCK_SHARED");
    snprintf(g_shared, sizeof(g_shared), "%s", sh ? sh : "../shared");
    char stories[4096], qwen3[4096], vocab_spm[4096], vocab_bpe[4096], jinja[4096];
    path_of(stories, sizeof(stories), "models/stories260K.gguf");
    path_of(qwen3, sizeof(qwen3), "models/tiny-qwen3-q8_0.gguf");
    path_of(vocab_spm, sizeof(vocab_spm), "vocab/ggml-vocab-llama-spm.gguf");
    path_of(vocab_bpe, sizeof(vocab_bpe), "vocab/ggml-vocab-qwen2.gguf");
    path_of(jinja, sizeof(jinja), "templates/Qwen-Qwen3-0.6B.jinja");
    const char *need[] = {stories, qwen3, vocab_spm, vocab_bpe, jinja};
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        if (access(need[i], R_OK) != 0) {
            printf("SKIP: %s not found (set AIRLOCK_SHARED)\n", need[i]);
            return 77;
        }
    fault_hook_jansson();
    long bad = 0;
    bad += fault_sweep("model load stories260K (F32, SentencePiece 512)", FAULT_ALLOC, 0, fault_stride(1),
                       op_model_load, NULL, stories, NULL);
    bad += fault_sweep("model load tiny-qwen3-q8_0 (Qwen2 BPE 151936, template)", FAULT_ALLOC, 0, fault_stride(1),
                       op_model_load, NULL, qwen3, NULL);
    static tok_case spm = {.path = NULL}, bpe = {.path = NULL};
    spm.path = vocab_spm;
    bpe.path = vocab_bpe;
    bad += fault_sweep("vocab llama-spm + tokenize + detokenize", FAULT_ALLOC, 0, fault_stride(1), op_tokenize,
                       check_tokenize, &spm, NULL);
    bad += fault_sweep("vocab qwen2 BPE + tokenize + detokenize", FAULT_ALLOC, 0, fault_stride(1), op_tokenize,
                       check_tokenize, &bpe, NULL);
    tmpl_case tc = {0};
    tc.src = read_file(jinja, &tc.n);
    if (!tc.src) {
        printf("FAIL: cannot read %s\n", jinja);
        return 1;
    }
    bad += fault_sweep("template Qwen3 parse + render (tools, tool calls)", FAULT_ALLOC, 0, fault_stride(1),
                       op_template, check_template, &tc, NULL);
    free(tc.src);
    free(tc.ref);
    al_model_params mp = al_model_default_params();
    al_model *m = NULL;
    al_error err = {0};
    if (al_model_load(stories, &mp, &m, &err)) {
        printf("FAIL: %s\n", err.msg);
        return 1;
    }
    decode_case dc = {.model = m};
    bad += fault_sweep("context + 4 forward passes + sampling (stories260K)", FAULT_ALLOC, 0, fault_stride(1),
                       op_decode, check_decode, &dc, NULL);
    grammar_case gc = {.model = m};
    bad += fault_sweep("JSON-schema grammar + token trie + matcher (stories260K)", FAULT_ALLOC, 0, fault_stride(1),
                       op_grammar, NULL, &gc, NULL);
    al_model_free(m);
    return bad ? 1 : 0;
}
