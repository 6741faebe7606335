/* fuzz_template.c - libFuzzer entry for the chat-template lexer, parser and
 * evaluator. The input is a template; it is parsed and, when that works,
 * rendered against a fixed conversation with tools, so the evaluator,
 * filters and limits all see hostile code. Also built without libFuzzer
 * as a corpus replayer (fuzz_replay.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char k_messages[] =
    "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
    "{\"role\":\"user\",\"content\":\"Hi \\u00e9 \\ud83d\\ude4f\"},"
    "{\"role\":\"assistant\",\"content\":\"<think>r</think>ok\",\"reasoning_content\":\"r\","
    "\"tool_calls\":[{\"id\":\"abcdefghi\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":{\"x\":1.5}}}]},"
    "{\"role\":\"tool\",\"content\":\"42\"},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"more\"}]}]";
static const char k_tools[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"d\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\"}}}}}]";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    al_template *t = NULL;
    al_error err;
    if (al_template_parse((const char *)data, size, &t, &err) != AL_OK)
        return 0;
    al_template_inputs in = {
        .messages_json = k_messages,
        .tools_json = k_tools,
        .add_generation_prompt = true,
        .bos_token = "<s>",
        .eos_token = "</s>",
        .now = "2026-11-24",
    };
    char *out = NULL;
    size_t n = 0;
    if (al_template_render(t, &in, &out, &n, &err) == AL_OK) {
        /* the contract: NUL-terminated, n bytes */
        if (strlen(out) > n)
            abort();
    }
    free(out);
    al_template_free(t);
    return 0;
}
