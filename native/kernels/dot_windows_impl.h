// Windowed dot products, the kernel of a stride-1 convolution's weight gradient (train/ConvGrad):
//   C[m·ldc + j] += Σ_{q < L} A[m·lda + q] · B[boff[j] + q]      (m < M, j < J)
// Both operands run contiguously along the reduction, so nothing is packed or transposed: A is
// dY (one row per output channel, the output rows laid at the padded input's width) and row j of
// B is a window of the padded input plane, shifted by tap j's offset. Register tile MR rows of A
// × NR windows, one vector accumulator each, reduced across lanes once at the end (L is hundreds
// to thousands long). The loop over windows is inside the loop over A blocks, so the MR rows of A
// stay in L1 while the windows (one padded sample, tens of KB) stream from L2.
//
// Only the *_avx2.cpp / *_avx512.cpp objects may include this header (it compiles to their -march).
#pragma once
#include <cstring>

namespace packptq {
namespace simd {
namespace {

template <int W, int MR, int NR>
struct DotWindows {
  typedef float V __attribute__((vector_size(W * 4)));
  static V ld(const float* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  static float hsum(const V& v) {
    float lanes[W], t = 0.f;
    std::memcpy(lanes, &v, sizeof(V));
    for (int i = 0; i < W; ++i) t += lanes[i];
    return t;
  }
  // One tile of R ≤ MR rows × S ≤ NR windows (compile-time, so the accumulators stay in registers).
  template <int R, int S>
  static void tile(const float* A, long lda, const float* const* b, long L, float* C, long ldc) {
    V acc[R][S];
    for (int r = 0; r < R; ++r)
      for (int s = 0; s < S; ++s) acc[r][s] = V{};
    long q = 0;
    for (; q + W <= L; q += W) {
      V bv[S];
      for (int s = 0; s < S; ++s) bv[s] = ld(b[s] + q);
      for (int r = 0; r < R; ++r) {
        const V av = ld(A + r * lda + q);
        for (int s = 0; s < S; ++s) acc[r][s] += av * bv[s];
      }
    }
    for (int r = 0; r < R; ++r)
      for (int s = 0; s < S; ++s) {
        float t = hsum(acc[r][s]);
        for (long k = q; k < L; ++k) t += A[r * lda + k] * b[s][k];
        C[r * ldc + s] += t;
      }
  }
  template <int R>
  static void row_block(const float* A, long lda, const float* B, const long* boff, int J, long L, float* C, long ldc) {
    const float* b[NR];
    int j = 0;
    for (; j + NR <= J; j += NR) {
      for (int s = 0; s < NR; ++s) b[s] = B + boff[j + s];
      tile<R, NR>(A, lda, b, L, C + j, ldc);
    }
    for (; j < J; ++j) {
      b[0] = B + boff[j];
      tile<R, 1>(A, lda, b, L, C + j, ldc);
    }
  }
  static void run(const float* A, long lda, int M, const float* B, const long* boff, int J, long L, float* C, long ldc) {
    int m = 0;
    for (; m + MR <= M; m += MR) row_block<MR>(A + m * lda, lda, B, boff, J, L, C + m * ldc, ldc);
    for (; m < M; ++m) row_block<1>(A + m * lda, lda, B, boff, J, L, C + m * ldc, ldc);
  }
};

// AVX2 (16 ymm): 4 × 3 = 12 accumulators + 3 windows + 1 row of A, 7 loads per 12 FMAs (4 × 2
// took 10 per 8, the A rows re-read as memory operands, and ran the weight gradient ~10 % slower).
// AVX-512 (32 zmm): 4 × 4.
using Avx2Dot = DotWindows<8, 4, 3>;
using Avx512Dot = DotWindows<16, 4, 4>;

}  // namespace
}  // namespace simd
}  // namespace packptq
