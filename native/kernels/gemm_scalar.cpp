// The scalar reference GEMM: the obviously correct triple loop, accumulated in double so that its
// own rounding error is far below the float error of the SIMD variants it is the truth for.
// Also the scalar FMA-throughput probe (generic x86-64 code: separate multiply and add).
#include <chrono>

#include "kernels/variants.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace packptq {

void sgemm_reference(bool transA, bool transB, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
                     float* C, int ldc, bool accumulate) {
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j) {
      double s = 0;
      for (int k = 0; k < K; ++k) {
        const float a = transA ? A[(long)k * lda + i] : A[(long)i * lda + k];
        const float b = transB ? B[(long)j * ldb + k] : B[(long)k * ldb + j];
        s += (double)a * (double)b;
      }
      float* c = C + (long)i * ldc + j;
      *c = accumulate ? (float)((double)*c + s) : (float)s;
    }
  }
}

namespace {
// 12 independent scalar chains (latency 3-4 cycles x 2-3 pipes); barriers keep them unmerged.
double scalar_chains(long iters) {
  constexpr int ACC = 12;
  float m = 0.999999f, c = 1e-6f;
  float acc[ACC];
  for (int i = 0; i < ACC; ++i) acc[i] = 1.0f + 0.01f * i;
  asm volatile("" : "+x"(m), "+x"(c));
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < ACC; ++i) acc[i] = acc[i] * m + c;
  }
  double s = 0;
  for (int i = 0; i < ACC; ++i) s += acc[i];
  return s;
}
}  // namespace

double peak_gflops_scalar(int threads, double seconds) {
  using clock = std::chrono::steady_clock;
  const long iters = 1 << 20;
  volatile double sink = scalar_chains(iters / 16);
  if (threads < 1) threads = 1;
  long batches_total = 0;
  double checksum = 0;
  const auto t0 = clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : batches_total, checksum)
  {
    do {
      checksum += scalar_chains(iters);
      ++batches_total;
    } while (std::chrono::duration<double>(clock::now() - t0).count() < seconds);
  }
  const double dt = std::chrono::duration<double>(clock::now() - t0).count();
  sink = checksum;
  (void)sink;
  return 2.0 * 12 * (double)iters * (double)batches_total / dt * 1e-9;
}

}  // namespace packptq
