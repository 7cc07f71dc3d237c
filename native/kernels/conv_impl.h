// Direct convolution of one plane with a single input channel (depthwise convs, group == C), written
// once over the vector width and instantiated in the *_avx2.cpp / *_avx512.cpp files.
//
// Why a "phase split" copy of the input: with stride s, output column ow reads padded input column
// ow*s + kw*d. Splitting each zero-padded input row into s phases (phase p holds columns p, p+s,
// p+2s, ...) turns that into phase[(kw*d) % s][ow + (kw*d) / s]: contiguous in ow for every stride,
// so each tap is one unaligned vector load and one FMA over W output columns. The copy also
// materialises the left/right zero padding, and rows above or below the input read a shared zero
// row, so the inner loop has no bounds checks at all.
#pragma once
#include <algorithm>
#include <cstring>

#include "kernels/conv_gemm_impl.h"
#include "kernels/gemm_impl.h"
#include "kernels/variants.h"

namespace packptq {
namespace simd {
// Internal linkage on purpose: each ISA object compiles these with its own -march, and shared
// (COMDAT) inline copies would let the linker keep an AVX-512 copy for the AVX2 object.
namespace {

template <int W>
struct DwPlan {
  int L;  // floats per phase row
  static DwPlan make(const DwGeom& g) {
    DwPlan p;
    const int extra = ((g.KW - 1) * g.dw) / g.sw;  // how far past the output column a tap reads
    // Loads cover whole vectors of output columns, so a phase row must hold round_up(OW, W) + extra
    // floats, and also every input column (ceil((pl + W) / sw)) so the copy loses nothing.
    p.L = std::max((g.pl + g.W + g.sw - 1) / g.sw, round_up(g.OW, W) + extra);
    return p;
  }
};

// Phase rows of all input rows, then one all-zero row set that stands in for rows above or below
// the input (so the tap loop has no branches at the top and bottom borders either).
template <int W>
size_t dw_scratch_floats(const DwGeom& g) {
  return (size_t)(g.H + 1) * g.sw * DwPlan<W>::make(g).L;
}

// One output plane from the phase rows built by dw_plane.
template <int W>
void dw_compute(const DwGeom& g, int L, const float* scratch, const float* zeros, const float* w, float bias, float* y) {
  using V = typename VecOf<W>::type;
  const int S = g.sw;
  const size_t rowset = (size_t)S * L;
  // Work units are (output row, vector of W output columns). A unit's taps form one dependent FMA
  // chain, so U units run together to keep both FMA pipes busy through the FMA latency, whatever
  // the plane's width (a 7x7 plane has only one vector per row).
  constexpr int U = 8;
  const int nch = (g.OW + W - 1) / W, units = g.OH * nch;
  for (int u0 = 0; u0 < units; u0 += U) {
    int oh[U], c0[U];
    for (int u = 0; u < U; ++u) {
      const int k = std::min(u0 + u, units - 1);  // spare lanes of the last group repeat a unit
      oh[u] = k / nch;
      c0[u] = (k % nch) * W;
    }
    V acc[U];
#pragma GCC unroll 8
    for (int u = 0; u < U; ++u) acc[u] = V{} + bias;
    for (int kh = 0; kh < g.KH; ++kh) {
      const float* base[U];
#pragma GCC unroll 8
      for (int u = 0; u < U; ++u) {
        const int ih = oh[u] * g.sh - g.pt + kh * g.dh;
        base[u] = (ih >= 0 && ih < g.H ? scratch + ih * rowset : zeros) + c0[u];
      }
      const float* wr = w + kh * g.KW;
      for (int kw = 0; kw < g.KW; ++kw) {
        const int off = kw * g.dw;
        const size_t at = (size_t)(off % S) * L + off / S;
        const float wv = wr[kw];
#pragma GCC unroll 8
        for (int u = 0; u < U; ++u) acc[u] += wv * loadu<V>(base[u] + at);
      }
    }
    for (int u = 0; u < U && u0 + u < units; ++u) {
      float* dst = y + (long)oh[u] * g.OW + c0[u];
      if (c0[u] + W <= g.OW) {
        storeu<V>(dst, acc[u]);
      } else {
        alignas(64) float tmp[W];
        storeu<V>(tmp, acc[u]);
        std::memcpy(dst, tmp, sizeof(float) * (g.OW - c0[u]));
      }
    }
  }
}

// nout output planes (channel multiplier) from one input plane: y[o] = bias[o] + conv(x, w[o]).
// The phase-split copy is built once and shared by all of them.
template <int W>
void dw_plane(const DwGeom& g, const float* x, const float* w, const float* bias, int nout, float* y,
              float* scratch) {
  const int L = DwPlan<W>::make(g).L, S = g.sw;
  const size_t rowset = (size_t)S * L;
  // Phase-split, zero-padded copy: row ih, phase p, index i <- x[ih][p + i*S - pl] (0 outside).
  // Valid i form one interval per phase, so each phase row is zeros, a copy, zeros.
  for (int ih = 0; ih < g.H; ++ih) {
    const float* src = x + (long)ih * g.W;
    for (int p = 0; p < S; ++p) {
      float* dst = scratch + ih * rowset + (size_t)p * L;
      const int first = p - g.pl;  // input column of index 0
      int lo = first >= 0 ? 0 : (-first + S - 1) / S;
      int hi = (g.W - 1 - first) < 0 ? 0 : (g.W - 1 - first) / S + 1;
      lo = std::min(lo, L);
      hi = std::max(lo, std::min(hi, L));
      std::memset(dst, 0, sizeof(float) * lo);
      if (S == 1 && hi > lo)
        std::memcpy(dst + lo, src + (first + lo), sizeof(float) * (hi - lo));
      else
        for (int i = lo; i < hi; ++i) dst[i] = src[first + i * S];
      std::memset(dst + hi, 0, sizeof(float) * (L - hi));
    }
  }
  const float* zeros = scratch + g.H * rowset;
  std::memset(scratch + g.H * rowset, 0, sizeof(float) * rowset);
  for (int o = 0; o < nout; ++o) dw_compute<W>(g, L, scratch, zeros, w + (size_t)o * g.KH * g.KW, bias[o], y + (size_t)o * g.OH * g.OW);
}


// ---- depthwise, second form: flattened phase planes ---------------------------------------------
// For stride (sh, sw) the zero-padded plane is split into sh*sw phase planes of Hq x Wq (phase (a,b)
// holds padded rows a, a+sh, ... and columns b, b+sw, ...). Output (oh, ow) numbered j = oh*Wq + ow
// then reads, for tap (kh, kw), phase plane ((kh*dh) % sh, (kw*dw) % sw) at j + ((kh*dh)/sh)*Wq +
// (kw*dw)/sw: one constant offset per tap over the whole plane, so the plane is a 1-D convolution
// of OH*Wq outputs (columns ow >= OW are dropped when the rows are compacted into y). U vectors are
// in flight per pass (independent FMA chains), bias and clamp are applied before the store. The
// scratch is zeroed once by the caller: the padding positions are never written, only the data.
// dst[d] = src[2d] for d < n: pairs of vectors deinterleaved by one shuffle, the rest by narrower
// vectors, then scalars; loads stay within src[0 .. 2n-2].
template <int W>
inline int deinterleave2_part(float* __restrict dst, const float* __restrict src, int d, int n) {
  using V = typename VecOf<W>::type;
  using I = typename IVecOf<W>::type;
  for (; d + W + 1 <= n; d += W) {
    V r;
    if constexpr (W == 4)
      r = __builtin_shuffle(loadu<V>(src + 2 * d), loadu<V>(src + 2 * d + W), I{0, 2, 4, 6});
    else if constexpr (W == 8)
      r = __builtin_shuffle(loadu<V>(src + 2 * d), loadu<V>(src + 2 * d + W), I{0, 2, 4, 6, 8, 10, 12, 14});
    else
      r = __builtin_shuffle(loadu<V>(src + 2 * d), loadu<V>(src + 2 * d + W),
                            I{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30});
    storeu<V>(dst + d, r);
  }
  return d;
}
template <int W>
inline void deinterleave2(float* __restrict dst, const float* __restrict src, int n) {
  int d = deinterleave2_part<W>(dst, src, 0, n);
  if constexpr (W > 8) d = deinterleave2_part<8>(dst, src, d, n);
  if constexpr (W > 4) d = deinterleave2_part<4>(dst, src, d, n);
  for (; d < n; ++d) {
    dst[d] = src[2 * d];
    __asm__("" : "+r"(d));
  }
}

template <int W>
void dw2_plane(const DwGeom& g, const Dw2Plan& L, const float* x, const float* w, const float* bias, int nout, float* y,
               float* scratch, bool clamp, float lo, float hi) {
  using V = typename VecOf<W>::type;
  const int sh = g.sh, sw = g.sw;
  // Data into the phase planes (padding positions stay zero). No divisions here: the plan holds
  // each column phase's first input column, its destination and count. Rows go in with vector
  // moves (stride 2 deinterleaved by shuffles), not memcpy calls: the rows are 7..28 floats.
  int a = L.a0, rq = L.rq0;
  for (int ih = 0; ih < g.H; ++ih) {
    const float* src = x + (long)ih * g.W;
    float* row = scratch + (long)a * sw * L.PB + (long)rq * L.Wq;
    if (sw == 1) {
      copy_run<W>(row + g.pl, src, g.W);
    } else {
      for (int b = 0; b < sw; ++b) {
        float* __restrict dst = row + (long)b * L.PB + L.d0[b];
        const int iw0 = L.iw0[b], cnt = L.cnt[b];
        if (sw == 2) {
          deinterleave2<W>(dst, src + iw0, cnt);
        } else {
          const float* __restrict s = src + iw0;
          for (int d = 0; d < cnt; ++d) dst[d] = s[(long)d * sw];
        }
      }
    }
    if (++a == sh) a = 0, ++rq;
  }
  const int taps = g.KH * g.KW;
  const long* toff = L.toff;
  float* tmp = scratch + L.temp;
  constexpr int U = 4;
  for (int o = 0; o < nout; ++o) {
    const float* wo = w + (size_t)o * taps;
    for (long j0 = 0; j0 < L.span; j0 += U * W) {
      V acc[U];
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) acc[u] = V{} + bias[o];
      for (int t = 0; t < taps; ++t) {
        const float wv = wo[t];
        const float* p = scratch + toff[t] + j0;
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) acc[u] += wv * loadu<V>(p + u * W);
      }
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) {
        V v = acc[u];
        if (clamp) {
          const V lv = V{} + lo, hv = V{} + hi;
          v = v > lv ? v : lv;
          v = v < hv ? v : hv;
        }
        storeu<V>(tmp + j0 + u * W, v);
      }
    }
    float* yo = y + (size_t)o * g.OH * g.OW;
    for (int oh = 0; oh < g.OH; ++oh) copy_run<W>(yo + (long)oh * g.OW, tmp + (long)oh * L.Wq, g.OW);
  }
}
}  // namespace
}  // namespace simd
}  // namespace packptq
