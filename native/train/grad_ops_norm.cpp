// Softmax / LogSoftmax over one axis, LayerNormalization (gradients for x, scale, bias, and through
// the optional Mean / InvStdDev outputs) and inference-form BatchNormalization (gradients for every
// input, so its statistics could be trained too). Row sums are accumulated in double so the float
// path stays close to the double one on long rows.
#include "train/grad_util.h"  // first: it sets the optimisation options for the whole file

#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/variants.h"

namespace packptq {
namespace train {
namespace {

using namespace gx;

// The input viewed as [outer, n, inner] around the axis; one "line" is the n values at a fixed
// (outer, inner) position.
template <typename T>
class SoftmaxGrad : public GradOp<T> {
 public:
  SoftmaxGrad(int64_t outer, int64_t n, int64_t inner, bool log, const KernelTable* t)
      : outer_(outer), n_(n), inner_(inner), log_(log), t_(t) {}

  void forward(const GradArgs<T>& a) override {
    const T* X = a.in[0];
    T* Y = a.out[0];
    if constexpr (std::is_same<T, float>::value) {
      // Contiguous rows in float: the ISA's vector exp (kernels/conv_act_impl.h), as the inference
      // op runs them; libm's double exp here was a twentieth of a ViT unit's reconstruction step.
      if (t_ && inner_ == 1) {
        parallel_for(outer_, threads_for(8 * outer_ * n_, a.threads),
                     [&](int64_t b, int64_t e) { t_->softmax_rows(X + b * n_, Y + b * n_, e - b, n_, log_); });
        return;
      }
    }
    lines(a.threads, [&](int64_t base) {
      const T* x = X + base;
      T* y = Y + base;
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t k = 0; k < n_; ++k) m = std::max(m, x[k * inner_]);
      double s = 0;
      if (log_) {
        for (int64_t k = 0; k < n_; ++k) s += std::exp(static_cast<double>(x[k * inner_] - m));
        const T ls = static_cast<T>(std::log(s));
        for (int64_t k = 0; k < n_; ++k) y[k * inner_] = (x[k * inner_] - m) - ls;
      } else {
        // One exp per element: kept in y, then scaled (attention rows make this a hot loop).
        for (int64_t k = 0; k < n_; ++k) {
          const double e = std::exp(static_cast<double>(x[k * inner_] - m));
          s += e;
          y[k * inner_] = static_cast<T>(e);
        }
        const double inv = 1.0 / s;
        for (int64_t k = 0; k < n_; ++k) y[k * inner_] = static_cast<T>(y[k * inner_] * inv);
      }
    });
  }

  // Softmax: gx = y ⊙ (gy − Σ gy·y).  LogSoftmax: gx = gy − softmax ⊙ Σ gy.
  void backward(const GradArgs<T>& a) override {
    T* GX = a.gin[0];
    if (!GX) return;
    const T* Y = a.out[0];
    const T* GY = a.gout[0];
    lines(a.threads, [&](int64_t base) {
      const T* y = Y + base;
      const T* gy = GY + base;
      T* g = GX + base;
      double s = 0;
      if (log_) {
        for (int64_t k = 0; k < n_; ++k) s += gy[k * inner_];
        const T st = static_cast<T>(s);
        for (int64_t k = 0; k < n_; ++k) g[k * inner_] += gy[k * inner_] - std::exp(y[k * inner_]) * st;
      } else {
        for (int64_t k = 0; k < n_; ++k) s += static_cast<double>(gy[k * inner_]) * y[k * inner_];
        const T st = static_cast<T>(s);
        for (int64_t k = 0; k < n_; ++k) g[k * inner_] += y[k * inner_] * (gy[k * inner_] - st);
      }
    });
  }

 private:
  template <typename Fn>
  void lines(int threads, Fn&& fn) const {
    const int64_t count = outer_ * inner_;
    parallel_for(count, threads_for(count * n_, threads), [&](int64_t b, int64_t e) {
      for (int64_t l = b; l < e; ++l) fn((l / inner_) * n_ * inner_ + l % inner_);
    });
  }
  int64_t outer_, n_, inner_;
  bool log_;
  const KernelTable* t_;  // float with a SIMD ISA, else nullptr
};

template <typename T>
std::unique_ptr<GradOp<T>> make_softmax_impl(const GradInit& op, bool log) {
  expect_io(op, 1, 1, 1, 1);
  const Shape& s = op.in_shapes[0];
  if (op.out_shapes[0] != s) op.fail_shape("output shape " + shape_str(op.out_shapes[0]) + " differs from input " + shape_str(s));
  const int64_t axis = int_attr(op, "axis");
  if (axis < 0 || axis >= static_cast<int64_t>(s.size())) op.fail_shape("axis " + str(axis) + " out of range for input " + shape_str(s));
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= s[d];
  for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
  const KernelTable* t = std::is_same<T, float>::value ? kernel_table(variant_of(op.isa)) : nullptr;
  return std::make_unique<SoftmaxGrad<T>>(outer, s[axis], inner, log, t);
}
template <typename T> std::unique_ptr<GradOp<T>> make_softmax(const GradInit& op) { return make_softmax_impl<T>(op, false); }
template <typename T> std::unique_ptr<GradOp<T>> make_log_softmax(const GradInit& op) { return make_softmax_impl<T>(op, true); }

// ---------------------------------------------------------------------------------------------
// LayerNormalization over rows of n = Π dims[axis..]; scale / bias cover the row or are scalars.
// With x̂ = (x − μ)·σ⁻¹ and ĝ = gy ⊙ scale, the row gradient is σ⁻¹(ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂)).

template <typename T>
class LayerNormGrad : public GradOp<T> {
 public:
  LayerNormGrad(int64_t rows, int64_t n, bool scale_scalar, bool has_bias, bool bias_scalar, double eps, size_t nout)
      : rows_(rows), n_(n), scale_scalar_(scale_scalar), has_bias_(has_bias), bias_scalar_(bias_scalar), eps_(eps),
        nout_(nout), mean_(rows), istd_(rows) {}

  void forward(const GradArgs<T>& a) override {
    const T* X = a.in[0];
    const T* scale = a.in[1];
    const T* bias = has_bias_ ? a.in[2] : nullptr;
    T* Y = a.out[0];
    parallel_for(rows_, threads_for(rows_ * n_, a.threads), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* x = X + r * n_;
        T* y = Y + r * n_;
        double s = 0;
        for (int64_t k = 0; k < n_; ++k) s += x[k];
        const double mean = n_ ? s / n_ : 0.0;
        double v = 0;
        for (int64_t k = 0; k < n_; ++k) v += (x[k] - mean) * (x[k] - mean);
        const double istd = 1.0 / std::sqrt((n_ ? v / n_ : 0.0) + eps_);
        mean_[r] = static_cast<T>(mean);
        istd_[r] = static_cast<T>(istd);
        const T m = mean_[r], is = istd_[r];
        for (int64_t k = 0; k < n_; ++k)
          y[k] = (x[k] - m) * is * scale[scale_scalar_ ? 0 : k] + (bias ? bias[bias_scalar_ ? 0 : k] : T(0));
        if (nout_ > 1 && a.out[1]) a.out[1][r] = m;
        if (nout_ > 2 && a.out[2]) a.out[2][r] = is;
      }
    });
  }

  void backward(const GradArgs<T>& a) override {
    const T* X = a.in[0];
    const T* scale = a.in[1];
    const T* GY = a.gout[0];
    T* GX = a.gin[0];
    T* gscale = a.gin[1];
    T* gbias = has_bias_ ? a.gin[2] : nullptr;
    const T* gmean = nout_ > 1 ? a.gout[1] : nullptr;
    const T* gistd = nout_ > 2 ? a.gout[2] : nullptr;
    const int64_t ps = scale_scalar_ ? 1 : n_, pb = bias_scalar_ ? 1 : n_;
    const int t = threads_for(rows_ * n_, a.threads);
    partial_.resize(t);
    for (auto& p : partial_) p.assign(static_cast<size_t>(ps + pb), T(0));
    const int used = parallel_chunks(rows_, t, [&](int tid, int64_t b, int64_t e) {
      T* ps_acc = partial_[tid].data();
      T* pb_acc = ps_acc + ps;
      for (int64_t r = b; r < e; ++r) {
        const T* x = X + r * n_;
        const T* gy = GY + r * n_;
        const T m = mean_[r], is = istd_[r];
        if (gscale || gbias)
          for (int64_t k = 0; k < n_; ++k) {
            ps_acc[scale_scalar_ ? 0 : k] += gy[k] * (x[k] - m) * is;
            pb_acc[bias_scalar_ ? 0 : k] += gy[k];
          }
        if (!GX) continue;
        double s1 = 0, s2 = 0;  // Σ ĝ, Σ ĝ·x̂
        for (int64_t k = 0; k < n_; ++k) {
          const double gh = static_cast<double>(gy[k]) * scale[scale_scalar_ ? 0 : k];
          s1 += gh;
          s2 += gh * (x[k] - m) * is;
        }
        const T m1 = static_cast<T>(s1 / n_), m2 = static_cast<T>(s2 / n_);
        // Through the statistics outputs: ∂μ/∂x = 1/n, ∂σ⁻¹/∂x = −σ⁻³(x − μ)/n.
        const T gm = gmean ? gmean[r] / T(n_) : T(0);
        const T gi = gistd ? -gistd[r] * is * is * is / T(n_) : T(0);
        T* g = GX + r * n_;
        for (int64_t k = 0; k < n_; ++k) {
          const T xh = (x[k] - m) * is;
          g[k] += is * (gy[k] * scale[scale_scalar_ ? 0 : k] - m1 - xh * m2) + gm + gi * (x[k] - m);
        }
      }
    });
    for (int u = 0; u < used; ++u) {
      const T* p = partial_[u].data();
      if (gscale)
        for (int64_t k = 0; k < ps; ++k) gscale[k] += p[k];
      if (gbias)
        for (int64_t k = 0; k < pb; ++k) gbias[k] += p[ps + k];
    }
  }

 private:
  int64_t rows_, n_;
  bool scale_scalar_, has_bias_, bias_scalar_;
  double eps_;
  size_t nout_;
  std::vector<T> mean_, istd_;
  std::vector<std::vector<T>> partial_;
};

// scale / bias must equal the normalised dims (up to leading 1s) or be a single value.
bool row_param_scalar(const GradInit& op, const Shape& p, const Shape& x, int64_t axis, const char* what) {
  const Shape tail(x.begin() + axis, x.end());
  if (numel(p) == 1) return true;
  Shape pp = p;
  while (!pp.empty() && pp.front() == 1 && pp.size() > tail.size()) pp.erase(pp.begin());
  bool fits = pp.size() <= tail.size() && numel(pp) == numel(tail);
  for (size_t i = 0; fits && i < pp.size(); ++i) fits = pp[i] == tail[tail.size() - pp.size() + i];
  if (!fits)
    op.fail_shape(std::string(what) + " shape " + shape_str(p) + " must equal the normalised dims " + shape_str(tail) +
                  " or be a single value");
  return false;
}

template <typename T>
std::unique_ptr<GradOp<T>> make_layer_norm(const GradInit& op) {
  expect_io(op, 2, 3, 1, 3);
  const Shape& x = op.in_shapes[0];
  if (op.out_shapes[0] != x) op.fail_shape("output shape " + shape_str(op.out_shapes[0]) + " differs from input " + shape_str(x));
  const int64_t axis = int_attr(op, "axis");
  if (axis < 0 || axis >= static_cast<int64_t>(x.size())) op.fail_shape("axis " + str(axis) + " out of range for input " + shape_str(x));
  int64_t rows = 1, n = 1;
  for (int64_t d = 0; d < axis; ++d) rows *= x[d];
  for (size_t d = axis; d < x.size(); ++d) n *= x[d];
  if (n == 0) op.fail_shape("input " + shape_str(x) + " has empty rows to normalise");
  const bool scale_scalar = row_param_scalar(op, op.in_shapes[1], x, axis, "scale");
  const bool has_bias = op.has_input(2);
  const bool bias_scalar = has_bias && row_param_scalar(op, op.in_shapes[2], x, axis, "bias");
  for (size_t k = 1; k < op.out_shapes.size(); ++k)
    if (numel(op.out_shapes[k]) != rows)
      op.fail_shape("statistics output " + str(k) + " shape " + shape_str(op.out_shapes[k]) + " must hold " + str(rows) + " values");
  return std::make_unique<LayerNormGrad<T>>(rows, n, scale_scalar, has_bias, bias_scalar, op.attrs.f("epsilon", 1e-5),
                                            op.out_shapes.size());
}

// ---------------------------------------------------------------------------------------------
// BatchNormalization, inference form: y = (x − mean)·s + B with s = scale/√(var + ε) per channel.

template <typename T>
class BatchNormGrad : public GradOp<T> {
 public:
  BatchNormGrad(int64_t n, int64_t c, int64_t inner, double eps) : n_(n), c_(c), inner_(inner), eps_(eps) {}

  void forward(const GradArgs<T>& a) override {
    const T *X = a.in[0], *scale = a.in[1], *B = a.in[2], *mean = a.in[3], *var = a.in[4];
    T* Y = a.out[0];
    parallel_for(n_ * c_, threads_for(n_ * c_ * inner_, a.threads), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        const int64_t c = p % c_;
        const T s = static_cast<T>(scale[c] / std::sqrt(static_cast<double>(var[c]) + eps_));
        const T* x = X + p * inner_;
        T* y = Y + p * inner_;
        for (int64_t i = 0; i < inner_; ++i) y[i] = (x[i] - mean[c]) * s + B[c];
      }
    });
  }

  void backward(const GradArgs<T>& a) override {
    const T *X = a.in[0], *scale = a.in[1], *mean = a.in[3], *var = a.in[4];
    const T* GY = a.gout[0];
    T *gx_ = a.gin[0], *gscale = a.gin[1], *gB = a.gin[2], *gmean = a.gin[3], *gvar = a.gin[4];
    // Per-channel sums in double (Σ gy, Σ gy·(x − mean)); serial over channels' planes is cheap.
    std::vector<double> sg(c_, 0.0), sgx(c_, 0.0);
    for (int64_t p = 0; p < n_ * c_; ++p) {
      const int64_t c = p % c_;
      const T* x = X + p * inner_;
      const T* gy = GY + p * inner_;
      double a0 = 0, a1 = 0;
      for (int64_t i = 0; i < inner_; ++i) {
        a0 += gy[i];
        a1 += static_cast<double>(gy[i]) * (x[i] - mean[c]);
      }
      sg[c] += a0;
      sgx[c] += a1;
    }
    for (int64_t c = 0; c < c_; ++c) {
      const double istd = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps_);
      if (gscale) gscale[c] += static_cast<T>(sgx[c] * istd);
      if (gB) gB[c] += static_cast<T>(sg[c]);
      if (gmean) gmean[c] += static_cast<T>(-sg[c] * scale[c] * istd);
      if (gvar) gvar[c] += static_cast<T>(-0.5 * sgx[c] * scale[c] * istd * istd * istd);
    }
    if (!gx_) return;
    parallel_for(n_ * c_, threads_for(n_ * c_ * inner_, a.threads), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        const int64_t c = p % c_;
        const T s = static_cast<T>(scale[c] / std::sqrt(static_cast<double>(var[c]) + eps_));
        const T* gy = GY + p * inner_;
        T* g = gx_ + p * inner_;
        for (int64_t i = 0; i < inner_; ++i) g[i] += gy[i] * s;
      }
    });
  }

 private:
  int64_t n_, c_, inner_;
  double eps_;
};

template <typename T>
std::unique_ptr<GradOp<T>> make_batch_norm(const GradInit& op) {
  expect_io(op, 5, 5, 1, 1);
  const Shape& x = op.in_shapes[0];
  if (x.size() < 2) op.fail_shape("input " + shape_str(x) + " must have rank >= 2 (N, C, ...)");
  if (op.out_shapes[0] != x) op.fail_shape("output shape " + shape_str(op.out_shapes[0]) + " differs from input " + shape_str(x));
  static const char* names[] = {"", "scale", "B", "mean", "var"};
  for (int k = 1; k <= 4; ++k)
    if (op.in_shapes[k].size() != 1 || op.in_shapes[k][0] != x[1])
      op.fail_shape(std::string(names[k]) + " shape " + shape_str(op.in_shapes[k]) + " must be [" + str(x[1]) + "]");
  int64_t inner = 1;
  for (size_t d = 2; d < x.size(); ++d) inner *= x[d];
  return std::make_unique<BatchNormGrad<T>>(x[0], x[1], inner, op.attrs.f("epsilon", 1e-5));
}

}  // namespace

PACKPTQ_REGISTER_GRAD_OP("Softmax", make_softmax);
PACKPTQ_REGISTER_GRAD_OP("LogSoftmax", make_log_softmax);
PACKPTQ_REGISTER_GRAD_OP("LayerNormalization", make_layer_norm);
PACKPTQ_REGISTER_GRAD_OP("BatchNormalization", make_batch_norm);

}  // namespace train
}  // namespace packptq
