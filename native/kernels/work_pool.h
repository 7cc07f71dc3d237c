// Work sharing for the kernels that tolerates a busy machine. The caller and up to threads-1
// helper threads claim items from per-thread shards (each thread its own contiguous range first,
// then what is left of the others', see work_pool.cpp); the caller waits only for items that were
// actually claimed. A helper the OS has not scheduled yet simply finds no work when it wakes, instead
// of making the call wait a whole time slice for it, as an OpenMP team join does (measured here:
// a 0.24 ms conv took 4 ms at the median with 2 OpenMP threads while other processes ran).
//
// Between calls a helper spins for 0.2 ms (a Program calls the pool once per op, and a futex wake-up
// costs about as much as a batch-1 op), then sleeps on a condition variable, so an idle pool takes
// no CPU from other processes. Concurrent or nested callers do not queue: if the pool is busy the
// call runs its items on the calling thread alone, which gives the same results (every kernel's
// output is independent of how its items are spread over threads).
#pragma once
#include <type_traits>

namespace packptq {

using WorkFn = void (*)(void* ctx, int tid, int item);

// Runs fn(ctx, tid, item) for item in [0, n), tid in [0, threads) identifying the thread (for
// per-thread scratch). Exceptions thrown by fn are rethrown on the calling thread (the first one).
void run_items_raw(int n, int threads, WorkFn fn, void* ctx);

namespace {
// Adapter for lambdas; in an unnamed namespace so each ISA object keeps its own instantiations.
template <typename F>
void run_items(int n, int threads, F&& f) {
  using Fn = typename std::remove_reference<F>::type;
  run_items_raw(n, threads, [](void* c, int tid, int item) { (*static_cast<Fn*>(c))(tid, item); },
            const_cast<void*>(static_cast<const void*>(&f)));
}
}  // namespace

}  // namespace packptq
