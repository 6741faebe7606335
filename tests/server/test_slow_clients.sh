#!/usr/bin/env bash
# test_slow_clients.sh - the real server against slow clients (issue 20):
# 300 connections dripping their headers one byte per second, from one
# address and then from ten, while a normal client on another address must
# keep getting answers; no slow connection outlives the header deadline by
# much (slow_clients.py); the log does not grow a line per connection.
source "$(dirname "$0")/lib.sh"
python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.2", 0))' 2>/dev/null || {
    echo "SKIP: cannot bind 127.0.0.2 on this host"; exit 77; }
ulimit -n 4096 2>/dev/null || true
start_server slow --model "$STORIES" --model-name stories --threads 1
PORT="${URL##*:}"
if python3 "$(dirname "$0")/slow_clients.py" "$PORT" 10; then ok "normal client served through the slow-client floods"; else bad "slow-client flood"; fi
req GET /health; check "server alive after the floods" [ "$CODE" = 200 ]
# The server's stderr (libmicrohttpd's messages about refused and dropped
# connections are held to one line per 10 s) stays a few lines through floods
# of hundreds of connections (5,659 lines before the limit).
n_http=$(wc -l <"$WORK/slow.err")
check "libmicrohttpd messages rate-limited during the floods ($n_http lines)" [ "$n_http" -le 20 ]
finish
