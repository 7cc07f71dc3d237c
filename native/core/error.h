// Failures inside native code are thrown as packptq::Error carrying a stable code; the napi layer
// is the only place that catches them and turns them into the matching JavaScript error class.
#pragma once
#include <stdexcept>
#include <string>

namespace packptq {

enum class ErrorCode { Native, UnsupportedOp, ShapeMismatch, BadOption, BadData, Aborted };

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }
  const char* code_name() const;

 private:
  ErrorCode code_;
};

[[noreturn]] inline void fail(ErrorCode code, const std::string& message) { throw Error(code, message); }

inline const char* Error::code_name() const {
  switch (code_) {
    case ErrorCode::UnsupportedOp: return "UNSUPPORTED_OP";
    case ErrorCode::ShapeMismatch: return "SHAPE_MISMATCH";
    case ErrorCode::BadOption: return "BAD_OPTION";
    case ErrorCode::BadData: return "BAD_DATA";
    case ErrorCode::Aborted: return "ABORT_ERR";
    default: return "NATIVE";
  }
}

}  // namespace packptq
