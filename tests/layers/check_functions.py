#!/usr/bin/env python3
"""check_functions.py SRC_DIR [MAX_LINES] - no function of src/ is longer
than MAX_LINES (150) lines unless the comment right above it says why, in a
sentence that starts with "Long:" (a table of cases, a parser of one
format, ...). Exits 1 naming each function that is neither short nor
explained, with its length and where it starts.

A function is counted from its first signature line to its closing brace
at column 0 (the code base's style: the opening brace of a function on a
line of its own).
"""
import glob
import os
import re
import sys

SIG_END = re.compile(r"\)\s*$")


def functions(path):
    """(name, first line, n lines, comment above) of each function of path"""
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i] == "{" and i > 0 and SIG_END.search(lines[i - 1]):
            j = i - 1  # back to the first line of the signature
            while j > 0 and lines[j - 1].strip() and not lines[j - 1].startswith(("}", "#", "/*", " *", "//")) \
                    and not lines[j - 1].rstrip().endswith((";", "*/")):
                j -= 1
            k = i + 1
            while k < len(lines) and lines[k] != "}":
                k += 1
            m = re.search(r"(\w+)\s*\(", " ".join(lines[j:i]))
            c = j
            comment = []
            if c > 0 and lines[c - 1].rstrip().endswith("*/"):
                c -= 1
                while c > 0 and not lines[c].lstrip().startswith("/*"):
                    c -= 1
                comment = lines[c:j]
            yield (m.group(1) if m else lines[j].strip(), j + 1, k - j + 1, " ".join(comment))
            i = k
        i += 1


def main():
    src = sys.argv[1]
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 150
    bad = []
    n = 0
    for path in sorted(glob.glob(os.path.join(src, "src", "*", "*.c"))):
        rel = os.path.relpath(path, src)
        for name, line, length, comment in functions(path):
            n += 1
            if length > limit and "Long:" not in comment:
                bad.append("%s:%d: %s is %d lines: split it, or say why it is long in a comment above it "
                           "that starts a sentence with \"Long:\"" % (rel, line, name, length))
    for b in bad:
        print("FAIL:", b)
    print("%d functions, limit %d lines: %s" % (n, limit, "FAILED" if bad else "ok"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
