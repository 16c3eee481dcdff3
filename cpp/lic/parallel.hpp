// Threads. Work is always split into contiguous chunks of a fixed item order, and every
// item (an output row, or a row and a 16-channel panel) is computed by the same code in the
// same order whatever the thread count: results do not depend on `threads`.
//
//   parallel_for(n, threads, fn)   one std::thread per chunk, for one-off loops
//   parallel_each(n, threads, fn)  items handed out one at a time, for uneven items
//   ThreadPool pool(threads);      persistent workers, for the many small loops of a
//   pool.parallel_for(n, fn);      streamed run (starting a thread costs ~20-50 us)
//   start_thread(fn)               a thread started on another CPU (both use it)
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

namespace lic {

// A hint to the CPU that this is a spin-wait loop.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Chunk i of t over [0, n): [n*i/t, n*(i+1)/t).
inline void chunk_bounds(int n, int t, int i, int& begin, int& end) {
  begin = static_cast<int>(static_cast<long long>(n) * i / t);
  end = static_cast<int>(static_cast<long long>(n) * (i + 1) / t);
}

// A new thread running fn, started on a CPU other than the caller's where there is one.
// Linux queues a new thread on its creator's CPU, and on the benchmark VM it waited there
// for the creator's next pause (spawn to first instruction: median 1.0 ms with the other
// CPU idle, 0.07 ms when placed on the other CPU; docs/performance.md, "Earlier run: PNG
// writer, loading and thread start"): a thread started for a 1 ms loop then ran after the
// loop's first half instead of beside it. The thread is placed by its CPU mask, then
// widens the mask back before it runs fn.
template <class F>
std::thread start_thread(F&& fn) {
#if defined(__linux__)
  cpu_set_t all;
  const int me = sched_getcpu();
  if (me >= 0 && sched_getaffinity(0, sizeof all, &all) == 0 && CPU_COUNT(&all) > 1 && CPU_ISSET(me, &all)) {
    cpu_set_t others = all;
    CPU_CLR(me, &others);
    auto placed = std::make_shared<std::atomic<bool>>(false);
    std::thread t([fn = std::forward<F>(fn), all, placed]() mutable {
      // The creator narrows the mask first (yielding: it may be waiting for this CPU).
      while (!placed->load(std::memory_order_acquire)) std::this_thread::yield();
      sched_setaffinity(0, sizeof all, &all);
      fn();
    });
    pthread_setaffinity_np(t.native_handle(), sizeof others, &others);
    placed->store(true, std::memory_order_release);
    return t;
  }
#endif
  return std::thread(std::forward<F>(fn));
}

template <class F>
void parallel_for(int n, int threads, F&& fn) {
  const int t = std::max(1, std::min(threads, n));
  if (t <= 1) {
    if (n > 0) fn(0, n);
    return;
  }
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(t));
  auto chunk = [&](int i) {
    int begin = 0, end = 0;
    chunk_bounds(n, t, i, begin, end);
    try {
      fn(begin, end);
    } catch (...) {
      errors[static_cast<std::size_t>(i)] = std::current_exception();
    }
  };
  pool.reserve(static_cast<std::size_t>(t - 1));
  for (int i = 1; i < t; ++i) pool.push_back(start_thread([&chunk, i] { chunk(i); }));
  chunk(0);
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// fn(i) for every i in [0, n), items handed out one at a time in order to `threads`
// threads (for uneven items, such as packing the weights of a network's layers: put the
// largest first). The caller starts at once; the other threads start taking items once
// helpers_may_start() (polled every 100 us) says that what holds their cores is done, as
// the decoder's sub-streams wait for g_s to be packed on the other cores, or stop when no
// item is left to take. Once an item throws, no further item is handed out, and the
// lowest item's exception is rethrown: items are handed out in order, so that is the one
// a single thread would have thrown.
template <class F, class P>
void parallel_each(int n, int threads, F&& fn, P&& helpers_may_start) {
  if (n <= 0) return;
  const int t = std::max(1, std::min(threads, n));
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(n));
  parallel_for(t, t, [&](int thread, int) {
    if (thread > 0)
      while (!helpers_may_start()) {
        if (next.load(std::memory_order_relaxed) >= n || failed.load(std::memory_order_relaxed))
          return;
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    while (!failed.load(std::memory_order_relaxed)) {
      const int i = next.fetch_add(1);
      if (i >= n) break;
      try {
        fn(i);
      } catch (...) {
        errors[static_cast<std::size_t>(i)] = std::current_exception();
        failed.store(true, std::memory_order_relaxed);
      }
    }
  });
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

template <class F>
void parallel_each(int n, int threads, F&& fn) {
  parallel_each(n, threads, std::forward<F>(fn), [] { return true; });
}

// `threads - 1` workers; the calling thread takes chunk 0 of every job. Between jobs a
// worker spins for a short while (kSpinMicros) before it sleeps, and so does the caller
// waiting for the workers: a streamed run hands out a job every 0.1-1 ms, and a thread
// that sleeps lets other processes onto its core (and into its cache) and costs a wake-up
// on the next job (on the benchmark VM 2-4 ms one time in ten, after 5 ms asleep; 2 ms of
// spinning took 7 ms off a two-thread encode, docs/performance.md). One job at a time
// (parallel_for is not re-entrant).
class ThreadPool {
 public:
  static constexpr int kSpinMicros = 2000;

  explicit ThreadPool(int threads)
      : size_(std::max(1, threads)),
        spin_(static_cast<unsigned>(size_) <= std::max(1u, std::thread::hardware_concurrency())) {
    errors_.resize(static_cast<std::size_t>(size_));
    for (int i = 1; i < size_; ++i) workers_.push_back(start_thread([this, i] { work(i); }));
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }

  int size() const { return size_; }

  // fn(begin, end) over contiguous chunks of [0, n); rethrows a worker's exception.
  template <class F>
  void parallel_for(int n, F&& fn) {
    const int t = std::max(1, std::min(size_, n));
    if (t <= 1) {
      if (n > 0) fn(0, n);
      return;
    }
    std::function<void(int)> job = [&](int i) {
      int begin = 0, end = 0;
      chunk_bounds(n, t, i, begin, end);
      if (begin < end) fn(begin, end);
    };
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &job;
      active_ = t;
      pending_.store(t - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    try {
      job(0);
    } catch (...) {
      errors_[0] = std::current_exception();
    }
    spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; });
    {
      std::unique_lock<std::mutex> lock(mu_);
      done_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
      job_ = nullptr;
    }
    for (auto& e : errors_)
      if (e) {
        std::exception_ptr first = e;
        for (auto& x : errors_) x = nullptr;
        std::rethrow_exception(first);
      }
  }

 private:
  // Spins (yielding the core to any other runnable thread between checks) until done()
  // or kSpinMicros have passed. Not at all when the pool has more threads than the
  // machine has cores: a spinning thread would then hold a core another one needs.
  template <class Done>
  void spin_until(Done done) const {
    if (!spin_) return;
    const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
    while (!done()) {
      for (int i = 0; i < 8 && !done(); ++i) cpu_relax();
      std::this_thread::yield();
      if (std::chrono::steady_clock::now() >= end) return;
    }
  }

  void work(int index) {
    std::uint64_t seen = 0;
    for (;;) {
      spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
      const std::function<void(int)>* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        if (stop_) return;
        seen = generation_.load(std::memory_order_relaxed);
        if (index >= active_) continue;  // this job has fewer chunks than workers
        job = job_;
      }
      try {
        (*job)(index);
      } catch (...) {
        errors_[static_cast<std::size_t>(index)] = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) done_.notify_one();
      }
    }
  }

  int size_;
  bool spin_;
  std::vector<std::thread> workers_;
  std::vector<std::exception_ptr> errors_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  int active_ = 0;
  bool stop_ = false;
};

}  // namespace lic
