#include "isa.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "error.h"

namespace packptq {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    default: return "scalar";
  }
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  }
  return false;
}

bool parse_isa(const char* name, Isa* out) {
  if (std::strcmp(name, "scalar") == 0) { *out = Isa::Scalar; return true; }
  if (std::strcmp(name, "avx2") == 0) { *out = Isa::Avx2; return true; }
  if (std::strcmp(name, "avx512") == 0) { *out = Isa::Avx512; return true; }
  return false;
}

Isa default_isa() {
  const char* forced = std::getenv("PACKPTQ_SIMD");
  if (forced != nullptr && *forced != '\0') {
    Isa isa;
    if (!parse_isa(forced, &isa))
      fail(ErrorCode::BadOption, std::string("Expected scalar, avx2 or avx512 for PACKPTQ_SIMD but received \"") +
                                     forced + "\"");
    if (!isa_supported(isa))
      fail(ErrorCode::BadOption, std::string("PACKPTQ_SIMD=") + forced + " but this CPU does not support " + forced);
    return isa;
  }
  if (isa_supported(Isa::Avx512)) return Isa::Avx512;
  if (isa_supported(Isa::Avx2)) return Isa::Avx2;
  return Isa::Scalar;
}

}  // namespace packptq
