// See work_pool.h. Generic code (no -march): only threads, atomics and a condition variable.
#include "kernels/work_pool.h"

#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

namespace packptq {
namespace {

// Set while a thread runs items of a job: a kernel called from inside an item runs serially (the
// pool is taken, and std::mutex::try_lock by its owner would be undefined behaviour).
thread_local bool t_in_job = false;

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
  int inside = 0;  // helpers still running items (guarded by the pool mutex)
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
      ++epoch_;
    }
    wake_.notify_all();
    std::exception_ptr mine = claim(job, 0);
    std::unique_lock<std::mutex> lk(m_);
    job_ = nullptr;  // helpers that wake from now on will not touch this job
    done_.wait(lk, [&] { return job.inside == 0; });
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
      wake_.wait(lk, [&] { return job_ != nullptr && epoch_ != seen; });
      seen = epoch_;
      Job* job = job_;
      if (job->joined >= job->max_helpers) continue;
      // Thread ids are per job (1..threads-1), so per-thread scratch sized for `threads` suffices.
      const int tid = ++job->joined;
      ++job->inside;
      lk.unlock();
      std::exception_ptr e = claim(*job, tid);
      lk.lock();
      if (e && !job->error) job->error = e;
      if (--job->inside == 0) done_.notify_all();
    }
  }

  std::mutex run_mutex_;  // one job at a time
  std::mutex m_;
  std::condition_variable wake_, done_;
  int helpers_ = 0;
  Job* job_ = nullptr;
  unsigned long epoch_ = 0;
};

}  // namespace

void run_items_raw(int n, int threads, WorkFn fn, void* ctx) {
  static Pool* pool = new Pool();  // deliberately leaked: helper threads block in it until exit
  pool->run(n, threads, fn, ctx);
}

}  // namespace packptq
