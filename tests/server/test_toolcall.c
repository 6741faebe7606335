/*
 * test_toolcall.c - chat formats read from the real templates of
 * ../shared/templates, and replies of each format parsed into reasoning,
 * content and tool calls; every prefix of a reply parsed as a stream must
 * give a prefix of the final content and reasoning and never take back a
 * call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/toolcall.h"

/* The expectations below leave unused fields of `want` out. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static char *slurp(const char *name)
{
    const char *sh = getenv("AIRLOCK_SHARED");
    char path[1024];
    snprintf(path, sizeof(path), "%s/templates/%s", sh ? sh : "../shared", name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = 0;
    fclose(f);
    return b;
}

static void detect_one(const char *file, srv_tool_fmt tools, srv_think_fmt think)
{
    char *t = slurp(file);
    if (!t) {
        fprintf(stderr, "SKIP %s: ../shared/templates not found\n", file);
        return;
    }
    srv_chat_fmt f;
    srv_chat_fmt_detect(t, &f);
    if (f.tools != tools || f.think != think)
        fail_msg("%s: tools %s think %d, want %s %d", file, srv_tool_fmt_name(f.tools), f.think,
                 srv_tool_fmt_name(tools), think);
    free(t);
}

static void formats_from_templates(void **state)
{
    (void)state;
    detect_one("Qwen-Qwen3-0.6B.jinja", SRV_TOOLS_HERMES, SRV_THINK_TAGS);
    detect_one("Qwen-Qwen2.5-7B-Instruct.jinja", SRV_TOOLS_HERMES, SRV_THINK_NONE);
    detect_one("meta-llama-Llama-3.2-3B-Instruct.jinja", SRV_TOOLS_LLAMA3, SRV_THINK_NONE);
    detect_one("mistralai-Mistral-Nemo-Instruct-2407.jinja", SRV_TOOLS_MISTRAL, SRV_THINK_NONE);
    detect_one("openai-gpt-oss-120b.jinja", SRV_TOOLS_HARMONY, SRV_THINK_HARMONY);
    detect_one("ibm-granite-granite-3.3-2B-Instruct.jinja", SRV_TOOLS_GRANITE, SRV_THINK_TAGS);
    detect_one("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", SRV_TOOLS_DEEPSEEK, SRV_THINK_TAGS);
    detect_one("google-gemma-2-2b-it.jinja", SRV_TOOLS_NONE, SRV_THINK_NONE);
    srv_chat_fmt f;
    srv_chat_fmt_detect("{{ '<tool_call>\\n<function=' }}{{ '<parameter=' }}", &f);
    assert_int_equal(f.tools, SRV_TOOLS_QWEN3_CODER);
}

typedef struct want {
    const char *reasoning;
    const char *content;
    size_t n_calls;
    const char *name[3];
    const char *args[3];
    const char *id[3];
} want;

/* Parses text whole, then every prefix as a stream, against w. */
static void check(srv_tool_fmt tf, srv_think_fmt th, bool in_think, const char *text, const want *w)
{
    srv_parse_opts o = {.tools = true, .split_reasoning = true, .in_think = in_think};
    o.fmt.tools = tf;
    o.fmt.think = th;
    srv_parsed p;
    size_t n = strlen(text);
    assert_true(srv_reply_parse(&o, text, n, true, &p));
    if (strcmp(p.reasoning, w->reasoning) || strcmp(p.content, w->content) || p.n_calls != w->n_calls)
        fail_msg("%s\n  reasoning [%s] want [%s]\n  content [%s] want [%s]\n  calls %zu want %zu", text, p.reasoning,
                 w->reasoning, p.content, w->content, p.n_calls, w->n_calls);
    for (size_t i = 0; i < w->n_calls; i++) {
        assert_string_equal(p.calls[i].name, w->name[i]);
        assert_string_equal(p.calls[i].args, w->args[i]);
        if (w->id[i])
            assert_string_equal(p.calls[i].id ? p.calls[i].id : "(none)", w->id[i]);
    }
    size_t last_calls = 0;
    for (size_t k = 0; k <= n; k++) {
        srv_parsed q;
        assert_true(srv_reply_parse(&o, text, k, false, &q));
        if (strncmp(q.content, p.content, q.n_content) || q.n_content > p.n_content)
            fail_msg("prefix %zu of %s: content [%s] is not a prefix of [%s]", k, text, q.content, p.content);
        if (strncmp(q.reasoning, p.reasoning, q.n_reasoning) || q.n_reasoning > p.n_reasoning)
            fail_msg("prefix %zu of %s: reasoning [%s] is not a prefix of [%s]", k, text, q.reasoning, p.reasoning);
        assert_true(q.n_calls >= last_calls && q.n_calls <= p.n_calls);
        for (size_t i = 0; i < q.n_calls; i++) {
            assert_string_equal(q.calls[i].name, p.calls[i].name);
            assert_string_equal(q.calls[i].args, p.calls[i].args);
        }
        last_calls = q.n_calls;
        srv_parsed_free(&q);
    }
    srv_parsed_free(&p);
}

static void hermes(void **state)
{
    (void)state;
    check(SRV_TOOLS_HERMES, SRV_THINK_TAGS, false,
          "<think>\nI should call the tool.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
          "{\"city\": \"Paris\"}}\n</tool_call>",
          &(want){"I should call the tool.", "", 1, {"get_weather"}, {"{\"city\":\"Paris\"}"}});
    check(SRV_TOOLS_HERMES, SRV_THINK_NONE, false,
          "Let me look.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": "
          "\"b\", \"arguments\": {\"x\": [1, 2]}}\n</tool_call>",
          &(want){"", "Let me look.\n", 2, {"a", "b"}, {"{}", "{\"x\":[1,2]}"}});
    /* Not a call: the text stays. */
    check(SRV_TOOLS_HERMES, SRV_THINK_TAGS, false, "Use <tool_call> tags like <tool_call>oops</tool_call>.",
          &(want){"", "Use <tool_call> tags like <tool_call>oops</tool_call>.", 0, {0}, {0}});
    /* A plain answer with thinking. */
    check(SRV_TOOLS_HERMES, SRV_THINK_TAGS, false, "<think>\nhmm\n\n</think>\n\nHello <b>there</b>",
          &(want){"hmm", "Hello <b>there</b>", 0, {0}, {0}});
    /* The prompt opened the block (DeepSeek R1). */
    check(SRV_TOOLS_DEEPSEEK, SRV_THINK_TAGS, true, "weighing it\n</think>\n\nIt is 4.",
          &(want){"weighing it", "It is 4.", 0, {0}, {0}});
    /* Unclosed at the end: all reasoning. */
    check(SRV_TOOLS_NONE, SRV_THINK_TAGS, false, "<think>still going", &(want){"still going", "", 0, {0}, {0}});
}

static void qwen3_coder(void **state)
{
    (void)state;
    check(SRV_TOOLS_QWEN3_CODER, SRV_THINK_NONE, false,
          "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n"
          "</parameter>\n</function>\n</tool_call>",
          &(want){"", "", 1, {"get_weather"}, {"{\"city\":\"Paris\",\"days\":\"3\"}"}});
}

static void llama3(void **state)
{
    (void)state;
    check(SRV_TOOLS_LLAMA3, SRV_THINK_NONE, false,
          "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
          &(want){"", "", 1, {"get_weather"}, {"{\"city\":\"Paris\"}"}});
    check(SRV_TOOLS_LLAMA3, SRV_THINK_NONE, false,
          "<|python_tag|>{\"name\": \"f\", \"parameters\": {\"q\": 1}}; {\"name\": \"g\", \"parameters\": {}}",
          &(want){"", "", 2, {"f", "g"}, {"{\"q\":1}", "{}"}});
    check(SRV_TOOLS_LLAMA3, SRV_THINK_NONE, false, "<|python_tag|>brave_search.call(query=\"weather in Paris\", n=3)",
          &(want){"", "", 1, {"brave_search"}, {"{\"query\":\"weather in Paris\",\"n\":3}"}});
    check(SRV_TOOLS_LLAMA3, SRV_THINK_NONE, false, "{not json at all}",
          &(want){"", "{not json at all}", 0, {0}, {0}});
    check(SRV_TOOLS_LLAMA3, SRV_THINK_NONE, false, "The answer is {x}.",
          &(want){"", "The answer is {x}.", 0, {0}, {0}});
}

static void mistral(void **state)
{
    (void)state;
    check(SRV_TOOLS_MISTRAL, SRV_THINK_NONE, false,
          "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abcDEF123\"}]",
          &(want){"", "", 1, {"get_weather"}, {"{\"city\":\"Paris\"}"}, {"abcDEF123"}});
    check(SRV_TOOLS_MISTRAL, SRV_THINK_NONE, false,
          "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]get_time[CALL_ID]xyz987654[ARGS]{}",
          &(want){"", "", 2, {"get_weather", "get_time"}, {"{\"city\":\"Paris\"}", "{}"}, {NULL, "xyz987654"}});
}

static void harmony(void **state)
{
    (void)state;
    check(SRV_TOOLS_HARMONY, SRV_THINK_HARMONY, false,
          "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary "
          "to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}",
          &(want){"Need weather.", "", 1, {"get_weather"}, {"{\"city\":\"Paris\"}"}});
    check(SRV_TOOLS_HARMONY, SRV_THINK_HARMONY, false,
          "<|channel|>analysis<|message|>Simple.<|end|><|start|>assistant<|channel|>final<|message|>Hi there!",
          &(want){"Simple.", "Hi there!", 0, {0}, {0}});
    check(SRV_TOOLS_HARMONY, SRV_THINK_HARMONY, false, "plain words", &(want){"", "plain words", 0, {0}, {0}});
}

static void granite_and_deepseek(void **state)
{
    (void)state;
    check(SRV_TOOLS_GRANITE, SRV_THINK_TAGS, false, "<think>Easy.</think><response>It is 4.</response>",
          &(want){"Easy.", "It is 4.", 0, {0}, {0}});
    check(SRV_TOOLS_GRANITE, SRV_THINK_TAGS, false, "Plain <response> words", &(want){"", "Plain <response> words", 0, {0}, {0}});
    check(SRV_TOOLS_GRANITE, SRV_THINK_TAGS, false,
          "<|tool_call|>[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]",
          &(want){"", "", 1, {"get_weather"}, {"{\"city\":\"Paris\"}"}});
    check(SRV_TOOLS_DEEPSEEK, SRV_THINK_TAGS, true,
          "ok\n</think>\n\n<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "begin\xef\xbd\x9c><\xef\xbd\x9ctool"
          "\xe2\x96\x81" "call\xe2\x96\x81" "begin\xef\xbd\x9c>function<\xef\xbd\x9ctool\xe2\x96\x81" "sep\xef\xbd"
          "\x9c>get_weather\n```json\n{\"city\": \"Paris\"}\n```<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81"
          "end\xef\xbd\x9c><\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "end\xef\xbd\x9c>",
          &(want){"ok", "", 1, {"get_weather"}, {"{\"city\":\"Paris\"}"}});
}

static void tools_off_leaves_text(void **state)
{
    (void)state;
    srv_parse_opts o = {.tools = false, .split_reasoning = false};
    o.fmt.tools = SRV_TOOLS_HERMES;
    o.fmt.think = SRV_THINK_TAGS;
    const char *t = "<think>x</think><tool_call>{\"name\":\"a\"}</tool_call>";
    srv_parsed p;
    assert_true(srv_reply_parse(&o, t, strlen(t), true, &p));
    assert_string_equal(p.content, t);
    assert_int_equal(p.n_calls, 0);
    srv_parsed_free(&p);
}

static void bad_tools(void **state)
{
    (void)state;
    struct {
        const char *json;
        const char *where;
    } cases[] = {
        {"[{\"type\":\"function\"}]", "tools[0].function"},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"a b\"}}]", "tools[0].function.name"},
        {"[{\"type\":\"retrieval\",\"function\":{\"name\":\"a\"}}]", "tools[0].type"},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"a\",\"parameters\":{\"type\":\"object\",\"properties\":"
         "{\"city\":{\"type\":\"text\"}}}}}]",
         "tools[0].function.parameters.properties.city.type"},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"a\",\"parameters\":{\"type\":\"object\",\"properties\":"
         "{\"city\":7}}}}]",
         "tools[0].function.parameters.properties.city"},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"a\",\"parameters\":{\"type\":\"string\"}}}]",
         "tools[0].function.parameters.type"},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"a\",\"parameters\":{\"required\":\"city\"}}}]",
         "tools[0].function.parameters.required"},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"a\"}},{\"type\":\"function\",\"function\":{\"name\":"
         "\"a\"}}]",
         "tools[1].function.name"},
        {"{}", "tools"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        json_t *t = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        assert_non_null(t);
        char where[256], msg[256];
        if (srv_tools_check(t, false, where, sizeof(where), msg, sizeof(msg)))
            fail_msg("accepted: %s", cases[i].json);
        if (strcmp(where, cases[i].where))
            fail_msg("%s: where %s want %s (%s)", cases[i].json, where, cases[i].where, msg);
        json_decref(t);
    }
    json_t *ok = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":"
                            "\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}]",
                            0, NULL);
    char where[256], msg[256];
    assert_true(srv_tools_check(ok, false, where, sizeof(where), msg, sizeof(msg)));
    json_decref(ok);
}

/* Replies made of random pieces of every format's markers, JSON and
 * words: no crash, and the stream property (prefixes only grow, calls
 * never taken back) holds for each format. Deterministic (a fixed LCG). */
static void random_replies_keep_the_stream_property(void **state)
{
    (void)state;
    static const char *const pieces[] = {
        "<think>", "</think>", "<tool_call>", "</tool_call>", "{\"name\": \"f\", \"arguments\": {\"a\": 1}}",
        "{\"name\": \"g\", \"parameters\": {}}", "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]", "<|python_tag|>",
        "<|tool_call|>", "[{\"name\": \"h\", \"arguments\": {}}]", "<|channel|>", "analysis", "final",
        "commentary to=functions.f ", "<|message|>", "<|end|>", "<|start|>assistant", "<|constrain|>json",
        "<function=f>", "<parameter=a>", "</parameter>", "</function>", "\n", " ", "hello", "{", "}", "<", "<t",
        "<response>", "</response>", "\xef\xbd\x9c", "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "begin\xef\xbd\x9c>", "```json\n",
        "<\xef\xbd\x9ctool\xe2\x96\x81" "sep\xef\xbd\x9c>", "\"", ";"};
    const srv_tool_fmt fmts[] = {SRV_TOOLS_NONE, SRV_TOOLS_HERMES, SRV_TOOLS_QWEN3_CODER, SRV_TOOLS_LLAMA3,
                                 SRV_TOOLS_MISTRAL, SRV_TOOLS_HARMONY, SRV_TOOLS_GRANITE, SRV_TOOLS_DEEPSEEK};
    uint64_t x = 12345;
    char text[512];
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = 0;
        int np = 1 + (int)((x >> 33) % 12);
        for (int k = 0; k < np; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            const char *pc = pieces[(x >> 33) % (sizeof(pieces) / sizeof(*pieces))];
            size_t l = strlen(pc);
            if (n + l >= sizeof(text))
                break;
            memcpy(text + n, pc, l);
            n += l;
        }
        text[n] = 0;
        for (size_t f = 0; f < sizeof(fmts) / sizeof(*fmts); f++) {
            for (int in_think = 0; in_think < 2; in_think++) {
                srv_parse_opts o = {.tools = true, .split_reasoning = true, .in_think = in_think};
                o.fmt.tools = fmts[f];
                o.fmt.think = fmts[f] == SRV_TOOLS_HARMONY ? SRV_THINK_HARMONY : SRV_THINK_TAGS;
                srv_parsed p;
                assert_true(srv_reply_parse(&o, text, n, true, &p));
                size_t last_calls = 0;
                for (size_t k = 0; k <= n; k++) {
                    srv_parsed q;
                    assert_true(srv_reply_parse(&o, text, k, false, &q));
                    if (q.n_content > p.n_content || memcmp(q.content, p.content, q.n_content) ||
                        q.n_reasoning > p.n_reasoning || memcmp(q.reasoning, p.reasoning, q.n_reasoning) ||
                        q.n_calls < last_calls || q.n_calls > p.n_calls)
                        fail_msg("format %s, prefix %zu of [%s]: content [%s] / [%s], reasoning [%s] / [%s], calls "
                                 "%zu / %zu",
                                 srv_tool_fmt_name(fmts[f]), k, text, q.content, p.content, q.reasoning, p.reasoning,
                                 q.n_calls, p.n_calls);
                    last_calls = q.n_calls;
                    srv_parsed_free(&q);
                }
                srv_parsed_free(&p);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(formats_from_templates), cmocka_unit_test(hermes),  cmocka_unit_test(qwen3_coder),
        cmocka_unit_test(llama3),                 cmocka_unit_test(mistral), cmocka_unit_test(harmony),
        cmocka_unit_test(granite_and_deepseek),   cmocka_unit_test(tools_off_leaves_text),
        cmocka_unit_test(bad_tools),              cmocka_unit_test(random_replies_keep_the_stream_property),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
