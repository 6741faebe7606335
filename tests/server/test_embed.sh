#!/usr/bin/env bash
# test_embed.sh - embeddings and rerank through the real server: encoders
# (tiny-bert-f16, CLS), a last-token decoder (tiny-qwen3-embed-q8_0), a
# reranker (tiny-bert-f16 with a classifier head, tests/engine/mkrank.py)
# and a chat model; vectors against ../shared/ref, rerank against the CLI's
# exact path, batching, Matryoshka dimensions, truncation, capabilities,
# and the bad inputs of issue 16.
source "$(dirname "$0")/lib.sh"
M="$SHARED/models"
python3 "$(dirname "$0")/../engine/mkrank.py" "$M/tiny-bert-f16.gguf" "$WORK/tiny-rank.gguf"
python3 "$(dirname "$0")/../engine/mkrank.py" "$M/tiny-qwen3-embed-q8_0.gguf" "$WORK/tiny-qrank.gguf" --decoder
start_server embed --model "$M/tiny-bert-f16.gguf" --model "$M/tiny-qwen3-embed-q8_0.gguf" \
    --model "$WORK/tiny-rank.gguf" --model "$WORK/tiny-qrank.gguf" --model "$STORIES"

# cosine of the first returned vector with a reference file
cos_ref() { python3 -c '
import json,struct,sys,math
d=json.loads(sys.argv[1]); v=d["data"][0]["embedding"]; n=len(v)
r=struct.unpack("<%df"%n, open(sys.argv[2],"rb").read())
print("%.6f" % (sum(a*b for a,b in zip(v,r))/math.sqrt(sum(a*a for a in v)*sum(b*b for b in r))))' "$1" "$2"; }
ge() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)' "$1" "$2"; }

for m in tiny-bert-f16 tiny-qwen3-embed-q8_0; do
    for p in 1 2 3; do
        body=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(json.dumps({"model":sys.argv[2],"input":j["prompt"]}))' \
            "$SHARED/ref/$m.p$p.json" "$m")
        req POST /v1/embeddings "$body"
        c=$(cos_ref "$BODY" "$SHARED/ref/$m.p$p.embd.f32" 2>/dev/null || echo 0)
        check "$m p$p: /v1/embeddings vs the reference: cosine $c >= 0.999" ge "$c" 0.999
    done
done

# 256 inputs: every one answered, in a few large passes, each as it is alone
passes() { curl -s "$URL/metrics" | awk '/^airlock_forward_passes_total\{kind="prefill"\}/ {print $2}'; }
p0=$(passes)
body=$(python3 -c 'import json; print(json.dumps({"model":"tiny-bert-f16","input":["input %d: "%i + "a little robot walked to the sea " * (3 + i % 20) for i in range(256)]}))')
req POST /v1/embeddings "$body"
p1=$(passes)
printf '%s' "$BODY" >"$WORK/all.json" # too long for an argument
n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["data"]))' "$WORK/all.json" 2>/dev/null || echo 0)
check "256 inputs: 256 vectors (got $n)" [ "$n" = 256 ]
check "256 inputs in at most 16 passes (took $((p1 - p0)))" [ $((p1 - p0)) -le 16 ]
req POST /v1/embeddings '{"model":"tiny-bert-f16","input":"input 37: '"$(python3 -c 'print("a little robot walked to the sea " * 20, end="")')"'"}'
same=$(python3 -c '
import json,sys
a=json.load(open(sys.argv[1]))["data"][37]["embedding"]; b=json.loads(sys.argv[2])["data"][0]["embedding"]
print(max(abs(x-y) for x,y in zip(a,b)))' "$WORK/all.json" "$BODY" 2>/dev/null || echo 1)
check "input 37 of 256 equals it alone (max diff $same)" python3 -c "import sys; sys.exit(0 if $same < 1e-5 else 1)"

# dimensions (Matryoshka), base64
req POST /v1/embeddings '{"model":"tiny-bert-f16","input":"hello world","dimensions":32}'
check "dimensions 32: 32 values of norm 1" python3 -c '
import json,sys,math; v=json.loads(sys.argv[1])["data"][0]["embedding"]; sys.exit(0 if len(v)==32 and abs(math.sqrt(sum(x*x for x in v))-1)<1e-5 else 1)' "$BODY"
req POST /api/embed '{"model":"tiny-bert-f16","input":["hello world"],"dimensions":16}'
check "/api/embed dimensions 16" python3 -c 'import json,sys; sys.exit(0 if len(json.loads(sys.argv[1])["embeddings"][0])==16 else 1)' "$BODY"
req POST /v1/embeddings '{"model":"tiny-bert-f16","input":"hello world","dimensions":4096}'
check "dimensions past n_embd: 400 ($CODE)" [ "$CODE" = 400 ]
req POST /v1/embeddings '{"model":"tiny-bert-f16","input":"hello world","encoding_format":"base64"}'
check "base64: 128 floats" python3 -c 'import json,sys,base64; sys.exit(0 if len(base64.b64decode(json.loads(sys.argv[1])["data"][0]["embedding"]))==512 else 1)' "$BODY"

# longer than the model's 512 positions: 400, or cut with truncate
long=$(python3 -c 'print("robot " * 700, end="")')
req POST /v1/embeddings '{"model":"tiny-bert-f16","input":"'"$long"'"}'
check "an input past the model's positions: 400 naming it ($CODE)" sh -c '[ "$1" = 400 ] && echo "$2" | grep -q "at most 512"' _ "$CODE" "$BODY"
req POST /api/embed '{"model":"tiny-bert-f16","input":"'"$long"'","truncate":true}'
check "/api/embed truncate: true cuts it (200, $CODE)" [ "$CODE" = 200 ]

# bad input
req POST /v1/embeddings '{"model":"tiny-bert-f16","input":[]}'
check "empty input list: 400 ($CODE)" [ "$CODE" = 400 ]
req POST /v1/embeddings '{"model":"tiny-bert-f16","input":""}'
check "empty string: 400 ($CODE)" [ "$CODE" = 400 ]
python3 -c 'import json; print(json.dumps({"model":"tiny-bert-f16","input":["x"]*100000}))' >"$WORK/huge.json"
CODE=$(curl -s -o "$WORK/huge.out" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$WORK/huge.json" "$URL/v1/embeddings")
check "100,000 inputs: refused with 400/413 ($CODE)" sh -c '[ "$1" = 400 ] || [ "$1" = 413 ]' _ "$CODE"
req POST /v1/embeddings '{"model":"tiny-bert-f16","input":[[101,7592,999999]]}'
check "token id out of range: 400 ($CODE)" sh -c '[ "$1" = 400 ] && echo "$2" | grep -q "not a token id"' _ "$CODE" "$BODY"
req POST /v1/embeddings '{"model":"tiny-rank","input":"hello"}'
check "a reranker asked to embed: 400 saying so ($CODE)" sh -c '[ "$1" = 400 ] && echo "$2" | grep -q reranker' _ "$CODE" "$BODY"
req POST /v1/chat/completions '{"model":"tiny-bert-f16","messages":[{"role":"user","content":"hi"}]}'
check "chat on an encoder: 400 ($CODE)" [ "$CODE" = 400 ]
req POST /v1/completions '{"model":"tiny-bert-f16","prompt":"hi"}'
check "completion on an encoder: 400 saying it cannot generate ($CODE)" sh -c '[ "$1" = 400 ] && echo "$2" | grep -q "cannot generate"' _ "$CODE" "$BODY"

# rerank: the reranker's scores and order against the CLI's exact path
docs=("robots are machines that move" "the sea is blue and deep" "Once upon a time, there was a little robot who" "fn main() { 42 }")
args=(); for d in "${docs[@]}"; do args+=(--doc "$d"); done
exact=$("$BIN" rerank "$WORK/tiny-rank.gguf" --exact --json --query "a little robot" "${args[@]}")
req POST /v1/rerank "$(python3 -c 'import json,sys; print(json.dumps({"model":"tiny-rank","query":"a little robot","documents":sys.argv[1:]}))' "${docs[@]}")"
check "rerank: 200 with 4 results, documents returned ($CODE)" python3 -c '
import json,sys; r=json.loads(sys.argv[1])["results"]; sys.exit(0 if len(r)==4 and all("text" in x["document"] for x in r) else 1)' "$BODY"
check "rerank: scores within 0.01 of the exact path, same order where they differ by 0.02" python3 -c '
import json,sys
a={x["index"]:x["relevance_score"] for x in json.loads(sys.argv[1])["results"]}
b={x["index"]:x["relevance_score"] for x in json.loads(sys.argv[2])["results"]}
ok=all(abs(a[i]-b[i])<=0.01 for i in b)
ok=ok and all((a[i]>a[j]) for i in b for j in b if b[i]-b[j]>0.02)
sys.exit(0 if ok else 1)' "$BODY" "$exact"
# a decoder reranker (Qwen3-Reranker's layout): p(yes) of its filled-in template
exact=$("$BIN" rerank "$WORK/tiny-qrank.gguf" --exact --json --query "a little robot" "${args[@]}")
req POST /v1/rerank "$(python3 -c 'import json,sys; print(json.dumps({"model":"tiny-qrank","query":"a little robot","documents":sys.argv[1:]}))' "${docs[@]}")"
check "decoder rerank: probabilities within 0.01 of the exact path" python3 -c '
import json,sys
a={x["index"]:x["relevance_score"] for x in json.loads(sys.argv[1])["results"]}
b={x["index"]:x["relevance_score"] for x in json.loads(sys.argv[2])["results"]}
sys.exit(0 if len(a)==4 and all(0<a[i]<1 and abs(a[i]-b[i])<=0.01 for i in b) else 1)' "$BODY" "$exact"
req POST /rerank '{"model":"tiny-bert-f16","query":"a little robot","documents":["a little robot","the sea"],"top_n":1,"return_documents":false}'
check "/rerank on an embedding model (cosine): top_n 1, no document ($CODE)" python3 -c '
import json,sys; r=json.loads(sys.argv[1])["results"]; sys.exit(0 if len(r)==1 and r[0]["index"]==0 and "document" not in r[0] and abs(r[0]["relevance_score"]-1)<1e-4 else 1)' "$BODY"
req POST /v1/rerank '{"model":"tiny-rank","query":"q","documents":[]}'
check "rerank with no documents: 400 ($CODE)" [ "$CODE" = 400 ]
python3 -c 'import json; print(json.dumps({"model":"tiny-rank","query":"q","documents":["d"]*10000}))' >"$WORK/d10k.json"
CODE=$(curl -s -o "$WORK/d10k.out" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$WORK/d10k.json" "$URL/v1/rerank")
check "rerank with 10,000 documents: 400 ($CODE)" [ "$CODE" = 400 ]

# capabilities
req GET /v1/models
check "/v1/models: bert embeds, tiny-rank reranks, stories generates" python3 -c '
import json,sys; c={m["id"]:m["capabilities"] for m in json.loads(sys.argv[1])["data"]}
sys.exit(0 if c["tiny-bert-f16"]==["embedding"] and c["tiny-rank"]==["rerank"] and "completion" in c["stories260K"]
         and c["tiny-qrank"]==["completion","rerank"] else 1)' "$BODY"
req POST /api/show '{"model":"tiny-rank"}'
check "/api/show tiny-rank: rerank" sh -c 'echo "$1" | grep -q "\"capabilities\":\[\"rerank\"\]"' _ "$BODY"

# other requests keep flowing
req POST /v1/completions '{"model":"stories260K","prompt":"Once upon a time","max_tokens":8}'
check "a completion after all that: 200 ($CODE)" [ "$CODE" = 200 ]
finish
