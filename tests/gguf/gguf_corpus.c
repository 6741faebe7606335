/*
 * gguf_corpus.c - the hostile-GGUF corpus.
 *
 * A small GGUF writer builds a valid tiny llama model in memory (the keys
 * and tensor names of ../shared/models/stories260K.gguf, F32 weights, a
 * 267-token SentencePiece vocab), checks that it loads with al_gguf_open
 * and al_model_load, then writes many broken variants to a temp dir and
 * asserts that each is refused with a non-OK status and a message naming
 * the file and the field. Every message is printed. Run under ASan
 * (`make asan`) this also shows that no case reads outside the map.
 *
 * The real shared models and vocab files are the positive cases.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "airlock.h"
#include "gguf/gguf.h"

static int g_failures;
static int g_cases;
static char g_dir[256];

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);          \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
            g_failures++;                                                 \
        }                                                                 \
    } while (0)

/* ------------------------------------------------------------ byte buffer */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            fprintf(stderr, "out of memory in the test writer\n");
            exit(2);
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_f32(buf *b, float v) { put(b, &v, 4); }
static void put_str(buf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

/* ------------------------------------------------------------ model description */

enum { T_U32 = 4, T_I32 = 5, T_F32 = 6, T_STR = 8, T_ARR = 9, T_U64 = 10 };

typedef struct kvdef {
    char key[96];
    bool key_len_set; /* write key_len instead of strlen(key) */
    uint64_t key_len;
    uint32_t type;
    buf val; /* the serialized value (after the type) */
} kvdef;

typedef struct tdef {
    char name[96];
    bool name_len_set;
    uint64_t name_len;
    uint32_t n_dims; /* as written; ne[0..min(n_dims,6)) follow */
    uint64_t ne[6];
    uint32_t type;
    bool off_set; /* offset given, else laid out after the previous one */
    uint64_t offset;
    bool fill_set; /* an F32 tensor whose every value is fill, else the pattern */
    float fill;
} tdef;

typedef struct gmodel {
    char magic[4];
    uint32_t version;
    bool nt_set, nkv_set;
    uint64_t n_tensors, n_kv;
    uint32_t align; /* layout alignment the writer uses */
    int n_kvs, n_ts;
    kvdef kv[64];
    tdef t[64];
} gmodel;

static kvdef *kv_add(gmodel *m, const char *key, uint32_t type)
{
    if (m->n_kvs >= 64) {
        fprintf(stderr, "too many kvs in the test writer\n");
        exit(2);
    }
    kvdef *kv = &m->kv[m->n_kvs++];
    memset(kv, 0, sizeof *kv);
    snprintf(kv->key, sizeof kv->key, "%s", key);
    kv->type = type;
    return kv;
}
static void kv_u32(gmodel *m, const char *k, uint32_t v) { put_u32(&kv_add(m, k, T_U32)->val, v); }
static void kv_f32(gmodel *m, const char *k, float v) { put_f32(&kv_add(m, k, T_F32)->val, v); }
static void kv_str(gmodel *m, const char *k, const char *v) { put_str(&kv_add(m, k, T_STR)->val, v); }

static kvdef *kv_find(gmodel *m, const char *k)
{
    for (int i = 0; i < m->n_kvs; i++)
        if (!strcmp(m->kv[i].key, k))
            return &m->kv[i];
    return NULL;
}

static void kv_del(gmodel *m, const char *k)
{
    kvdef *kv = kv_find(m, k);
    if (!kv) {
        fprintf(stderr, "test bug: no key %s\n", k);
        exit(2);
    }
    free(kv->val.p);
    int i = (int)(kv - m->kv);
    memmove(&m->kv[i], &m->kv[i + 1], (size_t)(m->n_kvs - i - 1) * sizeof *kv);
    m->n_kvs--;
}

static tdef *t_add(gmodel *m, const char *name, uint32_t n_dims, uint64_t ne0, uint64_t ne1)
{
    tdef *t = &m->t[m->n_ts++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->type = 0; /* F32 */
    return t;
}

static tdef *t_find(gmodel *m, const char *name)
{
    for (int i = 0; i < m->n_ts; i++)
        if (!strcmp(m->t[i].name, name))
            return &m->t[i];
    fprintf(stderr, "test bug: no tensor %s\n", name);
    exit(2);
}

static void t_del(gmodel *m, const char *name)
{
    tdef *t = t_find(m, name);
    int i = (int)(t - m->t);
    memmove(&m->t[i], &m->t[i + 1], (size_t)(m->n_ts - i - 1) * sizeof *t);
    m->n_ts--;
}

static void model_free(gmodel *m)
{
    for (int i = 0; i < m->n_kvs; i++)
        free(m->kv[i].val.p);
    m->n_kvs = 0;
}

/* Deep copy (the kv value buffers are owned). */
static void model_copy(gmodel *dst, const gmodel *src)
{
    *dst = *src;
    for (int i = 0; i < src->n_kvs; i++) {
        memset(&dst->kv[i].val, 0, sizeof(buf));
        put(&dst->kv[i].val, src->kv[i].val.p, src->kv[i].val.n);
    }
}

/* Bytes of a tensor's data, or UINT64_MAX when its shape is absurd. */
static uint64_t t_bytes(const tdef *t)
{
    uint64_t be = 1, bb = 4;
    switch (t->type) {
    case 0: be = 1; bb = 4; break;    /* F32 */
    case 1: be = 1; bb = 2; break;    /* F16 */
    case 2: be = 32; bb = 18; break;  /* Q4_0 */
    case 8: be = 32; bb = 34; break;  /* Q8_0 */
    case 16: be = 256; bb = 66; break; /* IQ2_XXS */
    case 20: be = 32; bb = 18; break;  /* IQ4_NL */
    case 23: be = 256; bb = 136; break; /* IQ4_XS */
    case 35: be = 256; bb = 66; break; /* TQ2_0 */
    case 39: be = 32; bb = 17; break;  /* MXFP4 */
    case 21: be = 256; bb = 110; break; /* IQ3_S */
    case 24: be = 1; bb = 1; break;   /* I8 */
    default: break;
    }
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims && d < 6; d++) {
        if (t->ne[d] == 0)
            return 0;
        if (n > (UINT64_C(1) << 32) / t->ne[d])
            return UINT64_MAX;
        n *= t->ne[d];
    }
    return (n + be - 1) / be * bb;
}

/* Serializes m into out (which it resets). */
static void model_write(const gmodel *m, buf *out)
{
    out->n = 0;
    put(out, m->magic, 4);
    put_u32(out, m->version);
    put_u64(out, m->nt_set ? m->n_tensors : (uint64_t)m->n_ts);
    put_u64(out, m->nkv_set ? m->n_kv : (uint64_t)m->n_kvs);
    for (int i = 0; i < m->n_kvs; i++) {
        const kvdef *kv = &m->kv[i];
        put_u64(out, kv->key_len_set ? kv->key_len : strlen(kv->key));
        put(out, kv->key, strlen(kv->key));
        put_u32(out, kv->type);
        put(out, kv->val.p, kv->val.n);
    }
    uint64_t a = m->align ? m->align : 32, next = 0, data_end = 0;
    for (int i = 0; i < m->n_ts; i++) {
        const tdef *t = &m->t[i];
        put_u64(out, t->name_len_set ? t->name_len : strlen(t->name));
        put(out, t->name, strlen(t->name));
        put_u32(out, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims && d < 6; d++)
            put_u64(out, t->ne[d]);
        put_u32(out, t->type);
        uint64_t nb = t_bytes(t);
        if (nb > (1u << 20))
            nb = 0; /* absurd shapes get no data */
        uint64_t off = t->off_set ? t->offset : next;
        put_u64(out, off);
        if (!t->off_set)
            next = (off + nb + a - 1) / a * a;
        if (off < (1u << 24) && off + nb > data_end)
            data_end = off + nb;
    }
    while (out->n % a)
        put(out, "", 1);
    /* data: small finite values so that a check_tensors load also passes */
    size_t data_start = out->n;
    for (uint64_t i = 0; i < data_end / 4; i++)
        put_f32(out, 0.01f * (float)((i * 7) % 13) - 0.06f);
    while (out->n < data_start + data_end)
        put(out, "", 1);
    next = 0;
    for (int i = 0; i < m->n_ts; i++) { /* the same layout as above */
        const tdef *t = &m->t[i];
        uint64_t nb = t_bytes(t);
        if (nb > (1u << 20))
            nb = 0;
        uint64_t off = t->off_set ? t->offset : next;
        if (!t->off_set)
            next = (off + nb + a - 1) / a * a;
        for (uint64_t k = 0; t->fill_set && t->type == 0 && off + nb <= data_end && k < nb / 4; k++)
            memcpy(out->p + data_start + off + 4 * k, &t->fill, 4);
    }
}

/* The base model: a tiny llama (dim 8, 1 layer, 2 heads, 1 KV head, FFN 16,
 * vocab 267 = <unk> <s> </s>, 256 byte tokens, 8 pieces). */
enum { DIM = 8, NFF = 16, NVOCAB = 267 };

static void base_model(gmodel *m)
{
    memset(m, 0, sizeof *m);
    memcpy(m->magic, "GGUF", 4);
    m->version = 3;
    m->align = 32;
    kv_str(m, "general.architecture", "llama");
    kv_str(m, "general.name", "corpus");
    kv_u32(m, "llama.context_length", 32);
    kv_u32(m, "llama.embedding_length", DIM);
    kv_u32(m, "llama.feed_forward_length", NFF);
    kv_u32(m, "llama.attention.head_count", 2);
    kv_u32(m, "llama.attention.head_count_kv", 1);
    kv_u32(m, "llama.block_count", 1);
    kv_u32(m, "llama.rope.dimension_count", 4);
    kv_f32(m, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    kv_str(m, "tokenizer.ggml.model", "llama");
    kvdef *tok = kv_add(m, "tokenizer.ggml.tokens", T_ARR);
    kvdef *sc = kv_add(m, "tokenizer.ggml.scores", T_ARR);
    kvdef *tt = kv_add(m, "tokenizer.ggml.token_type", T_ARR);
    put_u32(&tok->val, T_STR);
    put_u64(&tok->val, NVOCAB);
    put_u32(&sc->val, T_F32);
    put_u64(&sc->val, NVOCAB);
    put_u32(&tt->val, T_I32);
    put_u64(&tt->val, NVOCAB);
    static const char *const pieces[] = {"\xe2\x96\x81", "\xe2\x96\x81" "a", "b", "c", "\xe2\x96\x81" "the",
                                         "e", "\xe2\x96\x81" "cat", "s"};
    for (int i = 0; i < NVOCAB; i++) {
        char s[16];
        int32_t type;
        float score = 0.0f;
        if (i == 0) {
            snprintf(s, sizeof s, "<unk>");
            type = 2;
        } else if (i == 1 || i == 2) {
            snprintf(s, sizeof s, "%s", i == 1 ? "<s>" : "</s>");
            type = 3;
        } else if (i < 259) {
            snprintf(s, sizeof s, "<0x%02X>", i - 3);
            type = 6;
        } else {
            snprintf(s, sizeof s, "%s", pieces[i - 259]);
            type = 1;
            score = -(float)(i - 259);
        }
        put_str(&tok->val, s);
        put_f32(&sc->val, score);
        put(&tt->val, &type, 4);
    }
    kv_u32(m, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(m, "tokenizer.ggml.eos_token_id", 2);
    kv_u32(m, "tokenizer.ggml.unknown_token_id", 0);

    t_add(m, "token_embd.weight", 2, DIM, NVOCAB);
    t_add(m, "output_norm.weight", 1, DIM, 1);
    t_add(m, "output.weight", 2, DIM, NVOCAB);
    t_add(m, "blk.0.attn_norm.weight", 1, DIM, 1);
    t_add(m, "blk.0.attn_q.weight", 2, DIM, DIM);
    t_add(m, "blk.0.attn_k.weight", 2, DIM, DIM / 2);
    t_add(m, "blk.0.attn_v.weight", 2, DIM, DIM / 2);
    t_add(m, "blk.0.attn_output.weight", 2, DIM, DIM);
    t_add(m, "blk.0.ffn_norm.weight", 1, DIM, 1);
    t_add(m, "blk.0.ffn_gate.weight", 2, DIM, NFF);
    t_add(m, "blk.0.ffn_up.weight", 2, DIM, NFF);
    t_add(m, "blk.0.ffn_down.weight", 2, NFF, DIM);
}

/* ------------------------------------------------------------ running cases */

static bool write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

typedef enum stage { AT_GGUF, AT_MODEL } stage;

/* Writes bytes to <dir>/<name>.gguf and checks that the stage refuses it
 * with a message holding the path and `expect` (and `expect2` if set). For
 * AT_MODEL the GGUF itself must open. al_model_load must fail either way. */
static void check_bytes(const char *name, const uint8_t *p, size_t n, stage at, const char *expect,
                        const char *expect2)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", g_dir, name);
    g_cases++;
    if (!write_file(path, p, n)) {
        CHECK(0, "%s: cannot write %s", name, path);
        return;
    }
    al_error err;
    memset(&err, 0, sizeof err);
    al_gguf *g = NULL;
    al_status st = al_gguf_open(path, NULL, &g, &err);
    if (at == AT_GGUF) {
        CHECK(st != AL_OK && g == NULL, "%s: al_gguf_open accepted a broken file", name);
    } else {
        CHECK(st == AL_OK && g != NULL, "%s: al_gguf_open refused a file only the loader should refuse: %s",
              name, err.msg);
        al_gguf_close(g);
        memset(&err, 0, sizeof err);
    }
    al_model *m = NULL;
    al_error merr;
    memset(&merr, 0, sizeof merr);
    al_status mst = al_model_load(path, NULL, &m, &merr);
    CHECK(mst != AL_OK && m == NULL, "%s: al_model_load accepted a broken file", name);
    al_model_free(m);
    const al_error *e = at == AT_GGUF ? &err : &merr;
    al_status s = at == AT_GGUF ? st : mst;
    printf("  %-34s %-18s %s\n", name, al_status_str(s), e->msg);
    CHECK(strstr(e->msg, path) != NULL, "%s: message does not name the file: %s", name, e->msg);
    CHECK(expect == NULL || strstr(e->msg, expect) != NULL, "%s: message lacks '%s': %s", name, expect, e->msg);
    CHECK(expect2 == NULL || strstr(e->msg, expect2) != NULL, "%s: message lacks '%s': %s", name, expect2,
          e->msg);
}

static void check_model(const char *name, const gmodel *m, stage at, const char *expect, const char *expect2)
{
    buf b = {0};
    model_write(m, &b);
    check_bytes(name, b.p, b.n, at, expect, expect2);
    free(b.p);
}

/* Applies a mutation to a fresh copy of the base model and checks it. */
#define MUTATE(base, name, at, expect, expect2, ...)  \
    do {                                               \
        gmodel *m_ = malloc(sizeof(gmodel));           \
        model_copy(m_, (base));                        \
        gmodel *m = m_;                                \
        __VA_ARGS__;                                   \
        check_model((name), m, (at), (expect), (expect2)); \
        model_free(m_);                                \
        free(m_);                                      \
    } while (0)

/* A kv with a raw serialized value. */
static kvdef *kv_raw(gmodel *m, const char *key, uint32_t type) { return kv_add(m, key, type); }

/* ------------------------------------------------------------ the corpus */

static void positive_base(const gmodel *base)
{
    buf b = {0};
    model_write(base, &b);
    char path[512];
    snprintf(path, sizeof path, "%s/valid.gguf", g_dir);
    CHECK(write_file(path, b.p, b.n), "cannot write %s", path);
    al_error err = {0};
    al_gguf *g = NULL;
    CHECK(al_gguf_open(path, NULL, &g, &err) == AL_OK, "valid file refused: %s", err.msg);
    if (g) {
        CHECK(g->n_tensors == 12, "n_tensors %llu", (unsigned long long)g->n_tensors);
        const al_gguf_tensor *t = al_gguf_find_tensor(g, "blk.0.ffn_down.weight");
        CHECK(t && t->ne[0] == NFF && t->ne[1] == DIM && t->n_bytes == NFF * DIM * 4, "ffn_down wrong");
        uint32_t v = 0;
        CHECK(al_gguf_get_u32(g, "llama.block_count", &v) && v == 1, "block_count");
        al_gguf_close(g);
    }
    al_model *m = NULL;
    CHECK(al_model_load(path, NULL, &m, &err) == AL_OK, "valid model refused: %s", err.msg);
    if (m) {
        al_model_info info;
        al_model_get_info(m, &info);
        CHECK(info.n_embd == DIM && info.n_layer == 1 && info.n_head == 2 && info.n_head_kv == 1 &&
                  info.n_ff == NFF && info.n_vocab == NVOCAB && !strcmp(info.arch, "llama"),
              "model info wrong: embd %u layers %u vocab %u arch %s", info.n_embd, info.n_layer, info.n_vocab,
              info.arch);
        printf("valid corpus model: %s, %llu bytes, %llu params, %s\n", info.arch,
               (unsigned long long)info.file_bytes, (unsigned long long)info.n_params, info.type_mix);
        al_model_free(m);
    }
    /* also without the optional output.weight (tied) */
    gmodel *t = malloc(sizeof *t);
    model_copy(t, base);
    t_del(t, "output.weight");
    model_write(t, &b);
    snprintf(path, sizeof path, "%s/valid-tied.gguf", g_dir);
    CHECK(write_file(path, b.p, b.n), "cannot write %s", path);
    m = NULL;
    CHECK(al_model_load(path, NULL, &m, &err) == AL_OK, "valid tied model refused: %s", err.msg);
    al_model_free(m);
    model_free(t);
    free(t);
    free(b.p);
}

static void corpus_truncations(const gmodel *base)
{
    buf b = {0};
    model_write(base, &b);
    /* the header ends where the data section starts */
    al_error err = {0};
    al_gguf *g = NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/valid.gguf", g_dir);
    if (al_gguf_open(path, NULL, &g, &err) != AL_OK) {
        CHECK(0, "valid file refused: %s", err.msg);
        free(b.p);
        return;
    }
    size_t header_end = (size_t)g->data_offset;
    al_gguf_close(g);
    int n = 0;
    printf("truncations every 7 bytes through the %zu-byte header (first lines shown):\n", header_end);
    for (size_t cut = 0; cut < header_end; cut += 7) {
        char name[64];
        snprintf(name, sizeof name, "trunc-%05zu", cut);
        char p2[512];
        snprintf(p2, sizeof p2, "%s/%s.gguf", g_dir, name);
        g_cases++;
        n++;
        CHECK(write_file(p2, b.p, cut), "cannot write %s", p2);
        memset(&err, 0, sizeof err);
        g = NULL;
        al_status st = al_gguf_open(p2, NULL, &g, &err);
        CHECK(st != AL_OK && g == NULL, "%s: truncated file accepted", name);
        al_gguf_close(g);
        CHECK(strstr(err.msg, p2) != NULL, "%s: message lacks the path: %s", name, err.msg);
        /* what was wrong: truncation is said as such, or as a length/count
         * that exceeds what is left of the file */
        CHECK(strstr(err.msg, "truncated") || strstr(err.msg, "exceeds") || strstr(err.msg, "cannot fit") ||
                  strstr(err.msg, "too short") || strstr(err.msg, "shorter") ||
                  strstr(err.msg, "outside the data section"),
              "%s: message does not say what was wrong: %s", name, err.msg);
        if (n <= 6 || cut + 7 >= header_end)
            printf("  %-34s %s\n", name, err.msg);
        unlink(p2);
    }
    printf("  ... %d truncated files refused\n", n);
    /* truncated inside the data section: the last tensor runs off the end */
    check_bytes("trunc-data-last-byte", b.p, b.n - 1, AT_GGUF, "outside the data section", "blk.0.ffn_down.weight");
    check_bytes("trunc-data-half", b.p, header_end + (b.n - header_end) / 2, AT_GGUF, "outside the data section",
                NULL);
    check_bytes("empty-file", b.p, 0, AT_GGUF, NULL, NULL);
    free(b.p);
}

static void corpus_header(const gmodel *base)
{
    MUTATE(base, "bad-magic", AT_GGUF, "magic", NULL, memcpy(m->magic, "GGML", 4));
    MUTATE(base, "version-1", AT_GGUF, "version 1", NULL, m->version = 1);
    MUTATE(base, "version-4", AT_GGUF, "version 4", NULL, m->version = 4);
    MUTATE(base, "n-tensors-huge", AT_GGUF, "n_tensors", NULL, m->nt_set = true; m->n_tensors = UINT64_MAX / 3);
    MUTATE(base, "n-kv-huge", AT_GGUF, "n_kv", NULL, m->nkv_set = true; m->n_kv = UINT64_C(1) << 60);
    MUTATE(base, "n-tensors-plus-one", AT_GGUF, NULL, NULL, m->nt_set = true; m->n_tensors = (uint64_t)m->n_ts + 1);
    MUTATE(base, "n-kv-plus-one", AT_GGUF, NULL, NULL, m->nkv_set = true; m->n_kv = (uint64_t)m->n_kvs + 1);
}

static void corpus_kv(const gmodel *base)
{
    MUTATE(base, "key-length-0", AT_GGUF, "key length", NULL, kv_find(m, "general.name")->key_len_set = true;
           kv_find(m, "general.name")->key_len = 0; snprintf(kv_find(m, "general.name")->key, 96, "%s", ""));
    MUTATE(base, "key-length-huge", AT_GGUF, "string length", "metadata key",
           kvdef *k = kv_find(m, "general.name"); k->key_len_set = true; k->key_len = UINT64_C(1) << 62);
    MUTATE(base, "key-length-past-eof", AT_GGUF, "string length", NULL,
           kvdef *k = kv_find(m, "general.name"); k->key_len_set = true; k->key_len = 10u << 20);
    MUTATE(base, "string-value-past-eof", AT_GGUF, "string length", "general.name",
           kvdef *k = kv_find(m, "general.name"); k->val.n = 0; put_u64(&k->val, UINT64_C(1) << 40);
           put(&k->val, "corpus", 6));
    MUTATE(base, "unknown-value-type-99", AT_GGUF, "unknown value type 99", "general.name",
           kv_find(m, "general.name")->type = 99);
    MUTATE(base, "array-of-arrays", AT_GGUF, "arrays of arrays", "corpus.nested",
           kvdef *k = kv_raw(m, "corpus.nested", T_ARR); put_u32(&k->val, T_ARR); put_u64(&k->val, 1);
           put_u32(&k->val, T_U32); put_u64(&k->val, 1); put_u32(&k->val, 7));
    MUTATE(base, "array-nesting-bomb", AT_GGUF, "arrays of arrays", "corpus.bomb",
           kvdef *k = kv_raw(m, "corpus.bomb", T_ARR);
           for (int i = 0; i < 10000; i++) { put_u32(&k->val, T_ARR); put_u64(&k->val, 1); });
    MUTATE(base, "array-count-wraps", AT_GGUF, "array of", "corpus.wrap",
           /* 2^61 + 1 elements of 8 bytes: count * 8 wraps to 8 */
           kvdef *k = kv_raw(m, "corpus.wrap", T_ARR); put_u32(&k->val, T_U64);
           put_u64(&k->val, (UINT64_C(1) << 61) + 1); put_u64(&k->val, 0));
    MUTATE(base, "array-u32-count-past-eof", AT_GGUF, "array of", "corpus.long",
           kvdef *k = kv_raw(m, "corpus.long", T_ARR); put_u32(&k->val, T_U32); put_u64(&k->val, 1u << 30));
    MUTATE(base, "string-array-count-huge", AT_GGUF, "strings", "tokenizer.ggml.tokens",
           kvdef *k = kv_find(m, "tokenizer.ggml.tokens"); uint64_t c = UINT64_C(1) << 59;
           memcpy(k->val.p + 4, &c, 8));
    MUTATE(base, "string-array-element-past-eof", AT_GGUF, "string length", "corpus.strs",
           kvdef *k = kv_raw(m, "corpus.strs", T_ARR); put_u32(&k->val, T_STR); put_u64(&k->val, 2);
           put_str(&k->val, "ok"); put_u64(&k->val, UINT64_C(1) << 50));
    MUTATE(base, "unknown-array-element-type", AT_GGUF, "unknown array element type", "corpus.arr",
           kvdef *k = kv_raw(m, "corpus.arr", T_ARR); put_u32(&k->val, 77); put_u64(&k->val, 1);
           put_u32(&k->val, 0));
    MUTATE(base, "duplicate-key", AT_GGUF, "more than once", "llama.block_count",
           kv_u32(m, "llama.block_count", 2));
    MUTATE(base, "alignment-0", AT_GGUF, "general.alignment", NULL, kv_u32(m, "general.alignment", 0));
    MUTATE(base, "alignment-not-pow2", AT_GGUF, "general.alignment", NULL, kv_u32(m, "general.alignment", 48));
    MUTATE(base, "alignment-1", AT_GGUF, "general.alignment", NULL, kv_u32(m, "general.alignment", 1));
    MUTATE(base, "alignment-4", AT_GGUF, "general.alignment", NULL, kv_u32(m, "general.alignment", 4));
    MUTATE(base, "alignment-string", AT_GGUF, "general.alignment", NULL, kv_str(m, "general.alignment", "32"));
}

static void corpus_tensors(const gmodel *base)
{
    MUTATE(base, "tensor-name-length-0", AT_GGUF, "name length", NULL, tdef *t = t_find(m, "output_norm.weight");
           t->name_len_set = true; t->name_len = 0; t->name[0] = 0);
    MUTATE(base, "tensor-name-past-eof", AT_GGUF, "string length", "tensor name",
           tdef *t = t_find(m, "output_norm.weight"); t->name_len_set = true; t->name_len = UINT64_C(1) << 45);
    MUTATE(base, "n-dims-0", AT_GGUF, "n_dims", "output_norm.weight", t_find(m, "output_norm.weight")->n_dims = 0);
    MUTATE(base, "n-dims-5", AT_GGUF, "n_dims", "output_norm.weight", tdef *t = t_find(m, "output_norm.weight");
           t->n_dims = 5; for (int d = 1; d < 5; d++) t->ne[d] = 1);
    MUTATE(base, "dim-0", AT_GGUF, "dimension", "blk.0.attn_q.weight", t_find(m, "blk.0.attn_q.weight")->ne[1] = 0);
    MUTATE(base, "dim-2^62", AT_GGUF, "dimension", "blk.0.attn_q.weight",
           t_find(m, "blk.0.attn_q.weight")->ne[0] = UINT64_C(1) << 62);
    MUTATE(base, "shape-product-overflow", AT_GGUF, "overflow", "blk.0.attn_k.weight",
           tdef *t = t_find(m, "blk.0.attn_k.weight"); t->n_dims = 4;
           for (int d = 0; d < 4; d++) t->ne[d] = UINT64_C(1) << 20);
    MUTATE(base, "type-id-99", AT_GGUF, "unknown tensor type id 99", "blk.0.attn_v.weight",
           t_find(m, "blk.0.attn_v.weight")->type = 99);
    MUTATE(base, "type-I8", AT_GGUF, "I8 is not supported", "blk.0.ffn_up.weight",
           tdef *t = t_find(m, "blk.0.ffn_up.weight"); t->type = 24 /* I8: a type the engine does not run */);
    MUTATE(base, "iq3_s-row-not-block-multiple", AT_GGUF, "IQ3_S's block of 256", "blk.0.ffn_up.weight",
           t_find(m, "blk.0.ffn_up.weight")->type = 21 /* IQ3_S: rows of 64 */);
    MUTATE(base, "row-not-block-multiple", AT_GGUF, "block", "blk.0.attn_output.weight",
           t_find(m, "blk.0.attn_output.weight")->type = 2 /* Q4_0, 32 per block; rows of 8 */);
    MUTATE(base, "offset-unaligned", AT_GGUF, "not aligned", "output_norm.weight",
           tdef *t = t_find(m, "output_norm.weight"); t->off_set = true; t->offset = 8548 + 4);
    MUTATE(base, "offset-outside-data", AT_GGUF, "outside the data section", "blk.0.ffn_norm.weight",
           tdef *t = t_find(m, "blk.0.ffn_norm.weight"); t->off_set = true; t->offset = UINT64_C(1) << 40);
    MUTATE(base, "offset-wraps", AT_GGUF, NULL, "blk.0.ffn_norm.weight",
           tdef *t = t_find(m, "blk.0.ffn_norm.weight"); t->off_set = true; t->offset = UINT64_MAX - 31);
    MUTATE(base, "tensors-overlap", AT_GGUF, "overlap", "output_norm.weight",
           /* output_norm is laid out right after token_embd; put it inside */
           tdef *t = t_find(m, "output_norm.weight"); t->off_set = true; t->offset = 64);
    MUTATE(base, "duplicate-tensor-name", AT_GGUF, "more than once", "blk.0.attn_q.weight",
           t_add(m, "blk.0.attn_q.weight", 2, DIM, DIM));
    MUTATE(base, "tensor-count-short", AT_GGUF, NULL, NULL, m->nt_set = true; m->n_tensors = 40);
}

/* Quantized blocks with a scale that is no number: an extra tensor the
 * model does not use (the loader still checks every tensor's scales),
 * with valid scales everywhere but in one block. The GGUF opens; the
 * model load must refuse it, naming the tensor and the block. */
static void bad_scale_case(const gmodel *base, const char *name, uint32_t type, uint64_t ne0, uint64_t ne1,
                           size_t block_bytes, size_t scale_off, int bad_block, const uint8_t *bad, size_t bad_n,
                           const char *expect)
{
    gmodel *m = malloc(sizeof(gmodel));
    model_copy(m, base);
    tdef *t = t_add(m, "corpus.extra.weight", 2, ne0, ne1);
    t->type = type;
    buf b = {0};
    model_write(m, &b);
    /* find the tensor's bytes through the parser, in a clean copy */
    char path[512];
    snprintf(path, sizeof path, "%s/%s-clean.gguf", g_dir, name);
    al_gguf *g = NULL;
    al_error err = {0};
    uint8_t *p = NULL;
    size_t n_blocks = 0;
    if (write_file(path, b.p, b.n) && al_gguf_open(path, NULL, &g, &err) == AL_OK) {
        const al_gguf_tensor *gt = al_gguf_find_tensor(g, "corpus.extra.weight");
        if (gt) {
            p = b.p + g->data_offset + gt->offset;
            n_blocks = gt->n_bytes / block_bytes;
        }
        al_gguf_close(g);
    }
    CHECK(p != NULL, "%s: the clean file did not open: %s", name, err.msg);
    if (p) {
        for (size_t i = 0; i < n_blocks; i++) { /* every scale 1.0 (F16 0x3c00, E8M0 127) */
            if (type == 39)
                p[i * block_bytes + scale_off] = 127;
            else
                memcpy(p + i * block_bytes + scale_off, "\x00\x3c", 2);
        }
        al_model *mm = NULL;
        memset(&err, 0, sizeof err);
        al_status st = write_file(path, b.p, b.n) ? al_model_load(path, NULL, &mm, &err) : AL_ERR_IO;
        /* The extra tensor is not part of the model, so the load may stop
         * there, but never at the scales. */
        CHECK(st == AL_OK || (strstr(err.msg, "corpus.extra.weight' is not part of") && !strstr(err.msg, "corrupt")),
              "%s: the file with valid scales was refused: %s", name, err.msg);
        al_model_free(mm);
        memcpy(p + (size_t)bad_block * block_bytes + scale_off, bad, bad_n);
        check_bytes(name, b.p, b.n, AT_MODEL, expect, "corpus.extra.weight");
    }
    free(b.p);
    model_free(m);
    free(m);
}

static void corpus_quant_scales(const gmodel *base)
{
    static const uint8_t f16_nan[2] = {0x00, 0x7e}, f16_inf[2] = {0x00, 0x7c}, f16_ninf[2] = {0x00, 0xfc};
    static const uint8_t e8m0_nan[1] = {0xff};
    bad_scale_case(base, "iq4_xs-scale-nan", 23, 256, 3, 136, 0, 2, f16_nan, 2, "NaN or infinite");
    bad_scale_case(base, "iq4_nl-scale-inf", 20, 64, 2, 18, 0, 3, f16_inf, 2, "block 3");
    /* past the first of the chunks the check is split into (32768 blocks) */
    bad_scale_case(base, "iq4_nl-scale-inf-far", 20, 64, 20000, 18, 0, 35001, f16_inf, 2, "block 35001 (row 17500)");
    bad_scale_case(base, "tq2_0-scale-minus-inf", 35, 256, 1, 66, 64, 0, f16_ninf, 2, "NaN or infinite");
    bad_scale_case(base, "mxfp4-e8m0-255", 39, 64, 2, 17, 0, 1, e8m0_nan, 1, "exponent is 255");
    MUTATE(base, "row-not-block-multiple-iq4_xs", AT_GGUF, "block of 256", "corpus.extra.weight",
           tdef *t = t_add(m, "corpus.extra.weight", 2, 288, 1); t->type = 23);
    MUTATE(base, "type-id-33-unassigned", AT_GGUF, "unknown tensor type id 33", "blk.0.attn_v.weight",
           t_find(m, "blk.0.attn_v.weight")->type = 33);
}

static void corpus_model(const gmodel *base)
{
    MUTATE(base, "missing-block-count", AT_MODEL, "llama.block_count", "missing", kv_del(m, "llama.block_count"));
    MUTATE(base, "missing-embedding-length", AT_MODEL, "llama.embedding_length", NULL,
           kv_del(m, "llama.embedding_length"));
    MUTATE(base, "missing-head-count", AT_MODEL, "llama.attention.head_count", NULL,
           kv_del(m, "llama.attention.head_count"));
    MUTATE(base, "missing-ffn-length", AT_MODEL, "llama.feed_forward_length", NULL,
           kv_del(m, "llama.feed_forward_length"));
    MUTATE(base, "missing-architecture", AT_MODEL, "general.architecture", NULL, kv_del(m, "general.architecture"));
    MUTATE(base, "unknown-architecture", AT_MODEL, "gptj", "supported: llama, qwen2, qwen3, gemma", kv_del(m, "general.architecture");
           kv_str(m, "general.architecture", "gptj"));
    MUTATE(base, "block-count-string", AT_MODEL, "llama.block_count", NULL, kv_del(m, "llama.block_count");
           kv_str(m, "llama.block_count", "1"));
    MUTATE(base, "block-count-0", AT_MODEL, "llama.block_count", NULL, kv_del(m, "llama.block_count");
           kv_u32(m, "llama.block_count", 0));
    MUTATE(base, "head-count-kv-not-divisor", AT_MODEL, "head_count_kv", NULL,
           kv_del(m, "llama.attention.head_count_kv"); kv_u32(m, "llama.attention.head_count_kv", 3));
    MUTATE(base, "embd-not-multiple-of-heads", AT_MODEL, "head_count", NULL,
           kv_del(m, "llama.attention.head_count"); kv_u32(m, "llama.attention.head_count", 3));
    MUTATE(base, "rms-eps-negative", AT_MODEL, "layer_norm_rms_epsilon", NULL,
           kv_del(m, "llama.attention.layer_norm_rms_epsilon");
           kv_f32(m, "llama.attention.layer_norm_rms_epsilon", -1.0f));
    MUTATE(base, "missing-tensor-attn-q", AT_MODEL, "blk.0.attn_q.weight", "missing", t_del(m, "blk.0.attn_q.weight"));
    MUTATE(base, "missing-tensor-output-norm", AT_MODEL, "output_norm.weight", "missing",
           t_del(m, "output_norm.weight"));
    MUTATE(base, "missing-tensor-token-embd", AT_MODEL, "token_embd.weight", "missing",
           t_del(m, "token_embd.weight"));
    MUTATE(base, "missing-layer-1-tensors", AT_MODEL, "blk.1.", "missing", kv_del(m, "llama.block_count");
           kv_u32(m, "llama.block_count", 2));
    MUTATE(base, "partial-qkv-bias", AT_MODEL, "attn_q.bias", "only some",
           t_add(m, "blk.0.attn_q.bias", 1, DIM, 1));
    MUTATE(base, "wrong-shape-attn-q", AT_MODEL, "blk.0.attn_q.weight", "shape",
           t_find(m, "blk.0.attn_q.weight")->ne[1] = DIM / 2);
    MUTATE(base, "wrong-shape-ffn-down-transposed", AT_MODEL, "blk.0.ffn_down.weight", "shape",
           tdef *t = t_find(m, "blk.0.ffn_down.weight"); t->ne[0] = DIM; t->ne[1] = NFF);
    MUTATE(base, "wrong-shape-output", AT_MODEL, "output.weight", "shape", t_find(m, "output.weight")->ne[1] = 100);
    MUTATE(base, "wrong-norm-length", AT_MODEL, "blk.0.attn_norm.weight", NULL,
           t_find(m, "blk.0.attn_norm.weight")->ne[0] = DIM * 2);
    MUTATE(base, "token-embd-3d", AT_MODEL, "token_embd.weight", NULL, tdef *t = t_find(m, "token_embd.weight");
           t->n_dims = 3; t->ne[2] = 1);
    MUTATE(base, "vocab-larger-than-embd", AT_MODEL, "token_embd.weight", NULL,
           t_find(m, "token_embd.weight")->ne[1] = 200; t_find(m, "output.weight")->ne[1] = 200);
    MUTATE(base, "missing-tokenizer-tokens", AT_MODEL, "tokenizer.ggml.tokens", NULL,
           kv_del(m, "tokenizer.ggml.tokens"));
    MUTATE(base, "missing-tokenizer-model", AT_MODEL, "tokenizer.ggml.model", NULL, kv_del(m, "tokenizer.ggml.model"));
    MUTATE(base, "tokenizer-scores-short", AT_MODEL, "tokenizer.ggml.scores", NULL,
           kvdef *k = kv_find(m, "tokenizer.ggml.scores"); uint64_t c = 3; memcpy(k->val.p + 4, &c, 8);
           k->val.n = 12 + 12);
}

/* ------------------------------------------------------------ architectures */

/* Renames every "llama." key to "<arch>." and sets general.architecture. */
static void set_arch(gmodel *m, const char *arch)
{
    for (int i = 0; i < m->n_kvs; i++)
        if (!strncmp(m->kv[i].key, "llama.", 6)) {
            char k[96];
            snprintf(k, sizeof k, "%s.%s", arch, m->kv[i].key + 6);
            snprintf(m->kv[i].key, sizeof m->kv[i].key, "%s", k);
        }
    kvdef *a = kv_find(m, "general.architecture");
    a->val.n = 0;
    put_str(&a->val, arch);
}

/* "<arch>.<suffix>" for the test's arch: the one general.architecture names. */
static const char *akey(gmodel *m, const char *suffix)
{
    static char k[96];
    kvdef *a = kv_find(m, "general.architecture");
    uint64_t n;
    memcpy(&n, a->val.p, 8);
    snprintf(k, sizeof k, "%.*s.%s", (int)n, (const char *)a->val.p + 8, suffix);
    return k;
}

/* An array of n values of type T_U32 or 7 (bool). */
static void kv_arr(gmodel *m, const char *key, uint32_t type, int n, const uint32_t *v)
{
    kvdef *kv = kv_add(m, key, T_ARR);
    put_u32(&kv->val, type);
    put_u64(&kv->val, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        if (type == 7) {
            uint8_t b = v[i] != 0;
            put(&kv->val, &b, 1);
        } else {
            put_u32(&kv->val, v[i]);
        }
    }
}

/* The base model's tensors reshaped for a family (1 layer). */
static void family(gmodel *m, const char *arch)
{
    set_arch(m, arch);
    if (!strcmp(arch, "gemma2") || !strcmp(arch, "olmo2")) {
        t_add(m, "blk.0.post_attention_norm.weight", 1, DIM, 1);
        t_add(m, "blk.0.post_ffw_norm.weight", 1, DIM, 1);
    }
    if (!strcmp(arch, "gemma2"))
        kv_u32(m, akey(m, "attention.sliding_window"), 16);
    if (!strcmp(arch, "olmo2")) {
        t_del(m, "blk.0.attn_norm.weight");
        t_del(m, "blk.0.ffn_norm.weight");
        t_add(m, "blk.0.attn_q_norm.weight", 1, DIM, 1);
        t_add(m, "blk.0.attn_k_norm.weight", 1, DIM / 2, 1);
    }
    if (!strcmp(arch, "qwen3")) {
        t_add(m, "blk.0.attn_q_norm.weight", 1, DIM / 2, 1);
        t_add(m, "blk.0.attn_k_norm.weight", 1, DIM / 2, 1);
    }
    if (!strcmp(arch, "phi3")) {
        t_del(m, "blk.0.attn_q.weight");
        t_del(m, "blk.0.attn_k.weight");
        t_del(m, "blk.0.attn_v.weight");
        t_add(m, "blk.0.attn_qkv.weight", 2, DIM, 2 * DIM);
        t_del(m, "blk.0.ffn_gate.weight");
        t_find(m, "blk.0.ffn_up.weight")->ne[1] = 2 * NFF;
    }
    if (!strcmp(arch, "command-r"))
        t_del(m, "blk.0.ffn_norm.weight");
    if (!strcmp(arch, "starcoder2") || !strcmp(arch, "stablelm") || !strcmp(arch, "command-r")) {
        kvdef *e = kv_find(m, akey(m, "attention.layer_norm_rms_epsilon"));
        snprintf(e->key, sizeof e->key, "%s", akey(m, "attention.layer_norm_epsilon"));
        const char *bias[] = {"blk.0.attn_norm.bias", "blk.0.ffn_norm.bias", "output_norm.bias"};
        for (int i = 0; i < 3 && strcmp(arch, "command-r"); i++)
            t_add(m, bias[i], 1, DIM, 1);
    }
    if (!strcmp(arch, "starcoder2")) {
        t_del(m, "blk.0.ffn_gate.weight");
        t_add(m, "blk.0.attn_q.bias", 1, DIM, 1);
        t_add(m, "blk.0.attn_k.bias", 1, DIM / 2, 1);
        t_add(m, "blk.0.attn_v.bias", 1, DIM / 2, 1);
        t_add(m, "blk.0.attn_output.bias", 1, DIM, 1);
        t_add(m, "blk.0.ffn_up.bias", 1, NFF, 1);
        t_add(m, "blk.0.ffn_down.bias", 1, DIM, 1);
    }
}

/* Each family's variant of the base model loads and decodes a token. */
static void positive_families(const gmodel *base)
{
    static const char *const archs[] = {"gemma2", "olmo2", "qwen3", "phi3", "starcoder2", "stablelm", "command-r"};
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++) {
        gmodel *m = malloc(sizeof *m);
        model_copy(m, base);
        family(m, archs[i]);
        buf b = {0};
        model_write(m, &b);
        char path[512];
        snprintf(path, sizeof path, "%s/valid-%s.gguf", g_dir, archs[i]);
        CHECK(write_file(path, b.p, b.n), "cannot write %s", path);
        al_error err = {0};
        al_model *mdl = NULL;
        g_cases++;
        CHECK(al_model_load(path, NULL, &mdl, &err) == AL_OK, "valid %s model refused: %s", archs[i], err.msg);
        if (mdl) {
            al_model_info info;
            al_model_get_info(mdl, &info);
            CHECK(!strcmp(info.arch, archs[i]), "arch %s reported as %s", archs[i], info.arch);
            al_context *c = NULL;
            al_context_params cp = al_context_default_params();
            cp.n_ctx = 8;
            CHECK(al_context_new(mdl, &cp, &c, &err) == AL_OK, "%s: context: %s", archs[i], err.msg);
            int32_t tok = 1, pos = 0;
            bool want = true;
            al_batch bt = {1, &tok, &pos, NULL, &want};
            CHECK(c && al_decode(c, &bt, &err) == AL_OK && al_get_logits(c, 0), "%s: decode: %s", archs[i],
                  err.msg);
            printf("  %-10s loads and decodes\n", archs[i]);
            al_context_free(c);
            al_model_free(mdl);
        }
        free(b.p);
        model_free(m);
        free(m);
    }
}

/* Last logits of tokens 1, 5, 6, 7 at positions 0..3 (RoPE matters), or NULL. */
static float *logits4(const gmodel *g, const char *name, uint32_t n_ctx)
{
    buf b = {0};
    model_write(g, &b);
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", g_dir, name);
    bool ok = write_file(path, b.p, b.n);
    free(b.p);
    al_error err = {0};
    al_model *m = NULL;
    if (!ok || al_model_load(path, NULL, &m, &err) != AL_OK) {
        CHECK(0, "%s: %s", name, err.msg);
        return NULL;
    }
    al_context_params cp = al_context_default_params();
    cp.n_ctx = n_ctx;
    cp.exact = true;
    al_context *c = NULL;
    float *out = NULL;
    int32_t tok[4] = {1, 5, 6, 7}, pos[4] = {0, 1, 2, 3};
    bool want[4] = {false, false, false, true};
    al_batch bt = {4, tok, pos, NULL, want};
    if (al_context_new(m, &cp, &c, &err) == AL_OK && al_decode(c, &bt, &err) == AL_OK) {
        out = malloc(NVOCAB * sizeof(float));
        memcpy(out, al_get_logits(c, 3), NVOCAB * sizeof(float));
    }
    CHECK(out, "%s: %s", name, err.msg);
    al_context_free(c);
    al_model_free(m);
    return out;
}

static float max_diff(const float *a, const float *b)
{
    float d = 0.0f;
    for (int i = 0; a && b && i < NVOCAB; i++)
        d = fabsf(a[i] - b[i]) > d ? fabsf(a[i] - b[i]) : d;
    return d;
}

/* LongRoPE: a context longer than original_context_length (16) uses
 * rope_factors_long (as rope_freqs would), a shorter one the short
 * factors (1: as no factors). */
static void positive_longrope(const gmodel *base)
{
    gmodel *g = malloc(sizeof *g);
    model_copy(g, base);
    family(g, "phi3");
    kv_u32(g, "phi3.rope.scaling.original_context_length", 16);
    tdef *qkv = t_find(g, "blk.0.attn_qkv.weight"); /* large scores: positions matter */
    qkv->fill_set = true;
    qkv->fill = 1.0f;
    float *plain8 = logits4(g, "longrope-none-8", 8), *plain32 = logits4(g, "longrope-none-32", 32);
    tdef *t = t_add(g, "rope_freqs.weight", 1, 2, 1);
    t->fill_set = true;
    t->fill = 4.0f;
    float *freqs32 = logits4(g, "longrope-freqs-32", 32);
    t_del(g, "rope_freqs.weight");
    t = t_add(g, "rope_factors_long.weight", 1, 2, 1);
    t->fill_set = true;
    t->fill = 4.0f;
    t = t_add(g, "rope_factors_short.weight", 1, 2, 1);
    t->fill_set = true;
    t->fill = 1.0f;
    float *long8 = logits4(g, "longrope-8", 8), *long32 = logits4(g, "longrope-32", 32);
    g_cases += 3;
    printf("  longrope: short ctx vs none %.2g, long ctx vs rope_freqs %.2g, long ctx vs none %.2g (logits up to %.2g)\n",
           (double)max_diff(long8, plain8), (double)max_diff(long32, freqs32), (double)max_diff(long32, plain32),
           (double)max_diff(plain32, (const float[NVOCAB]){0}));
    CHECK(long8 && plain8 && max_diff(long8, plain8) < 1e-6f, "LongRoPE, short context: not the short factors");
    CHECK(long32 && freqs32 && max_diff(long32, freqs32) < 1e-6f, "LongRoPE, long context: not the long factors");
    static const float zero[NVOCAB];
    const float scale = max_diff(plain32, zero); /* the logits' magnitude */
    CHECK(long32 && plain32 && max_diff(long32, plain32) > 1e-3f * scale, "LongRoPE factors of 4 change nothing");
    free(plain8);
    free(plain32);
    free(freqs32);
    free(long8);
    free(long32);
    model_free(g);
    free(g);
}

/* Per-layer head_count_kv [1, 2] and feed_forward_length [16, 8]: loads,
 * the KV cache follows each layer's heads, fast and exact paths agree. */
static void positive_per_layer(const gmodel *base)
{
    gmodel *g = malloc(sizeof *g);
    model_copy(g, base);
    static const uint32_t kv[2] = {1, 2}, ff[2] = {NFF, NFF / 2};
    kv_del(g, "llama.block_count");
    kv_u32(g, "llama.block_count", 2);
    kv_del(g, "llama.attention.head_count_kv");
    kv_arr(g, "llama.attention.head_count_kv", T_U32, 2, kv);
    kv_del(g, "llama.feed_forward_length");
    kv_arr(g, "llama.feed_forward_length", T_U32, 2, ff);
    t_add(g, "blk.1.attn_norm.weight", 1, DIM, 1);
    t_add(g, "blk.1.attn_q.weight", 2, DIM, DIM);
    t_add(g, "blk.1.attn_k.weight", 2, DIM, DIM);
    t_add(g, "blk.1.attn_v.weight", 2, DIM, DIM);
    t_add(g, "blk.1.attn_output.weight", 2, DIM, DIM);
    t_add(g, "blk.1.ffn_norm.weight", 1, DIM, 1);
    t_add(g, "blk.1.ffn_gate.weight", 2, DIM, NFF / 2);
    t_add(g, "blk.1.ffn_up.weight", 2, DIM, NFF / 2);
    t_add(g, "blk.1.ffn_down.weight", 2, NFF / 2, DIM);
    float *exact = logits4(g, "per-layer-exact", 16);
    buf b = {0};
    model_write(g, &b);
    char path[512];
    snprintf(path, sizeof path, "%s/per-layer.gguf", g_dir);
    al_model *m = NULL;
    al_error err = {0};
    g_cases += 2;
    if (write_file(path, b.p, b.n) && al_model_load(path, NULL, &m, &err) == AL_OK) {
        /* head dim 4: layer 0 keeps 1 x 4 K and V values a position, layer 1 2 x 4 */
        CHECK(al_model_kv_bytes(m, 16, 1) == 2 * (4 + 8) * 16 * 2, "per-layer KV bytes %llu",
              (unsigned long long)al_model_kv_bytes(m, 16, 1));
        al_context_params cp = al_context_default_params();
        cp.n_ctx = 16;
        al_context *c = NULL;
        int32_t tok[4] = {1, 5, 6, 7}, pos[4] = {0, 1, 2, 3};
        bool want[4] = {false, false, false, true};
        al_batch bt = {4, tok, pos, NULL, want};
        CHECK(al_context_new(m, &cp, &c, &err) == AL_OK && al_decode(c, &bt, &err) == AL_OK, "per-layer: %s",
              err.msg);
        const float *fast = c ? al_get_logits(c, 3) : NULL;
        printf("  per-layer head_count_kv / feed_forward_length: fast vs exact %.2g\n",
               (double)(fast && exact ? max_diff(fast, exact) : -1.0f));
        CHECK(fast && exact && max_diff(fast, exact) < 1e-3f, "per-layer: fast and exact paths differ");
        al_context_free(c);
        al_model_free(m);
    } else {
        CHECK(0, "per-layer model refused: %s", err.msg);
    }
    free(b.p);
    free(exact);
    model_free(g);
    free(g);
}

static void corpus_arch(const gmodel *base)
{
    static const uint32_t two[2] = {NFF, NFF}, zero[1] = {0}, tf[2] = {1, 0};
    MUTATE(base, "arch-gemma2-missing-post-norm", AT_MODEL, "blk.0.post_attention_norm.weight", "missing",
           family(m, "gemma2"); t_del(m, "blk.0.post_attention_norm.weight"));
    MUTATE(base, "arch-gemma2-missing-window", AT_MODEL, "gemma2.attention.sliding_window", "missing",
           family(m, "gemma2"); kv_del(m, "gemma2.attention.sliding_window"));
    MUTATE(base, "arch-gemma2-window-0", AT_MODEL, "gemma2.attention.sliding_window", "= 0",
           family(m, "gemma2"); kv_find(m, "gemma2.attention.sliding_window")->val.p[0] = 0);
    MUTATE(base, "arch-gemma2-window-beyond-context", AT_MODEL, "gemma2.attention.sliding_window",
           "context_length (32)", family(m, "gemma2");
           kv_find(m, "gemma2.attention.sliding_window")->val.p[0] = 64);
    MUTATE(base, "arch-olmo2-pattern-wrong-length", AT_MODEL, "olmo2.attention.sliding_window_pattern",
           "2 values but block_count is 1", family(m, "olmo2");
           kv_u32(m, "olmo2.attention.sliding_window", 16);
           kv_arr(m, "olmo2.attention.sliding_window_pattern", 7, 2, tf));
    MUTATE(base, "arch-olmo2-q-norm-per-head", AT_MODEL, "blk.0.attn_q_norm.weight", "vector of 8",
           family(m, "olmo2"); t_find(m, "blk.0.attn_q_norm.weight")->ne[0] = DIM / 2);
    MUTATE(base, "arch-olmo2-missing-post-ffw-norm", AT_MODEL, "blk.0.post_ffw_norm.weight", "missing",
           family(m, "olmo2"); t_del(m, "blk.0.post_ffw_norm.weight"));
    MUTATE(base, "arch-qwen3-missing-k-norm", AT_MODEL, "blk.0.attn_k_norm.weight", "missing",
           family(m, "qwen3"); t_del(m, "blk.0.attn_k_norm.weight"));
    MUTATE(base, "arch-phi3-fused-qkv-rows", AT_MODEL, "blk.0.attn_qkv.weight", "shape", family(m, "phi3");
           t_find(m, "blk.0.attn_qkv.weight")->ne[1] = DIM);
    MUTATE(base, "arch-phi3-fused-up-rows", AT_MODEL, "blk.0.ffn_up.weight", "shape", family(m, "phi3");
           t_find(m, "blk.0.ffn_up.weight")->ne[1] = NFF);
    MUTATE(base, "arch-starcoder2-o-bias-length", AT_MODEL, "blk.0.attn_output.bias", "vector of 8",
           family(m, "starcoder2"); t_find(m, "blk.0.attn_output.bias")->ne[0] = DIM / 2);
    MUTATE(base, "arch-starcoder2-missing-up-bias", AT_MODEL, "blk.0.ffn_up.bias", "missing",
           family(m, "starcoder2"); t_del(m, "blk.0.ffn_up.bias"));
    MUTATE(base, "arch-stablelm-missing-norm-bias", AT_MODEL, "blk.0.attn_norm.bias", "missing",
           family(m, "stablelm"); t_del(m, "blk.0.attn_norm.bias"));
    MUTATE(base, "ffn-length-array-wrong-length", AT_MODEL, "llama.feed_forward_length",
           "2 values but block_count is 1", kv_del(m, "llama.feed_forward_length");
           kv_arr(m, "llama.feed_forward_length", T_U32, 2, two));
    MUTATE(base, "head-count-kv-array-wrong-length", AT_MODEL, "llama.attention.head_count_kv",
           "2 values but block_count is 1", kv_del(m, "llama.attention.head_count_kv");
           kv_arr(m, "llama.attention.head_count_kv", T_U32, 2, two));
    MUTATE(base, "head-count-kv-array-zero", AT_MODEL, "llama.attention.head_count_kv", "must divide",
           kv_del(m, "llama.attention.head_count_kv"); kv_arr(m, "llama.attention.head_count_kv", T_U32, 1, zero));
    MUTATE(base, "head-count-kv-above-head-count", AT_MODEL, "llama.attention.head_count_kv", "must divide",
           kv_del(m, "llama.attention.head_count_kv"); kv_u32(m, "llama.attention.head_count_kv", 4));
    MUTATE(base, "key-length-contradicts-tensors", AT_MODEL, "blk.0.attn_q.weight", "shape",
           kv_u32(m, "llama.attention.key_length", 8); kv_u32(m, "llama.attention.value_length", 8));
    MUTATE(base, "value-length-differs", AT_MODEL, "value_length", "key_length",
           kv_u32(m, "llama.attention.value_length", 8));
    MUTATE(base, "rope-scaling-type-unknown", AT_MODEL, "rope scaling type 'dynamic'", NULL,
           kv_f32(m, "llama.rope.scaling.factor", 4.0f); kv_str(m, "llama.rope.scaling.type", "dynamic"));
    MUTATE(base, "rope-factors-long-alone", AT_MODEL, "rope_factors_short.weight", "missing",
           t_add(m, "rope_factors_long.weight", 1, 2, 1));
    MUTATE(base, "rope-freqs-not-positive", AT_MODEL, "rope_freqs.weight", "must be positive",
           tdef *t = t_add(m, "rope_freqs.weight", 1, 2, 1); t->fill_set = true; t->fill = 0.0f);
    MUTATE(base, "extra-tensor-q-norm-in-llama", AT_MODEL, "blk.0.attn_q_norm.weight", "not part of a llama model",
           t_add(m, "blk.0.attn_q_norm.weight", 1, DIM / 2, 1));
    MUTATE(base, "extra-tensor-command-r-plus-norms", AT_MODEL, "attn_q_norm.weight", "command-r",
           family(m, "command-r"); t_add(m, "blk.0.attn_q_norm.weight", 2, DIM / 2, 2));
    MUTATE(base, "granite-logit-scale-0", AT_MODEL, "granite.logit_scale", "positive", set_arch(m, "granite");
           kv_f32(m, "granite.logit_scale", 0.0f));
}

/* The tokenizer models beyond llama/gpt2/bert, on the base model's vocab:
 * t5 with a precompiled charsmap (a u32 size, trie units, strings) and
 * gemma4 (needs merges). The charsmap maps the byte 'A' to "a": unit 0 has
 * BASE 256; 256 ^ 'A' = 321 has LCHECK 'A', LEAF, BASE 1 -> unit 320, a
 * value unit naming the string at `str_off`. */
static void kv_charsmap(gmodel *m, uint32_t str_off, uint64_t cut)
{
    uint32_t units[512] = {0};
    units[0] = 256u << 10;
    units[321] = (1u << 10) | (1u << 8) | 'A';
    units[320] = (1u << 31) | str_off;
    buf b = {0};
    put_u32(&b, sizeof units);
    put(&b, units, sizeof units);
    put(&b, "a", 2);
    kvdef *k = kv_raw(m, "tokenizer.ggml.precompiled_charsmap", T_ARR);
    put_u32(&k->val, 0); /* u8 */
    put_u64(&k->val, cut < b.n ? cut : b.n);
    put(&k->val, b.p, cut < b.n ? cut : b.n);
    free(b.p);
}

static void corpus_tokenizer_models(const gmodel *base)
{
    gmodel *t5 = malloc(sizeof *t5);
    model_copy(t5, base);
    kv_del(t5, "tokenizer.ggml.model");
    kv_str(t5, "tokenizer.ggml.model", "t5");
    /* the valid t5 file loads */
    {
        gmodel *m = malloc(sizeof *m);
        model_copy(m, t5);
        kv_charsmap(m, 0, UINT64_MAX);
        buf b = {0};
        model_write(m, &b);
        char path[512];
        snprintf(path, sizeof path, "%s/valid-t5.gguf", g_dir);
        CHECK(write_file(path, b.p, b.n), "cannot write %s", path);
        al_model *am = NULL;
        al_error err = {0};
        CHECK(al_model_load(path, NULL, &am, &err) == AL_OK, "valid t5 model refused: %s", err.msg);
        al_model_free(am);
        free(b.p);
        model_free(m);
        free(m);
    }
    MUTATE(t5, "t5-charsmap-truncated", AT_MODEL, "tokenizer.ggml.precompiled_charsmap", "truncated",
           kv_charsmap(m, 0, 3));
    MUTATE(t5, "t5-charsmap-cut-in-trie", AT_MODEL, "tokenizer.ggml.precompiled_charsmap", "truncated",
           kv_charsmap(m, 0, 1000));
    MUTATE(t5, "t5-charsmap-offset-outside", AT_MODEL, "tokenizer.ggml.precompiled_charsmap", "outside",
           kv_charsmap(m, 4096, UINT64_MAX));
    MUTATE(t5, "t5-charsmap-not-bytes", AT_MODEL, "tokenizer.ggml.precompiled_charsmap", "array of bytes",
           kvdef *k = kv_raw(m, "tokenizer.ggml.precompiled_charsmap", T_ARR); put_u32(&k->val, T_STR);
           put_u64(&k->val, 1); put_str(&k->val, "x"));
    MUTATE(t5, "t5-scores-strings", AT_MODEL, "tokenizer.ggml.scores", NULL, kv_del(m, "tokenizer.ggml.scores");
           kvdef *k = kv_raw(m, "tokenizer.ggml.scores", T_ARR); put_u32(&k->val, T_STR);
           put_u64(&k->val, NVOCAB); for (int i = 0; i < NVOCAB; i++) put_str(&k->val, "1"));
    MUTATE(t5, "t5-empty-vocab", AT_MODEL, "tokenizer.ggml.tokens", "0 entries", kv_del(m, "tokenizer.ggml.tokens");
           kvdef *k = kv_raw(m, "tokenizer.ggml.tokens", T_ARR); put_u32(&k->val, T_STR); put_u64(&k->val, 0));
    MUTATE(t5, "gemma4-without-merges", AT_MODEL, "tokenizer.ggml.merges", "missing",
           kv_del(m, "tokenizer.ggml.model"); kv_str(m, "tokenizer.ggml.model", "gemma4"));
    MUTATE(t5, "tokenizer-model-unknown", AT_MODEL, "tokenizer.ggml.model", "rwkv",
           kv_del(m, "tokenizer.ggml.model"); kv_str(m, "tokenizer.ggml.model", "rwkv"));
    model_free(t5);
    free(t5);
}

/* A byte-level BPE vocab instead of the SentencePiece one: model "gpt2",
 * tokenizer.ggml.pre = pre, and the given merges. */
static void make_bpe(gmodel *m, const char *pre, const char *const *merges, int n_merges)
{
    kv_del(m, "tokenizer.ggml.model");
    kv_str(m, "tokenizer.ggml.model", "gpt2");
    if (pre)
        kv_str(m, "tokenizer.ggml.pre", pre);
    kvdef *k = kv_add(m, "tokenizer.ggml.merges", T_ARR);
    put_u32(&k->val, T_STR);
    put_u64(&k->val, (uint64_t)n_merges);
    for (int i = 0; i < n_merges; i++)
        put_str(&k->val, merges[i]);
}

/* The tokenizer's own refusals: each names the key and the problem. */
static void corpus_tokenizer(const gmodel *base)
{
    static const char *const ok_merges[] = {"b c"};
    static const char *const bad_merges[] = {"b zz"};
    static const char *const bad_result[] = {"b s"};
    MUTATE(base, "tokenizer-pre-unknown", AT_MODEL, "tokenizer.ggml.pre", "no-such-pre",
           make_bpe(m, "no-such-pre", ok_merges, 1));
    MUTATE(base, "tokenizer-pre-not-string", AT_MODEL, "tokenizer.ggml.pre", "not a string",
           make_bpe(m, NULL, ok_merges, 1); kv_u32(m, "tokenizer.ggml.pre", 7));
    MUTATE(base, "tokenizer-merge-missing-token", AT_MODEL, "tokenizer.ggml.merges[0]", "'zz', which is not a token",
           make_bpe(m, "gpt-2", bad_merges, 1));
    MUTATE(base, "tokenizer-merge-result-missing", AT_MODEL, "tokenizer.ggml.merges[0]", "'bs', which is not a token",
           make_bpe(m, "gpt-2", bad_result, 1));
    MUTATE(base, "tokenizer-merges-missing", AT_MODEL, "tokenizer.ggml.merges", "missing",
           make_bpe(m, "gpt-2", ok_merges, 1); kv_del(m, "tokenizer.ggml.merges"));
    MUTATE(base, "tokenizer-empty-vocab", AT_MODEL, "tokenizer.ggml.tokens", "0 entries",
           kvdef *k = kv_find(m, "tokenizer.ggml.tokens"); k->val.n = 4; put_u64(&k->val, 0));
    MUTATE(base, "tokenizer-scores-wrong-type", AT_MODEL, "tokenizer.ggml.scores", "float32 or int32",
           kvdef *k = kv_find(m, "tokenizer.ggml.scores"); uint32_t t = T_U32; memcpy(k->val.p, &t, 4));
    MUTATE(base, "tokenizer-scores-not-array", AT_MODEL, "tokenizer.ggml.scores", "float32 or int32",
           kv_del(m, "tokenizer.ggml.scores"); kv_f32(m, "tokenizer.ggml.scores", 1.0f));
    MUTATE(base, "tokenizer-scores-long", AT_MODEL, "tokenizer.ggml.scores", "entries for",
           kvdef *k = kv_find(m, "tokenizer.ggml.scores"); uint64_t c = NVOCAB + 1; memcpy(k->val.p + 4, &c, 8);
           put_f32(&k->val, 0.0f));

    /* int32 scores (as Tekken files store them) load and tokenize as float32 ones */
    gmodel *m = malloc(sizeof(gmodel));
    model_copy(m, base);
    kvdef *k = kv_find(m, "tokenizer.ggml.scores");
    uint32_t t = T_I32;
    memcpy(k->val.p, &t, 4);
    for (int i = 0; i < NVOCAB; i++) {
        float f;
        memcpy(&f, k->val.p + 12 + 4 * i, 4);
        int32_t x = (int32_t)f;
        memcpy(k->val.p + 12 + 4 * i, &x, 4);
    }
    buf b = {0}, b0 = {0};
    model_write(m, &b);
    model_write(base, &b0);
    char p1[512], p0[512];
    snprintf(p1, sizeof p1, "%s/tokenizer-scores-int32.gguf", g_dir);
    snprintf(p0, sizeof p0, "%s/tokenizer-scores-float32.gguf", g_dir);
    g_cases++;
    if (write_file(p1, b.p, b.n) && write_file(p0, b0.p, b0.n)) {
        al_vocab *v1 = NULL, *v0 = NULL;
        al_error e1 = {0}, e0 = {0};
        al_status s1 = al_vocab_load(p1, &v1, &e1), s0 = al_vocab_load(p0, &v0, &e0);
        CHECK(s1 == AL_OK && s0 == AL_OK, "int32 scores refused: %s / %s", e1.msg, e0.msg);
        if (v1 && v0) {
            int32_t t1[16], t0[16];
            size_t n1 = 0, n0 = 0;
            al_tokenize(v1, "the cats", 8, false, false, t1, 16, &n1, NULL);
            al_tokenize(v0, "the cats", 8, false, false, t0, 16, &n0, NULL);
            CHECK(n1 == n0 && n1 > 0 && !memcmp(t1, t0, n1 * sizeof(int32_t)), "int32 scores tokenize differently");
            printf("  %-34s %-18s %zu tokens, as with float32 scores\n", "tokenizer-scores-int32", "OK", n1);
        }
        al_vocab_free(v1);
        al_vocab_free(v0);
    }
    free(b.p);
    free(b0.p);
    model_free(m);
    free(m);
}

/* The real files in ../shared are the positive cases. */
static void positive_shared(const char *shared)
{
    const char *subdirs[] = {"models", "vocab"};
    int n_ok = 0;
    for (int s = 0; s < 2; s++) {
        char dpath[512];
        snprintf(dpath, sizeof dpath, "%s/%s", shared, subdirs[s]);
        DIR *d = opendir(dpath);
        if (!d) {
            CHECK(0, "cannot open %s", dpath);
            continue;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
            size_t l = strlen(de->d_name);
            if (l < 5 || strcmp(de->d_name + l - 5, ".gguf"))
                continue;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dpath, de->d_name);
            al_error err = {0};
            al_gguf *g = NULL;
            al_status st = al_gguf_open(path, NULL, &g, &err);
            CHECK(st == AL_OK, "real file %s refused: %s", path, err.msg);
            if (g) {
                CHECK(g->n_kv > 0, "%s: no metadata", path);
                printf("  ok %-40s v%u %4llu tensors %3llu keys\n", de->d_name, g->version,
                       (unsigned long long)g->n_tensors, (unsigned long long)g->n_kv);
                n_ok++;
            }
            al_gguf_close(g);
            if (s == 0 && strstr(de->d_name, "stories260K")) {
                al_model *m = NULL;
                CHECK(al_model_load(path, NULL, &m, &err) == AL_OK, "real model %s refused: %s", path, err.msg);
                al_model_free(m);
            }
        }
        closedir(d);
    }
    CHECK(n_ok >= 12, "only %d shared GGUF files opened", n_ok);
}

int main(void)
{
    const char *shared = getenv("AIRLOCK_SHARED");
    if (!shared)
        shared = "../shared";
    snprintf(g_dir, sizeof g_dir, "/tmp/airlock-gguf-corpus-XXXXXX");
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    printf("corpus directory: %s\n", g_dir);

    gmodel *base = malloc(sizeof *base);
    base_model(base);
    positive_base(base);
    corpus_truncations(base);
    printf("broken files:\n");
    corpus_header(base);
    corpus_kv(base);
    corpus_tensors(base);
    corpus_quant_scales(base);
    corpus_model(base);
    corpus_tokenizer(base);
    corpus_tokenizer_models(base);
    corpus_arch(base);
    printf("families:\n");
    positive_families(base);
    positive_longrope(base);
    positive_per_layer(base);

    /* a file that does not exist, and a directory */
    al_error err = {0};
    al_gguf *g = NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/does-not-exist.gguf", g_dir);
    CHECK(al_gguf_open(path, NULL, &g, &err) == AL_ERR_IO && strstr(err.msg, path), "missing file: %s", err.msg);
    CHECK(al_gguf_open(g_dir, NULL, &g, &err) != AL_OK && g == NULL, "a directory was accepted");
    g_cases += 2;

    struct stat sb;
    if (stat(shared, &sb) == 0) {
        printf("shared files:\n");
        positive_shared(shared);
    } else {
        printf("shared data not found at %s: real-file positives skipped\n", shared);
    }

    model_free(base);
    free(base);
    /* remove the corpus unless asked to keep it */
    if (!getenv("AIRLOCK_KEEP_CORPUS")) {
        DIR *d = opendir(g_dir);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            char p[600];
            snprintf(p, sizeof p, "%s/%s", g_dir, de->d_name);
            unlink(p);
        }
        if (d)
            closedir(d);
        rmdir(g_dir);
    }
    printf("%d cases, %d failures\n", g_cases, g_failures);
    return g_failures ? 1 : 0;
}
