// JavaScript entry point for the differentiable executor (native/train): exports.GradProgram, a
// Tape in float32 or float64 driven synchronously from JS (tests, gradient checks, small tools),
// or built (GradProgram.create) and run (inputGradAsync) on worker threads, as Pack-PTQ's scoring
// does. The reconstruction loop itself runs natively and does not go through this binding per
// iteration.
#pragma once
#include <napi.h>

#include "train/tape.h"

namespace packptq {

// Adds `GradProgram` (and `gradOps`, the list of differentiable op types) to the module's exports;
// called once from the module init in addon.cpp.
void register_train_bindings(Napi::Env env, Napi::Object exports);

// Parses a program description into a TapeSpec (every field checked; throws packptq::Error with
// BAD_OPTION naming the field). Shared with the reconstruction binding.
train::TapeSpec parse_tape_desc(const Napi::Value& desc);

}  // namespace packptq
