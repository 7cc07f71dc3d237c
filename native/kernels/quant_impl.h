// The quantizer kernels, written once over the vector width with GCC vector extensions and
// instantiated per ISA by quant_avx2.cpp, quant_avx512.cpp and quant_avx512logic_avx2.cpp. Only
// those files may include this header: everything here compiles to the instruction set of the file
// that instantiates it.
//
// Rounding. round_half_even(x/s) is computed as (t + 1.5·2^23) − 1.5·2^23 AFTER clamping t = x/s to
// the integer bounds [qmin − z, qmax − z]: round is monotone and fixes integers, so
//   clamp(round(t), lo, hi) = round(clamp(t, lo, hi))     for integer lo, hi,
// and on the clamped range (|t| <= 2^16) adding 1.5·2^23 lands in [2^23, 2^24), where the float
// spacing is 1, so the addition itself rounds to the nearest integer, ties to even, under the
// default rounding mode, exactly like nearbyint and onnxruntime. x/s is a true division (divps).
//
// Fused multiply-adds would change results: x − s·r must round s·r first, as the exported
// DequantizeLinear does, so products that feed a subtraction go through __builtin_assoc_barrier
// (the build contracts a*b+c into FMA on -march=x86-64-v3).
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/quant.h"

namespace packptq {
namespace qsimd {
// Internal linkage on purpose: each ISA object compiles these with its own -march, and shared
// (COMDAT) inline copies would let the linker keep an AVX-512 copy for the AVX2 object.
namespace {

// W-lane vectors of each element type. Declared outside Q and named through `typename`: GCC drops
// vector_size on a dependent typedef used directly inside the class template that declares it.
template <typename T, int W>
struct Vec {
  typedef T type __attribute__((vector_size(W * sizeof(T))));
};

// |d|^p on H floats giving H doubles. The lp kernel splits each W-lane float vector in two halves
// so the doubles fill exactly one native register (AVX2: 4 floats -> one ymm of doubles); W-lane
// doubles would be twice the register width and GCC spills them through the stack.
template <int H>
struct Pow {
  using F = typename Vec<float, H>::type;
  using I = typename Vec<int32_t, H>::type;
  using D = typename Vec<double, H>::type;
  using L = typename Vec<int64_t, H>::type;
  static F splat(float v) { return F{} + v; }
  static D splatd(double v) { return D{} + v; }

  // |d|^p in double: ln|d| = e·ln2 + ln m (m in [√½, √2), ln m = 2·atanh((m−1)/(m+1)) by its odd
  // series), then exp(p·ln|d|) = 2^k·exp(r) with |r| <= ln2/2 (Cody-Waite split of ln 2, Taylor
  // series to degree 13). Relative error ~1e-15, far below the float rounding of d itself, so the argmin
  // agrees with a double-precision pow. Denormal and zero d give 0 (their terms are < 2^−300);
  // inf and NaN pass through.
  static D powabs(F d, double p) {
    const I bits = ((I)d) & 0x7fffffff;
    const F a = (F)bits;
    I e = (bits >> 23) - 127;
    F m = (F)((bits & 0x7fffff) | 0x3f800000);
    const I big = m > splat(1.41421356f);
    m = big ? m * splat(0.5f) : m;
    e = e - big;  // big is −1 where true
    const D md = __builtin_convertvector(m, D), ed = __builtin_convertvector(e, D);
    const D one = splatd(1.0);
    const D u = (md - one) / (md + one), y = u * u;
    // ln m / 2u = Σ_{j=0..11} y^j / (2j+1); |u| <= 0.1716, so the next term is below 1e-18.
    // Estrin's scheme, not Horner: the loop is latency-bound, and pairing terms cuts the
    // dependency chain from 11 multiply-adds to 4.
    const D y2 = y * y, y4 = y2 * y2, y8 = y4 * y4;
    const D l01 = 1.0 + y * (1.0 / 3), l23 = 1.0 / 5 + y * (1.0 / 7), l45 = 1.0 / 9 + y * (1.0 / 11),
            l67 = 1.0 / 13 + y * (1.0 / 15), l89 = 1.0 / 17 + y * (1.0 / 19), lab = 1.0 / 21 + y * (1.0 / 23);
    const D l03 = l01 + y2 * l23, l47 = l45 + y2 * l67, l8b = l89 + y2 * lab;
    const D ls = (l03 + y4 * l47) + y8 * l8b;
    const D lnd = ed * 0.6931471805599453 + 2.0 * u * ls;
    const D t = p * lnd;
    const double MAGIC = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
    const D kr = t * 1.4426950408889634 + MAGIC;
    const L k = (L)kr - (L)splatd(MAGIC);
    const D kd = kr - MAGIC;
    const D r = (t - kd * 0.6931471805598903) - kd * 5.497923018708371e-14;
    // exp(r) = Σ_{j=0..13} r^j / j!, |r| <= 0.3466: the next term is below 2e-17. Estrin again.
    const D r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    const D e01 = 1.0 + r, e23 = 1.0 / 2 + r * (1.0 / 6), e45 = 1.0 / 24 + r * (1.0 / 120),
            e67 = 1.0 / 720 + r * (1.0 / 5040), e89 = 1.0 / 40320 + r * (1.0 / 362880),
            eab = 1.0 / 3628800 + r * (1.0 / 39916800), ecd = 1.0 / 479001600 + r * (1.0 / 6227020800.0);
    const D e03 = e01 + r2 * e23, e47 = e45 + r2 * e67, e8b = e89 + r2 * eab;
    const D ex = (e03 + r4 * e47) + r8 * (e8b + r4 * ecd);
    const D res = ex * (D)((k + 1023) << 52);
    const L tiny = __builtin_convertvector(bits < 0x00800000, L);
    const L special = __builtin_convertvector(bits >= 0x7f800000, L);
    const D out = tiny ? D{} : res;
    return special ? __builtin_convertvector(a, D) : out;
  }
};

template <int W>
struct Q {
  using F = typename Vec<float, W>::type;
  using I = typename Vec<int32_t, W>::type;
  using I8 = typename Vec<int8_t, W>::type;
  using U8 = typename Vec<uint8_t, W>::type;

  static F splat(float v) { return F{} + v; }
  static F load(const float* p) {
    F v;
    std::memcpy(&v, p, sizeof(F));
    return v;
  }
  // First n (< W) lanes from p, the rest `fill`: tails run through the same vector code.
  static F load_part(const float* p, int64_t n, float fill) {
    F v = splat(fill);
    for (int64_t j = 0; j < n; ++j) v[j] = p[j];
    return v;
  }

  // r = clamp(round_half_even(x / s), lo, hi); NaN -> 0 (code z).
  static F offset(F x, F s, F lo, F hi) {
    F t = x / s;
    t = (t == t) ? t : F{};
    t = t > lo ? t : lo;
    t = t < hi ? t : hi;
    const F M = splat(12582912.0f);  // 1.5 * 2^23
    return (t + M) - M;
  }
  // As offset(), plus the STE mask: rounding t clamped one step outside [lo, hi] decides whether
  // round(t) itself lies inside (clamping commutes with rounding for integer bounds).
  static F offset_mask(F x, F s, F lo, F hi, I* inside) {
    F t = x / s;
    const I ok = (t == t);
    t = ok ? t : F{};
    const F one = splat(1.0f), lo1 = lo - one, hi1 = hi + one;
    t = t > lo1 ? t : lo1;
    t = t < hi1 ? t : hi1;
    const F M = splat(12582912.0f);
    F r = (t + M) - M;
    *inside = ok & (r >= lo) & (r <= hi);
    r = r > lo ? r : lo;
    return r < hi ? r : hi;
  }

  // Copies the first n bytes of v; FULL (n == sizeof v) keeps it one vector store, not a memcpy call.
  template <bool FULL, typename T>
  static void put(void* dst, const T& v, size_t n) {
    if (FULL)
      std::memcpy(dst, &v, sizeof(T));
    else
      std::memcpy(dst, &v, n);
  }
  // Stores lanes [0, n) of one result vector (FULL: n == W). K is a template argument so the
  // output kind is decided once per call, not per vector.
  template <QuantOut K, bool FULL>
  static void store(F r, F s, F z, I inside, void* out, uint8_t* mask, int64_t i, int64_t n) {
    if constexpr (K == QuantOut::FakeQuant || K == QuantOut::FakeQuantMask) {
      put<FULL>(static_cast<float*>(out) + i, F(s * r), sizeof(float) * n);
      if constexpr (K == QuantOut::FakeQuantMask) put<FULL>(mask + i, __builtin_convertvector(inside & 1, U8), n);
    } else {
      const I q = __builtin_convertvector(r + z, I);  // integer-valued: truncation is exact
      if constexpr (K == QuantOut::CodesI32) put<FULL>(static_cast<int32_t*>(out) + i, q, sizeof(int32_t) * n);
      if constexpr (K == QuantOut::CodesI8) put<FULL>(static_cast<int8_t*>(out) + i, __builtin_convertvector(q, I8), n);
      if constexpr (K == QuantOut::CodesU8) put<FULL>(static_cast<uint8_t*>(out) + i, __builtin_convertvector(q, U8), n);
    }
  }

  template <QuantOut K, bool FULL>
  static void one(F xv, F s, F z, F lo, F hi, void* out, uint8_t* mask, int64_t i, int64_t n) {
    I inside = I{};
    const F r = K == QuantOut::FakeQuantMask ? offset_mask(xv, s, lo, hi, &inside) : offset(xv, s, lo, hi);
    store<K, FULL>(r, s, z, inside, out, mask, i, n);
  }

  template <QuantOut K>
  static void span_k(const float* x, int64_t n, float s_, float z_, float lo_, float hi_, void* out, uint8_t* mask) {
    const F s = splat(s_), z = splat(z_), lo = splat(lo_), hi = splat(hi_);
    int64_t i = 0;
    for (; i + W <= n; i += W) one<K, true>(load(x + i), s, z, lo, hi, out, mask, i, W);
    if (i < n) one<K, false>(load_part(x + i, n - i, 0.f), s, z, lo, hi, out, mask, i, n - i);
  }

  template <QuantOut K>
  static void rows_k(const float* x, int64_t n, const float* s, const float* z, const float* lo, const float* hi,
                     void* out, uint8_t* mask) {
    int64_t i = 0;
    for (; i + W <= n; i += W)
      one<K, true>(load(x + i), load(s + i), load(z + i), load(lo + i), load(hi + i), out, mask, i, W);
    if (i < n) {
      const int64_t m = n - i;  // padding lanes: s = 1, bounds 0, so they compute a harmless 0
      one<K, false>(load_part(x + i, m, 0.f), load_part(s + i, m, 1.f), load_part(z + i, m, 0.f),
                    load_part(lo + i, m, 0.f), load_part(hi + i, m, 0.f), out, mask, i, m);
    }
  }

  static void span(QuantOut kind, const float* x, int64_t n, float s, float z, float lo, float hi, void* out,
                   uint8_t* mask) {
    switch (kind) {
      case QuantOut::FakeQuant: return span_k<QuantOut::FakeQuant>(x, n, s, z, lo, hi, out, mask);
      case QuantOut::FakeQuantMask: return span_k<QuantOut::FakeQuantMask>(x, n, s, z, lo, hi, out, mask);
      case QuantOut::CodesI32: return span_k<QuantOut::CodesI32>(x, n, s, z, lo, hi, out, mask);
      case QuantOut::CodesI8: return span_k<QuantOut::CodesI8>(x, n, s, z, lo, hi, out, mask);
      case QuantOut::CodesU8: return span_k<QuantOut::CodesU8>(x, n, s, z, lo, hi, out, mask);
    }
  }
  static void rows(QuantOut kind, const float* x, int64_t n, const float* s, const float* z, const float* lo,
                   const float* hi, void* out, uint8_t* mask) {
    switch (kind) {
      case QuantOut::FakeQuant: return rows_k<QuantOut::FakeQuant>(x, n, s, z, lo, hi, out, mask);
      case QuantOut::FakeQuantMask: return rows_k<QuantOut::FakeQuantMask>(x, n, s, z, lo, hi, out, mask);
      case QuantOut::CodesI32: return rows_k<QuantOut::CodesI32>(x, n, s, z, lo, hi, out, mask);
      case QuantOut::CodesI8: return rows_k<QuantOut::CodesI8>(x, n, s, z, lo, hi, out, mask);
      case QuantOut::CodesU8: return rows_k<QuantOut::CodesU8>(x, n, s, z, lo, hi, out, mask);
    }
  }

  // ---- LSQ (reconstruction's activation quantizer) with QDrop's bypass, see quant.h ----
  using U = typename Vec<uint32_t, W>::type;
  static U iota() {
    U v;
    for (int j = 0; j < W; ++j) v[j] = static_cast<uint32_t>(j);
    return v;
  }
  static U drop_hash_v(U x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
  }
  // t = x/s rounded after clamping one step outside [lo, hi] (NaN → 0), as offset_mask().
  static F round_clamped1(F t, F lo, F hi) {
    t = (t == t) ? t : F{};
    const F one = splat(1.0f), lo1 = lo - one, hi1 = hi + one;
    t = t > lo1 ? t : lo1;
    t = t < hi1 ? t : hi1;
    const F M = splat(12582912.0f);
    return (t + M) - M;
  }
  static void lsq_forward(const float* x, int64_t n, float s_, float lo_, float hi_, uint32_t base,
                          uint32_t threshold, float* y, uint8_t* state) {
    const F s = splat(s_), lo = splat(lo_), hi = splat(hi_);
    const U lane = iota();
    for (int64_t i = 0; i < n; i += W) {
      const int64_t m = n - i < W ? n - i : W;
      const F xv = m == W ? load(x + i) : load_part(x + i, m, 0.f);
      F r = round_clamped1(xv / s, lo, hi);
      const I below = r < lo, above = r > hi;
      r = below ? lo : r;
      r = above ? hi : r;
      F out = s * r;
      I st = (I{} + 1) + (below & 1) + (above & 2);
      if (threshold) {
        const U h = drop_hash_v(lane + static_cast<uint32_t>(base + static_cast<uint32_t>(i)));
        const I dropped = (I)(h < (U{} + threshold));
        out = dropped ? xv : out;
        st = dropped ? I{} : st;
      }
      const U8 st8 = __builtin_convertvector(st, U8);
      if (m == W) {
        put<true>(y + i, out, sizeof(F));
        put<true>(state + i, st8, W);
      } else {
        put<false>(y + i, out, sizeof(float) * m);
        put<false>(state + i, st8, m);
      }
    }
  }
  static void mix_select(const float* fp, int64_t n, uint32_t base, uint32_t threshold, float* dst) {
    const U lane = iota(), thr = U{} + threshold;
    for (int64_t i = 0; i < n; i += W) {
      const int64_t m = n - i < W ? n - i : W;
      const I take = (I)(drop_hash_v(lane + static_cast<uint32_t>(base + static_cast<uint32_t>(i))) < thr);
      if (m == W) {
        const F out = take ? load(fp + i) : load(dst + i);
        put<true>(dst + i, out, sizeof(F));
      } else {
        for (int64_t j = 0; j < m; ++j)
          if (take[j]) dst[i + j] = fp[i + j];
      }
    }
  }
  static double sq_error(const float* y, const float* t, int64_t n, float gscale, float* grad) {
    constexpr int64_t kFlush = 64;
    const F gs = splat(gscale);
    double total = 0;
    F acc = F{};
    int64_t k = 0, i = 0;
    for (; i + W <= n; i += W) {
      const F d = load(y + i) - load(t + i);
      acc += d * d;
      const F g = gs * d;
      put<true>(grad + i, g, sizeof(F));
      if (++k == kFlush) {
        for (int j = 0; j < W; ++j) total += acc[j];
        acc = F{};
        k = 0;
      }
    }
    for (int j = 0; j < W; ++j) total += acc[j];
    for (; i < n; ++i) {
      const float d = y[i] - t[i];
      total += double(d) * d;
      grad[i] = gscale * d;
    }
    return total;
  }
  // Per-lane float sums, flushed into a double every kFlush vectors (fixed order: deterministic).
  static double lsq_backward(const float* x, const float* g, const uint8_t* state, int64_t n, float s_, float lo_,
                             float hi_, float* gx, bool assign) {
    constexpr int64_t kFlush = 64;
    const F s = splat(s_), lo = splat(lo_), hi = splat(hi_);
    double total = 0;
    F acc = F{};
    int64_t k = 0;
    for (int64_t i = 0; i < n; i += W) {
      const int64_t m = n - i < W ? n - i : W;
      const F xv = m == W ? load(x + i) : load_part(x + i, m, 0.f);
      const F gv = m == W ? load(g + i) : load_part(g + i, m, 0.f);
      U8 st8 = U8{};  // padding lanes: dropped, contributing nothing
      std::memcpy(&st8, state + i, m);
      const I st = __builtin_convertvector(st8, I);
      const F t = xv / s;
      const F r = round_clamped1(t, lo, hi);
      F c = st == 1 ? gv * (r - t) : F{};
      c = st == 2 ? gv * lo : c;
      c = st == 3 ? gv * hi : c;
      acc += c;
      if (gx) {
        const F pass = st <= 1 ? gv : F{};
        if (m == W) {
          const F o = assign ? pass : load(gx + i) + pass;
          put<true>(gx + i, o, sizeof(F));
        } else {
          for (int64_t j = 0; j < m; ++j) gx[i + j] = (assign ? 0.f : gx[i + j]) + pass[j];
        }
      }
      if (++k == kFlush) {
        for (int j = 0; j < W; ++j) total += acc[j];
        acc = F{};
        k = 0;
      }
    }
    for (int j = 0; j < W; ++j) total += acc[j];
    return total;
  }

  // NaN never wins a comparison, so it never replaces the running value: NaNs are ignored.
  static void minmax_span(const float* x, int64_t n, float* mn, float* mx) {
    F a0 = splat(*mn), a1 = a0, b0 = splat(*mx), b1 = b0;
    int64_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
      const F v0 = load(x + i), v1 = load(x + i + W);
      a0 = v0 < a0 ? v0 : a0;
      a1 = v1 < a1 ? v1 : a1;
      b0 = v0 > b0 ? v0 : b0;
      b1 = v1 > b1 ? v1 : b1;
    }
    for (; i + W <= n; i += W) {
      const F v = load(x + i);
      a0 = v < a0 ? v : a0;
      b0 = v > b0 ? v : b0;
    }
    float lo = *mn, hi = *mx;
    for (int j = 0; j < W; ++j) {
      lo = a0[j] < lo ? a0[j] : lo;
      lo = a1[j] < lo ? a1[j] : lo;
      hi = b0[j] > hi ? b0[j] : hi;
      hi = b1[j] > hi ? b1[j] : hi;
    }
    for (; i < n; ++i) {
      lo = x[i] < lo ? x[i] : lo;
      hi = x[i] > hi ? x[i] : hi;
    }
    *mn = lo;
    *mx = hi;
  }
  static void minmax_rows(const float* x, int64_t n, float* mins, float* maxs) {
    int64_t i = 0;
    for (; i + W <= n; i += W) {
      const F v = load(x + i);
      F a = load(mins + i), b = load(maxs + i);
      a = v < a ? v : a;
      b = v > b ? v : b;
      std::memcpy(mins + i, &a, sizeof(F));
      std::memcpy(maxs + i, &b, sizeof(F));
    }
    for (; i < n; ++i) {
      mins[i] = x[i] < mins[i] ? x[i] : mins[i];
      maxs[i] = x[i] > maxs[i] ? x[i] : maxs[i];
    }
  }

  // One vector of x against one candidate: d = x − x̂ (x̂ rounded before the subtraction, see the
  // top of the file), |d|^p added to the two half-width double accumulators.
  template <bool SQUARE>
  static void lp_step(F xv, F sv, F lov, F hiv, double p, typename Pow<W / 2>::D* acc0, typename Pow<W / 2>::D* acc1) {
    using P = Pow<W / 2>;
    const F xh = __builtin_assoc_barrier(sv * offset(xv, sv, lov, hiv));
    const F d = xv - xh;
    typename P::F h0, h1;
    std::memcpy(&h0, &d, sizeof(h0));
    std::memcpy(&h1, reinterpret_cast<const char*>(&d) + sizeof(h0), sizeof(h1));
    if (SQUARE) {
      const typename P::D d0 = __builtin_convertvector(h0, typename P::D), d1 = __builtin_convertvector(h1, typename P::D);
      *acc0 += d0 * d0;
      *acc1 += d1 * d1;
    } else {
      *acc0 += P::powabs(h0, p);
      *acc1 += P::powabs(h1, p);
    }
  }

  template <bool SQUARE>
  static void lp_errors_k(const float* x, int64_t n, int nc, const float* s, const float* lo, const float* hi,
                          double p, double* err) {
    for (int c = 0; c < nc; ++c) {
      const F sv = splat(s[c]), lov = splat(lo[c]), hiv = splat(hi[c]);
      typename Pow<W / 2>::D acc0{}, acc1{};
      int64_t i = 0;
      for (; i + W <= n; i += W) lp_step<SQUARE>(load(x + i), sv, lov, hiv, p, &acc0, &acc1);
      // Padding lanes hold x = 0, so x̂ = 0 and their term is exactly 0.
      if (i < n) lp_step<SQUARE>(load_part(x + i, n - i, 0.f), sv, lov, hiv, p, &acc0, &acc1);
      double sum = 0;
      for (int j = 0; j < W / 2; ++j) sum += acc0[j];
      for (int j = 0; j < W / 2; ++j) sum += acc1[j];
      err[c] += sum;
    }
  }
  static void lp_errors(const float* x, int64_t n, int nc, const float* s, const float* lo, const float* hi, double p,
                        double* err) {
    if (p == 2.0)
      lp_errors_k<true>(x, n, nc, s, lo, hi, p, err);
    else
      lp_errors_k<false>(x, n, nc, s, lo, hi, p, err);
  }

};

}  // namespace
}  // namespace qsimd
}  // namespace packptq
