// One way to run loops on several threads: the process-wide work pool (kernels/work_pool.h).
// Each call uses at most the thread count it was given, whichever thread it is called from. The
// loop is cut into a few more items than threads so a descheduled helper (these machines are
// shared) delays the caller by one small item, not by half the loop; OpenMP teams, which join on
// every member, made two threads slower than one under load (see benchmarks/results).
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/work_pool.h"

namespace packptq {

// Calls fn(begin, end) over [0, n) split into contiguous chunks, on at most `threads` threads.
template <typename Fn>
void parallel_for(int64_t n, int threads, Fn&& fn) {
  if (n <= 0) return;
  const int t = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, n)));
  if (t == 1) {
    fn(int64_t(0), n);
    return;
  }
  const int items = static_cast<int>(std::min<int64_t>(n, 4 * t));
  const int64_t chunk = (n + items - 1) / items;
  run_items(items, t, [&](int, int i) {
    const int64_t b = i * chunk, e = std::min(n, b + chunk);
    if (b < e) fn(b, e);
  });
}

}  // namespace packptq
