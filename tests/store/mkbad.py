#!/usr/bin/env python3
"""mkbad.py GOOD.airlock KIND OUT [KEY.pem]: writes a tampered copy of a bundle.

KIND: blob-flip, manifest-flip, sig-flip, extra-file, missing-file,
renamed-file, traversal, symlink, device, huge-tar-size, truncated,
huge-manifest-size, big-manifest-size (the last two re-sign with KEY.pem).
"""
import io
import json
import subprocess
import sys
import tarfile
import tempfile


def entries(path):
    out = []
    with tarfile.open(path, "r:") as t:
        for m in t.getmembers():
            out.append((m.name, t.extractfile(m).read()))
    return out


def info(name, size):
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mode = 0o644
    ti.mtime = 0
    return ti


def write(path, ents, extra=None):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in ents:
            t.addfile(info(name, len(data)), io.BytesIO(data))
        if extra:
            extra(t)
    open(path, "wb").write(buf.getvalue())


def sign(key, data):
    with tempfile.NamedTemporaryFile() as f, tempfile.NamedTemporaryFile() as s:
        f.write(data)
        f.flush()
        subprocess.check_call(["openssl", "pkeyutl", "-sign", "-inkey", key, "-rawin",
                               "-in", f.name, "-out", s.name])
        return open(s.name, "rb").read()


def main():
    good, kind, out = sys.argv[1], sys.argv[2], sys.argv[3]
    ents = entries(good)
    names = [n for n, _ in ents]
    mi = names.index("manifest.json")
    si = names.index("manifest.sig")
    model_i = 2  # first payload entry: the model

    def flip(i, off):
        n, d = ents[i]
        d = bytearray(d)
        d[off % len(d)] ^= 0x01
        ents[i] = (n, bytes(d))

    if kind == "blob-flip":
        flip(model_i, len(ents[model_i][1]) // 2)
        write(out, ents)
    elif kind == "manifest-flip":
        n, d = ents[mi]
        d = d.replace(b'"created": "2', b'"created": "3', 1)
        ents[mi] = (n, d)
        write(out, ents)
    elif kind == "sig-flip":
        flip(si, 10)
        write(out, ents)
    elif kind == "extra-file":
        ents.append(("extra.txt", b"hello\n"))
        write(out, ents)
    elif kind == "missing-file":
        del ents[-1]
        write(out, ents)
    elif kind == "renamed-file":
        ents[model_i] = ("model.gguf", ents[model_i][1])
        write(out, ents)
    elif kind == "traversal":
        ents.insert(model_i, ("../x", b"evil\n"))
        write(out, ents)
    elif kind == "symlink":
        def add(t):
            ti = tarfile.TarInfo("link")
            ti.type = tarfile.SYMTYPE
            ti.linkname = "/etc/passwd"
            t.addfile(ti)
        write(out, ents[:model_i], add)
    elif kind == "device":
        def add(t):
            ti = tarfile.TarInfo("null")
            ti.type = tarfile.CHRTYPE
            ti.devmajor, ti.devminor = 1, 3
            t.addfile(ti)
        write(out, ents[:model_i], add)
    elif kind == "huge-tar-size":
        # the model's header claims 2^40 bytes; the data that follows is short
        write(out, ents[:model_i])
        end = sum(512 + (len(d) + 511) // 512 * 512 for _, d in ents[:model_i])
        raw = bytearray(open(out, "rb").read()[:end])  # without the end marker
        ti = info(ents[model_i][0], 0)
        h = bytearray(ti.tobuf(format=tarfile.USTAR_FORMAT))
        h[124:136] = b"%011o\0" % (1 << 32)
        h[148:156] = b"        "
        h[148:156] = b"%06o\0 " % sum(h)
        raw += h + ents[model_i][1][:4096]
        open(out, "wb").write(bytes(raw))
    elif kind == "truncated":
        write(out, ents)
        raw = open(out, "rb").read()
        open(out, "wb").write(raw[: len(raw) // 2])
    elif kind in ("huge-manifest-size", "big-manifest-size"):
        key = sys.argv[4]
        man = json.loads(ents[mi][1])
        man["files"][0]["size"] = (1 << 41) if kind == "huge-manifest-size" else (1 << 39)
        data = json.dumps(man, indent=2, sort_keys=True).encode()
        ents[mi] = ("manifest.json", data)
        ents[si] = ("manifest.sig", sign(key, data))
        write(out, ents)
    else:
        sys.exit("unknown kind " + kind)


main()
