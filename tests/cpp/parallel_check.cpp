// parallel_check: the runtime's thread helpers (lic/parallel.hpp: SharedLoop, start_thread)
// and a model packed in the background (lic/runtime.hpp: PendingModel) against plain runs.
//
//   parallel_check MODEL.licm IN.npy
// Exits 0 after printing one JSON line of what it saw, or 1 with a one-line error naming
// the check that failed. tests/test_runtime.py runs it (built with ASan + UBSan).
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
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

void pause_us(int us) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  while (std::chrono::steady_clock::now() < end) lic::cpu_relax();
}

// Every item runs exactly once, helpers that join take some of them, and for_each returns
// only when the helpers' items are done too.
int shared_loop_items(int* helped) {
  constexpr int kItems = 60;
  lic::SharedLoop loop;
  std::vector<std::atomic<int>> runs(kItems);
  std::atomic<int> by_owner{0}, by_helpers{0}, complete_at_return{0};
  std::atomic<bool> started{false}, done{false};
  std::thread owner([&] {
    const std::thread::id me = std::this_thread::get_id();
    started = true;
    loop.for_each(kItems, [&](int i) {
      runs[static_cast<size_t>(i)].fetch_add(1);
      (std::this_thread::get_id() == me ? by_owner : by_helpers).fetch_add(1);
      pause_us(500);
    });
    for (const auto& r : runs) complete_at_return += r.load() == 1;
    done = true;
  });
  while (!started.load()) std::this_thread::yield();
  std::vector<std::thread> helpers;
  for (int h = 0; h < 2; ++h)
    helpers.emplace_back([&] {
      while (!done.load()) {
        loop.help();
        std::this_thread::yield();
      }
    });
  owner.join();
  for (auto& t : helpers) t.join();
  for (const auto& r : runs) require(r.load() == 1, "SharedLoop: an item ran " + std::to_string(r.load()) + " times");
  require(complete_at_return.load() == kItems, "SharedLoop: for_each returned before every item was done");
  require(by_helpers.load() > 0, "SharedLoop: help() took no item of a 30 ms loop");
  *helped = by_helpers.load();
  return by_owner.load() + by_helpers.load();
}

// An item's exception comes out of for_each once every item is done; the loop is then
// usable again.
void shared_loop_error() {
  lic::SharedLoop loop;
  std::atomic<int> ran{0};
  bool threw = false;
  try {
    loop.for_each(20, [&](int i) {
      ran.fetch_add(1);
      if (i == 7) throw lic::Error("item 7");
    });
  } catch (const lic::Error& e) {
    threw = std::string(e.what()) == "item 7";
  }
  require(threw, "SharedLoop: an item's exception was not rethrown");
  require(ran.load() == 20, "SharedLoop: items after a failing one did not run");
  ran = 0;
  loop.for_each(5, [&](int) { ran.fetch_add(1); });
  require(ran.load() == 5, "SharedLoop: not reusable after an error");
  loop.help();  // no loop running: returns at once
}

// start_thread: the thread runs, with the process's CPU mask given back before fn runs;
// with 2+ CPUs it is placed on another CPU than its creator's (counted, not required:
// the scheduler may move either thread at any time).
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

int main(int argc, char** argv) {
  try {
    if (argc != 3) throw lic::Error("usage: parallel_check MODEL.licm IN.npy");
    int helped = 0;
    const int items = shared_loop_items(&helped);
    shared_loop_error();
    const int elsewhere = start_thread_checks();

    // A model packed in the background (2 threads) or on first use (1 thread) runs as the
    // same model packed directly, bit for bit, also when two threads wait for it at once.
    const std::vector<uint8_t> bytes = lic::read_file(argv[1]);
    const lic::npy::Array a = lic::npy::read(argv[2]);
    require(a.shape.size() == 3, "IN.npy must be (H, W, C)");
    lic::Tensor x(int(a.shape[0]), int(a.shape[1]), int(a.shape[2]));
    x.data = a.data;
    const lic::Tensor want = lic::Model::from_parsed(lic::parse_model(bytes.data(), bytes.size())).run(x, 2);
    for (int threads : {1, 2, 3}) {
      const lic::PendingModel pending =
          lic::PendingModel::start(lic::parse_model(bytes.data(), bytes.size()), threads, "parallel_check: packing");
      lic::Tensor got[2];
      std::thread other([&] { got[1] = pending.get().run(x, 2); });
      got[0] = pending.get().run(x, 1);
      other.join();
      for (const lic::Tensor& g : got)
        require(g.data.size() == want.data.size() &&
                    std::memcmp(g.data.data(), want.data.data(), want.data.size() * sizeof(float)) == 0,
                "PendingModel (" + std::to_string(threads) + " threads): other results than the model packed directly");
    }
    const lic::PendingModel ready(lic::Model::from_parsed(lic::parse_model(bytes.data(), bytes.size())));
    const lic::Tensor again = ready.get().run(x, 1);
    require(std::memcmp(again.data.data(), want.data.data(), want.data.size() * sizeof(float)) == 0,
            "PendingModel of a packed model: other results");
    std::printf("{\"items\": %d, \"helped\": %d, \"started_elsewhere\": %d, \"cpus\": %u}\n", items, helped,
                elsewhere, std::thread::hardware_concurrency());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "parallel_check: error: %s\n", e.what());
    return 1;
  }
}
