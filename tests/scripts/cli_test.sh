#!/usr/bin/env bash
# The mamba2 CLI end to end: generate from the bundled model, tokenize round trips, and every
# bad input ending in a one-line error with a non-zero exit.
#   bash cli_test.sh <mamba2-binary> <repo-root>
set -uo pipefail
BIN="$1"
ROOT="$2"
NEOX="$ROOT/../shared/data/gpt-neox-20b/tokenizer.json"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

# Generation with no arguments: the bundled model writes verse.
out=$(timeout 120 "$BIN" generate --seed 7 2>"$TMP/gen.err")
words=$(printf '%s' "$out" | wc -w)
if [ "$words" -ge 50 ]; then ok "generate with no arguments: $words words"; else bad "generate with no arguments: only $words words"; cat "$TMP/gen.err"; fi
grep -q "tok/s" "$TMP/gen.err" && ok "generate reports speeds on stderr" || bad "no speed line on stderr"
a=$("$BIN" generate --seed 11 -n 40 2>/dev/null); b=$("$BIN" generate --seed 11 -n 40 2>/dev/null)
[ "$a" = "$b" ] && ok "same seed, same text" || bad "same seed gave different text"
out=$("$BIN" generate -p "KING" --stop "," -n 200 --seed 5 2>/dev/null)
case "$out" in *,*) bad "stop string appears in the output";; *) ok "stop string ends generation";; esac

# Tokenize: ids and back, with the GPT-NeoX tokenizer (expected ids from HF tokenizers 0.22 via
# tools/tokenizer/node_modules, @anush008/tokenizers).
if [ -f "$NEOX" ]; then
  ids=$("$BIN" tokenize --tokenizer "$NEOX" -p "Hello world, Mamba-2!  ok")
  [ "$ids" = "12092 1533 13 353 31834 14 19 2 50276 536" ] && ok "tokenize NeoX ids" || bad "tokenize NeoX ids: $ids"
  text=$("$BIN" tokenize --tokenizer "$NEOX" --decode -p "$ids")
  [ "$text" = "Hello world, Mamba-2!  ok" ] && ok "tokenize --decode round trip" || bad "decode gave: $text"
else
  bad "missing $NEOX"
fi

# Bad input: non-zero exit and an error line.
expect_fail() {
  local what="$1"; shift
  if "$@" >"$TMP/out" 2>"$TMP/err"; then bad "$what: exit 0"; return; fi
  if grep -q "error" "$TMP/err" || grep -q "Error\|not in range\|invalid\|required" "$TMP/err"; then ok "$what: $(head -1 "$TMP/err" | cut -c1-110)"
  else bad "$what: no error message"; fi
}
expect_fail "empty prompt" "$BIN" generate -p ""
expect_fail "negative temperature" "$BIN" generate --temp -1
expect_fail "top-p 0" "$BIN" generate --top-p 0
expect_fail "top-p above 1" "$BIN" generate --top-p 1.5
expect_fail "negative -n" "$BIN" generate -n -3
expect_fail "model without tokenizer" "$BIN" generate -m "$ROOT/tests/data/fixtures/hf_tiny" -p hi
expect_fail "invalid UTF-8 prompt" "$BIN" generate -p "$(printf 'ab\xff')"
expect_fail "missing model folder" "$BIN" info -m "$TMP/nope"
expect_fail "token id out of range" "$BIN" logits -m "$ROOT/tests/data/fixtures/hf_tiny" --ids 1,2,304 -o "$TMP/x.npy"
expect_fail "non-numeric id" "$BIN" logits -m "$ROOT/tests/data/fixtures/hf_tiny" --ids 1,x -o "$TMP/x.npy"
[ -e "$TMP/x.npy" ] && bad "a failed logits run left $TMP/x.npy" || ok "failed logits runs write nothing"
mkdir -p "$TMP/trunc" && cp "$ROOT/tests/data/fixtures/hf_tiny/config.json" "$TMP/trunc/"
head -c 5000 "$ROOT/tests/data/fixtures/hf_tiny/model.safetensors" >"$TMP/trunc/model.safetensors"
expect_fail "truncated safetensors" "$BIN" logits -m "$TMP/trunc" --ids 1 -o "$TMP/x.npy"
expect_fail "decode id out of range" "$BIN" tokenize --tokenizer "$NEOX" --decode -p "99999999"

# logits: prefill + step equals prefill, and ref equals cpu.
"$BIN" logits -m "$ROOT/tests/data/fixtures/ss_tiny" --ids 5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21 -o "$TMP/a.npy" 2>/dev/null
"$BIN" logits -m "$ROOT/tests/data/fixtures/ss_tiny" --ids 5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21 --prefill 3 --backend ref -o "$TMP/b.npy" 2>/dev/null
if /usr/bin/python3 "$ROOT/tools/compare_npy.py" "$TMP/a.npy" "$TMP/b.npy" --tol 1e-5 >/dev/null; then ok "logits cpu prefill == ref prefill(3)+step"; else bad "logits cpu vs ref differ"; fi

# bench on a small model (its vocabulary far below the 50k of the published ones), --profile too.
if timeout 300 "$BIN" bench -m "$ROOT/models/tiny-shakespeare" --prefill 70 --decode 2 --context 0 --reps 1 \
  --no-limits --profile >"$TMP/bench.out" 2>&1 && grep -q "profile: prefill of 70 tokens" "$TMP/bench.out"; then
  ok "bench --profile on the bundled model"
else
  bad "bench --profile on the bundled model"; tail -3 "$TMP/bench.out"
fi

echo "cli_test: $fails failure(s)"
[ "$fails" -eq 0 ]
