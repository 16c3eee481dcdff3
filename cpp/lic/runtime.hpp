// lic2cpp's C++ inference runtime: the public API.
//
//   lic::Model m = lic::Model::load_file("g_s.licm");    // or Model::from_bytes(ptr, size)
//   lic::Tensor y = m.run(x, /*threads=*/1);              // float32 HWC, batch 1
//
// A Model is immutable after loading (weights are packed once), so run() may be called
// from several threads at once. All errors are lic::Error (a std::runtime_error).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <thread>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/profile.hpp"
#include "lic/kernels/dispatch.hpp"
#include "lic/model_format.hpp"
#include "lic/ops/activation.hpp"
#include "lic/ops/conv.hpp"
#include "lic/ops/conv_transpose.hpp"
#include "lic/ops/eltwise.hpp"
#include "lic/ops/gdn.hpp"
#include "lic/ops/s16_conv.hpp"
#include "lic/ops/s16_eltwise.hpp"
#include "lic/parallel.hpp"
#include "lic/stream.hpp"
#include "lic/tensor.hpp"
#include "lic/workspace.hpp"

namespace lic {

// Sees the values a run computes (lic/gradient.hpp records what its backward pass needs).
class ValueObserver {
 public:
  virtual ~ValueObserver() = default;
  // Value `id` (0: the model input, i + 1: the output of node i) was just computed. A value
  // a fused activation overwrote (a convolution's raw output) is never seen.
  virtual void seen(int id, const Tensor& value) = 0;
};

// Name of the kernel set in use ("avx2+fma" or "scalar").
inline const char* kernel_isa() { return kern::kernels().isa; }

class Model {
 public:
  static Model load_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error("cannot open model file " + path);
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)),
                                    std::istreambuf_iterator<char>());
    if (f.bad()) throw Error("cannot read model file " + path);
    return from_bytes(bytes.data(), bytes.size());
  }

  static Model from_bytes(const std::uint8_t* data, std::size_t size) {
    return Model(parse_model(data, size));
  }

  // A model compiled into the program (lic2cpp.codegen): as from_bytes, except that the
  // body's hash is not recomputed -- the build checked it, and hashing megabytes byte by
  // byte was half of a program's start-up (docs/performance.md). Every other check runs.
  static Model from_embedded(const std::uint8_t* data, std::size_t size, int threads = 1) {
    return from_parsed(parse_model(data, size, /*verify_hash=*/false), threads);
  }

  // A model from its parsed description (for callers that need the description too,
  // such as the codec's tiling geometry: the bytes are parsed once). `threads` pack the
  // layers' weights in parallel.
  static Model from_parsed(ModelDesc d, int threads = 1) { return Model(std::move(d), threads); }

  std::uint64_t fingerprint() const { return fingerprint_; }
  const std::string& name() const { return name_; }
  int in_channels() const { return in_channels_; }
  int out_channels() const { return out_channels_; }
  std::size_t num_nodes() const { return steps_.size(); }
  std::size_t num_parameters() const { return parameters_; }

  // Output (height, width) for an input of h x w; throws lic::Error if the input does not
  // fit the network (too small for a kernel, or absurdly large).
  void output_size(int h, int w, int& oh, int& ow) const {
    std::vector<int> hs, ws;
    shapes(h, w, hs, ws);
    oh = hs.back();
    ow = ws.back();
  }

  Tensor run(const Tensor& in, int threads = 1) const { return run(in, threads, nullptr); }

  // The same, telling `observer` about every float value as it is computed (same results;
  // an observed run is a whole-tensor one, so every value exists to be seen).
  Tensor run(const Tensor& in, int threads, ValueObserver* observer) const {
    std::vector<int> hs, ws;
    check_input(in, hs, ws);
    ThreadPool pool(threads);
    if (streamed() && observer == nullptr) {
      Tensor out = pooled_tensor(*pool_, hs.back(), ws.back(), out_channels_);
      const std::size_t row = std::size_t(in.width) * std::size_t(in.channels);
      const RowSource source = [&](int r0, int r1, const RowOut& dst) {
        for (int r = r0; r < r1; ++r)
          std::memcpy(dst.row(r), in.data.data() + std::size_t(r) * row, row * sizeof(float));
      };
      stream(hs, ws, pool).run(source, &out, nullptr);
      return out;
    }
    Values v = execute(in, pool, false, observer);
    return std::move(v.f.back());
  }

  // Whether the model ends with DEQUANTIZE (an int16 network, docs/int16.md).
  bool int16_output() const { return !steps_.empty() && steps_.back().op == Op::kDequantize; }

  // The int16 tensor an int16 network's final DEQUANTIZE would convert (for exact integer
  // post-processing such as the decoder's 8-bit pixels); throws for other models.
  QTensor run_int16(const Tensor& in, int threads = 1) const {
    if (!int16_output()) throw Error("model " + name_ + " does not end with an int16 tensor");
    ThreadPool pool(threads);
    Values v = execute(in, pool, true);
    return std::move(v.q[std::size_t(steps_.back().inputs[0])]);
  }

  // The streamed form for callers that make the input and use the output row by row (the
  // codec: no whole-image tensor on either side). `source` writes input rows on demand,
  // `sink` gets the output rows band by band, in order. Models that are not a chain run
  // whole (the input is gathered from `source` first, the output given in one call).
  void run_rows(int height, int width, const RowSource& source, const RowSink& sink,
                int threads = 1) const {
    std::vector<int> hs, ws;
    shapes(height, width, hs, ws);
    ThreadPool pool(threads);
    if (!chain_.empty() && !whole_tensor_) {
      stream(hs, ws, pool).run(source, nullptr, &sink);
      return;
    }
    Tensor in = pooled_tensor(*pool_, height, width, in_channels_);
    source(0, height, rows_of(in));
    Values v = execute(in, pool, false);
    pool_->give(std::move(in.data));
    Tensor& out = v.f.back();
    sink(0, out.height, rows_of(out));
    pool_->give(std::move(out.data));
  }

  // Whether run() streams (the model is a chain of operators; see lic/stream.hpp).
  bool streamed() const { return !chain_.empty() && !whole_tensor_; }

  // Intermediate buffers are kept between runs (see lic/workspace.hpp); this frees them.
  void release_memory() const {
    pool_->clear();
    s16_pools_->s16.clear();
    s16_pools_->s32.clear();
  }
  // Bytes of the buffers kept between runs.
  std::size_t kept_bytes() const {
    return pool_->kept_bytes() + s16_pools_->s16.kept_bytes() + s16_pools_->s32.kept_bytes();
  }

  // A human-readable summary (one line per node).
  std::string summary() const {
    std::ostringstream os;
    os << "model " << name_ << ": format " << version_major_ << "." << version_minor_
       << ", fingerprint " << std::hex << fingerprint_ << std::dec << ", " << in_channels_
       << " -> " << out_channels_ << " channels, " << steps_.size() << " nodes, "
       << parameters_ << " parameters, kernels " << kernel_isa() << "\n";
    for (std::size_t i = 0; i < steps_.size(); ++i) os << "  " << i << ": " << lines_[i] << "\n";
    return os.str();
  }

 private:
  friend class ModelPacking;

  // Every value of a run: float values in f, int16 ones in q (value id i in one of them).
  struct Values {
    std::vector<Tensor> f;
    std::vector<QTensor> q;
  };

  // The whole-tensor run of any model (float or int16 values, any graph): each step makes
  // its whole output tensor. `stop_before_last` stops before the final step (run_int16);
  // The input's channels and size against the model, and every layer's shape (hs, ws):
  // all size errors before any work.
  void check_input(const Tensor& in, std::vector<int>& hs, std::vector<int>& ws) const {
    if (in.channels != in_channels_)
      throw Error("model " + name_ + " expects " + std::to_string(in_channels_) +
                  " input channels, got " + std::to_string(in.channels));
    if (in.data.size() != Tensor::checked_size(in.height, in.width, in.channels))
      throw Error("input tensor data size does not match its shape");
    shapes(in.height, in.width, hs, ws);
  }

  // `observer`, when set, is told about every float value as it is computed.
  Values execute(const Tensor& in, ThreadPool& pool, bool stop_before_last,
                 ValueObserver* observer = nullptr) const {
    std::vector<int> hs, ws;
    check_input(in, hs, ws);
    const int threads = pool.size();  // the int16 ops start their own threads

    // LIC_PROFILE=1 prints each step's time to stderr (for tuning; off by default).
    static const bool profile = std::getenv("LIC_PROFILE") != nullptr;
    Values vals;
    vals.f.resize(steps_.size() + 1);
    vals.q.resize(steps_.size() + 1);
    auto value = [&](int v) -> const Tensor& { return v == 0 ? in : vals.f[std::size_t(v)]; };
    auto qvalue = [&](int v) -> const QTensor& { return vals.q[std::size_t(v)]; };
    const std::size_t last = stop_before_last ? steps_.size() - 1 : steps_.size();
    S16Pools& qp = *s16_pools_;
    if (observer) observer->seen(0, in);
    for (std::size_t i = 0; i < last; ++i) {
      const Step& s = steps_[i];
      if (s.fused_away) continue;
      const int x0 = s.inputs[0];
      const auto t0 = std::chrono::steady_clock::now();
      const std::clock_t c0 = profile ? std::clock() : 0;
      Tensor y;
      QTensor qy;
      switch (s.op) {
        case Op::kConv2d: y = s.conv->run(value(x0), s.act, s.alpha, pool, *pool_); break;
        case Op::kConvTranspose2d: y = s.convt->run(value(x0), s.act, s.alpha, pool, *pool_); break;
        case Op::kGdn: y = s.gdn->run(value(x0), pool, *pool_); break;
        case Op::kRelu:
        case Op::kLeakyRelu: y = leaky_relu(value(x0), s.alpha, *pool_); break;
        case Op::kAdd: y = add(value(x0), value(s.inputs[1]), *pool_); break;
        case Op::kQuantize: qy = quantize(value(x0), s.shift, qp); break;
        case Op::kDequantize: y = dequantize(qvalue(x0), *pool_); break;
        case Op::kS16Conv2d: qy = s.qconv->run(qvalue(x0), s.store, threads, qp); break;
        case Op::kS16ConvTranspose2d: qy = s.qconvt->run(qvalue(x0), s.store, threads, qp); break;
        case Op::kS16Relu:
        case Op::kS16LeakyRelu:
          qy = s16_leaky_relu(qvalue(x0), s.store.alpha_q, s.store.alpha_shift, qp);
          break;
        case Op::kS16Add: qy = s16_add(qvalue(x0), qvalue(s.inputs[1]), s.shift, qp); break;
        case Op::kS16Gdn: qy = s.qgdn->run(qvalue(x0), threads, qp); break;
      }
      if (profile) {
        const std::chrono::duration<double, std::milli> ms = std::chrono::steady_clock::now() - t0;
        // CPU time too: on a busy machine it is steadier than wall time.
        const double cpu_ms = 1000.0 * double(std::clock() - c0) / CLOCKS_PER_SEC;
        const bool qin = is_s16(s.op) || s.op == Op::kDequantize;
        const bool qout = is_s16(s.op) || s.op == Op::kQuantize;
        const int ih = qin ? qvalue(x0).height : value(x0).height;
        const int iw = qin ? qvalue(x0).width : value(x0).width;
        std::fprintf(stderr, "lic profile: node %zu %-40s %dx%d -> %dx%dx%d  %.3f ms (cpu %.3f ms)\n",
                     i, lines_[i].c_str(), ih, iw, qout ? qy.height : y.height,
                     qout ? qy.width : y.width, qout ? qy.channels : y.channels, ms.count(), cpu_ms);
      }
      vals.f[std::size_t(s.dest)] = std::move(y);
      vals.q[std::size_t(s.dest)] = std::move(qy);
      if (observer && !vals.f[std::size_t(s.dest)].data.empty())
        observer->seen(s.dest, vals.f[std::size_t(s.dest)]);
      // Free every value whose last reader has now run.
      for (int v : s.frees) {
        pool_->give(std::move(vals.f[std::size_t(v)].data));
        vals.f[std::size_t(v)] = Tensor();
        qp.s16.give(std::move(vals.q[std::size_t(v)].data));
        vals.q[std::size_t(v)] = QTensor();
      }
    }
    return vals;
  }

  struct Step {
    Op op = Op::kRelu;
    std::vector<int> inputs;
    int dest = 0;             // value id the step writes (i + 1, or i + 2 when fused)
    int act = kern::kActNone;  // activation fused into a convolution's store
    float alpha = 0.0f;
    bool fused_away = false;  // an activation folded into the step before it
    std::vector<int> frees;   // values that are dead after this step
    std::shared_ptr<const Conv2dOp> conv;
    std::shared_ptr<const ConvTranspose2dOp> convt;
    std::shared_ptr<const GdnOp> gdn;
    // int16 ops (docs/int16.md)
    int shift = 0;  // QUANTIZE's shift; S16_ADD's output shift
    S16Store store;  // fused or stand-alone (leaky) ReLU of the int16 ops
    std::shared_ptr<const S16Conv2dOp> qconv;
    std::shared_ptr<const S16ConvTranspose2dOp> qconvt;
    std::shared_ptr<const S16GdnOp> qgdn;
  };

  explicit Model(ModelDesc d, int threads = 1) : Model(d, Unpacked{}) {
    const std::vector<std::size_t> order = largest_first(d);
    parallel_each(static_cast<int>(order.size()), threads,
                  [&](int k) { pack_layer(d, order[std::size_t(k)]); });
    link(d);
  }

  // The three parts of the constructor, for ModelPacking (which shares the packing out).
  struct Unpacked {};
  // The steps, without their operators.
  Model(const ModelDesc& d, Unpacked)
      : name_(d.name),
        fingerprint_(d.fingerprint),
        in_channels_(d.in_channels),
        out_channels_(d.out_channels),
        version_major_(d.version_major),
        version_minor_(d.version_minor) {
    const std::size_t n = d.nodes.size();
    for (std::size_t i = 0; i < n; ++i) {
      const NodeDesc& nd = d.nodes[i];
      Step s;
      s.op = nd.op;
      s.inputs = nd.inputs;
      s.dest = static_cast<int>(i + 1);
      s.alpha = nd.op == Op::kLeakyRelu ? nd.alpha : 0.0f;
      parameters_ += nd.weight.size() + nd.bias.size() + nd.gamma.size() + nd.qweight.size() +
                     nd.qbias.size();
      if (i == 0) channels_.push_back(in_channels_);
      channels_.push_back(nd.out_channels);
      lines_.push_back(describe(nd));
      if (nd.op == Op::kQuantize) s.shift = nd.shift;
      if (nd.op == Op::kS16Add) s.shift = nd.out_shift;
      if (nd.op == Op::kS16Relu || nd.op == Op::kS16LeakyRelu) {
        s.store.act = kern::kActLeaky;
        s.store.alpha_q = nd.alpha_q;  // 0 for ReLU
        s.store.alpha_shift = nd.alpha_shift;
      }
      steps_.push_back(std::move(s));
    }
  }

  // Node i's operator, its weights packed for the kernels (threads may pack different
  // nodes at once).
  void pack_layer(ModelDesc& d, std::size_t i) {
    NodeDesc& nd = d.nodes[i];
    Step& s = steps_[i];
    if (nd.op == Op::kConv2d) s.conv = std::make_shared<Conv2dOp>(nd);
    if (nd.op == Op::kConvTranspose2d) s.convt = std::make_shared<ConvTranspose2dOp>(nd);
    if (nd.op == Op::kGdn) s.gdn = std::make_shared<GdnOp>(nd);
    if (nd.op == Op::kS16Conv2d) s.qconv = std::make_shared<S16Conv2dOp>(nd);
    if (nd.op == Op::kS16ConvTranspose2d) s.qconvt = std::make_shared<S16ConvTranspose2dOp>(nd);
    if (nd.op == Op::kS16Gdn) s.qgdn = std::make_shared<S16GdnOp>(nd);
    nd.qweight.clear();
    nd.qweight.shrink_to_fit();
  }

  // The nodes in the order to pack them: largest first, so that the last ones to start
  // are short (packing is most of a program's start-up, docs/performance.md).
  static std::vector<std::size_t> largest_first(const ModelDesc& d) {
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < d.nodes.size(); ++i) order.push_back(i);
    auto weights = [&](std::size_t i) {
      const NodeDesc& nd = d.nodes[i];
      return nd.weight.size() + nd.gamma.size() + nd.qweight.size();
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return weights(a) > weights(b); });
    return order;
  }

  // Once every layer is packed: fused activations, liveness, the chain.
  void link(const ModelDesc& d) {
    const std::size_t n = d.nodes.size();
    std::vector<int> readers(n + 1, 0);
    for (const NodeDesc& nd : d.nodes)
      for (int v : nd.inputs) ++readers[std::size_t(v)];
    // Fold an activation into the convolution before it when nothing else reads the
    // convolution's raw output: the activation then costs nothing (done at store time).
    for (std::size_t i = 0; i + 1 < n; ++i) {
      Step& s = steps_[i];
      Step& next = steps_[i + 1];
      const bool conv = s.op == Op::kConv2d || s.op == Op::kConvTranspose2d;
      const bool act = next.op == Op::kRelu || next.op == Op::kLeakyRelu;
      const bool qconv = s.op == Op::kS16Conv2d || s.op == Op::kS16ConvTranspose2d;
      const bool qact = next.op == Op::kS16Relu || next.op == Op::kS16LeakyRelu;
      const bool single = !s.fused_away && next.inputs[0] == static_cast<int>(i + 1) &&
                          readers[i + 1] == 1;
      if (conv && act && single) {
        s.act = kern::kActLeaky;
        s.alpha = next.alpha;
        s.dest = static_cast<int>(i + 2);
        next.fused_away = true;
      }
      if (qconv && qact && single) {  // same result: docs/int16.md applies it after saturation
        s.store = next.store;
        s.dest = static_cast<int>(i + 2);
        next.fused_away = true;
      }
    }
    // Liveness: a value dies after the last step that reads it (never the model output).
    std::vector<int> last(n + 1, -1);
    for (std::size_t i = 0; i < n; ++i) {
      if (steps_[i].fused_away) continue;
      for (int v : steps_[i].inputs) last[std::size_t(v)] = static_cast<int>(i);
    }
    for (std::size_t v = 1; v < n; ++v)
      if (last[v] >= 0) steps_[std::size_t(last[v])].frees.push_back(static_cast<int>(v));
    for (Step& s : steps_) {
      std::sort(s.frees.begin(), s.frees.end());
      s.frees.erase(std::unique(s.frees.begin(), s.frees.end()), s.frees.end());
    }
    find_chain(readers);
  }

  ChainRun stream(const std::vector<int>& hs, const std::vector<int>& ws, ThreadPool& pool) const {
    std::vector<int> ch, cw, cc;
    for (int v : chain_values_) {
      ch.push_back(hs[std::size_t(v)]);
      cw.push_back(ws[std::size_t(v)]);
      cc.push_back(channels_[std::size_t(v)]);
    }
    return ChainRun(chain_, ch, cw, cc, pool, *pool_);
  }

  // A chain: every step reads the output of the step before it (the first the model
  // input), nothing else reads that output, and every op streams: the float convolutions,
  // GDN and activations (not ADD; not the int16 ops, which have no row-range form yet).
  void find_chain(const std::vector<int>& readers) {
    int prev = 0;
    std::vector<ChainStage> chain;
    std::vector<int> values{0};
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      const Step& s = steps_[i];
      if (s.fused_away) continue;
      const bool streams = s.op == Op::kConv2d || s.op == Op::kConvTranspose2d ||
                           s.op == Op::kGdn || s.op == Op::kRelu || s.op == Op::kLeakyRelu;
      if (!streams || s.inputs.size() != 1 || s.inputs[0] != prev) return;
      if (prev != 0 && readers[std::size_t(prev)] != 1) return;
      ChainStage g;
      g.op = s.op;
      g.conv = s.conv.get();
      g.convt = s.convt.get();
      g.gdn = s.gdn.get();
      g.act = s.act;
      g.alpha = s.alpha;
      g.name = lines_[i];
      chain.push_back(g);
      prev = s.dest;
      values.push_back(prev);
    }
    if (chain.empty() || prev != static_cast<int>(steps_.size())) return;
    chain_ = std::move(chain);
    chain_values_ = std::move(values);
  }

  static std::string describe(const NodeDesc& n) {
    std::ostringstream os;
    os << op_name(n.op) << "(";
    for (std::size_t k = 0; k < n.inputs.size(); ++k) os << (k ? ", " : "") << "v" << n.inputs[k];
    os << ")";
    if (is_conv(n.op)) {
      os << " " << n.cin << "->" << n.cout << " k" << n.kh << "x" << n.kw << " s" << n.stride_h
         << "x" << n.stride_w << " pad " << n.pad_top << "," << n.pad_left << ","
         << n.pad_bottom << "," << n.pad_right;
      if (is_transposed(n.op)) os << " out_pad " << n.out_pad_h << "," << n.out_pad_w;
    } else if (n.op == Op::kLeakyRelu) {
      os << " alpha " << n.alpha;
    } else if (n.op == Op::kGdn || n.op == Op::kS16Gdn) {
      os << " " << n.channels << " channels" << (n.inverse ? " inverse" : "");
    } else if (n.op == Op::kS16LeakyRelu) {
      os << " alpha " << n.alpha_q << "/2^" << n.alpha_shift;
    } else if (n.op == Op::kQuantize) {
      os << " shift " << n.shift;
    }
    if (n.op == Op::kS16Conv2d || n.op == Op::kS16ConvTranspose2d)
      os << " shifts w " << n.weight_shift << " out " << n.out_shift;
    if (n.op == Op::kS16Gdn)
      os << " shifts sq " << n.square_shift << " gamma " << n.gamma_shift << " root "
         << n.root_shift << " out " << n.out_shift;
    if (n.op == Op::kS16Add) os << " out shift " << n.out_shift;
    return os.str();
  }

  // Heights and widths of every value for an input of h x w (throws when they do not fit).
  void shapes(int h, int w, std::vector<int>& hs, std::vector<int>& ws) const {
    Tensor::checked_size(h, w, in_channels_);
    hs.assign(1, h);
    ws.assign(1, w);
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      const Step& s = steps_[i];
      int oh = hs[std::size_t(s.inputs[0])], ow = ws[std::size_t(s.inputs[0])];
      if (s.conv) s.conv->output_size(oh, ow, oh, ow);
      if (s.convt) s.convt->output_size(oh, ow, oh, ow);
      if (s.qconv) s.qconv->output_size(oh, ow, oh, ow);
      if (s.qconvt) s.qconvt->output_size(oh, ow, oh, ow);
      if (s.conv || s.convt) Tensor::checked_size(oh, ow, s.conv ? s.conv->desc().cout
                                                                 : s.convt->desc().cout);
      if (s.qconv || s.qconvt) Tensor::checked_size(oh, ow, s.qconv ? s.qconv->desc().cout
                                                                    : s.qconvt->desc().cout);
      if (s.op == Op::kAdd || s.op == Op::kS16Add) {
        const std::size_t b = std::size_t(s.inputs[1]);
        if (hs[b] != oh || ws[b] != ow)
          throw Error("node " + std::to_string(i) + " (add): operands " + std::to_string(oh) +
                      "x" + std::to_string(ow) + " and " + std::to_string(hs[b]) + "x" +
                      std::to_string(ws[b]) + " differ for this input size");
      }
      hs.push_back(oh);
      ws.push_back(ow);
    }
  }

  std::string name_;
  std::uint64_t fingerprint_ = 0;
  int in_channels_ = 0;
  int out_channels_ = 0;
  int version_major_ = 0;
  int version_minor_ = 0;
  std::size_t parameters_ = 0;
  std::vector<Step> steps_;
  std::vector<std::string> lines_;
  std::vector<int> channels_;           // channels of every value (0 = the input)
  std::vector<ChainStage> chain_;       // the steps as a chain, when the model is one
  std::vector<int> chain_values_;       // the values along the chain (input first)
  // LIC_STREAM=0 runs every model whole-tensor (tests: both ways agree bit for bit).
  bool whole_tensor_ = std::getenv("LIC_STREAM") != nullptr && std::strcmp(std::getenv("LIC_STREAM"), "0") == 0;
  std::shared_ptr<BufferPool> pool_ = std::make_shared<BufferPool>();
  std::shared_ptr<S16Pools> s16_pools_ = std::make_shared<S16Pools>();
};

// A model whose layers any number of threads pack together (for PendingModel): each
// help() packs layers until none is left to start, largest first; finish() waits for the
// layers being packed and completes the model (once; it rethrows a packing error). With
// LIC_PROFILE, `profile_name` times the packing, from the first help() to the last layer.
class ModelPacking {
 public:
  ModelPacking(ModelDesc d, const char* profile_name)
      : desc_(std::move(d)),
        model_(desc_, Model::Unpacked{}),
        order_(Model::largest_first(desc_)),
        profile_name_(profile_name) {}

  void help() {
    std::call_once(started_, [&] { timer_ = std::make_unique<ProfileScope>(profile_name_); });
    const int n = static_cast<int>(order_.size());
    for (int k = next_.fetch_add(1); k < n; k = next_.fetch_add(1)) {
      std::exception_ptr error;
      try {
        model_.pack_layer(desc_, order_[std::size_t(k)]);
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mutex_);
      if (error && !error_) error_ = error;
      if (++done_ == n) {
        timer_.reset();
        all_done_.notify_all();
      }
    }
  }

  // Whether every layer is packed (or failed).
  bool all_packed() {
    std::lock_guard<std::mutex> lock(mutex_);
    return done_ == static_cast<int>(order_.size());
  }

  Model finish() {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      all_done_.wait(lock, [&] { return done_ == static_cast<int>(order_.size()); });
    }
    if (error_) std::rethrow_exception(error_);
    model_.link(desc_);
    return std::move(model_);
  }

 private:
  ModelDesc desc_;
  Model model_;
  std::vector<std::size_t> order_;
  std::atomic<int> next_{0};
  std::mutex mutex_;
  std::condition_variable all_done_;
  int done_ = 0;  // layers packed or failed (under mutex_)
  std::exception_ptr error_;
  const char* profile_name_;
  std::once_flag started_;
  std::unique_ptr<ProfileScope> timer_;
};

// A model being packed (the layers' weights: most of a program's loading). With 2+
// threads, threads - 1 threads of its own start packing it at once while the caller
// reads its image or decodes its latent; the caller's first get() then packs what is left
// beside them (no core idles whichever part is longer) and waits for the model. With one
// thread, the first get() packs it all. get() rethrows a packing error.
class PendingModel {
 public:
  PendingModel() = default;
  // A model packed already (not explicit: the codec halves take a Model where they take this).
  PendingModel(Model model) : state_(std::make_shared<State>()) {
    state_->model = std::make_unique<Model>(std::move(model));
  }
  static PendingModel start(ModelDesc d, int threads, const char* profile_name) {
    PendingModel m;
    m.state_ = std::make_shared<State>();
    State& s = *m.state_;
    s.packing = std::make_shared<ModelPacking>(std::move(d), profile_name);
    for (int i = 1; i < threads; ++i)
      s.packers.push_back(start_thread([packing = s.packing] { packing->help(); }));
    return m;
  }

  // Whether threads of its own are still packing it (and so hold cores).
  bool being_packed() const {
    return state_ && state_->packing && !state_->packers.empty() && !state_->packing->all_packed();
  }

  const Model& get() const {
    State& s = *state_;
    std::call_once(s.once, [&] {
      if (!s.packing) return;
      try {
        s.packing->help();
        s.model = std::make_unique<Model>(s.packing->finish());
      } catch (...) {
        s.error = std::current_exception();
      }
    });
    if (s.error) std::rethrow_exception(s.error);
    return *s.model;
  }

 private:
  struct State {
    std::shared_ptr<ModelPacking> packing;  // null for a model packed already
    std::vector<std::thread> packers;       // packing beside the caller: joined at the end
    std::once_flag once;
    std::unique_ptr<Model> model;
    std::exception_ptr error;
    ~State() {
      for (std::thread& t : packers)
        if (t.joinable()) t.join();
    }
  };
  std::shared_ptr<State> state_;  // shared: the codec halves are copied and moved
};

}  // namespace lic
