#!/bin/bash
# Random byte mutations of a good bundle (headers, manifest, signature,
# truncation): every import ends in success or a clean refusal (exit 0/1,
# never a crash), and the store stays clean. Under `make asan` this also
# shows the tar reader never reads out of bounds.
. "$(dirname "$0")/lib.sh"
S=$T/store
echo "license" > $T/LICENSE
A keygen --name k --out $T/keys >/dev/null
A bundle $MODELS/stories260K-q4_0.gguf --license $T/LICENSE --name s --tag t --sign $T/keys/k.pem -o $T/good.airlock >/dev/null
A trust add $T/keys/k.pub.pem --name k --store $S >/dev/null
out=$(python3 - "$AIRLOCK_BIN" $T $S "${AIRLOCK_MUTATIONS:-60}" <<'PY'
import random, subprocess, sys
bin_, t, store, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
random.seed(1234)
good = open(t + "/good.airlock", "rb").read()
codes = {}
for i in range(n):
    d = bytearray(good)
    for _ in range(random.choice([1, 2, 4, 8])):
        pos = random.randrange(0, 2048) if random.random() < 0.7 else random.randrange(len(d))
        d[pos] = random.randrange(256)
    if random.random() < 0.2:
        d = d[: random.randrange(len(d))]
    open(t + "/m.airlock", "wb").write(d)
    r = subprocess.run([bin_, "import", t + "/m.airlock", "--store", store], capture_output=True, text=True)
    codes[r.returncode] = codes.get(r.returncode, 0) + 1
    if r.returncode not in (0, 1):
        print("CRASH on mutation %d: exit %d: %s" % (i, r.returncode, r.stderr[-400:]))
print("exit codes:", codes)
PY
)
echo "$out"
grep -q CRASH <<<"$out" && fail "an import crashed" || pass "no mutation crashed the importer"
expect_ok "verify clean after the mutations" A verify --store $S
finish
