// Helpers shared by the differentiable ops (grad_ops_*.cpp): argument checks that name the node,
// thread chunking with per-thread ids (for per-thread gradient partials), a GEMM over T (the fast
// float kernels for float, a plain loop for double), and numpy broadcasting with the reduction of
// gradients back onto broadcast inputs. Internal to native/train.
#pragma once
// Float compares are not if-converted into vector selects under the default -ftrapping-math, so
// Relu-like derivatives (x > 0 ? g : 0) would stay scalar. packptq never relies on floating-point
// exceptions. This header is the first include of every grad_ops_*.cpp, so the whole file (and
// the templates it instantiates) is compiled with the option, as native/exec/ops_common.h does.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "kernels/gemm.h"
#include "train/grad_op.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace packptq {
namespace train {
namespace gx {

// Below this many elements an elementwise loop stays on the calling thread. Higher than the
// inference executor's threshold on purpose: these loops are memory-bound and ~5 % of a training
// step (convs/GEMMs are the rest), while each OpenMP team start/join costs a scheduling round trip
// that, measured on a shared 2-core machine under load, made 2 threads slower than 1.
constexpr int64_t kParallelMin = int64_t(1) << 20;
inline int threads_for(int64_t work, int threads) { return work > kParallelMin ? threads : 1; }
inline std::string str(int64_t v) { return std::to_string(v); }

inline void expect_io(const GradInit& op, size_t nin_min, size_t nin_max, size_t nout_min, size_t nout_max) {
  const size_t ni = op.in_shapes.size(), no = op.out_shapes.size();
  if (ni < nin_min || ni > nin_max)
    op.fail_shape("expects " + (nin_min == nin_max ? str(nin_min) : str(nin_min) + ".." + str(nin_max)) +
                  " inputs, got " + str(ni));
  if (no < nout_min || no > nout_max)
    op.fail_shape("expects " + (nout_min == nout_max ? str(nout_min) : str(nout_min) + ".." + str(nout_max)) +
                  " outputs, got " + str(no));
  for (size_t i = 0; i < nin_min; ++i)
    if (!op.has_input(i)) op.fail_shape("input " + str(i) + " is required but missing");
  for (const auto& s : op.in_shapes)
    for (int64_t d : s)
      if (d < 0) op.fail_shape("negative dimension in input shape " + shape_str(s));
  for (const auto& s : op.out_shapes)
    for (int64_t d : s)
      if (d < 0) op.fail_shape("negative dimension in output shape " + shape_str(s));
}

inline int64_t int_attr(const GradInit& op, const std::string& k) {
  auto it = op.attrs.nums.find(k);
  if (it == op.attrs.nums.end() || it->second.empty()) op.fail_unsupported("missing attribute " + k);
  return static_cast<int64_t>(it->second[0]);
}

inline std::vector<int64_t> ints_attr(const GradInit& op, const std::string& k, size_t len,
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

// fn(tid, begin, end) over [0, n) in at most `threads` contiguous chunks; tid < threads indexes
// per-thread scratch. Returns the number of chunks used (for reducing per-thread partials).
template <typename Fn>
int parallel_chunks(int64_t n, int threads, Fn&& fn) {
  if (n <= 0) return 0;
  const int t = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, n)));
  if (t == 1) {
    fn(0, int64_t(0), n);
    return 1;
  }
  const int64_t chunk = (n + t - 1) / t;
#pragma omp parallel num_threads(t)
  {
#ifdef _OPENMP
    const int id = omp_get_thread_num();
#else
    const int id = 0;
#endif
    const int64_t b = id * chunk, e = std::min(n, b + chunk);
    if (b < e) fn(id, b, e);
  }
  return t;
}

// C[M,N] (+)= op(A) · op(B), row-major, the contract of kernels/gemm.h.
inline void gemm(Isa isa, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float* C, int64_t ldc, bool acc, int threads) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!acc)
      for (int64_t m = 0; m < M; ++m) std::memset(C + m * ldc, 0, sizeof(float) * N);
    return;
  }
  sgemm(isa, ta, tb, int(M), int(N), int(K), A, int(lda), B, int(ldb), C, int(ldc), acc, threads);
}

// Double precision exists for gradient checks, so a straightforward loop (rows over threads, the
// inner loop along contiguous rows of B and C when B is not transposed) is enough.
inline void gemm(Isa, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda,
                 const double* B, int64_t ldb, double* C, int64_t ldc, bool acc, int threads) {
  if (M == 0 || N == 0) return;
  parallel_for(M, threads_for(M * N * K, threads), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      double* c = C + m * ldc;
      if (!acc) std::fill(c, c + N, 0.0);
      for (int64_t k = 0; k < K; ++k) {
        const double a = ta ? A[k * lda + m] : A[m * lda + k];
        if (a == 0.0) continue;
        if (!tb) {
          const double* b = B + k * ldb;
          for (int64_t n = 0; n < N; ++n) c[n] += a * b[n];
        } else {
          for (int64_t n = 0; n < N; ++n) c[n] += a * B[n * ldb + k];
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// numpy broadcasting of K inputs to an output shape, collapsed to as few dims as possible (adjacent
// dims merge when every input broadcasts along both or neither). Strides in elements, 0 = broadcast.
struct Bcast {
  std::vector<int64_t> dims;
  std::vector<std::vector<int64_t>> strides;  // [input][dim]
  std::vector<bool> full;                     // input k covers the whole output (identity offsets)
  int64_t total = 0;
};

inline Bcast make_bcast(const GradInit& op, const std::vector<Shape>& ins, const Shape& out, bool exact) {
  const size_t R = out.size(), K = ins.size();
  size_t maxr = 0;
  for (auto& s : ins) {
    if (s.size() > R) op.fail_shape("input " + shape_str(s) + " has higher rank than output " + shape_str(out));
    maxr = std::max(maxr, s.size());
  }
  if (exact && maxr != R) op.fail_shape("output rank " + str(R) + " is not the broadcast rank " + str(maxr));
  auto aligned = [&](size_t k, size_t d) -> int64_t {
    const size_t off = R - ins[k].size();
    return d < off ? 1 : ins[k][d - off];
  };
  Bcast b;
  b.total = numel(out);
  std::vector<std::vector<char>> flags;
  for (size_t d = 0; d < R; ++d) {
    bool some_full = false;
    for (size_t k = 0; k < K; ++k) {
      const int64_t a = aligned(k, d);
      if (a != 1 && a != out[d]) {
        std::string all;
        for (auto& s : ins) all += shape_str(s) + " ";
        op.fail_shape("inputs " + all + "do not broadcast to output " + shape_str(out));
      }
      some_full = some_full || a == out[d];
    }
    if (exact && !some_full) op.fail_shape("output dim " + str(d) + " of " + shape_str(out) + " is not the broadcast of the inputs");
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
  b.full.assign(K, true);
  for (size_t k = 0; k < K; ++k) {
    int64_t st = 1;
    for (size_t d = D; d-- > 0;) {
      if (!flags[d][k]) {
        b.strides[k][d] = st;
        st *= b.dims[d];
      } else if (b.dims[d] != 1) {
        b.full[k] = false;
      }
    }
  }
  return b;
}

// fn(offsets, out_offset, n) for every row (all collapsed dims but the innermost) in [r0, r1); the
// innermost stride of input k is b.strides[k].back() (0 or 1).
template <typename Fn>
void bcast_rows(const Bcast& b, int64_t r0, int64_t r1, Fn&& fn) {
  const int nd = static_cast<int>(b.dims.size());
  const int K = static_cast<int>(b.strides.size());
  const int64_t inner = b.dims[nd - 1];
  std::vector<int64_t> idx(nd, 0), off(K, 0);
  int64_t r = r0;
  for (int d = nd - 2; d >= 0; --d) {
    idx[d] = r % b.dims[d];
    r /= b.dims[d];
  }
  for (int k = 0; k < K; ++k)
    for (int d = 0; d < nd - 1; ++d) off[k] += idx[d] * b.strides[k][d];
  for (int64_t row = r0; row < r1; ++row) {
    fn(off.data(), row * inner, inner);
    for (int d = nd - 2; d >= 0; --d) {
      ++idx[d];
      for (int k = 0; k < K; ++k) off[k] += b.strides[k][d];
      if (idx[d] < b.dims[d]) break;
      for (int k = 0; k < K; ++k) off[k] -= b.strides[k][d] * b.dims[d];
      idx[d] = 0;
    }
  }
}

inline int64_t bcast_row_count(const Bcast& b) { return b.total ? b.total / b.dims.back() : 0; }

// Rows over threads: safe whenever every row writes only its own output elements.
template <typename Fn>
void bcast_rows_parallel(const Bcast& b, int threads, Fn&& fn) {
  const int64_t rows = bcast_row_count(b);
  parallel_for(rows, threads_for(b.total, threads), [&](int64_t r0, int64_t r1) { bcast_rows(b, r0, r1, fn); });
}

// g_in[off_k(i)] += t(i) for every output element i, where t(i) is given per row by
// term(offsets, out_offset, j). A full input is updated in parallel; a broadcast one serially,
// because several output elements land on the same input element.
template <typename T, typename Term>
void accumulate_into(const Bcast& b, size_t k, T* g, int threads, Term&& term, bool assign = false) {
  const int64_t sk = b.strides[k].back();
  // assign (the Tape's gin_fresh): only for a full-shape input, whose elements get one term each.
  if (assign && !(b.full[k] && sk == 1)) fail(ErrorCode::Native, "accumulate_into: assign needs a full-shape input");
  auto row = [&](const int64_t* off, int64_t o, int64_t n) {
    T* __restrict gr = g + off[k];
    if (assign)
      for (int64_t j = 0; j < n; ++j) gr[j] = term(off, o, j);
    else if (sk == 1)
      for (int64_t j = 0; j < n; ++j) gr[j] += term(off, o, j);
    else {
      T s = 0;
      for (int64_t j = 0; j < n; ++j) s += term(off, o, j);
      gr[0] += s;
    }
  };
  if (b.full[k]) bcast_rows_parallel(b, threads, row);
  else bcast_rows(b, 0, bcast_row_count(b), row);
}

inline std::vector<int64_t> contiguous_strides(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t d = s.size(); d-- > 1;) st[d - 1] = st[d] * s[d];
  return st;
}

}  // namespace gx
}  // namespace train
}  // namespace packptq
