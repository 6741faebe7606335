#!/usr/bin/env python3
"""bench_start.py BIN MODEL.gguf [RUNS] [-- SERVE ARGS...]

Cold start of `airlock serve` from a warm page cache: RUNS times, the file
is read once (so its pages are cached), the server is started, and we time

  listen  its "listening on" line,
  ready   the first 200 from /ready,
  first   the first answer to a 1-token completion of a 1-token prompt:
          the model is loaded on first use, so this is the time until the
          model can serve (load + context + one pass),

with the server's CPU time (user + sys) at that answer; then a second
request (16 tokens generated), the end of the background packing of the
weights (/api/ps "packing" false), and the RSS then beside file size + KV
cache + 64 MiB (the KV size is /api/ps's size minus the file's). Prints one JSON line per
run and a summary (medians). Standard library only; loopback only."""
import http.client, json, os, re, statistics, subprocess, sys, tempfile, time

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_mem(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


def request(port, method, path, body=None, timeout=120):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, json.dumps(body) if body is not None else None,
              {"Content-Type": "application/json"} if body is not None else {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def warm(path):
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def one_run(binary, model, extra):
    warm(model)
    log = tempfile.TemporaryFile()
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "serve", "--model", model, "--model-name", "m", "--listen", "127.0.0.1:0"] + extra,
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        port = None
        while port is None:
            if p.poll() is not None:
                log.seek(0)
                raise SystemExit("bench_start: the server exited:\n" + log.read().decode(errors="replace"))
            log.seek(0)
            m = re.search(rb"listening on http://[0-9.]+:(\d+)", log.read())
            if m:
                port = int(m.group(1))
            else:
                time.sleep(0.002)
        t_listen = time.monotonic() - t0
        while request(port, "GET", "/ready")[0] != 200:
            time.sleep(0.002)
        t_ready = time.monotonic() - t0
        st, data = request(port, "POST", "/v1/completions",
                           {"model": "m", "prompt": [100], "max_tokens": 1, "temperature": 0})
        t_first = time.monotonic() - t0
        if st != 200:
            raise SystemExit("bench_start: completion answered %d: %s" % (st, data[:300]))
        cpu = proc_cpu(p.pid)
        st, data = request(port, "POST", "/v1/completions",
                           {"model": "m", "prompt": list(range(1000, 1064)), "max_tokens": 16, "temperature": 0})
        # the weights are packed by a background thread: wait for it
        while True:
            st, data = request(port, "GET", "/api/ps")
            ps = json.loads(data)["models"][0]
            if not ps.get("packing"):
                break
            time.sleep(0.005)
        t_packed = time.monotonic() - t0
        cpu_packed = proc_cpu(p.pid)
        mem = proc_mem(p.pid)
        size = ps["size"]
        fsize = os.path.getsize(model)
        return {"listen_s": t_listen, "ready_s": t_ready, "first_s": t_first, "cpu_s": cpu,
                "packed_s": t_packed, "cpu_packed_s": cpu_packed, "hwm": mem.get("VmHWM", 0),
                "rss": mem.get("VmRSS", 0), "rss_anon": mem.get("RssAnon", 0), "rss_file": mem.get("RssFile", 0),
                "file": fsize, "kv": size - fsize}
    finally:
        p.terminate()
        p.wait()
        log.close()


def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1:]
    binary, model = args[0], args[1]
    runs = int(args[2]) if len(args) > 2 else 3
    rs = []
    for _ in range(runs):
        r = one_run(binary, model, extra)
        print(json.dumps(r), file=sys.stderr)
        rs.append(r)
    med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
    MiB = 1 << 20
    budget = med["file"] + med["kv"] + 64 * MiB
    print("model: %s, %.1f MB, KV %.1f MiB; %d runs, medians" % (model, med["file"] / 1e6, med["kv"] / MiB, runs))
    print("| measure | airlock | goal |\n|---|---|---|")
    print("| start to listening | %.3f s | |" % med["listen_s"])
    print("| start to /ready 200 | %.3f s | |" % med["ready_s"])
    print("| start to first token (model loaded on first use) | %.3f s (server CPU %.3f s) | < 1 s: %s |"
          % (med["first_s"], med["cpu_s"], "met" if med["first_s"] < 1.0 else "NOT met"))
    print("| start to weights packed (full speed; a background thread packs them) | %.3f s (server CPU %.3f s, "
          "with a 16-token request) | |" % (med["packed_s"], med["cpu_packed_s"]))
    print("| RSS after a request | %.1f MiB (anon %.1f, file %.1f) | <= file + KV + 64 MiB = %.1f MiB: %s |"
          % (med["rss"] / MiB, med["rss_anon"] / MiB, med["rss_file"] / MiB, budget / MiB,
             "met" if med["rss"] <= budget else "NOT met"))
    print("| peak RSS (VmHWM) | %.1f MiB | |" % (med["hwm"] / MiB))


if __name__ == "__main__":
    main()
