#!/usr/bin/env bash
# test_template_cli.sh DATA_DIR - the `airlock template` contract, on the real binary.
set -u
BIN=${AIRLOCK_BIN:?AIRLOCK_BIN not set}
DATA=${1:?usage: test_template_cli.sh DATA_DIR}
SHARED=${AIRLOCK_SHARED:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { n=$((n + 1)); echo "ok $n - $*"; }

# --help explains every option
"$BIN" template --help >"$tmp/help" || fail "--help exited non-zero"
for opt in MODEL.gguf --messages --template --builtin --tools --vars --bos --eos --now --no-generation-prompt; do
    grep -q -- "$opt" "$tmp/help" || fail "--help does not mention $opt"
done
ok "--help explains every option"

# prints the prompt and nothing else (no newline added)
"$BIN" template --template "$DATA/chat.jinja" --messages "$DATA/msgs.json" --bos '<s>' --eos '</s>' \
    --now 2026-11-24 >"$tmp/out" 2>"$tmp/err" || fail "render failed: $(cat "$tmp/err")"
cmp -s "$tmp/out" "$DATA/expected.txt" || fail "output differs from expected.txt: $(od -c "$tmp/out" | head -5)"
[ -s "$tmp/err" ] && fail "stderr not empty: $(cat "$tmp/err")"
ok "renders byte for byte, nothing on stderr"

"$BIN" template --template "$DATA/chat.jinja" --messages "$DATA/msgs.json" --bos '<s>' --eos '</s>' \
    --now 2026-11-24 --no-generation-prompt >"$tmp/out" || fail "render failed"
cmp -s "$tmp/out" "$DATA/expected_nogen.txt" || fail "--no-generation-prompt output differs"
ok "--no-generation-prompt"

# MSGS.json as an object with messages and tools; messages from stdin
"$BIN" template --template "$DATA/chat.jinja" --messages - <"$DATA/msgs_tools.json" >"$tmp/out" || fail "object form failed"
cmp -s "$tmp/out" "$DATA/expected_tools.txt" || fail "object form (messages + tools) differs"
ok "messages object with tools, from stdin"

# errors: usage (2), template errors name the line (1)
"$BIN" template --template "$DATA/chat.jinja" >/dev/null 2>&1
[ $? -eq 2 ] || fail "missing --messages should exit 2"
"$BIN" template --template "$DATA/chat.jinja" --messages "$DATA/msgs.json" --frobnicate >/dev/null 2>&1
[ $? -eq 2 ] || fail "an unknown option should exit 2"
"$BIN" template --template "$DATA/broken.jinja" --messages "$DATA/msgs.json" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 1 ] || fail "a broken template should exit 1"
grep -q "line 2" "$tmp/err" || fail "the parse error does not name line 2: $(cat "$tmp/err")"
[ -s "$tmp/out" ] && fail "a failed render printed something"
"$BIN" template --template "$DATA/raises.jinja" --messages "$DATA/msgs.json" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 1 ] || fail "raise_exception should exit 1"
grep -q "no users" "$tmp/err" || fail "raise_exception's message is not shown: $(cat "$tmp/err")"
"$BIN" template --template "$DATA/chat.jinja" --messages "$DATA/msgs.json" --now 2026-13-01 >/dev/null 2>&1
[ $? -eq 1 ] || fail "a bad --now should fail"
ok "usage and template errors"

# built-in formats, chosen explicitly
"$BIN" template --builtin chatml --messages "$DATA/msgs.json" --no-generation-prompt >"$tmp/out" || fail "--builtin chatml"
grep -q '<|im_start|>user' "$tmp/out" || fail "chatml output lacks a user turn"
"$BIN" template --builtin nosuch --messages "$DATA/msgs.json" >/dev/null 2>&1
[ $? -eq 2 ] || fail "an unknown --builtin should exit 2"
ok "built-in formats"

if [ -n "$SHARED" ] && [ -d "$SHARED/models" ]; then
    # the model's own template and special tokens
    q="$SHARED/models/tiny-qwen2-q4_k_m.gguf"
    printf '%s' '[{"role":"user","content":"Hi"}]' >"$tmp/m.json"
    "$BIN" template "$q" --messages "$tmp/m.json" >"$tmp/out" 2>"$tmp/err" || fail "model form: $(cat "$tmp/err")"
    printf '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n' >"$tmp/want"
    cmp -s "$tmp/out" "$tmp/want" || fail "model form differs: $(cat "$tmp/out")"
    ok "MODEL.gguf uses the model's template"
    # a model without a template needs an explicit built-in
    s="$SHARED/models/stories260K.gguf"
    "$BIN" template "$s" --messages "$tmp/m.json" >/dev/null 2>"$tmp/err"
    [ $? -eq 2 ] || fail "a model without a template must not guess a format"
    grep -q -- "--builtin" "$tmp/err" || fail "the error should point at --builtin"
    "$BIN" template "$s" --builtin llama2 --messages "$tmp/m.json" >"$tmp/out" || fail "model + --builtin"
    [ "$(cat "$tmp/out")" = "[INST] Hi [/INST]" ] || fail "llama2 with the model's BOS: got '$(cat "$tmp/out")'"
    ok "no template: explicit --builtin only"
else
    echo "SKIP: model checks (AIRLOCK_SHARED/models absent)"
fi

if [ -n "$SHARED" ] && [ -d "$SHARED/templates" ] && command -v jq >/dev/null; then
    # every shared case through the CLI too
    cnt=0
    for f in "$SHARED"/templates/*.expected.json; do
        tpl="$SHARED/templates/$(jq -r .template "$f")"
        bos=$(jq -r .bos_token "$f"); eos=$(jq -r .eos_token "$f"); now=$(jq -r .now "$f")
        nc=$(jq '.cases | length' "$f")
        for ((i = 0; i < nc; i++)); do
            jq -c ".cases[$i].messages" "$f" >"$tmp/m.json"
            jq -j ".cases[$i].expected" "$f" >"$tmp/want"
            extra=()
            [ "$(jq ".cases[$i].add_generation_prompt" "$f")" = "false" ] && extra=(--no-generation-prompt)
            "$BIN" template --template "$tpl" --messages "$tmp/m.json" --bos "$bos" --eos "$eos" --now "$now" \
                "${extra[@]}" >"$tmp/out" 2>"$tmp/err" || fail "$f case $i: $(cat "$tmp/err")"
            cmp -s "$tmp/out" "$tmp/want" || fail "$f case $i differs"
            cnt=$((cnt + 1))
        done
    done
    ok "$cnt shared cases through the CLI"
else
    echo "SKIP: shared cases through the CLI (templates or jq absent)"
fi
echo "all $n checks passed"
