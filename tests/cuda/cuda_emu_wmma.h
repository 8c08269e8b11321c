// The part of CUDA's warp matrix API (nvcuda::wmma: TF32 16x16x8 and bf16 16x16x16, fp32
// accumulators) that the scan kernels use, for
// the host emulator of cuda_emu.h. A fragment's element-to-lane mapping is unspecified on the
// device, so code that only loads, fills, multiplies, stores and applies one operation to every
// element behaves the same whatever the mapping: here every lane holds the whole tile.
//
// Loads and stores are warp collectives as on the device: every lane of a full warp must reach
// them with the same pointer and stride (checked), and none starts before all have arrived, so a
// warp that stores over what its lanes just loaded behaves as it does on the device. The
// device's operand preconditions are checked too (32-byte aligned pointers, strides a multiple of
// 16 bytes), so a kernel that breaks them fails here and not first on a GPU. The TF32 multiply
// uses the operands' TF32 bits (the low 13 mantissa bits dropped, as the tensor cores read them);
// bf16 products are exact in float; sums in float.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/float_bits.h"

namespace mamba2::cuda_emu {

// cuda_bf16.h's type and its round-to-nearest-even conversion.
struct __nv_bfloat16 {
  uint16_t bits;
};
inline __nv_bfloat16 __float2bfloat16(float v) { return __nv_bfloat16{F32ToBF16(v)}; }

}  // namespace mamba2::cuda_emu

namespace mamba2::cuda_emu::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major;  // incomplete, as on the device: tags to compare, not to make
struct col_major;
namespace precision {
struct tf32;
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && (K == 8 || K == 16), "only m16n16k8 (TF32) and m16n16k16 (bf16) are emulated");
  static_assert(std::is_same_v<Use, accumulator>
                    ? std::is_same_v<T, float>
                    : (K == 8 ? std::is_same_v<T, precision::tf32> : std::is_same_v<T, __nv_bfloat16>),
                "operands are tf32 (k 8) or bf16 (k 16), accumulators float");
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
  static constexpr int num_elements = rows * cols;
  float x[num_elements];  // [rows, cols], the whole tile in every lane
};

// Round to the nearest TF32 value, ties away from zero (cvt.rna.tf32.f32).
inline float __float_to_tf32(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

namespace detail {

inline float Tf32Bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  u &= 0xffffe000u;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// Every lane of a complete warp arrives with the same (pointer, stride) before any goes on.
// elem_bytes: of the matrix in memory; the stride must be a multiple of 16 bytes.
inline void WarpCollective(const void* ptr, unsigned ldm, size_t elem_bytes, const char* what) {
  using cuda_emu::detail::FiberState;
  auto& s = cuda_emu::detail::Sched();
  const int me = s.current, warp = me / 32, lane = me % 32;
  const int n_threads = int(blockDim.x * blockDim.y * blockDim.z);
  if (warp * 32 + 32 > n_threads) cuda_emu::detail::Fail("wmma in a warp that is not complete");
  if (reinterpret_cast<uintptr_t>(ptr) % 32 != 0) cuda_emu::detail::Fail("wmma: pointer not 32-byte aligned");
  if (ldm * elem_bytes % 16 != 0) cuda_emu::detail::Fail("wmma: stride not a multiple of 16 bytes");
  const uint64_t key = uint64_t(reinterpret_cast<uintptr_t>(ptr)) * 1000003u + ldm;
  s.exchange[warp][lane] = key;
  cuda_emu::detail::Yield(FiberState::kWarpBarrier);
  for (int i = 0; i < 32; ++i) {
    if (s.fibers[size_t(warp * 32 + i)].state == FiberState::kDone)
      cuda_emu::detail::Fail("wmma: a lane of the warp has exited");
    if (s.exchange[warp][i] != key) cuda_emu::detail::Fail(what);
  }
  cuda_emu::detail::Yield(FiberState::kWarpBarrier);  // no lane overwrites its key before all compared
}

template <typename L, typename E>
const E& At(const E* m, unsigned ld, int r, int c) {
  return std::is_same_v<L, row_major> ? m[size_t(r) * ld + c] : m[size_t(c) * ld + r];
}

}  // namespace detail

template <typename Use, int M, int N, int K, typename T, typename L>
void fill_fragment(fragment<Use, M, N, K, T, L>& f, float v) {
  for (float& e : f.x) e = v;
}

template <typename Use, int M, int N, int K, typename L>
void load_matrix_sync(fragment<Use, M, N, K, precision::tf32, L>& f, const float* p, unsigned ldm) {
  detail::WarpCollective(p, ldm, sizeof(float), "wmma load: lanes disagree on the pointer or stride");
  using F = fragment<Use, M, N, K, precision::tf32, L>;
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c) f.x[r * F::cols + c] = detail::Tf32Bits(detail::At<L>(p, ldm, r, c));
}

template <typename Use, int M, int N, int K, typename L>
void load_matrix_sync(fragment<Use, M, N, K, __nv_bfloat16, L>& f, const __nv_bfloat16* p, unsigned ldm) {
  detail::WarpCollective(p, ldm, sizeof(__nv_bfloat16), "wmma load: lanes disagree on the pointer or stride");
  using F = fragment<Use, M, N, K, __nv_bfloat16, L>;
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c) f.x[r * F::cols + c] = BF16ToF32(detail::At<L>(p, ldm, r, c).bits);
}

// The operands hold the values the tensor cores read (TF32 bits, or bf16 widened): their products
// are exact in float, the sums rounded in k order.
template <int K, typename T, typename LA, typename LB>
void mma_sync(fragment<accumulator, 16, 16, K, float>& d, const fragment<matrix_a, 16, 16, K, T, LA>& a,
              const fragment<matrix_b, 16, 16, K, T, LB>& b, const fragment<accumulator, 16, 16, K, float>& c) {
  float out[16 * 16];
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      float acc = c.x[i * 16 + j];
      for (int k = 0; k < K; ++k) acc += a.x[i * K + k] * b.x[k * 16 + j];
      out[i * 16 + j] = acc;
    }
  std::memcpy(d.x, out, sizeof out);
}

template <int K>
void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, K, float>& f, unsigned ldm, layout_t layout) {
  detail::WarpCollective(p, ldm, sizeof(float), "wmma store: lanes disagree on the pointer or stride");
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) {
      float& dst = layout == mem_row_major ? p[size_t(r) * ldm + c] : p[size_t(c) * ldm + r];
      dst = f.x[r * 16 + c];
    }
}

}  // namespace mamba2::cuda_emu::wmma
