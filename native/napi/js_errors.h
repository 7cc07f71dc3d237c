// Native failures become JavaScript exceptions with a `code`, for every binding: nothing a user
// feeds in may crash the process through an uncaught C++ exception. Shared by native/napi/*.cpp.
#pragma once
#include <new>
#include <stdexcept>
#include <string>

#include <napi.h>

#include "core/error.h"

namespace packptq {

// An Error whose `code` property is one of lib/errors.ts's codes (see core/error.h code_name()).
inline Napi::Error js_error(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

// Runs fn, converting packptq::Error, bad_alloc and any other std::exception into coded JS errors
// (a Napi::Error already on its way passes through unchanged).
template <typename Fn>
auto guarded(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const Error& e) {
    throw js_error(env, e.code_name(), e.what());
  } catch (const std::bad_alloc&) {
    throw js_error(env, "NATIVE", "out of memory");
  } catch (const std::exception& e) {
    throw js_error(env, "NATIVE", e.what());
  }
}

}  // namespace packptq
