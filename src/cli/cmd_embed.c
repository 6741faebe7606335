/* cmd_embed.c - `airlock embed` (a text's pooled, L2-normalised vector) and
 * `airlock rerank` (documents ordered by relevance to a query). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"
#include "cli/cli.h"
#include "cli/util.h"

/* Sequences of tokens evaluated together, whole sequences per pass. */
typedef struct seqs {
    int32_t **tok;
    size_t *n;
    size_t count;
} seqs;

static void seqs_free(seqs *s)
{
    for (size_t i = 0; i < s->count; i++)
        free(s->tok[i]);
    free(s->tok);
    free(s->n);
}

/* Pools every sequence (the context's pooling) into out[i * dim ..]. */
static int run_pooled(const char *cmd, al_model *m, const seqs *s, bool exact, int threads, al_pooling pooling,
                      float *out, int32_t dim, uint32_t max_batch)
{
    size_t max_len = 0, total = 0;
    for (size_t i = 0; i < s->count; i++) {
        max_len = s->n[i] > max_len ? s->n[i] : max_len;
        total += s->n[i];
    }
    al_context_params cp = al_context_default_params();
    cp.n_ctx = (uint32_t)max_len;
    cp.n_batch = (uint32_t)(total < max_batch ? total : (max_len > max_batch ? max_len : max_batch));
    cp.n_seq = (uint32_t)(s->count < 64 ? s->count : 64);
    cp.exact = exact;
    cp.n_threads = threads;
    cp.embeddings = true;
    cp.pooling = pooling;
    al_context *ctx = NULL;
    al_error err = {0};
    if (al_context_new(m, &cp, &ctx, &err)) {
        cli_errorf(cmd, "%s", err.msg);
        return 1;
    }
    int32_t *tok = malloc(cp.n_batch * sizeof(int32_t)), *pos = malloc(cp.n_batch * sizeof(int32_t));
    int32_t *seq = malloc(cp.n_batch * sizeof(int32_t));
    int rc = 1;
    if (!tok || !pos || !seq) {
        cli_errorf(cmd, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < s->count;) {
        size_t n = 0, first = i;
        uint32_t k = 0;
        while (i < s->count && k < cp.n_seq && n + s->n[i] <= cp.n_batch) {
            for (size_t t = 0; t < s->n[i]; t++) {
                tok[n] = s->tok[i][t];
                pos[n] = (int32_t)t;
                seq[n++] = (int32_t)k;
            }
            i++;
            k++;
        }
        al_batch b = {(int32_t)n, tok, pos, seq, NULL};
        if (al_decode(ctx, &b, &err)) {
            cli_errorf(cmd, "%s", err.msg);
            goto done;
        }
        for (uint32_t q = 0; q < k; q++) {
            int32_t nv = 0;
            const float *v = al_get_embedding_seq(ctx, (int32_t)q, &nv);
            if (!v || nv != dim) {
                cli_errorf(cmd, "the engine gave no pooled vector");
                goto done;
            }
            memcpy(out + (first + q) * (size_t)dim, v, (size_t)dim * sizeof(float));
            al_kv_seq_zero(ctx, (int32_t)q);
        }
    }
    rc = 0;
done:
    free(tok);
    free(pos);
    free(seq);
    al_context_free(ctx);
    return rc;
}

static bool parse_pooling(const char *s, al_pooling *out)
{
    static const al_pooling all[] = {AL_POOLING_MEAN, AL_POOLING_CLS, AL_POOLING_LAST, AL_POOLING_RANK};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (!strcmp(s, al_pooling_name(all[i]))) {
            *out = all[i];
            return true;
        }
    return false;
}

static void embed_help(FILE *f)
{
    fprintf(f,
            "usage: airlock embed MODEL.gguf --prompt-file F --out OUT.f32 [--exact] [--pooling P]\n"
            "                     [--no-normalize] [--threads N]\n\n"
            "Tokenizes F exactly as written, with the specials the vocab adds ([CLS] ... [SEP]\n"
            "for BERT, EOS for Qwen3-Embedding; special tokens in the text are not parsed),\n"
            "prints the token ids on one line, and writes the pooled vector, L2-normalised,\n"
            "as n_embd little-endian float32 to OUT.f32.\n\n"
            "  --exact          plain-C reference path: weights dequantized exactly to F32,\n"
            "                   F32 activations\n"
            "  --pooling P      mean, cls or last instead of the model's pooling_type (a model\n"
            "                   without one: mean)\n"
            "  --no-normalize   write the pooled vector as it is\n"
            "  --threads N      worker threads (default: physical cores)\n\n"
            "airlock embed MODEL.gguf --bench N [--bench-tokens T] [--batch B]: embeds N\n"
            "distinct inputs of T tokens (default 134) in passes of at most B tokens\n"
            "(default 8192), whole inputs per pass, and prints inputs/s and tokens/s.\n");
}

static int32_t *tokenize_all(const char *cmd, const al_vocab *v, const char *text, size_t n_text, size_t *n);

/* Text for the benchmark's inputs: plain English, cut differently each time. */
static const char k_bench_text[] =
    "The committee met on a grey morning to review the quarterly figures, and the discussion soon turned to the "
    "warehouse in the north, where deliveries had slowed after the new scheduling system was introduced. Several "
    "members argued that the software was not at fault; the real problem, they said, was the shortage of drivers "
    "and the long winter. Others pointed to the reports from the floor, which described lost pallets, duplicate "
    "orders and a queue of trucks that stretched around the block every Tuesday. In the end the chair asked for a "
    "detailed study of the routes, the staffing and the timetable, to be delivered before the spring meeting, "
    "and for a small pilot in which two depots would return to the old paper lists for a month.";

static int embed_bench(al_model *m, int64_t n_inputs, int64_t n_tokens, int64_t batch, int threads, bool exact,
                       double t_load)
{
    const al_vocab *v = al_model_vocab(m);
    al_model_info info;
    al_model_get_info(m, &info);
    seqs s = {calloc((size_t)n_inputs, sizeof(int32_t *)), calloc((size_t)n_inputs, sizeof(size_t)), 0};
    float *out = malloc((size_t)n_inputs * info.n_embd * sizeof(float));
    int rc = 1;
    if (!s.tok || !s.n || !out) {
        cli_errorf("embed", "out of memory");
        goto done;
    }
    const size_t len = sizeof(k_bench_text) - 1;
    char *text = malloc(2 * len + 32);
    if (!text)
        goto done;
    for (int64_t i = 0; i < n_inputs; i++, s.count++) {
        /* input i: its number, then the text from a word that moves with i, twice round */
        size_t start = (size_t)(i * 37) % (len / 2);
        while (start > 0 && k_bench_text[start - 1] != ' ')
            start--;
        int k = snprintf(text, 32, "%lld. ", (long long)i);
        memcpy(text + k, k_bench_text + start, len - start);
        memcpy(text + k + len - start, k_bench_text, start);
        size_t n = 0;
        s.tok[i] = tokenize_all("embed", v, text, (size_t)k + len, &n);
        if (!s.tok[i] || n < 2) {
            free(text);
            goto done;
        }
        if (n > (size_t)n_tokens) { /* cut, keeping the closing special */
            s.tok[i][n_tokens - 1] = s.tok[i][n - 1];
            n = (size_t)n_tokens;
        }
        s.n[i] = n;
    }
    free(text);
    size_t total = 0;
    for (size_t i = 0; i < s.count; i++)
        total += s.n[i];
    const double t0 = cli_now();
    if (run_pooled("embed", m, &s, exact, threads, AL_POOLING_UNSPECIFIED, out, (int32_t)info.n_embd,
                   (uint32_t)batch))
        goto done;
    const double dt = cli_now() - t0;
    printf("embed bench: %lld inputs, %.1f tokens each, passes of <= %lld tokens, %d threads: %.2f s "
           "(+ %.2f s load): %.2f inputs/s, %.0f tokens/s\n",
           (long long)n_inputs, (double)total / (double)n_inputs, (long long)batch,
           threads ? threads : al_physical_cores_count(), dt, t_load, (double)n_inputs / dt, (double)total / dt);
    rc = 0;
done:
    seqs_free(&s);
    free(out);
    return rc;
}

static int load_model(const char *cmd, const char *path, al_model **m)
{
    al_error err = {0};
    if (al_model_load(path, NULL, m, &err)) {
        cli_errorf(cmd, "%s", err.msg);
        return 1;
    }
    return 0;
}

/* Tokenizes text with the vocab's specials into a malloc'd array. */
static int32_t *tokenize_all(const char *cmd, const al_vocab *v, const char *text, size_t n_text, size_t *n)
{
    al_error err = {0};
    *n = 0;
    al_tokenize(v, text, n_text, true, false, NULL, 0, n, NULL);
    int32_t *t = malloc((*n ? *n : 1) * sizeof(int32_t));
    if (!t || al_tokenize(v, text, n_text, true, false, t, *n, n, &err)) {
        cli_errorf(cmd, "%s", t ? err.msg : "out of memory");
        free(t);
        return NULL;
    }
    return t;
}

int cmd_embed(int argc, char **argv)
{
    static const struct option opts[] = {
        {"prompt-file", required_argument, 0, 'f'}, {"out", required_argument, 0, 'o'},
        {"exact", no_argument, 0, 'x'},            {"threads", required_argument, 0, 't'},
        {"pooling", required_argument, 0, 'p'},    {"no-normalize", no_argument, 0, 'N'},
        {"bench", required_argument, 0, 'B'},      {"bench-tokens", required_argument, 0, 'T'},
        {"batch", required_argument, 0, 'b'},      {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int64_t bench = 0, bench_tokens = 134, batch = 8192;
    const char *prompt_file = NULL, *out_path = NULL;
    bool exact = false, normalize = true;
    al_pooling pooling = AL_POOLING_UNSPECIFIED;
    int64_t threads = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:o:xt:p:NB:T:b:h", opts, NULL)) != -1) {
        switch (c) {
        case 'B':
        case 'T':
        case 'b':
            if (!cli_parse_i64(optarg, c == 'T' ? 3 : 1, c == 'B' ? 1000000 : 1 << 20,
                               c == 'B' ? &bench : c == 'T' ? &bench_tokens : &batch)) {
                cli_errorf("embed", "--%s wants a positive number, not '%s'",
                           c == 'B' ? "bench" : c == 'T' ? "bench-tokens" : "batch", optarg);
                return 2;
            }
            break;
        case 'f': prompt_file = optarg; break;
        case 'o': out_path = optarg; break;
        case 'x': exact = true; break;
        case 'N': normalize = false; break;
        case 'p':
            if (!parse_pooling(optarg, &pooling) || pooling == AL_POOLING_RANK) {
                cli_errorf("embed", "--pooling wants mean, cls or last, not '%s'", optarg);
                return 2;
            }
            break;
        case 't':
            if (!cli_parse_i64(optarg, 1, 512, &threads)) {
                cli_errorf("embed", "--threads wants a number from 1 to 512, not '%s'", optarg);
                return 2;
            }
            break;
        case 'h': embed_help(stdout); return 0;
        default: embed_help(stderr); return 2;
        }
    }
    if (optind == argc - 1 && bench > 0) {
        al_model *bm = NULL;
        const double t0 = cli_now();
        if (load_model("embed", argv[optind], &bm))
            return 1;
        const int brc = embed_bench(bm, bench, bench_tokens, batch, (int)threads, exact, cli_now() - t0);
        al_model_free(bm);
        return brc;
    }
    if (optind != argc - 1 || !prompt_file || !out_path) {
        embed_help(stderr);
        return 2;
    }
    size_t n_text = 0;
    char *text = cli_read_file(prompt_file, &n_text);
    if (!text) {
        cli_errorf("embed", "%s: cannot read: %s", prompt_file, strerror(errno));
        return 1;
    }
    al_model *m = NULL;
    int32_t *toks = NULL;
    float *vec = NULL;
    int rc = 1;
    if (load_model("embed", argv[optind], &m))
        goto done;
    al_model_info info;
    al_model_get_info(m, &info);
    if (pooling == AL_POOLING_UNSPECIFIED) {
        pooling = al_model_pooling(m);
        if (pooling == AL_POOLING_RANK) {
            cli_errorf("embed", "%s is a rank model (pooling_type rank): use airlock rerank, or --pooling cls",
                       argv[optind]);
            goto done;
        }
        if (pooling == AL_POOLING_NONE) {
            cli_errorf("embed", "%s has pooling_type none (per-token states): name one with --pooling", argv[optind]);
            goto done;
        }
    }
    size_t n_tok = 0;
    if (!(toks = tokenize_all("embed", al_model_vocab(m), text, n_text, &n_tok)))
        goto done;
    if (n_tok == 0) {
        cli_errorf("embed", "%s: the text has no tokens", prompt_file);
        goto done;
    }
    if (!info.causal && n_tok > info.n_ctx_train) {
        cli_errorf("embed", "%s: the text has %zu tokens; this encoder takes at most %u", prompt_file, n_tok,
                   info.n_ctx_train);
        goto done;
    }
    vec = malloc(info.n_embd * sizeof(float));
    if (!vec)
        goto done;
    seqs s = {&toks, &n_tok, 1};
    if (run_pooled("embed", m, &s, exact, (int)threads, pooling, vec, (int32_t)info.n_embd, 4096))
        goto done;
    if (normalize)
        al_l2_normalize(vec, info.n_embd);
    if (!cli_write_f32("embed", out_path, vec, info.n_embd))
        goto done;
    cli_print_ids(toks, n_tok);
    rc = 0;
done:
    free(toks);
    free(vec);
    free(text);
    al_model_free(m);
    return rc;
}

/* ------------------------------------------------------------- rerank */

static void rerank_help(FILE *f)
{
    fprintf(f,
            "usage: airlock rerank MODEL.gguf --query Q (--doc D ... | --docs-file F) [--top-n N]\n"
            "                      [--exact] [--json] [--threads N]\n\n"
            "Scores each document's relevance to the query and prints them best first, one\n"
            "line each: rank, index (order given), score, the document.\n\n"
            "A rank model (pooling_type rank, a classifier head cls.output) reads each pair\n"
            "as [CLS] query [SEP] document [SEP] (XLM-R: <s> q </s></s> d </s>) and its first\n"
            "output is the score (a logit: higher is more relevant). A decoder reranker\n"
            "(Qwen3-Reranker) reads its rerank template filled in, and its score is the\n"
            "probability of 'yes' (softmax of its yes/no rows). Any other model ranks by the\n"
            "cosine similarity of the query's and each document's embeddings.\n\n"
            "  --doc D          a document (repeat; at least one)\n"
            "  --docs-file F    documents, one per line (empty lines skipped)\n"
            "  --top-n N        print only the best N\n"
            "  --json           print {\"results\":[{\"index\",\"relevance_score\"}]} instead\n"
            "  --exact          plain-C reference path\n"
            "  --threads N      worker threads (default: physical cores)\n");
}

typedef struct ranked {
    size_t index;
    float score;
} ranked;

static int ranked_desc(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

int cmd_rerank(int argc, char **argv)
{
    static const struct option opts[] = {
        {"query", required_argument, 0, 'q'},   {"doc", required_argument, 0, 'd'},
        {"docs-file", required_argument, 0, 'F'}, {"top-n", required_argument, 0, 'n'},
        {"exact", no_argument, 0, 'x'},         {"json", no_argument, 0, 'j'},
        {"threads", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *query = NULL, *docs_file = NULL;
    const char **docs = calloc((size_t)argc + 1, sizeof(char *));
    size_t n_docs = 0;
    bool exact = false, json = false;
    int64_t threads = 0, top_n = 0;
    char *file_text = NULL;
    int c, rc = 2;
    if (!docs)
        return 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "q:d:F:n:xjt:h", opts, NULL)) != -1) {
        switch (c) {
        case 'q': query = optarg; break;
        case 'd': docs[n_docs++] = optarg; break;
        case 'F': docs_file = optarg; break;
        case 'x': exact = true; break;
        case 'j': json = true; break;
        case 'n':
            if (!cli_parse_i64(optarg, 1, 1 << 30, &top_n)) {
                cli_errorf("rerank", "--top-n wants a positive number, not '%s'", optarg);
                goto out;
            }
            break;
        case 't':
            if (!cli_parse_i64(optarg, 1, 512, &threads)) {
                cli_errorf("rerank", "--threads wants a number from 1 to 512, not '%s'", optarg);
                goto out;
            }
            break;
        case 'h': rerank_help(stdout); rc = 0; goto out;
        default: rerank_help(stderr); goto out;
        }
    }
    if (optind != argc - 1 || !query) {
        rerank_help(stderr);
        goto out;
    }
    if (docs_file) {
        size_t n = 0;
        if (!(file_text = cli_read_file(docs_file, &n))) {
            cli_errorf("rerank", "%s: cannot read: %s", docs_file, strerror(errno));
            rc = 1;
            goto out;
        }
        size_t lines = 1;
        for (size_t i = 0; i < n; i++)
            lines += file_text[i] == '\n';
        const char **nd = realloc(docs, (n_docs + lines + 1) * sizeof(char *));
        if (!nd) {
            rc = 1;
            goto out;
        }
        docs = nd;
        for (char *p = file_text, *e; p && *p; p = e ? e + 1 : NULL) {
            e = strchr(p, '\n');
            if (e)
                *e = 0;
            if (*p)
                docs[n_docs++] = p;
        }
    }
    if (n_docs == 0) {
        cli_errorf("rerank", "no documents: give --doc D (repeat) or --docs-file F");
        goto out;
    }
    rc = 1;
    al_model *m = NULL;
    if (load_model("rerank", argv[optind], &m))
        goto out;
    al_model_info info;
    al_model_get_info(m, &info);
    const al_vocab *v = al_model_vocab(m);
    const bool rank = al_model_pooling(m) == AL_POOLING_RANK;
    seqs s = {calloc(n_docs + 1, sizeof(int32_t *)), calloc(n_docs + 1, sizeof(size_t)), 0};
    ranked *r = calloc(n_docs, sizeof(ranked));
    const int32_t dim = rank ? (int32_t)info.n_cls_out : (int32_t)info.n_embd;
    float *vecs = malloc((n_docs + 1) * (size_t)dim * sizeof(float));
    if (!s.tok || !s.n || !r || !vecs) {
        cli_errorf("rerank", "out of memory");
        goto done;
    }
    al_error err = {0};
    for (size_t i = 0; i < n_docs + (rank ? 0 : 1); i++) {
        const char *d = rank ? docs[i] : i == 0 ? query : docs[i - 1];
        size_t n = 0;
        if (rank) {
            if (al_rank_tokens(m, query, strlen(query), d, strlen(d), &s.tok[i], &n, &err)) {
                cli_errorf("rerank", "document %zu: %s", i, err.msg);
                s.count = i + 1;
                goto done;
            }
        } else if (!(s.tok[i] = tokenize_all("rerank", v, d, strlen(d), &n))) {
            s.count = i + 1;
            goto done;
        }
        s.n[i] = n;
        s.count = i + 1;
        if (n == 0) {
            cli_errorf("rerank", "%s %zu has no tokens", i == 0 && !rank ? "the query" : "document",
                       rank ? i : i - 1);
            goto done;
        }
    }
    if (run_pooled("rerank", m, &s, exact, (int)threads, AL_POOLING_UNSPECIFIED, vecs, dim, 4096))
        goto done;
    for (size_t i = 0; i < n_docs; i++) {
        r[i].index = i;
        r[i].score = rank ? vecs[i * (size_t)dim]
                          : al_cosine(vecs, vecs + (i + 1) * (size_t)dim, (size_t)dim);
    }
    qsort(r, n_docs, sizeof(ranked), ranked_desc);
    const size_t shown = top_n > 0 && (size_t)top_n < n_docs ? (size_t)top_n : n_docs;
    if (json)
        printf("{\"results\":[");
    for (size_t i = 0; i < shown; i++) {
        if (json)
            printf("%s{\"index\":%zu,\"relevance_score\":%.9g}", i ? "," : "", r[i].index, (double)r[i].score);
        else
            printf("%zu\t%zu\t%.6f\t%s\n", i + 1, r[i].index, (double)r[i].score, docs[r[i].index]);
    }
    if (json)
        printf("]}\n");
    rc = 0;
done:
    seqs_free(&s);
    free(r);
    free(vecs);
    al_model_free(m);
out:
    free(docs);
    free(file_text);
    return rc;
}
