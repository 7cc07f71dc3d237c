// AVX-512 instantiation of the SIMD kernels (built with -march=x86-64-v4): 16-lane vectors, the 14x32
// GEMM tile, and this variant's function table. Reached only through kernel_table(), which checks
// the CPU first.
#include "kernels/conv_act_impl.h"
#include "kernels/conv_gemm_impl.h"
#include "kernels/conv_impl.h"
#include "kernels/conv_lanes_impl.h"
#include "kernels/dot_windows_impl.h"
#include "kernels/dw_chan_impl.h"
#include "kernels/dw_rows_impl.h"
#include "kernels/gemm_impl.h"
#include "kernels/variants.h"

namespace packptq {

double peak_gflops_avx512(int threads, double seconds);  // peak_avx512.cpp

namespace {
using Cfg = simd::Avx512Gemm;
using ConvCfg = simd::Avx512Conv;

void sgemm_avx512(bool transA, bool transB, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
                float* C, int ldc, bool accumulate, int threads) {
  simd::GemmDriver<Cfg>::run(transA, transB, M, N, K, A, lda, nullptr, B, ldb, C, ldc, accumulate, threads);
}

void sgemm_packed_a_avx512(int M, int N, int K, const float* Ap, bool transB, const float* B, int ldb, float* C, int ldc,
                         bool accumulate, int threads) {
  simd::GemmDriver<Cfg>::run(false, transB, M, N, K, nullptr, 0, Ap, B, ldb, C, ldc, accumulate, threads);
}
}  // namespace

extern const KernelTable kAvx512Table = {
    sgemm_avx512,
    simd::packed_a_floats<Cfg>,
    simd::pack_a_full<Cfg>,
    sgemm_packed_a_avx512,
    simd::dw_scratch_floats<Cfg::W>,
    simd::dw_plane<Cfg::W>,
    peak_gflops_avx512,
    Cfg::W,
    ConvCfg::MR,
    ConvCfg::NR,
    simd::cgemm_work_floats<ConvCfg>,
    simd::cgemm_item<ConvCfg>,
    simd::dw2_plane<Cfg::W>,
    simd::gelu_erf<Cfg::W>,
    simd::softmax_rows<Cfg::W>,
    simd::gelu_erf_grad<Cfg::W>,
    simd::rect_sigmoid<Cfg::W>,
    simd::dwc_group<Cfg::W>,
    simd::add_act<Cfg::W>,
    simd::Avx512Dot::run,
    simd::max_pool_2x2<Cfg::W>,
    simd::layer_norm_rows<Cfg::W>,
    simd::lanes_item<Cfg::W>,
    simd::lanes_rows<Cfg::W>,
    simd::dw_rows_planes<Cfg::W>,
};

}  // namespace packptq
