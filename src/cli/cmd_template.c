/* cmd_template.c - `airlock template`: render a chat template for a
 * conversation and print the prompt exactly (no newline added). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"
#include "cli/cli.h"
#include "cli/util.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: airlock template [MODEL.gguf] --messages MSGS.json [options]\n\n"
            "Renders a chat template (Jinja2, run in a sandbox) for a conversation and\n"
            "prints the prompt text exactly, with no newline added. A leading BOS token\n"
            "is left out of the text: the tokenizer adds it.\n\n"
            "The template comes from, in this order: --template FILE, the model's own\n"
            "tokenizer.chat_template, or --builtin NAME. A model without a template is an\n"
            "error unless a built-in format is named explicitly (never guessed).\n\n"
            "options:\n"
            "  MODEL.gguf              take the template and BOS/EOS strings from this model\n"
            "  --messages FILE         a JSON list of messages, or an object with \"messages\"\n"
            "                          (and optionally \"tools\"); \"-\" reads stdin\n"
            "  --template FILE         a Jinja2 template file (overrides the model's)\n"
            "  --builtin NAME          a built-in format: chatml, llama2, llama3, mistral,\n"
            "                          gemma, phi3 (used when there is no other template)\n"
            "  --tools FILE            a JSON list of tool definitions (overrides \"tools\")\n"
            "  --vars JSON             a JSON object of extra template variables,\n"
            "                          e.g. '{\"enable_thinking\": false}'\n"
            "  --bos S                 the BOS token string (default: the model's, or \"\")\n"
            "  --eos S                 the EOS token string (default: the model's, or \"\")\n"
            "  --now YYYY-MM-DD        the date strftime_now() sees (default: today)\n"
            "  --no-generation-prompt  do not open an assistant turn at the end\n"
            "  -h, --help              this help\n");
}

static char *read_or_fail(const char *path, const char *what)
{
    size_t n;
    char *s = cli_read_file(path, &n);
    if (!s)
        cli_errorf("template", "cannot read %s '%s': %s", what, path, strerror(errno));
    else if (strlen(s) != n) {
        cli_errorf("template", "%s '%s' contains a NUL byte", what, path);
        free(s);
        return NULL;
    }
    return s;
}

/* Reads the model's template and BOS/EOS token strings (each may be left NULL). */
static int read_model(const char *path, char **tmpl, char **bos, char **eos)
{
    al_error err = {0};
    if (al_model_peek_template(path, tmpl, bos, eos, &err)) {
        cli_errorf("template", "%s", err.msg);
        return 1;
    }
    return 0;
}

/* Splits MSGS.json into the messages array and tools (if the file is an
 * object). The returned strings are malloc'd JSON text. */
static int split_messages(const char *text, char **messages, char **tools)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j) {
        cli_errorf("template", "messages: invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
        return 1;
    }
    json_t *m = j, *t = NULL;
    if (json_is_object(j)) {
        m = json_object_get(j, "messages");
        t = json_object_get(j, "tools");
        if (!m) {
            cli_errorf("template", "messages: the object has no \"messages\"");
            json_decref(j);
            return 1;
        }
    }
    if (!json_is_array(m)) {
        cli_errorf("template", "messages: expected a list of messages");
        json_decref(j);
        return 1;
    }
    *messages = json_dumps(m, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    if (t && !json_is_null(t))
        *tools = json_dumps(t, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    json_decref(j);
    return *messages ? 0 : 1;
}

int cmd_template(int argc, char **argv)
{
    const char *model = NULL, *msgs_path = NULL, *tmpl_path = NULL, *builtin = NULL, *tools_path = NULL;
    const char *vars = NULL, *bos_arg = NULL, *eos_arg = NULL, *now = NULL;
    bool gen_prompt = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
#define OPT(name, var)                                                                                     \
    if (!strcmp(a, name)) {                                                                                \
        if (!has_val) {                                                                                    \
            cli_errorf("template", "%s needs a value", name);                                              \
            return 2;                                                                                      \
        }                                                                                                  \
        var = argv[++i];                                                                                   \
        continue;                                                                                          \
    }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            help(stdout);
            return 0;
        }
        OPT("--messages", msgs_path)
        OPT("--template", tmpl_path)
        OPT("--builtin", builtin)
        OPT("--tools", tools_path)
        OPT("--vars", vars)
        OPT("--bos", bos_arg)
        OPT("--eos", eos_arg)
        OPT("--now", now)
#undef OPT
        if (!strcmp(a, "--no-generation-prompt")) {
            gen_prompt = false;
            continue;
        }
        if (a[0] == '-' && a[1]) {
            cli_errorf("template", "unknown option '%s' (see --help)", a);
            return 2;
        }
        if (model) {
            cli_errorf("template", "more than one model given ('%s', '%s')", model, a);
            return 2;
        }
        model = a;
    }
    if (!msgs_path) {
        cli_errorf("template", "--messages is required (see --help)");
        return 2;
    }
    if (builtin && !al_template_builtin(builtin)) {
        cli_errorf("template", "unknown built-in format '%s' (chatml, llama2, llama3, mistral, gemma, phi3)",
                   builtin);
        return 2;
    }
    int rc = 1;
    char *model_tmpl = NULL, *model_bos = NULL, *model_eos = NULL, *file_tmpl = NULL;
    char *msgs_text = NULL, *messages = NULL, *tools = NULL, *tools_file = NULL, *out = NULL;
    al_template *t = NULL;
    if (model && read_model(model, &model_tmpl, &model_bos, &model_eos))
        goto done;
    const char *src;
    const char *src_name;
    if (tmpl_path) {
        if (!(file_tmpl = read_or_fail(tmpl_path, "template")))
            goto done;
        src = file_tmpl;
        src_name = tmpl_path;
    } else if (model_tmpl) {
        src = model_tmpl;
        src_name = model;
    } else if (builtin) {
        src = al_template_builtin(builtin);
        src_name = builtin;
    } else {
        if (model)
            cli_errorf("template", "%s has no chat template: name a format with --builtin NAME "
                                   "(chatml, llama2, llama3, mistral, gemma, phi3) or give --template FILE",
                       model);
        else
            cli_errorf("template", "give --template FILE, --builtin NAME or a MODEL.gguf (see --help)");
        rc = 2;
        goto done;
    }
    if (!(msgs_text = read_or_fail(msgs_path, "messages")))
        goto done;
    if (split_messages(msgs_text, &messages, &tools))
        goto done;
    if (tools_path) {
        if (!(tools_file = read_or_fail(tools_path, "tools")))
            goto done;
    }
    al_error err = {0};
    if (al_template_parse(src, strlen(src), &t, &err)) {
        cli_errorf("template", "%s: %s", src_name, err.msg);
        goto done;
    }
    al_template_inputs in = {
        .messages_json = messages,
        .tools_json = tools_file ? tools_file : tools,
        .extra_json = vars,
        .add_generation_prompt = gen_prompt,
        .bos_token = bos_arg ? bos_arg : model_bos,
        .eos_token = eos_arg ? eos_arg : model_eos,
        .now = now,
    };
    size_t n = 0;
    if (al_template_render(t, &in, &out, &n, &err)) {
        cli_errorf("template", "%s: %s", src_name, err.msg);
        goto done;
    }
    if (fwrite(out, 1, n, stdout) != n || fflush(stdout)) {
        cli_errorf("template", "write failed: %s", strerror(errno));
        goto done;
    }
    rc = 0;
done:
    al_template_free(t);
    free(out);
    free(model_tmpl);
    free(model_bos);
    free(model_eos);
    free(file_tmpl);
    free(msgs_text);
    free(messages);
    free(tools);
    free(tools_file);
    return rc;
}
