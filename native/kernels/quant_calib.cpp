// Calibration numerics (generic code, no -march): the BRECQ L_p clipping search, one-shot per
// channel and streamed per tensor, and the streamed percentile histogram. The inner loops are the
// per-ISA lp_errors kernels (quant_impl.h) or the scalar reference below.
//
// Determinism: errors are summed per fixed chunk of kChunk elements (each chunk from zero), and
// the chunk sums are added in chunk order, so a result depends neither on the thread count nor,
// for a stream whose batches are multiples of kChunk, on how the data was split into batches.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/parallel.h"
#include "kernels/quant.h"

namespace packptq {
namespace {

constexpr int64_t kChunk = 4096;  // 16 KB of x: stays in L1 while the candidates sweep over it

const QuantTable* calib_table(KernelVariant v) {
  if (v == KernelVariant::Scalar) return nullptr;
  if (!variant_supported(v))
    fail(ErrorCode::BadOption, std::string("the ") + variant_name(v) + " quantizer kernels cannot run on this CPU");
  switch (v) {
    case KernelVariant::Avx2: return &kQuantAvx2Table;
    case KernelVariant::Avx512: return &kQuantAvx512Table;
    default: return &kQuantAvx512LogicTable;
  }
}

// The reference: the contract's formula and std::pow, in the obvious order.
void reference_lp(const float* x, int64_t n, int nc, const float* s, const float* lo, const float* hi, double p,
                  double* err) {
  for (int c = 0; c < nc; ++c) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float t = x[i] / s[c];
      float r = std::isnan(t) ? 0.f : std::nearbyint(t);
      r = r < lo[c] ? lo[c] : (r > hi[c] ? hi[c] : r);
      const float xh = s[c] * r;
      const float d = x[i] - xh;
      sum += std::pow(std::fabs((double)d), p);
    }
    err[c] += sum;
  }
}

// The candidate grid of one observed range.
struct Candidates {
  std::vector<float> s, z, lo, hi, ratio;
};

Candidates make_candidates(float lo, float hi, const MseOptions& o) {
  Candidates c;
  for (int i = 0; i < o.candidates; ++i) {
    const double r = 1.0 - 0.01 * i;
    const QuantParams q = params_from_range((float)((double)lo * r), (float)((double)hi * r), o.qmin, o.qmax,
                                            o.symmetric);
    c.s.push_back(q.scale);
    c.z.push_back(q.zero);
    c.lo.push_back((float)o.qmin - q.zero);
    c.hi.push_back((float)o.qmax - q.zero);
    c.ratio.push_back((float)r);
  }
  return c;
}

// err[k] += Σ over x of candidate k's error, chunk by chunk in order. threads > 1 computes the
// chunks concurrently into partials and still adds them in chunk order.
void accumulate_errors(const QuantTable* t, const float* x, int64_t n, const Candidates& c, double p, double* err,
                       int threads) {
  const int nc = (int)c.s.size();
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  auto run = [&](int64_t k, double* out) {
    const int64_t i0 = k * kChunk, len = std::min(kChunk, n - i0);
    if (t) t->lp_errors(x + i0, len, nc, c.s.data(), c.lo.data(), c.hi.data(), p, out);
    else reference_lp(x + i0, len, nc, c.s.data(), c.lo.data(), c.hi.data(), p, out);
  };
  if (threads <= 1 || chunks < 2) {
    std::vector<double> part(nc);
    for (int64_t k = 0; k < chunks; ++k) {
      std::fill(part.begin(), part.end(), 0.0);
      run(k, part.data());
      for (int j = 0; j < nc; ++j) err[j] += part[j];
    }
    return;
  }
  std::vector<double> parts(chunks * nc, 0.0);
  parallel_for(chunks, threads, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) run(k, &parts[k * nc]);
  });
  for (int64_t k = 0; k < chunks; ++k)
    for (int j = 0; j < nc; ++j) err[j] += parts[k * nc + j];
}

MseChoice choose(const Candidates& c, const std::vector<double>& err, float lo, float hi) {
  int best = 0;
  for (int k = 1; k < (int)err.size(); ++k)
    if (err[k] < err[best]) best = k;  // strict: ties keep the wider range
  return {c.s[best], c.z[best], c.ratio[best], lo, hi, best, err[best], err[0]};
}

void check_errors_finite(const std::vector<double>& err, const char* what) {
  for (double e : err)
    if (std::isnan(e)) fail(ErrorCode::BadData, std::string(what) + " contains NaN");
}

void check_range_finite(float lo, float hi, const char* what) {
  if (std::isinf(lo) && std::isinf(hi) && lo > hi) return;  // no element (or only NaNs): caught later
  if (!std::isfinite(lo) || !std::isfinite(hi))
    fail(ErrorCode::BadData, std::string(what) + " contains an infinite value");
}

}  // namespace

void check_mse_options(const MseOptions& o) {
  check_grid(o.qmin, o.qmax);
  // p <= 8 keeps |d|^p inside double range for every float d; p > 0 makes it an error measure.
  if (!(o.p > 0 && o.p <= 8))
    fail(ErrorCode::BadOption, "Expected a number in (0, 8] for p but received " + std::to_string(o.p));
  if (o.candidates < 1 || o.candidates > 100)
    fail(ErrorCode::BadOption, "Expected an integer in [1, 100] for candidates but received " +
                                   std::to_string(o.candidates));
}

std::vector<MseChoice> mse_search_variant(KernelVariant v, const float* x, int64_t n, const QuantLayout& L,
                                          const MseOptions& o, int threads) {
  check_layout(L, n);
  check_mse_options(o);
  const QuantTable* t = calib_table(v);
  const int64_t C = L.channels, per = L.outer * L.inner;
  std::vector<float> mins(C), maxs(C);
  min_max_variant(v, x, n, L, mins.data(), maxs.data(), threads);
  for (int64_t c = 0; c < C; ++c) check_range_finite(mins[c], maxs[c], "x");
  std::vector<MseChoice> out(C);
  const int nt = t ? std::max(1, threads) : 1;
  // A channel is contiguous when it is the whole tensor or one block (outer == 1); otherwise its
  // outer·inner elements are gathered first (a copy, negligible next to the candidate sweep).
  const bool contiguous = C == 1 || L.outer == 1;
  auto channel = [&](int64_t c, int inner_threads) {
    std::vector<float> gathered;
    const float* data = x + c * L.inner;
    if (!contiguous) {
      gathered.resize(per);
      for (int64_t o2 = 0; o2 < L.outer; ++o2)
        std::memcpy(&gathered[o2 * L.inner], x + (o2 * C + c) * L.inner, sizeof(float) * L.inner);
      data = gathered.data();
    }
    const Candidates cand = make_candidates(mins[c], maxs[c], o);
    std::vector<double> err(o.candidates, 0.0);
    accumulate_errors(t, data, per, cand, o.p, err.data(), inner_threads);
    check_errors_finite(err, "x");
    out[c] = choose(cand, err, mins[c], maxs[c]);
  };
  if (C == 1) {
    channel(0, per >= 2 * kChunk ? nt : 1);
  } else {
    // Channels run concurrently, each sequentially: the same sums whatever the thread count. An
    // exception inside an OpenMP region must not escape it, so it is carried out by hand.
    std::string failure;
    ErrorCode code = ErrorCode::Native;
    parallel_for(C, per * C >= 8192 ? nt : 1, [&](int64_t b, int64_t e) {
      try {
        for (int64_t c = b; c < e; ++c) channel(c, 1);
      } catch (const Error& err) {
#pragma omp critical(packptq_mse_fail)
        if (failure.empty()) { failure = err.what(); code = err.code(); }
      } catch (const std::exception& err) {
#pragma omp critical(packptq_mse_fail)
        if (failure.empty()) failure = err.what();
      }
    });
    if (!failure.empty()) fail(code, failure);
  }
  return out;
}

std::vector<MseChoice> mse_search(Isa isa, const float* x, int64_t n, const QuantLayout& L, const MseOptions& o,
                                  int threads) {
  return mse_search_variant(variant_of(isa), x, n, L, o, threads);
}

// ---- MseStream -----------------------------------------------------------------------------------

MseStream::MseStream(KernelVariant v, const MseOptions& o, int threads)
    : v_(v), o_(o), threads_(std::max(1, threads)), lo_(std::numeric_limits<float>::infinity()),
      hi_(-std::numeric_limits<float>::infinity()) {
  check_mse_options(o);
  calib_table(v);  // fails now, not at the first batch, when the variant cannot run here
  err_.assign(o.candidates, 0.0);
}

void MseStream::observe(const float* x, int64_t n) {
  if (frozen_)
    fail(ErrorCode::BadOption, "observe() after accumulate(): the candidate grid is already fixed; observe every "
                               "batch (pass 1) before accumulating any (pass 2)");
  if (n < 0 || (n > 0 && x == nullptr)) fail(ErrorCode::BadOption, "observe: bad batch");
  float mn, mx;
  QuantLayout L;
  L.inner = n;
  min_max_variant(v_, x, n, L, &mn, &mx, threads_);
  check_range_finite(mn, mx, "the batch");
  lo_ = std::min(lo_, mn);
  hi_ = std::max(hi_, mx);
  observed_ += n;
}

// The grid is a pure function of (lo_, hi_, options), which observe() may no longer change.
void MseStream::freeze() { frozen_ = true; }

void MseStream::accumulate(const float* x, int64_t n) {
  if (observed_ == 0) fail(ErrorCode::BadOption, "accumulate() before any observe(): pass 1 must see the data first");
  if (n < 0 || (n > 0 && x == nullptr)) fail(ErrorCode::BadOption, "accumulate: bad batch");
  if (!frozen_) freeze();
  const QuantTable* t = calib_table(v_);
  accumulate_errors(t, x, n, make_candidates(lo_, hi_, o_), o_.p, err_.data(), t ? threads_ : 1);
  accumulated_ += n;
}

MseChoice MseStream::result() const {
  if (accumulated_ == 0) fail(ErrorCode::BadOption, "result() before any accumulate()");
  check_errors_finite(err_, "the calibration data");
  return choose(make_candidates(lo_, hi_, o_), err_, lo_, hi_);
}

// ---- HistogramMse --------------------------------------------------------------------------------

namespace {
// JavaScript's Math.min / Math.max: NaN wins, and −0 < +0.
inline double js_min(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::quiet_NaN();
  if (a == b) return std::signbit(a) ? a : b;
  return a < b ? a : b;
}
inline double js_max(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::quiet_NaN();
  if (a == b) return std::signbit(a) ? b : a;
  return a > b ? a : b;
}
// JavaScript's `t | 0` (ToInt32): truncation, NaN and ±inf to 0, wrapping modulo 2^32.
inline int64_t js_to_int32(double t) {
  if (t > -2147483649.0 && t < 2147483648.0) return (int64_t)t;
  if (!std::isfinite(t)) return 0;
  double w = std::fmod(std::trunc(t), 4294967296.0);
  if (w < 0) w += 4294967296.0;
  return w >= 2147483648.0 ? (int64_t)w - 4294967296LL : (int64_t)w;
}
// lib/quant/types.ts roundHalfEven, in the same steps.
inline double round_half_even_js(double v) {
  const double f = std::floor(v), d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return std::fmod(f, 2.0) == 0 ? f : f + 1;
}
// lib/quant/types.ts fakeQuantValue: s·(clamp(rhe(fround(x / s)) + z, qmin, qmax) − z) in double.
inline double fake_quant_js(double x, double s, double z, double qmin, double qmax) {
  const double q = js_min(qmax, js_max(qmin, round_half_even_js((float)(x / s)) + z));
  return s * (q - z);
}
}  // namespace

void HistogramMse::observe(const float* x, int64_t n) {
  if (frozen_) fail(ErrorCode::BadOption, "HistogramMse: observe() after accumulate(): the range is already fixed");
  if (n < 0 || (n > 0 && x == nullptr)) fail(ErrorCode::BadOption, "observe: bad batch");
  float mn, mx;
  QuantLayout L;
  L.inner = n;
  min_max_variant(variant_of(default_isa()), x, n, L, &mn, &mx, 1);
  lo_ = js_min(lo_, mn);
  hi_ = js_max(hi_, mx);
}

void HistogramMse::accumulate(const float* x, int64_t n) {
  if (n < 0 || (n > 0 && x == nullptr)) fail(ErrorCode::BadOption, "accumulate: bad batch");
  frozen_ = true;
  const double lo = lo_, span = hi_ - lo_;
  const double scale = span > 0 ? kBins / span : 0;
  const int64_t last = kBins - 1;
  double* counts = counts_.data();
  double* sums = sums_.data();
  int64_t zeros = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (v == 0) {
      ++zeros;
      continue;
    }
    if (std::isnan(v)) continue;  // NaN carries no range information
    int64_t b = js_to_int32(((double)v - lo) * scale);
    if (b > last) b = last;
    else if (b < 0) b = 0;
    counts[b] += 1;
    sums[b] += v;
  }
  zeros_ += (double)zeros;
}

HistogramMse::Choice HistogramMse::result(int bits, double p, int candidates) const {
  if (bits < 2 || bits > 8) fail(ErrorCode::BadOption, "Expected an integer in [2, 8] for bits but received " + std::to_string(bits));
  if (!(p > 0 && p <= 8)) fail(ErrorCode::BadOption, "Expected a number in (0, 8] for p but received " + std::to_string(p));
  if (candidates < 1 || candidates > 100)
    fail(ErrorCode::BadOption, "Expected an integer in [1, 100] for candidates but received " + std::to_string(candidates));
  const int qmin = 0, qmax = (1 << bits) - 1;
  Choice best{0.f, 0, 1.0, std::numeric_limits<double>::infinity(), -1};
  for (int i = 0; i < candidates; ++i) {
    const double r = 1 - 0.01 * i;
    const QuantParams prm = params_from_range((float)(lo_ * r), (float)(hi_ * r), qmin, qmax, false);
    const double s = prm.scale, z = (double)(int32_t)prm.zero;
    double err = 0;
    for (int b = 0; b < kBins; ++b) {
      const double c = counts_[b];
      if (!c) continue;
      const double mean = (float)(sums_[b] / c);
      err += c * std::pow(std::fabs(mean - fake_quant_js(mean, s, z, qmin, qmax)), p);
    }
    // Exact zeros cost |0 − x̂(0)|^p, which is 0 unless the zero point was clamped.
    err += zeros_ * std::pow(std::fabs(fake_quant_js(0, s, z, qmin, qmax)), p);
    if (err < best.error) best = {prm.scale, (int32_t)prm.zero, r, err, i};
  }
  return best;
}

// ---- QuantHistogram ------------------------------------------------------------------------------

namespace {
// Order-preserving 32-bit key of a float: negative floats reversed below the positive ones.
inline uint32_t key_of(uint32_t bits) { return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u); }
inline float float_of_key(uint32_t key) {
  const uint32_t bits = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
constexpr int kDrop = 13;  // 23 mantissa bits − 10 kept
}  // namespace

void QuantHistogram::add(const float* x, int64_t n) {
  if (n < 0 || (n > 0 && x == nullptr)) fail(ErrorCode::BadOption, "histogram add: bad batch");
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    if (std::isnan(v)) {
      ++nans_;
      continue;
    }
    if (abs_) v = std::fabs(v);
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    const uint32_t bin = key_of(bits) >> kDrop, g = bin >> kGroupBits;
    if (!groups_[g]) groups_[g].reset(new uint64_t[1u << kGroupBits]());
    ++groups_[g][bin & ((1u << kGroupBits) - 1)];
    ++group_count_[g];
    if (v < min_) min_ = v;
    if (v > max_) max_ = v;
    ++count_;
  }
}

QuantHistogram::Estimate QuantHistogram::percentile(double q) const {
  if (!(q >= 0 && q <= 100))
    fail(ErrorCode::BadOption, "Expected a number in [0, 100] for the percentile but received " + std::to_string(q));
  if (count_ == 0) fail(ErrorCode::BadOption, "percentile of an empty histogram (no non-NaN value was added)");
  // Nearest rank: the ceil(q/100·N)-th smallest value (the smallest for q = 0).
  int64_t k = (int64_t)std::ceil(q / 100.0 * (double)count_) - 1;
  k = std::min<int64_t>(std::max<int64_t>(k, 0), count_ - 1);
  // The extreme ranks are known exactly.
  if (k == 0) return {min_, min_, min_};
  if (k == count_ - 1) return {max_, max_, max_};
  uint64_t seen = 0;
  uint32_t g = 0;
  while (seen + group_count_[g] <= (uint64_t)k) seen += group_count_[g++];
  uint32_t j = 0;
  while (seen + groups_[g][j] <= (uint64_t)k) seen += groups_[g][j++];
  const uint32_t bin = (g << kGroupBits) | j;
  double lower = float_of_key(bin << kDrop), upper = float_of_key((bin << kDrop) | ((1u << kDrop) - 1));
  // The bin's edges may be NaN encodings (the bin of ±inf): the exact min/max bound it instead.
  if (std::isnan(lower) || lower < min_) lower = min_;
  if (std::isnan(upper) || upper > max_) upper = max_;
  const double value = lower == upper ? lower : lower + (upper - lower) / 2;
  return {value, lower, upper};
}

}  // namespace packptq
