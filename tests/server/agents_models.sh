# agents_models.sh - scripted models for the agent tests, written into $WORK
# by ../shared/tools/mkscripted.py (each answers every prompt with the script
# below, in its family's format, over a real vocab and chat template).
# Sourced after lib.sh; needs MK, V and TPL.
mkmodel() { # NAME VOCAB TEMPLATE SCRIPT [mkscripted options...]
    local name="$1" vocab="$2" tpl="$3" script="$4"; shift 4
    printf '%s' "$script" >"$WORK/$name.txt"
    python3 "$MK" --vocab "$V/$vocab" --template "$TPL/$tpl" --script-file "$WORK/$name.txt" "$@" \
        -o "$WORK/$name.gguf" >"$WORK/$name.mk.log" 2>&1 || { echo "mkscripted $name failed:"; cat "$WORK/$name.mk.log"; exit 1; }
}
mkmodel qwen3 ggml-vocab-qwen2.gguf Qwen-Qwen3-0.6B.jinja \
    $'<think>\nI should call the tool.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
mkmodel llama3 ggml-vocab-llama-bpe.gguf meta-llama-Llama-3.2-3B-Instruct.jinja \
    '{"name": "get_weather", "parameters": {"city": "Paris"}}' --after $'\n\n' --arch llama
mkmodel mistral ggml-vocab-llama-spm.gguf mistralai-Mistral-Nemo-Instruct-2407.jinja \
    '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcDEF123"}]' --after ']' --arch llama
mkmodel harmony ggml-vocab-qwen2.gguf openai-gpt-oss-120b.jinja \
    '<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}' --after 'assistant'
mkmodel r1 ggml-vocab-qwen2.gguf deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja \
    $'I weigh it.\n</think>\n\nIt is 4.'
