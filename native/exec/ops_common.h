// Helpers shared by the non-GEMM ops (ops_eltwise/norm/pool/reduce/shape.cpp): argument checks that
// name the node, numpy broadcasting collapsed to as few dims as possible, a strided-copy engine, and
// accurate sums. Internal to native/exec; nothing outside the ops files includes it.
#pragma once
// Float compares may not be if-converted into vector selects under the default -ftrapping-math, so
// loops with clamps or ReLU-like selects would stay scalar. packptq never relies on floating-point
// exceptions. This header is the first include of every ops_*.cpp, so every function in those files
// (and any inline code they instantiate) is compiled with the same options and inlines freely.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <cmath>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "exec/op.h"

namespace packptq {
namespace opsx {

// Below this many elements an op runs on the calling thread: a team costs more than it saves.
constexpr int64_t kParallelMin = 32768;
inline int threads_for(int64_t work, int threads) { return work > kParallelMin ? threads : 1; }
// For ops that spend an exp or erf per element (Softmax, GELU): a few thousand elements already
// take several microseconds, worth a helper woken from its spin (a ViT's batch-1 attention softmax
// and MLP GELU had run on one thread while the other waited).
inline int threads_for_transcendental(int64_t elements, int threads) { return threads_for(elements * 8, threads); }

inline std::string str(int64_t v) { return std::to_string(v); }
inline std::string ints_str(const std::vector<int64_t>& v) { return shape_str(v); }

// Exactly `nin_min..nin_max` inputs (the first `nin_min` present) and `nout` outputs.
inline void expect_io(const OpInit& op, size_t nin_min, size_t nin_max, size_t nout_min, size_t nout_max) {
  const size_t ni = op.in_shapes.size(), no = op.out_shapes.size();
  if (ni < nin_min || ni > nin_max)
    op.fail_shape("expects " + (nin_min == nin_max ? str(nin_min) : str(nin_min) + ".." + str(nin_max)) +
                  " inputs, got " + str(ni));
  if (no < nout_min || no > nout_max)
    op.fail_shape("expects " + (nout_min == nout_max ? str(nout_min) : str(nout_min) + ".." + str(nout_max)) +
                  " outputs, got " + str(no));
  for (size_t i = 0; i < nin_min; ++i)
    if (i < op.present.size() && !op.present[i]) op.fail_shape("input " + str(i) + " is required but missing");
  for (const auto& s : op.in_shapes)
    for (int64_t d : s)
      if (d < 0) op.fail_shape("negative dimension in input shape " + shape_str(s));
  for (const auto& s : op.out_shapes)
    for (int64_t d : s)
      if (d < 0) op.fail_shape("negative dimension in output shape " + shape_str(s));
}

inline bool present(const OpInit& op, size_t i) {
  return i < op.in_shapes.size() && (i >= op.present.size() || op.present[i]);
}

// Reads an int list attribute, failing with the node's name if it is missing or of the wrong length.
inline std::vector<int64_t> ints_attr(const OpInit& op, const std::string& k, size_t len,
                                      const std::vector<int64_t>* dflt = nullptr) {
  if (!op.attrs.nums.count(k)) {
    if (dflt) return *dflt;
    op.fail_unsupported("missing attribute " + k);
  }
  auto v = op.attrs.ints(k);
  if (len != size_t(-1) && v.size() != len)
    op.fail_unsupported("attribute " + k + " must have " + str(len) + " entries, got " + str(v.size()));
  return v;
}

inline int64_t int_attr(const OpInit& op, const std::string& k) {
  if (!op.attrs.nums.count(k) || op.attrs.nums.at(k).empty()) op.fail_unsupported("missing attribute " + k);
  return op.attrs.i(k);
}

// Numpy broadcasting of K inputs to an output shape, with adjacent dims merged whenever every input
// either broadcasts along both or along neither. Strides are in elements; a broadcast dim has stride 0.
struct Broadcast {
  std::vector<int64_t> dims;                  // collapsed output dims (at least one)
  std::vector<std::vector<int64_t>> strides;  // [input][dim]
  int64_t total = 0;
};

// `exact`: the output must be the broadcast of the inputs (binary ops, Where); otherwise the
// inputs must merely broadcast to it (Expand).
inline Broadcast make_broadcast(const OpInit& op, const std::vector<Shape>& ins, const Shape& out, bool exact) {
  const size_t R = out.size(), K = ins.size();
  for (size_t k = 0; k < K; ++k)
    if (ins[k].size() > R)
      op.fail_shape("input " + shape_str(ins[k]) + " has higher rank than output " + shape_str(out));
  if (exact) {
    size_t maxr = 0;
    for (auto& s : ins) maxr = std::max(maxr, s.size());
    if (maxr != R) op.fail_shape("output rank " + str(R) + " is not the broadcast rank " + str(maxr));
  }
  auto aligned = [&](size_t k, size_t d) -> int64_t {
    const size_t off = R - ins[k].size();
    return d < off ? 1 : ins[k][d - off];
  };
  for (size_t d = 0; d < R; ++d) {
    bool some_full = false;
    for (size_t k = 0; k < K; ++k) {
      const int64_t a = aligned(k, d);
      if (a != 1 && a != out[d]) {
        std::string all;
        for (auto& s : ins) all += shape_str(s) + " ";
        op.fail_shape("inputs " + all + "do not broadcast to output " + shape_str(out));
      }
      if (a == out[d]) some_full = true;
    }
    if (exact && !some_full) op.fail_shape("output dim " + str(d) + " of " + shape_str(out) + " is not the broadcast of the inputs");
  }
  Broadcast b;
  b.total = numel(out);
  std::vector<std::vector<char>> flags;  // per collapsed dim, per input: broadcast?
  for (size_t d = 0; d < R; ++d) {
    if (out[d] == 1) continue;
    std::vector<char> f(K);
    for (size_t k = 0; k < K; ++k) f[k] = aligned(k, d) == 1;
    if (!b.dims.empty() && flags.back() == f) {
      b.dims.back() *= out[d];
    } else {
      b.dims.push_back(out[d]);
      flags.push_back(f);
    }
  }
  if (b.dims.empty()) {
    b.dims.push_back(1);
    flags.push_back(std::vector<char>(K, 1));
  }
  const size_t D = b.dims.size();
  b.strides.assign(K, std::vector<int64_t>(D, 0));
  for (size_t k = 0; k < K; ++k) {
    int64_t st = 1;
    for (size_t d = D; d-- > 0;) {
      if (!flags[d][k]) {
        b.strides[k][d] = st;
        st *= b.dims[d];
      }
    }
  }
  return b;
}

// Calls fn(const int64_t* in_offsets, int64_t out_offset, int64_t inner) for every row (all dims but
// the innermost) of a collapsed iteration space, split over threads by rows.
template <typename Fn>
void for_each_row(const std::vector<int64_t>& dims, const std::vector<std::vector<int64_t>>& strides, int threads,
                  Fn&& fn) {
  int64_t total = 1;
  for (int64_t d : dims) total *= d;
  if (total == 0) return;
  const int nd = static_cast<int>(dims.size());
  const int K = static_cast<int>(strides.size());
  const int64_t inner = dims[nd - 1];
  const int64_t rows = total / inner;
  parallel_for(rows, threads_for(total, threads), [&](int64_t r0, int64_t r1) {
    std::vector<int64_t> idx(nd, 0), off(K, 0);
    int64_t r = r0;
    for (int d = nd - 2; d >= 0; --d) {
      idx[d] = r % dims[d];
      r /= dims[d];
    }
    for (int k = 0; k < K; ++k)
      for (int d = 0; d < nd - 1; ++d) off[k] += idx[d] * strides[k][d];
    for (int64_t row = r0; row < r1; ++row) {
      fn(off.data(), row * inner, inner);
      for (int d = nd - 2; d >= 0; --d) {
        ++idx[d];
        for (int k = 0; k < K; ++k) off[k] += strides[k][d];
        if (idx[d] < dims[d]) break;
        for (int k = 0; k < K; ++k) off[k] -= strides[k][d] * dims[d];
        idx[d] = 0;
      }
    }
  });
}

// A copy whose output is contiguous and whose input is addressed as base + Σ idx[d]·stride[d]
// (strides may be 0 or negative). Used by Transpose, Slice and Expand.
struct StridedCopy {
  std::vector<int64_t> dims, strides;
  int64_t base = 0;

  // Merges adjacent dims whose input addressing is contiguous across them.
  void collapse() {
    std::vector<int64_t> d2, s2;
    for (size_t d = 0; d < dims.size(); ++d) {
      if (dims[d] == 1) continue;
      if (!d2.empty() && s2.back() == strides[d] * dims[d]) {
        d2.back() *= dims[d];
        s2.back() = strides[d];
      } else {
        d2.push_back(dims[d]);
        s2.push_back(strides[d]);
      }
    }
    if (d2.empty()) d2.push_back(1), s2.push_back(1);
    dims = d2;
    strides = s2;
  }

  void run(const float* in, float* out, int threads) const {
    const int64_t st = strides.back();
    const std::vector<std::vector<int64_t>> s{strides};
    for_each_row(dims, s, threads, [&](const int64_t* off, int64_t o, int64_t n) {
      const float* __restrict src = in + base + off[0];
      float* __restrict dst = out + o;
      if (st == 1 && n < 64) {
        // Short rows (a ViT's heads of 24 floats, 600 of them per attention Transpose): an inline
        // loop the compiler vectorises, where a memcpy call per row cost about as much as the copy.
        for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
      } else if (st == 1) {
        std::memcpy(dst, src, sizeof(float) * n);
      } else if (st == 0) {
        const float v = *src;
        for (int64_t i = 0; i < n; ++i) dst[i] = v;
      } else {
        for (int64_t i = 0; i < n; ++i) dst[i] = src[i * st];
      }
    });
  }
};

// Σ x[i] in double with four independent accumulators (ILP; float sums drift on long rows).
inline double sum_f64(const float* __restrict x, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += x[i];
    s1 += x[i + 1];
    s2 += x[i + 2];
    s3 += x[i + 3];
  }
  for (; i < n; ++i) s0 += x[i];
  return (s0 + s1) + (s2 + s3);
}

// e^x in float, written so the compiler vectorises it (std::exp is a scalar libm call): Cody-Waite
// range reduction and the Cephes degree-6 polynomial, within ~2 ulp of expf on [-87.3, 88.3].
// Inputs below that range give exactly 0 (so masked softmax entries stay 0); above it, e^88.3.
inline float exp_fast(float x) {
  float xc = x < -87.3f ? -87.3f : x;  // plain selects: std::min/max references defeat if-conversion
  xc = xc > 88.3f ? 88.3f : xc;
  float fn = xc * 1.44269504088896341f + 12582912.f;  // round to nearest via the 1.5·2^23 trick
  fn -= 12582912.f;
  float r = xc - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.f;
  const int32_t bits = (static_cast<int32_t>(fn) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < -87.3f ? 0.f : y * scale;
}

// max over x[0..n) with eight independent lanes (a plain running max does not vectorise).
inline float max_f32(const float* __restrict x, int64_t n) {
  float m[8];
  for (int j = 0; j < 8; ++j) m[j] = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) m[j] = std::max(m[j], x[i + j]);
  for (; i < n; ++i) m[0] = std::max(m[0], x[i]);
  float r = m[0];
  for (int j = 1; j < 8; ++j) r = std::max(r, m[j]);
  return r;
}

}  // namespace opsx
}  // namespace packptq
