/* fuzz_api.c - libFuzzer entry for the JSON bodies of the generation
 * endpoints: the first byte picks the endpoint (chat, completions, Ollama
 * chat and generate, responses), the rest is the body, parsed as the server
 * does and run through srv_parse_request (src/server/api_parse.h). Normalised
 * chat messages are then rendered through a ChatML template, as a request
 * would be. Also built without libFuzzer as a corpus replayer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"
#include "server/api_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char k_tmpl[] =
    "{%- for m in messages -%}<|im_start|>{{ m.role }}\n"
    "{%- if m.content is string %}{{ m.content }}{% else %}{% for p in m.content %}{{ p.text }}{% endfor %}{% endif -%}"
    "{%- if m.tool_calls %}{% for c in m.tool_calls %}{{ c.function.name }}{{ c.function.arguments | tojson }}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor -%}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

static al_template *g_tmpl;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!g_tmpl && al_template_parse(k_tmpl, sizeof(k_tmpl) - 1, &g_tmpl, NULL) != AL_OK)
        abort();
    srv_parse_endpoint ep = (srv_parse_endpoint)(data[0] % 5);
    json_error_t je;
    json_t *body = json_loadb((const char *)data + 1, size - 1, 0, &je);
    if (!body)
        return 0;
    al_server_config cfg = al_server_default_config();
    json_t *msgs = NULL;
    char msg[1024] = "";
    int status = srv_parse_request(body, ep, &cfg, &msgs, msg, sizeof(msg));
    if (status != 200 && (!msg[0] || status < 400 || status > 599))
        abort(); /* a refusal is a 4xx/5xx with a reason */
    if (msgs) {
        char *js = json_dumps(msgs, JSON_COMPACT);
        al_template_inputs in = {.messages_json = js, .add_generation_prompt = true, .bos_token = "", .eos_token = "", .now = "2026-01-01"};
        char *out = NULL;
        size_t n = 0;
        if (js && al_template_render(g_tmpl, &in, &out, &n, NULL) == AL_OK && strlen(out) > n)
            abort();
        free(out);
        free(js);
        json_decref(msgs);
    }
    json_decref(body);
    return 0;
}
