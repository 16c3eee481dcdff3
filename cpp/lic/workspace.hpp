// BufferPool: float buffers kept for reuse, within a run (a value that died gives its
// memory to the next one) and across runs, like ONNX Runtime's arena. Fresh memory is
// expensive to first touch (page faults: 60-110 ms for 50 MB on the benchmark machine,
// more than the convolution writing it), so the runtime recycles instead of reallocating.
// Thread-safe: concurrent Model::run calls share the pool.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/pages.hpp"
#include "lic/tensor.hpp"

namespace lic {

// (A template over the element type: float buffers for the float ops, int16 ones for the
// fixed-point ops of docs/int16.md.) Buffers use the system's ordinary pages: advised into
// 2 MiB pages, the encoder of a 2048x2048 image took a median 1738 ms instead of 1429 on the
// project's VM (fresh huge pages are sometimes slow to get there), with no gain on Kodak
// images (docs/performance.md#threads).
template <class T>
class BasicBufferPool {
 public:
  // A buffer of exactly n elements. Its contents are unspecified: callers overwrite it all.
  std::vector<T> take(std::size_t n) {
    std::vector<T> v;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Best fit: the smallest kept buffer that holds n floats without reallocating.
      std::size_t best = free_.size();
      for (std::size_t i = 0; i < free_.size(); ++i)
        if (free_[i].capacity() >= n &&
            (best == free_.size() || free_[i].capacity() < free_[best].capacity()))
          best = i;
      if (best != free_.size()) {
        v = std::move(free_[best]);
        free_[best] = std::move(free_.back());
        free_.pop_back();
      }
    }
    resize_populated(v, n);  // allocates only when no kept buffer holds n
    // LIC_POISON_BUFFERS=1 (tests): every buffer handed out holds NaN (int16: -32768), so
    // that reading an element nobody wrote shows in the output.
    static const bool poison = std::getenv("LIC_POISON_BUFFERS") != nullptr;
    if (poison) std::fill(v.begin(), v.end(), poison_value());
    return v;
  }

  static T poison_value() {
    if constexpr (std::is_floating_point<T>::value)
      return std::numeric_limits<T>::quiet_NaN();
    else
      return std::numeric_limits<T>::min();
  }

  void give(std::vector<T>&& v) {
    if (v.capacity() == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(v));
    v = std::vector<T>();
  }

  // Returns all kept memory to the system.
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    free_.clear();
  }

  std::size_t kept_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t total = 0;
    for (const auto& v : free_) total += v.capacity() * sizeof(T);
    return total;
  }

 private:
  std::mutex mu_;
  std::vector<std::vector<T>> free_;
};

using BufferPool = BasicBufferPool<float>;
using S16BufferPool = BasicBufferPool<std::int16_t>;

// A tensor whose storage comes from `pool` (contents unspecified).
inline Tensor pooled_tensor(BufferPool& pool, int h, int w, int c) {
  Tensor t;
  const std::size_t n = Tensor::checked_size(h, w, c);
  t.height = h;
  t.width = w;
  t.channels = c;
  t.data = pool.take(n);
  return t;
}

// An int16 tensor at `shift` whose storage comes from `pool` (contents unspecified).
inline QTensor pooled_qtensor(S16BufferPool& pool, int h, int w, int c, int shift) {
  QTensor t;
  const std::size_t n = Tensor::checked_size(h, w, c);
  t.height = h;
  t.width = w;
  t.channels = c;
  t.shift = shift;
  t.data = pool.take(n);
  return t;
}

}  // namespace lic
