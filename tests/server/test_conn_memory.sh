#!/usr/bin/env bash
# test_conn_memory.sh - an idle connection costs the server little memory:
# 200 idle connections to the real `airlock serve` on loopback, its RSS
# before and after (a ratio per connection, not a timing). Each connection
# has its own thread; a thread-local buffer in the TLS block (1 MiB once)
# would cost every one of them that much.
source "$(dirname "$0")/lib.sh"

N=200
LIMIT_KIB=64
# Under AddressSanitizer every thread also carries its shadow and fake
# stacks (~100 KiB): the sanitizer build is held to 256 KiB, which the old
# thread-local megabyte still breaks.
if ldd "$BIN" 2>/dev/null | grep -q libasan; then LIMIT_KIB=256; fi
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }

start_server conn --model "$STORIES" --max-connections 256 --max-conn-per-ip 256
PID=$LAST_PID
req GET /health
check "server answers" [ "$CODE" = 200 ]
BASE_THREADS=$(threads "$PID")
BASE=$(rss_kib "$PID")

# Hold N idle connections open (a request line, no end of headers), wait
# until the server has a thread for each, read its RSS, then let them go.
FIFO="$WORK/go"; mkfifo "$FIFO"
python3 - "$URL" "$N" "$FIFO" <<'PY' &
import socket, sys
host, port = sys.argv[1][7:].split(":")
socks = []
for _ in range(int(sys.argv[2])):
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(b"GET /health HTTP/1.1\r\n")
    socks.append(s)
open(sys.argv[3]).read()  # wait until the shell has measured
PY
HOLDER=$!
for _ in $(seq 1 100); do
    [ "$(threads "$PID")" -ge $((BASE_THREADS + N)) ] && break
    sleep 0.1
done
check "a thread per idle connection ($N)" [ "$(threads "$PID")" -ge $((BASE_THREADS + N)) ]
AFTER=$(rss_kib "$PID")
echo > "$FIFO"
wait "$HOLDER" || true
PER=$(( (AFTER - BASE) / N ))
echo "RSS $BASE KiB idle, $AFTER KiB with $N idle connections: $PER KiB each (limit $LIMIT_KIB)"
check "an idle connection costs at most $LIMIT_KIB KiB of RSS ($PER KiB)" [ "$PER" -le "$LIMIT_KIB" ]
req GET /health
check "server still answers after they close" [ "$CODE" = 200 ]
finish
