/* cmd_tokenize.c - `airlock tokenize MODEL.gguf [--special]`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"
#include "cli/cli.h"
#include "cli/util.h"

static void help(FILE *f)
{
    fprintf(f, "usage: airlock tokenize MODEL.gguf [--special]\n\n"
               "Reads all of standard input as bytes and prints its token ids on one\n"
               "line, separated by single spaces, followed by a newline. The input is\n"
               "tokenized exactly as read: a trailing newline is NOT stripped (use\n"
               "printf '%%s' or echo -n to tokenize text without one).\n\n"
               "MODEL.gguf may be a full model or a vocab-only GGUF file.\n\n"
               "By default no BOS/EOS is added and special tokens written in the text\n"
               "(<|im_start|>, <s>, ...) are tokenized as plain text.\n\n"
               "  --special   add BOS/EOS as the vocabulary asks (BERT: [CLS]/[SEP])\n"
               "              and turn special-token text into the special tokens\n");
}

int cmd_tokenize(int argc, char **argv)
{
    const char *path = NULL;
    bool special = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--special")) {
            special = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_errorf("tokenize", "unknown option '%s'", argv[i]);
            help(stderr);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            cli_errorf("tokenize", "unexpected argument '%s'", argv[i]);
            help(stderr);
            return 2;
        }
    }
    if (!path) {
        help(stderr);
        return 2;
    }
    al_error err = {0};
    al_vocab *v = NULL;
    if (al_vocab_load(path, &v, &err)) {
        cli_errorf("tokenize", "%s", err.msg);
        return 1;
    }
    size_t n_text = 0;
    char *text = cli_read_file("-", &n_text);
    if (!text) {
        cli_errorf("tokenize", "cannot read standard input: %s", strerror(errno));
        al_vocab_free(v);
        return 1;
    }
    size_t n_tok = 0;
    al_status st = al_tokenize(v, text, n_text, special, special, NULL, 0, &n_tok, &err);
    int32_t *toks = NULL;
    if (st == AL_ERR_LIMIT) {
        toks = malloc((n_tok ? n_tok : 1) * sizeof(int32_t));
        st = toks ? al_tokenize(v, text, n_text, special, special, toks, n_tok, &n_tok, &err) : AL_ERR_NOMEM;
        if (!toks)
            snprintf(err.msg, sizeof(err.msg), "out of memory");
    }
    int rc = 0;
    if (st) {
        cli_errorf("tokenize", "%s: %s", path, err.msg);
        rc = 1;
    } else {
        for (size_t i = 0; i < n_tok; i++)
            printf(i ? " %d" : "%d", toks[i]);
        putchar('\n');
        if (fflush(stdout) || ferror(stdout)) {
            cli_errorf("tokenize", "cannot write standard output");
            rc = 1;
        }
    }
    free(toks);
    free(text);
    al_vocab_free(v);
    return rc;
}
