#!/usr/bin/env bash
# Builds the airlock container image with buildah, from scratch: the airlock
# binary, the shared libraries it links (as ldd resolves them on this build
# host), /etc/passwd and /etc/group naming a non-root user, and an empty
# /var/lib/airlock for the store. No shell, no package manager, no base image.
#   scripts/image.sh BINARY IMAGE_NAME:TAG [OCI_ARCHIVE]
set -euo pipefail
BIN=$1 IMG=$2 OUT=${3:-}
command -v buildah >/dev/null || { echo "image: buildah is not installed (apt-get install buildah)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "image: $BIN not built (make build)" >&2; exit 1; }
ROOT=$(mktemp -d /tmp/airlock-rootfs.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
install -D -m 0555 "$BIN" "$ROOT/usr/bin/airlock"
# every shared object the binary needs, at the path the loader expects
ldd "$BIN" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | sort -u | while read -r lib; do
    real=$(readlink -f "$lib")
    install -D -m 0444 "$real" "$ROOT$lib"
done
mkdir -p "$ROOT/etc" "$ROOT/var/lib/airlock" "$ROOT/tmp"
printf 'airlock:x:65532:65532:airlock:/var/lib/airlock:/nonexistent\n' > "$ROOT/etc/passwd"
printf 'airlock:x:65532:\n' > "$ROOT/etc/group"
printf 'hosts: files dns\n' > "$ROOT/etc/nsswitch.conf"
chown -R 65532:65532 "$ROOT/var/lib/airlock"
chmod 1777 "$ROOT/tmp"
SD=${BUILDAH_STORAGE_DRIVER:-vfs}
BA=(buildah --storage-driver "$SD")
# a private image storage (tests): AIRLOCK_BUILDAH_ROOT=DIR
[ -n "${AIRLOCK_BUILDAH_ROOT:-}" ] && BA+=(--root "$AIRLOCK_BUILDAH_ROOT/root" --runroot "$AIRLOCK_BUILDAH_ROOT/run")
ctr=$("${BA[@]}" from scratch)
trap '"${BA[@]}" rm "$ctr" >/dev/null 2>&1 || true; rm -rf "$ROOT"' EXIT
"${BA[@]}" copy "$ctr" "$ROOT" / >/dev/null
"${BA[@]}" config --user 65532:65532 --workingdir /var/lib/airlock \
    --entrypoint '["/usr/bin/airlock"]' --cmd '["serve", "--store", "/var/lib/airlock", "--listen", "0.0.0.0:8080"]' \
    --port 8080/tcp --env AIRLOCK_STORE=/var/lib/airlock --volume /var/lib/airlock \
    --label org.opencontainers.image.title=airlock \
    --label org.opencontainers.image.version="${IMG##*:}" \
    --label io.airlock.read-only-rootfs=expected "$ctr"
"${BA[@]}" commit --rm -q "$ctr" "$IMG" >/dev/null
echo "image: built $IMG ($(du -sh "$ROOT" | cut -f1) unpacked, $(find "$ROOT" -type f | wc -l) files)"
if [ -n "$OUT" ]; then
    rm -rf "$OUT"
    "${BA[@]}" push -q "$IMG" "oci:$OUT" >/dev/null
    echo "image: OCI layout in $OUT"
fi
