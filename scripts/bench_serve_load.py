#!/usr/bin/env python3
"""bench_serve_load.py URL MODEL N PROMPT_TOKENS GEN_TOKENS [RUN]

N concurrent streaming clients against /v1/completions (prompts given as
token ids, different per client and per RUN so the prefix cache cannot
help: give each run against one server its own RUN number), each
generating GEN_TOKENS. Prints one JSON line: aggregate generated tok/s,
time to first token and inter-token latency percentiles (seconds).
Standard library only; loopback only."""
import http.client, json, random, sys, threading, time, urllib.parse

url, model, n, n_prompt, n_gen = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
run = int(sys.argv[6]) if len(sys.argv) > 6 else 0
u = urllib.parse.urlparse(url)
results = [None] * n
barrier = threading.Barrier(n)


def client(i):
    rng = random.Random("%d/%d/%d" % (run, n, i))
    prompt = [rng.randrange(1000, 30000) for _ in range(n_prompt)]
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": n_gen, "temperature": 0,
                       "stream": True, "stream_options": {"include_usage": True}})
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    barrier.wait()
    t0 = time.monotonic()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.status
    times, n_tok = [], 0
    buf = b""
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            data = ev[6:]
            if data == b"[DONE]":
                continue
            d = json.loads(data)
            if d.get("usage"):
                n_tok = d["usage"]["completion_tokens"]
            if d["choices"] and d["choices"][0]["text"]:
                times.append(time.monotonic())
    t1 = time.monotonic()
    conn.close()
    results[i] = {"t0": t0, "t1": t1, "times": times, "n_tok": n_tok}


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
start = min(r["t0"] for r in results)
end = max(r["t1"] for r in results)
total = sum(r["n_tok"] for r in results)
ttft = [r["times"][0] - r["t0"] for r in results if r["times"]]
itl = [b - a for r in results for a, b in zip(r["times"], r["times"][1:])]
print(json.dumps({"clients": n, "tokens": total, "seconds": end - start, "tok_s": total / (end - start),
                  "ttft_p50": pct(ttft, 50), "ttft_p99": pct(ttft, 99), "itl_p50": pct(itl, 50),
                  "itl_p99": pct(itl, 99)}))
