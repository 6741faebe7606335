#!/usr/bin/env bash
# test_agents_node.sh - agent programs against the real server: the official
# openai and ollama packages, LangChain's ChatOpenAI and the Vercel AI SDK
# with its openai-compatible provider (agents_sdk.mjs), on the scripted
# models of agents_models.sh. The packages are installed once, from the npm
# registry, into ~/.cache/airlock/npm-agents (AIRLOCK_NPM_AGENTS_DIR); the
# server never fetches anything.
source "$(dirname "$0")/lib.sh"
MK="$SHARED/tools/mkscripted.py"
V="$SHARED/vocab"
TPL="$SHARED/templates"
if [ ! -f "$MK" ] || [ ! -f "$V/ggml-vocab-qwen2.gguf" ] || [ ! -d "$TPL" ]; then
    echo "SKIP: mkscripted.py, vocab or templates missing under $SHARED"; exit 0
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "SKIP: node/npm not installed (scripts/deps.sh installs nodejs npm)"; exit 0
fi
NPM_DIR="${AIRLOCK_NPM_AGENTS_DIR:-$HOME/.cache/airlock/npm-agents}"
PKGS=(openai@4 ollama@0.5 @langchain/openai@1 @langchain/core@1 ai@6 @ai-sdk/openai-compatible@2 zod@4)
need=0
for d in openai ollama @langchain/openai @langchain/core ai @ai-sdk/openai-compatible zod; do
    [ -d "$NPM_DIR/node_modules/$d" ] || need=1
done
if [ $need = 1 ]; then
    mkdir -p "$NPM_DIR"
    [ -f "$NPM_DIR/package.json" ] || echo '{"name":"airlock-agent-tests","private":true}' >"$NPM_DIR/package.json"
    (cd "$NPM_DIR" && npm install --no-audit --no-fund --silent "${PKGS[@]}") || {
        echo "FAIL: npm install of ${PKGS[*]} failed"; exit 1; }
fi
source "$(dirname "$0")/agents_models.sh"
start_server agents_node --model "$WORK/qwen3.gguf" --model-name qwen3 --model "$WORK/llama3.gguf" --model-name llama3 \
    --model "$WORK/mistral.gguf" --model-name mistral --model "$WORK/harmony.gguf" --model-name harmony --ctx 512 --parallel 2
cp "$(dirname "$0")/agents_sdk.mjs" "$NPM_DIR/agents_sdk.mjs"
node "$NPM_DIR/agents_sdk.mjs" "$URL" || bad "agent SDKs"
finish
