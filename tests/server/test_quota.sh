#!/usr/bin/env bash
# test_quota.sh - token quotas enforced before the work (issue 20): 16
# concurrent requests with a --tpm 30 key; the answered ones together use at
# most 30 tokens (max_tokens is reserved at admission and cut to what is
# left), the others are 429 with Retry-After and say which limit; a request
# that stopped early gives back what it did not use.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/store_lib.sh"

publish demo s1 "$STORIES"
K30=$("$BIN" apikey create --store "$ST" --name tpm30 --scope completions --tpm 30 | head -1)
K400=$("$BIN" apikey create --store "$ST" --name tpm400 --scope completions --tpm 400 | head -1)
KFREE=$("$BIN" apikey create --store "$ST" --name free --scope completions | head -1)
start_server quota --store "$ST" --threads 1 --ctx 256 --parallel 4

python3 - "$URL" "$K30" > "$WORK/race.out" <<'PY'
import json, sys, threading, urllib.request, urllib.error
url, key = sys.argv[1], sys.argv[2]
body = json.dumps({"model": "demo:s1", "prompt": "Once upon a time", "max_tokens": 24,
                   "temperature": 0}).encode()
res = []
def one():
    rq = urllib.request.Request(url + "/v1/completions", data=body, headers={
        "Authorization": "Bearer " + key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(rq, timeout=120) as r:
            d = json.load(r)
            res.append((200, d["usage"]["total_tokens"], "", ""))
    except urllib.error.HTTPError as e:
        d = json.loads(e.read() or b"{}")
        res.append((e.code, 0, e.headers.get("Retry-After", ""), d.get("error", {}).get("message", "")))
ts = [threading.Thread(target=one) for _ in range(16)]
for t in ts: t.start()
for t in ts: t.join()
ok = [r for r in res if r[0] == 200]
lim = [r for r in res if r[0] == 429]
print("answered", len(ok), "tokens", sum(r[1] for r in ok), "refused", len(lim), "other", len(res) - len(ok) - len(lim))
print("retry_after", ",".join(sorted(set(r[2] for r in lim))))
print("message", lim[0][3] if lim else "")
PY
cat "$WORK/race.out"
read -r _ N_OK _ TOK _ N_429 _ N_OTHER < "$WORK/race.out"
RA=$(sed -n 's/^retry_after //p' "$WORK/race.out")
check "16 concurrent requests, tpm 30: some answered ($N_OK)" [ "$N_OK" -ge 1 ]
check "the answered ones used at most 30 tokens together ($TOK)" [ "$TOK" -le 30 ]
check "the others are 429 ($N_429 + $N_OTHER other)" [ "$((N_OK + N_429))" = 16 ]
check "429s carry Retry-After 1..60 ($RA)" python3 -c 'import sys; v=[int(x) for x in sys.argv[1].split(",") if x]; sys.exit(not v or not all(1 <= x <= 60 for x in v))' "$RA"
check "429 names the token quota" grep -q "^message .*token quota" "$WORK/race.out"

# refund: a request reserving 205 tokens that stops after a few gives the rest back
reqk() { CODE=$(curl -s -o "$WORK/r.json" -w '%{http_code}' -H "Authorization: Bearer $1" -H 'Content-Type: application/json' --data-binary "$2" "$URL/v1/completions" || true); BODY=$(cat "$WORK/r.json"); }
reqk "$KFREE" '{"model":"demo:s1","prompt":"Once upon a time","max_tokens":40,"temperature":0}'
WORD=$(jget "$BODY" 'd["choices"][0]["text"].split()[1]')
reqk "$K400" "{\"model\":\"demo:s1\",\"prompt\":\"Once upon a time\",\"max_tokens\":200,\"temperature\":0,\"stop\":[\"$WORD\"]}"
USED=$(jget "$BODY" 'd["usage"]["total_tokens"]')
check "early stop: 200, few tokens used ($USED)" [ "$CODE" = 200 ] && [ "$USED" -lt 40 ]
reqk "$K400" '{"model":"demo:s1","prompt":"Once upon a time","max_tokens":240,"temperature":0}'
echo "     next request: $(jget "$BODY" 'd["usage"], d["choices"][0]["finish_reason"]')"
check "the unused reservation came back: max_tokens 240 is not cut to $((400 - 205 - 5))" \
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); c=d["choices"][0]; sys.exit(not (d["usage"]["completion_tokens"] == 240 or c["finish_reason"] == "stop"))' "$BODY"
finish
