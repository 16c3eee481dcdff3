// libFuzzer target: the .licm model reader and the runtime planner (lic::Model).
//
// Each input is loaded as it is and repaired (body size and fingerprint recomputed, so
// mutations reach the node parser and the graph checks). A model that loads runs on a
// small input, unless the shapes predicted here with docs/model-format.md's formulas say
// it would be slow (the runtime would accept it, but a fuzz execution must stay fast).
// Properties: loading and running either succeed or throw lic::Error, and the output has
// the channel count the file declares and the size the formulas predict, identical for 1
// and 3 threads.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_common.hpp"
#include "lic/runtime.hpp"

namespace {

constexpr int kInH = 5, kInW = 4;
constexpr long long kMaxElements = 1 << 20;  // largest tensor of a run
constexpr long long kMaxWork = 1 << 24;      // multiply-adds of a run

struct Plan {
  bool fits = false;  // the formulas give every output a positive size
  bool cheap = true;  // small enough to run here
  long long out_h = 0, out_w = 0;
};

// Sizes of every value for a kInH x kInW input, by the format's formulas.
Plan plan(const lic::ModelDesc& m) {
  Plan p;
  std::vector<long long> hs{kInH}, ws{kInW}, cs{m.in_channels};
  long long work = 0;
  for (const lic::NodeDesc& n : m.nodes) {
    const std::size_t in = static_cast<std::size_t>(n.inputs[0]);
    long long h = hs[in], w = ws[in];
    const long long c = n.out_channels;
    if (n.op == lic::Op::kConv2d) {
      const long long sh = h + n.pad_top + n.pad_bottom - n.kh;
      const long long sw = w + n.pad_left + n.pad_right - n.kw;
      if (sh < 0 || sw < 0) return p;
      h = sh / n.stride_h + 1;
      w = sw / n.stride_w + 1;
      work += h * w * n.cout * n.cin * n.kh * n.kw;
    } else if (n.op == lic::Op::kConvTranspose2d) {
      h = (h - 1) * n.stride_h - n.pad_top - n.pad_bottom + n.kh + n.out_pad_h;
      w = (w - 1) * n.stride_w - n.pad_left - n.pad_right + n.kw + n.out_pad_w;
      if (h <= 0 || w <= 0) return p;
      work += hs[in] * ws[in] * n.cout * n.cin * n.kh * n.kw;
    } else if (n.op == lic::Op::kGdn) {
      work += h * w * c * c;
    } else if (n.op == lic::Op::kAdd) {
      const std::size_t in2 = static_cast<std::size_t>(n.inputs[1]);
      if (hs[in2] != h || ws[in2] != w) return p;  // refused by the runtime
    }
    if (h > kMaxElements || w > kMaxElements || h * w * c > kMaxElements || work > kMaxWork)
      p.cheap = false;
    if (!p.cheap) return p;
    hs.push_back(h);
    ws.push_back(w);
    cs.push_back(c);
  }
  p.fits = true;
  p.out_h = hs.back();
  p.out_w = ws.back();
  return p;
}

void attempt(const std::uint8_t* data, std::size_t size) {
  lic::ModelDesc desc;
  try {
    desc = lic::parse_model(data, size);
  } catch (const lic::Error&) {
    try {  // the runtime's loader must refuse it too
      lic::Model::from_bytes(data, size);
    } catch (const lic::Error&) {
      return;
    }
    fuzz::fail("Model::from_bytes accepted a file parse_model refused");
  }
  const Plan p = plan(desc);
  const lic::Model m = lic::Model::from_bytes(data, size);  // must load: parse_model did
  if (m.in_channels() != desc.in_channels || m.out_channels() != desc.out_channels)
    fuzz::fail("model channels differ from the file's");
  if (!p.cheap) return;
  lic::Tensor x(kInH, kInW, m.in_channels());
  for (std::size_t i = 0; i < x.data.size(); ++i) x.data[i] = 0.01f * float(i % 23) - 0.1f;
  try {
    const lic::Tensor y = m.run(x, 1);
    if (!p.fits) fuzz::fail("the runtime ran a model whose sizes do not fit");
    if (y.channels != desc.out_channels || y.height != p.out_h || y.width != p.out_w)
      fuzz::fail("output shape differs from docs/model-format.md's formulas");
    const lic::Tensor y3 = m.run(x, 3);  // the result must not depend on the thread count
    if (y3.data.size() != y.data.size() ||
        std::memcmp(y3.data.data(), y.data.data(), y.data.size() * sizeof(float)) != 0)
      fuzz::fail("3 threads give another result than 1");
  } catch (const lic::Error&) {
    if (p.fits) fuzz::fail("the runtime refused a model whose sizes fit");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  attempt(data, size);
  const fuzz::Bytes b = fuzz::repaired_24(data, size);
  attempt(b.data(), b.size());
  return 0;
}
