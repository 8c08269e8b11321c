// Host-side packing of the backend's views into the kernels' argument structs, shared by the
// CUDA backend and the host emulator that runs the same kernels in tests.
#pragma once

#include "backend/backend.h"
#include "backend/cuda/kernel_args.h"

namespace mamba2::cuda_args {

inline ConvParams MakeConvParams(Mat in, int64_t n_seqs, int64_t seq_len, const int32_t* slots, const MixerDims& dims,
                                 float* conv_state, const TensorView& weight, const TensorView& bias, Mat out) {
  ConvParams p;
  p.xbc = in.data;
  p.xbc_ld = in.ld;
  p.out = out.data;
  p.out_ld = out.ld;
  p.slots = slots;
  p.conv_state = conv_state;
  p.weight = weight.as<float>();
  p.bias = bias.data ? bias.as<float>() : nullptr;
  p.n_seqs = n_seqs;
  p.seq_len = seq_len;
  p.conv_dim = dims.conv_dim();
  p.d_conv = dims.d_conv;
  return p;
}

// x, B, C, dt are passed apart from `in` so a caller can substitute copies of views y overlaps.
inline ScanParams MakeScanParams(Mat x, Mat B, Mat C, Mat dt, const ScanInputs& in, const MixerDims& dims,
                                 const int32_t* slots, float* ssm_state, Mat y) {
  ScanParams p;
  p.x = x.data;
  p.x_ld = x.ld;
  p.B = B.data;
  p.B_ld = B.ld;
  p.C = C.data;
  p.C_ld = C.ld;
  p.dt = dt.data;
  p.dt_ld = dt.ld;
  p.dt_bias = in.dt_bias.as<float>();
  p.A_log = in.A_log.as<float>();
  p.D = in.D.as<float>();
  p.dt_min = in.dt_min;
  p.dt_max = in.dt_max;
  p.y = y.data;
  p.y_ld = y.ld;
  p.slots = slots;
  p.ssm_state = ssm_state;
  p.n_heads = dims.n_heads;
  p.head_dim = dims.head_dim;
  p.d_state = dims.d_state;
  p.n_groups = dims.n_groups;
  return p;
}

}  // namespace mamba2::cuda_args
