#!/usr/bin/env bash
# Runs llama.cpp's llama-bench on the very random weights that `mamba2 bench --shape S` builds
# (S = 130m unless given), for the comparison in BENCHMARKS.md.
#
#   tools/llama_cpp_compare.sh LLAMA_DIR MAMBA2_BIN OUT_DIR [dtypes] [threads] [shape]
#
# LLAMA_DIR: a llama.cpp source tree checked out OUTSIDE this repository, with
#   build/bin/llama-bench built (cmake -B build -DGGML_NATIVE=ON -DLLAMA_CURL=OFF &&
#   cmake --build build --target llama-bench) and models/ggml-vocab-gpt-neox.gguf present
#   (it is in llama.cpp's git tree). Nothing of llama.cpp is copied into this repository.
#   Some llama.cpp commits (seen at 0253fb21f, 2026-05-16) size the mamba2 tensors ssm_in, ssm_dt,
#   ssm_a and ssm_d by attention.head_count (written as 0) instead of ssm.time_step_rank and fail to
#   load any Mamba-2 GGUF ("ssm_in.weight has wrong shape"); BENCHMARKS.md says how that run was made.
# MAMBA2_BIN: the mamba2 CLI (writes the weights: mamba2 bench --write-model).
# OUT_DIR: scratch space for the model folders, GGUF files and llama-bench JSON (130m: ~2.5 GB;
#   2.7b bf16: ~11 GB).
# dtypes: space-separated subset of "f32 bf16 f16" (default: all three).
# shape: 130m (default; llama-bench -p 512,2048 -n 128 -r 3) or a larger one such as 2.7b, whose
#   decode reads from DRAM where 130m's can fit in a large L3 (llama-bench -p 512 -n 32 -r 3). With
#   dtypes "bf16" alone the weights are written in bf16 directly (2.7b: 5.4 GB, not 10.8 GB of f32).
#
# Conversion: tools/mamba2_to_gguf.py (own code, with gguf-py from LLAMA_DIR at run time).
# llama.cpp's convert_hf_to_gguf.py would do the same but needs transformers and torch >= 2.1
# at import time, which /usr/bin/python3 here lacks.
set -euo pipefail

LLAMA_DIR=${1:?LLAMA_DIR}
MAMBA2=${2:?MAMBA2_BIN}
OUT=${3:?OUT_DIR}
DTYPES=${4:-"f32 bf16 f16"}
THREADS=${5:-2}
SHAPE=${6:-130m}
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$OUT"
[ -x "$LLAMA_DIR/build/bin/llama-bench" ] || { echo "no $LLAMA_DIR/build/bin/llama-bench" >&2; exit 1; }
[ -f "$LLAMA_DIR/models/ggml-vocab-gpt-neox.gguf" ] || { echo "no models/ggml-vocab-gpt-neox.gguf in $LLAMA_DIR" >&2; exit 1; }

SRC_DT=f32
[ "$DTYPES" = bf16 ] && SRC_DT=bf16
SRC="$OUT/mamba2-$SHAPE-random-$SRC_DT"
[ -f "$SRC/config.json" ] || "$MAMBA2" bench --shape "$SHAPE" --dtype "$SRC_DT" --write-model "$SRC"
if [ "$SHAPE" = 130m ]; then BENCH_ARGS=(-p 512,2048 -n 128 -r 3); else BENCH_ARGS=(-p 512 -n 32 -r 3); fi

for dt in $DTYPES; do
  gguf="$OUT/mamba2-$SHAPE-random-$dt.gguf"
  if [ ! -f "$gguf" ]; then
    # f32 weights rounded here (nearest even) equal the bench's own --dtype bf16/f16 weights,
    # which are the same draws rounded the same way; bf16 ones pass unchanged.
    "$PY" "$HERE/mamba2_to_gguf.py" "$SRC" "$gguf" --outtype "$dt" --llama-dir "$LLAMA_DIR" >"$OUT/convert-$SHAPE-$dt.log" 2>&1 ||
      { tail -20 "$OUT/convert-$SHAPE-$dt.log" >&2; exit 1; }
  fi
  echo "== llama-bench $SHAPE $dt (threads $THREADS, load $(cut -d' ' -f1 /proc/loadavg))"
  nice -n 0 "$LLAMA_DIR/build/bin/llama-bench" -m "$gguf" "${BENCH_ARGS[@]}" -t "$THREADS" -o json \
    >"$OUT/llama-bench-$SHAPE-$dt.json" 2>"$OUT/llama-bench-$SHAPE-$dt.log" ||
    { tail -20 "$OUT/llama-bench-$SHAPE-$dt.log" >&2; exit 1; }
  "$PY" - "$OUT/llama-bench-$SHAPE-$dt.json" <<'EOF'
import json, sys
for r in json.load(open(sys.argv[1])):
    test = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
    print(f"  {test:7s} {r['avg_ts']:9.1f} tok/s  (+- {r['stddev_ts']:.1f})  "
          f"build {r.get('build_commit', '?')}, {r.get('cpu_info', '')}")
EOF
done
