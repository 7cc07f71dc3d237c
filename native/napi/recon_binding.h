// JavaScript entry point for the reconstruction loop (native/recon): exports.ReconJob.
#pragma once
#include <napi.h>

namespace packptq {

void register_recon_bindings(Napi::Env env, Napi::Object exports);

}  // namespace packptq
