// The AVX-512 kernels' logic on an AVX2 machine (test-only variant "avx512-logic"): the same
// templates instantiated with the AVX-512 configuration (16 lanes, 14x32 tile, same KC/MC/NC) but
// compiled with -march=x86-64-v3, where GCC lowers each 16-lane vector to two ymm. Slow (the tile
// spills), but it runs the exact blocking, packing and tail handling of gemm_avx512.cpp, so the
// tests cover that code on CPUs without AVX-512.
// 16-lane vectors passed by value between the (internal, inlined) helpers make GCC warn about
// the AVX-512 calling convention; no such value crosses a real ABI boundary here.
#pragma GCC diagnostic ignored "-Wpsabi"
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
namespace {
using Cfg = simd::Avx512Gemm;
using ConvCfg = simd::Avx512Conv;

void sgemm_logic(bool transA, bool transB, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
                 float* C, int ldc, bool accumulate, int threads) {
  simd::GemmDriver<Cfg>::run(transA, transB, M, N, K, A, lda, nullptr, B, ldb, C, ldc, accumulate, threads);
}

void sgemm_packed_a_logic(int M, int N, int K, const float* Ap, bool transB, const float* B, int ldb, float* C,
                          int ldc, bool accumulate, int threads) {
  simd::GemmDriver<Cfg>::run(false, transB, M, N, K, nullptr, 0, Ap, B, ldb, C, ldc, accumulate, threads);
}
}  // namespace

// No peak probe: a throughput number for split 16-lane vectors would describe nothing real.
extern const KernelTable kAvx512LogicTable = {
    sgemm_logic,
    simd::packed_a_floats<Cfg>,
    simd::pack_a_full<Cfg>,
    sgemm_packed_a_logic,
    simd::dw_scratch_floats<Cfg::W>,
    simd::dw_plane<Cfg::W>,
    nullptr,
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
