// Elementwise ops and their derivatives: unary activations, the five broadcasting binary ops, and
// Where. A unary functor gives f(x) and f'(x) given x and y = f(x) (several derivatives are cheapest
// from y). Binary gradients onto a broadcast input sum over the broadcast dims (grad_util.h).
// At kinks (Relu at 0, Clip at its bounds, HardSigmoid at its corners) the derivative taken is the
// one of the branch the forward pass chose; finite differences disagree there by nature.
#include "train/grad_util.h"  // first: it sets the optimisation options for the whole file

#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/variants.h"

namespace packptq {
namespace train {
namespace {

using namespace gx;

constexpr double kSqrt2 = 1.4142135623730950488;
constexpr double kTwoOverSqrtPi = 1.1283791670955125739;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kGeluC = 0.79788456080286535588;  // √(2/π)

struct Relu {
  template <typename T> T f(T x) const { return x > T(0) ? x : T(0); }
  template <typename T> T d(T x, T) const { return x > T(0) ? T(1) : T(0); }
};
struct Sigmoid {
  template <typename T> T f(T x) const { return T(1) / (T(1) + std::exp(-x)); }
  template <typename T> T d(T, T y) const { return y * (T(1) - y); }
};
struct Tanh {
  template <typename T> T f(T x) const { return std::tanh(x); }
  template <typename T> T d(T, T y) const { return T(1) - y * y; }
};
struct Erf {
  template <typename T> T f(T x) const { return std::erf(x); }
  template <typename T> T d(T x, T) const { return T(kTwoOverSqrtPi) * std::exp(-x * x); }
};
struct Sqrt {
  template <typename T> T f(T x) const { return std::sqrt(x); }
  template <typename T> T d(T, T y) const { return T(0.5) / y; }
};
struct Abs {
  template <typename T> T f(T x) const { return std::fabs(x); }
  template <typename T> T d(T x, T) const { return x > T(0) ? T(1) : x < T(0) ? T(-1) : T(0); }
};
struct Neg {
  template <typename T> T f(T x) const { return -x; }
  template <typename T> T d(T, T) const { return T(-1); }
};
struct Exp {
  template <typename T> T f(T x) const { return std::exp(x); }
  template <typename T> T d(T, T y) const { return y; }
};
struct Log {
  template <typename T> T f(T x) const { return std::log(x); }
  template <typename T> T d(T x, T) const { return T(1) / x; }
};
struct Reciprocal {
  template <typename T> T f(T x) const { return T(1) / x; }
  template <typename T> T d(T, T y) const { return -y * y; }
};
struct Identity {
  template <typename T> T f(T x) const { return x; }
  template <typename T> T d(T, T) const { return T(1); }
};
// numpy.clip semantics (min > max gives max everywhere): the gradient passes where neither bound won.
struct Clip {
  double lo, hi;
  template <typename T> T f(T x) const { return std::min(std::max(x, T(lo)), T(hi)); }
  template <typename T> T d(T x, T) const { return x > T(lo) && x < T(hi) ? T(1) : T(0); }
};
struct LeakyRelu {
  double alpha;
  template <typename T> T f(T x) const { return x >= T(0) ? x : T(alpha) * x; }
  template <typename T> T d(T x, T) const { return x >= T(0) ? T(1) : T(alpha); }
};
struct HardSigmoid {
  double alpha, beta;
  template <typename T> T f(T x) const { return std::max(T(0), std::min(T(1), T(alpha) * x + T(beta))); }
  template <typename T> T d(T x, T) const {
    const T u = T(alpha) * x + T(beta);
    return u > T(0) && u < T(1) ? T(alpha) : T(0);
  }
};
// x · hardsigmoid(x) with alpha 1/6, beta 1/2 (ONNX HardSwish).
struct HardSwish {
  template <typename T> T f(T x) const { return x * std::max(T(0), std::min(T(1), x / T(6) + T(0.5))); }
  template <typename T> T d(T x, T) const { return x <= T(-3) ? T(0) : x >= T(3) ? T(1) : x / T(3) + T(0.5); }
};
struct GeluErf {
  template <typename T> T f(T x) const { return T(0.5) * x * (T(1) + std::erf(x / T(kSqrt2))); }
  template <typename T> T d(T x, T) const {
    return T(0.5) * (T(1) + std::erf(x / T(kSqrt2))) + x * T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
  }
};
struct GeluTanh {
  template <typename T> T f(T x) const { return T(0.5) * x * (T(1) + std::tanh(T(kGeluC) * (x + T(0.044715) * x * x * x))); }
  template <typename T> T d(T x, T) const {
    const T t = std::tanh(T(kGeluC) * (x + T(0.044715) * x * x * x));
    return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * T(kGeluC) * (T(1) + T(3 * 0.044715) * x * x);
  }
};

template <typename T, typename F>
class UnaryGrad : public GradOp<T> {
 public:
  UnaryGrad(int64_t n, F f) : n_(n), f_(f) {}
  void forward(const GradArgs<T>& a) override {
    const T* __restrict x = a.in[0];
    T* __restrict y = a.out[0];
    const F f = f_;
    parallel_for(n_, threads_for(n_, a.threads), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) y[i] = f.f(x[i]);
    });
  }
  void backward(const GradArgs<T>& a) override {
    T* __restrict gxp = a.gin[0];
    if (!gxp) return;
    const T* __restrict x = a.in[0];
    const T* __restrict y = a.out[0];
    const T* __restrict gy = a.gout[0];
    const F f = f_;
    const bool assign = a.fresh(0);
    parallel_for(n_, threads_for(n_, a.threads), [&](int64_t b, int64_t e) {
      if (assign)
        for (int64_t i = b; i < e; ++i) gxp[i] = gy[i] * f.d(x[i], y[i]);
      else
        for (int64_t i = b; i < e; ++i) gxp[i] += gy[i] * f.d(x[i], y[i]);
    });
  }
  bool assigns_input_grad(size_t k) const override { return k == 0; }

 private:
  int64_t n_;
  F f_;
};

int64_t check_unary(const GradInit& op) {
  expect_io(op, 1, 1, 1, 1);
  if (op.in_shapes[0] != op.out_shapes[0])
    op.fail_shape("output shape " + shape_str(op.out_shapes[0]) + " differs from input shape " + shape_str(op.in_shapes[0]));
  return numel(op.in_shapes[0]);
}

template <typename F>
struct UnaryMaker {
  template <typename T>
  static std::unique_ptr<GradOp<T>> make(const GradInit& op) { return std::make_unique<UnaryGrad<T, F>>(check_unary(op), F{}); }
};
template <typename T> std::unique_ptr<GradOp<T>> make_relu(const GradInit& op) { return UnaryMaker<Relu>::make<T>(op); }
template <typename T> std::unique_ptr<GradOp<T>> make_sigmoid(const GradInit& op) { return UnaryMaker<Sigmoid>::make<T>(op); }
template <typename T> std::unique_ptr<GradOp<T>> make_tanh(const GradInit& op) { return UnaryMaker<Tanh>::make<T>(op); }
template <typename T> std::unique_ptr<GradOp<T>> make_erf(const GradInit& op) { return UnaryMaker<Erf>::make<T>(op); }
template <typename T> std::unique_ptr<GradOp<T>> make_sqrt(const GradInit& op) { return UnaryMaker<Sqrt>::make<T>(op); }
template <typename T> std::unique_ptr<GradOp<T>> make_abs(const GradInit& op) { return UnaryMaker<Abs>::make<T>(op); }
template <typename T> std::unique_ptr<GradOp<T>> make_neg(const GradInit& op) { return UnaryMaker<Neg>::make<T>(op); }
template <typename T> std::unique_ptr<GradOp<T>> make_exp(const GradInit& op) { return UnaryMaker<Exp>::make<T>(op); }
template <typename T> std::unique_ptr<GradOp<T>> make_log(const GradInit& op) { return UnaryMaker<Log>::make<T>(op); }
template <typename T> std::unique_ptr<GradOp<T>> make_reciprocal(const GradInit& op) { return UnaryMaker<Reciprocal>::make<T>(op); }
template <typename T> std::unique_ptr<GradOp<T>> make_identity(const GradInit& op) { return UnaryMaker<Identity>::make<T>(op); }
template <typename T> std::unique_ptr<GradOp<T>> make_hard_swish(const GradInit& op) { return UnaryMaker<HardSwish>::make<T>(op); }

template <typename T>
std::unique_ptr<GradOp<T>> make_clip(const GradInit& op) {
  const int64_t n = check_unary(op);
  const double inf = std::numeric_limits<double>::infinity();
  return std::make_unique<UnaryGrad<T, Clip>>(n, Clip{op.attrs.f("min", -inf), op.attrs.f("max", inf)});
}
template <typename T>
std::unique_ptr<GradOp<T>> make_leaky_relu(const GradInit& op) {
  const int64_t n = check_unary(op);
  return std::make_unique<UnaryGrad<T, LeakyRelu>>(n, LeakyRelu{op.attrs.f("alpha", 0.01)});
}
template <typename T>
std::unique_ptr<GradOp<T>> make_hard_sigmoid(const GradInit& op) {
  const int64_t n = check_unary(op);
  return std::make_unique<UnaryGrad<T, HardSigmoid>>(n, HardSigmoid{op.attrs.f("alpha", 0.2), op.attrs.f("beta", 0.5)});
}
// Exact Gelu in float through the ISA's vector kernels (kernels/conv_act_impl.h): with libm's
// scalar erf and exp, Gelu and its derivative were a sixth of a ViT unit's reconstruction step.
// double (the gradient checks) keeps the functor above, which is the reference these are tested on.
class GeluVecGrad : public GradOp<float> {
 public:
  GeluVecGrad(int64_t n, const KernelTable* t) : n_(n), t_(t) {}
  void forward(const GradArgs<float>& a) override {
    const float* x = a.in[0];
    float* y = a.out[0];
    parallel_for(n_, threads_for(8 * n_, a.threads), [&](int64_t b, int64_t e) { t_->gelu_erf(x + b, y + b, e - b); });
  }
  void backward(const GradArgs<float>& a) override {
    float* gx = a.gin[0];
    if (!gx) return;
    const float* x = a.in[0];
    const float* gy = a.gout[0];
    const bool accumulate = !a.fresh(0);
    parallel_for(n_, threads_for(8 * n_, a.threads),
                 [&](int64_t b, int64_t e) { t_->gelu_erf_grad(x + b, gy + b, gx + b, e - b, accumulate); });
  }
  bool assigns_input_grad(size_t k) const override { return k == 0; }

 private:
  int64_t n_;
  const KernelTable* t_;
};

template <typename T>
std::unique_ptr<GradOp<T>> make_gelu(const GradInit& op) {
  const int64_t n = check_unary(op);
  const std::string a = op.attrs.s("approximate", "none");
  if constexpr (std::is_same<T, float>::value) {
    const KernelTable* t = kernel_table(variant_of(op.isa));
    if (a == "none" && t) return std::make_unique<GeluVecGrad>(n, t);
  }
  if (a == "none") return std::make_unique<UnaryGrad<T, GeluErf>>(n, GeluErf{});
  if (a == "tanh") return std::make_unique<UnaryGrad<T, GeluTanh>>(n, GeluTanh{});
  op.fail_unsupported("approximate must be \"none\" or \"tanh\", got \"" + a + "\"");
}

// ---------------------------------------------------------------------------------------------
// Binary: f(a, b), ∂f/∂a and ∂f/∂b given a, b and y.

struct Add {
  template <typename T> T f(T a, T b) const { return a + b; }
  template <typename T> T da(T, T, T) const { return T(1); }
  template <typename T> T db(T, T, T) const { return T(1); }
};
struct Sub {
  template <typename T> T f(T a, T b) const { return a - b; }
  template <typename T> T da(T, T, T) const { return T(1); }
  template <typename T> T db(T, T, T) const { return T(-1); }
};
struct Mul {
  template <typename T> T f(T a, T b) const { return a * b; }
  template <typename T> T da(T, T b, T) const { return b; }
  template <typename T> T db(T a, T, T) const { return a; }
};
struct Div {
  template <typename T> T f(T a, T b) const { return a / b; }
  template <typename T> T da(T, T b, T) const { return T(1) / b; }
  template <typename T> T db(T, T b, T y) const { return -y / b; }
};
// ∂/∂b = y·ln a exists only for a > 0; elsewhere (a negative base with an integer exponent, the
// usual case of an exponent that is a constant) the exponent gets no gradient.
struct Pow {
  template <typename T> T f(T a, T b) const { return std::pow(a, b); }
  template <typename T> T da(T a, T b, T) const { return b == T(0) ? T(0) : b * std::pow(a, b - T(1)); }
  template <typename T> T db(T a, T, T y) const { return a > T(0) ? y * std::log(a) : T(0); }
};

template <typename T, typename F>
class BinaryGrad : public GradOp<T> {
 public:
  explicit BinaryGrad(Bcast b) : b_(std::move(b)) {}
  void forward(const GradArgs<T>& a) override {
    const T* A = a.in[0];
    const T* B = a.in[1];
    T* Y = a.out[0];
    const int64_t sa = b_.strides[0].back(), sb = b_.strides[1].back();
    const F f{};
    bcast_rows_parallel(b_, a.threads, [&](const int64_t* off, int64_t o, int64_t n) {
      const T* __restrict ar = A + off[0];
      const T* __restrict br = B + off[1];
      T* __restrict y = Y + o;
      if (sa == 1 && sb == 1)
        for (int64_t j = 0; j < n; ++j) y[j] = f.f(ar[j], br[j]);
      else
        for (int64_t j = 0; j < n; ++j) y[j] = f.f(ar[j * sa], br[j * sb]);
    });
  }
  void backward(const GradArgs<T>& a) override {
    const T* A = a.in[0];
    const T* B = a.in[1];
    const T* Y = a.out[0];
    const T* G = a.gout[0];
    const int64_t sa = b_.strides[0].back(), sb = b_.strides[1].back();
    const F f{};
    if (a.gin[0])
      accumulate_into(b_, 0, a.gin[0], a.threads, [&](const int64_t* off, int64_t o, int64_t j) {
        return G[o + j] * f.da(A[off[0] + j * sa], B[off[1] + j * sb], Y[o + j]);
      }, a.fresh(0));
    if (a.gin[1])
      accumulate_into(b_, 1, a.gin[1], a.threads, [&](const int64_t* off, int64_t o, int64_t j) {
        return G[o + j] * f.db(A[off[0] + j * sa], B[off[1] + j * sb], Y[o + j]);
      }, a.fresh(1));
  }
  // A full-shape (not broadcast) input gets exactly one term per element: it can be assigned.
  bool assigns_input_grad(size_t k) const override { return k < 2 && b_.full[k] && !b_.strides[k].empty() && b_.strides[k].back() == 1; }

 private:
  Bcast b_;
};

template <typename F>
struct BinaryMaker {
  template <typename T>
  static std::unique_ptr<GradOp<T>> make(const GradInit& op) {
    expect_io(op, 2, 2, 1, 1);
    return std::make_unique<BinaryGrad<T, F>>(make_bcast(op, {op.in_shapes[0], op.in_shapes[1]}, op.out_shapes[0], true));
  }
};
template <typename T> std::unique_ptr<GradOp<T>> make_add(const GradInit& op) { return BinaryMaker<Add>::make<T>(op); }
template <typename T> std::unique_ptr<GradOp<T>> make_sub(const GradInit& op) { return BinaryMaker<Sub>::make<T>(op); }
template <typename T> std::unique_ptr<GradOp<T>> make_mul(const GradInit& op) { return BinaryMaker<Mul>::make<T>(op); }
template <typename T> std::unique_ptr<GradOp<T>> make_div(const GradInit& op) { return BinaryMaker<Div>::make<T>(op); }
template <typename T> std::unique_ptr<GradOp<T>> make_pow(const GradInit& op) { return BinaryMaker<Pow>::make<T>(op); }

// ---------------------------------------------------------------------------------------------
// Where(cond, x, y): the gradient goes to x where cond holds and to y elsewhere; cond (0/1 data,
// piecewise constant) gets none.

template <typename T>
class WhereGrad : public GradOp<T> {
 public:
  explicit WhereGrad(Bcast b) : b_(std::move(b)) {}
  void forward(const GradArgs<T>& a) override {
    const T* C = a.in[0];
    const T* X = a.in[1];
    const T* Yv = a.in[2];
    T* out = a.out[0];
    const int64_t sc = b_.strides[0].back(), sx = b_.strides[1].back(), sy = b_.strides[2].back();
    bcast_rows_parallel(b_, a.threads, [&](const int64_t* off, int64_t o, int64_t n) {
      for (int64_t j = 0; j < n; ++j) out[o + j] = C[off[0] + j * sc] != T(0) ? X[off[1] + j * sx] : Yv[off[2] + j * sy];
    });
  }
  void backward(const GradArgs<T>& a) override {
    const T* C = a.in[0];
    const T* G = a.gout[0];
    const int64_t sc = b_.strides[0].back();
    if (a.gin[1])
      accumulate_into(b_, 1, a.gin[1], a.threads, [&](const int64_t* off, int64_t o, int64_t j) {
        return C[off[0] + j * sc] != T(0) ? G[o + j] : T(0);
      });
    if (a.gin[2])
      accumulate_into(b_, 2, a.gin[2], a.threads, [&](const int64_t* off, int64_t o, int64_t j) {
        return C[off[0] + j * sc] != T(0) ? T(0) : G[o + j];
      });
  }

 private:
  Bcast b_;
};

template <typename T>
std::unique_ptr<GradOp<T>> make_where(const GradInit& op) {
  expect_io(op, 3, 3, 1, 1);
  return std::make_unique<WhereGrad<T>>(make_bcast(op, {op.in_shapes[0], op.in_shapes[1], op.in_shapes[2]}, op.out_shapes[0], true));
}

}  // namespace

PACKPTQ_REGISTER_GRAD_OP("Relu", make_relu);
PACKPTQ_REGISTER_GRAD_OP("Sigmoid", make_sigmoid);
PACKPTQ_REGISTER_GRAD_OP("Tanh", make_tanh);
PACKPTQ_REGISTER_GRAD_OP("Erf", make_erf);
PACKPTQ_REGISTER_GRAD_OP("Sqrt", make_sqrt);
PACKPTQ_REGISTER_GRAD_OP("Abs", make_abs);
PACKPTQ_REGISTER_GRAD_OP("Neg", make_neg);
PACKPTQ_REGISTER_GRAD_OP("Exp", make_exp);
PACKPTQ_REGISTER_GRAD_OP("Log", make_log);
PACKPTQ_REGISTER_GRAD_OP("Reciprocal", make_reciprocal);
PACKPTQ_REGISTER_GRAD_OP("Identity", make_identity);
PACKPTQ_REGISTER_GRAD_OP("Clip", make_clip);
PACKPTQ_REGISTER_GRAD_OP("LeakyRelu", make_leaky_relu);
PACKPTQ_REGISTER_GRAD_OP("HardSigmoid", make_hard_sigmoid);
PACKPTQ_REGISTER_GRAD_OP("HardSwish", make_hard_swish);
PACKPTQ_REGISTER_GRAD_OP("Gelu", make_gelu);
PACKPTQ_REGISTER_GRAD_OP("Add", make_add);
PACKPTQ_REGISTER_GRAD_OP("Sub", make_sub);
PACKPTQ_REGISTER_GRAD_OP("Mul", make_mul);
PACKPTQ_REGISTER_GRAD_OP("Div", make_div);
PACKPTQ_REGISTER_GRAD_OP("Pow", make_pow);
PACKPTQ_REGISTER_GRAD_OP("Where", make_where);

}  // namespace train
}  // namespace packptq
