/*
 * wpm.c - WordPiece (tokenizer.ggml.model "bert"), as BERT's BasicTokenizer
 * + WordpieceTokenizer do it and llama.cpp stores it: in the GGUF vocab a
 * word-initial piece carries a U+2581 prefix and a continuation piece
 * ("##ing" in BERT) is stored bare ("ing").
 *
 * Normalisation: the first code point of NFD, marks (\p{M}) removed, lowercase, control characters and NUL/U+FFFD
 * dropped, whitespace splits words, every punctuation character (and ASCII
 * symbol) and CJK ideograph is a word of its own. Each word is then cut
 * greedily into the longest tokens from the left; a word that cannot be
 * cut completely becomes [UNK].
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/tok_impl.h"
#include "util/error.h"

static bool wpm_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

static bool wpm_chinese(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static bool is_punct(utf8proc_category_t cat)
{
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

static bool is_symbol(utf8proc_category_t cat)
{
    return cat >= UTF8PROC_CATEGORY_SM && cat <= UTF8PROC_CATEGORY_SO;
}

static bool is_control(utf8proc_category_t cat)
{
    return cat >= UTF8PROC_CATEGORY_CC && cat <= UTF8PROC_CATEGORY_CO;
}

/* Tokenizes one word (without its U+2581 prefix) into ids. */
static bool wpm_word(const al_vocab *v, const char *w, size_t wn, char **buf, size_t *cap, tok_ids *ids)
{
    size_t n = wn + 3;
    if (n > *cap) {
        char *nb = realloc(*buf, n);
        if (!nb)
            return false;
        *buf = nb;
        *cap = n;
    }
    char *s = *buf;
    memcpy(s, "\xe2\x96\x81", 3);
    memcpy(s + 3, w, wn);
    size_t start = ids->n;
    for (size_t i = 0; i < n; i++) {
        bool match = false;
        size_t j = i + v->max_token_len + 1 < n ? i + v->max_token_len + 1 : n;
        for (; j > i; j--) {
            int32_t id = tok_find(v, s + i, j - i);
            if (id >= 0) {
                if (!tok_ids_push(ids, id))
                    return false;
                match = true;
                i = j - 1;
                break;
            }
        }
        if (!match) {
            ids->n = start;
            break;
        }
    }
    if (ids->n == start && v->unk >= 0)
        return tok_ids_push(ids, v->unk);
    return true;
}

al_status tok_wpm(const al_vocab *v, const char *text, size_t n, tok_ids *ids, al_error *err)
{
    /* the normalized word being built (UTF-8), and the piece buffer */
    char *word = NULL, *buf = NULL;
    size_t wn = 0, wcap = 0, bcap = 0;
    bool oom = false;
    if (n > INT32_MAX / 4)
        return al_err(err, AL_ERR_LIMIT, "text too long to tokenize (%zu bytes)", n);
    for (size_t i = 0; i < n && !oom;) {
        uint32_t cp;
        size_t l = tok_utf8_decode((const unsigned char *)text + i, n - i, &cp, NULL);
        i += l;
        /* as the reference: a code point becomes the FIRST code point of its
         * NFD form (what follows it, accents or Hangul jamo, is lost) */
        utf8proc_int32_t dec[8];
        utf8proc_ssize_t nd = utf8proc_decompose_char((utf8proc_int32_t)cp, dec, 8, UTF8PROC_DECOMPOSE, NULL);
        if (nd < 1 || nd > 8)
            dec[0] = (utf8proc_int32_t)cp;
        nd = 1;
        for (utf8proc_ssize_t k = 0; k < nd && !oom; k++) {
            uint32_t c = (uint32_t)dec[k];
            if (wpm_space(c)) {
                if (wn)
                    oom |= !wpm_word(v, word, wn, &buf, &bcap, ids);
                wn = 0;
                continue;
            }
            utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
            if (c == 0 || c == 0xFFFD || is_control(cat) || cat == UTF8PROC_CATEGORY_CN ||
                (cat >= UTF8PROC_CATEGORY_MN && cat <= UTF8PROC_CATEGORY_ME))
                continue; /* marks (accents) are stripped */
            char enc[4];
            size_t el = al_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)c), enc);
            bool alone = is_punct(cat) || (c < 0x7F && is_symbol(cat)) || wpm_chinese(c);
            if (alone && wn) {
                oom |= !wpm_word(v, word, wn, &buf, &bcap, ids);
                wn = 0;
            }
            if (wn + el > wcap) {
                size_t nc = wcap ? wcap * 2 : 64;
                while (nc < wn + el)
                    nc *= 2;
                char *nw = realloc(word, nc);
                if (!nw) {
                    oom = true;
                    break;
                }
                word = nw;
                wcap = nc;
            }
            memcpy(word + wn, enc, el);
            wn += el;
            if (alone) {
                oom |= !wpm_word(v, word, wn, &buf, &bcap, ids);
                wn = 0;
            }
        }
    }
    if (!oom && wn)
        oom |= !wpm_word(v, word, wn, &buf, &bcap, ids);
    free(word);
    free(buf);
    return oom ? al_err(err, AL_ERR_NOMEM, "out of memory while tokenizing") : AL_OK;
}
