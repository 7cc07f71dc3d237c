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

// Settles a worker's promise from its completion callback. A completion can run while its
// environment shuts down (a worker_threads Worker terminated mid-call): JS cannot run then, nobody
// awaits the promise, and a C++ exception escaping the callback would end the whole process
// ("terminate called after throwing an instance of 'Napi::Error'"). So a failure to resolve becomes
// a rejection, and a failure to reject is dropped. (binding.gyp also defines
// NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS for the same reason.)
template <typename Fn>
void settle(Napi::Promise::Deferred& d, Fn&& resolve) {
  try {
    try {
      resolve();
    } catch (const Napi::Error& e) {
      d.Reject(e.Value());
    }
  } catch (const Napi::Error&) {
  }
}
inline void reject_quietly(Napi::Promise::Deferred& d, Napi::Env env, const char* code, const std::string& message) {
  try {
    d.Reject(js_error(env, code, message).Value());
  } catch (const Napi::Error&) {
  }
}

}  // namespace packptq
