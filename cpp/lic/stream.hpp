// Streamed execution of a chain of operators: the model's output is made in bands of rows,
// and each operator keeps only the input rows its next band still needs (a "window"), so
// no whole-image intermediate tensor ever exists. The synthesis transform's 128-channel
// layer at 4x the latent resolution alone is 50 MB on a Kodak image and 2.1 GB at
// 4096x4096; streamed, the windows of all layers take a few MB, growing with the image
// width only (docs/runtime.md#streaming).
//
// Every output value is computed by the same operator code, on the same inputs, in the
// same order as in a whole-tensor run: results are bit-identical to it, for any band
// height and any thread count.
//
// How a band is made (pull): produce(s, o0, o1) asks operator s for its output rows
// [o0, o1). The operator works out the input rows [i0, i1) they read, makes sure its
// window holds them (ensure: rows it holds already are kept, rows before i0 are dropped,
// the missing ones are produced by operator s - 1, written straight into the window, and
// rows outside the input are zero padding rows), then computes. The first operator's
// input comes from a RowSource. Windows are sized by a dry run of the same schedule.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "lic/model_format.hpp"
#include "lic/ops/activation.hpp"
#include "lic/ops/conv.hpp"
#include "lic/ops/conv_transpose.hpp"
#include "lic/ops/gdn.hpp"
#include "lic/parallel.hpp"
#include "lic/tensor.hpp"
#include "lic/workspace.hpp"

namespace lic {

// Writes rows [r0, r1) of the model input, row r at dst.row(r) (width * channels floats).
// May be called from several threads at once, for disjoint rows.
using RowSource = std::function<void(int r0, int r1, const RowOut& dst)>;
// Receives finished output rows [r0, r1) (row r at rows.row(r)). A band's rows are given
// before any later band's, possibly split between several threads at once (disjoint rows).
using RowSink = std::function<void(int r0, int r1, const RowOut& rows)>;

// One operator of a chain (activations folded into a convolution are part of it).
struct ChainStage {
  Op op = Op::kRelu;
  const Conv2dOp* conv = nullptr;
  const ConvTranspose2dOp* convt = nullptr;
  const GdnOp* gdn = nullptr;
  int act = kern::kActNone;
  float alpha = 0.0f;
  std::string name;  // for LIC_PROFILE
};

class ChainRun {
 public:
  // Window memory a run aims to stay within (all windows, staging and the output band
  // together): the band height is the largest power of two whose windows fit, at least one
  // row. Smaller windows stay in cache, larger bands mean fewer and larger parallel steps.
  // On the project machine (docs/performance.md#streaming), FactorizedPriorReLU(128, 192)
  // on a Kodak image: one thread was fastest in bands of 8 rows for g_s (3 MB) and of one
  // latent row for g_a (9.5 MB). Two threads: in a long-lived process (buffers recycled)
  // bands of 32-64 and 4 rows were best, but a program run once touches every page of its
  // windows for the first time, and there bands of 32 and 1 (10 and 9.5 MB) gave the
  // `decoder` and `encoder` programs the best two-thread speed (docs/performance.md#threads).
  static std::size_t budget_bytes(int threads) {
    return threads <= 1 ? std::size_t(4) << 20 : std::size_t(12) << 20;
  }

  // hs, ws: heights and widths of the chain's values (input first), cs their channels.
  ChainRun(const std::vector<ChainStage>& stages, std::vector<int> hs, std::vector<int> ws,
           std::vector<int> cs, ThreadPool& threads, BufferPool& pool)
      : stages_(stages), threads_(threads), pool_(pool), hs_(std::move(hs)),
        ws_(std::move(ws)), cs_(std::move(cs)), states_(stages.size()) {
    for (std::size_t s = 0; s < stages_.size(); ++s) geometry(s);
    choose_band();
  }

  ~ChainRun() {
    for (State& st : states_) {
      pool_.give(std::move(st.win.buf));
      pool_.give(std::move(st.staging.buf));
    }
    pool_.give(std::move(band_buf_));
  }

  int band_rows() const { return band_; }

  // Runs the chain. Output rows go to `out` (a tensor of the output's shape) when it is
  // given, otherwise to `sink` one band at a time.
  void run(const RowSource& source, Tensor* out, const RowSink* sink) {
    source_ = &source;
    const auto start = std::chrono::steady_clock::now();
    allocate();
    if (profile_)
      std::fprintf(stderr, "lic profile: allocating the windows %.3f ms\n",
                   std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    const int last = static_cast<int>(stages_.size()) - 1;
    const int oh = hs_.back();
    const std::ptrdiff_t stride = std::ptrdiff_t(ws_.back()) * cs_.back();
    for (int o0 = 0; o0 < oh; o0 += band_) {
      const int o1 = std::min(oh, o0 + band_);
      if (out) {
        produce(last, o0, o1, RowOut{out->data.data(), 0, stride});
      } else {
        const RowOut rows{band_buf_.data(), o0, stride};
        produce(last, o0, o1, rows);
        threads_.parallel_for(o1 - o0, [&](int a, int b) { (*sink)(o0 + a, o0 + b, rows); });
      }
    }
    if (profile_) report();
  }

 private:
  // Rows of one operator's input (or, for the gather form, of its GEMM columns).
  struct Window {
    std::vector<float> buf;
    int cap = 0;                        // rows the buffer holds
    int width = 0, channels = 0, left = 0;  // padded row layout
    int base = 0, r0 = 0, r1 = 0;       // buffer row 0 is row `base`; rows [r0, r1) valid
    std::size_t row_floats() const { return std::size_t(width) * std::size_t(channels); }
    float* row(int r) { return buf.data() + std::ptrdiff_t(r - base) * std::ptrdiff_t(row_floats()); }
    RowWindow view() const { return RowWindow{buf.data(), base, width, channels, left}; }
    RowOut out() { return RowOut{buf.data(), base, std::ptrdiff_t(row_floats())}; }
    // Where the real columns of its rows go (past the left margin).
    RowOut interior() {
      return RowOut{buf.data() + std::size_t(left) * std::size_t(channels), base,
                    std::ptrdiff_t(row_floats())};
    }
  };

  struct State {
    Window win;      // input rows, the GEMM columns of the gather form, or the transformed
                     // input rows of the Winograd form
    Window staging;  // those two forms: new input rows before they are transformed
    // Dry run: the most rows in use at once when a window starts over (the first band,
    // which reaches back into the padding as well) and when it keeps rows, the most rows
    // added to kept ones, and the most added at once (they pass through staging together).
    int first = 0, span = 0, fresh = 0, staged = 0;
    // New rows pass through staging at most this many at a time (0: all at once): the
    // first band's many rows no longer size the staging buffer.
    int chunk = 0;
    // Rows a window holds: those in use once it keeps rows plus one band's new rows (its
    // live rows then move at most every other band), or the first band's if more. Sized by
    // the first band's rows plus its new rows, the windows of a Kodak g_a held ~2x as many
    // (13 MB, every page of them filled on every run).
    int cap() const { return std::max({1, first, span + fresh}); }
    double ms = 0, cpu_ms = 0;
  };

  bool gather(std::size_t s) const {
    return stages_[s].op == Op::kConvTranspose2d && stages_[s].convt->gather();
  }
  const WinogradConv* winograd(std::size_t s) const {
    if (stages_[s].op == Op::kConv2d) return stages_[s].conv->winograd();
    if (stages_[s].op == Op::kConvTranspose2d) return stages_[s].convt->winograd();
    return nullptr;
  }
  // Operator s when it pairs its output rows (conv_winograd.hpp), else null.
  const WinogradConv* pairs_rows(int s) const {
    if (s < 0) return nullptr;
    const WinogradConv* wg = winograd(std::size_t(s));
    return wg && wg->pairs() ? wg : nullptr;
  }
  // Whether operator s's window holds its input rows transformed (from staging rows).
  bool transformed(std::size_t s) const { return gather(s) || winograd(s) != nullptr; }

  void geometry(std::size_t s) {
    const ChainStage& g = stages_[s];
    State& st = states_[s];
    const int in_w = ws_[s], in_c = cs_[s];
    st.win.width = in_w;
    st.win.channels = in_c;
    int left = 0, right = 0;
    if (g.op == Op::kConv2d) g.conv->margins(in_w, left, right);
    if (g.op == Op::kConvTranspose2d) g.convt->margins(in_w, ws_[s + 1], left, right);
    st.win.left = left;
    st.win.width = left + in_w + right;
    if (gather(s)) {
      st.win.width = in_w;
      st.win.channels = g.convt->gather_cols();
      st.staging.width = in_w;
      st.staging.channels = in_c;
    } else if (const WinogradConv* wg = winograd(s)) {
      // Each input row is transformed once, when it arrives, and kept that way: computing
      // the transforms per band redid them for the kh - stride rows two bands share.
      st.staging = st.win;
      st.win.width = wg->slots(ws_[s + 1]);
      st.win.channels = wg->points() * in_c;
      st.win.left = 0;
    }
  }

  void input_rows(std::size_t s, int o0, int o1, int& i0, int& i1) const {
    const ChainStage& g = stages_[s];
    if (g.op == Op::kConv2d) {
      g.conv->input_rows(o0, o1, i0, i1);
    } else if (g.op == Op::kConvTranspose2d) {
      g.convt->input_rows(o0, o1, i0, i1);
    } else {
      i0 = o0;
      i1 = o1;
    }
  }

  // Dry runs of the schedule for band heights out_h, out_h/2, ..., 1: the largest whose
  // windows fit the budget.
  void choose_band() {
    const int oh = hs_.back();
    if (band_override_ > 0) {
      band_ = std::min(band_override_, oh);
      dry_run(band_);
      return;
    }
    int band = 1;
    while (band < oh) band *= 2;
    for (;; band /= 2) {
      dry_run(band);
      if (band == 1 || bytes(band) <= budget_bytes(threads_.size())) break;
    }
    band_ = band;
  }

  // Two passes: the first finds how many rows a band adds once the windows keep rows, the
  // second stages new rows that many at a time and sizes the windows for it.
  void dry_run(int band) {
    for (State& st : states_) st.chunk = 0;
    dry_pass(band);
    for (State& st : states_) st.chunk = st.fresh > 0 ? st.fresh : st.staged;
    dry_pass(band);
  }

  void dry_pass(int band) {
    dry_ = true;
    for (State& st : states_) {
      st.first = st.span = st.fresh = st.staged = 0;
      st.win.r0 = st.win.r1 = st.win.base = 0;
    }
    const int last = static_cast<int>(stages_.size()) - 1;
    for (int o0 = 0; o0 < hs_.back(); o0 += band)
      produce(last, o0, std::min(hs_.back(), o0 + band), RowOut{});
    dry_ = false;
  }

  std::size_t bytes(int band) const {
    std::size_t total = std::size_t(band) * std::size_t(ws_.back()) * std::size_t(cs_.back());
    for (const State& st : states_)
      total += std::size_t(st.cap()) * st.win.row_floats() +
               std::size_t(st.staged) * st.staging.row_floats();
    return total * sizeof(float);
  }

  // Zeroes the margin columns of every row of a window whose real rows are `in_w` pixels
  // wide; they stay zero from here on (rows are only ever written between the margins, or
  // moved whole). The rest is written before it is read, so it is left as the pool gave it
  // (zeroing whole windows was a serial pass over up to the whole budget on every run).
  static void zero_margins(Window& w, int in_w) {
    const std::size_t c = std::size_t(w.channels), rf = w.row_floats();
    const std::size_t lo = std::size_t(w.left) * c;
    const std::size_t hi = std::min(rf, (std::size_t(w.left) + std::size_t(in_w)) * c);
    if (lo == 0 && hi == rf) return;
    for (int r = 0; r < w.cap; ++r) {
      float* row = w.buf.data() + std::size_t(r) * rf;
      std::fill(row, row + lo, 0.0f);
      std::fill(row + hi, row + rf, 0.0f);
    }
  }

  // Takes every window, staging buffer and the band buffer from the pool, largest first,
  // shared out between the threads: fresh memory is filled (and faulted in) as it is
  // taken, which one thread did alone (a Kodak image's g_a, 2 threads: 7.9-8.4 ms, now
  // 3.6-4.9).
  void allocate() {
    std::vector<std::pair<std::size_t, int>> items;  // (floats, buffer): 2 per stage, then the band
    for (std::size_t s = 0; s < states_.size(); ++s) {
      State& st = states_[s];
      st.win.cap = st.cap();
      st.win.base = st.win.r0 = st.win.r1 = 0;
      st.staging.cap = std::max(1, st.staged);
      items.emplace_back(std::size_t(st.win.cap) * st.win.row_floats(), int(2 * s));
      // (an operator without staging takes nothing: a take of 0 floats would hold on to
      // the smallest buffer the pool keeps)
      if (st.staging.channels > 0)
        items.emplace_back(std::size_t(st.staging.cap) * st.staging.row_floats(), int(2 * s + 1));
    }
    const int band_item = int(2 * states_.size());
    items.emplace_back(std::size_t(band_) * std::size_t(ws_.back()) * std::size_t(cs_.back()), band_item);
    std::stable_sort(items.begin(), items.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    std::atomic<int> next{0};
    threads_.parallel_for(threads_.size(), [&](int, int) {
      for (int i = next.fetch_add(1); i < int(items.size()); i = next.fetch_add(1)) {
        const int id = items[std::size_t(i)].second;
        std::vector<float> buf = pool_.take(items[std::size_t(i)].first);
        if (id == band_item) {
          band_buf_ = std::move(buf);
          continue;
        }
        State& st = states_[std::size_t(id / 2)];
        const int in_w = ws_[std::size_t(id / 2)];
        Window& w = id % 2 ? st.staging : st.win;
        w.buf = std::move(buf);
        if (id % 2 || st.staging.channels == 0) zero_margins(w, in_w);  // rows of the input itself
      }
    });
  }

  // Moves a window's kept rows [r0, r1) to the top of its buffer. The threads take column
  // ranges of every row: source and destination may overlap, but a thread only reads and
  // writes its own columns, and row by row upwards each source row is read before it is
  // overwritten. (Done by one thread, the shifts were ~2 ms of a two-thread kodim07
  // decode with the other thread waiting.)
  void shift_to_top(Window& w) {
    const int rows = w.r1 - w.r0;
    const std::size_t n = w.row_floats();
    float* dst = w.buf.data();
    const float* src = w.row(w.r0);
    const int pieces = rows > 0 && n >= kShiftPieceFloats ? threads_.size() : 1;
    threads_.parallel_for(pieces, [&](int p0, int p1) {
      const std::size_t c0 = n * std::size_t(p0) / std::size_t(pieces);
      const std::size_t c1 = n * std::size_t(p1) / std::size_t(pieces);
      for (int r = 0; r < rows; ++r)
        std::memmove(dst + std::size_t(r) * n + c0, src + std::size_t(r) * n + c0,
                     (c1 - c0) * sizeof(float));
    });
    w.base = w.r0;
  }
  // Row length (floats) from which a shift is shared out between the threads.
  static constexpr std::size_t kShiftPieceFloats = std::size_t(8) << 10;

  // Makes operator s's window hold its input rows [i0, i1).
  void ensure(int s, int i0, int i1) {
    if (i1 <= i0) return;
    State& st = states_[std::size_t(s)];
    Window& w = st.win;
    const WinogradConv* pairing = pairs_rows(s - 1);
    // Whole pairs of rows from an operator that pairs them (its rows alone cost it more).
    if (pairing && i1 < hs_[std::size_t(s)])
      i1 = std::min(pairing->group_start_from(i1), hs_[std::size_t(s)]);
    const bool starts_over = w.r1 <= i0 || i0 < w.r0;
    if (starts_over) {
      w.r0 = w.r1 = w.base = i0;  // nothing kept is of use
    } else {
      w.r0 = i0;
    }
    if (i1 <= w.r1) return;
    const int a = w.r1, b = i1;
    const int in_h = hs_[std::size_t(s)];
    const int ra = std::max(a, 0), rb = std::min(b, in_h);  // rows of the real input
    if (dry_) {
      if (starts_over) {
        st.first = std::max(st.first, b - w.r0);
      } else {
        st.span = std::max(st.span, b - w.r0);
        st.fresh = std::max(st.fresh, b - a);
      }
    } else if (b - w.base > w.cap) {
      shift_to_top(w);
    }
    // Rows outside the input are zeros (the Winograd form's transformed rows too: zeros
    // transform to zeros); the gather form never reads them.
    if (!dry_ && !gather(std::size_t(s))) {
      for (int r = a; r < b; ++r)
        if (r < ra || r >= rb) std::fill(w.row(r), w.row(r) + w.row_floats(), 0.0f);
    }
    if (transformed(std::size_t(s))) {
      const WinogradConv* wg = winograd(std::size_t(s));
      const int step = st.chunk > 0 ? st.chunk : rb - ra;
      for (int c0 = ra, c1 = 0; c0 < rb; c0 = c1) {  // the new real rows, through staging
        c1 = std::min(rb, c0 + step);
        if (pairing && c1 < rb) {  // whole pairs of rows where there is a group start
          int e = c1;
          while (e > c0 && !pairing->starts_group(e)) --e;
          if (e > c0) c1 = e;
        }
        Window& in = st.staging;
        in.base = c0;
        produce(s - 1, c0, c1, dry_ ? RowOut{} : in.interior());
        if (dry_) {
          st.staged = std::max(st.staged, c1 - c0);
          continue;
        }
        Timer t(profile_, st);
        if (wg)
          wg->transform_rows(in.view(), ws_[std::size_t(s) + 1], c0, c1, w.out(), threads_);
        else
          stages_[std::size_t(s)].convt->compute_cols(in.view(), ws_[std::size_t(s)], c0, c1,
                                                      w.out(), threads_);
      }
    } else if (ra < rb) {
      const RowOut dst = dry_ ? RowOut{} : RowOut{w.row(ra) + std::ptrdiff_t(w.left) * w.channels,
                                                  ra, std::ptrdiff_t(w.row_floats())};
      produce(s - 1, ra, rb, dst);
    }
    w.r1 = b;
  }

  // Output rows [o0, o1) of operator s (s = -1: the model input) into `out`.
  void produce(int s, int o0, int o1, const RowOut& out) {
    if (o1 <= o0) return;
    if (s < 0) {
      if (!dry_) threads_.parallel_for(o1 - o0, [&](int a, int b) { (*source_)(o0 + a, o0 + b, out); });
      return;
    }
    int i0 = 0, i1 = 0;
    input_rows(std::size_t(s), o0, o1, i0, i1);
    ensure(s, i0, i1);
    if (dry_) return;
    State& st = states_[std::size_t(s)];
    const ChainStage& g = stages_[std::size_t(s)];
    const int ow = ws_[std::size_t(s) + 1];
    Timer t(profile_, st);
    switch (g.op) {
      case Op::kConv2d:
        if (const WinogradConv* wg = g.conv->winograd())
          wg->compute_rows_from(st.win.view(), o0, o1, ow, out, g.act, g.alpha, threads_, pool_);
        else
          g.conv->compute_rows(st.win.view(), o0, o1, ow, out, g.act, g.alpha, threads_, pool_);
        break;
      case Op::kConvTranspose2d:
        if (g.convt->gather())
          g.convt->gather_rows(st.win.out(), hs_[std::size_t(s)], ws_[std::size_t(s)], o0, o1, ow,
                               out, g.act, g.alpha, threads_);
        else if (const WinogradConv* wg = g.convt->winograd())
          wg->compute_rows_from(st.win.view(), o0, o1, ow, out, g.act, g.alpha, threads_, pool_);
        else
          g.convt->compute_rows(st.win.view(), o0, o1, ow, out, g.act, g.alpha, threads_, pool_);
        break;
      case Op::kGdn:
        g.gdn->compute_rows(st.win.view(), o0, o1, ow, out, threads_);
        break;
      default:  // RELU, LEAKY_RELU
        leaky_relu_rows(st.win.view(), o0, o1, ow, cs_[std::size_t(s)], g.alpha, out);
        break;
    }
  }

  // LIC_PROFILE=1: time spent in each operator's own computation.
  struct Timer {
    Timer(bool on, State& st) : on_(on), st_(st) {
      if (on_) {
        t0_ = std::chrono::steady_clock::now();
        c0_ = std::clock();
      }
    }
    ~Timer() {
      if (!on_) return;
      st_.ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_).count();
      st_.cpu_ms += 1000.0 * double(std::clock() - c0_) / CLOCKS_PER_SEC;
    }
    bool on_;
    State& st_;
    std::chrono::steady_clock::time_point t0_;
    std::clock_t c0_ = 0;
  };

  void report() const {
    for (std::size_t s = 0; s < stages_.size(); ++s)
      std::fprintf(stderr,
                   "lic profile: stage %zu %-40s %dx%d -> %dx%dx%d  %.3f ms (cpu %.3f ms), "
                   "window %d rows\n",
                   s, stages_[s].name.c_str(), hs_[s], ws_[s], hs_[s + 1], ws_[s + 1], cs_[s + 1],
                   states_[s].ms, states_[s].cpu_ms, states_[s].win.cap);
    std::fprintf(stderr, "lic profile: streamed in bands of %d rows\n", band_);
  }

  const std::vector<ChainStage>& stages_;
  ThreadPool& threads_;
  BufferPool& pool_;
  std::vector<int> hs_, ws_, cs_;
  std::vector<State> states_;
  std::vector<float> band_buf_;
  const RowSource* source_ = nullptr;
  int band_ = 1;
  bool dry_ = false;
  bool profile_ = std::getenv("LIC_PROFILE") != nullptr;
  // LIC_BAND_ROWS=N forces the band height (tests: every height gives the same result).
  int band_override_ = std::getenv("LIC_BAND_ROWS") ? std::atoi(std::getenv("LIC_BAND_ROWS")) : 0;
};

}  // namespace lic
