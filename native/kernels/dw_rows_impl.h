// Depthwise 3x3 convolution, stride 1 or 2, pads 1 at the top and left, on narrow planes (output
// width < lanes, input width < 2*lanes): one output row per vector, straight from the NCHW plane.
//
// Why: the channels-on-lanes kernel (dw_chan_impl.h) transposes the input of 16 planes into its
// scratch and the outputs back, more shuffles than FMAs (and on a stride-2 layer four input
// positions per output: mobilenetv2's 28x28 -> 14x14 layer took twice onnxruntime's time). Here
// each valid input row is read as two masked vectors (input columns -1 .. 2*lanes - 2, lanes
// outside the image zero), and one two-source shuffle per tap column picks input column
// S*ow - 1 + kw for every output column ow: three shuffles and three FMAs per kernel row, no
// scratch, no transpose.
//
// Written once over the vector width, instantiated in the *_avx2.cpp / *_avx512.cpp files.
#pragma once
#include <utility>

#include "kernels/conv_gemm_impl.h"  // VecOf, IVecOf, loadu/storeu, clamp_v
#include "kernels/conv_lanes_impl.h"  // load_first / store_first
#include "kernels/variants.h"

namespace packptq {
namespace simd {
namespace {

// Lane j of the result is lane j - 1 of v (lane 0 is zero).
template <int W, int... Is>
inline typename VecOf<W>::type shift_up1(typename VecOf<W>::type v, typename VecOf<W>::type z,
                                         std::integer_sequence<int, Is...>) {
  using I = typename IVecOf<W>::type;
  return __builtin_shuffle(v, z, I{(Is == 0 ? W : Is - 1)...});
}

template <int W, int S, int OFF, int... Is>
inline typename VecOf<W>::type pick2(typename VecOf<W>::type a, typename VecOf<W>::type b,
                                     std::integer_sequence<int, Is...>) {
  using I = typename IVecOf<W>::type;
  // Lane ow takes element S*ow + OFF of the concatenation [a, b] (capped at 2W - 1: lanes past
  // the output width are never stored).
  return __builtin_shuffle(a, b, I{(S * Is + OFF < 2 * W ? S * Is + OFF : 2 * W - 1)...});
}

// `planes` consecutive planes (plane c: x + c*H*Wd -> y + c*OH*OW, taps w + c*9, bias[c]);
// sum (optional) shaped like y.
template <int W, int S>
void dw_rows_stride(const DwGeom& g, const float* x, const float* w, const float* bias, float* y, int planes,
                    const float* sum, bool clamp, float lo, float hi) {
  using V = typename VecOf<W>::type;
  using Seq = std::make_integer_sequence<int, W>;
  const int H = g.H, Wd = g.W, OH = g.OH, OW = g.OW;
  // Input columns -1 .. W-2 in a (lane j = column j - 1), W-1 .. 2W-2 in b (lane j = column W-1+j).
  const int a_hi = std::min(W, Wd + 1), b_hi = std::max(0, std::min(W, Wd - (W - 1)));
  for (int c = 0; c < planes; ++c) {
    const float* xc = x + (long)c * H * Wd;
    float* yc = y + (long)c * OH * OW;
    const float* sc = sum ? sum + (long)c * OH * OW : nullptr;
    V wv[9];
    for (int t = 0; t < 9; ++t) wv[t] = V{} + w[(long)c * 9 + t];
    const V bv = V{} + bias[c];
    for (int oy = 0; oy < OH; ++oy) {
      V acc[3] = {bv, V{}, V{}};
#pragma GCC unroll 3
      for (int kh = 0; kh < 3; ++kh) {
        const int iy = S * oy - 1 + kh;
        if (iy < 0 || iy >= H) continue;
        const float* row = xc + (long)iy * Wd;
        // a: lane 0 is the padding column, lanes 1 .. a_hi-1 hold columns 0 .. a_hi-2.
        V a = shift_up1<W>(load_first<W>(row, a_hi - 1), V{}, Seq{});
        V b = b_hi > 0 ? load_first<W>(row + W - 1, b_hi) : V{};
        acc[kh] += pick2<W, S, 0>(a, b, Seq{}) * wv[kh * 3];
        acc[kh] += pick2<W, S, 1>(a, b, Seq{}) * wv[kh * 3 + 1];
        acc[kh] += pick2<W, S, 2>(a, b, Seq{}) * wv[kh * 3 + 2];
      }
      V v = acc[0] + acc[1] + acc[2];
      const long off = (long)oy * OW;
      if (sc) v += load_first<W>(sc + off, OW);
      if (clamp) v = clamp_v<W>(v, lo, hi);
      store_first<W>(yc + off, v, OW);
    }
  }
}

template <int W>
void dw_rows_planes(const DwGeom& g, const float* x, const float* w, const float* bias, float* y, int planes,
                    const float* sum, bool clamp, float lo, float hi) {
  if (g.sw == 1) dw_rows_stride<W, 1>(g, x, w, bias, y, planes, sum, clamp, lo, hi);
  else dw_rows_stride<W, 2>(g, x, w, bias, y, planes, sum, clamp, lo, hi);
}

}  // namespace
}  // namespace simd
}  // namespace packptq
