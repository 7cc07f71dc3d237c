#include "recon/reconstruct.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>  // the batch draw

#include "core/error.h"
#include "core/parallel.h"
#include "kernels/quant.h"

namespace packptq {
namespace recon {
namespace {

// Adam with bias correction; one state per parameter tensor.
struct Adam {
  std::vector<float> m, v;
  double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  template <typename ThreadsFor>
  void step(float* p, const float* g, int64_t n, double lr, int t, const ThreadsFor& threads_for) {
    if (m.empty()) m.assign(n, 0.f), v.assign(n, 0.f);
    const double c1 = 1 - std::pow(b1, t), c2 = 1 - std::pow(b2, t);
    const float a = static_cast<float>(lr * std::sqrt(c2) / c1);
    const float e = static_cast<float>(eps * std::sqrt(c2));
    const float fb1 = static_cast<float>(b1), fb2 = static_cast<float>(b2);
    float* mm = m.data();
    float* vv = v.data();
    parallel_for(n, threads_for(n), [&](int64_t i0, int64_t i1) {  // element-wise: any split gives the same bits
      for (int64_t i = i0; i < i1; ++i) {
        mm[i] = fb1 * mm[i] + (1 - fb1) * g[i];
        vv[i] = fb2 * vv[i] + (1 - fb2) * g[i] * g[i];
        p[i] -= a * mm[i] / (std::sqrt(vv[i]) + e);
      }
    });
  }
};

constexpr int64_t kRegBlock = 8192;  // rounding variables per regulariser partial sum

// h(V) = clamp(1.2·σ(V) − 0.1, 0, 1) and its derivative, in float: the regulariser visits every
// rounding variable every step, and in double (with two pow calls) it cost as much as a late
// block's convolutions.
inline float rect_sigmoid(float v, float* dh) {
  const float s = 1.f / (1.f + std::exp(-v));
  const float h = s * 1.2f - 0.1f;
  if (h <= 0.f || h >= 1.f) {
    *dh = 0.f;
    return h <= 0.f ? 0.f : 1.f;
  }
  *dh = 1.2f * s * (1.f - s);
  return h;
}

}  // namespace

namespace {
struct HalfTable {
  float v[65536];
  HalfTable() {
    for (uint32_t h = 0; h < 65536; ++h) {
      const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
      float f;
      if (exp == 0) {
        f = std::ldexp(static_cast<float>(man), -24);  // zero and subnormals: man · 2^-24
      } else if (exp == 31) {
        f = man ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
      } else {
        f = std::ldexp(static_cast<float>(man | 0x400u), static_cast<int>(exp) - 25);
      }
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      bits |= sign;
      std::memcpy(&v[h], &bits, 4);
    }
  }
};
const HalfTable& half_table() {
  static const HalfTable t;
  return t;
}
}  // namespace

void SampleStore::gather(const int64_t* idx, int count, int64_t per, float* dst) const {
  if (f16) {
    const float* t = half_table().v;
    for (int b = 0; b < count; ++b) {
      const uint16_t* src = f16 + idx[b] * per;
      float* d = dst + b * per;
      for (int64_t e = 0; e < per; ++e) d[e] = t[src[e]];
    }
  } else {
    for (int b = 0; b < count; ++b) std::memcpy(dst + b * per, f32 + idx[b] * per, per * sizeof(float));
  }
}

ReconResult reconstruct(train::Tape<float>& tape, const std::vector<ParamKind>& kinds, const ReconData& data,
                        const ReconConfig& cfg, const std::atomic<bool>& cancel,
                        const std::function<void(const ReconProgress&)>& progress) {
  const size_t nin = tape.num_inputs();
  if (kinds.size() != tape.num_params()) fail(ErrorCode::BadOption, "reconstruction: one kind per trainable parameter is needed");
  if (data.inputs_q.size() != nin) fail(ErrorCode::BadData, "reconstruction: one quantized input array per unit input is needed");
  const bool mixing = cfg.input_quant_prob < 1;
  if (mixing && data.inputs_fp.size() != nin) fail(ErrorCode::BadData, "reconstruction: input mixing needs the FP inputs");
  if (cfg.iters < 1 || cfg.batch < 1 || data.samples < 1) fail(ErrorCode::BadOption, "reconstruction: iterations, batch and samples must be positive");
  const int B = cfg.batch;
  std::vector<int64_t> in_sample(nin);
  for (size_t k = 0; k < nin; ++k) {
    const Shape& s = tape.input_shape(k);
    if (s.empty() || s[0] != B) fail(ErrorCode::ShapeMismatch, "reconstruction: unit input " + std::to_string(k) + " must have batch " + std::to_string(B));
    in_sample[k] = numel(s) / B;
    if (static_cast<int64_t>(data.inputs_q[k].size) != in_sample[k] * data.samples ||
        (mixing && static_cast<int64_t>(data.inputs_fp[k].size) != in_sample[k] * data.samples))
      fail(ErrorCode::BadData, "reconstruction: unit input " + std::to_string(k) + " data has the wrong size");
  }
  const int64_t out_sample = numel(tape.output_shape(0)) / B;
  if (static_cast<int64_t>(data.target.size) != out_sample * data.samples) fail(ErrorCode::BadData, "reconstruction: target data has the wrong size");

  tape.set_threads(cfg.threads);
  tape.set_option("", "hard", 0);
  tape.set_option("", "drop", cfg.drop_prob);

  std::mt19937_64 rng(cfg.seed);
  std::uniform_int_distribution<int64_t> pick(0, data.samples - 1);
  const uint32_t take_fp = drop_threshold(1 - cfg.input_quant_prob);
  const bool take_fp_always = cfg.input_quant_prob <= 0;
  const Isa isa = tape.isa();
  std::vector<float> fp_rows;  // fp16 cache: each sample's FP input widened before mixing
  for (size_t k = 0; k < nin && mixing; ++k)
    if (!data.inputs_fp[k].f32 && static_cast<int64_t>(fp_rows.size()) < in_sample[k] * B) fp_rows.resize(in_sample[k] * B);
  // The loop's own passes (input preparation, loss, regulariser, optimiser) use the unit's threads
  // when there is enough work to pay for the hand-off.
  const int threads = std::max(1, cfg.threads);
  auto threads_for = [threads](int64_t work) { return work >= 16384 ? threads : 1; };
  std::vector<double> rec_part(B), reg_part;
  const uint64_t mix_seed = splitmix64(cfg.seed ^ 0x696e7075745f6d78ull);  // apart from the ops' drop seeds
  std::vector<std::vector<float>> batch_in(nin);
  for (size_t k = 0; k < nin; ++k) batch_in[k].resize(in_sample[k] * B);
  std::vector<float> target(data.target.f32 ? 0 : out_sample * B), grad(out_sample * B);
  std::vector<Adam> adam(kinds.size());
  std::vector<int64_t> idx(B);

  const int warm = static_cast<int>(cfg.warmup * cfg.iters);
  ReconResult res;
  const auto t0 = std::chrono::steady_clock::now();
  auto last_report = t0;
  double rec_acc = 0, reg_acc = 0;
  int acc_n = 0;
  for (int it = 0; it < cfg.iters; ++it) {
    if (cancel.load(std::memory_order_relaxed)) {
      res.cancelled = true;
      break;
    }
    for (int b = 0; b < B; ++b) idx[b] = pick(rng);
    for (size_t k = 0; k < nin; ++k) {
      const int64_t S = in_sample[k];
      // Each element keeps its quantized value with probability input_quant_prob, else takes the
      // FP one. The coins are a counter hash (kernels/quant.h), not a sequential generator: a
      // Mersenne-Twister draw per element was a quarter of an early block's training step. Every
      // sample's coins are fixed by (seed, step, position), so the threads split samples freely.
      const uint32_t base = drop_base(mix_seed + k, static_cast<uint64_t>(it));
      const SampleStore* fp = mixing ? &data.inputs_fp[k] : nullptr;
      parallel_for(B, threads_for(S * B), [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          float* dst = batch_in[k].data() + b * S;
          if (fp && take_fp_always) {
            fp->gather(&idx[b], 1, S, dst);
            continue;
          }
          data.inputs_q[k].gather(&idx[b], 1, S, dst);
          if (!fp) continue;
          const float* src = fp->f32 ? fp->f32 + idx[b] * S : nullptr;
          if (!src) {  // fp16 cache: widen the sample first
            fp->gather(&idx[b], 1, S, fp_rows.data() + b * S);
            src = fp_rows.data() + b * S;
          }
          mix_select(isa, src, S, base + static_cast<uint32_t>(b * S), take_fp, dst);
        }
      });
    }
    if (!data.target.f32) data.target.gather(idx.data(), B, out_sample, target.data());

    std::vector<const float*> ins(nin);
    for (size_t k = 0; k < nin; ++k) ins[k] = batch_in[k].data();
    tape.forward(ins);
    const float* y = tape.output(0);
    // Per sample, against the cached target in place (an fp32 cache needs no gathered copy).
    parallel_for(B, threads_for(out_sample * B), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const float* t = data.target.f32 ? data.target.f32 + idx[b] * out_sample : target.data() + b * out_sample;
        rec_part[b] = sq_error(isa, y + b * out_sample, t, out_sample, 2.f / B, grad.data() + b * out_sample);
      }
    });
    double rec = 0;
    for (int b = 0; b < B; ++b) rec += rec_part[b];  // sample order: the same sum on any number of threads
    rec /= B;
    tape.backward({grad.data()});

    // The rounding regulariser λ·Σ(1 − |2h(V) − 1|^β), off during warm-up; β anneals 20 → 2.
    const double rel = it < warm ? 0 : double(it - warm) / std::max(1, cfg.iters - warm);
    const double beta = cfg.beta_end + (cfg.beta_start - cfg.beta_end) * std::max(0.0, 1 - rel);
    double reg = 0;
    if (it >= warm && cfg.lambda > 0) {
      for (size_t p = 0; p < kinds.size(); ++p) {
        if (kinds[p] != ParamKind::Rounding) continue;
        const float* V = tape.param(p);
        float* g = tape.param_grad(p);
        const int64_t n = numel(tape.param_shape(p));
        const float fbeta = static_cast<float>(beta), coef = static_cast<float>(cfg.lambda * -beta * 2);
        // Fixed blocks with their own partial sums: the value is the same on any number of threads.
        const int64_t nblk = (n + kRegBlock - 1) / kRegBlock;
        reg_part.assign(static_cast<size_t>(nblk), 0.0);
        parallel_for(nblk, threads_for(n), [&](int64_t k0, int64_t k1) {
          for (int64_t k = k0; k < k1; ++k) {
            double sum = 0;
            for (int64_t i = k * kRegBlock, e = std::min(n, i + kRegBlock); i < e; ++i) {
              float dh;
              const float h = rect_sigmoid(V[i], &dh);
              const float u = 2.f * h - 1.f, au = std::fabs(u);
              // |u|^β once; d|u|^β/d|u| = β·|u|^β / |u|.
              const float pw = au > 0.f ? std::pow(au, fbeta) : 0.f;
              sum += 1.f - pw;
              if (dh > 0.f && au > 0.f) g[i] += coef * (pw / au) * (u > 0.f ? 1.f : -1.f) * dh;
            }
            reg_part[k] = sum;
          }
        });
        for (double v : reg_part) reg += v;
      }
      reg *= cfg.lambda;
    }
    const double cosine = 0.5 * (1 + std::cos(M_PI * it / cfg.iters));
    for (size_t p = 0; p < kinds.size(); ++p) {
      const double lr = kinds[p] == ParamKind::Rounding ? cfg.lr_round : cfg.lr_act * cosine;
      adam[p].step(tape.param(p), tape.param_grad(p), numel(tape.param_shape(p)), lr, it + 1, threads_for);
    }
    // A step size must stay positive whatever the optimiser does.
    for (size_t p = 0; p < kinds.size(); ++p)
      if (kinds[p] == ParamKind::ActStep && !(tape.param(p)[0] > 1e-8f)) tape.param(p)[0] = 1e-8f;

    rec_acc += rec;
    reg_acc += reg;
    ++acc_n;
    res.iters_done = it + 1;
    const auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last_report).count() >= cfg.progress_seconds || it + 1 == cfg.iters) {
      ReconProgress pr;
      pr.iter = it + 1;
      pr.iters = cfg.iters;
      pr.rec_loss = rec_acc / acc_n;
      pr.reg_loss = reg_acc / acc_n;
      pr.beta = it < warm ? 0 : beta;
      pr.seconds = std::chrono::duration<double>(now - t0).count();
      res.curve.push_back(pr);
      if (progress) progress(pr);
      rec_acc = reg_acc = 0;
      acc_n = 0;
      last_report = now;
    }
  }
  tape.set_option("", "hard", 1);
  tape.set_option("", "drop", 0);
  for (size_t p = 0; p < kinds.size(); ++p) {
    const float* v = tape.param(p);
    res.params.emplace_back(v, v + numel(tape.param_shape(p)));
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace recon
}  // namespace packptq
