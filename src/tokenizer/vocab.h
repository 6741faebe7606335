/*
 * vocab.h - the tokenizer's internal constructor and queries for the rest
 * of the engine (the model loader, the server). The public part of the API
 * (al_vocab_*, al_tokenize, al_token_to_piece, al_detok_*) is in airlock.h.
 */
#ifndef AL_TOKENIZER_VOCAB_H
#define AL_TOKENIZER_VOCAB_H

#include <stdbool.h>
#include <stdint.h>

#include "airlock.h"
#include "gguf/gguf.h"

typedef enum al_vocab_type {
    AL_VOCAB_SPM = 1, /* tokenizer.ggml.model = "llama": SentencePiece BPE */
    AL_VOCAB_BPE = 2, /* "gpt2": byte-level BPE; "gemma4": BPE over UTF-8 */
    AL_VOCAB_WPM = 3, /* "bert": WordPiece */
    AL_VOCAB_UGM = 4, /* "t5": SentencePiece unigram */
} al_vocab_type;

/* Builds a vocabulary from the tokenizer.* metadata of an open GGUF file.
 * Everything needed is copied: the vocab outlives g. On success *out is
 * owned by the caller (al_vocab_free). On failure *out is NULL and err says
 * which field was wrong (without the file name: callers prefix it). */
al_status al_vocab_from_gguf(const al_gguf *g, al_vocab **out, al_error *err);

al_vocab_type al_vocab_type_of(const al_vocab *v);
/* al_vocab_type_name, al_vocab_pre_name, al_vocab_find: airlock.h. */
/* Whether al_tokenize(add_special=true) puts BOS first / EOS last. */
bool al_vocab_add_bos_default(const al_vocab *v);
bool al_vocab_add_eos_default(const al_vocab *v);
/* SentencePiece's add_space_prefix: a text tokenized alone (or after a
 * special token) gets a leading space, so decoding it gives " " + text. */
bool al_vocab_add_space_prefix(const al_vocab *v);
int32_t al_vocab_unk(const al_vocab *v); /* -1 when none */
int32_t al_vocab_pad(const al_vocab *v); /* -1 when none */
int32_t al_vocab_sep(const al_vocab *v); /* -1 when none */
/* Whole-text decoding as the reference's llama_detokenize: the pieces
 * (special tokens as text when unparse_special), without the space prefix
 * SentencePiece added, without BOS/EOS when remove_special and the vocab
 * adds them, and with clean_up_tokenization_spaces when the tokenizer asks
 * for it (" ," -> ",", " 's" -> "'s", ...: most BPE names, WordPiece).
 * Writes at most cap bytes to buf (no NUL); returns the full length. The
 * streaming detokenizer (al_detok_*) does none of this, as the reference's
 * per-token pieces do not. */
size_t al_vocab_detokenize(const al_vocab *v, const int32_t *tokens, size_t n, char *buf, size_t cap,
                           bool remove_special, bool unparse_special);
/* Whether whole-text decoding cleans spaces (see above). */
bool al_vocab_clean_spaces(const al_vocab *v);

/* The stored text of a token (SentencePiece/byte-level form, not decoded),
 * *len its length; NULL for an invalid id. Owned by the vocab. */
const char *al_vocab_token_text(const al_vocab *v, int32_t token, size_t *len);

#endif
