// Quantizer entry points (generic code, no -march): argument checks, the scalar reference, the
// mapping of a layout onto the per-ISA span/row kernels, threading, and scale/zero derivation.
// The calibration searches built on these live in quant_calib.cpp.
#include "kernels/quant.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/parallel.h"

namespace packptq {

// ---- checks ------------------------------------------------------------------------------------

QuantGrid quant_grid(int bits, bool is_signed) {
  if (bits < 2 || bits > 8)
    fail(ErrorCode::BadOption, "Expected an integer in [2, 8] for bits but received " + std::to_string(bits));
  return is_signed ? QuantGrid{-(1 << (bits - 1)), (1 << (bits - 1)) - 1} : QuantGrid{0, (1 << bits) - 1};
}

void check_grid(int qmin, int qmax) {
  // |q| <= 2^16 keeps every code, code difference and clamp bound exact in float32 and inside the
  // range where the kernels' magic-number rounding is exact.
  if (qmin < -32768 || qmax > 65535 || qmin >= qmax)
    fail(ErrorCode::BadOption, "Expected integers with -32768 <= qmin < qmax <= 65535 but received qmin=" +
                                   std::to_string(qmin) + " qmax=" + std::to_string(qmax));
}

void check_layout(const QuantLayout& L, int64_t n) {
  if (L.outer < 0 || L.channels < 1 || L.inner < 0)
    fail(ErrorCode::BadOption, "Expected outer >= 0, channels >= 1, inner >= 0 but received outer=" +
                                   std::to_string(L.outer) + " channels=" + std::to_string(L.channels) +
                                   " inner=" + std::to_string(L.inner));
  const int64_t lim = std::numeric_limits<int64_t>::max();
  if ((L.outer > 0 && L.channels > lim / L.outer) ||
      (L.outer * L.channels > 0 && L.inner > lim / (L.outer * L.channels)) || L.numel() != n)
    fail(ErrorCode::BadOption, "layout outer=" + std::to_string(L.outer) + " channels=" + std::to_string(L.channels) +
                                   " inner=" + std::to_string(L.inner) + " does not cover the " + std::to_string(n) +
                                   " elements of x (outer*channels*inner must equal its length)");
}

void check_params(int64_t channels, const float* scale, const float* zero, int qmin, int qmax) {
  const double span = (double)qmax - (double)qmin;
  for (int64_t c = 0; c < channels; ++c) {
    const float s = scale[c], z = zero[c];
    if (!(s > 0.f) || !std::isfinite(s) || (double)s * span > (double)FLT_MAX)
      fail(ErrorCode::BadOption, "Expected a finite scale > 0 with scale*(qmax-qmin) <= FLT_MAX for channel " +
                                     std::to_string(c) + " but received " + std::to_string(s));
    if (!(z >= (float)qmin && z <= (float)qmax) || z != std::floor(z))
      fail(ErrorCode::BadOption, "Expected an integer zero-point in [" + std::to_string(qmin) + ", " +
                                     std::to_string(qmax) + "] for channel " + std::to_string(c) + " but received " +
                                     std::to_string(z));
  }
}

static void check_out_grid(QuantOut kind, int qmin, int qmax) {
  if (kind == QuantOut::CodesI8 && (qmin < -128 || qmax > 127))
    fail(ErrorCode::BadOption, "int8 codes need -128 <= qmin < qmax <= 127 but received qmin=" + std::to_string(qmin) +
                                   " qmax=" + std::to_string(qmax));
  if (kind == QuantOut::CodesU8 && (qmin < 0 || qmax > 255))
    fail(ErrorCode::BadOption, "uint8 codes need 0 <= qmin < qmax <= 255 but received qmin=" + std::to_string(qmin) +
                                   " qmax=" + std::to_string(qmax));
}

// ---- scale / zero-point --------------------------------------------------------------------------

QuantParams params_from_range(float lo, float hi, int qmin, int qmax, bool symmetric) {
  check_grid(qmin, qmax);
  if (lo > hi) lo = hi = 0.f;  // nothing observed
  if (!std::isfinite(lo) || !std::isfinite(hi))
    fail(ErrorCode::BadData, "cannot derive a scale from a non-finite range [" + std::to_string(lo) + ", " +
                                 std::to_string(hi) + "]");
  const double span = (double)qmax - (double)qmin;
  const double l = std::min((double)lo, 0.0), h = std::max((double)hi, 0.0);
  const double s = symmetric ? std::max(-l, h) / (span / 2) : (h - l) / span;
  const float sf = std::max((float)s, kMinScale);
  if (!std::isfinite(sf) || (double)sf * span > (double)FLT_MAX)
    fail(ErrorCode::BadData, "the range [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                 "] is too wide for float32 quantization");
  // Symmetric: the grid's midpoint (0 signed, 2^(b-1) unsigned), whatever the data.
  double z = symmetric ? std::nearbyint((double)qmin + span / 2) : std::nearbyint((double)qmin - l / (double)sf);
  z = std::min(std::max(z, (double)qmin), (double)qmax);
  return {sf, (float)z};
}

// ---- dispatch ------------------------------------------------------------------------------------

static const QuantTable* quant_table(KernelVariant v) {
  if (v == KernelVariant::Scalar) return nullptr;
  if (!variant_supported(v))
    fail(ErrorCode::BadOption, std::string("the ") + variant_name(v) + " quantizer kernels cannot run on this CPU");
  switch (v) {
    case KernelVariant::Avx2: return &kQuantAvx2Table;
    case KernelVariant::Avx512: return &kQuantAvx512Table;
    default: return &kQuantAvx512LogicTable;
  }
}

int quant_lanes(KernelVariant v) {
  if (v == KernelVariant::Scalar) return 1;
  if (!variant_supported(v)) return 0;
  return quant_table(v)->lanes;
}

// Below this many elements a call stays on the caller's thread: an OpenMP team costs more.
constexpr int64_t kParallelMin = 1 << 15;
// Work items of at most this many elements, so a per-tensor call still splits across threads.
constexpr int64_t kItem = 1 << 14;

static int threads_for(int64_t n, int threads) { return n < kParallelMin ? 1 : std::max(1, threads); }

// The reference: the contract's formula, one element at a time, clamping after rounding.
static void reference_quantize(QuantOut kind, const float* x, const QuantLayout& L, const float* scale,
                               const float* zero, int qmin, int qmax, void* out, uint8_t* mask) {
  const float fmin = (float)qmin, fmax = (float)qmax;
  int64_t idx = 0;
  for (int64_t o = 0; o < L.outer; ++o)
    for (int64_t c = 0; c < L.channels; ++c) {
      const float s = scale[c], z = zero[c];
      for (int64_t i = 0; i < L.inner; ++i, ++idx) {
        const float t = x[idx] / s;
        const bool nan = std::isnan(t);
        float q = nan ? z : std::nearbyint(t) + z;
        const bool inside = !nan && q >= fmin && q <= fmax;
        q = q < fmin ? fmin : (q > fmax ? fmax : q);
        switch (kind) {
          case QuantOut::FakeQuantMask: mask[idx] = inside ? 1 : 0; [[fallthrough]];
          case QuantOut::FakeQuant: static_cast<float*>(out)[idx] = s * (q - z); break;
          case QuantOut::CodesI32: static_cast<int32_t*>(out)[idx] = (int32_t)q; break;
          case QuantOut::CodesI8: static_cast<int8_t*>(out)[idx] = (int8_t)q; break;
          case QuantOut::CodesU8: static_cast<uint8_t*>(out)[idx] = (uint8_t)q; break;
        }
      }
    }
}

static size_t out_size(QuantOut kind) {
  return (kind == QuantOut::CodesI8 || kind == QuantOut::CodesU8) ? 1 : 4;
}

void quantize_variant(KernelVariant v, QuantOut kind, const float* x, int64_t n, const QuantLayout& L,
                      const float* scale, const float* zero, int qmin, int qmax, void* out, uint8_t* mask,
                      int threads) {
  check_layout(L, n);
  check_grid(qmin, qmax);
  check_out_grid(kind, qmin, qmax);
  if (scale == nullptr || zero == nullptr || (n > 0 && (x == nullptr || out == nullptr)) ||
      (kind == QuantOut::FakeQuantMask && n > 0 && mask == nullptr))
    fail(ErrorCode::BadOption, "quantize: a required buffer is missing");
  check_params(L.channels, scale, zero, qmin, qmax);
  const QuantTable* t = quant_table(v);
  if (n == 0) return;
  if (t == nullptr) {
    reference_quantize(kind, x, L, scale, zero, qmin, qmax, out, mask);
    return;
  }
  const int64_t C = L.channels;
  char* ob = static_cast<char*>(out);
  const size_t es = out_size(kind);
  const int nt = threads_for(n, threads);
  if (L.inner == 1 && C > 1) {
    // Channels are the contiguous axis (MatMul [K,N] weights): vectors over channels, one row per
    // outer index; rows of width C split into items of about kItem elements.
    std::vector<float> lo(C), hi(C);
    for (int64_t c = 0; c < C; ++c) {
      lo[c] = (float)qmin - zero[c];
      hi[c] = (float)qmax - zero[c];
    }
    const int64_t per = std::max<int64_t>(1, kItem / C);
    parallel_for((L.outer + per - 1) / per, nt, [&](int64_t b, int64_t e) {
      for (int64_t o = b * per; o < std::min(L.outer, e * per); ++o) {
        const int64_t off = o * C;
        t->rows(kind, x + off, C, scale, zero, lo.data(), hi.data(), ob + off * es, mask ? mask + off : nullptr);
      }
    });
    return;
  }
  // Contiguous blocks of `inner` elements sharing one channel, cut into items of <= kItem elements.
  const int64_t blocks = L.outer * C, pieces = std::max<int64_t>(1, (L.inner + kItem - 1) / kItem);
  parallel_for(blocks * pieces, nt, [&](int64_t b, int64_t e) {
    for (int64_t it = b; it < e; ++it) {
      const int64_t blk = it / pieces, c = blk % C, i0 = (it % pieces) * kItem;
      const int64_t len = std::min(kItem, L.inner - i0);
      if (len <= 0) continue;
      const int64_t off = blk * L.inner + i0;
      t->span(kind, x + off, len, scale[c], zero[c], (float)qmin - zero[c], (float)qmax - zero[c], ob + off * es,
              mask ? mask + off : nullptr);
    }
  });
}

void fake_quant(Isa isa, const float* x, int64_t n, const QuantLayout& L, const float* scale, const float* zero,
                int qmin, int qmax, float* y, int threads) {
  quantize_variant(variant_of(isa), QuantOut::FakeQuant, x, n, L, scale, zero, qmin, qmax, y, nullptr, threads);
}
void fake_quant_mask(Isa isa, const float* x, int64_t n, const QuantLayout& L, const float* scale,
                     const float* zero, int qmin, int qmax, float* y, uint8_t* mask, int threads) {
  quantize_variant(variant_of(isa), QuantOut::FakeQuantMask, x, n, L, scale, zero, qmin, qmax, y, mask, threads);
}
void quantize_codes(Isa isa, const float* x, int64_t n, const QuantLayout& L, const float* scale, const float* zero,
                    int qmin, int qmax, int32_t* q, int threads) {
  quantize_variant(variant_of(isa), QuantOut::CodesI32, x, n, L, scale, zero, qmin, qmax, q, nullptr, threads);
}
void quantize_codes(Isa isa, const float* x, int64_t n, const QuantLayout& L, const float* scale, const float* zero,
                    int qmin, int qmax, int8_t* q, int threads) {
  quantize_variant(variant_of(isa), QuantOut::CodesI8, x, n, L, scale, zero, qmin, qmax, q, nullptr, threads);
}
void quantize_codes(Isa isa, const float* x, int64_t n, const QuantLayout& L, const float* scale, const float* zero,
                    int qmin, int qmax, uint8_t* q, int threads) {
  quantize_variant(variant_of(isa), QuantOut::CodesU8, x, n, L, scale, zero, qmin, qmax, q, nullptr, threads);
}

// ---- LSQ with QDrop's bypass (reconstruction) ------------------------------------------------------

// The scalar reference of quant_impl.h's Q::lsq_forward / lsq_backward: the same arithmetic (round
// half even of x/s after clamping one step outside the grid, a true division), one lane.
static float lsq_round_clamped1(float t, float lo, float hi) {
  t = t == t ? t : 0.f;
  t = std::min(std::max(t, lo - 1.f), hi + 1.f);
  return std::nearbyint(t) + 0.f;  // + 0: −0 → +0, as the SIMD rounding (t + 1.5·2^23) − 1.5·2^23 gives
}

void lsq_forward(Isa isa, const float* x, int64_t n, float s, float lo, float hi, uint32_t base, uint32_t threshold,
                 float* y, uint8_t* state) {
  if (const QuantTable* t = quant_table(variant_of(isa))) return t->lsq_forward(x, n, s, lo, hi, base, threshold, y, state);
  for (int64_t i = 0; i < n; ++i) {
    if (threshold && drop_hash(base + static_cast<uint32_t>(i)) < threshold) {
      y[i] = x[i];
      state[i] = kLsqDropped;
      continue;
    }
    float r = lsq_round_clamped1(x[i] / s, lo, hi);
    state[i] = r < lo ? kLsqBelow : (r > hi ? kLsqAbove : kLsqInside);
    r = std::min(std::max(r, lo), hi);
    y[i] = s * r;
  }
}

double lsq_backward(Isa isa, const float* x, const float* g, const uint8_t* state, int64_t n, float s, float lo,
                    float hi, float* gx, bool assign) {
  if (const QuantTable* t = quant_table(variant_of(isa))) return t->lsq_backward(x, g, state, n, s, lo, hi, gx, assign);
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i] / s;
    switch (state[i]) {
      case kLsqInside: total += g[i] * (lsq_round_clamped1(v, lo, hi) - v); break;
      case kLsqBelow: total += g[i] * lo; break;
      case kLsqAbove: total += g[i] * hi; break;
      default: break;
    }
    if (gx) gx[i] = (assign ? 0.f : gx[i]) + (state[i] <= kLsqInside ? g[i] : 0.f);
  }
  return total;
}

// ---- the reconstruction loop's per-element passes (scalar references) ------------------------------

void mix_select(Isa isa, const float* fp, int64_t n, uint32_t base, uint32_t threshold, float* dst) {
  if (const QuantTable* t = quant_table(variant_of(isa))) return t->mix_select(fp, n, base, threshold, dst);
  for (int64_t i = 0; i < n; ++i)
    if (drop_hash(base + static_cast<uint32_t>(i)) < threshold) dst[i] = fp[i];
}

double sq_error(Isa isa, const float* y, const float* t, int64_t n, float gscale, float* grad) {
  if (const QuantTable* q = quant_table(variant_of(isa))) return q->sq_error(y, t, n, gscale, grad);
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float d = y[i] - t[i];
    total += double(d) * d;
    grad[i] = gscale * d;
  }
  return total;
}

// ---- min / max -----------------------------------------------------------------------------------

static void reference_minmax(const float* x, int64_t n, float* mn, float* mx) {
  for (int64_t i = 0; i < n; ++i) {
    if (x[i] < *mn) *mn = x[i];
    if (x[i] > *mx) *mx = x[i];
  }
}

void min_max_variant(KernelVariant v, const float* x, int64_t n, const QuantLayout& L, float* mins, float* maxs,
                     int threads) {
  check_layout(L, n);
  if (mins == nullptr || maxs == nullptr || (n > 0 && x == nullptr))
    fail(ErrorCode::BadOption, "min_max: a required buffer is missing");
  const QuantTable* t = quant_table(v);
  const int64_t C = L.channels;
  for (int64_t c = 0; c < C; ++c) {
    mins[c] = std::numeric_limits<float>::infinity();
    maxs[c] = -std::numeric_limits<float>::infinity();
  }
  if (n == 0) return;
  auto span = [&](const float* p, int64_t len, float* mn, float* mx) {
    if (t) t->minmax_span(p, len, mn, mx);
    else reference_minmax(p, len, mn, mx);
  };
  const int nt = t ? threads_for(n, threads) : 1;
  if (L.inner == 1 && C > 1) {
    // Threads own disjoint channel ranges and walk every row, so no merge is needed.
    parallel_for(C, nt, [&](int64_t c0, int64_t c1) {
      for (int64_t o = 0; o < L.outer; ++o) {
        const float* row = x + o * C + c0;
        if (t) {
          t->minmax_rows(row, c1 - c0, mins + c0, maxs + c0);
        } else {
          for (int64_t c = 0; c < c1 - c0; ++c) reference_minmax(row + c, 1, mins + c0 + c, maxs + c0 + c);
        }
      }
    });
    return;
  }
  // Min and max are exact and order-free: per-item partials merged afterwards give the same bits.
  const int64_t blocks = L.outer * C, pieces = std::max<int64_t>(1, (L.inner + kItem - 1) / kItem);
  const int64_t items = blocks * pieces;
  std::vector<float> pmin(items, std::numeric_limits<float>::infinity()),
      pmax(items, -std::numeric_limits<float>::infinity());
  parallel_for(items, nt, [&](int64_t b, int64_t e) {
    for (int64_t it = b; it < e; ++it) {
      const int64_t blk = it / pieces, i0 = (it % pieces) * kItem, len = std::min(kItem, L.inner - i0);
      if (len > 0) span(x + blk * L.inner + i0, len, &pmin[it], &pmax[it]);
    }
  });
  for (int64_t it = 0; it < items; ++it) {
    const int64_t c = (it / pieces) % C;
    if (pmin[it] < mins[c]) mins[c] = pmin[it];
    if (pmax[it] > maxs[c]) maxs[c] = pmax[it];
  }
}

void min_max(Isa isa, const float* x, int64_t n, const QuantLayout& L, float* mins, float* maxs, int threads) {
  min_max_variant(variant_of(isa), x, n, L, mins, maxs, threads);
}

}  // namespace packptq
