/* fuzz_tokenizer.c - libFuzzer entry for the tokenizers on real
 * vocabularies (../shared/vocab, or $AIRLOCK_SHARED/vocab): the first byte
 * picks the vocabulary and the flags, the rest is text (arbitrary bytes,
 * not necessarily UTF-8). The text is tokenized and the ids turned back
 * into text through the streaming detokenizer: every id must be in range,
 * every piece within its bounds, and what the detokenizer emits must be
 * valid UTF-8; for the byte-level BPE vocabularies, valid UTF-8 text must
 * come back byte for byte. Also built without libFuzzer as a corpus replayer
 * (exits 77 when the vocabularies are missing). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* one of each tokenizer kind and pre-tokenizer family */
static const char *const k_vocabs[] = {
    "ggml-vocab-llama-spm.gguf",      "ggml-vocab-gpt-2.gguf",   "ggml-vocab-qwen2.gguf",
    "ggml-vocab-bert-bge.gguf",       "ggml-vocab-llama-bpe.gguf", "ggml-vocab-deepseek-coder.gguf",
    "ggml-vocab-aquila.gguf",      "ggml-vocab-gemma-4.gguf", "ggml-vocab-gpt-neox.gguf",
    "ggml-vocab-phi-3.gguf",          "ggml-vocab-nomic-bert-moe.gguf", "ggml-vocab-baichuan.gguf",
};
#define N_VOCABS (sizeof(k_vocabs) / sizeof(k_vocabs[0]))
/* byte-level BPE without normalisation: valid UTF-8 text comes back exactly */
static const bool k_lossless[N_VOCABS] = {false, true, true, false, true, true};
static al_vocab *g_vocab[N_VOCABS];
static bool g_lossless[N_VOCABS];
static size_t g_n;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *shared = getenv("AIRLOCK_SHARED");
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/vocab", shared && *shared ? shared : "../shared");
    for (size_t i = 0; i < N_VOCABS; i++) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s", dir, k_vocabs[i]);
        al_error err;
        if (al_vocab_load(path, &g_vocab[g_n], &err) == AL_OK)
            g_lossless[g_n++] = k_lossless[i];
        else
            fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
    }
    if (!g_n) {
        fprintf(stderr, "fuzz_tokenizer: no vocabulary under %s (set AIRLOCK_SHARED): skipped\n", dir);
        exit(77);
    }
    return 0;
}

static bool valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || i + len > n || (len == 2 && c < 0xC2) || (len == 4 && c > 0xF4))
            return false;
        uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    size_t which = data[0] % g_n;
    const al_vocab *v = g_vocab[which];
    bool add_special = data[0] & 0x40, parse_special = data[0] & 0x80, render = data[0] & 0x20;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    size_t cap = len + 8, n = 0;
    int32_t *ids = malloc(cap * sizeof(int32_t));
    al_error err;
    al_status st = al_tokenize(v, text, len, add_special, parse_special, ids, cap, &n, &err);
    if (st == AL_ERR_LIMIT && n > cap) {
        /* told how many: a second call with room must succeed */
        free(ids);
        cap = n;
        ids = malloc(cap * sizeof(int32_t));
        st = al_tokenize(v, text, len, add_special, parse_special, ids, cap, &n, &err);
        if (st != AL_OK)
            abort();
    }
    if (st != AL_OK) {
        free(ids);
        return 0;
    }
    int32_t n_vocab = al_vocab_n_tokens(v);
    al_detok *d = al_detok_new(v, render);
    if (!d)
        abort();
    char piece[256];
    bool check_same = g_lossless[which] && !add_special && !parse_special && valid_utf8(data + 1, len);
    char *back = check_same ? malloc(len + 1) : NULL;
    size_t n_back = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= n_vocab)
            abort();
        int32_t pl = al_token_to_piece(v, ids[i], piece, sizeof(piece), render);
        if (pl < 0)
            abort();
        size_t k = 0;
        const char *out = al_detok_push(d, ids[i], &k);
        if (k && !valid_utf8((const unsigned char *)out, k))
            abort();
        if (back && k) {
            if (n_back + k > len)
                abort(); /* more text out than in */
            memcpy(back + n_back, out, k);
            n_back += k;
        }
    }
    size_t k = 0;
    const char *out = al_detok_flush(d, &k);
    if (k && !valid_utf8((const unsigned char *)out, k))
        abort();
    if (back && k) {
        if (n_back + k > len)
            abort();
        memcpy(back + n_back, out, k);
        n_back += k;
    }
    if (back && (n_back != len || memcmp(back, text, len) != 0))
        abort(); /* the round trip changed the text */
    free(back);
    al_detok_free(d);
    free(ids);
    return 0;
}
