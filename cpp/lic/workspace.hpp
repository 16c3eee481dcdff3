// BufferPool: float buffers kept for reuse, within a run (a value that died gives its
// memory to the next one) and across runs, like ONNX Runtime's arena. Fresh memory is
// expensive to first touch (page faults: 60-110 ms for 50 MB on the benchmark machine,
// more than the convolution writing it), so the runtime recycles instead of reallocating.
// Thread-safe: concurrent Model::run calls share the pool.
#pragma once

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <utility>
#include <vector>

#include "lic/tensor.hpp"

namespace lic {

class BufferPool {
 public:
  // A buffer of exactly n floats. Its contents are unspecified: callers overwrite it all.
  std::vector<float> take(std::size_t n) {
    std::vector<float> v;
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
    v.resize(n);  // within capacity: no allocation
    return v;
  }

  void give(std::vector<float>&& v) {
    if (v.capacity() == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(v));
    v = std::vector<float>();
  }

  // Returns all kept memory to the system.
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    free_.clear();
  }

  std::size_t kept_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t total = 0;
    for (const auto& v : free_) total += v.capacity() * sizeof(float);
    return total;
  }

 private:
  std::mutex mu_;
  std::vector<std::vector<float>> free_;
};

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

}  // namespace lic
