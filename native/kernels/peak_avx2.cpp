// FMA peak probe for AVX2 (ymm, -march=x86-64-v3). See peak_impl.h.
#include "kernels/peak_impl.h"

namespace packptq {
// 12 chains: with m and c that is 14 of the 16 ymm registers, so nothing spills.
double peak_gflops_avx2(int threads, double seconds) { return simd::peak_gflops<8, 12>(threads, seconds); }
}  // namespace packptq
