// Single-precision matrix multiply, the workhorse of Conv, Gemm and MatMul.
// Contract (row-major throughout):
//   C[M,N] = op(A)[M,K] · op(B)[K,N]  (+ C[M,N] when accumulate)
//   op(A) = transA ? Aᵀ : A, where A is stored row-major with leading dimension lda (likewise B).
// `threads` is the number of OpenMP threads the call may use (1 = run on the caller only).
// Every ISA computes the same contract; results differ only by float summation order.
#pragma once
#include "core/isa.h"

namespace packptq {

void sgemm(Isa isa, bool transA, bool transB, int M, int N, int K, const float* A, int lda, const float* B,
           int ldb, float* C, int ldc, bool accumulate, int threads);

// Shorthand on the process default ISA.
void sgemm(bool transA, bool transB, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
           float* C, int ldc, bool accumulate, int threads);

// Windowed dot products (a stride-1 convolution's weight gradient, train/ConvGrad):
//   C[m·ldc + j] += Σ_{q < L} A[m·lda + q] · B[boff[j] + q]      (m < M, j < J)
// Single-threaded; the caller splits the work.
void dot_windows(Isa isa, const float* A, long lda, int M, const float* B, const long* boff, int J, long L, float* C,
                 long ldc);
}  // namespace packptq
