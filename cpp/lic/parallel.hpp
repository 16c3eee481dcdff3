// parallel_for: split [0, n) into contiguous chunks, one std::thread each.
// Work is split by output rows only, so every output value is computed by the same code in
// the same order whatever the thread count: results do not depend on `threads`.
#pragma once

#include <algorithm>
#include <exception>
#include <thread>
#include <vector>

namespace lic {

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
    const int begin = static_cast<int>(static_cast<long long>(n) * i / t);
    const int end = static_cast<int>(static_cast<long long>(n) * (i + 1) / t);
    try {
      fn(begin, end);
    } catch (...) {
      errors[static_cast<std::size_t>(i)] = std::current_exception();
    }
  };
  pool.reserve(static_cast<std::size_t>(t - 1));
  for (int i = 1; i < t; ++i) pool.emplace_back(chunk, i);
  chunk(0);
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace lic
