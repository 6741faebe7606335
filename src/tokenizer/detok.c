/*
 * detok.c - token -> bytes (al_token_to_piece) and the streaming
 * detokenizer (al_detok_*).
 *
 * Pieces are decoded once when the vocab loads (no table is built lazily:
 * a loaded vocab is read-only and shared between threads):
 *   SPM/WPM/UGM: U+2581 -> ' ', byte tokens <0xXX> -> that byte;
 *   BPE: GPT-2's byte-level characters mapped back to bytes (vocabularies
 *   on raw UTF-8, such as model gemma4: U+2581 -> ' ' and <0xXX> as
 *   SentencePiece);
 *   control/unknown tokens: their text, given only with render_special;
 *   unused tokens: nothing.
 * No leading space is stripped: with SentencePiece's add_space_prefix a
 * text tokenized alone decodes to " " + text; callers that decode a whole
 * prompt drop that first space themselves (see al_vocab_add_space_prefix).
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_impl.h"
#include "util/error.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Writes the decoded piece of token t at out (room for 3*len bytes + 1);
 * returns its length. */
static size_t decode_piece(const al_vocab *v, int32_t t, char *out)
{
    const char *s = v->blob + v->off[t];
    size_t n = v->len[t], o = 0;
    uint16_t a = v->attr[t];
    if (a & (TOK_CONTROL | TOK_UNKNOWN | TOK_USER)) {
        memcpy(out, s, n);
        return n;
    }
    if (a & TOK_UNUSED)
        return 0;
    bool byte_level = v->type == AL_VOCAB_BPE && !v->bpe_raw; /* GPT-2's byte-to-character map */
    if (!byte_level && (a & TOK_BYTE)) {
        if (n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>' && hexval(s[3]) >= 0 &&
            hexval(s[4]) >= 0) {
            out[0] = (char)(hexval(s[3]) * 16 + hexval(s[4]));
            return 1;
        }
        memcpy(out, s, n);
        return n;
    }
    if (v->type == AL_VOCAB_BPE && v->bpe_raw && !v->escape_spaces) { /* raw UTF-8 pieces */
        memcpy(out, s, n);
        return n;
    }
    if (byte_level) {
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            size_t l = tok_utf8_decode((const unsigned char *)s + i, n - i, &cp, NULL);
            int b = l > 1 || cp < 0x80 ? tok_cp_to_byte(cp) : -1;
            if (b >= 0)
                out[o++] = (char)b;
            else { /* not a byte-level character: keep it as it is */
                memcpy(out + o, s + i, l);
                o += l;
            }
            i += l;
        }
        return o;
    }
    for (size_t i = 0; i < n;) { /* SPM, WPM, UGM, BPE on raw UTF-8 with U+2581 */
        if (i + 3 <= n && !memcmp(s + i, "\xe2\x96\x81", 3)) {
            out[o++] = ' ';
            i += 3;
        } else {
            out[o++] = s[i++];
        }
    }
    return o;
}

al_status tok_pieces_init(al_vocab *v, al_error *err)
{
    size_t n = (size_t)v->n_tokens, total = 0;
    for (size_t i = 0; i < n; i++)
        total += v->len[i]; /* a piece is never longer than its text */
    v->pblob = malloc(total + 4);
    v->poff = malloc(n * sizeof(size_t));
    v->plen = malloc(n * sizeof(uint32_t));
    if (!v->pblob || !v->poff || !v->plen)
        return al_err(err, AL_ERR_NOMEM, "out of memory for token pieces");
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        v->poff[i] = o;
        v->plen[i] = (uint32_t)decode_piece(v, (int32_t)i, v->pblob + o);
        o += v->plen[i];
    }
    return AL_OK;
}

int32_t al_token_to_piece(const al_vocab *v, int32_t t, char *buf, size_t cap, bool render_special)
{
    if (!v || t < 0 || t >= v->n_tokens)
        return -1;
    if (!render_special && (v->attr[t] & (TOK_CONTROL | TOK_UNKNOWN)))
        return 0;
    uint32_t n = v->plen[t];
    if (buf && cap)
        memcpy(buf, v->pblob + v->poff[t], n < cap ? n : cap);
    return (int32_t)n;
}

/* ---------------------------------------------------------------- detok */

struct al_detok {
    const al_vocab *v;
    bool render_special;
    char hold[4];     /* bytes of an incomplete character */
    size_t n_hold;
    char *out;        /* what the last call returned */
    size_t out_cap;
    char *in;         /* (in_cap) scratch: held bytes + one piece */
    size_t in_cap;
};

static bool reserve(al_detok *d, size_t n);

/* Both buffers are sized here for the longest piece (a piece is never
 * longer than its token's text): pushing a token never allocates, so it
 * cannot lose text to a failed allocation. */
al_detok *al_detok_new(const al_vocab *v, bool render_special)
{
    if (!v)
        return NULL;
    al_detok *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->v = v;
    d->render_special = render_special;
    d->in_cap = sizeof(d->hold) + v->max_token_len;
    d->in = malloc(d->in_cap);
    if (!d->in || !reserve(d, 3 * d->in_cap + 1)) {
        al_detok_free(d);
        return NULL;
    }
    return d;
}

void al_detok_free(al_detok *d)
{
    if (!d)
        return;
    free(d->out);
    free(d->in);
    free(d);
}

static bool reserve(al_detok *d, size_t n)
{
    if (n <= d->out_cap)
        return true;
    size_t cap = d->out_cap ? d->out_cap : 64;
    while (cap < n)
        cap *= 2;
    char *no = realloc(d->out, cap);
    if (!no)
        return false;
    d->out = no;
    d->out_cap = cap;
    return true;
}

/* Appends src to what is held, emits every complete character (invalid
 * bytes as U+FFFD) and holds back a valid but unfinished tail. */
static const char *feed(al_detok *d, const char *src, size_t n, bool final, size_t *n_out)
{
    *n_out = 0;
    /* worst case: every byte becomes U+FFFD (3 bytes) */
    size_t total = d->n_hold + n;
    if (total > (SIZE_MAX - 1) / 3 || !reserve(d, 3 * total + 1))
        return NULL;
    char *in = total <= d->in_cap ? d->in : malloc(total); /* malloc: not for a vocab's pieces */
    if (!in)
        return NULL;
    memcpy(in, d->hold, d->n_hold);
    memcpy(in + d->n_hold, src, n);
    d->n_hold = 0;
    size_t o = 0;
    for (size_t i = 0; i < total;) {
        uint32_t cp;
        bool incomplete;
        size_t l = tok_utf8_decode((const unsigned char *)in + i, total - i, &cp, &incomplete);
        if (incomplete && !final) {
            memcpy(d->hold, in + i, total - i); /* < 4 bytes */
            d->n_hold = total - i;
            break;
        }
        if (cp == 0xFFFD && l == 1) {
            memcpy(d->out + o, "\xef\xbf\xbd", 3);
            o += 3;
        } else {
            memcpy(d->out + o, in + i, l);
            o += l;
        }
        i += l;
    }
    if (in != d->in)
        free(in);
    d->out[o] = 0;
    *n_out = o;
    return d->out;
}

const char *al_detok_push(al_detok *d, int32_t token, size_t *n)
{
    *n = 0;
    if (!d)
        return "";
    int32_t len = al_token_to_piece(d->v, token, NULL, 0, d->render_special);
    if (len < 0)
        len = 0; /* invalid ids give nothing */
    const char *p = len ? d->v->pblob + d->v->poff[token] : "";
    const char *r = feed(d, p, (size_t)len, false, n);
    return r ? r : "";
}

const char *al_detok_flush(al_detok *d, size_t *n)
{
    *n = 0;
    if (!d)
        return "";
    const char *r = feed(d, "", 0, true, n);
    return r ? r : "";
}

/* ----------------------------------------------------- whole-text decoding */

/* The reference's clean_up_tokenization_spaces, in its three passes:
 * " ?" " !" " ." " ," lose the space; " ' " loses both spaces; " 's" " 'm"
 * " 're" " 've" lose the space. Returns the new length. */
static size_t clean_spaces(char *t, size_t n)
{
    size_t o = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ','))
            o--;
        t[o++] = x;
    }
    n = o;
    o = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (x == '\'' && i + 1 < n && t[i - 1] == ' ' && t[i + 1] == ' ') {
            o--;
            t[++i] = 0; /* the next space is skipped */
        }
        t[o++] = x;
    }
    n = o;
    o = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            char x1 = t[i + 1];
            if (x1 == 's' || x1 == 'm')
                o--;
            else if (i + 2 < n && ((x1 == 'r' && t[i + 2] == 'e') || (x1 == 'v' && t[i + 2] == 'e')))
                o--;
        }
        t[o++] = x;
    }
    return o;
}

size_t al_vocab_detokenize(const al_vocab *v, const int32_t *t, size_t n, char *buf, size_t cap,
                           bool remove_special, bool unparse_special)
{
    bool remove_space = v->add_space_prefix;
    if (remove_special && v->add_bos && n > 0 && t[0] == v->bos) {
        remove_space = false;
        t++;
        n--;
    }
    if (remove_special && v->add_eos && n > 0 && t[n - 1] == v->eos)
        n--;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t k = al_token_to_piece(v, t[i], NULL, 0, unparse_special);
        total += k > 0 ? (size_t)k : 0;
    }
    char *tmp = malloc(total + 1);
    if (!tmp)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t k = al_token_to_piece(v, t[i], tmp + o, total - o, unparse_special);
        if (k <= 0)
            continue;
        if (remove_space && tmp[o] == ' ') { /* the space prefix of the first piece */
            memmove(tmp + o, tmp + o + 1, (size_t)k - 1);
            k--;
        }
        remove_space = false;
        o += (size_t)k;
    }
    if (v->clean_spaces)
        o = clean_spaces(tmp, o);
    if (buf && cap)
        memcpy(buf, tmp, o < cap ? o : cap);
    free(tmp);
    return o;
}
