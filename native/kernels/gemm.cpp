// GEMM dispatch (generic code, no -march): maps an Isa or a kernel variant to the reference loop or
// to the table exported by the matching ISA object, after checking that this CPU can run it.
#include "kernels/gemm.h"

#include <cstring>
#include <string>

#include "core/error.h"
#include "kernels/variants.h"

namespace packptq {

const char* variant_name(KernelVariant v) {
  switch (v) {
    case KernelVariant::Avx2: return "avx2";
    case KernelVariant::Avx512: return "avx512";
    case KernelVariant::Avx512Logic: return "avx512-logic";
    default: return "scalar";
  }
}

bool parse_variant(const char* name, KernelVariant* out) {
  if (std::strcmp(name, "avx512-logic") == 0) {
    *out = KernelVariant::Avx512Logic;
    return true;
  }
  Isa isa;
  if (!parse_isa(name, &isa)) return false;
  *out = variant_of(isa);
  return true;
}

bool variant_supported(KernelVariant v) {
  switch (v) {
    case KernelVariant::Scalar: return true;
    case KernelVariant::Avx2: return isa_supported(Isa::Avx2);
    case KernelVariant::Avx512: return isa_supported(Isa::Avx512);
    case KernelVariant::Avx512Logic: return isa_supported(Isa::Avx2);  // compiled for AVX2
  }
  return false;
}

const KernelTable* kernel_table(KernelVariant v) {
  if (!variant_supported(v)) return nullptr;
  switch (v) {
    case KernelVariant::Avx2: return &kAvx2Table;
    case KernelVariant::Avx512: return &kAvx512Table;
    case KernelVariant::Avx512Logic: return &kAvx512LogicTable;
    default: return nullptr;
  }
}

static const KernelTable* require_table(KernelVariant v) {
  const KernelTable* t = kernel_table(v);
  if (t == nullptr)
    fail(ErrorCode::BadOption, std::string("the ") + variant_name(v) + " kernels cannot run on this CPU");
  return t;
}

void sgemm_variant(KernelVariant v, bool transA, bool transB, int M, int N, int K, const float* A, int lda,
                   const float* B, int ldb, float* C, int ldc, bool accumulate, int threads) {
  if (v == KernelVariant::Scalar) {
    // The reference is single-threaded on purpose: it is the truth, not a contender.
    sgemm_reference(transA, transB, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
    return;
  }
  require_table(v)->sgemm(transA, transB, M, N, K, A, lda, B, ldb, C, ldc, accumulate, threads < 1 ? 1 : threads);
}

void sgemm(Isa isa, bool transA, bool transB, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
           float* C, int ldc, bool accumulate, int threads) {
  sgemm_variant(variant_of(isa), transA, transB, M, N, K, A, lda, B, ldb, C, ldc, accumulate, threads);
}

void sgemm(bool transA, bool transB, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C,
           int ldc, bool accumulate, int threads) {
  // default_isa() reads PACKPTQ_SIMD each call; resolve it once per process for the hot path.
  static const Isa isa = default_isa();
  sgemm(isa, transA, transB, M, N, K, A, lda, B, ldb, C, ldc, accumulate, threads);
}

double peak_gflops(KernelVariant v, int threads, double seconds) {
  if (v == KernelVariant::Scalar) return peak_gflops_scalar(threads, seconds);
  const KernelTable* t = require_table(v);
  if (t->peak_gflops == nullptr)
    fail(ErrorCode::BadOption, std::string("no FMA peak probe for the test-only variant ") + variant_name(v));
  return t->peak_gflops(threads, seconds);
}

void dot_windows(Isa isa, const float* A, long lda, int M, const float* B, const long* boff, int J, long L, float* C,
                 long ldc) {
  if (const KernelTable* t = kernel_table(variant_of(isa))) return t->dot_windows(A, lda, M, B, boff, J, L, C, ldc);
  for (int m = 0; m < M; ++m)
    for (int j = 0; j < J; ++j) {
      const float* a = A + m * lda;
      const float* b = B + boff[j];
      float t = 0.f;
      for (long q = 0; q < L; ++q) t += a[q] * b[q];
      C[m * ldc + j] += t;
    }
}

}  // namespace packptq
