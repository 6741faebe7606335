#!/usr/bin/env bash
# test_agents.sh - tool calls and reasoning through the real server, with
# scripted models (../shared/tools/mkscripted.py: a real vocab and chat
# template, a reply chosen by the test) in the Hermes/Qwen3, Llama 3,
# Mistral, gpt-oss harmony, Granite and DeepSeek R1 formats; think:false against the
# template rendered with thinking off; --reasoning-format inline; CORS;
# seeds, n, logit_bias, max_tokens past the context; /api/show
# capabilities; bad tools. curl only (the SDKs: test_agents_node.sh).
source "$(dirname "$0")/lib.sh"
MK="$SHARED/tools/mkscripted.py"
V="$SHARED/vocab"
TPL="$SHARED/templates"
if [ ! -f "$MK" ] || [ ! -f "$V/ggml-vocab-qwen2.gguf" ] || [ ! -d "$TPL" ]; then
    echo "SKIP: mkscripted.py, vocab or templates missing under $SHARED"; exit 0
fi
source "$(dirname "$0")/agents_models.sh"
not() { ! "$@"; }

TOOLS='[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]'
ASK='[{"role":"user","content":"Weather in Paris?"}]'
start_server agents --model "$WORK/qwen3.gguf" --model-name qwen3 --model "$WORK/llama3.gguf" --model-name llama3 \
    --model "$WORK/mistral.gguf" --model-name mistral --model "$WORK/harmony.gguf" --model-name harmony \
    --model "$WORK/r1.gguf" --model-name r1 --model "$WORK/granite.gguf" --model-name granite \
    --model "$WORK/deepseek.gguf" --model-name deepseek --model "$STORIES" --model-name stories --chat-format chatml \
    --ctx 512 --parallel 2 --cors-origin http://app.example

# ---- each format: one call, OpenAI non-stream and stream, Ollama non-stream and stream
call_checks() { # MODEL WANT_REASONING
    local m="$1" want_r="$2"
    req POST /v1/chat/completions "{\"model\":\"$m\",\"messages\":$ASK,\"tools\":$TOOLS,\"temperature\":0}"
    check "$m: tool call (non-stream)" [ "$(jget "$BODY" '(lambda c, t: (c["finish_reason"], c["message"]["content"], t["type"], t["function"]["name"], t["function"]["arguments"], t["id"] != ""))(d["choices"][0], d["choices"][0]["message"]["tool_calls"][0])')" = "('tool_calls', None, 'function', 'get_weather', '{\"city\":\"Paris\"}', True)" ]
    check "$m: reasoning_content" [ "$(jget "$BODY" 'd["choices"][0]["message"].get("reasoning_content", "")')" = "$want_r" ]
    curl -sN "$URL/v1/chat/completions" -d "{\"model\":\"$m\",\"messages\":$ASK,\"tools\":$TOOLS,\"temperature\":0,\"stream\":true}" >"$WORK/s.txt"
    check "$m: streamed deltas assemble to the same call and reasoning" python3 - "$WORK/s.txt" "$want_r" <<'PY'
import json, sys
ev = [e[6:] for e in open(sys.argv[1]).read().split("\n\n") if e.startswith("data: ")]
assert ev[-1] == "[DONE]"
chunks = [json.loads(e) for e in ev[:-1]]
calls, reasoning, content, finish = {}, "", "", None
for c in chunks:
    ch = c["choices"][0]
    d = ch["delta"]
    reasoning += d.get("reasoning_content") or ""
    content += d.get("content") or ""
    for t in d.get("tool_calls") or []:
        e = calls.setdefault(t["index"], {"id": "", "name": "", "arguments": ""})
        e["id"] += t.get("id") or ""
        e["name"] += t["function"].get("name") or ""
        e["arguments"] += t["function"].get("arguments") or ""
    finish = ch["finish_reason"] or finish
assert finish == "tool_calls", finish
assert list(calls) == [0] and calls[0]["name"] == "get_weather" and json.loads(calls[0]["arguments"]) == {"city": "Paris"}, calls
assert calls[0]["id"], calls
assert reasoning == sys.argv[2], (reasoning, sys.argv[2])
assert content == "", content
PY
    req POST /api/chat "{\"model\":\"$m\",\"messages\":$ASK,\"tools\":$TOOLS,\"stream\":false,\"options\":{\"temperature\":0}}"
    check "$m: ollama tool_calls (arguments an object) and thinking" [ "$(jget "$BODY" '(lambda m: (m["tool_calls"][0]["function"]["name"], m["tool_calls"][0]["function"]["arguments"], m.get("thinking", ""), m["content"]))(d["message"])')" = "('get_weather', {'city': 'Paris'}, '$want_r', '')" ]
    curl -sN "$URL/api/chat" -d "{\"model\":\"$m\",\"messages\":$ASK,\"tools\":$TOOLS,\"options\":{\"temperature\":0}}" >"$WORK/n.txt"
    check "$m: ollama stream carries the call and the thinking" python3 - "$WORK/n.txt" "$want_r" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert lines[-1]["done"]
calls = [t for l in lines for t in l["message"].get("tool_calls", [])]
assert len(calls) == 1 and calls[0]["function"]["arguments"] == {"city": "Paris"}, calls
assert "".join(l["message"].get("thinking", "") for l in lines) == sys.argv[2]
PY
}
call_checks qwen3 "I should call the tool."
call_checks llama3 ""
call_checks mistral ""
call_checks harmony "Need the weather."
call_checks granite "Need weather."
call_checks deepseek "Need the weather."

# Mistral: the model's own id is kept
req POST /v1/chat/completions "{\"model\":\"mistral\",\"messages\":$ASK,\"tools\":$TOOLS,\"temperature\":0}"
check "mistral: the model's call id is kept" [ "$(jget "$BODY" 'd["choices"][0]["message"]["tool_calls"][0]["id"]')" = abcDEF123 ]

# The next turn: the call and its result go back through the template
TURN2="[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"abcDEF123\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"abcDEF123\",\"content\":\"sunny\"}]"
for m in qwen3 llama3 mistral harmony; do
    req POST /v1/chat/completions "{\"model\":\"$m\",\"messages\":$TURN2,\"tools\":$TOOLS,\"max_tokens\":4}"
    check "$m: a turn with the call and its result renders (200)" [ "$CODE" = 200 ]
done

# tool_choice none: the template sees no tools and the text is not parsed
req POST /v1/chat/completions "{\"model\":\"qwen3\",\"messages\":$ASK,\"tools\":$TOOLS,\"tool_choice\":\"none\",\"temperature\":0}"
check "tool_choice none: no tool_calls, the call stays text, finish stop" [ "$(jget "$BODY" '(lambda m: ("tool_calls" in m, "<tool_call>" in m["content"], d["choices"][0]["finish_reason"]))(d["choices"][0]["message"])')" = "(False, True, 'stop')" ]
# tool_choice named / required: the template is shown only that tool, and the
# reply is constrained to a call (test_toolchoice.sh); a model whose reply is
# that call already writes it unchanged. (Not qwen3 here: its scripted
# <think> block is not allowed before a required call.)
for m in llama3 mistral; do
    for tc in '{"type":"function","function":{"name":"get_weather"}}' '"required"'; do
        req POST /v1/chat/completions "{\"model\":\"$m\",\"messages\":$ASK,\"tools\":$TOOLS,\"tool_choice\":$tc,\"temperature\":0}"
        check "$m tool_choice $tc: the scripted call, unchanged" [ "$(jget "$BODY" '(lambda t: (t["function"]["name"], t["function"]["arguments"]))(d["choices"][0]["message"]["tool_calls"][0])')" = "('get_weather', '{\"city\":\"Paris\"}')" ]
    done
done
# no tools: the reply is content (the thinking still split)
req POST /v1/chat/completions "{\"model\":\"qwen3\",\"messages\":$ASK,\"temperature\":0}"
check "no tools: the call text is content" [ "$(jget "$BODY" '(lambda m: ("tool_calls" in m, m["content"].startswith("<tool_call>"), m["reasoning_content"]))(d["choices"][0]["message"])')" = "(False, True, 'I should call the tool.')" ]

# DeepSeek R1: the prompt opens <think>, the reply closes it
req POST /v1/chat/completions '{"model":"r1","messages":[{"role":"user","content":"2+2?"}],"temperature":0}'
check "r1: reasoning from the prompt's open <think>, then content" [ "$(jget "$BODY" '(lambda m: (m["reasoning_content"], m["content"]))(d["choices"][0]["message"])')" = "('I weigh it.', 'It is 4.')" ]
req POST /api/generate '{"model":"r1","prompt":"2+2?","stream":false}'
check "r1: /api/generate thinking and response" [ "$(jget "$BODY" '(d["thinking"], d["response"])')" = "('I weigh it.', 'It is 4.')" ]

# think:false renders the template with enable_thinking false: prompt tokens equal that rendering's
echo "$ASK" >"$WORK/ask.json"
for think in false true; do
    "$BIN" template "$WORK/qwen3.gguf" --messages "$WORK/ask.json" --vars "{\"enable_thinking\": $think}" >"$WORK/p_$think.txt"
    want=$("$BIN" tokenize "$WORK/qwen3.gguf" --special <"$WORK/p_$think.txt" | wc -w)
    req POST /api/chat "{\"model\":\"qwen3\",\"messages\":$ASK,\"think\":$think,\"stream\":false,\"options\":{\"num_predict\":1}}"
    check "think:$think: prompt_eval_count = the template rendered with enable_thinking $think ($want)" [ "$(jget "$BODY" 'd["prompt_eval_count"]')" = "$want" ]
done
check "think:false renders another prompt than think:true" not cmp -s "$WORK/p_false.txt" "$WORK/p_true.txt"
want_false=$("$BIN" tokenize "$WORK/qwen3.gguf" --special <"$WORK/p_false.txt" | wc -w)
req POST /v1/chat/completions "{\"model\":\"qwen3\",\"messages\":$ASK,\"reasoning_effort\":\"none\",\"max_tokens\":1}"
check "reasoning_effort none: prompt tokens as with thinking off ($want_false)" [ "$(jget "$BODY" 'd["usage"]["prompt_tokens"]')" = "$want_false" ]
req POST /v1/chat/completions "{\"model\":\"qwen3\",\"messages\":$ASK,\"chat_template_kwargs\":{\"enable_thinking\":false},\"max_tokens\":1}"
check "chat_template_kwargs enable_thinking false: same prompt" [ "$(jget "$BODY" 'd["usage"]["prompt_tokens"]')" = "$want_false" ]

# ---- POST /v1/responses
RT='[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]'
req POST /v1/responses "{\"model\":\"qwen3\",\"input\":\"Weather in Paris?\",\"tools\":$RT}"
check "responses: reasoning item then function_call item" [ "$(jget "$BODY" '(d["object"], d["status"], [o["type"] for o in d["output"]], d["output"][0]["content"][0]["text"], d["output"][1]["name"], d["output"][1]["arguments"], d["usage"]["output_tokens"] > 0)')" = "('response', 'completed', ['reasoning', 'function_call'], 'I should call the tool.', 'get_weather', '{\"city\":\"Paris\"}', True)" ]
curl -sN "$URL/v1/responses" -d '{"model":"r1","input":"2+2?","stream":true}' >"$WORK/r.txt"
check "responses stream: typed events in order, texts add up" python3 - "$WORK/r.txt" <<'PY'
import json, sys
evs = []
for block in open(sys.argv[1]).read().split("\n\n"):
    if not block.strip():
        continue
    lines = block.split("\n")
    assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block
    d = json.loads(lines[1][6:])
    assert d["type"] == lines[0][7:], block
    evs.append(d)
assert [e["sequence_number"] for e in evs] == list(range(len(evs)))
types = [e["type"] for e in evs]
assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed", types
r = "".join(e["delta"] for e in evs if e["type"] == "response.reasoning_text.delta")
t = "".join(e["delta"] for e in evs if e["type"] == "response.output_text.delta")
assert (r, t) == ("I weigh it.", "It is 4."), (r, t)
out = evs[-1]["response"]["output"]
assert [o["type"] for o in out] == ["reasoning", "message"] and out[1]["content"][0]["text"] == "It is 4.", out
PY
req POST /v1/responses '{"model":"stories","input":"Hi","previous_response_id":"resp_x"}'
check "responses: previous_response_id -> 400 naming it" [ "$CODE $(jget "$BODY" 'd["error"]["param"]')" = "400 previous_response_id" ]
req POST /v1/responses '{"model":"stories","input":[{"type":"web_search_call"}]}'
check "responses: an unknown input item -> 400 naming it" [ "$CODE $(jget "$BODY" 'd["error"]["param"]')" = "400 input[0].type" ]
req POST /v1/responses '{"model":"stories","input":"Hi","tools":[{"type":"function","name":"f","parameters":{"type":"object","properties":{"a":3}}}]}'
check "responses: bad tool parameters -> 400 tools[0].parameters.properties.a" [ "$CODE $(jget "$BODY" 'd["error"]["param"]')" = "400 tools[0].parameters.properties.a" ]
req POST /v1/responses '{"model":"stories","input":"Hi","max_output_tokens":3}'
check "responses: max_output_tokens -> incomplete" [ "$(jget "$BODY" '(d["status"], d["incomplete_details"]["reason"], d["usage"]["output_tokens"])')" = "('incomplete', 'max_output_tokens', 3)" ]

# ---- /api/show capabilities from the template
req POST /api/show '{"model":"qwen3"}'
check "show qwen3: completion, tools, thinking" [ "$(jget "$BODY" 'sorted(d["capabilities"])')" = "['completion', 'embedding', 'thinking', 'tools']" ]
req POST /api/show '{"model":"stories"}'
check "show stories (chatml): no tools, no thinking" [ "$(jget "$BODY" 'sorted(d["capabilities"])')" = "['completion', 'embedding']" ]

# ---- bad input: 400 naming the place
req POST /v1/chat/completions "{\"model\":\"qwen3\",\"messages\":$ASK,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"text\"}}}}}]}"
check "invalid parameters -> 400 naming tools[0].function.parameters.properties.city.type" [ "$CODE $(jget "$BODY" 'd["error"]["param"]')" = "400 tools[0].function.parameters.properties.city.type" ]
req POST /v1/chat/completions "{\"model\":\"qwen3\",\"messages\":$ASK,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"bad name\"}}]}"
check "bad function name -> 400" [ "$CODE $(jget "$BODY" 'd["error"]["param"]')" = "400 tools[0].function.name" ]
req POST /v1/chat/completions "{\"model\":\"qwen3\",\"messages\":$ASK,\"tools\":$TOOLS,\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}}"
check "tool_choice naming an unknown tool -> 400 naming it" [ "$CODE $(jget "$BODY" '"get_time" in d["error"]["message"], d["error"]["param"]')" = "400 True tool_choice.function.name" ]
req POST /v1/chat/completions "{\"model\":\"qwen3\",\"messages\":$ASK,\"tool_choice\":\"required\"}"
check "tool_choice required without tools -> 400" [ "$CODE" = 400 ]
req POST /api/chat "{\"model\":\"qwen3\",\"messages\":$ASK,\"think\":\"maybe\"}"
check "think of the wrong kind -> 400" [ "$CODE" = 400 ]

# ---- sampling surface
for i in 1 2 3 4 5 6; do
    req POST /v1/completions '{"model":"stories","prompt":"Once upon a time","max_tokens":24,"temperature":1}'
    jget "$BODY" 'd["choices"][0]["text"]' >>"$WORK/seeds.txt"
    echo "@@" >>"$WORK/seeds.txt"
done
check "6 unseeded requests at temperature 1 all differ" python3 -c 'import sys; t=open(sys.argv[1]).read().split("@@\n")[:6]; sys.exit(len(set(t)) != 6)' "$WORK/seeds.txt"
cached() { curl -s "$URL/metrics" | awk '$1 == "airlock_prompt_cache_tokens_total" {print $2}'; }
C0=$(cached)
req POST /v1/chat/completions '{"model":"stories","messages":[{"role":"user","content":"Hi"}],"n":2,"max_tokens":16,"temperature":1}'
C1=$(cached)
check "n=2: choice 2 copies the prompt's KV of choice 1 ($C0 -> $C1 cached tokens)" [ "$((C1 - C0))" = "$(($(jget "$BODY" 'd["usage"]["prompt_tokens"]') - 1))" ]
req POST /v1/chat/completions '{"model":"stories","messages":[{"role":"user","content":"Once upon"}],"max_tokens":24,"temperature":0}'
G1="$(jget "$BODY" 'd["choices"][0]["message"]["content"]')"
req POST /v1/chat/completions '{"model":"stories","messages":[{"role":"user","content":"Once upon"}],"n":2,"max_tokens":24,"temperature":0}'
check "n=2 greedy: the choice on the copied KV equals the one computed (and n=1)" [ "$(jget "$BODY" '"|".join(c["message"]["content"] for c in d["choices"])')" = "$G1|$G1" ]
curl -sN "$URL/v1/chat/completions" -d '{"model":"stories","messages":[{"role":"user","content":"Once upon"}],"n":3,"max_tokens":24,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}' >"$WORK/n3.txt"
check "n=3 streamed: each index's deltas give the greedy text, one finish each, usage sums, one [DONE]" python3 - "$WORK/n3.txt" "$G1" <<'PY'
import json, sys
ev = [e[6:] for e in open(sys.argv[1]).read().split("\n\n") if e.startswith("data: ")]
assert ev.count("[DONE]") == 1 and ev[-1] == "[DONE]"
chunks = [json.loads(e) for e in ev[:-1]]
text, fin = {}, {}
for c in chunks:
    for ch in c["choices"]:
        text[ch["index"]] = text.get(ch["index"], "") + (ch["delta"].get("content") or "")
        if ch["finish_reason"]:
            assert ch["index"] not in fin
            fin[ch["index"]] = ch["finish_reason"]
assert sorted(text) == [0, 1, 2] and all(t == sys.argv[2] for t in text.values()), text
assert sorted(fin) == [0, 1, 2], fin
u = chunks[-1]["usage"]
assert chunks[-1]["choices"] == [] and u["completion_tokens"] == 3 * (u["completion_tokens"] // 3) > 0, u
PY
req POST /v1/chat/completions '{"model":"stories","messages":[{"role":"user","content":"Hi"}],"n":3,"max_tokens":16,"temperature":1,"seed":5}'
check "n=3: three choices, indexed, not all equal" [ "$(jget "$BODY" '[c["index"] for c in d["choices"]], len(set(c["message"]["content"] for c in d["choices"])) > 1')" = "[0, 1, 2] True" ]
B2="$BODY"
req POST /v1/chat/completions '{"model":"stories","messages":[{"role":"user","content":"Hi"}],"n":3,"max_tokens":16,"temperature":1,"seed":5}'
check "n=3 with a seed is reproducible" [ "$(jget "$BODY" '[c["message"]["content"] for c in d["choices"]]')" = "$(jget "$B2" '[c["message"]["content"] for c in d["choices"]]')" ]
req POST /v1/chat/completions '{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":6,"temperature":0,"logprobs":true,"logit_bias":{"300":100}}'
check "logit_bias +100 makes every token the biased one" [ "$(jget "$BODY" 'len(set(t["token"] for t in d["choices"][0]["logprobs"]["content"]))')" = 1 ]
req POST /v1/chat/completions '{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":100000,"temperature":0,"logit_bias":{"2":-100}}'
check "max_tokens past the context (EOS banned): 200, finish length, the context filled" [ "$(jget "$BODY" '(lambda u: (d["choices"][0]["finish_reason"], u["prompt_tokens"] + u["completion_tokens"] >= 510))(d["usage"])')" = "('length', True)" ]
req POST /v1/chat/completions '{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":8,"top_k":1,"min_p":0.5,"repeat_penalty":1.1}'
check "top_k / min_p / repeat_penalty accepted on /v1" [ "$CODE" = 200 ]
req POST /v1/chat/completions '{"model":"stories","messages":[{"role":"user","content":"Hi"}],"top_k":"x"}'
check "top_k of the wrong type -> 400" [ "$CODE" = 400 ]

# ---- CORS
cors() { curl -s -o /dev/null -D - -X "$1" -H "Origin: $2" -H 'Access-Control-Request-Method: POST' \
             -H 'Access-Control-Request-Headers: authorization, content-type' "$URL$3" | tr -d '\r'; }
H="$(cors OPTIONS http://app.example /v1/chat/completions)"
check "preflight from the allowed origin: 204 with its origin, methods and headers" \
    python3 -c 'import sys; h=sys.argv[1].lower(); assert " 204" in h.splitlines()[0] and "access-control-allow-origin: http://app.example" in h and "access-control-allow-methods: get, post, options" in h and "authorization" in h.split("access-control-allow-headers:")[1].splitlines()[0]' "$H"
H="$(cors OPTIONS http://evil.example /v1/chat/completions)"
check "preflight from another origin: 403, no CORS header" python3 -c 'import sys; h=sys.argv[1].lower(); assert " 403" in h.splitlines()[0] and "access-control-allow-origin" not in h' "$H"
H="$(curl -s -D - -o /dev/null -H 'Origin: http://app.example' "$URL/v1/models" | tr -d '\r')"
check "GET from the allowed origin carries Access-Control-Allow-Origin" grep -qi '^access-control-allow-origin: http://app.example$' <<<"$H"
H="$(curl -s -D - -o /dev/null -H 'Origin: http://evil.example' "$URL/v1/models" | tr -d '\r')"
check "GET from another origin carries none" not grep -qi '^access-control-allow-origin' <<<"$H"
H="$(curl -sN -D - -o /dev/null -H 'Origin: http://app.example' "$URL/v1/chat/completions" -d '{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":2,"stream":true}' | tr -d '\r')"
check "a stream from the allowed origin carries it too" grep -qi '^access-control-allow-origin: http://app.example$' <<<"$H"
stop_server

# ---- --reasoning-format inline, and no CORS at all by default
start_server inline --model "$WORK/qwen3.gguf" --model-name qwen3 --ctx 256 --reasoning-format inline
req POST /v1/chat/completions "{\"model\":\"qwen3\",\"messages\":$ASK,\"tools\":$TOOLS,\"temperature\":0}"
check "inline: <think> stays in content, the call is still parsed" [ "$(jget "$BODY" '(lambda m: (m["content"].startswith("<think>"), "reasoning_content" in m, m["tool_calls"][0]["function"]["name"]))(d["choices"][0]["message"])')" = "(True, False, 'get_weather')" ]
H="$(cors OPTIONS http://app.example /v1/chat/completions)"
check "no --cors-origin: preflight refused (403), no CORS header" python3 -c 'import sys; h=sys.argv[1].lower(); assert " 403" in h.splitlines()[0] and "access-control-allow-origin" not in h' "$H"
stop_server
finish
