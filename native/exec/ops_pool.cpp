// MaxPool / AveragePool (2-D, NCHW; 1-D pools arrive with H = 1) and the global pools.
// The output shape is authoritative: ceil_mode was resolved on the TS side, so a window may run past
// the padded input and is clipped here. AveragePool divides by the number of valid input elements
// (count_include_pad = 0) or by the number of window taps inside the padded input area
// (count_include_pad = 1; taps beyond the padding added by ceil_mode are not counted).
#include "exec/ops_common.h"  // first: it sets the optimisation options for the whole file

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/variants.h"

namespace packptq {
namespace {

using namespace opsx;

// Per output position along one spatial dim: the first input coordinate of the window, the range of
// taps [k0, k1) that land inside the input, and how many taps land inside the padded input.
struct Taps {
  std::vector<int64_t> start, k0, k1, padded;
};

Taps make_taps(int64_t out, int64_t in, int64_t k, int64_t stride, int64_t pad_begin, int64_t pad_end, int64_t dil) {
  Taps t;
  for (int64_t o = 0; o < out; ++o) {
    const int64_t s = o * stride - pad_begin;
    int64_t lo = 0, hi = 0, cnt = 0;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t p = s + j * dil;
      if (p < 0) lo = j + 1;
      if (p < in) hi = j + 1;
      if (p >= -pad_begin && p < in + pad_end) ++cnt;
    }
    if (hi < lo) hi = lo;
    t.start.push_back(s);
    t.k0.push_back(lo);
    t.k1.push_back(hi);
    t.padded.push_back(cnt);
  }
  return t;
}

class PoolOp : public Op {
 public:
  PoolOp(bool is_max, bool include_pad, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t dh,
         int64_t dw, int64_t KW, int64_t sw, int64_t pad_l, Taps th, Taps tw)
      : max_(is_max), include_pad_(include_pad), planes_(planes), H_(H), W_(W), OH_(OH), OW_(OW), dh_(dh), dw_(dw),
        sw_(sw), pad_l_(pad_l), th_(std::move(th)), tw_(std::move(tw)) {
    // Per kernel column j, the output columns [lo, hi) whose tap ow·sw − pad_l + j·dw is inside [0, W).
    for (int64_t j = 0; j < KW; ++j) {
      int64_t lo = 0, hi = 0;
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t p = ow * sw - pad_l + j * dw;
        if (p < 0) lo = ow + 1;
        if (p < W) hi = ow + 1;
      }
      ow_lo_.push_back(lo);
      ow_hi_.push_back(std::max(lo, hi));
    }
  }

  void run(const OpRun& r) override {
    const float* x = r.in[0];
    float* y = r.out[0];
    // Scalar loops over every tap: about a nanosecond per input element read, so a batch-1 2x2/2
    // MaxPool on 32 planes of 28x28 (18 us) is worth a second thread.
    const int64_t work = std::max(planes_ * OH_ * OW_, planes_ * H_ * W_) * 4;
    parallel_for(planes_, threads_for(work, r.threads), [&](int64_t pb, int64_t pe) {
      for (int64_t p = pb; p < pe; ++p) plane(x + p * H_ * W_, y + p * OH_ * OW_);
    });
  }

 private:
  // Row at a time: for each kernel tap (i, j), one pass over the output columns whose tap lands
  // inside the input. The inner loop has a constant input stride, so it vectorises.
  void plane(const float* __restrict x, float* __restrict y) const {
    const int64_t KW = static_cast<int64_t>(ow_lo_.size());
    for (int64_t oh = 0; oh < OH_; ++oh) {
      const int64_t hs = th_.start[oh], h0 = th_.k0[oh], h1 = th_.k1[oh];
      float* __restrict yr = y + oh * OW_;
      const float init = max_ ? std::numeric_limits<float>::lowest() : 0.f;
      for (int64_t ow = 0; ow < OW_; ++ow) yr[ow] = init;
      for (int64_t i = h0; i < h1; ++i) {
        const float* __restrict row = x + (hs + i * dh_) * W_;
        for (int64_t j = 0; j < KW; ++j) {
          const int64_t lo = ow_lo_[j], hi = ow_hi_[j], off = j * dw_ - pad_l_;
          const float* __restrict src = row + off;
          if (max_) {
            if (sw_ == 1) {
              for (int64_t ow = lo; ow < hi; ++ow) yr[ow] = yr[ow] > src[ow] ? yr[ow] : src[ow];
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) yr[ow] = yr[ow] > src[ow * sw_] ? yr[ow] : src[ow * sw_];
            }
          } else {
            if (sw_ == 1) {
              for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += src[ow];
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += src[ow * sw_];
            }
          }
        }
      }
      if (!max_) {
        for (int64_t ow = 0; ow < OW_; ++ow) {
          const int64_t cnt = include_pad_ ? th_.padded[oh] * tw_.padded[ow] : (h1 - h0) * (tw_.k1[ow] - tw_.k0[ow]);
          yr[ow] = cnt > 0 ? yr[ow] / static_cast<float>(cnt) : 0.f;
        }
      }
    }
  }

  bool max_, include_pad_;
  int64_t planes_, H_, W_, OH_, OW_, dh_, dw_, sw_, pad_l_;
  Taps th_, tw_;
  std::vector<int64_t> ow_lo_, ow_hi_;
};

// The 2x2 stride-2 MaxPool of VGG-style nets (no padding, floor mode) through the ISA's vector
// kernel (kernels/conv_act_impl.h max_pool_2x2); the same result as PoolOp, which reads each tap
// with a strided scalar loop.
class MaxPool2x2Op : public Op {
 public:
  MaxPool2x2Op(const KernelTable* t, int64_t batch, int64_t planes, int64_t H, int64_t W)
      : t_(t), batch_(batch), planes_(planes), H_(static_cast<int>(H)), W_(static_cast<int>(W)) {}
  void run(const OpRun& r) override {
    const float* x = r.in[0];
    float* y = r.out[0];
    const int OH = H_ / 2, OW = W_ / 2;
    // Vector loads: about 0.1 ns per input element, so only large batches are worth a helper.
    const int threads = threads_for(planes_ * H_ * W_ / 2, r.threads);
    if (batch_ >= threads) {  // images over threads, as the conv before it shares them
      parallel_for(planes_, threads, [&](int64_t pb, int64_t pe) {
        t_->max_pool_2x2(x + pb * H_ * W_, y + pb * OH * OW, pe - pb, H_, W_, OH, OW);
      });
      return;
    }
    // Fewer images than threads (batch 1): output rows over threads, every plane. The conv before
    // it split its output rows the same way (the work pool gives thread t the t-th part of both),
    // so each core reads what it wrote; split by planes instead, each read half its input from the
    // other core, and the pool took 4x its one-thread time (vgg batch 1).
    parallel_for(OH, threads, [&](int64_t ob, int64_t oe) {
      for (int64_t p = 0; p < planes_; ++p)
        t_->max_pool_2x2(x + p * H_ * W_ + 2 * ob * W_, y + p * OH * OW + ob * OW, 1, static_cast<int>(2 * (oe - ob)),
                         W_, static_cast<int>(oe - ob), OW);
    });
  }

 private:
  const KernelTable* t_;
  int64_t batch_, planes_;
  int H_, W_;
};

std::unique_ptr<Op> make_pool(const OpInit& op, bool is_max) {
  expect_io(op, 1, 1, 1, 2);
  if (op.out_shapes.size() > 1) op.fail_unsupported("the Indices output is not supported");
  const Shape& x = op.in_shapes[0];
  const Shape& y = op.out_shapes[0];
  if (x.size() != 4 && x.size() != 3) op.fail_shape("input " + shape_str(x) + " must be [N,C,H,W] (or [N,C,W])");
  if (y.size() != x.size()) op.fail_shape("output " + shape_str(y) + " must have the input's rank " + str(x.size()));
  const bool one_d = x.size() == 3;
  const int64_t H = one_d ? 1 : x[2], W = x.back();
  const int64_t OH = one_d ? 1 : y[2], OW = y.back();
  if (y[0] != x[0] || y[1] != x[1]) op.fail_shape("output " + shape_str(y) + " must keep N and C of input " + shape_str(x));
  const std::vector<int64_t> ones{1, 1}, zeros{0, 0, 0, 0};
  const auto k = ints_attr(op, "kernel", 2);
  const auto s = ints_attr(op, "strides", 2, &ones);
  const auto pads = ints_attr(op, "pads", 4, &zeros);
  const auto d = ints_attr(op, "dilations", 2, &ones);
  for (int i = 0; i < 2; ++i) {
    if (k[i] < 1 || s[i] < 1 || d[i] < 1)
      op.fail_unsupported("kernel, strides and dilations must be positive (kernel " + ints_str(k) + ", strides " +
                          ints_str(s) + ", dilations " + ints_str(d) + ")");
  }
  for (int64_t p : pads)
    if (p < 0) op.fail_unsupported("pads must be non-negative, got " + ints_str(pads));
  if (one_d && (k[0] != 1 || pads[0] != 0 || pads[2] != 0))
    op.fail_unsupported("a 1-D pool must have kernel height 1 and no height padding");
  // Output size must be the floor or ceil form of the pooling formula.
  auto check = [&](const char* dim, int64_t in, int64_t out, int64_t kk, int64_t st, int64_t pb, int64_t pe, int64_t dil) {
    const int64_t span = in + pb + pe - ((kk - 1) * dil + 1);
    if (span < 0) op.fail_shape(std::string("the window (kernel ") + ints_str(k) + ", dilations " + ints_str(d) +
                                ") is larger than the padded input " + shape_str(x));
    const int64_t fl = span / st + 1, ce = (span + st - 1) / st + 1;
    if (out < fl || out > ce)
      op.fail_shape(std::string("output ") + dim + " " + str(out) + " does not match the pooling formula (" + str(fl) +
                    (fl == ce ? "" : " or " + str(ce)) + ") for input " + shape_str(x));
  };
  check("height", H, OH, k[0], s[0], pads[0], pads[2], d[0]);
  check("width", W, OW, k[1], s[1], pads[1], pads[3], d[1]);
  const KernelTable* t = kernel_table(variant_of(op.isa));
  if (is_max && !one_d && t && t->max_pool_2x2 && k[0] == 2 && k[1] == 2 && s[0] == 2 && s[1] == 2 && d[0] == 1 &&
      d[1] == 1 && pads == zeros && OH == H / 2 && OW == W / 2 && H * W < (int64_t{1} << 31))
    return std::make_unique<MaxPool2x2Op>(t, x[0], x[0] * x[1], H, W);
  const bool include_pad = !is_max && op.attrs.i("count_include_pad", 0) != 0;
  return std::make_unique<PoolOp>(is_max, include_pad, x[0] * x[1], H, W, OH, OW, d[0], d[1], k[1], s[1], pads[1],
                                  make_taps(OH, H, k[0], s[0], pads[0], pads[2], d[0]),
                                  make_taps(OW, W, k[1], s[1], pads[1], pads[3], d[1]));
}
std::unique_ptr<Op> make_max_pool(const OpInit& op) { return make_pool(op, true); }
std::unique_ptr<Op> make_avg_pool(const OpInit& op) { return make_pool(op, false); }

// ---------------------------------------------------------------------------------------------
// Global pools: one value per (n, c) plane over all dims >= 2.

class GlobalPoolOp : public Op {
 public:
  GlobalPoolOp(bool is_max, int64_t planes, int64_t n) : max_(is_max), planes_(planes), n_(n) {}
  void run(const OpRun& r) override {
    const float* x = r.in[0];
    float* y = r.out[0];
    parallel_for(planes_, threads_for(planes_ * n_, r.threads), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        const float* __restrict xp = x + p * n_;
        if (max_) {
          float m = std::numeric_limits<float>::lowest();
          for (int64_t i = 0; i < n_; ++i) m = std::max(m, xp[i]);
          y[p] = m;
        } else {
          y[p] = n_ ? static_cast<float>(sum_f64(xp, n_) / n_) : 0.f;
        }
      }
    });
  }

 private:
  bool max_;
  int64_t planes_, n_;
};

std::unique_ptr<Op> make_global_pool(const OpInit& op, bool is_max) {
  expect_io(op, 1, 1, 1, 1);
  const Shape& x = op.in_shapes[0];
  const Shape& y = op.out_shapes[0];
  if (x.size() < 2) op.fail_shape("input " + shape_str(x) + " must have rank >= 2 (N, C, ...)");
  Shape want(x.size(), 1);
  want[0] = x[0];
  want[1] = x[1];
  if (y != want) op.fail_shape("output " + shape_str(y) + " must be " + shape_str(want) + " for input " + shape_str(x));
  int64_t n = 1;
  for (size_t d = 2; d < x.size(); ++d) n *= x[d];
  if (n == 0) op.fail_shape("input " + shape_str(x) + " has no spatial elements to pool");
  return std::make_unique<GlobalPoolOp>(is_max, x[0] * x[1], n);
}
std::unique_ptr<Op> make_global_max_pool(const OpInit& op) { return make_global_pool(op, true); }
std::unique_ptr<Op> make_global_avg_pool(const OpInit& op) { return make_global_pool(op, false); }

PACKPTQ_REGISTER_OP("MaxPool", make_max_pool);
PACKPTQ_REGISTER_OP("AveragePool", make_avg_pool);
PACKPTQ_REGISTER_OP("GlobalMaxPool", make_global_max_pool);
PACKPTQ_REGISTER_OP("GlobalAveragePool", make_global_avg_pool);

}  // namespace
}  // namespace packptq
