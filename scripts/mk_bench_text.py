#!/usr/bin/env python3
"""mk_bench_text.py OUT [BYTES]: write the mixed text `airlock bench-tokenize`
is compared on (default 1,009,073 bytes, the size of the reference's text):
about 40% English prose (the licence texts of /usr/share/common-licenses,
then /usr/share/doc/*/copyright), 40% C code (/usr/include/*.h) and 20%
Chinese (the zh_CN translations of /usr/share/locale/zh_CN/LC_MESSAGES/*.mo,
msgstr only), every list sorted by path. System files of a Debian 12 host, so
that the text does not change with this repository. Each part is cut at a
character boundary; the parts are concatenated in that order. Standard
library only; prints what it used."""
import gettext, glob, os, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = sys.argv[1]
total = int(sys.argv[2]) if len(sys.argv) > 2 else 1009073

def take(files, limit, reader):
    buf, used = [], []
    n = 0
    for f in files:
        if n >= limit:
            break
        try:
            t = reader(f)
        except Exception:
            continue
        if not t:
            continue
        buf.append(t)
        used.append(f)
        n += len(t.encode())
    b = "\n".join(buf).encode()[:limit]
    return b.decode("utf-8", "ignore").encode(), used

def text(f):
    return open(f, encoding="utf-8", errors="ignore").read()

def mo(f):
    with open(f, "rb") as fp:
        cat = gettext.GNUTranslations(fp)
    return "\n".join(v for k, v in sorted(cat._catalog.items(), key=lambda kv: str(kv[0])) if k and isinstance(v, str))

en_files = sorted(glob.glob("/usr/share/common-licenses/*")) + sorted(glob.glob("/usr/share/doc/*/copyright"))
c_files = sorted(glob.glob("/usr/include/*.h"))
zh_files = sorted(glob.glob("/usr/share/locale/zh_CN/LC_MESSAGES/*.mo"))

en, en_used = take(en_files, total * 4 // 10, text)
c, c_used = take(c_files, total * 4 // 10, text)
zh, zh_used = take(zh_files, total - len(en) - len(c), mo)
data = (en + b"\n" + c + b"\n" + zh)[:total]
data = data.decode("utf-8", "ignore").encode()
open(out, "wb").write(data)
print("%s: %d bytes: English %d (%d files: %s ...), C %d (%d files), Chinese %d (%d .mo files)" % (
    out, len(data), len(en), len(en_used), ", ".join(os.path.basename(f) for f in en_used[:4]), len(c),
    len(c_used), len(zh), len(zh_used)))
