# store_lib.sh - (sourced after lib.sh) builds a store in $WORK/store the
# way an operator does: key, signed bundles, trust, import, approve.
export AIRLOCK_USER=tester
unset AIRLOCK_STORE
ST="$WORK/store"
A() { "$BIN" "$@"; }
"$BIN" keygen --name pub --out "$WORK/keys" >/dev/null
"$BIN" trust add "$WORK/keys/pub.pub.pem" --name pub --store "$ST" >/dev/null

# publish NAME TAG MODEL [approve=yes]: bundle, import, and approve unless told not to
publish() {
    local name=$1 tag=$2 model=$3 approve=${4:-yes}
    "$BIN" bundle "$model" --name "$name" --tag "$tag" --sign "$WORK/keys/pub.pem" -o "$WORK/$name-$tag.airlock" >/dev/null
    "$BIN" import "$WORK/$name-$tag.airlock" --store "$ST" >/dev/null
    if [ "$approve" = yes ]; then "$BIN" approve "$name:$tag" --by alice --store "$ST" >/dev/null; fi
}

# digest_of NAME:TAG: the model's OCI manifest digest (hex)
digest_of() { "$BIN" show "$1" --store "$ST" | awk '/^digest:/ {sub("sha256:","",$2); print $2; exit}'; }
# blob_of NAME:TAG: the published GGUF blob's path
blob_of() { "$BIN" show "$1" --store "$ST" | awk '/^path:/ {print $2; exit}'; }
