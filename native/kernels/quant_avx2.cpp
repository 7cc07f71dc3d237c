// AVX2 instantiation of the quantizer kernels (built with -march=x86-64-v3): 8-lane vectors.
// Reached only through quant.cpp's table lookup, which checks the CPU first.
// The |d|^p kernel works on 8 doubles (two ymm) per 8 floats; GCC warns about the AVX-512 calling
// convention for such values, but they never cross a real ABI boundary (all helpers are inlined).
#pragma GCC diagnostic ignored "-Wpsabi"
#include "kernels/quant_impl.h"

namespace packptq {

using QAvx2 = qsimd::Q<8>;
extern const QuantTable kQuantAvx2Table = {8, QAvx2::span, QAvx2::rows, QAvx2::minmax_span, QAvx2::minmax_rows,
                                           QAvx2::lp_errors,
    QAvx2::lsq_forward, QAvx2::lsq_backward, QAvx2::mix_select, QAvx2::sq_error};

}  // namespace packptq
