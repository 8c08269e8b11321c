#!/usr/bin/env bash
# `mamba2 perplexity` against the float64 reference tools/perplexity_ref.py, for every protocol:
# a random small model with a BPE tokenizer trained here (and the bundled tiny-shakespeare model
# when present). Also: --save-logits rows vs the reference, --kl-base of identical runs (KL 0,
# top-1 100%), progress only on stderr, and bad inputs (exit != 0, one "error:" line).
# Tolerance: 5e-4 absolute on every reported figure (word, byte and token perplexity, bits per
# byte, nats per token). Word perplexity is V^(tokens per word) for a near-uniform random model,
# and float32 logits carry ~8 significant digits of it: the random model's tokenizer therefore
# has a realistic ~1.4 tokens per word (vocab 2048 trained on the text; GPT-NeoX has ~1.3 on
# WikiText), which keeps its word perplexity near 4e4, and the bundled model is scored on
# held-out Tiny Shakespeare laid out as WikiText articles (word perplexity ~2.5e3).
# usage: bash perplexity_protocols_test.sh <mamba2-binary> <repo-root>
set -u
BIN=${1:?usage: $0 <mamba2-binary> <repo-root>}
ROOT=${2:?usage: $0 <mamba2-binary> <repo-root>}
PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
$PY -c "import numpy" 2>/dev/null || { echo "FAIL: /usr/bin/python3 lacks numpy (run scripts/setup)" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
FAILS=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }

# ---- text: the first 3 articles of WikiText-103 valid (if the shared data is there) plus a
# synthetic article full of detokeniser and whitespace edge cases.
WIKI=$ROOT/../shared/data/wikitext-103-raw-valid.txt
if [ -f "$WIKI" ]; then head -n 103 "$WIKI" > "$T/wiki.txt"; else : > "$T/wiki.txt"; fi
$PY - "$T/wiki.txt" <<'EOF'
import sys
art = (" = Synthetic Edge Cases = \n \n"
       " It measured 1 @,@ 234 @.@ 5 m ( about 4 @,@ 050 ft ) , or \" roughly \" so . It 's the dogs ' bones ;"
       " see [ 1 ] and { note } ! It reached 20 \u00b0 C ? In N cases ( \u00a0inner\u00a0 ) stayed ."
       " A /' 5/ quirk , \u3000ideographic\u3000space and a no\u00a0break space . \n \n"
       " = = Section with \" quotes \" = = \n \n"
       " Unicode : caf\u00e9 , na\u00efve , \u6771\u4eac , \U0001F642 . ( unclosed \" quote \n \n")
with open(sys.argv[1], "a", encoding="utf-8") as f:
    f.write(art)
EOF
SHK=$ROOT/../shared/data/tinyshakespeare.txt
tail -c 6000 "$SHK" > "$T/plain.txt" 2>/dev/null || cp "$T/wiki.txt" "$T/plain.txt"
# In-domain text for the bundled model: three scenes of the held-out last 10% of Tiny
# Shakespeare (train_tiny.py never trained on it), each under a WikiText heading.
if [ -f "$SHK" ]; then
  $PY - "$SHK" "$T/shakespeare_articles.txt" <<'EOF'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
pos = text.index("\n\n", int(len(text) * 0.9)) + 2
out = []
for i in range(3):
    end = text.index("\n\n", pos + 9000) + 2
    out.append(f" = Scene {i + 1} = \n\n" + text[pos:end])
    pos = end
open(sys.argv[2], "w", encoding="utf-8").write("".join(out))
EOF
fi

# ---- a random model (transformers layout, no torch needed) and a tokenizer trained on the text
$PY "$ROOT/tools/bpe_train.py" --data "$T/wiki.txt" --vocab-size 2048 --out "$T/tok.json" > /dev/null ||
  { echo "FAIL: bpe_train.py" >&2; exit 1; }
$PY "$ROOT/tools/make_model.py" -o "$T/rnd" --layout hf --d-model 64 --n-layer 2 --d-state 16 --head-dim 16 \
  --n-groups 2 --chunk-size 16 --vocab 2048 --seed 7 > /dev/null || { echo "FAIL: make_model.py" >&2; exit 1; }
cp "$T/tok.json" "$T/rnd/tokenizer.json"

# compare NAME CPP_JSON REF_JSON
compare() {
  $PY - "$@" <<'EOF'
import json, sys
name, a, b = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
bad = []
for k in ("n_scored", "n_words", "n_bytes"):
    if k in b and a.get(k) != b[k]:
        bad.append(f"{k}: {a.get(k)} vs reference {b[k]}")
diffs = []
for k in ("token_perplexity", "nll_per_token", "byte_perplexity", "bits_per_byte", "word_perplexity"):
    if k not in b:
        continue
    d = abs(a[k] - b[k])
    diffs.append(f"{k} {d:.2e}" + (f" (of {b[k]:.6g})" if k == "word_perplexity" else ""))
    if not d <= 5e-4:
        bad.append(f"{k}: {a[k]!r} vs reference {b[k]!r}")
print(f"{name}: " + ", ".join(diffs))
if bad:
    print(f"FAIL {name}: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
EOF
}

# parity NAME MODEL_DIR FILE "CPP ARGS" "REF ARGS"
parity() {
  local name=$1 model=$2 file=$3 cargs=$4 rargs=$5
  if ! "$BIN" perplexity -m "$model" -f "$file" $cargs -q --json "$T/$name.cpp.json" --dump-ids "$T/$name.ids.json" \
      > "$T/$name.out" 2> "$T/$name.err"; then
    fail "$name: mamba2 perplexity exited $? ($(tail -n 1 "$T/$name.err"))"
    return
  fi
  if ! $PY "$ROOT/tools/perplexity_ref.py" -m "$model" -f "$file" $rargs --ids "$T/$name.ids.json" \
      --json "$T/$name.ref.json" > /dev/null 2> "$T/$name.referr"; then
    fail "$name: reference: $(tail -n 1 "$T/$name.referr")"
    return
  fi
  compare "$name" "$T/$name.cpp.json" "$T/$name.ref.json" || FAILS=$((FAILS + 1))
}

R=$T/rnd
parity rnd_wikitext "$R" "$T/wiki.txt" "--protocol lm-eval-wikitext --ctx 128" "--protocol lm-eval-wikitext --ctx 128"
parity rnd_wikitext_b4 "$R" "$T/wiki.txt" "--protocol lm-eval-wikitext --ctx 128 --batch 4" "--protocol lm-eval-wikitext --ctx 128"
parity rnd_wikitext_ref "$R" "$T/wiki.txt" "--protocol lm-eval-wikitext --ctx 200 --backend ref --max-articles 2" \
  "--protocol lm-eval-wikitext --ctx 200 --max-articles 2"
parity rnd_sliding "$R" "$T/wiki.txt" "--ctx 128 --stride 48 --batch 3" "--protocol sliding --ctx 128 --stride 48"
parity rnd_sliding_disjoint "$R" "$T/wiki.txt" "--ctx 64 --stride 64 --batch 2" "--protocol sliding --ctx 64 --stride 64"
parity rnd_stateful "$R" "$T/wiki.txt" "--stateful" "--protocol stateful"

# ---- --save-logits rows against the reference's log-softmax rows
if "$BIN" perplexity -m "$R" -f "$T/wiki.txt" --ctx 96 --stride 40 -q --save-logits "$T/a.bin" > /dev/null 2> "$T/save.err"; then
  $PY "$ROOT/tools/perplexity_ref.py" -m "$R" -f "$T/wiki.txt" --protocol sliding --ctx 96 --stride 40 \
    --check-logits "$T/a.bin" --json "$T/check.json" > /dev/null || fail "check-logits reference run"
  $PY - "$T/check.json" <<'EOF' || FAILS=$((FAILS + 1))
import json, math, sys
j = json.load(open(sys.argv[1]))
c = j["check_logits"]
print(f"save-logits rows: max |log p - reference| {c['max_abs_diff']:.2e}, targets match {c['targets_match']}, "
      f"header sum_nll vs reference {abs(c['file_sum_nll'] + j['sum_loglik']):.2e}")
ok = c["targets_match"] and c["max_abs_diff"] < 1e-3 and abs(c["file_sum_nll"] + j["sum_loglik"]) < 1e-3 * j["n_scored"]
sys.exit(0 if ok else 1)
EOF
else
  fail "--save-logits: $(tail -n 1 "$T/save.err")"
fi

# ---- --kl-base: identical fp32 runs give KL 0 and top-1 100%; other batching stays close; f16 close
kl_check() {  # NAME JSON MAX_MEAN_KL MIN_TOP1
  $PY - "$@" <<'EOF'
import json, sys
name, j, max_kl, min_top1 = sys.argv[1], json.load(open(sys.argv[2]))["kl"], float(sys.argv[3]), float(sys.argv[4])
print(f"{name}: KL mean {j['mean']:.3g} max {j['max']:.3g}, top-1 {100 * j['top1_agreement']:.3f}%, ppl diff {j['ppl_diff']:.3g}")
ok = j["mean"] <= max_kl and j["max"] <= max(max_kl * 100, max_kl) and j["top1_agreement"] >= min_top1
if max_kl == 0:
    ok = ok and j["ppl_diff"] == 0
sys.exit(0 if ok else 1)
EOF
}
"$BIN" perplexity -m "$R" -f "$T/wiki.txt" --ctx 96 --stride 40 -q --kl-base "$T/a.bin" --json "$T/kl_same.json" \
  > "$T/kl_same.out" 2>&1 && kl_check kl_identical "$T/kl_same.json" 0 1.0 || fail "--kl-base of an identical run"
grep -q "top-1 agreement: 100.0000%" "$T/kl_same.out" || fail "--kl-base report on stdout lacks 'top-1 agreement: 100.0000%'"
"$BIN" perplexity -m "$R" -f "$T/wiki.txt" --ctx 96 --stride 40 --batch 5 -q --kl-base "$T/a.bin" --json "$T/kl_b5.json" \
  > /dev/null 2>&1 && kl_check kl_batch5 "$T/kl_b5.json" 1e-8 0.999 || fail "--kl-base batch 5 vs batch 1"
"$BIN" perplexity -m "$R" -f "$T/wiki.txt" --ctx 96 --stride 40 -q --save-logits "$T/h.bin" --f16 > /dev/null 2>&1 &&
  "$BIN" perplexity -m "$R" -f "$T/wiki.txt" --ctx 96 --stride 40 -q --kl-base "$T/h.bin" --json "$T/kl_f16.json" \
    > /dev/null 2>&1 && kl_check kl_f16_base "$T/kl_f16.json" 1e-4 0.9 || fail "--kl-base against a float16 file"
a_size=$(stat -c %s "$T/a.bin"); h_size=$(stat -c %s "$T/h.bin")
[ $((a_size - h_size)) -gt $((h_size / 2)) ] || fail "--f16 file ($h_size bytes) is not about half of float32 ($a_size)"
# Other scored tokens: refused.
if "$BIN" perplexity -m "$R" -f "$T/wiki.txt" --protocol lm-eval-wikitext --ctx 96 -q --kl-base "$T/a.bin" > /dev/null 2> "$T/kl_bad.err"; then
  fail "--kl-base with another token stream was accepted"
else
  grep -q "token streams differ" "$T/kl_bad.err" || fail "--kl-base mismatch message: $(cat "$T/kl_bad.err")"
fi

# ---- progress goes to stderr only: lines when not a terminal, \r redraws on a terminal
"$BIN" perplexity -m "$R" -f "$T/wiki.txt" --ctx 32 --stride 8 > "$T/p.out" 2> "$T/p.err" || fail "progress run"
grep -q "ETA" "$T/p.out" && fail "progress text on stdout"
grep -q "done:" "$T/p.err" || fail "no final progress line on stderr (non-terminal)"
grep -q $'\r' "$T/p.err" && fail "carriage returns in non-terminal progress"
grep -q "^token_perplexity: " "$T/p.out" || fail "no token_perplexity line on stdout"
if command -v script > /dev/null; then
  # stdout to a file, stderr on the pseudo-terminal that `script` records.
  script -qec "\"$BIN\" perplexity -m \"$R\" -f \"$T/wiki.txt\" --ctx 32 --stride 8 > \"$T/tty.out\"" /dev/null > "$T/tty.err"
  grep -q $'\r' "$T/tty.err" || fail "no \\r redraw on a terminal"
  grep -q "ETA" "$T/tty.out" && fail "terminal progress on stdout"
fi

# ---- bad inputs: exit != 0 with one "error:" line
expect_error() {  # NAME PATTERN ARGS...
  local name=$1 pattern=$2
  shift 2
  if "$BIN" perplexity "$@" > "$T/e.out" 2> "$T/e.err"; then
    fail "$name: exit 0"
    return
  fi
  if [ "$(grep -c '^error: ' "$T/e.err")" != 1 ] || ! grep -q -- "$pattern" "$T/e.err"; then
    fail "$name: expected one 'error:' line matching '$pattern', got: $(cat "$T/e.err")"
  fi
}
: > "$T/empty.txt"
printf 'plain text without any heading line\nsecond line\n' > "$T/noheading.txt"
printf ' = Title = \n caf\xc3 broken \n' > "$T/badutf8.txt"
printf 'a' > "$T/one.txt"
echo "not a logits file" > "$T/garbage.bin"
expect_error missing_file "cannot open" -m "$R" -f "$T/nope.txt"
expect_error empty_file "empty" -m "$R" -f "$T/empty.txt"
expect_error no_articles "no WikiText articles" -m "$R" -f "$T/noheading.txt" --protocol lm-eval-wikitext
expect_error invalid_utf8 "invalid UTF-8 at byte offset 16" -m "$R" -f "$T/badutf8.txt" --protocol lm-eval-wikitext
expect_error one_token "at least 2" -m "$R" -f "$T/one.txt"
expect_error ctx_1 "ctx 1" -m "$R" -f "$T/wiki.txt" --ctx 1
expect_error stride_0 "stride 0" -m "$R" -f "$T/wiki.txt" --ctx 128 --stride 0
expect_error stride_big "stride 129" -m "$R" -f "$T/wiki.txt" --ctx 128 --stride 129
expect_error stride_stateful "stride" -m "$R" -f "$T/wiki.txt" --stateful --stride 4
expect_error bad_protocol "protocol" -m "$R" -f "$T/wiki.txt" --protocol bogus
expect_error batch_memory "available" -m "$R" -f "$T/wiki.txt" --ctx 128 --batch 1000000000
expect_error kl_garbage "not a mamba2 --save-logits file" -m "$R" -f "$T/wiki.txt" --kl-base "$T/garbage.bin"
if [ -f "$ROOT/../shared/data/gpt-neox-20b/tokenizer.json" ]; then
  expect_error wrong_tokenizer "wrong tokenizer" -m "$R" -f "$T/wiki.txt" --tokenizer "$ROOT/../shared/data/gpt-neox-20b/tokenizer.json"
fi

# ---- the bundled model, when it is there
B=$ROOT/models/tiny-shakespeare
if [ -f "$B/config.json" ] && [ -f "$B/tokenizer.json" ]; then
  if [ -f "$T/shakespeare_articles.txt" ]; then
    parity tiny_wikitext "$B" "$T/shakespeare_articles.txt" "--protocol lm-eval-wikitext --batch 2" \
      "--protocol lm-eval-wikitext"
    parity tiny_wikitext_ctx512 "$B" "$T/shakespeare_articles.txt" "--protocol lm-eval-wikitext --ctx 512 --batch 3" \
      "--protocol lm-eval-wikitext --ctx 512"
  else
    echo "note: ../shared/data/tinyshakespeare.txt not present; bundled-model lm-eval parity skipped"
  fi
  parity tiny_sliding "$B" "$T/plain.txt" "--ctx 128 --stride 64 --batch 4" "--protocol sliding --ctx 128 --stride 64"
  parity tiny_stateful "$B" "$T/plain.txt" "--stateful" "--protocol stateful"
else
  echo "note: $B not present; bundled-model parity skipped"
fi

if [ "$FAILS" != 0 ]; then
  echo "perplexity_protocols_test: $FAILS failure(s)" >&2
  exit 1
fi
echo "perplexity_protocols_test: all passed"
