#!/bin/bash
# make image: builds the image with buildah into a private storage, exports it
# as an OCI layout and checks its config (user, entrypoint) and contents
# (the binary and its libraries, no shell). Containers are not run here.
set -u
AIRLOCK_BIN=${AIRLOCK_BIN:?AIRLOCK_BIN must name the airlock binary}
HERE=$(cd "$(dirname "$0")" && pwd)
command -v buildah >/dev/null || { echo "SKIPPED: buildah not installed (apt-get install buildah)"; exit 77; }
T=$(mktemp -d /tmp/airlock-imagetest.XXXXXX)
trap 'buildah --storage-driver vfs --root $T/b/root --runroot $T/b/run rmi -a -f >/dev/null 2>&1; rm -rf "$T"' EXIT
N_FAIL=0
fail() { echo "FAIL: $*"; N_FAIL=$((N_FAIL + 1)); }
pass() { echo "ok   $*"; }
if ! out=$(AIRLOCK_BUILDAH_ROOT=$T/b bash $HERE/../../scripts/image.sh "$AIRLOCK_BIN" localhost/airlock:test $T/oci 2>&1); then
    if grep -qiE "operation not permitted|user namespaces|newuidmap|cannot (set|mount)" <<<"$out"; then
        echo "SKIPPED: buildah cannot build on this host: $out"; exit 77
    fi
    echo "FAIL: image build: $out"; exit 1
fi
pass "image built: $(tail -2 <<<"$out" | head -1)"
python3 - $T/oci <<'PY' || N_FAIL=$((N_FAIL + 1))
import json, os, sys, tarfile
d = sys.argv[1]
blob = lambda dg: os.path.join(d, "blobs", *dg.split(":"))
idx = json.load(open(os.path.join(d, "index.json")))
man = json.load(open(blob(idx["manifests"][0]["digest"])))
cfg = json.load(open(blob(man["config"]["digest"])))
c = cfg["config"]
ok = True
def check(cond, what):
    global ok
    print(("ok   " if cond else "FAIL ") + what)
    ok &= bool(cond)
check(c.get("User") == "65532:65532", f"user is non-root: {c.get('User')}")
check(c.get("Entrypoint") == ["/usr/bin/airlock"], f"entrypoint: {c.get('Entrypoint')}")
check(c.get("Cmd", [None])[0] == "serve", f"default command: {c.get('Cmd')}")
names = set()
for l in man["layers"]:
    with tarfile.open(blob(l["digest"])) as t:
        names |= {n.lstrip("./") for n in t.getnames()}
check("usr/bin/airlock" in names, "the binary is in the image")
check(not any(n in names for n in ("bin/sh", "usr/bin/sh", "bin/bash", "bin/busybox", "usr/bin/env")), "no shell in the image")
check(any("libcurl" in n for n in names) and any("ld-linux" in n for n in names), "its shared libraries and the loader are in")
check("etc/passwd" in names, "/etc/passwd names the user")
sys.exit(0 if ok else 1)
PY
if command -v skopeo >/dev/null; then
    skopeo inspect --config oci:$T/oci > $T/cfg.json 2>&1 && grep -q '"User": "65532:65532"' $T/cfg.json \
        && pass "skopeo inspect shows the config" || fail "skopeo: $(head -5 $T/cfg.json)"
fi
[ $N_FAIL -eq 0 ] && { echo "all checks passed"; exit 0; }
echo "$N_FAIL check(s) FAILED"; exit 1
