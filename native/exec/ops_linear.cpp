// Conv, Gemm and MatMul: the ops that carry almost all of a network's arithmetic, thin layers over
// the GEMM and convolution kernels. Constant weights are prepared (re-laid-out) once at creation.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "core/parallel.h"
#include "exec/op.h"
#include "kernels/conv.h"
#include "kernels/gemm.h"
#include "kernels/variants.h"
#include "kernels/work_pool.h"

namespace packptq {
namespace {

// The optional fused activation of Conv / Gemm / MatMul (op.h): string activation "relu" | "clip",
// floats act_min act_max for "clip".
Activation read_activation(const OpInit& in) {
  const std::string a = in.attrs.s("activation", "");
  if (a.empty() || a == "none") return Activation::none();
  if (a == "relu") return Activation::range(0.f, std::numeric_limits<float>::infinity());
  if (a == "clip")
    return Activation::range(static_cast<float>(in.attrs.f("act_min", -std::numeric_limits<double>::infinity())),
                             static_cast<float>(in.attrs.f("act_max", std::numeric_limits<double>::infinity())));
  in.fail_unsupported("unknown fused activation \"" + a + "\"");
}

void apply_activation(const Activation& act, float* y, int64_t n) {
  if (!act.clamp) return;
  const float lo = act.lo, hi = act.hi;
  for (int64_t i = 0; i < n; ++i) {
    const float v = y[i] > lo ? y[i] : lo;
    y[i] = v < hi ? v : hi;
  }
}

class ConvOp : public Op {
 public:
  explicit ConvOp(const OpInit& in) : isa_(in.isa), act_(read_activation(in)) {
    const Shape& x = in.in_shapes[0];
    const Shape& w = in.in_shapes[1];
    if (x.size() != 4 || w.size() != 4) in.fail_shape("expects 4-D input and weight, got " + shape_str(x) + " and " + shape_str(w));
    auto k = in.attrs.ints("kernel"), st = in.attrs.ints("strides"), p = in.attrs.ints("pads"), d = in.attrs.ints("dilations");
    if (k.size() != 2 || st.size() != 2 || p.size() != 4 || d.size() != 2) in.fail_shape("malformed conv attributes");
    s_.N = x[0]; s_.C = x[1]; s_.H = x[2]; s_.W = x[3];
    s_.M = w[0]; s_.KH = w[2]; s_.KW = w[3];
    s_.stride_h = st[0]; s_.stride_w = st[1];
    s_.pad_top = p[0]; s_.pad_left = p[1]; s_.pad_bottom = p[2]; s_.pad_right = p[3];
    s_.dil_h = d[0]; s_.dil_w = d[1];
    s_.group = in.attrs.i("group", 1);
    // Internal attribute (tests): the GEMM conv's column form, see ConvShape::columns.
    const std::string cols = in.attrs.s("columns", "auto");
    s_.columns = conv_columns_code(cols.c_str());
    if (s_.columns < 0) in.fail_unsupported("columns must be \"auto\", \"padded\" or \"compact\", got \"" + cols + "\"");
    // Internal attribute (tests): the 3x3 algorithm, see ConvShape::algorithm.
    const std::string algo = in.attrs.s("algorithm", "auto");
    s_.algorithm = conv_algorithm_code(algo.c_str());
    if (s_.algorithm < 0) in.fail_unsupported("algorithm must be \"auto\", \"gemm\", \"lanes\" or \"rows\", got \"" + algo + "\"");
    if (s_.group < 1 || s_.C % s_.group || s_.M % s_.group || w[1] != s_.C / s_.group)
      in.fail_shape("input " + shape_str(x) + " and weight " + shape_str(w) + " do not fit group " + std::to_string(s_.group));
    if (s_.stride_h < 1 || s_.stride_w < 1 || s_.dil_h < 1 || s_.dil_w < 1) in.fail_shape("strides and dilations must be >= 1");
    if (k[0] != s_.KH || k[1] != s_.KW) in.fail_shape("kernel_shape does not match the weight " + shape_str(w));
    for (int64_t v : p)
      if (v < 0) in.fail_unsupported("negative pads are not supported");
    const Shape want{s_.N, s_.M, s_.OH(), s_.OW()};
    if (s_.OH() < 1 || s_.OW() < 1 || in.out_shapes[0] != want)
      in.fail_shape("output shape " + shape_str(in.out_shapes[0]) + " but the convolution gives " + shape_str(want));
    has_bias_ = in.present.size() > 2 && in.present[2];
    if (has_bias_ && numel(in.in_shapes[2]) != s_.M) in.fail_shape("bias must have " + std::to_string(s_.M) + " elements");
    has_sum_ = in.present.size() > 3 && in.present[3];
    if (has_sum_ && in.in_shapes[3] != want) in.fail_shape("sum " + shape_str(in.in_shapes[3]) + " must have the output's shape " + shape_str(want));
    const bool const_w = in.const_data[1] != nullptr && (!has_bias_ || in.const_data[2] != nullptr);
    if (const_w) prepared_ = prepare_conv(isa_, s_, in.const_data[1], has_bias_ ? in.const_data[2] : nullptr, act_);
  }
  void run(const OpRun& r) override {
    const float* sum = has_sum_ ? r.in[3] : nullptr;
    if (prepared_) prepared_->run(r.in[0], r.out[0], r.threads, sum);
    else {
      float* y = r.out[0];
      const int64_t n = (int64_t)s_.N * s_.M * s_.OH() * s_.OW();
      conv2d(isa_, s_, r.in[0], r.in[1], has_bias_ ? r.in[2] : nullptr, y, r.threads);
      if (sum)
        for (int64_t i = 0; i < n; ++i) y[i] += sum[i];
      apply_activation(act_, y, n);
    }
  }

 private:
  Isa isa_;
  Activation act_;
  ConvShape s_;
  bool has_bias_ = false, has_sum_ = false;
  std::unique_ptr<PreparedConv> prepared_;
};

// Y [rows, N] = op(X) · op(B) with constant weights B and a batch of rows (a classifier or a
// PointNet head at batch 32). The GEMM would pack all of op(B) on every call for only a few rows
// of X (vgg's 1152x256 layer took twice onnxruntime's time); instead op(B)ᵀ is packed once as the
// A operand of Yᵀ = op(B)ᵀ · op(X)ᵀ, and Yᵀ is transposed into Y. One or two rows keep the GEMV
// path (it reads B in place), and many rows amortise the packing anyway.
class PackedWeights {
 public:
  // False (and nothing kept) where this path does not apply: scalar ISA, rows outside (2, 256], or
  // a weight matrix too small for the per-call packing to matter.
  bool prepare(Isa isa, const float* B, bool transB, int64_t rows, int64_t N, int64_t K) {
    const KernelTable* t = kernel_table(variant_of(isa));
    if (t == nullptr || B == nullptr || rows <= 2 || rows > 256) return false;
    // Worth it only when packing op(B) (K·N floats per call) outweighs packing op(X) and
    // transposing Y (rows·(K+N)): a ViT's 96x288 layer on 50 tokens ran 10 % slower this way.
    if (K * N < 3 * rows * (K + N)) return false;
    t_ = t;
    rows_ = static_cast<int>(rows);
    N_ = static_cast<int>(N);
    K_ = static_cast<int>(K);
    wp_.resize(t->packed_a_floats(N_, K_));
    t->pack_a(!transB, N_, K_, B, transB ? K_ : N_, wp_.data());  // op(B)ᵀ: B itself when transB
    yt_.resize(static_cast<size_t>(rows) * N);
    return true;
  }
  bool active() const { return t_ != nullptr; }
  // X [rows, K] (ldx = K), or with transX Xᵀ stored [K, rows] (ldx = rows); Y [rows, N] dense.
  void run(const float* X, bool transX, int ldx, float* Y, int threads) {
    t_->sgemm_packed_a(N_, rows_, K_, wp_.data(), !transX, X, ldx, yt_.data(), rows_, false, threads);
    for (int m = 0; m < rows_; ++m)
      for (int n = 0; n < N_; ++n) Y[(int64_t)m * N_ + n] = yt_[(int64_t)n * rows_ + m];
  }

 private:
  const KernelTable* t_ = nullptr;
  int rows_ = 0, N_ = 0, K_ = 0;
  std::vector<float> wp_, yt_;  // packed op(B)ᵀ, and Yᵀ of one call
};

// Y = alpha · op(A) · op(B) + beta · C, C broadcast to [M, N].
class GemmOp : public Op {
 public:
  explicit GemmOp(const OpInit& in) : isa_(in.isa), act_(read_activation(in)) {
    const Shape& a = in.in_shapes[0];
    const Shape& b = in.in_shapes[1];
    if (a.size() != 2 || b.size() != 2) in.fail_shape("expects 2-D A and B, got " + shape_str(a) + " and " + shape_str(b));
    ta_ = in.attrs.i("transA", 0) != 0;
    tb_ = in.attrs.i("transB", 0) != 0;
    alpha_ = static_cast<float>(in.attrs.f("alpha", 1.0));
    beta_ = static_cast<float>(in.attrs.f("beta", 1.0));
    M_ = ta_ ? a[1] : a[0];
    K_ = ta_ ? a[0] : a[1];
    N_ = tb_ ? b[0] : b[1];
    const int64_t kb = tb_ ? b[1] : b[0];
    if (kb != K_) in.fail_shape("inner dimensions differ: A " + shape_str(a) + ", B " + shape_str(b));
    if (in.out_shapes[0] != Shape{M_, N_}) in.fail_shape("output shape " + shape_str(in.out_shapes[0]) + " should be [" + std::to_string(M_) + "," + std::to_string(N_) + "]");
    has_c_ = in.present.size() > 2 && in.present[2];
    if (has_c_) {
      c_shape_ = in.in_shapes[2];
      // Unidirectional broadcast of C to [M, N].
      Shape c = c_shape_;
      while (c.size() < 2) c.insert(c.begin(), 1);
      if (c.size() != 2 || (c[0] != 1 && c[0] != M_) || (c[1] != 1 && c[1] != N_))
        in.fail_shape("C " + shape_str(c_shape_) + " does not broadcast to [" + std::to_string(M_) + "," + std::to_string(N_) + "]");
      c_rows_ = c[0];
      c_cols_ = c[1];
    }
    packed_.prepare(isa_, in.const_data[1], tb_, M_, N_, K_);
  }
  void run(const OpRun& r) override {
    float* y = r.out[0];
    const int lda = ta_ ? M_ : K_, ldb = tb_ ? K_ : N_;
    if (packed_.active()) {
      packed_.run(r.in[0], ta_, lda, y, r.threads);
    } else {
      sgemm(isa_, ta_, tb_, M_, N_, K_, r.in[0], lda, r.in[1], ldb, y, N_, false, r.threads);
    }
    const int64_t total = M_ * N_;
    if (alpha_ != 1.f)
      for (int64_t i = 0; i < total; ++i) y[i] *= alpha_;
    // Bias and the fused activation in one pass over each row.
    if (has_c_ && beta_ != 0.f) {
      const float* c = r.in[2];
      for (int64_t m = 0; m < M_; ++m) {
        const float* crow = c + (c_rows_ == 1 ? 0 : m * c_cols_);
        float* yrow = y + m * N_;
        if (c_cols_ == 1)
          for (int64_t n = 0; n < N_; ++n) yrow[n] += beta_ * crow[0];
        else
          for (int64_t n = 0; n < N_; ++n) yrow[n] += beta_ * crow[n];
        apply_activation(act_, yrow, N_);
      }
    } else {
      apply_activation(act_, y, total);
    }
  }

 private:
  Isa isa_;
  Activation act_;
  bool ta_ = false, tb_ = false, has_c_ = false;
  float alpha_ = 1, beta_ = 1;
  int64_t M_ = 0, N_ = 0, K_ = 0, c_rows_ = 1, c_cols_ = 1;
  Shape c_shape_;
  PackedWeights packed_;  // active when op(B) is constant and M is a small batch of rows
};

// numpy matmul: 1-D operands are promoted ([K] → [1,K] for A, [K,1] for B), leading dims broadcast.
class MatMulOp : public Op {
 public:
  explicit MatMulOp(const OpInit& in) : isa_(in.isa), act_(read_activation(in)) {
    Shape a = in.in_shapes[0], b = in.in_shapes[1];
    if (a.empty() || b.empty()) in.fail_shape("MatMul operands must have rank >= 1");
    if (a.size() == 1) a.insert(a.begin(), 1);
    if (b.size() == 1) b.push_back(1);
    M_ = a[a.size() - 2];
    K_ = a.back();
    N_ = b.back();
    if (b[b.size() - 2] != K_) in.fail_shape("inner dimensions differ: " + shape_str(in.in_shapes[0]) + " x " + shape_str(in.in_shapes[1]));
    Shape ab(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
    const size_t r = std::max(ab.size(), bb.size());
    while (ab.size() < r) ab.insert(ab.begin(), 1);
    while (bb.size() < r) bb.insert(bb.begin(), 1);
    batch_ = 1;
    Shape out;
    for (size_t i = 0; i < r; ++i) {
      if (ab[i] != bb[i] && ab[i] != 1 && bb[i] != 1)
        in.fail_shape("batch dimensions do not broadcast: " + shape_str(in.in_shapes[0]) + " x " + shape_str(in.in_shapes[1]));
      out.push_back(std::max(ab[i], bb[i]));
      batch_ *= out.back();
    }
    if (numel(in.out_shapes[0]) != batch_ * M_ * N_) in.fail_shape("output shape " + shape_str(in.out_shapes[0]) + " does not match");
    // packptq's canonical linear layer carries its bias as an optional third input (one per column).
    has_bias_ = in.present.size() > 2 && in.present[2];
    if (has_bias_ && numel(in.in_shapes[2]) != N_) in.fail_shape("bias " + shape_str(in.in_shapes[2]) + " should have " + std::to_string(N_) + " elements");
    // Offsets of each output batch into A and B under broadcasting.
    a_off_.resize(batch_);
    b_off_.resize(batch_);
    std::vector<int64_t> idx(r, 0);
    for (int64_t t = 0; t < batch_; ++t) {
      int64_t ao = 0, bo = 0, as = 1, bs = 1;
      for (int i = static_cast<int>(r) - 1; i >= 0; --i) {
        if (ab[i] != 1) ao += idx[i] * as;
        if (bb[i] != 1) bo += idx[i] * bs;
        as *= ab[i];
        bs *= bb[i];
      }
      a_off_[t] = ao * M_ * K_;
      b_off_[t] = bo * K_ * N_;
      for (int i = static_cast<int>(r) - 1; i >= 0; --i) {
        if (++idx[i] < out[i]) break;
        idx[i] = 0;
      }
    }
    // A shared B with A's batches stored contiguously: one tall GEMM instead of many small ones
    // (every Linear layer on token sequences).
    fold_ = batch_ > 1;
    for (int64_t t = 0; t < batch_ && fold_; ++t) fold_ = b_off_[t] == 0 && a_off_[t] == t * M_ * K_;
    if (fold_ || batch_ == 1) packed_.prepare(isa_, in.const_data[1], false, (fold_ ? batch_ : 1) * M_, N_, K_);
  }
  void run(const OpRun& r) override {
    const float* A = r.in[0];
    const float* B = r.in[1];
    float* Y = r.out[0];
    if (packed_.active()) {
      packed_.run(A, false, static_cast<int>(K_), Y, r.threads);
      add_bias(r, Y);
      return;
    }
    if (fold_ || batch_ == 1) {
      sgemm(isa_, false, false, (fold_ ? batch_ : 1) * M_, N_, K_, A, K_, B, N_, Y, N_, false, r.threads);
      add_bias(r, Y);
      return;
    }
    // Many small products (attention heads): split the batches over threads, one thread each.
    // Through the work pool, not an OpenMP team: a team's join waits for a descheduled partner.
    run_items(static_cast<int>(batch_), r.threads, [&](int, int t) {
      sgemm(isa_, false, false, M_, N_, K_, A + a_off_[t], K_, B + b_off_[t], N_, Y + t * M_ * N_, N_, false, 1);
    });
    add_bias(r, Y);
  }

 private:
  Isa isa_;
  Activation act_;
  void add_bias(const OpRun& r, float* Y) const {
    const int64_t rows = batch_ * M_;
    if (!has_bias_) {
      apply_activation(act_, Y, rows * N_);
      return;
    }
    const float* b = r.in[2];
    for (int64_t i = 0; i < rows; ++i) {
      float* y = Y + i * N_;
      for (int64_t n = 0; n < N_; ++n) y[n] += b[n];
      apply_activation(act_, y, N_);
    }
  }

  int64_t M_ = 0, N_ = 0, K_ = 0, batch_ = 1;
  bool fold_ = false, has_bias_ = false;
  std::vector<int64_t> a_off_, b_off_;
  PackedWeights packed_;  // active when B is constant and the rows are a small batch
};

std::unique_ptr<Op> make_conv(const OpInit& in) { return std::make_unique<ConvOp>(in); }
std::unique_ptr<Op> make_gemm(const OpInit& in) { return std::make_unique<GemmOp>(in); }
std::unique_ptr<Op> make_matmul(const OpInit& in) { return std::make_unique<MatMulOp>(in); }

}  // namespace

PACKPTQ_REGISTER_OP("Conv", make_conv);
PACKPTQ_REGISTER_OP("Gemm", make_gemm);
PACKPTQ_REGISTER_OP("MatMul", make_matmul);

}  // namespace packptq
