// Pools (MaxPool, AveragePool, the global pools) and reductions (ReduceSum/Mean/Max/Min) with their
// gradients. Max-type ops remember the position of each maximum in the forward pass (the first one
// in scan order on ties, where the function has a kink) and route the gradient there.
// Window arithmetic follows native/exec/ops_pool.cpp: the output shape is authoritative (ceil_mode
// resolved in TS), a window may run past the padded input and is clipped, and AveragePool divides
// by the valid taps (count_include_pad = 0) or by the taps inside the padded input (= 1).
#include "train/grad_util.h"  // first: it sets the optimisation options for the whole file

#include <cmath>
#include <limits>

namespace packptq {
namespace train {
namespace {

using namespace gx;

// Per output position along one dim: first input coordinate, valid taps [k0, k1), padded-area taps.
struct Taps {
  std::vector<int64_t> start, k0, k1, padded;
};

Taps make_taps(int64_t out, int64_t in, int64_t k, int64_t stride, int64_t pad_begin, int64_t pad_end, int64_t dil) {
  Taps t;
  for (int64_t o = 0; o < out; ++o) {
    const int64_t s = o * stride - pad_begin;
    int64_t lo = k, hi = 0, cnt = 0;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t p = s + j * dil;
      if (p >= 0 && p < in) lo = std::min(lo, j), hi = j + 1;
      if (p >= -pad_begin && p < in + pad_end) ++cnt;
    }
    if (hi < lo) lo = hi = 0;
    t.start.push_back(s);
    t.k0.push_back(lo);
    t.k1.push_back(hi);
    t.padded.push_back(cnt);
  }
  return t;
}

template <typename T>
class PoolGrad : public GradOp<T> {
 public:
  PoolGrad(bool is_max, bool include_pad, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t dh,
           int64_t dw, Taps th, Taps tw)
      : max_(is_max), include_pad_(include_pad), planes_(planes), H_(H), W_(W), OH_(OH), OW_(OW), dh_(dh), dw_(dw),
        th_(std::move(th)), tw_(std::move(tw)) {
    if (max_) arg_.assign(static_cast<size_t>(planes_ * OH_ * OW_), -1);
  }

  void forward(const GradArgs<T>& a) override {
    const T* X = a.in[0];
    T* Y = a.out[0];
    parallel_for(planes_, threads_for(planes_ * OH_ * OW_ * 4, a.threads), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        const T* x = X + p * H_ * W_;
        for (int64_t oh = 0; oh < OH_; ++oh)
          for (int64_t ow = 0; ow < OW_; ++ow) {
            const int64_t o = (p * OH_ + oh) * OW_ + ow;
            if (max_) {
              T m = std::numeric_limits<T>::lowest();
              int64_t at = -1;
              each_tap(oh, ow, [&](int64_t i) {
                if (at < 0 || x[i] > m) m = x[i], at = i;
              });
              Y[o] = at < 0 ? T(0) : m;
              arg_[o] = at;
            } else {
              T s = 0;
              each_tap(oh, ow, [&](int64_t i) { s += x[i]; });
              const int64_t cnt = count(oh, ow);
              Y[o] = cnt > 0 ? s / T(cnt) : T(0);
            }
          }
      }
    });
  }

  void backward(const GradArgs<T>& a) override {
    T* GX = a.gin[0];
    if (!GX) return;
    const T* GY = a.gout[0];
    // Planes are disjoint in the input, so threads split by plane never collide.
    parallel_for(planes_, threads_for(planes_ * OH_ * OW_ * 4, a.threads), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        T* g = GX + p * H_ * W_;
        for (int64_t oh = 0; oh < OH_; ++oh)
          for (int64_t ow = 0; ow < OW_; ++ow) {
            const int64_t o = (p * OH_ + oh) * OW_ + ow;
            if (max_) {
              if (arg_[o] >= 0) g[arg_[o]] += GY[o];
            } else {
              const int64_t cnt = count(oh, ow);
              if (cnt == 0) continue;
              const T v = GY[o] / T(cnt);
              each_tap(oh, ow, [&](int64_t i) { g[i] += v; });
            }
          }
      }
    });
  }

 private:
  template <typename Fn>
  void each_tap(int64_t oh, int64_t ow, Fn&& fn) const {
    for (int64_t i = th_.k0[oh]; i < th_.k1[oh]; ++i) {
      const int64_t row = (th_.start[oh] + i * dh_) * W_;
      for (int64_t j = tw_.k0[ow]; j < tw_.k1[ow]; ++j) fn(row + tw_.start[ow] + j * dw_);
    }
  }
  int64_t count(int64_t oh, int64_t ow) const {
    return include_pad_ ? th_.padded[oh] * tw_.padded[ow] : (th_.k1[oh] - th_.k0[oh]) * (tw_.k1[ow] - tw_.k0[ow]);
  }

  bool max_, include_pad_;
  int64_t planes_, H_, W_, OH_, OW_, dh_, dw_;
  Taps th_, tw_;
  std::vector<int64_t> arg_;
};

template <typename T>
std::unique_ptr<GradOp<T>> make_pool(const GradInit& op, bool is_max) {
  expect_io(op, 1, 1, 1, 1);
  const Shape& x = op.in_shapes[0];
  const Shape& y = op.out_shapes[0];
  if (x.size() != 4 && x.size() != 3) op.fail_shape("input " + shape_str(x) + " must be [N,C,H,W] (or [N,C,W])");
  if (y.size() != x.size()) op.fail_shape("output " + shape_str(y) + " must have the input's rank " + str(x.size()));
  if (y[0] != x[0] || y[1] != x[1]) op.fail_shape("output " + shape_str(y) + " must keep N and C of input " + shape_str(x));
  const bool one_d = x.size() == 3;
  const int64_t H = one_d ? 1 : x[2], W = x.back(), OH = one_d ? 1 : y[2], OW = y.back();
  const std::vector<int64_t> ones{1, 1}, zeros{0, 0, 0, 0};
  const auto k = ints_attr(op, "kernel", 2);
  const auto s = ints_attr(op, "strides", 2, &ones);
  const auto pads = ints_attr(op, "pads", 4, &zeros);
  const auto d = ints_attr(op, "dilations", 2, &ones);
  for (int i = 0; i < 2; ++i)
    if (k[i] < 1 || s[i] < 1 || d[i] < 1) op.fail_unsupported("kernel, strides and dilations must be positive");
  for (int64_t p : pads)
    if (p < 0) op.fail_unsupported("pads must be non-negative, got " + shape_str(pads));
  if (one_d && (k[0] != 1 || pads[0] != 0 || pads[2] != 0)) op.fail_unsupported("a 1-D pool must have kernel height 1 and no height padding");
  auto check = [&](const char* dim, int64_t in, int64_t out, int64_t kk, int64_t st, int64_t pb, int64_t pe, int64_t dil) {
    const int64_t span = in + pb + pe - ((kk - 1) * dil + 1);
    if (span < 0) op.fail_shape("the window is larger than the padded input " + shape_str(x));
    const int64_t fl = span / st + 1, ce = (span + st - 1) / st + 1;
    if (out < fl || out > ce)
      op.fail_shape(std::string("output ") + dim + " " + str(out) + " does not match the pooling formula (" + str(fl) +
                    (fl == ce ? "" : " or " + str(ce)) + ") for input " + shape_str(x));
  };
  check("height", H, OH, k[0], s[0], pads[0], pads[2], d[0]);
  check("width", W, OW, k[1], s[1], pads[1], pads[3], d[1]);
  const bool include_pad = !is_max && op.attrs.i("count_include_pad", 0) != 0;
  return std::make_unique<PoolGrad<T>>(is_max, include_pad, x[0] * x[1], H, W, OH, OW, d[0], d[1],
                                       make_taps(OH, H, k[0], s[0], pads[0], pads[2], d[0]),
                                       make_taps(OW, W, k[1], s[1], pads[1], pads[3], d[1]));
}
template <typename T> std::unique_ptr<GradOp<T>> make_max_pool(const GradInit& op) { return make_pool<T>(op, true); }
template <typename T> std::unique_ptr<GradOp<T>> make_avg_pool(const GradInit& op) { return make_pool<T>(op, false); }

// ---------------------------------------------------------------------------------------------
// Reductions. Each input element maps to one output element through strides that are 0 along the
// reduced axes, so the same walk serves every kind, the global pools included (axes 2..R-1).

enum class Red { Sum, Mean, Max, Min };

template <typename T>
class ReduceGrad : public GradOp<T> {
 public:
  ReduceGrad(Red kind, Shape in, const std::vector<char>& reduced) : kind_(kind), in_(std::move(in)) {
    const int R = static_cast<int>(in_.size());
    ostride_.assign(R, 0);
    int64_t st = 1;
    count_ = 1;
    for (int d = R - 1; d >= 0; --d) {
      if (reduced[d]) count_ *= in_[d];
      else ostride_[d] = st, st *= in_[d];
    }
    nout_ = st;
    if (kind_ == Red::Max || kind_ == Red::Min) arg_.assign(static_cast<size_t>(nout_), -1);
  }

  void forward(const GradArgs<T>& a) override {
    const T* X = a.in[0];
    T* Y = a.out[0];
    const bool ext = kind_ == Red::Max || kind_ == Red::Min;
    acc_.assign(static_cast<size_t>(nout_), 0.0);
    if (ext) std::fill(arg_.begin(), arg_.end(), -1);
    walk([&](int64_t i, int64_t o) {
      if (!ext) {
        acc_[o] += X[i];
      } else if (arg_[o] < 0 || (kind_ == Red::Max ? X[i] > X[arg_[o]] : X[i] < X[arg_[o]])) {
        arg_[o] = i;
      }
    });
    for (int64_t o = 0; o < nout_; ++o) {
      if (ext) Y[o] = arg_[o] >= 0 ? X[arg_[o]] : T(0);
      else Y[o] = static_cast<T>(kind_ == Red::Mean ? (count_ ? acc_[o] / count_ : 0.0) : acc_[o]);
    }
  }

  void backward(const GradArgs<T>& a) override {
    T* GX = a.gin[0];
    if (!GX) return;
    const T* GY = a.gout[0];
    if (kind_ == Red::Max || kind_ == Red::Min) {
      for (int64_t o = 0; o < nout_; ++o)
        if (arg_[o] >= 0) GX[arg_[o]] += GY[o];
      return;
    }
    const T scale = kind_ == Red::Mean && count_ ? T(1) / T(count_) : T(1);
    walk([&](int64_t i, int64_t o) { GX[i] += GY[o] * scale; });
  }

 private:
  // fn(input index, output index) over the input in memory order.
  template <typename Fn>
  void walk(Fn&& fn) const {
    const int R = static_cast<int>(in_.size());
    const int64_t total = numel(in_);
    if (total == 0) return;
    std::vector<int64_t> idx(R, 0);
    int64_t o = 0;
    for (int64_t i = 0; i < total; ++i) {
      fn(i, o);
      for (int d = R - 1; d >= 0; --d) {
        o += ostride_[d];
        if (++idx[d] < in_[d]) break;
        o -= ostride_[d] * in_[d];
        idx[d] = 0;
      }
    }
  }

  Red kind_;
  Shape in_;
  std::vector<int64_t> ostride_, arg_;
  std::vector<double> acc_;
  int64_t count_ = 1, nout_ = 1;
};

template <typename T>
std::unique_ptr<GradOp<T>> make_reduce(const GradInit& op, Red kind) {
  expect_io(op, 1, 2, 1, 1);
  const Shape& x = op.in_shapes[0];
  const int64_t R = static_cast<int64_t>(x.size());
  const auto axes = ints_attr(op, "axes", size_t(-1));
  if (axes.empty()) op.fail_unsupported("axes must not be empty (TS lists every axis for a full reduction)");
  const bool keep = op.attrs.i("keepdims", 1) != 0;
  std::vector<char> reduced(R, 0);
  for (int64_t ax : axes) {
    if (ax < 0 || ax >= R || reduced[ax]) op.fail_shape("axes " + shape_str(axes) + " must be distinct dims of input " + shape_str(x));
    reduced[ax] = 1;
  }
  Shape want;
  for (int64_t d = 0; d < R; ++d)
    if (!reduced[d]) want.push_back(x[d]);
    else if (keep) want.push_back(1);
  if (op.out_shapes[0] != want) op.fail_shape("output " + shape_str(op.out_shapes[0]) + " must be " + shape_str(want));
  if ((kind == Red::Max || kind == Red::Min) && numel(x) == 0) op.fail_shape("cannot take the extremum of an empty input");
  return std::make_unique<ReduceGrad<T>>(kind, x, reduced);
}
template <typename T> std::unique_ptr<GradOp<T>> make_reduce_sum(const GradInit& op) { return make_reduce<T>(op, Red::Sum); }
template <typename T> std::unique_ptr<GradOp<T>> make_reduce_mean(const GradInit& op) { return make_reduce<T>(op, Red::Mean); }
template <typename T> std::unique_ptr<GradOp<T>> make_reduce_max(const GradInit& op) { return make_reduce<T>(op, Red::Max); }
template <typename T> std::unique_ptr<GradOp<T>> make_reduce_min(const GradInit& op) { return make_reduce<T>(op, Red::Min); }

template <typename T>
std::unique_ptr<GradOp<T>> make_global_pool(const GradInit& op, Red kind) {
  expect_io(op, 1, 1, 1, 1);
  const Shape& x = op.in_shapes[0];
  if (x.size() < 2) op.fail_shape("input " + shape_str(x) + " must have rank >= 2 (N, C, ...)");
  Shape want(x.size(), 1);
  want[0] = x[0];
  want[1] = x[1];
  if (op.out_shapes[0] != want) op.fail_shape("output " + shape_str(op.out_shapes[0]) + " must be " + shape_str(want));
  std::vector<char> reduced(x.size(), 1);
  reduced[0] = reduced[1] = 0;
  if (numel(x) / std::max<int64_t>(1, x[0] * x[1]) == 0 || numel(x) == 0)
    op.fail_shape("input " + shape_str(x) + " has no spatial elements to pool");
  return std::make_unique<ReduceGrad<T>>(kind, x, reduced);
}
template <typename T> std::unique_ptr<GradOp<T>> make_global_avg(const GradInit& op) { return make_global_pool<T>(op, Red::Mean); }
template <typename T> std::unique_ptr<GradOp<T>> make_global_max(const GradInit& op) { return make_global_pool<T>(op, Red::Max); }

}  // namespace

PACKPTQ_REGISTER_GRAD_OP("MaxPool", make_max_pool);
PACKPTQ_REGISTER_GRAD_OP("AveragePool", make_avg_pool);
PACKPTQ_REGISTER_GRAD_OP("GlobalAveragePool", make_global_avg);
PACKPTQ_REGISTER_GRAD_OP("GlobalMaxPool", make_global_max);
PACKPTQ_REGISTER_GRAD_OP("ReduceSum", make_reduce_sum);
PACKPTQ_REGISTER_GRAD_OP("ReduceMean", make_reduce_mean);
PACKPTQ_REGISTER_GRAD_OP("ReduceMax", make_reduce_max);
PACKPTQ_REGISTER_GRAD_OP("ReduceMin", make_reduce_min);

}  // namespace train
}  // namespace packptq
