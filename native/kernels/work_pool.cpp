// See work_pool.h. Generic code (no -march): only threads, atomics and a condition variable.
#include "kernels/work_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

namespace packptq {
namespace {

// Set while a thread runs items of a job: a kernel called from inside an item runs serially (the
// pool is taken, and std::mutex::try_lock by its owner would be undefined behaviour).
thread_local bool t_in_job = false;

// How long a thread spins before it blocks on the condition variable: a helper after its job, the
// caller waiting for helpers. A Program run calls the pool once per op, and at batch 1 an op takes
// 10-100 us, about what a futex wake-up and reschedule cost; blocking between ops made two threads
// slower than one (resnet20 batch 1: 681 img/s on 2 threads vs 1043 on 1). Spinning this long
// after each job keeps the helper hot across consecutive ops and costs at most 0.2 ms of one core
// when no job follows.
constexpr auto kSpin = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins until done() or kSpin has elapsed; true when done() became true.
template <typename Done>
bool spin_until(Done&& done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return done();
  }
}

struct InJob {
  InJob() { t_in_job = true; }
  ~InJob() { t_in_job = false; }
};

// Items are dealt in contiguous shards, one per thread, each with its own counter: a thread takes
// its own shard first, then helps with the others. The same op then runs the same items on the
// same thread in every call, so the buffers an op writes stay in the cache of the core that will
// read them next time (a conv's rows of output, its copy of the input): with one shared counter the
// items fell to whichever thread came first, and at batch 1 on two threads a core spent much of
// each op pulling lines the other core had just written. A helper that is late still finds its
// shard taken over by the others, so a descheduled thread delays no one.
constexpr int kMaxShards = 64;

struct alignas(64) Shard {
  std::atomic<int> next{0};
  int end = 0;
};

struct Job {
  WorkFn fn;
  void* ctx;
  int n;
  int max_helpers;
  int shards;
  Shard shard[kMaxShards];
  // Helpers still running items: changed under the pool mutex (the condition variable needs it),
  // atomic so the caller can spin on it without the mutex.
  std::atomic<int> inside{0};
  std::exception_ptr error;
};

class Pool {
 public:
  void run(int n, int threads, WorkFn fn, void* ctx) {
    if (threads <= 1 || n <= 1 || t_in_job) {
      for (int i = 0; i < n; ++i) fn(ctx, 0, i);
      return;
    }
    std::unique_lock<std::mutex> busy(run_mutex_, std::try_to_lock);
    if (!busy.owns_lock()) {  // another thread's job is running: do not queue behind it
      InJob in;
      for (int i = 0; i < n; ++i) fn(ctx, 0, i);
      return;
    }
    Job job;
    job.fn = fn;
    job.ctx = ctx;
    job.n = n;
    job.max_helpers = threads - 1;
    job.shards = std::min(std::min(threads, n), kMaxShards);
    for (int k = 0; k < job.shards; ++k) {
      job.shard[k].next.store((int)((long)n * k / job.shards), std::memory_order_relaxed);
      job.shard[k].end = (int)((long)n * (k + 1) / job.shards);
    }
    {
      std::lock_guard<std::mutex> lk(m_);
      for (; helpers_ < job.max_helpers; ++helpers_)  // the pool lives as long as the process
        std::thread([this, id = helpers_ + 1] { helper_loop(id); }).detach();
      job_ = &job;
      epoch_.store(epoch_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
    wake_.notify_all();  // no system call when every helper is spinning rather than waiting
    std::exception_ptr mine = claim(job, 0);
    std::unique_lock<std::mutex> lk(m_);
    job_ = nullptr;  // helpers that wake from now on will not touch this job
    if (job.inside.load(std::memory_order_acquire) != 0) {
      lk.unlock();
      spin_until([&] { return job.inside.load(std::memory_order_acquire) == 0; });
      lk.lock();
    }
    done_.wait(lk, [&] { return job.inside.load(std::memory_order_acquire) == 0; });
    if (mine) std::rethrow_exception(mine);
    if (job.error) std::rethrow_exception(job.error);
  }

 private:
  // Thread `tid` runs the items of its own shard, then those left in the others.
  static std::exception_ptr claim(Job& job, int tid) {
    InJob in;
    for (int k = 0; k < job.shards; ++k) {
      Shard& sh = job.shard[(tid + k) % job.shards];
      int i;
      while ((i = sh.next.fetch_add(1, std::memory_order_relaxed)) < sh.end) {
        try {
          job.fn(job.ctx, tid, i);
        } catch (...) {
          for (int j = 0; j < job.shards; ++j)  // stop handing out work
            job.shard[j].next.store(job.shard[j].end, std::memory_order_relaxed);
          return std::current_exception();
        }
      }
    }
    return nullptr;
  }

  // Helper `id` (1, 2, ...) is thread id `id` in every job it joins, so it owns the same shard each
  // time; a job that wants fewer threads leaves it out.
  void helper_loop(int id) {
    unsigned long seen = 0;
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      auto ready = [&] { return job_ != nullptr && epoch_.load(std::memory_order_relaxed) != seen; };
      if (!ready()) {
        lk.unlock();
        spin_until([&] { return epoch_.load(std::memory_order_acquire) != seen; });
        lk.lock();
        wake_.wait(lk, ready);
      }
      seen = epoch_.load(std::memory_order_relaxed);
      Job* job = job_;
      if (id > job->max_helpers) continue;
      // Thread ids are below `threads`, so per-thread scratch sized for `threads` suffices.
      const int tid = id;
      job->inside.fetch_add(1, std::memory_order_relaxed);
      lk.unlock();
      std::exception_ptr e = claim(*job, tid);
      lk.lock();
      if (e && !job->error) job->error = e;
      if (job->inside.fetch_sub(1, std::memory_order_acq_rel) == 1) done_.notify_all();
    }
  }

  std::mutex run_mutex_;  // one job at a time
  std::mutex m_;
  std::condition_variable wake_, done_;
  int helpers_ = 0;
  Job* job_ = nullptr;
  // Bumped (under m_) for every job; atomic so spinning helpers can watch it without the mutex.
  std::atomic<unsigned long> epoch_{0};
};

}  // namespace

void run_items_raw(int n, int threads, WorkFn fn, void* ctx) {
  static Pool* pool = new Pool();  // deliberately leaked: helper threads block in it until exit
  pool->run(n, threads, fn, ctx);
}

}  // namespace packptq
