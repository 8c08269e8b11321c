// Random inputs of the mixer's sequence ops (conv and scan), laid out as the model lays them
// out: xBC and dt are column slices of in_proj's output, x/B/C are column slices of the conv
// output; a pool of state slots of which only some are used, in a scrambled order.
#pragma once

#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "backend/backend_test_util.h"

namespace mamba2::testing {

struct MixerShape {
  int64_t n_heads, head_dim, d_state, n_groups, d_conv = 4;

  MixerDims dims() const {
    MixerDims d;
    d.n_heads = n_heads;
    d.head_dim = head_dim;
    d.d_state = d_state;
    d.n_groups = n_groups;
    d.d_conv = d_conv;
    d.d_inner = n_heads * head_dim;
    d.d_model = d.d_inner / 2;
    return d;
  }
  std::string str() const {
    // Appends only: GCC 12 warns spuriously (-Wrestrict) on "literal" + std::string temporaries.
    std::string s;
    for (auto [tag, v] : {std::pair<const char*, int64_t>{"h", n_heads}, {"p", head_dim}, {"n", d_state},
                          {"g", n_groups}, {"w", d_conv}}) {
      if (tag[0] == 'w' && v == 4) continue;
      s += tag;
      s += std::to_string(v);
    }
    return s;
  }
};

constexpr int64_t kNumSlots = 6;

inline std::vector<int32_t> SlotsFor(int64_t n_seqs) {
  if (n_seqs == 1) return {4};
  if (n_seqs == 3) return {2, 0, 5};
  std::vector<int32_t> s;
  for (int64_t i = 0; i < n_seqs; ++i) s.push_back(int32_t((i * 5 + 1) % kNumSlots));
  return s;
}

struct MixerData {
  MixerDims dims;
  int64_t n_seqs = 0, seq_len = 0;
  std::vector<int32_t> slots;
  HostMat zxbcdt;    // [rows, 2*d_inner + 2*g*n + h + pad]; xBC from column d_inner, dt after it
  HostMat conv_out;  // [rows, conv_dim]; x, B, C
  std::vector<float> conv_w, conv_b, dt_bias, A_log, D;
  std::vector<float> conv_state;  // [kNumSlots, conv_dim, d_conv]
  std::vector<float> ssm_state;   // [kNumSlots, n_heads, head_dim, d_state]

  int64_t rows() const { return n_seqs * seq_len; }
  int64_t xbc_col() const { return dims.d_inner; }
  int64_t dt_col() const { return dims.d_inner + dims.conv_dim(); }

  // The same sequences restricted to positions [t0, t1) (states and weights unchanged).
  MixerData Positions(int64_t t0, int64_t t1) const {
    MixerData d = *this;
    d.seq_len = t1 - t0;
    auto gather = [&](const HostMat& m) {
      HostMat out = m;
      out.rows = n_seqs * d.seq_len;
      out.buf.assign(size_t(out.rows * m.ld), kSentinel);
      for (int64_t s = 0; s < n_seqs; ++s)
        for (int64_t t = t0; t < t1; ++t)
          std::copy(m.buf.begin() + (s * seq_len + t) * m.ld, m.buf.begin() + (s * seq_len + t + 1) * m.ld,
                    out.buf.begin() + (s * d.seq_len + t - t0) * m.ld);
      return out;
    };
    d.zxbcdt = gather(zxbcdt);
    d.conv_out = gather(conv_out);
    return d;
  }
};

// strong_decay: dt_raw ~ U(4, 6), so dt ~ 5 and exp(dt*A) <= e^-4: the state forgets within a
// few tokens and cumulative log-decays reach -1e4 within a chunk.
inline MixerData MakeMixerData(const MixerShape& shape, int64_t n_seqs, int64_t seq_len, uint64_t seed,
                               bool strong_decay = false) {
  Rng rng(seed);
  MixerData d;
  d.dims = shape.dims();
  d.n_seqs = n_seqs;
  d.seq_len = seq_len;
  d.slots = SlotsFor(n_seqs);
  const MixerDims& m = d.dims;
  const int64_t rows = d.rows(), width = 2 * m.d_inner + 2 * m.n_groups * m.d_state + m.n_heads;
  d.zxbcdt = MakeHostMat(rows, width, 0, 3);
  rng.Fill(d.zxbcdt, -2.0f, 2.0f);
  if (strong_decay)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t hh = 0; hh < m.n_heads; ++hh) d.zxbcdt.at(r, d.dt_col() + hh) = rng.Uniform(4.0f, 6.0f);
  d.conv_out = MakeHostMat(rows, m.conv_dim(), 0, 0);
  rng.Fill(d.conv_out, -1.0f, 1.0f);
  d.conv_w = rng.UniformVec(size_t(m.conv_dim() * m.d_conv), -0.5f, 0.5f);
  d.conv_b = rng.UniformVec(size_t(m.conv_dim()), -0.5f, 0.5f);
  d.dt_bias = RealisticDtBias(rng, m.n_heads);
  d.A_log = RealisticALog(rng, m.n_heads);
  d.D = rng.UniformVec(size_t(m.n_heads), 0.5f, 1.5f);
  d.conv_state = rng.UniformVec(size_t(kNumSlots * m.conv_state_size()), -1.0f, 1.0f);
  d.ssm_state = rng.UniformVec(size_t(kNumSlots * m.ssm_state_size()), -1.0f, 1.0f);
  return d;
}

// The mixer data in one backend's memory; in_proj's output, the conv output and y as
// `intermediates` (F32, or BF16 with the values rounded).
struct MixerOnDevice {
  DeviceArena mem;
  Mat zxbcdt, conv_out, y;
  Mat xbc;  // the conv's input: a column slice of zxbcdt
  HostMat y_host;  // shape of y, for Download
  float* conv_state;
  float* ssm_state;
  int32_t* slots;
  ScanInputs scan;
  TensorView conv_w, conv_b;

  MixerOnDevice(Backend& b, const MixerData& d, DType intermediates = DType::F32) : mem(b) {
    const int64_t conv_dim = d.dims.conv_dim();
    const MixerDims& m = d.dims;
    zxbcdt = mem.Upload(d.zxbcdt, intermediates);
    conv_out = mem.Upload(d.conv_out, intermediates);
    y_host = MakeHostMat(d.rows(), m.d_inner, 2, 3);
    y = mem.Upload(y_host, intermediates);
    xbc = zxbcdt.Cols(d.xbc_col(), conv_dim);
    conv_state = mem.Upload(d.conv_state);
    ssm_state = mem.Upload(d.ssm_state);
    slots = mem.Upload(d.slots);
    auto vec = [&](const std::vector<float>& v) {
      return b.PrepareWeight(TensorView{const_cast<float*>(v.data()), DType::F32, Shape{int64_t(v.size())}},
                             WeightKind::kVector);
    };
    conv_w = b.PrepareWeight(TensorView{const_cast<float*>(d.conv_w.data()), DType::F32, Shape{m.conv_dim(), m.d_conv}},
                             WeightKind::kVector);
    conv_b = vec(d.conv_b);
    const int64_t gn = m.n_groups * m.d_state;
    scan.x = conv_out.Cols(0, m.d_inner);
    scan.B = conv_out.Cols(m.d_inner, gn);
    scan.C = conv_out.Cols(m.d_inner + gn, gn);
    scan.dt = zxbcdt.Cols(d.dt_col(), m.n_heads);
    scan.dt_bias = vec(d.dt_bias);
    scan.A_log = vec(d.A_log);
    scan.D = vec(d.D);
    scan.dt_min = 0.0f;
    scan.dt_max = std::numeric_limits<float>::infinity();
  }
};

struct ConvResult {
  std::vector<float> out, conv_state;
  HostMat out_mat;
};

// prefill: ConvPrefill over the whole data; otherwise ConvStep (seq_len must be 1).
inline ConvResult RunConv(Backend& b, const MixerData& d, bool prefill, bool bias, bool in_place,
                          DType intermediates = DType::F32) {
  MixerOnDevice dev(b, d, intermediates);
  const TensorView conv_b = bias ? dev.conv_b : TensorView{};
  const Mat out = in_place ? dev.xbc : dev.conv_out;
  if (prefill)
    b.ConvPrefill(dev.xbc, d.n_seqs, d.seq_len, dev.slots, d.dims, dev.conv_state, dev.conv_w, conv_b, out);
  else
    b.ConvStep(dev.xbc, dev.slots, d.dims, dev.conv_state, dev.conv_w, conv_b, out);
  ConvResult r;
  // In place, the output is the xBC slice of zxbcdt.
  r.out_mat = dev.mem.Download(in_place ? dev.zxbcdt : dev.conv_out, in_place ? d.zxbcdt : d.conv_out);
  if (in_place) {
    r.out_mat.col0 = d.xbc_col();
    r.out_mat.cols = d.dims.conv_dim();
  }
  r.out = r.out_mat.Values();
  r.conv_state = dev.mem.Download(dev.conv_state, d.conv_state.size());
  return r;
}

// A prefill scan case: n_seqs sequences of seq_len rows in chunks of `chunk`.
struct ScanCase {
  MixerShape shape;
  int64_t n_seqs, seq_len, chunk;
  bool strong_decay = false;
};

inline std::string ScanCaseName(const ScanCase& c) {
  return c.shape.str() + "_s" + std::to_string(c.n_seqs) + "_L" + std::to_string(c.seq_len) + "_Q" +
         std::to_string(c.chunk) + (c.strong_decay ? "_strong" : "");
}

struct ScanResult {
  HostMat y;
  std::vector<float> ssm_state;
};

// prefill: SsdPrefill with chunk over all rows; otherwise SsmStep (seq_len must be 1).
inline ScanResult RunScan(Backend& b, const MixerData& d, bool prefill, int64_t chunk,
                          DType intermediates = DType::F32) {
  MixerOnDevice dev(b, d, intermediates);
  if (prefill)
    b.SsdPrefill(dev.scan, d.n_seqs, d.seq_len, dev.slots, d.dims, chunk, dev.ssm_state, dev.y);
  else
    b.SsmStep(dev.scan, dev.slots, d.dims, dev.ssm_state, dev.y);
  return {dev.mem.Download(dev.y, dev.y_host), dev.mem.Download(dev.ssm_state, d.ssm_state.size())};
}

// Decode's in_proj product on a random mixer: x [n_seqs, K] (16-byte aligned rows, so the CUDA
// GEMV applies) times w [N, K] into the mixer's zxbcdt (N its width), whose conv columns feed the
// conv step.
struct StepProduct {
  MixerData d;
  HostMat x;
  StoredTensor w;
  int64_t K = 0;
};
inline StepProduct RandomStepProduct(const MixerShape& shape, int64_t n_seqs, int64_t K, float x_range,
                                     uint64_t seed) {
  StepProduct t;
  t.d = MakeMixerData(shape, n_seqs, 1, seed);
  t.K = K;
  const int64_t N = t.d.zxbcdt.cols;
  Rng rng(uint64_t(N + n_seqs));
  t.x = MakeHostMat(n_seqs, K, 4, 4);
  rng.Fill(t.x, -x_range, x_range);
  t.w = Store(rng.UniformVec(size_t(N * K), -0.2f, 0.2f), DType::F32, Shape{N, K});
  return t;
}

// What a decode step's in_proj product and conv step leave behind: in_proj's output, the conv
// output and the conv states; and the check that two ways of running them agree bit for bit.
using StepResult = std::tuple<std::vector<float>, std::vector<float>, std::vector<float>>;
inline StepResult DownloadStep(MixerOnDevice& dev, const MixerData& d) {
  return {dev.mem.Download(dev.zxbcdt, d.zxbcdt).buf, dev.mem.Download(dev.conv_out, d.conv_out).buf,
          dev.mem.Download(dev.conv_state, d.conv_state.size())};
}
inline void ExpectSameStep(const StepResult& got, const StepResult& want, const std::string& what) {
  EXPECT_EQ(std::get<0>(got), std::get<0>(want)) << what << ": in_proj output";
  EXPECT_EQ(std::get<1>(got), std::get<1>(want)) << what << ": conv output";
  EXPECT_EQ(std::get<2>(got), std::get<2>(want)) << what << ": conv state";
}

}  // namespace mamba2::testing
