// Host-side packing of the backend's views into the kernels' argument structs, shared by the
// CUDA backend and the host emulator that runs the same kernels in tests.
#pragma once

#include "backend/backend.h"
#include "backend/cuda/kernel_args.h"

namespace mamba2::cuda_args {

// The kernels' code (WDType) of an element type.
inline int KernelDType(DType t) {
  switch (t) {
    case DType::F32: return kF32;
    case DType::F16: return kF16;
    case DType::BF16: return kBF16;
    default: break;
  }
  CHECK_MSG(false, std::string("cuda: unsupported dtype ") + DTypeName(t));
  return -1;
}

// The kernels' view of a Mat: fp32 or bf16 elements.
inline ActView Act(const Mat& m) {
  CHECK_MSG(m.dtype == DType::F32 || m.dtype == DType::BF16,
            std::string("cuda: activations are f32 or bf16, not ") + DTypeName(m.dtype));
  return ActView{m.data, m.ld, KernelDType(m.dtype)};
}

// Where the mixer's intermediates live, alike in the CUDA backend and its emulator: bf16 in bf16
// mode unless switched off (CudaBackendOptions::bf16_intermediates), else fp32.
inline DType IntermediatesFor(bool bf16_mode, bool bf16_intermediates) {
  return bf16_mode && bf16_intermediates ? DType::BF16 : DType::F32;
}

// How the chunked scan multiplies, alike in the CUDA backend and its emulator: fp32 kernels in
// fp32 mode; on the tensor cores otherwise, with bf16 operands in bf16 mode unless switched off
// (CudaBackendOptions::bf16_scan), else TF32.
inline int ScanProductsFor(bool fp32_mode, bool bf16_mode, bool bf16_scan) {
  if (fp32_mode) return kScanFp32;
  return bf16_mode && bf16_scan ? kScanBf16 : kScanTf32;
}

inline ConvParams MakeConvParams(Mat in, int64_t n_seqs, int64_t seq_len, const int32_t* slots, const MixerDims& dims,
                                 float* conv_state, const TensorView& weight, const TensorView& bias, Mat out) {
  ConvParams p;
  p.xbc = Act(in);
  p.out = Act(out);
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
  p.x = Act(x);
  p.B = Act(B);
  p.C = Act(C);
  p.dt = Act(dt);
  p.dt_bias = in.dt_bias.as<float>();
  p.A_log = in.A_log.as<float>();
  p.D = in.D.as<float>();
  p.dt_min = in.dt_min;
  p.dt_max = in.dt_max;
  p.y = Act(y);
  p.slots = slots;
  p.ssm_state = ssm_state;
  p.n_heads = dims.n_heads;
  p.head_dim = dims.head_dim;
  p.d_state = dims.d_state;
  p.n_groups = dims.n_groups;
  return p;
}

// Which path a product x @ w^T takes, decided alike by the CUDA backend and its emulator.
// The decode GEMV (gemv.cuh, unless switched off): 16-bit weights, and fp32 rows it takes.
inline bool UsesGemv(bool gemv_on, const Mat& x, const TensorView& w) {
  return gemv_on && (w.dtype == DType::BF16 || w.dtype == DType::F16) && x.dtype == DType::F32 &&
         GemvApplies(x.rows, w.shape[1], static_cast<const float*>(x.data), x.ld,
                     static_cast<const uint16_t*>(w.data));
}
// A 16-bit GEMM on a packed operand: 16-bit weights, and not the GEMV's case.
inline bool PacksForHalfGemm(bool gemv_on, const Mat& x, const TensorView& w) {
  return x.rows > 0 && (w.dtype == DType::BF16 || w.dtype == DType::F16) && !UsesGemv(gemv_on, x, w);
}

// Where a norm ahead of a product runs inside the GEMV (gemv.cuh's GemvNormRows), decided alike
// by the CUDA backend and its emulator: the product is the GEMV's on the rows the norm would write,
// and they fit in shared memory.
inline bool FusesNorm(bool gemv_on, bool norms_on, const Mat& normed, const TensorView& w) {
  return norms_on && UsesGemv(gemv_on, normed, w) && GemvNormFits(normed.rows, w.shape[1]);
}
inline GemvNorm RmsGemvNorm(const Mat& x, const TensorView& weight, float eps) {
  GemvNorm nm;
  nm.kind = kRms;
  nm.x = static_cast<const float*>(x.f32());
  nm.x_ld = x.ld;
  nm.w = weight.as<float>();
  nm.eps = eps;
  return nm;
}
inline GemvNorm GatedGemvNorm(const Mat& y, const Mat& z, const TensorView& weight, int64_t group_size, float eps) {
  GemvNorm nm;
  nm.kind = kGated;
  nm.y = Act(y);
  nm.z = Act(z);
  nm.w = weight.as<float>();
  nm.group_size = group_size;
  nm.eps = eps;
  return nm;
}

}  // namespace mamba2::cuda_args
