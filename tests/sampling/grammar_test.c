/*
 * grammar_test.c - GBNF and JSON Schema compilation (accepted and rejected
 * strings, errors naming what and where) and the token matcher over real
 * vocabularies from ../shared (masks checked token by token against a
 * fresh matcher; no dead ends; end-of-generation exactly when complete).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "airlock.h"
#include "sampling/grammar.h"

/* ---------------------------------------------------------------- helpers */

static al_grammar *gbnf(const char *src)
{
    al_error err = {0};
    al_grammar *g = NULL;
    if (al_grammar_from_gbnf(src, strlen(src), NULL, &g, &err) != AL_OK)
        fail_msg("grammar refused: %s\n%s", err.msg, src);
    return g;
}

static al_grammar *schema(const char *src)
{
    al_error err = {0};
    al_grammar *g = NULL;
    if (al_grammar_from_json_schema(src, strlen(src), NULL, &g, &err) != AL_OK)
        fail_msg("schema refused: %s\n%s", err.msg, src);
    return g;
}

/* Every string of yes is a sentence of g, none of no. */
static void check(al_grammar *g, const char *const *yes, const char *const *no)
{
    for (; yes && *yes; yes++)
        if (!al_grammar_accepts(g, *yes, strlen(*yes)))
            fail_msg("should accept: %s", *yes);
    for (; no && *no; no++)
        if (al_grammar_accepts(g, *no, strlen(*no)))
            fail_msg("should reject: %s", *no);
    al_grammar_free(g);
}

/* The compile error of a GBNF source or a schema must contain each of the
 * given fragments. */
static void gbnf_error(const char *src, al_status want, const char *frag1, const char *frag2)
{
    al_error err = {0};
    al_grammar *g = NULL;
    al_status st = al_grammar_from_gbnf(src, strlen(src), NULL, &g, &err);
    if (st == AL_OK)
        fail_msg("grammar accepted: %s", src);
    assert_null(g);
    assert_int_equal(st, want);
    if (frag1 && !strstr(err.msg, frag1))
        fail_msg("error '%s' lacks '%s'", err.msg, frag1);
    if (frag2 && !strstr(err.msg, frag2))
        fail_msg("error '%s' lacks '%s'", err.msg, frag2);
}

static void schema_error(const char *src, al_status want, const char *frag1, const char *frag2)
{
    al_error err = {0};
    al_grammar *g = NULL;
    al_status st = al_grammar_from_json_schema(src, strlen(src), NULL, &g, &err);
    if (st == AL_OK)
        fail_msg("schema accepted: %s", src);
    assert_null(g);
    if (want != AL_OK)
        assert_int_equal(st, want);
    if (frag1 && !strstr(err.msg, frag1))
        fail_msg("error '%s' lacks '%s'", err.msg, frag1);
    if (frag2 && !strstr(err.msg, frag2))
        fail_msg("error '%s' lacks '%s'", err.msg, frag2);
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---------------------------------------------------------------- GBNF */

static void test_gbnf_basics(void **st)
{
    (void)st;
    check(gbnf("root ::= \"a\" b* | \"x\" [0-9]{2,3}\nb ::= [bé]\n"), L("a", "ab", "abéb", "x12", "x123"),
          L("", "x", "x1", "x1234", "ac", "abe"));
    check(gbnf("root ::= (\"ab\" | \"c\")+ \"!\"?  # a comment\n"), L("ab", "cab", "abab!", "c!"),
          L("", "!", "a", "abc!!"));
    /* alternatives over several lines, nested groups, escapes */
    check(gbnf("root ::= item\n"
               "       | \"\\x41\" \"\\u00e9\" \"\\n\"\n"
               "item ::= (\n  [a-c]\n  [^a-z\\n]{1,}\n)\n"),
          L("aZ", "b09", "cÉé", "Aé\n"), L("a", "aa", "a\n", "Ae"));
    /* '.' is any character (UTF-8), never a lone continuation byte */
    check(gbnf("root ::= . .\n"), L("ab", "é€", "😀x"), L("a", "abc", "\x80\x80", "\xE2\x82"));
    /* empty alternatives and optional repeats */
    check(gbnf("root ::= \"\" | \"a\"{3} x\nx ::= \"b\"{0,2}\n"), L("", "aaa", "aaab", "aaabb"),
          L("aa", "aaabbb", "b"));
    /* a 4-byte range split into its UTF-8 sequences */
    check(gbnf("root ::= [\\U0001F600-\\U0001F64F\\u00FF-\\u0800]+\n"), L("😀", "🙏ÿࠀ", "ÿ"),
          L("😐x", "\xF0\x9F\x98", "þ", "ࠁ"));
}

/* Shared owners: the grammar lives until the last reference goes (the
 * server's n choices share one); ASan would see a use after free or leak. */
static void test_grammar_ref(void **st)
{
    (void)st;
    al_grammar *g = gbnf("root ::= \"ab\"\n");
    assert_ptr_equal(al_grammar_ref(g), g);
    assert_ptr_equal(al_grammar_ref(g), g);
    assert_null(al_grammar_ref(NULL));
    al_grammar_free(g);
    al_grammar_free(g);
    assert_true(al_grammar_accepts(g, "ab", 2)); /* one owner left */
    al_grammar_free(g);
}

static void test_gbnf_errors(void **st)
{
    (void)st;
    gbnf_error("root ::= foo\n", AL_ERR_FORMAT, "undefined rule 'foo'", "line 1, column 10");
    gbnf_error("root ::= \"a\"\nextra ::= \"b\"\n", AL_ERR_FORMAT, "'extra'", "not reachable");
    gbnf_error("root ::= \"a\n", AL_ERR_FORMAT, "unterminated string", "line 1");
    gbnf_error("root ::= [a-\n", AL_ERR_FORMAT, "line 1", NULL);
    gbnf_error("root ::= (\"a\"\n", AL_ERR_FORMAT, "')'", NULL);
    gbnf_error("root ::= \"a\" )\n", AL_ERR_FORMAT, "unbalanced ')'", NULL);
    gbnf_error("start ::= \"a\"\n", AL_ERR_FORMAT, "no 'root' rule", NULL);
    gbnf_error("root ::= \"a\"\nroot ::= \"b\"\n", AL_ERR_FORMAT, "defined twice", NULL);
    gbnf_error("root ::= x\nx ::= x \"a\" | \"b\"\n", AL_ERR_FORMAT, "'x'", "left-recursive");
    gbnf_error("root ::= y \"a\"\ny ::= \"\" | root\n", AL_ERR_FORMAT, "left-recursive", NULL);
    gbnf_error("root ::= (\"a\"?)*\n", AL_ERR_FORMAT, "left-recursive", NULL);
    gbnf_error("root ::= \"(\" root \")\"\n", AL_ERR_FORMAT, "'root'", "never complete");
}

static void test_gbnf_errors2(void **st)
{
    (void)st;
    gbnf_error("root ::= *\n", AL_ERR_FORMAT, "nothing to repeat", NULL);
    gbnf_error("root ::= [z-a]\n", AL_ERR_FORMAT, "out of order", NULL);
    gbnf_error("root ::= \"\\q\"\n", AL_ERR_FORMAT, "unknown escape", NULL);
    gbnf_error("root ::= \"a\"{3,2}\n", AL_ERR_FORMAT, "maximum below minimum", NULL);
    gbnf_error("root = \"a\"\n", AL_ERR_FORMAT, "'::='", NULL);
    /* limits: a repetition that expands past the element budget */
    al_grammar_limits lim = al_grammar_default_limits();
    lim.max_elements = 1000;
    al_error err = {0};
    al_grammar *g = NULL;
    const char *big = "root ::= (\"ab\" [0-9]){5000}\n";
    assert_int_equal(al_grammar_from_gbnf(big, strlen(big), &lim, &g, &err), AL_ERR_LIMIT);
    assert_non_null(strstr(err.msg, "1000 elements"));
    assert_null(g);
}

/* The "* " case above compiles: remove it from the error list by checking
 * it accepts. */
static void test_gbnf_star_space(void **st)
{
    (void)st;
    check(gbnf("root ::= \"a\" *\n"), L("", "a", "aaa"), L("b"));
}

static void test_json_object_grammar(void **st)
{
    (void)st;
    al_grammar *g = NULL;
    al_error err = {0};
    assert_int_equal(al_grammar_json_object(&g, &err), AL_OK);
    check(g,
          L("{}", "{\"a\":1}", "{\"a\": [1, 2.5e3, \"x\\u00e9\", {\"b\":null}], \"c\" : true}", "{\"é\":\"\\\"\"}",
            "{\n  \"a\": -0.5\n}"),
          L("", "{", "[]", "{\"a\":01}", "{\"a\":\"\x01\"}", " {}", "{} ", "{\"a\":1,}", "{\"a\"}", "{'a':1}",
            "{\"a\":\"\\x\"}", "{\"a\":1}}", "{\"a\":     1}"));
}

/* The cases of the JSON-object guard this grammar replaced. */
static void test_json_object_cases(void **st)
{
    (void)st;
    al_grammar *g = NULL;
    al_error err = {0};
    assert_int_equal(al_grammar_json_object(&g, &err), AL_OK);
    static const char *const good[] = {"{}", "{ }", "{\"a\":1}", "{\"a\":[1,2,{\"b\":null}],\"c\":false}",
                                       "{\"n\":-0.5E-7}", "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}", "{\"\":0}",
                                       "{\"x\":\"\xc3\xa9\xe2\x82\xac\"}", "{\"p\":\"\\ud83d\\ude00\"}"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (!al_grammar_accepts(g, good[i], strlen(good[i])))
            fail_msg("'%s' should be a complete object", good[i]);
    static const char *const prefix[] = {"", "{", "{\"a", "{\"a\"", "{\"a\":", "{\"a\":1", "{\"a\":-",
                                         "{\"a\":1.", "{\"a\":1e", "{\"a\":1e-", "{\"a\":t", "{\"a\":\"\\u12",
                                         "{\"a\":\"\\ud800", "{\"a\":\"\xe2\x82", "{\"a\":[", "{\"a\":[[["};
    for (size_t i = 0; i < sizeof prefix / sizeof *prefix; i++) {
        if (!al_grammar_accepts_prefix(g, prefix[i], strlen(prefix[i])))
            fail_msg("prefix '%s' refused", prefix[i]);
        if (al_grammar_accepts(g, prefix[i], strlen(prefix[i])))
            fail_msg("prefix '%s' called complete", prefix[i]);
    }
    static const char *const bad[] = {
        "[", "1", "\"a\"", "x", "{a", "{\"a\" 1", "{\"a\":}", "{\"a\":1,}", "{\"a\":01", "{\"a\":1.e",
        "{\"a\":-x", "{\"a\":+1", "{\"a\":tru}", "{\"a\":True", "{\"a\":\"\\x\"", "{\"a\":\"\\u12g",
        "{\"a\":\"\x01\"", "{\"a\":\"\xff\"", "{\"a\":\"\xc0\xaf\"", "{\"a\":\"\xed\xa0\x80\"",
        "{\"a\":\"\\udc00\"", "{\"a\":\"\\ud800x\"", "{\"a\":\"\\ud800\\u0041\"", "{\"a\":[1 2]",
        "{\"a\":[1,]", "{\"a\":[}", "{\"a\":{]", "{}}", "{},", "{}{}", "{\"a\":1}x", "{\"a\":NaN",
        "{\"a\":'s'"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (al_grammar_accepts_prefix(g, bad[i], strlen(bad[i])))
            fail_msg("'%s' accepted", bad[i]);
    /* nesting: 1000 arrays deep still parse */
    char deep[2100];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof deep, "{\"a\":");
    for (int i = 0; i < 1000; i++)
        deep[n++] = '[';
    for (int i = 0; i < 1000; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    assert_true(al_grammar_accepts(g, deep, n));
    al_grammar_free(g);
}

/* ---------------------------------------------------------------- schemas */

static void test_schema_object(void **st)
{
    (void)st;
    check(schema("{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":5},"
                 "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":120},"
                 "\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"b\"]},\"minItems\":1,\"maxItems\":2}},"
                 "\"required\":[\"name\",\"age\"],\"additionalProperties\":false}"),
          L("{\"name\":\"bob\",\"age\":42}", "{\"name\": \"bob\", \"age\": 7, \"tags\": [\"a\", \"b\"]}",
            "{\"name\":\"\",\"age\":120}", "{\"name\":\"é\\n\",\"age\":0}"),
          L("{\"name\":\"bob\",\"age\":142}", "{\"age\":7,\"name\":\"x\"}", "{\"name\":\"bobbie\",\"age\":1}",
            "{\"name\":\"b\",\"age\":1,\"tags\":[]}", "{\"name\":\"b\",\"age\":1,\"tags\":[\"a\",\"a\",\"a\"]}",
            "{\"name\":\"b\"}", "{\"name\":\"b\",\"age\":00}", "{\"name\":\"b\",\"age\":-1}",
            "{\"name\":\"b\",\"age\":1,\"x\":1}", "{\"name\":\"b\",\"age\":1.5}"));
    /* all optional: any subset in order, commas right */
    check(schema("{\"properties\":{\"a\":{\"const\":1},\"b\":{\"const\":2},\"c\":{\"const\":3}}}"),
          L("{}", "{\"a\":1}", "{\"b\":2}", "{\"a\":1,\"c\":3}", "{\"a\":1,\"b\":2,\"c\":3}", "{\"c\":3}"),
          L("{,}", "{\"a\":1,}", "{,\"b\":2}", "{\"b\":2,\"a\":1}", "{\"a\":2}"));
    /* a map: additionalProperties as a schema */
    check(schema("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"boolean\"}}"),
          L("{}", "{\"x\":true}", "{\"x\":true,\"y\":false}"), L("{\"x\":1}", "{\"x\"}"));
    /* required property missing from properties: refused by the object rule only if declared */
    check(schema("{\"type\":[\"object\",\"null\"],\"properties\":{\"k\":{\"type\":\"null\"}},\"required\":[\"k\"]}"),
          L("null", "{\"k\":null}"), L("{}", "nul"));
}

static void test_schema_values(void **st)
{
    (void)st;
    check(schema("{\"enum\":[\"red\",1,null,{\"a\":[true]}]}"), L("\"red\"", "1", "null", "{\"a\":[true]}"),
          L("\"blue\"", "2", "{\"a\":[false]}", "{ \"a\":[true]}"));
    check(schema("{\"const\":\"q\\\"uote\"}"), L("\"q\\\"uote\""), L("\"q\"uote\"", "\"quote\""));
    check(schema("{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\",\"maxLength\":1}]}"),
          L("12", "-3", "\"x\"", "\"\""), L("1.5", "\"xy\"", "true"));
    check(schema("{\"oneOf\":[{\"type\":\"boolean\"},{\"type\":\"null\"}]}"), L("true", "false", "null"), L("0"));
    check(schema("{\"type\":\"number\"}"), L("0", "-1.25", "3e10", "1E-2", "123456789012345"),
          L("01", "1.", ".5", "+1", "1e", "NaN"));
    check(schema("{\"type\":\"integer\",\"minimum\":-20,\"exclusiveMaximum\":7}"),
          L("-20", "-9", "-10", "0", "6"), L("-21", "7", "8", "-0", "100", "6.0"));
    check(schema("{\"type\":\"integer\",\"minimum\":95,\"maximum\":1234}"),
          L("95", "99", "100", "999", "1000", "1199", "1234"), L("94", "9", "1235", "1300", "2000", "0095"));
    check(schema("{\"type\":\"number\",\"minimum\":0,\"maximum\":100}"),
          L("0", "0.5", "99.999", "100", "100.0", "42"), L("-1", "-0.5", "100.5", "101", "1e2"));
    check(schema("{\"type\":\"number\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":2}"), L("0.1", "1", "1.99"),
          L("0", "0.0", "2", "2.0", "-1"));
    check(schema("{\"type\":\"number\",\"minimum\":-5,\"maximum\":-2}"), L("-5", "-2", "-3.5", "-2.0"),
          L("-1.5", "-5.5", "0", "2", "-6"));
    check(schema("{\"type\":\"boolean\",\"nullable\":true}"), L("true", "null"), L("1"));
    check(schema("{}"), L("1", "\"s\"", "[1,{\"a\":null}]", "{}"), L("", "x"));
    check(schema("true"), L("null", "[]"), L("nul"));
}

static void test_schema_strings(void **st)
{
    (void)st;
    check(schema("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}"), L("\"ab\"", "\"abc\"", "\"é\\\"x\""),
          L("\"a\"", "\"abcd\"", "ab"));
    check(schema("{\"type\":\"string\",\"format\":\"date\"}"), L("\"2024-02-29\"", "\"1999-12-31\""),
          L("\"2024-13-01\"", "\"2024-1-01\"", "\"2024-01-32\"", "\"24-01-01\""));
    check(schema("{\"type\":\"string\",\"format\":\"time\"}"), L("\"23:59:59Z\"", "\"08:00:00.123+02:00\""),
          L("\"24:00:00Z\"", "\"08:00:00\"", "\"8:00:00Z\""));
    check(schema("{\"type\":\"string\",\"format\":\"date-time\"}"), L("\"2024-05-01T10:20:30Z\""),
          L("\"2024-05-01 10:20:30Z\""));
    check(schema("{\"type\":\"string\",\"format\":\"uuid\"}"), L("\"123e4567-e89b-12d3-a456-426614174000\""),
          L("\"123e4567e89b12d3a456426614174000\"", "\"123e4567-e89b-12d3-a456-42661417400g\""));
    check(schema("{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}-\\\\d{3,4}$\"}"), L("\"AB-123\"", "\"ZZ-0000\""),
          L("\"ab-123\"", "\"AB-12\"", "\"AB-12345\"", "\"xAB-123\""));
    /* unanchored: anything around */
    check(schema("{\"type\":\"string\",\"pattern\":\"cat|dog\"}"), L("\"cat\"", "\"hotdogs\"", "\"a cat!\""),
          L("\"cow\"", "\"\""));
    /* characters JSON escapes: the pattern is over the decoded string */
    check(schema("{\"pattern\":\"^a\\\"b\\\\\\\\c\\n$\"}"), L("\"a\\\"b\\\\c\\n\""), L("\"a\"b\\c\n\"", "\"a\\\"b\\\\c\""));
    check(schema("{\"pattern\":\"^[^a]+$\"}"), L("\"b\"", "\"\\\"\"", "\"\\n\"", "\"é\""), L("\"a\"", "\"\""));
    check(schema("{\"pattern\":\"^(?:ab)+(x|y)?\\\\.$\"}"), L("\"ab.\"", "\"ababx.\""), L("\"aba.\"", "\"abz.\""));
    check(schema("{\"pattern\":\"^\\\\w+@\\\\w+\\\\.[a-z]{2,}$\"}"), L("\"a_1@b.com\""), L("\"a@b.c\"", "\"@b.com\""));
}

static void test_schema_arrays_refs(void **st)
{
    (void)st;
    check(schema("{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"maxItems\":2}"),
          L("[]", "[1]", "[1, 2]", "[ 1 ,2]"), L("[1,2,3]", "[1,]", "[\"a\"]"));
    check(schema("{\"type\":\"array\",\"prefixItems\":[{\"const\":\"a\"},{\"type\":\"integer\"}],\"minItems\":1,"
                 "\"items\":false}"),
          L("[\"a\"]", "[\"a\",1]"), L("[]", "[\"a\",1,2]", "[1]", "[\"a\",]"));
    /* recursion through $defs: a tree */
    check(schema("{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
                 "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"v\"]}},"
                 "\"$ref\":\"#/$defs/node\"}"),
          L("{\"v\":1}", "{\"v\":1,\"kids\":[{\"v\":2},{\"v\":3,\"kids\":[]}]}"), L("{\"kids\":[]}", "{\"v\":1,\"kids\":[{}]}"));
    check(schema("{\"definitions\":{\"a\":{\"type\":\"string\",\"maxLength\":1}},\"type\":\"object\","
                 "\"properties\":{\"x\":{\"$ref\":\"#/definitions/a\"},\"y\":{\"$ref\":\"#/definitions/a\"}}}"),
          L("{\"x\":\"1\",\"y\":\"\"}"), L("{\"x\":\"12\"}"));
    check(schema("{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},"
                 "{\"properties\":{\"b\":{\"type\":\"boolean\"}},\"required\":[\"b\"]}]}"),
          L("{\"a\":1,\"b\":true}"), L("{\"a\":1}", "{\"b\":true}"));
}

/* Two schemas as named rules of one grammar (what a tool-call grammar
 * needs): their rule names do not clash. */
static void test_schema_rules(void **st)
{
    (void)st;
    const char *sa = "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"maxLength\":8}},"
                     "\"required\":[\"city\"]}";
    const char *sb = "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":9},"
                     "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":2}},\"required\":[\"n\"]}";
    char *a = NULL, *b = NULL;
    al_error err = {0};
    assert_int_equal(al_json_schema_to_gbnf_rule(sa, strlen(sa), "args-weather", NULL, &a, &err), AL_OK);
    assert_int_equal(al_json_schema_to_gbnf_rule(sb, strlen(sb), "args-count", NULL, &b, &err), AL_OK);
    free(b);
    assert_int_equal(al_json_schema_to_gbnf_rule(sb, strlen(sb), "bad name", NULL, &b, &err), AL_ERR_ARG);
    assert_null(b);
    assert_int_equal(al_json_schema_to_gbnf_rule(sb, strlen(sb), "args-count", NULL, &b, &err), AL_OK);
    size_t n = strlen(a) + strlen(b) + 256;
    char *src = malloc(n);
    snprintf(src, n,
             "root ::= \"<tool_call>{\\\"name\\\": \\\"weather\\\", \\\"arguments\\\": \" args-weather \"}</tool_call>\""
             " | \"<tool_call>{\\\"name\\\": \\\"count\\\", \\\"arguments\\\": \" args-count \"}</tool_call>\"\n%s%s",
             a, b);
    check(gbnf(src),
          L("<tool_call>{\"name\": \"weather\", \"arguments\": {\"city\":\"Oslo\"}}</tool_call>",
            "<tool_call>{\"name\": \"count\", \"arguments\": {\"n\": 3, \"tags\": [\"x\"]}}</tool_call>"),
          L("<tool_call>{\"name\": \"weather\", \"arguments\": {\"n\": 3}}</tool_call>",
            "<tool_call>{\"name\": \"count\", \"arguments\": {\"n\": 10}}</tool_call>"));
    free(src);
    free(a);
    free(b);
}

/* What zod 4's z.toJSONSchema writes for common fields (email, uuid and
 * date-time patterns with leap years, positive numbers, 2^53 - 1 maxima,
 * records with propertyNames): it compiles and means what it says. */
static const char k_zod4[] = "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":\"object\",\"properties\":{\"email\":{\"type\":\"string\",\"format\":\"email\",\"pattern\":\"^(?:[A-Za-z0-9_'+\\\\-]+\\\\.)*[A-Za-z0-9_'+\\\\-]*[A-Za-z0-9_+-]@(?:[A-Za-z0-9][A-Za-z0-9\\\\-]*\\\\.)+[A-Za-z]{2,}$\"},\"url\":{\"type\":\"string\",\"format\":\"uri\"},\"id\":{\"type\":\"string\",\"format\":\"uuid\",\"pattern\":\"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$\"},\"when\":{\"type\":\"string\",\"format\":\"date-time\",\"pattern\":\"^(?:(?:\\\\d\\\\d[2468][048]|\\\\d\\\\d[13579][26]|\\\\d\\\\d0[48]|[02468][048]00|[13579][26]00)-02-29|\\\\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\\\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\\\\d|30)|(?:02)-(?:0[1-9]|1\\\\d|2[0-8])))T(?:(?:[01]\\\\d|2[0-3]):[0-5]\\\\d:[0-5]\\\\d(?:\\\\.\\\\d+)?(?:Z))$\"},\"d\":{\"type\":\"string\",\"format\":\"date\",\"pattern\":\"^(?:(?:\\\\d\\\\d[2468][048]|\\\\d\\\\d[13579][26]|\\\\d\\\\d0[48]|[02468][048]00|[13579][26]00)-02-29|\\\\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\\\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\\\\d|30)|(?:02)-(?:0[1-9]|1\\\\d|2[0-8])))$\"},\"n\":{\"type\":\"number\",\"exclusiveMinimum\":0},\"i\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":9007199254740991},\"opt\":{\"type\":\"string\"},\"nul\":{\"type\":[\"string\",\"null\"]},\"e\":{\"type\":\"string\",\"enum\":[\"a\",\"b\"]},\"lit\":{\"type\":\"string\",\"const\":\"x\"},\"arr\":{\"minItems\":1,\"type\":\"array\",\"items\":{\"type\":\"number\"}},\"rec\":{\"type\":\"object\",\"propertyNames\":{\"type\":\"string\",\"maxLength\":3},\"additionalProperties\":{\"type\":\"number\"}},\"u\":{\"type\":[\"string\",\"number\"]}},\"required\":[\"email\",\"url\",\"id\",\"when\",\"d\",\"n\",\"i\",\"nul\",\"e\",\"lit\",\"arr\",\"rec\",\"u\"],\"additionalProperties\":false}";

static void test_schema_zod(void **st)
{
    (void)st;
    check(schema(k_zod4), L("{\"email\":\"a.b@c.de\",\"url\":\"x\",\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"when\":\"2024-02-29T10:00:00Z\",\"d\":\"2023-02-28\",\"n\":0.5,\"i\":9007199254740991,\"nul\":null,\"e\":\"a\",\"lit\":\"x\",\"arr\":[1],\"rec\":{\"abc\":1},\"u\":2}"), L("{\"email\":\"a.b@c.de\",\"url\":\"x\",\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"when\":\"2023-02-29T10:00:00Z\",\"d\":\"2023-02-28\",\"n\":0.5,\"i\":1,\"nul\":null,\"e\":\"a\",\"lit\":\"x\",\"arr\":[1],\"rec\":{},\"u\":2}", "{\"email\":\"a.b@c.de\",\"url\":\"x\",\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"when\":\"2024-02-29T10:00:00Z\",\"d\":\"2023-02-28\",\"n\":0.5,\"i\":1,\"nul\":null,\"e\":\"a\",\"lit\":\"x\",\"arr\":[1],\"rec\":{\"abcd\":1},\"u\":2}", "{\"email\":\"a@b\",\"url\":\"x\",\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"when\":\"2024-02-29T10:00:00Z\",\"d\":\"2023-02-28\",\"n\":0.5,\"i\":1,\"nul\":null,\"e\":\"a\",\"lit\":\"x\",\"arr\":[1],\"rec\":{},\"u\":2}", "{\"email\":\"a.b@c.de\",\"url\":\"x\",\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"when\":\"2024-02-29T10:00:00Z\",\"d\":\"2023-02-28\",\"n\":0,\"i\":1,\"nul\":null,\"e\":\"a\",\"lit\":\"x\",\"arr\":[1],\"rec\":{},\"u\":2}"));
}

static void test_schema_errors(void **st)
{
    (void)st;
    schema_error("{\"$ref\":\"#/$defs/a\",\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\":\"#/$defs/a\"}}}",
                 AL_ERR_FORMAT, "loop", "#/$defs/a");
    schema_error("{\"$defs\":{\"a\":{\"anyOf\":[{\"$ref\":\"#/$defs/a\"},{\"type\":\"null\"}]}},\"$ref\":\"#/$defs/a\"}",
                 AL_ERR_FORMAT, "left-recursive", "#/$defs/a");
    schema_error("{\"type\":\"object\",\"properties\":{\"x\":{\"$ref\":\"#\"}},\"required\":[\"x\"]}", AL_ERR_FORMAT,
                 "never complete", NULL);
    schema_error("{\"$ref\":\"#/$defs/missing\"}", AL_ERR_FORMAT, "points to nothing", "#/$defs/missing");
    schema_error("{\"$ref\":\"http://example.com/s.json\"}", AL_ERR_UNSUPPORTED, "only references inside", NULL);
    schema_error("{\"type\":\"string\",\"pattern\":\"(a)\\\\1\"}", AL_ERR_UNSUPPORTED, "backreferences",
                 "#/pattern");
    schema_error("{\"properties\":{\"p\":{\"type\":\"string\",\"pattern\":\"(?=x)\"}}}", AL_ERR_UNSUPPORTED,
                 "lookaround", "#/properties/p/pattern");
    schema_error("{\"type\":\"string\",\"pattern\":\"a{2\"}", AL_ERR_UNSUPPORTED, "offset", NULL);
    schema_error("{\"type\":\"strin\"}", AL_ERR_FORMAT, "unknown type 'strin'", NULL);
    schema_error("{\"not\":{}}", AL_ERR_UNSUPPORTED, "'not'", NULL);
    schema_error("{\"type\":\"number\",\"minimum\":0.5}", AL_ERR_UNSUPPORTED, "integers", NULL);
    schema_error("{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", AL_ERR_FORMAT, "no integer", NULL);
    schema_error("{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", AL_ERR_FORMAT, "maxItems", NULL);
    schema_error("{\"type\":", AL_ERR_FORMAT, "invalid JSON", NULL);
    schema_error("{\"type\":\"array\",\"items\":{\"items\":{\"items\":{\"type\":\"x\"}}}}", AL_ERR_FORMAT,
                 "#/items/items/items", NULL);
    /* 10,000 properties */
    size_t cap = 10000 * 40 + 64, n = 0;
    char *big = malloc(cap);
    assert_non_null(big);
    n += (size_t)snprintf(big + n, cap - n, "{\"type\":\"object\",\"properties\":{");
    for (int i = 0; i < 10000; i++)
        n += (size_t)snprintf(big + n, cap - n, "%s\"p%d\":{\"type\":\"integer\"}", i ? "," : "", i);
    snprintf(big + n, cap - n, "}}");
    schema_error(big, AL_ERR_LIMIT, "10000 properties", "#/properties");
    free(big);
    /* deep nesting */
    char deep[4096];
    n = 0;
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"items\":");
    n += (size_t)snprintf(deep + n, sizeof deep - n, "{}");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, "}");
    schema_error(deep, AL_ERR_LIMIT, "nested deeper", NULL);
}

/* ---------------------------------------------------------------- matcher */

static al_vocab *load_vocab(const char *rel)
{
    const char *shared = getenv("AIRLOCK_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", shared ? shared : "../shared", rel);
    al_vocab *v = NULL;
    al_error err = {0};
    if (al_vocab_load(path, &v, &err) != AL_OK) {
        print_message("skipped: cannot load %s: %s\n", path, err.msg);
        return NULL;
    }
    return v;
}

typedef struct text {
    char s[8192];
    size_t n;
} text;

/* True when prefix + piece can be fed to a fresh matcher. */
static bool fresh_accepts(const al_grammar *g, const al_token_trie *trie, const text *pre, const char *piece, size_t n)
{
    al_grammar_matcher *m = al_grammar_matcher_new(g, trie, NULL);
    bool ok = al_grammar_matcher_accept_bytes(m, pre->s, pre->n) && al_grammar_matcher_accept_bytes(m, piece, n);
    al_grammar_matcher_free(m);
    return ok;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random walks through the allowed tokens: the mask never empties before
 * the end (no dead end), every allowed token is accepted, the mask agrees
 * with a fresh matcher on every token (n_check: all, or a sample), and
 * end-of-generation is allowed exactly when the output is complete. */
static void walk_grammar_opt(const al_vocab *v, const al_grammar *g, int walks, int steps, int n_check, uint64_t seed,
                             bool subset_ok)
{
    al_token_trie *trie = al_token_trie_new(v);
    assert_non_null(trie);
    int32_t nv = al_vocab_n_tokens(v);
    al_grammar_cache *cache = al_grammar_cache_new(nv, 16);
    int32_t *allowed = malloc((size_t)nv * sizeof *allowed);
    int32_t eog = al_vocab_eos(v);
    int completed = 0;
    for (int w = 0; w < walks; w++) {
        al_grammar_matcher *m = al_grammar_matcher_new(g, trie, cache);
        assert_non_null(m);
        text t = {.n = 0};
        for (int s = 0; s < steps; s++) {
            const uint64_t *mask = al_grammar_matcher_mask(m);
            assert_non_null(mask);
            int na = 0;
            for (int32_t i = 0; i < nv; i++)
                if ((mask[i / 64] >> (i % 64)) & 1)
                    allowed[na++] = i;
            if (eog >= 0)
                assert_int_equal((int)((mask[eog / 64] >> (eog % 64)) & 1), (int)al_grammar_matcher_can_end(m));
            if (al_grammar_matcher_done(m)) {
                completed++;
                break;
            }
            if (na == 0)
                fail_msg("dead end after '%.*s'", (int)t.n, t.s);
            /* the mask against a fresh matcher */
            for (int k = 0; k < (n_check ? n_check : nv); k++) {
                int32_t id = n_check ? (int32_t)(rng_next(&seed) % (uint64_t)nv) : k;
                if (al_vocab_is_eog(v, id))
                    continue;
                char piece[512];
                int32_t pn = al_token_to_piece(v, id, piece, sizeof piece, false);
                bool want = pn > 0 && pn <= (int32_t)sizeof piece && t.n + (size_t)pn < sizeof t.s &&
                            fresh_accepts(g, trie, &t, piece, (size_t)pn);
                bool got = (mask[id / 64] >> (id % 64)) & 1;
                if (want != got && t.n + 512 < sizeof t.s && !(subset_ok && want && !got))
                    fail_msg("token %d '%.*s' after '%.*s': mask %d, fresh matcher %d", id, pn > 0 ? pn : 0, piece,
                             (int)t.n, t.s, got, want);
            }
            /* prefer closing tokens half of the time so walks finish */
            int32_t pick = allowed[rng_next(&seed) % (uint64_t)na];
            if (al_vocab_is_eog(v, pick)) {
                completed++;
                break;
            }
            char piece[512];
            int32_t pn = al_token_to_piece(v, pick, piece, sizeof piece, false);
            assert_true(pn > 0);
            if (t.n + (size_t)pn >= sizeof t.s)
                break;
            assert_int_equal(al_grammar_matcher_accept_token(m, pick), AL_OK);
            memcpy(t.s + t.n, piece, (size_t)pn);
            t.n += (size_t)pn;
            if (al_grammar_matcher_can_end(m))
                assert_true(al_grammar_accepts(g, t.s, t.n));
        }
        /* a token outside the mask is refused and leaves the matcher as it was */
        al_grammar_matcher_free(m);
    }
    uint64_t hits, misses;
    al_grammar_cache_stats(cache, &hits, &misses);
    print_message("walks %d, completed %d, cache hits %llu misses %llu\n", walks, completed,
                  (unsigned long long)hits, (unsigned long long)misses);
    free(allowed);
    al_grammar_cache_free(cache);
    al_token_trie_free(trie);
}

static void walk_grammar(const al_vocab *v, const al_grammar *g, int walks, int steps, int n_check, uint64_t seed)
{
    walk_grammar_opt(v, g, walks, steps, n_check, seed, false);
}

static const char k_walk_schema[] =
    "{\"type\":\"object\",\"properties\":{\"kind\":{\"enum\":[\"cat\",\"dog\"]},"
    "\"n\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":30},\"ok\":{\"type\":\"boolean\"},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":3},\"maxItems\":2}},"
    "\"required\":[\"kind\",\"n\"]}";

/* stories260K's 512-token SentencePiece vocabulary: every token checked. */
static void test_matcher_spm(void **st)
{
    (void)st;
    al_vocab *v = load_vocab("models/stories260K.gguf");
    if (!v)
        skip();
    al_grammar *g = schema(k_walk_schema);
    walk_grammar(v, g, 20, 80, 0, 42);
    al_grammar_free(g);
    al_error err = {0};
    assert_int_equal(al_grammar_json_object(&g, &err), AL_OK);
    walk_grammar(v, g, 5, 40, 0, 7);
    al_grammar_free(g);
    al_vocab_free(v);
}

/* One cache shared by matchers: equal grammars (compiled apart) share
 * masks, different grammars never see each other's. */
static void test_cache_sharing(void **st)
{
    (void)st;
    al_vocab *v = load_vocab("models/stories260K.gguf");
    if (!v)
        skip();
    al_token_trie *trie = al_token_trie_new(v);
    int32_t nv = al_vocab_n_tokens(v);
    al_grammar_cache *c = al_grammar_cache_new(nv, 4);
    al_grammar *a1 = gbnf("root ::= \"ab\"\n"), *a2 = gbnf("root ::= \"ab\"\n"), *b = gbnf("root ::= \"cd\"\n");
    assert_int_equal(al_grammar_digest(a1), al_grammar_digest(a2));
    assert_true(al_grammar_digest(a1) != al_grammar_digest(b));
    al_grammar_matcher *m1 = al_grammar_matcher_new(a1, trie, c), *m2 = al_grammar_matcher_new(a2, trie, c),
                       *m3 = al_grammar_matcher_new(b, trie, c);
    size_t words = ((size_t)nv + 63) / 64;
    uint64_t *k1 = malloc(words * 8), *k3 = malloc(words * 8);
    memcpy(k1, al_grammar_matcher_mask(m1), words * 8);
    uint64_t hits, misses;
    al_grammar_cache_stats(c, &hits, &misses);
    assert_int_equal(misses, 1);
    assert_memory_equal(al_grammar_matcher_mask(m2), k1, words * 8);
    al_grammar_cache_stats(c, &hits, &misses);
    assert_int_equal(hits, 1);
    memcpy(k3, al_grammar_matcher_mask(m3), words * 8);
    al_grammar_cache_stats(c, &hits, &misses);
    assert_int_equal(misses, 2);
    assert_true(memcmp(k1, k3, words * 8) != 0);
    free(k1);
    free(k3);
    al_grammar_matcher_free(m1);
    al_grammar_matcher_free(m2);
    al_grammar_matcher_free(m3);
    al_grammar_free(a1);
    al_grammar_free(a2);
    al_grammar_free(b);
    al_grammar_cache_free(c);
    al_token_trie_free(trie);
    al_vocab_free(v);
}

/* Qwen2's 151,936-token byte-level BPE vocabulary: masks sampled. */
static void test_matcher_qwen(void **st)
{
    (void)st;
    al_vocab *v = load_vocab("vocab/ggml-vocab-qwen2.gguf");
    if (!v)
        skip();
    al_grammar *g = schema(k_walk_schema);
    walk_grammar(v, g, 6, 40, 300, 3);
    al_grammar_free(g);
    g = gbnf("root ::= \"Answer: \" (\"yes\" | \"no\") \".\"\n");
    walk_grammar(v, g, 3, 20, 2000, 5);
    al_grammar_free(g);
    /* an ambiguous grammar (2^depth stacks, capped): the mask's work is
     * bounded; it may then allow fewer tokens than exist, but never one
     * that is wrong, and never none */
    g = gbnf("root ::= a\na ::= \"(\" a \")\" | \"(\" a a \")\" | [a-z]+\n");
    walk_grammar_opt(v, g, 2, 30, 300, 9, true);
    al_grammar_free(g);
    /* a token the mask refuses is refused by accept_token, state unchanged */
    al_token_trie *trie = al_token_trie_new(v);
    g = gbnf("root ::= \"ab\"\n");
    al_grammar_matcher *m = al_grammar_matcher_new(g, trie, NULL);
    int32_t ids[8];
    size_t n = 0;
    al_error err = {0};
    assert_int_equal(al_tokenize(v, "xyz", 3, false, false, ids, 8, &n, &err), AL_OK);
    assert_int_equal(al_grammar_matcher_accept_token(m, ids[0]), AL_ERR_ARG);
    assert_int_equal(al_grammar_matcher_accept_token(m, al_vocab_eos(v)), AL_ERR_ARG);
    assert_true(al_grammar_matcher_accept_bytes(m, "ab", 2));
    assert_true(al_grammar_matcher_can_end(m));
    assert_true(al_grammar_matcher_done(m));
    assert_int_equal(al_grammar_matcher_accept_token(m, al_vocab_eos(v)), AL_OK);
    al_grammar_matcher_free(m);
    al_grammar_free(g);
    al_token_trie_free(trie);
    al_vocab_free(v);
}

/* A trie made with control tokens listed (tool-call markers): the grammar
 * may then pick the marker's token for its text; without the list only
 * the text spelled by ordinary tokens matches. End-of-generation tokens
 * stay out of the text even when listed. */
static void test_trie_special(void **st)
{
    (void)st;
    al_vocab *v = load_vocab("vocab/ggml-vocab-qwen2.gguf");
    if (!v)
        skip();
    int32_t ids[8], eot[8];
    size_t n = 0, ne = 0;
    al_error err = {0};
    assert_int_equal(al_tokenize(v, "<|im_start|>", 12, false, true, ids, 8, &n, &err), AL_OK);
    assert_int_equal(n, 1);
    assert_true(al_vocab_is_control(v, ids[0]) && !al_vocab_is_eog(v, ids[0]));
    assert_int_equal(al_tokenize(v, "<|im_end|>", 10, false, true, eot, 8, &ne, &err), AL_OK);
    assert_int_equal(ne, 1);
    assert_true(al_vocab_is_eog(v, eot[0]));
    int32_t listed[2] = {ids[0], eot[0]};
    al_token_trie *plain = al_token_trie_new(v), *sp = al_token_trie_new_with(v, listed, 2);
    assert_non_null(plain);
    assert_non_null(sp);
    al_grammar *g = gbnf("root ::= \"<|im_start|>x\" | \"<|im_end|>y\"\n");
    al_grammar_matcher *mp = al_grammar_matcher_new(g, plain, NULL), *ms = al_grammar_matcher_new(g, sp, NULL);
    const uint64_t *mask = al_grammar_matcher_mask(mp);
    assert_false((mask[ids[0] >> 6] >> (ids[0] & 63)) & 1);
    mask = al_grammar_matcher_mask(ms);
    assert_true((mask[ids[0] >> 6] >> (ids[0] & 63)) & 1);
    assert_false((mask[eot[0] >> 6] >> (eot[0] & 63)) & 1);
    assert_int_equal(al_grammar_matcher_accept_token(mp, ids[0]), AL_ERR_ARG);
    assert_int_equal(al_grammar_matcher_accept_token(ms, eot[0]), AL_ERR_ARG);
    assert_int_equal(al_grammar_matcher_accept_token(ms, ids[0]), AL_OK);
    assert_true(al_grammar_matcher_accept_bytes(ms, "x", 1));
    assert_true(al_grammar_matcher_done(ms));
    /* the plain trie still reaches the text through ordinary tokens */
    assert_true(al_grammar_matcher_accept_bytes(mp, "<|im_start|>x", 13));
    al_grammar_matcher_free(mp);
    al_grammar_matcher_free(ms);
    al_grammar_free(g);
    al_token_trie_free(plain);
    al_token_trie_free(sp);
    al_vocab_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gbnf_basics),        cmocka_unit_test(test_gbnf_errors),
        cmocka_unit_test(test_grammar_ref),
        cmocka_unit_test(test_gbnf_errors2),       cmocka_unit_test(test_gbnf_star_space),
        cmocka_unit_test(test_json_object_grammar), cmocka_unit_test(test_json_object_cases),
        cmocka_unit_test(test_schema_object),
        cmocka_unit_test(test_schema_values),      cmocka_unit_test(test_schema_strings),
        cmocka_unit_test(test_schema_arrays_refs), cmocka_unit_test(test_schema_rules),
        cmocka_unit_test(test_schema_zod),
        cmocka_unit_test(test_schema_errors),
        cmocka_unit_test(test_matcher_spm),        cmocka_unit_test(test_cache_sharing),
        cmocka_unit_test(test_matcher_qwen),       cmocka_unit_test(test_trie_special),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
