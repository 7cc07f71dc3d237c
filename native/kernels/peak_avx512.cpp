// FMA peak probe for AVX-512 (zmm, -march=x86-64-v4). See peak_impl.h.
#include "kernels/peak_impl.h"

namespace packptq {
// 16 chains (+ m, c = 18 of 32 zmm): covers two FMA pipes at up to 8 cycles of latency x throughput.
double peak_gflops_avx512(int threads, double seconds) { return simd::peak_gflops<16, 16>(threads, seconds); }
}  // namespace packptq
