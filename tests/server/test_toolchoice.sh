#!/usr/bin/env bash
# test_toolchoice.sh - tool_choice "required" and a named function through
# the real server: the reply is constrained by a grammar to a call in the
# template's format whose arguments follow the tool's parameters schema.
# The models are scripted (../shared/tools/mkscripted.py) to answer with
# plain TEXT, in the Hermes/Qwen3, Llama 3, Mistral, Granite, gpt-oss
# harmony, DeepSeek R1 and Qwen3-Coder formats, plus random-weight tiny-qwen3: the call
# must come out anyway, stream and non-stream, and validate. Then the
# official openai package (and LangChain's withStructuredOutput, which names
# a tool) when the npm cache of test_agents_node.sh is there.
source "$(dirname "$0")/lib.sh"
MK="$SHARED/tools/mkscripted.py"
V="$SHARED/vocab"
TPL="$SHARED/templates"
QWEN3="$SHARED/models/tiny-qwen3-q8_0.gguf"
if [ ! -f "$MK" ] || [ ! -f "$V/ggml-vocab-qwen2.gguf" ] || [ ! -d "$TPL" ] || [ ! -f "$QWEN3" ]; then
    echo "SKIP: mkscripted.py, vocab, templates or tiny-qwen3 missing under $SHARED"; exit 77
fi
mkmodel() { # NAME VOCAB TEMPLATE SCRIPT [mkscripted options...]
    local name="$1" vocab="$2" tpl="$3" script="$4"; shift 4
    printf '%s' "$script" >"$WORK/$name.txt"
    python3 "$MK" --vocab "$V/$vocab" --template "$TPL/$tpl" --script-file "$WORK/$name.txt" "$@" \
        -o "$WORK/$name.gguf" >"$WORK/$name.mk.log" 2>&1 || { echo "mkscripted $name failed:"; cat "$WORK/$name.mk.log"; exit 1; }
}
TEXT='Sure! The weather is nice today, I think.'
mkmodel qwen3 ggml-vocab-qwen2.gguf Qwen-Qwen3-0.6B.jinja "$TEXT"
mkmodel llama3 ggml-vocab-llama-bpe.gguf meta-llama-Llama-3.2-3B-Instruct.jinja "$TEXT" --after $'\n\n' --arch llama
mkmodel mistral ggml-vocab-llama-spm.gguf mistralai-Mistral-Nemo-Instruct-2407.jinja "$TEXT" --after ']' --arch llama
mkmodel granite ggml-vocab-qwen2.gguf ibm-granite-granite-3.3-2B-Instruct.jinja "$TEXT"
mkmodel harmony ggml-vocab-qwen2.gguf openai-gpt-oss-120b.jinja "$TEXT" --after 'assistant'
# Qwen3-Coder's XML-ish call format: a small template that shows it (the
# format is read from the template's <function=/<parameter= markers)
cat >"$WORK/coder.jinja" <<'EOF'
{%- if tools %}<|im_start|>system
You may call these tools: {% for t in tools %}{{ t.function.name }} {% endfor %}
Call one as:
<tool_call>
<function=NAME>
<parameter=KEY>
VALUE
</parameter>
</function>
</tool_call><|im_end|>
{% endif %}
{%- for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}
EOF
printf '%s' "$TEXT" >"$WORK/coder.txt"
python3 "$MK" --vocab "$V/ggml-vocab-qwen2.gguf" --template "$WORK/coder.jinja" --script-file "$WORK/coder.txt" \
    -o "$WORK/coder.gguf" >"$WORK/coder.mk.log" 2>&1 || { echo "mkscripted coder failed:"; cat "$WORK/coder.mk.log"; exit 1; }
mkmodel r1 ggml-vocab-qwen2.gguf deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja $'I weigh it.\n</think>\n\nIt is 4.'

start_server toolchoice --model "$WORK/qwen3.gguf" --model-name qwen3 --model "$WORK/llama3.gguf" --model-name llama3 \
    --model "$WORK/mistral.gguf" --model-name mistral --model "$WORK/granite.gguf" --model-name granite \
    --model "$WORK/harmony.gguf" --model-name harmony --model "$WORK/r1.gguf" --model-name r1 \
    --model "$WORK/coder.gguf" --model-name coder --model "$QWEN3" --model-name tq3 --ctx 2048 --parallel 2 --threads 2

TOOLS='[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string","maxLength":12},"unit":{"enum":["c","f"]},"days":{"type":"integer","minimum":1,"maximum":7}},"required":["city","unit"],"additionalProperties":false}}},{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"tz":{"type":"string","maxLength":8}},"required":["tz"],"additionalProperties":false}}}]'
ASK='[{"role":"user","content":"Weather in Paris?"}]'

# valid_calls FILE.json WANT_NAME MIN MAX: the reply's tool_calls (OpenAI
# shape) are MIN..MAX calls, of WANT_NAME if not "", each validating by hand
# against its tool's schema; finish_reason tool_calls.
valid_calls() {
    python3 - "$@" <<'PY'
import json, sys
calls, want, lo, hi = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
assert lo <= len(calls) <= hi, calls
for c in calls:
    f = c["function"]
    a = json.loads(f["arguments"])
    assert c["id"], c
    assert not want or f["name"] == want, (f["name"], want)
    if f["name"] == "get_weather":
        assert set(a) <= {"city", "unit", "days"} and {"city", "unit"} <= set(a), a
        assert isinstance(a["city"], str) and len(a["city"]) <= 12, a
        assert a["unit"] in ("c", "f"), a
        assert "days" not in a or (type(a["days"]) is int and 1 <= a["days"] <= 7), a
    else:
        assert f["name"] == "get_time", f
        assert set(a) == {"tz"} and isinstance(a["tz"], str) and len(a["tz"]) <= 8, a
PY
}
export -f valid_calls
# the non-stream reply: calls to $WORK/calls.json
nonstream() { # MODEL TOOL_CHOICE PARALLEL SEED
    req POST /v1/chat/completions "{\"model\":\"$1\",\"messages\":$ASK,\"tools\":$TOOLS,\"tool_choice\":$2,\"parallel_tool_calls\":$3,\"temperature\":1,\"seed\":$4,\"max_tokens\":600}"
    jget "$BODY" 'json.dumps(d["choices"][0]["message"].get("tool_calls") or [])' >"$WORK/calls.json" || echo '[]' >"$WORK/calls.json"
    FR="$(jget "$BODY" 'd["choices"][0]["finish_reason"]' || echo "error: $BODY")"
}
# the streamed reply: deltas assembled the way the SDKs do, to $WORK/calls.json
stream() { # MODEL TOOL_CHOICE PARALLEL SEED
    curl -sN "$URL/v1/chat/completions" -d "{\"model\":\"$1\",\"messages\":$ASK,\"tools\":$TOOLS,\"tool_choice\":$2,\"parallel_tool_calls\":$3,\"temperature\":1,\"seed\":$4,\"max_tokens\":600,\"stream\":true}" >"$WORK/s.txt"
    FR="$(python3 - "$WORK/s.txt" "$WORK/calls.json" <<'PY'
import json, sys
ev = [e[6:] for e in open(sys.argv[1]).read().split("\n\n") if e.startswith("data: ")]
assert ev[-1] == "[DONE]"
calls, finish = {}, None
for e in ev[:-1]:
    ch = json.loads(e)["choices"]
    if not ch:
        continue
    for t in ch[0]["delta"].get("tool_calls") or []:
        c = calls.setdefault(t["index"], {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        c["id"] += t.get("id") or ""
        c["function"]["name"] += t["function"].get("name") or ""
        c["function"]["arguments"] += t["function"].get("arguments") or ""
    finish = ch[0]["finish_reason"] or finish
json.dump([calls[k] for k in sorted(calls)], open(sys.argv[2], "w"))
print(finish)
PY
)" || FR="bad stream: $(head -c 300 "$WORK/s.txt")"
}
NAMED='{"type":"function","function":{"name":"get_time"}}'
for m in qwen3 llama3 mistral granite harmony r1 coder tq3; do
    for seed in 1 2; do
        nonstream $m '"required"' false $seed
        check "$m seed $seed: required -> one call that validates ($FR $(head -c 120 "$WORK/calls.json"))" \
            bash -c '[ "$0" = tool_calls ] && "$@"' "$FR" valid_calls "$WORK/calls.json" "" 1 1
    done
    nonstream $m "$NAMED" false 3
    check "$m: named get_time -> a get_time call that validates ($FR)" \
        bash -c '[ "$0" = tool_calls ] && "$@"' "$FR" valid_calls "$WORK/calls.json" get_time 1 1
    stream $m '"required"' false 4
    check "$m: streamed required call assembles and validates ($FR)" \
        bash -c '[ "$0" = tool_calls ] && "$@"' "$FR" valid_calls "$WORK/calls.json" "" 1 1
    stream $m "$NAMED" true 5
    check "$m: streamed named call(s), parallel allowed, validate ($FR)" \
        bash -c '[ "$0" = tool_calls ] && "$@"' "$FR" valid_calls "$WORK/calls.json" get_time 1 8
done
# R1's prompt opens <think>: the thinking is closed before the call, and split out
nonstream r1 '"required"' false 6
check "r1: the reasoning before the required call is kept" \
    [ "$(jget "$BODY" 'd["choices"][0]["message"].get("reasoning_content")')" = "I weigh it." ]
# n = 3 choices: every one a valid call
req POST /v1/chat/completions "{\"model\":\"tq3\",\"messages\":$ASK,\"tools\":$TOOLS,\"tool_choice\":\"required\",\"n\":3,\"temperature\":1,\"seed\":7,\"max_tokens\":600}"
for k in 0 1 2; do
    jget "$BODY" "json.dumps(d['choices'][$k]['message'].get('tool_calls') or [])" >"$WORK/calls.json" || echo '[]' >"$WORK/calls.json"
    check "tq3 n=3: choice $k is a valid call" valid_calls "$WORK/calls.json" "" 1 8
done
# Qwen3-Coder: a string parameter with a pattern cannot be followed in raw text
req POST /v1/chat/completions "{\"model\":\"coder\",\"messages\":$ASK,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"pattern\":\"^a+$\"}}}}}],\"tool_choice\":\"required\"}"
check "coder: a string parameter with a pattern is a 400 naming the tool" \
    bash -c '[ "$0" = 400 ] && grep -qF "tools[0].function.parameters" <<<"$1" && grep -qF "qwen3-coder" <<<"$1"' "$CODE" "$BODY"
# the Responses API takes the same tool_choice
req POST /v1/responses "{\"model\":\"qwen3\",\"input\":\"Weather?\",\"tools\":[{\"type\":\"function\",\"name\":\"get_time\",\"parameters\":{\"type\":\"object\",\"properties\":{\"tz\":{\"type\":\"string\",\"maxLength\":8}},\"required\":[\"tz\"]}}],\"tool_choice\":\"required\",\"temperature\":1,\"seed\":8}"
check "/v1/responses required: a function_call item with valid arguments" python3 -c '
import json,sys
d = json.loads(sys.argv[1])
fc = [o for o in d["output"] if o["type"] == "function_call"]
assert fc and fc[0]["name"] == "get_time", d
a = json.loads(fc[0]["arguments"]); assert set(a) == {"tz"} and len(a["tz"]) <= 8, a' "$BODY"
# auto stays free: the scripted text comes back as content
req POST /v1/chat/completions "{\"model\":\"qwen3\",\"messages\":$ASK,\"tools\":$TOOLS,\"temperature\":0}"
check "tool_choice auto is not constrained (the model's text)" [ "$(jget "$BODY" 'd["choices"][0]["message"]["content"]')" = "$TEXT" ]

# ---- bad input
req POST /v1/chat/completions "{\"model\":\"qwen3\",\"messages\":$ASK,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"pattern\":\"(a)\\\\1\"}}}}}],\"tool_choice\":\"required\"}"
check "a parameters schema the grammar cannot follow: 400 naming the tool ($BODY)" \
    bash -c '[ "$0" = 400 ] && grep -qF "tools[0].function.parameters" <<<"$1" && grep -qF "backreference" <<<"$1"' "$CODE" "$BODY"
req POST /v1/chat/completions "{\"model\":\"qwen3\",\"messages\":$ASK,\"tools\":$TOOLS,\"tool_choice\":\"required\",\"response_format\":{\"type\":\"json_object\"}}"
check "tool_choice required with response_format: 400" bash -c '[ "$0" = 400 ] && grep -qF "cannot be combined" <<<"$1"' "$CODE" "$BODY"
req POST /v1/chat/completions "{\"model\":\"qwen3\",\"messages\":$ASK,\"tools\":$TOOLS,\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"nope\"}}}"
check "tool_choice naming an unknown tool: 400" [ "$CODE" = 400 ]
req POST /v1/chat/completions '{"model":"qwen3","messages":[{"role":"user","content":"still there?"}],"max_tokens":4}'
check "the server still answers" [ "$CODE" = 200 ]

# ---- the openai package and LangChain (from test_agents_node.sh's npm cache)
NPM_DIR="${AIRLOCK_NPM_AGENTS_DIR:-$HOME/.cache/airlock/npm-agents}"
if command -v node >/dev/null && [ -d "$NPM_DIR/node_modules/openai" ] && [ -d "$NPM_DIR/node_modules/@langchain/openai" ]; then
    cp "$(dirname "$0")/toolchoice_sdk.mjs" "$NPM_DIR/toolchoice_sdk.mjs"
    node "$NPM_DIR/toolchoice_sdk.mjs" "$URL" || bad "tool_choice through the SDKs"
else
    echo "skip - node or $NPM_DIR (made by server_agents_node) missing: the SDK checks did not run"
fi
finish
