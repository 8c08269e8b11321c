#!/usr/bin/env bash
# The CLI's --backend cuda paths on the fake CUDA device (mamba2_fake_cuda: the CLI linked with the
# CUDA backend's host code and kernels over tests/fake_cuda), with the bundled model: what
# scripts/gpu_check.sh and a user run on a GPU, so that a host-side mistake there (a device pointer
# read on the host, a missing wait, a capture that fails) shows here first.
#   bash cli_test.sh <mamba2_fake_cuda-binary> <repo-root>
set -uo pipefail
BIN="$1"
ROOT="$2"
M="$ROOT/models/tiny-shakespeare"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
# The cuda matmul mode and feature switches come from the environment, as in gpu_check.sh.
unset MAMBA2_CUDA_MATMUL MAMBA2_CUDA_GRAPHS MAMBA2_CUDA_GEMV MAMBA2_CUDA_GEMV_NORMS MAMBA2_CUDA_PDL \
  MAMBA2_CUDA_BF16_INTERMEDIATES MAMBA2_CUDA_BF16_SCAN

# Greedy text equal to the cpu backend's (fp32 mode), and seeded sampling too (the same pick rule
# on both backends; fp32 logits agree far inside any pick's margin on these prompts).
for args in "--temp 0" "--temp 0.8 --seed 3"; do
  want=$(timeout 120 "$BIN" generate -m "$M" -p "ROMEO:" -n 24 $args --backend cpu 2>/dev/null)
  got=$(timeout 300 "$BIN" generate -m "$M" -p "ROMEO:" -n 24 $args --backend cuda 2>"$TMP/gen.err")
  rc=$?
  if [ $rc -eq 0 ] && [ -n "$got" ] && [ "$got" = "$want" ]; then
    ok "generate $args: cuda text = cpu text"
  else
    bad "generate $args (exit $rc): cuda [$got] cpu [$want]"
    tail -5 "$TMP/gen.err"
  fi
done

# Logits through prefill and then the O(1) step, against the cpu backend's.
ids=1,17,300,5,99,2000,7,7,64,128,3,11
if timeout 300 "$BIN" logits -m "$M" --ids "$ids" --prefill 5 --backend cuda -o "$TMP/cuda.npy" 2>"$TMP/logits.err" &&
  "$BIN" logits -m "$M" --ids "$ids" --prefill 5 --backend cpu -o "$TMP/cpu.npy" 2>/dev/null; then
  if /usr/bin/python3 "$ROOT/tools/compare_npy.py" "$TMP/cuda.npy" "$TMP/cpu.npy" --tol 1e-5; then
    ok "logits --prefill 5: cuda within 1e-5 of cpu"
  else
    bad "logits --prefill 5: cuda differs from cpu"
  fi
else
  bad "logits --backend cuda failed"
  tail -5 "$TMP/logits.err"
fi

# Perplexity over sliding windows (batched prefills of all logits) equal to the cpu backend's.
printf 'First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n' >"$TMP/text.txt"
printf 'First Citizen:\nYou are all resolved rather to die than to famish?\n' >>"$TMP/text.txt"
ppl() {
  timeout 300 "$BIN" perplexity -m "$M" -f "$TMP/text.txt" --ctx 32 --stride 16 --backend "$1" 2>&1 |
    sed -n 's/^token_perplexity: //p'
}
want=$(ppl cpu)
got=$(ppl cuda)
if [ -n "$got" ] && [ -n "$want" ] && awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; exit !(d < 1e-5 * b && -d < 1e-5 * b) }'; then
  ok "perplexity --backend cuda $got = cpu $want (within 1e-5)"
else
  bad "perplexity --backend cuda [$got] vs cpu [$want]"
fi

# shellcheck source=scripts/cuda_variants.sh
source "$ROOT/scripts/cuda_variants.sh"
# bench as gpu_check.sh runs it (modes, feature switches, the variants' arguments), on the small
# model with lengths that cross a chunk boundary; the JSON must hold a rate for what was timed
# (the fields gpu_check.sh's summary reads). Short runs: the emulator takes ~1 s per decode step.
check_json() {  # FILE PREFILL DECODE
  /usr/bin/python3 - "$@" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
timed = {"prefill_tokens_per_s": sys.argv[2] != "0", "decode_tokens_per_s": sys.argv[3] != "0",
         "decode_picked_tokens_per_s": sys.argv[3] != "0"}
no_rate = [k for k, t in timed.items() if t and not j.get(k, 0) > 0]
if no_rate:
    print("     no rate in the JSON:", no_rate)
    sys.exit(1)
EOF
}
for run in "fp32" "bf16 profile" "bf16 f32inter" "bf16 tf32scan" "bf16 nonorms" "bf16 pdl" "bf16 nogemv" \
  "bf16 nographs" "fp16" "tf32"; do
  read -r mode variant <<<"$run"
  case "$variant" in
    "") args=(--prefill 70 --decode 2 --context 65 --context-decode 1 --accuracy 8) ;;
    profile) args=(--prefill 70 --decode 2 --context 0 --profile) ;;
    f32inter) args=(--prefill 70 --decode 1 --context 0) ;;
    tf32scan) args=(--prefill 70 --decode 0 --context 0) ;;
    *) args=(--prefill 0 --decode 2 --context 0) ;;
  esac
  if [ "$mode" = fp16 ] || [ "$mode" = tf32 ]; then args=(--prefill 70 --decode 1 --context 0); fi
  name=${mode}${variant:+_$variant}
  # shellcheck disable=SC2046
  env $(cuda_variant_env "$mode" "${variant/profile/}") timeout 600 "$BIN" bench --backend cuda -m "$M" --reps 1 --no-limits "${args[@]}" --json "$TMP/$name.json" \
    >"$TMP/$name.log" 2>&1
  rc=$?
  if [ $rc -eq 0 ] && check_json "$TMP/$name.json" "${args[1]}" "${args[3]}"; then
    ok "bench --backend cuda ${args[*]}, MAMBA2_CUDA_MATMUL=$mode${variant:+ ($variant)}"
  else
    bad "bench --backend cuda ${args[*]}, MAMBA2_CUDA_MATMUL=$mode${variant:+ ($variant)} (exit $rc)"
    tail -8 "$TMP/$name.log"
  fi
done
grep -q "profile: prefill of 70 tokens" "$TMP/bf16_profile.log" && ok "bench --profile prints the prefill profile" ||
  bad "bench --profile: no prefill profile"

if [ $fails -eq 0 ]; then echo "all fake-device CLI checks passed"; else echo "$fails fake-device CLI check(s) failed"; fi
exit $((fails > 0))
