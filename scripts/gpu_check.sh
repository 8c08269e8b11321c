#!/usr/bin/env bash
# Checks the CUDA backend on a GPU machine: builds (or unpacks) the CUDA test binaries, runs the
# CUDA parity suites, and times `mamba2 bench` when the CLI has it. Made for the device tool,
# which runs a command in the repo root of a copy of the working tree on an H200 (16 cores).
#
#   scripts/gpu_check.sh            on the GPU machine: native build, else the carried bundle
#   scripts/gpu_check.sh --prebuilt on the GPU machine: the carried bundle only (no compiling)
#   scripts/gpu_check.sh --build    on the GPU machine: native build only
#   scripts/gpu_check.sh --pack     here: build the binaries for sm_90 and pack them (with the
#                                   shared libraries a bare CUDA image lacks) into
#                                   build-gpu-bundle/, to carry along: carry ["build-gpu-bundle"]
#
# The GPU image has CUDA, CMake and ninja but probably not this project's Debian dependencies
# (nlohmann-json, GoogleTest, PCRE2, ICU, oneDNN); the native build is tried first and fails in
# seconds at configure time when they are missing. A bundle built from other sources than the
# ones present is used only when nothing else works, with a warning.
#
# Exit status: 0 when every test ran and passed; 1 tests failed; 2 no binaries (build failed
# and no bundle); 3 no GPU visible. Logs go to $OUT (the device tool's folder) when it is set.
# Environment: JOBS (default nproc), GPU_CHECK_TIMEOUT_TESTS (s, default 300),
# GPU_CHECK_TIMEOUT_BENCH (s per bench run, default 120), GPU_CHECK_BUDGET (s; no bench run starts
# that could end past it, default 420), GPU_CHECK_BACKEND_SUITE=0 to skip test_backend,
# GPU_CHECK_DRY_RUN=1 to walk through without a GPU (the CUDA tests then skip and count as failed).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
MODE=auto
case "${1:-}" in
  --pack) MODE=pack ;;
  --prebuilt) MODE=prebuilt ;;
  --build) MODE=build ;;
  "") ;;
  *) echo "usage: $0 [--pack|--prebuilt|--build]" >&2; exit 64 ;;
esac
JOBS=${JOBS:-$(nproc)}
LOG_DIR=${OUT:-$ROOT/build-gpu-logs}
mkdir -p "$LOG_DIR"
BUNDLE_DIR=$ROOT/build-gpu-bundle
NVCC=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
T_START=$(date +%s)

section() { printf '\n==== %s ==== (t=%ss)\n' "$*" "$(($(date +%s) - T_START))"; }

# A fingerprint of everything that goes into the binaries, the same here and there.
source_hash() {
  (cd "$ROOT" && find src tests apps bench CMakeLists.txt -type f \
    \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name '*.inc' -o -name 'CMakeLists.txt' \) \
    2>/dev/null | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
}

generator_args() {
  if command -v ninja >/dev/null 2>&1; then echo "-G Ninja"; fi
}

# Builds test_cuda (required), then test_backend and mamba2 (optional) into $1.
build_targets() {
  local dir=$1; shift
  # shellcheck disable=SC2046
  if ! cmake -S "$ROOT" -B "$dir" $(generator_args) -DCMAKE_BUILD_TYPE=Release -DMAMBA2_CUDA=ON \
      -DMAMBA2_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_COMPILER="$NVCC" "$@" \
      >"$LOG_DIR/configure.log" 2>&1; then
    echo "configure failed (last lines; full log configure.log):"
    grep -E "Could NOT find|Could not find|not found|Error" "$LOG_DIR/configure.log" | head -8
    return 1
  fi
  echo "configured $dir"
  if ! cmake --build "$dir" --target test_cuda -j"$JOBS" >"$LOG_DIR/build.log" 2>&1; then
    echo "build of test_cuda failed:"
    grep -E "error|FAILED" "$LOG_DIR/build.log" | head -20
    return 1
  fi
  echo "built test_cuda"
  for t in test_backend mamba2; do
    if cmake --build "$dir" --target "$t" -j"$JOBS" >>"$LOG_DIR/build.log" 2>&1; then
      echo "built $t"
    else
      echo "could not build $t (optional; see build.log)"
    fi
  done
  return 0
}

# ---- --pack: on the development machine ---------------------------------------------------
if [ "$MODE" = pack ]; then
  section "pack: build for sm_90"
  PACK_BUILD=$ROOT/build-gpu-pack
  # --as-needed drops libraries a binary does not use (test_cuda needs neither ICU nor oneDNN).
  build_targets "$PACK_BUILD" -DCMAKE_EXE_LINKER_FLAGS=-Wl,--as-needed || exit 2
  section "pack: collect binaries and libraries"
  rm -rf "$BUNDLE_DIR"
  STAGE=$(mktemp -d)
  mkdir -p "$STAGE/bin" "$STAGE/lib"
  for b in tests/test_cuda tests/test_backend mamba2; do
    [ -x "$PACK_BUILD/$b" ] && cp "$PACK_BUILD/$b" "$STAGE/bin/"
  done
  # Libraries outside glibc, the compiler runtime and CUDA (the GPU image brings those, newer).
  for b in "$STAGE"/bin/*; do
    ldd "$b" | awk '/=> \//{print $3}'
  done | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
      libcuda.so*|libcudart.so*|libcublas.so*|libcublasLt.so*|libnvidia*) ;;
      *) cp -L "$lib" "$STAGE/lib/" ;;
    esac
  done
  source_hash >"$STAGE/source.hash"
  (cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null) >"$STAGE/commit" || true
  mkdir -p "$BUNDLE_DIR"
  tar -C "$STAGE" -cf - . | xz -T"$JOBS" -6 >"$BUNDLE_DIR/bundle.tar.xz"
  rm -rf "$STAGE"
  ls -la "$BUNDLE_DIR"
  echo "carry it along: run(command='scripts/gpu_check.sh', carry=['build-gpu-bundle'])"
  exit 0
fi

# ---- on the GPU machine ---------------------------------------------------------------------
section "device"
if ! nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader; then
  echo "nvidia-smi found no GPU"
  # GPU_CHECK_DRY_RUN=1 walks the rest anyway (to try this script on a machine without a GPU).
  [ "${GPU_CHECK_DRY_RUN:-0}" = 1 ] || exit 3
fi
"$NVCC" --version 2>/dev/null | tail -1 || echo "no nvcc"
cmake --version 2>/dev/null | head -1 || echo "no cmake"
echo "cores: $(nproc)   source: $(source_hash)"

BIN=""          # folder with test_cuda [test_backend] [mamba2]
unpack_bundle() {
  [ -f "$BUNDLE_DIR/bundle.tar.xz" ] || { echo "no bundle at build-gpu-bundle/ (make one with --pack)"; return 1; }
  local dest=/tmp/mamba2-gpu-bundle
  rm -rf "$dest" && mkdir -p "$dest" && xz -dc "$BUNDLE_DIR/bundle.tar.xz" | tar -C "$dest" -xf - || return 1
  if [ "$(cat "$dest/source.hash")" != "$(source_hash)" ]; then
    echo "WARNING: the bundle was built from other sources (bundle $(cat "$dest/source.hash"), here $(source_hash));"
    echo "WARNING: its results describe commit $(cat "$dest/commit" 2>/dev/null) plus whatever was uncommitted then"
  fi
  # CUDA libraries: the image's toolkit (or pip's nvidia wheels) provides them.
  local cuda_libs="" found
  found=$(ldconfig -p 2>/dev/null | awk '/libcublasLt.so.13/{print $NF; exit}')
  [ -n "$found" ] && cuda_libs=$(dirname "$found")
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib $cuda_libs \
      $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, "cu13", "lib") for p in nvidia.__path__))' 2>/dev/null); do
    [ -d "$d" ] && LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d"
  done
  export LD_LIBRARY_PATH="$dest/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local missing
  missing=$(ldd "$dest/bin/test_cuda" | grep "not found")
  if [ -n "$missing" ]; then
    echo "test_cuda cannot load:"; echo "$missing"; return 1
  fi
  BIN=$dest/bin
  echo "using the bundle (commit $(cat "$dest/commit" 2>/dev/null))"
}

section "binaries"
BUILD=$ROOT/build-gpu
if [ "$MODE" = prebuilt ]; then
  unpack_bundle || exit 2
elif build_targets "$BUILD"; then
  BIN=$BUILD/tests
  [ -x "$BUILD/mamba2" ] && ln -sf "$BUILD/mamba2" "$BIN/mamba2"
elif [ "$MODE" = auto ]; then
  echo "native build impossible here; falling back to the carried bundle"
  unpack_bundle || exit 2
else
  exit 2
fi

# Runs a gtest binary in parallel shards (one process each); prints failures; returns 1 on any.
run_sharded() {
  local name=$1 bin=$2 filter=$3 shards=$4 timeout_s=$5
  local pids=() rc=0
  for ((i = 0; i < shards; i++)); do
    GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$i timeout "$timeout_s" "$bin" --gtest_filter="$filter" \
      >"$LOG_DIR/$name.$i.log" 2>&1 &
    pids+=($!)
  done
  for ((i = 0; i < shards; i++)); do
    if ! wait "${pids[$i]}"; then rc=1; fi
  done
  cat "$LOG_DIR/$name".*.log >"$LOG_DIR/$name.log"
  rm -f "$LOG_DIR/$name".*.log
  local passed failed skipped
  passed=$(grep -cE '^\[       OK \] .* \([0-9]+ ms\)$' "$LOG_DIR/$name.log")
  failed=$(grep -cE '^\[  FAILED  \] .* \([0-9]+ ms\)$' "$LOG_DIR/$name.log")
  skipped=$(grep -cE '^\[  SKIPPED \] .* \([0-9]+ ms\)$' "$LOG_DIR/$name.log")
  echo "$name: $passed passed, $failed failed, $skipped skipped (exit $rc; log $name.log)"
  if [ "$rc" != 0 ]; then
    grep -E "^\[  FAILED  \] .*\(|Failure|rel(ative)? L2|Expected|Which is|CHECK failed|CUDA error|cuBLAS error|Timeout|Killed" \
      "$LOG_DIR/$name.log" | head -40
  fi
  if [ "$skipped" != 0 ] && grep -q "no CUDA device" "$LOG_DIR/$name.log"; then
    echo "WARNING: $name skipped tests for want of a CUDA device"
    rc=1
  fi
  return $rc
}

TEST_RC=0
export MAMBA2_SOURCE_DIR=$ROOT  # the bundled model, for binaries built in another checkout
# The emulator checks are for machines without a GPU; here only the device runs.
section "test_cuda (device parity: ops, matmul modes, models)"
run_sharded test_cuda "$BIN/test_cuda" \
  '-*/emu:Emulated/*:CudaEmulator.*:CudaViews.*:CudaMatMul.Emulated*:*Emulated.*:PickKernelEmu.*' \
  8 "${GPU_CHECK_TIMEOUT_TESTS:-300}" || TEST_RC=1

grep -h "^pick kernel" "$LOG_DIR/test_cuda.log" 2>/dev/null

# Programmatic dependent launch is off by default until measured; its bench variant below needs
# the whole model and the picked decode to stay right with it on.
section "test_cuda again with MAMBA2_CUDA_PDL=1 (models, picking)"
MAMBA2_CUDA_PDL=1 run_sharded test_cuda_pdl "$BIN/test_cuda" \
  'Shapes/CudaModelParity.*:CudaModelBatch.*:CudaPicking.*:Targets/CudaOps.*/cuda' \
  8 "${GPU_CHECK_TIMEOUT_TESTS:-300}" || TEST_RC=1

if [ "${GPU_CHECK_BACKEND_SUITE:-1}" = 1 ] && [ -x "$BIN/test_backend" ]; then
  section "test_backend (op suite on every backend, cuda included)"
  run_sharded test_backend "$BIN/test_backend" '*' 12 "${GPU_CHECK_TIMEOUT_TESTS:-300}" || TEST_RC=1
fi

# One line of the figures the issue asks for, from a bench --json file.
summarize() {
  local json=$1 rc=$2 dt=$3
  if [ ! -s "$json" ]; then echo "exit $rc after ${dt}s, no JSON"; return; fi
  python3 - "$json" "$rc" "$dt" <<'EOF' 2>/dev/null || echo "exit $rc after ${dt}s (see the log)"
import json, sys
j = json.load(open(sys.argv[1]))
def pct(x): return "-" if x is None else f"{100 * x:.1f}%"
ctx = j.get("decode_s_per_token_by_context", {})
keys = sorted(ctx, key=int)
flat = f"{100 * (ctx[keys[-1]] / ctx[keys[0]] - 1):+.1f}% {keys[0]}->{keys[-1]}" if len(keys) > 1 else "-"
sp = j.get("cached_speedup_by_context", {})
print(f"{j.get('prefill_tokens_per_s', 0):.0f} ({pct(j.get('prefill_fraction_of_gemm_peak'))}, MFU {pct(j.get('prefill_mfu_of_nominal_bf16_peak'))}) | "
      f"{j.get('decode_picked_tokens_per_s', 0):.1f} ({pct(j.get('decode_picked_fraction_of_read_bandwidth'))}) | "
      f"{j.get('decode_tokens_per_s', 0):.1f} ({pct(j.get('decode_fraction_of_read_bandwidth'))}) | {flat} | "
      + ", ".join(f"{k}: {v:.0f}x" for k, v in sorted(sp.items(), key=lambda kv: int(kv[0])))
      + f"  [exit {sys.argv[2]}, {sys.argv[3]}s]")
EOF
}

section "bench"
# shellcheck source=scripts/cuda_variants.sh
source "$ROOT/scripts/cuda_variants.sh"
MAMBA2=$BIN/mamba2
BUDGET=${GPU_CHECK_BUDGET:-420}
BENCH_T=${GPU_CHECK_TIMEOUT_BENCH:-120}
if [ -x "$MAMBA2" ] && "$MAMBA2" --help 2>&1 | grep -qE '^[[:space:]]+bench([[:space:]]|$)'; then
  declare -a ROWS=()
  # The issue's targets first (2.7B bf16: prefill of 4096, decode, contexts to 16k), then fp32.
  # A variant repeats a decode with one feature switched, to measure what it brings: "nogemv" the
  # 16-bit decode products on cuBLAS instead of gemv.cuh, "pdl" programmatic dependent launch on,
  # "nographs" every step's kernels launched one by one instead of a CUDA graph, "f32inter" the
  # mixer's intermediates in fp32 instead of bf16 (its prefill of 4096 is measured too),
  # "nonorms" the norms as kernels of their own instead of inside the decode GEMVs, "tf32scan" the
  # chunked scan's tensor-core products on TF32 operands instead of bf16 (prefill of 4096 only).
  for run in "2.7b bf16" "130m fp32" "130m bf16" "2.7b bf16 f32inter" "2.7b bf16 tf32scan" "2.7b bf16 nonorms" \
    "2.7b bf16 pdl" "2.7b bf16 nogemv" "130m bf16 nographs" "2.7b fp32"; do
    read -r shape mode variant <<<"$run"
    label="$mode${variant:+/$variant}"
    if [ $(($(date +%s) - T_START + BENCH_T)) -gt "$BUDGET" ]; then
      ROWS+=("$(printf '%-6s %-14s %s' "$shape" "$label" "skipped: time budget (GPU_CHECK_BUDGET=$BUDGET s)")")
      continue
    fi
    name=${shape}_$mode${variant:+_$variant}
    args=(--backend cuda --shape "$shape" --json "$LOG_DIR/bench_$name.json")
    [ "$mode" = bf16 ] && args+=(--dtype bf16)
    # The target run also prints where a 4096-token prefill and a decode step spend their time,
    # op by op (each op waited for, so its own time): what to work on next.
    [ "$shape" = 2.7b ] && [ -z "$variant" ] && [ "$mode" = bf16 ] && args+=(--profile)
    [ "$shape" = 2.7b ] && [ -z "$variant" ] && args+=(--prefill 512,4096 --context 128,4096,16384)
    case "$variant" in
      "") ;;
      f32inter) args+=(--prefill 4096 --context 0) ;;
      tf32scan) args+=(--prefill 4096 --decode 0 --context 0) ;;
      *) args+=(--prefill 0 --context 0) ;;
    esac
    t0=$(date +%s%N)
    # shellcheck disable=SC2046
    env $(cuda_variant_env "$mode" "$variant") \
      timeout "$BENCH_T" "$MAMBA2" bench "${args[@]}" >"$LOG_DIR/bench_$name.log" 2>&1
    rc=$?
    dt=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    echo "--- MAMBA2_CUDA_MATMUL=$mode${variant:+ ($variant)} mamba2 bench ${args[*]} (exit $rc, ${dt}s)"
    tail -"$([[ " ${args[*]} " == *" --profile "* ]] && echo 70 || echo 22)" "$LOG_DIR/bench_$name.log"
    ROWS+=("$(printf '%-6s %-14s %s' "$shape" "$label" "$(summarize "$LOG_DIR/bench_$name.json" "$rc" "$dt")")")
  done
  echo
  printf '%-6s %-14s %s\n' shape mode "prefill tok/s (of GEMM peak) | decode tok/s picked (of read bw) | logits-to-host | ctx flat | cached speedup"
  for r in "${ROWS[@]}"; do echo "$r"; done
else
  echo "mamba2 has no bench command yet (or no CLI binary): skipped"
fi

section "summary"
if [ "$TEST_RC" = 0 ]; then echo "ALL CUDA CHECKS PASSED"; else echo "CUDA CHECKS FAILED (logs in $LOG_DIR)"; fi
exit $TEST_RC
