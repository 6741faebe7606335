#!/usr/bin/env python3
"""check_layers.py SRC_DIR BUILD_DIR - the layering of src/ holds.

The policy below says which headers each layer of src/ may include. It is
written here, apart from src/layers.cmake, so that widening a layer's
include path there (a new dependency, src/ itself on the path) fails this
test until the policy is changed too, on purpose.

Checks, from the build's compile_commands.json:
 1. every header of src/ that a layer's include path makes reachable is
    allowed to it by POLICY (a forbidden header must not even resolve);
 2. the compiler agrees: a probe including a forbidden header fails to
    compile with a layer's real flags, one including an allowed one compiles;
 3. no #include under src/ climbs out of the include path ("../", "/abs",
    "src/...").
Exits 1 naming every violation.
"""
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

# layer -> what it may include besides airlock.h and its own folder:
# "module" (the headers that module exports) or "module/header.h".
ENGINE = {"util", "tensor", "gguf", "tokenizer", "template", "model", "sampling"}
POLICY = {
    "util": [],
    "tensor": [],
    "gguf": ["tensor", "util"],
    "tokenizer": ["gguf", "util"],
    "template": ["util"],
    "model": ["gguf", "tensor", "tokenizer", "util"],
    "sampling": ["tokenizer", "gguf", "util"],
    "audit": ["util"],
    "policy": ["util"],
    "sandbox": ["util"],
    "store": ["util", "audit"],
    "scan": ["store", "util", "gguf", "tensor"],
    "registry": ["store", "util"],
    # sampling/grammar.h: the server's one engine header (src/layers.cmake)
    "server": ["audit", "policy", "store", "util", "sampling/grammar.h"],
    "cli": ["server/server.h", "server/sched.h", "audit", "policy",
            "registry", "store", "scan", "sandbox", "util"],
}
# Headers a module keeps to itself even from layers that may use the module
# (and every *_int.h).
PRIVATE_HEADERS = {"server/api_int.h", "server/server_int.h", "sampling/grammar_int.h",
                   "tokenizer/tok_impl.h", "tokenizer/pretok.h"}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def layer_flags(cc, src):
    """{layer: (include dirs, argv of one of its compile commands)}"""
    out = {}
    for e in cc:
        f = os.path.realpath(e["file"])
        rel = os.path.relpath(f, os.path.join(src, "src"))
        if rel.startswith("..") or "/" not in rel:
            continue
        layer = rel.split("/")[0]
        if layer in out:
            continue
        argv = shlex.split(e["command"]) if "command" in e else e["arguments"]
        incs = [a[2:] for a in argv if a.startswith("-I")]
        out[layer] = (incs, argv, e["directory"])
    return out


def allowed(layer, header):
    mod = header.split("/")[0]
    if mod == layer:
        return True
    if header in PRIVATE_HEADERS or header.endswith("_int.h"):
        return False
    rules = POLICY[layer]
    return mod in rules or header in rules


def probe(argv, directory, header):
    """Whether a file including header compiles with argv's flags."""
    flags = []
    skip = False
    for a in argv[1:]:
        if skip:
            skip = False
            continue
        if a in ("-o", "-c", "-MF", "-MT", "-MQ"):
            skip = True
            continue
        if a.startswith("-M") or a.endswith(".c"):
            continue
        flags.append(a)
    with tempfile.NamedTemporaryFile("w", suffix=".c", delete=False) as t:
        t.write('#include "%s"\nint al_probe;\n' % header)
    try:
        r = subprocess.run([argv[0]] + flags + ["-fsyntax-only", t.name], cwd=directory,
                           capture_output=True, text=True)
        return r.returncode == 0
    finally:
        os.unlink(t.name)


def main():
    src, build = sys.argv[1], sys.argv[2]
    cc_path = os.path.join(build, "compile_commands.json")
    if not os.path.exists(cc_path):
        print("SKIP: no %s (configure with CMAKE_EXPORT_COMPILE_COMMANDS)" % cc_path)
        return 77
    cc = json.load(open(cc_path))
    src = os.path.realpath(src)
    srcdir = os.path.join(src, "src")
    headers = sorted("%s/%s" % (m, h) for m in os.listdir(srcdir) if os.path.isdir(os.path.join(srcdir, m))
                     for h in os.listdir(os.path.join(srcdir, m)) if h.endswith(".h"))
    modules = sorted({h.split("/")[0] for h in headers} | {m for m in os.listdir(srcdir)
                                                         if os.path.isdir(os.path.join(srcdir, m))})
    bad = []
    flags = layer_flags(cc, src)
    for m in modules:
        if m not in POLICY:
            bad.append("src/%s/: a layer with no policy in tests/layers/check_layers.py" % m)
        elif m not in flags:
            bad.append("src/%s/: no compile command in %s" % (m, cc_path))

    # 1. what each layer's include path reaches
    n_checked = 0
    for layer, (incs, _, _) in sorted(flags.items()):
        if layer not in POLICY:
            continue
        for h in headers:
            reach = [d for d in incs if os.path.exists(os.path.join(d, h))]
            n_checked += 1
            if reach and not allowed(layer, h):
                bad.append("src/%s/ can include %s (through %s): not allowed by the policy"
                           % (layer, h, reach[0]))

    # 2. the compiler agrees, on cases that matter most
    cases = [("server", "tensor/quant.h", False), ("server", "tokenizer/vocab.h", False),
             ("server", "model/model.h", False), ("server", "sampling/grammar_int.h", False),
             ("server", "scan/scan.h", False), ("server", "store/store.h", True),
             ("cli", "gguf/gguf.h", False), ("cli", "server/api_int.h", False),
             ("cli", "template/tmpl.h", False), ("cli", "server/server.h", True),
             ("cli", "sampling/grammar.h", False), ("server", "sampling/grammar.h", True),
             ("store", "gguf/gguf.h", False), ("store", "sampling/grammar.h", False),
             ("store", "audit/audit.h", True), ("audit", "store/store.h", False),
             ("tensor", "util/error.h", False), ("model", "tensor/quant.h", True)]
    for layer, h, want in cases:
        if layer not in flags or not os.path.exists(os.path.join(srcdir, h)):
            continue
        incs, argv, directory = flags[layer]
        got = probe(argv, directory, h)
        if got != want:
            bad.append("src/%s/: #include \"%s\" %s, expected it to %s"
                       % (layer, h, "compiles" if got else "does not compile",
                          "compile" if want else "fail"))

    # 3. includes that leave the include path
    for m in modules:
        for f in sorted(os.listdir(os.path.join(srcdir, m))):
            if not f.endswith((".c", ".h")):
                continue
            text = open(os.path.join(srcdir, m, f), encoding="utf-8", errors="replace").read()
            for inc in INCLUDE_RE.findall(text):
                if inc.startswith(("/", "src/")) or ".." in inc.split("/"):
                    bad.append("src/%s/%s: #include \"%s\" reaches around the layering" % (m, f, inc))

    for b in bad:
        print("FAIL:", b)
    print("%d layers, %d headers, %d reachability checks, %d compiler probes: %s"
          % (len(flags), len(headers), n_checked, len(cases), "FAILED" if bad else "ok"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
