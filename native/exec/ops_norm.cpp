// Softmax / LogSoftmax over one axis, LayerNormalization and inference BatchNormalization.
// LayerNorm's mean and variance are accumulated in double (here and in the vector kernels) so
// results track onnxruntime to ~1e-7 relative on long rows; the vector softmax sums its
// exponentials in float lanes of n/W terms each (all positive, so no cancellation).
#include "exec/ops_common.h"  // first: it sets the optimisation options for the whole file

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/variants.h"

namespace packptq {
namespace {

using namespace opsx;

// ---------------------------------------------------------------------------------------------
// Softmax / LogSoftmax: the input is viewed as [outer, n, inner] around the axis.

class SoftmaxOp : public Op {
 public:
  SoftmaxOp(int64_t outer, int64_t n, int64_t inner, bool log, const KernelTable* t)
      : outer_(outer), n_(n), inner_(inner), log_(log), t_(t) {}

  void run(const OpRun& r) override {
    const float* x = r.in[0];
    float* y = r.out[0];
    const int64_t total = outer_ * n_ * inner_;
    if (total == 0) return;
    if (inner_ == 1) {
      parallel_for(outer_, threads_for_transcendental(total, r.threads), [&](int64_t b, int64_t e) {
        if (t_ && t_->softmax_rows) {  // the ISA's vector exp (kernels/conv_act_impl.h)
          t_->softmax_rows(x + b * n_, y + b * n_, e - b, n_, log_);
          return;
        }
        for (int64_t o = b; o < e; ++o) row(x + o * n_, y + o * n_);
      });
      return;
    }
    // Strided case: vectors of `inner` lanes, split into column blocks so that a single outer row
    // still spreads over threads.
    constexpr int64_t kBlock = 512;
    const int64_t nblk = (inner_ + kBlock - 1) / kBlock;
    parallel_for(outer_ * nblk, threads_for(total, r.threads), [&](int64_t b, int64_t e) {
      std::vector<float> mx(kBlock);
      std::vector<double> sum(kBlock);
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / nblk, j0 = (t % nblk) * kBlock, w = std::min(kBlock, inner_ - j0);
        cols(x + o * n_ * inner_ + j0, y + o * n_ * inner_ + j0, w, mx.data(), sum.data());
      }
    });
  }

 private:
  void row(const float* __restrict x, float* __restrict y) const {
    const float m = max_f32(x, n_);
    double s = 0;
    if (log_) {
      for (int64_t i = 0; i < n_; ++i) y[i] = exp_fast(x[i] - m);
      s = sum_f64(y, n_);
      // (x − max) − log Σ: subtracting max first keeps x − max exact when x is near it; folding
      // max + log Σ into one float would round away the small result's digits.
      const float ls = static_cast<float>(std::log(s));
      for (int64_t i = 0; i < n_; ++i) y[i] = (x[i] - m) - ls;
    } else {
      for (int64_t i = 0; i < n_; ++i) y[i] = exp_fast(x[i] - m);
      s = sum_f64(y, n_);
      const float inv = static_cast<float>(1.0 / s);
      for (int64_t i = 0; i < n_; ++i) y[i] *= inv;
    }
  }

  void cols(const float* __restrict x, float* __restrict y, int64_t w, float* __restrict mx,
            double* __restrict sum) const {
    const int64_t st = inner_;
    for (int64_t j = 0; j < w; ++j) mx[j] = -std::numeric_limits<float>::infinity(), sum[j] = 0;
    for (int64_t k = 0; k < n_; ++k)
      for (int64_t j = 0; j < w; ++j) mx[j] = std::max(mx[j], x[k * st + j]);
    for (int64_t k = 0; k < n_; ++k)
      for (int64_t j = 0; j < w; ++j) {
        const float e = exp_fast(x[k * st + j] - mx[j]);
        y[k * st + j] = e;  // LogSoftmax overwrites it below
        sum[j] += e;
      }
    if (log_) {
      for (int64_t j = 0; j < w; ++j) sum[j] = static_cast<float>(std::log(sum[j]));
      for (int64_t k = 0; k < n_; ++k)
        for (int64_t j = 0; j < w; ++j) y[k * st + j] = (x[k * st + j] - mx[j]) - static_cast<float>(sum[j]);
    } else {
      for (int64_t j = 0; j < w; ++j) mx[j] = static_cast<float>(1.0 / sum[j]);
      for (int64_t k = 0; k < n_; ++k)
        for (int64_t j = 0; j < w; ++j) y[k * st + j] *= mx[j];
    }
  }

  int64_t outer_, n_, inner_;
  bool log_;
  const KernelTable* t_;
};

std::unique_ptr<Op> make_softmax_impl(const OpInit& op, bool log) {
  expect_io(op, 1, 1, 1, 1);
  const Shape& s = op.in_shapes[0];
  if (op.out_shapes[0] != s) op.fail_shape("output shape " + shape_str(op.out_shapes[0]) + " differs from input " + shape_str(s));
  const int64_t axis = int_attr(op, "axis");
  if (axis < 0 || axis >= static_cast<int64_t>(s.size()))
    op.fail_shape("axis " + str(axis) + " out of range for input " + shape_str(s));
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= s[d];
  for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
  return std::make_unique<SoftmaxOp>(outer, s[axis], inner, log, kernel_table(variant_of(op.isa)));
}
std::unique_ptr<Op> make_softmax(const OpInit& op) { return make_softmax_impl(op, false); }
std::unique_ptr<Op> make_log_softmax(const OpInit& op) { return make_softmax_impl(op, true); }

// ---------------------------------------------------------------------------------------------
// LayerNormalization: rows of n = Π dims[axis..] elements; scale/bias cover the row (or are scalars).
// Optional outputs Mean and InvStdDev (one value per row) are written when present.

class LayerNormOp : public Op {
 public:
  LayerNormOp(int64_t rows, int64_t n, bool scale_scalar, bool has_bias, bool bias_scalar, float eps, size_t nout,
              const KernelTable* t)
      : rows_(rows), n_(n), scale_scalar_(scale_scalar), has_bias_(has_bias), bias_scalar_(bias_scalar), eps_(eps),
        nout_(nout), t_(t) {}

  void run(const OpRun& r) override {
    const float* x = r.in[0];
    const float* scale = r.in[1];
    const float* bias = has_bias_ ? r.in[2] : nullptr;
    float* y = r.out[0];
    float* mean_out = nout_ > 1 ? r.out[1] : nullptr;
    float* istd_out = nout_ > 2 ? r.out[2] : nullptr;
    // About a nanosecond per element (double-precision sums, three passes): a ViT's 50 x 96 at
    // batch 1 is worth a second thread, as the transcendental ops are.
    parallel_for(rows_, threads_for_transcendental(rows_ * n_, r.threads), [&](int64_t b, int64_t e) {
      if (t_ && t_->layer_norm_rows) {  // the ISA's vector form, same sums in double
        t_->layer_norm_rows(x + b * n_, y + b * n_, e - b, n_, scale, scale_scalar_, bias, bias_scalar_, eps_,
                            mean_out ? mean_out + b : nullptr, istd_out ? istd_out + b : nullptr);
        return;
      }
      for (int64_t o = b; o < e; ++o) {
        const float* __restrict xr = x + o * n_;
        float* __restrict yr = y + o * n_;
        const double mean = n_ ? sum_f64(xr, n_) / n_ : 0.0;
        double v0 = 0, v1 = 0;
        int64_t i = 0;
        for (; i + 2 <= n_; i += 2) {
          const double d0 = xr[i] - mean, d1 = xr[i + 1] - mean;
          v0 += d0 * d0;
          v1 += d1 * d1;
        }
        for (; i < n_; ++i) {
          const double d = xr[i] - mean;
          v0 += d * d;
        }
        const double var = n_ ? (v0 + v1) / n_ : 0.0;
        const double istd = 1.0 / std::sqrt(var + eps_);
        if (mean_out) mean_out[o] = static_cast<float>(mean);
        if (istd_out) istd_out[o] = static_cast<float>(istd);
        const float m = static_cast<float>(mean), is = static_cast<float>(istd);
        if (!scale_scalar_ && has_bias_ && !bias_scalar_) {
          const float* __restrict sc = scale;
          const float* __restrict bi = bias;
          for (int64_t k = 0; k < n_; ++k) yr[k] = (xr[k] - m) * is * sc[k] + bi[k];
        } else {
          for (int64_t k = 0; k < n_; ++k) {
            const float s = scale[scale_scalar_ ? 0 : k];
            const float bb = has_bias_ ? bias[bias_scalar_ ? 0 : k] : 0.f;
            yr[k] = (xr[k] - m) * is * s + bb;
          }
        }
      }
    });
  }

 private:
  int64_t rows_, n_;
  bool scale_scalar_, has_bias_, bias_scalar_;
  float eps_;
  size_t nout_;
  const KernelTable* t_;
};

// Whether `p` (scale or bias) covers the normalised dims exactly or is a single value. It must
// broadcast to the normalised dims; other broadcasts inside the row are not produced by the TS side.
void covers_row(const OpInit& op, const Shape& p, const Shape& x, int64_t axis, const char* what, bool* scalar) {
  const Shape tail(x.begin() + axis, x.end());
  Shape pp = p;
  while (!pp.empty() && pp.front() == 1 && pp.size() > tail.size()) pp.erase(pp.begin());
  bool fits = pp.size() <= tail.size();
  for (size_t i = 0; fits && i < pp.size(); ++i) {
    const int64_t t = tail[tail.size() - pp.size() + i];
    fits = pp[i] == 1 || pp[i] == t;
  }
  if (!fits) op.fail_shape(std::string(what) + " shape " + shape_str(p) + " does not broadcast to the normalised dims " + shape_str(tail));
  *scalar = numel(p) == 1;
  if (!*scalar && numel(p) != numel(tail))
    op.fail_unsupported(std::string(what) + " shape " + shape_str(p) + " must equal the normalised dims " +
                        shape_str(tail) + " or be a single value");
}

std::unique_ptr<Op> make_layer_norm(const OpInit& op) {
  expect_io(op, 2, 3, 1, 3);
  const Shape& x = op.in_shapes[0];
  if (op.out_shapes[0] != x) op.fail_shape("output shape " + shape_str(op.out_shapes[0]) + " differs from input " + shape_str(x));
  const int64_t axis = int_attr(op, "axis");
  if (axis < 0 || axis >= static_cast<int64_t>(x.size()))
    op.fail_shape("axis " + str(axis) + " out of range for input " + shape_str(x));
  int64_t rows = 1, n = 1;
  for (int64_t d = 0; d < axis; ++d) rows *= x[d];
  for (size_t d = axis; d < x.size(); ++d) n *= x[d];
  bool scale_scalar = false, bias_scalar = false;
  covers_row(op, op.in_shapes[1], x, axis, "scale", &scale_scalar);
  const bool has_bias = present(op, 2);
  if (has_bias) covers_row(op, op.in_shapes[2], x, axis, "bias", &bias_scalar);
  for (size_t k = 1; k < op.out_shapes.size(); ++k)
    if (numel(op.out_shapes[k]) != rows)
      op.fail_shape("statistics output " + str(k) + " shape " + shape_str(op.out_shapes[k]) + " must hold " + str(rows) + " values");
  const float eps = static_cast<float>(op.attrs.f("epsilon", 1e-5));
  return std::make_unique<LayerNormOp>(rows, n, scale_scalar, has_bias, bias_scalar, eps, op.out_shapes.size(),
                                       kernel_table(variant_of(op.isa)));
}

// ---------------------------------------------------------------------------------------------
// BatchNormalization (inference): y = (x − mean)/√(var+ε)·scale + B, folded per channel to y = a·x + b.

class BatchNormOp : public Op {
 public:
  BatchNormOp(int64_t n, int64_t c, int64_t inner, float eps) : n_(n), c_(c), inner_(inner), eps_(eps) {}

  void run(const OpRun& r) override {
    const float* x = r.in[0];
    float* y = r.out[0];
    // Folded from the inputs on every run (C values) so updated parameters are always honoured.
    std::vector<float> a(c_), b(c_);
    for (int64_t c = 0; c < c_; ++c) {
      const double s = r.in[1][c] / std::sqrt(static_cast<double>(r.in[4][c]) + eps_);
      a[c] = static_cast<float>(s);
      b[c] = static_cast<float>(r.in[2][c] - r.in[3][c] * s);
    }
    const int64_t planes = n_ * c_;
    parallel_for(planes, threads_for(planes * inner_, r.threads), [&](int64_t pb, int64_t pe) {
      for (int64_t p = pb; p < pe; ++p) {
        const float av = a[p % c_], bv = b[p % c_];
        const float* __restrict xp = x + p * inner_;
        float* __restrict yp = y + p * inner_;
        for (int64_t i = 0; i < inner_; ++i) yp[i] = xp[i] * av + bv;
      }
    });
  }

 private:
  int64_t n_, c_, inner_;
  float eps_;
};

std::unique_ptr<Op> make_batch_norm(const OpInit& op) {
  expect_io(op, 5, 5, 1, 1);
  const Shape& x = op.in_shapes[0];
  if (x.size() < 2) op.fail_shape("input " + shape_str(x) + " must have rank >= 2 (N, C, ...)");
  if (op.out_shapes[0] != x) op.fail_shape("output shape " + shape_str(op.out_shapes[0]) + " differs from input " + shape_str(x));
  const int64_t c = x[1];
  static const char* names[] = {"", "scale", "B", "mean", "var"};
  for (int k = 1; k <= 4; ++k)
    if (numel(op.in_shapes[k]) != c || op.in_shapes[k].size() != 1)
      op.fail_shape(std::string(names[k]) + " shape " + shape_str(op.in_shapes[k]) + " must be [" + str(c) + "]");
  int64_t inner = 1;
  for (size_t d = 2; d < x.size(); ++d) inner *= x[d];
  return std::make_unique<BatchNormOp>(x[0], c, inner, static_cast<float>(op.attrs.f("epsilon", 1e-5)));
}

PACKPTQ_REGISTER_OP("Softmax", make_softmax);
PACKPTQ_REGISTER_OP("LogSoftmax", make_log_softmax);
PACKPTQ_REGISTER_OP("LayerNormalization", make_layer_norm);
PACKPTQ_REGISTER_OP("BatchNormalization", make_batch_norm);

}  // namespace
}  // namespace packptq
