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

# other pre-tokenizer names, written by setpre.py: the real binary splits as the reference
PRE=$VOCAB/pre
if [ -f "$SHARED/tools/setpre.py" ] && [ -d "$PRE" ] && command -v python3 >/dev/null; then
    T=$(mktemp -d)
    python3 "$SHARED/tools/setpre.py" "$VOCAB/ggml-vocab-llama-bpe.gguf" tekken "$T/tekken.gguf"
    python3 "$SHARED/tools/setpre.py" "$VOCAB/ggml-vocab-qwen2.gguf" qwen35 "$T/qwen35.gguf"
    python3 "$SHARED/tools/setpre.py" "$VOCAB/ggml-vocab-llama-bpe.gguf" no-such-pre "$T/bad.gguf"
    for name in tekken qwen35; do
        for i in 0 40 60 70 80 112; do
            text=$(record "$PRE/strings-A.inp" $i; printf x)
            text=${text%x}
            want=$(sed -n "$((i + 1))p" "$PRE/$name.A.out" | sed 's/^ //')
            check "$name string $i" "$want" "$(printf '%s' "$text" | "$BIN" tokenize "$T/$name.gguf")"
        done
    done
    # tekken adds BOS by default; --special parses the special tokens
    check "--special tekken" "128000 128006 9906" \
        "$(printf '<|start_header_id|>Hello' | "$BIN" tokenize "$T/tekken.gguf" --special)"
    check "--special qwen35" "151644 872" "$(printf '<|im_start|>user' | "$BIN" tokenize "$T/qwen35.gguf" --special)"
    # an unknown name is refused with the file, the key and the name
    err=$(printf 'x' | "$BIN" tokenize "$T/bad.gguf" 2>&1 >/dev/null)
    check "unknown pre exit code" 1 $?
    case $err in *"$T/bad.gguf"*"tokenizer.ggml.pre 'no-such-pre'"*) n_ok=$((n_ok + 1)) ;;
        *) echo "FAIL: unknown pre message: $err"; fail=1 ;; esac
    # bench-tokenize: the same token count as tokenize, and a speed
    out=$("$BIN" bench-tokenize "$T/tekken.gguf" "$PRE/strings-A.inp" --runs 2)
    n=$("$BIN" tokenize "$T/tekken.gguf" < "$PRE/strings-A.inp" | wc -w)
    case $out in *" -> $n tokens; best of 2: "*" MB/s; CPU time "*" MB/s (tokenizer bpe, pre tekken)") n_ok=$((n_ok + 1)) ;;
        *) echo "FAIL: bench-tokenize: $out (tokenize: $n tokens)"; fail=1 ;; esac
    "$BIN" bench-tokenize "$T/tekken.gguf" >/dev/null 2>&1
    check "bench-tokenize usage exit code" 2 $?
    rm -rf "$T"
else
    echo "SKIP: setpre.py or vocab/pre absent: other pre names not checked"
fi

echo "tokenize CLI: $n_ok checks passed"
[ $fail -eq 0 ] && echo PASS || echo FAILED
exit $fail
