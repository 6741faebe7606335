#!/usr/bin/env bash
# egress_netns.sh - zero egress, tested as an attacker would: inside two
# network namespaces this test creates ("in" runs airlock, "out" plays the
# outside world), joined by a veth pair with link-local addresses that exist
# only inside these namespaces. airlock enters its sandbox exactly as serve
# does (sandbox-selftest) and then tries a TCP connect and a UDP datagram to
# the outside: each must fail with EPERM, and the outside must see zero
# packets. A control run with --unsafe-no-sandbox must reach the outside, so
# the counters are shown to count. Needs root and `ip netns`; skips otherwise.
set -u
BIN=${AIRLOCK_BIN:?AIRLOCK_BIN not set}
if [ "$(id -u)" != 0 ]; then echo "SKIP: egress_netns needs root (CI runs it as root)"; exit 77; fi
if ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1; then echo "SKIP: ip netns unavailable"; exit 77; fi
PY=$(command -v python3 || true)
if [ -z "$PY" ]; then echo "SKIP: python3 needed for the outside listener"; exit 77; fi

T=$$
NS_IN=al_in_$T NS_OUT=al_out_$T VA=alva$T VB=alvb$T
A_IN=169.254.77.1 A_OUT=169.254.77.2 PORT=9999
WORK=$(mktemp -d /tmp/al_egress.XXXXXX)
LPID=
cleanup() {
    [ -n "$LPID" ] && kill "$LPID" 2>/dev/null
    ip netns del "$NS_IN" 2>/dev/null
    ip netns del "$NS_OUT" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

ip netns add "$NS_IN" || { echo "SKIP: cannot create a network namespace"; exit 77; }
ip netns add "$NS_OUT" || fail "netns add"
ip link add "$VA" type veth peer name "$VB" || { echo "SKIP: no veth support"; exit 77; }
ip link set "$VA" netns "$NS_IN" && ip link set "$VB" netns "$NS_OUT" || fail "move veth"
for ns in "$NS_IN" "$NS_OUT"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1
    ip netns exec "$ns" ip link set lo up
done
ip netns exec "$NS_IN" sysctl -qw "net.ipv6.conf.$VA.disable_ipv6=1" >/dev/null 2>&1
ip netns exec "$NS_OUT" sysctl -qw "net.ipv6.conf.$VB.disable_ipv6=1" >/dev/null 2>&1
ip netns exec "$NS_IN" ip addr add "$A_IN/30" dev "$VA" || fail "addr in"
ip netns exec "$NS_OUT" ip addr add "$A_OUT/30" dev "$VB" || fail "addr out"
ip netns exec "$NS_IN" ip link set "$VA" up
ip netns exec "$NS_OUT" ip link set "$VB" up

# the outside: a TCP and a UDP listener that log whatever reaches them
cat > "$WORK/listen.py" <<PYEOF
import socket, select, sys
log = open(sys.argv[1], "a", buffering=1)
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("$A_OUT", $PORT)); t.listen(8)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("$A_OUT", $PORT))
log.write("ready\n")
while True:
    r, _, _ = select.select([t, u], [], [])
    if t in r:
        c, a = t.accept(); log.write("tcp from %s\n" % a[0]); c.close()
    if u in r:
        d, a = u.recvfrom(2048); log.write("udp from %s: %r\n" % (a[0], d))
PYEOF
ip netns exec "$NS_OUT" "$PY" "$WORK/listen.py" "$WORK/outside.log" &
LPID=$!
for i in $(seq 50); do grep -q ready "$WORK/outside.log" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$WORK/outside.log" || fail "outside listener did not start"

rx() { ip netns exec "$NS_OUT" cat "/sys/class/net/$VB/statistics/rx_packets"; }
tx_in() { ip netns exec "$NS_IN" cat "/sys/class/net/$VA/statistics/tx_packets"; }

# 1. sandboxed: every attempt refused with EPERM, zero packets outside
RX0=$(rx); TX0=$(tx_in)
ip netns exec "$NS_IN" "$BIN" sandbox-selftest --store "$WORK/store" "$A_OUT:$PORT" >"$WORK/sandboxed.out" 2>&1
RC=$?
sleep 0.5
RX1=$(rx); TX1=$(tx_in)
cat "$WORK/sandboxed.out"
echo "outside rx_packets: $RX0 -> $RX1; server tx_packets: $TX0 -> $TX1"
[ $RC = 0 ] || fail "sandbox-selftest exit $RC (egress not refused)"
[ "$(grep -c ': EPERM$' "$WORK/sandboxed.out")" = 4 ] || fail "expected 4 EPERM results"
[ "$RX1" = "$RX0" ] || fail "packets reached the outside namespace while sandboxed"
[ "$TX1" = "$TX0" ] || fail "the server's interface sent packets while sandboxed"
grep -q "from" "$WORK/outside.log" && fail "the outside listener heard from the sandboxed process"

# 2. control: without the sandbox the same probe does reach the outside,
# so the counters above really count (and the warning is loud)
ip netns exec "$NS_IN" "$BIN" sandbox-selftest --unsafe-no-sandbox --store "$WORK/store" "$A_OUT:$PORT" >"$WORK/open.out" 2>"$WORK/open.err"
sleep 0.5
RX2=$(rx)
cat "$WORK/open.out" "$WORK/open.err"
echo "outside rx_packets (control, no sandbox): $RX1 -> $RX2"
grep -q "WARNING: --unsafe-no-sandbox" "$WORK/open.err" || fail "--unsafe-no-sandbox did not warn"
[ "$RX2" -gt "$RX1" ] || fail "control run sent nothing: the measurement is broken"
grep -q "udp from $A_IN" "$WORK/outside.log" || fail "control UDP datagram not received"
grep -q "tcp from $A_IN" "$WORK/outside.log" || fail "control TCP connection not received"
# 3. the real `airlock serve` inside the namespace: it answers requests on
# its listener (loopback of the namespace) under the sandbox, every thread
# carries the filter, /health says egress is blocked, and serving sends not
# one packet to the outside (no DNS, no telemetry, no update check).
SHARED=${AIRLOCK_SHARED:-$(dirname "$0")/../../../shared}
SRV_PID=
if [ -f "$SHARED/models/stories260K.gguf" ]; then
    RX3=$(rx); TX3=$(tx_in)
    ip netns exec "$NS_IN" "$BIN" serve --model "$SHARED/models/stories260K.gguf" --model-name stories \
        --chat-format chatml --store "$WORK/srvstore" --listen 127.0.0.1:0 --threads 1 --ctx 128 \
        >"$WORK/serve.out" 2>"$WORK/serve.err" &
    SRV_PID=$!
    for i in $(seq 100); do grep -q "listening on" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
    URL=$(grep -m1 -o 'http://[0-9.:]*' "$WORK/serve.out") || { cat "$WORK/serve.err"; fail "serve did not start in the namespace"; }
    H=$(ip netns exec "$NS_IN" curl -s "$URL/health")
    C=$(ip netns exec "$NS_IN" curl -s "$URL/v1/chat/completions" -H 'Content-Type: application/json' \
        -d '{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":8}')
    SECCOMP=$(cat /proc/$SRV_PID/task/*/status | grep -c '^Seccomp:[[:space:]]*2')
    NTASK=$(ls /proc/$SRV_PID/task | wc -l)
    CAPEFF=$(grep '^CapEff' /proc/$SRV_PID/status | awk '{print $2}')
    kill $SRV_PID; wait $SRV_PID 2>/dev/null
    sleep 0.3
    RX4=$(rx); TX4=$(tx_in)
    echo "serve in the namespace: /health $H"
    echo "serve: $SECCOMP of $NTASK threads under seccomp filter mode 2, CapEff $CAPEFF; outside rx_packets $RX3 -> $RX4, tx $TX3 -> $TX4"
    grep -q '"egress":"blocked"' <<<"$H" || fail "/health of the sandboxed serve does not say egress blocked"
    grep -q '"completion_tokens":8' <<<"$C" || fail "serve in the namespace did not answer a chat request: $C"
    [ "$SECCOMP" = "$NTASK" ] || fail "not every serve thread has the seccomp filter"
    [ "$CAPEFF" = 0000000000000000 ] || fail "serve kept capabilities: $CAPEFF"
    [ "$RX4" = "$RX3" ] && [ "$TX4" = "$TX3" ] || fail "serving sent packets to the outside namespace"
else
    echo "serve part skipped: no $SHARED/models/stories260K.gguf"
fi
echo "egress_netns: PASS (sandboxed: 4x EPERM, 0 packets outside; control: $((RX2 - RX1)) packets; real serve: 0 packets)"
