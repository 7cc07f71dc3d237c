// Elementwise ops: unary activations and the five broadcasting binary ops. Binary broadcasting is
// collapsed (ops_common.h) so the inner loop always has input strides 0 or 1, which covers the hot
// transformer and CNN cases (same shape, scalar, per-channel [C,1,1], last-dim bias) with plain
// contiguous loops the compiler vectorises.
#include "exec/ops_common.h"  // first: it sets the optimisation options for the whole file

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/variants.h"

namespace packptq {
namespace {

using namespace opsx;

// ---------------------------------------------------------------------------------------------
// Unary

struct ReluF { float operator()(float x) const { return x > 0.f ? x : 0.f; } };
struct SigmoidF { float operator()(float x) const { return 1.f / (1.f + exp_fast(-x)); } };
struct TanhF { float operator()(float x) const { return std::tanh(x); } };
struct ErfF { float operator()(float x) const { return std::erf(x); } };
struct AbsF { float operator()(float x) const { return std::fabs(x); } };
struct NegF { float operator()(float x) const { return -x; } };
struct ExpF { float operator()(float x) const { return std::exp(x); } };
struct LogF { float operator()(float x) const { return std::log(x); } };
struct SqrtF { float operator()(float x) const { return std::sqrt(x); } };
struct ReciprocalF { float operator()(float x) const { return 1.f / x; } };
// numpy.clip semantics: when min > max every output is max.
struct ClipF {
  float lo, hi;
  float operator()(float x) const { return std::min(std::max(x, lo), hi); }
};
struct LeakyReluF {
  float alpha;
  float operator()(float x) const { return x >= 0.f ? x : alpha * x; }
};
struct HardSigmoidF {
  float alpha, beta;
  float operator()(float x) const { return std::max(0.f, std::min(1.f, alpha * x + beta)); }
};
struct HardSwishF {
  float operator()(float x) const { return x * std::max(0.f, std::min(1.f, x * (1.f / 6.f) + 0.5f)); }
};
// The scalar form (PACKPTQ_SIMD=scalar, the reference); the SIMD paths use the kernel table's
// vector gelu_erf (kernels/conv_act_impl.h), std::erf being a scalar libm call.
struct GeluErfF {
  float operator()(float x) const { return 0.5f * x * (1.f + std::erf(x * 0.70710678118654752f)); }
};
struct GeluTanhF {
  float operator()(float x) const {
    return 0.5f * x * (1.f + std::tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
  }
};

template <typename F>
class UnaryOp : public Op {
 public:
  UnaryOp(int64_t n, F f) : n_(n), f_(f) {}
  void run(const OpRun& r) override {
    const float* __restrict x = r.in[0];
    float* __restrict y = r.out[0];
    const F f = f_;
    parallel_for(n_, threads_for(n_, r.threads), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) y[i] = f(x[i]);
    });
  }

 private:
  int64_t n_;
  F f_;
};

int64_t check_unary(const OpInit& op) {
  expect_io(op, 1, 1, 1, 1);
  if (op.in_shapes[0] != op.out_shapes[0])
    op.fail_shape("output shape " + shape_str(op.out_shapes[0]) + " differs from input shape " +
                  shape_str(op.in_shapes[0]));
  return numel(op.in_shapes[0]);
}

template <typename F>
std::unique_ptr<Op> make_unary(const OpInit& op) {
  return std::make_unique<UnaryOp<F>>(check_unary(op), F{});
}

std::unique_ptr<Op> make_clip(const OpInit& op) {
  const int64_t n = check_unary(op);
  const float lo = static_cast<float>(op.attrs.f("min", -std::numeric_limits<double>::infinity()));
  const float hi = static_cast<float>(op.attrs.f("max", std::numeric_limits<double>::infinity()));
  return std::make_unique<UnaryOp<ClipF>>(n, ClipF{lo, hi});
}
std::unique_ptr<Op> make_leaky_relu(const OpInit& op) {
  const int64_t n = check_unary(op);
  return std::make_unique<UnaryOp<LeakyReluF>>(n, LeakyReluF{static_cast<float>(op.attrs.f("alpha", 0.01))});
}
std::unique_ptr<Op> make_hard_sigmoid(const OpInit& op) {
  const int64_t n = check_unary(op);
  return std::make_unique<UnaryOp<HardSigmoidF>>(
      n, HardSigmoidF{static_cast<float>(op.attrs.f("alpha", 0.2)), static_cast<float>(op.attrs.f("beta", 0.5))});
}
// Exact (erf) Gelu through the ISA's vector kernel: a fifth of a ViT's time with scalar std::erf.
class GeluVecOp : public Op {
 public:
  GeluVecOp(int64_t n, const KernelTable* t) : n_(n), t_(t) {}
  void run(const OpRun& r) override {
    const float* x = r.in[0];
    float* y = r.out[0];
    parallel_for(n_, threads_for_transcendental(n_, r.threads), [&](int64_t b, int64_t e) { t_->gelu_erf(x + b, y + b, e - b); });
  }

 private:
  int64_t n_;
  const KernelTable* t_;
};

std::unique_ptr<Op> make_gelu(const OpInit& op) {
  const int64_t n = check_unary(op);
  const std::string a = op.attrs.s("approximate", "none");
  const KernelTable* t = kernel_table(variant_of(op.isa));
  if (a == "none" && t && t->gelu_erf) return std::make_unique<GeluVecOp>(n, t);
  if (a == "none") return std::make_unique<UnaryOp<GeluErfF>>(n, GeluErfF{});
  if (a == "tanh") return std::make_unique<UnaryOp<GeluTanhF>>(n, GeluTanhF{});
  op.fail_unsupported("approximate must be \"none\" or \"tanh\", got \"" + a + "\"");
}

// ---------------------------------------------------------------------------------------------
// Binary with numpy broadcasting

struct AddF { float operator()(float a, float b) const { return a + b; } };
struct SubF { float operator()(float a, float b) const { return a - b; } };
struct MulF { float operator()(float a, float b) const { return a * b; } };
struct DivF { float operator()(float a, float b) const { return a / b; } };
struct PowF { float operator()(float a, float b) const { return std::pow(a, b); } };

template <typename F>
inline void binary_inner(const float* __restrict a, int64_t sa, const float* __restrict b, int64_t sb,
                         float* __restrict y, int64_t n) {
  const F f{};
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
  } else if (sa == 1) {
    const float bv = b[0];
    for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], bv);
  } else if (sb == 1) {
    const float av = a[0];
    for (int64_t i = 0; i < n; ++i) y[i] = f(av, b[i]);
  } else {
    const float v = f(a[0], b[0]);
    for (int64_t i = 0; i < n; ++i) y[i] = v;
  }
}

template <typename F>
class BinaryOp : public Op {
 public:
  explicit BinaryOp(Broadcast b) : b_(std::move(b)) {}
  void run(const OpRun& r) override {
    const float* a = r.in[0];
    const float* b = r.in[1];
    float* y = r.out[0];
    const int64_t sa = b_.strides[0].back(), sb = b_.strides[1].back();
    if (b_.dims.size() == 1) {
      // One collapsed dim: same shape or scalar broadcast; split the flat range itself.
      parallel_for(b_.total, threads_for(b_.total, r.threads), [&](int64_t s, int64_t e) {
        binary_inner<F>(a + s * sa, sa, b + s * sb, sb, y + s, e - s);
      });
      return;
    }
    for_each_row(b_.dims, b_.strides, r.threads, [&](const int64_t* off, int64_t o, int64_t n) {
      binary_inner<F>(a + off[0], sa, b + off[1], sb, y + o, n);
    });
  }

 private:
  Broadcast b_;
};

template <typename F>
std::unique_ptr<Op> make_binary(const OpInit& op) {
  expect_io(op, 2, 2, 1, 1);
  return std::make_unique<BinaryOp<F>>(make_broadcast(op, {op.in_shapes[0], op.in_shapes[1]}, op.out_shapes[0], true));
}

PACKPTQ_REGISTER_OP("Add", make_binary<AddF>);
PACKPTQ_REGISTER_OP("Sub", make_binary<SubF>);
PACKPTQ_REGISTER_OP("Mul", make_binary<MulF>);
PACKPTQ_REGISTER_OP("Div", make_binary<DivF>);
PACKPTQ_REGISTER_OP("Pow", make_binary<PowF>);

PACKPTQ_REGISTER_OP("Relu", make_unary<ReluF>);
PACKPTQ_REGISTER_OP("Sigmoid", make_unary<SigmoidF>);
PACKPTQ_REGISTER_OP("Tanh", make_unary<TanhF>);
PACKPTQ_REGISTER_OP("Erf", make_unary<ErfF>);
PACKPTQ_REGISTER_OP("Abs", make_unary<AbsF>);
PACKPTQ_REGISTER_OP("Neg", make_unary<NegF>);
PACKPTQ_REGISTER_OP("Exp", make_unary<ExpF>);
PACKPTQ_REGISTER_OP("Log", make_unary<LogF>);
PACKPTQ_REGISTER_OP("Sqrt", make_unary<SqrtF>);
PACKPTQ_REGISTER_OP("Reciprocal", make_unary<ReciprocalF>);
PACKPTQ_REGISTER_OP("HardSwish", make_unary<HardSwishF>);
PACKPTQ_REGISTER_OP("Clip", make_clip);
PACKPTQ_REGISTER_OP("LeakyRelu", make_leaky_relu);
PACKPTQ_REGISTER_OP("HardSigmoid", make_hard_sigmoid);
PACKPTQ_REGISTER_OP("Gelu", make_gelu);

}  // namespace
}  // namespace packptq
