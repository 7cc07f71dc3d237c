// Conv, Gemm and MatMul with their gradients: almost all of a unit's arithmetic, so every product
// goes through gx::gemm (the SIMD sgemm for float). Conv is im2col + GEMM per (sample, group), with
// the samples spread over threads and single-threaded GEMMs inside (a 16×784×144 product per sample
// is too small to split well); weight gradients are summed in per-thread partials, then reduced.
#include "train/grad_util.h"  // first: it sets the optimisation options for the whole file

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <type_traits>

#include "kernels/conv.h"
#include "kernels/gemm.h"

namespace packptq {
namespace train {
namespace {

using namespace gx;

template <typename T>
class ConvGrad : public GradOp<T> {
 public:
  explicit ConvGrad(const GradInit& in) : isa_(in.isa) {
    expect_io(in, 2, 3, 1, 1);
    const Shape& x = in.in_shapes[0];
    const Shape& w = in.in_shapes[1];
    if (x.size() != 4 || w.size() != 4) in.fail_shape("expects 4-D input and weight, got " + shape_str(x) + " and " + shape_str(w));
    const auto k = ints_attr(in, "kernel", 2), st = ints_attr(in, "strides", 2), p = ints_attr(in, "pads", 4),
               d = ints_attr(in, "dilations", 2);
    N_ = x[0], C_ = x[1], H_ = x[2], W_ = x[3], M_ = w[0], KH_ = w[2], KW_ = w[3];
    sh_ = st[0], sw_ = st[1], pt_ = p[0], pl_ = p[1], pb_ = p[2], pr_ = p[3], dh_ = d[0], dw_ = d[1];
    G_ = in.attrs.i("group", 1);
    if (G_ < 1 || C_ % G_ || M_ % G_ || w[1] != C_ / G_)
      in.fail_shape("input " + shape_str(x) + " and weight " + shape_str(w) + " do not fit group " + str(G_));
    if (sh_ < 1 || sw_ < 1 || dh_ < 1 || dw_ < 1) in.fail_shape("strides and dilations must be >= 1");
    if (k[0] != KH_ || k[1] != KW_) in.fail_shape("kernel " + shape_str(k) + " does not match the weight " + shape_str(w));
    for (int64_t v : p)
      if (v < 0) in.fail_unsupported("negative pads are not supported");
    OH_ = (H_ + p[0] + p[2] - dh_ * (KH_ - 1) - 1) / sh_ + 1;
    OW_ = (W_ + p[1] + p[3] - dw_ * (KW_ - 1) - 1) / sw_ + 1;
    const Shape want{N_, M_, OH_, OW_};
    if (OH_ < 1 || OW_ < 1 || in.out_shapes[0] != want)
      in.fail_shape("output shape " + shape_str(in.out_shapes[0]) + " but the convolution gives " + shape_str(want));
    has_bias_ = in.has_input(2);
    if (has_bias_ && numel(in.in_shapes[2]) != M_) in.fail_shape("bias must have " + str(M_) + " elements");
    Cg_ = C_ / G_, Mg_ = M_ / G_, Kc_ = Cg_ * KH_ * KW_, P_ = OH_ * OW_;
    // A 1×1, stride-1, unpadded conv reads the input as its own im2col matrix.
    direct_ = KH_ == 1 && KW_ == 1 && sh_ == 1 && sw_ == 1 && p[0] == 0 && p[1] == 0 && p[2] == 0 && p[3] == 0;
    // The weight gradient needs every sample's im2col matrix: keep them from the forward pass.
    // float with enough channels per group takes the channels-last weight gradient (below), which
    // builds its patches per sample; otherwise the im2col matrices are kept from the forward pass.
    // float with stride 1 takes the windowed weight gradient (below): no patch matrix at all.
    // Each window's dot product ends in a lane reduction, so it pays only for long ones: at 7×7
    // (63 per window) it ran resnet20's last block at half the speed of the channels-last path,
    // at 28×28 (840) 1.2–1.5× faster per step; 14×14 (224) was a wash.
    // One input channel per group (depthwise, or a single-channel stem) with short windows takes
    // direct loops over the taps (dw_weight_grad); with long ones the windowed path measured faster
    // (mobilenetv2's 28x28 stem and first depthwise conv: 1.6x).
    const int64_t window = direct_ ? H_ * W_ : OH_ * (W_ + p[1] + p[3]);
    windowed_dw_ = std::is_same<T, float>::value && in.wants_grad(1) && sh_ == 1 && sw_ == 1 && window >= 256;
    depthwise_ = Cg_ == 1 && !windowed_dw_;
    channels_last_dw_ = std::is_same<T, float>::value && in.wants_grad(1) && !direct_ && !windowed_dw_ && Cg_ >= 8;
    keep_cols_ = in.wants_grad(1) && !direct_ && !channels_last_dw_ && !windowed_dw_ && !depthwise_;
    if (keep_cols_) cols_.assign(static_cast<size_t>(N_ * G_ * Kc_ * P_), T(0));
    auto i32 = [](int64_t v) { return static_cast<int>(v); };
    conv_shape_.N = i32(N_), conv_shape_.C = i32(C_), conv_shape_.H = i32(H_), conv_shape_.W = i32(W_), conv_shape_.M = i32(M_);
    conv_shape_.KH = i32(KH_), conv_shape_.KW = i32(KW_), conv_shape_.stride_h = i32(sh_), conv_shape_.stride_w = i32(sw_);
    conv_shape_.pad_top = i32(p[0]), conv_shape_.pad_left = i32(p[1]), conv_shape_.pad_bottom = i32(p[2]), conv_shape_.pad_right = i32(p[3]);
    conv_shape_.dil_h = i32(dh_), conv_shape_.dil_w = i32(dw_), conv_shape_.group = i32(G_);
    const int64_t eh = dh_ * (KH_ - 1), ew = dw_ * (KW_ - 1);
    transposed_ok_ = std::is_same<T, float>::value && in.wants_grad(0) && sh_ == 1 && sw_ == 1 && p[0] <= eh && p[2] <= eh &&
                     p[1] <= ew && p[3] <= ew;
    if (transposed_ok_) {
      transposed_shape_ = conv_shape_;
      transposed_shape_.C = i32(M_), transposed_shape_.H = i32(OH_), transposed_shape_.W = i32(OW_), transposed_shape_.M = i32(C_);
      transposed_shape_.pad_top = i32(eh - p[0]), transposed_shape_.pad_bottom = i32(eh - p[2]);
      transposed_shape_.pad_left = i32(ew - p[1]), transposed_shape_.pad_right = i32(ew - p[3]);
      wflip_.assign(static_cast<size_t>(M_ * Kc_), 0.f);  // gtmp_ only when dX has other writers
    }
  }

  void forward(const GradArgs<T>& a) override {
    if constexpr (std::is_same<T, float>::value) {
      forward_kernel(a);
      return;
    }
    const T* x = a.in[0];
    const T* w = a.in[1];
    const T* bias = has_bias_ ? a.in[2] : nullptr;
    T* y = a.out[0];
    const int outer = N_ >= a.threads ? a.threads : 1, inner = outer == 1 ? a.threads : 1;
    ensure_scratch(outer, direct_ ? 0 : Kc_ * P_);
    parallel_chunks(N_, outer, [&](int tid, int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t g = 0; g < G_; ++g) {
          const T* xg = x + (n * C_ + g * Cg_) * H_ * W_;
          const T* col = xg;
          if (!direct_) {
            T* c = keep_cols_ ? cols_.data() + (n * G_ + g) * Kc_ * P_ : scratch_[tid].data();
            im2col(xg, c);
            col = c;
          }
          T* yg = y + (n * M_ + g * Mg_) * P_;
          gemm(isa_, false, false, Mg_, P_, Kc_, w + g * Mg_ * Kc_, Kc_, col, P_, yg, P_, false, inner);
          if (bias)
            for (int64_t m = 0; m < Mg_; ++m) {
              const T b = bias[g * Mg_ + m];
              T* row = yg + m * P_;
              for (int64_t i = 0; i < P_; ++i) row[i] += b;
            }
        }
    });
  }

  // dX is assigned when the stride-1 float path computes it as one convolution (float only).
  bool assigns_input_grad(size_t k) const override { return k == 0 && transposed_ok_; }

  void backward(const GradArgs<T>& a) override {
    const T* x = a.in[0];
    const T* w = a.in[1];
    const T* gy = a.gout[0];
    T* gxp = a.gin[0];
    T* gw = a.gin[1];
    T* gb = has_bias_ ? a.gin[2] : nullptr;
    if (gb)  // eight lane sums per row: a single running sum does not vectorise
      for (int64_t n = 0; n < N_; ++n)
        for (int64_t m = 0; m < M_; ++m) {
          T acc[8] = {};
          lane_sum(gy + (n * M_ + m) * P_, P_, acc);
          gb[m] += lanes_total(acc);
        }
    if (!gxp && !gw) return;
    if constexpr (std::is_same<T, float>::value) {
      if (gxp && transposed_ok_) {
        input_grad_kernel(w, gy, gxp, a.threads, a.fresh(0));
        gxp = nullptr;  // done: the loop below computes only the weight gradient
      }
      if (gw && windowed_dw_) {
        weight_grad_windowed(x, gy, gw, a.threads);
        gw = nullptr;
      }
      if (gw && channels_last_dw_) {
        weight_grad_channels_last(x, gy, gw, a.threads);
        gw = nullptr;
      }
      if (!gxp && !gw) return;
    }
    if (depthwise_) {
      if (gw) dw_weight_grad(x, gy, gw, a.threads);
      if (gxp) dw_input_grad(w, gy, gxp, a.threads);
      return;
    }
    const int outer = N_ >= a.threads ? a.threads : 1, inner = outer == 1 ? a.threads : 1;
    const int64_t wsize = M_ * Kc_;
    ensure_scratch(outer, gxp && !direct_ ? Kc_ * P_ : 0);
    if (gw) {
      partial_.resize(outer);
      for (auto& p : partial_) p.assign(static_cast<size_t>(wsize), T(0));
    }
    const int used = parallel_chunks(N_, outer, [&](int tid, int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t g = 0; g < G_; ++g) {
          const T* gyg = gy + (n * M_ + g * Mg_) * P_;
          if (gw) {
            const T* col = direct_ ? x + (n * C_ + g * Cg_) * H_ * W_ : cols_.data() + (n * G_ + g) * Kc_ * P_;
            // dW_gᵀ [Kc×Mg] += col [Kc×P] · dY_gᵀ [P×Mg]. Transposed on purpose: the GEMM packs its
            // A operand from contiguous rows, so the big im2col matrix goes there and only the thin
            // dY (Mg rows, usually one register panel wide) takes the strided transposed packing.
            gemm(isa_, false, true, Kc_, Mg_, P_, col, P_, gyg, P_, partial_[tid].data() + g * Mg_ * Kc_, Mg_, true, inner);
          }
          if (gxp) {
            T* gxg = gxp + (n * C_ + g * Cg_) * H_ * W_;
            // dcol = W_gᵀ [Kc×Mg] · dY_g [Mg×P]; for a direct conv that is dX itself.
            if (direct_) {
              gemm(isa_, true, false, Kc_, P_, Mg_, w + g * Mg_ * Kc_, Kc_, gyg, P_, gxg, P_, true, inner);
            } else {
              T* dcol = scratch_[tid].data();
              gemm(isa_, true, false, Kc_, P_, Mg_, w + g * Mg_ * Kc_, Kc_, gyg, P_, dcol, P_, false, inner);
              col2im_add(dcol, gxg);
            }
          }
        }
    });
    if (gw)  // partials hold each group's dWᵀ [Kc×Mg]
      for (int t = 0; t < used; ++t) {
        const T* p = partial_[t].data();
        for (int64_t g = 0; g < G_; ++g)
          for (int64_t k = 0; k < Kc_; ++k)
            for (int64_t m = 0; m < Mg_; ++m) gw[(g * Mg_ + m) * Kc_ + k] += p[(g * Kc_ + k) * Mg_ + m];
      }
  }

 private:
  // float: the inference convolution kernels (kernels/conv.h, prepared once, weights refreshed
  // every step since AdaRound changes them), plus the im2col the weight gradient needs.
  void forward_kernel(const GradArgs<T>& a) {
    const float* x = a.in[0];
    const float* w = a.in[1];
    const float* bias = has_bias_ ? a.in[2] : nullptr;
    if (!fwd_) fwd_ = prepare_conv(isa_, conv_shape_, w, bias);
    else fwd_->update_weights(w, bias);
    fwd_->run(x, a.out[0], a.threads);
    if (keep_cols_)
      parallel_chunks(N_, N_ >= a.threads ? a.threads : 1, [&](int, int64_t n0, int64_t n1) {
        for (int64_t n = n0; n < n1; ++n)
          for (int64_t g = 0; g < G_; ++g) im2col(x + (n * C_ + g * Cg_) * H_ * W_, cols_.data() + (n * G_ + g) * Kc_ * P_);
      });
  }

  // With stride 1 the input gradient is itself a convolution: of dY with the kernel flipped in
  // space and its in/out channels swapped (per group), padded by d·(k−1) − pad. That reuses the
  // fast forward kernel instead of a thin Wᵀ·dY product (K = output channels, often 16) + col2im.
  void input_grad_kernel(const float* w, const float* gy, float* gxp, int threads, bool assign) {
    const int64_t taps = KH_ * KW_;
    for (int64_t g = 0; g < G_; ++g)
      for (int64_t m = 0; m < Mg_; ++m)
        for (int64_t c = 0; c < Cg_; ++c) {
          const float* src = w + ((g * Mg_ + m) * Cg_ + c) * taps;
          float* dst = wflip_.data() + ((g * Cg_ + c) * Mg_ + m) * taps;
          for (int64_t t = 0; t < taps; ++t) dst[t] = src[taps - 1 - t];
        }
    if (!bwd_) bwd_ = prepare_conv(isa_, transposed_shape_, wflip_.data(), nullptr);
    else bwd_->update_weights(wflip_.data(), nullptr);
    if (assign) {  // the first gradient written into dX: straight into it
      bwd_->run(gy, gxp, threads);
      return;
    }
    if (gtmp_.empty()) gtmp_.assign(static_cast<size_t>(N_ * C_ * H_ * W_), 0.f);
    bwd_->run(gy, gtmp_.data(), threads);
    const int64_t total = N_ * C_ * H_ * W_;
    for (int64_t i = 0; i < total; ++i) gxp[i] += gtmp_[i];
  }

  // The weight gradient for float without the im2col matrix in the GEMM's awkward orientation: each
  // sample's input is copied channels-last with its padding ([Hp][Wp][Cg] per group), so the patch
  // matrix colsT [P × KH·KW·Cg] is built from contiguous Cg-float copies, and
  //   dW_g [Mg × KH·KW·Cg] += dY_g [Mg × P] · colsT
  // takes B untransposed, which the GEMM packs with plain row copies. (Packing a [Kc × P] im2col
  // transposed cost as much as the multiply itself.) The tap-major columns are permuted back to
  // ONNX's [c][kh][kw] order in the final reduction.
  void weight_grad_channels_last(const float* x, const float* gy, float* gw, int threads) {
    const int64_t Hp = H_ + pt_ + pb_, Wp = W_ + pl_ + pr_, taps = KH_ * KW_, K2 = taps * Cg_;
    const int outer = N_ >= threads ? threads : 1, inner = outer == 1 ? threads : 1;
    const int64_t xt_size = Hp * Wp * Cg_;
    // Several samples per GEMM (K = nb·P): on small planes one sample's P (49 at 7×7) is too short
    // a reduction for the GEMM to amortise its packing. The batch's patch rows stay within ~2 MB.
    const int64_t nb = std::max<int64_t>(1, std::min<int64_t>(N_, (int64_t(1) << 19) / std::max<int64_t>(1, P_ * K2)));
    ensure_scratch(outer, xt_size + nb * P_ * K2 + Mg_ * nb * P_);
    partial_.resize(outer);
    for (auto& p : partial_) p.assign(static_cast<size_t>(M_ * K2), 0.f);
    const int used = parallel_chunks(N_, outer, [&](int tid, int64_t n0, int64_t n1) {
      float* xT = scratch_[tid].data();
      float* colsT = xT + xt_size;
      float* dy = colsT + nb * P_ * K2;
      float* part = partial_[tid].data();
      for (int64_t b0 = n0; b0 < n1; b0 += nb) {
        const int64_t cnt = std::min(nb, n1 - b0), KK = cnt * P_;
        for (int64_t g = 0; g < G_; ++g) {
          for (int64_t i = 0; i < cnt; ++i) {
            const int64_t n = b0 + i;
            const float* xg = x + (n * C_ + g * Cg_) * H_ * W_;
            std::fill(xT, xT + xt_size, 0.f);
            for (int64_t c = 0; c < Cg_; ++c)
              for (int64_t h = 0; h < H_; ++h) {
                const float* src = xg + (c * H_ + h) * W_;
                float* dst = xT + ((h + pt_) * Wp + pl_) * Cg_ + c;
                for (int64_t w = 0; w < W_; ++w) dst[w * Cg_] = src[w];
              }
            for (int64_t oh = 0; oh < OH_; ++oh)
              for (int64_t ow = 0; ow < OW_; ++ow) {
                float* dst = colsT + (i * P_ + oh * OW_ + ow) * K2;
                for (int64_t kh = 0; kh < KH_; ++kh)
                  for (int64_t kw = 0; kw < KW_; ++kw)
                    std::memcpy(dst + (kh * KW_ + kw) * Cg_, xT + ((oh * sh_ + kh * dh_) * Wp + ow * sw_ + kw * dw_) * Cg_,
                                sizeof(float) * Cg_);
              }
            // dY rows side by side: row m of the batch's [Mg × cnt·P] operand.
            for (int64_t m = 0; m < Mg_; ++m)
              std::memcpy(dy + m * KK + i * P_, gy + (n * M_ + g * Mg_ + m) * P_, sizeof(float) * P_);
          }
          gemm(isa_, false, false, Mg_, K2, KK, dy, KK, colsT, K2, part + g * Mg_ * K2, K2, true, inner);
        }
      }
    });
    for (int t = 0; t < used; ++t) {
      const float* p = partial_[t].data();
      for (int64_t m = 0; m < M_; ++m)
        for (int64_t c = 0; c < Cg_; ++c)
          for (int64_t k = 0; k < taps; ++k) gw[(m * Cg_ + c) * taps + k] += p[m * K2 + k * Cg_ + c];
    }
  }

  // The weight gradient of a stride-1 float conv as windowed dot products (kernels/gemm.h):
  //   dW_g[m, (c,kh,kw)] += Σ_q dYp[m, q] · Xp[c, q + kh·dh·Wp + kw·dw]
  // where Xp is the sample's input zero-padded to Hp × Wp and dYp is dY with its rows laid at
  // width Wp (columns OW..Wp−1 zero). With stride 1, q = oh·Wp + ow walks output positions and
  // q + offset the input element tap (kh, kw) reads, so every row of the patch matrix is a
  // contiguous window of Xp: no im2col, no transposed packing, and both operands stream along q.
  // The zero columns of dYp cancel the windows' wrap into the next row (a (Wp/OW − 1) share of
  // extra multiply-adds). Each plane keeps (KW−1)·dw zeros after it for the last window's tail.
  // A 1×1 unpadded conv reads x and dY in place.
  void weight_grad_windowed(const float* x, const float* gy, float* gw, int threads) {
    const int outer = N_ >= threads ? threads : 1;
    const int64_t Hp = direct_ ? H_ : H_ + pt_ + pb_, Wp = direct_ ? W_ : W_ + pl_ + pr_;
    const int64_t plane = direct_ ? P_ : Hp * Wp + (KW_ - 1) * dw_, L = direct_ ? P_ : OH_ * Wp;
    const int64_t xsize = direct_ ? 0 : Cg_ * plane, ysize = direct_ ? 0 : Mg_ * L;
    if (static_cast<int64_t>(win_off_.size()) != Kc_) {
      win_off_.resize(static_cast<size_t>(Kc_));
      for (int64_t c = 0; c < Cg_; ++c)
        for (int64_t kh = 0; kh < KH_; ++kh)
          for (int64_t kw = 0; kw < KW_; ++kw) win_off_[(c * KH_ + kh) * KW_ + kw] = c * plane + kh * dh_ * Wp + kw * dw_;
    }
    // The padding (and dYp's extra columns) is written once as zeros and never touched again.
    if (static_cast<int>(win_scratch_.size()) < outer) win_scratch_.resize(outer);
    for (int t = 0; t < outer; ++t)
      if (static_cast<int64_t>(win_scratch_[t].size()) != xsize + ysize) win_scratch_[t].assign(static_cast<size_t>(xsize + ysize), 0.f);
    partial_.resize(outer);
    for (auto& p : partial_) p.assign(static_cast<size_t>(M_ * Kc_), 0.f);
    const int used = parallel_chunks(N_, outer, [&](int tid, int64_t n0, int64_t n1) {
      float* xp = win_scratch_[tid].data();
      float* yp = xp + xsize;
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t g = 0; g < G_; ++g) {
          const float* xg = x + (n * C_ + g * Cg_) * H_ * W_;
          const float* gyg = gy + (n * M_ + g * Mg_) * P_;
          const float* A = gyg;
          const float* B = xg;
          if (!direct_) {
            for (int64_t c = 0; c < Cg_; ++c)
              for (int64_t h = 0; h < H_; ++h)
                std::memcpy(xp + c * plane + (h + pt_) * Wp + pl_, xg + (c * H_ + h) * W_, sizeof(float) * W_);
            for (int64_t m = 0; m < Mg_; ++m)
              for (int64_t oh = 0; oh < OH_; ++oh) std::memcpy(yp + m * L + oh * Wp, gyg + (m * OH_ + oh) * OW_, sizeof(float) * OW_);
            A = yp;
            B = xp;
          }
          dot_windows(isa_, A, L, static_cast<int>(Mg_), B, win_off_.data(), static_cast<int>(Kc_), L,
                      partial_[tid].data() + g * Mg_ * Kc_, Kc_);
        }
    });
    for (int t = 0; t < used; ++t) {
      const float* p = partial_[t].data();
      for (int64_t i = 0; i < M_ * Kc_; ++i) gw[i] += p[i];
    }
  }

  // Depthwise gradients as direct loops over the taps. The GEMM path ran one tiny product per
  // sample and channel (K = 9, a single output row: 12k GEMM calls per step for a 384-channel 7x7
  // layer at batch 32) on an im2col kept from the forward pass; with that im2col it was a third of
  // a mobilenetv2 unit's reconstruction step.
  //   dW[m, kh, kw] += Σ_n Σ_(oh,ow) dY[n, m, oh, ow] · X[n, g(m), oh·sh − pt + kh·dh, ow·sw − pl + kw·dw]
  // As in conv.cpp, each sample's plane is copied zero-padded and split by stride phase (phase
  // (a, b) holds padded rows a, a+sh, ... and columns b, b+sw, ...), and dY's rows are laid at the
  // phase width Wq with zero gaps: then every tap's sum is one contiguous dot product of length
  // OH·Wq (rows of 7 made the row-by-row loop mostly loop overhead). Eight lane sums per tap keep
  // the order fixed, whatever the thread count, and the loop a vector multiply-add.
  void dw_weight_grad(const T* x, const T* gy, T* gw, int threads) {
    const int64_t taps = KH_ * KW_;
    const int64_t Hp = H_ + pt_ + pb_, Wp = W_ + pl_ + pr_;
    const int64_t Hq = (Hp + sh_ - 1) / sh_, Wq = (Wp + sw_ - 1) / sw_, phase = Hq * Wq, L = OH_ * Wq;
    // A tap's window starts at most (KW−1)·dw/sw columns into its plane and may run past the last
    // plane by as much (those products meet dY's zero gaps).
    const int64_t xsize = sh_ * sw_ * phase + (KW_ - 1) * dw_ / sw_ + 1;
    std::vector<int64_t> base(static_cast<size_t>(taps));
    for (int64_t kh = 0; kh < KH_; ++kh)
      for (int64_t kw = 0; kw < KW_; ++kw) {
        const int64_t rr = kh * dh_, cc = kw * dw_;
        base[kh * KW_ + kw] = ((rr % sh_) * sw_ + cc % sw_) * phase + (rr / sh_) * Wq + cc / sw_;
      }
    // Where input row ih and input column iw land in the phase planes.
    std::vector<int64_t> row_at(static_cast<size_t>(H_)), col_at(static_cast<size_t>(W_));
    for (int64_t ih = 0; ih < H_; ++ih) row_at[ih] = ((ih + pt_) % sh_) * sw_ * phase + ((ih + pt_) / sh_) * Wq;
    for (int64_t iw = 0; iw < W_; ++iw) col_at[iw] = ((iw + pl_) % sw_) * phase + (iw + pl_) / sw_;
    parallel_chunks(M_, threads_for(N_ * M_ * taps * P_, threads), [&](int, int64_t m0, int64_t m1) {
      // Padding positions and dY's gaps are never written: zero from here on.
      std::vector<T> xq(static_cast<size_t>(xsize), T(0)), yq(static_cast<size_t>(L), T(0)), acc(static_cast<size_t>(taps * 8));
      for (int64_t m = m0; m < m1; ++m) {
        const int64_t g = m / Mg_;
        std::fill(acc.begin(), acc.end(), T(0));
        for (int64_t n = 0; n < N_; ++n) {
          const T* xp = x + (n * C_ + g) * H_ * W_;
          for (int64_t ih = 0; ih < H_; ++ih) {
            T* __restrict row = xq.data() + row_at[ih];
            const T* __restrict src = xp + ih * W_;
            if (sw_ == 1) std::copy(src, src + W_, row + pl_);
            else
              for (int64_t iw = 0; iw < W_; ++iw) row[col_at[iw]] = src[iw];
          }
          const T* gp = gy + (n * M_ + m) * P_;
          for (int64_t oh = 0; oh < OH_; ++oh) std::copy(gp + oh * OW_, gp + (oh + 1) * OW_, yq.begin() + oh * Wq);
          for (int64_t t = 0; t < taps; ++t) lane_dot(yq.data(), xq.data() + base[t], L, acc.data() + t * 8);
        }
        for (int64_t t = 0; t < taps; ++t) gw[m * taps + t] += lanes_total(acc.data() + t * 8);
      }
    });
  }

  // acc[j] += Σ a[q]·b[q] (lane_dot) or Σ a[q] (lane_sum) over q ≡ j (mod 8): eight independent sums
  // the compiler can keep in vectors, added up in a fixed order by lanes_total.
  static void lane_dot(const T* __restrict a, const T* __restrict b, int64_t L, T* __restrict acc) {
    int64_t q = 0;
    for (; q + 8 <= L; q += 8)
      for (int j = 0; j < 8; ++j) acc[j] += a[q + j] * b[q + j];
    for (int j = 0; q < L; ++q, ++j) acc[j] += a[q] * b[q];
  }
  static void lane_sum(const T* __restrict a, int64_t L, T* __restrict acc) {
    int64_t q = 0;
    for (; q + 8 <= L; q += 8)
      for (int j = 0; j < 8; ++j) acc[j] += a[q + j];
    for (int j = 0; q < L; ++q, ++j) acc[j] += a[q];
  }
  static T lanes_total(const T* acc) {
    T s = 0;
    for (int j = 0; j < 8; ++j) s += acc[j];
    return s;
  }

  //   dX[n, g, ih, iw] += Σ dY[n, m, oh, ow] · W[m, kh, kw] over the group's outputs m and the taps
  // reading (ih, iw); one (sample, channel) plane per work item, so no two threads write one plane.
  void dw_input_grad(const T* w, const T* gy, T* gx, int threads) {
    const int64_t taps = KH_ * KW_;
    parallel_chunks(N_ * G_, threads_for(N_ * M_ * taps * P_, threads), [&](int, int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t n = i / G_, g = i % G_;
        T* gxp = gx + (n * C_ + g) * H_ * W_;
        for (int64_t j = 0; j < Mg_; ++j) {
          const int64_t m = g * Mg_ + j;
          const T* gp = gy + (n * M_ + m) * P_;
          for (int64_t kh = 0; kh < KH_; ++kh)
            for (int64_t kw = 0; kw < KW_; ++kw) {
              const T wt = w[m * taps + kh * KW_ + kw];
              tap_rows(kh, kw, [&](int64_t oh, int64_t ih, int64_t lo, int64_t hi, int64_t off) {
                T* __restrict dst = gxp + ih * W_ + off;
                const T* __restrict src = gp + oh * OW_;
                if (sw_ == 1)
                  for (int64_t ow = lo; ow < hi; ++ow) dst[ow] += src[ow] * wt;
                else
                  for (int64_t ow = lo; ow < hi; ++ow) dst[ow * sw_] += src[ow] * wt;
              });
            }
        }
      }
    });
  }

  void ensure_scratch(int threads, int64_t size) {
    if (static_cast<int>(scratch_.size()) < threads) scratch_.resize(threads);
    for (int t = 0; t < threads; ++t)
      if (static_cast<int64_t>(scratch_[t].size()) < size) scratch_[t].assign(static_cast<size_t>(size), T(0));
  }

  // Output columns [lo, hi) whose tap at kernel column kw lands inside the input row.
  void col_range(int64_t kw, int64_t* lo, int64_t* hi) const {
    const int64_t off = kw * dw_ - pl_;
    // ow·sw + off ≥ 0  and  ow·sw + off ≤ W−1
    int64_t l = off >= 0 ? 0 : (-off + sw_ - 1) / sw_;
    int64_t h = W_ - 1 - off < 0 ? 0 : (W_ - 1 - off) / sw_ + 1;
    *lo = std::min(l, OW_);
    *hi = std::max(*lo, std::min(h, OW_));
  }

  // For kernel tap (kh, kw): fn(oh, ih, lo, hi, off) for every output row oh whose tap row ih lies
  // inside the input; its output columns [lo, hi) read input columns ow·sw + off.
  template <typename Fn>
  void tap_rows(int64_t kh, int64_t kw, Fn&& fn) const {
    int64_t lo, hi;
    col_range(kw, &lo, &hi);
    const int64_t off = kw * dw_ - pl_;
    for (int64_t oh = 0; oh < OH_; ++oh) {
      const int64_t ih = oh * sh_ - pt_ + kh * dh_;
      if (ih >= 0 && ih < H_) fn(oh, ih, lo, hi, off);
    }
  }

  // col[(c·KH + kh)·KW + kw, oh·OW + ow] = x[c, oh·sh − pt + kh·dh, ow·sw − pl + kw·dw] (0 outside).
  void im2col(const T* x, T* col) const {
    for (int64_t c = 0; c < Cg_; ++c)
      for (int64_t kh = 0; kh < KH_; ++kh)
        for (int64_t kw = 0; kw < KW_; ++kw) {
          T* row = col + ((c * KH_ + kh) * KW_ + kw) * P_;
          int64_t lo, hi;
          col_range(kw, &lo, &hi);
          const int64_t off = kw * dw_ - pl_;
          for (int64_t oh = 0; oh < OH_; ++oh) {
            T* dst = row + oh * OW_;
            const int64_t ih = oh * sh_ - pt_ + kh * dh_;
            if (ih < 0 || ih >= H_) {
              std::fill(dst, dst + OW_, T(0));
              continue;
            }
            const T* src = x + (c * H_ + ih) * W_ + off;
            std::fill(dst, dst + lo, T(0));
            if (sw_ == 1) std::memcpy(dst + lo, src + lo, sizeof(T) * (hi - lo));
            else
              for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * sw_];
            std::fill(dst + hi, dst + OW_, T(0));
          }
        }
  }

  // The adjoint of im2col: every column entry adds back onto the input element it was read from.
  void col2im_add(const T* col, T* gx) const {
    for (int64_t c = 0; c < Cg_; ++c)
      for (int64_t kh = 0; kh < KH_; ++kh)
        for (int64_t kw = 0; kw < KW_; ++kw) {
          const T* row = col + ((c * KH_ + kh) * KW_ + kw) * P_;
          tap_rows(kh, kw, [&](int64_t oh, int64_t ih, int64_t lo, int64_t hi, int64_t off) {
            const T* src = row + oh * OW_;
            T* dst = gx + (c * H_ + ih) * W_ + off;
            if (sw_ == 1)
              for (int64_t ow = lo; ow < hi; ++ow) dst[ow] += src[ow];
            else
              for (int64_t ow = lo; ow < hi; ++ow) dst[ow * sw_] += src[ow];
          });
        }
  }

  Isa isa_;
  int64_t N_, C_, H_, W_, M_, KH_, KW_, sh_, sw_, pt_, pl_, pb_ = 0, pr_ = 0, dh_, dw_, G_, OH_, OW_;
  int64_t Cg_ = 0, Mg_ = 0, Kc_ = 0, P_ = 0;
  bool has_bias_ = false, direct_ = false, keep_cols_ = false, transposed_ok_ = false, channels_last_dw_ = false,
       windowed_dw_ = false, depthwise_ = false;
  std::vector<long> win_off_;
  std::vector<std::vector<float>> win_scratch_;
  std::vector<T> cols_;
  ConvShape conv_shape_, transposed_shape_;
  std::unique_ptr<PreparedConv> fwd_, bwd_;
  std::vector<float> wflip_, gtmp_;
  std::vector<std::vector<T>> scratch_, partial_;
};

// Y = alpha · op(A) · op(B) + beta · C, C unidirectionally broadcast to [M, N].
template <typename T>
class GemmGrad : public GradOp<T> {
 public:
  explicit GemmGrad(const GradInit& in) : isa_(in.isa) {
    expect_io(in, 2, 3, 1, 1);
    const Shape& a = in.in_shapes[0];
    const Shape& b = in.in_shapes[1];
    if (a.size() != 2 || b.size() != 2) in.fail_shape("expects 2-D A and B, got " + shape_str(a) + " and " + shape_str(b));
    ta_ = in.attrs.i("transA", 0) != 0;
    tb_ = in.attrs.i("transB", 0) != 0;
    alpha_ = static_cast<T>(in.attrs.f("alpha", 1.0));
    beta_ = static_cast<T>(in.attrs.f("beta", 1.0));
    M_ = ta_ ? a[1] : a[0];
    K_ = ta_ ? a[0] : a[1];
    N_ = tb_ ? b[0] : b[1];
    if ((tb_ ? b[1] : b[0]) != K_) in.fail_shape("inner dimensions differ: A " + shape_str(a) + ", B " + shape_str(b));
    if (in.out_shapes[0] != Shape{M_, N_}) in.fail_shape("output shape " + shape_str(in.out_shapes[0]) + " should be [" + str(M_) + "," + str(N_) + "]");
    has_c_ = in.has_input(2);
    if (has_c_) {
      Shape c = in.in_shapes[2];
      if (c.size() > 2) in.fail_shape("C " + shape_str(c) + " has rank > 2");
      while (c.size() < 2) c.insert(c.begin(), 1);
      if ((c[0] != 1 && c[0] != M_) || (c[1] != 1 && c[1] != N_))
        in.fail_shape("C " + shape_str(in.in_shapes[2]) + " does not broadcast to [" + str(M_) + "," + str(N_) + "]");
      c_rows_ = c[0];
      c_cols_ = c[1];
    }
  }

  void forward(const GradArgs<T>& a) override {
    T* y = a.out[0];
    gemm(isa_, ta_, tb_, M_, N_, K_, a.in[0], ta_ ? M_ : K_, a.in[1], tb_ ? K_ : N_, y, N_, false, a.threads);
    if (alpha_ != T(1))
      for (int64_t i = 0; i < M_ * N_; ++i) y[i] *= alpha_;
    if (has_c_ && beta_ != T(0))
      for (int64_t m = 0; m < M_; ++m)
        for (int64_t n = 0; n < N_; ++n) y[m * N_ + n] += beta_ * c_at(a.in[2], m, n);
  }

  void backward(const GradArgs<T>& a) override {
    const T* A = a.in[0];
    const T* B = a.in[1];
    const T* gy = a.gout[0];
    const int64_t lda = ta_ ? M_ : K_, ldb = tb_ ? K_ : N_;
    // sgemm has no alpha: scale a copy of the output gradient instead.
    if (alpha_ != T(1) && (a.gin[0] || a.gin[1])) {
      scaled_.assign(gy, gy + M_ * N_);
      for (auto& v : scaled_) v *= alpha_;
      gy = scaled_.data();
    }
    if (T* gA = a.gin[0]) {
      if (!ta_)  // dA [M,K] = dY · op(B)ᵀ
        gemm(isa_, false, !tb_, M_, K_, N_, gy, N_, B, ldb, gA, K_, true, a.threads);
      else  // A stored [K,M]: dA = op(B) · dYᵀ
        gemm(isa_, tb_, true, K_, M_, N_, B, ldb, gy, N_, gA, M_, true, a.threads);
    }
    if (T* gB = a.gin[1]) {
      if (!tb_)  // dB [K,N] = op(A)ᵀ · dY
        gemm(isa_, !ta_, false, K_, N_, M_, A, lda, gy, N_, gB, N_, true, a.threads);
      else  // B stored [N,K]: dB = dYᵀ · op(A)
        gemm(isa_, true, ta_, N_, K_, M_, gy, N_, A, lda, gB, K_, true, a.threads);
    }
    if (has_c_ && a.gin[2]) {
      T* gC = a.gin[2];
      const T* g0 = a.gout[0];
      for (int64_t m = 0; m < M_; ++m)
        for (int64_t n = 0; n < N_; ++n) gC[(c_rows_ == 1 ? 0 : m) * c_cols_ + (c_cols_ == 1 ? 0 : n)] += beta_ * g0[m * N_ + n];
    }
  }

 private:
  T c_at(const T* c, int64_t m, int64_t n) const { return c[(c_rows_ == 1 ? 0 : m) * c_cols_ + (c_cols_ == 1 ? 0 : n)]; }

  Isa isa_;
  bool ta_ = false, tb_ = false, has_c_ = false;
  T alpha_ = 1, beta_ = 1;
  int64_t M_ = 0, N_ = 0, K_ = 0, c_rows_ = 1, c_cols_ = 1;
  std::vector<T> scaled_;
};

// numpy matmul with batch broadcasting, plus the canonical linear layer's optional bias (one value
// per output column). Gradients of a broadcast operand sum over the batches that share it; batches
// are grouped by the operand block they touch so threads never write the same block.
template <typename T>
class MatMulGrad : public GradOp<T> {
 public:
  explicit MatMulGrad(const GradInit& in) : isa_(in.isa) {
    expect_io(in, 2, 3, 1, 1);
    Shape a = in.in_shapes[0], b = in.in_shapes[1];
    if (a.empty() || b.empty()) in.fail_shape("MatMul operands must have rank >= 1");
    if (a.size() == 1) a.insert(a.begin(), 1);
    if (b.size() == 1) b.push_back(1);
    M_ = a[a.size() - 2], K_ = a.back(), N_ = b.back();
    if (b[b.size() - 2] != K_) in.fail_shape("inner dimensions differ: " + shape_str(in.in_shapes[0]) + " x " + shape_str(in.in_shapes[1]));
    Shape ab(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
    const size_t r = std::max(ab.size(), bb.size());
    while (ab.size() < r) ab.insert(ab.begin(), 1);
    while (bb.size() < r) bb.insert(bb.begin(), 1);
    Shape out;
    batch_ = 1;
    for (size_t i = 0; i < r; ++i) {
      if (ab[i] != bb[i] && ab[i] != 1 && bb[i] != 1)
        in.fail_shape("batch dimensions do not broadcast: " + shape_str(in.in_shapes[0]) + " x " + shape_str(in.in_shapes[1]));
      out.push_back(std::max(ab[i], bb[i]));
      batch_ *= out.back();
    }
    // The output must be the matmul's shape (1-D operands drop their promoted dim).
    Shape want = out;
    if (in.in_shapes[0].size() > 1) want.push_back(M_);
    if (in.in_shapes[1].size() > 1) want.push_back(N_);
    if (in.out_shapes[0] != want) in.fail_shape("output shape " + shape_str(in.out_shapes[0]) + " should be " + shape_str(want));
    has_bias_ = in.has_input(2);
    if (has_bias_ && numel(in.in_shapes[2]) != N_) in.fail_shape("bias " + shape_str(in.in_shapes[2]) + " should have " + str(N_) + " elements");
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
    // A shared B with A's batches contiguous (a Linear layer over tokens): one tall GEMM.
    fold_ = batch_ > 1;
    for (int64_t t = 0; t < batch_ && fold_; ++t) fold_ = b_off_[t] == 0 && a_off_[t] == t * M_ * K_;
    group(a_off_, &a_groups_);
    group(b_off_, &b_groups_);
  }

  void forward(const GradArgs<T>& a) override {
    const T* A = a.in[0];
    const T* B = a.in[1];
    T* Y = a.out[0];
    if (fold_ || batch_ == 1) {
      gemm(isa_, false, false, (fold_ ? batch_ : 1) * M_, N_, K_, A, K_, B, N_, Y, N_, false, a.threads);
    } else {
      parallel_for(batch_, a.threads, [&](int64_t b0, int64_t b1) {
        for (int64_t t = b0; t < b1; ++t)
          gemm(isa_, false, false, M_, N_, K_, A + a_off_[t], K_, B + b_off_[t], N_, Y + t * M_ * N_, N_, false, 1);
      });
    }
    if (has_bias_) {
      const T* bias = a.in[2];
      for (int64_t i = 0; i < batch_ * M_; ++i)
        for (int64_t n = 0; n < N_; ++n) Y[i * N_ + n] += bias[n];
    }
  }

  void backward(const GradArgs<T>& a) override {
    const T* A = a.in[0];
    const T* B = a.in[1];
    const T* gy = a.gout[0];
    T* gA = a.gin[0];
    T* gB = a.gin[1];
    if (fold_ || batch_ == 1) {
      const int64_t rows = (fold_ ? batch_ : 1) * M_;
      if (gA) gemm(isa_, false, true, rows, K_, N_, gy, N_, B, N_, gA, K_, true, a.threads);     // dY · Bᵀ
      if (gB) gemm(isa_, true, false, K_, N_, rows, A, K_, gy, N_, gB, N_, true, a.threads);     // Aᵀ · dY
    } else {
      if (gA)
        parallel_for(static_cast<int64_t>(a_groups_.size()), a.threads, [&](int64_t g0, int64_t g1) {
          for (int64_t g = g0; g < g1; ++g)
            for (int64_t t : a_groups_[g].second)
              gemm(isa_, false, true, M_, K_, N_, gy + t * M_ * N_, N_, B + b_off_[t], N_, gA + a_groups_[g].first, K_, true, 1);
        });
      if (gB)
        parallel_for(static_cast<int64_t>(b_groups_.size()), a.threads, [&](int64_t g0, int64_t g1) {
          for (int64_t g = g0; g < g1; ++g)
            for (int64_t t : b_groups_[g].second)
              gemm(isa_, true, false, K_, N_, M_, A + a_off_[t], K_, gy + t * M_ * N_, N_, gB + b_groups_[g].first, N_, true, 1);
        });
    }
    if (has_bias_ && a.gin[2]) {
      T* gb = a.gin[2];
      for (int64_t i = 0; i < batch_ * M_; ++i)
        for (int64_t n = 0; n < N_; ++n) gb[n] += gy[i * N_ + n];
    }
  }

 private:
  static void group(const std::vector<int64_t>& offs, std::vector<std::pair<int64_t, std::vector<int64_t>>>* out) {
    std::map<int64_t, std::vector<int64_t>> m;
    for (int64_t t = 0; t < static_cast<int64_t>(offs.size()); ++t) m[offs[t]].push_back(t);
    out->assign(m.begin(), m.end());
  }

  Isa isa_;
  int64_t M_ = 0, N_ = 0, K_ = 0, batch_ = 1;
  bool fold_ = false, has_bias_ = false;
  std::vector<int64_t> a_off_, b_off_;
  std::vector<std::pair<int64_t, std::vector<int64_t>>> a_groups_, b_groups_;
};

// A fused activation epilogue (the inference lowering's peephole) has no gradient here: lower
// reconstruction units with fuseActivations: false. Refusing it beats computing without it.
inline void no_fused_activation(const GradInit& in) {
  if (in.attrs.has("activation")) in.fail_unsupported("fused activations are not differentiable here; lower with fuseActivations: false");
}

template <typename T>
std::unique_ptr<GradOp<T>> make_conv(const GradInit& in) {
  no_fused_activation(in);
  if (in.has_input(3)) in.fail_unsupported("a fused residual is not differentiable here; lower with fuseActivations: false");
  return std::make_unique<ConvGrad<T>>(in);
}
template <typename T>
std::unique_ptr<GradOp<T>> make_gemm(const GradInit& in) { no_fused_activation(in); return std::make_unique<GemmGrad<T>>(in); }
template <typename T>
std::unique_ptr<GradOp<T>> make_matmul(const GradInit& in) { no_fused_activation(in); return std::make_unique<MatMulGrad<T>>(in); }

}  // namespace

PACKPTQ_REGISTER_GRAD_OP("Conv", make_conv);
PACKPTQ_REGISTER_GRAD_OP("Gemm", make_gemm);
PACKPTQ_REGISTER_GRAD_OP("MatMul", make_matmul);

}  // namespace train
}  // namespace packptq
