// See work_pool.h. Generic code (no -march): only threads, atomics and a condition variable.
#include "kernels/work_pool.h"

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

struct Job {
  WorkFn fn;
  void* ctx;
  int n;
  int max_helpers;
  std::atomic<int> next{0};
  int joined = 0;  // helpers that entered (guarded by the pool mutex)
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
    {
      std::lock_guard<std::mutex> lk(m_);
      for (; helpers_ < job.max_helpers; ++helpers_)
        std::thread([this] { helper_loop(); }).detach();  // the pool lives as long as the process
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
  static std::exception_ptr claim(Job& job, int tid) {
    InJob in;
    int i;
    while ((i = job.next.fetch_add(1, std::memory_order_relaxed)) < job.n) {
      try {
        job.fn(job.ctx, tid, i);
      } catch (...) {
        job.next.store(job.n, std::memory_order_relaxed);  // stop handing out work
        return std::current_exception();
      }
    }
    return nullptr;
  }

  void helper_loop() {
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
      if (job->joined >= job->max_helpers) continue;
      // Thread ids are per job (1..threads-1), so per-thread scratch sized for `threads` suffices.
      const int tid = ++job->joined;
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
