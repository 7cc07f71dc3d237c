// 3x3 stride-1 "same" convolution (pads 1, dilation 1, one group) with the output channels on the
// vector lanes, reading the NCHW input in place and writing NCHW output; and the same for 1x1
// stride-1 convs on small planes (see lanes_tile_1x1 and conv.cpp use_lanes).
//
// Why: the GEMM conv (conv_gemm_impl.h) puts output positions on the lanes, so it first builds a
// zero-padded copy of the input and computes the gap columns between rows for nothing; at batch 1
// on two threads that copy (a job of its own, its stores waiting for lines the other core read)
// and the gaps cost a fifth of a resnet20 run, and 7x7 planes fill its 32-wide panels badly (vgg's
// 128 -> 128 on 7x7: 63 % of the FMA peak). Here every input value x[c][iy][ix] is broadcast once
// and multiplied into the accumulators of the (up to three) output positions whose taps read it,
// one FMA per weight vector (W output channels of tap (c, ky, kx)). A tile is NB*W channels x P
// positions of one output row, NB*P accumulators in registers. Padding costs nothing: kernel rows
// above and below the image are skipped per output row, and the tiles at the row ends (L, R,
// compile-time) simply never read the column outside the image. The tile is then transposed in
// registers, W x W at a time, so each channel's P outputs are one contiguous (masked) store, with
// the bias (the accumulators start from it), a fused residual and the activation applied on the way.
// One thread, AVX-512: 16 -> 16 on 28x28 at 90 % of the FMA peak, 64 -> 64 on 7x7 at ~100 %
// (a standalone test harness; the GEMM conv 72 % and 63 %).
//
// Written once over the vector width, instantiated in the *_avx2.cpp / *_avx512.cpp files.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <utility>

#include "kernels/conv_gemm_impl.h"  // VecOf, loadu/storeu, clamp_v
#include "kernels/dw_chan_impl.h"    // transpose_block
#include "kernels/variants.h"

namespace packptq {
namespace simd {
namespace {

// Largest tile width (positions) for NB weight vectors per tap: NB*P accumulators, 3*NB weight
// vectors and one broadcast must fit the register file (32 zmm, 16 ymm), and P <= 2W (two
// transposes). Measured on AVX-512 (Zen 5): NB 1 P 14-16 and NB 2 P 7-14 all 90-100 % of peak.
// AVX2 takes one vector per tap only (conv.cpp), so no two-vector tiles are built for it.
template <int W, int NB>
constexpr int lanes_max_p() {
  return W == 16 ? (NB == 1 ? 16 : 14) : (NB == 1 ? 12 : 0);
}

// v -> p[0, n) and back, n <= W: masked moves where the ISA has them.
template <int W>
inline void store_first(float* p, typename VecOf<W>::type v, int n) {
  using V = typename VecOf<W>::type;
  if (n == W) return storeu<V>(p, v);
#if defined(__AVX512F__)
  if constexpr (W == 16) return _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), (__m512)v);
#endif
#if defined(__AVX2__)
  if constexpr (W == 8) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane), (__m256)v);
  }
#endif
  for (int i = 0; i < n; ++i) p[i] = v[i];
}
template <int W>
inline typename VecOf<W>::type load_first(const float* p, int n) {
  using V = typename VecOf<W>::type;
  if (n == W) return loadu<V>(p);
#if defined(__AVX512F__)
  if constexpr (W == 16) return (V)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
#endif
#if defined(__AVX2__)
  if constexpr (W == 8) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return (V)_mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane));
  }
#endif
  V v = V{};
  for (int i = 0; i < n; ++i) v[i] = p[i];
  return v;
}

// What every tile of an item shares.
struct LanesTileArgs {
  const float* x;      // image, input channel 0
  const float* w;      // [C][3][3][NB*W] of this channel group
  const float* bias;   // [NB*W]
  float* y;            // image, first output channel of the group
  const float* sum;    // like y, or nullptr
  long HW;             // plane size (input = output)
  int C, H, Wd, nout;  // input channels, plane height and width, valid output channels of the group
  bool clamp;
  float lo, hi;
};

// Every accumulator of the tile starts from its channels' bias.
template <int W, int NB, int P>
inline void lanes_init(const LanesTileArgs& a, typename VecOf<W>::type (&acc)[NB][P]) {
  using V = typename VecOf<W>::type;
#pragma GCC unroll 4
  for (int b = 0; b < NB; ++b) {
    const V bv = loadu<V>(a.bias + b * W);
#pragma GCC unroll 32
    for (int p = 0; p < P; ++p) acc[b][p] = bv;
  }
}

// The tile's NB*W channels x P positions (from plane offset `at`) to y: W x W transposes, then
// per channel the residual, the clamp and one (masked) store of its P outputs.
template <int W, int NB, int P>
inline void lanes_store(const LanesTileArgs& a, typename VecOf<W>::type (&acc)[NB][P], long at) {
  using V = typename VecOf<W>::type;
#pragma GCC unroll 1
  for (int b = 0; b < NB; ++b) {
    const int nl = std::min(W, a.nout - b * W);
    if (nl <= 0) break;
#pragma GCC unroll 2
    for (int q0 = 0; q0 < P; q0 += W) {
      const int n = std::min(W, P - q0);
      V r[W];
#pragma GCC unroll 16
      for (int i = 0; i < W; ++i) r[i] = q0 + i < P ? acc[b][q0 + i] : V{};
      transpose_block<W>(r);
      for (int l = 0; l < nl; ++l) {
        const long off = (long)(b * W + l) * a.HW + at + q0;
        V v = r[l];
        if (a.sum) v += load_first<W>(a.sum + off, n);
        if (a.clamp) v = clamp_v<W>(v, a.lo, a.hi);
        store_first<W>(a.y + off, v, n);
      }
    }
  }
}

// Output row oy, positions [ox0, ox0 + P). L: ox0 = 0 (column -1 is padding); R: the row's last
// tile (column Wd is padding).
template <int W, int NB, int P, bool L, bool R>
void lanes_tile(const LanesTileArgs& a, int oy, int ox0) {
  using V = typename VecOf<W>::type;
  constexpr int G = NB * W;
  V acc[NB][P];
  lanes_init<W, NB, P>(a, acc);
  const int ky0 = oy == 0 ? 1 : 0, ky1 = oy == a.H - 1 ? 2 : 3;
  for (int c = 0; c < a.C; ++c) {
    for (int ky = ky0; ky < ky1; ++ky) {
      // Input row oy - 1 + ky from column ox0: input column ox0 - 1 + j is row[j - 1].
      const float* row = a.x + c * a.HW + (long)(oy - 1 + ky) * a.Wd + ox0;
      const float* wr = a.w + (long)(c * 3 + ky) * 3 * G;
      V wv[3][NB];
#pragma GCC unroll 3
      for (int kx = 0; kx < 3; ++kx)
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b) wv[kx][b] = loadu<V>(wr + kx * G + b * W);
      // Input column ox0 - 1 + j feeds output position p = j - kx through tap kx.
#pragma GCC unroll 40
      for (int j = L ? 1 : 0; j < P + (R ? 1 : 2); ++j) {
        const V xv = V{} + row[j - 1];
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; ++kx) {
          const int p = j - kx;
          if (p < 0 || p >= P) continue;
#pragma GCC unroll 4
          for (int b = 0; b < NB; ++b) acc[b][p] += xv * wv[kx][b];
        }
      }
    }
  }
  lanes_store<W, NB, P>(a, acc, (long)oy * a.Wd + ox0);
}

// 1x1 (stride 1, no padding) over the flattened plane: positions [p0, p0 + P) (the `oy` argument
// is unused). Each broadcast input feeds the NB weight vectors of its channel.
template <int W, int NB, int P>
void lanes_tile_1x1(const LanesTileArgs& a, int, int p0) {
  using V = typename VecOf<W>::type;
  constexpr int G = NB * W;
  V acc[NB][P];
  lanes_init<W, NB, P>(a, acc);
  for (int c = 0; c < a.C; ++c) {
    const float* row = a.x + c * a.HW + p0;
    V wv[NB];
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) wv[b] = loadu<V>(a.w + (long)c * G + b * W);
#pragma GCC unroll 32
    for (int p = 0; p < P; ++p) {
      const V xv = V{} + row[p];
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) acc[b][p] += xv * wv[b];
    }
  }
  lanes_store<W, NB, P>(a, acc, p0);
}

typedef void (*LanesTileFn)(const LanesTileArgs&, int, int);

// fn[NB - 1][P][L][R] (3x3) and fn1[NB - 1][P] (1x1) for P in 1 .. lanes_max_p<W, NB>.
template <int W>
struct LanesTiles {
  static constexpr int kMaxP = lanes_max_p<W, 1>() > lanes_max_p<W, 2>() ? lanes_max_p<W, 1>() : lanes_max_p<W, 2>();
  LanesTileFn fn[2][kMaxP + 1][2][2] = {};
  LanesTileFn fn1[2][kMaxP + 1] = {};  // 1x1
  template <int NB, int P>
  void fill() {
    if constexpr (P <= lanes_max_p<W, NB>()) {
      fn1[NB - 1][P] = lanes_tile_1x1<W, NB, P>;
      fn[NB - 1][P][0][0] = lanes_tile<W, NB, P, false, false>;
      fn[NB - 1][P][0][1] = lanes_tile<W, NB, P, false, true>;
      fn[NB - 1][P][1][0] = lanes_tile<W, NB, P, true, false>;
      fn[NB - 1][P][1][1] = lanes_tile<W, NB, P, true, true>;
      fill<NB, P + 1>();
    }
  }
  LanesTiles() {
    fill<1, 1>();
    fill<2, 1>();
  }
};

// One work item (contract in variants.h LanesItem): rows [r0, r1) of the space (image, channel
// group, row). 3x3: a row is an output row, cut into the fewest tiles of at most lanes_max_p
// positions, as equal as whole positions allow (28 -> 14 + 14, 32 -> 11 + 11 + 10). 1x1: the plane
// is flattened and cut the same way, and a "row" is one such tile (49 -> 12 + 12 + 12 + 13), so
// batch-1 work still splits finely.
template <int W>
int lanes_rows(int taps, int nb, int H, int Wd) {
  const int pmax = nb == 1 ? lanes_max_p<W, 1>() : lanes_max_p<W, 2>();
  return taps == 1 ? (int)(((long)H * Wd + pmax - 1) / pmax) : H;
}

template <int W>
void lanes_item(const LanesItem& it) {
  static const LanesTiles<W> tiles;
  const int NB = it.nb, G = NB * W;
  const int pmax = NB == 1 ? lanes_max_p<W, 1>() : lanes_max_p<W, 2>();
  const long HW = (long)it.H * it.Wd;
  const bool pw = it.taps == 1;
  const int rows = lanes_rows<W>(it.taps, NB, it.H, it.Wd);
  const int T = pw ? 1 : (it.Wd + pmax - 1) / pmax;            // tiles per row
  LanesTileArgs a;
  a.HW = HW;
  a.C = it.C;
  a.H = it.H;
  a.Wd = it.Wd;
  a.clamp = it.clamp;
  a.lo = it.lo;
  a.hi = it.hi;
  for (long r = it.r0; r < it.r1;) {
    const long plane = r / rows;  // image * groups + group
    const int n = (int)(plane / it.groups), g = (int)(plane % it.groups);
    const long end = std::min(it.r1, (plane + 1) * rows);
    a.x = it.x + (long)n * it.C * HW;
    a.w = it.w + (long)g * it.C * it.taps * G;
    a.bias = it.bias + (long)g * G;
    const long yoff = ((long)n * it.M + (long)g * G) * HW;
    a.y = it.y + yoff;
    a.sum = it.sum ? it.sum + yoff : nullptr;
    a.nout = std::min(G, it.M - g * G);
    for (; r < end; ++r) {
      const int oy = (int)(r - plane * rows);
      if (pw) {
        const int p0 = (int)(HW * oy / rows), P = (int)(HW * (oy + 1) / rows) - p0;
        tiles.fn1[NB - 1][P](a, 0, p0);
        continue;
      }
      for (int t = 0; t < T; ++t) {
        const int ox0 = (int)((long)t * it.Wd / T), P = (int)((long)(t + 1) * it.Wd / T) - ox0;
        tiles.fn[NB - 1][P][t == 0][t == T - 1](a, oy, ox0);
      }
    }
  }
}

}  // namespace
}  // namespace simd
}  // namespace packptq
