/*
 * pretok.c - the pre-tokenizers of byte-level BPE vocabularies: the table
 * name -> family -> regexes + flags, and the splitter (see pretok.h).
 *
 * The regexes are those the reference runtime (llama.cpp) applies for each
 * tokenizer.ggml.pre name, written in its syntax (ECMAScript-like, with
 * \p{..} categories). They run on PCRE2 (32-bit code units, one unit per
 * code point, no UTF/UCP semantics), in one of two modes chosen per regex
 * exactly as the reference chooses:
 *
 *  - collapsed (the regex names a category): ASCII stays as it is; every
 *    other code point becomes \v if it is whitespace, else one code per
 *    category (N, L, P, M, S, other); \p{X} becomes a class of that code
 *    plus the ASCII members the reference lists for X (\p{Lu}, \p{Ll}, ...
 *    all mean "letter"). The reference's hand-written GPT-2 and Llama-3
 *    splitters follow their regex on the same categories, so they need no
 *    code of their own here.
 *  - wide (no category): the code points themselves, non-ASCII whitespace
 *    read as \v; \s \d \w are ASCII-only, as in the reference's C locale.
 *
 * Whitespace is Unicode White_Space (25 code points, U+0085 included);
 * categories come from utf8proc. Kimi-K2 also sets Han ideographs apart
 * (\p{Han}; \p{Lx} = a letter that is not Han), and AFMoE's first pass is
 * a digit-grouping splitter (see split_afmoe_digits).
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define PCRE2_CODE_UNIT_WIDTH 32
#include <pcre2.h>

#include "tokenizer/pretok.h"

/* ------------------------------------------------------------- the table */

#define CONTR "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_TAIL "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3 CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}" RE_TAIL
#define RE_QWEN2 CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" RE_TAIL
#define RE_CJK_KANA "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+"
#define RE_ASCII_PUNCT_WORD "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+"
#define RE_CASE_SPLIT(LETTER, NUM)                                                                             \
    "[^\\r\\n\\p{L}\\p{N}]?((?=[" LETTER "])([^a-z]))*((?=[" LETTER "])([^A-Z]))+" CONTR                       \
    "?|[^\\r\\n\\p{L}\\p{N}]?((?=[" LETTER "])([^a-z]))+((?=[" LETTER "])([^A-Z]))*" CONTR "?|" NUM            \
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_UPPER_LOWER                                                                                        \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+" CONTR           \
    "?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*" CONTR "?"
#define RE_BLOOM " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+"
#define RE_LINES "[^\\n]+|[\\n]+"
#define AFMOE_DIGITS "\\p{AFMoE_digits}" /* not a regex: the digit-grouping splitter */
/* Two regexes that backtrack quadratically on long digit runs, done by hand
 * with the same result (see split_digit_groups):
 *   SuperBPE: (?=(\d{3})+(?!\d))      tiny-aya: \d{1,3}(?=(?:\d{3})*\b) */
#define SUPERBPE_DIGITS "\\p{SuperBPE_digits}"
#define TINY_AYA_DIGITS "\\p{TinyAya_digits}"

#define MAX_RE 6

typedef struct family {
    const char *name;
    const char *re[MAX_RE];
} family;

/* One entry per family of the reference (its LLAMA_VOCAB_PRE_TYPE_*). */
static const family k_families[] = {
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
    {"llama3", {RE_LLAMA3}},
    {"jais2",
     {CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s{512}(?!\\S)|"
            "\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|"
            "\\s{1,2}(?!\\S)|\\s{1}"}},
    {"deepseek-llm",
     {"[\\r\\n]",
      "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"
      "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}"
      "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"
      "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"
      "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"
      "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
      "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}"
      "\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
      "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}"
      "\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}"
      "\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"
      "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}"
      "\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
      "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"
      "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
      "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+", "\\s+$",
      "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}+"}},
    {"deepseek-v3",
     {"\\p{N}{1,3}", RE_CJK_KANA,
      RE_ASCII_PUNCT_WORD "|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|"
                          "\\s+(?!\\S)|\\s+"}},
    {"spark2_5",
     {"\\p{N}{1,3}", RE_CJK_KANA,
      RE_ASCII_PUNCT_WORD "|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+|[\\r\\n]|\\s+(?!\\S)|\\s+",
      "\\p{N}"}},
    {"youtu",
     {"[\\x{AC00}-\\x{D7A3}\\x{3131}-\\x{318E}]+|[\\x{FF01}\\x{2026}\\x{201C}\\x{201D}\\x{2018}\\x{2019}\\x{2014}"
      "\\x{FF1A}\\x{FF1B}\\x{FF0C}\\x{3001}-\\x{303F}\\x{FE30}-\\x{FE4F}]+|[\\x{3105}-\\x{312F}]+|" RE_CJK_KANA,
      RE_UPPER_LOWER "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"deepseek-coder",
     {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
      "\\p{N}"}},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}},
    {"starcoder", {"\\p{N}", RE_GPT2}},
    {"gpt2", {RE_GPT2}},
    {"qwen2", {RE_QWEN2}},
    {"qwen35",
     {CONTR "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
            "\\s+(?!\\S)|\\s+"}},
    {"bloom", {RE_BLOOM}},
    {"viking", {RE_BLOOM, "\\p{N}"}},
    {"tekken",
     {"[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])"
      "([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"chameleon",
     {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
      "[\\p{P}!-/:-@\\[-`{-~]", RE_GPT2}},
    {"gpt4o", {RE_CASE_SPLIT("\\p{L}", "\\p{N}{1,3}")}},
    {"granite-embed-multi", {RE_CASE_SPLIT("\\p{L}\\p{M}", "\\p{N}{1,3}")}},
    {"tiny-aya",
     {TINY_AYA_DIGITS, RE_UPPER_LOWER "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|"
                                                   "\\s+(?!\\S)|\\s+"}},
    {"kimi-k2",
     {"\\p{Han}+|[^\\r\\n\\p{L}\\p{N}]?\\p{Lx}+" CONTR "?|\\p{N}{1,3}" RE_TAIL}},
    {"superbpe", {"\\p{N}+", SUPERBPE_DIGITS}},
    {"bailingmoe",
     {"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
      "\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"}},
    {"seed-coder",
     {CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"ufakzeka", {"[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" RE_TAIL}},
    {"afmoe",
     {AFMOE_DIGITS,
      "[\\x{4E00}-\\x{9FFF}\\x{3400}-\\x{4DBF}\\x{F900}-\\x{FAFF}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}"
      "\\x{FF65}-\\x{FF9F}\\x{2F00}-\\x{2FDF}\\x{0E40}-\\x{0E7F}\\x{0E80}-\\x{0EFF}\\x{1780}-\\x{17FF}"
      "\\x{1000}-\\x{109F}\\x{AA60}-\\x{AA7F}\\x{A9E0}-\\x{A9FF}\\x{AC00}-\\x{D7AF}\\x{1100}-\\x{11FF}]+",
      RE_ASCII_PUNCT_WORD "|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|"
                          "\\s+(?!\\S)|\\s+"}},
    {"laguna", {RE_LINES, RE_QWEN2}},
    {"exaone-moe",
     {CONTR "|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|"
            "\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"}},
    {"gemma4", {RE_LINES}},
    {"minicpm5",
     {"\\p{N}{1,3}",
      CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"whitespace", {"\\S+"}},
};

enum {
    F_DEFAULT, F_LLAMA3, F_JAIS2, F_DEEPSEEK_LLM, F_DEEPSEEK3, F_SPARK2_5, F_YOUTU, F_DEEPSEEK_CODER, F_FALCON,
    F_STARCODER, F_GPT2, F_QWEN2, F_QWEN35, F_BLOOM, F_VIKING, F_TEKKEN, F_CHAMELEON, F_GPT4O, F_GRANITE_EMB,
    F_TINY_AYA, F_KIMI_K2, F_SUPERBPE, F_BAILINGMOE, F_SEED_CODER, F_UFAKZEKA, F_AFMOE, F_LAGUNA, F_EXAONE_MOE,
    F_GEMMA4, F_MINICPM5, F_WHITESPACE, F__COUNT
};
_Static_assert(F__COUNT == sizeof(k_families) / sizeof(k_families[0]), "one family per enum value");

struct tok_pre_def {
    const char *name;
    int family;
    unsigned flags;
};

#define NOCLEAN TOK_PRE_NO_CLEAN_SPACES
#define IGNM TOK_PRE_IGNORE_MERGES
#define SPM_LIKE (TOK_PRE_RAW | TOK_PRE_ESCAPE_SPACES | TOK_PRE_NEWLINE_WORD)

/* Every tokenizer.ggml.pre name of the reference, with the flags it sets. */
static const tok_pre_def k_names[] = {
    {"default", F_DEFAULT, 0},
    {"minicpm5", F_MINICPM5, IGNM},
    {"llama3", F_LLAMA3, IGNM | TOK_PRE_ADD_BOS},
    {"llama-v3", F_LLAMA3, IGNM | TOK_PRE_ADD_BOS},
    {"llama-bpe", F_LLAMA3, IGNM | TOK_PRE_ADD_BOS},
    {"falcon3", F_LLAMA3, IGNM | TOK_PRE_ADD_BOS},
    {"falcon-h1", F_LLAMA3, IGNM | TOK_PRE_ADD_BOS},
    {"pixtral", F_LLAMA3, IGNM | TOK_PRE_ADD_BOS},
    {"midm-2.0", F_LLAMA3, IGNM | TOK_PRE_ADD_BOS},
    {"lfm2", F_LLAMA3, IGNM | TOK_PRE_ADD_BOS},
    {"jina-v5-nano", F_LLAMA3, IGNM | TOK_PRE_ADD_BOS},
    {"deepseek-llm", F_DEEPSEEK_LLM, NOCLEAN},
    {"deepseek-coder", F_DEEPSEEK_CODER, NOCLEAN},
    {"deepseek-v3", F_DEEPSEEK3, NOCLEAN},
    {"hunyuan-dense", F_DEEPSEEK3, NOCLEAN},
    {"hy_v4", F_DEEPSEEK3, NOCLEAN},
    {"joyai-llm", F_DEEPSEEK3, NOCLEAN},
    {"spark2_5", F_SPARK2_5, NOCLEAN},
    {"youtu", F_YOUTU, NOCLEAN | IGNM},
    {"falcon", F_FALCON, 0},
    {"mpt", F_GPT2, 0},
    {"starcoder", F_STARCODER, 0},
    {"gpt-2", F_GPT2, 0},
    {"phi-2", F_GPT2, 0},
    {"jina-es", F_GPT2, 0},
    {"jina-de", F_GPT2, 0},
    {"gigachat", F_GPT2, 0},
    {"jina-v2-es", F_GPT2, 0},
    {"jina-v2-de", F_GPT2, 0},
    {"a.x-4.0", F_GPT2, 0},
    {"mellum", F_GPT2, 0},
    {"modern-bert", F_GPT2, 0},
    {"jais-2", F_JAIS2, 0},
    {"gemma4", F_GEMMA4, SPM_LIKE},
    {"granite-embed-multi-311m", F_GEMMA4, SPM_LIKE},
    {"sarvam-moe", F_GEMMA4, (SPM_LIKE & ~TOK_PRE_NEWLINE_WORD) | NOCLEAN},
    {"jina-v1-en", F_GPT2, TOK_PRE_ADD_SEP},
    {"jina-v2-code", F_GPT2, TOK_PRE_ADD_SEP},
    {"roberta-bpe", F_GPT2, TOK_PRE_ADD_SEP},
    {"whitespace", F_WHITESPACE, TOK_PRE_RAW},
    {"refact", F_STARCODER, 0},
    {"command-r", F_STARCODER, NOCLEAN},
    {"qwen2", F_QWEN2, NOCLEAN},
    {"deepseek-r1-qwen", F_QWEN2, NOCLEAN},
    {"kormo", F_QWEN2, NOCLEAN},
    {"f2llmv2", F_QWEN2, NOCLEAN},
    {"qwen35", F_QWEN35, NOCLEAN},
    {"stablelm2", F_QWEN2, 0},
    {"olmo", F_GPT2, 0},
    {"dbrx", F_LLAMA3, 0},
    {"smaug-bpe", F_LLAMA3, 0},
    {"poro-chat", F_BLOOM, NOCLEAN},
    {"glm4", F_LLAMA3, TOK_PRE_NO_BOS_ID},
    {"chatglm-bpe", F_LLAMA3, TOK_PRE_NO_BOS_ID},
    {"viking", F_VIKING, NOCLEAN},
    {"jais", F_GPT2, 0},
    {"tekken", F_TEKKEN, NOCLEAN | IGNM | TOK_PRE_ADD_BOS},
    {"smollm", F_STARCODER, NOCLEAN},
    {"codeshell", F_STARCODER, 0},
    {"bloom", F_BLOOM, 0},
    {"gpt3-finnish", F_BLOOM, 0},
    {"exaone", F_STARCODER, 0},
    {"exaone4", F_GPT2, 0},
    {"exaone-moe", F_EXAONE_MOE, 0},
    {"chameleon", F_CHAMELEON, TOK_PRE_ADD_BOS | NOCLEAN},
    {"minerva-7b", F_STARCODER, 0},
    {"megrez", F_QWEN2, 0},
    {"gpt-4o", F_GPT4O, NOCLEAN},
    {"llama4", F_GPT4O, NOCLEAN},
    {"kanana2", F_GPT4O, NOCLEAN},
    {"talkie", F_GPT4O, NOCLEAN},
    {"granite-embed-multi-97m", F_GRANITE_EMB, NOCLEAN | IGNM},
    {"tiny_aya", F_TINY_AYA, NOCLEAN},
    {"cohere2moe", F_TINY_AYA, NOCLEAN},
    {"superbpe", F_SUPERBPE, NOCLEAN},
    {"trillion", F_GPT2, NOCLEAN},
    {"granite-docling", F_GPT2, NOCLEAN},
    {"bailingmoe", F_BAILINGMOE, NOCLEAN},
    {"bailingmoe2", F_BAILINGMOE, NOCLEAN},
    {"llada-moe", F_BAILINGMOE, NOCLEAN},
    {"seed-coder", F_SEED_CODER, NOCLEAN},
    {"hunyuan", F_QWEN2, NOCLEAN},
    {"kimi-k2", F_KIMI_K2, NOCLEAN},
    {"ufakzeka", F_UFAKZEKA, NOCLEAN},
    {"grok-2", F_QWEN2, NOCLEAN},
    {"afmoe", F_AFMOE, NOCLEAN},
    {"laguna", F_LAGUNA, NOCLEAN},
    {"minimax-m2", F_GPT4O, NOCLEAN},
    {"solar-open", F_QWEN2, NOCLEAN},
    {"mellum2", F_STARCODER, 0},
};

const tok_pre_def *tok_pre_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(k_names) / sizeof(k_names[0]); i++)
        if (strlen(k_names[i].name) == len && !memcmp(k_names[i].name, name, len))
            return &k_names[i];
    return NULL;
}

unsigned tok_pre_flags(const tok_pre_def *d) { return d->flags; }
const char *tok_pre_name(const tok_pre_def *d) { return d->name; }
const char *tok_pre_family(const tok_pre_def *d) { return k_families[d->family].name; }
size_t tok_pre_count(void) { return sizeof(k_names) / sizeof(k_names[0]); }
const tok_pre_def *tok_pre_at(size_t i) { return i < tok_pre_count() ? &k_names[i] : NULL; }

/* ------------------------------------------------------ code point classes */

enum { CC_OTHER = 0xD0, CC_N = 0xD1, CC_L = 0xD2, CC_P = 0xD3, CC_M = 0xD4, CC_S = 0xD5, CC_HAN = 0xD6 };

bool tok_cp_is_space(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

static uint8_t cp_category(uint32_t cp)
{
    if (cp > 0x10FFFF)
        return CC_OTHER;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return CC_L;
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
        return CC_M;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return CC_N;
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS: case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF: case UTF8PROC_CATEGORY_PO:
        return CC_P;
    case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC: case UTF8PROC_CATEGORY_SK: case UTF8PROC_CATEGORY_SO:
        return CC_S;
    default:
        return CC_OTHER;
    }
}

/* The Han ideograph blocks Kimi-K2's splitter sets apart. */
static bool cp_is_han(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) ||
           (cp >= 0x2B820 && cp <= 0x2CEAF) || (cp >= 0x2CEB0 && cp <= 0x2EBEF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
           (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static bool cp_is_number(uint32_t cp)
{
    return cp < 0x80 ? (cp >= '0' && cp <= '9') : cp_category(cp) == CC_N;
}

/* ASCII members of each category, as the reference lists them (note: '~'
 * is in neither \p{P} nor \p{S}). */
static const char k_class_n[] = "\\x{D1}0-9";
static const char k_class_l[] = "\\x{D2}\\x{D6}A-Za-z";
static const char k_class_lx[] = "\\x{D2}A-Za-z";
static const char k_class_han[] = "\\x{D6}";
static const char k_class_p[] = "\\x{D3}!-#%-*,-/:-;?-@\\[-\\]_\\{\\}";
static const char k_class_m[] = "\\x{D4}";
static const char k_class_s[] = "\\x{D5}\\$\\+<->\\^`\\|";

static const char *category_class(const char *name, size_t n)
{
    static const struct {
        const char *name;
        const char *cls;
    } k[] = {
        {"N", k_class_n}, {"L", k_class_l}, {"Lu", k_class_l}, {"Ll", k_class_l}, {"Lt", k_class_l},
        {"Lm", k_class_l}, {"Lo", k_class_l}, {"P", k_class_p}, {"M", k_class_m}, {"S", k_class_s},
        {"Han", k_class_han}, {"Lx", k_class_lx},
    };
    for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++)
        if (strlen(k[i].name) == n && !memcmp(k[i].name, name, n))
            return k[i].cls;
    return NULL;
}

/* ----------------------------------------------------------- compilation */

typedef enum re_mode { RE_COLLAPSED, RE_WIDE, RE_AFMOE_DIGITS, RE_SUPERBPE_DIGITS, RE_TINY_AYA_DIGITS } re_mode;

typedef struct compiled_re {
    re_mode mode;
    pcre2_code *code;
} compiled_re;

struct tok_pretok {
    compiled_re re[MAX_RE];
    int n_re;
    bool need_collapsed, need_wide, han;
};

/* Rewrites a regex with \p{..} into the collapsed alphabet: outside a
 * class \p{X} becomes [..], inside one its members are inlined. Returns
 * a malloc'd string or NULL (unknown category / no memory). */
static char *collapse_regex(const char *re, bool *uses_han)
{
    size_t cap = strlen(re) * 8 + 64, o = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    bool inside = false;
    for (size_t i = 0; re[i];) {
        if (re[i] == '\\' && re[i + 1] == 'p' && re[i + 2] == '{') {
            const char *close = strchr(re + i + 3, '}');
            const char *cls = close ? category_class(re + i + 3, (size_t)(close - re - i - 3)) : NULL;
            if (!cls) {
                free(out);
                return NULL;
            }
            if (cls == k_class_han || cls == k_class_lx)
                *uses_han = true;
            size_t need = strlen(cls) + 2;
            if (o + need + 1 > cap) {
                free(out);
                return NULL; /* cannot happen: 8x the input */
            }
            if (!inside)
                out[o++] = '[';
            memcpy(out + o, cls, strlen(cls));
            o += strlen(cls);
            if (!inside)
                out[o++] = ']';
            i = (size_t)(close - re) + 1;
            continue;
        }
        if (re[i] == '\\' && re[i + 1]) { /* an escape: copy both characters */
            out[o++] = re[i++];
            out[o++] = re[i++];
            continue;
        }
        if (re[i] == '[' && !inside)
            inside = true;
        else if (re[i] == ']' && inside)
            inside = false;
        out[o++] = re[i++];
    }
    out[o] = 0;
    return out;
}

static al_status compile_one(const char *pattern, pcre2_code **out, al_error *err)
{
    size_t n = strlen(pattern);
    PCRE2_UCHAR *p = malloc((n + 1) * sizeof(PCRE2_UCHAR));
    if (!p)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i <= n; i++)
        p[i] = (unsigned char)pattern[i]; /* the patterns are ASCII */
    int ec;
    PCRE2_SIZE eo;
    *out = pcre2_compile(p, n, PCRE2_DOLLAR_ENDONLY, &ec, &eo, NULL);
    free(p);
    if (!*out) {
        PCRE2_UCHAR msg[256];
        char m8[256];
        pcre2_get_error_message(ec, msg, 256);
        size_t k = 0;
        for (; k < 255 && msg[k]; k++)
            m8[k] = (char)msg[k];
        m8[k] = 0;
        return al_err(err, AL_ERR_UNSUPPORTED, "pre-tokenizer regex: %s at %zu", m8, (size_t)eo);
    }
    (void)pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE); /* optional speed-up */
    return AL_OK;
}

al_status tok_pretok_new(const tok_pre_def *d, tok_pretok **out, al_error *err)
{
    *out = NULL;
    tok_pretok *p = calloc(1, sizeof(*p));
    if (!p)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    const family *f = &k_families[d->family];
    for (int i = 0; i < MAX_RE && f->re[i]; i++) {
        compiled_re *c = &p->re[i];
        p->n_re = i + 1;
        al_status st;
        if (!strcmp(f->re[i], AFMOE_DIGITS) || !strcmp(f->re[i], SUPERBPE_DIGITS) ||
            !strcmp(f->re[i], TINY_AYA_DIGITS)) {
            c->mode = !strcmp(f->re[i], AFMOE_DIGITS)      ? RE_AFMOE_DIGITS
                      : !strcmp(f->re[i], SUPERBPE_DIGITS) ? RE_SUPERBPE_DIGITS
                                                           : RE_TINY_AYA_DIGITS;
            continue;
        }
        if (strstr(f->re[i], "\\p{")) {
            c->mode = RE_COLLAPSED;
            p->need_collapsed = true;
            char *cre = collapse_regex(f->re[i], &p->han);
            if (!cre) {
                tok_pretok_free(p);
                return al_err(err, AL_ERR_NOMEM, "pre-tokenizer %s: cannot rewrite regex %d", d->name, i);
            }
            st = compile_one(cre, &c->code, err);
            free(cre);
        } else {
            c->mode = RE_WIDE;
            p->need_wide = true;
            st = compile_one(f->re[i], &c->code, err);
        }
        if (st) {
            tok_pretok_free(p);
            return st;
        }
    }
    *out = p;
    return AL_OK;
}

void tok_pretok_free(tok_pretok *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_re; i++)
        pcre2_code_free(p->re[i].code);
    free(p);
}

/* -------------------------------------------------------------- splitting */

static bool words_push(tok_words *w, size_t off, size_t len)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(tok_word))
            return false;
        tok_word *nv = realloc(w->v, cap * sizeof(tok_word));
        if (!nv)
            return false;
        w->v = nv;
        w->cap = cap;
    }
    w->v[w->n++] = (tok_word){(uint32_t)off, (uint32_t)len};
    return true;
}

typedef struct matcher {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *stack;
} matcher;

/* One match from pos; a deep pattern that overflows the default JIT stack
 * gets a larger one, then the interpreter. */
static int match_at(matcher *m, const pcre2_code *code, const uint32_t *s, size_t n, size_t pos, uint32_t opts)
{
    int rc = pcre2_match(code, s, n, pos, opts, m->md, m->mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !m->stack) {
        m->mctx = pcre2_match_context_create(NULL);
        m->stack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, NULL);
        if (m->mctx && m->stack) {
            pcre2_jit_stack_assign(m->mctx, NULL, m->stack);
            rc = pcre2_match(code, s, n, pos, opts, m->md, m->mctx);
        }
    }
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre2_match(code, s, n, pos, opts | PCRE2_NO_JIT, m->md, m->mctx);
    return rc;
}

/* Splits each word of in by the regex into out, as the reference's
 * regex iterator does: matches and the gaps between them become words; an
 * empty match is a boundary (then the search goes on one step further). */
static al_status split_regex(matcher *m, const pcre2_code *code, const uint32_t *subj, const tok_words *in,
                             tok_words *out, al_error *err)
{
    out->n = 0;
    for (size_t w = 0; w < in->n; w++) {
        const uint32_t *s = subj + in->v[w].off;
        size_t n = in->v[w].len, pos = 0, start = 0, base = in->v[w].off;
        uint32_t opts = 0;
        while (pos <= n) {
            int rc = match_at(m, code, s, n, pos, opts);
            if (rc == PCRE2_ERROR_NOMATCH) {
                if (!opts)
                    break;
                opts = 0; /* no non-empty match here: search from the next code point */
                pos++;
                continue;
            }
            if (rc < 0)
                return al_err(err, AL_ERR_LIMIT, "pre-tokenizer regex failed (%d)", rc);
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
            size_t ms = ov[0], me = ov[1];
            if (ms > start && !words_push(out, base + start, ms - start))
                goto oom;
            if (me > ms && !words_push(out, base + ms, me - ms))
                goto oom;
            start = me;
            pos = me;
            opts = me == ms ? PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED : 0;
        }
        if (start < n && !words_push(out, base + start, n - start))
            goto oom;
    }
    return AL_OK;
oom:
    return al_err(err, AL_ERR_NOMEM, "out of memory while pre-tokenizing");
}

/* AFMoE's digit pass: a run of n digits is cut after its first n % 3 (when
 * not 0), then every 3; the text before a run stays joined to the run's
 * first group (as the reference's splitter does). */
static al_status split_afmoe_digits(const uint32_t *cps, const tok_words *in, tok_words *out, al_error *err)
{
    out->n = 0;
    for (size_t w = 0; w < in->n; w++) {
        size_t a = in->v[w].off, b = a + in->v[w].len, prev = a, pos = a;
        while (pos < b) {
            if (!cp_is_number(cps[pos])) {
                pos++;
                continue;
            }
            size_t ds = pos;
            while (pos < b && cp_is_number(cps[pos]))
                pos++;
            size_t cnt = pos - ds, cur = ds;
            if (cnt % 3) {
                cur += cnt % 3;
                if (!words_push(out, prev, cur - prev))
                    goto oom;
                prev = cur;
            }
            while (cur < ds + cnt) {
                cur += 3;
                if (!words_push(out, prev, cur - prev))
                    goto oom;
                prev = cur;
            }
        }
        if (prev < b && !words_push(out, prev, b - prev))
            goto oom;
    }
    return AL_OK;
oom:
    return al_err(err, AL_ERR_NOMEM, "out of memory while pre-tokenizing");
}

static bool ascii_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static bool ascii_word(uint32_t c)
{
    return ascii_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

/* The two digit-group regexes, in linear time. In each word, for each
 * maximal run [a, e) of ASCII digits:
 *  - SuperBPE's lookahead matches (empty) at every p in it with e - p a
 *    positive multiple of 3: the word is cut there;
 *  - tiny-aya's \d{1,3}(?=(?:\d{3})*\b) matches only when the run is
 *    followed by a non-word character or the end (\b after a digit), first
 *    (e - a) % 3 digits (3 when 0), then threes; text around stays gaps. */
static al_status split_digit_groups(const uint32_t *cps, bool tiny_aya, const tok_words *in, tok_words *out,
                                    al_error *err)
{
    out->n = 0;
    for (size_t w = 0; w < in->n; w++) {
        size_t a0 = in->v[w].off, b = a0 + in->v[w].len, start = a0, pos = a0;
        while (pos < b) {
            if (!ascii_digit(cps[pos])) {
                pos++;
                continue;
            }
            size_t a = pos, e = pos;
            while (e < b && ascii_digit(cps[e]))
                e++;
            pos = e;
            if (!tiny_aya) {
                for (size_t p = e - ((e - a) / 3) * 3; p + 3 <= e; p += 3)
                    if (p > start) {
                        if (!words_push(out, start, p - start))
                            goto oom;
                        start = p;
                    }
                continue;
            }
            if (e < b && ascii_word(cps[e]))
                continue; /* no \b after the run: no match in it */
            size_t first = (e - a) % 3 ? (e - a) % 3 : 3;
            if (a > start && !words_push(out, start, a - start))
                goto oom;
            for (size_t p = a, len = first; p < e; p += len, len = 3)
                if (!words_push(out, p, len))
                    goto oom;
            start = e;
        }
        if (start < b && !words_push(out, start, b - start))
            goto oom;
    }
    return AL_OK;
oom:
    return al_err(err, AL_ERR_NOMEM, "out of memory while pre-tokenizing");
}

al_status tok_pretok_split(const tok_pretok *p, const uint32_t *cps, size_t n, bool drop_space, tok_words *out,
                           al_error *err)
{
    out->n = 0;
    if (!n)
        return AL_OK;
    if (n > UINT32_MAX)
        return al_err(err, AL_ERR_LIMIT, "text too long to pre-tokenize (%zu code points)", n);
    uint32_t *collapsed = NULL, *wide = NULL;
    tok_words tmp = {0};
    matcher m = {0};
    al_status st = AL_OK;
    if (p->need_collapsed && !(collapsed = malloc(n * sizeof(uint32_t))))
        goto oom;
    if (p->need_wide && !(wide = malloc(n * sizeof(uint32_t))))
        goto oom;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cps[i];
        bool ascii = c < 0x80, space = !ascii && tok_cp_is_space(c);
        if (collapsed)
            collapsed[i] = ascii ? c : space ? 0x0B : (p->han && cp_is_han(c)) ? CC_HAN : cp_category(c);
        if (wide)
            wide[i] = space ? 0x0B : c;
    }
    if (!(m.md = pcre2_match_data_create(1, NULL)))
        goto oom;
    if (!words_push(out, 0, n))
        goto oom;
    for (int r = 0; r < p->n_re && !st; r++) {
        const compiled_re *c = &p->re[r];
        if (c->mode == RE_AFMOE_DIGITS)
            st = split_afmoe_digits(cps, out, &tmp, err);
        else if (c->mode == RE_SUPERBPE_DIGITS || c->mode == RE_TINY_AYA_DIGITS)
            st = split_digit_groups(cps, c->mode == RE_TINY_AYA_DIGITS, out, &tmp, err);
        else
            st = split_regex(&m, c->code, c->mode == RE_COLLAPSED ? collapsed : wide, out, &tmp, err);
        tok_words t = *out;
        *out = tmp;
        tmp = t;
    }
    if (!st && drop_space) {
        size_t k = 0;
        for (size_t w = 0; w < out->n; w++) {
            bool all_space = true;
            for (uint32_t i = 0; i < out->v[w].len && all_space; i++)
                all_space = tok_cp_is_space(cps[out->v[w].off + i]);
            if (!all_space)
                out->v[k++] = out->v[w];
        }
        out->n = k;
    }
    goto done;
oom:
    st = al_err(err, AL_ERR_NOMEM, "out of memory while pre-tokenizing");
done:
    pcre2_match_data_free(m.md);
    pcre2_match_context_free(m.mctx);
    pcre2_jit_stack_free(m.stack);
    free(tmp.v);
    free(collapsed);
    free(wide);
    return st;
}
