// The device-memory read bandwidth `mamba2 bench --backend cuda` compares decode with: a kernel
// that streams a buffer through 16-byte loads and sums it, timed with events. The sum is checked
// so that the compiler cannot drop the loads and a broken measurement is an error, not a figure.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"

#define M2_KERNEL_NS cuda
#include "backend/cuda/device_common.cuh"

namespace mamba2 {
namespace {

__global__ void FillOnesKernel(float4* p, size_t n) {
  M2_GRID_DEPENDENCY();
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = make_float4(1.0f, 1.0f, 1.0f, 1.0f);
}

// One partial sum per block; several independent loads in flight per thread.
__global__ void ReadSumKernel(const float4* __restrict__ p, size_t n, float* partial) {
  M2_GRID_DEPENDENCY();
  float acc = 0.0f;
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + 3 * stride < n; i += 4 * stride) {
    const float4 a = p[i], b = p[i + stride], c = p[i + 2 * stride], d = p[i + 3 * stride];
    acc += (a.x + a.y + a.z + a.w) + (b.x + b.y + b.z + b.w) + (c.x + c.y + c.z + c.w) + (d.x + d.y + d.z + d.w);
  }
  for (; i < n; i += stride) {
    const float4 a = p[i];
    acc += a.x + a.y + a.z + a.w;
  }
  __shared__ float warp_sums[32];
  acc = cuda::WarpSum(acc);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    float s = 0.0f;
    for (unsigned w = 0; w < (blockDim.x + 31) / 32; ++w) s += warp_sums[w];
    partial[blockIdx.x] = s;
  }
}

Status Err(const char* what, cudaError_t e) { return Status::Error(std::string(what) + ": " + cudaGetErrorString(e)); }

}  // namespace

Result<CudaMemoryBandwidth> MeasureCudaReadBandwidth(int device, size_t bytes, int reps) {
  CudaMemoryBandwidth out;
  cudaError_t e = cudaSetDevice(device);
  if (e != cudaSuccess) return Err("cudaSetDevice", e);
  cudaDeviceProp prop{};
  if ((e = cudaGetDeviceProperties(&prop, device)) != cudaSuccess) return Err("cudaGetDeviceProperties", e);
  out.device = prop.name;
  int clock_khz = 0, bus_bits = 0;
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device);
  out.nominal_bytes_per_s = 2.0 * double(clock_khz) * 1e3 * double(bus_bits) / 8.0;  // double data rate
  int sm_khz = 0;
  cudaDeviceGetAttribute(&sm_khz, cudaDevAttrClockRate, device);
  // Dense bf16 FLOP per clock per SM: Hopper 4096 (H100 SXM: 132 SMs x 1.83 GHz x 4096 = 989 TFLOP/s).
  const double per_sm_clock = prop.major == 9 ? 4096.0 : 0.0;
  out.nominal_bf16_flops_per_s = per_sm_clock * double(prop.multiProcessorCount) * double(sm_khz) * 1e3;

  const size_t n = bytes / sizeof(float4);
  const int threads = 512, blocks = prop.multiProcessorCount * 4;
  float4* buf = nullptr;
  float* partial = nullptr;
  if ((e = cudaMalloc(&buf, n * sizeof(float4))) != cudaSuccess) return Err("cudaMalloc (bandwidth probe)", e);
  if ((e = cudaMalloc(&partial, size_t(blocks) * sizeof(float))) != cudaSuccess) {
    cudaFree(buf);
    return Err("cudaMalloc (bandwidth probe)", e);
  }
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  M2_LAUNCH(FillOnesKernel, dim3(blocks), dim3(threads), nullptr, buf, n);
  std::vector<double> rates;
  std::vector<float> sums(size_t(blocks), 0.0f);
  Status status = Status::Ok();
  for (int r = 0; r <= reps && status.ok(); ++r) {
    cudaEventRecord(start);
    M2_LAUNCH(ReadSumKernel, dim3(blocks), dim3(threads), nullptr, buf, n, partial);
    cudaEventRecord(stop);
    if ((e = cudaEventSynchronize(stop)) != cudaSuccess) {
      status = Err("bandwidth probe kernel", e);
      break;
    }
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, start, stop);
    if (r > 0) rates.push_back(double(n * sizeof(float4)) / (double(ms) * 1e-3));  // r == 0 warms up
  }
  if (status.ok() && (e = cudaMemcpy(sums.data(), partial, sums.size() * sizeof(float), cudaMemcpyDeviceToHost)) != cudaSuccess)
    status = Err("cudaMemcpy (bandwidth probe)", e);
  double total = 0.0;
  for (float s : sums) total += double(s);
  if (status.ok() && std::abs(total - 4.0 * double(n)) > 1e-3 * 4.0 * double(n))
    status = Status::Error("bandwidth probe: the kernel summed " + std::to_string(total) + ", expected " +
                           std::to_string(4.0 * double(n)));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(partial);
  cudaFree(buf);
  if (!status.ok()) return status;
  out.read_bytes_per_s = rates.empty() ? 0.0 : *std::max_element(rates.begin(), rates.end());
  return out;
}

}  // namespace mamba2
