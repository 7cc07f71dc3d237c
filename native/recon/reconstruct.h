// The reconstruction loop of one unit, entirely native: thousands of iterations of
//   draw a batch (indices with replacement, seeded) → [mix quantized and FP inputs] → forward with
//   fake quantization → loss ‖y − y_fp‖² summed over features, averaged over the batch
//   (+ the AdaRound regulariser) → backward → Adam step (cosine-decayed for activation steps),
// reporting progress a few times a second and stopping promptly when cancelled.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "train/tape.h"

namespace packptq {
namespace recon {

enum class ParamKind { Rounding, ActStep };

struct ReconConfig {
  int iters = 20000;
  int batch = 32;
  double lr_round = 3e-3;     // AdaRound V, Adam, constant
  double lr_act = 4e-5;       // activation steps, Adam, cosine to 0
  double lambda = 0.01;       // regulariser weight
  double beta_start = 20, beta_end = 2;
  double warmup = 0.2;        // fraction of iterations without the regulariser
  double drop_prob = 0;       // QDrop: inside every LsqQuant op of the unit
  double input_quant_prob = 1;  // probability an input element comes from the quantized prefix
  uint64_t seed = 0;
  int threads = 1;
  double progress_seconds = 0.25;
};

// A unit's cached values for N samples (one unit input, or the target): float32, or IEEE half
// when the caller chose the fp16 cache to halve its memory. Points at memory the caller owns and
// keeps alive for the run (the JS typed arrays): no copy, so the cache exists once.
struct SampleStore {
  const float* f32 = nullptr;
  const uint16_t* f16 = nullptr;
  int64_t size = 0;  // elements
  // Samples idx[0..count) of `per` elements each, converted to float, into dst (count × per).
  void gather(const int64_t* idx, int count, int64_t per, float* dst) const;
  int64_t bytes() const { return size * (f16 ? 2 : 4); }
};

struct ReconData {
  // One entry per unit input: N samples each, quantized-prefix values and (optionally) FP values.
  std::vector<SampleStore> inputs_q, inputs_fp;
  SampleStore target;  // N × output sample
  int64_t samples = 0;
};

struct ReconProgress {
  int iter = 0, iters = 0;
  double rec_loss = 0, reg_loss = 0, beta = 0, seconds = 0;
};

struct ReconResult {
  std::vector<std::vector<float>> params;  // final values, in trainable order
  std::vector<ReconProgress> curve;        // ~one point per progress report plus the last
  int iters_done = 0;
  double seconds = 0;
  bool cancelled = false;
};

// Runs the loop on `tape` (whose trainable parameters are `kinds`, in order). Rounding parameters
// must be the V inputs of AdaRound ops (the regulariser is applied to them). The AdaRound ops are
// switched to hard rounding at the end and LsqQuant dropping off.
ReconResult reconstruct(train::Tape<float>& tape, const std::vector<ParamKind>& kinds, const ReconData& data,
                        const ReconConfig& cfg, const std::atomic<bool>& cancel,
                        const std::function<void(const ReconProgress&)>& progress);

}  // namespace recon
}  // namespace packptq
