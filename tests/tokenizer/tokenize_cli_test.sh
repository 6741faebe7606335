#!/usr/bin/env bash
# Runs the real `airlock tokenize` on vectors of ../shared/vocab and
# compares its output byte for byte with the expected ids; checks --special,
# --help and the error path.
set -u
BIN=${AIRLOCK_BIN:?AIRLOCK_BIN must point at the airlock binary}
SHARED=${AIRLOCK_SHARED:-$(dirname "$0")/../../../shared}
VOCAB=$SHARED/vocab
if [ ! -d "$VOCAB" ]; then
    echo "SKIP: $VOCAB is absent"
    exit 77
fi
fail=0
n_ok=0

# record I (0-based) of a .inp file: lines between separators joined by \n
record() {
    local file=$1 want=$2 i=0 rec="" first=1 line
    while IFS= read -r line || [ -n "$line" ]; do
        if [ "$line" = "__ggml_vocab_test__" ]; then
            if [ $i -eq "$want" ]; then
                printf '%s' "$rec"
                return 0
            fi
            i=$((i + 1)); rec=""; first=1
            continue
        fi
        if [ $first -eq 1 ]; then rec=$line; first=0; else rec=$rec$'\n'$line; fi
    done < "$file"
    return 1
}

for name in llama-spm phi-3 llama-bpe qwen2 gpt-2 deepseek-coder bert-bge; do
    f=$VOCAB/ggml-vocab-$name.gguf
    for i in 0 11 18 28 45; do
        text=$(record "$f.inp" $i; printf x)
        text=${text%x}
        # the .out line has a space before every id; the CLI separates by single spaces
        want=$(sed -n "$((i + 1))p" "$f.out" | sed 's/^ //')
        got=$(printf '%s' "$text" | "$BIN" tokenize "$f")
        rc=$?
        if [ $rc -ne 0 ] || [ "$got" != "$want" ]; then
            echo "FAIL: $name vector $i (rc $rc)"
            echo "  want: $want"
            echo "  got:  $got"
            fail=1
        else
            n_ok=$((n_ok + 1))
        fi
    done
done

check() { # description, expected, actual
    if [ "$2" != "$3" ]; then
        echo "FAIL: $1"
        echo "  want: $2"
        echo "  got:  $3"
        fail=1
    else
        n_ok=$((n_ok + 1))
    fi
}

# exact output bytes: ids, single spaces, one newline
out=$(printf 'Hello world' | "$BIN" tokenize "$VOCAB/ggml-vocab-llama-bpe.gguf" | od -An -c | tr -s ' ')
check "output format" " 9 9 0 6 1 9 1 7 \n" "$out"
# a trailing newline in the input is tokenized, not stripped
check "trailing newline kept" "9906 1917 198" "$(printf 'Hello world\n' | "$BIN" tokenize "$VOCAB/ggml-vocab-llama-bpe.gguf")"
# empty input: an empty line
check "empty input" "" "$(printf '' | "$BIN" tokenize "$VOCAB/ggml-vocab-llama-spm.gguf")"
# --special: BOS where the vocab asks, special tokens parsed
check "--special llama3" "128000 9906 1917" "$(printf 'Hello world' | "$BIN" tokenize "$VOCAB/ggml-vocab-llama-bpe.gguf" --special)"
check "--special qwen2" "151644 872 198 6023 151645" \
    "$(printf '<|im_start|>user\nhi<|im_end|>' | "$BIN" tokenize "$VOCAB/ggml-vocab-qwen2.gguf" --special)"
check "no --special qwen2" "27 91 318 4906 91 29 872" \
    "$(printf '<|im_start|>user' | "$BIN" tokenize "$VOCAB/ggml-vocab-qwen2.gguf")"
check "--special bert" "101 7592 2088 102" "$(printf 'Hello world' | "$BIN" tokenize "$VOCAB/ggml-vocab-bert-bge.gguf" --special)"
# a full model works too
if [ -f "$SHARED/models/stories260K.gguf" ]; then
    check "full model --special" "1 403 407 261 378" \
        "$(printf 'Once upon a time' | "$BIN" tokenize "$SHARED/models/stories260K.gguf" --special)"
fi

# --help exits 0 and explains
if ! "$BIN" tokenize --help | grep -q "trailing newline"; then echo "FAIL: --help"; fail=1; fi
# errors: exit 1 and a message naming the file
err=$(printf 'x' | "$BIN" tokenize /nonexistent/model.gguf 2>&1 >/dev/null)
rc=$?
check "missing file exit code" 1 $rc
case $err in *"/nonexistent/model.gguf"*) n_ok=$((n_ok + 1)) ;; *) echo "FAIL: error does not name the file: $err"; fail=1 ;; esac
err=$(printf 'x' | "$BIN" tokenize "$VOCAB/ggml-vocab-qwen2.gguf.inp" 2>&1 >/dev/null)
rc=$?
check "not a gguf exit code" 1 $rc
case $err in *"ggml-vocab-qwen2.gguf.inp"*) n_ok=$((n_ok + 1)) ;; *) echo "FAIL: error does not name the file: $err"; fail=1 ;; esac
"$BIN" tokenize >/dev/null 2>&1
check "usage error exit code" 2 $?

echo "tokenize CLI: $n_ok checks passed"
[ $fail -eq 0 ] && echo PASS || echo FAILED
exit $fail
