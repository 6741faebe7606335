#!/usr/bin/env python3
"""audit_forge.py - what an attacker without the audit key can do to the log
(used by audit_forge.sh). Subcommands:

  append LOG ACTION [rsig]   append a record with a valid SHA-256 chain (and,
                             with 'rsig', a made-up per-record signature)
  strip LOG [renumber]       remove the checkpoint records; with 'renumber',
                             renumber and re-chain the rest (hashes recomputed)
  legacy DIR N               write a log of N records in the format of airlock
                             before per-record signatures (format 1): chain,
                             checkpoints at 64k, a signed audit.head, its key
"""
import hashlib
import json
import os
import sys

SUFFIX = 75  # ,"hash":"<64>"}


def rec_hash(line):
    return line[-SUFFIX + 9:-2]


def finish(body):
    """body: compact JSON without its closing brace -> the whole line."""
    h = hashlib.sha256(body.encode()).hexdigest()
    return body + ',"hash":"' + h + '"}'


def read(log):
    with open(log) as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def write(log, lines):
    with open(log, "w") as f:
        for l in lines:
            f.write(l + "\n")


def event_body(seq, prev, action, actor="mallory"):
    o = {"seq": seq, "time": "2026-01-01T00:00:00.000Z", "type": "event", "actor": actor,
         "client": "cli", "action": action, "status": 0, "duration_ms": 0.0, "pid": 1,
         "prev": prev}
    return json.dumps(o, separators=(",", ":"))[:-1]


def append(log, action, fake_rsig):
    lines = read(log)
    last = json.loads(lines[-1])
    body = event_body(last["seq"] + 1, rec_hash(lines[-1]), action)
    if fake_rsig:
        body += ',"rsig":"' + os.urandom(64).hex() + '"'
    lines.append(finish(body))
    write(log, lines)


def strip(log, renumber):
    lines = [l for l in read(log) if json.loads(l)["type"] != "checkpoint"]
    if renumber:
        prev = "0" * 64
        out = []
        for i, l in enumerate(lines):
            body = l[:-SUFFIX]
            o = json.loads(body + "}")
            # keep the bytes, change seq and prev in place (the rsig stays:
            # the attacker cannot make a new one)
            body = body.replace('"seq":%d,' % o["seq"], '"seq":%d,' % (i + 1), 1)
            body = body.replace('"prev":"%s"' % o["prev"], '"prev":"%s"' % prev, 1)
            line = finish(body)
            prev = rec_hash(line)
            out.append(line)
        lines = out
    write(log, lines)


def legacy(d, n):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization as ser
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
    pub = key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw).hex()
    os.makedirs(d, exist_ok=True)
    prev = "0" * 64
    lines = []
    for seq in range(1, n + 1):
        if seq % 64 == 0:
            o = {"seq": seq, "time": "2025-06-01T00:00:00.000Z", "type": "checkpoint",
                 "actor": "airlock", "action": "audit.checkpoint", "pid": 1, "prev": prev,
                 "key": pub,
                 "sig": key.sign(("airlock-audit-checkpoint:%d:%s" % (seq, prev)).encode()).hex()}
            body = json.dumps(o, separators=(",", ":"))[:-1]
        else:
            body = event_body(seq, prev, "apikey.create", "operator")
        line = finish(body)
        prev = rec_hash(line)
        lines.append(line)
    write(os.path.join(d, "audit.log"), lines)
    sig = key.sign(("airlock-audit-head:%d:%s" % (n, prev)).encode()).hex()
    with open(os.path.join(d, "audit.head"), "w") as f:
        f.write("%d %s %s\n" % (n, prev, sig))
    with open(os.path.join(d, "audit.key"), "w") as f:
        f.write(raw.hex() + "\n")
    os.chmod(os.path.join(d, "audit.key"), 0o600)
    with open(os.path.join(d, "audit.pub"), "w") as f:
        f.write(pub + "\n")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "append":
        append(sys.argv[2], sys.argv[3], len(sys.argv) > 4 and sys.argv[4] == "rsig")
    elif cmd == "strip":
        strip(sys.argv[2], len(sys.argv) > 3 and sys.argv[3] == "renumber")
    elif cmd == "legacy":
        legacy(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("unknown command " + cmd)
