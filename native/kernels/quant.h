// Uniform affine quantizers: fake quantization, integer codes, and the calibration numerics that
// choose their scale and zero-point (min/max, the BRECQ L_p clipping search, histogram percentiles).
//
// Contract (exactly what onnxruntime's QuantizeLinear / DequantizeLinear compute, so an exported QDQ
// model reproduces the simulated one bit for bit):
//   q  = clamp(round_half_even(x / s) + z, qmin, qmax)     x / s is a true float32 division
//   x̂ = s · (q − z)                                        one float32 multiply
// NaN inputs map to q = z (x̂ = 0) and have STE mask 0; ±inf clamp to qmin / qmax.
//
// Layout: x holds outer·channels·inner floats, element (o, c, i) at (o·channels + c)·inner + i, and
// channel c uses scale[c], zero[c]. Per tensor: channels = 1. Conv [M,C,KH,KW] and Gemm [N,K]
// weights per output channel: outer = 1, channels = dim 0, inner = the rest. MatMul [K,N] weights:
// outer = K, channels = N, inner = 1. Any axis of any tensor: outer = product of the dims before it.
//
// Zero-points are passed as floats holding integers in [qmin, qmax] (the executor keeps them next
// to the float scales); every entry point checks its arguments and throws packptq::Error
// (BadOption / BadData) instead of reading out of bounds or producing NaN.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/isa.h"
#include "kernels/variants.h"

namespace packptq {

struct QuantLayout {
  int64_t outer = 1, channels = 1, inner = 1;
  int64_t numel() const { return outer * channels * inner; }
};

// qmin / qmax of a b-bit grid: signed [−2^(b−1), 2^(b−1) − 1], unsigned [0, 2^b − 1]. bits in 2..8.
struct QuantGrid {
  int qmin, qmax;
};
QuantGrid quant_grid(int bits, bool is_signed);

// Smallest scale any derivation returns (BRECQ's eps): a degenerate range (all-zero tensor, dead
// channel) still gets a positive, finite scale, and 0 stays exactly 0 whatever the scale.
constexpr float kMinScale = 1e-8f;

struct QuantParams {
  float scale;
  float zero;  // integer-valued, in [qmin, qmax]
};

// Scale and zero-point covering [lo, hi] (computed in double, scale rounded once to float):
//   asymmetric: lo' = min(lo, 0), hi' = max(hi, 0); s = (hi' − lo') / (qmax − qmin);
//               z = clamp(round_half_even(qmin − lo' / s), qmin, qmax)
//   symmetric:  a = max(|lo|, |hi|); s = a / ((qmax − qmin) / 2);
//               z = round_half_even(qmin + (qmax − qmin) / 2)  (0 when signed, 2^(b−1) when unsigned)
//   then s = max(s, kMinScale). lo > hi (an empty observation) counts as lo = hi = 0.
// Throws BadData when lo or hi is not finite or s·(qmax − qmin) would overflow float32.
QuantParams params_from_range(float lo, float hi, int qmin, int qmax, bool symmetric);

// Throws BadOption unless qmin < qmax, −32768 <= qmin, qmax <= 65535 (the kernels' exact range).
void check_grid(int qmin, int qmax);
// Throws BadOption when a layout dimension is negative, the product overflows or differs from n.
void check_layout(const QuantLayout& L, int64_t n);
// Throws BadOption naming the first channel whose scale is not finite and > 0 (or whose
// s·(qmax − qmin) overflows float32) or whose zero-point is not an integer in [qmin, qmax].
void check_params(int64_t channels, const float* scale, const float* zero, int qmin, int qmax);

// y = x̂ (y may be x). threads: OpenMP threads the call may use.
void fake_quant(Isa isa, const float* x, int64_t n, const QuantLayout& L, const float* scale, const float* zero,
                int qmin, int qmax, float* y, int threads = 1);
// Also writes mask[i] = 1 where qmin <= round(x/s) + z <= qmax (not clamped, not NaN), else 0.
void fake_quant_mask(Isa isa, const float* x, int64_t n, const QuantLayout& L, const float* scale,
                     const float* zero, int qmin, int qmax, float* y, uint8_t* mask, int threads = 1);
// Integer codes q. The int8 / uint8 forms require [qmin, qmax] to fit the type.
void quantize_codes(Isa isa, const float* x, int64_t n, const QuantLayout& L, const float* scale, const float* zero,
                    int qmin, int qmax, int32_t* q, int threads = 1);
void quantize_codes(Isa isa, const float* x, int64_t n, const QuantLayout& L, const float* scale, const float* zero,
                    int qmin, int qmax, int8_t* q, int threads = 1);
void quantize_codes(Isa isa, const float* x, int64_t n, const QuantLayout& L, const float* scale, const float* zero,
                    int qmin, int qmax, uint8_t* q, int threads = 1);

// ---- LSQ activation quantizer of reconstruction (native/recon), with QDrop's random bypass -------
// QDrop's per-element coin: element i of a forward step is left unquantized when
// drop_hash(base + i) < threshold. A 32-bit integer hash (Wellons' lowbias32) rather than a 64-bit
// one so that the SIMD kernels compute it lane-wise (AVX2 has 32-bit but no 64-bit multiplies).
inline uint32_t drop_hash(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}
// splitmix64's finaliser: a well-mixed 64-bit hash. drop_base(seed, step) is the 32-bit base of one
// training step's per-element coins, so every step draws fresh ones and a seed replays them all.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
inline uint32_t drop_base(uint64_t seed, uint64_t step) {
  return static_cast<uint32_t>(splitmix64(seed ^ splitmix64(step)));
}
// The threshold for a dropping probability p in [0, 1] (0: never drop).
inline uint32_t drop_threshold(double p) {
  return p <= 0 ? 0u : (p >= 1 ? 0xffffffffu : static_cast<uint32_t>(p * 4294967296.0));
}
// What the forward did with each element, for the backward: kept unquantized (dropped), rounded
// inside the grid, or clamped at its low / high end.
enum LsqState : uint8_t { kLsqDropped = 0, kLsqInside = 1, kLsqBelow = 2, kLsqAbove = 3 };
// y = s·clamp(round_half_even(x/s), lo, hi) (lo = qmin − z, hi = qmax − z), or x where dropped;
// state[i] records which. threshold 0 disables dropping.
// Pack-PTQ's input mixing: dst[i] = fp[i] where drop_hash(base + i) < threshold, else dst[i] is
// kept (the quantized value already there). threshold 0: nothing taken.
void mix_select(Isa isa, const float* fp, int64_t n, uint32_t base, uint32_t threshold, float* dst);
// The reconstruction loss pass: returns Σ (y − t)² (float partial sums flushed into a double in a
// fixed order, so deterministic per ISA) and writes grad[i] = gscale·(y[i] − t[i]).
double sq_error(Isa isa, const float* y, const float* t, int64_t n, float gscale, float* grad);
void lsq_forward(Isa isa, const float* x, int64_t n, float s, float lo, float hi, uint32_t base, uint32_t threshold,
                 float* y, uint8_t* state);
// Straight-through backward: gx[i] += g[i] where the element was not clamped (gx may be null; with
// assign, gx[i] = that or 0), and returns ∂L/∂s = Σ g·(round(x/s) − x/s) inside + Σ g·lo below +
// Σ g·hi above (LSQ's step gradient).
double lsq_backward(Isa isa, const float* x, const float* g, const uint8_t* state, int64_t n, float s, float lo,
                    float hi, float* gx, bool assign = false);

// Per-channel min and max, NaN ignored; a channel with no non-NaN element gets +inf / −inf.
void min_max(Isa isa, const float* x, int64_t n, const QuantLayout& L, float* mins, float* maxs, int threads = 1);

// ---- the BRECQ clipping search ------------------------------------------------------------------
// Candidate i (0 <= i < candidates) clips the observed range to (lo·r_i, hi·r_i), r_i = 1 − 0.01·i
// (r_i in double, the products rounded to float), derives (s_i, z_i) with params_from_range and
// scores E_i = Σ |x − x̂_i|^p over the channel (x − x̂ in float32, the power and the sum in double).
// The lowest E_i wins; ties go to the lower i (the wider range).
struct MseOptions {
  int qmin = 0, qmax = 255;
  bool symmetric = false;
  double p = 2.4;       // in (0, 8]
  int candidates = 80;  // in [1, 100], so every ratio stays > 0
};
void check_mse_options(const MseOptions& o);

struct MseChoice {
  float scale, zero, ratio;
  float lo, hi;         // the observed (unclipped) min / max
  int index;            // winning candidate
  double error;         // E of the winner
  double minmax_error;  // E_0: plain min-max (ratio 1.0)
};

// One result per channel. Throws BadData when the data holds ±inf or NaN.
std::vector<MseChoice> mse_search(Isa isa, const float* x, int64_t n, const QuantLayout& L, const MseOptions& o,
                                  int threads = 1);

// Streaming per-tensor search for activations, two passes over the calibration set because the
// candidates depend on the GLOBAL min/max: observe() every batch (exact running min/max), then
// accumulate() every batch (per-candidate error sums in double; the candidate grid is frozen at the
// first accumulate), then result(). The sums equal the one-shot search's up to double rounding
// (the association differs), so the chosen candidate is the same unless two errors tie to ~1e-15.
class MseStream {
 public:
  MseStream(KernelVariant v, const MseOptions& o, int threads);
  void observe(const float* x, int64_t n);  // BadOption once accumulate() has started
  void accumulate(const float* x, int64_t n);  // BadOption when nothing was observed
  MseChoice result() const;                    // BadOption when nothing was accumulated
  float lo() const { return lo_; }
  float hi() const { return hi_; }
  const std::vector<double>& errors() const { return err_; }  // per candidate
  int64_t observed() const { return observed_; }
  int64_t accumulated() const { return accumulated_; }

 private:
  void freeze();
  KernelVariant v_;
  MseOptions o_;
  int threads_;
  float lo_, hi_;
  int64_t observed_ = 0, accumulated_ = 0;
  bool frozen_ = false;
  std::vector<double> err_;
};

// ---- the clipping search on a histogram (activations' default) ---------------------------------
// The BRECQ search above costs one L_p error per element and candidate; over a calibration set's
// activations that is minutes. Here the values are binned instead (4096 bins over the range seen by
// observe(), each keeping its count and the sum of its values, exact zeros — the bulk of post-ReLU
// activations — kept apart), and every candidate is scored on the bins: Σ count·|x̄ − x̂(x̄)|^p with
// x̄ the bin's mean. This is the arithmetic lib/quant/histogram-mse.ts did in JavaScript (moved here
// so that calibration runs on worker threads), operation for operation in double precision with
// JavaScript's NaN / ToInt32 semantics, so the chosen candidate is the same; the only difference is
// std::pow against V8's Math.pow (1 ulp apart on ~10 % of arguments), which moves an error sum by
// ~1e-16 relative and could only flip a choice between two candidates tied to that precision.
class HistogramMse {
 public:
  static constexpr int kBins = 4096;
  void observe(const float* x, int64_t n);     // pass 1: the global range; BadOption after accumulate()
  void accumulate(const float* x, int64_t n);  // pass 2: the bins over the frozen range
  struct Choice {
    float scale;
    int32_t zero;
    double ratio, error;
    int index;  // winning candidate, −1 when every error was NaN (scale 0, ratio 1, error +inf)
  };
  // Candidates r_i = 1 − 0.01·i clip (lo·r_i, hi·r_i) on the unsigned `bits` grid.
  Choice result(int bits, double p, int candidates) const;
  double lo() const { return lo_; }
  double hi() const { return hi_; }

 private:
  std::vector<double> counts_ = std::vector<double>(kBins, 0.0), sums_ = std::vector<double>(kBins, 0.0);
  double zeros_ = 0, lo_ = __builtin_inf(), hi_ = -__builtin_inf();
  bool frozen_ = false;
};

// ---- percentiles over a stream -------------------------------------------------------------------
// Exact counts in bins keyed by the top 19 bits of an order-preserving map of the float bits (sign,
// 8 exponent bits, 10 mantissa bits): one pass, no range needed in advance, order independent.
// A bin of normal floats with exponent e spans 2^(e−10), so the returned midpoint is within
// max(2^−11·|exact|, 2^−137) of the exact nearest-rank percentile (sorted[ceil(q/100·N) − 1]),
// and [lower, upper] always contains it; the smallest and largest ranks are returned exactly. NaNs are counted apart and ignored; ±inf are ordinary
// (largest) values. Bin groups are allocated per (sign, exponent) on first use.
class QuantHistogram {
 public:
  explicit QuantHistogram(bool abs) : abs_(abs) {}
  void add(const float* x, int64_t n);
  struct Estimate {
    double value, lower, upper;
  };
  Estimate percentile(double q) const;  // q in [0, 100]; BadOption when empty
  int64_t count() const { return count_; }
  int64_t nans() const { return nans_; }
  float min() const { return min_; }
  float max() const { return max_; }
  bool abs() const { return abs_; }

 private:
  static constexpr int kGroupBits = 10;  // bins per group = mantissa bits kept
  bool abs_;
  int64_t count_ = 0, nans_ = 0;
  float min_ = __builtin_inff(), max_ = -__builtin_inff();
  std::vector<std::unique_ptr<uint64_t[]>> groups_ = std::vector<std::unique_ptr<uint64_t[]>>(512);
  std::vector<uint64_t> group_count_ = std::vector<uint64_t>(512, 0);
};

// ---- variant-level entry points (tests, benchmarks; KernelVariant::Scalar is the reference) -------
enum class QuantOut { FakeQuant, FakeQuantMask, CodesI32, CodesI8, CodesU8 };
// out: float (FakeQuant*), int32_t / int8_t / uint8_t (Codes*); mask only for FakeQuantMask.
void quantize_variant(KernelVariant v, QuantOut kind, const float* x, int64_t n, const QuantLayout& L,
                      const float* scale, const float* zero, int qmin, int qmax, void* out, uint8_t* mask,
                      int threads);
void min_max_variant(KernelVariant v, const float* x, int64_t n, const QuantLayout& L, float* mins, float* maxs,
                     int threads);
std::vector<MseChoice> mse_search_variant(KernelVariant v, const float* x, int64_t n, const QuantLayout& L,
                                          const MseOptions& o, int threads);
// Lanes of the quant kernels of a variant (1 for scalar); 0 when the variant cannot run here.
int quant_lanes(KernelVariant v);

// ---- internal: the per-ISA kernels behind the entry points above (quant_impl.h instantiates them,
// quant.cpp drives them: validation, threading, chunking and the scalar reference live there) ------
struct QuantTable {
  int lanes;
  // n contiguous elements of one channel: parameters s, z and the clamp bounds lo = qmin − z,
  // hi = qmax − z. out/mask point at element 0 of the span.
  void (*span)(QuantOut kind, const float* x, int64_t n, float s, float z, float lo, float hi, void* out,
               uint8_t* mask);
  // n contiguous elements, element j using channel j's parameters (layouts with inner == 1).
  void (*rows)(QuantOut kind, const float* x, int64_t n, const float* s, const float* z, const float* lo,
               const float* hi, void* out, uint8_t* mask);
  // Running min/max of a span (updates *mn, *mx), and element-wise over channels (mins[j], maxs[j]).
  void (*minmax_span)(const float* x, int64_t n, float* mn, float* mx);
  void (*minmax_rows)(const float* x, int64_t n, float* mins, float* maxs);
  // err[k] += Σ_j |x_j − x̂_j(s[k], lo[k], hi[k])|^p for k < nc.
  void (*lp_errors)(const float* x, int64_t n, int nc, const float* s, const float* lo, const float* hi, double p,
                    double* err);
  // The LSQ pair above, over one contiguous span (quant.cpp keeps the scalar reference).
  void (*lsq_forward)(const float* x, int64_t n, float s, float lo, float hi, uint32_t base, uint32_t threshold,
                      float* y, uint8_t* state);
  double (*lsq_backward)(const float* x, const float* g, const uint8_t* state, int64_t n, float s, float lo, float hi,
                         float* gx, bool assign);
  // The reconstruction loop's two per-element passes (declared below).
  void (*mix_select)(const float* fp, int64_t n, uint32_t base, uint32_t threshold, float* dst);
  double (*sq_error)(const float* y, const float* t, int64_t n, float gscale, float* grad);
};
extern const QuantTable kQuantAvx2Table;
extern const QuantTable kQuantAvx512Table;
extern const QuantTable kQuantAvx512LogicTable;

}  // namespace packptq
