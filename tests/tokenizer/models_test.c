/*
 * models_test.c - the unigram (t5) and UTF-8 BPE (gemma4) tokenizer models.
 *
 *  - every string of the shared vectors of ggml-vocab-nomic-bert-moe (t5,
 *    with a precompiled charsmap) and ggml-vocab-gemma-4 tokenizes (no
 *    BOS/EOS, special tokens not parsed) to the ids of the same .out line;
 *  - the pieces and the streamed detokenizer agree and give valid UTF-8;
 *    gemma4 decodes back to the input exactly;
 *  - BOS/EOS defaults, special tokens, <mask>'s left strip, end of
 *    generation, `airlock tokenize --special`;
 *  - a small hand-made t5 vocab whose charsmap maps 'A' to 'a', and broken
 *    ones (charsmap truncated or pointing outside itself, empty vocab,
 *    scores of the wrong type or length, gemma4 without merges): each is
 *    refused by al_vocab_load and by `airlock tokenize` with the file, the
 *    key and the problem.
 * Exits 77 (skipped) when ../shared/vocab is absent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "airlock.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab.h"
#include "tokenizer/tok_common.h"

static char g_shared[2048];
static char g_tmp[64];

static int32_t *tokenize(const al_vocab *v, const char *s, size_t n, bool add, bool special, size_t *n_tok)
{
    al_error err = {0};
    size_t need = 0;
    al_status st = al_tokenize(v, s, n, add, special, NULL, 0, &need, &err);
    if (st != AL_OK && st != AL_ERR_LIMIT) {
        fprintf(stderr, "tokenize failed: %s\n", err.msg);
        return NULL;
    }
    int32_t *t = malloc((need + 1) * sizeof(int32_t));
    st = al_tokenize(v, s, n, add, special, t, need, n_tok, &err);
    CHECK(st == AL_OK && *n_tok == need, "second al_tokenize: %d %zu != %zu", st, *n_tok, need);
    return t;
}

static bool ids_are(const al_vocab *v, const char *s, bool add, bool special, const int32_t *want, size_t n_want)
{
    size_t n = 0;
    int32_t *got = tokenize(v, s, strlen(s), add, special, &n);
    bool same = got && n == n_want && !memcmp(got, want, n * sizeof(int32_t));
    if (!same && got) {
        fprintf(stderr, "  '%s' gave:", s);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %d", got[i]);
        fputc('\n', stderr);
    }
    free(got);
    return same;
}

/* The pieces (al_token_to_piece) and the stream (al_detok, one token at a
 * time) of t: they must be the same bytes, and every chunk of the stream
 * valid UTF-8. Returns the pieces, malloc'd. */
static char *decode_both(const al_vocab *v, const int32_t *t, size_t n, size_t *len)
{
    size_t cap = 64, o = 0, so = 0;
    char *b = malloc(cap), *sb = malloc(cap);
    al_detok *d = al_detok_new(v, false);
    for (size_t i = 0; i <= n; i++) {
        if (i < n) {
            int32_t k = al_token_to_piece(v, t[i], NULL, 0, false);
            CHECK(k >= 0, "piece of %d", t[i]);
            if (k < 0)
                k = 0;
            while (o + (size_t)k + 1 > cap) {
                cap *= 2;
                b = realloc(b, cap);
                sb = realloc(sb, cap);
            }
            CHECK(al_token_to_piece(v, t[i], b + o, (size_t)k, false) == k, "piece length changed");
            o += (size_t)k;
        }
        size_t k;
        const char *p = i < n ? al_detok_push(d, t[i], &k) : al_detok_flush(d, &k);
        CHECK(valid_utf8((const unsigned char *)p, k), "detok emitted invalid UTF-8 after token %zu", i);
        while (so + k + 1 > cap) {
            cap *= 2;
            b = realloc(b, cap);
            sb = realloc(sb, cap);
        }
        memcpy(sb + so, p, k);
        so += k;
    }
    al_detok_free(d);
    /* the stream is the pieces with invalid UTF-8 replaced: equal when valid */
    if (valid_utf8((const unsigned char *)b, o))
        CHECK(so == o && !memcmp(sb, b, o), "streamed detok differs from the pieces");
    free(sb);
    *len = o;
    return b;
}

static al_vocab *load(const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/vocab/ggml-vocab-%s.gguf", g_shared, name);
    al_vocab *v = NULL;
    al_error err = {0};
    if (al_vocab_load(path, &v, &err))
        fprintf(stderr, "%s: %s\n", path, err.msg);
    return v;
}

/* Strings of `inp` (separated by "\n__ggml_vocab_test__\n", with or without
 * one at the end) against the lines of `out`. `exact_decode`: decoding the
 * ids gives the string back (when it is valid UTF-8). */
static void test_vectors(const char *name, const char *inp_rel, const char *out_rel, bool exact_decode)
{
    char p1[4096], p2[4096];
    snprintf(p1, sizeof(p1), "%s/vocab/%s", g_shared, inp_rel);
    snprintf(p2, sizeof(p2), "%s/vocab/%s", g_shared, out_rel);
    size_t n_inp = 0, n_out = 0;
    char *inp = read_all(p1, &n_inp), *out = read_all(p2, &n_out);
    al_vocab *v = load(name);
    CHECK(inp && out && v, "%s: cannot read %s, %s or the vocab", name, p1, p2);
    if (!inp || !out || !v)
        goto done;
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t n_strings = 0, n_match = 0, n_round = 0, n_lines = 0;
    for (size_t i = 0; i < n_out; i++)
        n_lines += out[i] == '\n';
    char *s = inp, *line = out, *end = inp + n_inp;
    while (s < end) {
        char *e = memmem(s, (size_t)(end - s), sep, sizeof(sep) - 1);
        size_t len = e ? (size_t)(e - s) : (size_t)(end - s);
        char *nl = strchr(line, '\n');
        CHECK(nl != NULL, "%s: %s has fewer lines than %s has strings", name, out_rel, inp_rel);
        if (!nl)
            break;
        int32_t want[4096];
        size_t n_want = 0;
        for (char *q = line; q < nl && n_want < 4096;) {
            char *qe;
            long x = strtol(q, &qe, 10);
            if (qe == q)
                break;
            want[n_want++] = (int32_t)x;
            q = qe;
        }
        size_t n_got = 0;
        int32_t *got = tokenize(v, s, len, false, false, &n_got);
        bool same = got && n_got == n_want && !memcmp(got, want, n_got * sizeof(int32_t));
        CHECK(same, "%s: string %zu '%.*s': %zu ids, expected %zu", name, n_strings, (int)(len > 40 ? 40 : len), s,
              n_got, n_want);
        n_match += same;
        if (got) {
            for (size_t i = 0; i < n_got; i++)
                CHECK(got[i] >= 0 && got[i] < al_vocab_n_tokens(v), "%s: id %d out of range", name, got[i]);
            size_t dl;
            char *dec = decode_both(v, got, n_got, &dl);
            if (exact_decode && valid_utf8((const unsigned char *)s, len)) {
                bool ok = dl == len && !memcmp(dec, s, len);
                CHECK(ok, "%s: decode(encode(string %zu)) differs", name, n_strings);
                n_round += ok;
            }
            free(dec);
        }
        free(got);
        n_strings++;
        line = nl + 1;
        s = e ? e + sizeof(sep) - 1 : end;
    }
    CHECK(n_strings == n_lines && n_strings > 0, "%s: %zu strings but %zu lines", name, n_strings, n_lines);
    printf("%-16s %-40s %zu/%zu vectors match, %zu exact round trips\n", name, inp_rel, n_match, n_strings,
           n_round);
done:
    free(inp);
    free(out);
    al_vocab_free(v);
}

/* Runs `airlock ARGS` with `input` on stdin; returns the exit status and
 * the first bytes of stdout+stderr in buf. */
static int run_cli(const char *args, const char *input, char *buf, size_t cap)
{
    const char *bin = getenv("AIRLOCK_BIN");
    buf[0] = 0;
    if (!bin || !*bin)
        return -1;
    char inpath[128], cmd[8192];
    snprintf(inpath, sizeof(inpath), "%s/stdin.txt", g_tmp);
    FILE *f = fopen(inpath, "wb");
    if (!f)
        return -1;
    fputs(input, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "'%s' %s < '%s' 2>&1", bin, args, inpath);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(buf, 1, cap - 1, p);
    buf[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_specials(void)
{
    al_vocab *u = load("nomic-bert-moe"), *g = load("gemma-4");
    CHECK(u && g, "loading the vocabularies");
    if (!u || !g)
        goto out;
    /* t5 defaults: no BOS, EOS; the file asks for both (XLM-R's <s> ... </s>) */
    CHECK(al_vocab_type_of(u) == AL_VOCAB_UGM, "nomic-bert-moe is a unigram vocab");
    CHECK(al_vocab_bos(u) == 0 && al_vocab_eos(u) == 2 && al_vocab_unk(u) == 3 && al_vocab_pad(u) == 1,
          "nomic ids: bos %d eos %d unk %d pad %d", al_vocab_bos(u), al_vocab_eos(u), al_vocab_unk(u),
          al_vocab_pad(u));
    CHECK(al_vocab_add_bos_default(u) && al_vocab_add_eos_default(u), "nomic adds <s> and </s>");
    CHECK(al_vocab_add_space_prefix(u), "nomic has add_space_prefix");
    CHECK(al_vocab_is_eog(u, 2) && !al_vocab_is_eog(u, 35378), "nomic eog");
    size_t n_hello = 0;
    int32_t *hello = tokenize(u, "Hello world", 11, false, false, &n_hello);
    CHECK(hello && n_hello == 2 && hello[0] == 35378 && hello[1] == 8999, "nomic 'Hello world'");
    CHECK(ids_are(u, "Hello world", true, false, (int32_t[]){0, 35378, 8999, 2}, 4), "nomic add_special");
    CHECK(ids_are(u, "<s>Hello world</s>", false, true, (int32_t[]){0, 35378, 8999, 2}, 4), "nomic parse_special");
    /* <mask> strips the space on its left (general.architecture nomic-bert-moe) */
    CHECK(ids_are(u, "Hello world <mask>", false, true, (int32_t[]){35378, 8999, 250001}, 3), "nomic <mask> lstrip");
    CHECK(ids_are(u, "", true, false, (int32_t[]){0, 2}, 2), "nomic empty text with add_special");
    /* remove_extra_whitespaces: leading, trailing and repeated spaces vanish */
    CHECK(ids_are(u, "   Hello    world  ", false, false, hello, n_hello), "nomic extra whitespace");
    free(hello);
    {
        char buf[64];
        CHECK(al_token_to_piece(u, 35378, buf, sizeof(buf), false) == 6 && !memcmp(buf, " Hello", 6), "nomic piece");
        CHECK(al_token_to_piece(u, 0, buf, sizeof(buf), false) == 0, "nomic <s> hidden");
        CHECK(al_token_to_piece(u, 0, buf, sizeof(buf), true) == 3 && !memcmp(buf, "<s>", 3), "nomic <s> shown");
        CHECK(al_token_to_piece(u, 250002, buf, sizeof(buf), true) == 0, "nomic unused token has no text");
    }
    /* the charsmap: full-width letters and a ligature become ASCII (NFKC) */
    {
        size_t n1 = 0, n2 = 0;
        int32_t *a = tokenize(u, "\xef\xbc\xa8\xef\xbd\x85llo \xef\xac\x81ne", 15, false, false, &n1);
        int32_t *b = tokenize(u, "Hello fine", 10, false, false, &n2);
        CHECK(a && b && n1 == n2 && !memcmp(a, b, n1 * sizeof(int32_t)), "nomic NFKC through the charsmap");
        free(a);
        free(b);
    }

    /* gemma4: BOS added (forced, as the reference does), no EOS */
    CHECK(al_vocab_type_of(g) == AL_VOCAB_BPE, "gemma-4 is BPE");
    CHECK(al_vocab_bos(g) == 2 && al_vocab_eos(g) == 1 && al_vocab_unk(g) == 3, "gemma ids");
    CHECK(al_vocab_add_bos_default(g) && !al_vocab_add_eos_default(g) && !al_vocab_add_space_prefix(g),
          "gemma add_bos only");
    CHECK(al_vocab_is_eog(g, 1) && al_vocab_is_eog(g, 106) && al_vocab_is_eog(g, 50) && !al_vocab_is_eog(g, 105) &&
              !al_vocab_is_eog(g, 212),
          "gemma eog: <eos> <turn|> <|tool_response>, not <|turn> or </s>");
    CHECK(ids_are(g, "Hello world", true, false, (int32_t[]){2, 9259, 1902}, 3), "gemma add_special");
    CHECK(ids_are(g, "<|turn>user\nHi<turn|>", false, true, (int32_t[]){105, 2364, 107, 10979, 106}, 5),
          "gemma turn markers with parse_special");
    CHECK(ids_are(g, "<bos>", false, false, (int32_t[]){236820, 46757, 236813}, 3),
          "gemma control token as text without parse_special");
    {
        char buf[64];
        int32_t sp = al_vocab_find(g, "\xe2\x96\x81world", 8);
        CHECK(sp == 1902, "gemma ▁world is 1902: %d", sp);
        CHECK(al_token_to_piece(g, 1902, buf, sizeof(buf), false) == 6 && !memcmp(buf, " world", 6), "gemma piece");
        int32_t bt = al_vocab_find(g, "<0x41>", 6);
        CHECK(bt >= 0 && al_token_to_piece(g, bt, buf, sizeof(buf), false) == 1 && buf[0] == 'A',
              "gemma byte token <0x41>");
        CHECK(al_token_to_piece(g, 106, buf, sizeof(buf), false) == 0, "gemma <turn|> hidden");
    }
    /* a character no merge reaches: byte tokens, which stream back whole */
    {
        const char *s = "\xf0\x9f\xab\xa8 \xe2\xbf\xbb";
        size_t n = 0, dl;
        int32_t *t = tokenize(g, s, strlen(s), false, false, &n);
        char *dec = t ? decode_both(g, t, n, &dl) : NULL;
        CHECK(dec && dl == strlen(s) && !memcmp(dec, s, dl), "gemma byte fallback round trip");
        free(dec);
        free(t);
    }

    /* the CLI */
    {
        char args[4096], buf[4096];
        snprintf(args, sizeof(args), "tokenize --special '%s/vocab/ggml-vocab-nomic-bert-moe.gguf'", g_shared);
        int rc = run_cli(args, "Hello world", buf, sizeof(buf));
        CHECK(rc == 0 && !strcmp(buf, "0 35378 8999 2\n"), "airlock tokenize --special (t5): %d '%s'", rc, buf);
        snprintf(args, sizeof(args), "tokenize --special '%s/vocab/ggml-vocab-gemma-4.gguf'", g_shared);
        rc = run_cli(args, "<|turn>user\nHello world", buf, sizeof(buf));
        CHECK(rc == 0 && !strcmp(buf, "2 105 2364 107 9259 1902\n"), "airlock tokenize --special (gemma4): %d '%s'",
              rc, buf);
        snprintf(args, sizeof(args), "tokenize '%s/vocab/ggml-vocab-gemma-4.gguf'", g_shared);
        rc = run_cli(args, "Hello world", buf, sizeof(buf));
        CHECK(rc == 0 && !strcmp(buf, "9259 1902\n"), "airlock tokenize (gemma4): %d '%s'", rc, buf);
    }
out:
    al_vocab_free(u);
    al_vocab_free(g);
}

/* Random bytes and long inputs: every call succeeds with ids in range and
 * a stream of valid UTF-8. */
static void test_random(void)
{
    const char *names[] = {"nomic-bert-moe", "gemma-4"};
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t k = 0; k < 2; k++) {
        al_vocab *v = load(names[k]);
        CHECK(v != NULL, "load %s", names[k]);
        if (!v)
            continue;
        int bad = 0;
        for (int r = 0; r < 300; r++) {
            char buf[128];
            size_t n = 0, len = (size_t)(r % 128), dl;
            for (size_t i = 0; i < len; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                unsigned c = (unsigned)(x >> 56);
                buf[i] = c < 64 ? (char)(' ' + (c & 63)) : c < 96 ? "<|>s/ \n\t"[c & 7] : (char)c;
            }
            int32_t *t = tokenize(v, buf, len, r & 1, r & 2, &n);
            if (!t) {
                bad++;
                continue;
            }
            for (size_t i = 0; i < n; i++)
                bad += t[i] < 0 || t[i] >= al_vocab_n_tokens(v);
            free(decode_both(v, t, n, &dl));
            free(t);
        }
        /* 200 KB without a space or newline: one Viterbi / merge run */
        size_t big = 200000, n = 0;
        char *s = malloc(big);
        for (size_t i = 0; i < big; i++)
            s[i] = "abcdefghij\xc3\xa9"[i % 12];
        int32_t *t = tokenize(v, s, big, false, false, &n);
        CHECK(t && n > 1000, "%s: a 200 KB word", names[k]);
        free(t);
        free(s);
        CHECK(bad == 0, "%s: %d failures on random input", names[k], bad);
        al_vocab_free(v);
    }
    printf("random input       ok\n");
}

/* ------------------------------------------------- hand-made vocab files */

typedef struct gb {
    uint8_t *p;
    size_t n, cap;
} gb;

static void put(gb *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        while (b->n + n > b->cap)
            b->cap = b->cap ? b->cap * 2 : 4096;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_u32(gb *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(gb *b, uint64_t v) { put(b, &v, 8); }
static void put_s(gb *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

enum { T_U8 = 0, T_U32 = 4, T_I32 = 5, T_F32 = 6, T_BOOL = 7, T_STR = 8, T_ARR = 9 };

typedef enum bad {
    GOOD,
    CM_SHORT,         /* 2 bytes: no room for the size field */
    CM_SIZE_PAST_END, /* the size field claims more than the array */
    CM_SIZE_ODD,      /* not a multiple of 4 */
    CM_OFFSET_OUT,    /* a match names a string past the table */
    CM_UNTERMINATED,  /* the last string has no NUL */
    CM_NOT_BYTES,     /* an array of u32 */
    EMPTY_VOCAB,
    SCORES_STRINGS,
    SCORES_SHORT,
    GEMMA_NO_MERGES,
} bad;

/* The charsmap of the t5 vocab: the byte 'A' maps to "a".
 * Unit 0: BASE 256 (the root node). 256 ^ 'A' = 321: LCHECK 'A', LEAF,
 * BASE 1 -> node 320, a value unit holding the offset of "a" (0). */
static size_t charsmap(bad b, uint8_t *out)
{
    uint32_t units[512] = {0};
    units[0] = 256u << 10;
    units[321] = (1u << 10) | (1u << 8) | 'A';
    units[320] = (1u << 31) | (b == CM_OFFSET_OUT ? 1000u : 0u);
    uint32_t size = sizeof(units);
    if (b == CM_SIZE_PAST_END)
        size = 4096;
    if (b == CM_SIZE_ODD)
        size = 6;
    memcpy(out, &size, 4);
    memcpy(out + 4, units, sizeof(units));
    size_t n = 4 + sizeof(units);
    memcpy(out + n, "a\0", b == CM_UNTERMINATED ? 1 : 2);
    n += b == CM_UNTERMINATED ? 1 : 2;
    return b == CM_SHORT ? 2 : n;
}

/* When set, write_vocab uses this charsmap instead of its own. */
static const uint8_t *g_cm;
static size_t g_cm_n;

/* Writes a vocab-only GGUF: t5 tokens <pad> </s> <unk> ▁ a ▁a b (scores
 * 0 0 0 -2 -1 -0.5 -1) with the charsmap above, or (gemma4) the same
 * tokens with merges "▁ a". */
static void write_vocab(const char *path, bad b, bool gemma)
{
    static const char *const toks[] = {"<pad>", "</s>", "<unk>", "\xe2\x96\x81", "a", "\xe2\x96\x81" "a", "b"};
    static const float scores[] = {0, 0, 0, -2, -1, -0.5f, -1};
    static const int32_t types[] = {3, 3, 2, 1, 1, 1, 1};
    uint32_t nt = b == EMPTY_VOCAB ? 0 : 7;
    gb kv = {0};
    uint64_t n_kv = 0;
    put_s(&kv, "tokenizer.ggml.model"), put_u32(&kv, T_STR), put_s(&kv, gemma ? "gemma4" : "t5"), n_kv++;
    put_s(&kv, "tokenizer.ggml.tokens"), put_u32(&kv, T_ARR), put_u32(&kv, T_STR), put_u64(&kv, nt), n_kv++;
    for (uint32_t i = 0; i < nt; i++)
        put_s(&kv, toks[i]);
    put_s(&kv, "tokenizer.ggml.scores"), put_u32(&kv, T_ARR), n_kv++;
    if (b == SCORES_STRINGS) {
        put_u32(&kv, T_STR), put_u64(&kv, nt);
        for (uint32_t i = 0; i < nt; i++)
            put_s(&kv, "0.5");
    } else {
        uint32_t ns = b == SCORES_SHORT ? 3 : nt;
        put_u32(&kv, T_F32), put_u64(&kv, ns), put(&kv, scores, ns * 4);
    }
    put_s(&kv, "tokenizer.ggml.token_type"), put_u32(&kv, T_ARR), put_u32(&kv, T_I32), put_u64(&kv, nt), n_kv++;
    put(&kv, types, nt * 4);
    put_s(&kv, "tokenizer.ggml.add_space_prefix"), put_u32(&kv, T_BOOL), put(&kv, "\1", 1), n_kv++;
    put_s(&kv, "tokenizer.ggml.eos_token_id"), put_u32(&kv, T_U32), put_u32(&kv, 1), n_kv++;
    put_s(&kv, "tokenizer.ggml.unknown_token_id"), put_u32(&kv, T_U32), put_u32(&kv, 2), n_kv++;
    if (gemma && b != GEMMA_NO_MERGES) {
        put_s(&kv, "tokenizer.ggml.merges"), put_u32(&kv, T_ARR), put_u32(&kv, T_STR), put_u64(&kv, 1), n_kv++;
        put_s(&kv, "\xe2\x96\x81 a");
    }
    if (!gemma && g_cm) {
        put_s(&kv, "tokenizer.ggml.precompiled_charsmap"), put_u32(&kv, T_ARR), n_kv++;
        put_u32(&kv, T_U8), put_u64(&kv, g_cm_n), put(&kv, g_cm, g_cm_n);
    } else if (!gemma) {
        uint8_t cm[4 + 2048 + 2];
        size_t n = charsmap(b, cm);
        put_s(&kv, "tokenizer.ggml.precompiled_charsmap"), put_u32(&kv, T_ARR), n_kv++;
        if (b == CM_NOT_BYTES) {
            put_u32(&kv, T_U32), put_u64(&kv, n / 4), put(&kv, cm, n / 4 * 4);
        } else {
            put_u32(&kv, T_U8), put_u64(&kv, n), put(&kv, cm, n);
        }
    }
    gb f = {0};
    put(&f, "GGUF", 4), put_u32(&f, 3), put_u64(&f, 0), put_u64(&f, n_kv);
    put(&f, kv.p, kv.n);
    FILE *fp = fopen(path, "wb");
    CHECK(fp && fwrite(f.p, 1, f.n, fp) == f.n, "cannot write %s", path);
    if (fp)
        fclose(fp);
    free(kv.p);
    free(f.p);
}

/* Whether s contains one of the '|'-separated alternatives. */
static bool has_any(const char *s, const char *alts)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", alts);
    for (char *save = NULL, *a = strtok_r(buf, "|", &save); a; a = strtok_r(NULL, "|", &save))
        if (strstr(s, a))
            return true;
    return false;
}

static void test_small_vocab(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/t5-good.gguf", g_tmp);
    write_vocab(path, GOOD, false);
    al_vocab *v = NULL;
    al_error err = {0};
    CHECK(al_vocab_load(path, &v, &err) == AL_OK, "good t5 vocab refused: %s", err.msg);
    unlink(path);
    if (v) {
        /* "A" -> "a" by the charsmap; "▁a" (-0.5) beats "▁" + "a" (-3) */
        CHECK(ids_are(v, "A", false, false, (int32_t[]){5}, 1), "charsmap A -> a");
        CHECK(ids_are(v, "A b", false, false, (int32_t[]){5, 3, 6}, 3), "A b");
        CHECK(ids_are(v, "a b", true, false, (int32_t[]){5, 3, 6, 1}, 4), "a b with EOS (t5 default)");
        /* no token for 'z': one unknown token for the run of them */
        CHECK(ids_are(v, "zzz", false, false, (int32_t[]){3, 2}, 2), "unknown run");
        CHECK(ids_are(v, "bzz\xc3\xa9" "b", false, false, (int32_t[]){3, 6, 2, 6}, 4), "unknown run between tokens");
        al_vocab_free(v);
    }
    snprintf(path, sizeof(path), "%s/gemma4-good.gguf", g_tmp);
    write_vocab(path, GOOD, true);
    v = NULL;
    CHECK(al_vocab_load(path, &v, &err) == AL_OK, "good gemma4 vocab refused: %s", err.msg);
    unlink(path);
    if (v) {
        CHECK(ids_are(v, " a b", false, false, (int32_t[]){5, 3, 6}, 3), "gemma4 merge ▁ a");
        al_vocab_free(v);
    }

    static const struct {
        bad b;
        bool gemma;
        const char *name, *key, *problem;
    } k[] = {
        {CM_SHORT, false, "charsmap-short", "precompiled_charsmap", "truncated"},
        {CM_SIZE_PAST_END, false, "charsmap-size-past-end", "precompiled_charsmap", "truncated"},
        {CM_SIZE_ODD, false, "charsmap-size-odd", "precompiled_charsmap", "multiple of 4"},
        {CM_OFFSET_OUT, false, "charsmap-offset-outside", "precompiled_charsmap", "outside"},
        {CM_UNTERMINATED, false, "charsmap-unterminated", "precompiled_charsmap", "NUL"},
        {CM_NOT_BYTES, false, "charsmap-not-bytes", "precompiled_charsmap", "array of bytes"},
        {EMPTY_VOCAB, false, "empty-vocab", "tokenizer.ggml.tokens", "0 entries"},
        {SCORES_STRINGS, false, "scores-strings", "tokenizer.ggml.scores", "number|float32"},
        {SCORES_SHORT, false, "scores-short", "tokenizer.ggml.scores", "array of 7|3 entries"},
        {GEMMA_NO_MERGES, true, "gemma4-no-merges", "tokenizer.ggml.merges", "missing"},
    };
    for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s.gguf", g_tmp, k[i].name);
        write_vocab(path, k[i].b, k[i].gemma);
        v = (al_vocab *)1;
        memset(&err, 0, sizeof(err));
        al_status st = al_vocab_load(path, &v, &err);
        printf("  %-26s %s\n", k[i].name, err.msg);
        CHECK(st != AL_OK && v == NULL, "%s: accepted", k[i].name);
        CHECK(strstr(err.msg, path) && strstr(err.msg, k[i].key) && has_any(err.msg, k[i].problem),
              "%s: the message should name %s, %s and '%s': %s", k[i].name, path, k[i].key, k[i].problem, err.msg);
        char args[256], buf[4096];
        snprintf(args, sizeof(args), "tokenize '%s'", path);
        int rc = run_cli(args, "A b", buf, sizeof(buf));
        CHECK(rc == 1 && strstr(buf, path) && strstr(buf, k[i].key), "%s: airlock tokenize: %d '%s'", k[i].name, rc,
              buf);
        unlink(path);
    }
}

/* The real charsmap of nomic-bert-moe on the small vocab, then mutated at
 * random (trie units, string bytes, the size field): each mutant is either
 * refused with a message naming the charsmap or tokenizes text with ids in
 * range (under ASan: without reading outside it). */
static void test_charsmap_mutations(void)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/vocab/ggml-vocab-nomic-bert-moe.gguf", g_shared);
    al_gguf *g = NULL;
    al_error err = {0};
    if (al_gguf_open(path, NULL, &g, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    const al_gguf_kv *kv = al_gguf_find(g, "tokenizer.ggml.precompiled_charsmap");
    CHECK(kv && kv->type == AL_GGUF_ARR && kv->arr_type == AL_GGUF_U8 && kv->arr_n > 4, "nomic charsmap");
    if (!kv || kv->arr_n <= 4) {
        al_gguf_close(g);
        return;
    }
    size_t n = (size_t)kv->arr_n;
    uint8_t *cm = malloc(n);
    uint32_t trie_bytes;
    memcpy(&trie_bytes, kv->data, 4);
    char vp[128];
    snprintf(vp, sizeof(vp), "%s/t5-mutant.gguf", g_tmp);
    static const char text[] = "\xef\xbc\xa1 A b\xe2\x80\x83\xe2\x91\xa0 \xc2\xbd a\t\xef\xac\x81\xcc\x81 z";
    uint64_t x = 0x243F6A8885A308D3ull;
    int refused = 0, loaded = 0;
    for (int r = 0; r < 41; r++) {
        memcpy(cm, kv->data, n);
        if (r > 0) {
            for (int k = 0; k < 1 + r % 5; k++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                size_t at = (r % 4 == 0) ? (size_t)(x >> 40) % 4 : r % 4 == 1 ? 4 + (size_t)(x >> 40) % trie_bytes
                                                                               : (size_t)(x >> 40) % n;
                cm[at] ^= (uint8_t)(1u << (x >> 61));
            }
        }
        g_cm = cm, g_cm_n = n;
        write_vocab(vp, GOOD, false);
        g_cm = NULL;
        al_vocab *v = NULL;
        memset(&err, 0, sizeof(err));
        if (al_vocab_load(vp, &v, &err)) {
            CHECK(r > 0 && strstr(err.msg, "precompiled_charsmap"), "mutant %d: %s", r, err.msg);
            refused++;
            continue;
        }
        loaded++;
        size_t nt = 0;
        int32_t *t = tokenize(v, text, sizeof(text) - 1, true, true, &nt);
        CHECK(t && nt > 0, "mutant %d does not tokenize", r);
        for (size_t i = 0; t && i < nt; i++)
            CHECK(t[i] >= 0 && t[i] < 7, "mutant %d: id %d", r, t[i]);
        if (r == 0) { /* the real map (NFKC): fullwidth A -> A, EM SPACE -> ' ', circled 1 -> 1, tab -> ' ' */
            static const int32_t want[] = {3, 2, 3, 2, 3, 6, 3, 2, 3, 2, 5, 3, 2, 3, 2, 1};
            bool ok = t && nt == 16 && !memcmp(t, want, sizeof(want));
            CHECK(ok, "the real charsmap on the small vocab");
            for (size_t i = 0; !ok && t && i < nt; i++)
                fprintf(stderr, " %d", t[i]);
        }
        free(t);
        al_vocab_free(v);
    }
    printf("charsmap mutants   %d loaded, %d refused\n", loaded, refused);
    unlink(vp);
    free(cm);
    al_gguf_close(g);
}

int main(void)
{
    const char *sh = getenv("AIRLOCK_SHARED");
    snprintf(g_shared, sizeof(g_shared), "%s", sh && *sh ? sh : "../shared");
    char probe[4096];
    snprintf(probe, sizeof(probe), "%s/vocab/ggml-vocab-nomic-bert-moe.gguf", g_shared);
    if (access(probe, R_OK)) {
        printf("SKIP: %s is absent\n", probe);
        return 77;
    }
    snprintf(g_tmp, sizeof(g_tmp), "/tmp/al_models_test_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_vectors("nomic-bert-moe", "pre/strings-A.inp", "pre/ggml-vocab-nomic-bert-moe.A.out", false);
    test_vectors("gemma-4", "pre/strings-A.inp", "pre/ggml-vocab-gemma-4.A.out", true);
    test_vectors("gemma-4", "ggml-vocab-gemma-4.gguf.inp", "ggml-vocab-gemma-4.gguf.out", true);
    test_specials();
    test_random();
    test_small_vocab();
    test_charsmap_mutations();
    char f[128];
    snprintf(f, sizeof(f), "%s/stdin.txt", g_tmp);
    unlink(f);
    rmdir(g_tmp);
    printf("%d checks, %d failed\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
