// FMA throughput probe, written once over the vector width. ACC independent accumulator chains
// (acc = acc * m + c, each one FMA) keep every FMA pipe busy despite the 4-5 cycle FMA latency:
// Zen 3 needs 2 pipes x 4 cycles = 8 chains in flight, AVX-512 cores up to 2 x 4-6. ACC + 2 must fit
// the register file (a spilled chain measures loads and stores instead of FMAs). The multiplier and addend are hidden from the optimiser (empty asm) so the chains can be
// neither folded to a closed form nor merged; m < 1 keeps values bounded and away from denormals.
#pragma once
#include <chrono>

#include "kernels/gemm_impl.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace packptq {
namespace simd {
// Internal linkage on purpose: each ISA object compiles these with its own -march, and shared
// (COMDAT) inline copies would let the linker keep an AVX-512 copy for the AVX2 object.
namespace {

template <int W, int ACC>
double fma_chain_run(long iters) {
  using V = typename VecOf<W>::type;
  V m = V{} + 0.999999f, c = V{} + 1e-6f;
  V acc[ACC];
#pragma GCC unroll 32
  for (int i = 0; i < ACC; ++i) acc[i] = V{} + (1.0f + 0.01f * i);
  asm volatile("" : "+x"(m), "+x"(c));
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 32
    for (int i = 0; i < ACC; ++i) acc[i] = acc[i] * m + c;
  }
  V s = V{};
#pragma GCC unroll 32
  for (int i = 0; i < ACC; ++i) s += acc[i];
  float out[W];
  storeu<V>(out, s);
  double t = 0;
  for (int i = 0; i < W; ++i) t += out[i];
  return t;  // returned and accumulated by the caller so the loop is live
}

// Runs the chains on `threads` threads at once until ~seconds have elapsed; returns total GFLOP/s
// (2 flops per lane per FMA).
template <int W, int ACC>
double peak_gflops(int threads, double seconds) {
  using clock = std::chrono::steady_clock;
  const long iters = 1 << 20;  // ~5 ms per batch at 2 FMA/cycle: short enough to stop on time
  volatile double sink = fma_chain_run<W, ACC>(iters / 16);  // warm-up: clocks up, code paged in
  if (threads < 1) threads = 1;
  long batches_total = 0;
  double checksum = 0;
  const auto t0 = clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : batches_total, checksum)
  {
    double local = 0;
    long batches = 0;
    do {
      local += fma_chain_run<W, ACC>(iters);
      ++batches;
    } while (std::chrono::duration<double>(clock::now() - t0).count() < seconds);
    batches_total += batches;
    checksum += local;
  }
  const double dt = std::chrono::duration<double>(clock::now() - t0).count();
  sink = checksum;
  (void)sink;
  return 2.0 * W * ACC * (double)iters * (double)batches_total / dt * 1e-9;
}

}  // namespace
}  // namespace simd
}  // namespace packptq
