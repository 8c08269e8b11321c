#!/usr/bin/env bash
# Random model with the exact mamba2-130m shapes (d_model 768, 24 layers, d_state 128,
# head_dim 64, vocab 50277 -> 50288 rows), in both checkpoint layouts:
#   ss: config.json + fp16 pytorch_model.bin (tied), hf: config.json + f32 model.safetensors.
# The engine's logits (full prefill, and --prefill 7 followed by single steps) must match the
# float64 python reference (tools/mamba2_ref.py) to 1e-5 relative L2.
#
# usage: bash model_130m_shape_test.sh <path-to-mamba2-binary> <repo-root>
# env:   MAMBA2_TEST_ARGS  extra arguments for `mamba2 logits` (e.g. "--backend cpu --threads 2")
#        MAMBA2_TEST_TOL   tolerance (default 1e-5)
set -u

die() { echo "model_130m_shape_test: FAIL: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: $0 <path-to-mamba2-binary> <repo-root>"
MAMBA2=$1
ROOT=$2
PY=/usr/bin/python3
TOL=${MAMBA2_TEST_TOL:-1e-5}
read -r -a EXTRA <<<"${MAMBA2_TEST_ARGS:-}"

[ -x "$MAMBA2" ] || die "mamba2 binary '$MAMBA2' not found or not executable"
[ -f "$ROOT/tools/mamba2_ref.py" ] || die "'$ROOT' is not the repo root (no tools/mamba2_ref.py)"
"$PY" -c "import numpy, torch" 2>/dev/null || die "$PY lacks numpy/torch (run scripts/setup)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/m2_130m.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT

# Both ends of the real vocab (0, 50276), specials, and spread-out ids; 20 tokens.
IDS=0,50276,1,2,187,50275,12345,25000,42,7,999,31337,50000,3,100,256,4095,20000,11,50276

failures=0
check() {  # name, candidate.npy, reference.npy
  local out
  if out=$("$PY" "$ROOT/tools/compare_npy.py" "$2" "$3" --tol "$TOL"); then
    echo "  $1: $out"
  else
    echo "  $1: $out"
    failures=$((failures + 1))
  fi
}

for spec in "ss f16 130" "hf f32 131"; do
  read -r layout dtype seed <<<"$spec"
  dir="$TMP/model_$layout"
  echo "[$layout layout, $dtype weights, seed $seed]"
  "$PY" "$ROOT/tools/make_model.py" --shape 130m --layout "$layout" --dtype "$dtype" --seed "$seed" -o "$dir" \
    || die "make_model.py failed for the $layout layout"
  "$PY" "$ROOT/tools/mamba2_ref.py" logits -m "$dir" --ids "$IDS" -o "$TMP/ref_$layout.npy" --f64 \
    || die "mamba2_ref.py failed for the $layout layout"

  if "$MAMBA2" logits -m "$dir" --ids "$IDS" -o "$TMP/out_$layout.npy" "${EXTRA[@]}"; then
    check "$layout prefill(all)" "$TMP/out_$layout.npy" "$TMP/ref_$layout.npy"
  else
    echo "  FAIL $layout prefill(all): mamba2 logits exited with $?"
    failures=$((failures + 1))
  fi
  if "$MAMBA2" logits -m "$dir" --ids "$IDS" --prefill 7 -o "$TMP/out_${layout}_p7.npy" "${EXTRA[@]}"; then
    check "$layout prefill(7)+step" "$TMP/out_${layout}_p7.npy" "$TMP/ref_$layout.npy"
  else
    echo "  FAIL $layout prefill(7)+step: mamba2 logits exited with $?"
    failures=$((failures + 1))
  fi
  rm -rf "$dir"  # ~0.25-0.5 GB each
done

if [ "$failures" -ne 0 ]; then
  die "$failures comparison(s) failed"
fi
echo "model_130m_shape_test: all comparisons passed"
