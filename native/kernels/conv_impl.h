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

}  // namespace
}  // namespace simd
}  // namespace packptq
