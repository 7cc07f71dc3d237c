// One way to run loops on several threads: OpenMP teams of an explicit size, so each Program
// (and each kernel call from a benchmark) uses exactly the thread count it was given, whichever
// thread it is called from.
#pragma once
#include <algorithm>
#include <cstdint>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace packptq {

// Calls fn(begin, end) over [0, n) split into at most `threads` contiguous chunks.
template <typename Fn>
void parallel_for(int64_t n, int threads, Fn&& fn) {
  if (n <= 0) return;
  const int t = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, n)));
  if (t == 1) {
    fn(int64_t(0), n);
    return;
  }
#pragma omp parallel num_threads(t)
  {
#ifdef _OPENMP
    const int id = omp_get_thread_num();
#else
    const int id = 0;
#endif
    const int64_t chunk = (n + t - 1) / t;
    const int64_t b = id * chunk, e = std::min(n, b + chunk);
    if (b < e) fn(b, e);
  }
}

}  // namespace packptq
