#!/bin/bash
# The import scan flags tensors whose values are all NaN or infinite
# (issue 20): a copy of stories260K with token_embd.weight filled with NaN
# is rejected and the report names the tensor; the sound model passes.
. "$(dirname "$0")/lib.sh"
S=$T/store
python3 "$HERE/gguf_nan.py" $MODELS/stories260K.gguf $T/nan.gguf token_embd.weight >/dev/null || { fail "cannot write the NaN file"; finish; }
expect_ok "keygen" A keygen --name k --out $T/keys
expect_ok "bundle (NaN)" A bundle $T/nan.gguf --name nan --tag t --sign $T/keys/k.pem -o $T/nan.airlock
expect_ok "bundle (sound)" A bundle $MODELS/stories260K.gguf --name good --tag t --sign $T/keys/k.pem -o $T/good.airlock
expect_ok "trust" A trust add $T/keys/k.pub.pem --name k --store $S
expect_fail "all-NaN tensor rejected at import" "tensor 'token_embd.weight': all [0-9]+ values are NaN or infinite" \
    A import $T/nan.airlock --store $S
A show nan:t --store $S | grep -q "state: *rejected" && pass "recorded rejected" || fail "not rejected"
expect_ok "sound model imports" A import $T/good.airlock --store $S
A show good:t --store $S | grep -q "ok   stories260K.gguf: no tensor is all NaN/infinite" && pass "scan report: values checked" || fail "no value check in the report"
finish
