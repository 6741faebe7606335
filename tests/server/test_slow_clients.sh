#!/usr/bin/env bash
# test_slow_clients.sh - the real server against slow clients (issue 20):
# 300 connections dripping their headers one byte per second, from one
# address and then from ten, while a normal client on another address must
# keep getting answers; no slow connection outlives the header deadline by
# much (slow_clients.py).
source "$(dirname "$0")/lib.sh"
python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.2", 0))' 2>/dev/null || {
    echo "SKIP: cannot bind 127.0.0.2 on this host"; exit 77; }
ulimit -n 4096 2>/dev/null || true
start_server slow --model "$STORIES" --model-name stories --threads 1
PORT="${URL##*:}"
if python3 "$(dirname "$0")/slow_clients.py" "$PORT" 10; then ok "normal client served through the slow-client floods"; else bad "slow-client flood"; fi
req GET /health; check "server alive after the floods" [ "$CODE" = 200 ]
finish
