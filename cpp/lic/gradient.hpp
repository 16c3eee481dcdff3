// Vector-Jacobian products of a model: d<g, f(x)>/dx for an output gradient g at an input x,
// the gradient RDOQ needs to see how the synthesis transform's output moves with its input.
//
//   lic::Gradient gs = lic::Gradient::from_bytes(ptr, size);   // or load_file("g_s.licm")
//   lic::Gradient::Tape tape = gs.tape();
//   lic::Tensor x_hat = gs.forward(y_hat, threads, tape);      // = gs.model().run(y_hat)
//   lic::Tensor dy = gs.backward(tape, dx_hat, threads);       // d<dx_hat, x_hat>/dy_hat
//
// The forward pass is the model's own run() (same output bit for bit) with a tape that keeps
// what the backward pass needs: one byte per activation output (positive or not) and the
// input of each GDN. The backward pass runs the nodes in reverse with the runtime's own
// operators: the gradient of a transposed convolution is an ordinary convolution with the
// same weights, that of a convolution a transposed convolution, that of a (leaky) ReLU a
// mask (f32-vleaky-grad), that of GDN lic/ops/gdn_grad.hpp; ADD passes the gradient to both
// operands. Deterministic and the same for any thread count, like run().
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "lic/kernels/dispatch.hpp"
#include "lic/model_format.hpp"
#include "lic/ops/conv.hpp"
#include "lic/ops/conv_transpose.hpp"
#include "lic/ops/gdn_grad.hpp"
#include "lic/parallel.hpp"
#include "lic/runtime.hpp"
#include "lic/tensor.hpp"
#include "lic/workspace.hpp"

namespace lic {

class Gradient {
 public:
  static Gradient load_file(const std::string& path) {
    const std::vector<std::uint8_t> bytes = read_file(path);
    return from_bytes(bytes.data(), bytes.size());
  }

  static Gradient from_bytes(const std::uint8_t* data, std::size_t size) {
    return Gradient(parse_model(data, size), Model::from_bytes(data, size));
  }

  const Model& model() const { return model_; }

  // Where one input row (column) can move the output: input index i reaches output indices
  // scale * i + lo .. scale * i + hi at most (from the graph's geometry, whatever the data).
  struct Reach {
    double scale = 1, lo = 0, hi = 0;
    bool known = true;  // false when branches of different scales meet (not in CompressAI's g_s)
  };
  const Reach& reach_h() const { return reach_h_; }
  const Reach& reach_w() const { return reach_w_; }

  // What one forward pass leaves for the backward pass (reusable: each forward overwrites it).
  class Tape : public ValueObserver {
   public:
    void seen(int id, const Tensor& v) override {
      Record& r = values_[std::size_t(id)];
      r.height = v.height;
      r.width = v.width;
      r.channels = v.channels;
      r.seen = true;
      if (r.keep == kMask) {
        r.pos.resize(v.data.size());
        for (std::size_t i = 0; i < v.data.size(); ++i) r.pos[i] = v.data[i] > 0.0f;
      } else if (r.keep == kCopy) {
        r.copy = v;
      }
    }

   private:
    friend class Gradient;
    enum Keep { kShape = 0, kMask = 1, kCopy = 2 };
    struct Record {
      Keep keep = kShape;
      bool seen = false;
      int height = 0, width = 0, channels = 0;
      std::vector<std::uint8_t> pos;  // kMask: value > 0
      Tensor copy;                    // kCopy
    };
    std::vector<Record> values_;
  };

  Tape tape() const {
    Tape t;
    t.values_.resize(nodes_.size() + 1);
    for (std::size_t v = 0; v < keep_.size(); ++v) t.values_[v].keep = keep_[v];
    return t;
  }

  Tensor forward(const Tensor& in, int threads, Tape& tape) const {
    if (tape.values_.size() != nodes_.size() + 1) throw Error("gradient: tape of another model");
    for (Tape::Record& r : tape.values_) r.seen = false;
    return model_.run(in, threads, &tape);
  }

  // d<grad_out, model(x)>/dx at the x of the last forward pass recorded on `tape`.
  Tensor backward(const Tape& tape, const Tensor& grad_out, int threads) const {
    const std::size_t n = nodes_.size();
    if (tape.values_.size() != n + 1 || !tape.values_[n].seen)
      throw Error("gradient: backward without a forward pass on this tape");
    const Tape::Record& last = tape.values_[n];
    if (grad_out.height != last.height || grad_out.width != last.width ||
        grad_out.channels != last.channels ||
        grad_out.data.size() != Tensor::checked_size(last.height, last.width, last.channels))
      throw Error("gradient: the output gradient's shape differs from the model output");
    ThreadPool pool(threads);
    const kern::KernelTable& k = kern::kernels();
    std::vector<Tensor> grads(n + 1);
    grads[n] = grad_out;
    for (std::size_t i = n; i-- > 0;) {
      Tensor g = std::move(grads[i + 1]);
      if (g.data.empty()) continue;  // the output does not depend on this value
      const Node& nd = nodes_[i];
      const int in0 = nd.inputs[0];
      switch (nd.op) {
        case Op::kConv2d: {
          Tensor r = nd.convt->run(g, kern::kActNone, 0.0f, pool, *pool_);
          accumulate(grads[std::size_t(in0)], fit(std::move(r), tape.values_[std::size_t(in0)]));
          break;
        }
        case Op::kConvTranspose2d:
          accumulate(grads[std::size_t(in0)],
                     fit(nd.conv->run(g, kern::kActNone, 0.0f, pool, *pool_),
                         tape.values_[std::size_t(in0)]));
          break;
        case Op::kRelu:
        case Op::kLeakyRelu: {
          const Tape::Record& out = tape.values_[i + 1];
          if (out.pos.size() != g.data.size()) throw Error("gradient: tape out of step");
          k.leaky_grad(out.pos.data(), g.data.data(), g.data.data(), g.data.size(), nd.alpha);
          accumulate(grads[std::size_t(in0)], std::move(g));
          break;
        }
        case Op::kGdn: {
          const Tape::Record& x = tape.values_[std::size_t(in0)];
          accumulate(grads[std::size_t(in0)], nd.gdn->run(x.copy, g, pool, *pool_));
          break;
        }
        case Op::kAdd: {
          Tensor copy = g;
          accumulate(grads[std::size_t(in0)], std::move(copy));
          accumulate(grads[std::size_t(nd.inputs[1])], std::move(g));
          break;
        }
        default: throw Error("gradient: unsupported operator");  // refused at construction
      }
    }
    if (grads[0].data.empty()) {  // the output does not depend on the input at all
      const Tape::Record& r = tape.values_[0];
      return Tensor(r.height, r.width, r.channels);
    }
    return std::move(grads[0]);
  }

 private:
  struct Node {
    Op op = Op::kRelu;
    std::vector<int> inputs;
    float alpha = 0.0f;
    std::shared_ptr<const Conv2dOp> conv;            // gradient of CONV_TRANSPOSE2D
    std::shared_ptr<const ConvTranspose2dOp> convt;  // gradient of CONV2D
    std::shared_ptr<const GdnGradOp> gdn;
  };

  Gradient(ModelDesc d, Model m) : model_(std::move(m)) {
    reach_h_ = reach(d, true);
    reach_w_ = reach(d, false);
    keep_.assign(d.nodes.size() + 1, Tape::kShape);
    for (std::size_t i = 0; i < d.nodes.size(); ++i) {
      const NodeDesc& nd = d.nodes[i];
      Node node;
      node.op = nd.op;
      node.inputs = nd.inputs;
      std::vector<std::uint8_t> weights;  // the swapped weights, until the op has packed them
      switch (nd.op) {
        case Op::kConv2d:
          node.convt = std::make_shared<ConvTranspose2dOp>(conv_grad(nd, weights));
          break;
        case Op::kConvTranspose2d:
          node.conv = std::make_shared<Conv2dOp>(conv_transpose_grad(nd, weights));
          break;
        case Op::kRelu:
        case Op::kLeakyRelu:
          node.alpha = nd.op == Op::kLeakyRelu ? nd.alpha : 0.0f;
          // The backward pass reads the sign of the input off the output: ambiguous when the
          // slope is negative (both signs give positive outputs).
          if (node.alpha < 0.0f)
            throw Error("gradient: leaky_relu with a negative slope is not supported");
          keep_[i + 1] = Tape::kMask;
          break;
        case Op::kGdn:
          node.gdn = std::make_shared<GdnGradOp>(nd);
          keep_[std::size_t(nd.inputs[0])] = Tape::kCopy;
          break;
        case Op::kAdd: break;
        default:
          throw Error(std::string("gradient: no gradient for ") + op_name(nd.op) +
                      " (differentiate the float network)");
      }
      nodes_.push_back(std::move(node));
    }
  }

  // Reach of every value, propagated node by node: a convolution's output o reads inputs
  // o s - pad .. o s - pad + k - 1, a transposed convolution's input i writes outputs
  // i s - pad .. i s - pad + k - 1; point-wise ops keep it, ADD takes the union (operands
  // of different scales: unknown).
  static Reach reach(const ModelDesc& d, bool rows) {
    std::vector<Reach> r(d.nodes.size() + 1);
    for (std::size_t i = 0; i < d.nodes.size(); ++i) {
      const NodeDesc& n = d.nodes[i];
      Reach x = r[std::size_t(n.inputs[0])];
      const double s = rows ? n.stride_h : n.stride_w;
      const double k = rows ? n.kh : n.kw;
      const double pad = rows ? n.pad_top : n.pad_left;
      if (n.op == Op::kConv2d) {
        x = {x.scale / s, (x.lo + pad - k + 1) / s, (x.hi + pad) / s, x.known};
      } else if (n.op == Op::kConvTranspose2d) {
        x = {x.scale * s, x.lo * s - pad, x.hi * s - pad + k - 1, x.known};
      } else if (n.op == Op::kAdd) {
        const Reach& b = r[std::size_t(n.inputs[1])];
        x.known = x.known && b.known && x.scale == b.scale;
        x.lo = std::min(x.lo, b.lo);
        x.hi = std::max(x.hi, b.hi);
      }
      r[i + 1] = x;
    }
    return r.back();
  }

  // out(o) = sum_k w[k] x(o s - pad + k) has d/dx(i) = sum_k w[k] g((i + pad - k) / s): a
  // transposed convolution with the same weights, input and output channels swapped. Its
  // natural output size can be a few rows off the input's (rows the convolution never read,
  // or padding); fit() crops or zero-fills.
  static NodeDesc conv_grad(const NodeDesc& f, std::vector<std::uint8_t>& weights) {
    NodeDesc b = swapped(f, weights);
    b.op = Op::kConvTranspose2d;
    b.pad_bottom = 0;
    b.pad_right = 0;
    b.out_pad_h = 0;
    b.out_pad_w = 0;
    return b;
  }

  // out(i s - pad + k) += w[k] x(i) has d/dx(i) = sum_k w[k] g(i s - pad + k): a strided
  // convolution with the same weights; bottom/right padding so that it gives exactly the
  // transposed convolution's input size.
  static NodeDesc conv_transpose_grad(const NodeDesc& f, std::vector<std::uint8_t>& weights) {
    NodeDesc b = swapped(f, weights);
    b.op = Op::kConv2d;
    b.pad_bottom = std::max(0, f.pad_bottom - f.out_pad_h);
    b.pad_right = std::max(0, f.pad_right - f.out_pad_w);
    return b;
  }

  // Same geometry, weights w'[ci][ky][kx][co] = w[co][ky][kx][ci], no bias. The weights are
  // stored in `weights` (float32 little-endian, as in a model file) and viewed from there:
  // the op made from the node packs them at construction.
  static NodeDesc swapped(const NodeDesc& f, std::vector<std::uint8_t>& weights) {
    NodeDesc b = f;
    b.cin = f.cout;
    b.cout = f.cin;
    b.bias.assign(std::size_t(f.cin), 0.0f);
    weights.assign(f.weight.size() * 4, 0);
    const std::size_t taps = std::size_t(f.kh) * std::size_t(f.kw);
    for (int co = 0; co < f.cout; ++co)
      for (std::size_t t = 0; t < taps; ++t)
        for (int ci = 0; ci < f.cin; ++ci) {
          const float v = f.weight[(std::size_t(co) * taps + t) * std::size_t(f.cin) + std::size_t(ci)];
          std::uint32_t bits;
          std::memcpy(&bits, &v, 4);
          std::uint8_t* d =
              &weights[4 * ((std::size_t(ci) * taps + t) * std::size_t(f.cout) + std::size_t(co))];
          for (int k = 0; k < 4; ++k) d[k] = std::uint8_t(bits >> (8 * k));
        }
    b.weight = F32View(weights.data(), f.weight.size());
    return b;
  }

  // `t` cropped or zero-extended (bottom/right) to the recorded shape of a value.
  Tensor fit(Tensor t, const Tape::Record& r) const {
    if (t.height == r.height && t.width == r.width) return t;
    Tensor out(r.height, r.width, r.channels);
    const int h = std::min(t.height, r.height), w = std::min(t.width, r.width);
    for (int y = 0; y < h; ++y)
      std::copy(t.data.begin() + std::ptrdiff_t(std::size_t(y) * t.width * t.channels),
                t.data.begin() + std::ptrdiff_t((std::size_t(y) * t.width + std::size_t(w)) *
                                                t.channels),
                out.data.begin() + std::ptrdiff_t(std::size_t(y) * r.width * r.channels));
    pool_->give(std::move(t.data));
    return out;
  }

  // dst += src (dst empty: takes src).
  void accumulate(Tensor& dst, Tensor src) const {
    if (dst.data.empty()) {
      dst = std::move(src);
      return;
    }
    if (dst.data.size() != src.data.size()) throw Error("gradient: operand shapes differ");
    kern::kernels().add(dst.data.data(), src.data.data(), dst.data.data(), dst.data.size());
    pool_->give(std::move(src.data));
  }

  Model model_;
  Reach reach_h_, reach_w_;
  std::vector<Node> nodes_;
  std::vector<Tape::Keep> keep_;
  std::shared_ptr<BufferPool> pool_ = std::make_shared<BufferPool>();
};

}  // namespace lic
