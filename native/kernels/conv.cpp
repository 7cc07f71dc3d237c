// Convolution dispatch and the generic (no -march) parts: shape validation, the naive scalar
// reference, and the two SIMD strategies, which reach vector code only through a KernelTable:
//   DirectConv  one input channel per group and few outputs each (depthwise): narrow 3x3
//               stride-1/2 layers take the row kernel of dw_rows_impl.h (AVX-512); on small planes
//               the channels-on-lanes kernel of dw_chan_impl.h (dwc_group) over `lanes` output
//               channels at a time, otherwise the flattened phase-plane kernel of conv_impl.h
//               (dw2_plane) per (image, input channel) plane.
//   LanesConv   3x3 stride-1 pads-1 convs, and 1x1 ones on small planes, one group: output
//               channels on the lanes, the input read in place (conv_lanes_impl.h); AVX-512 only
//               unless forced (use_lanes).
//   GemmConv    everything else: y_g[Mg, positions] = w_g[Mg, Kg] · B, B panels packed straight
//               from the input (conv_gemm_impl.h), several small images per GEMM, bias and the
//               fused activation applied as the tiles are written.
#include "kernels/conv.h"

#include <algorithm>
#include <cstdlib>
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

}  // namespace

bool make_dw2_plan(const DwGeom& g, int lanes, Dw2Plan* L) {
  if (g.KH * g.KW > 64 || g.sw > 8) return false;
  const int sh = g.sh, sw = g.sw;
  L->Hq = (g.pt + g.H + g.pb + sh - 1) / sh;
  L->Wq = (g.pl + g.W + g.pr + sw - 1) / sw;
  L->PB = (long)L->Hq * L->Wq;
  const int pass = 4 * lanes;  // outputs per pass of dw2_plane (U = 4 vectors)
  L->span = (long)(g.OH * L->Wq + pass - 1) / pass * pass;
  long maxoff = 0;
  for (int kh = 0; kh < g.KH; ++kh)
    for (int kw = 0; kw < g.KW; ++kw) {
      const int rr = kh * g.dh, cc = kw * g.dw;
      const long off = (long)((rr % sh) * sw + cc % sw) * L->PB + (long)(rr / sh) * L->Wq + cc / sw;
      L->toff[kh * g.KW + kw] = off;
      maxoff = std::max(maxoff, off);
    }
  const long planes = (long)sh * sw * L->PB;
  L->temp = (std::max(planes, L->span + maxoff) + 16 + 15) / 16 * 16;
  L->total = L->temp + L->span + 16;
  L->a0 = g.pt % sh;
  L->rq0 = g.pt / sh;
  for (int b = 0; b < sw; ++b) {
    L->iw0[b] = ((b - g.pl) % sw + sw) % sw;
    L->d0[b] = (g.pl + L->iw0[b]) / sw;
    L->cnt[b] = L->iw0[b] < g.W ? (g.W - L->iw0[b] + sw - 1) / sw : 0;
  }
  return true;
}

namespace {

void apply_activation(const Activation& act, float* y, size_t n) {
  if (!act.clamp) return;
  for (size_t i = 0; i < n; ++i) {
    float v = y[i] > act.lo ? y[i] : act.lo;
    y[i] = v < act.hi ? v : act.hi;
  }
}

class ReferenceConv : public PreparedConv {
 public:
  ReferenceConv(const ConvShape& s, const float* w, const float* bias, const Activation& act) : s_(s), act_(act) {
    update_weights(w, bias);
  }
  void run(const float* x, float* y, int, const float* sum) override {
    conv_reference(s_, x, w_.data(), has_bias_ ? b_.data() : nullptr, y);
    const size_t n = (size_t)s_.N * s_.M * s_.OH() * s_.OW();
    if (sum)
      for (size_t i = 0; i < n; ++i) y[i] += sum[i];
    apply_activation(act_, y, n);
  }
  void update_weights(const float* w, const float* bias) override {
    w_.assign(w, w + (size_t)s_.M * (s_.C / s_.group) * s_.KH * s_.KW);
    has_bias_ = bias != nullptr;
    b_.assign(bias ? bias : w, bias ? bias + s_.M : w);
  }

 private:
  ConvShape s_;
  Activation act_;
  std::vector<float> w_, b_;
  bool has_bias_ = false;
};

// dst[d] = src[d * stride] for d < n (one column phase of an input row). Stride 2 deinterleaves
// with 4-lane shuffles (this file is built for the baseline ISA); loads never pass src[2n - 2].
typedef float F4 __attribute__((vector_size(16)));
typedef int I4 __attribute__((vector_size(16)));
void strided_copy(float* __restrict dst, const float* __restrict src, int n, int stride) {
  int d = 0;
  if (stride == 1) {  // short rows (7..32 floats): inline moves beat a memcpy call
    for (; d + 4 <= n; d += 4) {
      F4 a;
      std::memcpy(&a, src + d, sizeof(F4));
      std::memcpy(dst + d, &a, sizeof(F4));
      __asm__("" : "+r"(d));  // keeps GCC from turning the loop back into a memmove call
    }
    if (d < n && n >= 4) {  // the last 4, overlapping: a pure copy
      F4 a;
      std::memcpy(&a, src + n - 4, sizeof(F4));
      std::memcpy(dst + n - 4, &a, sizeof(F4));
      return;
    }
    for (; d < n; ++d) {
      dst[d] = src[d];
      __asm__("" : "+r"(d));
    }
    return;
  }
  if (stride == 2) {
    const I4 even = {0, 2, 4, 6};
    for (; d + 5 <= n; d += 4) {
      F4 a, b;
      std::memcpy(&a, src + 2 * d, sizeof(F4));
      std::memcpy(&b, src + 2 * d + 4, sizeof(F4));
      const F4 r = __builtin_shuffle(a, b, even);
      std::memcpy(dst + d, &r, sizeof(F4));
    }
  }
  for (; d < n; ++d) dst[d] = src[(long)d * stride];
}

// Per-thread scratch owned by a prepared conv, allocated on the calling thread before the items
// run, so the items themselves never allocate. New memory is zero (the padded-copy buffers rely on
// it: their padding positions are never written).
struct ThreadScratch {
  std::vector<std::vector<float>> bufs;
  float* at(int tid) { return bufs[tid].data(); }
  void reserve(int threads, size_t floats) {
    if ((int)bufs.size() < threads) bufs.resize(threads);
    for (int t = 0; t < threads; ++t)
      if (bufs[t].size() < floats) bufs[t].resize(floats, 0.f);
  }
};

// Items (images, or input planes) are shared out by run_items: see work_pool.h.
template <typename Fn>
void for_items(int n, int threads, Fn&& body) {
  run_items(n, threads, body);
}

// ConvShape::algorithm, or PACKPTQ_CONV_ALGORITHM when the shape leaves the choice to auto.
int forced_algorithm(const ConvShape& s) {
  if (s.algorithm != 0) return s.algorithm;
  const char* e = std::getenv("PACKPTQ_CONV_ALGORITHM");
  if (e == nullptr || *e == 0) return 0;
  const int code = conv_algorithm_code(e);
  if (code < 0)
    fail(ErrorCode::BadOption,
         std::string("PACKPTQ_CONV_ALGORITHM must be \"auto\", \"gemm\", \"lanes\" or \"rows\", got \"") + e + "\"");
  return code;
}

// Planes up to this many outputs take the channels-on-lanes kernel. Measured on the mobilenetv2
// depthwise layers (AVX2, batch 32, 1 thread): 1.3-2.5x faster on 7x7 and 14x14 outputs, where the
// plane-at-a-time kernel's fixed per-plane cost dominates; on 28x28 the two are within +-10 %.
constexpr int kChanMaxPositions = 1024;

class DirectConv : public PreparedConv {
 public:
  DirectConv(const KernelTable* t, const ConvShape& s, const float* w, const float* bias, const Activation& act)
      : t_(t), s_(s), act_(act) {
    g_ = DwGeom{s.H, s.W, s.OH(), s.OW(), s.KH, s.KW, s.stride_h, s.stride_w, s.pad_top, s.pad_left, s.dil_h, s.dil_w,
                s.pad_bottom, s.pad_right};
    const int L = t_->lanes, P = g_.OH * g_.OW;
    rows_ = use_dw_rows(s, L);
    // Blocks of `lanes` positions must fit in a plane (dw_chan_impl.h); more than 16 lanes would
    // overflow the per-item pointer arrays.
    chan_ = !rows_ && L <= 16 && s.H * s.W >= L && P >= L && P <= kChanMaxPositions;
    if (chan_) make_chan_plan();
    else if (!rows_) flat_ = make_dw2_plan(g_, L, &plan_);
    update_weights(w, bias);
  }
  void update_weights(const float* w, const float* bias) override {
    w_.assign(w, w + (size_t)s_.M * s_.KH * s_.KW);
    b_.assign(s_.M, 0.f);
    if (bias) std::copy(bias, bias + s_.M, b_.begin());
    if (!chan_) return;
    // Per group of `lanes` output channels: weights [taps][lanes] and bias [lanes], zero past M.
    const int L = t_->lanes, taps = s_.KH * s_.KW, G = (s_.M + L - 1) / L;
    wl_.assign((size_t)G * taps * L, 0.f);
    bl_.assign((size_t)G * L, 0.f);
    for (int m = 0; m < s_.M; ++m) {
      const int gi = m / L, l = m % L;
      for (int t = 0; t < taps; ++t) wl_[((size_t)gi * taps + t) * L + l] = w_[(size_t)m * taps + t];
      bl_[(size_t)gi * L + l] = b_[m];
    }
  }
  void run(const float* x, float* y, int threads, const float* sum) override {
    if (rows_) run_rows(x, y, threads, sum);
    else if (chan_) run_chan(x, y, threads, sum);
    else run_planes(x, y, threads, sum);
  }

 private:
  // The row kernel (dw_rows_impl.h): 3x3, stride 1 or 2, pads 1 at the top and left, one output
  // channel per input channel, output rows under a vector, input rows under two; AVX-512 by
  // itself, any variant when ConvShape::algorithm or PACKPTQ_CONV_ALGORITHM says "rows". Against
  // the channels-on-lanes kernel, mobilenetv2's layers, one thread (both prepared, alternated):
  // 96 channels 28x28 -> 14x14 batch 1 11.4 -> 4.3 us, batch 32 416 -> 187 us; 144 channels
  // 14x14 -> 7x7 batch 32 145 -> 121 us; 144 channels 14x14 stride 1 batch 32 241 -> 202 us.
  static bool use_dw_rows(const ConvShape& s, int lanes) {
    const bool stride = (s.stride_h == 1 && s.stride_w == 1) || (s.stride_h == 2 && s.stride_w == 2);
    if (!(s.M == s.C && s.KH == 3 && s.KW == 3 && stride && s.dil_h == 1 && s.dil_w == 1 && s.pad_top == 1 &&
          s.pad_left == 1 && s.OW() < lanes && s.W < 2 * lanes))
      return false;
    const int forced = forced_algorithm(s);
    if (forced != 0) return forced == 3;
    // By itself on AVX-512, and at stride 1 only for rows filling more than half a vector: on 7x7
    // planes (7 of 16 lanes) the channels-on-lanes kernel stayed faster.
    return lanes == 16 && (s.stride_w == 2 || 2 * s.OW() > lanes);
  }

  // Items: equal ranges of the N*C planes (a few per thread), each cut at image boundaries.
  void run_rows(const float* x, float* y, int threads, const float* sum) {
    const long planes = (long)s_.N * s_.C, in = (long)s_.H * s_.W, out = (long)g_.OH * g_.OW;
    const int items = (int)std::min<long>(planes, threads <= 1 ? 1 : 3L * threads);
    for_items(items, std::max(1, std::min(threads, items)), [&](int, int it) {
      for (long i = planes * it / items, end = planes * (it + 1) / items; i < end;) {
        const int c = (int)(i % s_.C);
        const long n = std::min(end - i, (long)(s_.C - c));
        t_->dw_rows_planes(g_, x + i * in, w_.data() + (size_t)c * 9, b_.data() + c, y + i * out, (int)n,
                         sum ? sum + i * out : nullptr, act_.clamp, act_.lo, act_.hi);
        i += n;
      }
    });
  }

  // Padded plane Hp x Wp = (pt + H + pb) x (pl + W + pr): every tap of every output lands in it.
  void make_chan_plan() {
    const int Wp = s_.pad_left + s_.W + s_.pad_right, Hp = s_.pad_top + s_.H + s_.pad_bottom;
    in_pos_.clear();
    out_pos_.clear();
    tap_pos_.clear();
    for (int ih = 0; ih < s_.H; ++ih)
      for (int iw = 0; iw < s_.W; ++iw) in_pos_.push_back((ih + s_.pad_top) * Wp + iw + s_.pad_left);
    for (int oh = 0; oh < g_.OH; ++oh)
      for (int ow = 0; ow < g_.OW; ++ow) out_pos_.push_back(oh * s_.stride_h * Wp + ow * s_.stride_w);
    for (int kh = 0; kh < s_.KH; ++kh)
      for (int kw = 0; kw < s_.KW; ++kw) tap_pos_.push_back(kh * s_.dil_h * Wp + kw * s_.dil_w);
    cplan_ = DwcPlan{s_.H * s_.W, g_.OH * g_.OW, s_.KH * s_.KW, in_pos_.data(), out_pos_.data(), tap_pos_.data()};
    // The padded plane, then a dummy output plane for the lanes past M.
    dummy_ = ((long)Hp * Wp * t_->lanes + 15) / 16 * 16;
    chan_floats_ = (size_t)dummy_ + cplan_.P + 16;
  }

  // The residual and the activation after it, over n outputs the kernel wrote without the clamp.
  void add_residual(float* yo, const float* so, long n) const { t_->add_act(yo, so, n, act_.clamp, act_.lo, act_.hi); }

  // One item per (image, group of `lanes` output channels): output channel m reads input plane
  // m / Mg. Lanes past M read the group's last real plane and write the dummy plane.
  void run_chan(const float* x, float* y, int threads, const float* sum) {
    const int L = t_->lanes, Mg = s_.M / s_.group, HW = s_.H * s_.W, P = cplan_.P, taps = cplan_.taps;
    const int G = (s_.M + L - 1) / L, items = s_.N * G;
    const int nt = std::max(1, std::min(threads, items));
    scratch_.reserve(nt, chan_floats_);
    for_items(items, nt, [&](int tid, int it) {
      const int n = it / G, gi = it % G, m0 = gi * L, nv = std::min(L, s_.M - m0);
      float* sc = scratch_.at(tid);
      const float* xs[16];
      float* ys[16];
      for (int l = 0; l < L; ++l) {
        const int m = m0 + std::min(l, nv - 1);
        xs[l] = x + ((long)n * s_.C + m / Mg) * HW;
        ys[l] = l < nv ? y + ((long)n * s_.M + m) * P : sc + dummy_;
      }
      t_->dwc_group(cplan_, xs, wl_.data() + (size_t)gi * taps * L, bl_.data() + (size_t)gi * L, ys, sc,
                    act_.clamp && !sum, act_.lo, act_.hi);
      const long off = ((long)n * s_.M + m0) * P;  // the group's planes are adjacent in y
      if (sum) add_residual(y + off, sum + off, (long)nv * P);
    });
  }

  // One item per input plane: it yields the Mg output planes of its group, which are adjacent.
  void run_planes(const float* x, float* y, int threads, const float* sum) {
    const int planes = s_.N * s_.C, Mg = s_.M / s_.group, P = g_.OH * g_.OW, taps = s_.KH * s_.KW;
    const int nt = std::max(1, std::min(threads, planes));
    scratch_.reserve(nt, flat_ ? (size_t)plan_.total : t_->dw_scratch_floats(g_));
    for_items(planes, nt, [&](int tid, int i) {
      const int c = i % s_.C;  // Cg == 1: input channel c is group c, outputs c*Mg .. c*Mg+Mg-1
      const float* xi = x + (long)i * s_.H * s_.W;
      const float* wc = w_.data() + (size_t)c * Mg * taps;
      const float* bc = b_.data() + (size_t)c * Mg;
      const long off = (long)i * Mg * P;
      float* yi = y + off;
      if (flat_)
        t_->dw2_plane(g_, plan_, xi, wc, bc, Mg, yi, scratch_.at(tid), act_.clamp && !sum, act_.lo, act_.hi);
      else
        t_->dw_plane(g_, xi, wc, bc, Mg, yi, scratch_.at(tid));
      if (sum) add_residual(yi, sum + off, (long)Mg * P);
      else if (!flat_) apply_activation(act_, yi, (size_t)Mg * P);
    });
  }

  const KernelTable* t_;
  ConvShape s_;
  Activation act_;
  DwGeom g_;
  Dw2Plan plan_;
  bool flat_ = false, chan_ = false, rows_ = false;
  DwcPlan cplan_;
  std::vector<int> in_pos_, out_pos_, tap_pos_;
  long dummy_ = 0;
  size_t chan_floats_ = 0;
  std::vector<float> w_, b_, wl_, bl_;
  ThreadScratch scratch_;
};

// Whether a padded-copy GemmConv computes only valid output positions ("compact" columns, B panels
// packed run by run) instead of whole super rows, where `gap` columns per image row lie between
// images and are computed for nothing (1 of 8 on 7x7 outputs). Packing pays with many output rows
// to share each panel. ConvShape::columns (tests) or PACKPTQ_CONV_COLUMNS=padded|compact (whole
// models, benchmarks) forces one form.
bool use_compact_columns(int forced, int Mpad, int K, int gap, int positions) {
  if (forced == 0) {
    const char* e = std::getenv("PACKPTQ_CONV_COLUMNS");
    forced = e == nullptr || *e == 0 ? 0 : conv_columns_code(e);
    if (forced <= 0 && e != nullptr && *e != 0)
      fail(ErrorCode::BadOption, std::string("PACKPTQ_CONV_COLUMNS must be \"padded\" or \"compact\", got \"") + e + "\"");
  }
  if (forced == 1) return false;
  if (forced == 2) return gap > 0;
  // And only over enough output positions per image group (`positions`): at a few hundred the
  // packing does not pay. 64 -> 128 channels, one thread: 7x7 batch 1 (49 positions) 106 us
  // compact vs 103 padded, batch 2 (98) 198 vs 179; 14x14 batch 1 (196) 353 vs 342; but 14x14
  // batch 4 (588 in a group of 3 images) 1371 vs 1854, and vgg's 128 -> 128 7x7 at batch 32 (490
  // in a group of 10) 5.8 ms vs 6.2.
  // Also when each column's packing (K floats) is no more than the copy-out through the C buffer
  // that padded columns cost (Mpad floats per column: on 28-wide rows nearly every panel straddles
  // an image row, and only compact panels, which follow y, are written straight to y): the stems'
  // 3x3 1 -> 32 at batch 32 on AVX-512 262 -> 162 us (vgg), where the K = 288 convs lose 20 %.
  return gap > 0 && positions >= 256 && (Mpad > 64 || K <= Mpad);
}

// Convolution as a GEMM per group: y_g[Mg, positions] = w_g[Mg, Kg] · B[Kg, positions], with the B
// panels packed straight from the input by the ISA's cgemm_item (conv_gemm_impl.h explains the
// column space). Two ways to feed it:
//   pointwise (1x1, stride 1, no padding): B is the input itself, all images' positions in one
//     column space (so 7x7 images do not each waste a partial panel).
//   otherwise: per group of nb images, a zero-padded, stride-phase-split copy with the images side
//     by side in each row (built per work item into the thread's buffer, whose padding positions are
//     zero from allocation and never written), so every tap's B row is contiguous.
// Work items are (image group, column chunk): images spread over threads when the batch allows,
// columns of one image when it does not (batch 1).
class GemmConv : public PreparedConv {
 public:
  GemmConv(const KernelTable* t, const ConvShape& s, const float* w, const float* bias, const Activation& act)
      : t_(t), s_(s), act_(act) {
    Cg_ = s.C / s.group;
    Mg_ = s.M / s.group;
    Kg_ = Cg_ * s.KH * s.KW;
    OH_ = s.OH();
    OW_ = s.OW();
    P_ = OH_ * OW_;
    tiny_ = 2.0 * s.N * s.M * Kg_ * P_ < 1e5;  // see run()
    pointwise_ = s.KH == 1 && s.KW == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_top == 0 && s.pad_left == 0 &&
                 s.pad_bottom == 0 && s.pad_right == 0;
    MR_ = t_->cgemm_mr;
    NR_ = t_->cgemm_nr;
    nkb_ = (Kg_ + 255) / 256;
    kcb_ = (Kg_ + nkb_ - 1) / nkb_;
    Mpad_ = (Mg_ + MR_ - 1) / MR_ * MR_;
    // B chunk of about 128 KB (L2-resident while its panels are multiplied).
    chunk_ = std::max(NR_, (32768 / std::max(1, kcb_)) / NR_ * NR_);
    koff_.resize(Kg_);
    if (pointwise_) {
      for (int k = 0; k < Kg_; ++k) koff_[k] = (long)k * s.H * s.W;
      nb_ = s.N;
      Ws_ = P_;
      SR_ = s.N * P_;
      cols_ = SR_;
      oh_space_ = 1;
      ow_space_ = P_;
    } else {
      const int sh = s.stride_h, sw = s.stride_w;
      // Stride 1: neighbouring images share their zero columns (an image's right padding is the next
      // one's left padding), but each image still needs room for all its OW outputs.
      Ws_ = sw == 1 ? std::max(s.W + std::max(s.pad_left, s.pad_right), OW_)
                    : (s.pad_left + s.W + s.pad_right + sw - 1) / sw;
      Hq_ = (s.pad_top + s.H + s.pad_bottom + sh - 1) / sh;
      const int per_image = OH_ * Ws_;
      nb_ = std::max(1, std::min(s.N, (512 + per_image - 1) / per_image));
      // Equal groups: 32 images of 7x7 in groups of 10 left a group of 2, and on two threads one
      // thread had 20 images to the other's 12 until it stole a chunk; groups of 8 split evenly.
      nb_ = (s.N + (s.N + nb_ - 1) / nb_ - 1) / ((s.N + nb_ - 1) / nb_);
      SR_ = nb_ * Ws_;
      PB_ = (long)Hq_ * SR_;
      CB_ = (long)sh * sw * PB_;
      row_used_.assign(sh, 0);
      col_used_.assign(sw, 0);
      for (int b = 0; b < sw; ++b) {
        col_iw0_.push_back(((b - s.pad_left) % sw + sw) % sw);
        col_d0_.push_back((s.pad_left + col_iw0_[b]) / sw);
      }
      for (int c = 0; c < Cg_; ++c)
        for (int kh = 0; kh < s.KH; ++kh)
          for (int kw = 0; kw < s.KW; ++kw) {
            const int rr = kh * s.dil_h, cc = kw * s.dil_w;
            row_used_[rr % sh] = col_used_[cc % sw] = 1;
            koff_[(c * s.KH + kh) * s.KW + kw] =
                c * CB_ + ((rr % sh) * sw + cc % sw) * PB_ + (long)(rr / sh) * SR_ + cc / sw;
          }
      xq_floats_ = (size_t)s.C * CB_ + 2 * SR_ + NR_ + 64;
      cols_ = OH_ * SR_;
      oh_space_ = OH_;
      ow_space_ = OW_;
      compact_ = use_compact_columns(s.columns, Mpad_, Kg_, Ws_ - OW_, nb_ * P_);
    }
    update_weights(w, bias);
  }
  void update_weights(const float* w, const float* bias) override {
    // Per group, per K block (offset k0 * Mpad): MR-row panels, panel r at r * MR * kc, [k][i].
    const size_t per_group = (size_t)Mpad_ * Kg_;
    wp_.assign(per_group * s_.group, 0.f);
    for (int g = 0; g < s_.group; ++g) {
      const float* wg = w + (size_t)g * Mg_ * Kg_;
      float* out = wp_.data() + g * per_group;
      for (int kb = 0; kb < nkb_; ++kb) {
        const int k0 = kb * kcb_, kc = std::min(kcb_, Kg_ - k0);
        float* blk = out + (size_t)k0 * Mpad_;
        for (int r = 0; r < Mpad_; r += MR_)
          for (int k = 0; k < kc; ++k)
            for (int i = 0; i < MR_; ++i)
              blk[(size_t)r * kc + k * MR_ + i] = r + i < Mg_ ? wg[(size_t)(r + i) * Kg_ + k0 + k] : 0.f;
      }
    }
    has_bias_ = bias != nullptr;
    b_.assign(s_.M + MR_, 0.f);  // the last row panel of the last group reads MR biases
    if (bias) std::copy(bias, bias + s_.M, b_.begin());
  }
  void run(const float* x, float* y, int threads, const float* sum) override {
    // A conv under 0.1 MFLOP (a microsecond or two) stays on the calling thread. The bar was 1 MFLOP
    // while the pool handed items to whichever thread came first: then a split batch-1 stem took
    // twice as long (resnet20, stem 33 -> 60 ms per 2000 images). With each thread keeping its
    // shard (work_pool.h) the same convs split well: resnet20 stem 36 -> 23 ms on two threads, vgg
    // stem 60 -> 37, mobilenetv2 batch 1 -7 % in all (small 1x1 convs 1.45-1.6x).
    threads = tiny_ ? 1 : std::max(1, threads);
    const int groups = pointwise_ ? 1 : (s_.N + nb_ - 1) / nb_;
    const int row_panels = (Mg_ + MR_ - 1) / MR_;
    int cols = 0, panels = 0, cpg = 1, rs = 1;
    auto plan = [&](int c) {
      cols = c;
      panels = (cols + NR_ - 1) / NR_;
      // Column chunks per image group: enough items for the threads, each at least a few panels.
      cpg = 1;
      if (groups < 3 * threads && threads > 1) cpg = std::max(1, std::min(panels / 2, (3 * threads + groups - 1) / groups));
      // Few columns (batch 1 on 7x7 or 14x14 outputs: 1-5 chunks) leave threads idle: split the
      // output channels too, in whole MR-row panels. A row block reads the padded copy in place
      // rather than packing B panels (see cgemm_item), so row blocks of one chunk duplicate no work.
      rs = 1;
      if (threads > 1 && groups * cpg < 2 * threads)
        rs = std::min(row_panels, (2 * threads + groups * cpg - 1) / (groups * cpg));
      // One image group whose panels do not split evenly into the chunks (a 14x14 output has 7
      // panels: 2/2/3 in three chunks, and one of two threads got 8 units of work in 14): split
      // the output channels instead, into equal row blocks that each read the whole padded copy.
      // Batch 1 on two threads (AVX-512, separate processes alternated): resnet20 243 -> 234 us,
      // vgg 188 -> 181 us per image.
      if (threads > 1 && groups == 1 && panels % cpg != 0 && row_panels >= 2 * threads) {
        cpg = 1;
        rs = 2 * threads;
      }
    };
    // Compact columns (valid positions only) when the B panels are packed anyway; not with a row
    // split, where every row block would pack the same panels again.
    bool compact = compact_;
    plan(compact ? nb_ * P_ : cols_);
    if (compact && rs > 1) {
      compact = false;
      plan(cols_);
    }
    const int rper = (row_panels + rs - 1) / rs;
    rs = (row_panels + rper - 1) / rper;
    const int items = groups * cpg * rs;
    const int nt = std::min(threads, items);
    const size_t work = t_->cgemm_work_floats(Mg_, nkb_, kcb_, chunk_);
    work_.reserve(nt, work);
    // When an image group is split into column chunks (small batches), every chunk reads the whole
    // padded copy of the group: build it once per group, before the chunks, instead of once per
    // chunk (at batch 1 on two threads the six chunks built six copies, a seventh of the time).
    // Output channels split over the items of one image group (batch 1, small planes): every item
    // reads the whole padded copy. Each thread then builds its own copy, once per call, inside its
    // first item: a shared copy needs a job of its own before the items, and its stores wait for
    // ownership of lines the other core read in the previous call.
    // Batch 1 on two threads, separate processes alternated: resnet20 229 -> 223 us, vgg 180 -> 176.
    const bool private_full = !pointwise_ && groups == 1 && cpg == 1 && rs > 1;
    const bool shared_copy = !pointwise_ && cpg * rs > 1 && !private_full;
    ++calls_;
    if (private_full && built_.size() < (size_t)nt) built_.resize(nt, 0);
    if (shared_copy) {
      xq_.reserve(groups, xq_floats_);
      // Fewer groups than threads (batch 1): split each group's copy by input rows as well, or one
      // thread copies while the others wait (a twelfth of a batch-1 two-thread run). Rows, not
      // channels: the work pool gives thread t the t-th part here and the t-th range of column
      // chunks below (output rows), and the previous conv wrote those input rows on that thread.
      const int cs = groups < threads ? std::min(s_.H, threads) : 1;
      for_items(groups * cs, std::min(threads, groups * cs), [&](int, int it) {
        const int gi = it / cs, part = it % cs;
        build_copy(x, gi * nb_, std::min(nb_, s_.N - gi * nb_), xq_.at(gi), (int)((long)s_.H * part / cs),
                   (int)((long)s_.H * (part + 1) / cs));
      });
    } else if (!pointwise_) {
      xq_.reserve(nt, xq_floats_);
    }
    // The residual: when an item covers whole images (all but pointwise convs on one thread or a
    // batch), one pass over them after the item, while y is in L2 and sum streams in order
    // (measured on resnet20: per chunk of columns, short rows of 16 planes, it cost as much as the
    // separate Add and Relu it replaced); otherwise per chunk inside cgemm_item.
    const bool item_sum = sum && !pointwise_ && cpg == 1 && rs == 1;
    for_items(items, nt, [&](int tid, int item) {
      const int ri = item % rs, gi = item / rs / cpg, ci = item / rs % cpg;
      const int n0 = gi * nb_;
      const int nvalid = pointwise_ ? s_.N : std::min(nb_, s_.N - n0);
      const float* src = x;
      if (shared_copy) {
        src = xq_.at(gi);
      } else if (private_full) {
        if (built_[tid] != calls_) {  // this thread's first item of the call
          build_copy(x, n0, nvalid, xq_.at(tid), 0, s_.H);
          built_[tid] = calls_;
        }
        src = xq_.at(tid);
      } else if (!pointwise_) {
        float* xq = xq_.at(tid);
        build_copy(x, n0, nvalid, xq, 0, s_.H);
        src = xq;
      }
      CgemmItem it;
      it.K = Kg_;
      it.M = Mg_;
      it.kcb = kcb_;
      it.nkb = nkb_;
      it.kc_max = kcb_;
      it.chunk = chunk_;
      it.koff = koff_.data();
      it.img = pointwise_ ? (long)s_.C * s_.H * s_.W : 0;
      it.SR = SR_;
      it.Ws = Ws_;
      it.OW = ow_space_;
      it.OH = oh_space_;
      it.nvalid = nvalid;
      it.y_img = (long)s_.M * P_;
      it.y_row = P_;
      it.clamp = act_.clamp && !item_sum;
      it.lo = act_.lo;
      it.hi = act_.hi;
      // Panels split as evenly as whole panels allow (34 panels in 6 chunks: 5/6/6/5/6/6, not
      // 6/6/6/6/6/4, which left one of two threads two panels behind at batch 1).
      it.compact = compact;
      it.c0 = (int)((long)ci * panels / cpg) * NR_;
      it.c1 = std::min(compact ? nvalid * P_ : cols, (int)((long)(ci + 1) * panels / cpg) * NR_);
      it.m0 = ri * rper * MR_;
      it.m1 = std::min(Mg_, (ri + 1) * rper * MR_);
      it.work = work_.at(tid);
      for (int g = 0; g < s_.group; ++g) {
        it.wp = wp_.data() + (size_t)g * Mpad_ * Kg_;
        it.src = pointwise_ ? src + (long)g * Cg_ * s_.H * s_.W : src + (long)g * Cg_ * CB_;
        const long yoff = (long)n0 * s_.M * P_ + (long)g * Mg_ * P_;
        it.y = y + yoff;
        it.sum = sum && !item_sum ? sum + yoff : nullptr;
        it.bias = has_bias_ ? b_.data() + g * Mg_ : nullptr;
        t_->cgemm_item(it);
      }
      if (item_sum) {
        const long off = (long)n0 * s_.M * P_;
        t_->add_act(y + off, sum + off, (long)nvalid * s_.M * P_, act_.clamp, act_.lo, act_.hi);
      }
    });
  }

 private:
  // Input rows [h0, h1) of images n0 .. n0+nvalid-1 into their padded, phase-split, side-by-side
  // copy.
  void build_copy(const float* x, int n0, int nvalid, float* xq, int h0, int h1) const {
    const int sh = s_.stride_h, sw = s_.stride_w, HW = s_.H * s_.W;
    for (int n = 0; n < nvalid; ++n)
      for (int c = 0; c < s_.C; ++c) {
        const float* xc = x + ((long)(n0 + n) * s_.C + c) * HW;
        float* qc = xq + (long)c * CB_ + (long)n * Ws_;
        int a = (s_.pad_top + h0) % sh, rq = (s_.pad_top + h0) / sh;  // no divisions in the loops
        for (int ih = h0; ih < h1; ++ih, (++a == sh ? (a = 0, ++rq) : 0)) {
          if (!row_used_[a]) continue;
          float* row = qc + (long)a * sw * PB_ + (long)rq * SR_;
          const float* src = xc + (long)ih * s_.W;
          if (sw == 1) {
            strided_copy(row + s_.pad_left, src, s_.W, 1);
          } else {
            // Column phase b holds padded columns b, b+sw, ...: input columns iw0, iw0+sw, ...
            for (int b = 0; b < sw; ++b) {
              if (!col_used_[b]) continue;
              const int iw0 = col_iw0_[b];
              strided_copy(row + (long)b * PB_ + col_d0_[b], src + iw0, iw0 < s_.W ? (s_.W - iw0 + sw - 1) / sw : 0, sw);
            }
          }
        }
      }
  }

  const KernelTable* t_;
  ConvShape s_;
  Activation act_;
  int Cg_, Mg_, Kg_, OH_, OW_, P_;
  bool pointwise_, has_bias_ = false, compact_ = false, tiny_ = false;
  int MR_, NR_, nkb_, kcb_, Mpad_, chunk_;
  int nb_ = 1, Ws_ = 1, SR_ = 1, Hq_ = 1, cols_ = 0, oh_space_ = 1, ow_space_ = 1;
  long PB_ = 0, CB_ = 0;
  size_t xq_floats_ = 0;
  std::vector<long> koff_;
  std::vector<char> row_used_, col_used_;
  std::vector<int> col_iw0_, col_d0_;  // stride phases some tap reads (a 1x1/2 conv reads one)
  std::vector<float> wp_, b_;
  ThreadScratch work_, xq_;  // xq_: one padded copy per thread, or per image group (shared_copy)
  // run() calls so far, and per thread the call whose input its private copy holds (private_full).
  unsigned long calls_ = 0;
  std::vector<unsigned long> built_;
};

// 3x3 stride-1 convolution with pads 1, or 1x1 stride-1 without padding, with output channels on
// the lanes (conv_lanes_impl.h): reads the input in place, so there is no padded copy to build or
// share between threads. Work items are equal ranges of the (image, channel group, row) space, so
// batch 1 on two threads splits rows as evenly as the batch-32 run splits images.
class LanesConv : public PreparedConv {
 public:
  LanesConv(const KernelTable* t, const ConvShape& s, const float* w, const float* bias, const Activation& act)
      : t_(t), s_(s), act_(act) {
    // Two weight vectors per tap once there are channels for them: each broadcast input then
    // feeds two FMAs (AVX-512, 64 -> 64 on 7x7: 74 % of peak with one vector, ~100 % with two).
    // (AVX-512 only: on AVX2 the two-vector tile spills; one vector measured faster.)
    nb_ = t_->lanes == 16 && s.M > t_->lanes ? 2 : 1;
    G_ = nb_ * t_->lanes;
    groups_ = (s.M + G_ - 1) / G_;
    taps_ = s.KH * s.KW;
    tiny_ = 2.0 * s.N * s.M * s.C * taps_ * s.H * s.W < 1e5;  // as GemmConv: stays on the calling thread
    update_weights(w, bias);
  }
  void update_weights(const float* w, const float* bias) override {
    // Per channel group: [C][taps][G], channels past M zero.
    const int T = taps_;
    wl_.assign((size_t)groups_ * s_.C * T * G_, 0.f);
    bl_.assign((size_t)groups_ * G_, 0.f);
    for (int m = 0; m < s_.M; ++m) {
      const int gi = m / G_, l = m % G_;
      for (int c = 0; c < s_.C; ++c)
        for (int k = 0; k < T; ++k) wl_[(((size_t)gi * s_.C + c) * T + k) * G_ + l] = w[((size_t)m * s_.C + c) * T + k];
      if (bias) bl_[(size_t)gi * G_ + l] = bias[m];
    }
  }
  void run(const float* x, float* y, int threads, const float* sum) override {
    threads = tiny_ ? 1 : std::max(1, threads);
    const long rows = (long)s_.N * groups_ * t_->lanes_rows(taps_, nb_, s_.H, s_.W);
    // A few items per thread, so a thread the OS delays hands its last ones to the others.
    const int items = (int)std::min<long>(rows, threads == 1 ? 1 : 3L * threads);
    LanesItem it;
    it.x = x;
    it.w = wl_.data();
    it.bias = bl_.data();
    it.y = y;
    it.sum = sum;
    it.C = s_.C;
    it.M = s_.M;
    it.H = s_.H;
    it.Wd = s_.W;
    it.taps = taps_;
    it.nb = nb_;
    it.groups = groups_;
    it.clamp = act_.clamp;
    it.lo = act_.lo;
    it.hi = act_.hi;
    for_items(items, std::min(threads, items), [&](int, int i) {
      LanesItem own = it;
      own.r0 = rows * i / items;
      own.r1 = rows * (i + 1) / items;
      t_->lanes_item(own);
    });
  }

 private:
  const KernelTable* t_;
  ConvShape s_;
  Activation act_;
  int taps_ = 9, nb_ = 1, G_ = 1, groups_ = 1;
  bool tiny_ = false;
  std::vector<float> wl_, bl_;
};

// Whether a conv takes LanesConv: the shape it handles, and not forced elsewhere (a forced GEMM
// column form, ConvShape::algorithm, or PACKPTQ_CONV_ALGORITHM=gemm for whole models).
bool use_lanes(const ConvShape& s, int lanes) {
  const bool unit = s.group == 1 && s.stride_h == 1 && s.stride_w == 1 && s.dil_h == 1 && s.dil_w == 1;
  const int p = s.KH == 3 && s.KW == 3 ? 1 : 0;
  const bool same = s.pad_top == p && s.pad_left == p && s.pad_bottom == p && s.pad_right == p;
  const bool pointwise = s.KH == 1 && s.KW == 1;
  if (!unit || !same || !(p == 1 || pointwise)) return false;
  if (s.columns != 0) return false;
  const int forced = forced_algorithm(s);
  if (forced != 0) return forced == 2;
  // By itself only on AVX-512 (AVX-512, Zen 5, resnet20 and vgg batch 1 and 32: 1.2-1.4x faster
  // than the GEMM conv). AVX2's 16 registers hold a tile of at most 12 positions beside the
  // weights, and there it measured 4-12 % slower than the GEMM conv, so it is taken only when forced.
  if (lanes != 16) return false;
  // 1x1 only where the GEMM conv's 32-wide column panels are badly filled: a batch-1 7x7 plane is
  // 49 of 64 computed columns. There the transposes back to NCHW (one per 12-14 positions and 32
  // channels, with no tap reuse to spread them over) cost less than the waste: mobilenetv2 batch 1
  // one thread 233 -> 215 us, two threads 171-180 -> 146-151, batch 2 on two threads 288 -> 258.
  // At batch 32 the GEMM puts the images side by side and won (7.33 vs 7.52 ms), and on 14x14
  // planes it won at batch 1 too (215 vs 225 us with them).
  // 3x3 from 3 input channels: a one-channel stem has 9 FMAs per output position to spread the
  // transposes over, and the GEMM conv ran it faster (batch 32 one thread 86 vs 103 us; 3 channels
  // 206 vs 194, 8 channels 330 vs 284).
  if (!pointwise) return s.C >= 3;
  return s.H * s.W <= 64 && (long)s.N * s.H * s.W <= 128;
}

}  // namespace

int conv_algorithm_code(const char* name) {
  if (std::strcmp(name, "auto") == 0) return 0;
  if (std::strcmp(name, "gemm") == 0) return 1;
  if (std::strcmp(name, "lanes") == 0) return 2;
  if (std::strcmp(name, "rows") == 0) return 3;
  return -1;
}

int conv_columns_code(const char* name) {
  if (std::strcmp(name, "auto") == 0) return 0;
  if (std::strcmp(name, "padded") == 0) return 1;
  if (std::strcmp(name, "compact") == 0) return 2;
  return -1;
}

std::unique_ptr<PreparedConv> prepare_conv_variant(KernelVariant v, const ConvShape& s, const float* w,
                                                   const float* bias, const Activation& act) {
  validate_conv_shape(s);
  if (v == KernelVariant::Scalar) return std::make_unique<ReferenceConv>(s, w, bias, act);
  const KernelTable* t = kernel_table(v);
  if (t == nullptr) fail(ErrorCode::BadOption, std::string("the ") + variant_name(v) + " kernels cannot run on this CPU");
  // The direct kernel wins only with few outputs per input plane (depthwise): with many (a C = 1
  // stem with M = 16) the im2col GEMM reuses each loaded input across the whole register tile and
  // measured 4x faster.
  if (s.C == s.group && s.M / s.group < 4) return std::make_unique<DirectConv>(t, s, w, bias, act);
  if (use_lanes(s, t->lanes)) return std::make_unique<LanesConv>(t, s, w, bias, act);
  return std::make_unique<GemmConv>(t, s, w, bias, act);
}

void conv2d_variant(KernelVariant v, const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                    int threads) {
  if (v == KernelVariant::Scalar) {
    validate_conv_shape(s);
    conv_reference(s, x, w, bias, y);  // no copy of the weights for the one-shot reference
    return;
  }
  prepare_conv_variant(v, s, w, bias)->run(x, y, threads, nullptr);
}

void conv2d(Isa isa, const ConvShape& s, const float* x, const float* w, const float* bias, float* y, int threads) {
  conv2d_variant(variant_of(isa), s, x, w, bias, y, threads);
}

std::unique_ptr<PreparedConv> prepare_conv(Isa isa, const ConvShape& s, const float* w, const float* bias,
                                           const Activation& act) {
  return prepare_conv_variant(variant_of(isa), s, w, bias, act);
}

}  // namespace packptq
