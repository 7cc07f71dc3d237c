// Depthwise convolution with channels on the vector lanes, for small planes (7x7 .. 28x28).
//
// Why: the plane-at-a-time kernel (conv_impl.h dw2_plane) pays a fixed cost per plane (phase-split
// copy, passes rounded up to whole vector groups, compaction of the rows into y) that dominates
// when a plane has only 49 or 196 outputs. Here W planes (W output channels) are processed at
// once: their inputs are transposed in registers into a zero-padded [Hp][Wp][W] scratch, so every
// tap of every output position is one vector load and one FMA with a per-channel weight vector,
// for any stride, dilation and padding, and no lane is wasted on row ends. Blocks of W output
// positions are accumulated in W registers (independent FMA chains), then transposed back, so
// each output plane receives plain contiguous vector stores. onnxruntime's NCHWc depthwise
// kernels do the same arithmetic on a layout the whole graph keeps; here the layout lives only in
// the scratch.
//
// Blocks of W positions never run past a plane: the last block starts at HW - W (P - W) and
// overlaps the one before it (recomputing and rewriting identical values), which needs HW >= W and
// P >= W; conv.cpp only chooses this kernel then. Written once over the vector width, instantiated
// in the *_avx2.cpp / *_avx512.cpp files.
#pragma once
#include <algorithm>
#include <utility>

#include "kernels/conv_gemm_impl.h"  // VecOf, IVecOf, loadu/storeu, clamp_v
#include "kernels/variants.h"

namespace packptq {
namespace simd {
namespace {

// One stage of the in-register W x W transpose: swaps bit K of the row index with bit K of the
// column index (rows i and i|B exchange their off-diagonal B-blocks). log2(W) stages transpose.
template <int W, int K, int... Is>
inline void transpose_stage(typename VecOf<W>::type* r, std::integer_sequence<int, Is...>) {
  using V = typename VecOf<W>::type;
  using I = typename IVecOf<W>::type;
  constexpr int B = 1 << K;
#pragma GCC unroll 16
  for (int i = 0; i < W; ++i) {
    if (i & B) continue;
    const V a = r[i], c = r[i | B];
    r[i] = __builtin_shuffle(a, c, I{((Is & B) ? W + (Is ^ B) : Is)...});
    r[i | B] = __builtin_shuffle(a, c, I{((Is & B) ? W + Is : (Is | B))...});
  }
}

// r[i][j] <- r[j][i].
template <int W>
inline void transpose_block(typename VecOf<W>::type* r) {
  using Seq = std::make_integer_sequence<int, W>;
  transpose_stage<W, 0>(r, Seq{});
  transpose_stage<W, 1>(r, Seq{});
  transpose_stage<W, 2>(r, Seq{});
  if constexpr (W > 8) transpose_stage<W, 3>(r, Seq{});
}

// W output planes y[l] = act(bias[l] + conv(x[l], w[.][l])). Lanes the caller does not need read a
// real plane and write a dummy one (conv.cpp), so the kernel has no lane tails. w is [taps][W].
// scratch holds plan.pad_positions * W floats, zero once: only the data positions are written.
template <int W>
void dwc_group(const DwcPlan& pl, const float* const* x, const float* w, const float* bias, float* const* y,
               float* scratch, bool clamp, float lo, float hi) {
  using V = typename VecOf<W>::type;
  // Interleave: W positions of the W input planes per block, transposed into W position vectors.
  for (int p0 = 0;; p0 += W) {
    const int p = std::min(p0, pl.HW - W);
    V r[W];
#pragma GCC unroll 16
    for (int l = 0; l < W; ++l) r[l] = loadu<V>(x[l] + p);
    transpose_block<W>(r);
#pragma GCC unroll 16
    for (int i = 0; i < W; ++i) storeu<V>(scratch + (long)pl.in_pos[p + i] * W, r[i]);
    if (p0 + W >= pl.HW) break;
  }
  const V b = loadu<V>(bias);
  for (int q0 = 0;; q0 += W) {
    const int q = std::min(q0, pl.P - W);
    const float* base[W];
    V acc[W];
#pragma GCC unroll 16
    for (int i = 0; i < W; ++i) {
      base[i] = scratch + (long)pl.out_pos[q + i] * W;
      acc[i] = b;
    }
    for (int t = 0; t < pl.taps; ++t) {
      const V wv = loadu<V>(w + (long)t * W);
      const long off = (long)pl.tap_pos[t] * W;
#pragma GCC unroll 16
      for (int i = 0; i < W; ++i) acc[i] += wv * loadu<V>(base[i] + off);
    }
    if (clamp) {
#pragma GCC unroll 16
      for (int i = 0; i < W; ++i) acc[i] = clamp_v<W>(acc[i], lo, hi);
    }
    transpose_block<W>(acc);
#pragma GCC unroll 16
    for (int l = 0; l < W; ++l) storeu<V>(y[l] + q, acc[l]);
    if (q0 + W >= pl.P) break;
  }
}

}  // namespace
}  // namespace simd
}  // namespace packptq
