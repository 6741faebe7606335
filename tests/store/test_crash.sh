#!/bin/bash
# kill -9 at random moments of import, approve, rm and gc: afterwards
# `airlock verify` is clean and a retry succeeds. Then concurrent imports.
. "$(dirname "$0")/lib.sh"
S=$T/store
ITER=${AIRLOCK_CRASH_ITER:-30}
A keygen --name k --out $T/keys >/dev/null
A bundle $MODELS/tiny-llama-q4_0.gguf --name llama --tag q4_0 --sign $T/keys/k.pem -o $T/llama.airlock >/dev/null
A bundle $MODELS/stories260K.gguf --name stories --tag f32 --sign $T/keys/k.pem -o $T/stories.airlock >/dev/null
A bundle $MODELS/stories260K-q8_0.gguf --name stories --tag q8_0 --sign $T/keys/k.pem -o $T/stories8.airlock >/dev/null
A trust add $T/keys/k.pub.pem --name k --store $S >/dev/null
A policy set approvals=2 --store $S >/dev/null
RANDOM=${AIRLOCK_CRASH_SEED:-42}
ops=(import approve rm gc import import)
killed=0
for i in $(seq 1 $ITER); do
    op=${ops[$((RANDOM % ${#ops[@]}))]}
    case $op in
    import) cmd=(import $T/llama.airlock) ;;
    approve) cmd=(approve llama:q4_0 --by "p$((RANDOM % 3))") ;;
    rm) cmd=(rm llama:q4_0) ;;
    gc) cmd=(gc) ;;
    esac
    "$AIRLOCK_BIN" "${cmd[@]}" --store $S >/dev/null 2>&1 &
    pid=$!
    # a random moment: 0-40 ms for the quick operations, 0-200 ms for an import
    if [ $op = import ]; then sleep "$(printf '0.%03d' $((RANDOM % 200)))"; else sleep "$(printf '0.%03d' $((RANDOM % 40)))"; fi
    if kill -9 $pid 2>/dev/null; then killed=$((killed + 1)); fi
    wait $pid 2>/dev/null
    if [ $((i % 5)) -eq 0 ]; then
        if out=$(A verify --store $S 2>&1); then :; else fail "verify after kill #$i ($op): $out"; fi
    fi
done
echo "killed $killed of $ITER operations mid-flight"
expect_ok "verify after $ITER random kills" A verify --store $S
A list --store $S >/dev/null 2>&1 && pass "catalogue readable" || fail "catalogue unreadable"
# retries succeed
expect_ok "import retry" A import $T/llama.airlock --store $S
expect_ok "approve retry 1" A approve llama:q4_0 --by x1 --store $S
expect_ok "approve retry 2" A approve llama:q4_0 --by x2 --store $S
A show llama:q4_0 --store $S | grep -q "state: *published" && pass "published after retries" || fail "not published"
expect_ok "rm retry" A rm llama:q4_0 --store $S
expect_ok "gc retry" A gc --store $S
expect_ok "verify after retries" A verify --store $S
left=$(ls $S/blobs/sha256 | wc -l)
[ "$left" -eq 0 ] && pass "no blobs left once every model is removed" || fail "$left blobs left"

# a write that fails mid-copy (a file-size limit stands in for a full disk):
# a clear error, nothing half-published, no temporary files left
out=$( (ulimit -f 2048; trap '' XFSZ; "$AIRLOCK_BIN" import $T/llama.airlock --store $S) 2>&1 )
rc=$?
if [ $rc -ne 0 ] && grep -q "write failed: File too large" <<<"$out"; then pass "failed write refused -> $(grep -m1 'write failed' <<<"$out" | cut -c1-120)"
else fail "failed write: rc=$rc $out"; fi
A list --store $S | grep -qE "llama:q4_0 +(quarantined|published)" && fail "half-imported model listed" || pass "nothing published by the failed import"
expect_ok "verify after the failed write" A verify --store $S
[ -z "$(ls -A $S/tmp)" ] && pass "no temporary files left" || fail "tmp not empty: $(ls $S/tmp)"
A show llama:q4_0 --store $S >/dev/null 2>&1 && fail "an I/O failure was recorded as a rejection" || pass "an I/O failure is not recorded as a rejection"

# concurrent imports: two different models and the same one twice
A import $T/llama.airlock --store $S >$T/c1.out 2>&1 &
p1=$!
A import $T/stories.airlock --store $S >$T/c2.out 2>&1 &
p2=$!
A import $T/stories8.airlock --store $S >$T/c3.out 2>&1 &
p3=$!
A import $T/stories.airlock --store $S >$T/c4.out 2>&1 &
p4=$!
r=0
for p in $p1 $p2 $p3 $p4; do wait $p || r=1; done
[ $r -eq 0 ] && pass "four concurrent imports succeed" || fail "concurrent import failed: $(grep -h "airlock import" $T/c*.out)"
n=$(A list --state quarantined --store $S | grep -cE "llama:q4_0|stories:f32|stories:q8_0")
[ "$n" -eq 3 ] && pass "three models quarantined" || fail "$n models quarantined: $(A list --store $S)"
expect_ok "verify after concurrent imports" A verify --store $S
finish
