// Which instruction set the kernels run on. Detected once at load (cpuid through
// __builtin_cpu_supports); PACKPTQ_SIMD=scalar|avx2|avx512 forces a path so tests can compare every
// variant on one machine. Forcing a path the CPU lacks is an error, not a silent fallback.
#pragma once

namespace packptq {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

const char* isa_name(Isa isa);
bool isa_supported(Isa isa);
// Best supported ISA, or the one PACKPTQ_SIMD names (throws Error if unknown or unsupported).
Isa default_isa();
// Parse "scalar" | "avx2" | "avx512"; returns false when the name is unknown.
bool parse_isa(const char* name, Isa* out);

}  // namespace packptq
