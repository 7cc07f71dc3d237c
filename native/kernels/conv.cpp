// Convolution dispatch and the generic (no -march) parts: shape validation, the naive scalar
// reference, im2col, and the two SIMD strategies, which reach vector code only through a KernelTable:
//   DirectConv  one input channel per group and few outputs each (depthwise): the vectorised direct
//               kernel of conv_impl.h per (image, input channel) plane.
//   GemmConv    everything else: per image and group, y_g[Mg, P] = w_g[Mg, Kg] · cols[Kg, P] with the
//               weights packed once for the GEMM micro-kernel; 1x1 stride-1 unpadded convs use the
//               input itself as the B matrix (no im2col).
#include "kernels/conv.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/variants.h"
#include "kernels/work_pool.h"

namespace packptq {

void validate_conv_shape(const ConvShape& s) {
  auto bad = [](const std::string& what) { fail(ErrorCode::BadOption, "invalid convolution shape: " + what); };
  if (s.N < 1 || s.C < 1 || s.H < 1 || s.W < 1 || s.M < 1) bad("N, C, H, W and M must all be >= 1");
  if (s.KH < 1 || s.KW < 1) bad("kernel sizes KH and KW must be >= 1");
  if (s.stride_h < 1 || s.stride_w < 1) bad("strides must be >= 1");
  if (s.dil_h < 1 || s.dil_w < 1) bad("dilations must be >= 1");
  if (s.pad_top < 0 || s.pad_left < 0 || s.pad_bottom < 0 || s.pad_right < 0) bad("pads must be >= 0");
  if (s.group < 1 || s.C % s.group != 0 || s.M % s.group != 0)
    bad("group " + std::to_string(s.group) + " must divide C=" + std::to_string(s.C) + " and M=" + std::to_string(s.M));
  if (s.H + s.pad_top + s.pad_bottom < (long)s.dil_h * (s.KH - 1) + 1 ||
      s.W + s.pad_left + s.pad_right < (long)s.dil_w * (s.KW - 1) + 1)
    bad("the dilated kernel is larger than the padded input");
  // Every index inside the kernels is formed in 32-bit or size_t arithmetic from these products.
  const double big = 2147483647.0;
  if ((double)s.N * s.C * s.H * s.W > big || (double)s.N * s.M * s.OH() * s.OW() > big ||
      (double)s.M * (s.C / s.group) * s.KH * s.KW > big ||
      (double)(s.C / s.group) * s.KH * s.KW * s.OH() * s.OW() > big)
    bad("tensors larger than 2^31 elements");
}

namespace {

// The reference: the formula of conv.h written out, double accumulation, single thread.
void conv_reference(const ConvShape& s, const float* x, const float* w, const float* bias, float* y) {
  const int OH = s.OH(), OW = s.OW(), Cg = s.C / s.group, Mg = s.M / s.group;
  for (int n = 0; n < s.N; ++n)
    for (int m = 0; m < s.M; ++m) {
      const int g = m / Mg;
      for (int oh = 0; oh < OH; ++oh)
        for (int ow = 0; ow < OW; ++ow) {
          double acc = bias ? bias[m] : 0.0;
          for (int c = 0; c < Cg; ++c)
            for (int kh = 0; kh < s.KH; ++kh) {
              const int ih = oh * s.stride_h - s.pad_top + kh * s.dil_h;
              if (ih < 0 || ih >= s.H) continue;
              for (int kw = 0; kw < s.KW; ++kw) {
                const int iw = ow * s.stride_w - s.pad_left + kw * s.dil_w;
                if (iw < 0 || iw >= s.W) continue;
                acc += (double)x[(((long)n * s.C + g * Cg + c) * s.H + ih) * s.W + iw] *
                       (double)w[(((long)m * Cg + c) * s.KH + kh) * s.KW + kw];
              }
            }
          y[(((long)n * s.M + m) * OH + oh) * OW + ow] = (float)acc;
        }
    }
}

class ReferenceConv : public PreparedConv {
 public:
  ReferenceConv(const ConvShape& s, const float* w, const float* bias) : s_(s) { update_weights(w, bias); }
  void run(const float* x, float* y, int) override { conv_reference(s_, x, w_.data(), has_bias_ ? b_.data() : nullptr, y); }
  void update_weights(const float* w, const float* bias) override {
    w_.assign(w, w + (size_t)s_.M * (s_.C / s_.group) * s_.KH * s_.KW);
    has_bias_ = bias != nullptr;
    b_.assign(bias ? bias : w, bias ? bias + s_.M : w);
  }

 private:
  ConvShape s_;
  std::vector<float> w_, b_;
  bool has_bias_ = false;
};

// Per-thread scratch owned by a prepared conv, allocated on the calling thread before the items
// run, so the items themselves never allocate.
struct ThreadScratch {
  std::vector<std::vector<float>> bufs;
  float* at(int tid) { return bufs[tid].data(); }
  void reserve(int threads, size_t floats) {
    if ((int)bufs.size() < threads) bufs.resize(threads);
    for (int t = 0; t < threads; ++t)
      if (bufs[t].size() < floats) bufs[t].resize(floats);
  }
};

// Items (images, or input planes) are shared out by run_items: see work_pool.h.
template <typename Fn>
void for_items(int n, int threads, Fn&& body) {
  run_items(n, threads, body);
}

class DirectConv : public PreparedConv {
 public:
  DirectConv(const KernelTable* t, const ConvShape& s, const float* w, const float* bias) : t_(t), s_(s) {
    g_ = DwGeom{s.H, s.W, s.OH(), s.OW(), s.KH, s.KW, s.stride_h, s.stride_w, s.pad_top, s.pad_left, s.dil_h, s.dil_w};
    update_weights(w, bias);
  }
  void update_weights(const float* w, const float* bias) override {
    w_.assign(w, w + (size_t)s_.M * s_.KH * s_.KW);
    b_.assign(s_.M, 0.f);
    if (bias) std::copy(bias, bias + s_.M, b_.begin());
  }
  void run(const float* x, float* y, int threads) override {
    // One item per input plane: it yields the Mg output planes of its group, which are adjacent.
    const int planes = s_.N * s_.C, Mg = s_.M / s_.group, P = g_.OH * g_.OW, taps = s_.KH * s_.KW;
    const int nt = std::max(1, std::min(threads, planes));
    scratch_.reserve(nt, t_->dw_scratch_floats(g_));
    for_items(planes, nt, [&](int tid, int i) {
      const int c = i % s_.C;  // Cg == 1: input channel c is group c, outputs c*Mg .. c*Mg+Mg-1
      t_->dw_plane(g_, x + (long)i * s_.H * s_.W, w_.data() + (size_t)c * Mg * taps, b_.data() + (size_t)c * Mg, Mg,
                   y + (long)i * Mg * P, scratch_.at(tid));
    });
  }

 private:
  const KernelTable* t_;
  ConvShape s_;
  DwGeom g_;
  std::vector<float> w_, b_;
  ThreadScratch scratch_;
};

// cols[(c*KH + kh)*KW + kw][oh*OW + ow] = x[c][ih][iw] (0 in the padding), for one image and group.
void im2col(const ConvShape& s, const float* x, int Cg, float* cols) {
  const int OH = s.OH(), OW = s.OW(), P = OH * OW;
  for (int c = 0; c < Cg; ++c)
    for (int kh = 0; kh < s.KH; ++kh)
      for (int kw = 0; kw < s.KW; ++kw) {
        float* row = cols + (size_t)((c * s.KH + kh) * s.KW + kw) * P;
        const int iw0 = kw * s.dil_w - s.pad_left, sw = s.stride_w;
        // Output columns whose input column iw0 + ow*sw lies inside [0, W).
        int lo = iw0 < 0 ? (-iw0 + sw - 1) / sw : 0;
        int hi = (s.W - 1 - iw0) < 0 ? 0 : (s.W - 1 - iw0) / sw + 1;
        lo = std::min(lo, OW);
        hi = std::max(lo, std::min(hi, OW));
        for (int oh = 0; oh < OH; ++oh) {
          float* dst = row + (size_t)oh * OW;
          const int ih = oh * s.stride_h - s.pad_top + kh * s.dil_h;
          if (ih < 0 || ih >= s.H) {
            std::memset(dst, 0, sizeof(float) * OW);
            continue;
          }
          const float* src = x + ((long)c * s.H + ih) * s.W + iw0;
          std::memset(dst, 0, sizeof(float) * lo);
          if (sw == 1)
            std::memcpy(dst + lo, src + lo, sizeof(float) * (hi - lo));
          else
            for (int ow = lo; ow < hi; ++ow) dst[ow] = src[(long)ow * sw];
          std::memset(dst + hi, 0, sizeof(float) * (OW - hi));
        }
      }
}

class GemmConv : public PreparedConv {
 public:
  GemmConv(const KernelTable* t, const ConvShape& s, const float* w, const float* bias) : t_(t), s_(s) {
    Cg_ = s.C / s.group;
    Mg_ = s.M / s.group;
    Kg_ = Cg_ * s.KH * s.KW;
    P_ = s.OH() * s.OW();
    pointwise_ = s.KH == 1 && s.KW == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_top == 0 && s.pad_left == 0 &&
                 s.pad_bottom == 0 && s.pad_right == 0;
    packed_per_group_ = t_->packed_a_floats(Mg_, Kg_);
    update_weights(w, bias);
  }
  void update_weights(const float* w, const float* bias) override {
    wp_.assign(packed_per_group_ * s_.group, 0.f);
    for (int g = 0; g < s_.group; ++g)
      t_->pack_a(false, Mg_, Kg_, w + (size_t)g * Mg_ * Kg_, Kg_, wp_.data() + (size_t)g * packed_per_group_);
    has_bias_ = bias != nullptr;
    b_.assign(s_.M, 0.f);
    if (bias) std::copy(bias, bias + s_.M, b_.begin());
  }
  void run(const float* x, float* y, int threads) override {
    threads = std::max(1, threads);
    // Whole images per thread when there are enough of them (no synchronisation at all); otherwise
    // one image at a time with the threads inside the GEMM.
    const int outer = std::min(threads, s_.N), inner = outer == 1 ? threads : 1;
    scratch_.reserve(outer, pointwise_ ? 1 : (size_t)Kg_ * P_);
    for_items(s_.N, outer, [&](int tid, int n) { run_image(x, y, n, scratch_.at(tid), inner); });
  }

 private:
  void run_image(const float* x, float* y, int n, float* cols, int threads) {
    for (int g = 0; g < s_.group; ++g) {
      const float* xg = x + ((long)n * s_.C + (long)g * Cg_) * s_.H * s_.W;
      const float* B = xg;
      if (!pointwise_) {
        im2col(s_, xg, Cg_, cols);
        B = cols;
      }
      float* yg = y + ((long)n * s_.M + (long)g * Mg_) * P_;
      if (has_bias_)
        for (int m = 0; m < Mg_; ++m) std::fill(yg + (long)m * P_, yg + (long)(m + 1) * P_, b_[g * Mg_ + m]);
      t_->sgemm_packed_a(Mg_, P_, Kg_, wp_.data() + (size_t)g * packed_per_group_, false, B, P_, yg, P_, has_bias_,
                         threads);
    }
  }

  const KernelTable* t_;
  ConvShape s_;
  int Cg_, Mg_, Kg_, P_;
  bool pointwise_, has_bias_ = false;
  size_t packed_per_group_;
  std::vector<float> wp_, b_;
  ThreadScratch scratch_;
};

}  // namespace

std::unique_ptr<PreparedConv> prepare_conv_variant(KernelVariant v, const ConvShape& s, const float* w,
                                                   const float* bias) {
  validate_conv_shape(s);
  if (v == KernelVariant::Scalar) return std::make_unique<ReferenceConv>(s, w, bias);
  const KernelTable* t = kernel_table(v);
  if (t == nullptr) fail(ErrorCode::BadOption, std::string("the ") + variant_name(v) + " kernels cannot run on this CPU");
  // The direct kernel wins only with few outputs per input plane (depthwise): with many (a C = 1
  // stem with M = 16) the im2col GEMM reuses each loaded input across the whole register tile and
  // measured 4x faster.
  if (s.C == s.group && s.M / s.group < 4) return std::make_unique<DirectConv>(t, s, w, bias);
  return std::make_unique<GemmConv>(t, s, w, bias);
}

void conv2d_variant(KernelVariant v, const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                    int threads) {
  if (v == KernelVariant::Scalar) {
    validate_conv_shape(s);
    conv_reference(s, x, w, bias, y);  // no copy of the weights for the one-shot reference
    return;
  }
  prepare_conv_variant(v, s, w, bias)->run(x, y, threads);
}

void conv2d(Isa isa, const ConvShape& s, const float* x, const float* w, const float* bias, float* y, int threads) {
  conv2d_variant(variant_of(isa), s, x, w, bias, y, threads);
}

std::unique_ptr<PreparedConv> prepare_conv(Isa isa, const ConvShape& s, const float* w, const float* bias) {
  return prepare_conv_variant(variant_of(isa), s, w, bias);
}

}  // namespace packptq
