/* test_template_unit.c - the Jinja2 interpreter against outputs Jinja2
 * itself gives (cases_jinja2.h), Hugging Face's variables, the sandbox
 * limits and errors that name the template line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "airlock.h"

typedef struct tcase {
    const char *src;
    const char *want;
} tcase;

#include "cases_jinja2.h"

/* Renders src; returns the malloc'd output or NULL (status in *st, message in err). */
static char *render_full(const char *src, const char *messages, const char *tools, const char *vars,
                         const char *bos, const char *eos, bool agp, al_status *st, al_error *err)
{
    al_template *t = NULL;
    *st = al_template_parse(src, strlen(src), &t, err);
    if (*st)
        return NULL;
    al_template_inputs in = {
        .messages_json = messages ? messages : "[]",
        .tools_json = tools,
        .extra_json = vars,
        .add_generation_prompt = agp,
        .bos_token = bos,
        .eos_token = eos,
        .now = "2026-11-24",
    };
    char *out = NULL;
    size_t n = 0;
    *st = al_template_render(t, &in, &out, &n, err);
    al_template_free(t);
    if (!*st)
        assert_int_equal(strlen(out), n);
    return out;
}

static char *render(const char *src, const char *vars, al_status *st, al_error *err)
{
    return render_full(src, NULL, NULL, vars, NULL, NULL, true, st, err);
}

static void run_cases(const tcase *cases, size_t n)
{
    int fails = 0;
    for (size_t i = 0; i < n; i++) {
        al_error err = {0};
        al_status st;
        char *out = render(cases[i].src, k_vars, &st, &err);
        if (st) {
            fprintf(stderr, "case %zu: %s\n  template: %s\n", i, err.msg, cases[i].src);
            fails++;
        } else if (strcmp(out, cases[i].want)) {
            fprintf(stderr, "case %zu differs\n  template: %s\n  want: [%s]\n  got:  [%s]\n", i, cases[i].src,
                    cases[i].want, out);
            fails++;
        }
        free(out);
    }
    assert_int_equal(fails, 0);
}

#define CASES(name) run_cases(name, sizeof(name) / sizeof(name[0]))

static void test_expressions(void **s) { (void)s; CASES(k_expressions); }
static void test_methods(void **s) { (void)s; CASES(k_methods); }
static void test_filters(void **s) { (void)s; CASES(k_filters); }
static void test_tests(void **s) { (void)s; CASES(k_tests); }
static void test_loops(void **s) { (void)s; CASES(k_loops); }
static void test_macros(void **s) { (void)s; CASES(k_macros); }
static void test_whitespace(void **s) { (void)s; CASES(k_whitespace); }

static void expect_out(const char *src, const char *vars, const char *want)
{
    al_error err = {0};
    al_status st;
    char *out = render(src, vars, &st, &err);
    if (st)
        fprintf(stderr, "render failed: %s\n", err.msg);
    assert_int_equal(st, AL_OK);
    assert_string_equal(out, want);
    free(out);
}

/* status st and a message containing each of the NULL-terminated needles */
static void expect_err(const char *src, al_status want_st, ...)
{
    al_error err = {0};
    al_status st;
    char *out = render(src, NULL, &st, &err);
    free(out);
    if (st != want_st)
        fprintf(stderr, "template %.80s: status %d (%s), want %d\n", src, st, err.msg, want_st);
    assert_int_equal(st, want_st);
    va_list ap;
    va_start(ap, want_st);
    const char *needle;
    while ((needle = va_arg(ap, const char *))) {
        if (!strstr(err.msg, needle))
            fprintf(stderr, "message '%s' lacks '%s'\n", err.msg, needle);
        assert_non_null(strstr(err.msg, needle));
    }
    va_end(ap);
}

static void test_hf_variables(void **s)
{
    (void)s;
    al_error err = {0};
    al_status st;
    const char *msgs = "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                       "{\"type\":\"image\"}],\"reasoning_content\":\"r\"},"
                       "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"function\":"
                       "{\"name\":\"f\",\"arguments\":{\"x\":1}}}]}]";
    const char *src = "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools|tojson }}|"
                      "{{ documents }}|{{ enable_thinking }}|{{ messages[0].content[0].text }}|"
                      "{{ messages[0].reasoning_content }}|{{ messages[1].content is none }}|"
                      "{{ messages[1].tool_calls[0].function.arguments|tojson }}";
    char *out = render_full(src, msgs, "[{\"type\":\"function\"}]", NULL, "<s>", "</s>", false, &st, &err);
    assert_int_equal(st, AL_OK);
    /* the leading BOS is left to the tokenizer */
    assert_string_equal(out, "|</s>|False|[{\"type\": \"function\"}]|None|True|a|r|True|{\"x\": 1}");
    free(out);
    /* extra variables override the defaults */
    expect_out("{{ enable_thinking }}{{ custom }}", "{\"enable_thinking\": false, \"custom\": 7}", "False7");
    /* strftime_now sees `now` */
    expect_out("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%B %d, %Y') }}|{{ strftime_now('%A %m/%y') }}",
               NULL, "24 Nov 2026|November 24, 2026|Tuesday 11/26");
    /* no tools: none, as Hugging Face passes */
    expect_out("{{ tools is none }}{{ tools is defined }}", NULL, "TrueTrue");
}

static void test_system_polyfill(void **s)
{
    (void)s;
    /* a template that refuses system messages gets them folded into the first user turn */
    const char *src = "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}"
                      "{{ raise_exception('System role not supported') }}{% endif %}"
                      "<{{ m.role }}>{{ m.content }}{% endfor %}";
    al_error err = {0};
    al_status st;
    char *out = render_full(src, "[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"U\"}]",
                            NULL, NULL, "<bos>", NULL, true, &st, &err);
    assert_int_equal(st, AL_OK);
    assert_string_equal(out, "<user>S\nU");
    free(out);
    /* a template that handles them sees them unchanged */
    out = render_full("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}",
                      "[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"U\"}]", NULL, NULL,
                      NULL, NULL, true, &st, &err);
    assert_int_equal(st, AL_OK);
    assert_string_equal(out, "<system>S<user>U");
    free(out);
}

static void test_builtins(void **s)
{
    (void)s;
    const char *names[] = {"chatml", "llama2", "llama3", "mistral", "gemma", "phi3"};
    const char *msgs = "[{\"role\":\"system\",\"content\":\"Sys\"},{\"role\":\"user\",\"content\":\"Hi\"},"
                       "{\"role\":\"assistant\",\"content\":\"Yo\"},{\"role\":\"user\",\"content\":"
                       "[{\"type\":\"text\",\"text\":\"More\"}]}]";
    const char *want[] = {
        "<|im_start|>system\nSys<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n"
        "<|im_start|>user\nMore<|im_end|>\n<|im_start|>assistant\n",
        "[INST] <<SYS>>\nSys\n<</SYS>>\n\nHi [/INST] Yo </s><s>[INST] More [/INST]",
        "<|start_header_id|>system<|end_header_id|>\n\nSys<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi"
        "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nYo<|eot_id|><|start_header_id|>user"
        "<|end_header_id|>\n\nMore<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        "[INST] Sys\n\nHi [/INST]Yo</s>[INST] More [/INST]",
        "<start_of_turn>user\nSys\n\nHi<end_of_turn>\n<start_of_turn>model\nYo<end_of_turn>\n<start_of_turn>user\n"
        "More<end_of_turn>\n<start_of_turn>model\n",
        "<|system|>\nSys<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nYo<|end|>\n<|user|>\nMore<|end|>\n"
        "<|assistant|>\n",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *src = al_template_builtin(names[i]);
        assert_non_null(src);
        al_error err = {0};
        al_status st;
        char *out = render_full(src, msgs, NULL, NULL, "<s>", "</s>", true, &st, &err);
        if (st)
            fprintf(stderr, "%s: %s\n", names[i], err.msg);
        assert_int_equal(st, AL_OK);
        if (strcmp(out, want[i]))
            fprintf(stderr, "%s:\n  want [%s]\n  got  [%s]\n", names[i], want[i], out);
        assert_string_equal(out, want[i]);
        free(out);
    }
    assert_null(al_template_builtin("vicuna"));
    assert_null(al_template_builtin(NULL));
}

static void test_limits(void **s)
{
    (void)s;
    /* a runaway nested loop stops at the step limit, naming the line */
    expect_err("x\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", AL_ERR_LIMIT,
               "step limit", "line 2", NULL);
    /* huge output */
    expect_err("{% for i in range(1000000) %}{{ 'x' * 1000 }}{% endfor %}", AL_ERR_LIMIT, "output limit",
               "line 1", NULL);
    /* unbounded macro recursion */
    expect_err("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}\n\n{{ r(0) }}", AL_ERR_LIMIT, "recursion depth",
               NULL);
    /* memory: a list that doubles every iteration */
    expect_err("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
               AL_ERR_LIMIT, "memory limit", NULL);
    expect_err("{{ range(1000000000000)|length }}", AL_ERR_LIMIT, "range", NULL);
    expect_err("{{ 'ab' * 100000000000 }}", AL_ERR_LIMIT, "line 1", NULL);
    /* nesting deep enough to exhaust a parser's stack is refused at parse */
    char deep[4096];
    size_t n = 0;
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{{ ");
    for (int i = 0; i < 1000; i++)
        deep[n++] = '(';
    deep[n++] = '1';
    for (int i = 0; i < 1000; i++)
        deep[n++] = ')';
    snprintf(deep + n, sizeof(deep) - n, " }}");
    expect_err(deep, AL_ERR_TEMPLATE, "nested too deeply", "line 1", NULL);
    /* a namespace that contains itself cannot hang or crash tojson */
    expect_err("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns|tojson }}", AL_ERR_TEMPLATE, "tojson", NULL);
    /* integer overflow is an error, not undefined behaviour */
    expect_err("{{ 9223372036854775807 + 1 }}", AL_ERR_TEMPLATE, "overflow", NULL);
}

static void test_errors(void **s)
{
    (void)s;
    expect_err("a\nb\n{{ raise_exception('Roles must alternate') }}", AL_ERR_TEMPLATE, "line 3",
               "Roles must alternate", NULL);
    expect_err("ok\n{% if x %}\nno end", AL_ERR_TEMPLATE, "endif", NULL);
    expect_err("{% for x in %}{% endfor %}", AL_ERR_TEMPLATE, "line 1", "expected an expression", NULL);
    expect_err("\n\n\n{{ 1 + 'a' }}", AL_ERR_TEMPLATE, "line 4", "unsupported operand", NULL);
    expect_err("{{ undefined_fn() }}", AL_ERR_TEMPLATE, "'undefined_fn' is undefined", NULL);
    expect_err("{{ x | nosuchfilter }}", AL_ERR_TEMPLATE, "no filter named 'nosuchfilter'", NULL);
    expect_err("{{ 1 is nosuchtest }}", AL_ERR_TEMPLATE, "no test named", NULL);
    expect_err("{% bogus %}", AL_ERR_TEMPLATE, "unknown or misplaced tag 'bogus'", NULL);
    expect_err("{{ 'unterminated }}", AL_ERR_TEMPLATE, "unterminated string", NULL);
    expect_err("{# open comment", AL_ERR_TEMPLATE, "unclosed comment", NULL);
    expect_err("{{ 1 / 0 }}", AL_ERR_TEMPLATE, "division by zero", NULL);
    expect_err("{% break %}", AL_ERR_TEMPLATE, "outside a loop", NULL);
    expect_err("{% set x = 1 %}{% set x.y = 2 %}", AL_ERR_TEMPLATE, "non-namespace", NULL);
    expect_err("{{ none|list }}", AL_ERR_TEMPLATE, "not iterable", NULL);

    /* bad inputs are errors, not crashes */
    al_template *t = NULL;
    al_error err = {0};
    assert_int_equal(al_template_parse("{{ 1 }}", 7, &t, &err), AL_OK);
    char *out = NULL;
    al_template_inputs in = {.messages_json = "{not json"};
    assert_int_equal(al_template_render(t, &in, &out, NULL, &err), AL_ERR_FORMAT);
    assert_null(out);
    in.messages_json = "{\"role\":\"user\"}";
    assert_int_equal(al_template_render(t, &in, &out, NULL, &err), AL_ERR_FORMAT);
    in.messages_json = "[]";
    in.now = "2026-02-30";
    assert_int_equal(al_template_render(t, &in, &out, NULL, &err), AL_ERR_ARG);
    al_template_free(t);
    al_template_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expressions), cmocka_unit_test(test_methods),
        cmocka_unit_test(test_filters),     cmocka_unit_test(test_tests),
        cmocka_unit_test(test_loops),       cmocka_unit_test(test_macros),
        cmocka_unit_test(test_whitespace),  cmocka_unit_test(test_hf_variables),
        cmocka_unit_test(test_system_polyfill), cmocka_unit_test(test_builtins),
        cmocka_unit_test(test_limits),      cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
