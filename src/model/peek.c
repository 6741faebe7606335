/*
 * peek.c - what a GGUF model file says about its chat, read from its
 * metadata without loading the model (al_model_peek_template).
 */
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "util/error.h"

/* A malloc'd NUL-terminated copy of s, or NULL when out of memory. */
static char *str_dup(al_str s)
{
    char *c = malloc((size_t)s.len + 1);
    if (c) {
        memcpy(c, s.ptr, (size_t)s.len);
        c[s.len] = 0;
    }
    return c;
}

/* The text of token id of the tokenizer.ggml.tokens array, or false when
 * the file has no such array or the id is outside it. */
static bool token_text(const al_gguf *g, uint32_t id, al_str *out)
{
    const al_gguf_kv *toks = al_gguf_find(g, "tokenizer.ggml.tokens");
    if (!toks || toks->type != AL_GGUF_ARR || toks->arr_type != AL_GGUF_STR || id >= toks->arr_n)
        return false;
    const uint8_t *it = toks->data;
    *out = al_gguf_str_next(&it);
    for (uint32_t i = 0; i < id; i++)
        *out = al_gguf_str_next(&it);
    return true;
}

al_status al_model_peek_template(const char *path, char **tmpl, char **bos, char **eos, al_error *err)
{
    char **outs[3] = {tmpl, bos, eos};
    for (int k = 0; k < 3; k++)
        if (outs[k])
            *outs[k] = NULL;
    al_gguf *g = NULL;
    al_gguf_params gp = {.allow_unsupported_types = true};
    al_status st = al_gguf_open(path, &gp, &g, err);
    if (st)
        return st;
    const char *keys[3] = {NULL, "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"};
    for (int k = 0; k < 3 && !st; k++) {
        if (!outs[k])
            continue;
        al_str s;
        uint32_t id;
        bool found = k == 0 ? al_gguf_get_str(g, "tokenizer.chat_template", &s)
                            : al_gguf_get_u32(g, keys[k], &id) && token_text(g, id, &s);
        if (found && !(*outs[k] = str_dup(s)))
            st = al_err(err, AL_ERR_NOMEM, "%s: out of memory reading the chat template", path);
    }
    al_gguf_close(g);
    if (st)
        for (int k = 0; k < 3; k++)
            if (outs[k]) {
                free(*outs[k]);
                *outs[k] = NULL;
            }
    return st;
}
