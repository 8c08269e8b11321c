// The cpu backend's use of oneDNN: fp32 sgemm, and bf16 x bf16 -> fp32 matmul primitives
// (AVX512-BF16 or AMX kernels generated at run time, so no hand-written tile intrinsics).
// Every call runs on the calling thread alone: the backend's pool supplies the parallelism
// by giving each thread its own tile of the output.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mamba2::cpu {

// True when Bf16GemmTile can run here: the build has oneDNN and oneDNN has a bf16 matmul for this
// CPU (AVX512-BF16 or AMX; oneDNN 2.x has none for AVX2-only CPUs).
bool HaveBf16Gemm();

// out[r][j] = sum_k x[r][k] * w[j][k] + beta * out[r][j] for r < rows, j < cols; x [rows, k]
// (ld ldx), w [cols, k] (ld k), out (ld ldo). fp32 throughout; beta 0 or 1.
void SgemmTile(const float* x, int64_t ldx, const float* w, int64_t k, float beta, float* out, int64_t ldo,
               int64_t rows, int64_t cols);

// BLAS sgemm, row-major: C = alpha * op(A) op(B) + beta * C with op = transpose for 'T'.
// op(A) is [m, k], op(B) is [k, n], C is [m, n]; lda/ldb/ldc are row strides.
void Sgemm(char trans_a, char trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// out [m, n] (fp32, row stride ldo) = a [m, k] . b [k, n], plus out where accumulate; a and b
// bf16 with any element strides: a(i, t) = a[i * a_row + t * a_col], b(t, j) = b[t * b_row + j * b_col].
struct Bf16Product {
  int64_t m, n, k;
  int64_t a_row, a_col, b_row, b_col;
  int64_t ldo;
  bool accumulate;
};

// The primitive for each Bf16Product is built once and kept in a cache of at most
// kBf16CacheCapacity (least recently used out first; ~170 KB each), so a shape that recurs often
// is built once and any number of shapes costs bounded memory. Only where HaveBf16Gemm().
void Bf16Matmul(const Bf16Product& shape, const uint16_t* a, const uint16_t* b, float* out);
constexpr size_t kBf16CacheCapacity = 96;
size_t Bf16CachedPrimitives();  // how many the cache holds now

// The same product with bf16 x (contiguous [rows, k]) and bf16 w, fp32 accumulation and
// output; with `accumulate` added to out (a sum post-op). A Bf16Matmul.
void Bf16GemmTile(const uint16_t* x, const uint16_t* w, int64_t k, bool accumulate, float* out, int64_t ldo,
                  int64_t rows, int64_t cols);

}  // namespace mamba2::cpu
