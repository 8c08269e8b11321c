# The environment of a `mamba2 bench --backend cuda` run: the matmul mode and at most one feature
# switched from its default, to measure what the feature brings. Sourced by scripts/gpu_check.sh
# and tests/fake_cuda/cli_test.sh, so that the fake device runs what the GPU runs:
#   env $(cuda_variant_env MODE [VARIANT]) mamba2 bench --backend cuda ...
# MODE: fp32 | tf32 | bf16 | fp16 (MAMBA2_CUDA_MATMUL). VARIANT: nographs (every step's kernels
# launched one by one, not a CUDA graph), nogemv (16-bit decode products on cuBLAS, not
# gemv.cuh), nonorms (norms as kernels of their own, not inside the decode GEMVs), tf32scan (the
# chunked scan's tensor-core products on TF32 operands, not bf16), pdl (programmatic dependent
# launch on), f32inter (the mixer's intermediates in fp32, not bf16).
cuda_variant_env() {
  local mode=$1 variant=${2:-}
  case "$variant" in
    "" | nographs | nogemv | nonorms | tf32scan | pdl | f32inter) ;;
    *) echo "cuda_variant_env: unknown variant '$variant'" >&2; return 1 ;;
  esac
  off_for() { if [ "$variant" = "$1" ]; then echo 0; else echo 1; fi; }
  echo "MAMBA2_CUDA_MATMUL=$mode MAMBA2_CUDA_GRAPHS=$(off_for nographs) MAMBA2_CUDA_GEMV=$(off_for nogemv)" \
    "MAMBA2_CUDA_GEMV_NORMS=$(off_for nonorms) MAMBA2_CUDA_BF16_SCAN=$(off_for tf32scan)" \
    "MAMBA2_CUDA_BF16_INTERMEDIATES=$(off_for f32inter) MAMBA2_CUDA_PDL=$([ "$variant" = pdl ] && echo 1 || echo 0)"
}
