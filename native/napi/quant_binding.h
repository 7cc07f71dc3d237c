// JavaScript entry points for the quantizer kernels and calibration numerics: exports.quant with
// fakeQuant, fakeQuantMask, quantize, minMax, params, mseSearch, MseStream, Histogram, percentile,
// grid, variants and timeFakeQuant (see quant_binding.cpp for the exact shapes).
#pragma once
#include <napi.h>

namespace packptq {

// Adds `quant` to the module's exports; called once from the module init in addon.cpp.
void register_quant_bindings(Napi::Env env, Napi::Object exports);

}  // namespace packptq
