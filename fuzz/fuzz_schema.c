/* fuzz_schema.c - libFuzzer entry for the grammar compilers. An input
 * starting with 'G' is GBNF (the rest of it); any other input is a JSON
 * Schema, translated to GBNF and compiled. Whatever compiles is run through
 * a matcher: the input itself and a few JSON openings are fed to it. Small
 * limits keep each run short; a compiler that loops, crashes, leaks or
 * produces GBNF its own parser refuses for a reason other than a limit or
 * a grammar check is a finding. Also built without libFuzzer as a corpus
 * replayer (fuzz_replay.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/grammar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(const al_grammar *g, const uint8_t *data, size_t size)
{
    static const char *const probes[] = {"{", "{\"", "[", "\"", "1", "-0.5e3", "null", "true", "{}", "[]", "\"\\u00e9\""};
    for (size_t i = 0; i < sizeof probes / sizeof *probes; i++)
        (void)al_grammar_accepts_prefix(g, probes[i], strlen(probes[i]));
    (void)al_grammar_accepts(g, (const char *)data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    al_grammar_limits lim = al_grammar_default_limits();
    lim.max_elements = 1u << 16;
    lim.max_rules = 1u << 13;
    lim.max_properties = 200;
    lim.max_seconds = 1.0;
    al_error err;
    al_grammar *g = NULL;
    if (size > 0 && data[0] == 'G') {
        if (al_grammar_from_gbnf((const char *)data + 1, size - 1, &lim, &g, &err) == AL_OK)
            exercise(g, data + 1, size - 1);
        al_grammar_free(g);
        return 0;
    }
    char *gbnf = NULL;
    if (al_json_schema_to_gbnf((const char *)data, size, &lim, &gbnf, &err) != AL_OK)
        return 0;
    al_status st = al_grammar_from_gbnf(gbnf, strlen(gbnf), &lim, &g, &err);
    /* the translator must write GBNF its parser reads: a refusal may only
     * be a limit or a check on the grammar (recursion, reachability) */
    if (st == AL_ERR_FORMAT && strstr(err.msg, "grammar line") && !strstr(err.msg, "not reachable"))
        abort();
    if (st == AL_OK)
        exercise(g, data, size);
    al_grammar_free(g);
    free(gbnf);
    return 0;
}
