/*
 * tokenizer_test.c - the tokenizers against real vocabularies and vectors.
 *
 *  - every string of ../shared/vocab/<name>.gguf.inp tokenizes (no BOS/EOS,
 *    special tokens not parsed) to the ids of the same line of .out;
 *  - decode(encode(s)) == s (SentencePiece: " " + s, the space prefix it
 *    adds), through al_token_to_piece and through the streaming detok fed
 *    one token at a time, whose every chunk must be valid UTF-8;
 *  - the `tokens` of the ../shared/ref JSON files (add_special, on the real models);
 *  - special tokens, end-of-generation (gpt-oss's <|end|> rule on a small
 *    vocab written here), byte fallback split across tokens,
 *    the output-size contract, errors on bad files.
 * Prints a throughput figure (no timing assertion).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "airlock.h"
#include "tokenizer/vocab.h"
#include "tokenizer/tok_common.h"

static char g_shared[4096];

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

/* Decodes with al_token_to_piece into a malloc'd buffer. */
static char *decode(const al_vocab *v, const int32_t *t, size_t n, size_t *len)
{
    size_t cap = 64, o = 0;
    char *b = malloc(cap);
    for (size_t i = 0; i < n; i++) {
        int32_t k = al_token_to_piece(v, t[i], NULL, 0, false);
        CHECK(k >= 0, "piece of %d", t[i]);
        if (k < 0)
            continue;
        if (o + (size_t)k > cap) {
            while (o + (size_t)k > cap)
                cap *= 2;
            b = realloc(b, cap);
        }
        int32_t k2 = al_token_to_piece(v, t[i], b + o, (size_t)k, false);
        CHECK(k2 == k, "piece length changed");
        o += (size_t)k;
    }
    *len = o;
    return b;
}

/* Streams t through al_detok; checks each chunk; returns the concatenation. */
static char *stream(const al_vocab *v, const int32_t *t, size_t n, size_t *len)
{
    al_detok *d = al_detok_new(v, false);
    size_t cap = 64, o = 0;
    char *b = malloc(cap);
    for (size_t i = 0; i <= n; i++) {
        size_t k;
        const char *p = i < n ? al_detok_push(d, t[i], &k) : al_detok_flush(d, &k);
        CHECK(valid_utf8((const unsigned char *)p, k), "detok emitted invalid UTF-8 after token %zu", i);
        if (o + k > cap) {
            while (o + k > cap)
                cap *= 2;
            b = realloc(b, cap);
        }
        memcpy(b + o, p, k);
        o += k;
    }
    al_detok_free(d);
    *len = o;
    return b;
}

static void test_vocab_file(const char *name)
{
    char path[8192], p2[8300];
    snprintf(path, sizeof(path), "%s/vocab/ggml-vocab-%s.gguf", g_shared, name);
    al_vocab *v = NULL;
    al_error err = {0};
    al_status st = al_vocab_load(path, &v, &err);
    CHECK(st == AL_OK, "%s: %s", path, err.msg);
    if (st)
        return;
    size_t n_inp, n_out;
    snprintf(p2, sizeof(p2), "%s.inp", path);
    char *inp = read_all(p2, &n_inp);
    snprintf(p2, sizeof(p2), "%s.out", path);
    char *out = read_all(p2, &n_out);
    CHECK(inp && out, "%s: cannot read .inp/.out", name);
    if (!inp || !out) {
        free(inp);
        free(out);
        al_vocab_free(v);
        return;
    }
    /* The strings are separated by "\n__ggml_vocab_test__\n" and the file ends
     * with one: the piece after the last separator is empty and is no test.
     * Every string has one line in .out (which ends with a newline). */
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t n_lines = 0;
    for (size_t i = 0; i < n_out; i++)
        n_lines += out[i] == '\n';
    CHECK(n_out && out[n_out - 1] == '\n', "%s.out does not end with a newline", name);
    size_t n_strings = 0, n_match = 0, n_round = 0;
    char *s = inp, *out_line = out;
    bool spm = al_vocab_type_of(v) == AL_VOCAB_SPM, wpm = al_vocab_type_of(v) == AL_VOCAB_WPM;
    for (;;) {
        char *e = memmem(s, (size_t)(inp + n_inp - s), sep, sizeof(sep) - 1);
        if (!e) {
            CHECK(s == inp + n_inp, "%s.inp: text after the last separator", name);
            break;
        }
        size_t len = (size_t)(e - s);
        char *nl = strchr(out_line, '\n');
        CHECK(nl != NULL, "%s: .out has fewer lines than .inp has strings", name);
        if (!nl)
            break;
        /* expected ids */
        int32_t want[1024];
        size_t n_want = 0;
        for (char *q = out_line; q < nl && n_want < 1024;) {
            char *end;
            long x = strtol(q, &end, 10);
            if (end == q)
                break;
            want[n_want++] = (int32_t)x;
            q = end;
        }
        size_t n_got = 0;
        int32_t *got = tokenize(v, s, len, false, false, &n_got);
        bool same = got && n_got == n_want && !memcmp(got, want, n_got * sizeof(int32_t));
        CHECK(same, "%s: string %zu '%.*s': %zu ids, expected %zu", name, n_strings, (int)(len > 40 ? 40 : len),
              s, n_got, n_want);
        n_match += same;
        if (got && !wpm) {
            /* round trip through the pieces and through the stream */
            size_t dl, sl;
            char *dec = decode(v, got, n_got, &dl);
            char *str = stream(v, got, n_got, &sl);
            size_t pre = spm && al_vocab_add_space_prefix(v) && len ? 1 : 0;
            bool ok = dl == len + pre && (!pre || dec[0] == ' ') && !memcmp(dec + pre, s, len);
            CHECK(ok, "%s: decode(encode(string %zu)) differs", name, n_strings);
            CHECK(sl == dl && !memcmp(str, dec, dl), "%s: streamed detok of string %zu differs", name, n_strings);
            n_round += ok;
            free(dec);
            free(str);
        } else if (got) {
            size_t sl;
            free(stream(v, got, n_got, &sl)); /* WordPiece is lossy: only UTF-8 validity */
        }
        free(got);
        n_strings++;
        out_line = nl + 1;
        s = e + sizeof(sep) - 1;
    }
    CHECK(n_strings == n_lines, "%s: %zu strings but %zu .out lines", name, n_strings, n_lines);
    CHECK(n_strings > 0, "%s: no strings", name);
    printf("%-16s %zu/%zu vectors match, %zu round trips\n", name, n_match, n_strings, n_round);
    free(inp);
    free(out);
    al_vocab_free(v);
}

static void test_ref(const char *model)
{
    char path[8192];
    snprintf(path, sizeof(path), "%s/models/%s.gguf", g_shared, model);
    al_vocab *v = NULL;
    al_error err = {0};
    al_status st = al_vocab_load(path, &v, &err);
    CHECK(st == AL_OK, "%s: %s", path, err.msg);
    if (st)
        return;
    for (int p = 1; p <= 3; p++) {
        snprintf(path, sizeof(path), "%s/ref/%s.p%d.json", g_shared, model, p);
        json_error_t je;
        json_t *j = json_load_file(path, 0, &je);
        CHECK(j != NULL, "%s: %s", path, je.text);
        if (!j)
            continue;
        const char *prompt = json_string_value(json_object_get(j, "prompt"));
        json_t *toks = json_object_get(j, "tokens");
        CHECK(prompt && json_is_array(toks), "%s: no prompt/tokens", path);
        if (prompt && json_is_array(toks)) {
            size_t n = 0;
            int32_t *got = tokenize(v, prompt, strlen(prompt), true, false, &n);
            bool same = got && n == json_array_size(toks);
            for (size_t i = 0; same && i < n; i++)
                same = got[i] == (int32_t)json_integer_value(json_array_get(toks, i));
            CHECK(same, "%s: tokens differ (%zu vs %zu)", path, n, json_array_size(toks));
            free(got);
        }
        json_decref(j);
    }
    printf("ref %-22s ok\n", model);
    al_vocab_free(v);
}

static al_vocab *load(const char *name)
{
    char path[8192];
    snprintf(path, sizeof(path), "%s/vocab/ggml-vocab-%s.gguf", g_shared, name);
    al_vocab *v = NULL;
    al_error err = {0};
    if (al_vocab_load(path, &v, &err))
        fprintf(stderr, "%s: %s\n", path, err.msg);
    return v;
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

/* A vocab-only GGUF of a gpt-oss (harmony) style byte-level BPE vocab:
 * "h", "i", then the given special tokens (type control), pre gpt-4o, no
 * merges, EOS = the first special. Returns false if it cannot be written. */
static bool write_harmony(const char *path, const char *const *specials, int n_special)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    uint32_t nt = 2 + (uint32_t)n_special;
    uint64_t hdr[2] = {0, 6}; /* tensors, keys */
    fwrite("GGUF\3\0\0\0", 1, 8, f);
    fwrite(hdr, 8, 2, f);
#define W_STR(s) (fwrite(&(uint64_t){strlen(s)}, 8, 1, f), fwrite(s, 1, strlen(s), f))
#define W_U32(x) fwrite(&(uint32_t){x}, 4, 1, f)
#define W_U64(x) fwrite(&(uint64_t){x}, 8, 1, f)
    W_STR("tokenizer.ggml.model"), W_U32(8), W_STR("gpt2");
    W_STR("tokenizer.ggml.pre"), W_U32(8), W_STR("gpt-4o");
    W_STR("tokenizer.ggml.tokens"), W_U32(9), W_U32(8), W_U64(nt), W_STR("h"), W_STR("i");
    for (int i = 0; i < n_special; i++)
        W_STR(specials[i]);
    W_STR("tokenizer.ggml.token_type"), W_U32(9), W_U32(5), W_U64(nt), W_U32(1), W_U32(1);
    for (int i = 0; i < n_special; i++)
        W_U32(3);
    W_STR("tokenizer.ggml.merges"), W_U32(9), W_U32(8), W_U64(0);
    W_STR("tokenizer.ggml.eos_token_id"), W_U32(4), W_U32(2);
#undef W_STR
#undef W_U32
#undef W_U64
    return fclose(f) == 0;
}

/* gpt-oss: <|return|> and <|call|> end the generation; with both, <|end|>
 * (the end of one message, e.g. the analysis) does not, and it becomes a
 * user-defined token: parsed and rendered like text. The same with
 * <|calls|> and <|flush|>; a vocab with <|end|> alone keeps it as EOG. */
static void test_harmony_eog(void)
{
    char dir[] = "/tmp/airlock-harmony-XXXXXX", path[128];
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    snprintf(path, sizeof(path), "%s/vocab.gguf", dir);
    static const char *const oss[] = {"<|return|>", "<|call|>", "<|end|>", "<|start|>", "<|channel|>",
                                      "<|message|>", "<|endoftext|>"};
    static const char *const no_call[] = {"<|return|>", "<|end|>", "<|start|>"};
    static const char *const calls_flush[] = {"<|calls|>", "<|flush|>", "<|end|>"};
    struct {
        const char *name;
        const char *const *sp;
        int n;
        bool end_eog;
    } cases[] = {{"gpt-oss", oss, 7, false}, {"without <|call|>", no_call, 3, true},
                 {"<|calls|> <|flush|>", calls_flush, 3, false}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        al_vocab *v = NULL;
        al_error err = {0};
        CHECK(write_harmony(path, cases[c].sp, cases[c].n), "cannot write %s", path);
        CHECK(al_vocab_load(path, &v, &err) == AL_OK, "%s: %s", cases[c].name, err.msg);
        unlink(path);
        if (!v)
            continue;
        int32_t end = -1;
        for (int i = 0; i < cases[c].n; i++) {
            int32_t id = 2 + i;
            if (!strcmp(cases[c].sp[i], "<|end|>")) {
                end = id;
                continue;
            }
            if (strcmp(cases[c].sp[i], "<|start|>") && strcmp(cases[c].sp[i], "<|channel|>") &&
                strcmp(cases[c].sp[i], "<|message|>"))
                CHECK(al_vocab_is_eog(v, id), "%s: %s is not end of generation", cases[c].name, cases[c].sp[i]);
            else
                CHECK(!al_vocab_is_eog(v, id), "%s: %s ends the generation", cases[c].name, cases[c].sp[i]);
        }
        CHECK(al_vocab_is_eog(v, end) == cases[c].end_eog, "%s: <|end|> %s end of generation", cases[c].name,
              cases[c].end_eog ? "is not" : "is");
        CHECK(!al_vocab_is_eog(v, 0) && !al_vocab_is_eog(v, 1), "%s: text tokens end the generation", cases[c].name);
        /* a user-defined <|end|> is found in text without parse_special and rendered without render_special;
         * as EOG (control) it is neither */
        char piece[16];
        int32_t n = al_token_to_piece(v, end, piece, sizeof(piece), false);
        if (!cases[c].end_eog) {
            CHECK(ids_are(v, "hi<|end|>h", false, false, (int32_t[]){0, 1, end, 0}, 4), "%s: <|end|> in text",
                  cases[c].name);
            CHECK(n == 7 && !memcmp(piece, "<|end|>", 7), "%s: <|end|> not rendered (%d bytes)", cases[c].name, n);
        } else {
            CHECK(n == 0, "%s: control <|end|> rendered without render_special (%d bytes)", cases[c].name, n);
        }
        al_vocab_free(v);
    }
    rmdir(dir);
}

static void test_special(void)
{
    al_vocab *q = load("qwen2"), *l3 = load("llama-bpe"), *spm = load("llama-spm"), *bert = load("bert-bge"),
             *phi = load("phi-3");
    CHECK(q && l3 && spm && bert && phi, "loading vocabularies");
    if (!(q && l3 && spm && bert && phi))
        goto out;

    /* ids and flags */
    CHECK(al_vocab_n_tokens(q) == 151936, "qwen2 n_tokens");
    CHECK(al_vocab_bos(spm) == 1 && al_vocab_eos(spm) == 2, "spm bos/eos");
    CHECK(al_vocab_eot(l3) == 128009, "llama3 eot <|eot_id|>: %d", al_vocab_eot(l3));
    CHECK(al_vocab_is_eog(l3, 128009) && al_vocab_is_eog(l3, 128001) && !al_vocab_is_eog(l3, 9906), "llama3 eog");
    CHECK(al_vocab_is_eog(q, 151645) && al_vocab_is_eog(q, 151643) && !al_vocab_is_eog(q, 151644), "qwen2 eog");
    CHECK(al_vocab_is_eog(phi, 32007) && al_vocab_is_eog(phi, 32000), "phi-3 eog <|end|> <|endoftext|>");
    CHECK(al_vocab_is_control(q, 151644) && !al_vocab_is_control(q, 872), "qwen2 control");
    CHECK(!al_vocab_is_eog(q, -1) && !al_vocab_is_eog(q, 1 << 30), "eog of invalid ids");
    CHECK(al_vocab_add_bos_default(spm) && al_vocab_add_bos_default(l3) && !al_vocab_add_bos_default(q),
          "add_bos defaults");

    /* parse_special: control tokens become their ids, the text between is tokenized */
    CHECK(ids_are(q, "<|im_start|>user\nhi<|im_end|>", false, true, (int32_t[]){151644, 872, 198, 6023, 151645}, 5),
          "qwen2 chatml with parse_special");
    CHECK(ids_are(q, "<|im_start|>user", false, false, (int32_t[]){27, 91, 318, 4906, 91, 29, 872}, 7),
          "qwen2 special text without parse_special");
    CHECK(ids_are(l3, "<|begin_of_text|>Hi<|eot_id|>", true, true, (int32_t[]){128000, 128000, 13347, 128009}, 4),
          "llama3 add_special + parse_special");
    /* SentencePiece: a space prefix after a special token too */
    CHECK(ids_are(spm, "<s>Hello</s>", false, true, (int32_t[]){1, 15043, 2}, 3), "spm special tokens");
    CHECK(ids_are(spm, "Hello", true, false, (int32_t[]){1, 15043}, 2), "spm add_special");
    CHECK(ids_are(bert, "Hello world", true, false, (int32_t[]){101, 7592, 2088, 102}, 4), "bert [CLS] [SEP]");
    CHECK(ids_are(bert, "héllo", false, false, (int32_t[]){7592}, 1), "bert strips accents");
    /* phi-3 strips spaces after its special tokens */
    CHECK(ids_are(phi, "<|user|>  Hi", false, true, (int32_t[]){32010, 6324}, 2), "phi-3 rstrip");

    /* the output-size contract */
    {
        int32_t small[2];
        size_t n = 0;
        al_error err = {0};
        al_status st = al_tokenize(spm, "Hello world, again", 18, false, false, small, 2, &n, &err);
        CHECK(st == AL_ERR_LIMIT && n > 2, "short buffer: status %d, need %zu", st, n);
        st = al_tokenize(spm, "", 0, false, false, NULL, 0, &n, &err);
        CHECK(st == AL_OK && n == 0, "empty text: %d %zu", st, n);
        st = al_tokenize(spm, "", 0, true, false, small, 2, &n, &err);
        CHECK(st == AL_OK && n == 1 && small[0] == 1, "empty text with BOS");
    }

    /* pieces */
    {
        char buf[64];
        CHECK(al_token_to_piece(spm, 15043, buf, sizeof(buf), false) == 6 && !memcmp(buf, " Hello", 6),
              "spm piece ▁Hello");
        CHECK(al_token_to_piece(spm, 1, buf, sizeof(buf), false) == 0, "control hidden");
        CHECK(al_token_to_piece(spm, 1, buf, sizeof(buf), true) == 3 && !memcmp(buf, "<s>", 3), "control shown");
        CHECK(al_token_to_piece(spm, 3 + 0x41, buf, sizeof(buf), false) == 1 && buf[0] == 'A', "byte token");
        CHECK(al_token_to_piece(q, 198, buf, sizeof(buf), false) == 1 && buf[0] == '\n', "bpe piece Ċ");
        CHECK(al_token_to_piece(q, 1917, buf, sizeof(buf), false) > 0 && buf[0] == ' ', "bpe piece Ġ");
        CHECK(al_token_to_piece(q, -1, buf, sizeof(buf), false) == -1, "invalid id");
        CHECK(al_token_to_piece(q, 151936, buf, sizeof(buf), false) == -1, "invalid id");
        CHECK(al_token_to_piece(spm, 15043, buf, 2, false) == 6, "short buffer gives the full length");
    }

    /* the stream holds back a character split over byte tokens (🌍 = F0 9F 8C 8D) */
    {
        al_detok *d = al_detok_new(spm, false);
        const int32_t bytes[4] = {3 + 0xF0, 3 + 0x9F, 3 + 0x8C, 3 + 0x8D};
        size_t n;
        for (int i = 0; i < 3; i++) {
            al_detok_push(d, bytes[i], &n);
            CHECK(n == 0, "byte %d emitted %zu bytes early", i, n);
        }
        const char *p = al_detok_push(d, bytes[3], &n);
        CHECK(n == 4 && !memcmp(p, "\xf0\x9f\x8c\x8d", 4), "whole character after the 4th byte");
        /* a broken sequence: F0 9F then 'A' -> U+FFFD U+FFFD? then A */
        al_detok_push(d, bytes[0], &n);
        al_detok_push(d, bytes[1], &n);
        p = al_detok_push(d, 3 + 'A', &n);
        CHECK(valid_utf8((const unsigned char *)p, n) && n >= 4 && p[n - 1] == 'A', "broken sequence replaced");
        al_detok_push(d, bytes[0], &n);
        p = al_detok_flush(d, &n);
        CHECK(n == 3 && !memcmp(p, "\xef\xbf\xbd", 3), "flush of a held byte gives U+FFFD");
        p = al_detok_flush(d, &n);
        CHECK(n == 0, "second flush is empty");
        al_detok_free(d);
        al_detok_free(NULL);
    }
    /* BPE: an emoji split in byte-level tokens, fed one by one */
    {
        const char *s = "\xf0\x9f\xa6\x99\xf0\x9f\xa6\x99 caf\xc3\xa9 \xe6\x88\x91";
        size_t n = 0, sl;
        int32_t *t = tokenize(q, s, strlen(s), false, false, &n);
        char *str = stream(q, t, n, &sl);
        CHECK(sl == strlen(s) && !memcmp(str, s, sl), "bpe stream round trip");
        free(str);
        free(t);
    }
    /* invalid UTF-8 input: tokenizes, and decodes to valid UTF-8 */
    {
        const char bad[] = "ok \xff\xfe \xc3 end";
        size_t n = 0, sl;
        int32_t *t = tokenize(q, bad, sizeof(bad) - 1, false, false, &n);
        CHECK(t && n > 0, "invalid UTF-8 tokenizes");
        char *str = stream(q, t, n, &sl);
        free(str);
        free(t);
        t = tokenize(spm, bad, sizeof(bad) - 1, false, false, &n);
        CHECK(t && n > 0, "invalid UTF-8 tokenizes (spm)");
        str = stream(spm, t, n, &sl);
        free(str);
        free(t);
        t = tokenize(bert, bad, sizeof(bad) - 1, false, false, &n);
        CHECK(t && n > 0, "invalid UTF-8 tokenizes (bert)");
        free(t);
    }
out:
    al_vocab_free(q);
    al_vocab_free(l3);
    al_vocab_free(spm);
    al_vocab_free(bert);
    al_vocab_free(phi);
    al_vocab_free(NULL);
}

static void test_errors(void)
{
    al_vocab *v = (al_vocab *)1;
    al_error err = {0};
    al_status st = al_vocab_load("/nonexistent/x.gguf", &v, &err);
    CHECK(st != AL_OK && v == NULL && strstr(err.msg, "/nonexistent/x.gguf"), "missing file: %d '%s'", st, err.msg);

    /* a valid GGUF without tokenizer metadata */
    char tmp[] = "/tmp/al_tok_test_XXXXXX";
    int fd = mkstemp(tmp);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0)
        return;
    unsigned char hdr[24] = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
    CHECK(write(fd, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr), "write");
    close(fd);
    st = al_vocab_load(tmp, &v, &err);
    CHECK(st != AL_OK && v == NULL && strstr(err.msg, tmp), "no tokenizer: %d '%s'", st, err.msg);
    unlink(tmp);
}

/* Random bytes (fixed seed): every tokenizer succeeds, every id is valid,
 * and the stream of their pieces is valid UTF-8. */
static void test_random(void)
{
    const char *names[] = {"llama-spm", "qwen2", "llama-bpe", "gpt-2", "deepseek-coder", "bert-bge"};
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        al_vocab *v = load(names[k]);
        CHECK(v != NULL, "load %s", names[k]);
        if (!v)
            continue;
        int bad = 0;
        for (int r = 0; r < 200; r++) {
            char buf[96];
            size_t n = 0, len = (size_t)(r % 96);
            for (size_t i = 0; i < len; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                /* mostly ASCII and multi-byte lead/continuation bytes, some '<' '|' for specials */
                unsigned c = (unsigned)(x >> 56);
                buf[i] = c < 64 ? (char)(' ' + (c & 63)) : c < 96 ? "<|>s/ \n\t"[c & 7] : (char)c;
            }
            int32_t *t = tokenize(v, buf, len, r & 1, r & 2, &n);
            if (!t) {
                bad++;
                continue;
            }
            for (size_t i = 0; i < n; i++)
                if (t[i] < 0 || t[i] >= al_vocab_n_tokens(v))
                    bad++;
            size_t sl;
            free(stream(v, t, n, &sl));
            free(t);
        }
        CHECK(bad == 0, "%s: %d failures on random input", names[k], bad);
        al_vocab_free(v);
    }
    printf("random input       ok\n");
}

static void bench(void)
{
    const char *names[] = {"llama-spm", "llama-bpe", "qwen2", "bert-bge"};
    /* ~200 KB of mixed text from the vector file */
    char path[8192];
    snprintf(path, sizeof(path), "%s/vocab/ggml-vocab-llama-spm.gguf.inp", g_shared);
    size_t n_inp;
    char *inp = read_all(path, &n_inp);
    if (!inp)
        return;
    size_t reps = 200000 / n_inp + 1, n = reps * n_inp;
    char *text = malloc(n);
    for (size_t i = 0; i < reps; i++)
        memcpy(text + i * n_inp, inp, n_inp);
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        al_vocab *v = load(names[k]);
        if (!v)
            continue;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        size_t nt = 0;
        int32_t *t = tokenize(v, text, n, false, false, &nt);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
        printf("bench %-10s %zu bytes -> %zu tokens in %.3f s (%.2f MB/s)\n", names[k], n, nt, s,
               (double)n / s / 1e6);
        free(t);
        al_vocab_free(v);
    }
    free(text);
    free(inp);
}

int main(void)
{
    const char *sh = getenv("AIRLOCK_SHARED");
    snprintf(g_shared, sizeof(g_shared), "%s", sh && *sh ? sh : "../shared");
    char probe[8192];
    snprintf(probe, sizeof(probe), "%s/vocab", g_shared);
    if (access(probe, R_OK)) {
        printf("SKIP: %s is absent\n", probe);
        return 77;
    }
    const char *files[] = {"llama-spm", "phi-3", "llama-bpe", "qwen2", "gpt-2", "deepseek-coder", "bert-bge"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        test_vocab_file(files[i]);
    const char *models[] = {"stories260K", "tiny-llama-q8_0", "tiny-qwen2-q4_k_m", "tiny-qwen3-q8_0"};
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
        test_ref(models[i]);
    test_special();
    test_harmony_eog();
    test_errors();
    test_random();
    bench();
    printf("%d checks, %d failed\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
