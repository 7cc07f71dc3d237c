// The two quantizers reconstruction learns, as differentiable ops of the Tape.
//
// AdaRound (weights): W̃ = s·(clamp(⌊W/s⌋ + h(V) + z, qmin, qmax) − z),
//   h(V) = clamp(sigmoid(V)·1.2 − 0.1, 0, 1) (the rectified sigmoid); with option "hard" = 1 the
//   rounding is final: h = [V ≥ 0]. Inputs: W (fixed), V (trainable, W's shape), scale and
//   zero point (per channel along `axis`, or one each). ∂W̃/∂V = s·h'(V) where the clamp is inactive.
//
// LsqQuant (activations): x̂ = s·(clamp(round_half_even(x/s) + z, qmin, qmax) − z) with a learned
//   step s (a trainable [1] input) and a fixed zero point; straight-through for x inside the range,
//   the LSQ gradient for s (round(x/s) − x/s inside, qmin − z / qmax − z at the clamps).
//   With option "drop" = p (QDrop) each element is passed through unquantized with probability p,
//   drawn from a counter-based hash of (seed, forward step, element) so runs are reproducible and
//   independent of the thread count.
#include "train/grad_util.h"

#include <type_traits>

#include "kernels/quant.h"
#include "kernels/variants.h"

namespace packptq {
namespace train {
namespace {

// Channel of element i for a per-channel layout (axis split into outer × channels × inner).
struct ChannelMap {
  int64_t channels = 1, inner = 1;
  int64_t operator()(int64_t i) const { return channels == 1 ? 0 : (i / inner) % channels; }
};

ChannelMap channel_map(const GradInit& op, const Shape& w, int64_t channels) {
  ChannelMap m;
  m.channels = channels;
  if (channels == 1) return m;
  const int64_t axis = op.attrs.i("axis", 0);
  if (axis < 0 || axis >= static_cast<int64_t>(w.size()) || w[axis] != channels)
    op.fail_shape(std::to_string(channels) + " scales do not match axis " + std::to_string(axis) + " of " + shape_str(w));
  for (size_t d = axis + 1; d < w.size(); ++d) m.inner *= w[d];
  return m;
}

template <typename T>
inline T rect_sigmoid(T v) {
  const T s = T(1) / (T(1) + std::exp(-v));
  const T h = s * T(1.2) - T(0.1);
  return h < T(0) ? T(0) : (h > T(1) ? T(1) : h);
}

// The rectified sigmoid h(V) is computed once per forward pass and kept for the backward pass, which
// needs σ(V) only where 0 < h < 1, and there σ = (h + 0.1) / 1.2: no second exp. In float with a
// SIMD ISA, h comes from the vector kernel (kernels/conv_act_impl.h rect_sigmoid); with libm's
// scalar exp, on one thread, AdaRound was a sixteenth of a ViT unit's reconstruction step.
template <typename T>
class AdaRound : public GradOp<T> {
 public:
  explicit AdaRound(const GradInit& op) {
    if constexpr (std::is_same<T, float>::value) table_ = kernel_table(variant_of(op.isa));
    gx::expect_io(op, 4, 4, 1, 1);
    const Shape& w = op.in_shapes[0];
    if (op.in_shapes[1] != w) op.fail_shape("V must have the weight's shape " + shape_str(w));
    if (op.out_shapes[0] != w) op.fail_shape("the output must have the weight's shape " + shape_str(w));
    const int64_t c = numel(op.in_shapes[2]);
    if (numel(op.in_shapes[3]) != c) op.fail_shape("scale and zero point differ in length");
    map_ = channel_map(op, w, c);
    n_ = numel(w);
    qmin_ = static_cast<T>(gx::int_attr(op, "qmin"));
    qmax_ = static_cast<T>(gx::int_attr(op, "qmax"));
    if (!(qmin_ < qmax_)) op.fail_unsupported("qmin must be below qmax");
  }
  void forward(const GradArgs<T>& a) override {
    const T* W = a.in[0];
    const T* V = a.in[1];
    const T* s = a.in[2];
    const T* z = a.in[3];
    T* y = a.out[0];
    // ⌊W/s⌋ depends only on fixed inputs (the FP weight and the initial scale): computed once.
    if (floor_.empty()) {
      floor_.resize(n_);
      for (int64_t i = 0; i < n_; ++i) floor_[i] = std::floor(W[i] / s[map_(i)]);
    }
    h_.resize(n_);
    T* h = h_.data();
    parallel_for(n_, gx::threads_for(16 * n_, a.threads), [&](int64_t b, int64_t e) {
      if (hard_) {
        for (int64_t i = b; i < e; ++i) h[i] = V[i] >= T(0) ? T(1) : T(0);
      } else if constexpr (std::is_same<T, float>::value) {
        if (table_) table_->rect_sigmoid(V + b, h + b, e - b);
        else for (int64_t i = b; i < e; ++i) h[i] = rect_sigmoid(V[i]);
      } else {
        for (int64_t i = b; i < e; ++i) h[i] = rect_sigmoid(V[i]);
      }
      for (int64_t i = b; i < e; ++i) {
        const int64_t c = map_(i);
        T q = floor_[i] + h[i] + z[c];
        q = q < qmin_ ? qmin_ : (q > qmax_ ? qmax_ : q);
        y[i] = s[c] * (q - z[c]);
      }
    });
  }
  void backward(const GradArgs<T>& a) override {
    T* gV = a.gin[1];
    if (!gV || hard_) return;
    const T* s = a.in[2];
    const T* z = a.in[3];
    const T* g = a.gout[0];
    const T* hv = h_.data();
    parallel_for(n_, gx::threads_for(4 * n_, a.threads), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T h = hv[i];
        if (h <= T(0) || h >= T(1)) continue;  // the rectifier is flat there
        const int64_t c = map_(i);
        const T q = floor_[i] + h + z[c];
        if (q <= qmin_ || q >= qmax_) continue;  // clamped: no gradient
        const T sig = (h + T(0.1)) / T(1.2);
        gV[i] += g[i] * s[c] * T(1.2) * sig * (T(1) - sig);
      }
    });
  }
  bool set_option(const std::string& key, double value) override {
    if (key != "hard") return false;
    hard_ = value != 0;
    return true;
  }

 private:
  ChannelMap map_;
  int64_t n_ = 0;
  T qmin_ = 0, qmax_ = 255;
  bool hard_ = false;
  std::vector<T> floor_;
  std::vector<T> h_;                      // h(V) of the last forward pass
  const KernelTable* table_ = nullptr;    // float with a SIMD ISA
};

// float runs the SIMD kernels of kernels/quant.h (this op is a quarter of a training step when
// scalar); double (the gradient checks) runs the same arithmetic in a plain loop.
template <typename T>
class LsqQuant : public GradOp<T> {
 public:
  explicit LsqQuant(const GradInit& op) : isa_(op.isa) {
    gx::expect_io(op, 2, 2, 1, 1);
    if (numel(op.in_shapes[1]) != 1) op.fail_shape("the step size must be a single value");
    if (op.out_shapes[0] != op.in_shapes[0]) op.fail_shape("output shape must equal the input shape");
    n_ = numel(op.in_shapes[0]);
    const T z = static_cast<T>(op.attrs.i("zero_point", 0));
    const T qmin = static_cast<T>(gx::int_attr(op, "qmin"));
    const T qmax = static_cast<T>(gx::int_attr(op, "qmax"));
    seed_ = static_cast<uint64_t>(op.attrs.i("seed", 0));
    if (!(qmin < qmax)) op.fail_unsupported("qmin must be below qmax");
    if (!(qmin <= z && z <= qmax)) op.fail_unsupported("the zero point must lie in [qmin, qmax]");
    lo_ = qmin - z;
    hi_ = qmax - z;
    state_.resize(static_cast<size_t>(n_));
  }
  void forward(const GradArgs<T>& a) override {
    const T* x = a.in[0];
    const T s = a.in[1][0];
    T* y = a.out[0];
    const uint32_t base = drop_base(seed_, a.step);
    const uint32_t threshold = drop_threshold(drop_);
    if constexpr (std::is_same<T, float>::value) {
      blocks(a.threads, [&](int64_t i0, int64_t len, int64_t) {
        lsq_forward(isa_, x + i0, len, s, lo_, hi_, base + static_cast<uint32_t>(i0), threshold, y + i0, state_.data() + i0);
      });
    } else {
      for (int64_t i = 0; i < n_; ++i) {
        if (threshold && drop_hash(base + static_cast<uint32_t>(i)) < threshold) {
          y[i] = x[i];
          state_[i] = kLsqDropped;
          continue;
        }
        T r = round_clamped1(x[i] / s);
        state_[i] = r < lo_ ? kLsqBelow : (r > hi_ ? kLsqAbove : kLsqInside);
        r = r < lo_ ? lo_ : (r > hi_ ? hi_ : r);
        y[i] = s * r;
      }
    }
  }
  void backward(const GradArgs<T>& a) override {
    const T* x = a.in[0];
    const T s = a.in[1][0];
    const T* g = a.gout[0];
    T* gx_ = a.gin[0];
    T* gs = a.gin[1];
    const bool assign = a.fresh(0);
    double acc = 0;
    if constexpr (std::is_same<T, float>::value) {
      partial_.assign(static_cast<size_t>((n_ + kBlock - 1) / kBlock), 0.0);
      blocks(a.threads, [&](int64_t i0, int64_t len, int64_t b) {
        partial_[b] = lsq_backward(isa_, x + i0, g + i0, state_.data() + i0, len, s, lo_, hi_, gx_ ? gx_ + i0 : nullptr, assign);
      });
      for (double p : partial_) acc += p;  // block order: the same sum on any number of threads
    } else {
      for (int64_t i = 0; i < n_; ++i) {
        const T v = x[i] / s;
        switch (state_[i]) {
          case kLsqInside: acc += g[i] * (round_clamped1(v) - v); break;
          case kLsqBelow: acc += g[i] * lo_; break;
          case kLsqAbove: acc += g[i] * hi_; break;
          default: break;
        }
        if (gx_) gx_[i] = (assign ? T(0) : gx_[i]) + (state_[i] <= kLsqInside ? g[i] : T(0));
      }
    }
    if (gs) gs[0] += static_cast<T>(acc);
  }
  bool assigns_input_grad(size_t k) const override { return k == 0; }
  bool set_option(const std::string& key, double value) override {
    if (key != "drop") return false;
    drop_ = value < 0 ? 0 : (value > 1 ? 1 : value);
    return true;
  }

 private:
  // The float kernels run over fixed blocks (a multiple of every ISA's flush interval), in
  // parallel; a block's coins are drop_hash(base + global index), so neither the mask nor the step
  // gradient depends on the thread count.
  static constexpr int64_t kBlock = 32768;
  template <typename Fn>
  void blocks(int threads, Fn&& fn) const {
    const int64_t nb = (n_ + kBlock - 1) / kBlock;
    parallel_for(nb, gx::threads_for(n_, threads), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) fn(b * kBlock, std::min(kBlock, n_ - b * kBlock), b);
    });
  }
  std::vector<double> partial_;

  // round_half_even(t) after clamping t one step outside [lo, hi] (NaN → 0): clamping commutes
  // with rounding for integer bounds, so r < lo / r > hi say whether round(t) itself is clamped.
  T round_clamped1(T t) const {
    t = t == t ? t : T(0);
    t = t < lo_ - 1 ? lo_ - 1 : (t > hi_ + 1 ? hi_ + 1 : t);
    return std::nearbyint(t) + T(0);  // −0 → +0, as the float kernels
  }

  Isa isa_;
  int64_t n_ = 0;
  T lo_ = 0, hi_ = 255;
  uint64_t seed_ = 0;
  double drop_ = 0;
  std::vector<uint8_t> state_;
};

template <typename T>
std::unique_ptr<GradOp<T>> make_adaround(const GradInit& op) { return std::make_unique<AdaRound<T>>(op); }
template <typename T>
std::unique_ptr<GradOp<T>> make_lsq(const GradInit& op) { return std::make_unique<LsqQuant<T>>(op); }

}  // namespace

PACKPTQ_REGISTER_GRAD_OP("AdaRound", make_adaround);
PACKPTQ_REGISTER_GRAD_OP("LsqQuant", make_lsq);

}  // namespace train
}  // namespace packptq
