#!/usr/bin/env bash
# test_structured.sh - structured output on the real server: response_format
# json_schema (strict and not, streamed or not), Ollama format {schema} and
# "json", and GBNF `grammar` on /v1/chat/completions, /v1/completions,
# /api/chat and /api/generate, with random-weight tiny-qwen3 (152k vocab)
# and stories260K: every output must validate. Bad schemas and grammars are
# 400s naming what and where, and the server keeps serving. Then the
# official openai npm package's parse() with zod (when node/npm are there).
source "$(dirname "$0")/lib.sh"
QWEN3="$SHARED/models/tiny-qwen3-q8_0.gguf"

start_server main --model "$QWEN3" --model-name qwen3 --model "$STORIES" --model-name stories --chat-format chatml \
    --parallel 2 --ctx 1024 --threads 2 --max-tokens 800

SCHEMA='{"type":"object","properties":{"name":{"type":"string","maxLength":10},"age":{"type":"integer","minimum":1,"maximum":99},"kind":{"enum":["cat","dog"]},"ok":{"type":"boolean"},"tags":{"type":"array","items":{"type":"string","format":"date"},"maxItems":2},"id":{"type":"string","pattern":"^[A-Z]{2}[0-9]{3}$"}},"required":["name","age","kind","ok","id"],"additionalProperties":false}'

# valid TEXT: TEXT is JSON and satisfies SCHEMA (checked by hand in python,
# so no validator package is needed)
valid() {
    python3 - "$1" <<'PY'
import json, re, sys
d = json.loads(sys.argv[1])
assert isinstance(d, dict) and set(d) <= {"name", "age", "kind", "ok", "tags", "id"}, d
assert {"name", "age", "kind", "ok", "id"} <= set(d), d
assert isinstance(d["name"], str) and len(d["name"]) <= 10
assert type(d["age"]) is int and 1 <= d["age"] <= 99
assert d["kind"] in ("cat", "dog") and type(d["ok"]) is bool
assert re.fullmatch(r"[A-Z]{2}[0-9]{3}", d["id"])
if "tags" in d:
    assert isinstance(d["tags"], list) and len(d["tags"]) <= 2
    for t in d["tags"]:
        assert re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", t), t
PY
}

RF="\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"thing\",\"strict\":true,\"schema\":$SCHEMA}}"
for model in qwen3 stories; do
    for seed in 1 2 3 4; do
        req POST /v1/chat/completions "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"Give me JSON\"}],\"max_tokens\":700,\"seed\":$seed,\"temperature\":1,$RF}"
        T="$(jget "$BODY" 'd["choices"][0]["message"]["content"]')"
        check "$model seed $seed: json_schema output validates ($(jget "$BODY" 'd["choices"][0]["finish_reason"]'))" valid "$T"
    done
done
echo "     e.g. $T"
# strict: false takes the same path
req POST /v1/chat/completions "{\"model\":\"qwen3\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":700,\"seed\":5,\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"t\",\"strict\":false,\"schema\":$SCHEMA}}}"
check "non-strict json_schema output validates" valid "$(jget "$BODY" 'd["choices"][0]["message"]["content"]')"
# streamed (SSE): the deltas joined validate
curl -s -N "$URL/v1/chat/completions" -H 'Content-Type: application/json' \
    -d "{\"model\":\"qwen3\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":700,\"seed\":6,\"stream\":true,$RF}" >"$WORK/sse"
T="$(python3 -c '
import json,sys
out=""
for l in open(sys.argv[1]):
    if l.startswith("data: {"):
        c=json.loads(l[6:])["choices"]
        if c: out += c[0]["delta"].get("content") or ""
print(out)' "$WORK/sse")"
check "streamed json_schema output validates" valid "$T"
# /v1/completions with response_format
req POST /v1/completions "{\"model\":\"qwen3\",\"prompt\":\"JSON:\",\"max_tokens\":700,\"seed\":7,$RF}"
check "/v1/completions json_schema output validates" valid "$(jget "$BODY" 'd["choices"][0]["text"]')"

# /v1/responses: text.format json_schema goes the same way
req POST /v1/responses "{\"model\":\"qwen3\",\"input\":\"Give me JSON\",\"max_output_tokens\":700,\"temperature\":1,\"seed\":10,\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"thing\",\"strict\":true,\"schema\":$SCHEMA}}}"
check "/v1/responses text.format json_schema output validates" \
    valid "$(jget "$BODY" '"".join(c["text"] for o in d["output"] if o["type"] == "message" for c in o["content"])')"

# ---- Ollama: format {schema}, format "json", streamed or not
req POST /api/chat "{\"model\":\"qwen3\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":false,\"format\":$SCHEMA,\"options\":{\"seed\":8,\"num_predict\":700}}"
check "/api/chat format {schema} output validates" valid "$(jget "$BODY" 'd["message"]["content"]')"
curl -s -N "$URL/api/generate" -H 'Content-Type: application/json' \
    -d "{\"model\":\"stories\",\"prompt\":\"x\",\"format\":$SCHEMA,\"options\":{\"seed\":9,\"num_predict\":700}}" >"$WORK/nd"
T="$(python3 -c 'import json,sys; print("".join(json.loads(l).get("response","") for l in open(sys.argv[1]) if l.strip()))' "$WORK/nd")"
check "/api/generate format {schema} streamed output validates" valid "$T"
req POST /api/generate '{"model":"stories","prompt":"x","stream":false,"format":"json","options":{"seed":3,"num_predict":400}}'
T="$(jget "$BODY" 'd["response"]')"
if [ "$(jget "$BODY" 'd["done_reason"]')" = stop ]; then
    check "/api/generate format json is one JSON object" python3 -c 'import json,sys; assert isinstance(json.loads(sys.argv[1]), dict)' "$T"
else # cut by num_predict: a prefix of an object
    check "/api/generate format json (cut by num_predict) starts an object" python3 -c 'import sys; assert sys.argv[1].startswith("{")' "$T"
fi

# ---- GBNF grammar (llama.cpp's field) on each endpoint
G='root ::= \"answer: \" (\"yes\" | \"no\") \", \" num\nnum ::= [1-9] [0-9]{0,2}'
gbnf_ok() { python3 -c 'import re,sys; sys.exit(not re.fullmatch(r"answer: (yes|no), [1-9][0-9]{0,2}", sys.argv[1]))' "$1"; }
req POST /v1/completions "{\"model\":\"qwen3\",\"prompt\":\"q\",\"max_tokens\":50,\"seed\":1,\"grammar\":\"$G\"}"
check "/v1/completions grammar output matches ($(jget "$BODY" 'd["choices"][0]["text"]'))" gbnf_ok "$(jget "$BODY" 'd["choices"][0]["text"]')"
check "  ... and stops by itself (finish_reason stop)" [ "$(jget "$BODY" 'd["choices"][0]["finish_reason"]')" = stop ]
req POST /v1/chat/completions "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"max_tokens\":50,\"seed\":2,\"grammar\":\"$G\"}"
check "/v1/chat/completions grammar output matches" gbnf_ok "$(jget "$BODY" 'd["choices"][0]["message"]["content"]')"
req POST /api/chat "{\"model\":\"qwen3\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"stream\":false,\"grammar\":\"$G\",\"options\":{\"seed\":3}}"
check "/api/chat grammar output matches" gbnf_ok "$(jget "$BODY" 'd["message"]["content"]')"
req POST /api/generate "{\"model\":\"stories\",\"prompt\":\"q\",\"stream\":false,\"grammar\":\"$G\",\"options\":{\"seed\":4}}"
check "/api/generate grammar output matches" gbnf_ok "$(jget "$BODY" 'd["response"]')"

# ---- n choices and prompt lists: every job follows the grammar (one
# compiled grammar shared by the jobs), each choice on its own seed
req POST /v1/chat/completions "{\"model\":\"qwen3\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":3,\"max_tokens\":700,\"seed\":11,\"temperature\":1,$RF}"
check "n=3 json_schema: three choices" [ "$(jget "$BODY" 'len(d["choices"])')" = 3 ]
for k in 0 1 2; do
    check "n=3 json_schema: choice $k validates" valid "$(jget "$BODY" "d['choices'][$k]['message']['content']")"
done
check "n=3 json_schema: the choices differ (own seeds)" \
    [ "$(jget "$BODY" 'len(set(c["message"]["content"] for c in d["choices"]))')" -gt 1 ]
req POST /v1/completions "{\"model\":\"stories\",\"prompt\":[\"a\",\"b\"],\"n\":2,\"max_tokens\":50,\"seed\":12,\"temperature\":1,\"grammar\":\"$G\"}"
check "/v1/completions 2 prompts x n=2 with a grammar: four choices" [ "$(jget "$BODY" 'len(d["choices"])')" = 4 ]
for k in 0 1 2 3; do
    check "  ... choice $k matches" gbnf_ok "$(jget "$BODY" "d['choices'][$k]['text']")"
done
# logit_bias and the grammar together: the bias is applied first, then the
# mask. +100 on "no" and " no" picks them wherever the grammar allows them;
# +100 on "{" (which the grammar never allows) changes nothing.
NO_ID="$(printf 'no' | "$BIN" tokenize "$QWEN3")"
SNO_ID="$(printf ' no' | "$BIN" tokenize "$QWEN3")"
BRACE_ID="$(printf '{' | "$BIN" tokenize "$QWEN3")"
for seed in 1 2 3; do
    req POST /v1/completions "{\"model\":\"qwen3\",\"prompt\":\"q\",\"max_tokens\":50,\"seed\":$seed,\"temperature\":1,\"grammar\":\"$G\",\"logit_bias\":{\"$NO_ID\":100,\"$SNO_ID\":100,\"$BRACE_ID\":100}}"
    T="$(jget "$BODY" 'd["choices"][0]["text"]')"
    check "logit_bias + grammar, seed $seed: matches and says no ($T)" \
        bash -c 'python3 -c "import re,sys; sys.exit(not re.fullmatch(r\"answer: no, [1-9][0-9]{0,2}\", sys.argv[1]))" "$0"' "$T"
done

# ---- bad input: 400 with what and where; the server keeps serving
# err400 DESC PATH BODY FRAGMENT...: a 400 whose message holds each fragment
err400() {
    local desc="$1" path="$2" body="$3"; shift 3
    req POST "$path" "$body"
    local okk=true
    [ "$CODE" = 400 ] || okk=false
    for f in "$@"; do grep -qF -- "$f" <<<"$BODY" || okk=false; done
    if $okk; then ok "$desc"; else bad "$desc: $CODE $BODY"; fi
}
chat_rf() { echo "{\"model\":\"qwen3\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"b\",\"schema\":$1}}}"; }
err400 "\$ref loop" /v1/chat/completions "$(chat_rf '{"$ref":"#/$defs/a","$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}}}')" \
    "loop" '#/$defs/a' '"param":"response_format.json_schema.schema"'
err400 "left-recursive \$ref through anyOf" /v1/chat/completions \
    "$(chat_rf '{"$defs":{"e":{"anyOf":[{"$ref":"#/$defs/e"},{"type":"integer"}]}},"$ref":"#/$defs/e"}')" "left-recursive" '#/$defs/e'
python3 -c 'import json; print(json.dumps({"model":"qwen3","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"big","schema":{"type":"object","properties":{f"p{i}":{"type":"integer"} for i in range(10000)}}}}}))' >"$WORK/big.json"
CODE=$(curl -s -o "$WORK/big.out" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$WORK/big.json" "$URL/v1/chat/completions")
check "10,000 properties -> 400 naming the count and the location" \
    bash -c '[ "$0" = 400 ] && grep -qF "10000 properties" "$1" && grep -qF "#/properties" "$1"' "$CODE" "$WORK/big.out"
err400 "unsupported pattern" /v1/chat/completions "$(chat_rf '{"type":"string","pattern":"\\bword\\b"}')" \
    "word boundaries" "#/pattern"
err400 "Ollama format with a bad schema" /api/chat \
    '{"model":"qwen3","messages":[{"role":"user","content":"x"}],"format":{"type":"object","properties":{"a":{"type":"strnig"}}}}' \
    "unknown type 'strnig'" "#/properties/a" "'format'"
err400 "GBNF syntax error" /v1/completions '{"model":"qwen3","prompt":"x","grammar":"root ::= (\"a\""}' "grammar line 1" "')'"
err400 "GBNF undefined rule" /v1/completions '{"model":"qwen3","prompt":"x","grammar":"root ::= a b\na ::= \"x\""}' "undefined rule 'b'" "line 1, column 12"
err400 "GBNF unreachable rule" /api/generate '{"model":"qwen3","prompt":"x","grammar":"root ::= \"x\"\nlost ::= \"y\""}' "'lost'" "not reachable"
err400 "grammar with response_format" /v1/chat/completions \
    '{"model":"qwen3","messages":[{"role":"user","content":"x"}],"grammar":"root ::= \"x\"","response_format":{"type":"json_object"}}' "cannot be combined"
err400 "a huge repetition is a compile limit" /v1/completions '{"model":"qwen3","prompt":"x","grammar":"root ::= [a-z]{0,900000}"}' "the grammar needs more than"
req POST /v1/chat/completions '{"model":"qwen3","messages":[{"role":"user","content":"still there?"}],"max_tokens":5}'
check "the server still answers after the bad requests" [ "$CODE" = 200 ]

stop_server

# ---- the openai npm package: parse() with zod
if command -v node >/dev/null && command -v npm >/dev/null; then
    NPM_DIR="${AIRLOCK_NPM_STRUCTURED_DIR:-$HOME/.cache/airlock/npm-structured}"
    if [ ! -d "$NPM_DIR/node_modules/openai" ] || [ ! -d "$NPM_DIR/node_modules/zod" ]; then
        mkdir -p "$NPM_DIR"
        [ -f "$NPM_DIR/package.json" ] || echo '{"name":"airlock-structured-tests","private":true}' >"$NPM_DIR/package.json"
        (cd "$NPM_DIR" && npm install --no-audit --no-fund --silent openai@4 zod@3) || bad "npm install of openai/zod failed"
    fi
    if [ -d "$NPM_DIR/node_modules/zod" ]; then
        start_server sdk --model "$QWEN3" --model-name qwen3 --model "$STORIES" --model-name stories \
            --chat-format chatml --parallel 2 --ctx 1024 --threads 2 --max-tokens 800
        cp "$(dirname "$0")/structured_sdk.mjs" "$NPM_DIR/structured_sdk.mjs"
        node "$NPM_DIR/structured_sdk.mjs" "$URL" qwen3 stories || bad "openai parse() with zod"
    fi
else
    echo "skip - node/npm not installed: the zod parse() check did not run"
fi
finish
