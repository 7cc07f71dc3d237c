// JavaScript entry points for the compute kernels themselves (tests and benchmarks): exports.kernels
// with gemm, conv2d, prepareConv, timing helpers, the FMA peak probe and ISA queries.
#pragma once
#include <napi.h>

namespace packptq {

// Adds `kernels` to the module's exports; called once from the module init in addon.cpp.
void register_kernel_bindings(Napi::Env env, Napi::Object exports);

}  // namespace packptq
