/* utf8.h - UTF-8 encoding shared by the tokenizer and the template lexer. */
#ifndef AL_UTIL_UTF8_H
#define AL_UTIL_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Encodes cp (<= 0x10FFFF) into out[4]; returns the length (1..4). */
size_t al_utf8_encode(uint32_t cp, char *out);

#endif
