#!/usr/bin/env bash
# cli_test.sh - the engine's command-line contracts, on the real binary:
# info, logits (ids line + OUT.f32 size + values), run (--print-ids greedy
# against the reference, --stop), and clear errors for bad input.
set -u
BIN="${AIRLOCK_BIN:?}"
SHARED="${AIRLOCK_SHARED:-../shared}"
[ -d "$SHARED/models" ] || { echo "SKIP: $SHARED/models not found"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }

M=$SHARED/models/tiny-qwen3-q8_0.gguf
REF=$SHARED/ref/tiny-qwen3-q8_0.p1.json
python3 -c "import json,sys; sys.stdout.write(json.load(open('$REF'))['prompt'])" > "$T/p1.txt"
want_ids=$(python3 -c "import json; print(' '.join(map(str, json.load(open('$REF'))['tokens'])))")

# info
out=$("$BIN" info "$M") && ok "info exits 0" || bad "info exit code"
sum=$(grep ' tiny-qwen3-q8_0.gguf$' "$SHARED/models/SHA256SUMS" | cut -d' ' -f1)
echo "$out" | grep -q "sha256: *$sum" && ok "info prints the file's sha256" || bad "info sha256: $out"
echo "$out" | grep -q "architecture: *qwen3" && ok "info architecture" || bad "info architecture"
"$BIN" info "$SHARED/models/stories260K.gguf" | grep -q "chat template: *absent" && ok "info: no chat template" || bad "info chat template absent"
"$BIN" info "$SHARED/models/tiny-qwen2-q4_k_m.gguf" | grep -q "chat template: *present" && ok "info: chat template present" || bad "info chat template present"
echo "$out" | grep -q "Q8_0:" && ok "info type mix" || bad "info type mix"
# the KV cache of a sliding-window model: layers 0 and 2 of tiny-gemma3 keep a
# ring of 32 + 512 - 1 positions and a mirror of 31, layers 1 and 3 all of them
G3=$SHARED/models/tiny-gemma3-q8_0.gguf
"$BIN" info "$G3" --ctx 32768 | grep -q "kv cache: *34142208 bytes .* 32768 positions" && ok "info --ctx: window layers keep their window" || bad "info --ctx kv bytes: $("$BIN" info "$G3" --ctx 32768 | grep kv)"
"$BIN" info "$M" --ctx 1024 | grep -q "kv cache: *1048576 bytes" && ok "info --ctx: every position of a global model" || bad "info --ctx qwen3"
"$BIN" info "$M" --ctx 0 >/dev/null 2>&1; [ $? = 2 ] && ok "info --ctx 0 is a usage error" || bad "info --ctx 0"
"$BIN" info --help | grep -q "Supported architectures: llama, qwen2, qwen3, gemma, .*cohere2" && ok "info --help lists the architectures" || bad "info --help architectures"
python3 - "$M" "$T/gptj.gguf" <<'PY'
import sys
# the same file with general.architecture renamed to an architecture of the same length we do not run
d = open(sys.argv[1], "rb").read()
key = b"general.architecture"
i = d.index(key) + len(key) + 4 + 8  # key, value type u32, string length u64
n = int.from_bytes(d[i - 8:i], "little")

new = (b"gptj" + b"x" * n)[:n] if n >= 4 else None
open(sys.argv[2], "wb").write(d[:i] + new + d[i + n:])
PY
"$BIN" info "$T/gptj.gguf" 2>"$T/err"; rc=$?
[ $rc = 1 ] && grep -q "architecture '.*' is not supported (supported: llama" "$T/err" && ok "an unknown architecture is refused by name" || bad "unknown architecture: rc $rc $(cat "$T/err")"

# logits: ids line and the file
got_ids=$("$BIN" logits "$M" --prompt-file "$T/p1.txt" --out "$T/o.f32")
[ "$got_ids" = "$want_ids" ] && ok "logits prints the prompt ids" || bad "logits ids: '$got_ids' vs '$want_ids'"
[ "$(stat -c %s "$T/o.f32")" = $((151936 * 4)) ] && ok "logits writes n_vocab float32" || bad "logits size"
"$BIN" logits "$M" --prompt-file "$T/p1.txt" --out "$T/e.f32" --exact >/dev/null && ok "logits --exact" || bad "logits --exact"
python3 - "$T/e.f32" "$SHARED/ref/tiny-qwen3-q8_0.p1.exact.logits.f32" <<'PY' && ok "--exact logits within 0.02 of the reference" || bad "--exact logits differ"
import struct, sys
a = open(sys.argv[1], 'rb').read(); b = open(sys.argv[2], 'rb').read()
n = len(b) // 4
x = struct.unpack('<%df' % n, a); y = struct.unpack('<%df' % n, b)
sys.exit(0 if max(abs(p - q) for p, q in zip(x, y)) <= 0.02 else 1)
PY

# run --print-ids: greedy ids equal the reference before the first near-tie
R2=$SHARED/ref/stories260K.p2.json
python3 -c "import json,sys; sys.stdout.write(json.load(open('$R2'))['prompt'])" > "$T/p2.txt"
want=$(python3 -c "
import json; d = json.load(open('$R2')); out = []
for t, m in zip(d['greedy'], d['greedy_margin']):
    if m < 0.1: break
    out.append(str(t))
print(' '.join(out[:16]))")
n=$(echo "$want" | wc -w)
got=$("$BIN" run "$SHARED/models/stories260K.gguf" --prompt-file "$T/p2.txt" -n "$n" --temp 0 --print-ids 2>/dev/null)
[ "$got" = "$want" ] && ok "run --print-ids greedy equals the reference ($n tokens)" || bad "run greedy: '$got' vs '$want'"
a=$("$BIN" run "$SHARED/models/stories260K.gguf" -p "Once upon a time" -n 20 --seed 7 2>/dev/null)
b=$("$BIN" run "$SHARED/models/stories260K.gguf" -p "Once upon a time" -n 20 --seed 7 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && ok "same seed, same text" || bad "seeded run differs"
s=$("$BIN" run "$SHARED/models/stories260K.gguf" -p "Once upon a time" -n 60 --seed 7 --stop "." 2>/dev/null)
case "$s" in *.*) bad "--stop: output contains the stop string: $s";; *) [ -n "$s" ] && ok "--stop ends before the stop string" || bad "--stop: empty";; esac
"$BIN" run "$SHARED/models/stories260K.gguf" -p "x" -n 5 2>"$T/err" >/dev/null
grep -q "tok/s" "$T/err" && ok "run reports speed on stderr" || bad "run stderr"

# errors: clear, exit 1, no crash
printf 'GGUF\3\0\0\0' > "$T/short.gguf"
"$BIN" info "$T/short.gguf" 2>"$T/err"; rc=$?
[ $rc = 1 ] && grep -q "short.gguf" "$T/err" && ok "truncated file: exit 1 naming the file" || bad "truncated file: rc=$rc $(cat "$T/err")"
"$BIN" info "$T/missing.gguf" 2>"$T/err"; rc=$?
[ $rc = 1 ] && grep -q "cannot open" "$T/err" && ok "missing file: clear error" || bad "missing file: rc=$rc"
"$BIN" logits "$SHARED/vocab/ggml-vocab-qwen2.gguf" --prompt-file "$T/p1.txt" --out "$T/x.f32" 2>"$T/err"; rc=$?
[ $rc = 1 ] && grep -q "general.architecture\|token_embd" "$T/err" && ok "vocab-only file: clear error" || bad "vocab-only: rc=$rc $(cat "$T/err")"
"$BIN" run "$M" 2>/dev/null; [ $? = 2 ] && ok "usage error exits 2" || bad "usage exit code"
"$BIN" run --help | grep -q "print-ids" && ok "run --help" || bad "run --help"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
