#!/usr/bin/env bash
# quant_types_test.sh - the issue-13 tensor types (IQ4_NL, IQ4_XS, TQ1_0,
# TQ2_0; MXFP4 through its unit tests) on the real binary: `info` shows the
# type mix, `bench` runs, the import scanner accepts the files, and a copy
# with one corrupt block scale is refused by info, run and the scanner,
# naming the tensor and the block.
set -u
BIN="${AIRLOCK_BIN:?}"
SHARED="${AIRLOCK_SHARED:-../shared}"
[ -d "$SHARED/models" ] || { echo "SKIP: $SHARED/models not found"; exit 0; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }

for q in iq4_nl:IQ4_NL iq4_xs:IQ4_XS tq1_0:TQ1_0 tq2_0:TQ2_0; do
  f=$SHARED/models/tiny-llama-${q%%:*}.gguf t=${q##*:}
  "$BIN" info "$f" > "$T/info" 2>&1 && grep -q "tensor types:.* $t:1[0-9]" "$T/info" \
    && ok "info shows $t in the type mix" || bad "info $t: $(cat "$T/info")"
  "$BIN" bench "$f" -p 16 -n 4 -r 1 -t 1 > "$T/bench" 2>&1 && grep -q "pp16" "$T/bench" && grep -q "tg4" "$T/bench" \
    && ok "bench runs on $t" || bad "bench $t: $(cat "$T/bench")"
done

# A copy of tiny-llama-iq4_xs whose block 5 of blk.1.ffn_down.weight has a
# NaN scale (F16 0x7e00 at the block's first two bytes).
python3 - "$SHARED/models/tiny-llama-iq4_xs.gguf" "$T/nan.gguf" <<'PY' || bad "could not write the corrupt copy"
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
pos = 8
n_t, n_kv = struct.unpack_from('<QQ', b, pos); pos += 16
def skip_str():
    global pos
    n, = struct.unpack_from('<Q', b, pos); pos += 8 + n
sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def skip_val(t):
    global pos
    if t == 8: skip_str()
    elif t == 9:
        et, n = struct.unpack_from('<IQ', b, pos); pos += 12
        for _ in range(n): skip_val(et)
    else: pos += sizes[t]
align = 32
for _ in range(n_kv):
    skip_str()
    t, = struct.unpack_from('<I', b, pos); pos += 4
    skip_val(t)
found = None
for _ in range(n_t):
    n, = struct.unpack_from('<Q', b, pos); name = b[pos + 8:pos + 8 + n].decode(); pos += 8 + n
    nd, = struct.unpack_from('<I', b, pos); pos += 4 + 8 * nd
    ty, off = struct.unpack_from('<IQ', b, pos); pos += 12
    if name == 'blk.1.ffn_down.weight' and ty == 23: found = off
data = (pos + align - 1) // align * align
struct.pack_into('<H', b, data + found + 5 * 136, 0x7e00)
open(sys.argv[2], 'wb').write(b)
PY
"$BIN" info "$T/nan.gguf" > /dev/null 2> "$T/err"; rc=$?
[ $rc = 1 ] && grep -q "blk.1.ffn_down.weight" "$T/err" && grep -q "block 5" "$T/err" && grep -q "NaN" "$T/err" \
  && ok "info refuses a NaN block scale, naming tensor and block" || bad "info on NaN scale: rc=$rc $(cat "$T/err")"
"$BIN" run "$T/nan.gguf" -p "x" -n 2 > /dev/null 2> "$T/err"; rc=$?
[ $rc != 0 ] && grep -q "blk.1.ffn_down.weight" "$T/err" && ok "run refuses it too" || bad "run on NaN scale: rc=$rc"

# The import scanner: the real files pass, the corrupt copy is rejected.
export AIRLOCK_USER=tester
unset AIRLOCK_STORE
ST=$T/store
"$BIN" keygen --name pub --out "$T/keys" > /dev/null && "$BIN" trust add "$T/keys/pub.pub.pem" --name pub --store "$ST" > /dev/null \
  || bad "store setup"
scan() { # scan NAME FILE: prints the import's output
  "$BIN" bundle "$2" --name "$1" --tag t --sign "$T/keys/pub.pem" -o "$T/$1.airlock" > /dev/null &&
    "$BIN" import "$T/$1.airlock" --store "$ST" 2>&1
}
for q in iq4_nl iq4_xs tq1_0 tq2_0; do
  out=$(scan "m-${q/_/}" "$SHARED/models/tiny-llama-$q.gguf")
  echo "$out" | grep -q "quarantined" && ! echo "$out" | grep -qi "rejected" \
    && ok "the scanner accepts tiny-llama-$q" || bad "scanner on $q: $out"
done
out=$(scan nanscale "$T/nan.gguf")
echo "$out" | grep -qi "rejected" && echo "$out" | grep -q "blk.1.ffn_down.weight" \
  && ok "the scanner rejects the NaN scale, naming the tensor" || bad "scanner on NaN scale: $out"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
