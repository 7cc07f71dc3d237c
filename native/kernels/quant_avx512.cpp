// AVX-512 instantiation of the quantizer kernels (built with -march=x86-64-v4): 16-lane vectors.
// Reached only through quant.cpp's table lookup, which checks the CPU first.
#include "kernels/quant_impl.h"

namespace packptq {

using QAvx512 = qsimd::Q<16>;
extern const QuantTable kQuantAvx512Table = {16, QAvx512::span, QAvx512::rows, QAvx512::minmax_span,
                                             QAvx512::minmax_rows, QAvx512::lp_errors,
    QAvx512::lsq_forward, QAvx512::lsq_backward, QAvx512::mix_select, QAvx512::sq_error};

}  // namespace packptq
