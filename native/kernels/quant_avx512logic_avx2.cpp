// The AVX-512 quantizer kernels' logic on an AVX2 machine (test-only variant "avx512-logic"): the
// 16-lane instantiation of quant_impl.h compiled with -march=x86-64-v3, where GCC splits each
// vector into two ymm. Same lane count, tails and padding as quant_avx512.cpp, so the tests cover
// that code on CPUs without AVX-512.
// 16-lane vectors passed by value between the (internal, inlined) helpers make GCC warn about
// the AVX-512 calling convention; no such value crosses a real ABI boundary here.
#pragma GCC diagnostic ignored "-Wpsabi"
#include "kernels/quant_impl.h"

namespace packptq {

using QLogic = qsimd::Q<16>;
extern const QuantTable kQuantAvx512LogicTable = {16, QLogic::span, QLogic::rows, QLogic::minmax_span,
                                                  QLogic::minmax_rows, QLogic::lp_errors,
    QLogic::lsq_forward, QLogic::lsq_backward, QLogic::mix_select, QLogic::sq_error};

}  // namespace packptq
