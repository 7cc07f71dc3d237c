// Vector elementwise kernels for the executor's activation and normalisation ops (Gelu, Softmax),
// written once over the vector width like the conv kernels and reached through the KernelTable:
// the ops files are built for the baseline ISA, where a polynomial erf or exp runs 4 lanes wide in
// one long dependency chain. Here each loop step evaluates U independent vectors with FMAs.
// Only the *_avx2.cpp / *_avx512.cpp objects include this header.
#pragma once
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/conv_gemm_impl.h"  // VecOf, IVecOf, loadu/storeu

namespace packptq {
namespace simd {
namespace {

// e^x: the ops' exp_fast (ops_common.h) lane-wise: Cody-Waite reduction and the Cephes degree-6
// polynomial, ~2 ulp on [-87.3, 88.3]; below that exactly 0, above it e^88.3.
template <int W>
inline typename VecOf<W>::type exp_v(typename VecOf<W>::type x) {
  using V = typename VecOf<W>::type;
  using I = typename IVecOf<W>::type;
  V xc = x < -87.3f ? V{} - 87.3f : x;
  xc = xc > 88.3f ? V{} + 88.3f : xc;
  V fn = xc * 1.44269504088896341f + 12582912.f;
  fn -= 12582912.f;
  V r = xc - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  V p = V{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const V y = p * r * r + r + 1.f;
  const I bits = (__builtin_convertvector(fn, I) + 127) << 23;
  V scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < -87.3f ? V{} : y * scale;
}

// erfc(|x|/√2) (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7), and z = |x|/√2.
template <int W>
inline typename VecOf<W>::type erfc_abs_v(typename VecOf<W>::type x, typename VecOf<W>::type& z) {
  using V = typename VecOf<W>::type;
  z = (x < 0.f ? -x : x) * 0.70710678118654752f;
  const V t = 1.f / (1.f + 0.5f * z);
  V p = V{} + 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return t * exp_v<W>(p - z * z);
}

// 0.5·x·(1 + erf(x/√2)) through erfc(|x|/√2): 2 − erfc for x >= 0, erfc for x < 0, so the
// negative side keeps relative accuracy.
template <int W>
inline typename VecOf<W>::type gelu_v(typename VecOf<W>::type x) {
  typename VecOf<W>::type z;
  const auto erfc = erfc_abs_v<W>(x, z);
  return 0.5f * x * (x >= 0.f ? 2.f - erfc : erfc);
}

// y[i] = f(x[i]) for i < n: U vectors per step, then single vectors, then a padded last vector.
template <int W, class F>
inline void map_v(const float* x, float* y, long n, F f) {
  using V = typename VecOf<W>::type;
  constexpr int U = 3;
  long i = 0;
  for (; i + U * W <= n; i += U * W) {
    V v[U];
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) v[u] = loadu<V>(x + i + u * W);
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) storeu<V>(y + i + u * W, f(v[u]));
  }
  for (; i + W <= n; i += W) storeu<V>(y + i, f(loadu<V>(x + i)));
  if (i < n) {
    alignas(64) float buf[W] = {};
    std::memcpy(buf, x + i, sizeof(float) * (n - i));
    storeu<V>(buf, f(loadu<V>(buf)));
    std::memcpy(y + i, buf, sizeof(float) * (n - i));
  }
}

template <int W>
void gelu_erf(const float* x, float* y, long n) {
  map_v<W>(x, y, n, [](typename VecOf<W>::type v) { return gelu_v<W>(v); });
}

// The exact Gelu's derivative times the incoming gradient, for training (train/grad_ops_eltwise):
// d/dx [x·Φ(x)] = Φ(x) + x·φ(x), with Φ from erfc as in gelu_v and φ(x) = e^(−x²/2)/√(2π).
// gx = gy·d, or gx += gy·d when `accumulate`.
template <int W>
inline typename VecOf<W>::type gelu_grad_v(typename VecOf<W>::type x) {
  typename VecOf<W>::type z;
  const auto erfc = erfc_abs_v<W>(x, z);
  const auto cdf = 0.5f * (x >= 0.f ? 2.f - erfc : erfc);
  return cdf + x * (0.39894228040143267794f * exp_v<W>(-(z * z)));
}

template <int W>
void gelu_erf_grad(const float* x, const float* gy, float* gx, long n, bool accumulate) {
  using V = typename VecOf<W>::type;
  long i = 0;
  for (; i + W <= n; i += W) {
    V g = loadu<V>(gy + i) * gelu_grad_v<W>(loadu<V>(x + i));
    if (accumulate) g += loadu<V>(gx + i);
    storeu<V>(gx + i, g);
  }
  if (i < n) {
    alignas(64) float xb[W] = {}, gb[W] = {}, ob[W] = {};
    std::memcpy(xb, x + i, sizeof(float) * (n - i));
    std::memcpy(gb, gy + i, sizeof(float) * (n - i));
    if (accumulate) std::memcpy(ob, gx + i, sizeof(float) * (n - i));
    storeu<V>(ob, loadu<V>(ob) + loadu<V>(gb) * gelu_grad_v<W>(loadu<V>(xb)));  // ob is 0 unless accumulating
    std::memcpy(gx + i, ob, sizeof(float) * (n - i));
  }
}

// AdaRound's rectified sigmoid h(v) = clamp(1.2·σ(v) − 0.1, 0, 1) over n floats (recon's AdaRound
// op; the scalar form is rect_sigmoid in recon/quant_grad_ops.cpp).
template <int W>
void rect_sigmoid(const float* v, float* h, long n) {
  map_v<W>(v, h, n, [](typename VecOf<W>::type x) {
    using V = typename VecOf<W>::type;
    V y = 1.f / (1.f + exp_v<W>(-x)) * 1.2f - 0.1f;
    y = y < 0.f ? V{} : y;
    return y > 1.f ? V{} + 1.f : y;
  });
}

// The lower and upper halves of a vector of W floats (literal shuffles).
template <int W>
inline void split_halves(typename VecOf<W>::type v, typename VecOf<W / 2>::type& lo, typename VecOf<W / 2>::type& hi) {
  static_assert(W == 4 || W == 8 || W == 16, "vectors of 4, 8 or 16 floats");
  if constexpr (W == 16) {
    lo = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7);
    hi = __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  } else if constexpr (W == 8) {
    lo = __builtin_shufflevector(v, v, 0, 1, 2, 3);
    hi = __builtin_shufflevector(v, v, 4, 5, 6, 7);
  } else {
    lo = __builtin_shufflevector(v, v, 0, 1);
    hi = __builtin_shufflevector(v, v, 2, 3);
  }
}

// The max (MAX) or the sum of the lanes of v, by halving: the upper half is combined into the
// lower one until one lane is left (log2(W) steps). A lane-by-lane scalar loop is a chain of W
// dependent steps: on a ViT's 50-float attention rows the two reductions took most of the row's
// time.
template <int W, bool MAX>
inline float lanes_reduce(typename VecOf<W>::type v) {
  auto join = [](auto a, auto b) {
    if constexpr (MAX) return a > b ? a : b;
    else return a + b;
  };
  if constexpr (W == 2) {
    return join(v[0], v[1]);
  } else {
    typename VecOf<W / 2>::type lo, hi;
    split_halves<W>(v, lo, hi);
    return lanes_reduce<W / 2, MAX>(join(lo, hi));
  }
}

// Softmax (or LogSoftmax) of `rows` contiguous rows of n floats. The sum of the exponentials is
// accumulated per lane in float (each lane adds n/W terms), then the lanes pairwise.
template <int W>
void softmax_rows(const float* x, float* y, long rows, long n, bool log) {
  using V = typename VecOf<W>::type;
  const float ninf = -std::numeric_limits<float>::infinity();
  for (long row = 0; row < rows; ++row, x += n, y += n) {
    if (n <= 0) continue;
    V mv = V{} + ninf;
    long i = 0;
    for (; i + W <= n; i += W) {
      const V v = loadu<V>(x + i);
      mv = v > mv ? v : mv;  // NaN inputs are skipped, as std::max does in the scalar op
    }
    float m = lanes_reduce<W, true>(mv);  // lanes of mv are never NaN
    for (; i < n; ++i) m = x[i] > m ? x[i] : m;
    V sv = V{};
    i = 0;
    for (; i + W <= n; i += W) {
      const V e = exp_v<W>(loadu<V>(x + i) - m);
      storeu<V>(y + i, e);
      sv += e;
    }
    double s = 0;
    if (i < n && n >= W) {
      // The row's last W elements in one vector, overlapping the ones already done: they get the
      // same bits again, and only the new lanes (the last n - i) join the sum. Short attention
      // rows (a ViT's 50) spent a sixth of their time in the padded-buffer tail below.
      using I = typename IVecOf<W>::type;
      I lane;
      for (int l = 0; l < W; ++l) lane[l] = l;
      const V e = exp_v<W>(loadu<V>(x + n - W) - m);
      storeu<V>(y + n - W, e);
      sv += lane >= (int)(W - (n - i)) ? e : V{};
    } else if (i < n) {
      alignas(64) float buf[W];
      for (int l = 0; l < W; ++l) buf[l] = i + l < n ? x[i + l] - m : -1e30f;  // pads give exactly 0
      const V e = exp_v<W>(loadu<V>(buf));
      storeu<V>(buf, e);
      std::memcpy(y + i, buf, sizeof(float) * (n - i));
      sv += e;
    }
    s = lanes_reduce<W, false>(sv);
    if (log) {
      const float ls = static_cast<float>(std::log(s));
      for (long k = 0; k < n; ++k) y[k] = (x[k] - m) - ls;
    } else {
      const float inv = static_cast<float>(1.0 / s);
      long k = 0;
      for (; k + W <= n; k += W) storeu<V>(y + k, loadu<V>(y + k) * inv);
      for (; k < n; ++k) y[k] *= inv;
    }
  }
}

// The two halves of a float vector widened to doubles.
template <int W>
inline void widen(typename VecOf<W>::type v, typename DVecOf<W>::type& lo, typename DVecOf<W>::type& hi) {
  using D = typename DVecOf<W>::type;
  typename VecOf<W / 2>::type l, h;
  split_halves<W>(v, l, h);
  lo = __builtin_convertvector(l, D);
  hi = __builtin_convertvector(h, D);
}

template <int W>
inline double sum_lanes_d(typename DVecOf<W>::type d) {
  double t = 0;
  for (int l = 0; l < W / 2; ++l) t += d[l];
  return t;
}

// LayerNormalization of `rows` contiguous rows of n floats: y = (x − mean)·istd·scale + bias, the
// mean and the variance summed in double (as the scalar op does: results track onnxruntime on long
// rows), W floats at a time; scale and bias per element or one value each (bias may be absent).
// mean_out / istd_out (one float per row) are written when given. The scalar op ran at about a
// nanosecond per element, half again onnxruntime's time on a ViT's 96-float rows.
template <int W>
void layer_norm_rows(const float* x, float* y, long rows, long n, const float* scale, bool scale_scalar,
                     const float* bias, bool bias_scalar, float eps, float* mean_out, float* istd_out) {
  using V = typename VecOf<W>::type;
  using D = typename DVecOf<W>::type;
  for (long row = 0; row < rows; ++row, x += n, y += n) {
    D s0 = D{}, s1 = D{};
    long i = 0;
    for (; i + W <= n; i += W) {
      D lo, hi;
      widen<W>(loadu<V>(x + i), lo, hi);
      s0 += lo;
      s1 += hi;
    }
    double sum = sum_lanes_d<W>(s0 + s1);
    for (; i < n; ++i) sum += x[i];
    const double mean = n ? sum / n : 0.0;
    const float m = static_cast<float>(mean);
    // Σ (x − mean)² from float differences squared in double.
    D v0 = D{}, v1 = D{};
    i = 0;
    for (; i + W <= n; i += W) {
      D lo, hi;
      widen<W>(loadu<V>(x + i) - m, lo, hi);
      v0 += lo * lo;
      v1 += hi * hi;
    }
    double var = sum_lanes_d<W>(v0 + v1);
    for (; i < n; ++i) {
      const double d = static_cast<double>(x[i] - m);
      var += d * d;
    }
    var = n ? var / n : 0.0;
    const double istd = 1.0 / std::sqrt(var + eps);
    if (mean_out) mean_out[row] = m;
    if (istd_out) istd_out[row] = static_cast<float>(istd);
    const float is = static_cast<float>(istd);
    i = 0;
    if (!scale_scalar && bias && !bias_scalar) {
      for (; i + W <= n; i += W)
        storeu<V>(y + i, (loadu<V>(x + i) - m) * is * loadu<V>(scale + i) + loadu<V>(bias + i));
      for (; i < n; ++i) y[i] = (x[i] - m) * is * scale[i] + bias[i];
    } else {
      for (; i < n; ++i) {
        const float sc = scale[scale_scalar ? 0 : i];
        const float bb = bias ? bias[bias_scalar ? 0 : i] : 0.f;
        y[i] = (x[i] - m) * is * sc + bb;
      }
    }
  }
}

// 2x2 stride-2 MaxPool without padding (floor mode: OH = H/2, OW = W/2) over `planes` planes.
// Per output row: the two input rows are maxed vector by vector, then one shuffle pair splits the
// even and odd columns and a last max gives L outputs. The generic pool op (ops_pool.cpp) reads
// every tap with a strided scalar loop: vgg's three 2x2 pools took 4 % of its batch-32 time there,
// six times onnxruntime's.
template <int L>
inline int max_pool_2x2_part(const float* __restrict r0, const float* __restrict r1, float* __restrict yr, int ow,
                             int OW) {
  using V = typename VecOf<L>::type;
  using I = typename IVecOf<L>::type;
  for (; ow + L <= OW; ow += L) {
    const V a0 = loadu<V>(r0 + 2 * ow), b0 = loadu<V>(r1 + 2 * ow);
    const V a1 = loadu<V>(r0 + 2 * ow + L), b1 = loadu<V>(r1 + 2 * ow + L);
    const V a = a0 > b0 ? a0 : b0, b = a1 > b1 ? a1 : b1;
    V even, odd;
    if constexpr (L == 4) {
      even = __builtin_shuffle(a, b, I{0, 2, 4, 6});
      odd = __builtin_shuffle(a, b, I{1, 3, 5, 7});
    } else if constexpr (L == 8) {
      even = __builtin_shuffle(a, b, I{0, 2, 4, 6, 8, 10, 12, 14});
      odd = __builtin_shuffle(a, b, I{1, 3, 5, 7, 9, 11, 13, 15});
    } else {
      even = __builtin_shuffle(a, b, I{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30});
      odd = __builtin_shuffle(a, b, I{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31});
    }
    storeu<V>(yr + ow, even > odd ? even : odd);
  }
  return ow;
}

template <int L>
void max_pool_2x2(const float* x, float* y, long planes, int H, int W, int OH, int OW) {
  for (long p = 0; p < planes; ++p) {
    const float* xp = x + p * (long)H * W;
    float* yp = y + p * (long)OH * OW;
    for (int oh = 0; oh < OH; ++oh) {
      const float* r0 = xp + (long)(2 * oh) * W;
      const float* r1 = r0 + W;
      float* yr = yp + (long)oh * OW;
      int ow = max_pool_2x2_part<L>(r0, r1, yr, 0, OW);
      if constexpr (L > 8) ow = max_pool_2x2_part<8>(r0, r1, yr, ow, OW);
      if constexpr (L > 4) ow = max_pool_2x2_part<4>(r0, r1, yr, ow, OW);
      for (; ow < OW; ++ow) {
        const float a = r0[2 * ow] > r1[2 * ow] ? r0[2 * ow] : r1[2 * ow];
        const float b = r0[2 * ow + 1] > r1[2 * ow + 1] ? r0[2 * ow + 1] : r1[2 * ow + 1];
        yr[ow] = a > b ? a : b;
      }
    }
  }
}

}  // namespace
}  // namespace simd
}  // namespace packptq
