// parallel_check: the runtime's thread start (lic/parallel.hpp: start_thread) and a model
// packed in the background (lic/runtime.hpp: PendingModel) against plain runs.
//
//   parallel_check MODEL.licm IN.npy
// Exits 0 after printing one JSON line of what it saw, or 1 with a one-line error naming
// the check that failed. tests/test_runtime.py runs it (built with ASan + UBSan).
#include <sched.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/npy.hpp"
#include "lic/parallel.hpp"
#include "lic/runtime.hpp"

namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw lic::Error(what);
}

// start_thread: the thread runs, with the process's CPU mask given back before fn runs;
// with 2+ CPUs it is placed on another CPU than its creator's (counted: the scheduler may
// move either thread at any time, so tests/test_runtime.py asks for most, not all).
int start_thread_checks() {
  cpu_set_t mine;
  require(sched_getaffinity(0, sizeof mine, &mine) == 0, "sched_getaffinity failed");
  int elsewhere = 0;
  for (int k = 0; k < 20; ++k) {
    const int creator = sched_getcpu();
    int cpu = -1;
    cpu_set_t seen;
    CPU_ZERO(&seen);
    std::thread t = lic::start_thread([&] {
      cpu = sched_getcpu();
      sched_getaffinity(0, sizeof seen, &seen);
    });
    t.join();
    require(CPU_EQUAL(&seen, &mine), "start_thread: the thread kept a narrowed CPU mask");
    elsewhere += cpu != creator;
  }
  std::atomic<int> chunks{0};
  lic::parallel_for(7, 3, [&](int b, int e) { chunks += e - b; });
  require(chunks.load() == 7, "parallel_for: items lost");
  return elsewhere;
}

}  // namespace

// parallel_each: every item once; the helpers join only once helpers_may_start(), here
// after the caller alone has done 5 items (so the caller must not wait for them to
// start), and return at once when it never does and the caller takes every item; after
// items throw, the lowest item's exception, for any thread count.
void parallel_each_checks() {
  for (int threads : {1, 2, 3, 8}) {
    const std::string where = " (parallel_each, " + std::to_string(threads) + " threads)";
    std::vector<std::atomic<int>> seen(64);
    std::atomic<int> done{0}, waited{0};
    lic::parallel_each(
        64, threads,
        [&](int i) {
          seen[std::size_t(i)].fetch_add(1);
          done.fetch_add(1);
        },
        [&] {
          waited.fetch_add(1);
          return done.load() >= 5;
        });
    for (const auto& n : seen) require(n.load() == 1, "an item not done exactly once" + where);
    require(done.load() == 64, "items missing" + where);
    require(threads == 1 || waited.load() >= threads - 1, "helpers never asked" + where);
    std::atomic<int> by_caller{0};
    const std::thread::id caller = std::this_thread::get_id();
    lic::parallel_each(
        64, threads,
        [&](int) {
          if (std::this_thread::get_id() == caller) by_caller.fetch_add(1);
        },
        [] { return false; });
    require(by_caller.load() == 64, "a helper took an item it was never let take" + where);
    std::atomic<int> after{0};
    try {
      lic::parallel_each(64, threads, [&](int i) {
        if (i > 37) after.fetch_add(1);
        if (i == 37 || i == 50) throw lic::Error("item " + std::to_string(i));
      });
      require(false, "no exception" + where);
    } catch (const lic::Error& e) {
      require(std::string(e.what()) == "item 37", std::string("rethrew ") + e.what() + where);
    }
    // one thread stops at the failure (others may have taken later items meanwhile)
    if (threads == 1) require(after.load() == 0, "items handed out after a failure" + where);
  }
}

int main(int argc, char** argv) {
  try {
    if (argc != 3) throw lic::Error("usage: parallel_check MODEL.licm IN.npy");
    const int elsewhere = start_thread_checks();
    parallel_each_checks();

    // A model packed in the background (by threads - 1 threads and the first get()) or on
    // first use (1 thread) runs as the same model packed directly, bit for bit, also when
    // two threads wait for it at once.
    const std::vector<uint8_t> bytes = lic::read_file(argv[1]);
    const lic::npy::Array a = lic::npy::read(argv[2]);
    require(a.shape.size() == 3, "IN.npy must be (H, W, C)");
    lic::Tensor x(int(a.shape[0]), int(a.shape[1]), int(a.shape[2]));
    x.data = a.data;
    const lic::Tensor want = lic::Model::from_parsed(lic::parse_model(bytes.data(), bytes.size())).run(x, 2);
    for (int threads : {1, 2, 3, 8}) {  // 8: more packers than layers
      const lic::PendingModel pending =
          lic::PendingModel::start(lic::parse_model(bytes.data(), bytes.size()), threads, "parallel_check: packing");
      // Packing threads of its own only with 2+ threads; with one, the first get() packs.
      if (threads == 1)
        require(!pending.being_packed(), "PendingModel (1 thread): being packed with no packers");
      lic::Tensor got[2];
      std::thread other([&] { got[1] = pending.get().run(x, 2); });
      got[0] = pending.get().run(x, 1);
      other.join();
      require(!pending.being_packed(),
              "PendingModel (" + std::to_string(threads) + " threads): still being packed after get()");
      for (const lic::Tensor& g : got)
        require(g.data.size() == want.data.size() &&
                    std::memcmp(g.data.data(), want.data.data(), want.data.size() * sizeof(float)) == 0,
                "PendingModel (" + std::to_string(threads) + " threads): other results than the model packed directly");
    }
    const lic::PendingModel ready(lic::Model::from_parsed(lic::parse_model(bytes.data(), bytes.size())));
    require(!ready.being_packed(), "PendingModel of a packed model: being packed");
    const lic::Tensor again = ready.get().run(x, 1);
    require(std::memcmp(again.data.data(), want.data.data(), want.data.size() * sizeof(float)) == 0,
            "PendingModel of a packed model: other results");
    cpu_set_t mask;
    sched_getaffinity(0, sizeof mask, &mask);
    std::printf("{\"started_elsewhere\": %d, \"allowed_cpus\": %d}\n", elsewhere, CPU_COUNT(&mask));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "parallel_check: error: %s\n", e.what());
    return 1;
  }
}
