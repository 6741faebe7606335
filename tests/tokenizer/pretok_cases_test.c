/*
 * pretok_cases_test.c - every tokenizer.ggml.pre name of the reference
 * runtime, on the hard strings of ../shared/vocab/pre/strings-A.inp.
 *
 * For each entry of cases.json, the vocab is written once into a temporary
 * folder by ../shared/tools/setpre.py (one python3 process for all of
 * them), loaded, and every string is tokenized (no BOS/EOS, specials not
 * parsed) and compared with its line of NAME.A.out, exactly. The files of
 * real-cases.json are checked unchanged. Then a few properties every name
 * must keep: decode(encode(s)) == s through al_token_to_piece and through
 * the streaming detokenizer (byte-level vocabularies), special tokens
 * parsed with parse_special, BOS/SEP defaults the name implies.
 *
 * Every tokenizer model of the cases (gpt2, llama, bert, t5, gemma4) is
 * supported: a case refused by model name fails. Exit 77 when the shared
 * data or python3 is missing.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "airlock.h"
#include "tokenizer/tok_impl.h" /* tok_byte_to_cp */
#include "tokenizer/vocab.h"
#include "tokenizer/tok_common.h"

/* The records of an .inp file: each ends with "\n__ggml_vocab_test__\n". */
typedef struct record {
    const char *s;
    size_t n;
} record;

static size_t split_records(char *buf, size_t n, record *out, size_t max)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t k = 0, pos = 0;
    while (pos < n && k < max) {
        char *m = memmem(buf + pos, n - pos, sep, sizeof(sep) - 1);
        if (!m)
            break;
        out[k++] = (record){buf + pos, (size_t)(m - buf) - pos};
        pos = (size_t)(m - buf) + sizeof(sep) - 1;
    }
    return k;
}

static int32_t *tokenize(const al_vocab *v, const char *s, size_t n, bool add, bool special, size_t *n_tok)
{
    al_error err = {0};
    size_t need = 0;
    al_status st = al_tokenize(v, s, n, add, special, NULL, 0, &need, &err);
    if (st != AL_OK && st != AL_ERR_LIMIT) {
        fprintf(stderr, "tokenize failed: %s\n", err.msg);
        *n_tok = 0;
        return NULL;
    }
    int32_t *t = malloc((need + 1) * sizeof(int32_t));
    st = al_tokenize(v, s, n, add, special, t, need, n_tok, &err);
    CHECK(st == AL_OK && *n_tok == need, "second al_tokenize: %d %zu != %zu", st, *n_tok, need);
    return t;
}

/* The ids of one .out line ("" for an empty line). */
static size_t parse_ids(const char *line, int32_t *out, size_t max)
{
    size_t k = 0;
    const char *p = line;
    while (*p && *p != '\n' && k < max) {
        char *e;
        long x = strtol(p, &e, 10);
        if (e == p)
            break;
        out[k++] = (int32_t)x;
        p = e;
    }
    return k;
}

/* decode(encode(s)) through the pieces and through the streaming
 * detokenizer; for byte-level vocabularies it must give s back. */
static void check_roundtrip(const al_vocab *v, const char *name, const record *r, const int32_t *t, size_t nt,
                            bool raw)
{
    size_t cap = r->n * 4 + 64, o = 0;
    char *b = malloc(cap);
    al_detok *d = al_detok_new(v, false);
    char *sb = malloc(cap);
    size_t so = 0;
    for (size_t i = 0; i < nt; i++) {
        int32_t k = al_token_to_piece(v, t[i], NULL, 0, false);
        if (k < 0 || o + (size_t)k > cap)
            break;
        al_token_to_piece(v, t[i], b + o, (size_t)k, false);
        o += (size_t)k;
        size_t n;
        const char *c = al_detok_push(d, t[i], &n);
        if (so + n <= cap) {
            memcpy(sb + so, c, n);
            so += n;
        }
    }
    size_t n;
    const char *c = al_detok_flush(d, &n);
    if (so + n <= cap) {
        memcpy(sb + so, c, n);
        so += n;
    }
    /* a byte whose byte-level character is not a token is lost (as in the reference) */
    bool all_bytes = true;
    for (size_t i = 0; i < r->n && all_bytes; i++) {
        char u[8];
        size_t ul = raw ? (size_t)snprintf(u, sizeof(u), "<0x%02X>", (unsigned char)r->s[i])
                        : al_utf8_encode(tok_byte_to_cp((uint8_t)r->s[i]), u);
        all_bytes = al_vocab_find(v, u, ul) >= 0;
    }
    if (all_bytes)
        CHECK(o == r->n && !memcmp(b, r->s, o), "%s: pieces do not give the text back (%zu vs %zu bytes): %.40s", name, o, r->n, r->s);
    /* the stream repairs invalid UTF-8: compare only valid texts */
    bool ascii_or_valid = true;
    for (size_t i = 0; i < r->n; i++)
        if ((unsigned char)r->s[i] >= 0xF5 || (unsigned char)r->s[i] == 0xC0 || (unsigned char)r->s[i] == 0xC1)
            ascii_or_valid = false;
    if (ascii_or_valid && o == r->n && !memcmp(b, r->s, o))
        CHECK(so == o && !memcmp(sb, b, so), "%s: stream differs from pieces", name);
    al_detok_free(d);
    free(b);
    free(sb);
}

typedef struct stats {
    int cases, passed, lines_bad;
} stats;

/* Checks one vocab file against an .out file. */
static void check_case(const char *gguf, const char *outfile, const char *name, bool byte_level, bool raw, record *rec,
                       size_t n_rec, size_t lines, stats *s)
{
    s->cases++;
    al_vocab *v = NULL;
    al_error err = {0};
    al_status st = al_vocab_load(gguf, &v, &err);
    CHECK(st == AL_OK, "%s: load: %s", name, err.msg);
    if (st)
        return;
    size_t n_out = 0;
    char *out = read_all(outfile, &n_out);
    CHECK(out != NULL, "%s: cannot read %s", name, outfile);
    if (!out) {
        al_vocab_free(v);
        return;
    }
    CHECK(lines == n_rec, "%s: %zu lines expected, %zu strings", name, lines, n_rec);
    int bad = 0;
    char *line = out;
    static int32_t want[65536];
    for (size_t i = 0; i < n_rec && line; i++) {
        size_t nw = parse_ids(line, want, 65536);
        size_t nt = 0;
        int32_t *t = tokenize(v, rec[i].s, rec[i].n, false, false, &nt);
        bool same = t && nt == nw && (!nw || !memcmp(t, want, nw * sizeof(int32_t)));
        g_checks++;
        if (!same) {
            if (bad < 3) {
                fprintf(stderr, "FAIL %s line %zu ('%.40s'): want %zu ids, got %zu;", name, i + 1, rec[i].s, nw, nt);
                for (size_t k = 0; k < nw || k < nt; k++) {
                    if (k < nw && k < nt && want[k] == t[k])
                        continue;
                    fprintf(stderr, " first difference at %zu: want %d got %d", k, k < nw ? want[k] : -1,
                            k < nt ? t[k] : -1);
                    break;
                }
                fputc('\n', stderr);
            }
            bad++;
        } else if (byte_level) {
            check_roundtrip(v, name, &rec[i], t, nt, raw);
        }
        free(t);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    if (al_vocab_type_of(v) == AL_VOCAB_SPM) {
        /* merging word by word (spm_word_split) gives what merging the whole text does */
        al_vocab *w = (al_vocab *)v;
        bool was = w->spm_word_split;
        size_t n1 = 0, n2 = 0;
        const char *all = rec[0].s;
        size_t n_all = (size_t)(rec[n_rec - 1].s + rec[n_rec - 1].n - all);
        int32_t *t1 = tokenize(v, all, n_all, true, false, &n1);
        w->spm_word_split = false;
        int32_t *t2 = tokenize(v, all, n_all, true, false, &n2);
        w->spm_word_split = was;
        CHECK(t1 && t2 && n1 == n2 && !memcmp(t1, t2, n1 * sizeof(int32_t)),
              "%s: word-by-word SentencePiece differs from whole-text (%zu vs %zu tokens, split %d)", name, n1, n2,
              was);
        free(t1);
        free(t2);
    }
    if (bad) {
        g_fail++;
        s->lines_bad += bad;
        printf("FAIL %-26s %d of %zu lines differ\n", name, bad, n_rec);
    } else {
        s->passed++;
    }
    free(out);
    al_vocab_free(v);
}

/* Special tokens are still found with parse_special, and BOS follows the
 * name's default (llama3 family adds it, gpt-2 family does not). */
static void check_specials(const char *gguf, const char *name, const json_t *flags)
{
    al_vocab *v = NULL;
    al_error err = {0};
    if (al_vocab_load(gguf, &v, &err))
        return;
    /* find a control token and parse it in text */
    int32_t ctl = -1;
    for (int32_t i = 0; i < al_vocab_n_tokens(v) && ctl < 0; i++)
        if (al_vocab_is_control(v, i)) {
            size_t len;
            const char *s = al_vocab_token_text(v, i, &len);
            if (len > 2 && s[0] == '<')
                ctl = i;
        }
    if (ctl >= 0) {
        size_t len;
        const char *s = al_vocab_token_text(v, ctl, &len);
        char text[512];
        int n = snprintf(text, sizeof(text), "Hi %.*s there", (int)(len < 400 ? len : 400), s);
        size_t nt;
        int32_t *t = tokenize(v, text, (size_t)n, false, true, &nt);
        bool found = false;
        for (size_t k = 0; t && k < nt; k++)
            found |= t[k] == ctl;
        CHECK(found, "%s: control token %d not parsed with parse_special", name, ctl);
        free(t);
        t = tokenize(v, text, (size_t)n, false, false, &nt);
        found = false;
        for (size_t k = 0; t && k < nt; k++)
            found |= t[k] == ctl;
        CHECK(!found, "%s: control token %d parsed without parse_special", name, ctl);
        free(t);
    }
    /* whole-text decoding cleans spaces unless the name says not to */
    static const char k_text[] = "Hi , there ! It 's ok .";
    size_t nt0;
    int32_t *t0 = tokenize(v, k_text, sizeof(k_text) - 1, false, false, &nt0);
    char dec[256];
    size_t nd = t0 ? al_vocab_detokenize(v, t0, nt0, dec, sizeof(dec), false, false) : 0;
    bool clean = !json_is_false(json_object_get(flags, "clean_spaces"));
    const char *want = clean ? "Hi, there! It's ok." : k_text;
    CHECK(al_vocab_clean_spaces(v) == clean, "%s: clean_spaces %d, the reference's %d", name,
          al_vocab_clean_spaces(v), clean);
    if (al_vocab_n_tokens(v) > 1000 && strcmp(name, "whitespace")) /* spells the text back (not: drops spaces) */
        CHECK(nd == strlen(want) && !memcmp(dec, want, nd), "%s: detokenized '%.*s', want '%s'", name, (int)nd, dec,
              want);
    free(t0);
    bool add_bos = json_is_true(json_object_get(flags, "add_bos"));
    size_t nt;
    int32_t *t = tokenize(v, "Hello", 5, true, false, &nt);
    if (add_bos && al_vocab_bos(v) >= 0)
        CHECK(t && nt >= 1 && t[0] == al_vocab_bos(v), "%s: BOS expected first", name);
    if (!add_bos && json_object_get(flags, "add_bos") == NULL && t && nt >= 1 && al_vocab_bos(v) >= 0)
        CHECK(t[0] != al_vocab_bos(v) || al_vocab_add_bos_default(v), "%s: unexpected BOS", name);
    free(t);
    al_vocab_free(v);
}

int main(void)
{
    const char *sh = getenv("AIRLOCK_SHARED");
    char shared[4096], pre[4300], path[8192], tool[4400];
    snprintf(shared, sizeof(shared), "%s", sh && *sh ? sh : "../shared");
    snprintf(pre, sizeof(pre), "%s/vocab/pre", shared);
    snprintf(path, sizeof(path), "%s/cases.json", pre);
    snprintf(tool, sizeof(tool), "%s/tools/setpre.py", shared);
    if (access(path, R_OK) || access(tool, R_OK)) {
        printf("SKIP: %s or %s is absent\n", path, tool);
        return 77;
    }
    if (system("python3 -c 'import struct' >/dev/null 2>&1")) {
        printf("SKIP: python3 is not available (needed by setpre.py)\n");
        return 77;
    }
    json_error_t je;
    json_t *cases = json_load_file(path, 0, &je);
    snprintf(path, sizeof(path), "%s/real-cases.json", pre);
    json_t *real = json_load_file(path, 0, &je);
    if (!json_is_array(cases) || !json_is_array(real)) {
        printf("FAIL: cannot read the case lists\n");
        return 1;
    }
    /* the table holds exactly the names of cases.json */
    CHECK(tok_pre_count() == json_array_size(cases), "%zu names in the table, %zu in cases.json", tok_pre_count(),
          json_array_size(cases));
    for (size_t i = 0; i < tok_pre_count(); i++) {
        const char *tn = tok_pre_name(tok_pre_at(i));
        bool found = false;
        for (size_t k = 0; k < json_array_size(cases) && !found; k++)
            found = !strcmp(tn, json_string_value(json_object_get(json_array_get(cases, k), "pre")));
        CHECK(found, "table name '%s' is not in cases.json", tn);
        CHECK(tok_pre_find(tn, strlen(tn)) == tok_pre_at(i), "'%s' is in the table twice", tn);
    }
    CHECK(tok_pre_find("no-such-pre", 11) == NULL && tok_pre_find("gpt-", 4) == NULL, "unknown names are found");
    char tmpl[] = "/tmp/airlock-pretok-XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir) {
        printf("FAIL: mkdtemp\n");
        return 1;
    }

    /* one python3 process writes every case's vocab */
    snprintf(path, sizeof(path), "%s/gen.py", dir);
    FILE *py = fopen(path, "w");
    fprintf(py, "import sys\nsys.path.insert(0, %s)\nimport setpre\n", "sys.argv[1]");
    fprintf(py, "for line in sys.stdin:\n    a = line.rstrip('\\n').split('\\t')\n");
    fprintf(py, "    if setpre.main(['setpre'] + a):\n        sys.exit('setpre failed: ' + line)\n");
    fclose(py);
    char cmd[16384];
    snprintf(cmd, sizeof(cmd), "python3 %s/gen.py %s/tools > %s/gen.log 2>&1", dir, shared, dir);
    FILE *gen = popen(cmd, "w");
    size_t n_cases = json_array_size(cases);
    for (size_t i = 0; i < n_cases; i++) {
        json_t *c = json_array_get(cases, i);
        const char *name = json_string_value(json_object_get(c, "pre"));
        const char *base = json_string_value(json_object_get(c, "base"));
        fprintf(gen, "%s/vocab/%s\t%s\t%s/%s.gguf", shared, base, name, dir, name);
        const char *k;
        json_t *val;
        json_object_foreach(json_object_get(c, "extra_kv"), k, val) fprintf(gen, "\t%s=%s", k, json_string_value(val));
        fputc('\n', gen);
    }
    int rc = pclose(gen);
    if (rc) {
        snprintf(cmd, sizeof(cmd), "cat %s/gen.log", dir);
        (void)system(cmd);
        printf("FAIL: setpre.py could not write the vocabularies\n");
        return 1;
    }

    size_t n_inp = 0;
    snprintf(path, sizeof(path), "%s/strings-A.inp", pre);
    char *inp = read_all(path, &n_inp);
    static record rec[4096];
    size_t n_rec = inp ? split_records(inp, n_inp, rec, 4096) : 0;
    CHECK(n_rec > 100, "strings-A.inp: %zu strings", n_rec);

    stats s = {0};
    for (size_t i = 0; i < n_cases; i++) {
        json_t *c = json_array_get(cases, i);
        const char *name = json_string_value(json_object_get(c, "pre"));
        char gguf[8192], out[8192];
        snprintf(gguf, sizeof(gguf), "%s/%s.gguf", dir, name);
        snprintf(out, sizeof(out), "%s/%s", pre, json_string_value(json_object_get(c, "out")));
        /* byte-level vocabularies and the raw ones with U+2581 for spaces decode back exactly */
        bool raw = json_is_true(json_object_get(json_object_get(c, "flags"), "escape_whitespaces"));
        bool byte_level = json_is_true(json_object_get(c, "byte_encode")) || raw;
        check_case(gguf, out, name, byte_level, raw, rec, n_rec, (size_t)json_integer_value(json_object_get(c, "lines")),
                   &s);
        check_specials(gguf, name, json_object_get(c, "flags"));
        unlink(gguf);
    }
    for (size_t i = 0; i < json_array_size(real); i++) {
        json_t *c = json_array_get(real, i);
        const char *base = json_string_value(json_object_get(c, "base"));
        char gguf[8192], out[8192];
        snprintf(gguf, sizeof(gguf), "%s/vocab/%s", shared, base);
        snprintf(out, sizeof(out), "%s/%s", pre, json_string_value(json_object_get(c, "out")));
        const char *model = json_string_value(json_object_get(c, "tokenizer_model"));
        bool gemma4 = model && !strcmp(model, "gemma4"); /* raw UTF-8 with U+2581: decodes back exactly */
        check_case(gguf, out, base, (model && !strcmp(model, "gpt2")) || gemma4, gemma4, rec, n_rec,
                   (size_t)json_integer_value(json_object_get(c, "lines")), &s);
    }
    snprintf(path, sizeof(path), "%s/gen.py", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/gen.log", dir);
    unlink(path);
    rmdir(dir);
    printf("%d cases: %d exact, %d failed (%d lines)\n", s.cases, s.passed, s.cases - s.passed, s.lines_bad);
    printf("%d checks, %d failed\n", g_checks, g_fail);
    json_decref(cases);
    json_decref(real);
    free(inp);
    return g_fail ? 1 : 0;
}
