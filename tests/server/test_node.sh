#!/usr/bin/env bash
# test_node.sh - the official openai and ollama npm packages against the
# real server, then 16 concurrent streaming clients vs unbatched output.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/node_setup.sh"

start_server node --model "$STORIES" --model-name stories --chat-format chatml \
    --model "$QWEN" --model-name qwen --parallel 8 --queue 32 --ctx 256 --batch 48 --threads 2
run_node openai_sdk.mjs "$URL" stories qwen || bad "openai sdk"
run_node ollama_sdk.mjs "$URL" stories qwen || bad "ollama sdk"
run_node concurrency.mjs "$URL" stories 16 || bad "16 concurrent streams (stories)"
run_node concurrency.mjs "$URL" qwen 16 || bad "16 concurrent streams (qwen, q4_k)"
finish
