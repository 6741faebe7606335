#!/usr/bin/env python3
"""slow_clients.py PORT - slow-client flood against a running `airlock serve`
(used by test_slow_clients.sh).

Phase A: 300 connections from 127.0.0.1, each sending its request headers one
byte per second (never finishing), reopened when the server closes them.
Phase B: the same 300 spread over ten addresses 127.0.0.10-19 (30 each), so a
per-address limit alone does not stop them.
Meanwhile a normal client on 127.0.0.2 asks GET /health every 0.5 s and must
get every answer (5 s allowed each). At the end no slow connection may have
stayed open longer than the header deadline + 10 s.
Prints a summary line per phase; exit status 1 on failure."""
import selectors
import socket
import sys
import threading
import time

PORT = int(sys.argv[1])
HEADER_DEADLINE = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
N_SLOW = 300
DRIP = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000


class Slow:
    def __init__(self, src):
        self.src = src
        self.sock = None
        self.opened = 0.0
        self.sent = 0
        self.next_try = 0.0


def open_slow(s, now):
    s.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.sock.setblocking(False)
    try:
        s.sock.bind((s.src, 0))
        s.sock.connect_ex(("127.0.0.1", PORT))
    except OSError:
        s.sock.close()
        s.sock = None
        s.next_try = now + 1.0
        return
    s.opened = now
    s.sent = 0


def normal_client(stop, res):
    while not stop.is_set():
        t0 = time.monotonic()
        ok = False
        try:
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.settimeout(5.0)
            c.bind(("127.0.0.2", 0))
            c.connect(("127.0.0.1", PORT))
            c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while not data.startswith(b"HTTP/1.1 ") or b"\r\n" not in data:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            ok = data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.1 503")
            res["codes"].append(data[9:12].decode(errors="replace") if data else "none")
            c.close()
        except OSError as e:
            res["codes"].append(type(e).__name__)
        res["ok" if ok else "fail"] += 1
        res["worst"] = max(res["worst"], time.monotonic() - t0)
        time.sleep(max(0.0, 0.5 - (time.monotonic() - t0)))


def phase(name, sources, seconds):
    slows = [Slow(sources[i % len(sources)]) for i in range(N_SLOW)]
    sel = selectors.DefaultSelector()
    res = {"ok": 0, "fail": 0, "worst": 0.0, "codes": []}
    stop = threading.Event()
    t_end = time.monotonic() + seconds
    longest = 0.0
    closed_by_server = 0
    next_drip = 0.0
    th = None
    while True:
        now = time.monotonic()
        if now >= t_end:
            break
        for s in slows:
            if s.sock is None and now >= s.next_try:
                open_slow(s, now)
                if s.sock:
                    sel.register(s.sock, selectors.EVENT_READ, s)
        if th is None and now > t_end - seconds + 2.0:
            # the flood is in place: the normal client starts
            th = threading.Thread(target=normal_client, args=(stop, res))
            th.start()
        if now >= next_drip:
            next_drip = now + 1.0
            for s in slows:
                if s.sock is None:
                    continue
                try:
                    s.sock.send(DRIP[s.sent % len(DRIP):s.sent % len(DRIP) + 1])
                    s.sent += 1
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    pass
        for key, _ in sel.select(timeout=0.1):
            s = key.data
            try:
                d = s.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                d = b""
            if d:
                continue  # e.g. a 408/503 before the close
            life = time.monotonic() - s.opened
            longest = max(longest, life)
            closed_by_server += 1
            sel.unregister(s.sock)
            s.sock.close()
            s.sock = None
            s.next_try = time.monotonic() + 1.0
    still_open_longest = max([time.monotonic() - s.opened for s in slows if s.sock] + [0.0])
    for s in slows:
        if s.sock:
            sel.unregister(s.sock)
            s.sock.close()
    stop.set()
    if th:
        th.join()
    longest = max(longest, still_open_longest)
    print("%s: normal client %d ok, %d failed (worst %.1f s; codes %s); slow connections closed "
          "by the server %d times, longest open %.1f s"
          % (name, res["ok"], res["fail"], res["worst"], ",".join(sorted(set(res["codes"]))),
             closed_by_server, longest), flush=True)
    return res["fail"] == 0 and res["ok"] >= 5 and longest <= HEADER_DEADLINE + 10.0


a = phase("A: 300 slow from 127.0.0.1", ["127.0.0.1"], 22.0)
b = phase("B: 300 slow from 127.0.0.10-19", ["127.0.0.%d" % i for i in range(10, 20)], 12.0)
sys.exit(0 if a and b else 1)
