#!/usr/bin/env bash
# moe_cli_test.sh - mixtures of experts on the real binary: info prints the
# experts and the active parameters, run and logits work on the three MoE
# families, and files with bad expert keys are refused naming the key.
set -u
BIN="${AIRLOCK_BIN:?}"
SHARED="${AIRLOCK_SHARED:-../shared}"
[ -f "$SHARED/models/tiny-qwen3moe-q8_0.gguf" ] || { echo "SKIP: $SHARED/models/tiny-qwen3moe-q8_0.gguf not found"; exit 0; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }

M=$SHARED/models/tiny-qwen3moe-q8_0.gguf
out=$("$BIN" info "$M") && ok "info exits 0" || bad "info exit code"
echo "$out" | grep -q "architecture: *qwen3moe" && ok "info architecture" || bad "info architecture: $out"
echo "$out" | grep -q "experts: *8 per layer, 2 used per token" && ok "info experts" || bad "info experts: $out"
# total 3,806,720; each layer skips 6 experts of 3 x 256 x 256
echo "$out" | grep -q "active params: *1447424 " && ok "info active parameters" || bad "info active params: $out"
"$BIN" info "$SHARED/models/tiny-qwen3-q8_0.gguf" | grep -q "experts:" && bad "a dense model shows experts" || ok "dense: no experts line"

for m in tiny-qwen3moe-q4_k_m tiny-qwen2moe-q8_0 tiny-gpt-oss-mxfp4; do
  f=$SHARED/models/$m.gguf
  [ -f "$f" ] || { echo "skip $m: not found"; continue; }
  ids=$("$BIN" run "$f" -p "Once upon a time" -n 8 --temp 0 --print-ids 2>/dev/null | tail -1)
  [ "$(echo "$ids" | wc -w)" -ge 1 ] && ok "$m: run generates ($ids)" || bad "$m: run: '$ids'"
done

# bench: the weight bytes a generated token reads, against the file's own
# tensor table: every tensor, one row of token_embd (the output is
# separate), and of the *_exps tensors only 2 of 8 experts
want=$(python3 - "$M" <<'PY'
import struct, sys
b = open(sys.argv[1], 'rb').read()
o = 8
nt, nkv = struct.unpack_from('<QQ', b, o); o += 16
def s():
    global o
    n = struct.unpack_from('<Q', b, o)[0]; o += 8 + n
    return b[o - n:o].decode(errors='replace')
SZ = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUF value types
used = total = 0
def val(t):
    global o
    if t == 8: s()
    elif t == 9:
        et, n = struct.unpack_from('<IQ', b, o); o += 12
        for _ in range(n): val(et)
    else: o += SZ[t]
for _ in range(nkv):
    s(); t = struct.unpack_from('<I', b, o)[0]; o += 4; val(t)
BYTES = {0: (1, 4), 1: (1, 2), 8: (32, 34)}  # F32, F16, Q8_0: elements, bytes per block
for _ in range(nt):
    name = s(); nd = struct.unpack_from('<I', b, o)[0]; o += 4
    dims = struct.unpack_from('<%dQ' % nd, b, o); o += 8 * nd
    ty = struct.unpack_from('<I', b, o)[0]; o += 12
    n = 1
    for d in dims: n *= d
    be, bb = BYTES[ty]
    nb = n // be * bb
    if name == 'token_embd.weight': nb = nb // dims[1]
    elif '_exps' in name: nb = nb * 2 // 8
    used += nb
print(used)
PY
)
got=$("$BIN" bench "$M" -p 0 -n 2 -r 1 -t 1 2>&1 | sed -n 's/^tg reads .* per token (\([0-9]*\) bytes).*/\1/p')
[ -n "$want" ] && [ "$got" = "$want" ] && ok "bench: $got bytes read per token" || bad "bench: reads '$got' bytes per token, the file says '$want'"
out=$("$BIN" bench "$M" -p 0 -n 2 -r 1 -t 2 2>&1)
echo "$out" | grep -Eq "^tg bound [0-9.]+ t/s .*, median [0-9.]+ t/s = [0-9.]+ % of it$" && \
  echo "$out" | grep -Eq "read bandwidth [0-9.]+ GB/s \(2 threads" && ok "bench prints the bandwidth bound" || bad "bench bound: $out"
"$BIN" bench "$M" -p 0 -n 2 -r 1 --no-bandwidth 2>&1 | grep -q "read bandwidth" && bad "--no-bandwidth still measures" || ok "--no-bandwidth"

# broken copies: one u32 key patched in place
patch_u32() { # FILE KEY VALUE OUT
  python3 - "$@" <<'PY'
import struct, sys
src, key, val, out = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), sys.argv[4]
b = bytearray(open(src, 'rb').read())
i = b.find(struct.pack('<Q', len(key)) + key)
assert i >= 0, key
j = i + 8 + len(key)
assert struct.unpack_from('<I', b, j)[0] == 4  # u32
struct.pack_into('<I', b, j + 4, val)
open(out, 'wb').write(b)
PY
}
check_refused() { # NAME KEY VALUE EXPECT
  patch_u32 "$M" "$2" "$3" "$T/$1.gguf"
  msg=$("$BIN" info "$T/$1.gguf" 2>&1); rc=$?
  if [ $rc -ne 0 ] && echo "$msg" | grep -q "$T/$1.gguf" && echo "$msg" | grep -qF "$4"; then
    ok "$1 refused: $msg"
  else
    bad "$1: rc $rc, '$msg'"
  fi
}
check_refused count0 qwen3moe.expert_count 0 "'qwen3moe.expert_count' = 0"
check_refused count600 qwen3moe.expert_count 600 "'qwen3moe.expert_count' = 600"
check_refused count4 qwen3moe.expert_count 4 "'blk.0.ffn_gate_inp.weight' has shape [256, 8] but needs [256, 4]"
check_refused used9 qwen3moe.expert_used_count 9 "'qwen3moe.expert_used_count' = 9"
check_refused ff0 qwen3moe.expert_feed_forward_length 0 "'qwen3moe.expert_feed_forward_length' = 0"

# A tensor the family does not read is refused, not ignored: a shared
# expert's tensor in qwen3moe (which has none) added as an F32 of zeros.
python3 - "$M" "$T/shexp.gguf" <<'PY' || bad "could not write the copy with a stray tensor"
import struct, sys
b = open(sys.argv[1], 'rb').read()
SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def rstr(p):
    n, = struct.unpack_from('<Q', b, p)
    return b[p + 8:p + 8 + n], p + 8 + n
def skip(t, p):
    if t in SCALAR:
        return p + SCALAR[t]
    if t == 8:
        return rstr(p)[1]
    et, n = struct.unpack_from('<IQ', b, p); p += 12
    if et == 8:
        for _ in range(n):
            p = rstr(p)[1]
        return p
    return p + SCALAR[et] * n
n_t, n_kv = struct.unpack_from('<QQ', b, 8)
pos, align = 24, 32
for _ in range(n_kv):
    k, pos = rstr(pos)
    t, = struct.unpack_from('<I', b, pos); pos += 4
    if k == b'general.alignment':
        align, = struct.unpack_from('<I', b, pos)
    pos = skip(t, pos)
for _ in range(n_t):
    pos = rstr(pos)[1]
    nd, = struct.unpack_from('<I', b, pos); pos += 4 + 8 * nd + 12
base = (pos + align - 1) // align * align
data = b[base:]
off = (len(data) + align - 1) // align * align
name = b'blk.0.ffn_up_shexp.weight'
info = struct.pack('<Q', len(name)) + name + struct.pack('<IQQIQ', 2, 256, 16, 0, off)
head = b[:8] + struct.pack('<QQ', n_t + 1, n_kv) + b[24:pos] + info
head += bytes(-len(head) % align)
open(sys.argv[2], 'wb').write(head + data + bytes(off - len(data)) + bytes(256 * 16 * 4))
PY
msg=$("$BIN" info "$T/shexp.gguf" 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$msg" | grep -qF "tensor 'blk.0.ffn_up_shexp.weight' is not part of a qwen3moe model"; then
  ok "stray shared-expert tensor refused: $msg"
else
  bad "stray shared-expert tensor: rc $rc, '$msg'"
fi

echo "moe_cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
