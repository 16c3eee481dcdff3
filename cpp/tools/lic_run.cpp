// lic-run: run a .licm model on a .npy tensor (a test and benchmark driver).
//
//   lic-run MODEL.licm IN.npy OUT.npy [--threads N] [--repeat N] [--grad GOUT.npy GIN.npy]
//   lic-run --info MODEL.licm
//
// IN.npy is float32 (H, W, C) or (1, H, W, C); OUT.npy gets the same rank. With --repeat N
// the model runs N times and the best and median times (ms) go to stderr. --grad also
// writes GIN = d<GOUT, model(IN)>/dIN (lic/gradient.hpp), GOUT shaped like OUT.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <string>
#include <vector>

#include "base/npy.hpp"
#include "lic/gradient.hpp"
#include "lic/runtime.hpp"

namespace {

const char* kUsage =
    "usage: lic-run MODEL.licm IN.npy OUT.npy [--threads N] [--repeat N]"
    " [--grad GOUT.npy GIN.npy]\n"
    "       lic-run --info MODEL.licm\n";

int parse_count(const std::string& flag, const char* text, int lo, int hi) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < lo || v > hi)
    throw lic::Error(flag + " needs an integer in " + std::to_string(lo) + ".." +
                     std::to_string(hi) + ", got '" + text + "'");
  return static_cast<int>(v);
}

int run(int argc, char** argv) {
  std::vector<std::string> pos;
  int threads = 1, repeat = 0;
  bool info = false;
  std::string grad_out, grad_in;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--info") {
      info = true;
    } else if (a == "--grad") {
      if (i + 2 >= argc) throw lic::Error("--grad needs GOUT.npy and GIN.npy");
      grad_out = argv[++i];
      grad_in = argv[++i];
    } else if (a == "--threads" || a == "--repeat") {
      if (i + 1 >= argc) throw lic::Error(a + " needs a value");
      const int v = parse_count(a, argv[++i], 1, a == "--threads" ? 256 : 100000);
      (a == "--threads" ? threads : repeat) = v;
    } else if (a.size() > 1 && a[0] == '-') {
      throw lic::Error("unknown option " + a);
    } else {
      pos.push_back(a);
    }
  }
  if (info) {
    if (pos.size() != 1) throw lic::Error("--info takes exactly one model file");
    std::fputs(lic::Model::load_file(pos[0]).summary().c_str(), stdout);
    return 0;
  }
  if (pos.size() != 3) throw lic::Error("expected MODEL.licm IN.npy OUT.npy (see --help)");
  const lic::Model model = lic::Model::load_file(pos[0]);
  lic::npy::Array arr = lic::npy::read(pos[1]);
  const std::size_t rank = arr.shape.size();
  if (!(rank == 3 || (rank == 4 && arr.shape[0] == 1)))
    throw lic::Error(pos[1] + ": expected shape (H, W, C) or (1, H, W, C)");
  lic::Tensor in;
  const long long h = arr.shape[rank - 3], w = arr.shape[rank - 2], c = arr.shape[rank - 1];
  lic::Tensor::checked_size(h, w, c);
  in.height = static_cast<int>(h);
  in.width = static_cast<int>(w);
  in.channels = static_cast<int>(c);
  in.data = std::move(arr.data);

  lic::Tensor out;
  // Wall time, and process CPU time: on a shared machine the CPU time of a one-thread run
  // is the steadier measure of the work done.
  std::vector<double> ms, cpu_ms;
  for (int r = 0; r < std::max(1, repeat); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    out = model.run(in, threads);
    const std::clock_t c1 = std::clock();
    const auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    cpu_ms.push_back(1000.0 * double(c1 - c0) / CLOCKS_PER_SEC);
  }
  if (repeat > 0) {
    std::sort(ms.begin(), ms.end());
    std::sort(cpu_ms.begin(), cpu_ms.end());
    std::fprintf(stderr,
                 "lic-run: %s %dx%d, %d thread(s), %s kernels: best %.3f ms, median %.3f ms, "
                 "best cpu %.3f ms (%d runs)\n",
                 model.name().c_str(), in.height, in.width, threads, lic::kernel_isa(), ms.front(),
                 ms[ms.size() / 2], cpu_ms.front(), repeat);
  }
  std::vector<long long> shape;
  if (rank == 4) shape.push_back(1);
  shape.insert(shape.end(), {out.height, out.width, out.channels});
  lic::npy::write(pos[2], shape, out.data);
  if (!grad_out.empty()) {
    const lic::Gradient grad = lic::Gradient::load_file(pos[0]);
    lic::Gradient::Tape tape = grad.tape();
    const lic::Tensor again = grad.forward(in, threads, tape);
    if (again.data != out.data) throw lic::Error("recorded forward pass differs from run()");
    lic::npy::Array g = lic::npy::read(grad_out);
    if (g.shape != shape) throw lic::Error(grad_out + ": expected the shape of the output");
    lic::Tensor gt;
    gt.height = out.height;
    gt.width = out.width;
    gt.channels = out.channels;
    gt.data = std::move(g.data);
    const lic::Tensor gin = grad.backward(tape, gt, threads);
    std::vector<long long> in_shape;
    if (rank == 4) in_shape.push_back(1);
    in_shape.insert(in_shape.end(), {gin.height, gin.width, gin.channels});
    lic::npy::write(grad_in, in_shape, gin.data);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "lic-run: error: out of memory\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lic-run: error: %s\n", e.what());
  }
  return 1;
}
