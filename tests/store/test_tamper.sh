#!/bin/bash
# Every tampering with a bundle is refused with its precise reason, and the
# store stays clean (nothing quarantined or published from a bad bundle).
. "$(dirname "$0")/lib.sh"
S=$T/store
mkbad() { python3 $HERE/mkbad.py "$@"; }
echo "Apache-2.0 (test)" > $T/LICENSE
A keygen --name good --out $T/keys >/dev/null
A keygen --name other --out $T/keys >/dev/null
A bundle $MODELS/stories260K.gguf --name stories --tag t --license $T/LICENSE --sign $T/keys/good.pem -o $T/good.airlock >/dev/null
A trust add $T/keys/good.pub.pem --name good --models 'stor*' --store $S >/dev/null
G=$T/good.airlock

check() { # KIND PATTERN
    mkbad $G $1 $T/bad-$1.airlock $T/keys/good.pem || { fail "mkbad $1"; return; }
    expect_fail "$1" "$2" A import $T/bad-$1.airlock --store $S
}
check blob-flip "file 'stories260K.gguf' is tampered: its sha256 is [0-9a-f]{64} but the signed manifest says"
check manifest-flip "bad signature: .*does not verify with trusted key 'good'"
check sig-flip "bad signature: .*does not verify with trusted key 'good'"
check extra-file "unexpected file 'extra.txt': not in the signed manifest"
check missing-file "file 'LICENSE' listed in the signed manifest is missing from the bundle"
check renamed-file "unexpected file 'model.gguf': not in the signed manifest"
check traversal "entry '\.\./x' refused: path traversal"
check symlink "entry 'link' is a symlink"
check device "entry 'null' is a character device"
check huge-tar-size "declares 4294967296 bytes in the tar but the signed manifest says 1185376"
check huge-manifest-size "declares 2199023255552 bytes, over the limit"
check big-manifest-size "not enough disk space"
check truncated "bundle truncated inside entry 'stories260K.gguf'"

# keys
A bundle $MODELS/stories260K.gguf --name stories --tag u --sign $T/keys/other.pem -o $T/other.airlock >/dev/null
expect_fail "untrusted key" "untrusted key: signed by key id [0-9a-f]{16}\.\.\., which is not in the trust store" \
    A import $T/other.airlock --store $S
A bundle $MODELS/tiny-llama-q4_0.gguf --name llama --tag q4 --sign $T/keys/good.pem -o $T/llama.airlock >/dev/null
expect_fail "key not allowed for the model name" "key not allowed: trusted key 'good' may sign models matching 'stor\*', not 'llama'" \
    A import $T/llama.airlock --store $S

# payloads the scanner refuses
head -c 600000 $MODELS/stories260K.gguf > $T/broken.gguf
A bundle $T/broken.gguf --name stories --tag broken --sign $T/keys/good.pem -o $T/broken.airlock >/dev/null
expect_fail "truncated GGUF" "rejected by the scanner: broken.gguf: GGUF validation failed" A import $T/broken.airlock --store $S
python3 - $T $MODELS/stories260K.gguf <<'PY'
import struct, sys, json
d = sys.argv[1]
g = bytearray(open(sys.argv[2], "rb").read())
i = g.find(b"general.name") + len(b"general.name") + 12
assert g[i:i + 5] == b"llama"
g[i + 2] = 0x1b  # an ESC in a metadata string
open(d + "/esc.gguf", "wb").write(bytes(g))
g = bytearray(open(sys.argv[2], "rb").read())
g[4:8] = struct.pack("<I", 99)  # GGUF version 99
open(d + "/v99.gguf", "wb").write(bytes(g))
open(d + "/model.pkl", "wb").write(b"\x80\x04\x95" + b"\x00" * 64 + b".")
h = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
open(d + "/model.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + b"\x00" * 4)
open(d + "/run.sh", "w").write("#!/bin/sh\necho hi\n")
PY
A bundle $T/esc.gguf --name stories --tag esc --sign $T/keys/good.pem -o $T/esc.airlock >/dev/null
expect_fail "control character in a metadata string" "metadata 'general.name' is not sane text \(control character at byte 2\)" \
    A import $T/esc.airlock --store $S
A bundle $T/v99.gguf --name stories --tag v99 --sign $T/keys/good.pem -o $T/v99.airlock >/dev/null
expect_fail "unsupported GGUF version" "v99.gguf: GGUF validation failed: .*version" A import $T/v99.airlock --store $S
A bundle $T/model.pkl --name stories --tag pkl --sign $T/keys/good.pem -o $T/pkl.airlock >/dev/null
expect_fail "pickle model" "model.pkl: refused: the model file is a Python pickle" A import $T/pkl.airlock --store $S
A bundle $T/model.safetensors --name stories --tag st --sign $T/keys/good.pem -o $T/st.airlock >/dev/null
expect_fail "safetensors model" "model.safetensors: refused: the model file is a safetensors file" A import $T/st.airlock --store $S
cp /bin/true $T/true.bin
A bundle $MODELS/stories260K.gguf $T/true.bin $T/run.sh --name stories --tag exe --sign $T/keys/good.pem -o $T/exe.airlock >/dev/null
expect_fail "ELF executable extra file" "true.bin: refused: it is an executable" A import $T/exe.airlock --store $S
expect_fail "script extra file (every reason)" "run.sh: refused: it is a script" A import $T/exe.airlock --store $S
cp $MODELS/stories260K.gguf $T/notalicense.gguf
A bundle $MODELS/stories260K.gguf --license $T/notalicense.gguf --name stories --tag lic --sign $T/keys/good.pem -o $T/lic.airlock >/dev/null
expect_fail "GGUF as a license" "the license is a GGUF file, not text" A import $T/lic.airlock --store $S

# a not-a-bundle file
expect_fail "not a tar" "bundle truncated|not POSIX ustar|bad checksum" A import $MODELS/stories260K.gguf --store $S

# nothing bad got in; rejected ones carry their reasons
A list --store $S > $T/list.txt
grep -qE "quarantined|published" $T/list.txt && fail "a bad bundle entered the store: $(cat $T/list.txt)" || pass "nothing quarantined or published"
A show stories:pkl --store $S | grep -q "state: *rejected" && pass "rejected model recorded" || fail "no rejected record"
A show stories:exe --store $S | grep -q "FAIL run.sh" && pass "scan report keeps every reason" || fail "scan report"
expect_ok "verify clean after all refusals" A verify --store $S
[ -z "$(ls -A $S/tmp)" ] && pass "no temporary files left" || fail "tmp not empty: $(ls $S/tmp)"
# the good bundle still imports
expect_ok "good bundle imports" A import $G --store $S
finish
